// Controller::metrics: GET /metrics in Prometheus' text format, read from the rooms.
#include <map>
#include <set>
#include <sstream>

#include "controller/Controller.h"

namespace loom::controller {

std::string Controller::metrics() const {
  std::ostringstream o;
  std::map<std::string, std::size_t> bladeStates, serverStates;
  for (const char* s :
       {"discovered", "available", "active", "spare", "suspect", "failed", "fenced", "maintenance", "retired"})
    bladeStates[s] = 0;
  for (const char* s :
       {"pending", "placing", "starting", "running", "stopping", "stopped", "failed", "unplaceable", "moving"})
    serverStates[s] = 0;
  for (const auto& [name, _] : registry_.all()) ++bladeStates[pool::toString(replanner_.displayState(name))];
  std::string reason;
  for (const auto& s : desired_.declarations().servers) ++serverStates[views_.serverState(s, &reason)];
  o << "# HELP loom_blades Blades by state.\n# TYPE loom_blades gauge\n";
  for (const auto& [s, n] : bladeStates) o << "loom_blades{state=\"" << s << "\"} " << n << "\n";
  o << "# HELP loom_servers Logical servers by state.\n# TYPE loom_servers gauge\n";
  for (const auto& [s, n] : serverStates) o << "loom_servers{state=\"" << s << "\"} " << n << "\n";
  const auto& plans = replanner_.counters();
  o << "# HELP loom_plan_seconds Planner run time.\n# TYPE loom_plan_seconds summary\n"
    << "loom_plan_seconds_sum " << plans.secondsSum << "\nloom_plan_seconds_count " << plans.plans << "\n"
    << "# HELP loom_plan_last_seconds Duration of the latest plan.\n# TYPE loom_plan_last_seconds gauge\n"
    << "loom_plan_last_seconds " << plans.secondsLast << "\n";
  o << "# HELP loom_heartbeats_total Heartbeats received.\n# TYPE loom_heartbeats_total counter\nloom_heartbeats_total "
    << heartbeats_ + leases_.kept() << "\n";
  o << "# HELP loom_registrations_total Agent registrations.\n# TYPE loom_registrations_total "
       "counter\nloom_registrations_total "
    << registry_.registrations() << "\n";
  std::set<std::string> relays;
  std::size_t relayed = 0, direct = 0;
  for (const auto& [name, k] : registry_.all()) {
    if (!k.registered) continue;
    std::string via = leases_.route(name);
    if (via.empty())
      ++direct;
    else
      relays.insert(std::move(via)), ++relayed;
  }
  o << "# HELP loom_fabric_relays Fabric relays carrying registered blades.\n# TYPE loom_fabric_relays "
       "gauge\nloom_fabric_relays "
    << relays.size() << "\n";
  o << "# HELP loom_fabric_blades Registered blades by how they reach the controller.\n# TYPE loom_fabric_blades "
       "gauge\n"
    << "loom_fabric_blades{via=\"direct\"} " << direct << "\nloom_fabric_blades{via=\"relay\"} " << relayed << "\n";
  o << "# HELP loom_fabric_messages_total Fabric messages accepted.\n# TYPE loom_fabric_messages_total counter\n"
    << "loom_fabric_messages_total " << dispatcher_.accepted() << "\n";
  o << "# HELP loom_fabric_rejected_total Fabric frames or connections refused, by reason.\n# TYPE "
       "loom_fabric_rejected_total counter\n";
  std::map<std::string, std::uint64_t> rejected = dispatcher_.rejected();
  for (const char* k : {"malformed", "unknown-type", "bad-version", "invalid", "auth"}) rejected.try_emplace(k, 0);
  for (const auto& [k, n] : rejected) o << "loom_fabric_rejected_total{reason=\"" << k << "\"} " << n << "\n";
  const auto& ops = reconciler_.counters();
  o << "# HELP loom_operations_total Plan steps sent, retried, failed.\n# TYPE loom_operations_total counter\n"
    << "loom_operations_total{result=\"sent\"} " << ops.sent << "\nloom_operations_total{result=\"retried\"} "
    << ops.retried << "\nloom_operations_total{result=\"failed\"} " << ops.failed << "\n";
  o << "# HELP loom_operations_pending Operations queued or in flight.\n# TYPE loom_operations_pending "
       "gauge\nloom_operations_pending "
    << reconciler_.size() << "\n";
  const auto& fences = detector_.counters();
  o << "# HELP loom_fences_total Blades fenced, by what confirmed it.\n# TYPE loom_fences_total counter\n"
    << "loom_fences_total{by=\"lease\"} " << fences.byLease << "\nloom_fences_total{by=\"command\"} "
    << fences.byCommand << "\nloom_fences_total{by=\"operator\"} " << fences.byOperator << "\n";
  o << "# HELP loom_fence_command_failures_total Fence commands that did not confirm power-off.\n"
       "# TYPE loom_fence_command_failures_total counter\nloom_fence_command_failures_total "
    << fences.commandFailures << "\n";
  o << "# HELP loom_fence_command_retries_total Fence commands run again for power-fenced blades after a failure.\n"
       "# TYPE loom_fence_command_retries_total counter\nloom_fence_command_retries_total "
    << fences.commandRetries << "\n";
  o << "# HELP loom_failovers_total Servers placed elsewhere after their blade was fenced.\n"
       "# TYPE loom_failovers_total counter\nloom_failovers_total "
    << plans.failovers << "\n";
  o << "# HELP loom_fencing_suspended 1 while the storm guard holds all fencing.\n# TYPE loom_fencing_suspended gauge\n"
       "loom_fencing_suspended "
    << (detector_.stormActive() ? 1 : 0) << "\n";
  o << "# HELP loom_fencing_storms_total Times the storm guard went up.\n# TYPE loom_fencing_storms_total counter\n"
       "loom_fencing_storms_total "
    << fences.storms << "\n";
  {
    const auto q = leases_.countQuorum(now_);
    const auto* current = quorum_.sets().current();
    o << "# HELP loom_quorum_members Blades in the current quorum set (docs/FENCING.md).\n# TYPE loom_quorum_members "
         "gauge\n"
      << "loom_quorum_members " << q.members << "\n"
      << "# HELP loom_quorum_counted Members whose promises loomd holds now (committed, shielding no one).\n"
         "# TYPE loom_quorum_counted gauge\nloom_quorum_counted "
      << q.counted << "\n"
      << "# HELP loom_quorum_held 1 while loomd counts a quorum of every retained version (it may fence by lease).\n"
         "# TYPE loom_quorum_held gauge\nloom_quorum_held "
      << (q.held ? 1 : 0) << "\n"
      << "# HELP loom_quorum_version The current outage policy version.\n# TYPE loom_quorum_version "
         "gauge\nloom_quorum_version "
      << (current ? current->version : 0) << "\n"
      << "# HELP loom_quorum_versions_retained Policy versions a blade may still hold.\n"
         "# TYPE loom_quorum_versions_retained gauge\nloom_quorum_versions_retained "
      << quorum_.sets().retained().size() << "\n"
      << "# HELP loom_fences_withheld_total Silent blades not fenced by their lease for want of a quorum.\n"
         "# TYPE loom_fences_withheld_total counter\nloom_fences_withheld_total "
      << fences.withheld << "\n";
  }
  o << "# HELP loom_applies_total Declarations applied.\n# TYPE loom_applies_total counter\nloom_applies_total "
    << endpoints_.applies() << "\n";
  return o.str();
}

}  // namespace loom::controller
