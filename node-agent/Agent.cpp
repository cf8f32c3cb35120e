// Agent: the conversation with the controller — registration and its retries, the lease
// and heartbeats, self-fencing when the lease runs out — and tick(), which drives it. Plan
// steps through the driver: AgentSteps.cpp. The outage rule: AgentOutage.cpp.
#include "node-agent/Agent.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>
#include <utility>

#include "protocol/Fencing.h"

namespace loom::agent {

using pool::isLive;
using protocol::Json;

Agent::Agent(AgentConfig config, std::unique_ptr<drivers::Driver> driver, Send send, std::unique_ptr<LeaseGuard> guard)
    : config_(std::move(config)),
      driver_(std::move(driver)),
      send_(std::move(send)),
      guard_(std::move(guard)),
      dispatcher_([blade = config_.blade](const std::string& line) { spdlog::warn("{}: {}", blade, line); }),
      epochs_(config_.blade, config_.epochPath),
      shield_(config_.blade, 0),
      peerDispatcher_(
          [blade = config_.blade](const std::string& line) { spdlog::warn("{}: peer channel: {}", blade, line); }) {
  using namespace protocol;
  dispatcher_.on(type::kPolicy, [this](int, const Json& f) {
    if (admit(f)) onPolicy(f);
  });
  peerDispatcher_.on(type::kPeerAsk, [this](int, const Json& f) {
    const auto ask = decodePeerAsk(f);
    const PeerAnswer a = shield_.answer(now_);
    peerReply_ = encode(protocol::PeerAnswer{config_.blade, ask.seq, a.attest, a.validMs, a.retryMs});
  });
  peerDispatcher_.on(type::kPeerAnswer, [this](int, const Json& f) {
    const auto m = decodePeerAnswer(f);
    shield_.onAnswer(m.blade, m.seq, {m.attest, m.validMs, m.retryMs}, now_);
    renewGuard();
  });
  dispatcher_.on(type::kRegistered, [this](int, const Json& f) {
    if (admit(f)) onRegistered(f);
  });
  dispatcher_.on(type::kLeaseRenewed, [this](int, const Json& f) {
    const std::uint64_t before = epochs_.highest();
    if (!admit(f)) return;
    onLeaseRenewed(f);
    // A leader of a newer epoch answered our beat: a new term, which starts knowing no
    // blade's registration and starts nothing until every blade it knows has registered
    // (the restart gate). Register now rather than wait for its `reregister`, which its
    // core sends only once it has loaded the store (the answer came from its fabric
    // thread, which renews leases meanwhile); that ask then finds our register answered
    // (its seq is older). Once per epoch; a solo loomd's (epoch 0) never raises it.
    if (registered_ && epochs_.highest() > before) {
      spdlog::info("{}: a new leader (epoch {}) renewed our lease: registering with it now", config_.blade,
                   epochs_.highest());
      registered_ = false;
      registerAttempts_ = 0;
      sendRegister(now_);
    }
  });
  dispatcher_.on(type::kPlan, [this](int, const Json& f) {
    if (admit(f)) onPlan(f);
  });
  dispatcher_.on(type::kReregister, [this](int, const Json& f) {
    if (!admit(f)) return;
    // An ask that answers a beat sent before our latest register is answered by that
    // register already (a restarted controller asks once per beat it finds unknown).
    if (const auto m = decodeReregister(f); m.seq != 0 && m.seq <= lastBeatBeforeRegister_) {
      spdlog::debug("{}: reregister for beat {}, sent before our register: already answered", config_.blade, m.seq);
      return;
    }
    // Registered: the controller lost us (it restarted); say who we are at once. Not
    // registered: our register is on its way, and this answers a beat that crossed it.
    if (registered_) {
      registered_ = false;
      registerAttempts_ = 0;
      sendRegister(now_);
    } else {
      requestRegister(now_);
    }
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
  startedAt_ = now;
  // What a previous process of this agent promised is unknown: the shield starts from now
  // (docs/FENCING.md, "An agent restarted during an outage").
  shield_ = Shield(config_.blade, now);
  epochs_.load();
  loadPolicy();
  if (config_.driverThread && !worker_) {
    worker_ = std::make_unique<Worker>();
    worker_->observed = observeDriver({});  // before the worker owns the driver
    worker_->thread = std::thread([this] { runWorker(); });
  }
  sendRegister(now);
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
  lastBeatBeforeRegister_ = seq_;
  ++registerAttempts_;
  if (firstUnansweredRegister_ < 0) firstUnansweredRegister_ = now;
  r.seq = ++registerSeq_;
  r.uptimeMs = now - startedAt_;
  registerSentAt_.emplace_back(r.seq, now);
  if (registerSentAt_.size() > 64) registerSentAt_.pop_front();
  send_(protocol::encode(r));
}

void Agent::requestRegister(std::int64_t now) {
  registered_ = false;
  if (now - lastRegisterSent_ >= registerRetryDelay()) sendRegister(now);
  nextTick_ = std::min(nextTick_, lastRegisterSent_ + registerRetryDelay());
}

std::int64_t Agent::registerRetryDelay() const {
  const int doublings = std::clamp(registerAttempts_ - 1, 0, 2);
  const std::int64_t base = std::max<std::int64_t>(config_.registerRetryMs, 1) << doublings;
  // Deterministic per blade and attempt: 10,000 agents that lost their controller at the
  // same moment spread their registers over half a delay instead of sending in lockstep.
  const std::size_t h =
      std::hash<std::string>{}(config_.blade) ^ (static_cast<std::size_t>(registerAttempts_) * 0x9e3779b97f4a7c15ULL);
  return base + static_cast<std::int64_t>(h % static_cast<std::size_t>(base / 2 + 1));
}

void Agent::onFrame(std::string_view bytes, std::int64_t now) {
  now_ = now;
  // A frame read after the lease ran out (a SIGSTOPped agent waking up) must not act under
  // it: fence first, then handle it.
  if (now >= fenceAt()) selfFence(now);
  dispatcher_.dispatch(0, "controller", bytes);
  // A frame can make an ask due sooner than the tick planned: a start ends the idle pause,
  // a short lease brings the asks forward, a policy names the members. The next tick looks
  // then, not at the fence (loom-sim seed 61660 chaos: a start under a late registration's
  // short lease waited for the tick that fenced it).
  nextTick_ = std::min(nextTick_, shieldDueAt());
}

bool Agent::admit(const Json& frame) {
  const auto verdict = epochs_.admit(protocol::epochOf(frame), frame["type"].get_ref<const std::string&>());
  if (verdict == EpochGuard::Verdict::Refuse) return false;
  if (verdict == EpochGuard::Verdict::Raise) {
    // A new leader numbers its operations from the store, where the old one's last ids may
    // never have arrived: an answer cached for an old id is not an answer to a new step.
    recent_.clear();
    recentOrder_.clear();
  }
  lastHeardFromController_ = now_;
  warnedSilence_ = false;
  warnedQuiet_ = false;
  return true;
}

void Agent::takeStamp(std::uint64_t stamp) {
  if (stamp == 0) return;  // a controller that does not know the rule
  lastStamp_ = stamp;
  shield_.heardController(now_);
}

void Agent::onRegistered(const Json& frame) {
  auto m = protocol::decodeRegistered(frame);
  takeStamp(m.stamp);
  heartbeatMs_ = std::max<std::int64_t>(m.heartbeatMs, 50);
  leaseMs_ = m.leaseMs;
  // The lease counts from when we sent the register it answers (echoed seq); from a
  // controller that does not echo, from the earliest one not answered yet.
  std::int64_t sent = firstUnansweredRegister_ >= 0 ? firstUnansweredRegister_ : lastRegisterSent_;
  if (m.seq) {
    auto it =
        std::find_if(registerSentAt_.begin(), registerSentAt_.end(), [&](const auto& e) { return e.first == m.seq; });
    if (it == registerSentAt_.end()) return;  // an answer to a register we no longer know: wait for a newer one
    sent = it->second;
  }
  if (sent + leaseMs_ - std::max<std::int64_t>(leaseMs_ / 10, 1) <= now_) {
    // An answer too late to hold a lease (a controller busy restarting): being registered
    // without a lease would refuse every start for good. Ask again.
    // Not at once, though: late answers come in bursts from an overloaded controller, and
    // answering each with a register would only add to its load.
    spdlog::warn("{}: registration answered {} ms after it was sent, too late for its {} ms lease; registering again",
                 config_.blade, now_ - sent, leaseMs_);
    firstUnansweredRegister_ = -1;
    requestRegister(now_);
    return;
  }
  if (!registered_)
    spdlog::info("{}: registered (heartbeat {} ms, lease {} ms)", config_.blade, m.heartbeatMs, m.leaseMs);
  registered_ = true;
  registerAttempts_ = 0;
  firstUnansweredRegister_ = -1;
  registerSentAt_.clear();
  heartbeatSentAt_.clear();
  if (!leased_) leaseDeadline_ = 0;
  leased_ = true;
  extendLease(sent + leaseMs_);
  // Spread the heartbeats of many simulated blades instead of sending them in lockstep.
  nextHeartbeat_ = now_ + static_cast<std::int64_t>(std::hash<std::string>{}(config_.blade) %
                                                    static_cast<std::size_t>(heartbeatMs_));
  // A late answer (a register that waited out a partition) may leave less lease than that
  // beat and its answer need before the fence: beat at once, or the servers loomd starts
  // here now would be ended within the second (loom-sim seeds 5468 and 8561 chaos).
  if (leaseDeadline_ - std::max<std::int64_t>(leaseMs_ / 10, 1) - heartbeatMs_ <= nextHeartbeat_) nextHeartbeat_ = now_;
  nextTick_ = std::min(nextTick_, nextHeartbeat_);
}

void Agent::onLeaseRenewed(const Json& frame) {
  auto m = protocol::decodeLeaseRenewed(frame);
  takeStamp(m.stamp);
  // A renewal after the lease ran out renews nothing: this blade fenced itself and must
  // register again (the controller decides whether it is trusted).
  if (!leased_ || !registered_) return;
  while (!heartbeatSentAt_.empty() && heartbeatSentAt_.front().first < m.seq) heartbeatSentAt_.pop_front();
  if (heartbeatSentAt_.empty() || heartbeatSentAt_.front().first != m.seq) return;  // not one we know the time of
  extendLease(heartbeatSentAt_.front().second + m.leaseMs);
  heartbeatSentAt_.pop_front();
}

void Agent::extendLease(std::int64_t deadline) {
  if (deadline <= leaseDeadline_) return;
  leaseDeadline_ = deadline;
  shield_.leaseEndsAt(deadline, leaseMs_, heartbeatMs_);
  renewGuard();
}

std::int64_t Agent::holdUntil() const {
  const std::int64_t lease = leased_ ? leaseDeadline_ : 0;
  return std::max(lease, shield_.shieldEnd());
}

void Agent::renewGuard() {
  const std::int64_t until = holdUntil();
  // Earlier too, not only later: a newer policy whose quorum set the credits do not cover
  // ends the shield, and loomd drops the older version once this blade echoes the newer
  // one, so it may fence this blade at the end of its lease. A guard left at the old
  // shield's end would fire after the failover (loom-sim seed 14111 chaos: the agent was
  // killed just after taking the policy). 0: nothing held since it fenced itself.
  if (until > 0 && until != guardUntil_) {
    guardUntil_ = until;
    if (guard_ && !powerFenced_) guard_->renew(until - now_);
  }
  nextTick_ = std::min(nextTick_, fenceAt());
}

std::int64_t Agent::fenceAt() const {
  // A power-fenced blade never fences itself: its BMC is the authority (docs/FENCING.md).
  // A blade that never held a lease or a shield in this process has nothing it was given.
  const std::int64_t until = holdUntil();
  if (powerFenced_ || until == 0) return std::numeric_limits<std::int64_t>::max();
  // Ahead of the deadline by a tenth of the lease: the domains must be gone by then, and
  // destroying them takes a moment (the guard fires at the deadline itself).
  return until - std::max<std::int64_t>(leaseMs_ / 10, 1);
}

void Agent::selfFence(std::int64_t now) {
  const std::int64_t held = holdUntil();
  leased_ = false;
  registered_ = false;
  // What the peers gave shielded the servers this fencing ends: nothing is left to hold.
  shield_.drop();
  holdSince_ = -1;
  std::size_t ended = 0;
  if (worker_) {
    // Ahead of everything queued: what was queued was planned under the lost lease.
    {
      std::lock_guard lock(worker_->mu);
      for (const auto& step : worker_->inbox) queued_.erase(step.op);
      worker_->inbox.clear();
      worker_->fence = true;
      for (const auto& d : worker_->observed) ended += isLive(d.state);
    }
    worker_->cv.notify_one();
  } else {
    for (const auto& d : observe()) ended += isLive(d.state);
    fenceDomains();
  }
  domainsChanged_ = true;
  const std::int64_t left = held - now;
  const auto [support, members] = shield_.support(now);
  spdlog::error("{}: lease not renewed{}, {} {} ms: fencing {} running domain(s) here, then registering again",
                config_.blade,
                members ? " and no shield from a majority of the " + std::to_string(members) + " peers" : std::string(),
                left >= 0 ? "it runs out in" : "it ran out", left >= 0 ? left : -left, ended);
  requestRegister(now);
}

void Agent::tick(std::int64_t now) {
  now_ = now;
  collectResults();
  if (now >= fenceAt()) selfFence(now);
  // Asked whether or not loomd knows this agent: one restarted while loomd is away holds
  // its adopted servers only under a shield.
  tendShield(now);
  // Registered but holding no lease is a dead end (every start refused): register again.
  if (registered_ && !leased_) requestRegister(now);
  // While the worker has steps, look back soon for their results; while it may need a
  // shield, when the next ask is due.
  const std::int64_t soon =
      std::min(queued_.empty() ? std::numeric_limits<std::int64_t>::max() : now + 10, shieldDueAt());
  if (!registered_) {
    if (now - lastRegisterSent_ >= registerRetryDelay()) {
      // Silent for five retries counted from the first register not answered (or the last
      // word heard, if later): not from the epoch, which warned at every start.
      const std::int64_t since = std::max(lastHeardFromController_, firstUnansweredRegister_);
      if (!warnedSilence_ && firstUnansweredRegister_ >= 0 && now - since > 5 * config_.registerRetryMs) {
        warnedSilence_ = true;
        spdlog::warn("{}: no answer from the controller yet (is it up? is this agent's key allowed?)", config_.blade);
      }
      sendRegister(now);
    }
    nextTick_ = std::min({lastRegisterSent_ + registerRetryDelay(), soon, fenceAt()});
    return;
  }
  // The controller went quiet (restarted, overloaded, or the link broke). Keep beating:
  // every beat now asks for an answer, a restarted controller answers `reregister`, and
  // the lease decides when to fence. Registering instead would cost an overloaded
  // controller far more than a heartbeat, 10,000 times over (docs/PERFORMANCE.md).
  if (now - lastHeardFromController_ > 3 * heartbeatMs_ + 500 && !warnedQuiet_) {
    warnedQuiet_ = true;
    spdlog::warn("{}: nothing from the controller for {} ms; still beating, lease left {} ms", config_.blade,
                 now - lastHeardFromController_, std::max<std::int64_t>(0, leaseDeadline_ - now));
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
    // An answer is asked for only once the lease has run down by a heartbeat and a half
    // (every other beat at the defaults): a lost answer still leaves the next beats time
    // to ask before the lease ends, and the controller sends half the messages. A lease
    // shorter than three beats has no such room: every beat asks. Under an outage policy
    // every beat asks too: each answer's stamp starts the commit window afresh, and the
    // time a blade has to collect a shield counts from its last (docs/FENCING.md).
    hb.ack =
        leaseMs_ < 3 * heartbeatMs_ || leaseDeadline_ - now <= leaseMs_ - (3 * heartbeatMs_) / 2 || !peers_.empty();
    hb.echo = lastStamp_;
    hb.policyVersion = shield_.policy().version;
    hb.shieldMs = shield_.attestingMs(now);
    hb.holding = holding();
    if (heldReport_ && heldReportsLeft_ > 0) {
      hb.held = heldReport_;
      if (--heldReportsLeft_ == 0) heldReport_.reset();
    }
    if (send_(protocol::encode(hb))) {
      heartbeatSentAt_.emplace_back(hb.seq, now);
      if (heartbeatSentAt_.size() > 64) heartbeatSentAt_.pop_front();
      nextHeartbeat_ = now + heartbeatMs_;
    } else {
      // Not connected (the controller restarting): try again shortly rather than a whole
      // beat later, so the first beat after the reconnect renews the lease at once. The
      // domain list it carried was not delivered.
      if (hb.domains) domainsChanged_ = true;
      nextHeartbeat_ = now + std::min(heartbeatMs_, kUnsentRetryMs);
    }
  }
  nextTick_ = std::min({nextHeartbeat_, soon, fenceAt()});
}

}  // namespace loom::agent
