// What every loomctl command shares: the global options, where output goes, and how
// a command reports failure.
#pragma once

#include <iostream>
#include <stdexcept>
#include <string>

namespace loom::loomctl {

enum class OutputFormat { Table, Json, Yaml };

struct Context {
  std::string controller = "http://127.0.0.1:7780";  // --controller, $LOOM_CONTROLLER, or the config file
  std::string token;                                 // --token, $LOOM_TOKEN, or the config file
  std::string ca;                                    // --ca, $LOOM_CA, or the config file's `ca:`
  std::string outputName = "table";                  // -o as given; `output` once parsed
  OutputFormat output = OutputFormat::Table;
  bool color = false;  // stdout is a terminal and NO_COLOR is unset (decided once, in main)
  std::ostream* out = &std::cout;
  std::ostream* err = &std::cerr;
  int exitCode = 0;      // what main returns once the command has run
  bool inShell = false;  // running a line of `loomctl shell` (no nested shell)
};

// Ctrl-C while a long command runs inside `loomctl shell` (or `events --follow`): the
// SIGINT handler sets it, loops that wait (apply progress, follow) poll it and stop, so
// the shell survives. Async-signal-safe: a lock-free atomic flag.
void requestInterrupt();
bool interruptRequested();
void clearInterrupt();

// The -o value as a format; throws CommandError for anything else.
OutputFormat parseOutputFormat(const std::string& name);

// Whether colour belongs on `fd`: a terminal, NO_COLOR unset or empty, TERM not "dumb".
bool colorWanted(int fd);

// A command's failure: main prints "loomctl: MESSAGE" as one line on stderr and exits
// with `exitCode`. For the expected failures (controller unreachable, unknown name, bad
// input); a command that has already printed its own diagnostics sets
// Context::exitCode instead.
class CommandError : public std::runtime_error {
 public:
  explicit CommandError(const std::string& message, int exitCode = 1)
      : std::runtime_error(message), exitCode_(exitCode) {}
  int exitCode() const { return exitCode_; }

 private:
  int exitCode_;
};

}  // namespace loom::loomctl
