#include "controller/DesiredState.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "config/Loader.h"
#include "controller/EventLog.h"
#include "controller/ModelJson.h"

namespace loom::controller {

namespace {

// "CONTEXT: FIELD: no KIND named 'X' is declared (did you mean 'Y'?)" -> "CONTEXT: FIELD:
// refers to KIND 'X'"; any other message as it is.
std::string asReference(std::string message) {
  if (auto hint = message.find(" (did you mean '"); hint != std::string::npos) message.erase(hint);
  const std::string no = ": no ", named = " named '", declared = "' is declared";
  const auto a = message.rfind(no);
  const auto b = a == std::string::npos ? a : message.find(named, a);
  if (b == std::string::npos || !message.ends_with(declared)) return message;
  const std::string kind = message.substr(a + no.size(), b - a - no.size());
  const std::string name = message.substr(b + named.size(), message.size() - declared.size() - b - named.size());
  return message.substr(0, a) + ": refers to " + kind + " '" + name + "'";
}

}  // namespace

DesiredState::DesiredState()
    : identities_(std::make_shared<pool::IdentityAllocator>(std::vector<pool::IdentityPool>{})) {}

Status DesiredState::restore(std::vector<DeclarationRecord> records,
                             const std::vector<pool::IdentityRecord>& identities, std::vector<std::string>* problems) {
  std::vector<DeclarationRecord> declared;
  declared.reserve(records.size());
  for (auto& r : records) {
    if (r.kind == kTombstone)
      deleted_.insert(r.name);
    else
      declared.push_back(std::move(r));
  }
  declarations_ = fromRecords(declared, problems);
  changed();
  identities_ = std::make_shared<pool::IdentityAllocator>(declarations_.identityPools);
  if (auto s = identities_->restore(identities); !s)
    return makeError(Errc::Internal, "restoring identities: " + s.error().message);
  identitiesDirty_ = true;
  return okStatus();
}

void DesiredState::changed() {
  // A vector grown by doubling keeps up to half its size again as slack: at 100,000
  // servers of 400 bytes each, 12 MB held for nothing.
  declarations_.servers.shrink_to_fit();
  declarations_.pools.shrink_to_fit();
  serverIndex_.clear();
  serverIndex_.reserve(declarations_.servers.size());
  for (std::size_t i = 0; i < declarations_.servers.size(); ++i) serverIndex_[declarations_.servers[i].name] = i;
  bladeIndex_.clear();
  for (std::size_t i = 0; i < declarations_.blades.size(); ++i) bladeIndex_[declarations_.blades[i].name] = i;
  poolIndex_.clear();
  for (std::size_t i = 0; i < declarations_.pools.size(); ++i) poolIndex_[declarations_.pools[i].name] = i;
  declarations_.deleted.assign(deleted_.begin(), deleted_.end());
  identitiesDirty_ = true;
}

void DesiredState::rebuildIdentities() {
  auto records = identities_->records();
  identities_ = std::make_shared<pool::IdentityAllocator>(declarations_.identityPools);
  if (auto s = identities_->restore(records); !s) spdlog::error("identity pools changed: {}", s.error().message);
}

const pool::Server* DesiredState::findServer(const std::string& name) const {
  auto it = serverIndex_.find(name);
  return it == serverIndex_.end() ? nullptr : &declarations_.servers[it->second];
}

const pool::Pool* DesiredState::findPool(std::string_view name) const {
  auto it = poolIndex_.find(name);
  return it == poolIndex_.end() ? nullptr : &declarations_.pools[it->second];
}

const pool::Bmc* DesiredState::bmc(const std::string& blade) const {
  auto it = bladeIndex_.find(blade);
  if (it == bladeIndex_.end()) return nullptr;
  const auto& b = declarations_.blades[it->second].bmc;
  return b ? &*b : nullptr;
}

ApplyDraft DesiredState::draftApply(const std::string& body, const std::string& source) const {
  ApplyDraft d;
  d.source = source;
  // The body is validated together with what is applied already (its objects replacing
  // theirs), so servers.yaml may name the pools pools.yaml declared earlier.
  auto loaded = config::loadDeclarationTextOnto(declarations_, body, source);
  if (!loaded.ok()) {
    for (const auto& diag : loaded.diagnostics) d.diagnostics.push_back(diag.format());
    d.objects = std::move(loaded.objects);  // what it names, for the access check
    return d;
  }
  // Diff by (kind, name) against what is applied now: only the body's objects can differ.
  const std::set<ObjectName> named(loaded.objects.begin(), loaded.objects.end());
  std::map<ObjectName, std::string> current;
  for (auto& r : toRecords(declarations_))
    if (named.count({r.kind, r.name})) current[{r.kind, r.name}] = std::move(r.body);
  for (auto& r : toRecords(loaded.declarations)) {
    if (!named.count({r.kind, r.name})) continue;
    auto it = current.find({r.kind, r.name});
    if (it == current.end())
      d.created.emplace_back(r.kind, r.name);
    else if (it->second != r.body)
      d.changed.emplace_back(r.kind, r.name);
    else {
      ++d.unchanged;
      continue;
    }
    d.identityPoolsChanged = d.identityPoolsChanged || r.kind == "IdentityPool";
    if (r.kind == "Server" && deleted_.count(r.name)) d.change.deleteDeclarations.emplace_back(kTombstone, r.name);
    d.change.putDeclarations.push_back(std::move(r));
  }
  d.declarations = std::move(loaded.declarations);
  d.objects = std::move(loaded.objects);
  // Field by field, for the diff and the restarts (an index only when servers changed).
  std::unordered_map<std::string_view, const pool::Server*> after;
  for (const auto& [kind, name] : d.changed) {
    if (kind != "Server") continue;
    if (after.empty())
      for (const auto& s : d.declarations.servers) after.emplace(s.name, &s);
    const pool::Server* before = findServer(name);
    if (auto a = after.find(name); before && a != after.end())
      d.serverChanges.emplace_back(name, pool::diffServer(*before, *a->second));
  }
  // A network's VLAN is part of every NIC on it: its servers' definitions change too.
  auto vlanText = [](const std::optional<int>& v) { return v ? "vlan " + std::to_string(*v) : std::string("no vlan"); };
  for (const auto& object : d.changed) {
    if (object.first != "Network") continue;
    const std::string& name = object.second;
    auto named = [&](const pool::Network& n) { return n.name == name; };
    auto before = std::find_if(declarations_.networks.begin(), declarations_.networks.end(), named);
    auto now = std::find_if(d.declarations.networks.begin(), d.declarations.networks.end(), named);
    if (before == declarations_.networks.end() || now == d.declarations.networks.end() || before->vlan == now->vlan)
      continue;
    const pool::FieldChange change{"nics", name + " (" + vlanText(before->vlan) + ")",
                                   name + " (" + vlanText(now->vlan) + ")", pool::ChangeEffect::Restart};
    for (const auto& s : d.declarations.servers) {
      if (std::none_of(s.nics.begin(), s.nics.end(), [&](const pool::Nic& n) { return n.network == name; })) continue;
      auto listed = std::find_if(d.serverChanges.begin(), d.serverChanges.end(),
                                 [&](const auto& c) { return c.first == s.name; });
      if (listed == d.serverChanges.end()) listed = d.serverChanges.insert(d.serverChanges.end(), {s.name, {}});
      listed->second.push_back(change);
    }
  }
  return d;
}

void DesiredState::adopt(ApplyDraft&& d) {
  declarations_ = std::move(d.declarations);
  for (const auto& [kind, name] : d.objects)
    if (kind == "Server") deleted_.erase(name);
  changed();
  if (d.identityPoolsChanged) rebuildIdentities();
}

DeleteDraft DesiredState::draftDelete(const std::string& body, const std::string& source) const {
  DeleteDraft d;
  d.source = source;
  // Only the documents' kinds and names matter: the file that created the objects, or
  // a trimmed one, both work.
  auto loaded = config::loadDeclarationNames(body, source);
  auto fail = [&](int status, std::string error) {
    d.status = status;
    d.error = std::move(error);
    return std::move(d);
  };
  if (!loaded.ok()) {
    for (const auto& diag : loaded.diagnostics) d.diagnostics.push_back(diag.format());
    return fail(400, "invalid declarations");
  }
  if (loaded.objects.empty()) return fail(400, "nothing to delete: the body declares no objects");
  const std::set<ObjectName> doomed(loaded.objects.begin(), loaded.objects.end());
  std::set<ObjectName> declared;
  for (const auto& x : declarations_.partitions) declared.emplace("Partition", x.name);
  for (const auto& x : declarations_.networks) declared.emplace("Network", x.name);
  for (const auto& x : declarations_.identityPools) declared.emplace("IdentityPool", x.name);
  for (const auto& x : declarations_.pools) declared.emplace("Pool", x.name);
  for (const auto& x : declarations_.servers) declared.emplace("Server", x.name);
  for (const auto& x : declarations_.blades) declared.emplace("Blade", x.name);
  for (const auto& [kind, name] : loaded.objects)
    if (!declared.count({kind, name})) return fail(404, kind + " '" + name + "' is not declared");
  auto keep = [&](const char* kind, auto& objects) {
    std::erase_if(objects, [&](const auto& o) { return doomed.count({kind, o.name}) > 0; });
  };
  d.remaining = declarations_;
  keep("Partition", d.remaining.partitions);
  keep("Network", d.remaining.networks);
  keep("IdentityPool", d.remaining.identityPools);
  keep("Pool", d.remaining.pools);
  keep("Server", d.remaining.servers);
  keep("Blade", d.remaining.blades);
  if (auto check = config::validateDeclarations(d.remaining, "remaining declarations"); !check.ok()) {
    // One line per object that still refers to what goes: "Server 'web-0': pool: refers
    // to Pool 'web'". The loader's "no Pool named 'web' is declared (did you mean ...?)"
    // would suggest another name for something deleted on purpose.
    for (const auto& diag : check.diagnostics) d.diagnostics.push_back(asReference(diag.message));
    return fail(409, "still referenced: " + d.diagnostics.front() +
                         (d.diagnostics.size() > 1 ? " (and " + std::to_string(d.diagnostics.size() - 1) + " more)"
                                                   : std::string()));
  }
  // Identities are never handed out twice, so the pool they came from must stay known.
  for (const auto& [kind, name] : loaded.objects) {
    if (kind != "IdentityPool") continue;
    for (const auto& r : identities_->records())
      if (r.identityPool == name || r.identityPool.empty())
        return fail(
            409, "IdentityPool '" + name + "' has handed out identities, which are never reused; it cannot be deleted");
  }
  for (const auto& [kind, name] : loaded.objects) {
    d.change.deleteDeclarations.emplace_back(kind, name);
    if (kind != "Server") continue;
    d.servers.push_back(name);
    d.change.putDeclarations.push_back({kTombstone, name, "{}"});
    d.remaining.deleted.push_back(name);  // the planner stops what a blade still runs
  }
  // Released identities stay used forever (pool::IdentityAllocator::release).
  d.released = std::make_shared<pool::IdentityAllocator>(*identities_);
  for (const auto& name : d.servers) d.released->release(name);
  const std::set<std::string> gone(d.servers.begin(), d.servers.end());
  for (const auto& r : d.released->records())
    if (r.released && gone.count(r.server)) d.change.putIdentities.push_back(r);
  d.objects = std::move(loaded.objects);
  return d;
}

void DesiredState::adopt(DeleteDraft&& d) {
  identities_ = std::move(d.released);
  for (const auto& name : d.servers) {
    identitiesToPersist_.erase(name);
    identityFaults_.erase(name);
    deleted_.insert(name);
  }
  declarations_ = std::move(d.remaining);
  changed();
  if (std::any_of(d.objects.begin(), d.objects.end(), [](const auto& o) { return o.first == "IdentityPool"; }))
    rebuildIdentities();
}

std::optional<DeclarationRecord> DesiredState::powerRecord(const std::string& name, bool on) const {
  const pool::Server* s = findServer(name);
  const auto want = on ? pool::PowerState::On : pool::PowerState::Off;
  if (!s || s->power == want) return std::nullopt;
  pool::Server copy = *s;
  copy.power = want;
  return DeclarationRecord{"Server", name, toJson(copy).dump()};
}

void DesiredState::setPower(const std::string& name, bool on) {
  if (auto it = serverIndex_.find(name); it != serverIndex_.end())
    declarations_.servers[it->second].power = on ? pool::PowerState::On : pool::PowerState::Off;
  identityFaults_.erase(name);
}

void DesiredState::assignIdentities(Change& change, EventLog& events) {
  if (identitiesDirty_) {
    identitiesDirty_ = false;
    std::map<std::string, std::string> poolIdentity;
    for (const auto& p : declarations_.pools) poolIdentity[p.name] = p.identityPool;
    for (const auto& s : declarations_.servers) {
      auto handedOut = identities_->ensure(s, poolIdentity[s.pool]);
      if (!handedOut) {
        auto& fault = identityFaults_[s.name];
        if (fault != handedOut.error().message)
          events.add("error", "", s.name, "identity: " + handedOut.error().message);
        fault = handedOut.error().message;
        continue;
      }
      // New values are persisted with this plan's change; they stay listed until a
      // commit took them (a failed commit is retried by the next plan).
      if (*handedOut) identitiesToPersist_[s.name] = poolIdentity[s.pool];
    }
  }
  for (const auto& [name, identityPool] : identitiesToPersist_)
    if (auto id = identities_->find(name)) change.putIdentities.push_back({name, identityPool, *id});
}

const std::string* DesiredState::identityFault(const std::string& server) const {
  auto it = identityFaults_.find(server);
  return it == identityFaults_.end() ? nullptr : &it->second;
}

std::optional<protocol::ServerSpec> DesiredState::spec(const std::string& name) const {
  const pool::Server* s = findServer(name);
  auto id = s ? identities_->find(name) : std::nullopt;
  if (!id) return std::nullopt;
  protocol::ServerSpec spec;
  spec.name = s->name;
  spec.uuid = id->uuid;
  spec.vcpus = s->vcpus;
  spec.memoryMib = s->memory;
  for (std::size_t i = 0; i < s->nics.size(); ++i) {
    protocol::ServerSpec::Nic nic;
    nic.network = s->nics[i].network;
    nic.mac = i < id->macs.size() ? id->macs[i] : s->nics[i].mac;
    for (const auto& n : declarations_.networks)
      if (n.name == nic.network) nic.vlan = n.vlan;
    spec.nics.push_back(std::move(nic));
  }
  for (const auto& d : s->disks) {
    // The model leaves the format empty to mean "from the file name"; drivers want it said.
    std::string format = d.format;
    if (format.empty()) format = d.image.size() > 6 && d.image.ends_with(".qcow2") ? "qcow2" : "raw";
    spec.disks.push_back({d.image, format, d.readOnly});
  }
  spec.kernel = s->boot.kernel;
  spec.initrd = s->boot.initrd;
  spec.cmdline = s->boot.cmdline;
  if (s->xenType) spec.xenType = *s->xenType;
  return spec;
}

}  // namespace loom::controller
