// `apply` and `delete`: declaration files sent to loomd as one body, the diff and the
// plan shown, a question asked on a terminal, then (apply) a wait for the servers to
// settle. README.md, "apply / delete".
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "config/Loader.h"
#include "tools/loomctl/Api.h"
#include "tools/loomctl/Commands.h"
#include "tools/loomctl/DeclarationInputs.h"
#include "tools/loomctl/Views.h"
#include "tools/loomctl/Waiting.h"

namespace loom::loomctl {

namespace {

struct ChangeOptions {
  std::vector<std::string> files;
  bool dryRun = false;
  bool yes = false;
  WaitOptions wait;
};

// "Server/web-0" for either shape the controller has used: a string or {kind, name}.
std::string objectLabel(const Json& item) {
  if (item.is_string()) return item.get<std::string>();
  if (item.is_object() && item.contains("kind") && item.contains("name"))
    return text(item, "kind") + "/" + text(item, "name");
  return item.dump();
}

// The diff lists: under "diff" (apply) or at the top (delete).
const Json& diffOf(const Json& reply) {
  return reply.contains("diff") && reply["diff"].is_object() ? reply["diff"] : reply;
}

void printDiff(Context& context, const Json& reply) {
  auto& out = *context.out;
  const Json& diff = diffOf(reply);
  std::size_t created = 0, changed = 0, deleted = 0;
  // Under each changed object, its fields: "    memory: 28GiB → 20GiB (restart)".
  const Json fields = diff.value("fields", Json::object());
  const Json restarts = diff.value("restarts", Json::object());
  std::set<std::string> touched;  // servers the change names
  auto list = [&](const char* key, const char* mark, Style style, std::size_t& count) {
    if (!diff.contains(key) || !diff[key].is_array()) return;
    for (const auto& c : diff[key]) {
      const std::string label = objectLabel(c);
      out << styled(mark, style, context.color) << " " << label << "\n";
      if (label.rfind("Server/", 0) == 0) touched.insert(label.substr(7));
      if (!fields.is_object() || !fields.contains(label) || !fields[label].is_array()) {
        ++count;
        continue;
      }
      for (const auto& f : fields[label]) {
        const std::string effect = text(f, "effect");
        std::string note;
        if (effect == "restart")
          note = restarts.contains(label.substr(7)) ? " (restart)" : " (at its next start)";
        else if (effect == "move")
          note = " (moves)";
        out << "    " << text(f, "field") << ": " << text(f, "from") << " → " << text(f, "to")
            << styled(note, Style::Warning, context.color) << "\n";
      }
      ++count;
    }
  };
  list("created", "+", Style::Good, created);
  list("changed", "~", Style::Warning, changed);
  list("deleted", "-", Style::Bad, deleted);
  out << created << " created, " << changed << " changed, " << deleted << " deleted";
  if (diff.contains("unchanged")) out << ", " << countField(diff, "unchanged") << " unchanged";
  out << "\n";
  if (!reply.contains("plan") || !reply["plan"].is_object()) return;
  const Json& plan = reply["plan"];
  const Json placements = plan.value("placements", Json::array());
  const Json steps = plan.value("steps", Json::array());
  // Only the placements the change touches: the servers it names, those that move, those
  // with steps. FROM: the blade it leaves; where it stays, that blade; "-" when new.
  for (const auto& s : steps)
    if (s.contains("server") && s["server"].is_string()) touched.insert(s["server"].get<std::string>());
  std::set<std::string> created_;
  if (diff.contains("created") && diff["created"].is_array())
    for (const auto& c : diff["created"])
      if (const std::string label = objectLabel(c); label.rfind("Server/", 0) == 0) created_.insert(label.substr(7));
  Table t({{"server"}, {"blade"}, {"from"}});
  std::size_t shown = 0;
  for (const auto& p : placements) {
    const std::string server = text(p, "server");
    const bool moved = p.contains("from") && p["from"].is_string() && !p["from"].get<std::string>().empty();
    if (!moved && !touched.count(server)) continue;
    const std::string from = moved ? text(p, "from") : created_.count(server) ? "-" : text(p, "blade");
    t.addRow({server, text(p, "blade"), from});
    ++shown;
  }
  if (shown > 0) {
    out << "\n";
    t.render(out, context.color);
  }
  out << countOf(shown, "placement", "placements") << " touched (" << placements.size() << " servers placed), "
      << countOf(steps.size(), "step", "steps") << "\n";
  for (const auto& [server, why] : restarts.items())
    out << styled("restart", Style::Warning, context.color) << " " << server << ": "
        << (why.is_string() ? why.get<std::string>() : why.dump()) << "\n";
  for (const auto& u : plan.value("unplaceable", Json::array()))
    out << styled("unplaceable", Style::Bad, context.color) << " " << text(u, "server") << ": " << text(u, "reason")
        << "\n";
  for (const auto& w : plan.value("warnings", Json::array()))
    out << styled("warning", Style::Warning, context.color) << " " << (w.is_string() ? w.get<std::string>() : w.dump())
        << "\n";
}

// The pools whose spares promise the change would break (the controller's
// capacity_warnings), beside the plan's warnings (with -o json|yaml they are in the answer).
void printCapacityWarnings(Context& context, const Json& reply) {
  for (const auto& w : reply.value("capacity_warnings", Json::array()))
    if (w.is_string())
      *context.out << styled("warning", Style::Warning, context.color)
                   << " spares promise not met: " << w.get<std::string>() << "\n";
}

// After an apply: the pools it touched (declared in it, or holding a server declared in
// it) whose spares promise the capacity report says is not kept now.
void warnOfBrokenSpares(Context& context, const Json& reply, const config::DeclarationsResult& local) {
  std::set<std::string> touched;
  std::map<std::string, std::string> poolOf;  // server -> pool, from the files
  for (const auto& server : local.declarations.servers) poolOf[server.name] = server.pool;
  const Json& diff = diffOf(reply);
  for (const char* key : {"created", "changed"})
    for (const auto& item : diff.value(key, Json::array())) {
      const std::string label = objectLabel(item);
      if (label.rfind("Pool/", 0) == 0) touched.insert(label.substr(5));
      if (auto it = poolOf.find(label.substr(label.find('/') + 1));
          label.rfind("Server/", 0) == 0 && it != poolOf.end())
        touched.insert(it->second);
    }
  if (touched.empty()) return;
  Json warnings = Json::array();
  for (const auto& p : getJson(context, "/v1/capacity", "capacity"))
    if (touched.count(text(p, "pool")) && !p.value("spares_promise_met", true))
      warnings.push_back(p.value("warning", std::string()).empty()
                             ? "pool " + text(p, "pool") + ": spares promise not met"
                             : p.value("warning", std::string()));
  printCapacityWarnings(context, Json{{"capacity_warnings", warnings}});
}

bool diffIsEmpty(const Json& reply) {
  const Json& diff = diffOf(reply);
  for (const char* key : {"created", "changed", "deleted"})
    if (diff.contains(key) && diff[key].is_array() && !diff[key].empty()) return false;
  return true;
}

// `apply` and `delete` share their shape: check the files here (errors with their
// lines), show what would change, ask on a terminal, then change it.
void runChange(Context& context, const ChangeOptions& options, bool isDelete) {
  // No local gate: the controller validates the files together with what is applied
  // already (servers.yaml may name pools applied last week), and answers with
  // FILE:LINE:COL diagnostics. Read here only to know which servers to wait for.
  const auto inputs = DeclarationInputs::read(options.files, *context.err);
  auto local = inputs.load();
  // One body, so the change is one transaction; where each file starts in it is kept to
  // point the controller's "request:LINE:COL" diagnostics back into the right file.
  std::string body;
  std::vector<std::pair<long, std::string>> starts;  // first line of each file in `body`
  for (const auto& [name, text] : inputs.sources) {
    if (!body.empty()) body += "\n---\n";
    starts.emplace_back(1 + std::count(body.begin(), body.end(), '\n'), name);
    body += text;
  }
  const std::string source = inputs.sources.size() == 1 ? inputs.sources[0].first : "request";
  const std::string path = isDelete ? "/v1/delete" : "/v1/apply";
  auto target = [&](bool dry) {
    std::string query = "source=" + urlEncode(source);
    // The files by name, for the controller's event ("applied pools.yaml, servers.yaml").
    std::string files;
    for (const auto& [name, text] : inputs.sources) files += (files.empty() ? "" : ", ") + name;
    if (inputs.sources.size() > 1) query += "&files=" + urlEncode(files);
    if (dry) query += std::string(query.empty() ? "" : "&") + "dry_run=1";
    return path + (query.empty() ? "" : "?" + query);
  };
  ApiRequest request;
  request.method = "POST";
  request.body = body;
  request.feature = isDelete ? "delete" : "";
  if (inputs.sources.size() > 1) {
    request.mapDiagnostic = [starts](const std::string& line) -> std::string {
      // "request:LINE:COL: message" -> "FILE:LINE:COL: message"
      if (line.rfind("request:", 0) != 0) return line;
      char* end = nullptr;
      const long at = std::strtol(line.c_str() + 8, &end, 10);
      if (end == line.c_str() + 8 || *end != ':') return line;
      // The last file that starts at or before that line.
      auto it = std::find_if(starts.rbegin(), starts.rend(), [at](const auto& s) { return at >= s.first; });
      if (it == starts.rend()) return line;
      return it->second + ":" + std::to_string(at - it->first + 1) + end;
    };
  }
  request.timeout = std::chrono::seconds(120);
  const bool table = context.output == OutputFormat::Table;

  // Confirmation only on a terminal, never with --yes (DESIGN §3): a script piping
  // into loomctl must not hang on a question nobody will answer.
  const bool ask = !options.dryRun && !options.yes && onTerminal(STDIN_FILENO);
  if (options.dryRun || ask) {
    request.target = target(true);
    Json preview = requestJson(context, request);
    if (table) {
      printDiff(context, preview);
      printCapacityWarnings(context, preview);
    } else if (options.dryRun) {
      printStructured(context, preview);
    }
    if (options.dryRun) {
      if (table) *context.out << "dry run: nothing changed\n";
      // Like `plan`: a change that would leave servers unplaceable is not one a script
      // should go ahead with on exit 0.
      if (const auto n = preview.contains("plan") ? preview["plan"].value("unplaceable", Json::array()).size() : 0) {
        *context.err << "loomctl: " << countOf(n, "server would be", "servers would be") << " unplaceable\n";
        context.exitCode = 1;
      }
      return;
    }
    if (diffIsEmpty(preview) && !isDelete) {
      if (table) *context.out << "nothing to change\n";
      // Still worth waiting on: the operator may be re-applying to see it converge.
    } else if (!confirm(context, isDelete ? "Delete these objects?" : "Apply these changes?")) {
      throw CommandError(isDelete ? "nothing deleted" : "not applied", 1);
    }
  }
  request.target = target(false);
  Json reply = requestJson(context, request);
  if (table) {
    if (!ask) printDiff(context, reply);
    // Asked, the dry run said it already; from a script, the capacity report says it now.
    if (!ask && !isDelete && !diffIsEmpty(reply)) warnOfBrokenSpares(context, reply, local);
    *context.out << (isDelete ? "deleted\n" : "applied\n");
  } else {
    printStructured(context, reply);
  }
  if (!options.wait.wait) return;
  if (isDelete) {
    std::vector<std::string> gone;
    for (const auto& item : reply.value("deleted", Json::array()))
      if (objectLabel(item).rfind("Server/", 0) == 0) gone.push_back(objectLabel(item).substr(7));
    waitForServersGone(context, gone, options.wait.timeoutSeconds);
    return;
  }
  std::set<std::string> names;
  if (local.ok()) {
    for (const auto& s : local.declarations.servers) names.insert(s.name);
  } else {
    // The files lean on applied objects: the controller's answer names the servers.
    const Json& diff = diffOf(reply);
    for (const char* key : {"created", "changed"})
      for (const auto& item : diff.value(key, Json::array()))
        if (objectLabel(item).rfind("Server/", 0) == 0) names.insert(objectLabel(item).substr(7));
    if (reply.contains("plan"))
      for (const auto& p : reply["plan"].value("placements", Json::array())) names.insert(text(p, "server"));
  }
  // And the servers the change restarts without naming them (a Network's new VLAN).
  const Json restarts = diffOf(reply).value("restarts", Json::object());
  for (const auto& [server, why] : restarts.items()) names.insert(server);
  std::vector<ServerGoal> goals;
  for (const auto& n : names) goals.push_back(ServerGoal{n, std::nullopt, ""});
  waitForServers(context, goals, options.wait.timeoutSeconds, "servers settled", "start");
}

void addChangeCommand(CLI::App& app, Context& context, bool isDelete) {
  auto options = std::make_shared<ChangeOptions>();
  CLI::App* cmd =
      isDelete
          ? app.add_subcommand("delete", "Remove the objects declared in files from the controller (prints what goes)")
          : app.add_subcommand("apply",
                               "Send declarations to the controller: prints the diff and placements, asks on a "
                               "terminal, then waits for the servers to settle");
  addFileOption(cmd, options->files);
  cmd->add_flag("--dry-run", options->dryRun, "Show what would change; change nothing");
  cmd->add_flag("-y,--yes", options->yes, "Do not ask for confirmation");
  addWaitOptions(cmd, options->wait,
                 isDelete ? "for the deleted servers to stop and leave their blades"
                          : "for the servers to settle (running, or stopped when declared off)");
  cmd->footer(isDelete
                  ? "Exit status 1 when a deleted server is still defined on a blade after --timeout, naming it.\n"
                  : "Exit status 1 when a server cannot get there (unplaceable, failed) or is not there after "
                    "--timeout, naming each and why; 2 for a usage error.\n"
                    "Each changed server's fields are listed old → new. '(restart)' marks a field in the domain\n"
                    "definition: a running server is stopped, defined anew and started where it runs, one server of\n"
                    "an anti-affinity group at a time, and shows 'restart pending' until then (the wait counts it\n"
                    "settled once it has restarted). The placements listed are those the change touches (FROM:\n"
                    "the blade it leaves, '-' when new). docs/SERVERS.md.\n");
  cmd->callback([&context, options, isDelete] { runChange(context, *options, isDelete); });
}

}  // namespace

void registerChangeCommands(CLI::App& app, Context& context) {
  addChangeCommand(app, context, false);
  addChangeCommand(app, context, true);
}

}  // namespace loom::loomctl
