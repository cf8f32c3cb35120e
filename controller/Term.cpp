#include "controller/Term.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <thread>

namespace loom::controller {

Term::Term(StateStore& store, TermOptions options, const Leadership& leadership, WallClock wallClock)
    : options_(std::move(options)),
      core_(
          store, options_.controller,
          [this](const std::string& blade, std::string frame) { loop_.send(blade, std::move(frame)); },
          std::move(wallClock), leadership),
      loop_(core_, options_.fabric) {
  if (!options_.controller.fenceCommand.empty()) {
    fencer_ = std::make_unique<FenceRunner>(options_.controller.fenceTimeoutMs);
    core_.setFenceRunner([this](const std::string& blade, const std::string& command) {
      fencer_->run(command, [this, blade](bool ok, std::string detail) {
        loop_.post([this, blade, ok, detail = std::move(detail)] {
          core_.onFenceResult(blade, ok, detail, ControllerLoop::monotonicMs());
        });
      });
    });
  }
  if (options_.onTurn) loop_.onTurn(options_.onTurn);
  if (options_.status)
    core_.addRoute("GET", "/v1/status", access::RouteAccess{access::Access::ReadFabric},
                   [status = options_.status](const ApiRequest&, const api::ApiRouter::Params&, std::int64_t) {
                     return status();
                   });
  core_.onStoreBehind([this](const Error&) {
    endedBehindStore_ = true;
    loop_.stop();
  });
}

Term::~Term() {
  // The fence commands first: their callbacks post into the loop.
  fencer_.reset();
}

Status Term::start() {
  if (auto s = loop_.bind(); !s) return s;
  // A machine-readable line: the port ZeroMQ bound for tcp://HOST:0.
  if (const auto ep = loop_.boundEndpoint(); ep.rfind("tcp://", 0) == 0)
    std::cout << "loomd: agents-port " << ep.substr(ep.rfind(':') + 1) << std::endl;
  // Leases are answered while the state loads: with 100,000 servers that takes about 2 s,
  // and agents must not run out their leases (and fence themselves) meanwhile.
  loop_.startFabric();
  // ... and they come first: recovery runs on a thread of lower CPU priority, so the
  // fabric's threads (accepting 10,000 reconnecting agents, answering their heartbeats)
  // are not starved by it. At 10,000 blades on 2 cores, a quarter of the agents ran out
  // their leases while recovery had equal priority (docs/PERFORMANCE.md).
  Status recovered = okStatus();
  const auto recovering = std::chrono::steady_clock::now();
  const int recoveryNice = options_.recoveryNice;
  std::thread([this, &recovered, recoveryNice] {
    const int nice = std::min(19, ::getpriority(PRIO_PROCESS, 0) + recoveryNice);
    if (recoveryNice > 0 && ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), nice) != 0)
      spdlog::debug("recovery keeps its priority");
    recovered = core_.recover(ControllerLoop::monotonicMs());
  }).join();
  recoverySeconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - recovering).count();
  if (!recovered) return makeError(recovered.error().code, "recovery: " + recovered.error().message);
  return okStatus();
}

void Term::run() {
  loop_.run();
  // Requests posted before the end are answered, not left hanging until the client gives up.
  loop_.runPendingTasks();
}

void Term::stop() { loop_.stop(); }

void Term::handle(const ApiRequest& request, Reply reply) {
  loop_.post([this, req = request, reply = std::move(reply)]() mutable {
    core_.handleApi(std::move(req), ControllerLoop::monotonicMs(), reply);
  });
}

std::string Term::agentsEndpoint() const { return loop_.boundEndpoint(); }

}  // namespace loom::controller
