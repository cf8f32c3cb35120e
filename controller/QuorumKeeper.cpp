#include "controller/QuorumKeeper.h"

#include <algorithm>
#include <memory>

namespace loom::controller {

void QuorumKeeper::restore(const std::map<std::uint64_t, std::string>& records, const std::vector<std::string>& blades,
                           std::vector<std::string>* problems) {
  std::vector<QuorumVersion> retained;
  for (const auto& [version, text] : records) {
    if (auto v = QuorumVersion::fromRecord(version, text))
      retained.push_back(std::move(*v));
    else if (problems)
      problems->push_back("quorum version " + std::to_string(version) + ": unreadable record, skipped");
  }
  sets_.restore(std::move(retained), blades);
  publish();
}

void QuorumKeeper::markDirty(std::int64_t now) {
  if (dirty_) return;
  dirty_ = true;
  dirtySince_ = now;
}

std::optional<QuorumVersion> QuorumKeeper::update(std::vector<QuorumSets::Candidate> eligible,
                                                  std::set<std::string> powerFenced, std::int64_t now,
                                                  const Commit& commit) {
  dirty_ = false;
  QuorumSets before = sets_;
  auto next = sets_.update(std::move(eligible), std::move(powerFenced));
  if (!next) return std::nullopt;
  Change change;
  change.putQuorumVersions[next->version] = next->record();
  if (!commit(std::move(change))) {
    sets_ = std::move(before);
    markDirty(now);
    return std::nullopt;
  }
  publish();
  return next;
}

void QuorumKeeper::publish() {
  leases_.publishQuorum(std::make_shared<const std::vector<QuorumVersion>>(sets_.retained()));
}

protocol::Policy QuorumKeeper::policyOf(const QuorumVersion& v, const std::string& blade) const {
  protocol::Policy p;
  p.version = v.version;
  p.powerFenced = v.powerFenced.count(blade) > 0;
  p.commitMs = options_.timing.commitMs;
  p.attestMs = options_.timing.attestMs;
  for (const auto& m : v.members) p.members.push_back({m.blade, m.endpoint, m.key});
  return p;
}

std::optional<protocol::Policy> QuorumKeeper::policyFor(const std::string& blade, std::uint64_t echoed,
                                                        std::int64_t now, bool force) {
  sets_.noteEcho(blade, echoed);
  const QuorumVersion* current = sets_.current();
  if (!current || echoed == current->version) return std::nullopt;
  auto last = lastSent_.find(blade);
  if (!force && last != lastSent_.end() && now - last->second < options_.resendMs) return std::nullopt;
  lastSent_[blade] = now;
  // From now on it may hold this version (and nothing older than what it echoed).
  sets_.noteSent(blade, current->version);
  return policyOf(*current, blade);
}

void QuorumKeeper::forget(const std::string& blade) {
  sets_.forget(blade);
  lastSent_.erase(blade);
}

void QuorumKeeper::dropUnused(Change& change) {
  const auto dropped = sets_.dropUnused();
  if (dropped.empty()) return;
  change.deleteQuorumVersions.insert(change.deleteQuorumVersions.end(), dropped.begin(), dropped.end());
  publish();
}

bool QuorumKeeper::isMember(const std::string& blade) const {
  const auto* v = sets_.current();
  return v && v->isMember(blade);
}

bool QuorumKeeper::isPowerFenced(const std::string& blade) const {
  const auto* v = sets_.current();
  return v && v->powerFenced.count(blade) > 0;
}

}  // namespace loom::controller
