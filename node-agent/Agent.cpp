#include "node-agent/Agent.h"

#include <cstdio>
#include <fstream>

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

void Agent::start(std::int64_t now) {
  now_ = now;
  restoreSimState();
  sendRegister(now);
}

std::vector<protocol::ObservedDomain> Agent::observe() {
  std::vector<protocol::ObservedDomain> out;
  auto list = driver_->list();
  if (!list) {
    spdlog::warn("{}: cannot list domains: {}", config_.blade, list.error().message);
    return lastReported_;
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
    if (s) specs_[step.spec->name] = *step.spec;
  } else if (step.kind == "start") {
    s = driver_->start(step.server);
  } else if (step.kind == "stop") {
    s = driver_->stop(step.server, 10000);
  } else if (step.kind == "undefine") {
    s = driver_->undefine(step.server);
    if (s) specs_.erase(step.server);
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
  if (!registered_) {
    if (now - lastRegisterSent_ >= config_.registerRetryMs) {
      if (!warnedSilence_ && lastRegisterSent_ > 0 && now - lastHeardFromController_ > 5 * config_.registerRetryMs) {
        warnedSilence_ = true;
        spdlog::warn("{}: no answer from the controller yet (is it up? is this agent's key allowed?)", config_.blade);
      }
      sendRegister(now);
    }
    nextTick_ = lastRegisterSent_ + config_.registerRetryMs;
    return;
  }
  // The controller went quiet (restarted, or the link broke): register again, which also
  // tells a restarted controller everything it needs.
  if (now - lastHeardFromController_ > 3 * heartbeatMs_ + 500) {
    registered_ = false;
    if (leaseDeadline_ < now) spdlog::warn("{}: lease expired; re-registering", config_.blade);
    sendRegister(now);
    nextTick_ = now + config_.registerRetryMs;
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
  nextTick_ = nextHeartbeat_;
}

// ---------------------------------------------------------------------------------------
// Simulated hypervisor persistence: the test driver lives in this process, so without
// this a killed agent would also "power off" its blade. Real hypervisors keep running.

void Agent::restoreSimState() {
  if (config_.simStatePath.empty()) return;
  std::ifstream in(config_.simStatePath);
  if (!in) return;
  Json j = Json::parse(in, nullptr, false);
  if (!j.is_object() || !j.contains("domains") || !j["domains"].is_array()) {
    spdlog::warn("{}: ignoring unreadable simulator state '{}'", config_.blade, config_.simStatePath);
    return;
  }
  if (j.contains("personality") && j["personality"].is_string()) config_.inventory.personality = j["personality"].get<std::string>();
  std::size_t running = 0;
  for (const auto& d : j["domains"]) {
    try {
      auto spec = protocol::domainSpecFromJson(d.at("spec"));
      if (!driver_->define(spec)) continue;
      specs_[spec.name] = spec;
      if (d.value("running", false) && driver_->start(spec.name)) ++running;
    } catch (const std::exception& e) {
      spdlog::warn("{}: skipping a simulator domain: {}", config_.blade, e.what());
    }
  }
  spdlog::info("{}: simulated hypervisor restored {} domains ({} running)", config_.blade, specs_.size(), running);
}

void Agent::saveSimState() {
  if (config_.simStatePath.empty()) return;
  Json domains = Json::array();
  std::map<std::string, bool> running;
  if (auto list = driver_->list())
    for (const auto& d : *list) running[d.name] = d.state == drivers::DomainState::Running;
  for (const auto& [name, spec] : specs_)
    if (running.count(name)) domains.push_back({{"spec", protocol::toJson(spec)}, {"running", running[name]}});
  const std::string tmp = config_.simStatePath + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << Json{{"blade", config_.blade}, {"personality", config_.inventory.personality}, {"domains", domains}}.dump();
    if (!out) {
      spdlog::warn("{}: cannot write simulator state '{}'", config_.blade, tmp);
      return;
    }
  }
  std::rename(tmp.c_str(), config_.simStatePath.c_str());
}

}  // namespace loom::agent
