// The commands that talk to loomd's HTTP API: `apply`, `delete`, `blade ...`,
// `server ...`, `pool ...`, `events`, `capacity`, `fabric`. Each fetches the
// controller's JSON once and either passes it through (-o json|yaml: the automation
// contract is the controller's own objects) or lays it out for a person.
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "config/Loader.h"
#include "tools/loomctl/Api.h"
#include "tools/loomctl/Commands.h"
#include "tools/loomctl/HttpClient.h"
#include "tools/loomctl/Output.h"

namespace loom::loomctl {

// --- requests ---------------------------------------------------------------------------

Json requestJson(const Context& context, const ApiRequest& request) {
  const HttpReply reply = controllerCall(context.controller, request.method, request.target, request.body,
                                         request.contentType, request.timeout);
  Json j = Json::parse(reply.body, nullptr, false);
  if (reply.status / 100 != 2) {
    std::string message =
        j.is_object() && j.contains("error") && j["error"].is_string() ? j["error"].get<std::string>() : "";
    // loomd says "no such endpoint" when the path itself is unknown: an older controller.
    if ((reply.status == 404 || reply.status == 405) && !request.feature.empty() &&
        (message.empty() || message.rfind("no such endpoint", 0) == 0))
      throw CommandError("the controller does not support " + request.feature + " (upgrade loomd)");
    // "unknown blade 'x'" -> "no blade named 'x'": the noun first, as an operator asks.
    if (reply.status == 404 && message.rfind("unknown ", 0) == 0) {
      const auto quote = message.find(" '");
      if (quote != std::string::npos) message = "no " + message.substr(8, quote - 8) + " named" + message.substr(quote);
    }
    if (j.is_object() && j.contains("diagnostics") && j["diagnostics"].is_array() && !j["diagnostics"].empty()) {
      if (message == "invalid declarations")
        message += " (" + countOf(j["diagnostics"].size(), "error", "errors") + ", above)";
      for (const auto& d : j["diagnostics"]) {
        std::string line = d.is_string() ? d.get<std::string>() : d.dump();
        *context.err << (request.mapDiagnostic ? request.mapDiagnostic(line) : line) << "\n";
      }
    }
    if (message.empty())
      message = "the controller answered HTTP " + std::to_string(reply.status) + " for " + request.target;
    throw CommandError(message);
  }
  if (j.is_discarded()) throw CommandError("the controller answered something that is not JSON for " + request.target);
  return j;
}

Json getJson(const Context& context, const std::string& target, const std::string& feature) {
  ApiRequest r;
  r.target = target;
  r.feature = feature;
  return requestJson(context, r);
}

std::vector<std::string> liveNames(const Context& context, const std::string& noun) {
  std::vector<std::string> names;
  try {
    ApiRequest r;
    r.target = "/v1/" + noun;
    r.timeout = std::chrono::seconds(2);
    for (const auto& item : requestJson(context, r))
      if (item.contains("name") && item["name"].is_string()) names.push_back(item["name"].get<std::string>());
  } catch (const std::exception&) {
    // Completion offers what it can; an unreachable controller just means no names.
  }
  std::sort(names.begin(), names.end());
  return names;
}

namespace {

// --- small formatting helpers ------------------------------------------------------------

// One lookup each: a table of 10,000 rows calls these 100,000 times.
std::string text(const Json& j, const char* key) {
  if (!j.is_object()) return "-";
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "-";
  if (it->is_string()) {
    const auto& s = it->get_ref<const std::string&>();
    return s.empty() ? "-" : s;
  }
  return it->dump();
}

std::string joined(const Json& j, const char* key, const char* separator = ",") {
  if (!j.is_object()) return "-";
  auto it = j.find(key);
  if (it == j.end() || !it->is_array() || it->empty()) return "-";
  std::string out;
  for (const auto& v : *it) {
    if (!out.empty()) out += separator;
    if (v.is_string())
      out += v.get_ref<const std::string&>();
    else
      out += v.dump();
  }
  return out;
}

std::string mib(std::uint64_t value) {
  if (value >= 1024 && value % 1024 == 0) return std::to_string(value / 1024) + "GiB";
  if (value >= 10240) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1fGiB", static_cast<double>(value) / 1024.0);
    return buf;
  }
  return std::to_string(value) + "MiB";
}

std::string memoryOf(const Json& j, const char* key = "memory_mib") {
  if (!j.contains(key) || !j[key].is_number()) return "-";
  return mib(j[key].get<std::uint64_t>());
}

// A count that may arrive as a number or as the list it counts.
std::uint64_t countField(const Json& j, const char* key) {
  if (!j.contains(key)) return 0;
  if (j[key].is_number()) return j[key].get<std::uint64_t>();
  if (j[key].is_array()) return j[key].size();
  return 0;
}

Cell stateCell(const std::string& state) { return Cell(state, styleForState(state)); }

bool onTerminal(int fd) { return ::isatty(fd) == 1; }

// The tables print only in table mode; json/yaml pass the controller's value through.
void show(Context& context, const Json& value, const std::function<void(const Json&)>& table) {
  if (context.output == OutputFormat::Table)
    table(value);
  else
    printStructured(context, value);
}

// "Apply these changes? [y/N]" on a terminal; anything but y/yes declines.
bool confirm(Context& context, const std::string& question) {
  *context.out << question << " [y/N] " << std::flush;
  std::string answer;
  if (!std::getline(std::cin, answer)) return false;
  answer.erase(0, answer.find_first_not_of(" \t"));
  return answer == "y" || answer == "Y" || answer == "yes" || answer == "Yes";
}

// A declaration file, read no further than loomd would take it (its HTTP body limit), so
// `-f /dev/zero` is an error, not a process that grows forever.
std::string readFile(const std::string& path) {
  constexpr std::size_t kMaxBytes = std::size_t{16} << 20;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CommandError("cannot read '" + path + "'");
  std::string out;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    out.append(buf, static_cast<std::size_t>(in.gcount()));
    if (out.size() > kMaxBytes) throw CommandError("'" + path + "' is larger than 16 MiB: split it into several files");
  }
  return out;
}

std::string urlEncode(const std::string& value) {
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '.' || c == '-' || c == '_' || c == '/') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

// --- a "key: value" block for `show` -----------------------------------------------------

std::string labelOf(const std::string& key) {
  if (key == "memory_mib") return "memory";
  std::string label = key;
  std::replace(label.begin(), label.end(), '_', ' ');
  return label;
}

void printBlock(Context& context, const Json& input) {
  // The controller's keys arrive sorted; a person looks for the name first.
  Json object = Json::object();
  if (input.contains("name")) object["name"] = input["name"];
  for (const auto& [key, value] : input.items()) object[key] = value;
  std::size_t width = 0;
  for (const auto& [key, value] : object.items()) width = std::max(width, labelOf(key).size());
  auto& out = *context.out;
  for (const auto& [key, value] : object.items()) {
    const std::string label = labelOf(key);
    out << styled(label + ":", Style::Bold, context.color) << std::string(width - label.size() + 1, ' ');
    if (key == "memory_mib" && value.is_number()) {
      out << mib(value.get<std::uint64_t>());
    } else if (value.is_array()) {
      if (value.empty()) out << "-";
      bool scalars = std::all_of(value.begin(), value.end(), [](const Json& v) { return !v.is_structured(); });
      if (scalars) {
        for (std::size_t i = 0; i < value.size(); ++i)
          out << (i ? ", " : "") << (value[i].is_string() ? value[i].get<std::string>() : value[i].dump());
      } else {
        for (const auto& v : value) out << "\n" << std::string(width + 2, ' ') << v.dump();
      }
    } else if (value.is_object()) {
      bool first = true;
      for (const auto& [k, v] : value.items()) {
        out << (first ? "" : ", ") << k << "=" << (v.is_string() ? v.get<std::string>() : v.dump());
        first = false;
      }
      if (first) out << "-";
    } else if (key == "state" || key == "role") {
      out << styled(text(object, key.c_str()), styleForState(text(object, key.c_str())), context.color);
    } else {
      out << text(object, key.c_str());
    }
    out << "\n";
  }
}

// --- tables ------------------------------------------------------------------------------

void bladeTable(Context& context, const Json& list) {
  // The relay column only where some blade reaches loomd through a fabric relay.
  const bool relays = std::any_of(list.begin(), list.end(),
                                  [](const Json& b) { return b.contains("relay") && b["relay"].is_string(); });
  std::vector<Table::Column> columns{{"name"},
                                     {"chassis"},
                                     {"slot", Table::Align::Right},
                                     {"cores", Table::Align::Right},
                                     {"memory", Table::Align::Right},
                                     {"hypervisor"},
                                     {"state"},
                                     {"pool"},
                                     {"servers"}};
  if (relays) columns.insert(columns.begin() + 2, {"relay"});
  Table t(columns);
  for (const auto& b : list) {
    std::vector<Cell> row{
        text(b, "name"),       text(b, "chassis"),          text(b, "slot"), text(b, "cores"),    memoryOf(b),
        text(b, "hypervisor"), stateCell(text(b, "state")), text(b, "pool"), joined(b, "servers")};
    if (relays) row.insert(row.begin() + 2, text(b, "relay"));
    t.addRow(std::move(row));
  }
  t.render(*context.out, context.color);
}

void serverTable(Context& context, const Json& list) {
  Table t({{"name"},
           {"partition"},
           {"pool"},
           {"blade"},
           {"state"},
           {"vcpus", Table::Align::Right},
           {"memory", Table::Align::Right},
           {"uuid"},
           {"macs"}});
  for (const auto& s : list) {
    std::string state = text(s, "state");
    t.addRow({text(s, "name"), text(s, "partition"), text(s, "pool"), text(s, "blade"), stateCell(state),
              text(s, "vcpus"), memoryOf(s), text(s, "uuid"), joined(s, "macs")});
  }
  t.render(*context.out, context.color);
  for (const auto& s : list)
    if (s.contains("reason") && s["reason"].is_string())
      *context.out << styled(text(s, "state"), styleForState(text(s, "state")), context.color) << " " << text(s, "name")
                   << ": " << s["reason"].get<std::string>() << "\n";
}

void poolTable(Context& context, const Json& list) {
  Table t({{"name"},
           {"partition"},
           {"hypervisor"},
           {"blades", Table::Align::Right},
           {"spares", Table::Align::Right},
           {"failover"},
           {"servers", Table::Align::Right}});
  for (const auto& p : list)
    t.addRow({text(p, "name"), text(p, "partition"), text(p, "hypervisor"), std::to_string(countField(p, "blades")),
              text(p, "spares"), text(p, "failover"), std::to_string(countField(p, "servers"))});
  t.render(*context.out, context.color);
}

// --- list filters ------------------------------------------------------------------------

struct ListFilter {
  std::string pool, partition, state, chassis, selector;

  std::vector<std::pair<std::string, std::string>> terms() const {
    std::vector<std::pair<std::string, std::string>> out;
    if (!pool.empty()) out.emplace_back("pool", pool);
    if (!partition.empty()) out.emplace_back("partition", partition);
    if (!state.empty()) out.emplace_back("state", state);
    if (!chassis.empty()) out.emplace_back("chassis", chassis);
    std::stringstream items(selector);
    std::string item;
    while (std::getline(items, item, ',')) {
      if (item.empty()) continue;
      const auto eq = item.find('=');
      if (eq == std::string::npos || eq == 0)
        throw CommandError("selector '" + item + "' is not KEY=VALUE (e.g. --selector pool=web,state=active)", 2);
      out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
    }
    return out;
  }
};

void addFilterOptions(CLI::App* cmd, ListFilter& filter, bool withChassis) {
  cmd->add_option("--pool", filter.pool, "Only those of this pool")->type_name("POOL");
  cmd->add_option("--partition", filter.partition, "Only those of this partition")->type_name("PARTITION");
  cmd->add_option("--state", filter.state, "Only those in this state")->type_name("STATE");
  if (withChassis) cmd->add_option("--chassis", filter.chassis, "Only those in this chassis")->type_name("CHASSIS");
  cmd->add_option("-l,--selector", filter.selector, "Only those whose fields match KEY=VALUE[,KEY=VALUE...]")
      ->type_name("SELECTOR");
}

bool fieldMatches(const Json& object, const std::string& key, const std::string& value) {
  if (!object.contains(key)) return false;
  const Json& field = object[key];
  if (field.is_array()) {
    return std::any_of(field.begin(), field.end(),
                       [&](const Json& v) { return (v.is_string() ? v.get<std::string>() : v.dump()) == value; });
  }
  if (field.is_null()) return value.empty() || value == "-" || value == "none";
  return (field.is_string() ? field.get<std::string>() : field.dump()) == value;
}

// Keeps the items matching every term. A blade has no partition and a server no
// chassis of its own: those are derived (blade -> pool -> partition, server -> blade ->
// chassis) only when asked for, so a plain list costs one request.
Json filtered(const Context& context, Json list, const ListFilter& filter) {
  const auto terms = filter.terms();
  if (terms.empty()) return list;  // moved out, not copied: it may hold 10,000 blades
  std::map<std::string, std::string> partitionOfPool, chassisOfBlade;
  for (const auto& [key, value] : terms) {
    const std::string& k = key;  // clang 14 (clang-tidy) cannot capture a structured binding
    bool missing = std::any_of(list.begin(), list.end(), [&](const Json& o) { return !o.contains(k); });
    if (!missing) continue;
    if (key == "partition" && partitionOfPool.empty())
      for (const auto& p : getJson(context, "/v1/pools")) partitionOfPool[text(p, "name")] = text(p, "partition");
    if (key == "chassis" && chassisOfBlade.empty())
      for (const auto& b : getJson(context, "/v1/blades")) chassisOfBlade[text(b, "name")] = text(b, "chassis");
  }
  Json out = Json::array();
  for (const auto& item : list) {
    Json probe = item;
    if (!probe.contains("partition") && !partitionOfPool.empty())
      probe["partition"] = partitionOfPool[text(item, "pool")];
    if (!probe.contains("chassis") && !chassisOfBlade.empty()) probe["chassis"] = chassisOfBlade[text(item, "blade")];
    bool keep =
        std::all_of(terms.begin(), terms.end(), [&](const auto& t) { return fieldMatches(probe, t.first, t.second); });
    if (keep) out.push_back(item);
  }
  return out;
}

// What a list command fetches. A table asks for the columns it prints and the fields its
// filter looks at (`?fields=`): a table of 10,000 blades then moves and parses a third of
// the bytes. -o json/yaml, and an arbitrary --selector, get whole objects.
std::string listTarget(const Context& context, const std::string& path, std::vector<std::string> columns,
                       const ListFilter& filter, const std::vector<std::string>& filterable) {
  if (context.output != OutputFormat::Table || !filter.selector.empty()) return path;
  for (const auto& [key, value] : filter.terms())
    if (std::find(filterable.begin(), filterable.end(), key) != filterable.end()) columns.push_back(key);
  std::string fields;
  for (const auto& c : columns) fields += (fields.empty() ? "" : ",") + c;
  return path + "?fields=" + fields;
}

const std::vector<std::string> kBladeColumns{"name",       "chassis",    "relay", "slot", "cores",
                                             "memory_mib", "hypervisor", "state", "pool", "servers"};
const std::vector<std::string> kServerColumns{"name",  "partition",  "pool", "blade", "state",
                                              "vcpus", "memory_mib", "uuid", "macs",  "reason"};
const std::vector<std::string> kPoolColumns{"name",   "partition", "hypervisor", "blades",
                                            "spares", "failover",  "servers"};

Json byField(const Json& list, const char* key, const std::string& value) {
  Json out = Json::array();
  for (const auto& item : list)
    if (fieldMatches(item, key, value)) out.push_back(item);
  return out;
}

// --- apply / delete ----------------------------------------------------------------------

struct ChangeOptions {
  std::vector<std::string> files;
  bool dryRun = false;
  bool yes = false;
  bool noWait = false;
  int timeoutSeconds = 120;
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
  auto list = [&](const char* key, const char* mark, Style style, std::size_t& count) {
    if (!diff.contains(key) || !diff[key].is_array()) return;
    for (const auto& c : diff[key]) {
      out << styled(mark, style, context.color) << " " << objectLabel(c) << "\n";
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
  if (!placements.empty()) {
    Table t({{"server"}, {"blade"}, {"from"}});
    for (const auto& p : placements)
      t.addRow({text(p, "server"), text(p, "blade"), p.contains("from") ? text(p, "from") : ""});
    out << "\n";
    t.render(out, context.color);
  }
  out << countOf(placements.size(), "server placed", "servers placed") << ", "
      << countOf(plan.value("steps", Json::array()).size(), "step", "steps") << "\n";
  for (const auto& u : plan.value("unplaceable", Json::array()))
    out << styled("unplaceable", Style::Bad, context.color) << " " << text(u, "server") << ": " << text(u, "reason")
        << "\n";
  for (const auto& w : plan.value("warnings", Json::array()))
    out << styled("warning", Style::Warning, context.color) << " " << (w.is_string() ? w.get<std::string>() : w.dump())
        << "\n";
}

bool diffIsEmpty(const Json& reply) {
  const Json& diff = diffOf(reply);
  for (const char* key : {"created", "changed", "deleted"})
    if (diff.contains(key) && diff[key].is_array() && !diff[key].empty()) return false;
  return true;
}

// Polls /v1/servers until each named server has settled: power on -> running, or
// ended unplaceable/failed; power off -> stopped. Bounded by `timeoutSeconds`.
void waitForServers(Context& context, const std::set<std::string>& names, int timeoutSeconds) {
  if (names.empty()) return;
  const bool table = context.output == OutputFormat::Table;
  std::ostream& progress = table ? *context.out : *context.err;
  const bool live = table ? onTerminal(STDOUT_FILENO) : onTerminal(STDERR_FILENO);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeoutSeconds);
  std::size_t lastSettled = SIZE_MAX;
  Json last = Json::array();
  for (;;) {
    Json servers = getJson(context, "/v1/servers");
    last = Json::array();
    std::size_t settled = 0;
    for (const auto& s : servers) {
      if (!names.count(text(s, "name"))) continue;
      last.push_back(s);
      const std::string state = text(s, "state");
      const bool off = text(s, "power") == "off";
      if (state == "unplaceable" || state == "failed" || (off ? state == "stopped" : state == "running")) ++settled;
    }
    const bool done = settled == last.size();
    if (settled != lastSettled || done) {
      if (live || !table || settled != lastSettled) {
        std::string line = "servers settled: " + std::to_string(settled) + "/" + std::to_string(last.size());
        if (live)
          progress << "\r\033[K" << line << std::flush;
        else if (table || done)
          progress << line << "\n";
      }
      lastSettled = settled;
    }
    if (done) break;
    if (interruptRequested()) {
      if (live) progress << "\n";
      throw CommandError("stopped waiting (the changes are applied; the servers carry on settling)", 130);
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      if (live) progress << "\n";
      std::string waiting;
      for (const auto& s : last) {
        const std::string state = text(s, "state");
        if (state != "running" && state != "stopped" && state != "unplaceable" && state != "failed")
          waiting += (waiting.empty() ? "" : ", ") + text(s, "name") + " (" + state + ")";
      }
      throw CommandError("timed out after " + std::to_string(timeoutSeconds) + " s with " +
                         std::to_string(lastSettled) + " of " + std::to_string(last.size()) +
                         " servers settled; still waiting for " + waiting);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  if (live) progress << "\n";
  std::vector<std::string> bad;
  for (const auto& s : last) {
    const std::string state = text(s, "state");
    if (state != "unplaceable" && state != "failed") continue;
    progress << styled(state, Style::Bad, context.color && table) << " " << text(s, "name") << ": " << text(s, "reason")
             << "\n";
    bad.push_back(text(s, "name") + " " + state + (s.contains("reason") ? ": " + text(s, "reason") : ""));
  }
  if (!bad.empty()) {
    std::string message = countOf(bad.size(), "server", "servers") + " did not start: ";
    for (std::size_t i = 0; i < bad.size(); ++i) message += (i ? "; " : "") + bad[i];
    throw CommandError(message);
  }
}

// `apply` and `delete` share their shape: check the files here (errors with their
// lines), show what would change, ask on a terminal, then change it.
void runChange(Context& context, const ChangeOptions& options, bool isDelete) {
  // No local gate: the controller validates the files together with what is applied
  // already (servers.yaml may name pools applied last week), and answers with
  // FILE:LINE:COL diagnostics. Read here only to know which servers to wait for.
  auto local = config::loadDeclarationFiles(options.files);
  // One body, so the change is one transaction; where each file starts in it is kept to
  // point the controller's "request:LINE:COL" diagnostics back into the right file.
  std::string body;
  std::vector<std::pair<long, std::string>> starts;  // first line of each file in `body`
  for (const auto& f : options.files) {
    if (!body.empty()) body += "\n---\n";
    starts.emplace_back(1 + std::count(body.begin(), body.end(), '\n'), f);
    body += readFile(f);
  }
  const std::string source = options.files.size() == 1 ? options.files[0] : "request";
  const std::string path = isDelete ? "/v1/delete" : "/v1/apply";
  auto target = [&](bool dry) {
    std::string query = "source=" + urlEncode(source);
    if (dry) query += std::string(query.empty() ? "" : "&") + "dry_run=1";
    return path + (query.empty() ? "" : "?" + query);
  };
  ApiRequest request;
  request.method = "POST";
  request.body = body;
  request.feature = isDelete ? "delete" : "";
  if (options.files.size() > 1) {
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
    if (table)
      printDiff(context, preview);
    else if (options.dryRun)
      printStructured(context, preview);
    if (options.dryRun) {
      if (table) *context.out << "dry run: nothing changed\n";
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
    *context.out << (isDelete ? "deleted\n" : "applied\n");
  } else {
    printStructured(context, reply);
  }
  if (isDelete || options.noWait) return;
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
  waitForServers(context, names, options.timeoutSeconds);
}

void addChangeCommand(CLI::App& app, Context& context, bool isDelete) {
  auto options = std::make_shared<ChangeOptions>();
  CLI::App* cmd =
      isDelete
          ? app.add_subcommand("delete", "Remove the objects declared in files from the controller (prints what goes)")
          : app.add_subcommand("apply",
                               "Send declarations to the controller: prints the diff and placements, asks on a "
                               "terminal, then waits for the servers to settle");
  cmd->add_option("-f,--file", options->files, "Declaration file (YAML, multi-document); repeat for several")
      ->required()
      ->check(CLI::ExistingFile)
      ->type_name("FILE");
  cmd->add_flag("--dry-run", options->dryRun, "Show what would change; change nothing");
  cmd->add_flag("-y,--yes", options->yes, "Do not ask for confirmation");
  if (!isDelete) {
    cmd->add_flag("--no-wait", options->noWait, "Return once applied, without waiting for the servers");
    cmd->add_option("--timeout", options->timeoutSeconds, "Seconds to wait for the servers to settle")
        ->capture_default_str()
        ->check(CLI::PositiveNumber)
        ->type_name("SECONDS");
  }
  cmd->callback([&context, options, isDelete] { runChange(context, *options, isDelete); });
}

// --- blade / server / pool ---------------------------------------------------------------

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
  cmd->add_option("NAME", name, "The " + noun + "'s name")->required()->type_name("NAME");
}

void registerBlade(CLI::App& app, Context& context) {
  CLI::App* blade = app.add_subcommand("blade", "Blades of the fabric: list, show, drain, undrain, retire, fence");
  blade->require_subcommand(1);

  auto filter = std::make_shared<ListFilter>();
  CLI::App* list = blade->add_subcommand("list", "List blades (chassis, slot, size, hypervisor, state, pool, servers)");
  addFilterOptions(list, *filter, true);
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
    const bool final = std::string(a.verb) == "retire";
    // Retiring cannot be undone: asked on a terminal, like apply (never from a script).
    if (final) cmd->add_flag("-y,--yes", *yes, "Do not ask for confirmation");
    cmd->callback([&context, name, a, yes, final] {
      if (final && !*yes && onTerminal(STDIN_FILENO) &&
          !confirm(context, "Retire blade " + *name + "? It will take no servers again."))
        throw CommandError("not retired");
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
  CLI::App* server = app.add_subcommand("server", "Logical servers: list, show, start, stop, move");
  server->require_subcommand(1);

  auto filter = std::make_shared<ListFilter>();
  CLI::App* list = server->add_subcommand("list", "List servers (partition, pool, blade, state, size, identity)");
  addFilterOptions(list, *filter, true);
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
    CLI::App* cmd = server->add_subcommand(
        verb, std::string(verb == std::string("start") ? "Start" : "Stop") + " a server (sets its desired power)");
    addNameArgument(cmd, *name, "server");
    cmd->callback([&context, name, v = std::string(verb)] {
      ApiRequest r;
      r.method = "POST";
      r.target = "/v1/servers/" + pathName(*name) + "/" + v;
      show(context, requestJson(context, r), [&](const Json& j) { serverTable(context, Json::array({j})); });
    });
  }

  auto to = std::make_shared<std::string>();
  CLI::App* move = server->add_subcommand("move", "Move a server to another blade of its pool");
  addNameArgument(move, *name, "server");
  move->add_option("--to", *to, "The blade to move it to")->required()->type_name("BLADE");
  move->callback([&context, name, to] {
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
  });
}

void registerPool(CLI::App& app, Context& context) {
  CLI::App* pool = app.add_subcommand("pool", "Pools: list, show");
  pool->require_subcommand(1);

  auto filter = std::make_shared<ListFilter>();
  CLI::App* list =
      pool->add_subcommand("list", "List pools (partition, hypervisor, blades, spares, failover, servers)");
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

// --- events ------------------------------------------------------------------------------

std::string clockTime(const Json& e) {
  if (!e.contains("time_ms") || !e["time_ms"].is_number()) return "-";
  const std::time_t t = static_cast<std::time_t>(e["time_ms"].get<std::int64_t>() / 1000);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

void printEventLine(Context& context, const Json& e) {
  std::string subject;
  if (!e.value("blade", std::string()).empty()) subject += e["blade"].get<std::string>();
  if (!e.value("server", std::string()).empty())
    subject += (subject.empty() ? "" : "/") + e["server"].get<std::string>();
  const std::string level = text(e, "level");
  const Style style = level == "error"                        ? Style::Bad
                      : level == "warning" || level == "warn" ? Style::Warning
                                                              : Style::Dim;
  *context.out << text(e, "id") << "  " << clockTime(e) << "  " << styled(level, style, context.color) << "  "
               << (subject.empty() ? "" : styled(subject, Style::Bold, context.color) + ": ") << text(e, "message")
               << "\n";
}

void registerEvents(CLI::App& app, Context& context) {
  struct Options {
    bool follow = false;
    std::uint64_t since = 0;
    std::uint64_t limit = 1000;
  };
  auto options = std::make_shared<Options>();
  CLI::App* events = app.add_subcommand("events", "Controller events (applies, blade and server changes, failures)");
  events->add_flag("-f,--follow", options->follow,
                   "Keep printing new events until Ctrl-C (with -o json: one object per line)");
  events->add_option("--since", options->since, "Only events after this id")->type_name("ID");
  events->add_option("--limit", options->limit, "At most this many events per request")
      ->capture_default_str()
      ->type_name("N");
  events->callback([&context, options] {
    std::uint64_t since = options->since;
    if (!options->follow) {
      Json list =
          getJson(context, "/v1/events?since=" + std::to_string(since) + "&limit=" + std::to_string(options->limit));
      show(context, list, [&](const Json& l) {
        for (const auto& e : l) printEventLine(context, e);
      });
      return;
    }
    // Ctrl-C ends the follow between polls (and, in the shell, only the follow).
    clearInterrupt();
    auto previous = std::signal(SIGINT, [](int) { requestInterrupt(); });
    try {
      bool first = true;
      while (!interruptRequested()) {
        ApiRequest r;
        // Short long-polls: a Ctrl-C is noticed within seconds.
        r.target = "/v1/events?since=" + std::to_string(since) + "&limit=" + std::to_string(options->limit) +
                   (first ? "" : "&wait=2");
        r.timeout = std::chrono::seconds(30);
        first = false;
        Json list = requestJson(context, r);
        for (const auto& e : list) {
          since = std::max<std::uint64_t>(since, e.value("id", std::uint64_t{0}));
          if (context.output == OutputFormat::Table)
            printEventLine(context, e);
          else
            *context.out << e.dump() << "\n";  // one JSON object per line: a stream
        }
        context.out->flush();
      }
    } catch (...) {
      std::signal(SIGINT, previous);
      throw;
    }
    std::signal(SIGINT, previous);
  });
}

// --- capacity ----------------------------------------------------------------------------

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

// --- fabric ------------------------------------------------------------------------------

bool utf8Terminal() {
  for (const char* var : {"LC_ALL", "LC_CTYPE", "LANG"}) {
    const char* v = std::getenv(var);
    if (v && *v) {
      std::string s = v;
      std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      return s.find("utf-8") != std::string::npos || s.find("utf8") != std::string::npos;
    }
  }
  return false;
}

// The front view of each enclosure: rows of `perRow` slots, a box per slot with the
// blade's name, state (coloured) and pool; an empty slot is drawn empty.
void drawFabric(Context& context, const Json& blades, int perRow) {
  // Wide enough for "maintenance" and the longest name or pool, within reason.
  std::size_t inner = 11;
  for (const auto& b : blades)
    for (const char* key : {"name", "pool"}) inner = std::max(inner, std::min<std::size_t>(text(b, key).size(), 18));
  // On a terminal too narrow for the row, fewer slots per row rather than wrapped boxes.
  if (perRow <= 0) {
    perRow = 8;
    winsize size{};
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0)
      while (perRow > 2 && static_cast<std::size_t>(perRow) * (inner + 3) + 1 > size.ws_col) perRow /= 2;
  }
  const bool unicode = utf8Terminal();
  const std::string h = unicode ? "─" : "-", v = unicode ? "│" : "|";
  auto corner = [&](int row, int col) -> std::string {  // row: 0 top, 1 middle, 2 bottom; col: 0 left, 1 inner, 2 right
    if (!unicode) return "+";
    static const char* kCorners[3][3] = {{"┌", "┬", "┐"}, {"├", "┼", "┤"}, {"└", "┴", "┘"}};
    return kCorners[row][col];
  };
  std::map<std::string, std::map<int, Json>> chassis;
  std::vector<Json> unslotted;
  for (const auto& b : blades) {
    const std::string c = text(b, "chassis");
    const int slot = b.contains("slot") && b["slot"].is_number_integer() ? b["slot"].get<int>() : 0;
    if (slot <= 0)
      unslotted.push_back(b);
    else
      chassis[c == "-" ? "(no chassis)" : c][slot] = b;
  }
  auto& out = *context.out;
  auto fit = [&](const std::string& s) { return s.size() > inner ? s.substr(0, inner - 1) + "~" : s; };
  auto cellLine = [&](const std::string& plain, Style style) {
    const std::string s = fit(plain);
    return " " + styled(s, style, context.color) + std::string(inner - s.size(), ' ') + " ";
  };
  bool firstChassis = true;
  for (const auto& [name, slots] : chassis) {
    const int highest = slots.rbegin()->first;
    const int count = std::max(perRow, (highest + perRow - 1) / perRow * perRow);
    std::size_t active = 0;
    for (const auto& [slot, b] : slots) active += text(b, "state") != "failed";
    if (!firstChassis) out << "\n";
    firstChassis = false;
    out << styled("chassis " + name, Style::Bold, context.color) << "  (" << countOf(slots.size(), "blade", "blades")
        << ", " << count << " slots)\n";
    for (int rowStart = 1; rowStart <= count; rowStart += perRow) {
      const int rowEnd = std::min(count, rowStart + perRow - 1);
      auto border = [&](int which) {
        std::string line = corner(which, 0);
        for (int s = rowStart; s <= rowEnd; ++s) {
          for (std::size_t i = 0; i < inner + 2; ++i) line += h;
          line += s == rowEnd ? corner(which, 2) : corner(which, 1);
        }
        out << line << "\n";
      };
      border(0);
      for (int line = 0; line < 5; ++line) {
        std::string row = v;
        for (int s = rowStart; s <= rowEnd; ++s) {
          auto it = slots.find(s);
          if (line == 0) {
            row += cellLine("slot " + std::to_string(s), Style::Dim);
          } else if (it == slots.end()) {
            row += cellLine(line == 2 ? "(empty)" : "", Style::Dim);
          } else {
            const Json& b = it->second;
            if (line == 1)
              row += cellLine(text(b, "name"), Style::Bold);
            else if (line == 2)
              row += cellLine(text(b, "state"), styleForState(text(b, "state")));
            else if (line == 3)
              row += cellLine(text(b, "pool") == "-" ? "no pool" : text(b, "pool"), Style::Plain);
            else
              row += cellLine(countOf(countField(b, "servers"), "server", "servers"), Style::Plain);
          }
          row += v;
        }
        out << row << "\n";
      }
      border(2);
    }
  }
  if (!unslotted.empty()) {
    out << (chassis.empty() ? "" : "\n") << styled("blades without a slot", Style::Bold, context.color) << "\n";
    bladeTable(context, unslotted);
  }
  if (blades.empty()) out << "no blades have registered\n";
}

void registerFabric(CLI::App& app, Context& context) {
  auto perRow = std::make_shared<int>(0);  // 0: 8, or fewer if the terminal is narrow
  auto filter = std::make_shared<ListFilter>();
  CLI::App* cmd = app.add_subcommand("fabric",
                                     "Draw each chassis as the front of its enclosure: a box per slot with its "
                                     "blade, state and pool");
  cmd->add_option("--chassis", filter->chassis, "Only this chassis")->type_name("CHASSIS");
  cmd->add_option("--per-row", *perRow, "Slots per row (default 8, fewer on a narrow terminal)")
      ->check(CLI::Range(1, 32))
      ->type_name("N");
  cmd->callback([&context, perRow, filter] {
    Json blades = filtered(context, getJson(context, "/v1/blades"), *filter);
    show(context, blades, [&](const Json& j) { drawFabric(context, j, *perRow); });
  });
}

}  // namespace

void registerApiCommands(CLI::App& app, Context& context) {
  addChangeCommand(app, context, false);
  addChangeCommand(app, context, true);
  registerBlade(app, context);
  registerServer(app, context);
  registerPool(app, context);
  registerEvents(app, context);
  registerCapacity(app, context);
  registerFabric(app, context);
}

}  // namespace loom::loomctl
