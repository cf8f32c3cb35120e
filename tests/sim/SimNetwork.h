// The simulator's network: every message between two simulated processes goes through
// here, on a (source, destination, channel) triple, so the agent-to-controller fabric and
// the agent-to-agent peer channel share one model. Node 0 is loomd, 1..N the blades; with
// replicas, the loomd replicas and the store (etcd) come after the blades.
//
// Each unordered pair of nodes is a link in one of three states:
//   Up     delivered after a short delay (at most maxUpDelayMs); with a hostile profile
//          messages may be reordered (each draws its own delay) and duplicated;
//   Lossy  a degraded link: each message may be dropped or duplicated, delays are long;
//   Cut    a partition: a message is lost, or, on a link cut in "hold" mode, kept and
//          delivered once the link is no longer cut (TCP retransmitting into a partition
//          that heals before the connection times out).
// Several faults may overlap on one link: cuts and degradations are counted, and the
// link's state is the worst that is active.
//
// A store channel (a replica's etcd clients) is one TCP connection: always in order, never
// duplicated, whatever the profile says.
//
// The network only decides fates and times: it hands each delivery to the scheduler
// (Deliver) and knows nothing of processes.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "tests/sim/Rng.h"

namespace loom::sim {

// Store: a replica's term to etcd (EtcdStateStore); Election: its election's own etcd client.
enum class Channel : std::uint8_t { Fabric, Peer, Store, Election };
enum class LinkState : std::uint8_t { Up, Lossy, Cut };
const char* toString(Channel c);
const char* toString(LinkState s);

struct Packet {
  std::uint64_t id = 0;
  int src = 0, dst = 0;
  Channel channel = Channel::Fabric;
  std::string bytes;
  std::int64_t sentAt = 0;
  std::uint32_t dstIncarnation = 0;  // the receiving process it was sent to (a restarted one never gets it)
  bool duplicate = false;
  std::int64_t arrivedAt = 0;  // set on delivery (a frozen receiver reads it later)
};

struct NetworkProfile {
  // One TCP connection per (source, destination, channel): order is kept and nothing is
  // duplicated. Off: each message draws its own delay (reordering) and may be
  // duplicated, as through a pair of relays or a resending one.
  bool fifo = false;
  double duplicateUp = 0.005;
  double dropLossy = 0.3;
  double duplicateLossy = 0.02;
  std::int64_t maxUpDelayMs = 50;  // the bound on an Up link's one-way delay
  std::int64_t maxLossyDelayMs = 400;
};

class Network {
 public:
  using Deliver = std::function<void(std::int64_t at, Packet packet)>;
  using LinkChanged = std::function<void(int a, int b, LinkState state, std::int64_t now)>;

  Network(int nodes, NetworkProfile profile, Rng rng, Deliver deliver);

  // Decides what becomes of `packet`, sent at `now`: zero, one or two deliveries, or
  // held until its link heals.
  void send(Packet packet, std::int64_t now);
  // One message's fate on an Up or Lossy link now, drawn as send() draws it: its delay, or
  // nothing when it is dropped (and always nothing on a Cut link: see holds()). For a
  // blocking call whose answer is decided at once (a replica's store client).
  std::optional<std::int64_t> transit(int a, int b);
  // Delivers `packet` at `at` (no fate drawn), keeping the order of its connection.
  void deliverAt(Packet packet, std::int64_t at) { schedule(std::move(packet), at); }
  static bool toStore(Channel c) { return c == Channel::Store || c == Channel::Election; }
  // The latest delivery scheduled on a connection that keeps order (0: none).
  std::int64_t lastDelivery(int src, int dst, Channel channel) const;
  // Whether a Cut link keeps what is sent (hold) rather than losing it.
  bool holds(int a, int b) const { return link(a, b).holds > 0; }

  void cut(int a, int b, bool hold, std::int64_t now);
  void uncut(int a, int b, bool hold, std::int64_t now);
  void degrade(int a, int b, std::int64_t now);
  void undegrade(int a, int b, std::int64_t now);

  LinkState state(int a, int b) const;
  const NetworkProfile& profile() const { return profile_; }
  void setProfile(const NetworkProfile& p) { profile_ = p; }
  void onLinkChanged(LinkChanged f) { linkChanged_ = std::move(f); }

  std::uint64_t sent() const { return sent_; }
  std::uint64_t dropped() const { return dropped_; }
  std::uint64_t duplicated() const { return duplicated_; }
  std::uint64_t heldTotal() const { return heldTotal_; }

 private:
  struct Link {
    int cuts = 0, holds = 0, lossy = 0;
    std::deque<Packet> held;
    LinkState state() const { return cuts > 0 ? LinkState::Cut : lossy > 0 ? LinkState::Lossy : LinkState::Up; }
  };
  Link& link(int a, int b);
  const Link& link(int a, int b) const;
  std::int64_t delay(LinkState s);
  void schedule(Packet packet, std::int64_t at);
  void changed(int a, int b, LinkState before, std::int64_t now);

  int nodes_;
  NetworkProfile profile_;
  Rng rng_;
  Deliver deliver_;
  LinkChanged linkChanged_;
  std::vector<Link> links_;
  std::map<std::tuple<int, int, Channel>, std::int64_t> lastDelivery_;  // FIFO: per connection
  std::uint64_t sent_ = 0, dropped_ = 0, duplicated_ = 0, heldTotal_ = 0;
};

}  // namespace loom::sim
