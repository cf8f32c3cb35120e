#include "controller/Quorum.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "protocol/Fencing.h"

namespace loom::controller {

using protocol::fencing::bound;
using protocol::fencing::credit;

void Promises::onHeartbeat(std::int64_t now, std::optional<std::int64_t> echoSentAt, std::int64_t attestingMs,
                           const QuorumTiming& timing) {
  // It received the stamp after we sent it, and promised from its receipt: counting from our
  // send, and a shorter window than it promised, is on the safe side.
  if (echoSentAt) committedUntil = std::max(committedUntil, *echoSentAt + credit(timing.commitMs));
  // It reported from its send, before our receipt: from our receipt, a longer time.
  if (attestingMs > 0) shieldEnd = std::max(shieldEnd, now + bound(attestingMs));
}

void Promises::onRegister(std::int64_t now, std::int64_t uptimeMs, const QuorumTiming& timing) {
  if (uptimeMs < timing.attestMs)
    shieldEnd = std::max(shieldEnd, now + bound(timing.attestMs - std::max<std::int64_t>(uptimeMs, 0)));
}

std::string QuorumVersion::record() const {
  nlohmann::json members = nlohmann::json::array();
  for (const auto& m : this->members) members.push_back({{"blade", m.blade}, {"endpoint", m.endpoint}, {"key", m.key}});
  return nlohmann::json{{"members", members}, {"power_fenced", powerFenced}}.dump();
}

std::optional<QuorumVersion> QuorumVersion::fromRecord(std::uint64_t version, const std::string& text) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("members") || !j["members"].is_array()) return std::nullopt;
  QuorumVersion v{version, {}, {}};
  for (const auto& m : j["members"]) {
    if (!m.is_object() || !m.contains("blade") || !m["blade"].is_string()) return std::nullopt;
    v.members.push_back(
        {m["blade"].get<std::string>(), m.value("endpoint", std::string()), m.value("key", std::string())});
  }
  if (auto p = j.find("power_fenced"); p != j.end() && p->is_array())
    for (const auto& b : *p)
      if (b.is_string()) v.powerFenced.insert(b.get<std::string>());
  std::sort(v.members.begin(), v.members.end(), [](const auto& a, const auto& b) { return a.blade < b.blade; });
  return v;
}

bool QuorumVersion::isMember(const std::string& blade) const {
  return std::any_of(members.begin(), members.end(), [&](const auto& m) { return m.blade == blade; });
}

void QuorumSets::restore(std::vector<QuorumVersion> retained, const std::vector<std::string>& blades) {
  std::sort(retained.begin(), retained.end(), [](const auto& a, const auto& b) { return a.version < b.version; });
  retained_ = std::move(retained);
  floors_.clear();
  if (retained_.empty()) return;
  for (const auto& b : blades) floors_[b] = retained_.front().version;
}

std::optional<QuorumVersion> QuorumSets::update(std::vector<Candidate> eligible, std::set<std::string> powerFenced) {
  std::sort(eligible.begin(), eligible.end(), [](const auto& a, const auto& b) { return a.blade < b.blade; });
  std::map<std::string, const Candidate*> byName;
  for (const auto& c : eligible) byName.emplace(c.blade, &c);
  std::vector<QuorumMember> next;
  std::map<std::string, std::size_t> perChassis;
  std::set<std::string> taken;
  // Members stay while eligible (their endpoint or key may have changed).
  if (const auto* cur = current())
    for (const auto& m : cur->members) {
      auto it = byName.find(m.blade);
      if (it == byName.end()) continue;
      next.push_back({m.blade, it->second->endpoint, it->second->key});
      ++perChassis[it->second->chassis];
      taken.insert(m.blade);
    }
  // Newcomers, one at a time from the chassis with the fewest members (then by name), so
  // that losing one chassis costs the quorum as little as it can.
  while (next.size() < maxMembers_) {
    const Candidate* best = nullptr;
    for (const auto& c : eligible) {
      if (taken.count(c.blade)) continue;
      if (!best || perChassis[c.chassis] < perChassis[best->chassis]) best = &c;
    }
    if (!best) break;
    next.push_back({best->blade, best->endpoint, best->key});
    ++perChassis[best->chassis];
    taken.insert(best->blade);
  }
  std::sort(next.begin(), next.end(), [](const auto& a, const auto& b) { return a.blade < b.blade; });
  const auto* cur = current();
  if (cur && cur->members == next && cur->powerFenced == powerFenced) return std::nullopt;
  if (!cur && next.empty() && powerFenced.empty()) return std::nullopt;
  retained_.push_back({cur ? cur->version + 1 : 1, std::move(next), std::move(powerFenced)});
  return retained_.back();
}

bool QuorumSets::mayBePowerFenced(const std::string& blade) const {
  // A blade holds some version from its floor up; with no floor it was never sent one.
  const auto f = floor(blade);
  if (!f) return false;
  return std::any_of(retained_.begin(), retained_.end(),
                     [&](const auto& v) { return v.version >= *f && v.powerFenced.count(blade); });
}

void QuorumSets::noteSent(const std::string& blade, std::uint64_t version) {
  // Only a first send sets a floor; an echo then moves it (versions only grow on an agent).
  floors_.try_emplace(blade, version);
}

void QuorumSets::noteEcho(const std::string& blade, std::uint64_t version) {
  if (version == 0) return;  // it holds none: what we sent (if anything) still bounds it
  floors_[blade] = version;
}

void QuorumSets::forget(const std::string& blade) { floors_.erase(blade); }

std::optional<std::uint64_t> QuorumSets::floor(const std::string& blade) const {
  auto it = floors_.find(blade);
  if (it == floors_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::uint64_t> QuorumSets::dropUnused() {
  std::vector<std::uint64_t> dropped;
  if (retained_.size() < 2) return dropped;
  std::uint64_t lowest = retained_.back().version;
  for (const auto& [_, v] : floors_) lowest = std::min(lowest, v);
  while (retained_.size() > 1 && retained_.front().version < lowest) {
    dropped.push_back(retained_.front().version);
    retained_.erase(retained_.begin());
  }
  return dropped;
}

bool countsQuorum(const std::vector<QuorumVersion>& retained, const std::function<bool(const std::string&)>& counted) {
  for (const auto& v : retained) {
    std::size_t n = 0;
    for (const auto& m : v.members) n += counted(m.blade) ? 1 : 0;
    if (2 * n < v.members.size()) return false;
  }
  return true;
}

}  // namespace loom::controller
