// The JSON of etcd's v3 gateway (EtcdJson.h): request bodies written as text, answers
// read by the Decoder.
#include "controller/etcd/EtcdJson.h"

#include "controller/etcd/Base64.h"

namespace loom::controller::etcd {

using nlohmann::json;

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

// ---- request bodies

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

namespace {

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

}  // namespace

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

// ---- answers

// The member's answer as JSON, or an error.
std::optional<json> Decoder::parse(const std::string& body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    fail("not a JSON object");
    return std::nullopt;
  }
  return j;
}

const json* Decoder::object(const json& o, const char* name) {
  auto it = o.find(name);
  if (it == o.end()) return nullptr;
  if (!it->is_object()) {
    fail(std::string("'") + name + "' is not an object");
    return nullptr;
  }
  return &*it;
}
const json* Decoder::array(const json& o, const char* name) {
  auto it = o.find(name);
  if (it == o.end()) return nullptr;
  if (!it->is_array()) {
    fail(std::string("'") + name + "' is not a list");
    return nullptr;
  }
  return &*it;
}
std::int64_t Decoder::int64(const json& o, const char* name) {
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
std::uint64_t Decoder::uint64(const json& o, const char* name) {
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
bool Decoder::boolean(const json& o, const char* name) {
  auto it = o.find(name);
  if (it == o.end()) return false;
  if (!it->is_boolean()) {
    fail(std::string("'") + name + "' is not a boolean");
    return false;
  }
  return it->get<bool>();
}
std::string Decoder::text(const json& o, const char* name) {
  auto it = o.find(name);
  if (it == o.end()) return {};
  if (!it->is_string()) {
    fail(std::string("'") + name + "' is not a string");
    return {};
  }
  return it->get<std::string>();
}
std::string Decoder::bytes(const json& o, const char* name) {
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
std::vector<std::string> Decoder::texts(const json& o, const char* name) {
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

std::int64_t Decoder::headerRevision(const json& o) {
  const json* h = object(o, "header");
  return h ? int64(*h, "revision") : 0;
}

KeyValue Decoder::keyValue(const json& o) {
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

RangeResult Decoder::range(const json& o) {
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

TxnResult Decoder::txn(const json& o) {
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

}  // namespace loom::controller::etcd
