// `loomctl shell`: the same command tree, one line at a time, through libedit's
// readline interface (history, completion). Each line gets a fresh CLI11 app and
// Context, so no parsed state leaks from one command into the next, and runCommand()
// turns every failure into one line without leaving the shell.
#include <editline/readline.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>

#include "tools/loomctl/App.h"

namespace loom::loomctl {
namespace {

// readline's callbacks are plain functions: the shell's state lives here while it runs.
struct ShellSession {
  Context base;
  NameSource fetch;
  // Live names, kept briefly: completing three words should not cost three requests,
  // and a blade that registered a minute ago should still show up.
  std::map<std::string, std::pair<std::chrono::steady_clock::time_point, std::vector<std::string>>> cache;
  std::vector<std::string> matches;
  std::size_t next = 0;
};

ShellSession* session = nullptr;

std::vector<std::string> cachedNames(const std::string& what) {
  constexpr auto kFresh = std::chrono::seconds(5);
  const auto now = std::chrono::steady_clock::now();
  auto it = session->cache.find(what);
  if (it != session->cache.end() && now - it->second.first < kFresh) return it->second.second;
  auto names = session->fetch(what);
  session->cache[what] = {now, names};
  return names;
}

char* nextMatch(const char* /*text*/, int state) {
  if (state == 0) session->next = 0;
  if (session->next >= session->matches.size()) return nullptr;
  return ::strdup(session->matches[session->next++].c_str());
}

char** completeLine(const char* text, int start, int /*end*/) {
  rl_attempted_completion_over = 1;  // never fall back to file names unless we say so
  std::vector<std::string> words;
  splitWords(std::string(rl_line_buffer, static_cast<std::size_t>(start)), words);
  words.emplace_back(text);
  Completion c = complete(words, cachedNames, true);
  if (c.files) {
    rl_attempted_completion_over = 0;
    return nullptr;
  }
  session->matches = std::move(c.words);
  if (session->matches.empty()) return nullptr;
  return rl_completion_matches(text, nextMatch);
}

std::string historyPath() {
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.loom_history";
}

std::string trimmed(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

}  // namespace

int runShell(const Context& context) {
  ShellSession state;
  state.base = context;
  state.fetch = controllerNames(context);
  session = &state;

  rl_readline_name = "loomctl";
  rl_attempted_completion_function = completeLine;
  const std::string history = historyPath();
  using_history();
  stifle_history(1000);
  read_history(history.c_str());

  // Ctrl-C abandons the line being typed or stops a command that waits; it never ends
  // the shell (Ctrl-D and exit do). No SA_RESTART: a blocked read returns to notice it.
  struct sigaction action {
  }, previous{};
  action.sa_handler = [](int) { requestInterrupt(); };
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, &previous);

  *context.out << "loomctl shell: controller " << context.controller
               << ". 'help' lists the commands, 'help COMMAND' explains one; 'exit' or Ctrl-D leaves.\n";
  for (;;) {
    clearInterrupt();
    char* raw = readline("loom> ");
    if (interruptRequested()) {
      std::free(raw);
      *context.out << "\n";
      continue;  // Ctrl-C at the prompt: a fresh line
    }
    if (!raw) {
      *context.out << "\n";
      break;  // Ctrl-D
    }
    const std::string line = trimmed(raw);
    std::free(raw);
    if (line.empty()) continue;
    add_history(line.c_str());
    // Saved after every line, so a killed shell still remembers what was typed.
    write_history(history.c_str());

    std::vector<std::string> words;
    if (!splitWords(line, words)) {
      *context.err << "loomctl: unterminated quote\n";
      continue;
    }
    if (words.front() == "loomctl") words.erase(words.begin());  // pasted from a script
    if (words.empty()) continue;
    if (words.front() == "exit" || words.front() == "quit") break;
    if (words.front() == "help") {
      words.erase(words.begin());
      words.emplace_back("--help");
    }
    Context lineContext;
    lineContext.controller = state.base.controller;
    lineContext.outputName = state.base.outputName;
    lineContext.out = state.base.out;
    lineContext.err = state.base.err;
    lineContext.inShell = true;
    runCommand(words, lineContext);
    lineContext.out->flush();
  }
  ::sigaction(SIGINT, &previous, nullptr);
  session = nullptr;
  return 0;
}

}  // namespace loom::loomctl
