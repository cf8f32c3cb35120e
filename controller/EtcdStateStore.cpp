// StateStore on etcd: one key per record under a prefix, one txn per commit() (all of a
// change or none of it), an optional leadership guard compared in every txn. Key layout
// and the transaction limits: controller/README.md, "etcd". Only this file, its decoder
// (EtcdStateImage) and the move from the older layout (EtcdLayoutUpgrade) know it.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>

#include "controller/AccessRecords.h"
#include "controller/EtcdKeys.h"
#include "controller/EtcdLayoutUpgrade.h"
#include "controller/EtcdStateImage.h"
#include "controller/StateStore.h"
#include "controller/etcd/EtcdClient.h"

namespace loom::controller {
namespace {

using etcd::Compare;
using etcd::EtcdClient;
using etcd::KeyValue;
using etcd::Op;
using etcd::TxnRequest;

using namespace etcdkeys;

// What load() reads besides meta/: everything but the history (events, finished
// operations), the big families first (they are spread over loaders).
constexpr const char* kLoaded[] = {kDecl,     kServer,   kPlacement, kBlade,  kBladeSeen,
                                   kBorrowed, kReleased, kOpPending, kQuorum, kToken};

constexpr std::int64_t kPageKeys = 5000;

// A change's edits of one server's record (server/NAME): each part untouched, set or
// cleared, the last write winning in the order SqliteStateStore applies them.
template <class T>
struct PartEdit {
  bool touched = false;
  std::optional<T> value;
  void set(T v) {
    touched = true;
    value = std::move(v);
  }
  void clear() {
    touched = true;
    value.reset();
  }
  void applyTo(std::optional<T>& part) const {
    if (touched) part = value;
  }
};
struct ServerEdit {
  PartEdit<pool::IdentityRecord> identity;
  PartEdit<std::string> binding, home;
};

std::map<std::string, ServerEdit> serverEdits(const Change& c) {
  std::map<std::string, ServerEdit> out;
  for (const auto& s : c.deleteBindings) out[s].binding.clear();
  for (const auto& [s, b] : c.putBindings) out[s].binding.set(b);
  for (const auto& [m, k] : c.deletePlacement)
    if (m == kHome) out[k].home.clear();
  for (const auto& [mk, v] : c.putPlacement)
    if (mk.first == kHome) out[mk.second].home.set(v);
  for (const auto& r : c.putIdentities) {
    // A released identity no longer belongs to its name (invariant 2): it moves to a
    // family keyed by UUID, so a new server of that name gets new values.
    if (!r.released)
      out[r.server].identity.set(r);
    else if (!r.server.empty())
      out[r.server].identity.clear();
  }
  return out;
}

// Accumulates a change's writes by key in the order SqliteStateStore applies them, so a
// key written twice in one change is written once (etcd refuses a txn that writes a key
// twice) with the value the later write gives it.
class WriteSet {
 public:
  explicit WriteSet(std::string base) : base_(std::move(base)) {}
  void put(const std::string& key, std::string value) { writes_[base_ + key] = std::move(value); }
  void del(const std::string& key) { writes_[base_ + key] = std::nullopt; }
  // Every key in [from, to): it must not overlap another write of the change.
  void delRange(const std::string& from, const std::string& to) { ranges_.emplace_back(base_ + from, base_ + to); }
  // Written only if the key does not exist yet (a blade's first-seen time).
  void putIfAbsent(const std::string& key, const std::string& value) { ifAbsent_.try_emplace(base_ + key, value); }
  // A counter that only goes up: written only if `v` is above what is stored.
  void raise(const std::string& key, std::uint64_t v) {
    auto [it, fresh] = raises_.try_emplace(base_ + key, v);
    if (!fresh) it->second = std::max(it->second, v);
  }

  // The txn's ops; the set is spent.
  std::vector<Op> takeOps() {
    std::vector<Op> out;
    out.reserve(writes_.size() + ifAbsent_.size() + raises_.size() + ranges_.size());
    std::size_t bytes = 0;
    for (auto& [from, to] : ranges_) {
      bytes += from.size() + to.size();
      out.push_back(Op::del(std::move(from), std::move(to)));
    }
    for (auto& [k, v] : writes_) {
      bytes += k.size() + (v ? v->size() : 0);
      out.push_back(v ? Op::put(k, std::move(*v)) : Op::del(k));
    }
    for (auto& [k, v] : ifAbsent_) {
      TxnRequest t;
      t.compare.push_back(Compare::createRevision(k, Compare::Result::Equal, 0));
      t.success.push_back(Op::put(k, std::move(v)));
      bytes += k.size() + t.success.back().value.size();
      out.push_back(Op::nested(std::move(t)));
    }
    for (auto& [k, v] : raises_) {
      // VALUE compares fail on a missing key, hence two levels: absent -> put; else
      // stored < v (20 digits: byte order is numeric order) -> put.
      TxnRequest higher;
      higher.compare.push_back(Compare::value(k, Compare::Result::Less, pad(v)));
      higher.success.push_back(Op::put(k, pad(v)));
      TxnRequest t;
      t.compare.push_back(Compare::createRevision(k, Compare::Result::Equal, 0));
      t.success.push_back(Op::put(k, pad(v)));
      t.failure.push_back(Op::nested(std::move(higher)));
      bytes += 3 * (k.size() + 20);
      out.push_back(Op::nested(std::move(t)));
    }
    bytes_ = bytes;
    return out;
  }
  std::size_t bytes() const { return bytes_; }

 private:
  std::string base_;
  std::map<std::string, std::optional<std::string>> writes_;
  std::map<std::string, std::string> ifAbsent_;
  std::map<std::string, std::uint64_t> raises_;
  std::vector<std::pair<std::string, std::string>> ranges_;
  std::size_t bytes_ = 0;
};

class EtcdStateStoreImpl final : public EtcdStateStore {
 public:
  explicit EtcdStateStoreImpl(const EtcdStoreOptions& o)
      : options_(o), base_(o.prefix + "/"), client_(o.endpoints, clientOptions(o)) {}

  Status open() {
    if (auto s = checkTxnOps(); !s) return s;
    return options_.upgradeLayout ? moveToServerKeys(client_, base_, options_) : okStatus();
  }

  Status checkTxnOps() {
    if (options_.requiredTxnOps == 0) return okStatus();
    // A read-only txn whose failure branch (never run) holds the ops: etcd checks every
    // branch's length against --max-txn-ops before anything, and a txn of reads needs no
    // raft entry. It also proves a quorum answers (a linearizable read).
    TxnRequest probe;
    probe.failure.assign(options_.requiredTxnOps, Op::range(base_ + "meta/probe"));
    auto r = client_.txn(probe);
    if (r) return okStatus();
    if (r.error().message.find("too many operations in txn request") != std::string::npos)
      return makeError(Errc::Unavailable,
                       "etcd refuses a transaction of " + std::to_string(options_.requiredTxnOps) + " operations (" +
                           r.error().message +
                           "): loomd commits each change in one transaction; start every etcd member with "
                           "--max-txn-ops " +
                           std::to_string(options_.requiredTxnOps) +
                           " or more and --max-request-bytes 134217728 (controller/README.md, \"etcd\")");
    return makeError(r.error().code, "etcd store: " + r.error().message);
  }

  void setGuard(const std::string& key, std::int64_t createRevision) override {
    std::lock_guard<std::mutex> lock(guardMutex_);
    guard_ = std::make_pair(key, createRevision);
  }
  void clearGuard() override {
    std::lock_guard<std::mutex> lock(guardMutex_);
    guard_.reset();
  }

  Result<StoredState> load() override {
    auto snapshot = loadSnapshot();
    if (!snapshot) return snapshot.error();
    // What this store writes from (commit): every server key as loaded, at its revision.
    known_ = snapshot->image.serverCopy();
    return snapshot->image.take();
  }

  Result<EtcdSnapshot> loadSnapshot() override {
    // Every family is read at the revision of the first page: one consistent snapshot.
    // A compaction of that revision meanwhile (etcd's auto-compaction) starts it over.
    // A leader being elected meanwhile (Timeout, Unavailable): once more.
    for (int attempt = 0;; ++attempt) {
      auto st = loadAt();
      if (st || attempt == 2) return st;
      const Errc code = st.error().code;
      if (code != Errc::Conflict && code != Errc::Timeout && code != Errc::Unavailable) return st;
    }
  }

  Status commit(const Change& c) override {
    if (c.empty()) return okStatus();
    const std::map<std::string, ServerEdit> edits = serverEdits(c);
    // A server's parts share one key, rewritten whole from the copy of it this store
    // keeps, on the condition that etcd still has the revision the copy was taken at. A
    // copy that is stale (another writer since, a term that began from a warm copy, a
    // commit whose outcome was unknown) fails the txn; the keys it named are read back
    // (one read-only txn) and it is built again, at most twice more. No part is ever
    // written from a stale copy.
    for (int attempt = 0;; ++attempt) {
      auto done = commitOnce(c, edits, attempt == 2);
      if (!done || *done) return done ? okStatus() : done.error();
    }
  }

  Result<std::vector<AuditRecord>> audit(std::uint64_t sinceId, std::size_t limit) override {
    std::vector<AuditRecord> out;
    if (limit == 0) return out;
    const std::string family = base_ + kAudit;
    auto r = client_.range(family + pad(sinceId + 1), EtcdClient::prefixEnd(family),
                           static_cast<std::int64_t>(std::min<std::size_t>(limit, INT64_MAX)));
    if (!r) return makeError(r.error().code, "etcd store: audit: " + r.error().message);
    for (const auto& kv : r->kvs) {
      auto id = unpad(std::string_view(kv.key).substr(family.size()));
      auto a = id ? auditFromJson(*id, kv.value) : std::nullopt;
      if (!a) return makeError(Errc::Internal, "etcd store: record '" + kv.key + "' does not parse");
      out.push_back(std::move(*a));
    }
    return out;
  }

  Result<std::vector<EventRecord>> events(std::uint64_t sinceId, std::size_t limit) override {
    std::vector<EventRecord> out;
    if (limit == 0) return out;
    const std::string family = base_ + kEvent;
    auto r = client_.range(family + pad(sinceId + 1), EtcdClient::prefixEnd(family),
                           static_cast<std::int64_t>(std::min<std::size_t>(limit, INT64_MAX)));
    if (!r) return makeError(r.error().code, "etcd store: events: " + r.error().message);
    for (const auto& kv : r->kvs) {
      auto id = unpad(std::string_view(kv.key).substr(family.size()));
      if (!id) return makeError(Errc::Internal, "etcd store: record '" + kv.key + "' does not parse");
      auto e = decodeEtcdEvent(*id, kv.key, kv.value);
      if (!e) return e.error();
      out.push_back(std::move(*e));
    }
    return out;
  }

 private:
  static EtcdClient::Options clientOptions(const EtcdStoreOptions& o) {
    EtcdClient::Options c;
    c.timeout = o.timeout;
    c.maxRangeBytes = o.maxRangeBytes;
    c.maxWatchMessageBytes = o.maxRangeBytes;
    return c;
  }
  // One try of commit(): true when committed, false when the copy of a server key was
  // stale (re-read: try again), an error otherwise.
  Result<bool> commitOnce(const Change& c, const std::map<std::string, ServerEdit>& edits, bool lastTry) {
    WriteSet w(base_);
    for (const auto& d : c.putDeclarations) w.put(declKey(d.kind, d.name), d.body);
    for (const auto& [k, n] : c.deleteDeclarations) w.del(declKey(k, n));
    for (const auto& b : c.deleteBorrowed) w.del(kBorrowed + esc(b));
    for (const auto& [b, p] : c.putBorrowed) w.put(kBorrowed + esc(b), p);
    for (const auto& [m, k] : c.deletePlacement)
      if (m != kHome) w.del(placementKey(m, k));
    for (const auto& [mk, v] : c.putPlacement)
      if (mk.first != kHome) w.put(placementKey(mk.first, mk.second), v);
    for (const auto& r : c.putIdentities)
      if (r.released) w.put(kReleased + esc(r.identity.uuid), identityJson(r));
    // Each server touched: its record as the copy has it with the change's edits (empty:
    // no key), and the condition that the copy is current (absent from the copy: absent
    // from etcd).
    std::vector<std::pair<const std::string*, EtcdServerRecord>> written;
    std::vector<Compare> current;
    written.reserve(edits.size());
    current.reserve(edits.size());
    for (const auto& [name, e] : edits) {
      auto known = known_.find(name);
      const bool isKnown = known != known_.end();
      EtcdServerRecord r = isKnown ? known->second.record : EtcdServerRecord{};
      e.identity.applyTo(r.identity);
      e.binding.applyTo(r.binding);
      e.home.applyTo(r.home);
      const std::string key = kServer + esc(name);
      // Compared even when nothing of it changes here: that holds only if the copy is current.
      current.push_back(isKnown ? Compare::modRevision(base_ + key, Compare::Result::Equal, known->second.modRevision)
                                : Compare::createRevision(base_ + key, Compare::Result::Equal, 0));
      if (isKnown && r == known->second.record) {
        written.emplace_back(&name, std::move(r));
        continue;  // compared, not written
      }
      if (!r.empty())
        w.put(key, encodeEtcdServer(r));
      else if (isKnown)
        w.del(key);  // (absent and staying absent: compared only)
      written.emplace_back(&name, std::move(r));
    }
    for (const auto& b : c.putBlades) {
      w.put(kBlade + esc(b.name), bladeJson(b));
      w.putIfAbsent(kBladeSeen + esc(b.name), std::to_string(b.firstSeenMs));  // the first one stays
    }
    std::uint64_t maxOp = 0;
    for (const auto& o : c.putOperations) {
      // Pending operations are what a restart loads; a finished one is deleted (etcd's
      // cost is per key and nothing reads that history: the events say what happened).
      if (o.state == "pending")
        w.put(kOpPending + pad(o.id), operationJson(o));
      else
        w.del(kOpPending + pad(o.id));
      maxOp = std::max(maxOp, o.id);
    }
    if (maxOp) w.raise(kLastOperationId, maxOp);
    std::uint64_t maxEvent = 0;
    for (const auto& e : c.appendEvents) {
      w.put(kEvent + pad(e.id), eventJson(e));
      maxEvent = std::max(maxEvent, e.id);
    }
    if (maxEvent) w.raise(kLastEventId, maxEvent);
    // The retention: one range delete. The events appended are newer (EventLog), so no
    // key is both written and deleted (etcd refuses that txn).
    if (c.dropEventsThrough) w.delRange(kEvent + pad(0), kEvent + pad(c.dropEventsThrough + 1));
    for (auto v : c.deleteQuorumVersions) w.del(kQuorum + pad(v));
    for (const auto& [v, body] : c.putQuorumVersions) w.put(kQuorum + pad(v), body);
    for (const auto& tok : c.putTokens) w.put(kToken + esc(tok.id), tokenJson(tok));
    std::uint64_t maxAudit = 0;
    for (const auto& a : c.appendAudit) {
      w.put(kAudit + pad(a.id), auditJson(a));
      maxAudit = std::max(maxAudit, a.id);
    }
    if (maxAudit) w.raise(kLastAuditId, maxAudit);
    // Retention: the ids below every appended one (an audit record is never deleted in the
    // commit that writes it), so the range overlaps no put.
    if (c.deleteAuditThrough) {
      std::uint64_t through = c.deleteAuditThrough;
      for (const auto& a : c.appendAudit) through = std::min(through, a.id - 1);
      if (through) w.delRange(kAudit, kAudit + pad(through + 1));
    }

    TxnRequest t;
    std::optional<std::pair<std::string, std::int64_t>> guard;
    {
      std::lock_guard<std::mutex> lock(guardMutex_);
      guard = guard_;
    }
    if (guard) t.compare.push_back(Compare::createRevision(guard->first, Compare::Result::Equal, guard->second));
    // (On failure the keys compared are read back by another request, not by the txn's
    // failure branch: that would make every commit's request larger for a rare case.)
    std::vector<std::string> compared;
    compared.reserve(current.size());
    for (auto& cmp : current) {
      compared.push_back(cmp.key);
      t.compare.push_back(std::move(cmp));
    }
    t.success = w.takeOps();
    if (t.success.empty() && compared.empty()) return true;
    // etcd bounds each of the compares and the branches by --max-txn-ops.
    const std::size_t ops = std::max({t.success.size(), t.compare.size(), t.failure.size()});
    const std::size_t bytes = w.bytes();
    // A big commit takes etcd longer (one raft entry of every op, fsynced on a quorum):
    // 0.25 ms more per write and 1 ms per 8 KiB (measured here: 20,000 writes, 2 MiB, take
    // ~1.5 s on an idle machine, over 3 s at a load average of 24). A small commit that
    // timed out (a member lost, a leader being elected: ~0.5-1 s with the test timings)
    // is sent again within its budget, the first try getting half: the txn is idempotent
    // (the same puts, counters that only rise, the same guard; if the first try was
    // applied, the server keys' compares fail the second and the read-back finds them
    // written). A big one is not: etcd may still be working on it, and a second copy
    // would only double that work.
    using std::chrono::milliseconds;
    const milliseconds allowance(static_cast<std::int64_t>(ops / 4 + (bytes >> 13)));
    const bool retry = ops <= 1000;
    const auto started = std::chrono::steady_clock::now();
    const auto deadline = started + options_.timeout + allowance;
    Result<etcd::TxnResult> r = makeError(Errc::Timeout, "not tried");
    int tries = 0;
    for (;;) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      client_.setTimeout(retry && tries == 0 ? options_.timeout / 2 + allowance : left);
      r = client_.txn(t);
      ++tries;
      if (r || !retry || (r.error().code != Errc::Timeout && r.error().code != Errc::Unavailable)) break;
      if (deadline - std::chrono::steady_clock::now() < milliseconds(100)) break;
    }
    client_.setTimeout(options_.timeout);
    if (!r && r.error().code == Errc::Timeout)
      for (const auto& [name, _] : written) known_.erase(*name);  // perhaps applied: the copy may be stale
    if (!r) {
      const std::string& m = r.error().message;
      const auto took = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - started).count();
      const std::string size = std::to_string(ops) + " writes, about " + std::to_string((bytes >> 20) + 1) + " MiB; " +
                               std::to_string(tries) + (tries == 1 ? " try" : " tries") + " in " +
                               std::to_string(took) + " ms";
      if (m.find("too many operations in txn request") != std::string::npos)
        return makeError(Errc::Unavailable, "etcd store: this change (" + size +
                                                ") is one transaction and etcd refuses it (" + m +
                                                "): start every etcd member with --max-txn-ops " + std::to_string(ops) +
                                                " or more; nothing was written");
      if (m.find("request is too large") != std::string::npos)
        return makeError(Errc::Unavailable,
                         "etcd store: this change (" + size + ") is one transaction and etcd refuses it (" + m +
                             "): start every etcd member with --max-request-bytes " +
                             std::to_string(((bytes >> 20) + 2) << 20) + " or more; nothing was written");
      if (r.error().code == Errc::Timeout)
        return makeError(Errc::Timeout, "etcd store: commit (" + size + "): " + m +
                                            " (a commit is one transaction: it is there whole or not at all)");
      return makeError(r.error().code, "etcd store: commit (" + size + "): " + m + "; nothing was written");
    }
    if (!r->succeeded) {
      // What failed: the guard's key and each server key compared, read in one read-only
      // txn (no raft entry).
      TxnRequest back;
      if (guard) back.success.push_back(Op::range(guard->first));
      for (auto& key : compared) back.success.push_back(Op::range(std::move(key)));
      client_.setTimeout(options_.timeout + allowance);
      auto readBack = client_.txn(back);
      client_.setTimeout(options_.timeout);
      if (!readBack)
        return makeError(readBack.error().code,
                         "etcd store: commit: nothing was written (the server records it "
                         "rewrites changed since this loomd read them), and reading them "
                         "again failed: " +
                             readBack.error().message);
      const auto& read = readBack->responses;
      std::size_t i = 0;
      if (guard) {
        const auto& kvs = read.empty() ? std::vector<KeyValue>{} : read[0].range.kvs;
        if (kvs.empty() || kvs.front().createRevision != guard->second)
          return makeError(Errc::Conflict, "etcd store: this loomd is no longer the leader: its leader key '" +
                                               guard->first + "' (created at revision " +
                                               std::to_string(guard->second) +
                                               ") is gone or another's; nothing was written");
        ++i;
      }
      // The copy was stale: take what etcd has now, and build the txn again.
      std::size_t stale = 0;
      for (const auto& [name, _] : written) {
        if (i >= read.size()) break;
        const auto& kvs = read[i++].range.kvs;
        auto known = known_.find(*name);
        if (kvs.empty()) {
          if (known != known_.end()) {
            ++stale;
            known_.erase(known);
          }
          continue;
        }
        auto rec = decodeEtcdServer(kvs.front().value);
        if (!rec) return makeError(Errc::Internal, "etcd store: record '" + kvs.front().key + "' does not parse");
        stale += known == known_.end() || known->second.modRevision != kvs.front().modRevision;
        known_.insert_or_assign(*name, EtcdServerCopyEntry{std::move(*rec), kvs.front().modRevision});
      }
      if (lastTry)
        return makeError(Errc::Conflict, "etcd store: " + std::to_string(stale) +
                                             " servers' records changed under this commit three times running "
                                             "(another writer on prefix '" +
                                             options_.prefix + "'?); nothing was written");
      spdlog::info(
          "etcd store: {} servers' records were newer in etcd than this loomd's copy; read them back, "
          "committing again",
          stale);
      return false;
    }
    for (auto& [name, rec] : written) {
      auto known = known_.find(*name);
      if (known != known_.end() && rec == known->second.record) continue;  // not written: its revision stays
      if (rec.empty())
        known_.erase(*name);
      else
        known_.insert_or_assign(*name, EtcdServerCopyEntry{std::move(rec), r->revision});
    }
    return true;
  }

  // Every key of `family` at `revision` (0: the latest; set to the one read at).
  static std::string declKey(const std::string& kind, const std::string& name) {
    return kDecl + esc(kind) + "/" + esc(name);
  }
  static std::string placementKey(const std::string& map, const std::string& key) {
    return kPlacement + esc(map) + "/" + esc(key);
  }
  // Reads every key of `family` at `revision` (0: the latest; set to the one read at)
  // into `out`, through the one decoder of the key layout (EtcdStateImage).
  Status loadFamily(EtcdClient& client, const char* family, std::int64_t& revision, EtcdStateImage& out) {
    const std::string from = base_ + family;
    const std::string end = EtcdClient::prefixEnd(from);
    std::string key = from;
    std::int64_t pageKeys = kPageKeys;
    for (;;) {
      auto page = client.range(key, end, pageKeys, revision);
      // A page past the client's bound (EtcdClient::Options::maxRangeBytes: big values):
      // smaller pages, down to one key (etcd's --max-request-bytes bounds one value).
      if (!page && page.error().code == Errc::Io && pageKeys > 1 &&
          page.error().message.find("larger than") != std::string::npos) {
        pageKeys /= 8;
        if (pageKeys < 1) pageKeys = 1;
        continue;
      }
      if (!page) return makeError(page.error().code, "etcd store: load: " + page.error().message);
      if (revision == 0) revision = page->revision;
      for (auto& kv : page->kvs)
        if (auto put = out.put(std::string_view(kv.key).substr(base_.size()), std::move(kv.value), kv.createRevision,
                               kv.modRevision);
            !put)
          return put.error();
      if (!page->more || page->kvs.empty()) return okStatus();
      key = page->kvs.back().key + '\0';
    }
  }

  Result<EtcdSnapshot> loadAt() {
    // The small meta family first, alone: it fixes the revision every other read uses,
    // so the whole load is one consistent snapshot.
    EtcdSnapshot snapshot;
    if (auto s = loadFamily(client_, kMeta, snapshot.revision, snapshot.image); !s) return s.error();
    // The rest in parallel, one loader per member (at most 3): the gateway's JSON encoding
    // is most of a load's cost and each member does its own (README.md, "etcd"). Loader 0
    // is this thread with the store's client; the others have clients of their own, each
    // preferring another member. Short-lived threads, joined before load() returns.
    const std::size_t loaders = std::min<std::size_t>(3, options_.endpoints.size());
    std::vector<EtcdStateImage> parts(loaders);
    std::vector<Status> results(loaders);
    std::atomic<std::size_t> next{0};
    const std::int64_t revision = snapshot.revision;
    auto work = [&](std::size_t i, EtcdClient& client) {
      std::int64_t rev = revision;
      for (std::size_t f; (f = next.fetch_add(1)) < std::size(kLoaded);)
        if (auto s = loadFamily(client, kLoaded[f], rev, parts[i]); !s) {
          results[i] = s;
          next = std::size(kLoaded);  // the others stop after their family
          return;
        }
    };
    std::vector<std::thread> threads;
    for (std::size_t i = 1; i < loaders; ++i)
      threads.emplace_back([&, i] {
        std::vector<std::string> rotated(options_.endpoints.begin() + static_cast<std::ptrdiff_t>(i),
                                         options_.endpoints.end());
        rotated.insert(rotated.end(), options_.endpoints.begin(),
                       options_.endpoints.begin() + static_cast<std::ptrdiff_t>(i));
        EtcdClient own(std::move(rotated), clientOptions(options_));
        work(i, own);
      });
    work(0, client_);
    for (auto& t : threads) t.join();
    for (auto& r : results)
      if (!r) return r.error();
    for (auto& p : parts) snapshot.image.merge(std::move(p));
    return snapshot;
  }

  EtcdStoreOptions options_;
  std::string base_;  // PREFIX/
  EtcdClient client_;
  // The writer's copy of every server key it loaded or wrote (core thread: load, commit).
  EtcdServerCopy known_;
  std::mutex guardMutex_;
  std::optional<std::pair<std::string, std::int64_t>> guard_;
};

}  // namespace

Result<EtcdStoreOptions> parseEtcdStoreUrl(const std::string& url) {
  const std::string scheme = "etcd://";
  if (url.rfind(scheme, 0) != 0)
    return makeError(Errc::Invalid, "store '" + url + "': want etcd://HOST:PORT[,HOST:PORT...][/PREFIX]");
  const std::string rest = url.substr(scheme.size());
  const auto slash = rest.find('/');
  EtcdStoreOptions o;
  auto eps = EtcdClient::parseEndpoints(rest.substr(0, slash));
  if (!eps) return makeError(Errc::Invalid, "store '" + url + "': " + eps.error().message);
  o.endpoints = std::move(*eps);
  if (slash != std::string::npos) {
    std::string prefix = rest.substr(slash);
    while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
    if (prefix == "/") return makeError(Errc::Invalid, "store '" + url + "': the prefix may not be '/' alone");
    o.prefix = prefix;
  }
  return o;
}

Result<std::unique_ptr<EtcdStateStore>> openEtcdStateStore(const EtcdStoreOptions& options) {
  if (options.endpoints.empty()) return makeError(Errc::Invalid, "etcd store: no endpoints");
  if (options.prefix.empty() || options.prefix.front() != '/' || options.prefix.back() == '/')
    return makeError(Errc::Invalid,
                     "etcd store: prefix '" + options.prefix + "' must start with '/' and not end with it");
  auto store = std::make_unique<EtcdStateStoreImpl>(options);
  if (auto s = store->open(); !s) return s.error();
  return std::unique_ptr<EtcdStateStore>(std::move(store));
}

}  // namespace loom::controller
