// EtcdClient: the v3 calls (kv, txn, lease, status, member list), each a request body
// (EtcdJson.h) sent through call(), which tries the members (EtcdTransport.cpp), and its
// answer decoded. The watch stream is EtcdWatch.cpp.
#include "controller/etcd/EtcdClient.h"

#include <algorithm>
#include <cassert>
#include <nlohmann/json.hpp>

#include "controller/etcd/EtcdJson.h"
#include "controller/etcd/EtcdTransport.h"

namespace loom::controller::etcd {

using nlohmann::json;

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

}  // namespace loom::controller::etcd
