#include "config/Loader.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
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
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
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

DeclarationsResult loadDeclarationText(const std::string& text, const std::string& sourceName) {
  detail::Diagnostics diagnostics;
  return loadDeclarations({{sourceName, text}}, diagnostics);
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
