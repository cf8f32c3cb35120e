// The fabric protocol between loomd and loom-agent: one JSON object per ZeroMQ frame,
// every object {"type": NAME, "v": VERSION, ...}. docs/PROTOCOL.md is the schema; this
// header is its C++ face. Encoding never fails; decoding assumes validate() accepted
// the frame (see protocol/Validation.h), so decoders do not re-check shapes.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "pool/Model.h"
#include "protocol/ServerSpec.h"

namespace loom::protocol {

using Json = nlohmann::json;

// Bumped when a message changes incompatibly; both sides drop frames of another version.
inline constexpr int kVersion = 1;

// The leader's epoch (docs/FENCING.md, "Replicas: the epoch"): with several loomd on etcd,
// every frame loomd sends an agent (registered, lease-renewed, reregister, plan, policy)
// carries `epoch`, the election revision of the term it was sent in, and an agent refuses
// one older than the newest it has seen (node-agent/EpochGuard.h). 0 (the field left
// out): a loomd alone on its store, whose frames are as they always were.

// Message type names, the keys of every dispatch table.
namespace type {
inline constexpr const char* kRegister = "register";           // agent -> controller
inline constexpr const char* kRegistered = "registered";       // controller -> agent
inline constexpr const char* kHeartbeat = "heartbeat";         // agent -> controller
inline constexpr const char* kLeaseRenewed = "lease-renewed";  // controller -> agent
inline constexpr const char* kPlan = "plan";                   // controller -> agent
inline constexpr const char* kStepResult = "step-result";      // agent -> controller
inline constexpr const char* kEvent = "event";                 // agent -> controller
inline constexpr const char* kReregister = "reregister";       // controller -> agent: "I do not know you, register"
inline constexpr const char* kPolicy = "policy";               // controller -> agent: the outage rule (docs/FENCING.md)
// The peer channel, agent -> agent (docs/FENCING.md): "have you lost loomd?" and the answer.
inline constexpr const char* kPeerAsk = "peer-ask";
inline constexpr const char* kPeerAnswer = "peer-answer";
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
  // Where its peers reach it (docs/FENCING.md, the peer channel), and the public key it
  // presents there (Z85; empty with --insecure). Empty: it listens for no peer.
  std::string peerEndpoint;
  std::string peerKey;
};

struct Register {
  std::string blade;
  std::string agentVersion;
  BladeInventory inventory;
  std::vector<ObservedDomain> domains;
  std::uint64_t seq = 0;  // numbers this agent's registers; 0: none (echoed in Registered)
  // How long this agent process has run (-1: not said). A previous process of the agent may
  // have attested for a peer just before it ended (docs/FENCING.md).
  std::int64_t uptimeMs = -1;
};

// `seq` echoes the register it answers, so the agent counts its lease from when it sent
// that one (0 from a controller that does not echo: the agent counts from its earliest
// unanswered register).
struct Registered {
  std::int64_t leaseMs = 0;
  std::int64_t heartbeatMs = 0;
  std::uint64_t seq = 0;
  std::uint64_t stamp = 0;  // the controller's stamp (protocol/Fencing.h); 0: none
  std::uint64_t epoch = 0;  // the leader's (see above); 0: left out
};

// `domains` is absent when nothing changed since the agent's previous report: at 10,000
// blades the controller should not parse 10,000 unchanged domain lists a second.
struct Heartbeat {
  std::uint64_t seq = 0;
  std::optional<std::vector<ObservedDomain>> domains;
  // Whether the agent wants a lease-renewed for this one. It asks only when its lease has
  // run down far enough: every answer is a message and 10,000 blades beat every second.
  bool ack = true;
  // The outage rule (docs/FENCING.md); each is left out when 0 / false.
  std::uint64_t echo = 0;           // the latest stamp the agent received
  std::uint64_t policyVersion = 0;  // `pv`: the policy it holds
  std::int64_t shieldMs = 0;        // how long attestations it gave still run
  bool holding = false;             // it runs servers under a shield, without a lease
  // Once after a hold ended: how long it held, how many servers, and the support it had.
  struct Held {
    std::int64_t ms = 0;
    std::uint32_t servers = 0;
    std::uint32_t support = 0;  // members whose attestation shielded it at the end
    std::uint32_t members = 0;
  };
  std::optional<Held> held;
};

struct LeaseRenewed {
  std::uint64_t seq = 0;
  std::int64_t leaseMs = 0;
  std::uint64_t stamp = 0;  // 0: none
  std::uint64_t epoch = 0;  // 0: left out
};

// The outage rule as it applies to one blade (docs/FENCING.md): sent after `registered`
// and whenever the heartbeats show an older version.
struct PeerAddress {
  std::string blade;
  std::string endpoint;
  std::string key;  // Z85 public key; empty with --insecure
};
struct Policy {
  std::uint64_t version = 0;
  bool powerFenced = false;  // `fencing`: "power" or "lease"
  std::int64_t commitMs = 0;
  std::int64_t attestMs = 0;
  std::vector<PeerAddress> members;
  std::uint64_t epoch = 0;  // 0: left out
};

struct PeerAsk {
  std::string blade;  // who asks
  std::uint64_t seq = 0;
};

struct PeerAnswer {
  std::string blade;      // who answers
  std::uint64_t seq = 0;  // the ask's
  bool attest = false;
  std::int64_t validMs = 0;  // when attesting
  std::int64_t retryMs = 0;  // when not: how long until it could
};

// Step kinds on the wire: toString(StepKind), "prepare-hypervisor", "define", "start",
// "stop", "undefine".
struct PlanStep {
  std::uint64_t op = 0;  // operation id, unique per controller state store
  pool::StepKind kind = pool::StepKind::Define;
  std::string server;              // empty for prepare-hypervisor
  std::string hypervisor;          // for prepare-hypervisor
  std::optional<ServerSpec> spec;  // for define
};

struct PlanMsg {
  std::vector<PlanStep> steps;  // executed in order; each reported by a step-result
  std::uint64_t epoch = 0;      // 0: left out
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
  std::uint64_t epoch = 0;  // 0: left out
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
Json encode(const Policy&);
Json encode(const PeerAsk&);
Json encode(const PeerAnswer&);

// Decoders for frames validate() accepted.
Register decodeRegister(const Json&);
Registered decodeRegistered(const Json&);
Heartbeat decodeHeartbeat(const Json&);
LeaseRenewed decodeLeaseRenewed(const Json&);
Reregister decodeReregister(const Json&);
// The epoch a frame validate() accepted carries; 0 when it has none.
std::uint64_t epochOf(const Json&);
PlanMsg decodePlan(const Json&);
StepResult decodeStepResult(const Json&);
Event decodeEvent(const Json&);
Policy decodePolicy(const Json&);
PeerAsk decodePeerAsk(const Json&);
PeerAnswer decodePeerAnswer(const Json&);

}  // namespace loom::protocol
