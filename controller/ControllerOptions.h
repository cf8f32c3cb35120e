// loomd's tunables, shared by the controller's rooms (read-only after construction).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "loom/Result.h"

namespace loom::controller {

struct ControllerOptions {
  std::int64_t heartbeatMs = 1000;  // told to agents
  std::int64_t leaseMs = 5000;      // told to agents; renewed by every heartbeat
  std::int64_t suspectMs = 2500;    // silence after which a blade is suspect
  std::int64_t deadMs = 4000;       // silence after which a blade is failed
  // A failed blade is fenced (its servers may run elsewhere) once the lease the
  // controller last granted it has expired plus this margin: the agent's clock may run
  // slower than ours (rate drift), and the lease-renewed frame takes time to arrive.
  std::int64_t fenceMarginMs = 250;
  // Run when a blade is failed, by /bin/sh -c, with {blade} {chassis} {slot} {hostname}
  // and its declared BMC's {bmc_address} {bmc_port} {bmc_user} {bmc_password_file}
  // replaced by shell-quoted values; exit 0 means power-off confirmed (IPMI, Redfish).
  // With it, a blade with a BMC is power-fenced (docs/FENCING.md).
  std::string fenceCommand;
  std::int64_t fenceTimeoutMs = 20000;
  // Fencing-storm guard: while more than this share of the (non-retired) blades are
  // silent, and at least stormMinBlades of them, nothing is fenced: more likely the
  // controller is cut off than half the fabric dead.
  double stormShare = 0.5;
  std::size_t stormMinBlades = 3;
  // Set when another thread answers heartbeats (lease-renewed) and registers (registered)
  // as they arrive (loomd's fabric thread, through leases()); otherwise the controller
  // answers them itself.
  bool fabricRenewsLeases = false;
  std::int64_t opTimeoutMs = 15000;        // an operation not answered by then is retried
  int opMaxAttempts = 4;                   // then it becomes a fault event
  std::int64_t opBackoffMs = 500;          // first retry delay, doubled each attempt
  std::int64_t replanMinIntervalMs = 100;  // debounce for bursts of changes
  std::size_t maxStepsPerPlanMessage = 64;
  std::size_t eventMemory = 10000;  // events kept in memory for /v1/events
  // Events kept in the store (the newest; older ones are deleted as new ones come), so the
  // log is bounded: at ~250 B an event, 100,000 are about 25 MB. At least eventMemory.
  std::uint64_t eventRetention = 100000;
  // The outage rule (docs/FENCING.md). 0: the defaults, 0.4 and 2 leases.
  std::int64_t commitMs = 0;    // C: how long a blade promises not to attest after our stamp
  std::int64_t attestMs = 0;    // V: how long one attestation shields
  std::size_t quorumSize = 64;  // the quorum set's most members
  std::int64_t quorumDebounceMs = 1000;
  std::uint32_t stampTag = 0;  // this process's stamp tag; 0: random (tests fix it)
  // Access (controller/access/). Called by recover() when the store holds no token at
  // all (the first start): the admin token to keep the hash of (loomd reads or writes
  // admin.token; tests give a fixed one). An error fails the recovery. Unset: no token is
  // made, and only /v1/health answers until one exists.
  std::function<Result<std::string>()> adminBootstrap;
  std::size_t auditRetention = 100000;  // audit records kept in the store
};

}  // namespace loom::controller
