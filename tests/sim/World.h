// The simulator's world (internal to tests/sim): one run's processes, network, scheduler and
// judges. Simulation.cpp holds the scheduler, the blades, a solo loomd, the faults and the
// judges; Replicas.cpp the loomd replicas, their elections and terms, and the store they
// share. See README.md for the picture.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <vector>

#include "controller/Controller.h"
#include "controller/Leadership.h"
#include "tests/sim/Invariants.h"
#include "tests/sim/MemoryStateStore.h"
#include "tests/sim/ProcessClock.h"
#include "tests/sim/Scenario.h"
#include "tests/sim/SimElection.h"
#include "tests/sim/SimStore.h"
#include "tests/sim/Simulation.h"

namespace loom::sim::detail {

using Json = protocol::Json;

// Journal stamps and loomd's event times: virtual real time from here.
inline constexpr std::int64_t kEpochMs = 1'700'000'000'000;

struct Process {
  enum class State : std::uint8_t { Down, Running, Frozen };
  State state = State::Down;
  std::uint32_t incarnation = 0;
  ProcessClock clock;
  std::deque<Packet> backlog;       // frames that arrived while frozen, in arrival order
  std::int64_t tickAt = kNotSince;  // the pending tick event's time (kNotSince: none)
  std::uint64_t tickGen = 0;
  std::int64_t frozenAt = 0;
};

struct BladeNode {
  Process proc;
  BladeSpec spec;
  std::unique_ptr<drivers::test::TestDriver> hypervisor;
  std::map<std::string, EndCause> endings;
  std::unique_ptr<agent::Agent> agent;
  std::map<std::string, std::string> running;  // uuid -> domain, as last polled
  std::int64_t connectAt = 0;                  // solo: its connection to loomd is up from (after a loomd restart)
  std::int64_t watchdogAt = kNotSince;         // real time the watchdog is armed for
};

// Where the run's agents keep their outage policy and epoch bar across restarts
// (loom-agent's --state-dir): a directory of the run's own, removed with it.
class StateDir {
 public:
  StateDir();
  ~StateDir();
  StateDir(const StateDir&) = delete;
  StateDir& operator=(const StateDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class World;

// The StateStore a replica's term commits through (EtcdStateStore in loomd): every call
// crosses the replica's link to the store, and every commit carries the term's epoch as
// its guard (main.cpp: setGuard(leaderKey, epoch)).
class TermStore final : public controller::StateStore {
 public:
  TermStore(World& world, int replica, std::uint64_t epoch) : world_(world), replica_(replica), epoch_(epoch) {}
  Result<controller::StoredState> load() override;
  Status commit(const controller::Change& change) override;
  Result<std::vector<controller::EventRecord>> events(std::uint64_t sinceId, std::size_t limit) override;

 private:
  World& world_;
  int replica_;
  std::uint64_t epoch_;
};

// One loomd process: the solo loomd (node 0, on its own MemoryStateStore), or a replica.
struct ControllerNode {
  int node = 0;
  int index = 0;  // which replica (0 for solo)
  Process proc;
  MemoryStateStore store;  // solo only: loomd's disk
  std::unique_ptr<controller::Controller> core;
  bool turned = false;
  std::int64_t lastTurnLocal = 0;

  // Replicas only. The process's Leadership and election live as long as it does; a term
  // (the store client and the Controller over it, the agents' endpoint bound) as long as
  // it leads.
  std::unique_ptr<controller::Leadership> leadership;
  std::unique_ptr<SimElection> election;
  std::unique_ptr<TermStore> termStore;
  std::uint64_t termEpoch = 0;
  std::uint32_t termGen = 0;  // fabric frames are for one term's socket
  std::uint64_t timerGen = 0;
  std::int64_t timerAt = kNotSince;  // the election's pending timer (real time)
  // Per blade (index node - 1): from when that agent's connection to this term's socket
  // is complete (kNotSince: none).
  std::vector<std::int64_t> connUpAt;
  struct ApiCall {
    std::string method, path, body;
  };
  std::deque<ApiCall> apiBacklog;  // operator requests that reached it while frozen
  bool stopping = false;           // SIGTERM: it exits once its lease's revoke is sent
  bool restartOnExit = false;      // ... and is started again then (its fault, or the heal, ended first)
};

class World {
 public:
  World(const ScenarioPlan& plan, std::uint64_t seed, const SimOptions& options);
  RunResult run();

  // TermStore's calls: a blocking call of replica `replica`'s term, over its link to the
  // store (Replicas.cpp).
  Result<controller::StoredState> storeLoad(int replica);
  Status storeCommit(int replica, std::uint64_t epoch, const controller::Change& change);
  Result<std::vector<controller::EventRecord>> storeEvents(int replica, std::uint64_t sinceId, std::size_t limit);

 private:
  struct Event {
    std::int64_t at;
    std::uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Event& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  enum class TraceKind : std::uint8_t { Deliver, Lost, Tick, Fault, Api, Watchdog, Ending, Note, Violation };

  void at(std::int64_t t, std::function<void()> fn);
  Process& proc(int node);
  BladeNode& blade(int node) { return blades_[static_cast<std::size_t>(node - 1)]; }
  bool isBlade(int node) const { return node >= 1 && node <= bladeCount(); }
  bool isController(int node) const;
  ControllerNode& ctl(int node);
  int bladeCount() const { return static_cast<int>(blades_.size()); }
  bool replicated() const { return plan_.replicas > 0; }
  void notePolicy(int node, const std::string& bytes);
  int nodeOf(const std::string& name) const;
  std::int64_t local(int node) { return proc(node).clock.local(now_); }

  void trace(TraceKind kind, int a, int b, std::string text);
  std::string format(std::int64_t t, TraceKind kind, int a, int b, const std::string& text) const;

  // Processes.
  void startController();  // solo
  void crashController();  // solo
  void startAgent(int node);
  void crashAgent(int node);
  void freeze(int node);
  void resume(int node);
  void setState(int node, Process::State s);
  void scheduleTick(int node, std::int64_t real);
  void rescheduleAgent(int node);
  void rescheduleController(ControllerNode& c);
  void controllerTurn(ControllerNode& c);
  void armWatchdog(int node, std::int64_t remainingMs);

  // Messages.
  bool agentSend(int node, const Json& frame);
  bool peerSend(int node, const std::string& toBlade, const std::string& bytes);
  void controllerSend(ControllerNode& c, const std::string& bladeName, std::string bytes);
  void deliver(Packet p);
  void handle(const Packet& p);

  // Faults and the operator.
  void beginFault(std::size_t i);
  void endFault(std::size_t i);
  // The request to `target` (solo: loomd; replicas: where loomctl reaches, see
  // Replicas.cpp); `out` set: answered for the simulator itself, not traced as the operator's.
  void api(const std::string& method, const std::string& path, const std::string& body,
           controller::ApiResponse* out = nullptr, bool stale = false);
  void apiTo(ControllerNode& c, const std::string& method, const std::string& path, const std::string& body,
             controller::ApiResponse* out);
  void applyDeclarations();
  void heal();
  void checkConvergence();

  // Invariants.
  void pollBlade(int node);
  void afterEvent();
  void violation(Violation::Kind kind, std::string what);
  void finalChecks();

  // Replicas (Replicas.cpp).
  void setUpReplicas();
  void startReplica(int i);
  void crashReplica(int i);
  void stopReplicaGracefully(int i);
  void exitReplica(int i, const char* how);
  void tearDownTerm(ControllerNode& c);
  void replicaWon(int i, std::uint64_t epoch);
  void endTerm(int i, const std::string& why);
  void rescheduleElection(ControllerNode& c);
  void electionTimer(int i);
  void resumeReplica(ControllerNode& c);
  void electionSend(int i, const SimElection::Call& call);
  void storeDeliver(const Packet& p);
  void replicaDeliver(ControllerNode& c, const Packet& p);
  bool replicaAgentSend(int node, const Json& frame);
  bool connectionUsable(const ControllerNode& c, int blade) const;
  void replicaLinkChanged(int a, int b, LinkState s);
  // The replica acting now (Running, with a term, its Leadership acting), if any.
  ControllerNode* actingReplica();
  // -1 in a fault: the replica acting now (else one with a term); else that replica.
  int resolveReplica(int wanted);
  void judgeReplicas();
  template <class T>
  Result<T> storeCall(int replica, const std::function<Result<T>()>& answerNow, const std::function<void()>& applyLater,
                      const std::string& what);
  // A request to the store from `replica` on `channel`, applied when (if) it arrives: sent
  // through the network now (deliverAt < 0), or delivered at `deliverAt`.
  void storeRequest(int replica, Channel channel, std::string what, std::function<void()> apply,
                    std::int64_t deliverAt);
  void applyStoreRequest(std::uint64_t id);
  // Every request of `replica`'s term client still on its way arrives now, in order (its
  // next one cannot overtake them).
  void flushStoreQueue(int replica, std::uint64_t upTo = 0);
  void noteApply(const std::string& path, const std::string& body, int status);
  // At the end: whether the leader's servers' power is what the store holds (not a
  // violation: a change whose commit timed out yet landed shows up here).
  void compareWithStore(const Json& servers);

  const ScenarioPlan& plan_;
  std::uint64_t seed_;
  SimOptions options_;
  Rng netRng_, clockRng_, procRng_;
  std::int64_t now_ = 0;
  std::uint64_t seq_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> queue_;
  std::shared_ptr<drivers::test::ManualClock> hwClock_;
  Network net_;
  std::vector<std::unique_ptr<ControllerNode>> ctls_;  // solo: one, at node 0
  std::vector<BladeNode> blades_;
  std::vector<std::string> names_;  // by node
  controller::ControllerOptions ctlOptions_;
  DoubleRunJudge doubleRuns_;
  OutageJudge outage_;
  std::vector<char> faultBegun_, faultEnded_, faultApplied_;
  std::vector<int> faultTarget_;                              // the replica a fault was applied to
  std::vector<std::vector<std::pair<int, int>>> faultLinks_;  // the links it cut
  std::uint64_t packetIds_ = 0;
  bool stopped_ = false;
  bool healed_ = false;
  std::set<int> touched_;
  std::map<int, std::uint64_t> policyVersion_;  // per blade: the newest policy delivered
  StateDir stateDir_;

  // Replicas.
  int storeNode_ = -1;
  Process storeProc_;  // the store's clock; its quorum is SimStore's
  Process noProcess_;  // node 0 when there are replicas: nobody
  std::unique_ptr<SimStore> store_;
  Rng replicaRng_;
  std::vector<std::uint32_t> roundRobin_;                 // per blade: its DEALER's next pick
  std::map<std::pair<int, int>, std::int64_t> cutSince_;  // replica-blade links cut, since
  struct StoreRequest {
    int replica = 0;
    std::string what;
    std::function<void()> apply;
  };
  std::map<std::uint64_t, StoreRequest> storeRequests_;  // packet id -> applied on arrival
  std::map<int, std::deque<std::uint64_t>> storeQueue_;  // per replica: its term client's, oldest first
  std::map<std::uint64_t, std::function<void(std::int64_t arrivedAt)>> storeAnswers_;  // packet id -> on arrival
  ActingJudge acting_;
  std::set<std::pair<std::uint64_t, std::int64_t>> pastTermReported_;  // (commit's epoch, key's)
  AckJudge acks_;
  std::set<std::string> undrainPending_;

  RunResult result_;
  struct TraceRecord {
    std::int64_t t;
    TraceKind kind;
    int a, b;
    std::string text;
  };
  std::deque<TraceRecord> tail_;
  bool tailFrozen_ = false;
  std::uint64_t hash_ = 0xcbf29ce484222325ULL;
  std::vector<std::string> lastConvergenceProblems_;
};

// A frame shown in a trace line: shortened.
std::string summarize(const std::string& bytes, std::size_t max = 240);
// An API answer as a trace shows it: its first `max` bytes on one line, the planner's
// wall time masked (it is not a function of the seed).
std::string apiShown(std::string body, std::size_t max);

}  // namespace loom::sim::detail
