#include "controller/access/DeclaredScope.h"

namespace loom::controller::access {
namespace {

// The partition of a declared object of a partitioned kind in `d`; nullopt when absent.
std::optional<std::string> partitionIn(const pool::Declarations& d, const std::string& kind, const std::string& name) {
  if (kind == "Server") {
    for (const auto& s : d.servers)
      if (s.name == name) return s.partition;
  } else if (kind == "Pool") {
    for (const auto& p : d.pools)
      if (p.name == name) return p.partition;
  } else if (kind == "Network") {
    for (const auto& n : d.networks)
      if (n.name == name) return n.partition;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> DeclaredScope::partitionOf(ObjectKind kind, const std::string& name) const {
  if (kind == ObjectKind::Server) {
    const pool::Server* s = desired_.findServer(name);
    return s ? std::optional(s->partition) : std::nullopt;
  }
  if (kind == ObjectKind::Pool) return partitionIn(desired_.declarations(), "Pool", name);
  return std::nullopt;
}

bool DeclaredScope::bladeServes(const std::string& blade, const std::string& partition) const {
  auto inPartition = [&](const std::string& poolName) {
    const auto part = partitionIn(desired_.declarations(), "Pool", poolName);
    return part && *part == partition;
  };
  if (auto r = roles_.find(blade); r != roles_.end() && !r->second.pool.empty() && inPartition(r->second.pool))
    return true;
  auto b = borrowed_.find(blade);
  return b != borrowed_.end() && inPartition(b->second);
}

std::optional<std::vector<Touched>> DeclaredScope::touches(const ApiRequest& req, bool deletion) const {
  std::vector<Touched> out;
  const pool::Declarations& now = desired_.declarations();
  if (deletion) {
    DeleteDraft d = desired_.draftDelete(req.body, "access check");
    if (d.status != 200) return std::nullopt;
    for (const auto& [kind, name] : d.objects) {
      auto was = partitionIn(now, kind, name);
      out.push_back({kind, name, was.value_or(""), was});
    }
    return out;
  }
  ApplyDraft d = desired_.draftApply(req.body, "access check");
  if (!d.diagnostics.empty()) {
    // Not valid: its handler says why, but not before the objects it names that exist
    // (their partitions now) or are fabric-wide are checked: a scoped caller learns
    // nothing of another partition from diagnostics.
    for (const auto& [kind, name] : d.objects)
      if (auto was = partitionIn(now, kind, name))
        out.push_back({kind, name, *was, was});
      else if (kind != "Server" && kind != "Pool" && kind != "Network")
        out.push_back({kind, name, "", std::nullopt});
    return out;
  }
  for (const auto* list : {&d.created, &d.changed})
    for (const auto& [kind, name] : *list)
      out.push_back({kind, name, partitionIn(d.declarations, kind, name).value_or(""), partitionIn(now, kind, name)});
  return out;
}

}  // namespace loom::controller::access
