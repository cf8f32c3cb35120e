// The checks that need the whole set of declarations. Pure: structs and locations in,
// diagnostics out; no YAML here.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <set>

#include "config/Spelling.h"
#include "config/ValueSyntax.h"
#include "config/detail/DeclarationParser.h"

namespace loom::config::detail {

namespace {

std::string contextOf(const Origin& origin, const std::string& name) {
  // A replica's errors are its template's: name the template, which is what the
  // operator wrote.
  if (!origin.replicaOf.empty()) return origin.kind + " '" + origin.replicaOf + "'";
  return origin.kind + " '" + name + "'";
}

// Name -> index of its first declaration, reporting later ones.
template <class T>
std::map<std::string, std::size_t> indexNames(const std::vector<T>& objects, const std::vector<Origin>& origins,
                                              Diagnostics& diagnostics) {
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < objects.size(); ++i) {
    auto [it, inserted] = index.emplace(objects[i].name, i);
    if (inserted) continue;
    const Origin& first = origins[it->second];
    const Origin& second = origins[i];
    std::string what = second.kind + " '" + objects[i].name + "'";
    if (!second.replicaOf.empty()) what += " (replica of '" + second.replicaOf + "')";
    std::string firstWhat = first.replicaOf.empty() ? "" : " (as a replica of '" + first.replicaOf + "')";
    diagnostics.error(second.name,
                      what + ": name: duplicate name, first declared at " + first.name.format() + firstWhat);
  }
  return index;
}

class Checker {
 public:
  Checker(const LocatedDeclarations& set, Diagnostics& diagnostics)
      : set_(set), d_(set.declarations), diagnostics_(diagnostics) {}

  void run() {
    partitions_ = indexNames(d_.partitions, set_.partitions, diagnostics_);
    networks_ = indexNames(d_.networks, set_.networks, diagnostics_);
    identityPools_ = indexNames(d_.identityPools, set_.identityPools, diagnostics_);
    pools_ = indexNames(d_.pools, set_.pools, diagnostics_);
    servers_ = indexNames(d_.servers, set_.servers, diagnostics_);
    indexNames(d_.blades, set_.blades, diagnostics_);
    checkNetworks();
    checkIdentityPools();
    checkPools();
    checkServers();
    checkBlades();
  }

 private:
  // Reports a reference to a missing object, with the nearest existing name. Returns
  // whether the reference resolved (or cannot be judged: input incomplete).
  bool resolve(const std::map<std::string, std::size_t>& index, const std::string& name, const char* kind,
               const std::string& context, const std::string& field, const Origin& origin) {
    if (index.count(name)) return true;
    if (set_.incomplete) return false;  // it may be declared in the document that did not parse
    if (diagnostics_.full()) {          // counted, not kept
      diagnostics_.error(origin.at(field), {});
      return false;
    }
    std::string message = context + ": " + field + ": no " + kind + " named '" + name + "' is declared";
    if (auto near = suggest(index, name)) message += " (did you mean '" + *near + "'?)";
    diagnostics_.error(origin.at(field), message);
    return false;
  }

  // The name of `index` nearest to `name`, while suggestions stay cheap next to the load:
  // at most kSpellingComparisons names compared in all, so a thousand misspelt references
  // to a hundred thousand pools do not cost 10^8 comparisons.
  std::optional<std::string> suggest(const std::map<std::string, std::size_t>& index, const std::string& name) {
    if (index.size() > spellingLeft_) return std::nullopt;
    spellingLeft_ -= index.size();
    std::vector<std::string>& names = names_[&index];
    if (names.empty()) {
      for (const auto& [n, i] : index) names.push_back(n);
    }
    return closestMatch(name, names);
  }

  void checkNetworks() {
    for (std::size_t i = 0; i < d_.networks.size(); ++i) {
      const auto& n = d_.networks[i];
      const Origin& o = set_.networks[i];
      if (!n.partition.empty()) resolve(partitions_, n.partition, "Partition", contextOf(o, n.name), "partition", o);
    }
  }

  void checkIdentityPools() {
    // Two ranges that overlap would hand one MAC or UUID to two servers (invariant 2).
    struct MacSpan {
      pool::MacRange range;
      std::size_t pool;
      std::string field;
    };
    struct UuidSpan {
      pool::UuidRange range;
      std::size_t pool;
      std::string field;
    };
    std::vector<MacSpan> macs;
    std::vector<UuidSpan> uuids;
    for (std::size_t p = 0; p < d_.identityPools.size(); ++p) {
      const auto& ip = d_.identityPools[p];
      for (std::size_t i = 0; i < ip.macs.size(); ++i)
        macs.push_back({ip.macs[i], p, "macs[" + std::to_string(i) + "]"});
      for (std::size_t i = 0; i < ip.uuids.size(); ++i)
        uuids.push_back({ip.uuids[i], p, "uuids[" + std::to_string(i) + "]"});
    }
    std::map<std::uint64_t, std::pair<std::uint64_t, std::size_t>> macsTaken;
    for (std::size_t b = 0; b < macs.size(); ++b) {
      if (auto a = overlapping(macsTaken, macs[b].range.first, macs[b].range.last, b)) {
        overlap(macs[*a].pool, macs[*a].field, macs[b].pool, macs[b].field, "MAC");
      }
    }
    // A UUID range is an aligned block: from the prefix to the prefix with its low `bits` set.
    using Uuid = std::pair<std::uint64_t, std::uint64_t>;
    std::map<Uuid, std::pair<Uuid, std::size_t>> uuidsTaken;
    for (std::size_t b = 0; b < uuids.size(); ++b) {
      const auto& r = uuids[b].range;
      const std::uint64_t low = r.bits >= 64 ? ~0ull : (1ull << r.bits) - 1;
      const Uuid first{r.prefixHi, r.prefixLo & ~low};
      const Uuid last{r.prefixHi, r.prefixLo | low};
      if (auto a = overlapping(uuidsTaken, first, last, b)) {
        overlap(uuids[*a].pool, uuids[*a].field, uuids[b].pool, uuids[b].field, "UUID");
      }
    }
  }

  // Checks the range [first, last] against the ranges accepted before it (start -> (last,
  // index)). Those are disjoint, so sorted by start they are sorted by end too, and the
  // lowest one that overlaps is the one holding `first` or else the next one. Returns its
  // index, or accepts the range: O(log n) per range, where comparing every pair took a
  // minute for an identity pool of 500,000 ranges. A range that overlaps is reported
  // once and not compared with later ones.
  template <class Key>
  static std::optional<std::size_t> overlapping(std::map<Key, std::pair<Key, std::size_t>>& accepted, const Key& first,
                                                const Key& last, std::size_t index) {
    auto it = accepted.upper_bound(first);
    if (it != accepted.begin() && !(std::prev(it)->second.first < first)) return std::prev(it)->second.second;
    if (it != accepted.end() && !(last < it->first)) return it->second.second;
    accepted.emplace(first, std::make_pair(last, index));
    return std::nullopt;
  }

  void overlap(std::size_t firstPool, const std::string& firstField, std::size_t secondPool,
               const std::string& secondField, const char* what) {
    const Origin& first = set_.identityPools[firstPool];
    const Origin& second = set_.identityPools[secondPool];
    diagnostics_.error(second.at(secondField),
                       contextOf(second, d_.identityPools[secondPool].name) + ": " + secondField + ": " + what +
                           " range overlaps IdentityPool '" + d_.identityPools[firstPool].name + "' " + firstField +
                           " at " + first.at(firstField).format() + " (an identity must never be handed out twice)");
  }

  void checkPools() {
    std::map<std::string, std::pair<std::size_t, std::string>> claimed;  // blade -> (pool, field)
    for (std::size_t i = 0; i < d_.pools.size(); ++i) {
      const auto& p = d_.pools[i];
      const Origin& o = set_.pools[i];
      const std::string ctx = contextOf(o, p.name);
      if (!p.partition.empty()) resolve(partitions_, p.partition, "Partition", ctx, "partition", o);
      if (!p.identityPool.empty()) resolve(identityPools_, p.identityPool, "IdentityPool", ctx, "identity_pool", o);
      if (!p.borrowFrom.empty()) checkBorrowFrom(p, o, ctx);
      for (std::size_t b = 0; b < p.bladeNames.size(); ++b) {
        const std::string field = "blades.names[" + std::to_string(b) + "]";
        auto [it, inserted] = claimed.emplace(p.bladeNames[b], std::make_pair(i, field));
        if (inserted) continue;
        const auto& [firstPool, firstField] = it->second;
        std::string where = firstPool == i ? "this pool" : "Pool '" + d_.pools[firstPool].name + "'";
        diagnostics_.error(o.at(field), ctx + ": " + field + ": blade '" + p.bladeNames[b] + "' is already named by " +
                                            where + " at " + set_.pools[firstPool].at(firstField).format() +
                                            " (a blade belongs to one pool)");
      }
    }
  }

  void checkBorrowFrom(const pool::Pool& p, const Origin& o, const std::string& ctx) {
    if (p.sparePool) {
      diagnostics_.error(o.at("borrow_from"),
                         ctx + ": borrow_from: a spare pool lends blades, it does not borrow them");
      return;
    }
    if (!resolve(pools_, p.borrowFrom, "Pool", ctx, "borrow_from", o)) return;
    const auto& lender = d_.pools[pools_.at(p.borrowFrom)];
    if (!lender.sparePool) {
      diagnostics_.error(o.at("borrow_from"), ctx + ": borrow_from: Pool '" + lender.name +
                                                  "' is not a spare pool (expected a pool with spare_pool: true)");
    } else if (!lender.partition.empty() && lender.partition != p.partition) {
      diagnostics_.error(o.at("borrow_from"), ctx + ": borrow_from: spare pool '" + lender.name +
                                                  "' belongs to partition '" + lender.partition + "', not '" +
                                                  p.partition + "'");
    }
  }

  void checkServers() {
    std::set<std::string> checkedTemplates;
    std::map<std::string, std::pair<std::size_t, std::string>> fixedUuids, fixedMacs;  // value -> (server, field)
    for (std::size_t i = 0; i < d_.servers.size(); ++i) {
      const auto& s = d_.servers[i];
      const Origin& o = set_.servers[i];
      // Replicas share their template's fields: check them once, not once per replica.
      if (!o.replicaOf.empty() && !checkedTemplates.insert(o.replicaOf).second) continue;
      const std::string ctx = contextOf(o, s.name);
      checkServerReferences(s, o, ctx);
      if (s.xenType == pool::XenGuestType::Pv && s.boot.kernel.empty()) {
        diagnostics_.error(o.at("xen.type"),
                           ctx + ": xen.type: a pv guest boots a kernel directly; expected boot.kernel");
      }
      if (!s.uuid.empty()) fixedIdentity(fixedUuids, s.uuid, i, "uuid", "UUID");
      for (std::size_t n = 0; n < s.nics.size(); ++n) {
        if (!s.nics[n].mac.empty())
          fixedIdentity(fixedMacs, s.nics[n].mac, i, "nics[" + std::to_string(n) + "].mac", "MAC");
      }
    }
  }

  // Two blades with one BMC: fencing either would power off the other (or neither: the
  // one that failed keeps running its servers while they start elsewhere).
  void checkBlades() {
    std::map<std::pair<std::string, int>, std::size_t> bmcs;  // (address, port) -> blade
    for (std::size_t i = 0; i < d_.blades.size(); ++i) {
      const auto& b = d_.blades[i];
      if (!b.bmc || b.bmc->address.empty()) continue;
      std::string address = b.bmc->address;
      for (char& c : address) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      auto [it, inserted] = bmcs.emplace(std::make_pair(address, b.bmc->port), i);
      if (inserted) continue;
      const Origin& o = set_.blades[i];
      diagnostics_.error(o.at("bmc.address"), contextOf(o, b.name) + ": bmc.address: " + b.bmc->address + " port " +
                                                  std::to_string(b.bmc->port) + " is already the BMC of Blade '" +
                                                  d_.blades[it->second].name + "' at " +
                                                  set_.blades[it->second].at("bmc.address").format() +
                                                  " (fencing one blade would power off the other)");
    }
  }

  void fixedIdentity(std::map<std::string, std::pair<std::size_t, std::string>>& held, const std::string& value,
                     std::size_t server, const std::string& field, const char* what) {
    auto [it, inserted] = held.emplace(value, std::make_pair(server, field));
    if (inserted) return;
    const auto& [first, firstField] = it->second;
    const Origin& o = set_.servers[server];
    diagnostics_.error(o.at(field), contextOf(o, d_.servers[server].name) + ": " + field + ": " + what + " " + value +
                                        " is already given to Server '" + d_.servers[first].name + "' at " +
                                        set_.servers[first].at(firstField).format());
  }

  void checkServerReferences(const pool::Server& s, const Origin& o, const std::string& ctx) {
    if (!s.partition.empty()) resolve(partitions_, s.partition, "Partition", ctx, "partition", o);
    const pool::Pool* p = nullptr;
    if (!s.pool.empty() && resolve(pools_, s.pool, "Pool", ctx, "pool", o)) p = &d_.pools[pools_.at(s.pool)];
    if (p && p->sparePool) {
      diagnostics_.error(o.at("pool"),
                         ctx + ": pool: Pool '" + p->name +
                             "' is a spare pool; its blades stay idle until borrowed, so it holds no servers");
    } else if (p && !p->partition.empty() && !s.partition.empty() && p->partition != s.partition) {
      diagnostics_.error(o.at("pool"), ctx + ": pool: Pool '" + p->name + "' belongs to partition '" + p->partition +
                                           "', not to this server's partition '" + s.partition + "'");
    }
    if (p && s.xenType && p->hypervisor == pool::Hypervisor::Kvm) {
      diagnostics_.error(o.at("xen"), ctx + ": xen: applies to Xen pools only; Pool '" + p->name + "' runs kvm");
    }
    for (std::size_t n = 0; n < s.nics.size(); ++n) {
      const std::string field = "nics[" + std::to_string(n) + "].network";
      if (s.nics[n].network.empty() || !resolve(networks_, s.nics[n].network, "Network", ctx, field, o)) continue;
      const auto& net = d_.networks[networks_.at(s.nics[n].network)];
      if (!s.partition.empty() && !net.partition.empty() && net.partition != s.partition) {
        diagnostics_.error(o.at(field), ctx + ": " + field + ": Network '" + net.name + "' belongs to partition '" +
                                            net.partition + "', not to this server's partition '" + s.partition + "'");
      }
    }
    checkIdentitySource(s, p, o, ctx);
  }

  // The allocator takes the server's identity_pool, else its pool's, else "default",
  // else the only one: check now that this finds a pool able to give what is needed.
  void checkIdentitySource(const pool::Server& s, const pool::Pool* p, const Origin& o, const std::string& ctx) {
    bool needsUuid = s.uuid.empty();
    bool needsMac = std::any_of(s.nics.begin(), s.nics.end(), [](const pool::Nic& n) { return n.mac.empty(); });
    if (!needsUuid && !needsMac) return;
    std::string name = s.identityPool;
    std::string field = "identity_pool";
    const Origin* from = &o;
    if (name.empty() && p && !p->identityPool.empty()) {
      name = p->identityPool;
      from = nullptr;  // the pool reports its own missing reference
    }
    if (!name.empty()) {
      if (from) {
        if (!resolve(identityPools_, name, "IdentityPool", ctx, field, o)) return;
      } else if (!identityPools_.count(name)) {
        return;
      }
    } else if (identityPools_.count("default")) {
      name = "default";
    } else if (d_.identityPools.size() == 1) {
      name = d_.identityPools.front().name;
    } else {
      // Without its pool the server is already in error; its pool may name the source.
      if (set_.incomplete || !p) return;
      std::string why = d_.identityPools.empty() ? "no IdentityPool is declared"
                                                 : "there are several IdentityPools and none is named 'default'";
      diagnostics_.error(o.object, ctx + ": identity_pool: this server needs an allocated " +
                                       std::string(needsUuid ? "UUID" : "MAC") + " but " + why +
                                       " (expected identity_pool on the server or its pool)");
      return;
    }
    const auto& ip = d_.identityPools[identityPools_.at(name)];
    if (needsUuid && ip.uuids.empty()) {
      diagnostics_.error(o.object, ctx + ": uuid: IdentityPool '" + name + "' has no uuids to allocate from");
    }
    if (needsMac && ip.macs.empty()) {
      diagnostics_.error(o.object, ctx + ": nics: IdentityPool '" + name + "' has no macs to allocate from");
    }
  }

  const LocatedDeclarations& set_;
  const pool::Declarations& d_;
  Diagnostics& diagnostics_;
  std::map<std::string, std::size_t> partitions_, networks_, identityPools_, pools_, servers_;
  static constexpr std::size_t kSpellingComparisons = 1'000'000;
  std::size_t spellingLeft_ = kSpellingComparisons;
  std::map<const std::map<std::string, std::size_t>*, std::vector<std::string>> names_;  // each index's names
};

}  // namespace

void checkDeclarations(const LocatedDeclarations& set, Diagnostics& diagnostics) { Checker(set, diagnostics).run(); }

void checkFabric(const pool::Fabric& fabric, const std::vector<Origin>& origins, Diagnostics& diagnostics) {
  indexNames(fabric.blades, origins, diagnostics);
  std::map<std::pair<std::string, int>, std::size_t> slots;
  for (std::size_t i = 0; i < fabric.blades.size(); ++i) {
    const auto& b = fabric.blades[i];
    if (b.chassis.empty()) continue;
    auto [it, inserted] = slots.emplace(std::make_pair(b.chassis, b.slot), i);
    if (inserted) continue;
    diagnostics.error(origins[i].at("slot"), "blade '" + b.name + "': slot: chassis " + b.chassis + " slot " +
                                                 std::to_string(b.slot) + " is already taken by blade '" +
                                                 fabric.blades[it->second].name + "' at " +
                                                 origins[it->second].name.format());
  }
}

}  // namespace loom::config::detail
