// `loomctl status`: the control plane itself — which loomd answers, whether it leads, the
// replicas and their leader, the epoch, and the store (SQLite, or etcd and its members'
// health). GET /v1/status (controller/ReplicaApi.h); any replica answers it.
#include <sstream>

#include "tools/loomctl/Api.h"
#include "tools/loomctl/Commands.h"
#include "tools/loomctl/HttpClient.h"

namespace loom::loomctl {
namespace {

std::string bytes(std::int64_t n) {
  std::ostringstream out;
  if (n >= std::int64_t{1} << 20)
    out << (n >> 20) << " MiB";
  else if (n >= 1024)
    out << (n >> 10) << " KiB";
  else
    out << n << " B";
  return out.str();
}

// A standby's warm copy, as its status says it: "copy at etcd revision N, ...".
std::string copyText(const Json& copy) {
  if (!copy.is_object()) return "no copy";
  if (!copy.value("loaded", false))
    return "no copy loaded yet" + (copy.contains("error") ? " (" + copy.value("error", "") + ")" : std::string());
  std::ostringstream out;
  out << "copy at etcd revision " << copy.value("revision", std::int64_t{0}) << " (store "
      << copy.value("store_revision", std::int64_t{0}) << ")";
  const Json age = copy.value("age_ms", Json());
  if (age.is_number())
    out << ", last known current " << age.get<std::int64_t>() << " ms ago";
  else
    out << ", never confirmed current";
  if (copy.contains("error")) out << "; " << copy.value("error", "");
  return out.str();
}

// Each replica's own word on its copy (its GET /v1/status; the one that answered has
// said it already). A replica that does not answer says why.
void printCopies(const Context& context, const Json& s) {
  auto& out = *context.out;
  const std::string answered = s.value("name", "");
  for (const auto& r : s.value("replicas", Json::array())) {
    const std::string name = r.value("name", "?");
    out << "  " << name << "  ";
    if (r.value("role", "") == "leader") {
      out << "leads (its state is the term's own)\n";
      continue;
    }
    if (name == answered) {
      out << copyText(s.value("copy", Json())) << "\n";
      continue;
    }
    try {
      const HttpReply reply = httpCall(r.value("api", ""), "GET", "/v1/status", "", "", std::chrono::seconds(2));
      const Json own = Json::parse(reply.body, nullptr, false);
      out << (reply.status == 200 && own.is_object() ? copyText(own.value("copy", Json()))
                                                     : "answered HTTP " + std::to_string(reply.status))
          << "\n";
    } catch (const CommandError& e) {
      out << e.what() << "\n";
    }
  }
}

void printStatus(const Context& context, const Json& s) {
  auto& out = *context.out;
  const std::string role = s.value("role", "?");
  const bool color = context.color;
  if (role == "solo") {
    out << "controller  one loomd (no replicas)\n";
    const Json store = s.value("store", Json::object());
    out << "store       SQLite " << store.value("path", "") << "\n";
    return;
  }
  const Json leader = s.value("leader", Json());
  out << "answered    " << s.value("name", "?") << " (" << role << ")\n";
  if (leader.is_object())
    out << "leader      " << styled(leader.value("name", "?"), Style::Good, color) << " at " << leader.value("api", "")
        << ", epoch " << leader.value("epoch", 0) << "\n";
  else
    out << "leader      " << styled("none", Style::Bad, color) << " (no replica leads: is etcd's quorum up?)\n";
  out << "replicas   ";
  for (const auto& r : s.value("replicas", Json::array()))
    out << " " << r.value("name", "?") << (r.value("role", "") == "leader" ? "*" : "");
  out << "   (* leads)\n";
  printCopies(context, s);
  const Json store = s.value("store", Json::object());
  const bool healthy = store.value("healthy", false);
  out << "store       etcd " << store.value("prefix", "") << ": "
      << styled(healthy ? "healthy" : "no quorum", healthy ? Style::Good : Style::Bad, color) << ", leader lease "
      << store.value("leader_ttl_ms", 0) << " ms\n";
  for (const auto& m : store.value("members", Json::array())) {
    out << "  " << m.value("endpoint", "?") << "  ";
    if (m.value("healthy", false))
      out << styled("healthy", Style::Good, color) << (m.value("leader", false) ? "  raft leader" : "") << "  term "
          << m.value("raft_term", 0) << "  db " << bytes(m.value("db_size", std::int64_t{0})) << "  etcd "
          << m.value("version", "") << "\n";
    else
      out << styled("down", Style::Bad, color) << "  " << m.value("error", "") << "\n";
  }
}

}  // namespace

void registerStatus(CLI::App& app, Context& context) {
  CLI::App* cmd = app.add_subcommand(
      "status", "The control plane: which loomd leads, the replicas, the epoch and the store's health");
  cmd->callback([&context] {
    const Json s = getJson(context, "/v1/status", "status (loomctl status)");
    if (context.output == OutputFormat::Table)
      printStatus(context, s);
    else
      printStructured(context, s);
  });
}

}  // namespace loom::loomctl
