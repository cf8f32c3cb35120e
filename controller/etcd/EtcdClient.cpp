// EtcdClient: HTTP/1.1 to etcd's JSON gateway. Every operation runs asynchronously on the
// client's own io_context, driven by the calling thread up to a deadline, so one code
// path bounds connecting, writing and reading (Beast's tcp_stream timeouts close the
// socket, which a watch polling its stop flag cannot use).
#include "controller/etcd/EtcdClient.h"

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "controller/etcd/Base64.h"

namespace loom::controller::etcd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

constexpr std::size_t kHeaderLimit = std::size_t{16} * 1024;
constexpr auto kWatchPoll = std::chrono::milliseconds(100);
constexpr std::size_t kWatchReadChunk = std::size_t{64} * 1024;

std::string msText(std::chrono::milliseconds ms) { return std::to_string(ms.count()) + " ms"; }

// etcd's gRPC status codes (google.golang.org/grpc/codes) as Loom error kinds.
Errc errcOfGrpc(std::int64_t code) {
  switch (code) {
    case 3:  // InvalidArgument: too many ops, request too large, duplicate key, ...
      return Errc::Invalid;
    case 5:  // NotFound: lease not found
      return Errc::NotFound;
    case 4:  // DeadlineExceeded
      return Errc::Timeout;
    case 11:  // OutOfRange: revision compacted / in the future
      return Errc::Conflict;
    case 14:  // Unavailable: no leader, request timed out, leader changed, ...
      return Errc::Unavailable;
    default:
      return Errc::Io;
  }
}

// Answers that say the member did not propose the request: any other member may take it.
bool notProposed(const std::string& message) {
  return message.find("etcdserver: no leader") != std::string::npos ||
         message.find("etcdserver: not capable") != std::string::npos;
}

// ---- request bodies. Every string in them is base64 or an enum name: nothing to escape,
// so they are written directly (a commit of 50,000 ops is ~30 MB of JSON).

void field(std::string& out, const char* name, std::string_view bytes) {
  out += '"';
  out += name;
  out += "\":\"";
  base64EncodeTo(out, bytes);
  out += '"';
}
void numberField(std::string& out, const char* name, std::int64_t v) {
  out += '"';
  out += name;
  out += "\":\"";
  out += std::to_string(v);
  out += '"';
}

void writeRangeBody(std::string& out, const std::string& key, const std::string& rangeEnd, std::int64_t limit,
                    std::int64_t revision) {
  out += '{';
  field(out, "key", key);
  if (!rangeEnd.empty()) field(out += ',', "range_end", rangeEnd);
  if (limit > 0) numberField(out += ',', "limit", limit);
  if (revision > 0) numberField(out += ',', "revision", revision);
  out += '}';
}

void writeTxnBody(std::string& out, const TxnRequest& t);

void writeOp(std::string& out, const Op& op) {
  switch (op.type) {
    case Op::Type::Put:
      out += "{\"request_put\":{";
      field(out, "key", op.key);
      field(out += ',', "value", op.value);
      if (op.lease != 0) numberField(out += ',', "lease", op.lease);
      out += "}}";
      return;
    case Op::Type::Delete:
      out += "{\"request_delete_range\":{";
      field(out, "key", op.key);
      if (!op.rangeEnd.empty()) field(out += ',', "range_end", op.rangeEnd);
      out += "}}";
      return;
    case Op::Type::Range:
      out += "{\"request_range\":";
      writeRangeBody(out, op.key, op.rangeEnd, op.limit, 0);
      out += '}';
      return;
    case Op::Type::Txn:
      out += "{\"request_txn\":";
      writeTxnBody(out, op.txn ? *op.txn : TxnRequest{});
      out += '}';
      return;
  }
}

void writeTxnBody(std::string& out, const TxnRequest& t) {
  static constexpr const char* kTargets[] = {"VALUE", "VERSION", "CREATE", "MOD"};
  static constexpr const char* kResults[] = {"EQUAL", "NOT_EQUAL", "LESS", "GREATER"};
  out += "{\"compare\":[";
  for (std::size_t i = 0; i < t.compare.size(); ++i) {
    const auto& c = t.compare[i];
    if (i) out += ',';
    out += '{';
    field(out, "key", c.key);
    out += ",\"target\":\"";
    out += kTargets[static_cast<int>(c.target)];
    out += "\",\"result\":\"";
    out += kResults[static_cast<int>(c.result)];
    out += "\",";
    switch (c.target) {
      case Compare::Target::Value:
        field(out, "value", c.operand);
        break;
      case Compare::Target::Version:
        numberField(out, "version", c.number);
        break;
      case Compare::Target::CreateRevision:
        numberField(out, "create_revision", c.number);
        break;
      case Compare::Target::ModRevision:
        numberField(out, "mod_revision", c.number);
        break;
    }
    out += '}';
  }
  for (const auto* branch : {&t.success, &t.failure}) {
    out += branch == &t.success ? "],\"success\":[" : "],\"failure\":[";
    for (std::size_t i = 0; i < branch->size(); ++i) {
      if (i) out += ',';
      writeOp(out, (*branch)[i]);
    }
  }
  out += "]}";
}

bool hasRange(const TxnRequest& t) {
  for (const auto* branch : {&t.success, &t.failure})
    for (const auto& op : *branch)
      if (op.type == Op::Type::Range || (op.type == Op::Type::Txn && op.txn && hasRange(*op.txn))) return true;
  return false;
}

// ---- answers. Proto3 JSON: 64-bit integers are decimal strings, zero values and empty
// lists are left out. A field of the wrong type is an error, never an exception.
class Decoder {
 public:
  explicit Decoder(std::string endpoint) : endpoint_(std::move(endpoint)) {}

  bool ok() const { return error_.empty(); }
  Error error() const { return makeError(Errc::Io, "etcd " + endpoint_ + ": malformed answer: " + error_); }
  void fail(const std::string& what) {
    if (error_.empty()) error_ = what;
  }

  // The member's answer as JSON, or an error.
  std::optional<json> parse(const std::string& body) {
    json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      fail("not a JSON object");
      return std::nullopt;
    }
    return j;
  }

  const json* object(const json& o, const char* name) {
    auto it = o.find(name);
    if (it == o.end()) return nullptr;
    if (!it->is_object()) {
      fail(std::string("'") + name + "' is not an object");
      return nullptr;
    }
    return &*it;
  }
  const json* array(const json& o, const char* name) {
    auto it = o.find(name);
    if (it == o.end()) return nullptr;
    if (!it->is_array()) {
      fail(std::string("'") + name + "' is not a list");
      return nullptr;
    }
    return &*it;
  }
  std::int64_t int64(const json& o, const char* name) {
    auto it = o.find(name);
    if (it == o.end()) return 0;
    if (it->is_number_integer()) return it->get<std::int64_t>();
    if (it->is_string()) {
      const auto& s = it->get_ref<const std::string&>();
      std::size_t used = 0;
      try {
        const long long v = std::stoll(s, &used);
        if (used == s.size()) return v;
      } catch (...) {  // NOLINT(bugprone-empty-catch): reported below
      }
    }
    fail(std::string("'") + name + "' is not an integer");
    return 0;
  }
  std::uint64_t uint64(const json& o, const char* name) {
    auto it = o.find(name);
    if (it == o.end()) return 0;
    if (it->is_number_unsigned()) return it->get<std::uint64_t>();
    if (it->is_string()) {
      const auto& s = it->get_ref<const std::string&>();
      std::size_t used = 0;
      try {
        if (!s.empty() && s[0] != '-') {
          const unsigned long long v = std::stoull(s, &used);
          if (used == s.size()) return v;
        }
      } catch (...) {  // NOLINT(bugprone-empty-catch): reported below
      }
    }
    fail(std::string("'") + name + "' is not an unsigned integer");
    return 0;
  }
  bool boolean(const json& o, const char* name) {
    auto it = o.find(name);
    if (it == o.end()) return false;
    if (!it->is_boolean()) {
      fail(std::string("'") + name + "' is not a boolean");
      return false;
    }
    return it->get<bool>();
  }
  std::string text(const json& o, const char* name) {
    auto it = o.find(name);
    if (it == o.end()) return {};
    if (!it->is_string()) {
      fail(std::string("'") + name + "' is not a string");
      return {};
    }
    return it->get<std::string>();
  }
  std::string bytes(const json& o, const char* name) {
    auto it = o.find(name);
    if (it == o.end()) return {};
    if (!it->is_string()) {
      fail(std::string("'") + name + "' is not a string");
      return {};
    }
    auto decoded = base64Decode(it->get_ref<const std::string&>());
    if (!decoded) {
      fail(std::string("'") + name + "' is not base64");
      return {};
    }
    return std::move(*decoded);
  }
  std::vector<std::string> texts(const json& o, const char* name) {
    std::vector<std::string> out;
    if (const json* a = array(o, name))
      for (const auto& v : *a) {
        if (!v.is_string()) {
          fail(std::string("'") + name + "' holds a non-string");
          return {};
        }
        out.push_back(v.get<std::string>());
      }
    return out;
  }

  std::int64_t headerRevision(const json& o) {
    const json* h = object(o, "header");
    return h ? int64(*h, "revision") : 0;
  }

  KeyValue keyValue(const json& o) {
    KeyValue kv;
    if (!o.is_object()) {
      fail("a key-value is not an object");
      return kv;
    }
    kv.key = bytes(o, "key");
    kv.value = bytes(o, "value");
    kv.createRevision = int64(o, "create_revision");
    kv.modRevision = int64(o, "mod_revision");
    kv.version = int64(o, "version");
    kv.lease = int64(o, "lease");
    return kv;
  }

  RangeResult range(const json& o) {
    RangeResult r;
    r.revision = headerRevision(o);
    r.count = int64(o, "count");
    r.more = boolean(o, "more");
    if (const json* kvs = array(o, "kvs")) {
      r.kvs.reserve(kvs->size());
      for (const auto& kv : *kvs) {
        r.kvs.push_back(keyValue(kv));
        if (!ok()) break;
      }
    }
    return r;
  }

  TxnResult txn(const json& o) {
    TxnResult t;
    t.revision = headerRevision(o);
    t.succeeded = boolean(o, "succeeded");
    if (const json* rs = array(o, "responses"))
      for (const auto& r : *rs) {
        if (!r.is_object()) {
          fail("a txn response is not an object");
          break;
        }
        OpResponse resp;
        if (const json* p = object(r, "response_put"); p) {
          resp.type = Op::Type::Put;
        } else if (const json* d = object(r, "response_delete_range"); d) {
          resp.type = Op::Type::Delete;
          resp.deleted = int64(*d, "deleted");
        } else if (const json* g = object(r, "response_range"); g) {
          resp.type = Op::Type::Range;
          resp.range = range(*g);
        } else if (const json* n = object(r, "response_txn"); n) {
          resp.type = Op::Type::Txn;
          resp.txn = std::make_shared<TxnResult>(txn(*n));
        } else {
          fail("a txn response of unknown kind");
        }
        if (!ok()) break;
        t.responses.push_back(std::move(resp));
      }
    return t;
  }

 private:
  std::string endpoint_;
  std::string error_;
};

std::pair<std::string, std::string> splitHostPort(const std::string& endpoint) {
  const auto colon = endpoint.rfind(':');
  std::string host = endpoint.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return {host, endpoint.substr(colon + 1)};
}

}  // namespace

// ---- builders

Compare Compare::value(std::string key, Result r, std::string value) {
  Compare c;
  c.key = std::move(key);
  c.target = Target::Value;
  c.result = r;
  c.operand = std::move(value);
  return c;
}
Compare Compare::version(std::string key, Result r, std::int64_t v) {
  Compare c;
  c.key = std::move(key);
  c.target = Target::Version;
  c.result = r;
  c.number = v;
  return c;
}
Compare Compare::createRevision(std::string key, Result r, std::int64_t rev) {
  Compare c = version(std::move(key), r, rev);
  c.target = Target::CreateRevision;
  return c;
}
Compare Compare::modRevision(std::string key, Result r, std::int64_t rev) {
  Compare c = version(std::move(key), r, rev);
  c.target = Target::ModRevision;
  return c;
}

Op Op::put(std::string key, std::string value, std::int64_t lease) {
  Op op;
  op.type = Type::Put;
  op.key = std::move(key);
  op.value = std::move(value);
  op.lease = lease;
  return op;
}
Op Op::del(std::string key, std::string rangeEnd) {
  Op op;
  op.type = Type::Delete;
  op.key = std::move(key);
  op.rangeEnd = std::move(rangeEnd);
  return op;
}
Op Op::range(std::string key, std::string rangeEnd, std::int64_t limit) {
  Op op;
  op.type = Type::Range;
  op.key = std::move(key);
  op.rangeEnd = std::move(rangeEnd);
  op.limit = limit;
  return op;
}
Op Op::nested(TxnRequest txn) {
  Op op;
  op.type = Type::Txn;
  op.txn = std::make_shared<const TxnRequest>(std::move(txn));
  return op;
}

// ---- transport

// One TCP connection to one member and the io_context that drives it.
struct EtcdClient::Connection {
  asio::io_context ioc;
  tcp::socket socket{ioc};
  beast::flat_buffer buffer;
  std::size_t index = static_cast<std::size_t>(-1);  // the member it is connected to
  bool reused = false;                               // it has carried an exchange already

  // Runs handlers until `done` or `deadline`; false on the deadline.
  bool runUntil(const bool& done, Clock::time_point deadline) {
    while (!done) {
      if (ioc.stopped()) ioc.restart();
      if (Clock::now() >= deadline) return false;
      if (ioc.run_one_until(deadline) == 0 && !done && ioc.stopped()) return false;  // no work left: cannot happen
    }
    return true;
  }

  // Closes the socket and lets every pending handler finish (with operation_aborted).
  void close() {
    beast::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    ioc.restart();
    ioc.run();
    buffer.clear();
    index = static_cast<std::size_t>(-1);
    reused = false;
  }

  // "" on success, else why not (and whether the deadline passed).
  std::string connect(const std::string& endpoint, std::size_t idx, Clock::time_point deadline, bool& timedOut) {
    close();
    timedOut = false;
    const auto [host, port] = splitHostPort(endpoint);
    tcp::resolver resolver(ioc);
    bool done = false;
    beast::error_code ec;
    tcp::resolver::results_type results;
    resolver.async_resolve(host, port, [&](const beast::error_code& e, tcp::resolver::results_type r) {
      ec = e;
      results = std::move(r);
      done = true;
    });
    if (!runUntil(done, deadline)) {
      resolver.cancel();
      close();
      timedOut = true;
      return "could not resolve '" + host + "' in time";
    }
    if (ec) return "cannot resolve '" + host + "': " + ec.message();
    done = false;
    asio::async_connect(socket, results, [&](const beast::error_code& e, const tcp::endpoint&) {
      ec = e;
      done = true;
    });
    if (!runUntil(done, deadline)) {
      close();
      timedOut = true;
      return "could not connect in time";
    }
    if (ec) {
      close();
      return "cannot connect: " + ec.message();
    }
    socket.set_option(tcp::no_delay(true), ec);
    index = idx;
    return {};
  }
};

// What became of one request to one member.
struct EtcdClient::Exchange {
  enum class Outcome {
    Answered,  // an HTTP answer: `status`, `body`
    NotSent,   // etcd did not get the request (connect or write failed)
    Stale,     // a kept-alive connection was closed under us before any answer byte
    Refused,   // the answer was malformed or too large: not read further
    Lost,      // sent, then no answer (broken or timed out): a write's outcome is unknown
  };
  Outcome outcome = Outcome::NotSent;
  bool timedOut = false;
  unsigned status = 0;
  std::string body;
  std::string error;
};

EtcdClient::EtcdClient(std::vector<std::string> endpoints, Options options)
    : endpoints_(std::move(endpoints)), options_(options), conn_(std::make_unique<Connection>()) {
  assert(!endpoints_.empty());
}

EtcdClient::~EtcdClient() = default;

Result<std::vector<std::string>> EtcdClient::parseEndpoints(const std::string& list) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    const auto comma = list.find(',', start);
    const std::string ep = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const auto colon = ep.rfind(':');
    int port = -1;
    if (colon != std::string::npos && colon > 0 && colon + 1 < ep.size() && colon + 6 >= ep.size() &&
        ep.find_first_not_of("0123456789", colon + 1) == std::string::npos)
      port = std::stoi(ep.substr(colon + 1));
    if (port <= 0 || port > 65535)
      return makeError(Errc::Invalid, "etcd endpoint '" + ep + "' is not HOST:PORT (in '" + list + "')");
    out.push_back(ep);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string EtcdClient::prefixEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // etcd: "\0" as range end means every key >= key
}

void EtcdClient::disconnect() { conn_->close(); }

bool EtcdClient::runUntil(const bool& done, Clock::time_point deadline) { return conn_->runUntil(done, deadline); }

Status EtcdClient::connect(std::size_t index, Clock::time_point deadline) {
  bool timedOut = false;
  std::string why = conn_->connect(endpoints_[index], index, deadline, timedOut);
  if (why.empty()) return okStatus();
  return makeError(timedOut ? Errc::Timeout : Errc::Unavailable, why);
}

EtcdClient::Exchange EtcdClient::exchange(std::size_t index, const std::string& path, const std::string& body,
                                          std::size_t maxBytes, Clock::time_point deadline) {
  Exchange ex;
  Connection& c = *conn_;
  if (c.index != index || !c.socket.is_open()) {
    if (auto s = connect(index, deadline); !s) {
      ex.outcome = Exchange::Outcome::NotSent;
      ex.timedOut = s.error().code == Errc::Timeout;
      ex.error = s.error().message;
      return ex;
    }
  }
  const bool reused = c.reused;
  http::request<http::string_body> req{http::verb::post, path, 11};
  req.set(http::field::host, endpoints_[index]);
  req.set(http::field::content_type, "application/json");
  req.keep_alive(true);
  req.body() = body;
  req.prepare_payload();
  bool done = false;
  beast::error_code ec;
  http::async_write(c.socket, req, [&](const beast::error_code& e, std::size_t) {
    ec = e;
    done = true;
  });
  if (!c.runUntil(done, deadline) || ec) {
    // A request not written whole is not processed (etcd waits for the whole body).
    ex.timedOut = !done;
    ex.error = done ? "cannot send: " + ec.message() : "could not send in time";
    ex.outcome = reused && done ? Exchange::Outcome::Stale : Exchange::Outcome::NotSent;
    c.close();
    return ex;
  }
  http::response_parser<http::string_body> parser;
  parser.header_limit(kHeaderLimit);
  parser.body_limit(maxBytes);
  // The header first, and the declared length checked before the body is read: Boost
  // 1.74's parser, reading a whole message eagerly, goes on from a header that exceeds
  // body_limit to reserving the declared length when body bytes came in the same read
  // (a 1 TiB Content-Length was a std::bad_alloc; EtcdClientBounds tests it).
  done = false;
  http::async_read_header(c.socket, c.buffer, parser, [&](const beast::error_code& e, std::size_t) {
    ec = e;
    done = true;
  });
  if (c.runUntil(done, deadline) && !ec) {
    if (const auto length = parser.content_length(); length && *length > maxBytes) ec = http::error::body_limit;
    if (!ec && !parser.is_done()) {
      done = false;
      http::async_read(c.socket, c.buffer, parser, [&](const beast::error_code& e, std::size_t) {
        ec = e;
        done = true;
      });
    }
  }
  if (!c.runUntil(done, deadline)) {
    c.close();
    ex.outcome = Exchange::Outcome::Lost;
    ex.timedOut = true;
    ex.error = "no answer within " + msText(options_.timeout);
    return ex;
  }
  if (ec == http::error::body_limit) {
    c.close();
    ex.outcome = Exchange::Outcome::Refused;
    ex.error = "answer larger than " + std::to_string(maxBytes) + " bytes, refused";
    return ex;
  }
  const bool closed = ec == http::error::end_of_stream || ec == http::error::partial_message ||
                      ec.category() != http::make_error_code(http::error::bad_method).category();
  if (ec && !closed) {  // the parser's: not HTTP, or a header past its limit
    c.close();
    ex.outcome = Exchange::Outcome::Refused;
    ex.error = "malformed HTTP answer: " + ec.message();
    return ex;
  }
  if (ec) {
    const bool nothing = !parser.got_some();
    c.close();
    ex.outcome = reused && nothing ? Exchange::Outcome::Stale : Exchange::Outcome::Lost;
    ex.error = "connection lost: " + ec.message();
    return ex;
  }
  c.reused = true;
  auto res = parser.release();
  ex.outcome = Exchange::Outcome::Answered;
  ex.status = res.result_int();
  ex.body = std::move(res.body());
  if (!res.keep_alive()) c.close();
  return ex;
}

Result<std::string> EtcdClient::call(const std::string& path, const std::string& body, Kind kind,
                                     std::size_t maxBytes) {
  const auto deadline = Clock::now() + options_.timeout;
  std::string failures;
  bool timedOut = false;
  const std::size_t n = endpoints_.size();
  const std::size_t first = preferred_;
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = (first + k) % n;
    const std::string& ep = endpoints_[i];
    if (Clock::now() >= deadline) {
      failures += (failures.empty() ? "" : "; ") + ep + ": not tried (out of time)";
      continue;
    }
    Exchange ex = exchange(i, path, body, maxBytes, deadline);
    if (ex.outcome == Exchange::Outcome::Stale) ex = exchange(i, path, body, maxBytes, deadline);
    timedOut = timedOut || ex.timedOut;
    switch (ex.outcome) {
      case Exchange::Outcome::Answered: {
        if (ex.status == 200) {
          preferred_ = i;
          return std::move(ex.body);
        }
        // {"error": "...", "message": "...", "code": N}
        json j = json::parse(ex.body, nullptr, false);
        std::string message;
        std::int64_t code = -1;
        if (j.is_object()) {
          if (auto m = j.find("message"); m != j.end() && m->is_string()) message = m->get<std::string>();
          if (auto e = j.find("error"); message.empty() && e != j.end() && e->is_string())
            message = e->get<std::string>();
          if (auto cd = j.find("code"); cd != j.end() && cd->is_number_integer()) code = cd->get<std::int64_t>();
        }
        if (message.empty())
          message = "HTTP " + std::to_string(ex.status) + ": " +
                    ex.body.substr(0, std::min<std::size_t>(200, ex.body.size()));
        const Errc errc = code >= 0 ? errcOfGrpc(code) : Errc::Io;
        if (notProposed(message) || (kind == Kind::Read && errc == Errc::Unavailable)) {
          failures += (failures.empty() ? "" : "; ") + ep + ": " + message;
          continue;
        }
        preferred_ = i;
        return makeError(errc, "etcd " + ep + ": " + message);
      }
      case Exchange::Outcome::Refused:
        preferred_ = (i + 1) % n;
        return makeError(Errc::Io, "etcd " + ep + ": " + ex.error);
      case Exchange::Outcome::Stale:
      case Exchange::Outcome::NotSent:
        failures += (failures.empty() ? "" : "; ") + ep + ": " + ex.error;
        continue;
      case Exchange::Outcome::Lost:
        if (kind == Kind::Read) {
          failures += (failures.empty() ? "" : "; ") + ep + ": " + ex.error;
          continue;
        }
        preferred_ = (i + 1) % n;
        return makeError(ex.timedOut ? Errc::Timeout : Errc::Unavailable,
                         "etcd " + ep + ": " + ex.error + " to a write; whether it was applied is unknown");
    }
  }
  preferred_ = (first + 1) % n;  // the next call starts elsewhere
  return makeError(timedOut ? Errc::Timeout : Errc::Unavailable,
                   "etcd: no member answered within " + msText(options_.timeout) + " (" + failures + ")");
}

// ---- calls

Result<RangeResult> EtcdClient::range(const std::string& key, const std::string& rangeEnd, std::int64_t limit,
                                      std::int64_t revision) {
  std::string body;
  writeRangeBody(body, key, rangeEnd, limit, revision);
  auto answer = call("/v3/kv/range", body, Kind::Read, options_.maxRangeBytes);
  if (!answer) return answer.error();
  Decoder d(endpoints_[preferred_]);
  auto j = d.parse(*answer);
  if (!j) return d.error();
  RangeResult r = d.range(*j);
  if (!d.ok()) return d.error();
  return r;
}

Result<std::int64_t> EtcdClient::put(const std::string& key, const std::string& value, std::int64_t lease) {
  std::string body = "{";
  field(body, "key", key);
  field(body += ',', "value", value);
  if (lease != 0) numberField(body += ',', "lease", lease);
  body += '}';
  auto answer = call("/v3/kv/put", body, Kind::Write, options_.maxResponseBytes);
  if (!answer) return answer.error();
  Decoder d(endpoints_[preferred_]);
  auto j = d.parse(*answer);
  if (!j) return d.error();
  const std::int64_t rev = d.headerRevision(*j);
  if (!d.ok()) return d.error();
  return rev;
}

Result<DeleteResult> EtcdClient::deleteRange(const std::string& key, const std::string& rangeEnd) {
  std::string body = "{";
  field(body, "key", key);
  if (!rangeEnd.empty()) field(body += ',', "range_end", rangeEnd);
  body += '}';
  auto answer = call("/v3/kv/deleterange", body, Kind::Write, options_.maxResponseBytes);
  if (!answer) return answer.error();
  Decoder d(endpoints_[preferred_]);
  auto j = d.parse(*answer);
  if (!j) return d.error();
  DeleteResult r{d.int64(*j, "deleted"), d.headerRevision(*j)};
  if (!d.ok()) return d.error();
  return r;
}

Result<TxnResult> EtcdClient::txn(const TxnRequest& request) {
  std::string body;
  writeTxnBody(body, request);
  bool writes = false;
  for (const auto* branch : {&request.success, &request.failure})
    for (const auto& op : *branch) writes = writes || op.type != Op::Type::Range;
  auto answer = call("/v3/kv/txn", body, writes ? Kind::Write : Kind::Read,
                     hasRange(request) ? options_.maxRangeBytes : options_.maxResponseBytes);
  if (!answer) return answer.error();
  Decoder d(endpoints_[preferred_]);
  auto j = d.parse(*answer);
  if (!j) return d.error();
  TxnResult t = d.txn(*j);
  if (!d.ok()) return d.error();
  return t;
}

Result<TxnResult> EtcdClient::txn(std::vector<Compare> compare, std::vector<Op> success, std::vector<Op> failure) {
  TxnRequest t;
  t.compare = std::move(compare);
  t.success = std::move(success);
  t.failure = std::move(failure);
  return txn(t);
}

Result<LeaseGrant> EtcdClient::leaseGrant(std::int64_t ttlSeconds) {
  std::string body = "{";
  numberField(body, "TTL", ttlSeconds);
  body += '}';
  auto answer = call("/v3/lease/grant", body, Kind::Write, options_.maxResponseBytes);
  if (!answer) return answer.error();
  Decoder d(endpoints_[preferred_]);
  auto j = d.parse(*answer);
  if (!j) return d.error();
  LeaseGrant g{d.int64(*j, "ID"), d.int64(*j, "TTL")};
  const std::string refused = d.text(*j, "error");
  if (!d.ok()) return d.error();
  if (!refused.empty()) return makeError(Errc::Unavailable, "etcd " + endpoints_[preferred_] + ": " + refused);
  if (g.id == 0 || g.ttlSeconds <= 0)
    return makeError(Errc::Io, "etcd " + endpoints_[preferred_] + ": lease grant answered without an id or TTL");
  return g;
}

Result<std::int64_t> EtcdClient::leaseKeepAliveOnce(std::int64_t id) {
  // A stream on the gateway: one request, one {"result": ...} (or {"error": ...}) back.
  std::string body = "{";
  numberField(body, "ID", id);
  body += '}';
  auto answer = call("/v3/lease/keepalive", body, Kind::Write, options_.maxResponseBytes);
  if (!answer) return answer.error();
  Decoder d(endpoints_[preferred_]);
  // The stream's messages are newline-delimited; one request gives one message.
  std::string first = answer->substr(0, answer->find('\n'));
  auto j = d.parse(first);
  if (!j) return d.error();
  if (const json* e = d.object(*j, "error"); e) {
    const std::string msg = d.text(*e, "message");
    return makeError(errcOfGrpc(d.int64(*e, "code")), "etcd " + endpoints_[preferred_] + ": " + msg);
  }
  const json* result = d.object(*j, "result");
  if (!result) d.fail("keepalive answer without 'result'");
  const std::int64_t ttl = result ? d.int64(*result, "TTL") : 0;
  if (!d.ok()) return d.error();
  if (ttl <= 0)
    return makeError(Errc::NotFound, "etcd " + endpoints_[preferred_] + ": lease " + std::to_string(id) +
                                         " has expired or never existed");
  return ttl;
}

Status EtcdClient::leaseRevoke(std::int64_t id) {
  std::string body = "{";
  numberField(body, "ID", id);
  body += '}';
  auto answer = call("/v3/lease/revoke", body, Kind::Write, options_.maxResponseBytes);
  if (!answer) return answer.error();
  Decoder d(endpoints_[preferred_]);
  if (!d.parse(*answer)) return d.error();
  return okStatus();
}

std::vector<MemberStatus> EtcdClient::status() {
  std::vector<MemberStatus> out;
  for (std::size_t i = 0; i < endpoints_.size(); ++i) {
    MemberStatus s;
    s.endpoint = endpoints_[i];
    const auto deadline = Clock::now() + options_.timeout;
    Exchange ex = exchange(i, "/v3/maintenance/status", "{}", options_.maxResponseBytes, deadline);
    if (ex.outcome == Exchange::Outcome::Stale)
      ex = exchange(i, "/v3/maintenance/status", "{}", options_.maxResponseBytes, deadline);
    if (ex.outcome != Exchange::Outcome::Answered) {
      s.error = ex.error;
    } else if (ex.status != 200) {
      s.error =
          "HTTP " + std::to_string(ex.status) + ": " + ex.body.substr(0, std::min<std::size_t>(200, ex.body.size()));
    } else {
      Decoder d(s.endpoint);
      if (auto j = d.parse(ex.body)) {
        if (const json* h = d.object(*j, "header")) s.memberId = d.uint64(*h, "member_id");
        s.leaderId = d.uint64(*j, "leader");
        s.raftTerm = d.uint64(*j, "raftTerm");
        s.raftIndex = d.uint64(*j, "raftIndex");
        s.dbSize = d.int64(*j, "dbSize");
        s.dbSizeInUse = d.int64(*j, "dbSizeInUse");
        s.version = d.text(*j, "version");
        for (const auto& e : d.texts(*j, "errors")) s.error += (s.error.empty() ? "" : "; ") + e;
      }
      s.reachable = d.ok();
      if (!d.ok()) s.error = d.error().message;
    }
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::vector<Member>> EtcdClient::memberList() {
  auto answer = call("/v3/cluster/member/list", "{}", Kind::Read, options_.maxResponseBytes);
  if (!answer) return answer.error();
  Decoder d(endpoints_[preferred_]);
  auto j = d.parse(*answer);
  if (!j) return d.error();
  std::vector<Member> out;
  if (const json* ms = d.array(*j, "members"))
    for (const auto& m : *ms) {
      if (!m.is_object()) {
        d.fail("a member is not an object");
        break;
      }
      out.push_back({d.uint64(m, "ID"), d.text(m, "name"), d.texts(m, "peerURLs"), d.texts(m, "clientURLs"),
                     d.boolean(m, "isLearner")});
    }
  if (!d.ok()) return d.error();
  return out;
}

Status EtcdClient::watch(const std::string& key, const std::string& rangeEnd, std::int64_t fromRevision,
                         const std::function<void(const WatchBatch&)>& onBatch, const std::atomic<bool>& stop) {
  std::string body = "{\"create_request\":{";
  field(body, "key", key);
  if (!rangeEnd.empty()) field(body += ',', "range_end", rangeEnd);
  if (fromRevision > 0) numberField(body += ',', "start_revision", fromRevision);
  body += "}}";

  // A connection of its own: the stream holds it until the watch ends.
  Connection w;
  const auto deadline = Clock::now() + options_.timeout;
  std::string failures;
  std::optional<http::response_parser<http::buffer_body>> parser;
  std::size_t at = endpoints_.size();
  for (std::size_t k = 0; k < endpoints_.size() && !parser; ++k) {
    const std::size_t i = (preferred_ + k) % endpoints_.size();
    const std::string& ep = endpoints_[i];
    bool timedOut = false;
    if (std::string why = w.connect(ep, i, deadline, timedOut); !why.empty()) {
      failures += (failures.empty() ? "" : "; ") + ep + ": " + why;
      continue;
    }
    http::request<http::string_body> req{http::verb::post, "/v3/watch", 11};
    req.set(http::field::host, ep);
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    bool done = false;
    beast::error_code ec;
    http::async_write(w.socket, req, [&](const beast::error_code& e, std::size_t) {
      ec = e;
      done = true;
    });
    if (!w.runUntil(done, deadline) || ec) {
      failures += (failures.empty() ? "" : "; ") + ep + ": cannot send the watch";
      w.close();
      continue;
    }
    parser.emplace();
    parser->header_limit(kHeaderLimit);
    parser->body_limit(boost::none);  // a stream: each message is bounded below
    done = false;
    http::async_read_header(w.socket, w.buffer, *parser, [&](const beast::error_code& e, std::size_t) {
      ec = e;
      done = true;
    });
    if (!w.runUntil(done, deadline) || ec) {
      failures += (failures.empty() ? "" : "; ") + ep + ": " + (done ? ec.message() : "no answer in time");
      w.close();
      parser.reset();
      continue;
    }
    at = i;
  }
  if (!parser) return makeError(Errc::Unavailable, "etcd: cannot watch '" + key + "' on any member (" + failures + ")");
  const std::string ep = endpoints_[at];
  preferred_ = at;
  const bool httpOk = parser->get().result_int() == 200;

  std::string pending;  // bytes of the stream not yet split into messages
  std::vector<char> chunk(kWatchReadChunk);
  auto handle = [&](std::string_view text) -> std::optional<Error> {
    Decoder d(ep);
    auto j = d.parse(std::string(text));
    if (!j) return d.error();
    if (const json* e = d.object(*j, "error"); e) {
      return makeError(Errc::Unavailable, "etcd " + ep + ": watch: " + d.text(*e, "message"));
    }
    if (!httpOk) {  // an error answer to the request itself: {"error": "...", "code": N}
      const std::string msg = d.text(*j, "message");
      return makeError(errcOfGrpc(d.int64(*j, "code")), "etcd " + ep + ": watch refused: " + msg);
    }
    const json* r = d.object(*j, "result");
    if (!r) {
      d.fail("watch message without 'result'");
      return d.error();
    }
    WatchBatch batch;
    batch.revision = d.headerRevision(*r);
    const bool canceled = d.boolean(*r, "canceled");
    const std::int64_t compacted = d.int64(*r, "compact_revision");
    const std::string reason = d.text(*r, "cancel_reason");
    if (const json* evs = d.array(*r, "events"))
      for (const auto& ev : *evs) {
        if (!ev.is_object()) {
          d.fail("a watch event is not an object");
          break;
        }
        WatchEvent we;
        we.type = d.text(ev, "type") == "DELETE" ? EventType::Delete : EventType::Put;
        if (const json* kv = d.object(ev, "kv")) we.kv = d.keyValue(*kv);
        batch.events.push_back(std::move(we));
      }
    if (!d.ok()) return d.error();
    if (compacted > 0)
      return makeError(Errc::Conflict, "etcd " + ep + ": watch of '" + key + "' from revision " +
                                           std::to_string(fromRevision) + ": history compacted up to revision " +
                                           std::to_string(compacted) + "; range again and watch from there");
    if (canceled)
      return makeError(Errc::Unavailable,
                       "etcd " + ep + ": watch of '" + key + "' cancelled" + (reason.empty() ? "" : ": " + reason));
    if (!batch.events.empty()) onBatch(batch);
    return std::nullopt;
  };

  for (;;) {
    parser->get().body().data = chunk.data();
    parser->get().body().size = chunk.size();
    parser->get().body().more = true;
    bool done = false;
    beast::error_code ec;
    http::async_read_some(w.socket, w.buffer, *parser, [&](const beast::error_code& e, std::size_t) {
      ec = e;
      done = true;
    });
    while (!done) {
      if (stop.load()) {
        w.close();
        return okStatus();
      }
      w.runUntil(done, Clock::now() + kWatchPoll);
    }
    if (ec == http::error::need_buffer) ec = {};
    const std::size_t n = chunk.size() - parser->get().body().size;
    // What was pending holds no newline (it was split up to its last): only the new bytes
    // are searched, so a message of many chunks is scanned once, not once per chunk.
    const std::size_t scanned = pending.size();
    pending.append(chunk.data(), n);
    std::size_t start = 0;
    for (auto nl = pending.find('\n', scanned); nl != std::string::npos; nl = pending.find('\n', start)) {
      std::string_view msg(pending.data() + start, nl - start);
      start = nl + 1;
      if (msg.find_first_not_of(" \r\t") == std::string_view::npos) continue;
      if (auto err = handle(msg)) {
        w.close();
        return *err;
      }
      if (stop.load()) {
        w.close();
        return okStatus();
      }
    }
    pending.erase(0, start);
    if (pending.size() > options_.maxWatchMessageBytes) {
      w.close();
      return makeError(Errc::Io, "etcd " + ep + ": a watch message larger than " +
                                     std::to_string(options_.maxWatchMessageBytes) + " bytes, refused");
    }
    if (ec || parser->is_done()) {
      // A last message without its newline, e.g. an error answer.
      if (!pending.empty() && pending.find_first_not_of(" \r\t\n") != std::string::npos)
        if (auto err = handle(pending)) {
          w.close();
          return *err;
        }
      w.close();
      if (stop.load()) return okStatus();
      return makeError(Errc::Unavailable, "etcd " + ep + ": watch of '" + key + "' ended: " +
                                              (ec ? ec.message() : std::string("the member closed the stream")));
    }
  }
}

}  // namespace loom::controller::etcd
