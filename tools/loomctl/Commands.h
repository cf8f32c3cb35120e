// loomctl's command groups. main() builds the app with the global options, then each
// group adds its subcommands; a subcommand's callback does the work and reports through
// the Context (output, exit code) or by throwing CommandError.
#pragma once

#include <CLI/CLI.hpp>

#include "tools/loomctl/Context.h"

namespace loom::loomctl {

// Commands that need no controller: `validate`, `plan` (OfflineCommands.cpp).
void registerOfflineCommands(CLI::App& app, Context& context);

// Commands that talk to loomd's HTTP API: `apply`, `delete`, `blade ...`, `server ...`,
// `pool ...`, `events`, `capacity`, `fabric` (ApiCommands.cpp). `shell` is added by
// buildApp (App.cpp), since it runs the tree itself.
void registerApiCommands(CLI::App& app, Context& context);

// `status`: the control plane (replicas, leader, epoch, store health) (StatusCommand.cpp).
void registerStatus(CLI::App& app, Context& context);

}  // namespace loom::loomctl
