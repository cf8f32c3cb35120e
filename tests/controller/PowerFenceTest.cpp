// The power route (docs/FENCING.md): a blade with a BMC declared (kind: Blade) and a
// --fence-command is power-fenced. It is told `fencing: power`, is never fenced by its
// lease, its fence command gets the BMC's fields and is retried until it confirms, and an
// operator may confirm the power-off by hand. The controller core without sockets; the
// fake agents here hold the policy version last sent to them and echo it, as agents do.
#include <gtest/gtest.h>

#include <set>

#include "controller/Controller.h"
#include "tests/controller/ControllerBuilders.h"
#include "tests/controller/ControllerHarness.h"

namespace loom::controller {
namespace {

using protocol::Json;
using namespace loom::controller::testing;

const std::string kFenceIpmilan =
    "fence_ipmilan --ip={bmc_address} --ipport={bmc_port} --username={bmc_user} "
    "--password-script=\"cat {bmc_password_file}\" --lanplus --action=off # {blade} {chassis}";

std::string bladeYaml(const std::string& name, const std::string& address = "") {
  std::string y = "kind: Blade\nname: " + name + "\n";
  if (!address.empty())
    y += "bmc: {address: " + address + ", port: 6230, user: fence, password_file: /etc/loom/bmc/" + name + ".pass}\n";
  return y;
}

// Three blades, web-0 and web-1 apart, one spare (as ControllerTest's FailoverFixture), with
// agents that adopt the policies sent to them; fence commands are recorded, their results
// given by the test.
struct PowerFixture {
  Harness h;
  std::string victim;
  std::map<std::string, std::uint64_t> pv;  // the policy version each fake agent holds
  std::vector<std::pair<std::string, std::string>> ran;

  explicit PowerFixture(const std::string& db, ControllerOptions o = {}) : h(db, withCommand(std::move(o))) {
    h.controller->setFenceRunner([this](const std::string& b, const std::string& c) { ran.emplace_back(b, c); });
    for (const std::string b : {"b1", "b2", "b3"}) {
      h.registerBlade(b);
      h.seq[b] = 0;
    }
    auto r = h.api("POST", "/v1/apply", yaml(web(2, spares(1))));
    EXPECT_EQ(r.status, 200) << r.body;
    play(2000);
    victim = h.server("web-0")["blade"];
    EXPECT_EQ(h.server("web-0")["state"], "running");
  }
  static ControllerOptions withCommand(ControllerOptions o) {
    if (o.fenceCommand.empty()) o.fenceCommand = kFenceIpmilan;
    return o;
  }
  // Harness::run, with agents that echo the policy they hold (`pv`). A `deaf` blade beats
  // but receives nothing.
  void play(std::int64_t ms, const std::set<std::string>& silent = {}, const std::set<std::string>& deaf = {}) {
    for (std::int64_t t = 0; t < ms; t += 100) {
      h.now += 100;
      auto batch = std::move(h.sent);
      h.sent.clear();
      for (auto& [blade, f] : batch) {
        if (silent.count(blade) || deaf.count(blade)) continue;
        if (f["type"] == "policy") pv[blade] = f["version"].get<std::uint64_t>();
        if (f["type"] != "plan") continue;
        for (auto& step : f["steps"])
          h.frame(blade, protocol::encode(protocol::StepResult{step["op"].get<std::uint64_t>(), true, ""}));
      }
      if (h.now % 1000 == 0)
        for (auto& [blade, n] : h.seq) {
          if (silent.count(blade)) continue;
          protocol::Heartbeat hb;
          hb.seq = ++n;
          hb.policyVersion = pv[blade];
          h.frame(blade, protocol::encode(hb));
        }
      h.controller->tick(h.now);
    }
  }
  // The fencing each fake agent was last told ("" before any policy).
  std::string toldFencing(const std::string& blade) {
    std::string fencing;
    for (auto& [b, f] : h.history)
      if (b == blade && f["type"] == "policy") fencing = f["fencing"];
    return fencing;
  }
  int events(const std::string& part) {
    int n = 0;
    for (auto& e : Json::parse(h.api("GET", "/v1/events", "", {{"limit", "10000"}}).body))
      n += e["message"].get<std::string>().find(part) != std::string::npos;
    return n;
  }
  void declare(const std::string& yamlText) {
    auto r = h.api("POST", "/v1/apply", yamlText, {{"source", "blades.yaml"}});
    ASSERT_EQ(r.status, 200) << r.body;
  }
};

TEST(PowerFence, ABladeWithABmcIsToldFencingPowerAndItsFenceCommandGetsTheBmcFields) {
  PowerFixture f("power-told.db");
  Harness& h = f.h;
  auto r = h.api("POST", "/v1/apply", bladeYaml(f.victim, "10.0.0.7"), {{"source", "blades.yaml"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Json::parse(r.body)["created"], Json::parse(R"([{"kind": "Blade", "name": ")" + f.victim + R"("}])"));
  f.play(2000);
  EXPECT_EQ(f.toldFencing(f.victim), "power") << "a new policy version makes it power-fenced";
  EXPECT_NE(f.toldFencing(f.victim == "b1" ? "b2" : "b1"), "power");
  auto b = h.blade(f.victim);
  EXPECT_EQ(b["fencing"], "power");
  EXPECT_EQ(b["bmc"],
            Json::parse(R"({"address": "10.0.0.7", "port": 6230, "user": "fence", "password_file": "/etc/loom/bmc/)" +
                        f.victim + R"(.pass"})"));
  EXPECT_TRUE(h.hasEvent("1 power-fenced"));

  f.play(4200, {f.victim});
  ASSERT_EQ(h.blade(f.victim)["state"], "failed");
  ASSERT_EQ(f.ran.size(), 1u);
  EXPECT_EQ(f.ran[0].second,
            "fence_ipmilan --ip='10.0.0.7' --ipport='6230' --username='fence' "
            "--password-script=\"cat '/etc/loom/bmc/" +
                f.victim + ".pass'\" --lanplus --action=off # '" + f.victim + "' 'c1'");
}

TEST(PowerFence, WithoutAFenceCommandABmcChangesNothing) {
  ControllerOptions o;
  o.fenceCommand = "";
  Harness h("power-nocmd.db", o);
  h.registerBlade("b1");
  h.seq["b1"] = 0;
  ASSERT_EQ(h.api("POST", "/v1/apply", bladeYaml("b1", "bmc-1")).status, 200);
  h.run(3000);
  EXPECT_EQ(h.blade("b1")["fencing"], "lease");
  EXPECT_EQ(h.blade("b1")["bmc"]["address"], "bmc-1") << "shown all the same: it is declared";
}

TEST(PowerFence, ACommandNamingTheBmcIsNotRunForABladeWithoutOne) {
  PowerFixture f("power-nobmc.db");
  Harness& h = f.h;
  f.play(4200, {f.victim});
  ASSERT_EQ(h.blade(f.victim)["state"], "failed");
  EXPECT_TRUE(f.ran.empty()) << f.ran[0].second;
  EXPECT_TRUE(h.hasEvent("no fence command run: it names the blade's BMC and none is declared for it"));
  f.play(1500, {f.victim});
  EXPECT_EQ(h.blade(f.victim)["state"], "fenced") << "the lease route, as for any blade without a BMC";
}

TEST(PowerFence, AFailingFenceCommandIsRetriedWithBackoffOneEventPerKindAndNothingMovesUntilItConfirms) {
  PowerFixture f("power-retry.db");
  Harness& h = f.h;
  f.declare(bladeYaml(f.victim, "10.0.0.7"));
  f.play(2000);
  ASSERT_EQ(h.blade(f.victim)["fencing"], "power");
  const std::int64_t lastHeard = h.now - h.now % 1000;
  f.play(4100, {f.victim});
  ASSERT_EQ(f.ran.size(), 1u);
  EXPECT_EQ(f.events("fence command started"), 1);

  h.controller->onFenceResult(f.victim, false, "exit 1: 2026-12-07 05:00:20,594 ERROR: Connection timed out", h.now);
  EXPECT_EQ(f.events("fence command failed"), 1);
  EXPECT_TRUE(h.hasEvent("retrying in 2 s"));
  auto b = h.blade(f.victim);
  EXPECT_EQ(b["fence_attempts"], 1);
  EXPECT_EQ(b["next_fence_attempt_ms"], 2000);
  EXPECT_EQ(b["last_fence_error"], "exit 1: 2026-12-07 05:00:20,594 ERROR: Connection timed out");
  f.play(1900, {f.victim});
  EXPECT_EQ(f.ran.size(), 1u);
  f.play(100, {f.victim});
  ASSERT_EQ(f.ran.size(), 2u) << "again 2 s after the failure";
  EXPECT_TRUE(h.blade(f.victim)["fence_command_running"].get<bool>());
  // The same failure again (another time stamp): no new event, twice the wait.
  h.controller->onFenceResult(f.victim, false, "exit 1: 2026-12-07 05:00:22,700 ERROR: Connection timed out", h.now);
  EXPECT_EQ(f.events("fence command failed"), 1);
  EXPECT_EQ(h.blade(f.victim)["next_fence_attempt_ms"], 4000);
  f.play(4000, {f.victim});
  ASSERT_EQ(f.ran.size(), 3u);
  // Another kind of failure: one more event.
  h.controller->onFenceResult(f.victim, false, "killed after the 20000 ms timeout", h.now);
  EXPECT_EQ(f.events("fence command failed"), 2);
  EXPECT_EQ(h.blade(f.victim)["next_fence_attempt_ms"], 8000);

  // Long past its lease: nothing fenced it, nothing moved.
  ASSERT_GT(h.now, lastHeard + 5000 + 250 + 2000);
  EXPECT_EQ(h.blade(f.victim)["state"], "failed");
  EXPECT_EQ(h.server("web-0")["blade"], f.victim);
  EXPECT_TRUE(h.hasEvent("blade not fenced by its lease: it is power-fenced"));

  f.play(8000, {f.victim});
  ASSERT_EQ(f.ran.size(), 4u);
  h.controller->onFenceResult(f.victim, true, "exit 0 in 900 ms: Success: Powered OFF", h.now);
  EXPECT_EQ(h.blade(f.victim)["state"], "fenced");
  EXPECT_TRUE(h.hasEvent("blade fenced: fence command confirmed power-off at attempt 4 (exit 0 in 900 ms"));
  f.play(1000, {f.victim});
  EXPECT_NE(h.server("web-0")["blade"], f.victim);
  EXPECT_EQ(h.server("web-0")["state"], "running");
  EXPECT_EQ(f.ran.size(), 4u) << "no retry after the fence";
  EXPECT_NE(h.api("GET", "/metrics").body.find("loom_fence_command_retries_total 3"), std::string::npos);
}

TEST(PowerFence, ALeaseRouteBladesFailedCommandIsNotRetried) {
  ControllerOptions o;
  o.fenceCommand = "power-off {blade}";
  PowerFixture f("power-lease-noretry.db", o);
  Harness& h = f.h;
  f.play(4100, {f.victim});
  ASSERT_EQ(f.ran.size(), 1u);
  h.controller->onFenceResult(f.victim, false, "exit 1: no route to BMC", h.now);
  EXPECT_TRUE(h.hasEvent("its servers wait for its lease to expire"));
  f.play(1500, {f.victim});
  EXPECT_EQ(h.blade(f.victim)["state"], "fenced") << "by its lease";
  EXPECT_EQ(f.ran.size(), 1u);
}

TEST(PowerFence, AnOperatorConfirmsThePowerOffOfASilentBladeButNotOfALiveOne) {
  PowerFixture f("power-confirm.db");
  Harness& h = f.h;
  f.declare(bladeYaml(f.victim, "10.0.0.7"));
  f.play(2000);
  const std::string body = R"({"confirm_powered_off": true, "by": "alice@ops"})";
  EXPECT_EQ(h.api("POST", "/v1/blades/nope/fence", body).status, 404);
  for (const std::string bad :
       {"", "{}", R"({"confirm_powered_off": false})", R"({"confirm_powered_off": "yes"})", "[true]"}) {
    auto r = h.api("POST", "/v1/blades/" + f.victim + "/fence", bad);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_NE(r.body.find(R"(fence wants a JSON body {\"confirm_powered_off\": true})"), std::string::npos) << r.body;
  }
  auto live = h.api("POST", "/v1/blades/" + f.victim + "/fence", body);
  EXPECT_EQ(live.status, 409);
  EXPECT_NE(live.body.find("is heard (last heartbeat"), std::string::npos) << live.body;
  EXPECT_NE(live.body.find("refusing to fence a live blade by hand"), std::string::npos) << live.body;

  // Its BMC is dead: the fence command fails and fails.
  f.play(4100, {f.victim});
  ASSERT_EQ(f.ran.size(), 1u);
  h.controller->onFenceResult(f.victim, false, "exit 1: ERROR: Connection timed out", h.now);
  f.play(3000, {f.victim});
  EXPECT_EQ(h.server("web-0")["blade"], f.victim);

  auto r = h.api("POST", "/v1/blades/" + f.victim + "/fence", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Json::parse(r.body)["state"], "fenced");
  EXPECT_TRUE(h.hasEvent("blade fenced: operator confirmed power-off (by operator 'alice@ops' through the API)"));
  EXPECT_EQ(h.api("POST", "/v1/blades/" + f.victim + "/fence", body).status, 200) << "idempotent";
  f.play(1000, {f.victim});
  EXPECT_NE(h.server("web-0")["blade"], f.victim);
  EXPECT_EQ(h.server("web-0")["state"], "running");
  EXPECT_NE(h.api("GET", "/metrics").body.find("loom_fences_total{by=\"operator\"} 1"), std::string::npos);
  // The retry that was due finds it fenced; a late answer of a command changes nothing.
  f.play(5000, {f.victim});
  EXPECT_EQ(f.ran.size(), 2u) << "the retry at +2 s ran before the confirmation; none after";
  h.controller->onFenceResult(f.victim, true, "exit 0 in 1 ms", h.now);
  EXPECT_TRUE(h.hasEvent("fence command confirmed power-off (the blade was fenced already)"));
}

TEST(PowerFence, ABladeSwitchedFromPowerToLeaseIsNotLeaseFencedUntilItEchoedTheNewerPolicy) {
  PowerFixture f("power-switch.db");
  Harness& h = f.h;
  f.declare(bladeYaml(f.victim, "10.0.0.7"));
  f.play(3000);  // the version after the debounce, sent at the next beat, adopted
  ASSERT_EQ(f.toldFencing(f.victim), "power");
  const std::uint64_t powerVersion = f.pv[f.victim];
  ASSERT_GT(powerVersion, 0u);

  // The BMC declaration goes; the victim falls silent before it hears of the lease route.
  auto r = h.api("POST", "/v1/delete", bladeYaml(f.victim));
  ASSERT_EQ(r.status, 200) << r.body;
  f.play(9000, {f.victim});
  EXPECT_EQ(h.blade(f.victim)["fencing"], "lease") << "the current policy";
  EXPECT_EQ(f.pv[f.victim], powerVersion) << "but the agent still holds the power-fenced one";
  EXPECT_EQ(h.blade(f.victim)["state"], "failed") << "its agent never fences itself: its lease proves nothing";
  EXPECT_EQ(h.server("web-0")["blade"], f.victim);
  EXPECT_TRUE(h.hasEvent("blade not fenced by its lease: it is power-fenced"));

  // Heard again: it takes the lease-route policy and echoes it. Silent once more, its
  // lease now fences it.
  f.play(2000);
  ASSERT_EQ(h.blade(f.victim)["online"], true);
  ASSERT_GT(f.pv[f.victim], powerVersion);
  EXPECT_EQ(f.toldFencing(f.victim), "lease");
  f.play(1000 - h.now % 1000);
  const std::int64_t lastHeard = h.now;
  f.play(lastHeard + 5000 + 250 + 200 - h.now, {f.victim});
  EXPECT_EQ(h.blade(f.victim)["state"], "fenced");
  EXPECT_TRUE(h.hasEvent("blade fenced: lease expired"));
}

TEST(PowerFence, ABladeSwitchedFromLeaseToPowerIsNotLeaseFencedOnceThePolicyWasSentEvenUnheard) {
  // The other way needs no echo: once the power-fenced policy is on its way the blade may
  // hold it (and never fence itself), so only its fence command can fence it.
  PowerFixture f("power-switch-back.db");
  Harness& h = f.h;
  f.declare(bladeYaml(f.victim, "10.0.0.7"));
  f.play(2000, {}, {f.victim});  // it beats (and is sent the policy) but hears nothing
  EXPECT_EQ(f.pv[f.victim], 0u);
  EXPECT_EQ(f.toldFencing(f.victim), "power") << "sent";
  f.play(9000, {f.victim});
  EXPECT_EQ(h.blade(f.victim)["state"], "failed");
  EXPECT_EQ(h.server("web-0")["blade"], f.victim);
  ASSERT_EQ(f.ran.size(), 1u);
}

TEST(PowerFence, ABladeNeverSentThePowerPolicyIsStillFencedByItsLease) {
  // Declared with a BMC while it was already silent: it runs the lease route and fences
  // itself at the end of its lease, so its lease fences it.
  PowerFixture f("power-never-sent.db");
  Harness& h = f.h;
  f.play(1000 - h.now % 1000);
  const std::int64_t lastHeard = h.now;
  f.declare(bladeYaml(f.victim, "10.0.0.7"));
  f.play(lastHeard + 5000 + 250 + 200 - h.now, {f.victim});
  EXPECT_EQ(h.blade(f.victim)["fencing"], "power");
  EXPECT_EQ(h.blade(f.victim)["state"], "fenced");
  EXPECT_TRUE(h.hasEvent("blade fenced: lease expired"));
}

}  // namespace
}  // namespace loom::controller
