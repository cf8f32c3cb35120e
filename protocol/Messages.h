// The fabric protocol between loomd and loom-agent: one JSON object per ZeroMQ frame,
// every object {"type": NAME, "v": VERSION, ...}. docs/PROTOCOL.md is the schema; this
// header is its C++ face. Encoding never fails; decoding assumes validate() accepted
// the frame (see protocol/Validation.h), so decoders do not re-check shapes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pool/Model.h"
#include "protocol/ServerSpec.h"

namespace loom::protocol {

using Json = nlohmann::json;

// Bumped when a message changes incompatibly; both sides drop frames of another version.
inline constexpr int kVersion = 1;

// Message type names, the keys of every dispatch table.
namespace type {
inline constexpr const char* kRegister = "register";          // agent -> controller
inline constexpr const char* kRegistered = "registered";      // controller -> agent
inline constexpr const char* kHeartbeat = "heartbeat";        // agent -> controller
inline constexpr const char* kLeaseRenewed = "lease-renewed"; // controller -> agent
inline constexpr const char* kPlan = "plan";                  // controller -> agent
inline constexpr const char* kStepResult = "step-result";     // agent -> controller
inline constexpr const char* kEvent = "event";                // agent -> controller
inline constexpr const char* kReregister = "reregister";      // controller -> agent: "I do not know you, register"
}  // namespace type

// A domain as the agent observes it on its blade.
struct ObservedDomain {
  std::string name;
  std::string uuid;
  pool::DomainState state = pool::DomainState::Shutoff;  // on the wire: toString, "running", "shutoff", ...
};

// What a blade is, as reported by its agent when it registers.
struct BladeInventory {
  std::string chassis;
  int slot = 0;
  std::uint32_t sockets = 1;
  std::uint32_t cores = 0;
  std::uint64_t memoryMib = 0;
  std::string cpuModel;
  std::vector<std::string> hypervisors;  // what it can run: "kvm", "xen"
  std::string personality;               // what it runs now, or empty
  std::string driver;                    // "kvm", "xen", "test"
  std::string hostname;
};

struct Register {
  std::string blade;
  std::string agentVersion;
  BladeInventory inventory;
  std::vector<ObservedDomain> domains;
  std::uint64_t seq = 0;  // numbers this agent's registers; 0: none (echoed in Registered)
};

// `seq` echoes the register it answers, so the agent counts its lease from when it sent
// that one (0 from a controller that does not echo: the agent counts from its earliest
// unanswered register).
struct Registered {
  std::int64_t leaseMs = 0;
  std::int64_t heartbeatMs = 0;
  std::uint64_t seq = 0;
};

// `domains` is absent when nothing changed since the agent's previous report: at 10,000
// blades the controller should not parse 10,000 unchanged domain lists a second.
struct Heartbeat {
  std::uint64_t seq = 0;
  std::optional<std::vector<ObservedDomain>> domains;
  // Whether the agent wants a lease-renewed for this one. It asks only when its lease has
  // run down far enough: every answer is a message and 10,000 blades beat every second.
  bool ack = true;
};

struct LeaseRenewed {
  std::uint64_t seq = 0;
  std::int64_t leaseMs = 0;
};

// Step kinds on the wire: toString(StepKind), "prepare-hypervisor", "define", "start",
// "stop", "undefine".
struct PlanStep {
  std::uint64_t op = 0;    // operation id, unique per controller state store
  pool::StepKind kind = pool::StepKind::Define;
  std::string server;      // empty for prepare-hypervisor
  std::string hypervisor;  // for prepare-hypervisor
  std::optional<ServerSpec> spec;  // for define
};

struct PlanMsg {
  std::vector<PlanStep> steps;  // executed in order; each reported by a step-result
};

struct StepResult {
  std::uint64_t op = 0;
  bool ok = false;
  std::string error;
};

struct Event {
  std::string level;  // "info" | "warning" | "error"
  std::string message;
  std::string server;  // or empty
};

// Sent in reply to a heartbeat from a blade the controller has no registration for
// (typically: the controller restarted); the agent registers again at once, unless the
// heartbeat it answers (`seq`, 0: not said) was sent before the agent's latest register.
struct Reregister {
  std::uint64_t seq = 0;
};

// Encoders: each returns the complete frame object including "type" and "v".
Json encode(const Register&);
Json encode(const Registered&);
Json encode(const Heartbeat&);
Json encode(const LeaseRenewed&);
Json encode(const PlanMsg&);
Json encode(const StepResult&);
Json encode(const Event&);
Json encode(const Reregister&);

// Decoders for frames validate() accepted.
Register decodeRegister(const Json&);
Registered decodeRegistered(const Json&);
Heartbeat decodeHeartbeat(const Json&);
LeaseRenewed decodeLeaseRenewed(const Json&);
Reregister decodeReregister(const Json&);
PlanMsg decodePlan(const Json&);
StepResult decodeStepResult(const Json&);
Event decodeEvent(const Json&);

}  // namespace loom::protocol
