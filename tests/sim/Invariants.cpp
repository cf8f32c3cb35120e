#include "tests/sim/Invariants.h"

#include <algorithm>

namespace loom::sim {

std::optional<std::string> DoubleRunJudge::update(const std::string& blade,
                                                  const std::map<std::string, std::string>& running, std::int64_t now) {
  auto& mine = byBlade_[blade];
  for (auto it = mine.begin(); it != mine.end();) {
    if (running.count(*it)) {
      ++it;
      continue;
    }
    byUuid_[*it].erase(blade);
    it = mine.erase(it);
  }
  std::optional<std::string> found;
  for (const auto& [uuid, domain] : running) {
    if (!mine.insert(uuid).second) continue;
    auto& where = byUuid_[uuid];
    where[blade] = {domain, now};
    if (where.size() > 1 && !found) {
      std::string text = "server '" + domain + "' (uuid " + uuid + ") runs on " + std::to_string(where.size()) +
                         " blades at t=" + std::to_string(now) + ":";
      for (const auto& [b, run] : where) text += " " + b + " (since t=" + std::to_string(run.since) + ")";
      found = text;
    }
  }
  return found;
}

Windows Windows::forLease(std::int64_t leaseMs, std::int64_t maxUpDelayMs) {
  const std::int64_t commit = leaseMs * 2 / 5;
  const std::int64_t rtt = 2 * maxUpDelayMs;
  return {leaseMs + commit + 4 * rtt, commit + commit / 50 + 2 * rtt + 10};
}

OutageJudge::OutageJudge(int blades, Windows windows)
    : blades_(blades),
      windows_(windows),
      runningSince_(static_cast<std::size_t>(blades + 1), kNotSince),
      upSince_(static_cast<std::size_t>((blades + 1) * (blades + 1)), 0),
      toController_(static_cast<std::size_t>(blades + 1), LinkState::Up),
      members_(static_cast<std::size_t>(blades + 1)),
      outSince_(static_cast<std::size_t>(blades + 1), kNotSince) {}

void OutageJudge::setMembers(int node, std::vector<int> members) {
  members_[static_cast<std::size_t>(node)] = std::move(members);
}

std::int64_t& OutageJudge::upSince(int a, int b) {
  if (a > b) std::swap(a, b);
  return upSince_[static_cast<std::size_t>(a * (blades_ + 1) + b)];
}
std::int64_t OutageJudge::upSince(int a, int b) const { return const_cast<OutageJudge*>(this)->upSince(a, b); }

void OutageJudge::refreshOut(int blade, std::int64_t now) {
  const bool out = runningSince_[0] == kNotSince || toController_[static_cast<std::size_t>(blade)] == LinkState::Cut;
  auto& since = outSince_[static_cast<std::size_t>(blade)];
  if (!out)
    since = kNotSince;
  else if (since == kNotSince)
    since = now;
}

void OutageJudge::setRunning(int node, bool running, std::int64_t now) {
  auto& since = runningSince_[static_cast<std::size_t>(node)];
  if (!running)
    since = kNotSince;
  else if (since == kNotSince)
    since = now;
  if (node == 0)
    for (int b = 1; b <= blades_; ++b) refreshOut(b, now);
}

void OutageJudge::setLink(int a, int b, LinkState state, std::int64_t now) {
  auto& since = upSince(a, b);
  if (state != LinkState::Up)
    since = kNotSince;
  else if (since == kNotSince)
    since = now;
  if (a == 0 || b == 0) {
    const int blade = a == 0 ? b : a;
    toController_[static_cast<std::size_t>(blade)] = state;
    refreshOut(blade, now);
  }
}

std::optional<std::string> OutageJudge::judge(int blade, std::int64_t now,
                                              const std::vector<std::string>& names) const {
  const std::int64_t stableFrom = now - windows_.stableMs;
  const std::int64_t outFrom = now - windows_.controllerOutMs;
  if (runningSince_[static_cast<std::size_t>(blade)] > stableFrom)
    return std::nullopt;  // not healthy: frozen or restarted lately
  const auto& members = members_[static_cast<std::size_t>(blade)];
  if (members.empty()) return std::nullopt;  // no policy: it has no one to ask
  std::vector<std::string> shield;
  for (int p : members) {
    if (runningSince_[static_cast<std::size_t>(p)] > stableFrom) continue;
    if (p != blade && upSince(blade, p) > stableFrom) continue;
    if (outSince_[static_cast<std::size_t>(p)] > outFrom) continue;
    shield.push_back(names[static_cast<std::size_t>(p)]);
  }
  if (2 * shield.size() <= members.size()) return std::nullopt;
  std::string text = names[static_cast<std::size_t>(blade)] + " ended its own servers at t=" + std::to_string(now) +
                     " while " + std::to_string(shield.size()) + " of the " + std::to_string(members.size()) +
                     " blades of its quorum set could shield it (running and linked to it for " +
                     std::to_string(windows_.stableMs) + " ms, out of loomd's reach for " +
                     std::to_string(windows_.controllerOutMs) + " ms):";
  for (const auto& s : shield) text += " " + s;
  const std::int64_t out = outSince_[static_cast<std::size_t>(blade)];
  return text + " (loomd " + (runningSince_[0] == kNotSince ? "not running" : "running") +
         (out == kNotSince ? std::string(", in this blade's reach")
                           : ", out of this blade's reach since t=" + std::to_string(out)) +
         ")";
}

std::optional<std::string> ActingJudge::judge(const std::vector<Actor>& acting, std::int64_t now) {
  if (acting.size() < 2) return std::nullopt;
  const auto key =
      std::make_pair(std::min(acting[0].epoch, acting[1].epoch), std::max(acting[0].epoch, acting[1].epoch));
  if (!reported_.insert(key).second) return std::nullopt;
  std::string text = std::to_string(acting.size()) + " replicas act at t=" + std::to_string(now) + ":";
  for (const auto& a : acting)
    text += " " + a.name + " (epoch " + std::to_string(a.epoch) + ", acting until " + std::to_string(a.actUntil) +
            " on its clock, now " + std::to_string(a.localNow) + ")";
  return text;
}

void AckJudge::applied(const std::string& power, Outcome outcome) {
  if (!active_) return;
  if (outcome == Outcome::Acknowledged) {
    acked_ = power;
    since_.clear();
  } else if (outcome == Outcome::Unknown) {
    since_.insert(power);
  }
}

std::optional<std::string> AckJudge::judge(const std::string& shown) const {
  if (!active_ || shown == acked_ || since_.count(shown)) return std::nullopt;
  return "server cold's power is '" + shown + "' but the last acknowledged apply set '" + acked_ +
         "' and no unanswered apply after it set '" + shown + "'";
}

}  // namespace loom::sim
