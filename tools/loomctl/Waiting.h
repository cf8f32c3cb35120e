// Waiting for the fabric to get there: what `apply`, `delete`, `blade drain` and
// `server start|stop|move` share. A command changes what is declared, then (unless
// --no-wait) polls the controller until what it asked for is what runs, with a progress
// line on a terminal, bounded by --timeout. Exit status 0 only once the fabric got there;
// 1 naming each server that did not, and why (its state and the controller's reason).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tools/loomctl/Context.h"
#include "tools/loomctl/Output.h"

namespace loom::loomctl {

struct WaitOptions {
  bool wait = true;  // --wait (the default) / --no-wait
  int timeoutSeconds = 120;
};

// --wait/--no-wait and --timeout SECONDS on `cmd`; `what` ends "Seconds to wait ...".
void addWaitOptions(CLI::App* cmd, WaitOptions& options, const std::string& what);

// One look at the fabric while waiting: how many of `total` got there, and whether the
// wait is over (every one got there or can no longer get there).
struct Look {
  std::size_t done = 0;
  std::size_t total = 0;
  bool finished = false;
};

// Calls `look` every 300 ms until it says finished or `timeoutSeconds` pass. On a
// terminal the line "LABEL: DONE/TOTAL" is rewritten in place; otherwise (table output)
// it is printed when DONE changes and at the end. Returns false when the time ran out.
// Ctrl-C (interruptRequested) throws CommandError(`interrupted`, 130).
bool pollUntil(Context& context, int timeoutSeconds, const std::string& label, const std::string& interrupted,
               const std::function<Look()>& look);

// What one server must reach: powered on and running (on `blade`, when given), or
// powered off and stopped. `on` unset: whatever its declared power says (an apply).
struct ServerGoal {
  std::string server;
  std::optional<bool> on;
  std::string blade;
};

enum class Progress { Reached, Waiting, Failed };
struct Verdict {
  Progress progress = Progress::Waiting;
  std::string why;            // "starting on c1-s2", "unplaceable: no blade with 16GiB free memory"
  std::string state, reason;  // the server's, as the controller said them
};

// `server`: its object from GET /v1/servers (null: not declared any more). Pure.
Verdict judge(const Json& server, const ServerGoal& goal);

// Polls /v1/servers until every goal is reached or failed; prints "STATE NAME: REASON" for
// each that failed (with the progress line). Throws CommandError (exit 1)
// naming each server that failed ("SERVERS did not FAILED_WHAT: web-0 unplaceable: ...")
// or, at the timeout, each still on its way and where it is. `label`: the progress line's.
void waitForServers(Context& context, const std::vector<ServerGoal>& goals, int timeoutSeconds,
                    const std::string& label, const std::string& failedWhat);

// After a delete: polls /v1/blades until no blade reports a domain of `servers` (each
// stopped and undefined). Throws CommandError at the timeout naming what is left where.
void waitForServersGone(Context& context, const std::vector<std::string>& servers, int timeoutSeconds);

}  // namespace loom::loomctl
