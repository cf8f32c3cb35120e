// Where loomctl finds its controller URL, API token and CA (DESIGN.md section 8): the
// options --controller/--token/--ca, then $LOOM_CONTROLLER/$LOOM_TOKEN, then the config
// file `loomctl login` writes ($XDG_CONFIG_HOME or ~/.config, then loom/loomctl.yaml,
// readable by its owner only), then the defaults (http://127.0.0.1:7780, no token).
//
// The file is a flat YAML mapping of three keys, written and read here only:
//   controller: http://loomd.example:7780
//   token: loom_0123456789ab_...
//   ca: /etc/loom/ca.pem
#pragma once

#include <optional>
#include <string>

#include "tools/loomctl/Context.h"

namespace loom::loomctl {

struct LoginConfig {
  std::string controller;
  std::string token;
  std::string ca;
};

// The config file's path ("" when neither XDG_CONFIG_HOME nor HOME is set).
std::string loginConfigPath();
// Its contents; nullopt when there is no file. Throws CommandError when it cannot be
// read or parsed, naming the file and line.
std::optional<LoginConfig> readLoginConfig(const std::string& path);
// Writes it (0600, the directory created 0700), replacing what was there.
void writeLoginConfig(const std::string& path, const LoginConfig& config);

// Fills what the options and the environment left unset from the config file, and hands
// the token to the HTTP client. `controllerGiven`, `tokenGiven`, `caGiven`: set by an
// option or the environment.
void resolveCredentials(Context& context, bool controllerGiven, bool tokenGiven, bool caGiven);

}  // namespace loom::loomctl
