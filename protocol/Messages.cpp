#include "protocol/Messages.h"

namespace loom::protocol {
namespace {

Json frame(const char* type) { return Json{{"type", type}, {"v", kVersion}}; }

Json domainsJson(const std::vector<ObservedDomain>& domains) {
  Json out = Json::array();
  for (const auto& d : domains) out.push_back({{"name", d.name}, {"uuid", d.uuid}, {"state", d.state}});
  return out;
}

std::vector<ObservedDomain> domainsFrom(const Json& j) {
  std::vector<ObservedDomain> out;
  out.reserve(j.size());
  for (const auto& d : j)
    out.push_back({d.at("name").get<std::string>(), d.value("uuid", std::string()), d.at("state").get<std::string>()});
  return out;
}

const char* xenTypeName(drivers::XenGuestType t) {
  switch (t) {
    case drivers::XenGuestType::Pv: return "pv";
    case drivers::XenGuestType::Pvh: return "pvh";
    case drivers::XenGuestType::Hvm: return "hvm";
  }
  return "hvm";
}

}  // namespace

Json toJson(const drivers::DomainSpec& s) {
  Json nics = Json::array();
  for (const auto& n : s.nics) {
    Json nic{{"mac", n.mac}, {"network", n.network}, {"bridge", n.bridge}};
    if (n.vlan) nic["vlan"] = *n.vlan;
    nics.push_back(std::move(nic));
  }
  Json disks = Json::array();
  for (const auto& d : s.disks) disks.push_back({{"path", d.path}, {"format", d.format}, {"read_only", d.readOnly}});
  Json j{{"name", s.name}, {"uuid", s.uuid}, {"vcpus", s.vcpus}, {"memory_mib", s.memory},
         {"nics", std::move(nics)}, {"disks", std::move(disks)}, {"xen_type", xenTypeName(s.xenType)}};
  if (!s.kernel.empty()) j["kernel"] = s.kernel;
  if (!s.initrd.empty()) j["initrd"] = s.initrd;
  if (!s.cmdline.empty()) j["cmdline"] = s.cmdline;
  return j;
}

drivers::DomainSpec domainSpecFromJson(const Json& j) {
  drivers::DomainSpec s;
  s.name = j.at("name").get<std::string>();
  s.uuid = j.value("uuid", std::string());
  s.vcpus = j.value("vcpus", 1u);
  s.memory = j.value("memory_mib", std::uint64_t{512});
  if (auto it = j.find("nics"); it != j.end())
    for (const auto& n : *it) {
      drivers::NicSpec nic;
      nic.mac = n.value("mac", std::string());
      nic.network = n.value("network", std::string());
      nic.bridge = n.value("bridge", std::string());
      if (n.contains("vlan")) nic.vlan = n.at("vlan").get<int>();
      s.nics.push_back(std::move(nic));
    }
  if (auto it = j.find("disks"); it != j.end())
    for (const auto& d : *it)
      s.disks.push_back({d.value("path", std::string()), d.value("format", std::string()), d.value("read_only", false)});
  s.kernel = j.value("kernel", std::string());
  s.initrd = j.value("initrd", std::string());
  s.cmdline = j.value("cmdline", std::string());
  const std::string xt = j.value("xen_type", std::string("hvm"));
  s.xenType = xt == "pv" ? drivers::XenGuestType::Pv : xt == "pvh" ? drivers::XenGuestType::Pvh : drivers::XenGuestType::Hvm;
  return s;
}

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
  j["domains"] = domainsJson(m.domains);
  if (m.seq) j["seq"] = m.seq;
  return j;
}

Json encode(const Registered& m) {
  Json j = frame(type::kRegistered);
  j["lease_ms"] = m.leaseMs;
  j["heartbeat_ms"] = m.heartbeatMs;
  if (m.seq) j["seq"] = m.seq;
  return j;
}

Json encode(const Heartbeat& m) {
  Json j = frame(type::kHeartbeat);
  j["seq"] = m.seq;
  if (!m.ack) j["ack"] = false;
  if (m.domains) j["domains"] = domainsJson(*m.domains);
  return j;
}

Json encode(const LeaseRenewed& m) {
  Json j = frame(type::kLeaseRenewed);
  j["seq"] = m.seq;
  j["lease_ms"] = m.leaseMs;
  return j;
}

Json encode(const PlanMsg& m) {
  Json j = frame(type::kPlan);
  Json steps = Json::array();
  for (const auto& s : m.steps) {
    Json step{{"op", s.op}, {"kind", s.kind}, {"server", s.server}};
    if (!s.hypervisor.empty()) step["hypervisor"] = s.hypervisor;
    if (s.spec) step["spec"] = toJson(*s.spec);
    steps.push_back(std::move(step));
  }
  j["steps"] = std::move(steps);
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
  m.domains = domainsFrom(j.at("domains"));
  m.seq = j.value("seq", std::uint64_t{0});
  return m;
}

Registered decodeRegistered(const Json& j) {
  return {j.at("lease_ms").get<std::int64_t>(), j.at("heartbeat_ms").get<std::int64_t>(), j.value("seq", std::uint64_t{0})};
}

Heartbeat decodeHeartbeat(const Json& j) {
  Heartbeat m;
  m.seq = j.at("seq").get<std::uint64_t>();
  m.ack = j.value("ack", true);
  if (auto it = j.find("domains"); it != j.end()) m.domains = domainsFrom(*it);
  return m;
}

LeaseRenewed decodeLeaseRenewed(const Json& j) {
  return {j.at("seq").get<std::uint64_t>(), j.at("lease_ms").get<std::int64_t>()};
}

Reregister decodeReregister(const Json& j) { return {j.value("seq", std::uint64_t{0})}; }

PlanMsg decodePlan(const Json& j) {
  PlanMsg m;
  for (const auto& s : j.at("steps")) {
    PlanStep step;
    step.op = s.at("op").get<std::uint64_t>();
    step.kind = s.at("kind").get<std::string>();
    step.server = s.value("server", std::string());
    step.hypervisor = s.value("hypervisor", std::string());
    if (auto it = s.find("spec"); it != s.end()) step.spec = domainSpecFromJson(*it);
    m.steps.push_back(std::move(step));
  }
  return m;
}

StepResult decodeStepResult(const Json& j) {
  return {j.at("op").get<std::uint64_t>(), j.at("ok").get<bool>(), j.value("error", std::string())};
}

Event decodeEvent(const Json& j) {
  return {j.at("level").get<std::string>(), j.at("message").get<std::string>(), j.value("server", std::string())};
}

}  // namespace loom::protocol
