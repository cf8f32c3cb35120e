#include "node-agent/AgentHost.h"

#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "protocol/CurveKeys.h"
#include "protocol/RelayEnvelope.h"

namespace loom::agent {

struct AgentHost::Impl {
  FabricOptions options;
  std::string publicKey;
  zmq::context_t context;
  std::vector<std::unique_ptr<zmq::socket_t>> sockets;
  std::vector<std::unique_ptr<Agent>> agents;
  // Sockets to look at on the next turn whatever epoll says: ZeroMQ may take in a frame
  // while a send of ours runs, and then its descriptor does not signal it again.
  std::vector<std::size_t> recheck;
  std::vector<char> queuedForCheck;
  void check(std::size_t i) {
    if (!queuedForCheck[i]) queuedForCheck[i] = 1, recheck.push_back(i);
  }
};

std::int64_t AgentHost::monotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

AgentHost::AgentHost(FabricOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  // Each blade holds a socket and a TCP connection: lift the limits that assume a few.
  liftFdLimit(0);
  impl_->context.set(zmq::ctxopt::max_sockets, 100000);
  impl_->context.set(zmq::ctxopt::io_threads, 2);
  if (!impl_->options.insecure) {
    if (auto pub = protocol::curvePublicKey(impl_->options.secretKey)) impl_->publicKey = *pub;
  }
}

AgentHost::~AgentHost() {
  for (auto& s : impl_->sockets) s->close();
}

std::size_t AgentHost::size() const { return impl_->agents.size(); }

// Every blade costs two descriptors (the ZeroMQ socket's mailbox and its TCP
// connection), plus a few for the context. Past the limit the last blades' connects fail
// with EMFILE and ZeroMQ retries them forever: they silently never register (12 of
// 10,000 did, with a hard limit of 20,000). So raise the limit, the hard one too when
// privileged, and refuse a blade that cannot have its descriptors.
bool AgentHost::liftFdLimit(std::size_t blades) {
  const rlim_t needed = static_cast<rlim_t>(2 * blades + 64);
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return true;
  if (rl.rlim_max < needed) {
    rlimit more{needed, needed};
    if (setrlimit(RLIMIT_NOFILE, &more) == 0) return true;
  }
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_max >= needed;
}

Status AgentHost::add(AgentConfig config, std::unique_ptr<drivers::Driver> driver, std::unique_ptr<LeaseGuard> guard) {
  // The name is the routing id, on loomd's socket and a relay's, and names files here.
  if (!protocol::isValidBladeName(config.blade))
    return makeError(Errc::Invalid, "blade name '" + config.blade + "' must be non-empty, at most 253 bytes, without '/' or control characters");
  if (!liftFdLimit(impl_->agents.size() + 1)) {
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    return makeError(Errc::Unavailable, "blade '" + config.blade + "': " + std::to_string(impl_->agents.size() + 1) +
                                            " blades need about " + std::to_string(2 * (impl_->agents.size() + 1) + 64) +
                                            " file descriptors and the limit is " + std::to_string(rl.rlim_max) +
                                            " (raise it: ulimit -Hn, or run fewer blades per process with --only)");
  }
  auto socket = std::make_unique<zmq::socket_t>(impl_->context, zmq::socket_type::dealer);
  const std::string& endpoint = config.controller.empty() ? impl_->options.controller : config.controller;
  const std::string& serverKey = config.serverKey.empty() ? impl_->options.serverKey : config.serverKey;
  try {
    socket->set(zmq::sockopt::routing_id, config.blade);
    socket->set(zmq::sockopt::linger, 0);
    // Do not queue frames for a controller that is not connected: stale heartbeats and
    // registrations are worthless; the agent retries on its own schedule.
    socket->set(zmq::sockopt::immediate, 1);
    // Back soon after a controller restart: the lease runs while we are disconnected.
    socket->set(zmq::sockopt::reconnect_ivl, 100);
    socket->set(zmq::sockopt::reconnect_ivl_max, 500);
    socket->set(zmq::sockopt::maxmsgsize, int64_t{64} << 20);
    if (!impl_->options.insecure) {
      socket->set(zmq::sockopt::curve_serverkey, serverKey);
      socket->set(zmq::sockopt::curve_publickey, impl_->publicKey);
      socket->set(zmq::sockopt::curve_secretkey, impl_->options.secretKey);
    }
    // Several endpoints (a chassis's two relays): the DEALER sends each frame to one that
    // is connected, so the blade keeps its lease through the loss of either.
    std::size_t from = 0;
    do {
      const std::size_t comma = std::min(endpoint.find(',', from), endpoint.size());
      const std::string one = endpoint.substr(from, comma - from);
      try {
        socket->connect(one);
      } catch (const zmq::error_t& e) {
        return makeError(Errc::Io, "blade '" + config.blade + "': cannot connect to '" + one + "': " + e.what());
      }
      from = comma + 1;
    } while (from <= endpoint.size());
  } catch (const zmq::error_t& e) {
    return makeError(Errc::Io, "blade '" + config.blade + "': cannot set up its connection to '" + endpoint + "': " + e.what());
  }
  zmq::socket_t* raw = socket.get();
  const std::size_t index = impl_->sockets.size();
  Impl* impl = impl_.get();
  auto agent = std::make_unique<Agent>(std::move(config), std::move(driver), [raw, impl, index](const protocol::Json& frame) {
    const std::string bytes = frame.dump();
    impl->check(index);
    try {
      return raw->send(zmq::buffer(bytes), zmq::send_flags::dontwait).has_value();
    } catch (const zmq::error_t&) {
      return false;  // dropped: the agent's timers resend what matters
    }
  }, std::move(guard));
  impl_->queuedForCheck.push_back(0);
  impl_->check(index);
  impl_->sockets.push_back(std::move(socket));
  impl_->agents.push_back(std::move(agent));
  return okStatus();
}

// One epoll set over every socket's ZMQ_FD, so a turn costs what is ready, not what
// exists: zmq::poll over 5,000 sockets, 200 times a second, was most of a simulator's CPU.
void AgentHost::run() {
  auto& impl = *impl_;
  auto& agents = impl.agents;
  auto& sockets = impl.sockets;
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    spdlog::critical("agent: epoll_create1: {}", std::strerror(errno));
    return;
  }
  for (std::size_t i = 0; i < sockets.size(); ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, sockets[i]->get(zmq::sockopt::fd), &ev) != 0)
      spdlog::critical("{}: epoll_ctl: {}", agents[i]->blade(), std::strerror(errno));
  }
  for (auto& a : agents) a->start(monotonicMs());
  // Pace the loop so a busy fabric is served in batches (at most ~200 turns a second)
  // rather than one turn per frame.
  constexpr std::int64_t kMinCycleMs = 5;
  std::vector<epoll_event> events(std::min<std::size_t>(std::max<std::size_t>(sockets.size(), 1), 4096));
  std::int64_t lastCycle = 0;
  while (!stop_) {
    const std::int64_t now0 = monotonicMs();
    std::int64_t next = now0 + 100;
    for (const auto& a : agents) next = std::min(next, a->nextTickAt());
    if (agents.size() > 64 && now0 - lastCycle < kMinCycleMs)
      std::this_thread::sleep_for(std::chrono::milliseconds(kMinCycleMs - (now0 - lastCycle)));
    lastCycle = monotonicMs();
    const int wait = impl.recheck.empty() ? static_cast<int>(std::clamp<std::int64_t>(next - lastCycle, 0, 100)) : 0;
    const int ready = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), wait);
    if (ready < 0 && errno != EINTR) spdlog::error("agent: epoll_wait: {}", std::strerror(errno));
    for (int k = 0; k < ready; ++k) impl.check(static_cast<std::size_t>(events[k].data.u64));
    std::vector<std::size_t> look;
    look.swap(impl.recheck);
    for (std::size_t i : look) impl.queuedForCheck[i] = 0;
    const std::int64_t now = monotonicMs();
    for (std::size_t i : look) {
      try {
        int n = 0;
        for (; n < 1000 && (sockets[i]->get(zmq::sockopt::events) & ZMQ_POLLIN); ++n) {
          zmq::message_t msg;
          if (!sockets[i]->recv(msg, zmq::recv_flags::dontwait)) break;
          try {
            agents[i]->onFrame(msg.to_string_view(), now);
          } catch (const std::exception& e) {
            spdlog::critical("{}: unexpected exception handling a frame: {}", agents[i]->blade(), e.what());
          }
        }
        if (n == 1000) impl.check(i);  // more than a turn's worth: the rest next turn
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) spdlog::error("{}: receive: {}", agents[i]->blade(), e.what());
      }
    }
    for (auto& a : agents)
      if (a->nextTickAt() <= now) a->tick(now);
  }
  ::close(ep);
}

}  // namespace loom::agent
