#include "controller/ReplicaApi.h"

#include <algorithm>
#include <chrono>

#include "controller/api/Endpoints.h"

namespace loom::controller {
namespace {

std::int64_t wallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

api::Json infoJson(const ReplicaInfo& r) {
  api::Json j{{"name", r.name}, {"api", r.api}, {"agents", r.agents}};
  if (r.epoch) j["epoch"] = r.epoch;
  return j;
}

}  // namespace

ApiResponse soloStatus(const std::string& statePath, std::uint64_t epoch) {
  return api::json(
      200,
      {{"role", "solo"}, {"epoch", epoch}, {"store", {{"kind", "sqlite"}, {"path", statePath}, {"healthy", true}}}});
}

ApiResponse replicaStatus(const Election& election, std::optional<std::uint64_t> leadingEpoch, std::int64_t nowMs,
                          const WarmCopyState* copy) {
  const ReplicaStatus s = election.status();
  api::Json j{{"role", leadingEpoch ? "leader" : "standby"}, {"name", election.options().self.name}};
  if (leadingEpoch) j["epoch"] = *leadingEpoch;
  j["leader"] = s.leader ? infoJson(*s.leader) : api::Json(nullptr);
  api::Json replicas = api::Json::array();
  for (const auto& r : s.replicas) {
    api::Json one = infoJson(r);
    one["role"] = s.leader && s.leader->name == r.name ? "leader" : "standby";
    replicas.push_back(std::move(one));
  }
  j["replicas"] = std::move(replicas);
  api::Json members = api::Json::array();
  std::size_t healthy = 0;
  for (const auto& m : s.members) {
    api::Json one{{"endpoint", m.endpoint}, {"healthy", m.healthy}};
    if (m.healthy) {
      ++healthy;
      one["leader"] = m.leader;
      one["raft_term"] = m.raftTerm;
      one["db_size"] = m.dbSize;
      one["version"] = m.version;
    } else {
      one["error"] = m.error;
    }
    members.push_back(std::move(one));
  }
  j["store"] = {{"kind", "etcd"},
                {"prefix", election.options().prefix},
                {"members", std::move(members)},
                // A majority of the members answering: the store can commit.
                {"healthy", !s.members.empty() && healthy * 2 > s.members.size()},
                {"leader_ttl_ms", s.grantedTtlMs},
                {"age_ms", s.refreshedAtMs ? nowMs - s.refreshedAtMs : -1}};
  // A standby's warm copy: the etcd revision it holds and how long since it was last
  // known current (controller/WarmCopy.h).
  if (copy) {
    api::Json c{{"running", copy->running},   {"loaded", copy->loaded},
                {"revision", copy->revision}, {"store_revision", copy->storeRevision},
                {"loads", copy->loads},       {"watches", copy->watches},
                {"changes", copy->changes}};
    c["age_ms"] = copy->loaded && copy->heardAtMs >= 0 ? api::Json(nowMs - copy->heardAtMs) : api::Json(nullptr);
    if (!copy->error.empty()) c["error"] = copy->error;
    j["copy"] = std::move(c);
  }
  return api::json(200, j);
}

ApiResponse standbyAnswer(const Election& election) {
  const auto leader = election.leader();
  const std::string self = election.options().self.name;
  api::Json j{{"standby", true}, {"name", self}};
  if (leader) {
    j["error"] = "this loomd (" + self + ") is a standby; the leader is " + leader->name + " at " + leader->api;
    j["leader"] = infoJson(*leader);
  } else {
    j["error"] = "this loomd (" + self + ") is a standby and no replica leads right now (is etcd's quorum up?)";
    j["leader"] = nullptr;
  }
  ApiResponse r = api::json(503, j);
  r.headers.emplace_back("X-Loom-Role", "standby");
  r.headers.emplace_back("X-Loom-Replica", self);
  if (leader) r.headers.emplace_back("X-Loom-Leader", leader->api);
  return r;
}

void addLeaderHeaders(ApiResponse& response, const std::string& name, std::uint64_t epoch) {
  response.headers.emplace_back("X-Loom-Role", "leader");
  response.headers.emplace_back("X-Loom-Replica", name);
  response.headers.emplace_back("X-Loom-Epoch", std::to_string(epoch));
}

std::shared_ptr<const api::StandbyViews> StandbyReads::currentViews() {
  const WarmCopyState now = copy_.state();
  if (!now.loaded) return nullptr;
  // Views are built once per version of the copy (a decode and a plan): a burst of reads
  // between two changes pays once.
  if (!views_ || now.generation != viewsOf_.generation) {
    auto snap = copy_.snapshot();
    if (!snap) return nullptr;
    views_ = std::make_shared<const api::StandbyViews>(std::move(snap->first), wallMs);
    viewsOf_ = snap->second;
  }
  return views_;
}

std::optional<ApiResponse> StandbyReads::refusal(const ApiRequest& request, access::Access access,
                                                 const Election& election) {
  auto views = currentViews();
  if (!views) return standbyAnswer(election);
  auto verdict = views->check(request, access);
  if (!verdict.refusal) return std::nullopt;
  verdict.refusal->headers.emplace_back("X-Loom-Role", "standby");
  verdict.refusal->headers.emplace_back("X-Loom-Replica", election.options().self.name);
  return verdict.refusal;
}

std::optional<ApiResponse> StandbyReads::answer(const ApiRequest& request, const Election& election,
                                                std::int64_t nowMs) {
  std::optional<ApiResponse> r;
  std::optional<WarmCopyState> copy;
  const bool events = request.method == "GET" && request.path == "/v1/events";
  if (!events && !api::StandbyViews::serves(request)) return std::nullopt;
  auto views = currentViews();
  if (!views) return std::nullopt;  // nothing to answer (or check) from: the leader answers
  if (events) {
    auto verdict = views->check(request, access::Access::Read);
    if (verdict.refusal)
      r = std::move(verdict.refusal);
    else
      r = this->events(request, verdict.caller);
  } else {
    r = views->answer(request);
    // How fresh: while what the copy holds has not changed since the views were built
    // (the same generation), they are the store as of the copy's latest revision and
    // heard-at (events, finished operations and checks move those without a change).
    const WarmCopyState latest = copy_.state();
    copy = latest.generation == viewsOf_.generation ? latest : viewsOf_;
  }
  if (!r) return std::nullopt;
  r->headers.emplace_back("X-Loom-Role", "standby");
  r->headers.emplace_back("X-Loom-Replica", election.options().self.name);
  if (const auto leader = election.leader()) r->headers.emplace_back("X-Loom-Leader", leader->api);
  if (copy) {
    r->headers.emplace_back("X-Loom-Store-Revision", std::to_string(copy->revision));
    r->headers.emplace_back("X-Loom-Copy-Age-Ms", std::to_string(copy->heardAtMs >= 0 ? nowMs - copy->heardAtMs : -1));
  } else {
    r->headers.emplace_back("X-Loom-Copy-Age-Ms", "0");  // read from etcd itself
  }
  return r;
}

std::optional<ApiResponse> StandbyReads::events(const ApiRequest& req, const ApiCaller& caller) {
  // A long-poll waits for what the leader writes, and the latest events are where the
  // leader's numbering is: the leader's to answer.
  if (api::unsignedParam(req.query, "wait").value_or(0) > 0 || req.query.count("tail")) return std::nullopt;
  const std::uint64_t since = api::unsignedParam(req.query, "since").value_or(0);
  const auto limit =
      static_cast<std::size_t>(std::min<std::uint64_t>(api::unsignedParam(req.query, "limit").value_or(1000), 10000));
  if (!eventStore_) {
    EtcdStoreOptions o = storeOptions_;
    o.requiredTxnOps = 0;  // reads only
    o.upgradeLayout = false;
    auto opened = openEtcdStateStore(o);
    if (!opened) return std::nullopt;
    eventStore_ = std::move(*opened);
  }
  auto events = eventStore_->events(since, limit);
  if (!events) return std::nullopt;  // etcd does not answer here: perhaps the leader can
  if (!caller.partition.empty() && views_)
    std::erase_if(*events, [&](const EventRecord& e) { return !views_->sees(caller, e); });
  return api::json(200, api::eventsJson(*events));
}

}  // namespace loom::controller
