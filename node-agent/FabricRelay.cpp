#include "node-agent/FabricRelay.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>
#include <zmq.hpp>

#include "loom/LogSafe.h"
#include "node-agent/ControllerLink.h"
#include "protocol/CurveKeys.h"
#include "protocol/RelayEnvelope.h"
#include "protocol/ZapAuthenticator.h"

namespace loom::agent {

namespace {
// An envelope to loomd carries at most this many frames or bytes; a pass that read more
// sends several.
constexpr std::size_t kMaxPairsPerEnvelope = 1024;
constexpr std::size_t kMaxBytesPerEnvelope = std::size_t{4} << 20;
// Messages read from one side per pass, so neither direction starves the other.
constexpr int kMaxMessagesPerPass = 5000;
constexpr std::int64_t kStatsEveryMs = 60000;

std::int64_t monotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

struct FabricRelay::Impl {
  RelayOptions options;
  zmq::context_t context{1};
  zmq::socket_t agents{context, zmq::socket_type::router};
  zmq::socket_t upstream{context, zmq::socket_type::dealer};
  std::unique_ptr<protocol::ZapAuthenticator> zap;
  std::atomic<std::uint64_t> up{0}, down{0}, droppedUp{0}, refused{0};
  // Log once per kind of trouble and peer: a flood of garbage is not a flood of lines.
  std::set<std::string> logged;
  std::unordered_set<std::string> bladesThisWindow;
  // Each blade's latest frame that found no controller to go to, and when it came: carried
  // up the moment one is reachable (POLLOUT), superseded by the blade's next frame, dropped
  // once older than options.holdMs.
  struct Held {
    zmq::message_t payload;
    std::int64_t at = 0;
  };
  std::unordered_map<std::string, Held> held;
  std::atomic<std::uint64_t> carriedLate{0};

  // One envelope of (blade, frame) pairs to loomd; false when it could not go (no
  // controller connected, or its queue full): then nothing of it went.
  bool sendEnvelope(std::vector<std::pair<zmq::message_t, zmq::message_t>>& pairs) {
    try {
      if (!upstream.send(zmq::buffer(protocol::kRelayMarker), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
        return false;
      for (std::size_t i = 0; i < pairs.size(); ++i) {
        (void)upstream.send(pairs[i].first, zmq::send_flags::sndmore);
        (void)upstream.send(pairs[i].second, i + 1 < pairs.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
      }
      return true;
    } catch (const zmq::error_t& e) {
      spdlog::debug("relay {}: send to the controller: {}", options.name, e.what());
      return false;
    }
  }

  void hold(std::string blade, zmq::message_t payload, std::int64_t now) {
    auto [it, fresh] = held.try_emplace(std::move(blade));
    if (!fresh) ++droppedUp;  // an older one of the same blade
    it->second = Held{std::move(payload), now};
  }

  // The held frames still young enough, in envelopes, now that loomd takes them; those too
  // old are dropped (answered, they would be answered too late to matter). What does not
  // go (the queue filled meanwhile) is dropped too: the agents' timers send again, as for
  // any frame lost on the way.
  void sendHeld(std::int64_t now) {
    expireHeld(now);
    std::vector<std::pair<zmq::message_t, zmq::message_t>> pairs;
    std::size_t bytes = 0, carried = 0;
    bool sending = true;
    auto flush = [&] {
      if (pairs.empty()) return;
      sending = sending && sendEnvelope(pairs);
      if (sending) carried += pairs.size();
      pairs.clear();
      bytes = 0;
    };
    for (auto& [blade, h] : held) {
      bytes += blade.size() + h.payload.size();
      pairs.emplace_back(zmq::message_t(blade.data(), blade.size()), std::move(h.payload));
      if (pairs.size() >= kMaxPairsPerEnvelope || bytes >= kMaxBytesPerEnvelope) flush();
    }
    flush();
    up += carried;
    carriedLate += carried;
    droppedUp += held.size() - carried;
    held.clear();
  }

  void expireHeld(std::int64_t now) {
    for (auto it = held.begin(); it != held.end();) {
      if (now - it->second.at > options.holdMs) {
        it = held.erase(it);
        ++droppedUp;
      } else {
        ++it;
      }
    }
  }

  void refuse(const std::string& peer, const std::string& why) {
    ++refused;
    if (logged.size() < 4096 && logged.insert(peer + '\0' + why.substr(0, 40)).second)
      spdlog::warn("relay {}: dropped a message from '{}': {} (further ones counted, not logged)", options.name,
                   logSafe(peer, 64), logSafe(why));
  }
};

FabricRelay::FabricRelay(RelayOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
}

FabricRelay::~FabricRelay() {
  impl_->agents.close();
  impl_->upstream.close();
  if (impl_->zap) impl_->zap->socket().close();
}

Status FabricRelay::start() {
  auto& o = impl_->options;
  if (o.name.empty() || !protocol::isValidBladeName(o.name))
    return makeError(Errc::Invalid, "relay name '" + o.name + "' must be non-empty, without '/' or control characters");
  auto& a = impl_->agents;
  auto& u = impl_->upstream;
  try {
    // Toward the agents: what loomd's own ROUTER is to a direct agent.
    a.set(zmq::sockopt::router_handover, 1);  // a restarted agent takes its name over
    a.set(zmq::sockopt::sndhwm, 200000);
    a.set(zmq::sockopt::rcvhwm, 200000);
    a.set(zmq::sockopt::linger, 0);
    a.set(zmq::sockopt::backlog, 65535);
    a.set(zmq::sockopt::maxmsgsize, int64_t{64} << 20);
    if (!o.insecure) {
      impl_->zap = std::make_unique<protocol::ZapAuthenticator>(
          impl_->context, o.allowedKeys, std::set<std::string>{},
          [this](const std::string& key, const std::string& address) {
            impl_->refuse(address, "key " + key + " is not in the allow-list");
          });
      a.set(zmq::sockopt::zap_domain, "loom");
      a.set(zmq::sockopt::curve_server, 1);
      a.set(zmq::sockopt::curve_secretkey, o.secretKey);
    }
    // Toward loomd: one DEALER under the relay's name.
    u.set(zmq::sockopt::routing_id, std::string(protocol::kRelayIdPrefix) + o.name);
    // As an agent's: no queue for an absent controller (frames go stale), and with the
    // replicas listed, frames go to the one that leads (ControllerLink.h).
    ControllerLink::configure(u, ControllerLink::Side::Relay);
    // A few seconds of envelopes at most: beyond that loomd is not keeping up, and frames
    // that old would be answered too late for any lease. Dropped instead (droppedUp).
    u.set(zmq::sockopt::sndhwm, 1000);
    u.set(zmq::sockopt::rcvhwm, 1000);
    u.set(zmq::sockopt::maxmsgsize, int64_t{256} << 20);
    if (!o.insecure) {
      auto pub = protocol::curvePublicKey(o.secretKey);
      if (!pub) return pub.error();
      u.set(zmq::sockopt::curve_serverkey, o.serverKey);
      u.set(zmq::sockopt::curve_publickey, *pub);
      u.set(zmq::sockopt::curve_secretkey, o.secretKey);
    }
  } catch (const zmq::error_t& e) {
    return makeError(Errc::Io, std::string("relay sockets: ") + e.what());
  }
  try {
    a.bind(o.listen);
  } catch (const zmq::error_t& e) {
    return makeError(Errc::Io, "cannot listen for agents on '" + o.listen + "': " + e.what());
  }
  if (auto connected = ControllerLink::connect(u, o.controller); !connected)
    return makeError(connected.error().code, "relay " + o.name + ": " + connected.error().message);
  return okStatus();
}

int FabricRelay::boundPort() const {
  const std::string ep = impl_->agents.get(zmq::sockopt::last_endpoint);
  const auto colon = ep.rfind(':');
  return colon == std::string::npos ? 0 : std::atoi(ep.c_str() + colon + 1);
}

RelayStats FabricRelay::stats() const {
  return {impl_->up, impl_->down, impl_->droppedUp, impl_->refused, impl_->carriedLate};
}

// Agents -> loomd: every waiting agent message, in envelopes.
void FabricRelay::forwardUp() {
  auto& impl = *impl_;
  std::vector<std::pair<zmq::message_t, zmq::message_t>> pairs;
  std::size_t bytes = 0;
  auto flush = [&] {
    if (pairs.empty()) return;
    if (impl.sendEnvelope(pairs)) {
      impl.up += pairs.size();
    } else {
      // No controller to take them (none bound: a new leader not elected yet; or behind):
      // each blade's latest waits for one, as a direct agent sends an unsent beat again
      // 100 ms later (Agent's kUnsentRetryMs). The blade cannot tell: its send to us went.
      const std::int64_t now = monotonicMs();
      for (auto& [blade, payload] : pairs) impl.hold(blade.to_string(), std::move(payload), now);
    }
    pairs.clear();
    bytes = 0;
  };
  for (int i = 0; i < kMaxMessagesPerPass; ++i) {
    zmq::message_t id;
    if (!impl.agents.recv(id, zmq::recv_flags::dontwait)) break;
    std::vector<zmq::message_t> parts;
    bool more = id.more();
    while (more) {
      zmq::message_t part;
      (void)impl.agents.recv(part);
      more = part.more();
      parts.push_back(std::move(part));
    }
    // One bad agent must not spoil the envelope of the others: judged here, one by one.
    if (parts.size() != 1) {
      impl.refuse(id.to_string(), "envelope of " + std::to_string(parts.size()) + " frames (want 1)");
      continue;
    }
    if (!protocol::isValidBladeName(id.to_string_view())) {
      impl.refuse(id.to_string(), "routing id is not a blade name (empty, '/' or control characters)");
      continue;
    }
    // A key removed from the allow-list since it connected: cut off at its next frame.
    if (impl.zap) {
      const std::string key = protocol::connectionKey(parts[0]);
      if (impl.zap->roleOf(key).empty()) {
        impl.refuse(id.to_string(), "key " + key + " is no longer in the allow-list");
        continue;
      }
    }
    std::string blade = id.to_string();
    // Its newer frame supersedes the one held for it.
    if (auto it = impl.held.find(blade); it != impl.held.end()) {
      impl.held.erase(it);
      ++impl.droppedUp;
    }
    if (impl.bladesThisWindow.size() < 1000000) impl.bladesThisWindow.insert(std::move(blade));
    bytes += id.size() + parts[0].size();
    pairs.emplace_back(std::move(id), std::move(parts[0]));
    if (pairs.size() >= kMaxPairsPerEnvelope || bytes >= kMaxBytesPerEnvelope) flush();
  }
  flush();
}

// loomd -> agents: each envelope's frames to their blades.
void FabricRelay::forwardDown() {
  auto& impl = *impl_;
  std::vector<std::string_view> views;
  for (int i = 0; i < kMaxMessagesPerPass; ++i) {
    std::vector<zmq::message_t> parts;
    zmq::message_t first;
    if (!impl.upstream.recv(first, zmq::recv_flags::dontwait)) break;
    bool more = first.more();
    parts.push_back(std::move(first));
    while (more) {
      zmq::message_t part;
      (void)impl.upstream.recv(part);
      more = part.more();
      parts.push_back(std::move(part));
    }
    views.clear();
    for (auto& p : parts) views.push_back(p.to_string_view());
    auto split = protocol::splitRelayEnvelope(views);
    if (auto* bad = std::get_if<protocol::Rejection>(&split)) {
      impl.refuse("controller", bad->kind + ": " + bad->message);
      continue;
    }
    for (const auto& f : std::get<std::vector<protocol::RelayedFrame>>(split)) {
      try {
        // A blade that is not connected here loses the frame (ROUTER drops the unroutable).
        if (impl.agents.send(zmq::buffer(f.blade), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
          (void)impl.agents.send(zmq::buffer(f.payload), zmq::send_flags::dontwait);
          ++impl.down;
        }
      } catch (const zmq::error_t& e) {
        spdlog::debug("relay {}: send to '{}': {}", impl.options.name, f.blade, e.what());
      }
    }
  }
}

void FabricRelay::run() {
  auto& impl = *impl_;
  spdlog::info("relay {}: agents on {}, controller at {}", impl.options.name,
               impl.agents.get(zmq::sockopt::last_endpoint), impl.options.controller);
  std::int64_t lastUp = 0, lastStats = monotonicMs();
  RelayStats last{};
  while (!stop_) {
    if (reload_.exchange(false) && impl.options.reloadAllowedKeys) {
      auto keys = impl.options.reloadAllowedKeys();
      if (!keys) {
        spdlog::error("relay {}: SIGHUP: {}; the allow-list in force stays ({} key(s))", impl.options.name,
                      keys.error().message, impl.zap ? impl.zap->agentKeyCount() : 0);
      } else if (impl.zap) {
        impl.zap->setKeys(std::move(*keys), {});
        // A key refused before may be allowed now: its refusals are logged again.
        impl.logged.clear();
        spdlog::info("relay {}: SIGHUP: allow-list re-read: {} agent key(s); a removed key's agents are cut off",
                     impl.options.name, impl.zap->agentKeyCount());
      }
    }
    // While frames are held, a controller that becomes reachable (POLLOUT: a connection
    // completed) takes them at once.
    const short upstreamEvents = impl.held.empty() ? ZMQ_POLLIN : ZMQ_POLLIN | ZMQ_POLLOUT;
    std::vector<zmq::pollitem_t> items{{impl.agents.handle(), 0, ZMQ_POLLIN, 0},
                                       {impl.upstream.handle(), 0, upstreamEvents, 0}};
    if (impl.zap) items.push_back({impl.zap->socket().handle(), 0, ZMQ_POLLIN, 0});
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(impl.held.empty() ? 200 : 50));
      if (items.size() > 2 && (items[2].revents & ZMQ_POLLIN)) impl.zap->handle();
      if (items[1].revents & ZMQ_POLLOUT) impl.sendHeld(monotonicMs());
      if (!impl.held.empty()) impl.expireHeld(monotonicMs());
      if (items[1].revents & ZMQ_POLLIN) forwardDown();
      if (items[0].revents & ZMQ_POLLIN) {
        // Gather: one envelope per batch interval, not one per heartbeat.
        if (const std::int64_t early = lastUp + impl.options.batchMs - monotonicMs(); early > 0)
          std::this_thread::sleep_for(std::chrono::milliseconds(early));
        lastUp = monotonicMs();
        forwardUp();
      }
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      spdlog::error("relay {}: {}", impl.options.name, e.what());
    }
    if (const std::int64_t now = monotonicMs(); now - lastStats >= kStatsEveryMs) {
      const RelayStats s = stats();
      spdlog::info(
          "relay {}: {} blades in the last {} s; frames up {} ({} held until the controller was reachable), down {}, "
          "dropped {} (controller unreachable), refused {}",
          impl.options.name, impl.bladesThisWindow.size(), (now - lastStats) / 1000, s.up - last.up,
          s.carriedLate - last.carriedLate, s.down - last.down, s.droppedUp - last.droppedUp, s.refused - last.refused);
      impl.bladesThisWindow.clear();
      last = s;
      lastStats = now;
    }
  }
}

}  // namespace loom::agent
