// The loomd replicas of a simulated fabric (World.h): each a process with its own clock,
// its own Leadership and election (SimElection, controller/Election.cpp's rules), a term
// while it leads (a Controller over a TermStore, the agents' endpoint bound), and the
// store they share (SimStore, etcd's semantics) across the simulated network. The order of
// things follows loomd's main.cpp (runReplica) and controller/Term.cpp.
#include <algorithm>
#include <utility>

#include "tests/sim/World.h"

namespace loom::sim::detail {
namespace {

// How long an agent's connection to a frozen or cut-off replica lingers before ZeroMQ's
// heartbeat drops it (node-agent/ControllerLink.h: a PING every second, dropped after 3 s
// without traffic). Frames sent on it meanwhile are lost; reconnecting after takes
// 100-500 ms (its reconnect interval).
constexpr std::int64_t kConnectionLingerMs = 1000 + 3000;
// The etcd store's client (EtcdStoreOptions::timeout, 2 s): two attempts of about a second.
constexpr std::int64_t kStoreAttemptMs = 1000;
constexpr int kStoreAttempts = 2;

const char* opName(SimElection::Op op) {
  switch (op) {
    case SimElection::Op::Range:
      return "range leader";
    case SimElection::Op::Grant:
      return "lease-grant";
    case SimElection::Op::Campaign:
      return "campaign";
    case SimElection::Op::KeepAlive:
      return "keep-alive";
    case SimElection::Op::Revoke:
      return "lease-revoke";
  }
  return "?";
}

// The power `apply` sets for server cold (the replicas' scenarios flip only it), or "".
std::string coldPower(const std::string& body) {
  const auto at = body.find("name: cold\n");
  if (at == std::string::npos) return "";
  const auto p = body.find("power: ", at);
  if (p == std::string::npos) return "";
  return body.substr(p + 7, body.find('\n', p) - p - 7);
}

}  // namespace

Result<controller::StoredState> TermStore::load() { return world_.storeLoad(replica_); }

Status TermStore::commit(const controller::Change& change) {
  if (change.empty()) return okStatus();  // as every store: nothing to write, nothing sent
  return world_.storeCommit(replica_, epoch_, change);
}

Result<std::vector<controller::EventRecord>> TermStore::events(std::uint64_t sinceId, std::size_t limit) {
  return world_.storeEvents(replica_, sinceId, limit);
}

void World::setUpReplicas() {
  const int n = bladeCount();
  auto clock = [this] {
    return ProcessClock(replicaRng_.range(1'000'000, 5'000'000'000),
                        replicaRng_.range(-ProcessClock::kMaxRatePpm, ProcessClock::kMaxRatePpm));
  };
  ctls_.clear();
  for (int r = 0; r < plan_.replicas; ++r) {
    auto c = std::make_unique<ControllerNode>();
    c->node = n + 1 + r;
    c->index = r;
    c->proc.clock = clock();
    c->connUpAt.assign(static_cast<std::size_t>(n), kNotSince);
    names_.push_back(std::string("loomd-") + static_cast<char>('a' + r));
    ctls_.push_back(std::move(c));
  }
  storeNode_ = n + 1 + plan_.replicas;
  names_.push_back("etcd");
  storeProc_.clock = clock();
  storeProc_.state = Process::State::Running;
  store_ = std::make_unique<SimStore>(plan_.storeMinTtlSeconds);
  store_->setGuardEnforced(options_.storeGuard);
  store_->onCommitApplied = [this](std::uint64_t epoch, std::int64_t key) {
    if (static_cast<std::int64_t>(epoch) == key || !pastTermReported_.insert({epoch, key}).second) return;
    violation(Violation::Kind::PastTermCommit,
              "the store applied a commit of the term of epoch " + std::to_string(epoch) + " while the leader key " +
                  (key ? "is of epoch " + std::to_string(key) : std::string("is gone")));
  };
  roundRobin_.assign(static_cast<std::size_t>(n), 0);
}

// ---------------------------------------------------------------------------------------
// Processes: a replica starts standing by (main.cpp: the election started, campaign()).

void World::startReplica(int i) {
  ControllerNode& c = *ctls_[static_cast<std::size_t>(i)];
  ++c.proc.incarnation;
  c.proc.backlog.clear();
  c.apiBacklog.clear();
  c.stopping = false;
  const int node = c.node;
  c.leadership = std::make_unique<controller::Leadership>(controller::Leadership::Mode::Replica,
                                                          [this, node] { return local(node); });
  SimElection::Options eo;
  eo.name = names_[static_cast<std::size_t>(node)];
  eo.ttlSeconds = plan_.leaderTtlSeconds;
  eo.marginMs = options_.electionMarginMs;
  eo.clockRate = options_.electionClockRate;
  SimElection::Io io;
  io.send = [this, i](const SimElection::Call& call) { electionSend(i, call); };
  io.won = [this, i](std::uint64_t epoch) { replicaWon(i, epoch); };
  io.lost = [this, i](const char* why) {
    // main.cpp: term.run() returns, the term is torn down, and it campaigns again (or,
    // stopping, the election's thread ends with it: the process exits).
    endTerm(i, why);
    ControllerNode& r = *ctls_[static_cast<std::size_t>(i)];
    if (!r.stopping) return r.election->campaign(local(r.node));
    at(now_, [this, i] {
      if (ctls_[static_cast<std::size_t>(i)]->stopping) exitReplica(i, "replica stopped (its term ended)");
    });
  };
  setState(node, Process::State::Running);
  c.election = std::make_unique<SimElection>(eo, *c.leadership, std::move(io), local(node));
  trace(TraceKind::Note, node, -1,
        "replica started (incarnation " + std::to_string(c.proc.incarnation) + "): standing by");
  c.election->campaign(local(node));
  rescheduleElection(c);
}

void World::tearDownTerm(ControllerNode& c) {
  if (c.core) result_.stats.framesDroppedNotActing += c.core->droppedNotActing();
  c.core.reset();
  c.termStore.reset();
  c.termEpoch = 0;
  ++c.termGen;  // its socket is closed: frames on their way to it are lost
  c.connUpAt.assign(c.connUpAt.size(), kNotSince);
  ++c.proc.tickGen;
  c.proc.tickAt = kNotSince;
}

void World::exitReplica(int i, const char* how) {
  ControllerNode& c = *ctls_[static_cast<std::size_t>(i)];
  tearDownTerm(c);
  c.election.reset();  // before the Leadership it holds
  c.leadership.reset();
  c.proc.backlog.clear();
  c.apiBacklog.clear();
  ++c.proc.incarnation;  // answers on their way to it are lost with its sockets
  ++c.timerGen;
  c.timerAt = kNotSince;
  c.stopping = false;
  setState(c.node, Process::State::Down);
  trace(TraceKind::Note, c.node, -1, how);
  if (std::exchange(c.restartOnExit, false)) startReplica(i);
}

void World::crashReplica(int i) {
  ctls_[static_cast<std::size_t>(i)]->restartOnExit = false;  // the crash's own end restarts it
  exitReplica(i, "replica killed");
}

// SIGTERM (main.cpp): the term stops, then Election::resign() revokes the lease so that
// a standby takes over at once; the process exits once the revoke is sent.
void World::stopReplicaGracefully(int i) {
  ControllerNode& c = *ctls_[static_cast<std::size_t>(i)];
  trace(TraceKind::Note, c.node, -1, "SIGTERM: the term stops, the lease is revoked");
  c.stopping = true;
  tearDownTerm(c);
  c.election->resign(local(c.node));
  if (!c.election->leading()) return exitReplica(i, "replica stopped (it led no term)");
  rescheduleElection(c);
}

void World::resumeReplica(ControllerNode& c) {
  if (now_ - c.proc.frozenAt >= kConnectionLingerMs)
    for (auto& up : c.connUpAt)
      if (up != kNotSince) up = now_ + replicaRng_.range(100, 500);
  // Operator requests that waited in its HTTP socket are answered now, to clients that
  // gave up long ago.
  auto requests = std::move(c.apiBacklog);
  c.apiBacklog.clear();
  for (const auto& a : requests) {
    if (!c.core) break;
    controller::ApiResponse response;
    apiTo(c, a.method, a.path, a.body, &response);
    trace(TraceKind::Api, c.node, -1,
          a.method + " " + a.path + " (queued while frozen) -> " + std::to_string(response.status) + " " +
              apiShown(response.body, 160));
  }
  if (c.core) controllerTurn(c);
  electionTimer(c.index);
}

// ---------------------------------------------------------------------------------------
// The election and the terms

void World::rescheduleElection(ControllerNode& c) {
  if (c.proc.state != Process::State::Running || !c.election) return;
  const std::int64_t when = std::max(now_, c.proc.clock.realAt(c.election->nextTimerAt()));
  if (c.timerAt == when) return;
  c.timerAt = when;
  const std::uint64_t gen = ++c.timerGen;
  const int i = c.index;
  at(when, [this, i, gen] {
    ControllerNode& r = *ctls_[static_cast<std::size_t>(i)];
    if (r.timerGen != gen || r.proc.state != Process::State::Running) return;
    r.timerAt = kNotSince;
    electionTimer(i);
  });
}

void World::electionTimer(int i) {
  ControllerNode& c = *ctls_[static_cast<std::size_t>(i)];
  if (!c.election) return;
  c.election->onTimer(local(c.node));
  if (c.election) rescheduleElection(c);
}

// main.cpp once campaign() returned: the store opened with this term's guard, the Term
// built over it (controller/Term.cpp: the agents' endpoint bound, then the state loaded),
// and on a failure to start, resign() and campaign again.
void World::replicaWon(int i, std::uint64_t epoch) {
  ControllerNode& c = *ctls_[static_cast<std::size_t>(i)];
  ++result_.stats.terms;
  trace(TraceKind::Note, c.node, -1,
        "won epoch " + std::to_string(epoch) + ": acting until " + std::to_string(c.election->actUntil()) +
            " on its clock (now " + std::to_string(local(c.node)) + ")");
  c.termEpoch = epoch;
  c.termStore = std::make_unique<TermStore>(*this, i, epoch);
  // Each term's Controller stamps with a tag of its own (random in loomd; here the seed's).
  ctlOptions_.stampTag =
      static_cast<std::uint32_t>((epoch * 8 + static_cast<std::uint64_t>(i) + 1) * 2654435761u) & 0xfffff;
  if (ctlOptions_.stampTag == 0) ctlOptions_.stampTag = 1;
  c.core = makeController(
      *c.termStore, ctlOptions_,
      [this, &c](const std::string& b, std::string f) { controllerSend(c, b, std::move(f)); },
      [this] { return kEpochMs + now_; }, *c.leadership);
  ++c.termGen;
  // As loomd's Term: a commit whose outcome is unknown ends the term once the core's turn
  // is over (controller/Journal.h); main.cpp then resigns and campaigns again.
  c.core->onStoreBehind([this, i, term = c.termGen](const Error&) {
    at(now_, [this, i, term] {
      ControllerNode& r = *ctls_[static_cast<std::size_t>(i)];
      if (r.termGen != term || !r.election) return;
      trace(TraceKind::Note, r.node, -1,
            "term " + std::to_string(r.termEpoch) + ": a commit's outcome is unknown; resigning");
      tearDownTerm(r);
      r.election->resign(local(r.node));
      r.election->campaign(local(r.node));
      rescheduleElection(r);
    });
  });
  // The agents connect to it one by one (their DEALERs retry every 100-500 ms).
  for (auto& up : c.connUpAt) up = now_ + replicaRng_.range(100, 500);
  c.turned = false;
  if (auto s = c.core->recover(local(c.node)); !s) {
    trace(TraceKind::Note, c.node, -1, "term " + std::to_string(epoch) + ": " + s.error().message + "; resigning");
    tearDownTerm(c);
    c.election->resign(local(c.node));
    c.election->campaign(local(c.node));
    return;
  }
  scheduleTick(c.node, now_);
}

// The lost-term callback: Term::stop(), and the term is torn down.
void World::endTerm(int i, const std::string& why) {
  ControllerNode& c = *ctls_[static_cast<std::size_t>(i)];
  trace(TraceKind::Note, c.node, -1, "term " + std::to_string(c.termEpoch) + " ended: " + why + "; standing by");
  tearDownTerm(c);
}

// ---------------------------------------------------------------------------------------
// The store: election calls travel as packets; a term's calls block (storeCall)

void World::storeRequest(int replica, Channel channel, std::string what, std::function<void()> apply,
                         std::int64_t deliverAt) {
  ControllerNode& c = *ctls_[static_cast<std::size_t>(replica)];
  Packet p;
  p.id = ++packetIds_;
  p.src = c.node;
  p.dst = storeNode_;
  p.channel = channel;
  p.bytes = what;
  p.sentAt = now_;
  storeRequests_[p.id] = {replica, std::move(what), std::move(apply)};
  if (channel == Channel::Store) storeQueue_[replica].push_back(p.id);
  if (deliverAt < 0)
    net_.send(std::move(p), now_);
  else
    net_.deliverAt(std::move(p), deliverAt);
}

void World::applyStoreRequest(std::uint64_t id) {
  auto it = storeRequests_.find(id);
  if (it == storeRequests_.end()) return;
  StoreRequest req = std::move(it->second);
  storeRequests_.erase(it);
  const int from = ctls_[static_cast<std::size_t>(req.replica)]->node;
  if (!store_->hasQuorum()) {
    trace(TraceKind::Lost, from, storeNode_, "(etcd has no quorum) " + req.what);
    return;
  }
  trace(TraceKind::Deliver, from, storeNode_, req.what);
  req.apply();
}

void World::flushStoreQueue(int replica, std::uint64_t upTo) {
  auto& q = storeQueue_[replica];
  if (upTo && std::find(q.begin(), q.end(), upTo) == q.end()) return;  // already applied
  while (!q.empty()) {
    const std::uint64_t id = q.front();
    q.pop_front();
    applyStoreRequest(id);
    if (id == upTo) break;
  }
}

void World::electionSend(int i, const SimElection::Call& call) {
  ControllerNode& c = *ctls_[static_cast<std::size_t>(i)];
  std::string what = opName(call.op);
  if (call.op == SimElection::Op::Grant) what += " ttl=" + std::to_string(call.ttlSeconds) + "s";
  if (call.lease) what += " lease=" + std::to_string(call.lease);
  const std::uint32_t incarnation = c.proc.incarnation;
  storeRequest(
      i, Channel::Election, what,
      [this, i, call, incarnation] {
        const std::int64_t sl = local(storeNode_);
        SimElection::Reply rep;
        switch (call.op) {
          case SimElection::Op::Range:
            if (auto l = store_->leader(sl)) {
              rep.createRevision = l->createRevision;
              rep.holder = l->holder;
            }
            break;
          case SimElection::Op::Grant: {
            const auto g = store_->grant(call.ttlSeconds, sl);
            rep.lease = g.id;
            rep.ttlSeconds = g.ttlSeconds;
            break;
          }
          case SimElection::Op::Campaign:
            if (auto won = store_->campaign(call.holder, call.lease, sl)) {
              rep.succeeded = won->succeeded;
              rep.revision = won->revision;
            } else {
              rep.ok = false;
              rep.code = won.error().code;
              rep.message = won.error().message;
            }
            break;
          case SimElection::Op::KeepAlive:
            if (auto ttl = store_->keepAlive(call.lease, sl)) {
              rep.ttlSeconds = *ttl;
            } else {
              rep.ok = false;
              rep.code = ttl.error().code;
              rep.message = ttl.error().message;
            }
            break;
          case SimElection::Op::Revoke:
            store_->revoke(call.lease, sl);
            break;
        }
        Packet a;
        a.id = ++packetIds_;
        a.src = storeNode_;
        a.dst = ctls_[static_cast<std::size_t>(i)]->node;
        a.channel = Channel::Election;
        a.bytes = std::string(opName(call.op)) + " -> " +
                  (!rep.ok ? rep.message
                   : call.op == SimElection::Op::Range
                       ? (rep.createRevision ? rep.holder + " (epoch " + std::to_string(rep.createRevision) + ")"
                                             : std::string("vacant"))
                   : call.op == SimElection::Op::Campaign
                       ? (rep.succeeded ? "won, revision " + std::to_string(rep.revision) : std::string("taken"))
                       : std::string("ok"));
        a.sentAt = now_;
        a.dstIncarnation = incarnation;
        storeAnswers_[a.id] = [this, i, id = call.id, rep](std::int64_t arrivedAt) {
          ControllerNode& r = *ctls_[static_cast<std::size_t>(i)];
          if (!r.election) return;
          r.election->reply(id, rep, local(r.node), r.proc.clock.local(arrivedAt));
          if (r.election) rescheduleElection(r);
        };
        net_.send(std::move(a), now_);
      },
      -1);
  // SIGTERM: the process exits once its lease's revoke is on its way.
  if (c.stopping && call.op == SimElection::Op::Revoke) {
    at(now_, [this, i] {
      if (ctls_[static_cast<std::size_t>(i)]->stopping) exitReplica(i, "replica stopped (its lease revoked)");
    });
  }
}

void World::storeDeliver(const Packet& p) {
  auto it = storeRequests_.find(p.id);
  if (it == storeRequests_.end()) return;
  if (p.channel == Channel::Store) return flushStoreQueue(it->second.replica, p.id);
  applyStoreRequest(p.id);
}

void World::replicaDeliver(ControllerNode& c, const Packet& p) {
  if (p.channel == Channel::Election) {
    auto it = storeAnswers_.find(p.id);
    if (it == storeAnswers_.end()) return;
    auto answer = std::move(it->second);
    storeAnswers_.erase(it);
    answer(p.arrivedAt);
    return;
  }
  if (!c.core) return;
  deliverToController(*c.core, names_[static_cast<std::size_t>(p.src)], p.bytes, local(c.node));
  scheduleTick(c.node, now_);  // the loop turns after reading frames
}

// A blocking call of a term's Controller to the store (EtcdStateStore: two attempts of
// about a second each). The caller is answered at once when an attempt's round trip fits
// in it, as if it had waited that long; else it sees a timeout, and an attempt that got
// through is applied when it arrives: a write whose answer was lost may be there or not.
// The term's client is one connection: its requests are applied in the order sent (an
// answered one first lets every earlier one still on its way arrive).
template <class T>
Result<T> World::storeCall(int replica, const std::function<Result<T>()>& answerNow,
                           const std::function<void()>& applyLater, const std::string& what) {
  ControllerNode& c = *ctls_[static_cast<std::size_t>(replica)];
  for (int attempt = 0; attempt < kStoreAttempts; ++attempt) {
    if (net_.state(c.node, storeNode_) == LinkState::Cut) {
      // Lost, or kept by TCP and applied when the link heals.
      if (applyLater) storeRequest(replica, Channel::Store, what + " (sent into a cut)", applyLater, -1);
      continue;
    }
    const auto there = net_.transit(c.node, storeNode_);
    if (!there) continue;  // lost on the way
    const auto back = net_.transit(storeNode_, c.node);
    if (store_->hasQuorum() && back && *there + *back <= kStoreAttemptMs) {
      flushStoreQueue(replica);
      return answerNow();
    }
    if (applyLater) storeRequest(replica, Channel::Store, what + " (no answer in time)", applyLater, now_ + *there);
  }
  return makeError(Errc::Timeout, "etcd store: " + what + ": no answer within " +
                                      std::to_string(kStoreAttempts * kStoreAttemptMs) + " ms");
}

Result<controller::StoredState> World::storeLoad(int replica) {
  return storeCall<controller::StoredState>(
      replica, [this] { return store_->load(local(storeNode_)); }, {}, "load");
}

Status World::storeCommit(int replica, std::uint64_t epoch, const controller::Change& change) {
  auto r = storeCall<bool>(
      replica,
      [&]() -> Result<bool> {
        if (auto s = store_->commit(change, epoch, local(storeNode_)); !s) return s.error();
        return true;
      },
      [this, replica, epoch, change] {
        if (store_->commit(change, epoch, local(storeNode_))) {
          ++result_.stats.commitsAppliedUnanswered;
          trace(TraceKind::Note, ctls_[static_cast<std::size_t>(replica)]->node, storeNode_,
                "commit of epoch " + std::to_string(epoch) + " applied after its caller gave up");
        }
      },
      "commit of epoch " + std::to_string(epoch));
  if (r) return okStatus();
  if (r.error().code == Errc::Timeout) ++result_.stats.commitsUnanswered;
  return r.error();
}

Result<std::vector<controller::EventRecord>> World::storeEvents(int replica, std::uint64_t sinceId, std::size_t limit) {
  return storeCall<std::vector<controller::EventRecord>>(
      replica, [this, sinceId, limit] { return store_->events(sinceId, limit); }, {}, "events");
}

// ---------------------------------------------------------------------------------------
// The agents' DEALER with every replica's endpoint (node-agent/ControllerLink.h)

// A DEALER sends to its completed connections in turn. Only a replica in a term has the
// agents' endpoint bound; a frozen or cut-off one keeps the connection until ZeroMQ's
// heartbeat drops it, and what is sent to it meanwhile is lost (or waits for SIGCONT).
bool World::connectionUsable(const ControllerNode& c, int blade) const {
  if (!c.core || c.proc.state == Process::State::Down) return false;
  const std::int64_t up = c.connUpAt[static_cast<std::size_t>(blade - 1)];
  if (up == kNotSince || up > now_) return false;
  if (c.proc.state == Process::State::Frozen && now_ - c.proc.frozenAt >= kConnectionLingerMs) return false;
  auto cut = cutSince_.find({c.node, blade});
  return cut == cutSince_.end() || now_ - cut->second < kConnectionLingerMs;
}

bool World::replicaAgentSend(int node, const Json& frame) {
  std::vector<ControllerNode*> up;
  for (auto& c : ctls_)
    if (connectionUsable(*c, node)) up.push_back(c.get());
  if (up.empty()) return false;
  auto& turn = roundRobin_[static_cast<std::size_t>(node - 1)];
  ControllerNode& c = *up[turn++ % up.size()];
  Packet p;
  p.id = ++packetIds_;
  p.src = node;
  p.dst = c.node;
  p.channel = Channel::Fabric;
  p.bytes = frame.dump();
  p.sentAt = now_;
  p.dstIncarnation = c.termGen;
  net_.send(std::move(p), now_);
  return true;
}

void World::replicaLinkChanged(int a, int b, LinkState s) {
  if (isController(b)) std::swap(a, b);
  if (!isController(a) || !isBlade(b)) return;
  const auto key = std::make_pair(a, b);
  if (s == LinkState::Cut) {
    cutSince_.emplace(key, now_);
    return;
  }
  auto it = cutSince_.find(key);
  if (it == cutSince_.end()) return;
  if (now_ - it->second >= kConnectionLingerMs) {
    auto& up = ctl(a).connUpAt[static_cast<std::size_t>(b - 1)];
    if (up != kNotSince) up = now_ + replicaRng_.range(100, 500);
  }
  cutSince_.erase(it);
}

// ---------------------------------------------------------------------------------------
// Judges and the operator

ControllerNode* World::actingReplica() {
  for (auto& c : ctls_)
    if (c->proc.state == Process::State::Running && c->core && c->leadership->acting(local(c->node))) return c.get();
  return nullptr;
}

int World::resolveReplica(int wanted) {
  if (wanted >= 0) return wanted < plan_.replicas ? wanted : -1;
  if (ControllerNode* c = actingReplica()) return c->index;
  int newest = -1;
  for (auto& c : ctls_)
    if (c->core && c->proc.state == Process::State::Running &&
        (newest < 0 || c->termEpoch > ctls_[static_cast<std::size_t>(newest)]->termEpoch))
      newest = c->index;
  return newest;
}

void World::judgeReplicas() {
  // At most one replica acts, each by its own Leadership on its own clock.
  std::vector<ActingJudge::Actor> acting;
  for (auto& c : ctls_) {
    if (c->proc.state == Process::State::Down || !c->leadership) continue;
    const std::int64_t l = local(c->node);
    if (c->leadership->acting(l))
      acting.push_back(
          {names_[static_cast<std::size_t>(c->node)], c->leadership->epoch(), l, c->leadership->actUntil()});
  }
  if (auto two = acting_.judge(acting, now_)) violation(Violation::Kind::TwoActing, *two);
  // Invariant 7's control plane: reachable from a blade when a replica that runs, leads
  // and acts has an uncut link to it.
  std::vector<char> reach(static_cast<std::size_t>(bladeCount() + 1), 0);
  bool any = false;
  for (auto& c : ctls_) {
    if (c->proc.state != Process::State::Running || !c->core || !c->leadership->acting(local(c->node))) continue;
    any = true;
    for (int b = 1; b <= bladeCount(); ++b)
      if (net_.state(c->node, b) != LinkState::Cut) reach[static_cast<std::size_t>(b)] = 1;
  }
  outage_.setRunning(0, any, now_);
  for (int b = 1; b <= bladeCount(); ++b)
    outage_.setLink(0, b, reach[static_cast<std::size_t>(b)] ? LinkState::Up : LinkState::Cut, now_);
}

// The acknowledged-change judge follows server cold's power through the operator's applies.
void World::noteApply(const std::string& path, const std::string& body, int status) {
  if (path != "/v1/apply") return;
  const std::string power = coldPower(body);
  if (power.empty()) return;
  if (status == -1) return acks_.start(power);
  // -2: no replica took it; 4xx: refused, nothing changed; no answer or 5xx: maybe applied.
  acks_.applied(power, status == 200                                     ? AckJudge::Outcome::Acknowledged
                       : status == -2 || (status >= 400 && status < 500) ? AckJudge::Outcome::Refused
                                                                         : AckJudge::Outcome::Unknown);
}

void World::compareWithStore(const Json& servers) {
  auto stored = store_->load(local(storeNode_));
  if (!stored) return;
  std::map<std::string, std::string> power;
  for (const auto& d : stored->declarations) {
    if (d.kind != "Server") continue;
    const Json j = Json::parse(d.body, nullptr, false);
    if (j.is_object()) power[d.name] = j.value("power", "on");
  }
  std::string differs;
  for (const auto& s : servers) {
    const std::string name = s.value("name", ""), shown = s.value("power", "on");
    auto it = power.find(name);
    if (it != power.end() && it->second != shown)
      differs += " " + name + " (leader: " + shown + ", store: " + it->second + ")";
  }
  if (differs.empty()) return;
  ++result_.stats.viewsDiverged;
  trace(TraceKind::Note, -1, -1, "the leader's view differs from the store's:" + differs);
}

}  // namespace loom::sim::detail
