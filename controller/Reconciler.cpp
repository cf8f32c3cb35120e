#include "controller/Reconciler.h"

#include <algorithm>
#include <string_view>

namespace loom::controller {

void Reconciler::restore(std::uint64_t lastId, std::vector<OperationRecord> inFlight) {
  lastId_ = lastId;
  for (auto& op : inFlight) {
    op.state = "superseded";
    journal_.pending().putOperations.push_back(op);
  }
}

void Reconciler::reconsiderAll() {
  for (const auto& [name, _] : registry_.all()) convergeQueue_.insert(name);
}

void Reconciler::record(const Operation& op, const char* state, const std::string& error) {
  journal_.pending().putOperations.push_back({op.id, op.blade, op.server, pool::toString(op.kind), state, op.attempts, error});
}

void Reconciler::enqueue(Operation op) {
  op.id = ++lastId_;
  Queue& q = queues_[op.blade];
  q.ops.push_back(op.id);
  q.busyServers.insert(op.server);
  dispatchQueue_.insert(op.blade);
  record(op, "pending", "");
  operations_.emplace(op.id, std::move(op));
}

void Reconciler::prepare(const std::vector<pool::Step>& steps) {
  for (const auto& step : steps) {
    if (step.kind != pool::StepKind::PrepareHypervisor || !step.hypervisor || !registry_.find(step.blade)) continue;
    if (queues_[step.blade].busyServers.count("")) continue;
    enqueue({0, step.blade, "", pool::StepKind::PrepareHypervisor, std::nullopt, pool::toString(*step.hypervisor), 0, false, 0, 0});
    convergeQueue_.insert(step.blade);
  }
}

void Reconciler::dispatch(const std::string& blade, std::int64_t now) {
  dispatchQueue_.erase(blade);
  auto qit = queues_.find(blade);
  if (qit == queues_.end() || qit->second.ops.empty() || !detector_.takesSteps(blade)) return;
  // Per server strictly in order (define before start, stop before undefine); across
  // servers pipelined. A prepare-hypervisor step is a barrier for everything behind it.
  protocol::PlanMsg msg;
  std::set<std::string_view> seen;
  bool capped = false;
  for (auto id : qit->second.ops) {
    auto& op = operations_.at(id);
    const bool barrier = op.kind == pool::StepKind::PrepareHypervisor;
    if (barrier && !seen.empty()) break;
    if (!seen.insert(op.server).second) continue;
    if (!op.inFlight && op.notBefore <= now) {
      if (msg.steps.size() >= options_.maxStepsPerPlanMessage) {
        capped = true;
        break;
      }
      op.inFlight = true;
      op.deadline = now + options_.opTimeoutMs;
      deadlines_.emplace(op.deadline, op.id);
      ++op.attempts;
      msg.steps.push_back({op.id, op.kind, op.server, op.hypervisor, op.spec});
    }
    if (barrier) break;
  }
  // The rest goes in the next message, on the next tick.
  if (capped) dispatchQueue_.insert(blade);
  if (msg.steps.empty()) return;
  counters_.sent += msg.steps.size();
  send_(blade, protocol::encode(msg));
}

void Reconciler::onStepResult(const std::string& blade, std::uint64_t id, bool ok, const std::string& error, std::int64_t now) {
  auto it = operations_.find(id);
  // Late answers (after a timeout was retried, or from before a restart) are harmless:
  // every step is idempotent, so only the current attempt's bookkeeping matters.
  if (it == operations_.end() || it->second.blade != blade) return;
  finish(id, ok, error, now);
  dispatch(blade, now);
}

void Reconciler::finish(std::uint64_t id, bool ok, const std::string& error, std::int64_t now) {
  auto it = operations_.find(id);
  if (it == operations_.end()) return;
  Operation& op = it->second;
  if (!ok && op.attempts < options_.opMaxAttempts) {
    ++counters_.retried;
    op.inFlight = false;
    op.notBefore = now + (options_.opBackoffMs << std::min(op.attempts - 1, 10));
    if (op.attempts == 1)
      events_.add("warning", op.blade, op.server, std::string(pool::toString(op.kind)) + " failed, retrying: " + error);
    nextDue_ = std::min(nextDue_, op.notBefore);
    backoffEnds_.emplace(op.notBefore, op.blade);
    return;
  }
  record(op, ok ? "done" : "failed", error);
  using pool::StepKind;
  const std::string server = op.server, blade = op.blade, hypervisor = op.hypervisor;
  const StepKind kind = op.kind;
  Queue& q = queues_[blade];
  std::vector<std::uint64_t> drop{id};
  if (ok) {
    const KnownBlade* k = registry_.find(blade);
    const auto id = desired_.identities().find(server);
    const std::string uuid = id ? id->uuid : std::string();
    if (kind == StepKind::Define) {
      auto d = k ? k->domains.find(server) : decltype(k->domains.end()){};
      registry_.setDomain(blade, server, k && d != k->domains.end() ? d->second.state : pool::DomainState::Shutoff, uuid);
    } else if (kind == StepKind::Start) {
      registry_.setDomain(blade, server, pool::DomainState::Running, uuid);
    } else if (kind == StepKind::Stop) {
      registry_.setDomain(blade, server, pool::DomainState::Shutoff, uuid);
    } else if (kind == StepKind::Undefine) {
      registry_.setDomain(blade, server, std::nullopt);
    } else if (kind == StepKind::PrepareHypervisor) {
      if (KnownBlade* known = registry_.find(blade)) known->inventory.personality = hypervisor;
    }
    if (kind == StepKind::Start) faults_.erase(server);
    // A stop may unblock a start elsewhere (a move waits for it: invariant 1).
    if (kind == StepKind::Stop || kind == StepKind::Undefine)
      if (const std::string* b = replanner_.bladeOf(server); b && *b != blade) convergeQueue_.insert(*b);
  } else {
    ++counters_.failed;
    const std::string why = std::string(pool::toString(kind)) + " failed after " + std::to_string(op.attempts) + " attempts: " + error;
    events_.add("error", blade, server, why);
    faults_[server] = why;
    retryServerAt_[server] = now + options_.opTimeoutMs * 2;
    // The later steps for this server depended on this one.
    for (auto qid : q.ops)
      if (qid != id && operations_.at(qid).server == server && !operations_.at(qid).inFlight) drop.push_back(qid);
  }
  for (auto d : drop) {
    std::erase(q.ops, d);
    if (d != id) record(operations_.at(d), "cancelled", "an earlier step failed");
    operations_.erase(d);
  }
  bool stillBusy = false;
  for (auto qid : q.ops) stillBusy = stillBusy || operations_.at(qid).server == server;
  if (!stillBusy) q.busyServers.erase(server);
  if (ok) done_(blade, server, kind);
}

void Reconciler::lost(const std::string& blade) {
  auto it = queues_.find(blade);
  if (it == queues_.end()) return;
  for (auto id : it->second.ops)
    if (auto op = operations_.find(id); op != operations_.end()) op->second.inFlight = false;
}

void Reconciler::cancelAll(const std::string& blade, const std::string& why) {
  auto it = queues_.find(blade);
  if (it == queues_.end()) return;
  for (auto id : it->second.ops) {
    auto op = operations_.find(id);
    if (op == operations_.end()) continue;
    record(op->second, "cancelled", why);
    operations_.erase(op);
  }
  it->second.ops.clear();
  it->second.busyServers.clear();
}

void Reconciler::forgive(const std::string& server) {
  faults_.erase(server);
  retryServerAt_.erase(server);
}

// Desired (bindings, power) against observed (the agent's domains) for one blade.
void Reconciler::converge(const std::string& blade, std::int64_t now) {
  // A fenced blade that came back is only cleaned: what still runs there stops, nothing
  // starts, until it reports no servers running (FailureDetector::checkTrust).
  const bool cleaning = detector_.cleaning(blade);
  const KnownBlade* k = registry_.find(blade);
  if (!k || !detector_.takesSteps(blade)) return;
  Queue& q = queues_[blade];
  if (!cleaning && detector_.unconfirmed() == 0) {
    for (const auto& server : replanner_.serversOn(blade)) {
      if (q.busyServers.count(server)) continue;
      const pool::Server* decl = desired_.findServer(server);
      if (!decl || decl->power == pool::PowerState::Off) continue;
      auto d = k->domains.find(server);
      if (d != k->domains.end() && d->second.state == pool::DomainState::Running) continue;
      // Invariant 1: never start a server while another blade may still run it; the
      // stop there (or, later, its fencing) comes first.
      bool elsewhere = false;
      for (const auto& other : registry_.runningOn(server)) elsewhere = elsewhere || other != blade;
      if (elsewhere) continue;
      if (auto r = retryServerAt_.find(server); r != retryServerAt_.end()) {
        if (r->second > now) continue;
        retryServerAt_.erase(r);
      }
      auto spec = desired_.spec(server);
      if (!spec) continue;
      enqueue({0, blade, server, pool::StepKind::Define, spec, "", 0, false, 0, 0});
      enqueue({0, blade, server, pool::StepKind::Start, std::nullopt, "", 0, false, 0, 0});
    }
  }
  std::vector<std::string> foreign;
  for (const auto& [name, d] : k->domains) {
    if (q.busyServers.count(name)) continue;
    const pool::Server* decl = desired_.findServer(name);
    const bool live = d.state == pool::DomainState::Running || d.state == pool::DomainState::Paused;
    if (!decl && desired_.isDeleted(name)) {
      // A deleted server: it stops and its definition goes, wherever it still is.
      if (live) enqueue({0, blade, name, pool::StepKind::Stop, std::nullopt, "", 0, false, 0, 0});
      enqueue({0, blade, name, pool::StepKind::Undefine, std::nullopt, "", 0, false, 0, 0});
      continue;
    }
    if (!decl) {
      foreign.push_back(name);
      continue;
    }
    const std::string* b = replanner_.bladeOf(name);
    if (b && *b == blade) continue;
    if (live) enqueue({0, blade, name, pool::StepKind::Stop, std::nullopt, "", 0, false, 0, 0});
    if (b) enqueue({0, blade, name, pool::StepKind::Undefine, std::nullopt, "", 0, false, 0, 0});
  }
  // Not ours: reported once, never touched.
  for (const auto& name : foreign)
    if (registry_.firstSight(blade, name)) events_.add("warning", blade, name, "domain '" + name + "' is not a declared server; left alone");
  dispatch(blade, now);
}

void Reconciler::tick(std::int64_t now) {
  nextDue_ = INT64_MAX;
  // Timeouts: an unanswered step counts as a failed attempt. Entries of operations that
  // were answered, or resent since (another deadline), are stale and skipped.
  std::vector<std::uint64_t> expired;
  while (!deadlines_.empty() && deadlines_.top().first <= now) {
    const auto [deadline, id] = deadlines_.top();
    deadlines_.pop();
    if (auto op = operations_.find(id); op != operations_.end() && op->second.inFlight && op->second.deadline == deadline)
      expired.push_back(id);
  }
  for (auto id : expired) {
    auto op = operations_.find(id);
    if (op == operations_.end() || !op->second.inFlight) continue;
    dispatchQueue_.insert(op->second.blade);  // what the failure unblocked, or the retry
    finish(id, false, "no answer within " + std::to_string(options_.opTimeoutMs) + " ms", now);
  }
  // Backoffs that ended.
  while (!backoffEnds_.empty() && backoffEnds_.top().first <= now) {
    dispatchQueue_.insert(backoffEnds_.top().second);
    backoffEnds_.pop();
  }
  // Blades whose retry window for a failed server closed.
  if (!retryServerAt_.empty() && now - lastRetryScan_ >= 100) {
    lastRetryScan_ = now;
    for (const auto& [server, at] : retryServerAt_)
      if (at <= now)
        if (const std::string* b = replanner_.bladeOf(server)) convergeQueue_.insert(*b);
  }
  if (!convergeQueue_.empty()) {
    auto queue = std::move(convergeQueue_);
    convergeQueue_.clear();
    for (const auto& b : queue) converge(b, now);
  }
  // Blades with steps to send that converge did not already send (new operations,
  // retries, the rest of a capped message).
  if (!dispatchQueue_.empty()) {
    auto queue = std::move(dispatchQueue_);
    dispatchQueue_.clear();
    for (const auto& b : queue) dispatch(b, now);
  }
  if (!backoffEnds_.empty()) nextDue_ = std::min(nextDue_, backoffEnds_.top().first);
}

const std::string* Reconciler::fault(const std::string& server) const {
  auto it = faults_.find(server);
  return it == faults_.end() ? nullptr : &it->second;
}

std::size_t Reconciler::queued(const std::string& blade) const {
  auto it = queues_.find(blade);
  return it == queues_.end() ? 0 : it->second.ops.size();
}

}  // namespace loom::controller
