#include "tests/sim/SimNetwork.h"

#include <algorithm>
#include <cassert>

namespace loom::sim {

const char* toString(Channel c) {
  switch (c) {
    case Channel::Fabric:
      return "fabric";
    case Channel::Peer:
      return "peer";
    case Channel::Store:
      return "store";
    case Channel::Election:
      return "election";
  }
  return "?";
}
const char* toString(LinkState s) {
  switch (s) {
    case LinkState::Up:
      return "up";
    case LinkState::Lossy:
      return "lossy";
    case LinkState::Cut:
      return "cut";
  }
  return "?";
}

Network::Network(int nodes, NetworkProfile profile, Rng rng, Deliver deliver)
    : nodes_(nodes),
      profile_(profile),
      rng_(rng),
      deliver_(std::move(deliver)),
      links_(static_cast<std::size_t>(nodes * nodes)) {}

Network::Link& Network::link(int a, int b) {
  assert(a != b && a >= 0 && b >= 0 && a < nodes_ && b < nodes_);
  if (a > b) std::swap(a, b);
  return links_[static_cast<std::size_t>(a * nodes_ + b)];
}
const Network::Link& Network::link(int a, int b) const { return const_cast<Network*>(this)->link(a, b); }

LinkState Network::state(int a, int b) const { return link(a, b).state(); }

// Up: a LAN, mostly a millisecond or two, now and then tens of ms, bounded by
// maxUpDelayMs. Lossy: a congested path, up to maxLossyDelayMs.
std::int64_t Network::delay(LinkState s) {
  const std::int64_t max = s == LinkState::Lossy ? profile_.maxLossyDelayMs : profile_.maxUpDelayMs;
  const std::int64_t roll = rng_.range(0, 99);
  if (roll < 90) return rng_.range(0, std::min<std::int64_t>(2, max));
  if (roll < 99) return rng_.range(std::min<std::int64_t>(2, max), std::min<std::int64_t>(20, max));
  return rng_.range(std::min<std::int64_t>(20, max), max);
}

void Network::schedule(Packet packet, std::int64_t at) {
  if (profile_.fifo || toStore(packet.channel)) {
    auto& last = lastDelivery_[{packet.src, packet.dst, packet.channel}];
    at = std::max(at, last);
    last = at;
  }
  deliver_(at, std::move(packet));
}

void Network::send(Packet packet, std::int64_t now) {
  ++sent_;
  Link& l = link(packet.src, packet.dst);
  const LinkState s = l.state();
  if (s == LinkState::Cut) {
    if (l.holds > 0) {
      ++heldTotal_;
      l.held.push_back(std::move(packet));
    } else {
      ++dropped_;
    }
    return;
  }
  if (s == LinkState::Lossy && rng_.chance(profile_.dropLossy)) {
    ++dropped_;
    return;
  }
  const double dup = profile_.fifo || toStore(packet.channel) ? 0.0
                     : s == LinkState::Lossy                  ? profile_.duplicateLossy
                                                              : profile_.duplicateUp;
  if (dup > 0 && rng_.chance(dup)) {
    ++duplicated_;
    Packet copy = packet;
    copy.duplicate = true;
    schedule(std::move(copy), now + delay(s));
  }
  schedule(std::move(packet), now + delay(s));
}

std::optional<std::int64_t> Network::transit(int a, int b) {
  ++sent_;
  const LinkState s = link(a, b).state();
  if (s == LinkState::Cut || (s == LinkState::Lossy && rng_.chance(profile_.dropLossy))) {
    ++dropped_;
    return std::nullopt;
  }
  return delay(s);
}

std::int64_t Network::lastDelivery(int src, int dst, Channel channel) const {
  auto it = lastDelivery_.find({src, dst, channel});
  return it == lastDelivery_.end() ? 0 : it->second;
}

void Network::changed(int a, int b, LinkState before, std::int64_t now) {
  Link& l = link(a, b);
  const LinkState after = l.state();
  if (after == before) return;
  if (after != LinkState::Cut && !l.held.empty()) {
    // Healed: what TCP kept retransmitting arrives now, in order.
    auto held = std::move(l.held);
    l.held.clear();
    for (auto& p : held) schedule(std::move(p), now + delay(after));
  }
  if (linkChanged_) linkChanged_(a, b, after, now);
}

void Network::cut(int a, int b, bool hold, std::int64_t now) {
  Link& l = link(a, b);
  const LinkState before = l.state();
  ++l.cuts;
  if (hold) ++l.holds;
  changed(a, b, before, now);
}

void Network::uncut(int a, int b, bool hold, std::int64_t now) {
  Link& l = link(a, b);
  const LinkState before = l.state();
  assert(l.cuts > 0);
  --l.cuts;
  if (hold) --l.holds;
  changed(a, b, before, now);
}

void Network::degrade(int a, int b, std::int64_t now) {
  Link& l = link(a, b);
  const LinkState before = l.state();
  ++l.lossy;
  changed(a, b, before, now);
}

void Network::undegrade(int a, int b, std::int64_t now) {
  Link& l = link(a, b);
  const LinkState before = l.state();
  assert(l.lossy > 0);
  --l.lossy;
  changed(a, b, before, now);
}

}  // namespace loom::sim
