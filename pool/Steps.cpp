// Step generation: binding changes become idempotent agent steps.
//
//   new / failover:  [PrepareHypervisor(new)] -> Define(new) -> Start(new)
//   evacuate:        Stop(old) -> Undefine(old);  Stop(old) -> Define(new) -> Start(new)
//   power off, gone: Stop(old) -> Undefine(old)
//
// A failed-over server gets no step on its old blade: that blade is fenced (its domains
// are destroyed) or gone, and a step waiting on a dead agent would never finish. The
// agent cleans up stale definitions when the blade comes back (DESIGN.md §5).
#include "pool/PlannerState.h"

namespace loom::pool::detail {
namespace {

std::size_t addStep(Output& out, StepKind kind, std::string blade, std::string server,
                    std::optional<Hypervisor> hv, std::vector<std::size_t> after) {
  out.steps.push_back(Step{kind, std::move(blade), std::move(server), hv, std::move(after)});
  return out.steps.size() - 1;
}

}  // namespace

std::int64_t State::emitStop(const std::string& blade, const std::string& server, Output& out) {
  const std::size_t stop = addStep(out, StepKind::Stop, blade, server, std::nullopt, {});
  addStep(out, StepKind::Undefine, blade, server, std::nullopt, {stop});
  return static_cast<std::int64_t>(stop);
}

void State::emitStart(int si, int bi, std::int64_t afterStop, Output& out) {
  BladeSlot& b = blades[bi];
  const ServerSlot& s = servers[si];
  const auto& hv = pools[b.pool].hypervisor;
  // The blade needs the pool's personality first: a borrowed blade from another pool, or
  // a member that was never prepared. One step per blade per plan; every Define on that
  // blade waits for it.
  if (hv && b.personality != hv) {
    b.prepareStep = static_cast<std::int64_t>(addStep(out, StepKind::PrepareHypervisor, b.name, {}, hv, {}));
    b.personality = hv;
    out.prepared.push_back(bi);
  }
  std::vector<std::size_t> after;
  if (b.prepareStep >= 0) after.push_back(static_cast<std::size_t>(b.prepareStep));
  if (afterStop >= 0) after.push_back(static_cast<std::size_t>(afterStop));
  const std::size_t define = addStep(out, StepKind::Define, b.name, s.name, hv, std::move(after));
  addStep(out, StepKind::Start, b.name, s.name, hv, {define});
}

}  // namespace loom::pool::detail
