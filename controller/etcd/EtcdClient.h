// A small synchronous client for etcd 3.4's v3 API through its JSON gateway (the
// grpc-gateway every etcd 3.4 server serves on its client URLs: POST /v3/kv/range ...).
// HTTP/1.1 over Boost.Beast, JSON with nlohmann; keys and values are base64 on the wire
// (controller/etcd/Base64.h). Why the gateway and not gRPC: controller/README.md, "etcd".
//
// Endpoints. The client takes every member's `host:port`. A call goes to the member that
// last answered, and on to the others when that one cannot be reached; one HTTP
// connection is kept alive to the member in use. Which failures move a call on:
//   - the member could not be connected to, or the request could not be written: always
//     (etcd did not see it);
//   - the member answered "etcdserver: no leader" / "not capable": always (not proposed);
//   - any other transport error or an "unavailable" answer: only for reads (range,
//     status, member list, watch). A write that was sent and then timed out may have
//     been committed; it fails with Errc::Timeout ("outcome unknown") and the next call
//     starts with another member. A caller whose write is idempotent (the state store's
//     commits are) may simply try again.
//   One exception: a kept-alive connection that breaks before any byte of the answer is
//   taken for one the member closed while idle, and the request is sent once more on a
//   new connection (as browsers do). Should the member have died right after applying
//   a write, that write is applied twice: a campaign txn (create_revision == 0) then
//   answers "not succeeded" with the caller's own value in the key.
//
// Time. Every call but watch() is bounded by Options::timeout in total (default 1 s),
// connecting and every member tried included. watch() is bounded by its stop flag,
// checked at least every 100 ms.
//
// Bounds (DESIGN invariant 8: no unbounded allocation on network input). A response
// whose body is larger than its limit is refused before it is buffered (the declared
// Content-Length is checked first; a chunked body is counted as it arrives): range
// answers (and txns that contain a range) up to Options::maxRangeBytes, other answers up
// to Options::maxResponseBytes, one watch message up to Options::maxWatchMessageBytes;
// headers up to 16 KiB. Malformed JSON, bad base64 and fields of the wrong type are
// errors that name the member, never exceptions.
//
// Errors are loom::Result values whose message names the member ("etcd 127.0.0.1:2379:
// etcdserver: too many operations in txn request"). Codes: Unavailable (no member
// reachable, no leader, quorum lost), Timeout (no answer in time; for a write, outcome
// unknown), Invalid (etcd refused the request: too many ops, too large, bad argument),
// NotFound (a lease that expired or never was), Conflict (a revision that was compacted),
// Io (a malformed or oversized answer; anything else).
//
// Threading: not thread-safe. One instance per thread: it owns one io_context and one
// kept-alive connection, and watch() blocks its caller until stopped, so a thread that
// watches (the leader election's) uses an instance of its own.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "loom/Result.h"

namespace loom::controller::etcd {

// One key as etcd keeps it. Revisions are cluster-wide (a txn is one revision).
struct KeyValue {
  std::string key;
  std::string value;
  std::int64_t createRevision = 0;  // 0: the key does not exist (never returned by range)
  std::int64_t modRevision = 0;
  std::int64_t version = 0;  // writes since the key was created
  std::int64_t lease = 0;    // 0: no lease
};

struct RangeResult {
  std::vector<KeyValue> kvs;
  std::int64_t revision = 0;  // the store's revision the answer was read at
  std::int64_t count = 0;     // keys in the range (may exceed kvs.size() with a limit)
  bool more = false;          // a limit cut the answer short
};

// A txn's condition on one key: `target(key) result operand`.
struct Compare {
  enum class Target { Value, Version, CreateRevision, ModRevision };
  enum class Result { Equal, NotEqual, Less, Greater };
  std::string key;
  Target target = Target::Value;
  Result result = Result::Equal;
  std::string operand;      // Target::Value (compared as bytes)
  std::int64_t number = 0;  // the other targets

  static Compare value(std::string key, Result r, std::string value);
  static Compare version(std::string key, Result r, std::int64_t v);
  static Compare createRevision(std::string key, Result r, std::int64_t rev);  // == 0: the key is absent
  static Compare modRevision(std::string key, Result r, std::int64_t rev);
};

struct Op;
// A txn: when every compare holds, `success` runs, else `failure`; all in one revision.
// etcd refuses a txn with more than --max-txn-ops operations in a branch, a request larger
// than --max-request-bytes, and two writes of the same key in one branch.
struct TxnRequest {
  std::vector<Compare> compare;
  std::vector<Op> success;
  std::vector<Op> failure;
};

struct Op {
  enum class Type { Put, Delete, Range, Txn };
  Type type = Type::Put;
  std::string key;
  std::string value;                      // Put
  std::string rangeEnd;                   // Delete, Range: "" = the key alone
  std::int64_t lease = 0;                 // Put
  std::int64_t limit = 0;                 // Range: 0 = no limit
  std::shared_ptr<const TxnRequest> txn;  // Txn (nested, etcd >= 3.3)

  static Op put(std::string key, std::string value, std::int64_t lease = 0);
  static Op del(std::string key, std::string rangeEnd = {});
  static Op range(std::string key, std::string rangeEnd = {}, std::int64_t limit = 0);
  static Op nested(TxnRequest txn);
};

struct TxnResult;
struct OpResponse {
  Op::Type type = Op::Type::Put;
  RangeResult range;                     // Range
  std::int64_t deleted = 0;              // Delete
  std::shared_ptr<const TxnResult> txn;  // Txn
};

struct TxnResult {
  bool succeeded = false;  // the compares held (the success branch ran)
  std::vector<OpResponse> responses;
  std::int64_t revision = 0;  // the store's revision after the txn
};

struct DeleteResult {
  std::int64_t deleted = 0;
  std::int64_t revision = 0;
};

struct LeaseGrant {
  std::int64_t id = 0;
  std::int64_t ttlSeconds = 0;  // what etcd granted: it raises a TTL below its minimum
};

// One member's own view (POST /v3/maintenance/status to that member).
struct MemberStatus {
  std::string endpoint;
  bool reachable = false;
  std::string error;  // why not, when !reachable
  std::uint64_t memberId = 0;
  std::uint64_t leaderId = 0;  // 0: this member knows no leader
  std::uint64_t raftTerm = 0;
  std::uint64_t raftIndex = 0;
  std::int64_t dbSize = 0;       // bytes
  std::int64_t dbSizeInUse = 0;  // bytes
  std::string version;           // etcd's, e.g. "3.4.23"
  bool isLeader() const { return reachable && memberId != 0 && memberId == leaderId; }
};

struct Member {
  std::uint64_t id = 0;
  std::string name;  // empty until a new member has started
  std::vector<std::string> peerUrls;
  std::vector<std::string> clientUrls;
  bool isLearner = false;
};

enum class EventType { Put, Delete };
struct WatchEvent {
  EventType type = EventType::Put;
  KeyValue kv;  // a Delete carries the key and its modRevision only
};
// The events of one watch answer: all of one revision or of several consecutive ones.
struct WatchBatch {
  std::int64_t revision = 0;  // the store's revision when etcd sent it
  std::vector<WatchEvent> events;
};

class EtcdClient {
 public:
  struct Options {
    std::chrono::milliseconds timeout{1000};                    // per call, every member included
    std::size_t maxRangeBytes = std::size_t{256} << 20;         // a range answer
    std::size_t maxResponseBytes = std::size_t{4} << 20;        // any other answer
    std::size_t maxWatchMessageBytes = std::size_t{256} << 20;  // one watch message (a big txn's events)
  };

  // `endpoints`: "host:port" of each member (at least one). Connects lazily.
  explicit EtcdClient(std::vector<std::string> endpoints, Options options);
  explicit EtcdClient(std::vector<std::string> endpoints) : EtcdClient(std::move(endpoints), Options{}) {}
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  // "h1:p1,h2:p2" -> {"h1:p1", "h2:p2"}; Errc::Invalid naming the bad entry.
  static Result<std::vector<std::string>> parseEndpoints(const std::string& list);
  // The range end that selects every key starting with `prefix` (etcd's "prefix end").
  static std::string prefixEnd(const std::string& prefix);

  const std::vector<std::string>& endpoints() const { return endpoints_; }
  void setTimeout(std::chrono::milliseconds timeout) { options_.timeout = timeout; }
  std::chrono::milliseconds timeout() const { return options_.timeout; }

  // Keys in [key, rangeEnd) ("" = key alone), at most `limit` (0 = all), read at
  // `revision` (0 = latest; an older one must not be compacted: Errc::Conflict).
  // Linearizable: a member without quorum does not answer.
  Result<RangeResult> range(const std::string& key, const std::string& rangeEnd = {}, std::int64_t limit = 0,
                            std::int64_t revision = 0);
  Result<RangeResult> rangePrefix(const std::string& prefix, std::int64_t limit = 0, std::int64_t revision = 0) {
    return range(prefix, prefixEnd(prefix), limit, revision);
  }
  // Returns the store's revision after the put.
  Result<std::int64_t> put(const std::string& key, const std::string& value, std::int64_t lease = 0);
  Result<DeleteResult> deleteRange(const std::string& key, const std::string& rangeEnd = {});
  Result<TxnResult> txn(const TxnRequest& request);
  Result<TxnResult> txn(std::vector<Compare> compare, std::vector<Op> success, std::vector<Op> failure = {});

  Result<LeaseGrant> leaseGrant(std::int64_t ttlSeconds);
  // Renews once; returns the TTL left (seconds). A lease that expired or never existed
  // is Errc::NotFound (etcd answers TTL 0), distinct from not reaching etcd.
  Result<std::int64_t> leaseKeepAliveOnce(std::int64_t id);
  // Revokes (its keys are deleted). An unknown lease is Errc::NotFound.
  Status leaseRevoke(std::int64_t id);

  // Streams the changes of [key, rangeEnd) from `fromRevision` (0: from now) to
  // `onBatch`, one call per etcd answer with events, in revision order, until `stop` is
  // set (then Ok, within ~100 ms). Errors: the start revision was compacted
  // (Errc::Conflict: range again, then watch from the range's revision + 1); etcd
  // cancelled the watch or the stream broke (Errc::Unavailable: watch again from the last
  // batch's revision + 1). Only connecting and the first answer are bounded by the
  // timeout: a member that stops sending leaves the watch waiting (the caller's lease
  // renewals notice such a member).
  Status watch(const std::string& key, const std::string& rangeEnd, std::int64_t fromRevision,
               const std::function<void(const WatchBatch&)>& onBatch, const std::atomic<bool>& stop);

  // Every member's own status, in endpoint order; an unreachable one says why.
  std::vector<MemberStatus> status();
  Result<std::vector<Member>> memberList();

 private:
  enum class Kind { Read, Write };
  struct Connection;
  struct Exchange;

  // POSTs `body` to `path`, trying members as described above; returns the 200 body.
  Result<std::string> call(const std::string& path, const std::string& body, Kind kind, std::size_t maxBytes);
  // One request to member `index` before `deadline`.
  Exchange exchange(std::size_t index, const std::string& path, const std::string& body, std::size_t maxBytes,
                    std::chrono::steady_clock::time_point deadline);
  Status connect(std::size_t index, std::chrono::steady_clock::time_point deadline);
  void disconnect();
  // Runs the io_context until `done` or `deadline`; false on the deadline.
  bool runUntil(const bool& done, std::chrono::steady_clock::time_point deadline);

  std::vector<std::string> endpoints_;
  Options options_;
  std::size_t preferred_ = 0;  // the member that last answered
  std::unique_ptr<Connection> conn_;
};

}  // namespace loom::controller::etcd
