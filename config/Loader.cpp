#include "config/Loader.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <tuple>

#include "config/detail/DeclarationParser.h"
#include "config/detail/YamlDocuments.h"

namespace loom::config {

std::string Diagnostic::format() const {
  if (line == 0) return file + ": " + message;  // about the input as a whole (unreadable file)
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

namespace detail {

std::vector<Diagnostic> Diagnostics::sorted(const std::vector<std::string>& fileOrder) && {
  auto rank = [&](const std::string& file) {
    auto it = std::find(fileOrder.begin(), fileOrder.end(), file);
    return static_cast<std::size_t>(it - fileOrder.begin());
  };
  std::stable_sort(list_.begin(), list_.end(), [&](const Diagnostic& a, const Diagnostic& b) {
    return std::make_tuple(rank(a.file), a.line, a.column) < std::make_tuple(rank(b.file), b.line, b.column);
  });
  if (dropped_ > 0) {
    list_.push_back(Diagnostic{firstDroppedFile_, 0, 0,
                               std::to_string(dropped_) + " more problems not shown (the first " +
                                   std::to_string(kMaxKept) + " found are above)"});
  }
  return std::move(list_);
}

}  // namespace detail

namespace {

// The whole file, or a diagnostic saying why not.
std::optional<std::string> readFile(const std::string& path, detail::Diagnostics& diagnostics) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    diagnostics.error(detail::Location{path, 0, 0}, std::string("cannot read file: ") + std::strerror(errno));
    return std::nullopt;
  }
  // Never more than the parser would take: a path may name a device or a growing log.
  const std::size_t limit = detail::YamlLimits{}.maxBytes;
  std::string text;
  char buffer[65536];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    text.append(buffer, static_cast<std::size_t>(in.gcount()));
    if (text.size() > limit) {
      diagnostics.error(detail::Location{path, 0, 0},
                        "the file is larger than " + std::to_string(limit) +
                            " bytes, the most read at once (split it into several files)");
      return std::nullopt;
    }
  }
  if (in.bad()) {
    diagnostics.error(detail::Location{path, 0, 0}, std::string("cannot read file: ") + std::strerror(errno));
    return std::nullopt;
  }
  return text;
}

DeclarationsResult loadDeclarations(const std::vector<std::pair<std::string, std::optional<std::string>>>& inputs,
                                    detail::Diagnostics& diagnostics) {
  detail::LocatedDeclarations set;
  std::vector<std::string> order;
  for (const auto& [name, text] : inputs) {
    order.push_back(name);
    if (!text) {
      set.incomplete = true;
      continue;
    }
    detail::readDeclarations(detail::parseDocuments(*text, name, diagnostics), set, diagnostics);
  }
  detail::checkDeclarations(set, diagnostics);
  DeclarationsResult result;
  if (diagnostics.empty()) {
    result.declarations = std::move(set.declarations);
  }
  // On failure the declarations stay empty: nothing half-checked can be mistaken for a
  // usable set.
  result.diagnostics = std::move(diagnostics).sorted(order);
  return result;
}

FabricResult loadFabric(const std::string& name, const std::optional<std::string>& text,
                        detail::Diagnostics& diagnostics) {
  FabricResult result;
  pool::Fabric fabric;
  std::vector<detail::Origin> origins;
  if (text) {
    detail::readFabric(detail::parseDocuments(*text, name, diagnostics), fabric, origins, diagnostics);
    detail::checkFabric(fabric, origins, diagnostics);
  }
  if (diagnostics.empty()) result.fabric = std::move(fabric);
  result.diagnostics = std::move(diagnostics).sorted({name});
  return result;
}

}  // namespace

DeclarationsResult loadDeclarationFiles(const std::vector<std::string>& paths) {
  detail::Diagnostics diagnostics;
  std::vector<std::pair<std::string, std::optional<std::string>>> inputs;
  for (const auto& path : paths) inputs.emplace_back(path, readFile(path, diagnostics));
  return loadDeclarations(inputs, diagnostics);
}

DeclarationsResult loadDeclarationSources(const std::vector<std::pair<std::string, std::string>>& sources) {
  detail::Diagnostics diagnostics;
  std::vector<std::pair<std::string, std::optional<std::string>>> inputs;
  inputs.reserve(sources.size());
  for (const auto& [name, text] : sources) inputs.emplace_back(name, text);
  return loadDeclarations(inputs, diagnostics);
}

DeclarationsResult loadDeclarationText(const std::string& text, const std::string& sourceName) {
  detail::Diagnostics diagnostics;
  return loadDeclarations({{sourceName, text}}, diagnostics);
}

namespace {

constexpr const char* kAppliedFile = "applied state";

// Applied objects first (each keeps its place), then the body's: a body object replaces
// the applied one of its name, the first time; a second body object of that name is
// appended so the checker reports the duplicate at its line.
template <class T>
void mergeLocated(const std::vector<T>& applied, const char* kind, std::vector<T>& bodyObjects,
                  std::vector<detail::Origin>& bodyOrigins, std::vector<T>& out, std::vector<detail::Origin>& origins) {
  std::map<std::string, std::size_t> index;
  for (const auto& object : applied) {
    detail::Origin o;
    o.kind = kind;
    o.object = o.name = detail::Location{kAppliedFile, 0, 0};
    index.emplace(object.name, out.size());
    out.push_back(object);
    origins.push_back(std::move(o));
  }
  for (std::size_t i = 0; i < bodyObjects.size(); ++i) {
    auto it = index.find(bodyObjects[i].name);
    if (it != index.end()) {
      out[it->second] = std::move(bodyObjects[i]);
      origins[it->second] = std::move(bodyOrigins[i]);
      index.erase(it);
      continue;
    }
    out.push_back(std::move(bodyObjects[i]));
    origins.push_back(std::move(bodyOrigins[i]));
  }
}

// A replica of a template (`replicas: N`) and a standalone Server may not take each
// other's name across applies: the later one would silently replace the earlier (replica
// 1 of `web` gone, or a hand-made web-1 turned into a replica). Said at the new one's name.
void checkTemplateOwnership(const std::vector<pool::Server>& applied, const std::vector<pool::Server>& body,
                            const std::vector<detail::Origin>& origins, detail::Diagnostics& diagnostics) {
  if (applied.empty() || body.empty()) return;
  std::map<std::string_view, const pool::Server*> byName;
  for (const auto& s : applied) byName.emplace(s.name, &s);
  for (std::size_t i = 0; i < body.size() && i < origins.size(); ++i) {
    auto it = byName.find(body[i].name);
    if (it == byName.end() || it->second->template_ == body[i].template_) continue;
    const pool::Server& was = *it->second;
    const std::string now =
        body[i].template_.empty() ? "a standalone Server" : "a replica of template '" + body[i].template_ + "'";
    const std::string before =
        was.template_.empty() ? "a standalone Server" : "a replica of template '" + was.template_ + "'";
    diagnostics.error(origins[i].name, "Server '" + body[i].name + "': name: " + now + " may not replace " + before +
                                           " (applied) of that name; change the template's replicas or delete '" +
                                           (was.template_.empty() ? was.name : was.template_) + "' first");
  }
}

}  // namespace

DeclarationsResult loadDeclarationTextOnto(const pool::Declarations& applied, const std::string& text,
                                           const std::string& sourceName) {
  detail::Diagnostics diagnostics;
  detail::LocatedDeclarations body;
  detail::readDeclarations(detail::parseDocuments(text, sourceName, diagnostics), body, diagnostics);
  DeclarationsResult result;
  {
    // Kind by kind, each in input order.
    for (const auto& x : body.declarations.partitions) result.objects.emplace_back("Partition", x.name);
    for (const auto& x : body.declarations.networks) result.objects.emplace_back("Network", x.name);
    for (const auto& x : body.declarations.identityPools) result.objects.emplace_back("IdentityPool", x.name);
    for (const auto& x : body.declarations.pools) result.objects.emplace_back("Pool", x.name);
    for (const auto& x : body.declarations.servers) result.objects.emplace_back("Server", x.name);
    for (const auto& x : body.declarations.blades) result.objects.emplace_back("Blade", x.name);
  }
  detail::LocatedDeclarations set;
  set.incomplete = body.incomplete;
  auto& b = body.declarations;
  auto& d = set.declarations;
  mergeLocated(applied.partitions, "Partition", b.partitions, body.partitions, d.partitions, set.partitions);
  mergeLocated(applied.networks, "Network", b.networks, body.networks, d.networks, set.networks);
  mergeLocated(applied.identityPools, "IdentityPool", b.identityPools, body.identityPools, d.identityPools,
               set.identityPools);
  mergeLocated(applied.pools, "Pool", b.pools, body.pools, d.pools, set.pools);
  checkTemplateOwnership(applied.servers, b.servers, body.servers, diagnostics);
  mergeLocated(applied.servers, "Server", b.servers, body.servers, d.servers, set.servers);
  mergeLocated(applied.blades, "Blade", b.blades, body.blades, d.blades, set.blades);
  detail::checkDeclarations(set, diagnostics);
  if (diagnostics.empty()) result.declarations = std::move(set.declarations);
  result.diagnostics = std::move(diagnostics).sorted({sourceName, kAppliedFile});
  return result;
}

DeclarationsResult loadDeclarationNames(const std::string& text, const std::string& sourceName) {
  detail::Diagnostics diagnostics;
  DeclarationsResult result;
  const auto documents = detail::parseDocuments(text, sourceName, diagnostics);
  static const std::vector<std::string> kinds{"Partition", "Network", "IdentityPool", "Pool", "Server", "Blade"};
  for (const auto& doc : documents.documents) {
    const detail::YamlNode& node = *doc.node;
    const detail::Location at = doc.source.locate(node);
    auto scalarField = [&](const char* key) {
      const detail::YamlNode* value = node.find(key);
      return value && value->isScalar() ? value->scalar() : std::string();
    };
    const std::string kind = scalarField("kind");
    const std::string name = scalarField("name");
    if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) {
      diagnostics.error(at, "expected a declaration with kind Partition, Network, IdentityPool, Pool, Server or Blade");
      continue;
    }
    if (name.empty()) {
      diagnostics.error(at, kind + ": missing required field 'name'");
      continue;
    }
    const detail::YamlNode* replicas = kind == "Server" ? node.find("replicas") : nullptr;
    std::optional<std::int64_t> n = 1;
    if (replicas) {
      n = replicas->isScalar() ? detail::parseInteger(replicas->scalar()) : std::nullopt;
      if (!n || *n < 1 || *n > detail::kMaxReplicas) {
        diagnostics.error(doc.source.locate(*replicas), "Server '" + name + "': replicas: expected an integer 1.." +
                                                            std::to_string(detail::kMaxReplicas) + ", got " +
                                                            detail::describe(*replicas));
        continue;
      }
    }
    if (static_cast<std::size_t>(*n) > detail::kMaxExpandedObjects - result.objects.size()) {
      diagnostics.error(replicas ? doc.source.locate(*replicas) : at, kind + " '" + name +
                                                                          "': this input would name more than " +
                                                                          std::to_string(detail::kMaxExpandedObjects) +
                                                                          " objects (replicas expanded), the most one "
                                                                          "load takes");
      break;
    }
    if (!replicas) {
      result.objects.emplace_back(kind, name);
      continue;
    }
    for (std::int64_t i = 0; i < *n; ++i) result.objects.emplace_back("Server", name + "-" + std::to_string(i));
  }
  result.diagnostics = std::move(diagnostics).sorted({sourceName});
  if (!result.ok()) result.objects.clear();
  return result;
}

DeclarationsResult validateDeclarations(const pool::Declarations& declarations, const std::string& sourceName) {
  detail::Diagnostics diagnostics;
  detail::LocatedDeclarations set;
  set.declarations = declarations;
  auto locate = [&](std::vector<detail::Origin>& origins, std::size_t n, const char* kind) {
    detail::Origin o;
    o.kind = kind;
    o.object = o.name = detail::Location{sourceName, 0, 0};
    origins.assign(n, o);
  };
  locate(set.partitions, declarations.partitions.size(), "Partition");
  locate(set.networks, declarations.networks.size(), "Network");
  locate(set.identityPools, declarations.identityPools.size(), "IdentityPool");
  locate(set.pools, declarations.pools.size(), "Pool");
  locate(set.servers, declarations.servers.size(), "Server");
  locate(set.blades, declarations.blades.size(), "Blade");
  detail::checkDeclarations(set, diagnostics);
  DeclarationsResult result;
  if (diagnostics.empty()) result.declarations = declarations;
  result.diagnostics = std::move(diagnostics).sorted({sourceName});
  return result;
}

FabricResult loadFabricFile(const std::string& path) {
  detail::Diagnostics diagnostics;
  auto text = readFile(path, diagnostics);
  return loadFabric(path, text, diagnostics);
}

FabricResult loadFabricText(const std::string& text, const std::string& sourceName) {
  detail::Diagnostics diagnostics;
  return loadFabric(sourceName, text, diagnostics);
}

}  // namespace loom::config
