// The list commands' filters (ListFilter.h).
#include "tools/loomctl/ListFilter.h"

#include <algorithm>
#include <map>

#include "loom/CommaList.h"
#include "pool/Model.h"
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

namespace {

template <class E>
std::vector<std::string> namesOf(std::initializer_list<E> values) {
  std::vector<std::string> out;
  for (E v : values) out.emplace_back(pool::toString(v));
  return out;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "none" : out;
}

// The names `path` lists (or, with `field`, the distinct values of that field).
std::vector<std::string> namesAt(const Context& context, const std::string& path, const char* field = "name") {
  std::vector<std::string> out;
  for (const auto& item : getJson(context, path)) {
    std::string v = text(item, field);
    if (!v.empty() && std::find(out.begin(), out.end(), v) == out.end()) out.push_back(std::move(v));
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A --pool, --partition or --chassis that matched nothing: one that does not exist is an
// error saying which exist; one that exists but has none of these is an empty answer.
void mustExist(const Context& context, const std::string& what, const std::string& value,
               const std::vector<std::string>& known) {
  if (std::find(known.begin(), known.end(), value) != known.end()) return;
  throw CommandError(
      "no " + what + " '" + value + "' (" + what + (what == "chassis" ? "" : "s") + ": " + joined(known) + ")", 2);
}

}  // namespace

const std::vector<std::string>& bladeStates() {
  using B = pool::BladeState;
  static const auto names = namesOf(
      {B::Discovered, B::Available, B::Active, B::Spare, B::Suspect, B::Failed, B::Fenced, B::Maintenance, B::Retired});
  return names;
}

const std::vector<std::string>& serverStates() {
  using S = pool::ServerState;
  static const auto names = namesOf(
      {S::Pending, S::Placing, S::Starting, S::Running, S::Stopping, S::Stopped, S::Failed, S::Unplaceable, S::Moving});
  return names;
}

void addFilterOptions(CLI::App* cmd, ListFilter& filter, bool withChassis, const std::vector<std::string>& states) {
  cmd->add_option("--pool", filter.pool, "Only those of this pool")->type_name("POOL");
  cmd->add_option("--partition", filter.partition, "Only those of this partition")->type_name("PARTITION");
  cmd->add_option("--state", filter.state, "Only those in this state: " + joined(states))
      ->type_name("STATE")
      ->check(CLI::IsMember(states));
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
  if (!out.empty()) return out;
  // Nothing matched: say so if the filter could never match (a name that does not exist,
  // a key no item has), rather than print an empty table and exit 0.
  for (const auto& [key, value] : terms) {
    if (key == "pool" && !filter.pool.empty()) mustExist(context, "pool", value, namesAt(context, "/v1/pools"));
    if (key == "partition" && !filter.partition.empty())
      mustExist(context, "partition", value, namesAt(context, "/v1/partitions"));
    if (key == "chassis" && !filter.chassis.empty())
      mustExist(context, "chassis", value, namesAt(context, "/v1/blades", "chassis"));
  }
  if (!list.empty()) {
    for (const auto& [key, value] : filter.terms()) {
      const std::string& k = key;
      const bool derived =
          (k == "partition" && !partitionOfPool.empty()) || (k == "chassis" && !chassisOfBlade.empty());
      if (derived || std::any_of(list.begin(), list.end(), [&](const Json& o) { return o.contains(k); })) continue;
      std::vector<std::string> fields;
      for (const auto& [f, _] : list.front().items()) fields.push_back(f);
      throw CommandError("no field '" + k + "' in " + (filter.noun.empty() ? "these" : filter.noun) +
                             " (fields: " + joined(fields) + ")",
                         2);
    }
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
