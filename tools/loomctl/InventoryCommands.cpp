// `blade ...`, `server ...`, `pool ...` and `capacity`: the fabric's objects listed,
// shown and acted on, one request each (a list's filters may add one).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "tools/loomctl/Api.h"
#include "tools/loomctl/Commands.h"
#include "tools/loomctl/ListFilter.h"
#include "tools/loomctl/Views.h"
#include "tools/loomctl/Waiting.h"

namespace loom::loomctl {

namespace {

std::string pathName(const std::string& name) { return urlEncode(name); }

// USER@HOST, for the events that name who confirmed something.
std::string operatorName() {
  const char* user = std::getenv("USER");
  if (!user || !*user) user = std::getenv("LOGNAME");
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return std::string(user && *user ? user : "unknown") + (host[0] ? std::string("@") + host : std::string());
}

void addNameArgument(CLI::App* cmd, std::string& name, const std::string& noun) {
  // type_name(""): the help names a positional once ("NAME  The blade's name").
  cmd->add_option("NAME", name, "The " + noun + "'s name")->required()->type_name("");
}

// States of a blade that takes servers (pool::Planner's view of it).
bool takesServers(const std::string& state) {
  return state == "available" || state == "active" || state == "spare" || state == "discovered";
}

// Before a drain: the last blade of its pool that takes servers leaves its servers
// nowhere to go. Said before acting; asked on a terminal.
void warnIfLastOfItsPool(Context& context, const std::string& blade) {
  const Json blades = getJson(context, "/v1/blades?fields=name,pool,state");
  std::string pool;
  for (const auto& b : blades)
    if (text(b, "name") == blade) pool = b.value("pool", Json()).is_string() ? text(b, "pool") : "";
  if (pool.empty()) return;
  for (const auto& b : blades)
    if (text(b, "name") != blade && b.value("pool", Json()) == pool && takesServers(text(b, "state"))) return;
  *context.err << "loomctl: " << blade << " is the last blade of pool " << pool
               << " that takes servers: its servers will have nowhere to go\n";
  if (onTerminal(STDIN_FILENO) && !confirm(context, "Drain it anyway?")) throw CommandError("not drained");
}

// After a drain: waits (bounded) until every server bound to the blade has left it and
// runs elsewhere; one that cannot leave is an error naming it and why (the planner's
// "stays on" reason from the events).
// `drained`: the drain's answer (the servers bound to the blade as it was drained).
void waitForDrain(Context& context, const std::string& blade, const Json& drained, int timeoutSeconds) {
  std::set<std::string> moving;
  if (drained.is_object() && drained.contains("servers") && drained["servers"].is_array())
    for (const auto& s : drained["servers"])
      if (s.is_string()) moving.insert(s.get<std::string>());
  std::vector<std::string> staying;
  auto look = [&] {
    staying.clear();
    for (const auto& s : getJson(context, "/v1/blades/" + pathName(blade))["servers"]) {
      staying.push_back(s.get<std::string>());
      moving.insert(s.get<std::string>());
    }
    // Moved off: bound to another blade and running there (or stopped, by its power).
    // One still bound here, or nowhere (unplaceable), has not left.
    for (const auto& s : getJson(context, "/v1/servers?fields=name,state,blade")) {
      const std::string n = text(s, "name"), state = text(s, "state");
      const bool elsewhere = s.value("blade", Json()).is_string() && text(s, "blade") != blade;
      if (moving.count(n) && !(elsewhere && (state == "running" || state == "stopped")) &&
          std::find(staying.begin(), staying.end(), n) == staying.end())
        staying.push_back(n);
    }
    return Look{moving.size() - std::min(moving.size(), staying.size()), moving.size(), staying.empty()};
  };
  pollUntil(context, timeoutSeconds, "servers moved off " + blade,
            "stopped waiting (the blade is drained; its servers carry on)", look);
  if (staying.empty()) {
    if (context.output == OutputFormat::Table && !moving.empty())
      *context.out << blade << ": drained, " << countOf(moving.size(), "server", "servers") << " moved off\n";
    return;
  }
  // Why each stays: the planner's latest "server X stays on BLADE (maintenance): why".
  std::map<std::string, std::string> why;
  for (const auto& e : getJson(context, "/v1/events?tail=1000")) {
    const std::string m = text(e, "message");
    const std::string on = " stays on " + blade + " ";
    const auto at = m.find(on);
    const auto colon = at == std::string::npos ? at : m.find(": ", at);
    if (m.rfind("server ", 0) == 0 && colon != std::string::npos) why[m.substr(7, at - 7)] = m.substr(colon + 2);
  }
  std::string message = countOf(staying.size(), "server", "servers") + " could not leave " + blade + ": ";
  for (std::size_t i = 0; i < staying.size(); ++i) {
    auto w = why.find(staying[i]);
    message +=
        (i ? "; " : "") + staying[i] + (w == why.end() ? " (still there after the wait)" : " (" + w->second + ")");
  }
  throw CommandError(message + "; the blade stays drained");
}

}  // namespace

void registerBlade(CLI::App& app, Context& context) {
  CLI::App* blade = app.add_subcommand("blade", "Blades of the fabric: list, show, drain, undrain, retire, fence");
  blade->require_subcommand(1);

  auto filter = std::make_shared<ListFilter>();
  CLI::App* list = blade->add_subcommand("list", "List blades (chassis, slot, size, hypervisor, state, pool, servers)");
  filter->noun = "blades";
  addFilterOptions(list, *filter, true, bladeStates());
  list->callback([&context, filter] {
    const auto target = listTarget(context, "/v1/blades", kBladeColumns, *filter, {"pool", "state", "chassis"});
    show(context, filtered(context, getJson(context, target), *filter), [&](const Json& j) { bladeTable(context, j); });
  });

  auto name = std::make_shared<std::string>();
  CLI::App* showCmd = blade->add_subcommand("show", "One blade: its inventory, state, pool and servers");
  addNameArgument(showCmd, *name, "blade");
  showCmd->callback([&context, name] {
    Json b = getJson(context, "/v1/blades/" + pathName(*name));
    show(context, b, [&](const Json& j) {
      printBlock(context, j);
      const Json servers = byField(getJson(context, "/v1/servers"), "blade", *name);
      if (!servers.empty()) {
        *context.out << "\n";
        serverTable(context, servers);
      }
    });
  });

  struct Action {
    const char* verb;
    const char* help;
    const char* feature;
  };
  for (Action a : {Action{"drain", "Put a blade in maintenance: its servers move away, nothing new lands", ""},
                   Action{"undrain", "Take a blade out of maintenance", ""},
                   Action{"retire", "Retire a blade for good (it leaves every pool)", "blade retire"}}) {
    CLI::App* cmd = blade->add_subcommand(a.verb, a.help);
    addNameArgument(cmd, *name, "blade");
    auto yes = std::make_shared<bool>(false);
    auto wait = std::make_shared<WaitOptions>();
    const bool final = std::string(a.verb) == "retire";
    const bool drain = std::string(a.verb) == "drain";
    // Retiring cannot be undone: asked on a terminal, like apply (never from a script).
    if (final) cmd->add_flag("-y,--yes", *yes, "Do not ask for confirmation");
    if (drain) {
      addWaitOptions(cmd, *wait, "for its servers to move off");
      cmd->footer("Exit status 1 when servers cannot leave the blade in time, naming each and why.\n");
    }
    cmd->callback([&context, name, a, yes, final, drain, wait] {
      if (final && !*yes && onTerminal(STDIN_FILENO) &&
          !confirm(context, "Retire blade " + *name + "? It will take no servers again."))
        throw CommandError("not retired");
      if (drain) warnIfLastOfItsPool(context, *name);
      ApiRequest r;
      r.method = "POST";
      r.target = "/v1/blades/" + pathName(*name) + "/" + a.verb;
      r.feature = a.feature;
      Json b = requestJson(context, r);
      show(context, b, [&](const Json& j) {
        if (j.is_object() && j.contains("name"))
          bladeTable(context, Json::array({j}));
        else
          *context.out << *name << ": " << a.verb << " done\n";
      });
      if (drain && wait->wait) waitForDrain(context, *name, b, wait->timeoutSeconds);
    });
  }

  // The power route's last resort (docs/FENCING.md): a power-fenced blade never fences
  // itself, so when its BMC cannot confirm the power-off, only a person can.
  auto confirmed = std::make_shared<bool>(false);
  CLI::App* fence = blade->add_subcommand(
      "fence", "Confirm that a silent blade is powered off (its BMC cannot say so): its servers restart elsewhere");
  addNameArgument(fence, *name, "blade");
  fence->add_flag("--confirm-powered-off", *confirmed,
                  "You checked that the blade is powered off (pulled its power, or saw it dark); required");
  fence->footer(
      "For a power-fenced blade (a BMC declared with kind: Blade) whose fence command keeps failing: loomd never "
      "fences "
      "it by its lease, so its servers stay bound to it until its BMC or you confirm the power-off. Exit status 2 "
      "without --confirm-powered-off, 1 when loomd refuses (it hears the blade, or it is retired). If the blade still "
      "runs, its servers run twice. docs/FENCING.md, the power route.\n");
  fence->callback([&context, name, confirmed] {
    if (!*confirmed)
      throw CommandError(
          "blade fence needs --confirm-powered-off: loomd will treat " + *name +
              " as powered off and restart its servers on other blades. Confirm only once you know it is "
              "off (its BMC is dead, so loomd cannot check): if it still runs, its servers will run twice "
              "and may corrupt their disks",
          2);
    ApiRequest r;
    r.method = "POST";
    r.target = "/v1/blades/" + pathName(*name) + "/fence";
    r.body = Json{{"confirm_powered_off", true}, {"by", operatorName()}}.dump();
    r.contentType = "application/json";
    r.feature = "blade fence";
    Json b = requestJson(context, r);
    show(context, b, [&](const Json& j) {
      if (j.is_object() && j.contains("name")) bladeTable(context, Json::array({j}));
      *context.out << *name << ": fenced (operator confirmed power-off); its servers restart elsewhere\n";
    });
  });
}

void registerServer(CLI::App& app, Context& context) {
  CLI::App* server = app.add_subcommand("server", "Logical servers: list, show, start, stop, reset, move");
  server->require_subcommand(1);

  auto filter = std::make_shared<ListFilter>();
  CLI::App* list = server->add_subcommand("list", "List servers (partition, pool, blade, state, size, identity)");
  filter->noun = "servers";
  addFilterOptions(list, *filter, true, serverStates());
  list->callback([&context, filter] {
    const auto target = listTarget(context, "/v1/servers", kServerColumns, *filter, {"pool", "partition", "state"});
    show(context, filtered(context, getJson(context, target), *filter),
         [&](const Json& j) { serverTable(context, j); });
  });

  auto name = std::make_shared<std::string>();
  CLI::App* showCmd = server->add_subcommand("show", "One server: where it runs, its state and identity");
  addNameArgument(showCmd, *name, "server");
  showCmd->callback([&context, name] {
    show(context, getJson(context, "/v1/servers/" + pathName(*name)), [&](const Json& j) { printBlock(context, j); });
  });

  for (const char* verb : {"start", "stop"}) {
    const bool start = verb == std::string("start");
    CLI::App* cmd = server->add_subcommand(verb, std::string(start ? "Start" : "Stop") +
                                                     " a server (sets its desired power), then wait until it is " +
                                                     (start ? "running" : "stopped"));
    addNameArgument(cmd, *name, "server");
    auto wait = std::make_shared<WaitOptions>();
    addWaitOptions(cmd, *wait, std::string("until it is ") + (start ? "running" : "stopped"));
    cmd->footer(std::string("Exit status 1 when it cannot get there (") +
                (start ? "unplaceable, failed" : "it was started again") +
                ") or is not there after --timeout, saying where it is and why.\n");
    cmd->callback([&context, name, start, wait, v = std::string(verb)] {
      ApiRequest r;
      r.method = "POST";
      r.target = "/v1/servers/" + pathName(*name) + "/" + v;
      show(context, requestJson(context, r), [&](const Json& j) { serverTable(context, Json::array({j})); });
      if (!wait->wait) return;
      waitForServers(context, {ServerGoal{*name, start, ""}}, wait->timeoutSeconds,
                     *name + (start ? " running" : " stopped"), v);
    });
  }

  CLI::App* reset = server->add_subcommand(
      "reset", "Restart a running server on its blade (stop, define afresh, start), then wait until it runs again");
  addNameArgument(reset, *name, "server");
  auto resetWait = std::make_shared<WaitOptions>();
  addWaitOptions(reset, *resetWait, "until it runs again");
  reset->footer(
      "The guest is asked to shut down and is destroyed if it has not within 10 s, as any stop; it then boots "
      "from its definition as declared now. The server shows 'restart pending' until its blade has defined it "
      "again.\nExit status 1 when it is refused (powered off, not placed), or does not run again within --timeout, "
      "saying where it is and why.\n");
  reset->callback([&context, name, resetWait] {
    ApiRequest r;
    r.method = "POST";
    r.target = "/v1/servers/" + pathName(*name) + "/reset";
    r.feature = "server reset";
    show(context, requestJson(context, r), [&](const Json& j) { serverTable(context, Json::array({j})); });
    if (!resetWait->wait) return;
    waitForServers(context, {ServerGoal{*name, true, ""}}, resetWait->timeoutSeconds, *name + " running again",
                   "reset");
  });

  auto to = std::make_shared<std::string>();
  CLI::App* move =
      server->add_subcommand("move", "Move a server to another blade of its pool, then wait until it runs there");
  addNameArgument(move, *name, "server");
  move->add_option("--to", *to, "The blade to move it to")->required()->type_name("BLADE");
  auto moveWait = std::make_shared<WaitOptions>();
  addWaitOptions(move, *moveWait, "until it runs on the new blade");
  move->footer(
      "Exit status 1 when the move is refused (saying why), or the server is not running on the new blade "
      "after --timeout, saying where it is.\n");
  move->callback([&context, name, to, moveWait] {
    ApiRequest r;
    r.method = "POST";
    r.target = "/v1/servers/" + pathName(*name) + "/move";
    r.body = Json{{"to", *to}}.dump();
    r.contentType = "application/json";
    r.feature = "server move";
    Json reply = requestJson(context, r);
    show(context, reply, [&](const Json& j) {
      if (j.is_object() && j.contains("name"))
        serverTable(context, Json::array({j}));
      else
        *context.out << *name << ": moving to " << *to << "\n";
    });
    if (!moveWait->wait) return;
    waitForServers(context, {ServerGoal{*name, true, *to}}, moveWait->timeoutSeconds, *name + " running on " + *to,
                   "move to " + *to);
  });
}

void registerPool(CLI::App& app, Context& context) {
  CLI::App* pool = app.add_subcommand("pool", "Pools: list, show");
  pool->require_subcommand(1);

  auto filter = std::make_shared<ListFilter>();
  CLI::App* list =
      pool->add_subcommand("list", "List pools (partition, hypervisor, blades, spares, failover, servers)");
  filter->noun = "pools";
  list->add_option("--partition", filter->partition, "Only those of this partition")->type_name("PARTITION");
  list->add_option("-l,--selector", filter->selector, "Only those whose fields match KEY=VALUE[,KEY=VALUE...]")
      ->type_name("SELECTOR");
  list->callback([&context, filter] {
    const auto target = listTarget(context, "/v1/pools", kPoolColumns, *filter, {"partition"});
    show(context, filtered(context, getJson(context, target), *filter), [&](const Json& j) { poolTable(context, j); });
  });

  auto name = std::make_shared<std::string>();
  CLI::App* showCmd = pool->add_subcommand("show", "One pool: its rules, blades and servers");
  addNameArgument(showCmd, *name, "pool");
  showCmd->callback([&context, name] {
    Json p = getJson(context, "/v1/pools/" + pathName(*name));
    show(context, p, [&](const Json& j) {
      printBlock(context, j);
      const Json blades =
          byField(getJson(context, listTarget(context, "/v1/blades", kBladeColumns, {}, {})), "pool", *name);
      if (!blades.empty()) {
        *context.out << "\n";
        bladeTable(context, blades);
      }
      const Json servers =
          byField(getJson(context, listTarget(context, "/v1/servers", kServerColumns, {}, {})), "pool", *name);
      if (!servers.empty()) {
        *context.out << "\n";
        serverTable(context, servers);
      }
    });
  });
}

void registerCapacity(CLI::App& app, Context& context) {
  CLI::App* cmd =
      app.add_subcommand("capacity", "Per pool: blades, used/free cores and memory, spares, survivable failures");
  cmd->callback([&context] {
    Json pools = getJson(context, "/v1/capacity", "capacity");
    show(context, pools, [&](const Json& list) {
      Table t({{"pool"},
               {"blades", Table::Align::Right},
               {"cores used", Table::Align::Right},
               {"cores free", Table::Align::Right},
               {"memory used", Table::Align::Right},
               {"memory free", Table::Align::Right},
               {"spares", Table::Align::Right},
               {"survives", Table::Align::Right},
               {"servers", Table::Align::Right}});
      std::vector<std::string> warnings;
      for (const auto& p : list) {
        const auto coresTotal = countField(p, "cores_total"), coresUsed = countField(p, "cores_used");
        const auto memTotal = countField(p, "memory_total_mib"), memUsed = countField(p, "memory_used_mib");
        const bool met = p.value("spares_promise_met", true);
        const std::string spares =
            std::to_string(countField(p, "spares")) + "/" + std::to_string(countField(p, "spares_declared"));
        t.addRow({text(p, "pool"), std::to_string(countField(p, "blades")),
                  std::to_string(coresUsed) + "/" + std::to_string(coresTotal),
                  std::to_string(coresTotal > coresUsed ? coresTotal - coresUsed : 0),
                  mib(memUsed) + "/" + mib(memTotal), mib(memTotal > memUsed ? memTotal - memUsed : 0),
                  Cell(spares, met ? Style::Plain : Style::Bad), text(p, "survivable_failures"),
                  std::to_string(countField(p, "servers"))});
        std::string warning = p.contains("warning") && p["warning"].is_string() ? p["warning"].get<std::string>() : "";
        if (warning.empty() && !met) warning = "spares promise not met";
        if (!warning.empty()) warnings.push_back(text(p, "pool") + ": " + warning);
      }
      t.render(*context.out, context.color);
      for (const auto& w : warnings)
        *context.out << styled("warning", Style::Warning, context.color) << " " << w << "\n";
    });
  });
}

}  // namespace loom::loomctl
