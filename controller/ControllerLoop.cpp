#include "controller/ControllerLoop.h"

#include <malloc.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "protocol/Validation.h"

namespace loom::controller {

namespace {
// How often the core hands freed heap back to the system (malloc_trim).
constexpr std::int64_t kTrimEveryMs = 30000;
}  // namespace

struct ControllerLoop::Sockets {
  zmq::context_t context{1};
  zmq::socket_t router{context, zmq::socket_type::router};
  std::unique_ptr<zmq::socket_t> zap;  // only with Curve on
};

ControllerLoop::ControllerLoop(Controller& controller, FabricOptions options)
    : controller_(controller), options_(std::move(options)), sockets_(std::make_unique<Sockets>()) {
  coreWakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  fabricWakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

ControllerLoop::~ControllerLoop() {
  stop();
  if (fabricThread_.joinable()) fabricThread_.join();
  if (sockets_) {
    sockets_->router.close();
    if (sockets_->zap) sockets_->zap->close();
  }
  if (coreWakeFd_ >= 0) ::close(coreWakeFd_);
  if (fabricWakeFd_ >= 0) ::close(fabricWakeFd_);
}

std::int64_t ControllerLoop::monotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

Status ControllerLoop::bind() {
  try {
    auto& r = sockets_->router;
    // A restarted agent reconnects with the same routing id (its blade name) while the
    // old connection may linger: the new one takes the name over.
    r.set(zmq::sockopt::router_handover, 1);
    r.set(zmq::sockopt::sndhwm, 200000);
    r.set(zmq::sockopt::rcvhwm, 200000);
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
      sockets_->zap = std::make_unique<zmq::socket_t>(sockets_->context, zmq::socket_type::rep);
      sockets_->zap->set(zmq::sockopt::linger, 0);
      sockets_->zap->bind("inproc://zeromq.zap.01");
      r.set(zmq::sockopt::zap_domain, "loom");
      r.set(zmq::sockopt::curve_server, 1);
      r.set(zmq::sockopt::curve_secretkey, options_.secretKey);
    } else {
      spdlog::warn("*** --insecure: CurveZMQ is OFF. Any process that can reach {} can act as an agent. "
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

void ControllerLoop::handleZap() {
  auto& zap = *sockets_->zap;
  std::vector<zmq::message_t> req;
  try {
    while (true) {
      req.clear();
      zmq::message_t part;
      if (!zap.recv(part, zmq::recv_flags::dontwait)) return;
      req.push_back(std::move(part));
      while (req.back().more()) {
        zmq::message_t more;
        (void)zap.recv(more);
        req.push_back(std::move(more));
      }
      // ZAP request: version, request id, domain, address, identity, mechanism, credentials...
      std::string status = "400", text = "refused";
      std::string keyText = "(none)";
      if (req.size() >= 7 && req[5].to_string() == "CURVE" && req[6].size() == 32) {
        char z85[41];
        zmq_z85_encode(z85, static_cast<const std::uint8_t*>(req[6].data()), 32);
        keyText = z85;
        if (options_.allowedKeys.count(keyText)) status = "200", text = "OK";
      }
      if (status != "200") {
        const std::string address = req.size() > 3 ? req[3].to_string() : "?";
        post([this, keyText, address] {
          controller_.noteRejected("key " + keyText, {"auth", "agent key " + keyText + " from " + address + " is not in the allow-list"});
        });
      }
      const std::string version = req.empty() ? "1.0" : req[0].to_string();
      const std::string requestId = req.size() > 1 ? req[1].to_string() : "";
      zap.send(zmq::buffer(version), zmq::send_flags::sndmore);
      zap.send(zmq::buffer(requestId), zmq::send_flags::sndmore);
      zap.send(zmq::buffer(status), zmq::send_flags::sndmore);
      zap.send(zmq::buffer(text), zmq::send_flags::sndmore);
      zap.send(zmq::buffer(std::string(status == "200" ? keyText : "")), zmq::send_flags::sndmore);
      zap.send(zmq::buffer(std::string()), zmq::send_flags::none);
    }
  } catch (const zmq::error_t& e) {
    spdlog::error("zap: {}", e.what());
  }
}

// Fabric thread. Heartbeats are answered here, before the core sees them: the renewal
// must not wait behind whatever the core is doing.
void ControllerLoop::receiveFrames() {
  auto& r = sockets_->router;
  std::deque<Inbound> batch;
  for (int i = 0; i < 5000; ++i) {
    zmq::message_t id;
    if (!r.recv(id, zmq::recv_flags::dontwait)) break;
    std::vector<zmq::message_t> parts;
    bool more = id.more();
    while (more) {
      zmq::message_t part;
      (void)r.recv(part);
      more = part.more();
      parts.push_back(std::move(part));
    }
    std::string peer = id.to_string();
    if (parts.size() != 1) {
      post([this, peer, n = parts.size()] {
        controller_.noteRejected(peer, {"malformed", "envelope of " + std::to_string(n) + " frames (want 1)"});
      });
      continue;
    }
    const std::int64_t now = monotonicMs();
    // Parsed once, here; the core validates and handles the parsed object. Only a
    // well-formed heartbeat or register gets its lease here; everything else, and the rest
    // of what these carry, is the core's to judge.
    protocol::Json frame;
    if (protocol::parseFrame(parts[0].to_string_view(), frame)) {
      batch.push_back({std::move(peer), nullptr, parts[0].to_string(), now});
      continue;
    }
    std::string reply;
    // validate() is pure and checks every field's JSON type, so nothing below can throw.
    const std::string type = protocol::validate(frame) ? "" : frame["type"].get<std::string>();
    if (type == protocol::type::kHeartbeat) {
      // The controller's view of the lease always moves on; the agent's only with an answer.
      if (controller_.leases().renew(peer, now) && frame.value("ack", true))
        reply = protocol::encode(protocol::LeaseRenewed{frame["seq"].get<std::uint64_t>(), options_.leaseMs}).dump();
    } else if (type == protocol::type::kRegister && frame["blade"] == peer) {
      controller_.leases().grant(peer, now);
      reply = protocol::encode(protocol::Registered{options_.leaseMs, options_.heartbeatMs, frame.value("seq", std::uint64_t{0})}).dump();
    }
    if (!reply.empty()) {
      try {
        if (r.send(zmq::buffer(peer), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
          (void)r.send(zmq::buffer(reply), zmq::send_flags::dontwait);
      } catch (const zmq::error_t& e) {
        spdlog::debug("lease answer to '{}' failed: {}", peer, e.what());
      }
    }
    batch.push_back({std::move(peer), std::move(frame), {}, now});
  }
  if (batch.empty()) return;
  {
    std::lock_guard lock(mutex_);
    for (auto& f : batch) inbox_.push_back(std::move(f));
  }
  wake(coreWakeFd_);
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
  auto& r = sockets_->router;
  for (const auto& [blade, bytes] : out) {
    try {
      if (r.send(zmq::buffer(blade), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
        (void)r.send(zmq::buffer(bytes), zmq::send_flags::dontwait);
    } catch (const zmq::error_t& e) {
      spdlog::debug("send to '{}' failed: {}", blade, e.what());
    }
  }
}

void ControllerLoop::runFabric() {
  auto& r = sockets_->router;
  std::int64_t lastReceive = 0;
  while (!stop_) {
    std::vector<zmq::pollitem_t> items{{r.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, fabricWakeFd_, ZMQ_POLLIN, 0}};
    if (sockets_->zap) items.push_back({sockets_->zap->handle(), 0, ZMQ_POLLIN, 0});
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(500));
      if (items.size() > 2 && (items[2].revents & ZMQ_POLLIN)) handleZap();
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

// Core thread: tasks, then the frames that arrived until now (also those that arrived
// while a long task ran: the timers that follow must see those heartbeats, stamped with
// when the fabric thread received them, or a 1 s apply makes healthy blades look silent).
void ControllerLoop::drainCore() {
  std::uint64_t n;
  while (::read(coreWakeFd_, &n, sizeof n) > 0) {
  }
  std::deque<std::function<void()>> tasks;
  {
    std::lock_guard lock(mutex_);
    tasks.swap(tasks_);
  }
  for (auto& t : tasks) t();
  std::deque<Inbound> frames;
  {
    std::lock_guard lock(mutex_);
    frames.swap(inbox_);
  }
  for (auto& f : frames) {
    if (f.frame.is_null()) controller_.onFrame(f.peer, f.bytes, f.at);
    else controller_.onParsedFrame(f.peer, f.frame, f.at);
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
