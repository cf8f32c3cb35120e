#include "tests/sim/Simulation.h"

#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <regex>

#include "drivers/test/Journal.h"
#include "tests/sim/World.h"
#include "tests/support/TestToken.h"

namespace loom::sim {
namespace detail {
namespace {

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

}  // namespace

// A frame shown in a trace line: its type and, shortened, the rest.
std::string summarize(const std::string& bytes, std::size_t max) {
  std::string s = bytes.size() > max ? bytes.substr(0, max) + "...(" + std::to_string(bytes.size()) + " bytes)" : bytes;
  return s;
}

std::string apiShown(std::string body, std::size_t max) {
  // The planner's wall time ("plan_seconds") is the one field of an answer that is not a
  // function of the seed: a trace that showed it would not replay bit for bit.
  static const std::regex kWallTime(R"("plan_seconds":[-+0-9.eE]+)");
  body = std::regex_replace(body, kWallTime, R"("plan_seconds":"-")");
  if (body.size() > max) body = body.substr(0, max) + "...";
  std::replace(body.begin(), body.end(), '\n', ' ');
  return body;
}

StateDir::StateDir() {
  char tmpl[] = "/tmp/loom-sim-XXXXXX";
  if (::mkdtemp(tmpl)) path_ = tmpl;
}

StateDir::~StateDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

World::World(const ScenarioPlan& plan, std::uint64_t seed, const SimOptions& options)
    : plan_(plan),
      seed_(seed),
      options_(options),
      netRng_(Rng::derive(seed, "network")),
      clockRng_(Rng::derive(seed, "clocks")),
      procRng_(Rng::derive(seed, "processes")),
      hwClock_(std::make_shared<drivers::test::ManualClock>(kEpochMs)),
      // Nodes: 0 loomd (with replicas: nobody), 1..N the blades, then the replicas and the store.
      net_(static_cast<int>(plan.blades.size()) + 1 + (plan.replicas > 0 ? plan.replicas + 1 : 0), plan.network,
           Rng::derive(seed, "network-fates"),
           [this](std::int64_t t, Packet p) { at(t, [this, p = std::move(p)]() mutable { deliver(std::move(p)); }); }),
      ctlOptions_(controllerOptions(plan.leaseMs, plan.heartbeatMs)),
      outage_(static_cast<int>(plan.blades.size()), options.stableWindowMs > 0 && options.controllerOutWindowMs > 0
                                                        ? Windows{options.stableWindowMs, options.controllerOutWindowMs}
                                                        : Windows::forLease(plan.leaseMs, plan.network.maxUpDelayMs)),
      replicaRng_(Rng::derive(seed, "replicas")) {
  names_.push_back("loomd");
  for (const auto& b : plan.blades) names_.push_back(b.name);
  // Monotonic clocks: each host booted at its own time, each crystal off by its own rate.
  auto clock = [&] {
    return ProcessClock(clockRng_.range(1'000'000, 5'000'000'000),
                        clockRng_.range(-ProcessClock::kMaxRatePpm, ProcessClock::kMaxRatePpm));
  };
  ctls_.push_back(std::make_unique<ControllerNode>());
  ctls_[0]->proc.clock = clock();
  blades_.resize(plan.blades.size());
  for (std::size_t i = 0; i < plan.blades.size(); ++i) {
    blades_[i].spec = plan.blades[i];
    blades_[i].proc.clock = clock();
    blades_[i].hypervisor = makeHypervisor(plan.blades[i], hwClock_);
  }
  if (replicated()) setUpReplicas();
  net_.onLinkChanged([this](int a, int b, LinkState s, std::int64_t now) {
    // The outage judge knows the blades and loomd (with replicas, a control plane it is
    // told of in judgeReplicas()).
    if (a <= bladeCount() && b <= bladeCount()) outage_.setLink(a, b, s, now);
    if (replicated()) replicaLinkChanged(a, b, s);
    trace(TraceKind::Note, a, b, std::string("link ") + toString(s));
  });
  faultBegun_.assign(plan.faults.size(), 0);
  faultEnded_.assign(plan.faults.size(), 0);
  faultApplied_.assign(plan.faults.size(), 0);
  faultTarget_.assign(plan.faults.size(), -1);
  faultLinks_.resize(plan.faults.size());
  result_.seed = seed;
  result_.scenario = plan.name;
  result_.fifo = plan.network.fifo;
  result_.replicas = plan.replicas;
}

Process& World::proc(int node) {
  if (isBlade(node)) return blade(node).proc;
  if (node == storeNode_) return storeProc_;
  if (isController(node)) return ctl(node).proc;
  return noProcess_;
}

bool World::isController(int node) const {
  if (!replicated()) return node == 0;
  return node > bladeCount() && node <= bladeCount() + plan_.replicas;
}

ControllerNode& World::ctl(int node) {
  return replicated() ? *ctls_[static_cast<std::size_t>(node - bladeCount() - 1)] : *ctls_[0];
}

int World::nodeOf(const std::string& name) const {
  for (int i = 1; i <= bladeCount(); ++i)
    if (names_[static_cast<std::size_t>(i)] == name) return i;
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
  if (node <= bladeCount()) outage_.setRunning(node, s == Process::State::Running, now_);
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
    if (isController(node)) {
      if (ctl(node).core) controllerTurn(ctl(node));
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
void World::controllerTurn(ControllerNode& c) {
  const std::int64_t l = local(c.node);
  if (c.turned && l - c.lastTurnLocal > 1000) c.core->forgiveStall(l - c.lastTurnLocal);
  c.turned = true;
  c.lastTurnLocal = l;
  c.core->tick(l);
  rescheduleController(c);
}

void World::rescheduleController(ControllerNode& c) {
  if (c.proc.state != Process::State::Running || !c.core) return;
  const std::int64_t due = std::min(c.core->nextTickAt(), c.lastTurnLocal + 100);
  scheduleTick(c.node, c.proc.clock.realAt(due));
}

void World::startController() {
  ControllerNode& c = *ctls_[0];
  Process& p = c.proc;
  ++p.incarnation;
  p.backlog.clear();
  // Each loomd process stamps with a tag of its own (random in loomd; here the seed's).
  ctlOptions_.stampTag = static_cast<std::uint32_t>(p.incarnation) & 0xfffff;
  c.core = makeController(
      c.store, ctlOptions_, [this, &c](const std::string& b, std::string f) { controllerSend(c, b, std::move(f)); },
      [this] { return kEpochMs + now_; });
  setState(0, Process::State::Running);
  c.turned = false;
  if (auto s = c.core->recover(local(0)); !s)
    violation(Violation::Kind::Setup, "loomd recover failed: " + s.error().message);
  // The agents' connections come back one by one (ZeroMQ reconnects every 100-500 ms).
  for (std::size_t i = 0; i < blades_.size(); ++i) blades_[i].connectAt = now_ + procRng_.range(100, 500);
  trace(TraceKind::Note, 0, -1, "loomd started (incarnation " + std::to_string(p.incarnation) + ")");
  scheduleTick(0, now_);
}

void World::crashController() {
  ControllerNode& c = *ctls_[0];
  Process& p = c.proc;
  c.core.reset();
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
  if (!stateDir_.path().empty()) {
    wiring.policyPath = stateDir_.path() + "/" + b.spec.name + ".policy.json";
    wiring.epochPath = stateDir_.path() + "/" + b.spec.name + ".epoch";
  }
  b.agent = makeAgent(b.spec, *b.hypervisor, b.endings, std::move(wiring));
  setState(node, Process::State::Running);
  trace(TraceKind::Note, node, -1, "agent started (incarnation " + std::to_string(b.proc.incarnation) + ")");
  b.agent->start(local(node));
  touched_.insert(node);
  rescheduleAgent(node);
}

void World::crashAgent(int node) {
  BladeNode& b = blade(node);
  result_.stats.staleFramesRefused += b.agent->refusedStale();
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
  if (replicated() && isController(node)) {
    ++ctl(node).timerGen;  // its election's timers stop too
    ctl(node).timerAt = kNotSince;
  }
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
  if (isController(node)) {
    if (replicated())
      resumeReplica(ctl(node));
    else if (ctl(node).core)
      controllerTurn(ctl(node));
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
// With replicas, see replicaAgentSend().
bool World::agentSend(int node, const Json& frame) {
  if (replicated()) return replicaAgentSend(node, frame);
  if (ctls_[0]->proc.state == Process::State::Down || now_ < blade(node).connectAt) return false;
  Packet p;
  p.id = ++packetIds_;
  p.src = node;
  p.dst = 0;
  p.channel = Channel::Fabric;
  p.bytes = frame.dump();
  p.sentAt = now_;
  p.dstIncarnation = ctls_[0]->proc.incarnation;
  net_.send(std::move(p), now_);
  return true;
}

// The peer channel (docs/FENCING.md): blade to blade, directly, never through loomd.
bool World::peerSend(int node, const std::string& toBlade, const std::string& bytes) {
  if (!options_.peerChannel) return false;
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
void World::controllerSend(ControllerNode& c, const std::string& bladeName, std::string bytes) {
  const int node = nodeOf(bladeName);
  if (node < 0) return;
  if (blade(node).proc.state == Process::State::Down) {
    trace(TraceKind::Lost, c.node, node, "(agent down) " + summarize(bytes));
    return;
  }
  if (replicated()) {
    // ControllerLoop's fabric thread asks the Leadership right before each socket send.
    if (!c.leadership->actingNow()) {
      ++result_.stats.framesSentNotActing;
      trace(TraceKind::Lost, c.node, node, "(not acting: the fabric thread drops it) " + summarize(bytes));
      return;
    }
    if (c.connUpAt[static_cast<std::size_t>(node - 1)] > now_) {
      trace(TraceKind::Lost, c.node, node, "(agent not connected to this replica) " + summarize(bytes));
      return;
    }
  }
  Packet p;
  p.id = ++packetIds_;
  p.src = c.node;
  p.dst = node;
  p.channel = Channel::Fabric;
  p.bytes = std::move(bytes);
  p.sentAt = now_;
  p.dstIncarnation = blade(node).proc.incarnation;
  net_.send(std::move(p), now_);
}

void World::deliver(Packet p) {
  if (p.dst == storeNode_) return storeDeliver(p);
  Process& dst = proc(p.dst);
  // A replica's agents' socket lives as long as its term; its store client as the process.
  const std::uint32_t expected =
      replicated() && isController(p.dst) && p.channel == Channel::Fabric ? ctl(p.dst).termGen : dst.incarnation;
  if (dst.state == Process::State::Down || expected != p.dstIncarnation) {
    trace(TraceKind::Lost, p.src, p.dst, "(receiver gone) " + summarize(p.bytes));
    return;
  }
  p.arrivedAt = now_;
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
  if (isController(p.dst)) {
    if (replicated()) return replicaDeliver(ctl(p.dst), p);
    deliverToController(*ctls_[0]->core, names_[static_cast<std::size_t>(p.src)], p.bytes, local(0));
    scheduleTick(0, now_);  // the loop turns after reading frames
  } else {
    if (isController(p.src)) notePolicy(p.dst, p.bytes);
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
  int target = -1;  // replicas: the one it hit
  switch (f.kind) {
    case Fault::Kind::Cut:
      for (auto [a, b] : f.links) net_.cut(a, b, f.hold, now_);
      break;
    case Fault::Kind::Degrade:
      for (auto [a, b] : f.links) net_.degrade(a, b, now_);
      break;
    case Fault::Kind::FreezeAgent:
      applied = proc(f.node).state == Process::State::Running;
      if (applied) freeze(f.node);
      break;
    case Fault::Kind::FreezeController: {
      if (replicated()) target = resolveReplica(f.node);
      const int node = replicated() ? (target >= 0 ? ctls_[static_cast<std::size_t>(target)]->node : -1) : 0;
      applied = node >= 0 && proc(node).state == Process::State::Running;
      if (applied) freeze(node);
      break;
    }
    case Fault::Kind::CrashAgent:
      applied = proc(f.node).state != Process::State::Down;
      if (applied) crashAgent(f.node);
      break;
    case Fault::Kind::CrashController:
      if (replicated()) {
        target = resolveReplica(f.node);
        applied = target >= 0 && ctls_[static_cast<std::size_t>(target)]->proc.state != Process::State::Down;
        if (applied) crashReplica(target);
      } else {
        applied = ctls_[0]->proc.state != Process::State::Down;
        if (applied) crashController();
      }
      break;
    case Fault::Kind::StoreFailing:
      applied = !replicated() && !ctls_[0]->store.failing();
      if (!replicated()) ctls_[0]->store.setFailing(true);
      break;
    case Fault::Kind::Operator:
      applied = replicated() || ctls_[0]->proc.state == Process::State::Running;
      if (applied) api(f.method, f.path, f.body, nullptr, f.stale);
      break;
    case Fault::Kind::ResignController:
      target = replicated() ? resolveReplica(f.node) : -1;
      applied = target >= 0 && ctls_[static_cast<std::size_t>(target)]->proc.state == Process::State::Running;
      if (applied) stopReplicaGracefully(target);
      break;
    case Fault::Kind::CutFromStore:
    case Fault::Kind::CutFromBlades: {
      target = replicated() ? resolveReplica(f.node) : -1;
      applied = target >= 0;
      if (!applied) break;
      const int node = ctls_[static_cast<std::size_t>(target)]->node;
      auto& links = faultLinks_[i];
      if (f.kind == Fault::Kind::CutFromStore)
        links.emplace_back(node, storeNode_);
      else
        for (int b = 1; b <= bladeCount(); ++b) links.emplace_back(node, b);
      for (auto [a, b] : links) net_.cut(a, b, f.hold, now_);
      break;
    }
    case Fault::Kind::StoreOutage:
      applied = replicated() && store_->hasQuorum();
      if (applied) store_->setQuorum(false, local(storeNode_));
      break;
  }
  faultTarget_[i] = target;
  faultApplied_[i] = applied ? 1 : 0;
  if (applied) ++result_.stats.faultsApplied;
  const std::string who =
      target >= 0 ? " [" + names_[static_cast<std::size_t>(ctls_[static_cast<std::size_t>(target)]->node)] + "]" : "";
  if (f.kind != Fault::Kind::Operator)
    trace(TraceKind::Fault, -1, -1,
          std::string(applied ? "begin " : "skipped (no effect now) ") + toString(f.kind) + " " + f.label + who +
              " for " + std::to_string(f.durationMs) + " ms");
}

void World::endFault(std::size_t i) {
  const Fault& f = plan_.faults[i];
  if (!faultBegun_[i] || faultEnded_[i]) return;
  faultEnded_[i] = 1;
  if (!faultApplied_[i]) return;
  const int target = faultTarget_[i];
  switch (f.kind) {
    case Fault::Kind::Cut:
      for (auto [a, b] : f.links) net_.uncut(a, b, f.hold, now_);
      break;
    case Fault::Kind::Degrade:
      for (auto [a, b] : f.links) net_.undegrade(a, b, now_);
      break;
    case Fault::Kind::FreezeAgent:
    case Fault::Kind::FreezeController: {
      const int node = f.kind == Fault::Kind::FreezeAgent ? f.node
                       : replicated()                     ? ctls_[static_cast<std::size_t>(target)]->node
                                                          : 0;
      if (proc(node).state == Process::State::Frozen) resume(node);
      break;
    }
    case Fault::Kind::CrashAgent:
      if (proc(f.node).state == Process::State::Down) startAgent(f.node);
      break;
    case Fault::Kind::CrashController:
    case Fault::Kind::ResignController:
      if (!replicated()) {
        if (ctls_[0]->proc.state == Process::State::Down) startController();
      } else if (ctls_[static_cast<std::size_t>(target)]->proc.state == Process::State::Down) {
        startReplica(target);
      } else if (ctls_[static_cast<std::size_t>(target)]->stopping) {
        ctls_[static_cast<std::size_t>(target)]->restartOnExit = true;  // still handing over
      }
      break;
    case Fault::Kind::StoreFailing:
      ctls_[0]->store.setFailing(false);
      break;
    case Fault::Kind::Operator:
      return;
    case Fault::Kind::CutFromStore:
    case Fault::Kind::CutFromBlades:
      for (auto [a, b] : faultLinks_[i]) net_.uncut(a, b, f.hold, now_);
      break;
    case Fault::Kind::StoreOutage:
      store_->setQuorum(true, local(storeNode_));
      break;
  }
  trace(TraceKind::Fault, -1, -1, std::string("end ") + toString(f.kind) + " " + f.label);
}

void World::api(const std::string& method, const std::string& path, const std::string& body,
                controller::ApiResponse* out, bool stale) {
  if (!replicated()) return apiTo(*ctls_[0], method, path, body, out);
  // loomctl --controller A,B,C reaches the replica that leads. A request may also reach
  // the one loomctl found leading a moment ago and that has frozen since (`stale`): it
  // waits in that replica's socket for SIGCONT, and the operator never hears back.
  ControllerNode* target = actingReplica();
  if (stale || !target) {
    ControllerNode* newest = nullptr;
    for (auto& c : ctls_)
      if (c->core && (!newest || c->termEpoch > newest->termEpoch)) newest = c.get();
    if (stale && newest) target = newest;
    if (!target && newest && newest->proc.state == Process::State::Running) target = newest;
  }
  controller::ApiResponse response{0, "", ""};
  std::string where;
  if (!target) {
    response = {503, "application/json", "{\"error\":\"no loomd replica leads\"}\n"};
  } else if (target->proc.state == Process::State::Frozen) {
    target->apiBacklog.push_back({method, path, body});
    where = " (to " + names_[static_cast<std::size_t>(target->node)] + ", frozen: no answer)";
  } else {
    return apiTo(*target, method, path, body, out);
  }
  if (!out) {
    ++result_.stats.operatorRequests;
    trace(TraceKind::Api, -1, -1,
          method + " " + path + (body.empty() || body.size() > 80 ? "" : " " + body) + " -> " +
              std::to_string(response.status) + where + " " + apiShown(response.body, 160));
    noteApply(path, body, target ? response.status : -2);
  }
  if (out) *out = std::move(response);
}

void World::apiTo(ControllerNode& c, const std::string& method, const std::string& path, const std::string& body,
                  controller::ApiResponse* out) {
  controller::ApiResponse response{0, "", ""};
  controller::ApiRequest req = ::loom::testing::asAdmin({method, path, {}, body});
  c.core->handleApi(std::move(req), local(c.node), [&](controller::ApiResponse r) { response = std::move(r); });
  ++result_.stats.operatorRequests;
  if (!out) {
    const std::string shown = apiShown(response.body, 160);
    trace(TraceKind::Api, -1, -1,
          method + " " + path + (body.empty() || body.size() > 80 ? "" : " " + body) + " -> " +
              std::to_string(response.status) +
              (replicated() ? " (" + names_[static_cast<std::size_t>(c.node)] + ")" : "") + " " + shown);
    if (replicated()) noteApply(path, body, response.status);
  }
  scheduleTick(c.node, now_);
  if (out) *out = std::move(response);
}

void World::heal() {
  healed_ = true;
  trace(TraceKind::Fault, -1, -1, "heal: every fault ends, every process runs");
  for (std::size_t i = 0; i < plan_.faults.size(); ++i)
    if (faultBegun_[i] && !faultEnded_[i]) endFault(i);
  if (!replicated()) {
    ctls_[0]->store.setFailing(false);
    if (ctls_[0]->proc.state == Process::State::Frozen) resume(0);
    if (ctls_[0]->proc.state == Process::State::Down) startController();
  } else {
    store_->setQuorum(true, local(storeNode_));
    for (std::size_t r = 0; r < ctls_.size(); ++r) {
      if (ctls_[r]->proc.state == Process::State::Frozen) resume(ctls_[r]->node);
      if (ctls_[r]->proc.state == Process::State::Down) startReplica(static_cast<int>(r));
      if (ctls_[r]->stopping) ctls_[r]->restartOnExit = true;
    }
  }
  for (int n = 1; n <= static_cast<int>(blades_.size()); ++n) {
    if (proc(n).state == Process::State::Frozen) resume(n);
    if (proc(n).state == Process::State::Down) startAgent(n);
  }
  // With replicas the undrains wait for a leader (checkConvergence()).
  if (replicated())
    for (const auto& b : blades_) undrainPending_.insert(b.spec.name);
  else
    for (const auto& b : blades_) api("POST", "/v1/blades/" + b.spec.name + "/undrain", "");
  at(now_ + kConvergeCheckMs, [this] { checkConvergence(); });
}

// After the heal: every power-on server runs exactly once, on the blade the API names;
// every other server runs nowhere. Looked at every second until it holds, at most quietMs.
void World::checkConvergence() {
  std::vector<std::string> problems;
  controller::ApiResponse r;
  if (!replicated()) {
    api("GET", "/v1/servers", "", &r);
  } else if (ControllerNode* leader = actingReplica()) {
    // The heal's undrains, through whoever leads, until each is acknowledged.
    for (auto it = undrainPending_.begin(); it != undrainPending_.end();) {
      controller::ApiResponse u;
      apiTo(*leader, "POST", "/v1/blades/" + *it + "/undrain", "", &u);
      it = u.status == 200 ? undrainPending_.erase(it) : std::next(it);
    }
    for (const auto& b : undrainPending_) problems.push_back(b + ": its undrain is not acknowledged yet");
    apiTo(*leader, "GET", "/v1/servers", "", &r);
  } else {
    problems.push_back("no loomd replica leads");
  }
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
    if (acks_.active())
      for (const auto& s : servers)
        if (s.value("name", "") == "cold")
          if (auto lost = acks_.judge(s.value("power", "?"))) violation(Violation::Kind::LostAcknowledged, *lost);
    if (replicated()) compareWithStore(servers);
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
  if (!byOwnHand.empty() && plan_.takeoversOnly) {
    std::string domains;
    for (const auto& d : byOwnHand) domains += (domains.empty() ? "" : ",") + d;
    violation(Violation::Kind::Invariant7, b.spec.name + " ended [" + domains + "] by its own hand" +
                                               (watchdog ? " (watchdog)" : "") +
                                               " in a run of takeovers only: a takeover must renew its lease in time");
  } else if (!byOwnHand.empty() && options_.judgeInvariant7) {
    if (auto why = outage_.judge(node, now_, names_)) {
      std::string domains;
      for (const auto& d : byOwnHand) domains += (domains.empty() ? "" : ",") + d;
      violation(Violation::Kind::Invariant7, *why + "; ended [" + domains + "]" + (watchdog ? " (watchdog)" : ""));
    }
  }
}

void World::afterEvent() {
  tVirtualNow = now_;
  if (replicated()) judgeReplicas();
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

void World::applyDeclarations() {
  // Replicas: the first election takes a few round trips; the operator waits for a leader.
  if (replicated() && !actingReplica()) {
    if (now_ < 10'000) return at(now_ + 100, [this] { applyDeclarations(); });
    return violation(Violation::Kind::Setup, "no loomd replica leads 10 s after the start");
  }
  controller::ApiResponse r;
  api("POST", "/v1/apply", plan_.declarations, &r);
  trace(TraceKind::Api, -1, -1, "POST /v1/apply -> " + std::to_string(r.status));
  if (r.status != 200)
    violation(Violation::Kind::Setup, "apply answered " + std::to_string(r.status) + ": " + r.body);
  else if (replicated())
    noteApply("/v1/apply", plan_.declarations, -1);  // the judge's starting point
}

RunResult World::run() {
  // loomd first, then the agents as their hosts come up, then the declarations.
  if (replicated()) {
    for (int r = 0; r < plan_.replicas; ++r) at(replicaRng_.range(0, 50), [this, r] { startReplica(r); });
  } else {
    at(0, [this] { startController(); });
  }
  for (int n = 1; n <= static_cast<int>(blades_.size()); ++n) at(procRng_.range(0, 300), [this, n] { startAgent(n); });
  at(350, [this] { applyDeclarations(); });
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
  for (const auto& b : blades_)
    if (b.agent) result_.stats.staleFramesRefused += b.agent->refusedStale();
  for (const auto& c : ctls_)
    if (c->core) result_.stats.framesDroppedNotActing += c->core->droppedNotActing();
  if (store_) result_.stats.commitsRefused = store_->commitsRefused();
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

}  // namespace detail

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
    case Violation::Kind::TwoActing:
      return "one acting replica";
    case Violation::Kind::PastTermCommit:
      return "past-term commit";
    case Violation::Kind::LostAcknowledged:
      return "acknowledged change";
  }
  return "?";
}

bool RunResult::has(Violation::Kind k) const {
  return std::any_of(violations.begin(), violations.end(), [k](const Violation& v) { return v.kind == k; });
}

std::int64_t currentVirtualTime() { return detail::tVirtualNow; }

RunResult runSimulation(const ScenarioPlan& plan, std::uint64_t seed, const SimOptions& options) {
  detail::World world(plan, seed, options);
  return world.run();
}

}  // namespace loom::sim
