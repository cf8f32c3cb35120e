// Where objects are, from the declarations and the planner's blade membership: the
// access::Scope of the leader (the core's rooms) and of a standby (its warm copy's views),
// so both hold a partition-scoped token to the same objects.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "controller/DesiredState.h"
#include "controller/access/AccessGate.h"
#include "pool/Planner.h"

namespace loom::controller::access {

class DeclaredScope final : public Scope {
 public:
  using Known = std::function<bool(const std::string& blade)>;
  // All are read when asked, so they must outlive the scope: `roles` (blade -> its pool
  // and role), `borrowed` (blade -> the pool it is lent to).
  DeclaredScope(const DesiredState& desired, const std::map<std::string, pool::BladeAssignment>& roles,
                const std::map<std::string, std::string>& borrowed, Known known)
      : desired_(desired), roles_(roles), borrowed_(borrowed), known_(std::move(known)) {}

  std::optional<std::string> partitionOf(ObjectKind kind, const std::string& name) const override;
  bool bladeKnown(const std::string& blade) const override { return known_(blade); }
  bool bladeServes(const std::string& blade, const std::string& partition) const override;
  std::optional<std::vector<Touched>> touches(const ApiRequest& request, bool deletion) const override;

 private:
  const DesiredState& desired_;
  const std::map<std::string, pool::BladeAssignment>& roles_;
  const std::map<std::string, std::string>& borrowed_;
  Known known_;
};

}  // namespace loom::controller::access
