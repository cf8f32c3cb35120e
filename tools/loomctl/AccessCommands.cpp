// `token create|list|revoke`, `audit [-f]`, `login`, `whoami`: loomd's access (DESIGN.md
// section 8; controller/README.md, "Access"). Tokens and the audit log are an admin's.
#include <algorithm>
#include <csignal>
#include <ctime>
#include <iostream>
#include <memory>

#include "tools/loomctl/Api.h"
#include "tools/loomctl/Commands.h"
#include "tools/loomctl/Credentials.h"
#include "tools/loomctl/HttpClient.h"
#include "tools/loomctl/Views.h"

namespace loom::loomctl {
namespace {

std::string clockTime(const Json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_number()) return "-";
  const auto t = static_cast<std::time_t>(j[key].get<std::int64_t>() / 1000);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// "30d", "12h", "90m", "45s", or plain seconds -> seconds; throws on anything else.
std::int64_t parseTtl(const std::string& text) {
  if (text.empty()) throw CommandError("--ttl wants a duration such as 30d, 12h, 90m or 3600s", 2);
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  const std::string unit = text.substr(digits);
  if (digits == 0 || digits > 9 || unit.size() > 1)
    throw CommandError("--ttl '" + text + "': want a duration such as 30d, 12h, 90m or 3600s", 2);
  const std::int64_t n = std::stoll(text.substr(0, digits));
  const std::int64_t scale = unit.empty() || unit == "s" ? 1
                             : unit == "m"               ? 60
                             : unit == "h"               ? 3600
                             : unit == "d"               ? 86400
                                                         : 0;
  if (scale == 0 || n == 0)
    throw CommandError("--ttl '" + text + "': want a duration such as 30d, 12h, 90m or 3600s", 2);
  return n * scale;
}

void tokenTable(Context& context, const Json& list) {
  Table t({{"id"}, {"role"}, {"partition"}, {"state"}, {"created"}, {"expires"}, {"description"}});
  for (const auto& k : list) {
    const std::string state = text(k, "state");
    t.addRow({text(k, "id"), text(k, "role"), text(k, "partition"),
              Cell(state, state == "active" ? Style::Good : Style::Dim), clockTime(k, "created_ms"),
              k.contains("expires_ms") && k["expires_ms"].is_number() ? clockTime(k, "expires_ms") : "never",
              text(k, "description")});
  }
  t.render(*context.out, context.color);
}

void printAuditLine(Context& context, const Json& a) {
  const int status = a.value("status", 0);
  const Style style = status >= 400 ? Style::Bad : Style::Good;
  std::string who = a.value("token", std::string());
  who = who.empty() ? "(no token)" : who + " (" + a.value("role", std::string()) + ")";
  *context.out << text(a, "id") << "  " << clockTime(a, "time_ms") << "  "
               << styled(std::to_string(status), style, context.color) << "  " << who << "  from " << text(a, "source")
               << "  " << text(a, "method") << " " << text(a, "path");
  if (!a.value("targets", std::string()).empty()) *context.out << "  [" << a["targets"].get<std::string>() << "]";
  *context.out << "  " << text(a, "outcome") << "\n";
}

void registerToken(CLI::App& app, Context& context) {
  CLI::App* token = app.add_subcommand("token", "API tokens: create, list, revoke (admin)");
  token->require_subcommand(1);

  struct CreateOptions {
    std::string role, partition, ttl, description;
  };
  auto create = std::make_shared<CreateOptions>();
  CLI::App* c = token->add_subcommand("create", "Make a token; its secret is printed once");
  c->add_option("--role", create->role, "admin, operator, reader, partition-admin or partition-reader")
      ->required()
      ->check(CLI::IsMember({"admin", "operator", "reader", "partition-admin", "partition-reader"}))
      ->type_name("ROLE");
  c->add_option("--partition", create->partition, "The partition of a partition-admin or partition-reader")
      ->type_name("NAME");
  c->add_option("--ttl", create->ttl, "Expires after this long: 30d, 12h, 90m, 3600s (default: never)")
      ->type_name("DURATION");
  c->add_option("--description", create->description, "Who or what it is for")->type_name("TEXT");
  c->callback([&context, create] {
    Json body{{"role", create->role}};
    if (!create->partition.empty()) body["partition"] = create->partition;
    if (!create->ttl.empty()) body["ttl_seconds"] = parseTtl(create->ttl);
    if (!create->description.empty()) body["description"] = create->description;
    ApiRequest r;
    r.method = "POST";
    r.target = "/v1/tokens";
    r.body = body.dump();
    r.contentType = "application/json";
    r.feature = "tokens";
    Json made = requestJson(context, r);
    show(context, made, [&](const Json& m) {
      *context.out << text(m, "token") << "\n";
      *context.err << "token " << text(m, "id") << " (" << text(m, "role")
                   << (m.value("partition", std::string()).empty() ? "" : " of partition " + text(m, "partition"))
                   << "): its secret is shown this once; keep it (loomctl login, LOOM_TOKEN)\n";
    });
  });

  CLI::App* list = token->add_subcommand("list", "Every token: id, role, partition, state, expiry (never a secret)");
  list->callback([&context] {
    Json tokens = getJson(context, "/v1/tokens", "tokens");
    show(context, tokens, [&](const Json& l) { tokenTable(context, l); });
  });

  auto id = std::make_shared<std::string>();
  CLI::App* revoke = token->add_subcommand("revoke", "Revoke a token: refused from the next request on");
  revoke->add_option("ID", *id, "The token's id (loomctl token list)")->required()->type_name("");
  revoke->callback([&context, id] {
    ApiRequest r;
    r.method = "POST";
    r.target = "/v1/tokens/" + urlEncode(*id) + "/revoke";
    r.contentType = "application/json";
    r.feature = "tokens";
    Json t = requestJson(context, r);
    show(context, t, [&](const Json& k) { *context.out << "token " << text(k, "id") << " revoked\n"; });
  });
}

void registerAudit(CLI::App& app, Context& context) {
  struct Options {
    bool follow = false;
    std::uint64_t since = 0;
    std::uint64_t limit = 1000;
    std::string token;
  };
  auto options = std::make_shared<Options>();
  CLI::App* audit = app.add_subcommand(
      "audit", "The audit log: every change and every refused request, who, from where, what (admin)");
  audit->add_flag("-f,--follow", options->follow,
                  "Keep printing new records until Ctrl-C (with -o json: one per line)");
  audit
      ->add_option("--token", options->token,
                   "Only this token id's records (the API token itself then goes before the command or in "
                   "LOOM_TOKEN)")
      ->type_name("ID");
  audit->add_option("--since", options->since, "Only records after this id")->type_name("ID");
  audit->add_option("--limit", options->limit, "At most this many records per request")
      ->capture_default_str()
      ->type_name("N");
  audit->callback([&context, options] {
    auto target = [&](std::uint64_t since, bool wait) {
      return "/v1/audit?since=" + std::to_string(since) + "&limit=" + std::to_string(options->limit) +
             (options->token.empty() ? "" : "&token=" + urlEncode(options->token)) + (wait ? "&wait=2" : "");
    };
    std::uint64_t since = options->since;
    if (!options->follow) {
      Json list = getJson(context, target(since, false), "the audit log");
      show(context, list, [&](const Json& l) {
        for (const auto& a : l) printAuditLine(context, a);
      });
      return;
    }
    clearInterrupt();
    auto previous = std::signal(SIGINT, [](int) { requestInterrupt(); });
    try {
      bool first = true;
      while (!interruptRequested()) {
        ApiRequest r;
        r.target = target(since, !first);
        r.timeout = std::chrono::seconds(30);
        r.feature = "the audit log";
        first = false;
        Json list = requestJson(context, r);
        for (const auto& a : list) {
          since = std::max<std::uint64_t>(since, a.value("id", std::uint64_t{0}));
          if (context.output == OutputFormat::Table)
            printAuditLine(context, a);
          else
            *context.out << a.dump() << "\n";
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

void registerLogin(CLI::App& app, Context& context) {
  CLI::App* login = app.add_subcommand(
      "login",
      "Check a token against the controller and keep both (and --ca) in ~/.config/loom/loomctl.yaml (0600); "
      "the token from --token or LOOM_TOKEN, else read from stdin");
  login->callback([&context] {
    if (context.token.empty() || context.token == readLoginConfig(loginConfigPath()).value_or(LoginConfig{}).token) {
      // Not given on the line: one line from stdin (`loomctl login < admin.token`).
      std::string line;
      if (onTerminal(0)) *context.err << "token: " << std::flush;
      if (std::getline(std::cin, line)) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
        if (!line.empty()) context.token = line;
      }
    }
    if (context.token.empty()) throw CommandError("login needs a token: --token, LOOM_TOKEN, or one line on stdin", 2);
    setBearerToken(context.token);
    Json who = getJson(context, "/v1/whoami", "tokens");
    const std::string path = loginConfigPath();
    writeLoginConfig(path, LoginConfig{context.controller, context.token, context.ca});
    *context.out << "logged in to " << context.controller << " as token " << text(who, "token") << " ("
                 << text(who, "role")
                 << (who.value("partition", Json()).is_string() ? " of partition " + text(who, "partition") : "")
                 << "); wrote " << path << "\n";
  });
}

void registerWhoami(CLI::App& app, Context& context) {
  CLI::App* whoami = app.add_subcommand("whoami", "The token this loomctl uses: its id, role and partition");
  whoami->callback([&context] {
    Json who = getJson(context, "/v1/whoami", "tokens");
    show(context, who, [&](const Json& w) { printBlock(context, w); });
  });
}

}  // namespace

void registerAccess(CLI::App& app, Context& context) {
  registerToken(app, context);
  registerAudit(app, context);
  registerLogin(app, context);
  registerWhoami(app, context);
}

}  // namespace loom::loomctl
