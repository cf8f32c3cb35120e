// Agent: plan steps through the driver — onPlan (resent steps answered from the cache,
// starts refused without a lease), the optional worker thread that runs driver calls
// off the agent's thread, execute(), fencing the domains, and the domain list reported.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "node-agent/Agent.h"
#include "node-agent/DomainSpecMapping.h"

namespace loom::agent {

using pool::isLive;
using protocol::Json;

void Agent::runWorker() {
  Worker& w = *worker_;
  std::unique_lock lock(w.mu);
  while (!w.stop) {
    // Idle: refresh the domain list now and then, so a guest that crashed or was shut
    // down from inside shows up in the heartbeats.
    if (!w.cv.wait_for(lock, std::chrono::milliseconds(1000), [&] { return w.stop || w.fence || !w.inbox.empty(); })) {
      auto previous = w.observed;
      lock.unlock();
      auto now = observeDriver(previous);
      lock.lock();
      w.observed = std::move(now);
      continue;
    }
    if (w.stop) break;
    if (w.fence) {
      w.fence = false;
      auto previous = w.observed;
      lock.unlock();
      fenceDomains();
      auto observed = observeDriver(previous);
      lock.lock();
      w.outbox.push_back(protocol::StepResult{0, true, ""});  // op 0: the agent's own, not a controller's step
      w.observed = std::move(observed);
      continue;
    }
    auto step = std::move(w.inbox.front());
    w.inbox.pop_front();
    auto previous = w.observed;
    lock.unlock();
    auto result = execute(step);
    auto observed = observeDriver(previous);
    lock.lock();
    w.outbox.push_back(std::move(result));
    w.observed = std::move(observed);
  }
}

// Agent thread: answers what the worker finished, in its execution order.
void Agent::collectResults() {
  if (!worker_) return;
  std::deque<protocol::StepResult> done;
  {
    std::lock_guard lock(worker_->mu);
    done.swap(worker_->outbox);
  }
  for (auto& r : done) {
    if (r.op == 0) {  // the agent's own fencing, not a controller's step
      domainsChanged_ = true;
      continue;
    }
    const auto queued = queued_.find(r.op);
    // Its leader has been replaced since: the new one plans from the blade's report, and
    // may have given the same id to another step.
    const bool replaced = queued != queued_.end() && queued->second != epochs_.highest();
    if (queued != queued_.end()) queued_.erase(queued);
    if (replaced) {
      domainsChanged_ = true;
      continue;
    }
    recent_[r.op] = r;
    recentOrder_.push_back(r.op);
    send_(protocol::encode(r));
    domainsChanged_ = true;
  }
  while (recentOrder_.size() > 4096) {
    recent_.erase(recentOrder_.front());
    recentOrder_.pop_front();
  }
}

std::vector<protocol::ObservedDomain> Agent::observe() {
  if (worker_) {
    std::lock_guard lock(worker_->mu);
    return worker_->observed;
  }
  return observeDriver(lastReported_);
}

std::vector<protocol::ObservedDomain> Agent::observeDriver(const std::vector<protocol::ObservedDomain>& fallback) {
  std::vector<protocol::ObservedDomain> out;
  auto list = driver_->list();
  if (!list) {
    spdlog::warn("{}: cannot list domains: {}", config_.blade, list.error().message);
    return fallback;
  }
  out.reserve(list->size());
  for (const auto& d : *list) out.push_back({d.name, d.uuid, d.state});
  return out;
}

void Agent::onPlan(const Json& frame) {
  auto plan = protocol::decodePlan(frame);
  bool changed = false;
  for (const auto& step : plan.steps) {
    if (auto it = recent_.find(step.op); it != recent_.end()) {
      send_(protocol::encode(it->second));
      continue;
    }
    if (step.kind == pool::StepKind::Start && (!leased_ || now_ >= leaseDeadline_)) {
      // Planned under a lease that ran out (a late frame): starting now could run the
      // server twice. Refused, not remembered: once registered again it may be resent.
      send_(protocol::encode(protocol::StepResult{step.op, false, "blade '" + config_.blade + "' holds no lease"}));
      continue;
    }
    // A server about to run may need a shield before the idle pause would end (a short lease).
    if (step.kind == pool::StepKind::Start) idleUntil_ = 0;
    if (worker_ && step.kind != pool::StepKind::PrepareHypervisor) {
      // Steps keep their order in the worker's queue; a resend of one still queued or
      // running is answered when it finishes. The same id from a newer leader is another
      // step: refused until the old one is done (the leader retries it).
      if (auto [it, fresh] = queued_.emplace(step.op, epochs_.highest()); !fresh) {
        if (it->second != epochs_.highest())
          send_(protocol::encode(protocol::StepResult{
              step.op, false, "operation " + std::to_string(step.op) + " of a replaced leader still runs here"}));
        continue;
      }
      {
        std::lock_guard lock(worker_->mu);
        worker_->inbox.push_back(step);
      }
      worker_->cv.notify_one();
      nextTick_ = std::min(nextTick_, now_ + 10);
      continue;
    }
    auto result = execute(step);
    changed = true;
    recent_[step.op] = result;
    recentOrder_.push_back(step.op);
    while (recentOrder_.size() > 4096) {
      recent_.erase(recentOrder_.front());
      recentOrder_.pop_front();
    }
    send_(protocol::encode(result));
  }
  if (changed) domainsChanged_ = true;
}

void Agent::fenceDomains() {
  // Power off every domain, as fast as the driver can.
  auto list = driver_->list();
  if (!list) {
    spdlog::error("{}: fencing: cannot list domains: {}", config_.blade, list.error().message);
    return;
  }
  for (const auto& d : *list)
    if (isLive(d.state))
      if (auto st = driver_->destroy(d.name); !st) spdlog::error("{}: fencing: {}", config_.blade, st.error().message);
}

protocol::StepResult Agent::execute(const protocol::PlanStep& step) {
  protocol::StepResult r{step.op, true, ""};
  Status s = okStatus();
  switch (step.kind) {
    case pool::StepKind::Define:
      if (!step.spec) return {step.op, false, "define without a spec"};
      s = driver_->define(toDomainSpec(*step.spec));
      break;
    case pool::StepKind::Start:
      s = driver_->start(step.server);
      break;
    case pool::StepKind::Stop:
      s = driver_->stop(step.server, 10000);
      break;
    case pool::StepKind::Undefine:
      s = driver_->undefine(step.server);
      break;
    case pool::StepKind::PrepareHypervisor: {
      // A real driver is its own hypervisor; a simulated one can play either.
      const auto hypervisor = pool::parseHypervisor(step.hypervisor);
      if (!hypervisor || !driver_->capabilities().personalities.has(*hypervisor)) {
        s = makeError(Errc::Unsupported, "blade '" + config_.blade + "' runs the " + driver_->name() +
                                             " driver and cannot become a " + step.hypervisor + " blade in place");
        break;
      }
      s = driver_->preparePersonality(*hypervisor);
      if (s) config_.inventory.personality = step.hypervisor;
      break;
    }
  }
  if (!s) {
    r.ok = false;
    r.error = s.error().message;
    spdlog::warn("{}: {} {} failed: {}", config_.blade, pool::toString(step.kind), step.server, r.error);
  }
  return r;
}

}  // namespace loom::agent
