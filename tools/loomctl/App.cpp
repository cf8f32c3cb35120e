#include "tools/loomctl/App.h"

#include <unistd.h>

#include <algorithm>
#include <iostream>

#include "config/Spelling.h"
#include "tools/loomctl/Commands.h"
#include "tools/loomctl/Credentials.h"
#include "tools/loomctl/HttpClient.h"

namespace loom::loomctl {
namespace {

// CLI11's message, or for a word that is no command, what it is and the closest one.
std::string parseErrorMessage(const CLI::App& app, const CLI::ParseError& error) {
  // The deepest command that was selected is where the unknown word was typed.
  const CLI::App* where = &app;
  for (;;) {
    auto subs = where->get_subcommands();
    if (subs.empty()) break;
    where = subs.front();
  }
  // An unknown word may be left over on the command or, having fallen through, above it.
  auto remaining = where->remaining();
  if (remaining.empty()) remaining = app.remaining();
  if (where->get_subcommands([](const CLI::App*) { return true; }).size() > 0 && !remaining.empty() &&
      !remaining.front().starts_with("-")) {
    std::vector<std::string> names;
    for (const CLI::App* sub : where->get_subcommands([](const CLI::App*) { return true; }))
      if (!sub->get_group().empty()) names.push_back(sub->get_name());
    std::string message = "unknown command '" + remaining.front() + "'";
    if (where != &app) message = "unknown " + where->get_name() + " command '" + remaining.front() + "'";
    if (auto near = loom::config::closestMatch(remaining.front(), names)) message += " (did you mean '" + *near + "'?)";
    return message;
  }
  auto subs = where->get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); });
  if (!subs.empty() && where != &app) {
    std::string message = where->get_name() + " needs a command:";
    for (std::size_t i = 0; i < subs.size(); ++i) message += (i ? ", " : " ") + subs[i]->get_name();
    return message;
  }
  return error.what();
}

// "loomctl server move": the deepest command selected, whose --help a usage error points at.
std::string commandPath(const CLI::App& app) {
  std::string path = "loomctl";
  const CLI::App* where = &app;
  for (;;) {
    auto subs = where->get_subcommands();
    if (subs.empty()) break;
    where = subs.front();
    path += " " + where->get_name();
  }
  return path;
}

}  // namespace

std::unique_ptr<CLI::App> buildApp(Context& context) {
  auto app = std::make_unique<CLI::App>("loomctl: show and drive a Loom blade fabric (pools, blades, logical servers)");
  app->name("loomctl");
  app->set_version_flag("--version", "loomctl 0.1.0");
  // Global options may follow the command too (`loomctl blade list -o json`).
  app->fallthrough();
  app->require_subcommand(1);
  app->add_option("--controller", context.controller,
                  "loomd API URL (http:// or https://); or every replica's, comma-separated (the leader is found)")
      ->envname("LOOM_CONTROLLER")
      ->capture_default_str()
      ->type_name("URL");
  auto* token = app->add_option("--token", context.token,
                                "API token (loom_ID_SECRET; see `loomctl token create`, `loomctl login`)")
                    ->envname("LOOM_TOKEN")
                    ->type_name("TOKEN");
  auto* ca = app->add_option("--ca", context.ca,
                             "CA certificate (PEM) an https:// controller's certificate must chain to, and name its "
                             "host (default: the system's CAs); `loomd keygen --tls` makes a lab's")
                 ->envname("LOOM_CA")
                 ->type_name("FILE");
  app->add_option("-o,--output", context.outputName, "Output format: table, json or yaml")
      ->check(CLI::IsMember({"table", "json", "yaml"}))
      ->capture_default_str()
      ->type_name("FORMAT");
  app->footer(
      "Run 'loomctl COMMAND --help' for a command's options. The controller URL, token and CA come from "
      "--controller/--token/--ca, then LOOM_CONTROLLER/LOOM_TOKEN/LOOM_CA, then ~/.config/loom/loomctl.yaml (loomctl "
      "login).");
  // Parsed options are applied before any command runs.
  auto* controller = app->get_option("--controller");
  app->parse_complete_callback([&context, controller, token, ca] {
    // Each of URL, token and CA: the option, its environment variable, the login file. A
    // shell's line keeps what the shell was started with, unless the line says otherwise.
    if (context.inShell)
      resolveCredentials(context, true, true, true);
    else
      resolveCredentials(context, controller->count() > 0, token->count() > 0, ca->count() > 0);
    trustCertificateAuthority(context.ca);
    context.output = parseOutputFormat(context.outputName);
    context.color = context.output == OutputFormat::Table && colorWanted(STDOUT_FILENO);
  });

  // The command table, in the order `--help` lists it.
  registerOfflineCommands(*app, context);  // validate, plan
  registerChangeCommands(*app, context);   // apply, delete
  registerGet(*app, context);
  registerBlade(*app, context);
  registerServer(*app, context);
  registerPool(*app, context);
  registerDeclaredNouns(*app, context);  // partition, network, identity
  registerEvents(*app, context);
  registerCapacity(*app, context);
  registerFabric(*app, context);
  registerStatus(*app, context);
  registerAccess(*app, context);  // token, audit, login, whoami

  CLI::App* shell = app->add_subcommand("shell", "Interactive shell: the same commands, history, tab completion");
  shell->callback([&context] {
    if (context.inShell) throw CommandError("already in the shell");
    context.exitCode = runShell(context);
  });
  return app;
}

int runCommand(const std::vector<std::string>& args, Context& context) {
  auto app = buildApp(context);
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them last-first
  try {
    app->parse(reversed);
  } catch (const CLI::CallForHelp& e) {
    return app->exit(e, *context.out, *context.err);
  } catch (const CLI::CallForAllHelp& e) {
    return app->exit(e, *context.out, *context.err);
  } catch (const CLI::CallForVersion& e) {
    return app->exit(e, *context.out, *context.err);
  } catch (const CLI::ParseError& e) {
    *context.err << "loomctl: " << parseErrorMessage(*app, e) << " (run '" << commandPath(*app) << " --help')\n";
    return 2;  // usage errors, as most shell tools report them
  } catch (const CommandError& e) {
    context.out->flush();
    *context.err << "loomctl: " << e.what();
    // A usage error found by the command itself (a filter that can never match, a
    // missing confirmation) points at the command's help too.
    if (e.exitCode() == 2) *context.err << " (run '" << commandPath(*app) << " --help')";
    *context.err << '\n';
    return e.exitCode();
  } catch (const std::exception& e) {
    context.out->flush();
    *context.err << "loomctl: " << e.what() << '\n';
    return 1;
  }
  return context.exitCode;
}

bool splitWords(const std::string& line, std::vector<std::string>& words, bool* trailingBlank) {
  words.clear();
  std::string current;
  bool inWord = false;
  char quote = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quote) {
      if (c == quote)
        quote = 0;
      else if (c == '\\' && quote == '"' && i + 1 < line.size())
        current += line[++i];
      else
        current += c;
    } else if (c == '\'' || c == '"') {
      quote = c;
      inWord = true;
    } else if (c == '\\' && i + 1 < line.size()) {
      current += line[++i];
      inWord = true;
    } else if (c == ' ' || c == '\t' || c == '\n') {
      if (inWord) words.push_back(current);
      current.clear();
      inWord = false;
    } else {
      current += c;
      inWord = true;
    }
  }
  if (inWord) words.push_back(current);
  if (trailingBlank) *trailingBlank = !inWord && !quote;
  return quote == 0;
}

}  // namespace loom::loomctl
