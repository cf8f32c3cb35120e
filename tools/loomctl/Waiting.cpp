#include "tools/loomctl/Waiting.h"

#include <unistd.h>

#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "tools/loomctl/Api.h"
#include "tools/loomctl/Views.h"

namespace loom::loomctl {

void addWaitOptions(CLI::App* cmd, WaitOptions& options, const std::string& what) {
  auto* wait = cmd->add_flag_callback(
      "--wait", [&options] { options.wait = true; }, "Wait " + what + " (the default)");
  cmd->add_flag_callback(
         "--no-wait", [&options] { options.wait = false; }, "Return once the controller took the change")
      ->excludes(wait);
  cmd->add_option("--timeout", options.timeoutSeconds, "Seconds to wait " + what)
      ->capture_default_str()
      ->check(CLI::PositiveNumber)
      ->type_name("SECONDS");
}

bool pollUntil(Context& context, int timeoutSeconds, const std::string& label, const std::string& interrupted,
               const std::function<Look()>& look) {
  const bool table = context.output == OutputFormat::Table;
  std::ostream& progress = table ? *context.out : *context.err;
  const bool live = table ? onTerminal(STDOUT_FILENO) : onTerminal(STDERR_FILENO);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeoutSeconds);
  std::size_t lastDone = SIZE_MAX;
  for (;;) {
    const Look now = look();
    const std::string line = label + ": " + std::to_string(now.done) + "/" + std::to_string(now.total);
    if (now.total == 0) {
      // Nothing to wait for: no line.
    } else if (live) {
      progress << "\r\033[K" << line << std::flush;
    } else if (now.done != lastDone || now.finished) {
      // A script's log gets each change; structured output keeps stdout for the answer.
      if (table || now.finished) progress << line << "\n";
    }
    lastDone = now.done;
    if (now.finished) {
      if (live && now.total) progress << "\n";
      return true;
    }
    if (interruptRequested()) {
      if (live) progress << "\n";
      throw CommandError(interrupted, 130);
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      if (live) progress << "\n";
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
}

Verdict judge(const Json& server, const ServerGoal& goal) {
  if (!server.is_object()) return Verdict{Progress::Failed, "is not declared any more", "", ""};
  const std::string state = text(server, "state");
  const std::string blade = server.value("blade", Json()).is_string() ? text(server, "blade") : "";
  const std::string reason = server.contains("reason") ? text(server, "reason") : "";
  const bool declaredOn = text(server, "power") != "off";
  const bool on = goal.on.value_or(declaredOn);
  auto verdict = [&](Progress p, std::string why) { return Verdict{p, std::move(why), state, reason}; };
  std::string where = state + (blade.empty() ? "" : " on " + blade);
  if (!reason.empty()) where += " (" + reason + ")";
  if (state == "unplaceable" || state == "failed")
    return verdict(Progress::Failed, state + (reason.empty() ? "" : ": " + reason));
  if (on != declaredOn)
    // Someone (or something) changed its power since: it will not get where we asked.
    return verdict(Progress::Failed,
                   std::string("was ") + (declaredOn ? "started" : "stopped") + " meanwhile; " + where);
  if (!on) return verdict(state == "stopped" ? Progress::Reached : Progress::Waiting, where);
  // A server still running its old definition has not got there: its restart is to come
  // (docs/SERVERS.md).
  if (server.contains("restart_pending")) return verdict(Progress::Waiting, where + " (restart pending)");
  if (state == "running" && (goal.blade.empty() || blade == goal.blade)) return verdict(Progress::Reached, where);
  return verdict(Progress::Waiting, where);
}

void waitForServers(Context& context, const std::vector<ServerGoal>& goals, int timeoutSeconds,
                    const std::string& label, const std::string& failedWhat) {
  if (goals.empty()) return;
  std::map<std::string, Verdict> verdicts;
  auto look = [&] {
    std::map<std::string, Json> byName;
    for (auto& s : getJson(context, "/v1/servers?fields=name,state,blade,power,reason,restart_pending")) {
      std::string name = text(s, "name");  // before the move: `a = std::move(b)` evaluates b first
      byName[std::move(name)] = std::move(s);
    }
    Look l;
    bool waiting = false;
    for (const auto& goal : goals) {
      auto it = byName.find(goal.server);
      // An apply's plan may place servers the caller cannot see (a partition's token):
      // they are not its to wait for.
      if (it == byName.end() && !goal.on) {
        verdicts.erase(goal.server);
        continue;
      }
      ++l.total;
      Verdict v = judge(it == byName.end() ? Json() : it->second, goal);
      if (v.progress == Progress::Reached) ++l.done;
      if (v.progress == Progress::Waiting) waiting = true;
      verdicts[goal.server] = std::move(v);
    }
    l.finished = !waiting;
    return l;
  };
  const bool inTime =
      pollUntil(context, timeoutSeconds, label, "stopped waiting (the change is made; the servers carry on)", look);
  std::vector<std::string> failed, late;
  for (const auto& goal : goals) {
    if (!verdicts.count(goal.server)) continue;
    const Verdict& v = verdicts[goal.server];
    if (v.progress == Progress::Failed) {
      failed.push_back(goal.server + " " + v.why);
      // The line a person reads beside the progress ("unplaceable huge: no blade with ...").
      const bool table = context.output == OutputFormat::Table;
      if (!v.state.empty())
        (table ? *context.out : *context.err) << styled(v.state, styleForState(v.state), context.color && table) << " "
                                              << goal.server << ": " << (v.reason.empty() ? "-" : v.reason) << "\n";
    }
    if (v.progress == Progress::Waiting) late.push_back(goal.server + " (" + v.why + ")");
  }
  std::string message;
  if (!failed.empty()) {
    message = countOf(failed.size(), "server", "servers") + " did not " + failedWhat + ": ";
    for (std::size_t i = 0; i < failed.size(); ++i) message += (i ? "; " : "") + failed[i];
  }
  if (!inTime && !late.empty()) {
    if (!message.empty()) message += "; and ";
    message += "timed out after " + std::to_string(timeoutSeconds) + " s with " +
               std::to_string(verdicts.size() - late.size() - failed.size()) + " of " +
               countOf(verdicts.size(), "server", "servers") + " there; still waiting for ";
    for (std::size_t i = 0; i < late.size(); ++i) message += (i ? ", " : "") + late[i];
  }
  if (!message.empty()) throw CommandError(message);
}

void waitForServersGone(Context& context, const std::vector<std::string>& servers, int timeoutSeconds) {
  if (servers.empty()) return;
  const std::set<std::string> gone(servers.begin(), servers.end());
  std::map<std::string, std::string> left;  // server -> the blade that still reports it
  auto look = [&] {
    left.clear();
    for (const auto& b : getJson(context, "/v1/blades?fields=name,domain_names"))
      for (const auto& d : b.value("domain_names", Json::array()))
        if (d.is_string() && gone.count(d.get<std::string>())) left[d.get<std::string>()] = text(b, "name");
    return Look{gone.size() - left.size(), gone.size(), left.empty()};
  };
  if (pollUntil(context, timeoutSeconds, "servers removed",
                "stopped waiting (the objects are deleted; their servers carry on stopping)", look))
    return;
  std::string message = "timed out after " + std::to_string(timeoutSeconds) +
                        " s: " + countOf(left.size(), "deleted server is", "deleted servers are") +
                        " still defined on its blade: ";
  bool first = true;
  for (const auto& [server, blade] : left) {
    message += (first ? "" : ", ") + server + " on " + blade;
    first = false;
  }
  throw CommandError(message);
}

}  // namespace loom::loomctl
