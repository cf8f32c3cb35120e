#include "tests/sim/Simulation.h"

#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>

#include "drivers/test/Journal.h"
#include "tests/sim/Invariants.h"
#include "tests/sim/MemoryStateStore.h"
#include "tests/sim/ProcessClock.h"

namespace loom::sim {
namespace {

using protocol::Json;

// Journal stamps and loomd's event times: virtual real time from here.
constexpr std::int64_t kEpochMs = 1'700'000'000'000;
// How often, after the heal, the quiet period looks for convergence.
constexpr std::int64_t kConvergeCheckMs = 1000;

thread_local std::int64_t tVirtualNow = 0;

std::uint64_t fnv(std::uint64_t h, const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}
template <class T>
std::uint64_t fnvValue(std::uint64_t h, T v) {
  return fnv(h, &v, sizeof v);
}

// A frame shown in a trace line: its type and, shortened, the rest.
std::string summarize(const std::string& bytes, std::size_t max = 240) {
  std::string s = bytes.size() > max ? bytes.substr(0, max) + "...(" + std::to_string(bytes.size()) + " bytes)" : bytes;
  return s;
}

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
  std::int64_t connectAt = 0;                  // its connection to loomd is up from (after a loomd restart)
  std::int64_t watchdogAt = kNotSince;         // real time the watchdog is armed for
};

struct ControllerNode {
  Process proc;
  MemoryStateStore store;
  std::unique_ptr<controller::Controller> core;
  bool turned = false;
  std::int64_t lastTurnLocal = 0;
};

// Where the run's agents keep their outage policy across restarts (loom-agent's
// --state-dir): a directory of the run's own, removed with it.
class StateDir {
 public:
  StateDir() {
    char tmpl[] = "/tmp/loom-sim-XXXXXX";
    if (::mkdtemp(tmpl)) path_ = tmpl;
  }
  ~StateDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  StateDir(const StateDir&) = delete;
  StateDir& operator=(const StateDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class World {
 public:
  World(const ScenarioPlan& plan, std::uint64_t seed, const SimOptions& options);
  RunResult run();

 private:
  struct Event {
    std::int64_t at;
    std::uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Event& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  enum class TraceKind : std::uint8_t { Deliver, Lost, Tick, Fault, Api, Watchdog, Ending, Note, Violation };

  void at(std::int64_t t, std::function<void()> fn);
  Process& proc(int node) { return node == 0 ? ctl_.proc : blades_[static_cast<std::size_t>(node - 1)].proc; }
  BladeNode& blade(int node) { return blades_[static_cast<std::size_t>(node - 1)]; }
  void notePolicy(int node, const std::string& bytes);
  StateDir stateDir_;
  std::map<int, std::uint64_t> policyVersion_;  // per blade: the newest policy delivered
  int nodeOf(const std::string& name) const;
  std::int64_t local(int node) { return proc(node).clock.local(now_); }

  void trace(TraceKind kind, int a, int b, std::string text);
  std::string format(std::int64_t t, TraceKind kind, int a, int b, const std::string& text) const;

  // Processes.
  void startController();
  void crashController();
  void startAgent(int node);
  void crashAgent(int node);
  void freeze(int node);
  void resume(int node);
  void setState(int node, Process::State s);
  void scheduleTick(int node, std::int64_t real);
  void rescheduleAgent(int node);
  void rescheduleController();
  void controllerTurn();
  void armWatchdog(int node, std::int64_t remainingMs);

  // Messages.
  bool agentSend(int node, const Json& frame);
  bool peerSend(int node, const std::string& toBlade, const std::string& bytes);
  void controllerSend(const std::string& bladeName, std::string bytes);
  void deliver(Packet p);
  void handle(const Packet& p);

  // Faults and the operator.
  void beginFault(std::size_t i);
  void endFault(std::size_t i);
  void api(const std::string& method, const std::string& path, const std::string& body,
           controller::ApiResponse* out = nullptr);
  void heal();
  void checkConvergence();

  // Invariants.
  void pollBlade(int node);
  void afterEvent();
  void violation(Violation::Kind kind, std::string what);
  void finalChecks();

  const ScenarioPlan& plan_;
  std::uint64_t seed_;
  SimOptions options_;
  Rng netRng_, clockRng_, procRng_;
  std::int64_t now_ = 0;
  std::uint64_t seq_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> queue_;
  std::shared_ptr<drivers::test::ManualClock> hwClock_;
  Network net_;
  ControllerNode ctl_;
  std::vector<BladeNode> blades_;
  std::vector<std::string> names_;  // by node
  controller::ControllerOptions ctlOptions_;
  DoubleRunJudge doubleRuns_;
  OutageJudge outage_;
  std::vector<char> faultBegun_, faultEnded_, faultApplied_;
  std::uint64_t packetIds_ = 0;
  bool stopped_ = false;
  bool healed_ = false;
  std::set<int> touched_;

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

World::World(const ScenarioPlan& plan, std::uint64_t seed, const SimOptions& options)
    : plan_(plan),
      seed_(seed),
      options_(options),
      netRng_(Rng::derive(seed, "network")),
      clockRng_(Rng::derive(seed, "clocks")),
      procRng_(Rng::derive(seed, "processes")),
      hwClock_(std::make_shared<drivers::test::ManualClock>(kEpochMs)),
      net_(static_cast<int>(plan.blades.size()) + 1, plan.network, Rng::derive(seed, "network-fates"),
           [this](std::int64_t t, Packet p) { at(t, [this, p = std::move(p)]() mutable { deliver(std::move(p)); }); }),
      ctlOptions_(controllerOptions(plan.leaseMs, plan.heartbeatMs)),
      outage_(static_cast<int>(plan.blades.size()), options.stableWindowMs > 0 && options.controllerOutWindowMs > 0
                                                        ? Windows{options.stableWindowMs, options.controllerOutWindowMs}
                                                        : Windows::forLease(plan.leaseMs, plan.network.maxUpDelayMs)) {
  names_.push_back("loomd");
  for (const auto& b : plan.blades) names_.push_back(b.name);
  // Monotonic clocks: each host booted at its own time, each crystal off by its own rate.
  auto clock = [&] {
    return ProcessClock(clockRng_.range(1'000'000, 5'000'000'000),
                        clockRng_.range(-ProcessClock::kMaxRatePpm, ProcessClock::kMaxRatePpm));
  };
  ctl_.proc.clock = clock();
  blades_.resize(plan.blades.size());
  for (std::size_t i = 0; i < plan.blades.size(); ++i) {
    blades_[i].spec = plan.blades[i];
    blades_[i].proc.clock = clock();
    blades_[i].hypervisor = makeHypervisor(plan.blades[i], hwClock_);
  }
  net_.onLinkChanged([this](int a, int b, LinkState s, std::int64_t now) {
    outage_.setLink(a, b, s, now);
    trace(TraceKind::Note, a, b, std::string("link ") + toString(s));
  });
  faultBegun_.assign(plan.faults.size(), 0);
  faultEnded_.assign(plan.faults.size(), 0);
  faultApplied_.assign(plan.faults.size(), 0);
  result_.seed = seed;
  result_.scenario = plan.name;
  result_.fifo = plan.network.fifo;
}

int World::nodeOf(const std::string& name) const {
  for (std::size_t i = 1; i < names_.size(); ++i)
    if (names_[i] == name) return static_cast<int>(i);
  return -1;
}

void World::at(std::int64_t t, std::function<void()> fn) { queue_.push({std::max(t, now_), ++seq_, std::move(fn)}); }

// ---------------------------------------------------------------------------------------
// Trace

std::string World::format(std::int64_t t, TraceKind kind, int a, int b, const std::string& text) const {
  auto name = [&](int n) {
    return n >= 0 && n < static_cast<int>(names_.size()) ? names_[static_cast<std::size_t>(n)] : std::string("-");
  };
  char head[48];
  std::snprintf(head, sizeof head, "t=%7lld.%03lld ", static_cast<long long>(t / 1000),
                static_cast<long long>(t % 1000));
  std::string line = head;
  switch (kind) {
    case TraceKind::Deliver:
      line += name(a) + " -> " + name(b) + "  " + text;
      break;
    case TraceKind::Lost:
      line += name(a) + " -x " + name(b) + "  " + text;
      break;
    case TraceKind::Tick:
      line += name(a) + " tick";
      break;
    case TraceKind::Fault:
      line += "FAULT " + text;
      break;
    case TraceKind::Api:
      line += "API " + text;
      break;
    case TraceKind::Watchdog:
      line += name(a) + " watchdog " + text;
      break;
    case TraceKind::Ending:
      line += name(a) + " " + text;
      break;
    case TraceKind::Note:
      line += (a >= 0 ? name(a) : std::string()) + (b >= 0 ? "-" + name(b) : std::string()) + " " + text;
      break;
    case TraceKind::Violation:
      line += "VIOLATION " + text;
      break;
  }
  return line;
}

void World::trace(TraceKind kind, int a, int b, std::string text) {
  hash_ = fnvValue(hash_, now_);
  hash_ = fnvValue(hash_, static_cast<std::uint8_t>(kind));
  hash_ = fnvValue(hash_, a);
  hash_ = fnvValue(hash_, b);
  hash_ = fnv(hash_, text.data(), text.size());
  if (options_.verbose) std::printf("%s\n", format(now_, kind, a, b, text).c_str());
  // Ticks are hashed, but a tail of them says nothing: the frames and faults around it do.
  if (tailFrozen_ || options_.traceTail == 0 || kind == TraceKind::Tick) return;
  tail_.push_back({now_, kind, a, b, std::move(text)});
  while (tail_.size() > options_.traceTail) tail_.pop_front();
}

// ---------------------------------------------------------------------------------------
// Processes

void World::setState(int node, Process::State s) {
  Process& p = proc(node);
  p.state = s;
  outage_.setRunning(node, s == Process::State::Running, now_);
}

void World::scheduleTick(int node, std::int64_t real) {
  Process& p = proc(node);
  if (p.state != Process::State::Running) return;
  real = std::max(real, now_);
  if (p.tickAt != kNotSince && p.tickAt <= real) return;  // one no later is pending
  p.tickAt = real;
  const std::uint64_t gen = ++p.tickGen;
  at(real, [this, node, gen] {
    Process& q = proc(node);
    if (q.tickGen != gen || q.state != Process::State::Running) return;
    q.tickAt = kNotSince;
    if (node == 0) {
      controllerTurn();
    } else {
      trace(TraceKind::Tick, node, -1, "");
      blade(node).agent->tick(local(node));
      touched_.insert(node);
      rescheduleAgent(node);
    }
  });
}

void World::rescheduleAgent(int node) {
  BladeNode& b = blade(node);
  if (b.proc.state != Process::State::Running || !b.agent) return;
  scheduleTick(node, b.proc.clock.realAt(b.agent->nextTickAt()));
}

// loomd's core loop (ControllerLoop::run): it wakes for frames or at the controller's
// next timer, at least every 100 ms; each turn the frames first, then tick(). A turn
// more than a second after the previous one is a stall the controller is told of
// (forgiveStall), as loomd's loop does after a SIGSTOP.
void World::controllerTurn() {
  const std::int64_t l = local(0);
  if (ctl_.turned && l - ctl_.lastTurnLocal > 1000) ctl_.core->forgiveStall(l - ctl_.lastTurnLocal);
  ctl_.turned = true;
  ctl_.lastTurnLocal = l;
  ctl_.core->tick(l);
  rescheduleController();
}

void World::rescheduleController() {
  if (ctl_.proc.state != Process::State::Running || !ctl_.core) return;
  const std::int64_t due = std::min(ctl_.core->nextTickAt(), ctl_.lastTurnLocal + 100);
  scheduleTick(0, ctl_.proc.clock.realAt(due));
}

void World::startController() {
  Process& p = ctl_.proc;
  ++p.incarnation;
  p.backlog.clear();
  // Each loomd process stamps with a tag of its own (random in loomd; here the seed's).
  ctlOptions_.stampTag = static_cast<std::uint32_t>(p.incarnation) & 0xfffff;
  ctl_.core = makeController(
      ctl_.store, ctlOptions_, [this](const std::string& b, std::string f) { controllerSend(b, std::move(f)); },
      [this] { return kEpochMs + now_; });
  setState(0, Process::State::Running);
  ctl_.turned = false;
  if (auto s = ctl_.core->recover(local(0)); !s)
    violation(Violation::Kind::Setup, "loomd recover failed: " + s.error().message);
  // The agents' connections come back one by one (ZeroMQ reconnects every 100-500 ms).
  for (std::size_t i = 0; i < blades_.size(); ++i) blades_[i].connectAt = now_ + procRng_.range(100, 500);
  trace(TraceKind::Note, 0, -1, "loomd started (incarnation " + std::to_string(p.incarnation) + ")");
  scheduleTick(0, now_);
}

void World::crashController() {
  Process& p = ctl_.proc;
  ctl_.core.reset();
  p.backlog.clear();
  ++p.incarnation;  // what is on its way to the old process is lost with its sockets
  ++p.tickGen;
  p.tickAt = kNotSince;
  setState(0, Process::State::Down);
  trace(TraceKind::Note, 0, -1, "loomd killed");
}

void World::startAgent(int node) {
  BladeNode& b = blade(node);
  ++b.proc.incarnation;
  b.proc.backlog.clear();
  AgentWiring wiring;
  wiring.fabricSend = [this, node](const Json& frame) { return agentSend(node, frame); };
  wiring.peerSend = [this, node](const std::string& to, const std::string& bytes) { return peerSend(node, to, bytes); };
  wiring.armWatchdog = [this, node](std::int64_t remainingMs) { armWatchdog(node, remainingMs); };
  wiring.policyPath = stateDir_.path().empty() ? std::string() : stateDir_.path() + "/" + b.spec.name + ".policy.json";
  b.agent = makeAgent(b.spec, *b.hypervisor, b.endings, std::move(wiring));
  setState(node, Process::State::Running);
  trace(TraceKind::Note, node, -1, "agent started (incarnation " + std::to_string(b.proc.incarnation) + ")");
  b.agent->start(local(node));
  touched_.insert(node);
  rescheduleAgent(node);
}

void World::crashAgent(int node) {
  BladeNode& b = blade(node);
  b.agent.reset();  // its hypervisor and watchdog keep running
  b.proc.backlog.clear();
  ++b.proc.incarnation;
  ++b.proc.tickGen;
  b.proc.tickAt = kNotSince;
  setState(node, Process::State::Down);
  trace(TraceKind::Note, node, -1, "agent killed");
}

void World::freeze(int node) {
  Process& p = proc(node);
  ++p.tickGen;
  p.tickAt = kNotSince;
  p.frozenAt = now_;
  setState(node, Process::State::Frozen);
  trace(TraceKind::Note, node, -1, "SIGSTOP");
}

// SIGCONT: the frames that queued in its sockets are read first (both loops read before
// they tick), then its timers run.
void World::resume(int node) {
  Process& p = proc(node);
  setState(node, Process::State::Running);
  trace(TraceKind::Note, node, -1,
        "SIGCONT after " + std::to_string(now_ - p.frozenAt) + " ms, " + std::to_string(p.backlog.size()) +
            " frames queued");
  auto backlog = std::move(p.backlog);
  p.backlog.clear();
  for (auto& packet : backlog) {
    if (p.state != Process::State::Running) break;
    handle(packet);
  }
  if (node == 0) {
    if (ctl_.core) controllerTurn();
  } else {
    rescheduleAgent(node);
  }
}

// The agent armed its lease guard for `remainingMs` of its own clock: the blade's
// watchdog fires when the blade's clock reaches that, which is this real time.
void World::armWatchdog(int node, std::int64_t remainingMs) {
  BladeNode& b = blade(node);
  const std::int64_t deadline = b.proc.clock.realAt(b.proc.clock.local(now_) + remainingMs);
  b.hypervisor->armWatchdog(kEpochMs + deadline);
  b.watchdogAt = deadline;
  at(deadline, [this, node, deadline] {
    if (blade(node).watchdogAt != deadline) return;  // re-armed since
    touched_.insert(node);
  });
}

// ---------------------------------------------------------------------------------------
// Messages

// The agent's DEALER: a frame goes out while its connection to loomd is up (loomd
// running or frozen: the kernel keeps a frozen process's connections); with loomd down
// there is no connection and the frame is refused (ZMQ_IMMEDIATE), as in loom-agent.
bool World::agentSend(int node, const Json& frame) {
  if (ctl_.proc.state == Process::State::Down || now_ < blade(node).connectAt) return false;
  Packet p;
  p.id = ++packetIds_;
  p.src = node;
  p.dst = 0;
  p.channel = Channel::Fabric;
  p.bytes = frame.dump();
  p.sentAt = now_;
  p.dstIncarnation = ctl_.proc.incarnation;
  net_.send(std::move(p), now_);
  return true;
}

// The peer channel (docs/FENCING.md): blade to blade, directly, never through loomd.
bool World::peerSend(int node, const std::string& toBlade, const std::string& bytes) {
  const int to = nodeOf(toBlade);
  if (to < 0 || to == node) return false;
  Packet p;
  p.id = ++packetIds_;
  p.src = node;
  p.dst = to;
  p.channel = Channel::Peer;
  p.bytes = bytes;
  p.sentAt = now_;
  p.dstIncarnation = blade(to).proc.incarnation;
  net_.send(std::move(p), now_);
  return true;
}

// loomd's ROUTER: a frame to a blade whose agent is not connected is dropped.
void World::controllerSend(const std::string& bladeName, std::string bytes) {
  const int node = nodeOf(bladeName);
  if (node < 0) return;
  if (blade(node).proc.state == Process::State::Down) {
    trace(TraceKind::Lost, 0, node, "(agent down) " + summarize(bytes));
    return;
  }
  Packet p;
  p.id = ++packetIds_;
  p.src = 0;
  p.dst = node;
  p.channel = Channel::Fabric;
  p.bytes = std::move(bytes);
  p.sentAt = now_;
  p.dstIncarnation = blade(node).proc.incarnation;
  net_.send(std::move(p), now_);
}

void World::deliver(Packet p) {
  Process& dst = proc(p.dst);
  if (dst.state == Process::State::Down || dst.incarnation != p.dstIncarnation) {
    trace(TraceKind::Lost, p.src, p.dst, "(receiver gone) " + summarize(p.bytes));
    return;
  }
  if (dst.state == Process::State::Frozen) {
    dst.backlog.push_back(std::move(p));
    return;
  }
  handle(p);
}

// The quorum set a blade holds, as the invariant-7 judge counts it: the members of the
// newest policy loomd delivered to it (an agent ignores an older one that arrives late).
void World::notePolicy(int node, const std::string& bytes) {
  if (bytes.find("\"type\":\"policy\"") == std::string::npos) return;
  const Json f = Json::parse(bytes, nullptr, false);
  if (!f.is_object() || !f.contains("version") || !f.contains("members")) return;
  const auto version = f["version"].get<std::uint64_t>();
  auto& held = policyVersion_[node];
  if (version <= held) return;
  held = version;
  std::vector<int> members;
  for (const auto& m : f["members"])
    if (const int n = nodeOf(m.value("blade", std::string())); n > 0) members.push_back(n);
  outage_.setMembers(node, std::move(members));
}

void World::handle(const Packet& p) {
  hash_ = fnv(hash_, p.bytes.data(), p.bytes.size());  // the trace line shows it shortened
  trace(TraceKind::Deliver, p.src, p.dst, (p.duplicate ? "(dup) " : "") + summarize(p.bytes));
  if (p.dst == 0) {
    deliverToController(*ctl_.core, names_[static_cast<std::size_t>(p.src)], p.bytes, local(0));
    scheduleTick(0, now_);  // the loop turns after reading frames
  } else {
    if (p.src == 0) notePolicy(p.dst, p.bytes);
    if (auto answer = deliverToAgent(*blade(p.dst).agent, p.channel, names_[static_cast<std::size_t>(p.src)], p.bytes,
                                     local(p.dst)))
      peerSend(p.dst, names_[static_cast<std::size_t>(p.src)], *answer);
    touched_.insert(p.dst);
    rescheduleAgent(p.dst);
  }
}

// ---------------------------------------------------------------------------------------
// Faults and the operator

void World::beginFault(std::size_t i) {
  const Fault& f = plan_.faults[i];
  if (faultBegun_[i] || healed_) return;
  faultBegun_[i] = 1;
  bool applied = true;
  switch (f.kind) {
    case Fault::Kind::Cut:
      for (auto [a, b] : f.links) net_.cut(a, b, f.hold, now_);
      break;
    case Fault::Kind::Degrade:
      for (auto [a, b] : f.links) net_.degrade(a, b, now_);
      break;
    case Fault::Kind::FreezeAgent:
    case Fault::Kind::FreezeController: {
      const int node = f.kind == Fault::Kind::FreezeController ? 0 : f.node;
      applied = proc(node).state == Process::State::Running;
      if (applied) freeze(node);
      break;
    }
    case Fault::Kind::CrashAgent:
      applied = proc(f.node).state != Process::State::Down;
      if (applied) crashAgent(f.node);
      break;
    case Fault::Kind::CrashController:
      applied = ctl_.proc.state != Process::State::Down;
      if (applied) crashController();
      break;
    case Fault::Kind::StoreFailing:
      applied = !ctl_.store.failing();
      ctl_.store.setFailing(true);
      break;
    case Fault::Kind::Operator:
      applied = ctl_.proc.state == Process::State::Running;
      if (applied) api(f.method, f.path, f.body);
      break;
  }
  faultApplied_[i] = applied ? 1 : 0;
  if (applied) ++result_.stats.faultsApplied;
  if (f.kind != Fault::Kind::Operator)
    trace(TraceKind::Fault, -1, -1,
          std::string(applied ? "begin " : "skipped (no effect now) ") + toString(f.kind) + " " + f.label + " for " +
              std::to_string(f.durationMs) + " ms");
}

void World::endFault(std::size_t i) {
  const Fault& f = plan_.faults[i];
  if (!faultBegun_[i] || faultEnded_[i]) return;
  faultEnded_[i] = 1;
  if (!faultApplied_[i]) return;
  switch (f.kind) {
    case Fault::Kind::Cut:
      for (auto [a, b] : f.links) net_.uncut(a, b, f.hold, now_);
      break;
    case Fault::Kind::Degrade:
      for (auto [a, b] : f.links) net_.undegrade(a, b, now_);
      break;
    case Fault::Kind::FreezeAgent:
    case Fault::Kind::FreezeController: {
      const int node = f.kind == Fault::Kind::FreezeController ? 0 : f.node;
      if (proc(node).state == Process::State::Frozen) resume(node);
      break;
    }
    case Fault::Kind::CrashAgent:
      if (proc(f.node).state == Process::State::Down) startAgent(f.node);
      break;
    case Fault::Kind::CrashController:
      if (ctl_.proc.state == Process::State::Down) startController();
      break;
    case Fault::Kind::StoreFailing:
      ctl_.store.setFailing(false);
      break;
    case Fault::Kind::Operator:
      return;
  }
  trace(TraceKind::Fault, -1, -1, std::string("end ") + toString(f.kind) + " " + f.label);
}

void World::api(const std::string& method, const std::string& path, const std::string& body,
                controller::ApiResponse* out) {
  controller::ApiResponse response{0, "", ""};
  controller::ApiRequest req{method, path, {}, body};
  ctl_.core->handleApi(req, local(0), [&](controller::ApiResponse r) { response = std::move(r); });
  ++result_.stats.operatorRequests;
  if (!out) {
    std::string shown = response.body.size() > 160 ? response.body.substr(0, 160) + "..." : response.body;
    std::replace(shown.begin(), shown.end(), '\n', ' ');
    trace(TraceKind::Api, -1, -1,
          method + " " + path + (body.empty() || body.size() > 80 ? "" : " " + body) + " -> " +
              std::to_string(response.status) + " " + shown);
  }
  scheduleTick(0, now_);
  if (out) *out = std::move(response);
}

void World::heal() {
  healed_ = true;
  trace(TraceKind::Fault, -1, -1, "heal: every fault ends, every process runs");
  for (std::size_t i = 0; i < plan_.faults.size(); ++i)
    if (faultBegun_[i] && !faultEnded_[i]) endFault(i);
  ctl_.store.setFailing(false);
  if (ctl_.proc.state == Process::State::Frozen) resume(0);
  if (ctl_.proc.state == Process::State::Down) startController();
  for (int n = 1; n <= static_cast<int>(blades_.size()); ++n) {
    if (proc(n).state == Process::State::Frozen) resume(n);
    if (proc(n).state == Process::State::Down) startAgent(n);
  }
  for (const auto& b : blades_) api("POST", "/v1/blades/" + b.spec.name + "/undrain", "");
  at(now_ + kConvergeCheckMs, [this] { checkConvergence(); });
}

// After the heal: every power-on server runs exactly once, on the blade the API names;
// every other server runs nowhere. Looked at every second until it holds, at most quietMs.
void World::checkConvergence() {
  std::vector<std::string> problems;
  controller::ApiResponse r;
  api("GET", "/v1/servers", "", &r);
  Json servers = Json::parse(r.body, nullptr, false);
  if (r.status != 200 || !servers.is_array())
    problems.push_back("GET /v1/servers answered " + std::to_string(r.status));
  std::map<std::string, std::vector<std::string>> where;  // uuid -> blades whose drivers run it
  for (const auto& b : blades_)
    for (const auto& [uuid, _] : b.running) where[uuid].push_back(b.spec.name);
  if (servers.is_array()) {
    for (const auto& s : servers) {
      const std::string name = s.value("name", "");
      const std::string uuid = s["uuid"].is_string() ? s["uuid"].get<std::string>() : "";
      const std::string bound = s["blade"].is_string() ? s["blade"].get<std::string>() : "";
      const bool on = s.value("power", "on") == "on";
      const auto& runs = where[uuid];
      std::string at;
      for (const auto& b : runs) at += (at.empty() ? "" : ",") + b;
      if (on) {
        if (s.value("state", "") != "running" || bound.empty() || runs.size() != 1 || runs[0] != bound)
          problems.push_back(name + ": API says " + s.value("state", "?") + " on " + (bound.empty() ? "-" : bound) +
                             ", drivers run it on [" + at + "]");
      } else if (!runs.empty()) {
        problems.push_back(name + ": powered off, but drivers run it on [" + at + "]");
      }
    }
  }
  if (problems.empty()) {
    result_.convergedAt = now_;
    trace(TraceKind::Note, -1, -1, "converged: every power-on server runs once, where the API says");
    finalChecks();
    stopped_ = true;
    return;
  }
  lastConvergenceProblems_ = std::move(problems);
  if (now_ + kConvergeCheckMs > plan_.healAt + plan_.quietMs) {
    std::string text = "not converged " + std::to_string(plan_.quietMs) + " ms after the heal:";
    for (const auto& p : lastConvergenceProblems_) text += "\n    " + p;
    violation(Violation::Kind::Convergence, text);
    finalChecks();
    stopped_ = true;
    return;
  }
  at(now_ + kConvergeCheckMs, [this] { checkConvergence(); });
}

// ---------------------------------------------------------------------------------------
// Invariants

void World::violation(Violation::Kind kind, std::string what) {
  trace(TraceKind::Violation, -1, -1, std::string(toString(kind)) + ": " + what);
  const bool first = std::none_of(result_.violations.begin(), result_.violations.end(),
                                  [](const Violation& v) { return v.kind != Violation::Kind::Invariant7; });
  const bool firstAny = result_.violations.empty();
  result_.violations.push_back({kind, now_, std::move(what)});
  // The trace kept for the report: before the first serious violation, or else before
  // the first violation of invariant 7.
  if ((kind != Violation::Kind::Invariant7 && first) || firstAny) {
    result_.traceTail.clear();
    for (const auto& r : tail_) result_.traceTail.push_back(format(r.t, r.kind, r.a, r.b, r.text));
    if (kind != Violation::Kind::Invariant7) tailFrozen_ = true;
  }
}

void World::pollBlade(int node) {
  BladeNode& b = blade(node);
  auto list = b.hypervisor->list();
  if (!list) return;
  std::map<std::string, std::string> running;
  for (const auto& d : *list)
    if (d.state == drivers::DomainState::Running || d.state == drivers::DomainState::Paused) running[d.uuid] = d.name;
  if (running == b.running) return;
  std::vector<std::string> byOwnHand;
  bool watchdog = false;
  for (const auto& [uuid, domain] : b.running) {
    if (running.count(uuid)) continue;
    auto e = b.endings.find(domain);
    std::string how;
    if (e != b.endings.end() && e->second == EndCause::ControllerStep) {
      how = "stopped (controller step)";
      ++result_.stats.controllerStops;
    } else if (e != b.endings.end()) {
      how = "destroyed by its agent's self-fence";
      ++result_.stats.selfFencedDomains;
      byOwnHand.push_back(domain);
    } else {
      how = "ended by the blade's watchdog";
      watchdog = true;
      ++result_.stats.watchdogDomains;
      byOwnHand.push_back(domain);
    }
    if (e != b.endings.end()) b.endings.erase(e);
    trace(TraceKind::Ending, node, -1, domain + " " + how);
  }
  for (const auto& [uuid, domain] : running)
    if (!b.running.count(uuid)) {
      b.endings.erase(domain);
      ++result_.stats.starts;
      trace(TraceKind::Ending, node, -1, domain + " started");
    }
  b.running = std::move(running);
  if (auto double_ = doubleRuns_.update(b.spec.name, b.running, now_)) violation(Violation::Kind::Invariant1, *double_);
  if (!byOwnHand.empty() && options_.judgeInvariant7) {
    if (auto why = outage_.judge(node, now_, names_)) {
      std::string domains;
      for (const auto& d : byOwnHand) domains += (domains.empty() ? "" : ",") + d;
      violation(Violation::Kind::Invariant7, *why + "; ended [" + domains + "]" + (watchdog ? " (watchdog)" : ""));
    }
  }
}

void World::afterEvent() {
  tVirtualNow = now_;
  if (options_.pollEveryDriver) {
    for (int n = 1; n <= static_cast<int>(blades_.size()); ++n) pollBlade(n);
  } else {
    for (int n : touched_) pollBlade(n);
  }
  touched_.clear();
}

void World::finalChecks() {
  std::vector<drivers::test::JournalEntry> all;
  for (auto& b : blades_) {
    auto j = b.hypervisor->journal();
    for (const auto& e : j) {
      const std::string line = drivers::test::formatJournalLine(e);
      hash_ = fnv(hash_, line.data(), line.size());
    }
    all.insert(all.end(), j.begin(), j.end());
  }
  // The same check as the e2e harness's, over the whole journal (half-open runs).
  if (auto d = drivers::test::findDoubleRun(all); d && !result_.has(Violation::Kind::Invariant1))
    violation(Violation::Kind::Invariant1, "journal: " + *d);
}

RunResult World::run() {
  // loomd first, then the agents as their hosts come up, then the declarations.
  at(0, [this] { startController(); });
  for (int n = 1; n <= static_cast<int>(blades_.size()); ++n) at(procRng_.range(0, 300), [this, n] { startAgent(n); });
  at(350, [this] {
    controller::ApiResponse r;
    api("POST", "/v1/apply", plan_.declarations, &r);
    trace(TraceKind::Api, -1, -1, "POST /v1/apply -> " + std::to_string(r.status));
    if (r.status != 200)
      violation(Violation::Kind::Setup, "apply answered " + std::to_string(r.status) + ": " + r.body);
  });
  for (std::size_t i = 0; i < plan_.faults.size(); ++i) {
    if (options_.disabledFaults.count(i)) continue;
    const Fault& f = plan_.faults[i];
    if (f.at >= plan_.healAt) continue;
    at(f.at, [this, i] { beginFault(i); });
    if (f.kind != Fault::Kind::Operator) at(f.at + f.durationMs, [this, i] { endFault(i); });
  }
  at(plan_.healAt, [this] { heal(); });

  while (!queue_.empty() && !stopped_) {
    Event ev = queue_.top();
    queue_.pop();
    now_ = ev.at;
    tVirtualNow = now_;
    hwClock_->set(kEpochMs + now_);
    ev.fn();
    afterEvent();
    if (++result_.stats.events >= options_.eventLimit) {
      violation(Violation::Kind::Setup, "event limit reached (" + std::to_string(options_.eventLimit) + ")");
      break;
    }
    if (result_.has(Violation::Kind::Invariant1) || result_.has(Violation::Kind::Setup)) break;
  }
  if (!stopped_ && !result_.has(Violation::Kind::Invariant1) && !result_.has(Violation::Kind::Setup))
    violation(Violation::Kind::Setup, "the run ended without its convergence check");
  result_.virtualMs = now_;
  result_.stats.messages = net_.sent();
  result_.stats.dropped = net_.dropped();
  result_.stats.duplicated = net_.duplicated();
  result_.stats.held = net_.heldTotal();
  hash_ = fnvValue(hash_, result_.violations.size());
  result_.traceHash = hash_;
  if (result_.traceTail.empty())
    for (const auto& r : tail_) result_.traceTail.push_back(format(r.t, r.kind, r.a, r.b, r.text));
  return std::move(result_);
}

}  // namespace

const char* toString(Violation::Kind k) {
  switch (k) {
    case Violation::Kind::Invariant1:
      return "invariant 1";
    case Violation::Kind::Invariant7:
      return "invariant 7";
    case Violation::Kind::Convergence:
      return "convergence";
    case Violation::Kind::Setup:
      return "setup";
  }
  return "?";
}

bool RunResult::has(Violation::Kind k) const {
  return std::any_of(violations.begin(), violations.end(), [k](const Violation& v) { return v.kind == k; });
}

std::int64_t currentVirtualTime() { return tVirtualNow; }

RunResult runSimulation(const ScenarioPlan& plan, std::uint64_t seed, const SimOptions& options) {
  World world(plan, seed, options);
  return world.run();
}

}  // namespace loom::sim
