#include "controller/BladeRegistry.h"

#include "protocol/Validation.h"

namespace loom::controller {

std::optional<protocol::BladeInventory> inventoryFrom(const std::string& text) {
  protocol::Json inv = protocol::Json::parse(text, nullptr, false);
  protocol::Json frame{{"type", "register"},
                       {"v", protocol::kVersion},
                       {"blade", "x"},
                       {"inventory", inv},
                       {"domains", protocol::Json::array()}};
  if (protocol::validate(frame)) return std::nullopt;
  return protocol::decodeRegister(frame).inventory;
}

namespace {

bool sameDomains(const std::map<std::string, protocol::ObservedDomain>& known,
                 const std::vector<protocol::ObservedDomain>& reported) {
  if (known.size() != reported.size()) return false;
  for (const auto& d : reported) {
    auto it = known.find(d.name);
    if (it == known.end() || it->second.state != d.state || (!d.uuid.empty() && it->second.uuid != d.uuid))
      return false;
  }
  return true;
}

const std::set<std::string> kNobody;

}  // namespace

protocol::Json inventoryJson(const protocol::BladeInventory& inv) {
  protocol::Register r;
  r.blade = "x";
  r.inventory = inv;
  return protocol::encode(r)["inventory"];
}

void BladeRegistry::restore(const std::vector<BladeRecord>& records) {
  for (const auto& b : records) {
    KnownBlade k;
    if (auto inv = inventoryFrom(b.inventory)) k.inventory = *inv;
    k.adminState = b.adminState;
    k.firstSeenMs = b.firstSeenMs;
    blades_.emplace(b.name, std::move(k));
  }
}

BladeRegistry::Registration BladeRegistry::registerBlade(const std::string& blade, const protocol::Register& msg,
                                                         std::int64_t wallMs) {
  ++registrations_;
  auto [it, fresh] = blades_.try_emplace(blade);
  KnownBlade& k = it->second;
  const protocol::Json newInv = inventoryJson(msg.inventory);
  Registration out{fresh, fresh || inventoryJson(k.inventory) != newInv};
  if (fresh) k.firstSeenMs = wallMs;
  k.inventory = msg.inventory;
  if (out.inventoryChanged) journal_.pending().putBlades.push_back({blade, newInv.dump(), k.adminState, k.firstSeenMs});
  k.registered = true;
  for (const auto& [name, d] : k.domains) indexRunning(blade, d, false);
  k.domains.clear();
  for (const auto& d : msg.domains) {
    k.domains[d.name] = d;
    indexRunning(blade, d, true);
  }
  told(blade);
  return out;
}

bool BladeRegistry::report(const std::string& blade, const std::vector<protocol::ObservedDomain>& domains) {
  KnownBlade* k = find(blade);
  if (!k || sameDomains(k->domains, domains)) return false;
  for (const auto& [name, d] : k->domains) indexRunning(blade, d, false);
  k->domains.clear();
  for (const auto& d : domains) {
    k->domains[d.name] = d;
    indexRunning(blade, d, true);
  }
  told(blade);
  return true;
}

void BladeRegistry::setDomain(const std::string& blade, const std::string& name, std::optional<pool::DomainState> state,
                              const std::string& uuid) {
  KnownBlade* k = find(blade);
  if (!k) return;
  setDomainQuietly(*k, blade, name, state, uuid);
  told(blade, &name);
}

void BladeRegistry::setDomainQuietly(KnownBlade& k, const std::string& blade, const std::string& name,
                                     std::optional<pool::DomainState> state, const std::string& uuid) {
  auto it = k.domains.find(name);
  if (it != k.domains.end()) indexRunning(blade, it->second, false);
  if (!state) {
    if (it != k.domains.end()) k.domains.erase(it);
    return;
  }
  auto& d = k.domains[name];
  d.name = name;
  d.state = *state;
  if (!uuid.empty()) d.uuid = uuid;
  indexRunning(blade, d, true);
}

void BladeRegistry::setPersonality(const std::string& blade, const std::string& hypervisor) {
  KnownBlade* k = find(blade);
  if (!k) return;
  k->inventory.personality = hypervisor;
  told(blade);
}

std::vector<std::string> BladeRegistry::endDomains(const std::string& blade) {
  std::vector<std::string> ended;
  KnownBlade* k = find(blade);
  if (!k) return ended;
  for (const auto& [name, d] : k->domains)
    if (d.state == pool::DomainState::Running || d.state == pool::DomainState::Paused) ended.push_back(name);
  for (const auto& name : ended) setDomainQuietly(*k, blade, name, pool::DomainState::Shutoff, {});
  told(blade);
  return ended;
}

BladeRecord BladeRegistry::adminRecord(const std::string& blade, const std::string& state) const {
  const KnownBlade& k = blades_.at(blade);
  return {blade, inventoryJson(k.inventory).dump(), state, k.firstSeenMs};
}

void BladeRegistry::setAdminState(const std::string& blade, const std::string& state) {
  blades_.at(blade).adminState = state;
}

KnownBlade* BladeRegistry::find(const std::string& blade) {
  auto it = blades_.find(blade);
  return it == blades_.end() ? nullptr : &it->second;
}

const KnownBlade* BladeRegistry::find(const std::string& blade) const {
  auto it = blades_.find(blade);
  return it == blades_.end() ? nullptr : &it->second;
}

const std::set<std::string>& BladeRegistry::runningOn(const std::string& server) const {
  auto it = runningOn_.find(server);
  return it == runningOn_.end() ? kNobody : it->second;
}

bool BladeRegistry::firstSight(const std::string& blade, const std::string& domain) {
  KnownBlade* k = find(blade);
  return k && k->warnedForeign.insert(domain).second;
}

void BladeRegistry::indexRunning(const std::string& blade, const protocol::ObservedDomain& d, bool add) {
  if (d.state != pool::DomainState::Running) return;
  if (add) {
    runningOn_[d.name].insert(blade);
    return;
  }
  auto it = runningOn_.find(d.name);
  if (it == runningOn_.end()) return;
  it->second.erase(blade);
  if (it->second.empty()) runningOn_.erase(it);
}

}  // namespace loom::controller
