// The whole command tree, built in one place so the one-shot CLI, the interactive
// shell (a fresh tree per line: CLI11 keeps parsed state) and completion all see the
// same commands, options and help.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tools/loomctl/Context.h"

namespace loom::loomctl {

// The app with the global options and every command, bound to `context`. Options not
// given on the command line leave the context's values as they are, so the shell can
// carry its own --controller/-o into each line.
std::unique_ptr<CLI::App> buildApp(Context& context);

// Parses and runs `args` (without the program name). Every failure is reported as one
// "loomctl: ..." line on context.err and returned as the exit code; nothing escapes.
int runCommand(const std::vector<std::string>& args, Context& context);

// Shell-like splitting: blanks separate words, '...' and "..." quote, \ escapes.
// Returns false on an unterminated quote. `trailingBlank` tells the caller whether the
// line ends between words (completion then completes a new, empty word).
bool splitWords(const std::string& line, std::vector<std::string>& words, bool* trailingBlank = nullptr);

// --- completion (Completion.cpp) ----------------------------------------------------------

struct Completion {
  std::vector<std::string> words;  // candidates starting with the word being completed
  bool files = false;              // the word is a file name: let the shell complete paths
};

// Live values for completion: "blades", "pools", "servers", "partitions", "chassis".
using NameSource = std::function<std::vector<std::string>(const std::string& what)>;

// Completes the last of `words` (possibly empty) given the ones before it: nouns,
// verbs, flags, flag values and live names. `inShell` adds help/exit/quit.
Completion complete(const std::vector<std::string>& words, const NameSource& names, bool inShell);

// Names straight from the controller (a short timeout; nothing when unreachable).
NameSource controllerNames(const Context& context);

// `loomctl __complete WORDS...`: one candidate per line, or "__files__" (for the bash
// completion script, tools/loomctl/loomctl.bash-completion).
int runCompleteCommand(const std::vector<std::string>& words);

// --- the interactive shell (Shell.cpp) ----------------------------------------------------

// Reads commands until exit/quit/Ctrl-D; history in ~/.loom_history.
int runShell(const Context& context);

}  // namespace loom::loomctl
