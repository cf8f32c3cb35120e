// The pool model <-> JSON, for the state store (declarations are stored as JSON, one
// record per object) and for the HTTP API. Field names follow DESIGN.md §3 where the
// API shows them.
#pragma once

#include <nlohmann/json.hpp>

#include "controller/StateStore.h"
#include "loom/Result.h"
#include "pool/Model.h"

namespace loom::controller {

using Json = nlohmann::json;

// One record per declared object, in declaration order.
std::vector<DeclarationRecord> toRecords(const pool::Declarations& d);
// Rebuilds declarations from stored records; records that no longer parse are skipped
// and reported in `problems` (a newer controller's format, say) rather than fatal.
pool::Declarations fromRecords(const std::vector<DeclarationRecord>& records, std::vector<std::string>* problems);

// Upserts every object of `incoming` into `into` by (kind, name); order: existing
// objects keep their place, new ones are appended.
void mergeDeclarations(pool::Declarations& into, const pool::Declarations& incoming);

// Which fields the objects of a list answer carry: `?fields=name,state` asks for those
// only (a table prints nine fields of a blade, not twenty), no `fields` for all. Fields
// outside `known` are an error naming them and the known ones.
class FieldMask {
 public:
  FieldMask() = default;  // every field
  static Result<FieldMask> parse(const std::string& spec, const std::vector<std::string>& known);
  bool has(std::string_view field) const;

 private:
  std::vector<std::string> fields_;  // empty: all
};

Json toJson(const pool::Server& s);
Json toJson(const pool::Pool& p);
std::string macToString(std::uint64_t mac);

}  // namespace loom::controller
