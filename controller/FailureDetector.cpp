#include "controller/FailureDetector.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

namespace loom::controller {
namespace {

bool silent(pool::BladeState s) { return s == pool::BladeState::Suspect || s == pool::BladeState::Failed; }

bool retired(const KnownBlade* k) { return k && k->adminState == "retired"; }

// One value for /bin/sh, whatever it contains (a hostname comes from the network).
std::string shellQuote(const std::string& v) {
  std::string out = "'";
  for (char c : v) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

const Liveness kUnknown;

}  // namespace

void FailureDetector::restore(const std::string& blade, bool isRetired, std::int64_t now) {
  Liveness& l = at(blade);
  l.lastHeartbeat = now;  // grace: agents re-register after a controller restart
  // The previous process may have renewed its lease just before it died.
  l.leaseUntil = now + options_.leaseMs;
  leases_.grant(blade, now);
  if (isRetired)
    ++retired_;
  else {
    l.confirmed = false;
    ++unconfirmed_;
  }
  watch(blade, l, now);
}

void FailureDetector::registered(const std::string& blade, std::int64_t now) {
  Liveness& l = at(blade);
  l.lastHeartbeat = now;
  l.leaseUntil = now + options_.leaseMs;
  heardFrom(blade, l, now);
  watch(blade, l, now);
  if (!l.confirmed) confirm(l);
  checkTrust(blade, now);
  updateRoutine(blade, l);
}

void FailureDetector::heartbeat(const std::string& blade, std::int64_t now) {
  Liveness& l = at(blade);
  l.lastHeartbeat = now;
  heardFrom(blade, l, now);
  watch(blade, l, now);
}

void FailureDetector::leaseRenewed(const std::string& blade, std::optional<std::int64_t> now) {
  Liveness& l = at(blade);
  if (now) {
    l.leaseUntil = *now + options_.leaseMs;
    return;
  }
  if (auto renewed = leases_.lastRenewal(blade)) l.leaseUntil = std::max(l.leaseUntil, *renewed + options_.leaseMs);
  updateRoutine(blade, l);
}

void FailureDetector::holds(const std::string& blade, const protocol::Heartbeat& msg) {
  Liveness& l = at(blade);
  if (msg.holding != l.holding) {
    l.holding = msg.holding;
    if (msg.holding)
      events_.add("warning", blade, "", "blade holds its servers under its peers' shield, without a lease");
  }
  if (msg.held && (!l.lastHold || l.lastHold->ms != msg.held->ms || l.lastHold->servers != msg.held->servers)) {
    l.lastHold = msg.held;
    l.lastHoldAtMs = wallClock_();
    events_.add("warning", blade, "",
                "blade held " + std::to_string(msg.held->servers) + " server(s) for " + std::to_string(msg.held->ms) +
                    " ms without the controller, under a shield from " + std::to_string(msg.held->support) + " of " +
                    std::to_string(msg.held->members) + " peers");
  }
}

void FailureDetector::updateRoutine(const std::string& blade, Liveness& l) {
  if (!options_.fabricRenewsLeases) return;  // no fabric thread: every beat comes here
  const KnownBlade* k = registry_.find(blade);
  const bool routine = k && k->registered && l.health == pool::BladeState::Available && !l.returned;
  if (routine == l.routine) return;
  l.routine = routine;
  leases_.setRoutine(blade, routine);
}

std::int64_t FailureDetector::lastHeard(const std::string& blade) const {
  const Liveness* l = find(blade);
  if (!l) return 0;
  return l->routine ? std::max(l->lastHeartbeat, leases_.heard(blade)) : l->lastHeartbeat;
}

std::int64_t FailureDetector::leaseLeft(const std::string& blade, std::int64_t now) const {
  const Liveness* l = find(blade);
  return l ? leaseLeft(*l, leases_.seen(blade), now) : 0;
}

void FailureDetector::recheck(const std::string& blade, Liveness& l, std::int64_t when) {
  l.livenessAt = when;
  due_.emplace(when, blade);
}

void FailureDetector::watch(const std::string& blade, Liveness& l, std::int64_t now) {
  if (retired(registry_.find(blade)) || l.health == pool::BladeState::Fenced || l.heldByStorm) return;
  // Silence strictly longer than a limit changes the state (see tick); a failed blade is
  // looked at again when the lease we granted it has run out, plus the margin.
  std::int64_t due = 0;
  switch (l.health) {
    case pool::BladeState::Suspect:
      due = l.lastHeartbeat + options_.deadMs + 1;
      break;
    case pool::BladeState::Failed:
      due = l.leaseUntil + options_.fenceMarginMs;
      break;
    default:
      due = l.lastHeartbeat + options_.suspectMs + 1;
      break;
  }
  due = std::max(due, now + 1);
  // An entry that comes due no later is there already: when it does, the blade is put
  // back for its then due time. Only an earlier due time needs a new entry.
  if (l.livenessAt != 0 && l.livenessAt <= due) return;
  recheck(blade, l, due);
}

// Only blades whose silence may have crossed a limit are looked at. available -> suspect
// -> failed: marks only; a silent blade may still run its servers (invariant 1), so the
// planner keeps them bound there. failed -> fenced: see mayFenceByLease.
void FailureDetector::tick(std::int64_t now) {
  while (!due_.empty() && due_.top().first <= now) {
    const auto [due, name] = due_.top();
    due_.pop();
    auto it = blades_.find(name);
    if (it == blades_.end() || it->second.livenessAt != due) continue;  // superseded by an earlier entry
    Liveness& l = it->second;
    l.livenessAt = 0;
    if (retired(registry_.find(name)) || l.health == pool::BladeState::Fenced) continue;
    l.lastHeartbeat = lastHeard(name);
    std::int64_t silence = now - l.lastHeartbeat;
    if (l.routine && silence > options_.suspectMs) {
      // Its beats stay in the fabric thread: have them handed on from now, then look
      // again, counting one that arrived in between.
      l.routine = false;
      l.lastHeartbeat = std::max(l.lastHeartbeat, leases_.setRoutine(name, false));
      silence = now - l.lastHeartbeat;
      if (silence <= options_.suspectMs) updateRoutine(name, l);
    }
    if (l.health == pool::BladeState::Available && silence > options_.suspectMs) {
      events_.add("warning", name, "", "blade suspect: no heartbeat for " + std::to_string(silence) + " ms");
      setHealth(name, l, pool::BladeState::Suspect, now);
    }
    if (l.health == pool::BladeState::Suspect && silence > options_.deadMs) {
      events_.add("error", name, "",
                  "blade failed: no heartbeat for " + std::to_string(silence) +
                      " ms; its servers stay bound to it until it is fenced (its lease runs out in " +
                      std::to_string(std::max<std::int64_t>(0, l.leaseUntil - now)) + " ms)");
      setHealth(name, l, pool::BladeState::Failed, now);
      startFenceCommand(name, l, now);
    }
    if (auto renewed = leases_.lastRenewal(name)) l.leaseUntil = std::max(l.leaseUntil, *renewed + options_.leaseMs);
    if (l.health == pool::BladeState::Failed && now >= l.leaseUntil + options_.fenceMarginMs) {
      if (mayFenceByLease(name, l, now) != Verdict::Fence) continue;
      ++counters_.byLease;
      fence(name, l,
            "lease expired " + std::to_string(now - l.leaseUntil) + " ms ago (margin " +
                std::to_string(options_.fenceMarginMs) + " ms), no heartbeat for " + std::to_string(silence) +
                " ms; its agent or its watchdog ended its domains by then",
            now);
      continue;
    }
    watch(name, l, now);
  }
  retryFenceCommands(now);
}

void FailureDetector::retryFenceCommands(std::int64_t now) {
  while (!fenceDue_.empty() && fenceDue_.top().first <= now) {
    const auto [due, name] = fenceDue_.top();
    fenceDue_.pop();
    auto it = blades_.find(name);
    if (it == blades_.end() || it->second.nextFenceAt != due) continue;  // superseded, or heard/fenced since
    Liveness& l = it->second;
    l.nextFenceAt = 0;
    if (l.health != pool::BladeState::Failed) continue;
    ++counters_.commandRetries;
    startFenceCommand(name, l, now);
  }
}

FailureDetector::Verdict FailureDetector::mayFenceByLease(const std::string& name, Liveness& l, std::int64_t now) {
  // Asked now, not at the start of the tick: a loomd frozen in between may have lost its
  // term, and another leader may have renewed this blade's lease meanwhile.
  if (!leadership_.actingNow()) {
    recheck(name, l, now + 250);
    return Verdict::Wait;
  }
  // A lease the previous leader granted is in no LeaseTable of ours.
  if (const std::int64_t floor = leaseFloor_ + options_.leaseMs + options_.fenceMarginMs; now < floor) {
    recheck(name, l, floor);
    return Verdict::Wait;
  }
  if (stormActive_) {
    l.heldByStorm = true;  // looked at again when the guard lifts (setHealth)
    return Verdict::Held;
  }
  // A blade that may run a power-fenced policy never fences itself: only its BMC (the
  // fence command) or an operator can say its servers are gone.
  if (quorum_.mayBePowerFenced(name)) {
    if (!l.withheldNoted) {
      l.withheldNoted = true;
      events_.add(
          "error", name, "",
          "blade not fenced by its lease: it is power-fenced (it never fences itself); its servers stay bound to it "
          "until the fence command confirms power-off, or an operator does (loomctl blade fence " +
              name + " --confirm-powered-off)");
    }
    recheck(name, l, now + 1000);
    return Verdict::Wait;
  }
  // Atomic with the fabric thread's renewals: a heartbeat it answered a moment ago (still
  // on its way to us) wins, and none is answered after this. And only while we count a
  // quorum: then no shield can keep its servers running (docs/FENCING.md).
  const auto verdict = leases_.fenceIfExpired(name, now, options_.leaseMs + options_.fenceMarginMs);
  if (verdict == LeaseTable::Fence::LeaseLive) {
    if (auto renewed = leases_.lastRenewal(name)) l.leaseUntil = std::max(l.leaseUntil, *renewed + options_.leaseMs);
    watch(name, l, now);
    return Verdict::Wait;
  }
  if (verdict == LeaseTable::Fence::NoQuorum) {
    if (!l.withheldNoted) {
      l.withheldNoted = true;
      ++counters_.withheld;
      const auto count = leases_.countQuorum(now);
      events_.add("error", name, "",
                  "blade not fenced: its lease ran out, but loomd counts " + std::to_string(count.counted) +
                      " of the " + std::to_string(count.members) +
                      " quorum members (it needs half), so the blade may hold its servers under its peers' shield; "
                      "its servers stay bound to it");
    }
    recheck(name, l, now + 250);
    return Verdict::Wait;
  }
  return Verdict::Fence;
}

void FailureDetector::setHealth(const std::string& blade, Liveness& l, pool::BladeState next, std::int64_t now) {
  if (l.health == next) return;
  if (silent(l.health) != silent(next)) {
    if (silent(next))
      ++silent_;
    else
      --silent_;
  }
  const pool::BladeState from = l.health;
  l.health = next;
  listener_.healthChanged(blade, from);
  const bool up = stormGuardUp();
  if (up == stormActive_) return;
  stormActive_ = up;
  const std::string counts = std::to_string(silent_) + " of " + std::to_string(activeBlades()) + " blades";
  if (up) {
    ++counters_.storms;
    events_.add(
        "error", "", "",
        "fencing suspended: " + counts + " are silent at once (more than " +
            std::to_string(static_cast<int>(options_.stormShare * 100)) +
            "%); more likely this controller is cut off than they all died, so nothing is fenced and no server moves "
            "until they are heard again or fewer are silent");
    return;
  }
  events_.add("warning", "", "", "fencing resumed: " + counts + " silent");
  for (auto& [name, other] : blades_) {
    if (other.health != pool::BladeState::Failed) continue;
    other.heldByStorm = false;
    startFenceCommand(name, other, now);
    watch(name, other, now);
  }
}

void FailureDetector::confirm(Liveness& l) {
  l.confirmed = true;
  if (--unconfirmed_ > 0) return;
  events_.add("info", "", "",
              "every blade known before the restart has registered again or been fenced: starts resume");
  listener_.startsResume();
}

bool FailureDetector::stormGuardUp() const {
  return silent_ >= options_.stormMinBlades &&
         static_cast<double>(silent_) > options_.stormShare * static_cast<double>(activeBlades());
}

void FailureDetector::heardFrom(const std::string& blade, Liveness& l, std::int64_t now) {
  l.heldByStorm = false;
  l.withheldNoted = false;
  if (l.health != pool::BladeState::Available && l.health != pool::BladeState::Fenced) {
    // A new silence starts its fence commands afresh.
    l.fenceAttempts = 0;
    l.nextFenceAt = 0;
    l.lastFenceError.clear();
    l.lastFenceKind.clear();
  }
  if (l.health == pool::BladeState::Fenced) {
    if (!l.returned) {
      events_.add("warning", blade, "",
                  "blade heard again after being fenced: not trusted until it reports no servers running");
      l.returned = true;
      listener_.healthChanged(blade, pool::BladeState::Fenced);  // it is cleaned now
    }
    return;
  }
  if (l.health == pool::BladeState::Available) return;
  events_.add("info", blade, "", std::string("blade heard again after being ") + pool::toString(l.health));
  setHealth(blade, l, pool::BladeState::Available, now);
}

void FailureDetector::checkTrust(const std::string& blade, std::int64_t now) {
  auto it = blades_.find(blade);
  const KnownBlade* k = registry_.find(blade);
  if (it == blades_.end() || !k) return;
  Liveness& l = it->second;
  if (l.health != pool::BladeState::Fenced || !l.returned) return;
  for (const auto& [name, d] : k->domains)
    if ((d.state == pool::DomainState::Running || d.state == pool::DomainState::Paused) &&
        (desired_.findServer(name) || desired_.isDeleted(name)))
      return;  // the plan stops them; the stop results bring us back here
  l.returned = false;
  leases_.unfence(blade);
  events_.add("info", blade, "", "blade trusted again: it reports no servers running and rejoins the fabric");
  quorum_.markDirty(now);
  setHealth(blade, l, pool::BladeState::Available, now);
}

void FailureDetector::fence(const std::string& blade, Liveness& l, const std::string& reason, std::int64_t now) {
  setHealth(blade, l, pool::BladeState::Fenced, now);
  // Its servers are gone (it fenced itself, or its power is off): it holds no shield and
  // leaves the quorum set.
  quorum_.forget(blade);
  quorum_.markDirty(now);
  l.holding = false;
  l.heldByStorm = false;
  l.returned = false;
  l.nextFenceAt = 0;  // no retry is due any more
  events_.add("error", blade, "", "blade fenced: " + reason);
  listener_.fenced(blade);
  if (!l.confirmed) confirm(l);
}

std::optional<std::string> FailureDetector::fenceCommandFor(const std::string& blade, const KnownBlade& k) const {
  const pool::Bmc* bmc = desired_.bmc(blade);
  const std::string& t = options_.fenceCommand;
  if (!bmc && t.find("{bmc_") != std::string::npos) return std::nullopt;
  const std::map<std::string, std::string> values{{"{blade}", blade},
                                                  {"{chassis}", k.inventory.chassis},
                                                  {"{slot}", std::to_string(k.inventory.slot)},
                                                  {"{hostname}", k.inventory.hostname},
                                                  {"{bmc_address}", bmc ? bmc->address : ""},
                                                  {"{bmc_port}", bmc ? std::to_string(bmc->port) : ""},
                                                  {"{bmc_user}", bmc ? bmc->user : ""},
                                                  {"{bmc_password_file}", bmc ? bmc->passwordFile : ""}};
  std::string command;
  for (std::size_t i = 0; i < t.size();) {
    bool replaced = false;
    for (const auto& [key, value] : values) {
      if (t.compare(i, key.size(), key) != 0) continue;
      command += shellQuote(value);
      i += key.size();
      replaced = true;
      break;
    }
    if (!replaced) command += t[i++];
  }
  return command;
}

void FailureDetector::startFenceCommand(const std::string& blade, Liveness& l, std::int64_t now) {
  if (options_.fenceCommand.empty() || !fenceRunner_ || l.fenceCommandRunning || stormActive_) return;
  if (!leadership_.actingNow()) {
    // A power-off is the most final act there is: only a leader's. Looked at again once
    // this loomd acts (the tick does not run before).
    l.nextFenceAt = now + 1000;
    fenceDue_.emplace(l.nextFenceAt, blade);
    return;
  }
  const KnownBlade* k = registry_.find(blade);
  if (!k) return;
  auto command = fenceCommandFor(blade, *k);
  if (!command) {
    if (l.lastFenceKind != "no BMC") {
      l.lastFenceKind = "no BMC";
      events_.add("warning", blade, "",
                  "no fence command run: it names the blade's BMC and none is declared for it (kind: Blade, bmc:); its "
                  "servers wait for its lease to expire");
    }
    return;
  }
  l.fenceCommandRunning = true;
  l.nextFenceAt = 0;
  ++l.fenceAttempts;
  // Every attempt is an event until the first failure; retries of a failure already
  // reported stay quiet (one event per kind of failure, not per attempt).
  if (l.lastFenceError.empty())
    events_.add("info", blade, "", "fence command started: " + *command);
  else
    spdlog::info("{}: fence command attempt {}: {}", blade, l.fenceAttempts, *command);
  fenceRunner_(blade, *command);
}

namespace {

// What kind of failure a fence command's detail says, for "one event per kind": the
// exit code or the timeout, and the message with its numbers (time stamps, durations)
// left out.
std::string failureKind(const std::string& detail) {
  const std::size_t colon = detail.find(": ");
  std::string kind = detail.substr(0, colon);
  if (kind.rfind("killed after", 0) == 0) return "timeout";
  if (colon == std::string::npos) return kind;
  kind += ":";
  bool digits = false;
  for (std::size_t i = colon + 1; i < detail.size(); ++i) {
    const bool d = std::isdigit(static_cast<unsigned char>(detail[i])) != 0;
    if (!d)
      kind += detail[i];
    else if (!digits)
      kind += '#';
    digits = d;
  }
  return kind;
}

// The delay before the n-th retry (n from 1): 2, 4, 8, 16, 32, then 60 s.
std::int64_t retryDelayMs(int attempt) {
  constexpr std::int64_t kFirstMs = 2000, kMaxMs = 60000;
  std::int64_t d = kFirstMs;
  for (int i = 1; i < attempt && d < kMaxMs; ++i) d *= 2;
  return std::min(d, kMaxMs);
}

}  // namespace

void FailureDetector::onFenceResult(const std::string& blade, bool ok, const std::string& detail, std::int64_t now) {
  auto it = blades_.find(blade);
  if (it == blades_.end()) return;
  Liveness& l = it->second;
  l.fenceCommandRunning = false;
  if (!leadership_.actingNow()) {
    // Its term ended while the command ran: the leader now decides (and runs its own).
    spdlog::warn("{}: fence command result ({}) after this loomd stopped acting: not acted on", blade,
                 ok ? "power-off confirmed" : detail);
    if (l.health == pool::BladeState::Failed) {
      l.nextFenceAt = now + 1000;
      fenceDue_.emplace(l.nextFenceAt, blade);
    }
    return;
  }
  if (!ok) {
    ++counters_.commandFailures;
    l.lastFenceError = detail;
    const std::string kind = failureKind(detail);
    const bool newKind = kind != l.lastFenceKind;
    l.lastFenceKind = kind;
    // A power-fenced blade never fences itself: the fence command (or an operator) is the
    // only way its servers can move, so it is run again while the blade stays silent.
    if (quorum_.mayBePowerFenced(blade) && l.health == pool::BladeState::Failed) {
      const std::int64_t delay = retryDelayMs(l.fenceAttempts);
      l.nextFenceAt = now + delay;
      fenceDue_.emplace(l.nextFenceAt, blade);
      if (newKind)
        events_.add(
            "error", blade, "",
            "fence command failed: " + detail +
                "; the blade is power-fenced (it never fences itself), so its servers "
                "stay bound to it until a fence command confirms power-off or an operator does (loomctl blade fence " +
                blade + " --confirm-powered-off); retrying in " + std::to_string(delay / 1000) +
                " s, then backing off to every 60 s (attempt " + std::to_string(l.fenceAttempts) + ")");
      else
        spdlog::warn("{}: fence command failed again (attempt {}): {}; next in {} s", blade, l.fenceAttempts, detail,
                     delay / 1000);
      return;
    }
    events_.add("error", blade, "", "fence command failed: " + detail + "; its servers wait for its lease to expire");
    return;
  }
  l.lastFenceError.clear();
  l.lastFenceKind.clear();
  l.nextFenceAt = 0;
  if (l.health == pool::BladeState::Fenced) {
    events_.add("info", blade, "", "fence command confirmed power-off (the blade was fenced already)");
    return;
  }
  // Power-off is a fact, whatever the blade did meanwhile: its domains are gone.
  ++counters_.byCommand;
  leases_.fence(blade);
  const std::string attempts = l.fenceAttempts > 1 ? " at attempt " + std::to_string(l.fenceAttempts) : "";
  fence(blade, l,
        "fence command confirmed power-off" + attempts + (detail.empty() ? std::string() : " (" + detail + ")"), now);
}

FailureDetector::Confirmation FailureDetector::confirmPoweredOff(const std::string& blade, const std::string& who,
                                                                 std::int64_t now) {
  if (retired(registry_.find(blade))) return Confirmation::Retired;
  Liveness& l = at(blade);
  if (l.health == pool::BladeState::Fenced) return Confirmation::AlreadyFenced;
  if (!silent(l.health)) return Confirmation::Heard;
  // As a fence command's exit 0: the operator's word is the confirmation. From now on no
  // lease is renewed for it, and a running fence command's late answer changes nothing.
  ++counters_.byOperator;
  leases_.fence(blade);
  fence(blade, l, "operator confirmed power-off (" + who + "); its servers may run elsewhere now", now);
  return Confirmation::Fenced;
}

void FailureDetector::retire(const std::string& blade, std::int64_t now) {
  Liveness& l = at(blade);
  ++retired_;
  quorum_.forget(blade);
  quorum_.markDirty(now);
  if (!l.confirmed) confirm(l);
  // Out of the storm guard's count (a retired blade is watched no more). A fenced blade
  // stays fenced: it is down, and retiring it does not make it heard (Views: online).
  if (l.health != pool::BladeState::Fenced) setHealth(blade, l, pool::BladeState::Available, now);
}

bool FailureDetector::heardRecently(const std::string& blade, std::int64_t now) const {
  return now - lastHeard(blade) <= options_.suspectMs;
}

void FailureDetector::forgiveStall(std::int64_t gapMs) {
  for (auto& [_, l] : blades_) l.lastHeartbeat += gapMs;
  spdlog::warn("controller loop stalled for {} ms; blade liveness clocks extended by as much", gapMs);
}

const Liveness* FailureDetector::find(const std::string& blade) const {
  auto it = blades_.find(blade);
  return it == blades_.end() ? nullptr : &it->second;
}

pool::BladeState FailureDetector::health(const std::string& blade) const {
  const Liveness* l = find(blade);
  return l ? l->health : kUnknown.health;
}

bool FailureDetector::cleaning(const std::string& blade) const {
  const Liveness* l = find(blade);
  return l && l->health == pool::BladeState::Fenced && l->returned;
}

bool FailureDetector::takesSteps(const std::string& blade) const {
  const KnownBlade* k = registry_.find(blade);
  const Liveness* l = find(blade);
  if (!k || !l || !k->registered || k->adminState == "retired") return false;
  return l->health == pool::BladeState::Available || cleaning(blade);
}

}  // namespace loom::controller
