#include "node-agent/ProbeCommand.h"

#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>

#include "node-agent/CommandSupport.h"

namespace loom::agent {

CLI::App* addProbeCommand(CLI::App& app, ProbeCommandLine& cl) {
  auto* probe = app.add_subcommand("probe", "show this node's inventory and which drivers apply");
  probe->add_option("--driver", cl.driver, "only this driver");
  probe->add_option("-o,--output", cl.output, "table | json")->check(CLI::IsMember({"table", "json"}));
  return probe;
}

int runProbe(const ProbeCommandLine& cl, const drivers::DriverRegistry& registry, const drivers::DriverOptions& base) {
  nlohmann::json node{
      {"hostname", hostName()},
      {"cpus", sysconf(_SC_NPROCESSORS_ONLN)},
      {"memory_mib",
       static_cast<std::uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<std::uint64_t>(sysconf(_SC_PAGE_SIZE)) >> 20}};
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [name, result] : drivers::probeAll(registry, base)) {
    if (!cl.driver.empty() && name != cl.driver) continue;
    list.push_back({{"driver", name}, {"applies", result.applies}, {"reason", result.reason}});
  }
  if (!cl.driver.empty() && list.empty()) {
    std::string known;
    for (const auto& n : registry.names()) known += (known.empty() ? "" : ", ") + n;
    return fail("unknown driver '" + cl.driver + "' (known: " + known + ")");
  }
  if (cl.output == "json") {
    std::cout << nlohmann::json{{"node", node}, {"drivers", list}}.dump(2) << "\n";
  } else {
    std::cout << "host " << node["hostname"].get<std::string>() << ": " << node["cpus"] << " cpus, "
              << node["memory_mib"] << " MiB\n";
    std::cout << "DRIVER  APPLIES  REASON\n";
    for (const auto& d : list) {
      std::string n = d["driver"];
      n.resize(std::max<std::size_t>(n.size(), 8), ' ');
      std::cout << n << (d["applies"].get<bool>() ? "yes      " : "no       ") << d["reason"].get<std::string>()
                << "\n";
    }
  }
  return 0;
}

}  // namespace loom::agent
