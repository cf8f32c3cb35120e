// Completion for the bash script (`loomctl __complete`) and the interactive shell: one
// walk over the same CLI11 tree that parses the commands, so a new command or flag is
// completable the day it is added.
#include <algorithm>
#include <iostream>
#include <set>

#include "tools/loomctl/Api.h"
#include "tools/loomctl/App.h"
#include "tools/loomctl/Credentials.h"
#include "tools/loomctl/ListFilter.h"

namespace loom::loomctl {
namespace {

// The option named by `word` ("--pool", "--pool=web", "-o") on `app` or, since global
// options fall through, on a command above it.
const CLI::Option* findOption(const CLI::App* app, const std::string& word) {
  const std::string name = word.substr(0, word.find('='));
  for (const CLI::App* a = app; a; a = a->get_parent())
    if (const CLI::Option* o = a->get_option_no_throw(name)) return o;
  return nullptr;
}

bool takesValue(const CLI::Option* o) { return o && o->get_type_size_max() > 0 && !o->get_positional(); }

// What a command's NAME argument names: `blade show NAME` -> blades.
std::string nounOfCommand(const CLI::App* app) {
  const CLI::App* parent = app->get_parent();
  if (!parent) return "";
  const std::string noun = parent->get_name();
  if (noun == "blade" || noun == "server" || noun == "pool" || noun == "partition") return noun + "s";
  if (noun == "token" && app->get_name() == "revoke") return "tokens";
  return "";
}

// `command`'s --state values: its noun's states (`blade list --state` offers blade states).
std::vector<std::string> statesFor(const CLI::App* command) {
  const CLI::App* parent = command->get_parent();
  const std::string noun = parent ? parent->get_name() : "";
  if (noun == "blade") return bladeStates();
  if (noun == "server") return serverStates();
  std::vector<std::string> all = bladeStates();
  all.insert(all.end(), serverStates().begin(), serverStates().end());
  return all;
}

std::vector<std::string> valuesFor(const CLI::Option* o, const CLI::App* command, const NameSource& names,
                                   bool* files) {
  const std::string name = o->get_lnames().empty() ? "" : o->get_lnames().front();
  if (name == "output") return {"table", "json", "yaml"};
  if (name == "file" || name == "fabric") {
    *files = true;
    return {};
  }
  if (name == "pool") return names("pools");
  if (name == "to") return names("blades");
  if (name == "chassis") return names("chassis");
  if (name == "partition") return names("partitions");
  if (name == "state") return statesFor(command);
  if (name == "role") return {"admin", "operator", "reader", "partition-admin", "partition-reader"};
  if (name == "ca") {
    *files = true;
    return {};
  }
  return {};
}

}  // namespace

Completion complete(const std::vector<std::string>& wordsIn, const NameSource& names, bool inShell) {
  std::vector<std::string> words = wordsIn;
  if (words.empty()) words.emplace_back("");
  const std::string partial = words.back();
  Context scratch;
  auto app = buildApp(scratch);
  const CLI::App* current = app.get();
  std::size_t positionals = 0;
  for (std::size_t i = 0; i + 1 < words.size(); ++i) {
    const std::string& w = words[i];
    if (w.size() > 1 && w[0] == '-') {
      if (takesValue(findOption(current, w)) && w.find('=') == std::string::npos) ++i;  // skip its value
      continue;
    }
    auto subs = current->get_subcommands([&](const CLI::App* s) { return s->get_name() == w; });
    if (!subs.empty()) {
      current = subs.front();
      positionals = 0;
    } else {
      ++positionals;
    }
  }

  Completion result;
  std::vector<std::string> candidates;
  const std::string previous = words.size() >= 2 ? words[words.size() - 2] : "";
  const CLI::Option* pending = previous.size() > 1 && previous[0] == '-' && previous.find('=') == std::string::npos
                                   ? findOption(current, previous)
                                   : nullptr;
  if (takesValue(pending)) {
    candidates = valuesFor(pending, current, names, &result.files);
  } else if (!partial.empty() && partial[0] == '-') {
    for (const CLI::App* a = current; a; a = a->get_parent())
      for (const CLI::Option* o : a->get_options()) {
        if (o->get_positional()) continue;
        for (const auto& l : o->get_lnames()) candidates.push_back("--" + l);
        for (const auto& s : o->get_snames()) candidates.push_back("-" + s);
      }
  } else {
    for (const CLI::App* s : current->get_subcommands([](const CLI::App*) { return true; }))
      if (!s->get_group().empty() && !(inShell && s->get_name() == "shell")) candidates.push_back(s->get_name());
    const auto positional = current->get_options([](const CLI::Option* o) { return o->get_positional(); });
    const std::string noun = nounOfCommand(current);
    if (!positional.empty() && positionals == 0 && !noun.empty()) {
      auto live = names(noun);
      candidates.insert(candidates.end(), live.begin(), live.end());
    }
    if (current->get_name() == "get") {
      if (positionals == 0)
        for (const char* kind : {"partition", "network", "identity-pool", "pool", "server", "blade", "all"})
          candidates.emplace_back(kind);
      // `get KIND NAME`: the names of that kind the controller has.
      const std::string kind = positionals == 1 ? words[words.size() - 2] : "";
      if (kind == "pool" || kind == "server" || kind == "blade" || kind == "partition") {
        auto live = names(kind + "s");
        candidates.insert(candidates.end(), live.begin(), live.end());
      }
    }
    if (current == app.get() && inShell)
      for (const char* word : {"help", "exit", "quit"}) candidates.emplace_back(word);
  }
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  for (auto& c : candidates)
    if (c.compare(0, partial.size(), partial) == 0) result.words.push_back(c);
  return result;
}

NameSource controllerNames(const Context& context) {
  return [context](const std::string& what) -> std::vector<std::string> {
    if (what == "blades" || what == "pools" || what == "servers" || what == "partitions")
      return liveNames(context, what);
    if (what == "tokens") {
      std::vector<std::string> ids;
      try {
        ApiRequest r;
        r.target = "/v1/tokens";
        r.timeout = std::chrono::seconds(2);
        for (const auto& t : requestJson(context, r))
          if (t.value("state", std::string()) == "active" && t.contains("id") && t["id"].is_string())
            ids.push_back(t["id"].get<std::string>());
      } catch (const std::exception&) {
      }
      return ids;
    }
    if (what == "chassis") {
      std::set<std::string> chassis;
      try {
        ApiRequest r;
        r.target = "/v1/blades";
        r.timeout = std::chrono::seconds(2);
        for (const auto& b : requestJson(context, r))
          if (b.contains("chassis") && b["chassis"].is_string() && !b["chassis"].get<std::string>().empty())
            chassis.insert(b["chassis"].get<std::string>());
      } catch (const std::exception&) {
      }
      return {chassis.begin(), chassis.end()};
    }
    return {};
  };
}

int runCompleteCommand(const std::vector<std::string>& words) {
  Context context;
  bool controllerGiven = false, tokenGiven = false;
  if (const char* env = std::getenv("LOOM_CONTROLLER"); env && *env) {
    context.controller = env;
    controllerGiven = true;
  }
  if (const char* env = std::getenv("LOOM_TOKEN"); env && *env) {
    context.token = env;
    tokenGiven = true;
  }
  // A --controller or --token typed on the line being completed is where the names come from.
  for (std::size_t i = 0; i + 1 < words.size(); ++i) {
    if (words[i] == "--controller" && i + 2 < words.size()) {
      context.controller = words[i + 1];
      controllerGiven = true;
    } else if (words[i].rfind("--controller=", 0) == 0) {
      context.controller = words[i].substr(13);
      controllerGiven = true;
    } else if (words[i] == "--token" && i + 2 < words.size() && words[0] != "audit") {
      context.token = words[i + 1];
      tokenGiven = true;
    }
  }
  try {
    resolveCredentials(context, controllerGiven, tokenGiven, true);
  } catch (const std::exception&) {
    // Completion never fails loudly: without the file's values, names are not offered.
  }
  Completion c = complete(words, controllerNames(context), false);
  if (c.files) std::cout << "__files__\n";
  for (const auto& w : c.words) std::cout << w << "\n";
  return 0;
}

}  // namespace loom::loomctl
