// One blade's agent: registers with the controller, heartbeats, executes plan steps
// through its driver and reports results and observed domains. Socket-agnostic (frames
// in through onFrame, out through Send) and single-threaded: AgentHost runs one of
// these per real blade, or thousands on one thread for --simulate.
//
// Its rooms: Agent.cpp the conversation with the controller (registration, lease,
// heartbeats, self-fencing, tick); AgentSteps.cpp plan steps through the driver (the
// worker thread, execute, the domain list); AgentOutage.cpp the outage rule (policy, peer
// channel, shield, hold; docs/FENCING.md).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "drivers/Driver.h"
#include "node-agent/EpochGuard.h"
#include "node-agent/LeaseGuard.h"
#include "node-agent/Shield.h"
#include "protocol/Dispatcher.h"
#include "protocol/Messages.h"

namespace loom::agent {

inline constexpr const char* kAgentVersion = "0.1.0";
// A heartbeat that found no connection is tried again this soon.
inline constexpr std::int64_t kUnsentRetryMs = 100;

struct AgentConfig {
  std::string blade;
  // What it reports at registration; `personality` follows the prepare-hypervisor steps it
  // runs (the driver keeps it across agent restarts, Driver::preparePersonality).
  protocol::BladeInventory inventory;
  // Where this blade connects, when not where the host's others do (a simulated fabric
  // whose chassis each have a relay): the endpoint, and the public key it presents (Z85;
  // empty: the host's --server-key).
  std::string controller;
  std::string serverKey;
  std::int64_t registerRetryMs = 1000;
  // Run driver calls (define/start/stop/undefine, listing) on a worker thread of this
  // agent. For real drivers: a KVM start or a stop waiting for a guest to shut down takes
  // seconds, and on the agent's thread it would hold up heartbeats until the controller
  // suspects a healthy blade. The simulator (thousands of instant test drivers on one
  // thread) keeps it off.
  bool driverThread = false;
  // Where the outage policy (docs/FENCING.md) is kept across agent restarts, so an agent
  // restarted while loomd is away can still ask its peers; empty: not kept.
  std::string policyPath;
  // Where the highest leader epoch seen is kept (EpochGuard.h), so a restarted agent still
  // refuses a replaced leader's frames; empty: not kept.
  std::string epochPath;
};

class Agent {
 public:
  // Returns whether the frame went out; false when there is no connection to the
  // controller right now (the frame is dropped, not queued).
  using Send = std::function<bool(const protocol::Json& frame)>;
  // Sends a frame on the peer channel to a member of the quorum set (docs/FENCING.md);
  // false when it could not go out (dropped, not queued: the shield's asks are resent).
  using PeerSend = std::function<bool(const protocol::PeerAddress& to, const protocol::Json& frame)>;

  // `guard` (may be null: the agent alone fences, and a frozen agent cannot) is renewed
  // with every lease.
  Agent(AgentConfig config, std::unique_ptr<drivers::Driver> driver, Send send,
        std::unique_ptr<LeaseGuard> guard = nullptr);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Adopts what the hypervisor already runs (after an agent restart) and registers.
  void start(std::int64_t now);
  void onFrame(std::string_view bytes, std::int64_t now);
  // Without one, this blade asks no peer (it holds its servers only under its lease).
  void setPeerSend(PeerSend send) { peerSend_ = std::move(send); }
  // A frame on the peer channel: an ask gets the answer to send back on the connection it
  // came on; an answer (to one of our asks) gets nothing. Malformed frames are counted and
  // dropped, like the controller's.
  std::optional<protocol::Json> onPeerFrame(std::string_view bytes, std::int64_t now);
  // Heartbeats, registration retries, lease bookkeeping.
  void tick(std::int64_t now);
  std::int64_t nextTickAt() const { return nextTick_; }

  const std::string& blade() const { return config_.blade; }
  bool registered() const { return registered_; }
  // Whether it has warned that the controller does not answer its registers (once per
  // silence: five retries unanswered, counted from the first).
  bool warnedControllerSilent() const { return warnedSilence_; }
  // Holds a lease now (registered, renewed, not yet run out).
  bool leased() const { return leased_; }
  // Runs servers without a lease, under the shield its peers gave (docs/FENCING.md).
  bool holding() const { return holdSince_ >= 0; }
  const Shield& shield() const { return shield_; }
  std::uint64_t rejected() const { return dispatcher_.rejectedTotal(); }
  // The newest leader epoch seen, and the frames refused as older (EpochGuard.h).
  std::uint64_t epoch() const { return epochs_.highest(); }
  std::uint64_t refusedStale() const { return epochs_.refused(); }

 private:
  void sendRegister(std::int64_t now);
  // Registers now, unless a register went out less than registerRetryDelay() ago (then
  // tick() sends the next one when that delay is over).
  void requestRegister(std::int64_t now);
  // How long an unanswered register waits before the next: registerRetryMs, doubled per
  // unanswered attempt up to 4 times it, stretched by a per-blade jitter of up to a half.
  std::int64_t registerRetryDelay() const;
  // Every frame from loomd passes here first: false for one of a replaced leader (dropped);
  // true otherwise, and loomd counts as heard.
  bool admit(const protocol::Json& frame);
  void onRegistered(const protocol::Json& frame);
  void onLeaseRenewed(const protocol::Json& frame);
  void onPlan(const protocol::Json& frame);
  void onPolicy(const protocol::Json& frame);
  // A stamp of loomd arrived (registered, lease-renewed): this blade promises not to attest
  // for the commit window, and echoes it.
  void takeStamp(std::uint64_t stamp);
  // Until when it may run its servers: the later of its lease and its shield (0: never held
  // either in this process, or fenced since).
  std::int64_t holdUntil() const;
  // Asks its peers for a shield when loomd has been quiet; notes a hold that begins or ends.
  void tendShield(std::int64_t now);
  // When tendShield has something to do next (max when the blade needs no shield).
  std::int64_t shieldDueAt() const;
  // The guard must fire no later than holdUntil(); renewed whenever that moves, earlier as
  // well as later (a newer policy may end the shield).
  void renewGuard();
  std::size_t runningDomains();
  void savePolicy() const;
  void loadPolicy();
  // The lease runs out: destroy every domain before it does, and register again.
  void selfFence(std::int64_t now);
  void extendLease(std::int64_t deadline);
  // When selfFence is due (max when there is no lease).
  std::int64_t fenceAt() const;
  protocol::StepResult execute(const protocol::PlanStep& step);
  // Destroys every running or paused domain (self-fencing; never a controller's step).
  void fenceDomains();
  std::vector<protocol::ObservedDomain> observe();
  std::vector<protocol::ObservedDomain> observeDriver(const std::vector<protocol::ObservedDomain>& fallback);
  void runWorker();
  void collectResults();

  AgentConfig config_;
  std::unique_ptr<drivers::Driver> driver_;
  Send send_;
  std::unique_ptr<LeaseGuard> guard_;
  protocol::Dispatcher<int> dispatcher_;
  EpochGuard epochs_;

  bool registered_ = false;
  bool warnedSilence_ = false;
  bool warnedQuiet_ = false;
  int registerAttempts_ = 0;  // registers sent since the last one answered
  std::int64_t now_ = 0;
  std::int64_t startedAt_ = 0;
  std::int64_t heartbeatMs_ = 1000;
  std::int64_t leaseMs_ = 5000;
  std::int64_t lastRegisterSent_ = -1'000'000'000;
  std::int64_t lastHeardFromController_ = 0;
  // The lease: from the controller's first answer to when it runs out, on our clock,
  // counted from when we SENT the frame it answered (never later than the controller's
  // own idea of it, which counts from when it answered).
  bool leased_ = false;
  std::int64_t leaseDeadline_ = 0;
  std::int64_t firstUnansweredRegister_ = -1;
  std::uint64_t registerSeq_ = 0;
  std::deque<std::pair<std::uint64_t, std::int64_t>> registerSentAt_;   // (seq, when), unanswered
  std::deque<std::pair<std::uint64_t, std::int64_t>> heartbeatSentAt_;  // (seq, when), recent
  std::int64_t nextHeartbeat_ = 0;
  std::int64_t nextTick_ = 0;
  std::uint64_t seq_ = 0;
  std::uint64_t lastBeatBeforeRegister_ = 0;  // seq_ when the latest register was sent
  std::uint64_t heartbeatsSinceFull_ = 0;
  bool domainsChanged_ = true;
  std::vector<protocol::ObservedDomain> lastReported_;
  // Recent results by operation id: a resent step is answered, not redone.
  std::unordered_map<std::uint64_t, protocol::StepResult> recent_;
  std::deque<std::uint64_t> recentOrder_;

  // With driverThread: the worker owns driver_ once started; the agent thread hands it
  // steps and takes back results and the latest domain list, under mu.
  struct Worker {
    std::thread thread;
    std::mutex mu;
    std::condition_variable cv;
    std::deque<protocol::PlanStep> inbox;
    std::deque<protocol::StepResult> outbox;
    std::vector<protocol::ObservedDomain> observed;
    bool fence = false;  // fence before the next step (selfFence empties the inbox too)
    bool stop = false;
  };
  std::unique_ptr<Worker> worker_;

  // The outage rule (docs/FENCING.md).
  Shield shield_;
  PeerSend peerSend_;
  protocol::Dispatcher<int> peerDispatcher_;
  std::optional<protocol::Json> peerReply_;  // the answer onPeerFrame returns
  std::uint64_t lastStamp_ = 0;              // echoed in heartbeats
  bool powerFenced_ = false;
  std::map<std::string, protocol::PeerAddress> peers_;  // the policy's members
  std::int64_t guardUntil_ = 0;                         // the guard fires at the latest then
  std::int64_t holdSince_ = -1;                         // holding without a lease since then
  std::size_t holdServers_ = 0;
  std::int64_t holdLoggedAt_ = 0;
  std::int64_t idleUntil_ = 0;                           // no running server to shield: no asks before then
  std::optional<protocol::Heartbeat::Held> heldReport_;  // sent in the next few heartbeats
  int heldReportsLeft_ = 0;
  // Op ids handed to the worker, not answered yet, with the epoch bar they were taken
  // under (EpochGuard::highest()).
  std::map<std::uint64_t, std::uint64_t> queued_;
};

}  // namespace loom::agent
