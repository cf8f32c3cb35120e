#include "protocol/Validation.h"

#include <array>

#include "protocol/RelayEnvelope.h"

namespace loom::protocol {
namespace {

using Check = std::optional<Rejection>;

Check invalid(std::string message) { return Rejection{"invalid", std::move(message)}; }

// Field-level checks; `where` prefixes the message ("steps[2].op").
Check needString(const Json& o, const char* field, const std::string& where, bool required = true) {
  auto it = o.find(field);
  if (it == o.end()) return required ? invalid(where + field + ": missing") : std::nullopt;
  if (!it->is_string()) return invalid(where + field + ": expected a string");
  return std::nullopt;
}

Check needUnsigned(const Json& o, const char* field, const std::string& where, bool required = true) {
  auto it = o.find(field);
  if (it == o.end()) return required ? invalid(where + field + ": missing") : std::nullopt;
  if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<std::int64_t>() >= 0))
    return invalid(where + field + ": expected a non-negative integer");
  return std::nullopt;
}

Check needInteger(const Json& o, const char* field, const std::string& where, bool required = true) {
  auto it = o.find(field);
  if (it == o.end()) return required ? invalid(where + field + ": missing") : std::nullopt;
  if (!it->is_number_integer()) return invalid(where + field + ": expected an integer");
  return std::nullopt;
}

Check needBool(const Json& o, const char* field, const std::string& where, bool required = true) {
  auto it = o.find(field);
  if (it == o.end()) return required ? invalid(where + field + ": missing") : std::nullopt;
  if (!it->is_boolean()) return invalid(where + field + ": expected true or false");
  return std::nullopt;
}

Check needObject(const Json& o, const char* field, const std::string& where, bool required = true) {
  auto it = o.find(field);
  if (it == o.end()) return required ? invalid(where + field + ": missing") : std::nullopt;
  if (!it->is_object()) return invalid(where + field + ": expected an object");
  return std::nullopt;
}

Check needArray(const Json& o, const char* field, const std::string& where, bool required = true) {
  auto it = o.find(field);
  if (it == o.end()) return required ? invalid(where + field + ": missing") : std::nullopt;
  if (!it->is_array()) return invalid(where + field + ": expected an array");
  return std::nullopt;
}

#define LOOM_CHECK(expr) \
  if (auto r = (expr)) return r

// A string field that must hold one of an enum's text forms (pool/Model.h). `what` names
// the enum for the message: "domains[0].state: unknown domain state 'runing' (expected ...)".
template <class E>
Check needEnum(const Json& o, const char* field, const std::string& where, bool required,
               std::optional<E> (*parse)(std::string_view), const char* what, const char* expected) {
  LOOM_CHECK(needString(o, field, where, required));
  auto it = o.find(field);
  if (it == o.end()) return std::nullopt;
  const auto& text = it->get_ref<const std::string&>();
  if (parse(text)) return std::nullopt;
  return invalid(where + field + ": unknown " + what + " '" + text.substr(0, 64) + "' (expected " + expected + ")");
}

constexpr const char* kDomainStates = "defined, running, paused, shutting-down, shutoff or crashed";
constexpr const char* kStepKinds = "prepare-hypervisor, define, start, stop or undefine";
constexpr const char* kXenGuestTypes = "hvm, pv or pvh";

Check validateDomains(const Json& f, bool required) {
  LOOM_CHECK(needArray(f, "domains", "", required));
  auto it = f.find("domains");
  if (it == f.end()) return std::nullopt;
  std::size_t i = 0;
  for (const auto& d : *it) {
    const std::string where = "domains[" + std::to_string(i++) + "].";
    if (!d.is_object()) return invalid(where.substr(0, where.size() - 1) + ": expected an object");
    LOOM_CHECK(needString(d, "name", where));
    LOOM_CHECK(needString(d, "uuid", where, false));
    LOOM_CHECK(needEnum(d, "state", where, true, pool::parseDomainState, "domain state", kDomainStates));
  }
  return std::nullopt;
}

Check validateRegister(const Json& f) {
  LOOM_CHECK(needString(f, "blade", ""));
  if (f["blade"].get_ref<const std::string&>().empty()) return invalid("blade: must not be empty");
  LOOM_CHECK(needString(f, "agent_version", "", false));
  LOOM_CHECK(needObject(f, "inventory", ""));
  const Json& inv = f["inventory"];
  LOOM_CHECK(needString(inv, "chassis", "inventory.", false));
  LOOM_CHECK(needInteger(inv, "slot", "inventory.", false));
  LOOM_CHECK(needUnsigned(inv, "sockets", "inventory.", false));
  LOOM_CHECK(needUnsigned(inv, "cores", "inventory."));
  LOOM_CHECK(needUnsigned(inv, "memory_mib", "inventory."));
  LOOM_CHECK(needString(inv, "cpu_model", "inventory.", false));
  LOOM_CHECK(needString(inv, "personality", "inventory.", false));
  LOOM_CHECK(needString(inv, "driver", "inventory.", false));
  LOOM_CHECK(needString(inv, "hostname", "inventory.", false));
  LOOM_CHECK(needArray(inv, "hypervisors", "inventory.", false));
  if (inv.contains("hypervisors"))
    for (const auto& h : inv["hypervisors"])
      if (!h.is_string() || (h != "kvm" && h != "xen"))
        return invalid("inventory.hypervisors: expected \"kvm\" or \"xen\" entries");
  LOOM_CHECK(needString(inv, "peer_endpoint", "inventory.", false));
  LOOM_CHECK(needString(inv, "peer_key", "inventory.", false));
  LOOM_CHECK(needUnsigned(f, "seq", "", false));
  LOOM_CHECK(needUnsigned(f, "uptime_ms", "", false));
  return validateDomains(f, true);
}

Check validateRegistered(const Json& f) {
  LOOM_CHECK(needUnsigned(f, "epoch", "", false));
  LOOM_CHECK(needUnsigned(f, "lease_ms", ""));
  LOOM_CHECK(needUnsigned(f, "seq", "", false));
  LOOM_CHECK(needUnsigned(f, "stamp", "", false));
  return needUnsigned(f, "heartbeat_ms", "");
}

Check validateHeartbeat(const Json& f) {
  LOOM_CHECK(needUnsigned(f, "seq", ""));
  LOOM_CHECK(needBool(f, "ack", "", false));
  LOOM_CHECK(needUnsigned(f, "echo", "", false));
  LOOM_CHECK(needUnsigned(f, "pv", "", false));
  LOOM_CHECK(needUnsigned(f, "shield_ms", "", false));
  LOOM_CHECK(needBool(f, "holding", "", false));
  LOOM_CHECK(needObject(f, "held", "", false));
  if (f.contains("held")) {
    LOOM_CHECK(needUnsigned(f["held"], "ms", "held."));
    for (const char* k : {"servers", "support", "members"}) LOOM_CHECK(needUnsigned(f["held"], k, "held.", false));
  }
  return validateDomains(f, false);
}

Check validateLeaseRenewed(const Json& f) {
  LOOM_CHECK(needUnsigned(f, "epoch", "", false));
  LOOM_CHECK(needUnsigned(f, "seq", ""));
  LOOM_CHECK(needUnsigned(f, "stamp", "", false));
  return needUnsigned(f, "lease_ms", "");
}

Check validateSpec(const Json& s, const std::string& where) {
  LOOM_CHECK(needString(s, "name", where));
  LOOM_CHECK(needString(s, "uuid", where, false));
  LOOM_CHECK(needUnsigned(s, "vcpus", where, false));
  LOOM_CHECK(needUnsigned(s, "memory_mib", where, false));
  LOOM_CHECK(needArray(s, "nics", where, false));
  LOOM_CHECK(needArray(s, "disks", where, false));
  if (s.contains("nics"))
    for (const auto& n : s["nics"]) {
      if (!n.is_object()) return invalid(where + "nics: expected objects");
      LOOM_CHECK(needString(n, "mac", where + "nics[]."));
      LOOM_CHECK(needString(n, "network", where + "nics[].", false));
      LOOM_CHECK(needString(n, "bridge", where + "nics[].", false));  // ignored (controllers before 0.2 sent "")
      LOOM_CHECK(needInteger(n, "vlan", where + "nics[].", false));
    }
  if (s.contains("disks"))
    for (const auto& d : s["disks"]) {
      if (!d.is_object()) return invalid(where + "disks: expected objects");
      LOOM_CHECK(needString(d, "path", where + "disks[]."));
      LOOM_CHECK(needString(d, "format", where + "disks[].", false));
      LOOM_CHECK(needBool(d, "read_only", where + "disks[].", false));
    }
  for (const char* k : {"kernel", "initrd", "cmdline"}) LOOM_CHECK(needString(s, k, where, false));
  LOOM_CHECK(needEnum(s, "xen_type", where, false, pool::parseXenGuestType, "Xen guest type", kXenGuestTypes));
  return std::nullopt;
}

Check validatePlan(const Json& f) {
  LOOM_CHECK(needUnsigned(f, "epoch", "", false));
  LOOM_CHECK(needArray(f, "steps", ""));
  std::size_t i = 0;
  for (const auto& s : f["steps"]) {
    const std::string where = "steps[" + std::to_string(i++) + "].";
    if (!s.is_object()) return invalid(where + ": expected an object");
    LOOM_CHECK(needUnsigned(s, "op", where));
    LOOM_CHECK(needEnum(s, "kind", where, true, pool::parseStepKind, "step kind", kStepKinds));
    const pool::StepKind kind = *pool::parseStepKind(s["kind"].get_ref<const std::string&>());
    const bool prepare = kind == pool::StepKind::PrepareHypervisor;
    LOOM_CHECK(needString(s, "server", where, !prepare));
    if (!prepare && s["server"].get_ref<const std::string&>().empty())
      return invalid(where + "server: must not be empty");
    LOOM_CHECK(needString(s, "hypervisor", where, prepare));
    LOOM_CHECK(needObject(s, "spec", where, kind == pool::StepKind::Define));
    if (s.contains("spec")) LOOM_CHECK(validateSpec(s["spec"], where + "spec."));
  }
  return std::nullopt;
}

Check validateStepResult(const Json& f) {
  LOOM_CHECK(needUnsigned(f, "op", ""));
  LOOM_CHECK(needBool(f, "ok", ""));
  return needString(f, "error", "", false);
}

Check validateEvent(const Json& f) {
  LOOM_CHECK(needString(f, "level", ""));
  LOOM_CHECK(needString(f, "message", ""));
  return needString(f, "server", "", false);
}

Check validateReregister(const Json& f) {
  LOOM_CHECK(needUnsigned(f, "epoch", "", false));
  return needUnsigned(f, "seq", "", false);
}

// A quorum set is at most loomd's --quorum-size (64 by default); this bound only keeps a
// malformed frame from costing more than a frame should.
constexpr std::size_t kMaxPolicyMembers = 4096;

Check validatePolicy(const Json& f) {
  LOOM_CHECK(needUnsigned(f, "epoch", "", false));
  LOOM_CHECK(needUnsigned(f, "version", ""));
  LOOM_CHECK(needString(f, "fencing", ""));
  if (f["fencing"] != "lease" && f["fencing"] != "power") return invalid("fencing: expected \"lease\" or \"power\"");
  LOOM_CHECK(needUnsigned(f, "commit_ms", ""));
  LOOM_CHECK(needUnsigned(f, "attest_ms", ""));
  LOOM_CHECK(needArray(f, "members", ""));
  if (f["members"].size() > kMaxPolicyMembers)
    return invalid("members: more than " + std::to_string(kMaxPolicyMembers));
  std::size_t i = 0;
  for (const auto& m : f["members"]) {
    const std::string where = "members[" + std::to_string(i++) + "].";
    if (!m.is_object()) return invalid(where.substr(0, where.size() - 1) + ": expected an object");
    LOOM_CHECK(needString(m, "blade", where));
    if (!isValidBladeName(m["blade"].get_ref<const std::string&>())) return invalid(where + "blade: not a blade name");
    LOOM_CHECK(needString(m, "endpoint", where));
    LOOM_CHECK(needString(m, "key", where, false));
  }
  return std::nullopt;
}

Check validatePeerAsk(const Json& f) {
  LOOM_CHECK(needString(f, "blade", ""));
  if (!isValidBladeName(f["blade"].get_ref<const std::string&>())) return invalid("blade: not a blade name");
  return needUnsigned(f, "seq", "");
}

Check validatePeerAnswer(const Json& f) {
  LOOM_CHECK(validatePeerAsk(f));
  LOOM_CHECK(needBool(f, "attest", ""));
  LOOM_CHECK(needUnsigned(f, "valid_ms", "", f["attest"].get<bool>()));
  return needUnsigned(f, "retry_ms", "", false);
}

#undef LOOM_CHECK

struct TypeRule {
  const char* type;
  Check (*validate)(const Json&);
};

constexpr std::array kRules{
    TypeRule{type::kRegister, validateRegister},
    TypeRule{type::kRegistered, validateRegistered},
    TypeRule{type::kHeartbeat, validateHeartbeat},
    TypeRule{type::kLeaseRenewed, validateLeaseRenewed},
    TypeRule{type::kPlan, validatePlan},
    TypeRule{type::kStepResult, validateStepResult},
    TypeRule{type::kEvent, validateEvent},
    TypeRule{type::kReregister, validateReregister},
    TypeRule{type::kPolicy, validatePolicy},
    TypeRule{type::kPeerAsk, validatePeerAsk},
    TypeRule{type::kPeerAnswer, validatePeerAnswer},
};

}  // namespace

bool isKnownType(std::string_view t) {
  for (const auto& r : kRules)
    if (t == r.type) return true;
  return false;
}

std::optional<Rejection> validate(const Json& frame) {
  if (!frame.is_object()) return Rejection{"malformed", "frame is not a JSON object"};
  auto t = frame.find("type");
  if (t == frame.end() || !t->is_string()) return Rejection{"malformed", "frame has no string \"type\""};
  auto v = frame.find("v");
  if (v == frame.end() || !v->is_number_integer()) return Rejection{"malformed", "frame has no integer \"v\""};
  const auto& name = t->get_ref<const std::string&>();
  for (const auto& r : kRules) {
    if (name != r.type) continue;
    if (v->get<std::int64_t>() != kVersion)
      return Rejection{"bad-version", "'" + name + "' version " + std::to_string(v->get<std::int64_t>()) +
                                          " (supported: " + std::to_string(kVersion) + ")"};
    if (auto bad = r.validate(frame)) {
      bad->message = "'" + name + "': " + bad->message;
      return bad;
    }
    return std::nullopt;
  }
  return Rejection{"unknown-type", "unknown message type '" + name.substr(0, 64) + "'"};
}

namespace {

// nlohmann's SAX interface: every callback returns whether to go on; false at the first
// thing a plain heartbeat does not have.
class PlainHeartbeatSax {
 public:
  bool null() { return false; }
  bool boolean(bool b) {
    if (depth_ != 1) return false;
    if (key_ == Key::Ack)
      beat_.ack = b;
    else if (key_ == Key::Holding)
      beat_.holding = b;
    else
      return false;
    return true;
  }
  bool number_integer(std::int64_t i) { return i >= 0 && number_unsigned(static_cast<std::uint64_t>(i)); }
  bool number_unsigned(std::uint64_t u) {
    if (depth_ != 1) return false;
    switch (key_) {
      case Key::V:
        return (versionOk_ = u == static_cast<std::uint64_t>(kVersion));
      case Key::Seq:
        beat_.seq = u, seqSeen_ = true;
        return true;
      case Key::Echo:
        beat_.echo = u;
        return true;
      case Key::Pv:
        beat_.policyVersion = u;
        return true;
      case Key::ShieldMs:
        beat_.shieldMs = static_cast<std::int64_t>(std::min<std::uint64_t>(u, INT64_MAX));
        return true;
      default:
        return false;
    }
  }
  bool number_float(double, const std::string&) { return false; }
  bool string(std::string& s) { return depth_ == 1 && key_ == Key::Type && (typeOk_ = s == type::kHeartbeat); }
  bool binary(std::vector<std::uint8_t>&) { return false; }
  bool start_object(std::size_t) { return ++depth_ == 1; }
  bool key(std::string& k) {
    key_ = k == "type"        ? Key::Type
           : k == "v"         ? Key::V
           : k == "seq"       ? Key::Seq
           : k == "ack"       ? Key::Ack
           : k == "echo"      ? Key::Echo
           : k == "pv"        ? Key::Pv
           : k == "shield_ms" ? Key::ShieldMs
           : k == "holding"   ? Key::Holding
                              : Key::Other;
    return key_ != Key::Other;
  }
  bool end_object() { return --depth_ == 0; }
  bool start_array(std::size_t) { return false; }
  bool end_array() { return false; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) { return false; }

  std::optional<PlainHeartbeat> result() const {
    if (!typeOk_ || !versionOk_ || !seqSeen_) return std::nullopt;
    return beat_;
  }

 private:
  enum class Key { None, Type, V, Seq, Ack, Echo, Pv, ShieldMs, Holding, Other };
  int depth_ = 0;
  Key key_ = Key::None;
  bool typeOk_ = false, versionOk_ = false, seqSeen_ = false;
  PlainHeartbeat beat_;
};

}  // namespace

std::optional<PlainHeartbeat> peekPlainHeartbeat(std::string_view bytes) {
  // Cheap refusal first: most other frames are not even close.
  if (bytes.size() > 256 || bytes.find("heartbeat") == std::string_view::npos) return std::nullopt;
  PlainHeartbeatSax sax;
  try {
    if (!Json::sax_parse(bytes.begin(), bytes.end(), &sax, nlohmann::detail::input_format_t::json, /*strict=*/true))
      return std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return sax.result();
}

std::string leaseRenewedFrame(std::uint64_t seq, std::int64_t leaseMs, std::uint64_t stamp, std::uint64_t epoch) {
  // nlohmann orders an object's keys by name.
  return (epoch ? R"({"epoch":)" + std::to_string(epoch) + R"(,"lease_ms":)" : std::string(R"({"lease_ms":)")) +
         std::to_string(leaseMs) + R"(,"seq":)" + std::to_string(seq) +
         (stamp ? R"(,"stamp":)" + std::to_string(stamp) : std::string()) + R"(,"type":")" + type::kLeaseRenewed +
         R"(","v":)" + std::to_string(kVersion) + "}";
}

std::optional<Rejection> parseFrame(std::string_view bytes, Json& out) {
  out = Json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (out.is_discarded())
    return Rejection{"malformed", "frame is not valid JSON (" + std::to_string(bytes.size()) + " bytes)"};
  if (!out.is_object()) return Rejection{"malformed", "frame is not a JSON object"};
  return std::nullopt;
}

}  // namespace loom::protocol
