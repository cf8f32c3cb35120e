// What loomd and loom-agent share about their command lines: a --config FILE of
// `key: value` lines named after the long options (`#` starts a comment, a `[relay]`
// section holds a subcommand's options), where a key no option has is an error rather
// than silently ignored, and parse errors that name the file they came from.
#pragma once

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace loom {

inline void addConfigFile(CLI::App& app) {
  app.set_config("--config", "",
                 "configuration file: `key: value` lines named after the long options (`#` comments; "
                 "a subcommand's in its `[name]` section); an unknown key is an error");
  auto format = std::make_shared<CLI::ConfigBase>();
  format->valueSeparator(':');
  app.config_formatter(format);
  app.allow_config_extras(false);
}

// The exit code of a command line that does not parse.
inline constexpr int kUsageExit = 2;

// Parses the command line (and --config). Returns the exit code when the program should
// stop here (--help, or an error already printed), nothing when it should run.
inline std::optional<int> parseCommandLine(CLI::App& app, std::string_view program, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::ConfigError& e) {
    // CLI11 says "INI was not able to parse relay.bogus": the operator's question is
    // which file and which key.
    std::string what = e.what();
    constexpr std::string_view kExtra = "INI was not able to parse ";
    if (what.starts_with(kExtra)) what = "no option is named '" + what.substr(kExtra.size()) + "' (see --help)";
    const CLI::Option* config = app.get_config_ptr();
    const std::string file = config && config->count() ? config->as<std::string>() : std::string("--config");
    std::cerr << program << ": " << file << ": " << what << "\n";
    return kUsageExit;
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" that exit 0; every other is a usage error, exit 2
    // as loomctl's and most tools' are (CLI11's own codes, 105-120, mean nothing to a shell).
    return app.exit(e) == 0 ? 0 : kUsageExit;
  }
}

}  // namespace loom
