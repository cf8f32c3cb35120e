// The commands that talk to loomd's HTTP API: `apply`, `blade list|show|drain|undrain`,
// `server list|show|start|stop`, `pool list|show`, `events`. A tiny synchronous Beast
// client (one request per connection) is all a one-shot CLI needs; Beast stays in this
// one translation unit.
#include <fstream>
#include <sstream>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "config/Loader.h"
#include "tools/loomctl/Commands.h"
#include "tools/loomctl/Output.h"

namespace loom::loomctl {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;

struct HttpReply {
  int status = 0;
  std::string body;
};

// "http://host:port" -> (host, port)
std::pair<std::string, std::string> splitUrl(const std::string& url) {
  std::string rest = url;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  else if (rest.find("://") != std::string::npos) throw CommandError("controller URL '" + url + "': only http:// is supported");
  if (auto slash = rest.find('/'); slash != std::string::npos) rest = rest.substr(0, slash);
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos) return {rest, "80"};
  return {rest.substr(0, colon), rest.substr(colon + 1)};
}

HttpReply call(const Context& context, http::verb verb, const std::string& target, const std::string& body = "") {
  const auto [host, port] = splitUrl(context.controller);
  try {
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(120));
    stream.connect(resolver.resolve(host, port));
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, host);
    req.set(http::field::user_agent, "loomctl");
    if (!body.empty() || verb == http::verb::post) {
      req.set(http::field::content_type, "application/yaml");
      req.body() = body;
      req.prepare_payload();
    }
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::size_t{1} << 30);
    http::read(stream, buffer, parser);
    beast::error_code ec;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    return {static_cast<int>(parser.get().result_int()), parser.get().body()};
  } catch (const std::exception& e) {
    throw CommandError("cannot reach the controller at " + context.controller + ": " + e.what());
  }
}

// GET/POST that must succeed; the controller's {"error"} becomes the one-line message.
Json callJson(const Context& context, http::verb verb, const std::string& target, const std::string& body = "") {
  auto reply = call(context, verb, target, body);
  Json j = Json::parse(reply.body, nullptr, false);
  if (reply.status != 200) {
    std::string message = j.is_object() && j.contains("error") ? j["error"].get<std::string>() : "HTTP " + std::to_string(reply.status);
    if (j.is_object() && j.contains("diagnostics"))
      for (const auto& d : j["diagnostics"]) *context.err << d.get<std::string>() << "\n";
    throw CommandError(message);
  }
  if (j.is_discarded()) throw CommandError("the controller answered something that is not JSON");
  return j;
}

std::string text(const Json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return "-";
  if (j[key].is_string()) return j[key].get<std::string>();
  return j[key].dump();
}

std::string joined(const Json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_array() || j[key].empty()) return "-";
  std::string out;
  for (const auto& v : j[key]) out += (out.empty() ? "" : ",") + (v.is_string() ? v.get<std::string>() : v.dump());
  return out;
}

std::string memory(const Json& j) {
  if (!j.contains("memory_mib") || !j["memory_mib"].is_number()) return "-";
  const auto mib = j["memory_mib"].get<std::uint64_t>();
  return mib % 1024 == 0 ? std::to_string(mib / 1024) + "GiB" : std::to_string(mib) + "MiB";
}

void show(Context& context, const Json& value, const std::function<void(const Json&)>& table) {
  if (context.output == OutputFormat::Table) table(value);
  else printStructured(context, value);
}

void bladeTable(Context& context, const Json& list) {
  Table t({{"name"}, {"chassis"}, {"slot", Table::Align::Right}, {"cores", Table::Align::Right}, {"memory", Table::Align::Right},
           {"hypervisor"}, {"state"}, {"pool"}, {"servers"}});
  for (const auto& b : list)
    t.addRow({text(b, "name"), text(b, "chassis"), text(b, "slot"), text(b, "cores"), memory(b), text(b, "hypervisor"),
              Cell(text(b, "state"), styleForState(text(b, "state"))), text(b, "pool"), joined(b, "servers")});
  t.render(*context.out, context.color);
}

void serverTable(Context& context, const Json& list) {
  Table t({{"name"}, {"partition"}, {"pool"}, {"blade"}, {"state"}, {"vcpus", Table::Align::Right}, {"memory", Table::Align::Right},
           {"uuid"}, {"macs"}});
  for (const auto& s : list)
    t.addRow({text(s, "name"), text(s, "partition"), text(s, "pool"), text(s, "blade"),
              Cell(text(s, "state"), styleForState(text(s, "state"))), text(s, "vcpus"), memory(s), text(s, "uuid"), joined(s, "macs")});
  t.render(*context.out, context.color);
}

void poolTable(Context& context, const Json& list) {
  Table t({{"name"}, {"partition"}, {"hypervisor"}, {"blades"}, {"spares", Table::Align::Right}, {"failover"}, {"servers"}});
  for (const auto& p : list)
    t.addRow({text(p, "name"), text(p, "partition"), text(p, "hypervisor"), joined(p, "blades"), text(p, "spares"),
              text(p, "failover"), std::to_string(p.contains("servers") ? p["servers"].size() : 0)});
  t.render(*context.out, context.color);
}

Json asList(const Json& j) { return j.is_array() ? j : Json::array({j}); }

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw CommandError("cannot read '" + path + "'");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void runApply(Context& context, const std::vector<std::string>& files, bool dryRun) {
  // Checked here first, so errors point into the operator's own files with their lines.
  auto local = config::loadDeclarationFiles(files);
  if (!local.ok()) {
    for (const auto& d : local.diagnostics) *context.err << d.format() << "\n";
    throw CommandError("not applied: " + countOf(local.diagnostics.size(), "error", "errors") + " in the declarations");
  }
  std::string body;
  for (const auto& f : files) body += (body.empty() ? "" : "\n---\n") + readFile(f);
  const std::string source = files.size() == 1 ? files[0] : "request";
  std::string encoded;
  for (unsigned char c : source) {
    if (std::isalnum(c) || c == '.' || c == '-' || c == '_' || c == '/') encoded += static_cast<char>(c);
    else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      encoded += buf;
    }
  }
  Json reply = callJson(context, http::verb::post, "/v1/apply?source=" + encoded + (dryRun ? "&dry_run=1" : ""), body);
  show(context, reply, [&](const Json& r) {
    auto& out = *context.out;
    const Json& diff = r["diff"];
    for (const auto& c : diff["created"]) out << styled("+ ", Style::Good, context.color) << c.get<std::string>() << "\n";
    for (const auto& c : diff["changed"]) out << styled("~ ", Style::Notice, context.color) << c.get<std::string>() << "\n";
    out << diff["created"].size() << " created, " << diff["changed"].size() << " changed, " << text(diff, "unchanged") << " unchanged\n";
    const Json& plan = r["plan"];
    out << countOf(plan["placements"].size(), "server placed", "servers placed") << ", "
        << countOf(plan["steps"].size(), "step", "steps") << "\n";
    for (const auto& u : plan["unplaceable"])
      out << styled("unplaceable ", Style::Bad, context.color) << text(u, "server") << ": " << text(u, "reason") << "\n";
    for (const auto& w : plan["warnings"]) out << styled("warning ", Style::Warning, context.color) << w.get<std::string>() << "\n";
    out << (r.value("dry_run", false) ? "dry run: nothing changed\n" : "applied\n");
  });
}

}  // namespace

void registerApiCommands(CLI::App& app, Context& context) {
  // apply
  auto* apply = app.add_subcommand("apply", "send declarations to the controller (prints the diff and plan)");
  auto files = std::make_shared<std::vector<std::string>>();
  auto dryRun = std::make_shared<bool>(false);
  auto yes = std::make_shared<bool>(false);
  apply->add_option("-f,--file", *files, "declaration file (repeatable)")->required()->check(CLI::ExistingFile);
  apply->add_flag("--dry-run", *dryRun, "show the diff and plan, change nothing");
  apply->add_flag("--yes", *yes, "do not ask for confirmation");
  apply->callback([&context, files, dryRun] { runApply(context, *files, *dryRun); });

  // blade
  auto* blade = app.add_subcommand("blade", "blades of the fabric")->require_subcommand(1);
  blade->add_subcommand("list", "list blades")->callback([&context] {
    show(context, callJson(context, http::verb::get, "/v1/blades"), [&](const Json& j) { bladeTable(context, j); });
  });
  auto bladeName = std::make_shared<std::string>();
  auto* bladeShow = blade->add_subcommand("show", "one blade");
  bladeShow->add_option("NAME", *bladeName)->required();
  bladeShow->callback([&context, bladeName] {
    show(context, callJson(context, http::verb::get, "/v1/blades/" + *bladeName), [&](const Json& j) { bladeTable(context, asList(j)); });
  });
  for (const char* verb : {"drain", "undrain"}) {
    auto* cmd = blade->add_subcommand(verb, std::string(verb) + " a blade");
    cmd->add_option("NAME", *bladeName)->required();
    cmd->callback([&context, bladeName, v = std::string(verb)] {
      show(context, callJson(context, http::verb::post, "/v1/blades/" + *bladeName + "/" + v), [&](const Json& j) { bladeTable(context, asList(j)); });
    });
  }

  // server
  auto* server = app.add_subcommand("server", "logical servers")->require_subcommand(1);
  server->add_subcommand("list", "list servers")->callback([&context] {
    show(context, callJson(context, http::verb::get, "/v1/servers"), [&](const Json& j) { serverTable(context, j); });
  });
  auto serverName = std::make_shared<std::string>();
  auto* serverShow = server->add_subcommand("show", "one server");
  serverShow->add_option("NAME", *serverName)->required();
  serverShow->callback([&context, serverName] {
    show(context, callJson(context, http::verb::get, "/v1/servers/" + *serverName), [&](const Json& j) { serverTable(context, asList(j)); });
  });
  for (const char* verb : {"start", "stop"}) {
    auto* cmd = server->add_subcommand(verb, std::string(verb) + " a server (sets its desired power)");
    cmd->add_option("NAME", *serverName)->required();
    cmd->callback([&context, serverName, v = std::string(verb)] {
      show(context, callJson(context, http::verb::post, "/v1/servers/" + *serverName + "/" + v), [&](const Json& j) { serverTable(context, asList(j)); });
    });
  }

  // pool
  auto* pool = app.add_subcommand("pool", "pools")->require_subcommand(1);
  pool->add_subcommand("list", "list pools")->callback([&context] {
    show(context, callJson(context, http::verb::get, "/v1/pools"), [&](const Json& j) { poolTable(context, j); });
  });
  auto poolName = std::make_shared<std::string>();
  auto* poolShow = pool->add_subcommand("show", "one pool");
  poolShow->add_option("NAME", *poolName)->required();
  poolShow->callback([&context, poolName] {
    show(context, callJson(context, http::verb::get, "/v1/pools/" + *poolName), [&](const Json& j) { poolTable(context, asList(j)); });
  });

  // events
  auto* events = app.add_subcommand("events", "controller events");
  auto follow = std::make_shared<bool>(false);
  events->add_flag("--follow", *follow, "keep printing new events");
  events->callback([&context, follow] {
    std::uint64_t since = 0;
    do {
      Json list = callJson(context, http::verb::get, "/v1/events?since=" + std::to_string(since) + (*follow && since ? "&wait=30" : ""));
      for (const auto& e : list) {
        since = std::max<std::uint64_t>(since, e.value("id", std::uint64_t{0}));
        if (context.output == OutputFormat::Table)
          *context.out << text(e, "id") << "  " << text(e, "level") << "  " << (e.value("blade", "").empty() ? "" : e.value("blade", "") + ": ")
                       << (e.value("server", "").empty() ? "" : e.value("server", "") + ": ") << text(e, "message") << "\n";
        else *context.out << e.dump() << "\n";
      }
      context.out->flush();
    } while (*follow);
  });
}

}  // namespace loom::loomctl
