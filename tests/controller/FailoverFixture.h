// Three registered blades b1..b3, pool web with two servers kept apart and one spare,
// both running; `victim` is web-0's blade, and time is aligned on its last heartbeat. For
// the tests of what happens when a blade goes silent.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "tests/controller/ControllerBuilders.h"
#include "tests/controller/ControllerHarness.h"

namespace loom::controller::testing {

struct FailoverFixture {
  Harness h;
  std::string victim;  // the blade of web-0
  std::string uuid;
  // Three blades, two servers kept apart, one spare.
  explicit FailoverFixture(const std::string& db, ControllerOptions opts = {}, const PoolTweak& tweak = {})
      : h(db, std::move(opts)) {
    for (const std::string b : {"b1", "b2", "b3"}) {
      h.registerBlade(b);
      h.seq[b] = 0;
    }
    auto r = h.api("POST", "/v1/apply", yaml(web(2, tweak ? both(spares(1), tweak) : spares(1))));
    EXPECT_EQ(r.status, 200) << r.body;
    h.run(2000);
    auto s = h.server("web-0");
    EXPECT_EQ(s["state"], "running") << s.dump();
    victim = s["blade"];
    uuid = s["uuid"];
    // Align on a heartbeat: the victim's last one is at h.now.
    h.run(1000 - h.now % 1000);
  }
};

}  // namespace loom::controller::testing
