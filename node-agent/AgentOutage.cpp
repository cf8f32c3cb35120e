// Agent: the outage rule (docs/FENCING.md) — the policy loomd sends (kept across
// restarts), the peer channel, the shield asked of the peers when loomd is quiet, and the
// hold of running servers under it.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>
#include <utility>

#include "node-agent/Agent.h"
#include "protocol/Fencing.h"

namespace loom::agent {

using pool::isLive;
using protocol::Json;

void Agent::onPolicy(const Json& frame) {
  const auto m = protocol::decodePolicy(frame);
  QuorumPolicy policy{m.version, m.powerFenced, m.commitMs, m.attestMs, {}};
  for (const auto& a : m.members) policy.members.push_back(a.blade);
  if (!shield_.setPolicy(std::move(policy))) return;  // not newer than ours: it crossed a newer one
  powerFenced_ = m.powerFenced;
  peers_.clear();
  for (const auto& a : m.members) peers_[a.blade] = a;
  spdlog::info("{}: outage policy {}: fencing by {}, {} peers in the quorum set{}", config_.blade, m.version,
               m.powerFenced ? "power (its BMC; it never fences itself)" : "lease", m.members.size(),
               peers_.count(config_.blade) ? ", this blade one of them" : "");
  savePolicy();
  if (powerFenced_) {
    if (guard_) guard_->disarm();
    guardUntil_ = 0;  // armed again from the next lease, should the blade leave the power route
  }
  renewGuard();
}

std::optional<protocol::Json> Agent::onPeerFrame(std::string_view bytes, std::int64_t now) {
  now_ = now;
  // An answer read after the hold ran out (a frozen agent waking up) shields nothing that
  // is still running: fence first.
  if (now >= fenceAt()) selfFence(now);
  peerReply_.reset();
  peerDispatcher_.dispatch(0, "peer", bytes);
  nextTick_ = std::min(nextTick_, shieldDueAt());  // a refusal's retry may be sooner than the resend
  return std::exchange(peerReply_, std::nullopt);
}

std::size_t Agent::runningDomains() {
  std::size_t n = 0;
  for (const auto& d : observe()) n += isLive(d.state);
  return n;
}

std::int64_t Agent::shieldDueAt() const {
  if (!peerSend_ || powerFenced_ || peers_.empty()) return std::numeric_limits<std::int64_t>::max();
  const std::int64_t due = std::max(shield_.nextDueAt(), idleUntil_);
  return holdSince_ >= 0 ? std::min(due, now_ + 1000) : due;
}

void Agent::tendShield(std::int64_t now) {
  if (!peerSend_ || powerFenced_ || peers_.empty()) return;
  const bool leaseLive = leased_ && now < leaseDeadline_;
  const bool askDue = shield_.nextDueAt() <= now && idleUntil_ <= now;
  if (!askDue && leaseLive && holdSince_ < 0) return;  // the common case: nothing to look at
  // Only running servers need a shield; a blade that ended its own has nothing to hold.
  const std::size_t running = runningDomains();
  if (askDue && running > 0) {
    for (const auto& ask : shield_.asksDue(now))
      if (auto it = peers_.find(ask.member); it != peers_.end())
        peerSend_(it->second, protocol::encode(protocol::PeerAsk{config_.blade, ask.seq}));
    renewGuard();  // its own attestation may have moved the shield
  }
  // Nothing runs here: nothing to ask for; looked at again in a while (a start would
  // come with a lease anyway).
  idleUntil_ = askDue && running == 0 ? now + 1000 : 0;
  const auto [support, members] = shield_.support(now);
  if (!leaseLive && shield_.shieldEnd() > now && running > 0) {
    if (holdSince_ < 0) {
      holdSince_ = now;
      holdLoggedAt_ = now;
      spdlog::warn(
          "{}: no lease from the controller: holding {} running server(s) under a shield from {} of {} peers "
          "(until +{} ms, renewed while they answer); nothing starts or stops here meanwhile",
          config_.blade, running, support, members, shield_.shieldEnd() - now);
    } else if (now - holdLoggedAt_ >= 30000) {
      holdLoggedAt_ = now;
      spdlog::warn("{}: still holding {} server(s) without the controller for {} s, shield from {} of {} peers",
                   config_.blade, running, (now - holdSince_) / 1000, support, members);
    }
    holdServers_ = running;
  } else if (holdSince_ >= 0 && leaseLive) {
    heldReport_ = protocol::Heartbeat::Held{now - holdSince_, static_cast<std::uint32_t>(holdServers_),
                                            static_cast<std::uint32_t>(support), static_cast<std::uint32_t>(members)};
    heldReportsLeft_ = 3;
    spdlog::info("{}: the controller renewed the lease again: held {} server(s) for {} ms without it", config_.blade,
                 holdServers_, now - holdSince_);
    holdSince_ = -1;
  }
}

void Agent::savePolicy() const {
  if (config_.policyPath.empty() || shield_.policy().version == 0) return;
  protocol::Policy p{shield_.policy().version, powerFenced_, shield_.policy().commitMs, shield_.policy().attestMs, {}};
  for (const auto& [_, a] : peers_) p.members.push_back(a);
  const std::string tmp = config_.policyPath + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << protocol::encode(p).dump() << "\n";
    if (!out) {
      spdlog::warn("{}: cannot write the outage policy to '{}'", config_.blade, tmp);
      return;
    }
  }
  if (std::rename(tmp.c_str(), config_.policyPath.c_str()) != 0)
    spdlog::warn("{}: cannot write the outage policy to '{}'", config_.blade, config_.policyPath);
}

void Agent::loadPolicy() {
  if (config_.policyPath.empty()) return;
  std::ifstream in(config_.policyPath);
  if (!in) return;
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Json frame;
  if (auto bad = protocol::parseFrame(text, frame);
      bad || protocol::validate(frame) || frame["type"] != protocol::type::kPolicy) {
    spdlog::warn("{}: ignoring an unreadable outage policy in '{}'", config_.blade, config_.policyPath);
    return;
  }
  onPolicy(frame);
}

}  // namespace loom::agent
