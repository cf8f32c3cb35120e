#include "controller/Reconciler.h"

#include <algorithm>
#include <string_view>
#include <unordered_set>

#include "protocol/PlanFrameWriter.h"

namespace loom::controller {
namespace {

bool startsIt(pool::StepKind k) { return k == pool::StepKind::Define || k == pool::StepKind::Start; }

}  // namespace

void Reconciler::restore(std::uint64_t lastId, std::vector<OperationRecord> inFlight) {
  lastId_ = lastId;
  for (auto& op : inFlight) {
    op.state = "superseded";
    journal_.pending().putOperations.push_back(op);
  }
}

void Reconciler::record(const Operation& op, const char* state, const std::string& error) {
  journal_.pending().putOperations.push_back(
      {op.id, op.blade, op.server, pool::toString(op.kind), state, op.attempts, error});
}

std::uint64_t Reconciler::create(const std::string& blade, const pool::Step& step) {
  Operation op;
  op.id = ++lastId_;
  op.blade = blade;
  op.server = step.server;
  op.kind = step.kind;
  if (step.kind == pool::StepKind::PrepareHypervisor && step.hypervisor)
    op.hypervisor = pool::toString(*step.hypervisor);
  if (step.kind == pool::StepKind::Define) op.spec = desired_.spec(step.server);
  record(op, "pending", "");
  const std::uint64_t id = op.id;
  operations_.emplace(id, std::move(op));
  return id;
}

void Reconciler::adopt(const Replanner::Steps& plan, std::int64_t now) {
  const auto& steps = plan.steps;
  auto same = [&](const Operation& op, const pool::Step& s) {
    return op.kind == s.kind && (s.kind != pool::StepKind::PrepareHypervisor ||
                                 (s.hypervisor && op.hypervisor == pool::toString(*s.hypervisor)));
  };
  std::unordered_map<std::string, std::vector<std::size_t>> byBlade;
  for (std::size_t i = 0; i < steps.size(); ++i) byBlade[steps[i].blade].push_back(i);
  std::vector<std::uint64_t> opOf(steps.size(), 0);
  auto& records = journal_.pending().putOperations;  // one record per operation created
  records.reserve(records.size() + steps.size());
  // Steps not to run now: a define or start of a server in its retry window or without an
  // identity, a step whose predecessor is not run, a prepare nothing waits for any more.
  std::vector<char> dropped(steps.size(), 0);
  std::vector<char> wanted(steps.size(), 0);
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const pool::Step& s = steps[i];
    if (startsIt(s.kind)) {
      if (auto r = retryServerAt_.find(s.server); r != retryServerAt_.end() && r->second > now) dropped[i] = 1;
      if (!desired_.findServer(s.server) || !desired_.identities().holds(s.server))
        dropped[i] = 1;  // no spec to define it
    }
    for (auto a : s.after)
      if (dropped[a] && steps[a].server == s.server) dropped[i] = 1;
    if (!dropped[i])
      for (auto a : s.after) wanted[a] = 1;
  }
  for (std::size_t i = 0; i < steps.size(); ++i)
    if (steps[i].kind == pool::StepKind::PrepareHypervisor && !wanted[i]) dropped[i] = 1;
  std::vector<std::uint64_t> doomed;
  static const std::vector<std::size_t> kNone;
  for (const auto& blade : plan.blades) {
    auto pit = byBlade.find(blade);
    const auto& planned = pit == byBlade.end() ? kNone : pit->second;
    auto qit = queues_.find(blade);
    if (planned.empty() && (qit == queues_.end() || qit->second.empty())) continue;
    auto& queue = queues_[blade];
    // Per server: the planned chain, and the operations queued for it, in order. The
    // chains are runs of one list (servers in the order first planned), not a vector each:
    // a failover plans 50 servers onto a spare at once.
    std::unordered_map<std::string_view, std::size_t> rank;  // server -> its chain's place
    rank.reserve(planned.size());
    std::vector<std::pair<std::size_t, std::size_t>> chained;  // (rank, step), stably sorted
    chained.reserve(planned.size());
    for (auto i : planned) chained.emplace_back(rank.try_emplace(steps[i].server, rank.size()).first->second, i);
    std::stable_sort(chained.begin(), chained.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
    std::unordered_map<std::string_view, std::vector<std::uint64_t>> queued;
    for (auto id : queue) queued[operations_.at(id).server].push_back(id);
    static const std::vector<std::uint64_t> kNoOps;
    std::unordered_set<std::uint64_t> kept;
    std::vector<std::size_t> chain;
    for (std::size_t c = 0; c < chained.size();) {
      chain.clear();
      const std::size_t r = chained[c].first;
      for (; c < chained.size() && chained[c].first == r; ++c) chain.push_back(chained[c].second);
      const auto q = queue.empty() ? queued.end() : queued.find(steps[chain[0]].server);
      const auto& ops = q == queued.end() ? kNoOps : q->second;
      std::size_t from = 0, j = 0;
      if (!ops.empty()) {
        // The head queued shows how far the chain got: the planned steps before it are
        // done. When it is not planned any more, the chain starts anew behind it (a sent
        // head runs out first; a queued one is cancelled below).
        const Operation& head = operations_.at(ops[0]);
        std::size_t k = 0;
        while (k < chain.size() && !same(head, steps[chain[k]])) ++k;
        if (k < chain.size())
          from = k;
        else
          j = ops.size();
      }
      for (std::size_t i = from; i < chain.size(); ++i) {
        const pool::Step& s = steps[chain[i]];
        if (j < ops.size() && same(operations_.at(ops[j]), s)) {
          // A define not sent yet defines the spec as declared now (an apply changed it).
          if (Operation& kept = operations_.at(ops[j]); kept.kind == pool::StepKind::Define && !kept.inFlight)
            kept.spec = desired_.spec(s.server);
          opOf[chain[i]] = ops[j];
          kept.insert(ops[j++]);
          continue;
        }
        if (!dropped[chain[i]]) opOf[chain[i]] = create(blade, s);
      }
    }
    // What is no longer planned: sent, it runs out; queued, it is cancelled.
    std::deque<std::uint64_t> next;
    for (auto id : queue) {
      Operation& op = operations_.at(id);
      op.unplanned = !kept.count(id);
      if (!op.unplanned) continue;
      if (op.inFlight)
        next.push_back(id);
      else
        doomed.push_back(id);
    }
    // Then the plan's, in its order (never one of those above: those are not planned).
    for (auto i : planned)
      if (opOf[i]) next.push_back(opOf[i]);
    queue = std::move(next);
    dispatchQueue_.insert(blade);
  }
  // The plan's `after` as dependencies between operations (a step counted done is none).
  for (std::size_t i = 0; i < steps.size(); ++i) {
    if (!opOf[i]) continue;
    Operation& op = operations_.at(opOf[i]);
    for (auto d : op.after)
      if (auto it = dependents_.find(d); it != dependents_.end()) std::erase(it->second, op.id);
    op.after.clear();
    bool orphan = false;
    for (auto a : steps[i].after) {
      if (dropped[a]) orphan = true;
      if (!opOf[a]) continue;
      op.after.push_back(opOf[a]);
      dependents_[opOf[a]].push_back(op.id);
    }
    // What it waits for does not run now: neither does it.
    if (orphan && !op.inFlight) doomed.push_back(op.id);
  }
  if (!doomed.empty()) drop(std::move(doomed), "cancelled", "no longer planned");
  // Domains Loom never declared: reported once, never touched.
  for (const auto& f : plan.foreign)
    if (registry_.firstSight(f.blade, f.domain))
      events_.add("warning", f.blade, f.domain, "domain '" + f.domain + "' is not a declared server; left alone");
}

void Reconciler::drop(std::vector<std::uint64_t> ids, const char* state, const std::string& why) {
  for (std::size_t i = 0; i < ids.size(); ++i) {
    auto it = operations_.find(ids[i]);
    if (it == operations_.end()) continue;
    const Operation& op = it->second;
    if (std::string_view(state) == "cancelled") record(op, state, why);
    if (auto q = queues_.find(op.blade); q != queues_.end()) std::erase(q->second, op.id);
    if (auto s = starting_.find(op.server); s != starting_.end() && s->second == op.blade && startsIt(op.kind)) {
      starting_.erase(s);
      // Whatever waited for this start elsewhere may go now (a rebound server's define).
      if (auto held = heldByStart_.find(op.server); held != heldByStart_.end()) {
        dispatchQueue_.insert(held->second.begin(), held->second.end());
        heldByStart_.erase(held);
      }
    }
    for (auto d : op.after)
      if (auto dep = dependents_.find(d); dep != dependents_.end()) std::erase(dep->second, op.id);
    // What waited for it will not see it succeed: cancelled too, its blade planned again.
    if (auto dep = dependents_.find(op.id); dep != dependents_.end()) {
      for (auto w : dep->second) {
        if (auto wo = operations_.find(w); wo != operations_.end() && !wo->second.inFlight) {
          ids.push_back(w);
          replan_(wo->second.blade);
        }
      }
      dependents_.erase(dep);
    }
    operations_.erase(it);
  }
}

bool Reconciler::mayStart(const Operation& op) const {
  // After a restart nothing starts until every blade known before is confirmed: a server
  // being moved may still run on one not heard from yet.
  if (detector_.unconfirmed() > 0) return false;
  const std::string* bound = replanner_.bladeOf(op.server);
  if (!bound || *bound != op.blade) return false;
  for (const auto& other : registry_.runningOn(op.server))
    if (other != op.blade) return false;
  auto s = starting_.find(op.server);
  return s == starting_.end() || s->second == op.blade;
}

void Reconciler::dispatch(const std::string& blade, std::int64_t now) {
  auto qit = queues_.find(blade);
  if (qit == queues_.end() || qit->second.empty() || !detector_.takesSteps(blade)) {
    dispatchQueue_.erase(blade);
    return;
  }
  // Asked at the last moment: nothing is marked in flight that did not leave. Sent once
  // this loomd acts again (or never, by this process, if another now leads).
  if (!leadership_.actingNow()) {
    dispatchQueue_.insert(blade);
    return;
  }
  dispatchQueue_.erase(blade);
  // Per server strictly in order; across servers pipelined. A prepare-hypervisor step is
  // a barrier for everything behind it.
  // Written as text as the steps are taken: a tree of 50 defines' specs and its dump()
  // were a third of a failover's time in loomd (docs/PERFORMANCE.md).
  std::optional<protocol::PlanFrameWriter> frame;  // once a step leaves
  std::vector<std::string_view> seen;              // sorted: one step per server a message
  seen.reserve(qit->second.size());
  bool capped = false;
  for (auto id : qit->second) {
    auto& op = operations_.at(id);
    const bool barrier = op.kind == pool::StepKind::PrepareHypervisor;
    if (barrier && !seen.empty()) break;
    const auto at = std::lower_bound(seen.begin(), seen.end(), std::string_view(op.server));
    if (at != seen.end() && *at == op.server) continue;
    seen.insert(at, op.server);
    const bool waits =
        std::any_of(op.after.begin(), op.after.end(), [&](std::uint64_t d) { return operations_.count(d) > 0; });
    bool may = !op.inFlight && op.notBefore <= now && !waits;
    if (may && startsIt(op.kind) && !mayStart(op)) {
      may = false;
      if (auto s = starting_.find(op.server); s != starting_.end() && s->second != blade)
        heldByStart_[op.server].insert(blade);
    }
    if (may) {
      if (!frame)
        frame.emplace(std::min<std::size_t>(qit->second.size(), options_.maxStepsPerPlanMessage), leadership_.epoch());
      if (frame->steps() >= options_.maxStepsPerPlanMessage) {
        capped = true;
        break;
      }
      op.inFlight = true;
      op.deadline = now + options_.opTimeoutMs;
      deadlines_.emplace(op.deadline, op.id);
      ++op.attempts;
      if (startsIt(op.kind)) starting_[op.server] = blade;
      frame->step(op.id, op.kind, op.server, op.hypervisor, op.spec ? &*op.spec : nullptr);
    }
    if (barrier) break;
  }
  // The rest goes in the next message, on the next tick.
  if (capped) dispatchQueue_.insert(blade);
  if (!frame || frame->steps() == 0) return;
  counters_.sent += frame->steps();
  send_(blade, frame->finish());
}

void Reconciler::onStepResult(const std::string& blade, std::uint64_t id, bool ok, const std::string& error,
                              std::int64_t now) {
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
  // A step the plan no longer wants that failed or ran out is not sent again: retried, it
  // would sit in its blade's queue until that blade is planned again, and a start would
  // keep its server marked as starting there, holding its define on the blade the plan now
  // names (loom-sim seed 88020 operator).
  if (!ok && op.unplanned) {
    drop({id}, "cancelled", "no longer planned; " + error);
    return;
  }
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
  // A define sent before an apply changed the server carries the old spec (asked only of a
  // server with a restart pending: building a spec is not free at 10,000 defines).
  const bool current = op.kind == pool::StepKind::Define && op.spec && replanner_.restartPending(op.server) &&
                       op.spec == desired_.spec(op.server);
  using pool::StepKind;
  const std::string server = op.server, blade = op.blade, hypervisor = op.hypervisor;
  const StepKind kind = op.kind;
  if (!ok) {
    ++counters_.failed;
    const std::string why =
        std::string(pool::toString(kind)) + " failed after " + std::to_string(op.attempts) + " attempts: " + error;
    events_.add("error", blade, server, why);
    faults_[server] = why;
    retryServerAt_[server] = now + options_.opTimeoutMs * 2;
    // What waits for it will not run: its servers show why, and wait out the retry window.
    if (auto dep = dependents_.find(id); dep != dependents_.end())
      for (auto w : dep->second)
        if (auto wo = operations_.find(w);
            wo != operations_.end() && wo->second.server != server && startsIt(wo->second.kind)) {
          faults_[wo->second.server] = why;
          retryServerAt_[wo->second.server] = now + options_.opTimeoutMs * 2;
        }
    // The later steps for this server here depended on this one, and whatever waits for it.
    std::vector<std::uint64_t> later;
    for (auto qid : queues_[blade])
      if (qid != id && operations_.at(qid).server == server && !operations_.at(qid).inFlight) later.push_back(qid);
    drop({id}, "failed", error);
    if (!later.empty()) drop(std::move(later), "cancelled", "an earlier step failed");
    return;
  }
  // Whatever waited for it may go now.
  if (auto dep = dependents_.find(id); dep != dependents_.end())
    for (auto w : dep->second)
      if (auto wo = operations_.find(w); wo != operations_.end()) dispatchQueue_.insert(wo->second.blade);
  dependents_.erase(id);
  drop({id}, "done", "");
  const KnownBlade* k = registry_.find(blade);
  const auto identity = desired_.identities().find(server);
  const std::string uuid = identity ? identity->uuid : std::string();
  if (kind == StepKind::Define) {
    auto d = k ? k->domains.find(server) : decltype(k->domains.end()){};
    registry_.setDomain(blade, server, k && d != k->domains.end() ? d->second.state : pool::DomainState::Shutoff, uuid);
  } else if (kind == StepKind::Start) {
    registry_.setDomain(blade, server, pool::DomainState::Running, uuid);
    faults_.erase(server);
  } else if (kind == StepKind::Stop) {
    registry_.setDomain(blade, server, pool::DomainState::Shutoff, uuid);
  } else if (kind == StepKind::Undefine) {
    registry_.setDomain(blade, server, std::nullopt);
  } else if (kind == StepKind::PrepareHypervisor) {
    registry_.setPersonality(blade, hypervisor);
  }
  done_(blade, server, kind, current);
}

void Reconciler::lost(const std::string& blade) {
  auto it = queues_.find(blade);
  if (it == queues_.end()) return;
  for (auto id : it->second)
    if (auto op = operations_.find(id); op != operations_.end()) op->second.inFlight = false;
  dispatchQueue_.insert(blade);
}

void Reconciler::cancelAll(const std::string& blade, const std::string& why) {
  auto it = queues_.find(blade);
  if (it == queues_.end()) return;
  std::vector<std::uint64_t> ids(it->second.begin(), it->second.end());
  drop(std::move(ids), "cancelled", why);
}

void Reconciler::forgive(const std::string& server) {
  faults_.erase(server);
  retryServerAt_.erase(server);
}

void Reconciler::startsResume() {
  for (const auto& [blade, queue] : queues_)
    if (!queue.empty()) dispatchQueue_.insert(blade);
}

void Reconciler::expire(std::int64_t now) {
  nextDue_ = INT64_MAX;
  // Timeouts: an unanswered step counts as a failed attempt. Entries of operations that
  // were answered, or resent since (another deadline), are stale and skipped.
  std::vector<std::uint64_t> expired;
  while (!deadlines_.empty() && deadlines_.top().first <= now) {
    const auto [deadline, id] = deadlines_.top();
    deadlines_.pop();
    if (auto op = operations_.find(id);
        op != operations_.end() && op->second.inFlight && op->second.deadline == deadline)
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
  // Retry windows that closed: the server's blade is planned again.
  if (!retryServerAt_.empty() && now - lastRetryScan_ >= 100) {
    lastRetryScan_ = now;
    for (auto it = retryServerAt_.begin(); it != retryServerAt_.end();) {
      if (it->second > now) {
        ++it;
        continue;
      }
      if (const std::string* b = replanner_.bladeOf(it->first)) replan_(*b);
      it = retryServerAt_.erase(it);
    }
  }
  if (!backoffEnds_.empty()) nextDue_ = std::min(nextDue_, backoffEnds_.top().first);
  if (!retryServerAt_.empty()) nextDue_ = std::min(nextDue_, now + 100);
}

void Reconciler::dispatchPending(std::int64_t now) {
  if (dispatchQueue_.empty()) return;
  auto queue = std::move(dispatchQueue_);
  dispatchQueue_.clear();
  for (const auto& b : queue) dispatch(b, now);
}

const std::string* Reconciler::fault(const std::string& server) const {
  auto it = faults_.find(server);
  return it == faults_.end() ? nullptr : &it->second;
}

std::size_t Reconciler::queued(const std::string& blade) const {
  auto it = queues_.find(blade);
  return it == queues_.end() ? 0 : it->second.size();
}

}  // namespace loom::controller
