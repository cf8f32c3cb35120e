// The fabric protocol: validation (pure) and the dispatch table.
#include <gtest/gtest.h>

#include <tuple>

#include "protocol/Dispatcher.h"
#include "protocol/Messages.h"
#include "protocol/RelayEnvelope.h"
#include "protocol/Validation.h"

namespace loom::protocol {
namespace {

Register sampleRegister() {
  Register r;
  r.blade = "c1-s1";
  r.agentVersion = "0.1.0";
  r.inventory.cores = 16;
  r.inventory.memoryMib = 65536;
  r.inventory.hypervisors = {"kvm"};
  r.domains = {{"web-01", "4c4f4f4d-0000-0000-0000-000000000001", pool::DomainState::Running}};
  return r;
}

TEST(ProtocolValidation, AcceptsEveryEncodedMessage) {
  PlanMsg plan;
  ServerSpec spec;
  spec.name = "web-01";
  spec.nics.push_back({"52:54:00:10:00:01", "front", 100});
  spec.xenType = pool::XenGuestType::Pvh;
  plan.steps.push_back({1, pool::StepKind::Define, "web-01", "", spec});
  plan.steps.push_back({2, pool::StepKind::Start, "web-01", "", std::nullopt});
  plan.steps.push_back({3, pool::StepKind::PrepareHypervisor, "", "kvm", std::nullopt});
  for (const Json& frame :
       {encode(sampleRegister()), encode(Registered{5000, 1000}), encode(Heartbeat{7, std::nullopt}),
        encode(LeaseRenewed{7, 5000}), encode(plan), encode(StepResult{1, false, "boom"}),
        encode(Event{"warning", "disk slow", "web-01"}), encode(Reregister{}), encode(Reregister{7})})
    EXPECT_FALSE(validate(frame).has_value()) << frame.dump() << ": " << validate(frame)->message;
}

TEST(ProtocolValidation, AReregisterNamesTheBeatItAnswersOrNone) {
  EXPECT_EQ(decodeReregister(encode(Reregister{42})).seq, 42u);
  EXPECT_FALSE(encode(Reregister{}).contains("seq")) << "an older controller's ask: no seq";
  EXPECT_EQ(decodeReregister(encode(Reregister{})).seq, 0u);
  EXPECT_EQ(validate(Json{{"type", "reregister"}, {"v", 1}, {"seq", "7"}})->kind, "invalid");
  EXPECT_EQ(validate(Json{{"type", "reregister"}, {"v", 1}, {"seq", -1}})->kind, "invalid");
}

TEST(ProtocolValidation, RoundTripsRegisterAndPlan) {
  auto r = decodeRegister(encode(sampleRegister()));
  EXPECT_EQ(r.blade, "c1-s1");
  EXPECT_EQ(r.inventory.cores, 16u);
  ASSERT_EQ(r.domains.size(), 1u);
  EXPECT_EQ(r.domains[0].state, pool::DomainState::Running);
  PlanMsg plan;
  ServerSpec spec;
  spec.name = "db";
  spec.uuid = "u";
  spec.memoryMib = 2048;
  spec.disks.push_back({"/img/db.qcow2", "qcow2", true});
  spec.xenType = pool::XenGuestType::Pv;
  spec.kernel = "/boot/vmlinuz";
  plan.steps.push_back({9, pool::StepKind::Define, "db", "", spec});
  plan.steps.push_back({10, pool::StepKind::Undefine, "old", "", std::nullopt});
  auto back = decodePlan(encode(plan));
  ASSERT_EQ(back.steps.size(), 2u);
  EXPECT_EQ(back.steps[0].kind, pool::StepKind::Define);
  EXPECT_EQ(back.steps[1].kind, pool::StepKind::Undefine);
  ASSERT_TRUE(back.steps[0].spec);
  EXPECT_EQ(*back.steps[0].spec, spec);
}

// The schema's text is what agents and controllers of other versions read: the frame an
// encoder writes is pinned here byte for byte (nlohmann orders keys by name).
TEST(ProtocolValidation, APlanFrameKeepsItsBytes) {
  PlanMsg plan;
  ServerSpec spec;
  spec.name = "web-01";
  spec.uuid = "4c4f4f4d-0000-0000-0000-000000000001";
  spec.vcpus = 2;
  spec.memoryMib = 1024;
  spec.nics.push_back({"52:54:00:10:00:01", "front", 100});
  spec.nics.push_back({"52:54:00:10:00:02", "back", std::nullopt});
  spec.disks.push_back({"/img/web.qcow2", "qcow2", false});
  spec.xenType = pool::XenGuestType::Pv;
  spec.kernel = "/boot/vmlinuz";
  spec.cmdline = "console=hvc0";
  plan.steps.push_back({7, pool::StepKind::Define, "web-01", "", spec});
  plan.steps.push_back({8, pool::StepKind::PrepareHypervisor, "", "xen", std::nullopt});
  EXPECT_EQ(
      encode(plan).dump(),
      R"({"steps":[{"kind":"define","op":7,"server":"web-01","spec":{"cmdline":"console=hvc0","disks":[{"format":"qcow2",)"
      R"("path":"/img/web.qcow2","read_only":false}],"kernel":"/boot/vmlinuz","memory_mib":1024,"name":"web-01","nics":[{"mac":)"
      R"("52:54:00:10:00:01","network":"front","vlan":100},{"mac":"52:54:00:10:00:02","network":"back"}],"uuid":)"
      R"("4c4f4f4d-0000-0000-0000-000000000001","vcpus":2,"xen_type":"pv"}},{"hypervisor":"xen","kind":"prepare-hypervisor",)"
      R"("op":8,"server":""}],"type":"plan","v":1})");
  Json beat = encode(Heartbeat{3, std::vector<ObservedDomain>{{"a", "u", pool::DomainState::ShuttingDown}}});
  EXPECT_EQ(beat.dump(),
            R"({"domains":[{"name":"a","state":"shutting-down","uuid":"u"}],"seq":3,"type":"heartbeat","v":1})");
}

// A controller before 0.2 sent every NIC's "bridge" (always empty: the bridge is the
// blade's business, DomainSpecMapping.h). Such a plan, exactly as one sent it, is still
// valid and means the same: re-encoded, only the bridges are gone.
TEST(ProtocolValidation, AcceptsAPlanFromAnOlderControllerWithBridges) {
  const std::string old =
      R"({"steps":[{"kind":"define","op":7,"server":"web-01","spec":{"cmdline":"console=hvc0","disks":[{"format":"qcow2)"
      R"(","path":"/img/web.qcow2","read_only":false}],"kernel":"/boot/vmlinuz","memory_mib":1024,"name":"web-01","nics)"
      R"(":[{"bridge":"","mac":"52:54:00:10:00:01","network":"front","vlan":100},{"bridge":"","mac":"52:54:00:10:00:02")"
      R"(,"network":"back"}],"uuid":"4c4f4f4d-0000-0000-0000-000000000001","vcpus":2,"xen_type":"pv"}},{"hypervisor":"x)"
      R"(en","kind":"prepare-hypervisor","op":8,"server":""}],"type":"plan","v":1})";
  const Json frame = Json::parse(old);
  ASSERT_FALSE(validate(frame)) << validate(frame)->message;
  std::string withoutBridges = old;
  for (auto at = withoutBridges.find(R"("bridge":"",)"); at != std::string::npos;
       at = withoutBridges.find(R"("bridge":"",)"))
    withoutBridges.erase(at, std::string(R"("bridge":"",)").size());
  EXPECT_EQ(encode(decodePlan(frame)).dump(), withoutBridges);
}

TEST(ProtocolValidation, RefusesUnknownKindsStatesAndGuestTypesNamingTheField) {
  Json plan{{"type", "plan"}, {"v", 1}, {"steps", Json::array({{{"op", 1}, {"kind", "fence"}, {"server", "x"}}})}};
  auto r = validate(plan);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->kind, "invalid");
  EXPECT_EQ(r->message,
            "'plan': steps[0].kind: unknown step kind 'fence' (expected prepare-hypervisor, define, start, stop or "
            "undefine)");

  Json define{
      {"type", "plan"},
      {"v", 1},
      {"steps",
       Json::array(
           {{{"op", 1}, {"kind", "define"}, {"server", "x"}, {"spec", {{"name", "x"}, {"xen_type", "hvm2"}}}}})}};
  r = validate(define);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->message, "'plan': steps[0].spec.xen_type: unknown Xen guest type 'hvm2' (expected hvm, pv or pvh)");
  define["steps"][0]["spec"]["xen_type"] = 1;  // a number was never on the wire
  EXPECT_EQ(validate(define)->message, "'plan': steps[0].spec.xen_type: expected a string");

  Json beat = encode(Heartbeat{1, std::vector<ObservedDomain>{{"a", "", pool::DomainState::Running}}});
  beat["domains"][0]["state"] = "Running";
  r = validate(beat);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->message,
            "'heartbeat': domains[0].state: unknown domain state 'Running' (expected defined, running, paused, "
            "shutting-down, "
            "shutoff or crashed)");
  Json reg = encode(sampleRegister());
  reg["domains"][0]["state"] = "";
  EXPECT_EQ(validate(reg)->kind, "invalid");

  Json readOnly{
      {"type", "plan"},
      {"v", 1},
      {"steps",
       Json::array({{{"op", 1},
                     {"kind", "define"},
                     {"server", "x"},
                     {"spec", {{"name", "x"}, {"disks", Json::array({{{"path", "/d"}, {"read_only", "yes"}}})}}}}})}};
  EXPECT_EQ(validate(readOnly)->message, "'plan': steps[0].spec.disks[].read_only: expected true or false");
}

TEST(ProtocolValidation, RefusesMalformedFrames) {
  Json out;
  EXPECT_EQ(parseFrame("{not json", out)->kind, "malformed");
  EXPECT_EQ(parseFrame("[1,2]", out)->kind, "malformed");
  EXPECT_EQ(parseFrame(std::string("\x00\xff\xfe", 3), out)->kind, "malformed");
  EXPECT_EQ(validate(Json{{"v", 1}})->kind, "malformed");
  EXPECT_EQ(validate(Json{{"type", "heartbeat"}})->kind, "malformed");
  EXPECT_EQ(validate(Json{{"type", 3}, {"v", 1}})->kind, "malformed");
}

TEST(ProtocolValidation, RefusesUnknownTypeAndVersion) {
  EXPECT_EQ(validate(Json{{"type", "takeover"}, {"v", 1}})->kind, "unknown-type");
  Json hb = encode(Heartbeat{1, std::nullopt});
  hb["v"] = 2;
  auto r = validate(hb);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->kind, "bad-version");
  EXPECT_NE(r->message.find("version 2"), std::string::npos);
}

TEST(ProtocolValidation, RefusesWrongFieldTypesNamingTheField) {
  Json reg = encode(sampleRegister());
  reg["inventory"]["cores"] = "sixteen";
  auto r = validate(reg);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->kind, "invalid");
  EXPECT_NE(r->message.find("inventory.cores"), std::string::npos) << r->message;

  Json hb = encode(Heartbeat{1, std::vector<ObservedDomain>{{"a", "", pool::DomainState::Running}}});
  hb["domains"][0].erase("state");
  EXPECT_NE(validate(hb)->message.find("domains[0].state"), std::string::npos);

  Json hbNeg = encode(Heartbeat{1, std::nullopt});
  hbNeg["seq"] = -4;
  EXPECT_EQ(validate(hbNeg)->kind, "invalid");

  Json plan{
      {"type", "plan"}, {"v", 1}, {"steps", Json::array({{{"op", 1}, {"kind", "format-disk"}, {"server", "x"}}})}};
  EXPECT_NE(validate(plan)->message.find("unknown step kind"), std::string::npos);
  Json define{{"type", "plan"}, {"v", 1}, {"steps", Json::array({{{"op", 1}, {"kind", "define"}, {"server", "x"}}})}};
  EXPECT_NE(validate(define)->message.find("spec"), std::string::npos);
  Json emptyBlade = encode(sampleRegister());
  emptyBlade["blade"] = "";
  EXPECT_EQ(validate(emptyBlade)->kind, "invalid");
}

TEST(ProtocolDispatch, RoutesByTypeAndDropsEverythingElse) {
  std::vector<std::string> logged;
  Dispatcher<int> d([&](const std::string& line) { logged.push_back(line); });
  int heartbeats = 0, lastPeer = -1;
  d.on(type::kHeartbeat, [&](const int& peer, const Json&) {
    ++heartbeats;
    lastPeer = peer;
  });
  EXPECT_TRUE(d.dispatch(7, "b7", encode(Heartbeat{1, std::nullopt}).dump()));
  EXPECT_EQ(heartbeats, 1);
  EXPECT_EQ(lastPeer, 7);
  // Valid but not handled here, unknown, bad version, malformed: none reaches a handler.
  EXPECT_FALSE(d.dispatch(7, "b7", encode(StepResult{1, true, ""}).dump()));
  EXPECT_FALSE(d.dispatch(7, "b7", R"({"type":"nope","v":1})"));
  EXPECT_FALSE(d.dispatch(7, "b7", R"({"type":"heartbeat","v":9,"seq":1})"));
  EXPECT_FALSE(d.dispatch(7, "b7", "garbage"));
  EXPECT_FALSE(d.dispatch(7, "b7", "garbage again"));
  EXPECT_EQ(heartbeats, 1);
  EXPECT_EQ(d.rejectedTotal(), 5u);
  EXPECT_EQ(d.rejected().at("malformed"), 2u);
  EXPECT_EQ(d.rejected().at("unknown-type"), 2u);
  EXPECT_EQ(d.rejected().at("bad-version"), 1u);
  // Logged once per (kind, peer): the second garbage frame is only counted.
  EXPECT_EQ(logged.size(), 3u);
}

// A peer's name and the frame's own text reach the log as one line: a newline in either
// cannot forge a line of its own (an "unknown type" quotes the frame's type).
TEST(ProtocolDispatcher, APeersTextCannotStartALogLineOfItsOwn) {
  std::vector<std::string> logged;
  Dispatcher<int> d([&](const std::string& line) { logged.push_back(line); });
  EXPECT_FALSE(d.dispatch(7, "b7\nloomd: fenced c1-s1", R"({"type":"x\nloomd: fenced c1-s2\u001b[2J","v":1})"));
  ASSERT_EQ(logged.size(), 1u);
  EXPECT_EQ(logged[0].find('\n'), std::string::npos) << logged[0];
  EXPECT_EQ(logged[0].find('\x1b'), std::string::npos) << logged[0];
  EXPECT_NE(logged[0].find("from 'b7\\x0aloomd: fenced c1-s1'"), std::string::npos) << logged[0];
  EXPECT_NE(logged[0].find("x\\x0aloomd: fenced c1-s2\\x1b[2J"), std::string::npos) << logged[0];
}

// --- the relay envelope ------------------------------------------------------------------

std::vector<std::string_view> frames(std::initializer_list<std::string_view> l) { return l; }

TEST(RelayEnvelope, SplitsIntoBladeAndPayloadPairsInOrder) {
  auto split = splitRelayEnvelope(frames({"loom-relay/1", "c1-s1", "{\"a\":1}", "c1-s2", ""}));
  ASSERT_TRUE(std::holds_alternative<std::vector<RelayedFrame>>(split));
  const auto& pairs = std::get<std::vector<RelayedFrame>>(split);
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[0].blade, "c1-s1");
  EXPECT_EQ(pairs[0].payload, "{\"a\":1}");
  EXPECT_EQ(pairs[1].blade, "c1-s2");
  EXPECT_EQ(pairs[1].payload, "");  // an empty payload is the agent's frame to judge, not the envelope's
}

TEST(RelayEnvelope, AnEnvelopeOfNoPairsIsEmptyNotAnError) {
  auto split = splitRelayEnvelope(frames({"loom-relay/1"}));
  ASSERT_TRUE(std::holds_alternative<std::vector<RelayedFrame>>(split));
  EXPECT_TRUE(std::get<std::vector<RelayedFrame>>(split).empty());
}

TEST(RelayEnvelope, RefusesAnotherVersionWhole) {
  EXPECT_TRUE(isRelayEnvelope("loom-relay/2"));
  auto split = splitRelayEnvelope(frames({"loom-relay/2", "c1-s1", "{}"}));
  ASSERT_TRUE(std::holds_alternative<Rejection>(split));
  EXPECT_EQ(std::get<Rejection>(split).kind, "bad-version");
  EXPECT_NE(std::get<Rejection>(split).message.find("loom-relay/2"), std::string::npos);
}

TEST(RelayEnvelope, RefusesAnUnpairedFrameWhole) {
  auto split = splitRelayEnvelope(frames({"loom-relay/1", "c1-s1", "{}", "c1-s2"}));
  ASSERT_TRUE(std::holds_alternative<Rejection>(split));
  EXPECT_EQ(std::get<Rejection>(split).kind, "malformed");
}

TEST(RelayEnvelope, RefusesABladeNameThatCouldBeARelayOrAPath) {
  for (std::string_view bad :
       {std::string_view(""), std::string_view("relay/c1"), std::string_view("../etc"), std::string_view("a\nb", 3)}) {
    auto split = splitRelayEnvelope(frames({"loom-relay/1", bad, "{}"}));
    ASSERT_TRUE(std::holds_alternative<Rejection>(split)) << bad;
    EXPECT_EQ(std::get<Rejection>(split).kind, "malformed");
  }
}

TEST(RelayEnvelope, AnAgentFrameIsNeverTakenForAnEnvelope) {
  EXPECT_FALSE(isRelayEnvelope(encode(Heartbeat{1, std::nullopt}).dump()));
  EXPECT_FALSE(isRelayEnvelope(""));
  EXPECT_FALSE(isRelayEnvelope("loom-relay"));
}

TEST(BladeName, AllowsWhatFabricsUseAndNothingThatBreaksRoutingOrFiles) {
  for (const char* ok : {"c1-s1", "b00042", "rack2.chassis3.slot14", "blade_7", "Ünicode"})
    EXPECT_TRUE(isValidBladeName(ok)) << ok;
  EXPECT_FALSE(isValidBladeName(""));
  EXPECT_FALSE(isValidBladeName("relay/x"));
  EXPECT_FALSE(isValidBladeName(std::string(254, 'a')));
  EXPECT_TRUE(isValidBladeName(std::string(253, 'a')));
  EXPECT_FALSE(isValidBladeName(std::string_view("a\0b", 3)));
  EXPECT_FALSE(isValidBladeName("tab\there"));
  // It is also a JSON string in every API answer: well-formed UTF-8 only.
  EXPECT_TRUE(isValidBladeName("\xc3\xa9t\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x92\xbe"));
  for (const char* bad :
       {"\xff", "a\xc3", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x80x", "\xe2\x82"})
    EXPECT_FALSE(isValidBladeName(bad)) << "accepted a name that is not UTF-8";
}

// --- the fabric thread's fast path ------------------------------------------------------

TEST(PlainHeartbeatPeek, RecognizesWhatAgentsSendInAnyKeyOrder) {
  for (const auto& [text, seq, ack] : std::vector<std::tuple<std::string, std::uint64_t, bool>>{
           {encode(Heartbeat{7, std::nullopt}).dump(), 7, true},
           {encode(Heartbeat{8, std::nullopt, false}).dump(), 8, false},
           {R"({"seq":18446744073709551615,"v":1,"type":"heartbeat"})", 18446744073709551615ull, true},
           {R"( { "ack" : true , "type" : "heartbeat" , "seq" : 0 , "v" : 1 } )", 0, true}}) {
    auto beat = peekPlainHeartbeat(text);
    ASSERT_TRUE(beat) << text;
    EXPECT_EQ(beat->seq, seq) << text;
    EXPECT_EQ(beat->ack, ack) << text;
  }
}

TEST(PlainHeartbeatPeek, LeavesEverythingElseToTheFullPathAndNeverDisagreesWithIt) {
  const std::vector<std::string> inputs{
      encode(Heartbeat{7, std::vector<ObservedDomain>{{"web-0", "u", pool::DomainState::Running}}})
          .dump(),                                        // news: full path
      R"({"type":"heartbeat","v":1,"seq":1,"extra":2})",  // a field from a newer agent
      R"({"type":"heartbeat","v":2,"seq":1})",            // another version
      R"({"type":"heartbeat","v":1,"seq":-1})",
      R"({"type":"heartbeat","v":1,"seq":1.5})",
      R"({"type":"heartbeat","v":1,"seq":"1"})",
      R"({"type":"heartbeat","v":1,"seq":1,"ack":"no"})",
      R"({"type":"heartbeat","v":1})",
      R"({"type":"heartbeats","v":1,"seq":1})",
      R"({"type":"heartbeat","v":1,"seq":1} trailing)",
      R"({"type":"heartbeat","v":1,"seq":1)",
      R"([{"type":"heartbeat","v":1,"seq":1}])",
      R"({"type":"heartbeat","v":1,"seq":{"n":1}})",
      R"({"type":"heartbeat","v":1,"seq":1,"seq":null})",
      R"({"type":"heartbeat","v":null,"seq":1})",
      encode(StepResult{1, true, ""}).dump(),
      "",
      "heartbeat",
      std::string("{\"type\":\"heartbeat\",\"v\":1,\"seq\":1\0}", 35),
      std::string(300, ' ') + R"({"type":"heartbeat","v":1,"seq":1})",
  };
  for (const auto& text : inputs) {
    auto beat = peekPlainHeartbeat(text);
    Json frame;
    const bool fullPathAccepts = !parseFrame(text, frame) && !validate(frame) && frame["type"] == "heartbeat";
    if (beat) {
      ASSERT_TRUE(fullPathAccepts) << "peek accepted what the full path refuses: " << text;
      auto decoded = decodeHeartbeat(frame);
      EXPECT_EQ(decoded.seq, beat->seq) << text;
      EXPECT_EQ(decoded.ack, beat->ack) << text;
      EXPECT_FALSE(decoded.domains) << text;
    }
  }
  // The refusals that matter: these must reach the full path to be judged (or handed on).
  EXPECT_FALSE(peekPlainHeartbeat(inputs[0])) << "a domain list is news for the core";
  EXPECT_FALSE(peekPlainHeartbeat(inputs[2])) << "another version is counted as such by the full path";
  EXPECT_FALSE(peekPlainHeartbeat(inputs[3]));
}

TEST(LeaseRenewedFrame, IsByteForByteTheEncodersOutput) {
  for (auto [seq, lease] :
       std::vector<std::pair<std::uint64_t, std::int64_t>>{{0, 0}, {7, 5000}, {18446744073709551615ull, 86400000}})
    for (std::uint64_t stamp : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{0xabcde} << 43 | 123456})
      for (std::uint64_t epoch : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{18446744073709551615ull}})
        EXPECT_EQ(leaseRenewedFrame(seq, lease, stamp, epoch), encode(LeaseRenewed{seq, lease, stamp, epoch}).dump());
}

// --- the leader's epoch (docs/FENCING.md, "Replicas: the epoch") --------------------------

// Every frame loomd sends an agent, stamped with `epoch` (0: a solo loomd's, unstamped).
std::vector<Json> controllerFrames(std::uint64_t epoch) {
  PlanMsg plan;
  plan.steps.push_back({2, pool::StepKind::Start, "web-01", "", std::nullopt});
  plan.epoch = epoch;
  Policy policy{3, false, 2000, 10000, {{"c1-s2", "tcp://10.0.0.6:7702", ""}}};
  policy.epoch = epoch;
  return {encode(Registered{5000, 1000, 1, 77, epoch}), encode(LeaseRenewed{7, 5000, 77, epoch}),
          encode(Reregister{7, epoch}), encode(plan), encode(policy)};
}

TEST(EpochProtocol, EveryControllerFrameCarriesTheEpochAndASoloLoomdsFramesAreUnchanged) {
  for (const Json& frame : controllerFrames(42)) {
    EXPECT_FALSE(validate(frame).has_value()) << frame.dump();
    EXPECT_EQ(epochOf(frame), 42u) << frame.dump();
  }
  EXPECT_EQ(decodeRegistered(controllerFrames(42)[0]).epoch, 42u);
  EXPECT_EQ(decodeLeaseRenewed(controllerFrames(42)[1]).epoch, 42u);
  EXPECT_EQ(decodeReregister(controllerFrames(42)[2]).epoch, 42u);
  EXPECT_EQ(decodePlan(controllerFrames(42)[3]).epoch, 42u);
  EXPECT_EQ(decodePolicy(controllerFrames(42)[4]).epoch, 42u);
  // A solo loomd (epoch 0) sends exactly what it sent before replicas existed.
  for (const Json& frame : controllerFrames(0)) {
    EXPECT_FALSE(frame.contains("epoch")) << frame.dump();
    EXPECT_EQ(epochOf(frame), 0u);
  }
  EXPECT_EQ(encode(Registered{5000, 1000, 1, 77, 0}).dump(),
            R"({"heartbeat_ms":1000,"lease_ms":5000,"seq":1,"stamp":77,"type":"registered","v":1})");
}

TEST(EpochProtocol, AnEpochThatIsNotANonNegativeIntegerIsRefused) {
  for (Json frame : controllerFrames(1))
    for (const Json& bad : {Json("7"), Json(-1), Json(1.5), Json(nullptr)}) {
      frame["epoch"] = bad;
      const auto why = validate(frame);
      ASSERT_TRUE(why.has_value()) << frame.dump();
      EXPECT_EQ(why->kind, "invalid");
      EXPECT_NE(why->message.find("epoch"), std::string::npos) << why->message;
    }
}

// --- the outage rule's fields and messages (docs/FENCING.md) ------------------------------

TEST(OutageProtocol, EveryNewFieldAndMessageRoundTrips) {
  Register r = sampleRegister();
  r.inventory.peerEndpoint = "tcp://10.0.0.5:7702";
  r.inventory.peerKey = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
  r.uptimeMs = 1234;
  const auto reg = decodeRegister(encode(r));
  EXPECT_EQ(reg.inventory.peerEndpoint, r.inventory.peerEndpoint);
  EXPECT_EQ(reg.inventory.peerKey, r.inventory.peerKey);
  EXPECT_EQ(reg.uptimeMs, 1234);
  EXPECT_EQ(decodeRegister(encode(sampleRegister())).uptimeMs, -1) << "an older agent says nothing";
  EXPECT_EQ(decodeRegistered(encode(Registered{5000, 1000, 3, 99})).stamp, 99u);
  EXPECT_EQ(decodeLeaseRenewed(encode(LeaseRenewed{7, 5000, 98})).stamp, 98u);
  Heartbeat hb{9, std::nullopt, true, 97, 4, 2500, true, Heartbeat::Held{15200, 3, 5, 8}};
  const auto beat = decodeHeartbeat(encode(hb));
  EXPECT_EQ(beat.echo, 97u);
  EXPECT_EQ(beat.policyVersion, 4u);
  EXPECT_EQ(beat.shieldMs, 2500);
  EXPECT_TRUE(beat.holding);
  ASSERT_TRUE(beat.held);
  EXPECT_EQ(beat.held->ms, 15200);
  EXPECT_EQ(beat.held->members, 8u);
  Policy p{6, true, 2000, 10000, {{"c1-s1", "tcp://10.0.0.5:7702", "k"}, {"c1-s2", "tcp://10.0.0.6:7702", ""}}};
  const auto policy = decodePolicy(encode(p));
  EXPECT_EQ(policy.version, 6u);
  EXPECT_TRUE(policy.powerFenced);
  EXPECT_EQ(policy.commitMs, 2000);
  ASSERT_EQ(policy.members.size(), 2u);
  EXPECT_EQ(policy.members[1].endpoint, "tcp://10.0.0.6:7702");
  EXPECT_EQ(decodePeerAsk(encode(PeerAsk{"c1-s1", 5})).seq, 5u);
  const auto yes = decodePeerAnswer(encode(PeerAnswer{"c1-s2", 5, true, 10000, 0}));
  EXPECT_TRUE(yes.attest);
  EXPECT_EQ(yes.validMs, 10000);
  const auto no = decodePeerAnswer(encode(PeerAnswer{"c1-s2", 6, false, 0, 700}));
  EXPECT_FALSE(no.attest);
  EXPECT_EQ(no.retryMs, 700);
  for (const Json& frame :
       {encode(r), encode(hb), encode(p), encode(PeerAsk{"a", 1}), encode(PeerAnswer{"b", 1, false, 0, 5})})
    EXPECT_FALSE(validate(frame)) << frame.dump() << ": " << validate(frame)->message;
}

TEST(OutageProtocol, RefusesMalformedPoliciesAndPeerFramesNamingTheField) {
  auto policy = [] { return encode(Policy{1, false, 2000, 10000, {{"c1-s1", "tcp://10.0.0.5:7702", ""}}}); };
  Json bad = policy();
  bad["fencing"] = "maybe";
  EXPECT_NE(validate(bad)->message.find("fencing"), std::string::npos);
  bad = policy();
  bad["members"][0]["blade"] = "relay/x";
  EXPECT_NE(validate(bad)->message.find("members[0].blade"), std::string::npos);
  bad = policy();
  bad["members"] = Json::array();
  for (int i = 0; i < 5000; ++i)
    bad["members"].push_back({{"blade", "b" + std::to_string(i)}, {"endpoint", "tcp://x:1"}});
  EXPECT_NE(validate(bad)->message.find("more than"), std::string::npos);
  bad = policy();
  bad["commit_ms"] = -1;
  EXPECT_EQ(validate(bad)->kind, "invalid");
  Json answer = encode(PeerAnswer{"c1-s2", 5, true, 10000, 0});
  answer.erase("valid_ms");
  EXPECT_NE(validate(answer)->message.find("valid_ms"), std::string::npos) << "an attestation says how long it holds";
  Json ask = encode(PeerAsk{"c1-s1", 5});
  ask["blade"] = "";
  EXPECT_EQ(validate(ask)->kind, "invalid");
  Json beat = encode(Heartbeat{1, std::nullopt});
  beat["shield_ms"] = "long";
  EXPECT_NE(validate(beat)->message.find("shield_ms"), std::string::npos);
}

TEST(OutageProtocol, ThePeekTakesTheRulesFieldsAndAgreesWithTheFullPath) {
  Heartbeat hb{9, std::nullopt, true, 0xabcdeULL << 43 | 77, 4, 2500, true, std::nullopt};
  const std::string text = encode(hb).dump();
  auto beat = peekPlainHeartbeat(text);
  ASSERT_TRUE(beat) << text;
  EXPECT_EQ(beat->echo, hb.echo);
  EXPECT_EQ(beat->policyVersion, 4u);
  EXPECT_EQ(beat->shieldMs, 2500);
  EXPECT_TRUE(beat->holding);
  hb.held = Heartbeat::Held{100, 1, 2, 3};
  EXPECT_FALSE(peekPlainHeartbeat(encode(hb).dump())) << "a hold report is news for the core";
}

}  // namespace
}  // namespace loom::protocol
