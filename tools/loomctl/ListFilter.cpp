// The list commands' filters (ListFilter.h).
#include "tools/loomctl/ListFilter.h"

#include <algorithm>
#include <map>

#include "loom/CommaList.h"
#include "tools/loomctl/Api.h"
#include "tools/loomctl/Views.h"

namespace loom::loomctl {

std::vector<std::pair<std::string, std::string>> ListFilter::terms() const {
  std::vector<std::pair<std::string, std::string>> out;
  if (!pool.empty()) out.emplace_back("pool", pool);
  if (!partition.empty()) out.emplace_back("partition", partition);
  if (!state.empty()) out.emplace_back("state", state);
  if (!chassis.empty()) out.emplace_back("chassis", chassis);
  for (const auto& item : splitCommaList(selector)) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw CommandError("selector '" + item + "' is not KEY=VALUE (e.g. --selector pool=web,state=active)", 2);
    out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
  }
  return out;
}

void addFilterOptions(CLI::App* cmd, ListFilter& filter, bool withChassis) {
  cmd->add_option("--pool", filter.pool, "Only those of this pool")->type_name("POOL");
  cmd->add_option("--partition", filter.partition, "Only those of this partition")->type_name("PARTITION");
  cmd->add_option("--state", filter.state, "Only those in this state")->type_name("STATE");
  if (withChassis) cmd->add_option("--chassis", filter.chassis, "Only those in this chassis")->type_name("CHASSIS");
  cmd->add_option("-l,--selector", filter.selector, "Only those whose fields match KEY=VALUE[,KEY=VALUE...]")
      ->type_name("SELECTOR");
}

bool fieldMatches(const Json& object, const std::string& key, const std::string& value) {
  if (!object.contains(key)) return false;
  const Json& field = object[key];
  if (field.is_array()) {
    return std::any_of(field.begin(), field.end(),
                       [&](const Json& v) { return (v.is_string() ? v.get<std::string>() : v.dump()) == value; });
  }
  if (field.is_null()) return value.empty() || value == "-" || value == "none";
  return (field.is_string() ? field.get<std::string>() : field.dump()) == value;
}

// Keeps the items matching every term. A blade has no partition and a server no
// chassis of its own: those are derived (blade -> pool -> partition, server -> blade ->
// chassis) only when asked for, so a plain list costs one request.
Json filtered(const Context& context, Json list, const ListFilter& filter) {
  const auto terms = filter.terms();
  if (terms.empty()) return list;  // moved out, not copied: it may hold 10,000 blades
  std::map<std::string, std::string> partitionOfPool, chassisOfBlade;
  for (const auto& [key, value] : terms) {
    const std::string& k = key;  // clang 14 (clang-tidy) cannot capture a structured binding
    bool missing = std::any_of(list.begin(), list.end(), [&](const Json& o) { return !o.contains(k); });
    if (!missing) continue;
    if (key == "partition" && partitionOfPool.empty())
      for (const auto& p : getJson(context, "/v1/pools")) partitionOfPool[text(p, "name")] = text(p, "partition");
    if (key == "chassis" && chassisOfBlade.empty())
      for (const auto& b : getJson(context, "/v1/blades")) chassisOfBlade[text(b, "name")] = text(b, "chassis");
  }
  Json out = Json::array();
  for (const auto& item : list) {
    Json probe = item;
    if (!probe.contains("partition") && !partitionOfPool.empty())
      probe["partition"] = partitionOfPool[text(item, "pool")];
    if (!probe.contains("chassis") && !chassisOfBlade.empty()) probe["chassis"] = chassisOfBlade[text(item, "blade")];
    bool keep =
        std::all_of(terms.begin(), terms.end(), [&](const auto& t) { return fieldMatches(probe, t.first, t.second); });
    if (keep) out.push_back(item);
  }
  return out;
}

// What a list command fetches. A table asks for the columns it prints and the fields its
// filter looks at (`?fields=`): a table of 10,000 blades then moves and parses a third of
// the bytes. -o json/yaml, and an arbitrary --selector, get whole objects.
std::string listTarget(const Context& context, const std::string& path, std::vector<std::string> columns,
                       const ListFilter& filter, const std::vector<std::string>& filterable) {
  if (context.output != OutputFormat::Table || !filter.selector.empty()) return path;
  for (const auto& [key, value] : filter.terms())
    if (std::find(filterable.begin(), filterable.end(), key) != filterable.end()) columns.push_back(key);
  std::string fields;
  for (const auto& c : columns) fields += (fields.empty() ? "" : ",") + c;
  return path + "?fields=" + fields;
}

Json byField(const Json& list, const char* key, const std::string& value) {
  Json out = Json::array();
  for (const auto& item : list)
    if (fieldMatches(item, key, value)) out.push_back(item);
  return out;
}

}  // namespace loom::loomctl
