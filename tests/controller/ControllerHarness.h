// The controller core without sockets: frames in, frames out, time stepped by hand. A
// SQLite store in the temporary directory, reopened (a restart) by reopen().
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "controller/Controller.h"
#include "tests/support/TestToken.h"

namespace loom::controller::testing {

using protocol::Json;

struct Harness {
  std::string path;
  std::unique_ptr<StateStore> store;
  std::vector<std::pair<std::string, Json>> sent;     // frames sent and not yet played
  std::vector<std::pair<std::string, Json>> history;  // every frame sent, in order
  std::unique_ptr<Controller> controller;
  std::int64_t now = 1000;
  ControllerOptions options;
  std::map<std::string, std::uint64_t> seq;  // heartbeats sent per blade (run())

  explicit Harness(const std::string& name, ControllerOptions opts = {})
      : options(::loom::testing::withTestAdmin(std::move(opts))) {
    auto dir = std::filesystem::temp_directory_path() / ("loom-ctl-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    path = (dir / name).string();
    for (const char* s : {"", "-wal", "-shm"}) std::filesystem::remove(path + s);
    reopen();
  }
  void reopen() {
    controller.reset();
    store.reset();
    store = std::move(openSqliteStateStore(path)).value();
    controller = std::make_unique<Controller>(
        *store, options,
        [this](const std::string& b, const std::string& text) {
          const Json f = Json::parse(text);
          sent.emplace_back(b, f);
          history.emplace_back(b, f);
        },
        [] { return 1; });
    EXPECT_TRUE(controller->recover(now));
  }
  void frame(const std::string& blade, const Json& f) { controller->onFrame(blade, f.dump(), now); }
  void registerBlade(const std::string& blade, std::vector<protocol::ObservedDomain> domains = {},
                     std::string hostname = "") {
    protocol::Register r;
    r.blade = blade;
    r.inventory.hostname = std::move(hostname);
    r.inventory.chassis = "c1";
    r.inventory.cores = 8;
    r.inventory.memoryMib = 16384;
    r.inventory.hypervisors = {"kvm"};
    r.domains = std::move(domains);
    frame(blade, protocol::encode(r));
  }
  ApiResponse api(const std::string& method, const std::string& path, const std::string& body = "",
                  std::map<std::string, std::string> query = {}) {
    ApiResponse out{0, "", ""};
    controller->handleApi(::loom::testing::asAdmin({method, path, std::move(query), body}), now,
                          [&](ApiResponse r) { out = std::move(r); });
    return out;
  }
  // Plays the fabric for `ms` in steps of 100 ms: every blade not in `silent` answers its
  // steps (all succeed) and heartbeats each whole second.
  void run(std::int64_t ms, const std::set<std::string>& silent = {}) {
    for (std::int64_t t = 0; t < ms; t += 100) {
      now += 100;
      auto batch = std::move(sent);
      sent.clear();
      for (auto& [blade, f] : batch) {
        if (silent.count(blade) || f["type"] != "plan") continue;
        for (auto& step : f["steps"])
          frame(blade, protocol::encode(protocol::StepResult{step["op"].get<std::uint64_t>(), true, ""}));
      }
      if (now % 1000 == 0)
        for (auto& [blade, n] : seq)
          if (!silent.count(blade)) frame(blade, protocol::encode(protocol::Heartbeat{++n, std::nullopt}));
      controller->tick(now);
    }
  }
  Json blade(const std::string& name) { return Json::parse(api("GET", "/v1/blades/" + name).body); }
  Json server(const std::string& name) { return Json::parse(api("GET", "/v1/servers/" + name).body); }
  bool hasEvent(const std::string& part) {
    for (auto& e : Json::parse(api("GET", "/v1/events", "", {{"limit", "10000"}}).body))
      if (e["message"].get<std::string>().find(part) != std::string::npos) return true;
    return false;
  }
  // Plays a perfect agent: every step sent succeeds.
  void answerAll() {
    for (int round = 0; round < 10; ++round) {
      auto batch = std::move(sent);
      sent.clear();
      bool any = false;
      for (auto& [blade, f] : batch) {
        if (f["type"] != "plan") continue;
        for (auto& step : f["steps"]) {
          any = true;
          frame(blade, protocol::encode(protocol::StepResult{step["op"].get<std::uint64_t>(), true, ""}));
        }
      }
      now += 200;
      controller->tick(now);
      if (!any && sent.empty()) return;
    }
  }
};

}  // namespace loom::controller::testing
