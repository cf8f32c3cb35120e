// loomctl: the operator's shell tool. main() owns the global options and the error
// contract (one line on stderr, non-zero exit); the command groups do the rest.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "config/Spelling.h"
#include "tools/loomctl/Commands.h"
#include "tools/loomctl/Context.h"

namespace {

// CLI11's message, or for a word that is no command, what it is and the closest one.
std::string parseErrorMessage(const CLI::App& app, const CLI::ParseError& error) {
  const auto remaining = app.remaining();
  if (app.get_subcommands().empty() && !remaining.empty() && !remaining.front().starts_with("-")) {
    std::vector<std::string> names;
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) names.push_back(sub->get_name());
    std::string message = "unknown command '" + remaining.front() + "'";
    if (auto near = loom::config::closestMatch(remaining.front(), names)) message += " (did you mean '" + *near + "'?)";
    return message;
  }
  return error.what();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace loom::loomctl;
  Context context;

  CLI::App app{"loomctl: show and drive a Loom blade fabric (pools, blades, logical servers)"};
  app.name("loomctl");
  app.set_version_flag("--version", "loomctl 0.1.0");
  // Global options may follow the command too (`loomctl plan ... -o json`).
  app.fallthrough();
  app.require_subcommand(1);
  app.add_option("--controller", context.controller, "loomd API URL")
      ->envname("LOOM_CONTROLLER")
      ->capture_default_str()
      ->type_name("URL");
  app.add_option("-o,--output", context.outputName, "Output format: table, json or yaml")
      ->check(CLI::IsMember({"table", "json", "yaml"}))
      ->capture_default_str()
      ->type_name("FORMAT");
  app.footer("Run 'loomctl COMMAND --help' for a command's options.");
  // Parsed options are applied before any command runs.
  app.parse_complete_callback([&context] {
    context.output = parseOutputFormat(context.outputName);
    context.color = context.output == OutputFormat::Table && colorWanted(STDOUT_FILENO);
  });

  registerOfflineCommands(app, context);
  registerApiCommands(app, context);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "loomctl: " << parseErrorMessage(app, e) << " (see loomctl --help)\n";
    return 2;  // usage errors, as most shell tools report them
  } catch (const CommandError& e) {
    std::cerr << "loomctl: " << e.what() << '\n';
    return e.exitCode();
  } catch (const std::exception& e) {
    std::cerr << "loomctl: " << e.what() << '\n';
    return 1;
  }
  return context.exitCode;
}
