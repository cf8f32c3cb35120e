// `get KIND [NAME]`: what is declared, read back from the controller (GET
// /v1/declarations). With -o yaml the documents as a file would hold them: applying that
// output changes nothing (`loomctl get all -o yaml > fabric-backup.yaml`).
#include <algorithm>
#include <cctype>
#include <map>
#include <memory>

#include "config/Spelling.h"
#include "tools/loomctl/Api.h"
#include "tools/loomctl/Commands.h"
#include "tools/loomctl/Views.h"

namespace loom::loomctl {

namespace {

// The words an operator may type for a kind, singular and plural, any case.
const std::map<std::string, std::string>& kindWords() {
  static const std::map<std::string, std::string> words{{"partition", "Partition"},
                                                        {"partitions", "Partition"},
                                                        {"network", "Network"},
                                                        {"networks", "Network"},
                                                        {"identitypool", "IdentityPool"},
                                                        {"identitypools", "IdentityPool"},
                                                        {"identity-pool", "IdentityPool"},
                                                        {"identity-pools", "IdentityPool"},
                                                        {"identity", "IdentityPool"},
                                                        {"pool", "Pool"},
                                                        {"pools", "Pool"},
                                                        {"server", "Server"},
                                                        {"servers", "Server"},
                                                        {"blade", "Blade"},
                                                        {"blades", "Blade"},
                                                        {"all", ""}};
  return words;
}

}  // namespace

std::string declaredKind(const std::string& word) {
  std::string lower = word;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  const auto& words = kindWords();
  if (auto it = words.find(lower); it != words.end()) return it->second;
  std::vector<std::string> names;
  for (const auto& [w, kind] : words) names.push_back(w);
  std::string message = "unknown kind '" + word + "'";
  if (auto near = config::closestMatch(lower, names)) message += " (did you mean '" + *near + "'?)";
  throw CommandError(message + "; kinds: partition, network, identity-pool, pool, server, blade, all", 2);
}

void registerGet(CLI::App& app, Context& context) {
  auto kind = std::make_shared<std::string>();
  auto name = std::make_shared<std::string>();
  CLI::App* get = app.add_subcommand("get", "Print what is declared (with -o yaml: the YAML to apply it again)");
  get->add_option("KIND", *kind, "partition, network, identity-pool, pool, server, blade, or all")
      ->required()
      ->type_name("");
  get->add_option("NAME", *name, "One object (a replica's name gives its template)")->type_name("");
  get->footer(
      "-o yaml prints the declarations as documents: apply them and nothing changes. A replica stopped or started "
      "by hand is named in a comment of its template (a template has one power).\n");
  get->callback([&context, kind, name] {
    const std::string k = declaredKind(*kind);
    if (k.empty() && !name->empty()) throw CommandError("'get all' takes no NAME", 2);
    std::string target = "/v1/declarations";
    if (!k.empty()) target += "?kind=" + urlEncode(k);
    if (!name->empty()) target += "&name=" + urlEncode(*name);
    const Json documents = getJson(context, target, "get");
    if (context.output == OutputFormat::Yaml) {
      for (std::size_t i = 0; i < documents.size(); ++i)
        *context.out << (i ? "---\n" : "") << text(documents[i], "yaml");
      return;
    }
    show(context, documents, [&](const Json& list) {
      Table t({{"kind"}, {"name"}, {"partition"}});
      for (const auto& d : list) t.addRow({text(d, "kind"), text(d, "name"), text(d, "partition")});
      t.render(*context.out, context.color);
    });
  });
}

}  // namespace loom::loomctl
