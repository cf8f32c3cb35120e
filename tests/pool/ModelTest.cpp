#include <gtest/gtest.h>

#include "tests/pool/PoolBuilders.h"

namespace loom::pool {
namespace {

template <class E>
void expectRoundTrip(std::initializer_list<E> values, std::optional<E> (*parse)(std::string_view)) {
  for (E v : values) {
    const std::string text = toString(v);
    EXPECT_EQ(parse(text), v) << text;
    for (char c : text) EXPECT_FALSE(std::isupper(static_cast<unsigned char>(c))) << text;
  }
}

TEST(Model, EveryEnumRoundTripsThroughItsLowerCaseText) {
  expectRoundTrip({Hypervisor::Xen, Hypervisor::Kvm}, parseHypervisor);
  expectRoundTrip(
      {BladeState::Discovered, BladeState::Available, BladeState::Active, BladeState::Spare, BladeState::Suspect,
       BladeState::Failed, BladeState::Fenced, BladeState::Maintenance, BladeState::Retired},
      parseBladeState);
  expectRoundTrip(
      {ServerState::Pending, ServerState::Placing, ServerState::Starting, ServerState::Running, ServerState::Stopping,
       ServerState::Stopped, ServerState::Failed, ServerState::Unplaceable, ServerState::Moving},
      parseServerState);
  expectRoundTrip({FailoverPolicy::Spare, FailoverPolicy::Pack, FailoverPolicy::None}, parseFailoverPolicy);
  expectRoundTrip({FailbackPolicy::Manual, FailbackPolicy::Auto}, parseFailbackPolicy);
  expectRoundTrip({PowerState::On, PowerState::Off}, parsePowerState);
  expectRoundTrip({XenGuestType::Hvm, XenGuestType::Pv, XenGuestType::Pvh}, parseXenGuestType);
  expectRoundTrip({DomainState::Defined, DomainState::Running, DomainState::Paused, DomainState::ShuttingDown,
                   DomainState::Shutoff, DomainState::Crashed},
                  parseDomainState);
  expectRoundTrip({StepKind::PrepareHypervisor, StepKind::Define, StepKind::Start, StepKind::Stop, StepKind::Undefine},
                  parseStepKind);
}

TEST(Model, TextFormsAreTheOnesYamlUses) {
  EXPECT_STREQ(toString(Hypervisor::Xen), "xen");
  EXPECT_STREQ(toString(Hypervisor::Kvm), "kvm");
  EXPECT_STREQ(toString(BladeState::Available), "available");
  EXPECT_STREQ(toString(BladeState::Spare), "spare");
  EXPECT_STREQ(toString(FailoverPolicy::Pack), "pack");
  EXPECT_STREQ(toString(PowerState::On), "on");
  EXPECT_STREQ(toString(XenGuestType::Pvh), "pvh");
  EXPECT_STREQ(toString(BladeRole::Borrowed), "borrowed");
  EXPECT_STREQ(toString(StepKind::PrepareHypervisor), "prepare-hypervisor");
}

// These texts are on the fabric (docs/PROTOCOL.md): agents and controllers of other
// versions read them.
TEST(Model, DomainStatesAndStepKindsKeepTheirWireText) {
  EXPECT_STREQ(toString(DomainState::Defined), "defined");
  EXPECT_STREQ(toString(DomainState::Running), "running");
  EXPECT_STREQ(toString(DomainState::Paused), "paused");
  EXPECT_STREQ(toString(DomainState::ShuttingDown), "shutting-down");
  EXPECT_STREQ(toString(DomainState::Shutoff), "shutoff");
  EXPECT_STREQ(toString(DomainState::Crashed), "crashed");
  EXPECT_STREQ(toString(StepKind::Define), "define");
  EXPECT_STREQ(toString(StepKind::Start), "start");
  EXPECT_STREQ(toString(StepKind::Stop), "stop");
  EXPECT_STREQ(toString(StepKind::Undefine), "undefine");
}

TEST(Model, ParsingRejectsUnknownAndWrongCaseText) {
  EXPECT_FALSE(parseHypervisor("xen2"));
  EXPECT_FALSE(parseHypervisor("KVM"));
  EXPECT_FALSE(parseBladeState(""));
  EXPECT_FALSE(parseFailoverPolicy("spares"));
  EXPECT_FALSE(parsePowerState("onn"));
  EXPECT_FALSE(parseDomainState("Running"));
  EXPECT_FALSE(parseDomainState("shut-off"));
  EXPECT_FALSE(parseStepKind("fence"));
  EXPECT_FALSE(parseStepKind("prepare_hypervisor"));
}

TEST(Model, HypervisorSetHoldsWhatWasAdded) {
  HypervisorSet set;
  EXPECT_TRUE(set.empty());
  set.add(Hypervisor::Xen);
  EXPECT_TRUE(set.has(Hypervisor::Xen));
  EXPECT_FALSE(set.has(Hypervisor::Kvm));
  EXPECT_EQ(HypervisorSet::all(), (HypervisorSet{0b11}));
}

}  // namespace
}  // namespace loom::pool
