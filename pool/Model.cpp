// Text forms of the model's enumerations. One table per enum so toString and parse can
// never disagree: the text is what YAML, JSON and the CLI show, always lower-case.
#include "pool/Model.h"

#include <array>
#include <string_view>
#include <utility>

namespace loom::pool {
namespace {

template <class E, std::size_t N>
using Names = std::array<std::pair<E, const char*>, N>;

constexpr Names<Hypervisor, 2> kHypervisors{{{Hypervisor::Xen, "xen"}, {Hypervisor::Kvm, "kvm"}}};

constexpr Names<BladeState, 9> kBladeStates{{
    {BladeState::Discovered, "discovered"},
    {BladeState::Available, "available"},
    {BladeState::Active, "active"},
    {BladeState::Spare, "spare"},
    {BladeState::Suspect, "suspect"},
    {BladeState::Failed, "failed"},
    {BladeState::Fenced, "fenced"},
    {BladeState::Maintenance, "maintenance"},
    {BladeState::Retired, "retired"},
}};

constexpr Names<ServerState, 9> kServerStates{{
    {ServerState::Pending, "pending"},
    {ServerState::Placing, "placing"},
    {ServerState::Starting, "starting"},
    {ServerState::Running, "running"},
    {ServerState::Stopping, "stopping"},
    {ServerState::Stopped, "stopped"},
    {ServerState::Failed, "failed"},
    {ServerState::Unplaceable, "unplaceable"},
    {ServerState::Moving, "moving"},
}};

constexpr Names<FailoverPolicy, 3> kFailoverPolicies{
    {{FailoverPolicy::Spare, "spare"}, {FailoverPolicy::Pack, "pack"}, {FailoverPolicy::None, "none"}}};

constexpr Names<FailbackPolicy, 2> kFailbackPolicies{
    {{FailbackPolicy::Manual, "manual"}, {FailbackPolicy::Auto, "auto"}}};

constexpr Names<PowerState, 2> kPowerStates{{{PowerState::On, "on"}, {PowerState::Off, "off"}}};

constexpr Names<XenGuestType, 3> kXenGuestTypes{
    {{XenGuestType::Hvm, "hvm"}, {XenGuestType::Pv, "pv"}, {XenGuestType::Pvh, "pvh"}}};

constexpr Names<DomainState, 6> kDomainStates{{
    {DomainState::Defined, "defined"},
    {DomainState::Running, "running"},
    {DomainState::Paused, "paused"},
    {DomainState::ShuttingDown, "shutting-down"},
    {DomainState::Shutoff, "shutoff"},
    {DomainState::Crashed, "crashed"},
}};

constexpr Names<StepKind, 5> kStepKinds{{
    {StepKind::PrepareHypervisor, "prepare-hypervisor"},
    {StepKind::Define, "define"},
    {StepKind::Start, "start"},
    {StepKind::Stop, "stop"},
    {StepKind::Undefine, "undefine"},
}};

template <class E, std::size_t N>
const char* nameOf(const Names<E, N>& names, E value) {
  for (const auto& [e, text] : names) {
    if (e == value) return text;
  }
  return "unknown";
}

template <class E, std::size_t N>
std::optional<E> valueOf(const Names<E, N>& names, std::string_view text) {
  for (const auto& [e, name] : names) {
    if (text == name) return e;
  }
  return std::nullopt;
}

}  // namespace

const char* toString(Hypervisor v) { return nameOf(kHypervisors, v); }
const char* toString(BladeState v) { return nameOf(kBladeStates, v); }
const char* toString(ServerState v) { return nameOf(kServerStates, v); }
const char* toString(FailoverPolicy v) { return nameOf(kFailoverPolicies, v); }
const char* toString(FailbackPolicy v) { return nameOf(kFailbackPolicies, v); }
const char* toString(PowerState v) { return nameOf(kPowerStates, v); }
const char* toString(XenGuestType v) { return nameOf(kXenGuestTypes, v); }
const char* toString(DomainState v) { return nameOf(kDomainStates, v); }
const char* toString(StepKind v) { return nameOf(kStepKinds, v); }

std::string formatSize(MiB mib) {
  if (mib != 0 && mib % (1024ull * 1024) == 0) return std::to_string(mib / (1024ull * 1024)) + "TiB";
  if (mib != 0 && mib % 1024 == 0) return std::to_string(mib / 1024) + "GiB";
  return std::to_string(mib) + "MiB";
}

std::optional<Hypervisor> parseHypervisor(std::string_view s) { return valueOf(kHypervisors, s); }
std::optional<BladeState> parseBladeState(std::string_view s) { return valueOf(kBladeStates, s); }
std::optional<ServerState> parseServerState(std::string_view s) { return valueOf(kServerStates, s); }
std::optional<FailoverPolicy> parseFailoverPolicy(std::string_view s) { return valueOf(kFailoverPolicies, s); }
std::optional<FailbackPolicy> parseFailbackPolicy(std::string_view s) { return valueOf(kFailbackPolicies, s); }
std::optional<PowerState> parsePowerState(std::string_view s) { return valueOf(kPowerStates, s); }
std::optional<XenGuestType> parseXenGuestType(std::string_view s) { return valueOf(kXenGuestTypes, s); }
std::optional<DomainState> parseDomainState(std::string_view s) { return valueOf(kDomainStates, s); }
std::optional<StepKind> parseStepKind(std::string_view s) { return valueOf(kStepKinds, s); }

}  // namespace loom::pool
