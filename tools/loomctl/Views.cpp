// How the API commands lay loomd's JSON out for a person (Views.h).
#include "tools/loomctl/Views.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

namespace loom::loomctl {

// --- small formatting helpers ------------------------------------------------------------

// One lookup each: a table of 10,000 rows calls these 100,000 times.
std::string text(const Json& j, const char* key) {
  if (!j.is_object()) return "-";
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "-";
  if (it->is_string()) {
    const auto& s = it->get_ref<const std::string&>();
    return s.empty() ? "-" : s;
  }
  return it->dump();
}

std::string joined(const Json& j, const char* key, const char* separator) {
  if (!j.is_object()) return "-";
  auto it = j.find(key);
  if (it == j.end() || !it->is_array() || it->empty()) return "-";
  std::string out;
  for (const auto& v : *it) {
    if (!out.empty()) out += separator;
    if (v.is_string())
      out += v.get_ref<const std::string&>();
    else
      out += v.dump();
  }
  return out;
}

std::string mib(std::uint64_t value) {
  if (value >= 1024 && value % 1024 == 0) return std::to_string(value / 1024) + "GiB";
  if (value >= 10240) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1fGiB", static_cast<double>(value) / 1024.0);
    return buf;
  }
  return std::to_string(value) + "MiB";
}

std::string memoryOf(const Json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_number()) return "-";
  return mib(j[key].get<std::uint64_t>());
}

// A count that may arrive as a number or as the list it counts.
std::uint64_t countField(const Json& j, const char* key) {
  if (!j.contains(key)) return 0;
  if (j[key].is_number()) return j[key].get<std::uint64_t>();
  if (j[key].is_array()) return j[key].size();
  return 0;
}

Cell stateCell(const std::string& state) { return Cell(state, styleForState(state)); }

bool onTerminal(int fd) { return ::isatty(fd) == 1; }

// The tables print only in table mode; json/yaml pass the controller's value through.
void show(Context& context, const Json& value, const std::function<void(const Json&)>& table) {
  if (context.output == OutputFormat::Table)
    table(value);
  else
    printStructured(context, value);
}

// "Apply these changes? [y/N]" on a terminal; anything but y/yes declines.
bool confirm(Context& context, const std::string& question) {
  *context.out << question << " [y/N] " << std::flush;
  std::string answer;
  if (!std::getline(std::cin, answer)) return false;
  answer.erase(0, answer.find_first_not_of(" \t"));
  return answer == "y" || answer == "Y" || answer == "yes" || answer == "Yes";
}

// --- a "key: value" block for `show` -----------------------------------------------------

std::string labelOf(const std::string& key) {
  if (key == "memory_mib") return "memory";
  std::string label = key;
  std::replace(label.begin(), label.end(), '_', ' ');
  return label;
}

void printBlock(Context& context, const Json& input) {
  // The controller's keys arrive sorted; a person looks for the name first.
  Json object = Json::object();
  if (input.contains("name")) object["name"] = input["name"];
  for (const auto& [key, value] : input.items()) object[key] = value;
  std::size_t width = 0;
  for (const auto& [key, value] : object.items()) width = std::max(width, labelOf(key).size());
  auto& out = *context.out;
  for (const auto& [key, value] : object.items()) {
    const std::string label = labelOf(key);
    out << styled(label + ":", Style::Bold, context.color) << std::string(width - label.size() + 1, ' ');
    if (key == "memory_mib" && value.is_number()) {
      out << mib(value.get<std::uint64_t>());
    } else if (value.is_array()) {
      if (value.empty()) out << "-";
      bool scalars = std::all_of(value.begin(), value.end(), [](const Json& v) { return !v.is_structured(); });
      if (scalars) {
        for (std::size_t i = 0; i < value.size(); ++i)
          out << (i ? ", " : "") << (value[i].is_string() ? value[i].get<std::string>() : value[i].dump());
      } else {
        // One line an item: a NIC's "network=front mac=52:54:00:10:00:01", a disk's.
        for (const auto& v : value) {
          out << "\n" << std::string(width + 2, ' ');
          if (!v.is_object()) {
            out << v.dump();
            continue;
          }
          bool first = true;
          for (const auto& [k, field] : v.items()) {
            if (field.is_null() || field == false) continue;
            out << (first ? "" : " ") << k << "=" << (field.is_string() ? field.get<std::string>() : field.dump());
            first = false;
          }
        }
      }
    } else if (value.is_object()) {
      bool first = true;
      for (const auto& [k, v] : value.items()) {
        out << (first ? "" : ", ") << k << "=" << (v.is_string() ? v.get<std::string>() : v.dump());
        first = false;
      }
      if (first) out << "-";
    } else if (key == "state" || key == "role") {
      out << styled(text(object, key.c_str()), styleForState(text(object, key.c_str())), context.color);
    } else {
      out << text(object, key.c_str());
    }
    out << "\n";
  }
}

// --- tables ------------------------------------------------------------------------------

void bladeTable(Context& context, const Json& list) {
  // The relay column only where some blade reaches loomd through a fabric relay.
  const bool relays = std::any_of(list.begin(), list.end(),
                                  [](const Json& b) { return b.contains("relay") && b["relay"].is_string(); });
  std::vector<Table::Column> columns{{"name"},
                                     {"chassis"},
                                     {"slot", Table::Align::Right},
                                     {"cores", Table::Align::Right},
                                     {"memory", Table::Align::Right},
                                     {"hypervisor"},
                                     {"state"},
                                     {"pool"},
                                     {"servers"}};
  if (relays) columns.insert(columns.begin() + 2, {"relay"});
  Table t(columns);
  for (const auto& b : list) {
    // A blade that can run either hypervisor says so ("xen,kvm", in the model's order,
    // whatever its agent listed first), whatever it runs now.
    const bool several = b.contains("hypervisors") && b["hypervisors"].is_array() && b["hypervisors"].size() > 1;
    std::string hypervisors;
    if (several) {
      std::vector<std::string> names;
      for (const auto& h : b["hypervisors"])
        if (h.is_string()) names.push_back(h.get<std::string>());
      std::stable_sort(names.begin(), names.end(), [](const std::string& x, const std::string& y) {
        auto rank = [](const std::string& h) { return h == "xen" ? 0 : h == "kvm" ? 1 : 2; };
        return rank(x) < rank(y);
      });
      for (const auto& h : names) hypervisors += (hypervisors.empty() ? "" : ",") + h;
    }
    std::vector<Cell> row{text(b, "name"),
                          text(b, "chassis"),
                          text(b, "slot"),
                          text(b, "cores"),
                          memoryOf(b),
                          several ? hypervisors : text(b, "hypervisor"),
                          stateCell(text(b, "state")),
                          text(b, "pool"),
                          joined(b, "servers")};
    if (relays) row.insert(row.begin() + 2, text(b, "relay"));
    t.addRow(std::move(row));
  }
  t.render(*context.out, context.color);
}

void serverTable(Context& context, const Json& list) {
  Table t({{"name"},
           {"partition"},
           {"pool"},
           {"blade"},
           {"state"},
           {"vcpus", Table::Align::Right},
           {"memory", Table::Align::Right},
           {"uuid"},
           {"macs"}});
  for (const auto& s : list) {
    std::string state = text(s, "state");
    t.addRow({text(s, "name"), text(s, "partition"), text(s, "pool"), text(s, "blade"), stateCell(state),
              text(s, "vcpus"), memoryOf(s), text(s, "uuid"), joined(s, "macs")});
  }
  t.render(*context.out, context.color);
  for (const auto& s : list)
    if (s.contains("reason") && s["reason"].is_string())
      *context.out << styled(text(s, "state"), styleForState(text(s, "state")), context.color) << " " << text(s, "name")
                   << ": " << s["reason"].get<std::string>() << "\n";
  // Runs with its old definition until its restart (docs/SERVERS.md).
  for (const auto& s : list)
    if (s.contains("restart_pending") && s["restart_pending"].is_string())
      *context.out << styled("restart pending", Style::Warning, context.color) << " " << text(s, "name") << ": "
                   << s["restart_pending"].get<std::string>() << "\n";
}

void poolTable(Context& context, const Json& list) {
  Table t({{"name"},
           {"partition"},
           {"hypervisor"},
           {"blades", Table::Align::Right},
           {"spares", Table::Align::Right},
           {"failover"},
           {"servers", Table::Align::Right}});
  for (const auto& p : list) {
    // A spare pool's blades are all spares: it shows how many it has, not a promise.
    const bool sparePool = p.value("spare_pool", false);
    t.addRow({text(p, "name"), text(p, "partition"), text(p, "hypervisor"), std::to_string(countField(p, "blades")),
              sparePool ? std::to_string(countField(p, "spare_blades")) + " (spare pool)" : text(p, "spares"),
              text(p, "failover"), std::to_string(countField(p, "servers"))});
  }
  t.render(*context.out, context.color);
}

const std::vector<std::string> kBladeColumns{"name",       "chassis",     "relay", "slot", "cores",  "memory_mib",
                                             "hypervisor", "hypervisors", "state", "pool", "servers"};
const std::vector<std::string> kServerColumns{"name",       "partition", "pool", "blade",  "state",          "vcpus",
                                              "memory_mib", "uuid",      "macs", "reason", "restart_pending"};
const std::vector<std::string> kPoolColumns{"name",       "partition",    "hypervisor", "blades", "spares",
                                            "spare_pool", "spare_blades", "failover",   "servers"};

}  // namespace loom::loomctl
