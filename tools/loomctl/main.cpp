// loomctl: the operator's shell tool. The command tree lives in App.cpp so the
// interactive shell and completion share it; main only dispatches.
#include <string>
#include <vector>

#include "tools/loomctl/App.h"

int main(int argc, char** argv) {
  using namespace loom::loomctl;
  std::vector<std::string> args(argv + 1, argv + argc);
  // Hidden, for the bash completion script; before CLI11 so that the words being
  // completed ("--pool", "-o") are never taken as loomctl's own options.
  if (!args.empty() && args.front() == "__complete") return runCompleteCommand({args.begin() + 1, args.end()});
  Context context;
  return runCommand(args, context);
}
