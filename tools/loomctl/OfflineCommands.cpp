// `validate` and `plan`: the declarations checked and placed on this machine, with no
// controller. The same loader and planner run inside loomd, so what passes here is what
// `apply` would accept and (on an empty fabric state) how it would place it.
#include <algorithm>
#include <map>
#include <set>

#include "config/Loader.h"
#include "config/ValueSyntax.h"
#include "pool/Planner.h"
#include "tools/loomctl/Commands.h"
#include "tools/loomctl/DeclarationInputs.h"
#include "tools/loomctl/Output.h"

namespace loom::loomctl {

namespace {

// Prints every diagnostic as FILE:LINE:COL: message on stderr; true when there were any.
bool reportDiagnostics(const Context& context, const std::vector<config::Diagnostic>& diagnostics) {
  for (const auto& d : diagnostics) *context.err << d.format() << '\n';
  return !diagnostics.empty();
}

Json diagnosticsJson(const std::vector<config::Diagnostic>& diagnostics) {
  Json list = Json::array();
  for (const auto& d : diagnostics) {
    list.push_back({{"file", d.file}, {"line", d.line}, {"column", d.column}, {"message", d.message}});
  }
  return list;
}

Json hypervisorsJson(const pool::HypervisorSet& set) {
  Json list = Json::array();
  for (auto h : {pool::Hypervisor::Xen, pool::Hypervisor::Kvm}) {
    if (set.has(h)) list.push_back(pool::toString(h));
  }
  return list;
}

// --- validate --------------------------------------------------------------------------

struct ValidateOptions {
  std::vector<std::string> files;
};

void runValidate(Context& context, const ValidateOptions& options) {
  auto result = DeclarationInputs::read(options.files, *context.err).load();
  if (!result.ok()) {
    reportDiagnostics(context, result.diagnostics);
    // Files that lean on objects applied before (servers.yaml alone) fail here by design.
    if (context.output == OutputFormat::Table &&
        std::any_of(result.diagnostics.begin(), result.diagnostics.end(),
                    [](const config::Diagnostic& d) { return d.message.find("' is declared") != std::string::npos; }))
      *context.err << "loomctl: validate checks these files alone; to check them against what the controller has "
                      "applied, run loomctl apply --dry-run -f ...\n";
    if (context.output != OutputFormat::Table) {
      printStructured(context, {{"ok", false}, {"errors", diagnosticsJson(result.diagnostics)}});
    }
    context.exitCode = 1;
    return;
  }
  const auto& d = result.declarations;
  std::set<std::string> templates;
  for (const auto& s : d.servers) {
    if (!s.template_.empty()) templates.insert(s.template_);
  }
  if (context.output != OutputFormat::Table) {
    printStructured(context, {{"ok", true},
                              {"partitions", d.partitions.size()},
                              {"networks", d.networks.size()},
                              {"identity_pools", d.identityPools.size()},
                              {"pools", d.pools.size()},
                              {"servers", d.servers.size()},
                              {"templates", templates.size()},
                              {"blades", d.blades.size()},
                              {"errors", Json::array()}});
    return;
  }
  std::string summary = countOf(d.partitions.size(), "partition", "partitions") + ", " +
                        countOf(d.networks.size(), "network", "networks") + ", " +
                        countOf(d.identityPools.size(), "identity pool", "identity pools") + ", " +
                        countOf(d.pools.size(), "pool", "pools") + ", " +
                        countOf(d.servers.size(), "server", "servers");
  if (!templates.empty()) summary += " (from " + countOf(templates.size(), "template", "templates") + ")";
  if (!d.blades.empty()) summary += ", " + countOf(d.blades.size(), "blade", "blades");
  *context.out << styled("ok", Style::Good, context.color) << ": " << summary << '\n';
}

// --- plan ------------------------------------------------------------------------------

struct PlanOptions {
  std::vector<std::string> files;
  std::string fabric;
};

Json planJson(const pool::Declarations& d, const pool::Fabric& fabric, const pool::Plan& plan) {
  std::map<std::string, const pool::Blade*> blades;
  for (const auto& b : fabric.blades) blades[b.name] = &b;
  std::map<std::string, const pool::Server*> servers;
  for (const auto& s : d.servers) servers[s.name] = &s;
  std::map<std::string, std::vector<std::string>> onBlade;
  for (const auto& p : plan.placements) onBlade[p.blade].push_back(p.server);

  Json out = {{"blades", Json::array()},
              {"servers", Json::array()},
              {"unplaceable", Json::array()},
              {"warnings", plan.warnings}};
  for (const auto& a : plan.blades) {
    Json blade = {{"name", a.blade}};
    if (auto it = blades.find(a.blade); it != blades.end()) {
      const pool::Blade& b = *it->second;
      blade["chassis"] = b.chassis;
      blade["slot"] = b.slot;
      blade["cores"] = b.cores;
      blade["memory_mib"] = b.memory;
      blade["hypervisor"] = hypervisorsJson(b.hypervisors);
    }
    blade["pool"] = a.pool;
    blade["role"] = pool::toString(a.role);
    blade["servers"] = onBlade[a.blade];
    if (!a.reason.empty()) blade["reason"] = a.reason;
    out["blades"].push_back(std::move(blade));
  }
  for (const auto& p : plan.placements) {
    Json server = {{"name", p.server}};
    if (auto it = servers.find(p.server); it != servers.end()) {
      const pool::Server& s = *it->second;
      server["partition"] = s.partition;
      server["pool"] = s.pool;
      server["blade"] = p.blade;
      server["vcpus"] = s.vcpus;
      server["memory_mib"] = s.memory;
      server["priority"] = s.priority;
      server["dedicated"] = s.dedicated;
    } else {
      server["blade"] = p.blade;
    }
    out["servers"].push_back(std::move(server));
  }
  for (const auto& u : plan.unplaceable) {
    Json item = {{"name", u.server}, {"reason", u.reason}};
    if (auto it = servers.find(u.server); it != servers.end()) item["pool"] = it->second->pool;
    out["unplaceable"].push_back(std::move(item));
  }
  return out;
}

void printPlanTables(const Context& context, const Json& plan) {
  std::ostream& out = *context.out;
  const bool color = context.color;
  using Align = Table::Align;

  Table blades({{"blade"},
                {"chassis"},
                {"slot", Align::Right},
                {"cores", Align::Right},
                {"memory", Align::Right},
                {"hypervisor"},
                {"pool"},
                {"role"},
                {"servers"}});
  std::size_t used = 0, spare = 0, free = 0;
  for (const auto& b : plan["blades"]) {
    std::string role = b["role"].get<std::string>();
    std::string servers;
    for (const auto& s : b["servers"]) servers += (servers.empty() ? "" : ",") + s.get<std::string>();
    if (!b["servers"].empty())
      ++used;
    else if (role == "spare" || role == "borrowed")
      ++spare;
    else if (role == "unassigned" || role == "member")
      ++free;
    std::string hypervisors;
    for (const auto& h : b.value("hypervisor", Json::array())) {
      hypervisors += (hypervisors.empty() ? "" : ",") + h.get<std::string>();
    }
    std::string shownRole = b.contains("reason") ? role + " (" + b["reason"].get<std::string>() + ")" : role;
    blades.addRow({b["name"].get<std::string>(), b.value("chassis", ""),
                   b.contains("slot") ? std::to_string(b["slot"].get<int>()) : "",
                   b.contains("cores") ? std::to_string(b["cores"].get<unsigned>()) : "",
                   b.contains("memory_mib") ? config::formatSize(b["memory_mib"].get<pool::MiB>()) : "", hypervisors,
                   b["pool"].get<std::string>().empty() ? "-" : b["pool"].get<std::string>(),
                   Cell(shownRole, styleForState(role)), servers.empty() ? "-" : servers});
  }
  blades.render(out, color);
  out << '\n';

  Table servers({{"server"},
                 {"partition"},
                 {"pool"},
                 {"blade"},
                 {"vcpus", Align::Right},
                 {"memory", Align::Right},
                 {"priority", Align::Right}});
  for (const auto& s : plan["servers"]) {
    std::string name = s["name"].get<std::string>();
    if (s.value("dedicated", false)) name += " (dedicated)";
    servers.addRow({name, s.value("partition", ""), s.value("pool", ""), s["blade"].get<std::string>(),
                    std::to_string(s.value("vcpus", 0u)), config::formatSize(s.value("memory_mib", pool::MiB{0})),
                    std::to_string(s.value("priority", 0))});
  }
  servers.render(out, color);

  if (!plan["unplaceable"].empty()) {
    out << '\n';
    Table unplaceable({{"unplaceable"}, {"pool"}, {"reason"}});
    for (const auto& u : plan["unplaceable"]) {
      unplaceable.addRow(
          {Cell(u["name"].get<std::string>(), Style::Bad), u.value("pool", ""), u["reason"].get<std::string>()});
    }
    unplaceable.render(out, color);
  }
  for (const auto& w : plan["warnings"]) {
    out << styled("warning", Style::Warning, color) << ": " << w.get<std::string>() << '\n';
  }
  out << '\n'
      << countOf(plan["servers"].size(), "server", "servers") << " placed on " << countOf(used, "blade", "blades")
      << ", " << countOf(plan["unplaceable"].size(), "unplaceable", "unplaceable") << "; "
      << countOf(spare, "blade", "blades") << " kept as spares, " << free << " free\n";
}

void runPlan(Context& context, const PlanOptions& options) {
  auto declarations = DeclarationInputs::read(options.files, *context.err).load();
  auto fabric = config::loadFabricFile(options.fabric);
  // Both inputs are checked before stopping, so one run shows every error.
  bool failed = reportDiagnostics(context, declarations.diagnostics);
  failed = reportDiagnostics(context, fabric.diagnostics) || failed;
  if (failed) {
    if (context.output != OutputFormat::Table) {
      auto errors = diagnosticsJson(declarations.diagnostics);
      for (auto& e : diagnosticsJson(fabric.diagnostics)) errors.push_back(std::move(e));
      printStructured(context, {{"ok", false}, {"errors", errors}});
    }
    context.exitCode = 1;
    return;
  }
  // Offline: nothing is bound yet and time does not matter to a first placement.
  pool::Plan plan = pool::plan(declarations.declarations, fabric.fabric, pool::PlacementState{}, 0);
  Json json = planJson(declarations.declarations, fabric.fabric, plan);
  if (context.output == OutputFormat::Table) {
    printPlanTables(context, json);
  } else {
    printStructured(context, json);
  }
  if (!plan.unplaceable.empty()) {
    *context.err << "loomctl: " << countOf(plan.unplaceable.size(), "server is", "servers are") << " unplaceable\n";
    context.exitCode = 1;
  }
}

}  // namespace

void registerOfflineCommands(CLI::App& app, Context& context) {
  auto validate = std::make_shared<ValidateOptions>();
  CLI::App* v = app.add_subcommand("validate", "Check declaration files offline (syntax, fields, names, references)");
  addFileOption(v, validate->files);
  v->footer("Exit status 0 with a summary, or 1 with every error as FILE:LINE:COL: message on stderr.\n");
  v->callback([&context, validate] { runValidate(context, *validate); });

  auto plan = std::make_shared<PlanOptions>();
  CLI::App* p = app.add_subcommand("plan", "Place declarations onto a fabric file offline and print the placement");
  addFileOption(p, plan->files);
  p->add_option("--fabric", plan->fabric, "Fabric file: blades: [{name, chassis, slot, cores, memory, hypervisor}]")
      ->required()
      ->type_name("FABRIC.yaml");
  p->footer("Exit status 1 if an input is invalid or a server is unplaceable.\n");
  p->callback([&context, plan] { runPlan(context, *plan); });
}

}  // namespace loom::loomctl
