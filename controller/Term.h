// One term of loomd as the acting controller: the core over its store, the agents' fabric
// bound, the fence runner, the recovery of the stored state. A solo loomd (the SQLite
// store) runs one term for its whole life. A replica on etcd runs one each time it wins
// the election (controller/Election.h) and tears it down when the term ends: a standby
// holds no socket an agent could reach (the agents' DEALER sends only to the replica
// that is bound, controller/README "Replicas"), and each term starts from what the store
// says, exactly as a restarted loomd does.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "controller/Controller.h"
#include "controller/ControllerLoop.h"
#include "controller/ControllerOptions.h"
#include "controller/FenceRunner.h"
#include "controller/Leadership.h"
#include "controller/StateStore.h"
#include "controller/api/Api.h"
#include "loom/Result.h"

namespace loom::controller {

struct TermOptions {
  ControllerOptions controller;
  FabricOptions fabric;
  // How many nice steps below loomd's own the state is loaded at (the fabric comes first).
  int recoveryNice = 10;
  // Called on the core thread at every turn (the systemd watchdog's ping); may be empty.
  std::function<void(std::int64_t)> onTurn;
  // GET /v1/status's answer (solo or the leading replica's), on the core thread: a route
  // of the core's router, so it passes the same access check (reader and up).
  std::function<ApiResponse()> status;
};

class Term {
 public:
  using WallClock = Controller::WallClock;
  using Reply = std::function<void(ApiResponse)>;

  // `store` and `leadership` outlive the term.
  Term(StateStore& store, TermOptions options, const Leadership& leadership, WallClock wallClock);
  ~Term();
  Term(const Term&) = delete;
  Term& operator=(const Term&) = delete;

  // Binds the agents' endpoint (printing "loomd: agents-port N" for scripts that asked
  // for port 0), answers leases from then on, and loads the stored state.
  Status start();
  // Serves until stop(). Call from the thread that called start().
  void run();
  // Thread-safe; run() returns soon after.
  void stop();
  // Thread-safe: the request is answered by the core, on its thread. One still waiting
  // when the term ends is answered all the same, after run() (a replica's core then acts
  // no more: its fabric is silent and the store refuses a past term's writes).
  void handle(const ApiRequest& request, Reply reply);

  // Thread-safe: the fabric's allow-lists from now on (ControllerLoop::setAllowedKeys).
  void setAllowedKeys(std::set<std::string> agentKeys, std::set<std::string> relayKeys) {
    loop_.setAllowedKeys(std::move(agentKeys), std::move(relayKeys));
  }

  // The agents' endpoint as bound.
  std::string agentsEndpoint() const;
  double recoverySeconds() const { return recoverySeconds_; }
  // True when the term ended itself because a store commit's outcome was unknown
  // (Controller::onStoreBehind): its memory may be behind the store. A replica resigns
  // then, and whichever replica leads next (this one too) starts from the store.
  bool endedBehindStore() const { return endedBehindStore_; }

 private:
  TermOptions options_;
  Controller core_;
  ControllerLoop loop_;
  std::unique_ptr<FenceRunner> fencer_;
  double recoverySeconds_ = 0;
  std::atomic<bool> endedBehindStore_{false};
};

}  // namespace loom::controller
