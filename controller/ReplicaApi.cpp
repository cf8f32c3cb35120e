#include "controller/ReplicaApi.h"

namespace loom::controller {
namespace {

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

ApiResponse replicaStatus(const Election& election, std::optional<std::uint64_t> leadingEpoch, std::int64_t nowMs) {
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
  return api::json(503, j);
}

}  // namespace loom::controller
