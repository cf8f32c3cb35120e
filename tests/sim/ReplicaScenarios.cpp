// The simulator's replica scenarios (issue 16): 2 or 3 loomd on a simulated etcd, the
// leader killed, frozen, cut off, resigning, and a chaos mix of them with operator actions.
#include "tests/sim/ScenarioBuilder.h"

namespace loom::sim::scenarios {

// ---------------------------------------------------------------------------------------
// Replicas (issue 16): 2 or 3 loomd on a simulated etcd. A fault's node -1 is "the replica
// that leads when the fault begins".

constexpr int kLeader = -1;

// The operator during a takeover: 2 to 5 requests within 4 s of `t`, some to the replica
// loomctl last found leading (frozen, gone), some applies that flip server cold's power.
void operatorDuringTakeover(Builder& s, std::int64_t t) {
  Rng applies = Rng::derive(s.seed(), "takeover-applies");
  const int n = static_cast<int>(s.rng().range(2, 5));
  for (int i = 0; i < n; ++i) {
    const std::int64_t at = t + s.rng().range(0, 4000);
    if (applies.chance(0.4)) {
      s.reapply(at, applies);
      s.plan().faults.back().stale = applies.chance(0.3);
    } else {
      s.replicaOperatorAction(at, s.rng().chance(0.3));
    }
  }
}

void leaderKilled(Builder& s) {
  s.plan().takeoversOnly = true;
  std::int64_t t = kSettledMs + s.rng().range(0, 10000);
  const int kills = static_cast<int>(s.rng().range(1, 2));
  for (int i = 0; i < kills; ++i) {
    const std::int64_t down = s.rng().chance(0.5) ? s.rng().range(200, 3000) : s.rng().range(3000, 20000);
    s.add(Fault::Kind::CrashController, t, down, "the leader (kill -9)").node = kLeader;
    if (s.rng().chance(0.5)) operatorDuringTakeover(s, t);
    t += down + s.rng().range(1000, 10000);
  }
  s.finish();
}

void leaderFrozen(Builder& s) {
  s.plan().takeoversOnly = true;
  // Past its etcd lease (a standby takes over), or shorter (it wakes up still leading).
  const std::int64_t t = kSettledMs + s.rng().range(0, 10000);
  const std::int64_t ttl = s.plan().leaderTtlSeconds * 1000;
  const std::int64_t length =
      s.rng().chance(0.8) ? s.rng().range(ttl + ttl / 2, 3 * s.lease()) : s.rng().range(50, ttl);
  s.add(Fault::Kind::FreezeController, t, length, "the leader (SIGSTOP)").node = kLeader;
  // loomctl had found it leading: its requests wait in the frozen replica's socket.
  for (int i = static_cast<int>(s.rng().range(1, 3)); i > 0; --i)
    s.replicaOperatorAction(t + s.rng().range(1, std::max<std::int64_t>(2, length - 1)), true);
  if (s.rng().chance(0.5)) operatorDuringTakeover(s, t);
  s.finish();
}

void leaderCutFromStore(Builder& s) {
  s.plan().takeoversOnly = true;
  const std::int64_t t = kSettledMs + s.rng().range(0, 10000);
  // Usually the leader; now and then a standby (it must not take over while the leader renews).
  const int who = s.rng().chance(0.8) ? kLeader : static_cast<int>(s.rng().range(0, s.plan().replicas - 1));
  s.add(Fault::Kind::CutFromStore, t, s.rng().range(300, 4 * s.lease()), who == kLeader ? "the leader" : "a replica")
      .node = who;
  if (s.rng().chance(0.5)) operatorDuringTakeover(s, t);
  s.finish();
}

void storeQuorumLost(Builder& s) {
  // No replica can renew or commit: whoever led stops acting, every blade holds its servers
  // under its peers' shield (docs/FENCING.md), and a leader is elected when quorum returns.
  const std::int64_t t = kSettledMs + s.rng().range(0, 10000);
  s.add(Fault::Kind::StoreOutage, t,
        s.rng().chance(0.3) ? s.rng().range(200, 2000) : s.rng().range(2000, 5 * s.lease()), "etcd");
  if (s.rng().chance(0.5)) operatorDuringTakeover(s, t);
  s.finish();
}

void leaderResigns(Builder& s) {
  s.plan().takeoversOnly = true;
  std::int64_t t = kSettledMs + s.rng().range(0, 10000);
  for (int i = static_cast<int>(s.rng().range(1, 2)); i > 0; --i) {
    const std::int64_t down = s.rng().range(300, 15000);
    s.add(Fault::Kind::ResignController, t, down, "the leader (SIGTERM)").node = kLeader;
    if (s.rng().chance(0.5)) operatorDuringTakeover(s, t);
    t += down + s.rng().range(1000, 8000);
  }
  s.finish();
}

void leaderCutFromBlades(Builder& s) {
  // It keeps the store, so it keeps leading: the blades hold under the outage rule.
  const std::int64_t t = kSettledMs + s.rng().range(0, 10000);
  s.add(Fault::Kind::CutFromBlades, t, s.rng().range(s.lease() / 2, 4 * s.lease()), "the leader").node = kLeader;
  s.finish();
}

void leaderIsolated(Builder& s) {
  // Cut from the store and from every blade at once, past its lease: a standby takes over
  // while the old leader may still send. What it sent into the cut (TCP keeps it, on half
  // the seeds) reaches the blades after the new leader's epoch: the agents refuse it.
  const std::int64_t t = kSettledMs + s.rng().range(0, 10000);
  const std::int64_t length = s.rng().range(1500, 4 * s.lease());
  const bool hold = s.rng().chance(0.7);
  s.add(Fault::Kind::CutFromStore, t, length, "the leader (isolated)").node = kLeader;
  s.plan().faults.back().hold = hold;
  s.add(Fault::Kind::CutFromBlades, t, length, "the leader (isolated)").node = kLeader;
  s.plan().faults.back().hold = hold;
  if (s.rng().chance(0.5)) operatorDuringTakeover(s, t);
  s.finish();
}

void applyDuringTakeover(Builder& s) {
  s.plan().takeoversOnly = true;
  const std::int64_t t = kSettledMs + s.rng().range(0, 10000);
  switch (s.rng().range(0, 2)) {
    case 0:
      s.add(Fault::Kind::CrashController, t, s.rng().range(500, 10000), "the leader (kill -9)").node = kLeader;
      break;
    case 1:
      s.add(Fault::Kind::FreezeController, t, s.rng().range(1500, 3 * s.lease()), "the leader (SIGSTOP)").node =
          kLeader;
      break;
    default:
      s.add(Fault::Kind::ResignController, t, s.rng().range(500, 10000), "the leader (SIGTERM)").node = kLeader;
      break;
  }
  operatorDuringTakeover(s, t);
  operatorDuringTakeover(s, t + s.rng().range(0, 3000));
  s.finish();
}

// Everything at once: replica faults, store faults, blade faults and the operator.
void replicasChaos(Builder& s) {
  auto& r = s.rng();
  const int faults = static_cast<int>(r.range(3, 8));
  const std::int64_t span = r.range(20000, 50000);
  const int replicas = s.plan().replicas;
  auto who = [&] { return r.chance(0.7) ? kLeader : static_cast<int>(r.range(0, replicas - 1)); };
  auto duration = [&] { return r.chance(0.7) ? r.range(200, 2 * s.lease()) : r.range(2 * s.lease(), 6 * s.lease()); };
  for (int i = 0; i < faults; ++i) {
    const std::int64_t t = kSettledMs + r.range(0, span);
    switch (r.range(0, 11)) {
      case 0:
        s.add(Fault::Kind::CrashController, t, r.range(100, 15000), "a replica (kill -9)").node = who();
        break;
      case 1:
        s.add(Fault::Kind::FreezeController, t, duration(), "a replica (SIGSTOP)").node = who();
        break;
      case 2:
        s.add(Fault::Kind::ResignController, t, r.range(100, 15000), "a replica (SIGTERM)").node = who();
        break;
      case 3:
        s.add(Fault::Kind::CutFromStore, t, duration(), "a replica").node = who();
        break;
      case 4:
        s.add(Fault::Kind::CutFromBlades, t, duration(), "a replica").node = who();
        break;
      case 5:
        s.add(Fault::Kind::StoreOutage, t, duration(), "etcd");
        break;
      case 6: {
        const int rep = static_cast<int>(r.range(0, replicas - 1));
        s.add(Fault::Kind::Degrade, t, duration(),
              "lossy link loomd-" + std::string(1, static_cast<char>('a' + rep)) + " to etcd")
            .links = {{s.replicaNode(rep), s.storeNode()}};
        break;
      }
      case 7:
        s.isolateBlade(t, duration());
        break;
      case 8: {
        Fault& f = s.add(Fault::Kind::CrashAgent, t, duration(), "");
        f.node = s.randomBlade();
        f.label = s.name(f.node);
        break;
      }
      case 9: {
        Fault& f = s.add(Fault::Kind::FreezeAgent, t, duration(), "");
        f.node = s.randomBlade();
        f.label = s.name(f.node);
        break;
      }
      case 10:
        s.randomLinks(t, duration(), true);
        break;
      default:
        operatorDuringTakeover(s, t);
        break;
    }
  }
  const int actions = static_cast<int>(r.range(0, 6));
  for (int i = 0; i < actions; ++i) s.replicaOperatorAction(kSettledMs + r.range(0, span), r.chance(0.2));
  Rng applies = Rng::derive(s.seed(), "reapply");
  for (int i = static_cast<int>(applies.range(0, 2)); i > 0; --i)
    s.reapply(kSettledMs + applies.range(0, span), applies);
  s.finish();
}

}  // namespace loom::sim::scenarios
