// loomctl's command groups. main() builds the app with the global options, then each
// group adds its subcommands; a subcommand's callback does the work and reports through
// the Context (output, exit code) or by throwing CommandError.
#pragma once

#include <CLI/CLI.hpp>

#include "tools/loomctl/Context.h"

namespace loom::loomctl {

// Commands that need no controller: `validate`, `plan` (OfflineCommands.cpp).
void registerOfflineCommands(CLI::App& app, Context& context);

// The commands that talk to loomd's HTTP API. Each fetches the controller's JSON once and
// either passes it through (-o json|yaml: the automation contract is the controller's
// own objects) or lays it out for a person (Views.h). `shell` is added by buildApp
// (App.cpp), since it runs the tree itself.

// `apply`, `delete` (ChangeCommands.cpp).
void registerChangeCommands(CLI::App& app, Context& context);
// `blade list|show|drain|undrain|retire|fence`, `server list|show|start|stop|move`,
// `pool list|show`, `capacity` (InventoryCommands.cpp).
void registerBlade(CLI::App& app, Context& context);
void registerServer(CLI::App& app, Context& context);
void registerPool(CLI::App& app, Context& context);
void registerCapacity(CLI::App& app, Context& context);
// `partition|network|identity list|show` (DeclaredCommands.cpp).
void registerDeclaredNouns(CLI::App& app, Context& context);
// `get KIND [NAME]`: the declarations read back (GetCommand.cpp).
void registerGet(CLI::App& app, Context& context);
// A kind as the API names it ("Pool") for a word an operator typed ("pools"); "" for
// "all". Throws CommandError (exit 2) naming the kinds for anything else.
std::string declaredKind(const std::string& word);
// `events [-f]` (EventsCommand.cpp).
void registerEvents(CLI::App& app, Context& context);
// `fabric`: the enclosures drawn (FabricCommand.cpp).
void registerFabric(CLI::App& app, Context& context);

// `status`: the control plane (replicas, leader, epoch, store health) (StatusCommand.cpp).
void registerStatus(CLI::App& app, Context& context);

// `token create|list|revoke`, `audit [-f]`, `login`, `whoami` (AccessCommands.cpp).
void registerAccess(CLI::App& app, Context& context);

}  // namespace loom::loomctl
