// `partition`, `network` and `identity` `list|show`: the declared objects that are not
// blades, servers or pools (GET /v1/partitions and /v1/declarations).
#include <memory>

#include "tools/loomctl/Api.h"
#include "tools/loomctl/Commands.h"
#include "tools/loomctl/Views.h"

namespace loom::loomctl {

namespace {

void addName(CLI::App* cmd, std::string& name, const std::string& noun) {
  cmd->add_option("NAME", name, "The " + noun + "'s name")->required()->type_name("");
}

// The declarations of `kind` (with their `spec`), `name`'s only when given.
Json declared(Context& context, const std::string& kind, const std::string& name = "") {
  std::string target = "/v1/declarations?kind=" + kind;
  if (!name.empty()) target += "&name=" + urlEncode(name);
  return getJson(context, target, "declarations");
}

// One declared object for `show`: its spec's fields, then the YAML that declares it.
void showDeclared(Context& context, const Json& doc) {
  Json block = Json::object();
  block["name"] = doc["name"];
  if (doc.contains("spec"))
    for (const auto& [k, v] : doc["spec"].items()) block[k] = v;
  printBlock(context, block);
  *context.out << "\n" << styled("declared:", Style::Bold, context.color) << "\n" << text(doc, "yaml");
}

}  // namespace

void registerDeclaredNouns(CLI::App& app, Context& context) {
  auto name = std::make_shared<std::string>();

  CLI::App* partition = app.add_subcommand("partition", "Partitions: list, show (their pools, networks, servers)");
  partition->require_subcommand(1);
  partition->add_subcommand("list", "List partitions (pools, networks, servers)")->callback([&context] {
    show(context, getJson(context, "/v1/partitions"), [&](const Json& list) {
      Table t({{"name"}, {"pools"}, {"networks"}, {"servers", Table::Align::Right}});
      for (const auto& p : list)
        t.addRow({text(p, "name"), joined(p, "pools"), joined(p, "networks"), text(p, "servers")});
      t.render(*context.out, context.color);
    });
  });
  CLI::App* partitionShow = partition->add_subcommand("show", "One partition: its pools, networks and servers");
  addName(partitionShow, *name, "partition");
  partitionShow->callback([&context, name] {
    for (const auto& p : getJson(context, "/v1/partitions"))
      if (text(p, "name") == *name) return show(context, p, [&](const Json& j) { printBlock(context, j); });
    throw CommandError("no partition named '" + *name + "'");
  });

  CLI::App* network = app.add_subcommand("network", "Networks: list, show (partition, VLAN)");
  network->require_subcommand(1);
  auto partitionFilter = std::make_shared<std::string>();
  CLI::App* networkList = network->add_subcommand("list", "List networks (partition, VLAN)");
  networkList->add_option("--partition", *partitionFilter, "Only those of this partition")->type_name("PARTITION");
  networkList->callback([&context, partitionFilter] {
    Json list = Json::array();
    for (const auto& n : declared(context, "Network"))
      if (partitionFilter->empty() || text(n, "partition") == *partitionFilter) list.push_back(n);
    if (list.empty() && !partitionFilter->empty()) {
      bool known = false;
      for (const auto& p : getJson(context, "/v1/partitions")) known = known || text(p, "name") == *partitionFilter;
      if (!known) throw CommandError("no partition named '" + *partitionFilter + "'", 2);
    }
    show(context, list, [&](const Json& l) {
      Table t({{"name"}, {"partition"}, {"vlan", Table::Align::Right}});
      for (const auto& n : l) t.addRow({text(n, "name"), text(n, "partition"), text(n["spec"], "vlan")});
      t.render(*context.out, context.color);
    });
  });
  CLI::App* networkShow = network->add_subcommand("show", "One network: its partition, VLAN and declaration");
  addName(networkShow, *name, "network");
  networkShow->callback([&context, name] {
    const Json docs = declared(context, "Network", *name);
    show(context, docs.at(0), [&](const Json& d) { showDeclared(context, d); });
  });

  CLI::App* identity = app.add_subcommand("identity", "Identity pools (MAC and UUID ranges): list, show");
  identity->require_subcommand(1);
  identity->add_subcommand("list", "List identity pools (MAC ranges, UUID ranges, the pools using them)")
      ->callback([&context] {
        show(context, declared(context, "IdentityPool"), [&](const Json& l) {
          Table t({{"name"}, {"macs"}, {"uuids"}, {"pools"}});
          for (const auto& i : l)
            t.addRow(
                {text(i, "name"), joined(i["spec"], "macs"), joined(i["spec"], "uuids"), joined(i["spec"], "pools")});
          t.render(*context.out, context.color);
        });
      });
  CLI::App* identityShow = identity->add_subcommand("show", "One identity pool: its ranges and declaration");
  addName(identityShow, *name, "identity pool");
  identityShow->callback([&context, name] {
    const Json docs = declared(context, "IdentityPool", *name);
    show(context, docs.at(0), [&](const Json& d) { showDeclared(context, d); });
  });
}

}  // namespace loom::loomctl
