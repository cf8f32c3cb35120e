#include "node-agent/Agent.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <limits>

#include <spdlog/spdlog.h>

namespace loom::agent {

using protocol::Json;

Agent::Agent(AgentConfig config, std::unique_ptr<drivers::Driver> driver, Send send)
    : config_(std::move(config)),
      driver_(std::move(driver)),
      send_(std::move(send)),
      dispatcher_([blade = config_.blade](const std::string& line) { spdlog::warn("{}: {}", blade, line); }) {
  using namespace protocol;
  dispatcher_.on(type::kRegistered, [this](int, const Json& f) { onRegistered(f); });
  dispatcher_.on(type::kLeaseRenewed, [this](int, const Json& f) { onLeaseRenewed(f); });
  dispatcher_.on(type::kPlan, [this](int, const Json& f) { onPlan(f); });
  dispatcher_.on(type::kReregister, [this](int, const Json&) {
    registered_ = false;
    sendRegister(now_);
  });
}

Agent::~Agent() {
  if (!worker_) return;
  {
    std::lock_guard lock(worker_->mu);
    worker_->stop = true;
  }
  worker_->cv.notify_one();
  if (worker_->thread.joinable()) worker_->thread.join();
}

void Agent::start(std::int64_t now) {
  now_ = now;
  restoreSimState();
  if (config_.driverThread && !worker_) {
    worker_ = std::make_unique<Worker>();
    worker_->observed = observeDriver({});  // before the worker owns the driver
    worker_->thread = std::thread([this] { runWorker(); });
  }
  sendRegister(now);
}

void Agent::runWorker() {
  Worker& w = *worker_;
  std::unique_lock lock(w.mu);
  while (!w.stop) {
    // Idle: refresh the domain list now and then, so a guest that crashed or was shut
    // down from inside shows up in the heartbeats.
    if (!w.cv.wait_for(lock, std::chrono::milliseconds(1000),
                       [&] { return w.stop || !w.inbox.empty(); })) {
      auto previous = w.observed;
      lock.unlock();
      auto now = observeDriver(previous);
      lock.lock();
      w.observed = std::move(now);
      continue;
    }
    if (w.stop) break;
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
    queued_.erase(r.op);
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
  for (const auto& d : *list) out.push_back({d.name, d.uuid, drivers::toString(d.state)});
  return out;
}

void Agent::sendRegister(std::int64_t now) {
  protocol::Register r;
  r.blade = config_.blade;
  r.agentVersion = kAgentVersion;
  r.inventory = config_.inventory;
  // Whatever runs here now is reported as is: the controller keeps what is bound to this
  // blade (adoption) and never has a second copy started.
  r.domains = observe();
  lastReported_ = r.domains;
  lastRegisterSent_ = now;
  send_(protocol::encode(r));
}

void Agent::onFrame(std::string_view bytes, std::int64_t now) {
  now_ = now;
  lastHeardFromController_ = now;
  warnedSilence_ = false;
  dispatcher_.dispatch(0, "controller", bytes);
}

void Agent::onRegistered(const Json& frame) {
  auto m = protocol::decodeRegistered(frame);
  if (!registered_) spdlog::info("{}: registered (heartbeat {} ms, lease {} ms)", config_.blade, m.heartbeatMs, m.leaseMs);
  registered_ = true;
  heartbeatMs_ = std::max<std::int64_t>(m.heartbeatMs, 50);
  leaseMs_ = m.leaseMs;
  leaseDeadline_ = now_ + leaseMs_;
  // Spread the heartbeats of many simulated blades instead of sending them in lockstep.
  nextHeartbeat_ = now_ + static_cast<std::int64_t>(std::hash<std::string>{}(config_.blade) % static_cast<std::size_t>(heartbeatMs_));
  nextTick_ = std::min(nextTick_, nextHeartbeat_);
}

void Agent::onLeaseRenewed(const Json& frame) {
  auto m = protocol::decodeLeaseRenewed(frame);
  leaseDeadline_ = now_ + m.leaseMs;
}

void Agent::onPlan(const Json& frame) {
  auto plan = protocol::decodePlan(frame);
  bool changed = false;
  for (const auto& step : plan.steps) {
    if (auto it = recent_.find(step.op); it != recent_.end()) {
      send_(protocol::encode(it->second));
      continue;
    }
    if (worker_ && step.kind != "prepare-hypervisor") {
      // Steps keep their order in the worker's queue; a resend of one still queued or
      // running is answered when it finishes.
      if (!queued_.insert(step.op).second) continue;
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
  if (changed) {
    domainsChanged_ = true;
    saveSimState();
  }
}

protocol::StepResult Agent::execute(const protocol::PlanStep& step) {
  protocol::StepResult r{step.op, true, ""};
  Status s = okStatus();
  if (step.kind == "define") {
    if (!step.spec) return {step.op, false, "define without a spec"};
    s = driver_->define(*step.spec);
  } else if (step.kind == "start") {
    s = driver_->start(step.server);
  } else if (step.kind == "stop") {
    s = driver_->stop(step.server, 10000);
  } else if (step.kind == "undefine") {
    s = driver_->undefine(step.server);
  } else if (step.kind == "prepare-hypervisor") {
    // The test driver can play any personality; a real driver only its own.
    if (driver_->name() == "test" || driver_->name() == step.hypervisor) config_.inventory.personality = step.hypervisor;
    else s = makeError(Errc::Unsupported, "blade '" + config_.blade + "' runs the " + driver_->name() +
                                              " driver and cannot become a " + step.hypervisor + " blade in place");
  } else {
    s = makeError(Errc::Invalid, "unknown step kind '" + step.kind + "'");
  }
  if (!s) {
    r.ok = false;
    r.error = s.error().message;
    spdlog::warn("{}: {} {} failed: {}", config_.blade, step.kind, step.server, r.error);
  }
  return r;
}

void Agent::tick(std::int64_t now) {
  now_ = now;
  collectResults();
  // While the worker has steps, look back soon for their results.
  const std::int64_t soon = queued_.empty() ? std::numeric_limits<std::int64_t>::max() : now + 10;
  if (!registered_) {
    if (now - lastRegisterSent_ >= config_.registerRetryMs) {
      if (!warnedSilence_ && lastRegisterSent_ > 0 && now - lastHeardFromController_ > 5 * config_.registerRetryMs) {
        warnedSilence_ = true;
        spdlog::warn("{}: no answer from the controller yet (is it up? is this agent's key allowed?)", config_.blade);
      }
      sendRegister(now);
    }
    nextTick_ = std::min(lastRegisterSent_ + config_.registerRetryMs, soon);
    return;
  }
  // The controller went quiet (restarted, or the link broke): register again, which also
  // tells a restarted controller everything it needs.
  if (now - lastHeardFromController_ > 3 * heartbeatMs_ + 500) {
    registered_ = false;
    if (leaseDeadline_ < now) spdlog::warn("{}: lease expired; re-registering", config_.blade);
    sendRegister(now);
    nextTick_ = std::min(now + config_.registerRetryMs, soon);
    return;
  }
  if (now >= nextHeartbeat_) {
    protocol::Heartbeat hb;
    hb.seq = ++seq_;
    auto current = observe();
    // Unchanged domain lists are not resent (10,000 blades a second add up), except for
    // a periodic full report that repairs a lost one.
    if (domainsChanged_ || current.size() != lastReported_.size() || ++heartbeatsSinceFull_ >= 30 ||
        !std::equal(current.begin(), current.end(), lastReported_.begin(), [](const auto& a, const auto& b) {
          return a.name == b.name && a.state == b.state && a.uuid == b.uuid;
        })) {
      hb.domains = current;
      lastReported_ = std::move(current);
      domainsChanged_ = false;
      heartbeatsSinceFull_ = 0;
    }
    send_(protocol::encode(hb));
    nextHeartbeat_ = now + heartbeatMs_;
  }
  nextTick_ = std::min(nextHeartbeat_, soon);
}

// ---------------------------------------------------------------------------------------
// Simulated blade persistence. The test driver keeps its own domains (param state_file),
// restored without a second start because they never stopped; what the agent keeps here
// is the blade's personality, which a real blade keeps in its hypervisor install.

void Agent::restoreSimState() {
  if (config_.simStatePath.empty()) return;
  std::ifstream in(config_.simStatePath);
  if (!in) return;
  Json j = Json::parse(in, nullptr, false);
  if (!j.is_object()) {
    spdlog::warn("{}: ignoring unreadable simulator state '{}'", config_.blade, config_.simStatePath);
    return;
  }
  if (j.contains("personality") && j["personality"].is_string()) config_.inventory.personality = j["personality"].get<std::string>();
}

void Agent::saveSimState() {
  if (config_.simStatePath.empty()) return;
  const std::string tmp = config_.simStatePath + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << Json{{"blade", config_.blade}, {"personality", config_.inventory.personality}}.dump();
    if (!out) {
      spdlog::warn("{}: cannot write simulator state '{}'", config_.blade, tmp);
      return;
    }
  }
  std::rename(tmp.c_str(), config_.simStatePath.c_str());
}

}  // namespace loom::agent
