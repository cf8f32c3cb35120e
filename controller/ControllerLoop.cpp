#include "controller/ControllerLoop.h"

#include <malloc.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <unordered_map>
#include <variant>
#include <vector>
#include <zmq.hpp>

#include "protocol/RelayEnvelope.h"
#include "protocol/Validation.h"
#include "protocol/ZapAuthenticator.h"

namespace loom::controller {

namespace {
// How often the core hands freed heap back to the system (malloc_trim).
constexpr std::int64_t kTrimEveryMs = 30000;
// Posted tasks (API requests) wait at most this many frames of a long backlog.
constexpr std::size_t kFramesBetweenTasks = 256;
}  // namespace

struct ControllerLoop::Sockets {
  zmq::context_t context{1};
  zmq::socket_t router{context, zmq::socket_type::router};
  std::unique_ptr<protocol::ZapAuthenticator> zap;  // only with Curve on
  // Fabric thread only: frames for a relay's blades wait here until the end of the pass,
  // then go out as one envelope. (Each blade's route is in the LeaseTable.)
  std::unordered_map<std::string, std::vector<std::pair<std::string, std::string>>> toRelay;
};

ControllerLoop::ControllerLoop(Controller& controller, FabricOptions options)
    : controller_(controller),
      options_(std::move(options)),
      sockets_(std::make_unique<Sockets>()),
      leadership_(controller.leadership()) {
  coreWakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  fabricWakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

ControllerLoop::~ControllerLoop() {
  stop();
  if (fabricThread_.joinable()) fabricThread_.join();
  if (sockets_) {
    sockets_->router.close();
    if (sockets_->zap) sockets_->zap->socket().close();
  }
  if (coreWakeFd_ >= 0) ::close(coreWakeFd_);
  if (fabricWakeFd_ >= 0) ::close(fabricWakeFd_);
}

std::int64_t ControllerLoop::monotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Status ControllerLoop::bind() {
  try {
    auto& r = sockets_->router;
    // A restarted agent reconnects with the same routing id (its blade name) while the
    // old connection may linger: the new one takes the name over.
    r.set(zmq::sockopt::router_handover, 1);
    // Bounded queues, per connection: a frame that waits behind thousands of others is
    // answered too late to be worth answering, and a backlog only grows under overload.
    // What does not fit is dropped here (sends) or held back in the peer (receives,
    // where a relay then drops); the agents' timers resend what matters.
    r.set(zmq::sockopt::sndhwm, 10000);
    r.set(zmq::sockopt::rcvhwm, 1000);
    r.set(zmq::sockopt::linger, 0);
    // After a controller restart every agent reconnects at once. With ZeroMQ's default
    // listen backlog (100) the SYNs beyond it are dropped and those agents retry only after
    // TCP's 1 s, then 3 s: at 2,000 blades dozens of them ran out their leases. The
    // kernel caps this at net.core.somaxconn (4096 by default).
    r.set(zmq::sockopt::backlog, 65535);
    // A frame larger than this is an attack or a bug, not a plan.
    r.set(zmq::sockopt::maxmsgsize, int64_t{64} << 20);
    if (!options_.insecure) {
      // The authenticator must be bound before the first handshake can happen.
      sockets_->zap = std::make_unique<protocol::ZapAuthenticator>(
          sockets_->context, options_.allowedKeys, options_.relayKeys,
          [this](const std::string& key, const std::string& address) {
            post([this, key, address] {
              controller_.noteRejected("key " + key,
                                       {"auth", "key " + key + " from " + address + " is not in the allow-list"});
            });
          });
      r.set(zmq::sockopt::zap_domain, "loom");
      r.set(zmq::sockopt::curve_server, 1);
      r.set(zmq::sockopt::curve_secretkey, options_.secretKey);
    } else {
      spdlog::warn(
          "*** --insecure: CurveZMQ is OFF. Any process that can reach {} can act as an agent or a relay. "
          "For local demos and tests only. ***",
          options_.endpoint);
    }
    // A controller restarted right after a crash can find its port still held while the
    // kernel tears the old process's 10,000 connections down: wait a little for it.
    for (int attempt = 0;; ++attempt) {
      try {
        r.bind(options_.endpoint);
        if (attempt) spdlog::warn("{} bound after {} ms", options_.endpoint, attempt * 100);
        break;
      } catch (const zmq::error_t& e) {
        if (e.num() != EADDRINUSE || attempt >= 50) throw;
        if (attempt == 0) spdlog::warn("{} is still in use; retrying for up to 5 s", options_.endpoint);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  } catch (const zmq::error_t& e) {
    return makeError(Errc::Io, "cannot bind the agent fabric on '" + options_.endpoint + "': " + e.what());
  }
  return okStatus();
}

std::string ControllerLoop::boundEndpoint() const { return sockets_->router.get(zmq::sockopt::last_endpoint); }

void ControllerLoop::wake(int fd) {
  std::uint64_t one = 1;
  (void)!::write(fd, &one, sizeof one);
}

void ControllerLoop::send(const std::string& blade, const protocol::Json& frame) {
  {
    std::lock_guard lock(mutex_);
    outbox_.emplace_back(blade, frame.dump());
  }
  wake(fabricWakeFd_);
}

void ControllerLoop::send(const std::string& blade, std::string bytes) {
  {
    std::lock_guard lock(mutex_);
    outbox_.emplace_back(blade, std::move(bytes));
  }
  wake(fabricWakeFd_);
}

void ControllerLoop::stop() {
  stop_ = true;
  wake(coreWakeFd_);
  wake(fabricWakeFd_);
}

void ControllerLoop::post(std::function<void()> task) {
  {
    std::lock_guard lock(mutex_);
    tasks_.push_back(std::move(task));
  }
  wake(coreWakeFd_);
}

bool ControllerLoop::acting() {
  const bool now = leadership_.actingNow();
  if (now != wasActing_) {
    wasActing_ = now;
    if (now)
      spdlog::info("fabric: acting again under epoch {}", leadership_.epoch());
    else
      spdlog::warn(
          "fabric: this loomd does not act (epoch {}: its term ended or was never granted): frames are read and "
          "dropped, nothing is answered or sent",
          leadership_.epoch());
  }
  return now;
}

// Fabric thread. Heartbeats are answered here, before the core sees them: the renewal
// must not wait behind whatever the core is doing.
void ControllerLoop::receiveFrames() {
  auto& r = sockets_->router;
  std::deque<Inbound> batch;
  std::vector<zmq::message_t> parts;
  std::vector<std::string_view> views;
  for (int i = 0; i < 5000; ++i) {
    zmq::message_t id;
    if (!r.recv(id, zmq::recv_flags::dontwait)) break;
    parts.clear();
    bool more = id.more();
    while (more) {
      zmq::message_t part;
      (void)r.recv(part);
      more = part.more();
      parts.push_back(std::move(part));
    }
    // Not acting: nothing read is answered, renewed or handed on. Read all the same, so
    // that nothing stale waits in the socket should this loomd act again.
    if (!acting()) {
      ++notActingIn_;
      continue;
    }
    std::string peer = id.to_string();
    const std::int64_t now = monotonicMs();
    // The role of the connection's key in the lists as they are now: a key removed since
    // it connected is cut off here, at its next frame.
    std::string role;
    if (!options_.insecure && !parts.empty()) {
      std::string key = protocol::connectionKey(parts[0]);
      role = sockets_->zap->roleOf(key);
      if (role.empty()) {
        ++cutOff_;
        post([this, peer, key = std::move(key)] {
          controller_.noteRejected(peer,
                                   {"auth", "'" + peer + "' connected with key " + key +
                                                ", which is no longer in the allow-list: its frames are dropped"});
        });
        continue;
      }
    }
    if (!parts.empty() && protocol::isRelayEnvelope(parts[0].to_string_view())) {
      // Only a relay's key may speak for other blades (with Curve off, anyone may).
      if (!options_.insecure && role != protocol::kRoleRelay) {
        post([this, peer] {
          controller_.noteRejected(
              peer, {"auth", "'" + peer + "' sent a relay envelope but its key is not a relay's (--allow-relays)"});
        });
        continue;
      }
      if (peer.compare(0, protocol::kRelayIdPrefix.size(), protocol::kRelayIdPrefix) != 0 ||
          peer.size() == protocol::kRelayIdPrefix.size()) {
        post([this, peer] {
          controller_.noteRejected(peer, {"malformed", "relay envelope from '" + peer +
                                                           "', which is not a relay's routing id (relay/NAME)"});
        });
        continue;
      }
      views.clear();
      for (auto& p : parts) views.push_back(p.to_string_view());
      auto split = protocol::splitRelayEnvelope(views);
      if (auto* bad = std::get_if<protocol::Rejection>(&split)) {
        post([this, peer, why = *bad] { controller_.noteRejected(peer, why); });
        continue;
      }
      for (const auto& f : std::get<std::vector<protocol::RelayedFrame>>(split))
        takeFrame(std::string(f.blade), f.payload, peer, now, batch);
      continue;
    }
    if (parts.size() != 1) {
      post([this, peer, n = parts.size()] {
        controller_.noteRejected(peer, {"malformed", "envelope of " + std::to_string(n) + " frames (want 1)"});
      });
      continue;
    }
    takeFrame(std::move(peer), parts[0].to_string_view(), {}, now, batch);
  }
  flushRelays();
  if (batch.empty()) return;
  {
    std::lock_guard lock(mutex_);
    for (auto& f : batch) inbox_.push_back(std::move(f));
  }
  wake(coreWakeFd_);
}

void ControllerLoop::takeFrame(std::string blade, std::string_view bytes, const std::string& via, std::int64_t now,
                               std::deque<Inbound>& batch) {
  // Nearly every frame: a plain heartbeat of a routine blade. Answered and noted here,
  // without a JSON tree, and the core is not bothered with it.
  if (auto beat = protocol::peekPlainHeartbeat(bytes)) {
    auto& leases = controller_.leases();
    const auto lease = leases.heartbeat(blade, now, /*news=*/false, via,
                                        {beat->echo, beat->policyVersion, beat->shieldMs, beat->holding});
    if (lease.renewed && beat->ack)
      sendVia(via, blade,
              protocol::leaseRenewedFrame(beat->seq, options_.leaseMs, leases.stamp(now), leadership_.epoch()));
    if (lease.keep) return;
    protocol::Json frame;
    (void)protocol::parseFrame(bytes, frame);  // cannot fail: the peek accepted it
    batch.push_back({std::move(blade), std::move(frame), {}, now});
    return;
  }
  // Parsed once, here; the core validates and handles the parsed object. Only a
  // well-formed heartbeat or register gets its lease here; everything else, and the rest
  // of what these carry, is the core's to judge.
  protocol::Json frame;
  if (protocol::parseFrame(bytes, frame)) {
    batch.push_back({std::move(blade), nullptr, std::string(bytes), now});
    return;
  }
  std::string reply;
  // validate() is pure and checks every field's JSON type, so nothing below can throw.
  const std::string type = protocol::validate(frame) ? "" : frame["type"].get<std::string>();
  bool keep = false;
  auto& leases = controller_.leases();
  if (type == protocol::type::kHeartbeat) {
    // The controller's view of the lease always moves on; the agent's only with an answer.
    const auto m = protocol::decodeHeartbeat(frame);
    const auto beat = leases.heartbeat(blade, now, m.domains.has_value() || m.held.has_value(), via,
                                       {m.echo, m.policyVersion, m.shieldMs, m.holding});
    if (beat.renewed && m.ack)
      reply = protocol::leaseRenewedFrame(m.seq, options_.leaseMs, leases.stamp(now), leadership_.epoch());
    keep = beat.keep;
  } else if (type == protocol::type::kRegister && frame["blade"] == blade && protocol::isValidBladeName(blade)) {
    leases.grant(blade, now, via, frame.value("uptime_ms", std::int64_t{-1}));
    reply = protocol::encode(protocol::Registered{options_.leaseMs, options_.heartbeatMs,
                                                  frame.value("seq", std::uint64_t{0}), leases.stamp(now),
                                                  leadership_.epoch()})
                .dump();
  }
  if (!reply.empty()) sendVia(via, blade, reply);
  // A routine blade's plain heartbeat has told the core all it had to (LeaseTable::heard).
  if (!keep) batch.push_back({std::move(blade), std::move(frame), {}, now});
}

void ControllerLoop::sendVia(const std::string& via, const std::string& blade, std::string_view bytes) {
  if (!via.empty()) {
    sockets_->toRelay[via].emplace_back(blade, bytes);
    return;
  }
  // Right before the socket call: a loomd frozen since it read the frame may have lost its term.
  if (!acting()) {
    ++notActingOut_;
    return;
  }
  auto& r = sockets_->router;
  try {
    if (r.send(zmq::buffer(blade), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
      (void)r.send(zmq::buffer(bytes), zmq::send_flags::dontwait);
  } catch (const zmq::error_t& e) {
    spdlog::debug("send to '{}' failed: {}", blade, e.what());
  }
}

void ControllerLoop::flushRelays() {
  auto& r = sockets_->router;
  for (auto& [relay, frames] : sockets_->toRelay) {
    if (frames.empty()) continue;
    if (!acting()) {
      notActingOut_ += frames.size();
      frames.clear();
      continue;
    }
    try {
      // A relay that is gone (or too far behind) loses the whole envelope, as a direct
      // agent would lose its frame: the agents' timers resend what matters.
      if (r.send(zmq::buffer(relay), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
        (void)r.send(zmq::buffer(protocol::kRelayMarker), zmq::send_flags::sndmore);
        for (std::size_t i = 0; i < frames.size(); ++i) {
          (void)r.send(zmq::buffer(frames[i].first), zmq::send_flags::sndmore);
          (void)r.send(zmq::buffer(frames[i].second),
                       i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
        }
      }
    } catch (const zmq::error_t& e) {
      spdlog::debug("send to relay '{}' failed: {}", relay, e.what());
    }
    frames.clear();
  }
}

void ControllerLoop::sendQueued() {
  std::uint64_t n;
  while (::read(fabricWakeFd_, &n, sizeof n) > 0) {
  }
  std::deque<std::pair<std::string, std::string>> out;
  {
    std::lock_guard lock(mutex_);
    out.swap(outbox_);
  }
  // Queued by a core that acted then; each goes only while this loomd still acts (sendVia).
  // The core's frames go the way each blade was last heard from.
  for (const auto& [blade, bytes] : out) sendVia(controller_.leases().route(blade), blade, bytes);
  flushRelays();
}

void ControllerLoop::setAllowedKeys(std::set<std::string> agentKeys, std::set<std::string> relayKeys) {
  if (options_.insecure) return;
  {
    std::lock_guard lock(mutex_);
    newKeys_.emplace(std::move(agentKeys), std::move(relayKeys));
  }
  keysChanged_ = true;
  wake(fabricWakeFd_);
}

void ControllerLoop::takeNewKeys() {
  std::optional<std::pair<std::set<std::string>, std::set<std::string>>> keys;
  {
    std::lock_guard lock(mutex_);
    keys.swap(newKeys_);
  }
  if (!keys || !sockets_->zap) return;
  sockets_->zap->setKeys(std::move(keys->first), std::move(keys->second));
  spdlog::info("fabric: allow-lists in force: {} agent key(s), {} relay key(s)", sockets_->zap->agentKeyCount(),
               sockets_->zap->relayKeyCount());
}

void ControllerLoop::runFabric() {
  auto& r = sockets_->router;
  std::int64_t lastReceive = 0;
  while (!stop_) {
    if (keysChanged_.exchange(false)) takeNewKeys();
    std::vector<zmq::pollitem_t> items{{r.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, fabricWakeFd_, ZMQ_POLLIN, 0}};
    if (sockets_->zap) items.push_back({sockets_->zap->socket().handle(), 0, ZMQ_POLLIN, 0});
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(500));
      if (items.size() > 2 && (items[2].revents & ZMQ_POLLIN)) sockets_->zap->handle();
      if (items[0].revents & ZMQ_POLLIN) {
        if (const std::int64_t early = lastReceive + options_.batchMs - monotonicMs(); early > 0)
          std::this_thread::sleep_for(std::chrono::milliseconds(early));
        lastReceive = monotonicMs();
        receiveFrames();
      }
      if (items[1].revents & ZMQ_POLLIN) sendQueued();
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      spdlog::error("fabric thread: {}", e.what());
    } catch (const std::exception& e) {
      spdlog::critical("fabric thread: unexpected exception: {}", e.what());
    }
  }
}

void ControllerLoop::runTasks() {
  std::deque<std::function<void()>> tasks;
  {
    std::lock_guard lock(mutex_);
    tasks.swap(tasks_);
  }
  for (auto& t : tasks) t();
}

// Core thread: tasks, then the frames that arrived until now (also those that arrived
// while a long task ran: the timers that follow must see those heartbeats, stamped with
// when the fabric thread received them, or a 1 s apply makes healthy blades look silent).
void ControllerLoop::drainCore() {
  std::uint64_t n;
  while (::read(coreWakeFd_, &n, sizeof n) > 0) {
  }
  runTasks();
  std::deque<Inbound> frames;
  {
    std::lock_guard lock(mutex_);
    frames.swap(inbox_);
  }
  std::size_t handled = 0;
  for (auto& f : frames) {
    // A frame that makes a handler throw (a bug: validate() let through what a decoder
    // cannot take, as fuzz_wire once found) costs that frame alone, not the rest of the
    // batch: other blades' heartbeats and the API requests behind it.
    try {
      if (f.frame.is_null())
        controller_.onFrame(f.peer, f.bytes, f.at);
      else
        controller_.onParsedFrame(f.peer, f.frame, f.at);
    } catch (const std::exception& e) {
      spdlog::critical("controller loop: a frame from '{}' threw: {}", f.peer, e.what());
    }
    // 10,000 agents registering after a restart are seconds of frames: API requests
    // posted meanwhile are answered between them, not after them all.
    if (++handled % kFramesBetweenTasks == 0) runTasks();
  }
}

void ControllerLoop::startFabric() {
  if (!fabricThread_.joinable()) fabricThread_ = std::thread([this] { runFabric(); });
}

void ControllerLoop::run() {
  startFabric();
  std::int64_t lastTick = 0;
  std::int64_t lastTrim = monotonicMs();
  while (!stop_) {
    const std::int64_t wait = std::clamp<std::int64_t>(controller_.nextTickAt() - monotonicMs(), 0, 100);
    pollfd p{coreWakeFd_, POLLIN, 0};
    (void)::poll(&p, 1, static_cast<int>(wait));
    try {
      drainCore();
      const std::int64_t tickAt = monotonicMs();
      // poll() waits at most 100 ms: a longer gap between ticks is this thread's stall.
      if (lastTick > 0 && tickAt - lastTick > 1000) controller_.forgiveStall(tickAt - lastTick);
      lastTick = tickAt;
      controller_.tick(tickAt);
      if (turnHook_) turnHook_(tickAt);
      if (tickAt - lastTrim >= kTrimEveryMs) {
        // An apply of 100,000 servers leaves half a gigabyte of freed heap that malloc
        // keeps (RSS 1.39 GB without this, 0.71 GB with it: docs/PERFORMANCE.md).
        ::malloc_trim(0);
        lastTrim = monotonicMs();
        if (lastTrim - tickAt > 50) spdlog::debug("malloc_trim took {} ms", lastTrim - tickAt);
      }
    } catch (const std::exception& e) {
      // A bug in a handler must not take the fabric down; it is logged loudly.
      spdlog::critical("controller loop: unexpected exception: {}", e.what());
    }
  }
  wake(fabricWakeFd_);
  if (fabricThread_.joinable()) fabricThread_.join();
}

}  // namespace loom::controller
