#include "node-agent/AgentHost.h"

#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <thread>
#include <zmq.hpp>

#include "node-agent/ControllerLink.h"
#include "protocol/CurveKeys.h"
#include "protocol/RelayEnvelope.h"
#include "protocol/ZapAuthenticator.h"

namespace loom::agent {

namespace {

// What a polled socket is to its blade.
enum class SlotKind : std::uint8_t {
  Controller,  // its DEALER to loomd (or a relay)
  PeerServer,  // its ROUTER where peers ask
  PeerClient,  // a DEALER to one peer it asks
  Zap,         // the process's ZAP handler (CurveZMQ authentication of askers)
};

struct Slot {
  SlotKind kind;
  std::size_t agent = 0;
  std::unique_ptr<zmq::socket_t> socket;
};

// ZeroMQ spells "any free port" `*`; an operator (and a test) says `:0`.
std::string bindable(const std::string& endpoint) {
  if (endpoint.size() > 2 && endpoint.ends_with(":0")) return endpoint.substr(0, endpoint.size() - 1) + "*";
  return endpoint;
}

}  // namespace

struct AgentHost::Impl {
  FabricOptions options;
  std::string publicKey;
  zmq::context_t context;
  std::unique_ptr<protocol::ZapAuthenticator> zap;
  std::vector<Slot> slots;  // every socket polled, in creation order
  std::vector<std::unique_ptr<Agent>> agents;
  std::vector<std::size_t> peerServer;  // agent -> its peer ROUTER's slot, or npos
  // agent -> peer blade -> (slot of the DEALER to it, the endpoint and key it was made for)
  std::vector<std::map<std::string, std::pair<std::size_t, std::string>>> peerClients;
  int epoll = -1;  // set by run(): sockets made later join the poll set at once
  // Sockets to look at on the next turn whatever epoll says: ZeroMQ may take in a frame
  // while a send of ours runs, and then its descriptor does not signal it again.
  std::vector<std::size_t> recheck;
  std::vector<char> queuedForCheck;
  void check(std::size_t i) {
    if (!queuedForCheck[i]) queuedForCheck[i] = 1, recheck.push_back(i);
  }
  std::size_t addSlot(SlotKind kind, std::size_t agent, std::unique_ptr<zmq::socket_t> socket) {
    slots.push_back({kind, agent, std::move(socket)});
    queuedForCheck.push_back(0);
    const std::size_t i = slots.size() - 1;
    if (epoll >= 0) watch(i);
    check(i);
    return i;
  }
  void watch(std::size_t i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    if (::epoll_ctl(epoll, EPOLL_CTL_ADD, slots[i].socket->get(zmq::sockopt::fd), &ev) != 0)
      spdlog::critical("agent: epoll_ctl: {}", std::strerror(errno));
  }
  bool sendPeer(std::size_t agent, const protocol::PeerAddress& to, const protocol::Json& frame);
  void receive(std::size_t slot, std::int64_t now);
};

std::int64_t AgentHost::monotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

AgentHost::AgentHost(FabricOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  // Each blade holds a socket and a TCP connection: lift the limits that assume a few.
  liftFdLimit(0);
  impl_->context.set(zmq::ctxopt::max_sockets, 100000);
  impl_->context.set(zmq::ctxopt::io_threads, 2);
  if (!impl_->options.insecure) {
    if (auto pub = protocol::curvePublicKey(impl_->options.secretKey)) impl_->publicKey = *pub;
    if (!impl_->options.peerListen.empty()) {
      // Before any peer ROUTER binds: no handshake may find it missing.
      impl_->zap = std::make_unique<protocol::ZapAuthenticator>(
          impl_->context, impl_->options.peerAllow, std::set<std::string>{},
          [](const std::string& key, const std::string& address) {
            spdlog::warn("peer channel: refused key {} from {} (not in --peer-allow)", key, address);
          });
    }
  }
}

AgentHost::~AgentHost() {
  for (auto& s : impl_->slots)
    if (s.socket) s.socket->close();
  if (impl_->zap) impl_->zap->socket().close();
}

std::size_t AgentHost::size() const { return impl_->agents.size(); }

// Every socket costs descriptors (its mailbox and its TCP connections), plus a few for the
// context. Past the limit the last blades' connects fail with EMFILE and ZeroMQ retries
// them forever: they silently never register (12 of 10,000 did, with a hard limit of
// 20,000). So raise the limit, the hard one too when privileged, and refuse a blade that
// cannot have its descriptors.
bool AgentHost::liftFdLimit(std::size_t sockets) {
  const rlim_t needed = static_cast<rlim_t>(2 * sockets + 64);
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
  auto& impl = *impl_;
  // The name is the routing id, on loomd's socket and a relay's, and names files here.
  if (!protocol::isValidBladeName(config.blade))
    return makeError(Errc::Invalid, "blade name '" + config.blade +
                                        "' must be non-empty, at most 253 bytes, without '/' or control characters");
  const bool peers = !impl.options.peerListen.empty();
  const std::size_t sockets = impl.slots.size() + (peers ? 2 : 1);
  if (!liftFdLimit(sockets)) {
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    return makeError(Errc::Unavailable, "blade '" + config.blade + "': " + std::to_string(impl.agents.size() + 1) +
                                            " blades need about " + std::to_string(2 * sockets + 64) +
                                            " file descriptors and the limit is " + std::to_string(rl.rlim_max) +
                                            " (raise it: ulimit -Hn, or run fewer blades per process with --only)");
  }
  const std::size_t index = impl.agents.size();
  std::unique_ptr<zmq::socket_t> socket;
  const std::string& endpoint = config.controller.empty() ? impl.options.controller : config.controller;
  const std::string& serverKey = config.serverKey.empty() ? impl.options.serverKey : config.serverKey;
  try {
    socket = std::make_unique<zmq::socket_t>(impl.context, zmq::socket_type::dealer);
    socket->set(zmq::sockopt::routing_id, config.blade);
    ControllerLink::configure(*socket, ControllerLink::Side::Agent, impl.options.connectionHeartbeats);
    socket->set(zmq::sockopt::maxmsgsize, int64_t{64} << 20);
    if (!impl.options.insecure) {
      socket->set(zmq::sockopt::curve_serverkey, serverKey);
      socket->set(zmq::sockopt::curve_publickey, impl.publicKey);
      socket->set(zmq::sockopt::curve_secretkey, impl.options.secretKey);
    }
    // Several endpoints (a chassis's two relays, the loomd replicas): the DEALER sends each
    // frame to one that is connected, so the blade keeps its lease through the loss of a
    // relay and follows the leader (ControllerLink.h).
    if (auto connected = ControllerLink::connect(*socket, endpoint); !connected)
      return makeError(connected.error().code, "blade '" + config.blade + "': " + connected.error().message);
  } catch (const zmq::error_t& e) {
    return makeError(Errc::Io,
                     "blade '" + config.blade + "': cannot set up its connection to '" + endpoint + "': " + e.what());
  }
  // Its peer channel: asks come in on a ROUTER of its own, bound where it says.
  std::unique_ptr<zmq::socket_t> server;
  if (peers) {
    try {
      server = std::make_unique<zmq::socket_t>(impl.context, zmq::socket_type::router);
      server->set(zmq::sockopt::linger, 0);
      server->set(zmq::sockopt::maxmsgsize, int64_t{64} << 10);  // an ask is a hundred bytes
      server->set(zmq::sockopt::sndhwm, 1000);
      server->set(zmq::sockopt::rcvhwm, 1000);
      if (!impl.options.insecure) {
        server->set(zmq::sockopt::zap_domain, "loom-peer");
        server->set(zmq::sockopt::curve_server, 1);
        server->set(zmq::sockopt::curve_secretkey, impl.options.secretKey);
      }
      server->bind(bindable(impl.options.peerListen));
    } catch (const zmq::error_t& e) {
      return makeError(Errc::Io, "blade '" + config.blade + "': cannot listen for its peers on '" +
                                     impl.options.peerListen + "': " + e.what());
    }
    config.inventory.peerEndpoint = server->get(zmq::sockopt::last_endpoint);
    config.inventory.peerKey = impl.publicKey;
  }
  const std::size_t controllerSlot = impl.addSlot(SlotKind::Controller, index, std::move(socket));
  zmq::socket_t* raw = impl.slots[controllerSlot].socket.get();
  Impl* implPtr = impl_.get();
  auto agent = std::make_unique<Agent>(
      std::move(config), std::move(driver),
      [raw, implPtr, controllerSlot](const protocol::Json& frame) {
        const std::string bytes = frame.dump();
        implPtr->check(controllerSlot);
        try {
          return raw->send(zmq::buffer(bytes), zmq::send_flags::dontwait).has_value();
        } catch (const zmq::error_t&) {
          return false;  // dropped: the agent's timers resend what matters
        }
      },
      std::move(guard));
  impl.peerServer.push_back(std::string::npos);
  impl.peerClients.emplace_back();
  if (server) {
    impl.peerServer[index] = impl.addSlot(SlotKind::PeerServer, index, std::move(server));
    agent->setPeerSend([implPtr, index](const protocol::PeerAddress& to, const protocol::Json& frame) {
      return implPtr->sendPeer(index, to, frame);
    });
  }
  impl.agents.push_back(std::move(agent));
  return okStatus();
}

// A DEALER to each peer a blade asks, made on its first ask and remade when the peer's
// endpoint or key changed. Nothing queues for a peer that is not connected: the shield's
// asks are resent on their own schedule.
bool AgentHost::Impl::sendPeer(std::size_t agent, const protocol::PeerAddress& to, const protocol::Json& frame) {
  const std::string id = to.endpoint + ' ' + to.key;
  auto& clients = peerClients[agent];
  auto it = clients.find(to.blade);
  if (it != clients.end() && it->second.second != id) {
    if (epoll >= 0) ::epoll_ctl(epoll, EPOLL_CTL_DEL, slots[it->second.first].socket->get(zmq::sockopt::fd), nullptr);
    slots[it->second.first].socket->close();
    clients.erase(it);
    it = clients.end();
  }
  if (it == clients.end()) {
    if (!liftFdLimit(slots.size() + 1)) return false;
    std::unique_ptr<zmq::socket_t> s;
    try {
      // Creating the socket fails too (EMFILE: out of descriptors): an ask that is not
      // sent, never an exception out of the agent's loop.
      s = std::make_unique<zmq::socket_t>(context, zmq::socket_type::dealer);
      s->set(zmq::sockopt::linger, 0);
      s->set(zmq::sockopt::immediate, 1);
      s->set(zmq::sockopt::reconnect_ivl, 100);
      s->set(zmq::sockopt::reconnect_ivl_max, 1000);
      s->set(zmq::sockopt::maxmsgsize, int64_t{64} << 10);
      if (!options.insecure) {
        if (to.key.empty()) {
          spdlog::warn("{}: peer {} gave no key; it cannot be asked over CurveZMQ", agents[agent]->blade(), to.blade);
          return false;
        }
        s->set(zmq::sockopt::curve_serverkey, to.key);
        s->set(zmq::sockopt::curve_publickey, publicKey);
        s->set(zmq::sockopt::curve_secretkey, options.secretKey);
      }
      s->connect(to.endpoint);
    } catch (const zmq::error_t& e) {
      spdlog::warn("{}: cannot reach peer {} at '{}': {}", agents[agent]->blade(), to.blade, to.endpoint, e.what());
      return false;
    }
    const std::size_t slot = addSlot(SlotKind::PeerClient, agent, std::move(s));
    it = clients.emplace(to.blade, std::make_pair(slot, id)).first;
  }
  const std::size_t slot = it->second.first;
  check(slot);
  const std::string bytes = frame.dump();
  try {
    return slots[slot].socket->send(zmq::buffer(bytes), zmq::send_flags::dontwait).has_value();
  } catch (const zmq::error_t&) {
    return false;
  }
}

// Everything a socket holds now, at most a turn's worth (the rest next turn).
void AgentHost::Impl::receive(std::size_t i, std::int64_t now) {
  Slot& slot = slots[i];
  if (slot.kind == SlotKind::Zap) {
    zap->handle();
    return;
  }
  Agent& agent = *agents[slot.agent];
  int n = 0;
  for (; n < 1000 && (slot.socket->get(zmq::sockopt::events) & ZMQ_POLLIN); ++n) {
    zmq::message_t msg;
    if (!slot.socket->recv(msg, zmq::recv_flags::dontwait)) break;
    try {
      switch (slot.kind) {
        case SlotKind::Controller:
          agent.onFrame(msg.to_string_view(), now);
          break;
        case SlotKind::PeerClient:
          (void)agent.onPeerFrame(msg.to_string_view(), now);
          break;
        case SlotKind::PeerServer: {
          // [asker's routing id][one frame]; anything else is dropped whole.
          std::vector<zmq::message_t> parts;
          bool more = msg.more();
          while (more && parts.size() < 3) {
            zmq::message_t part;
            (void)slot.socket->recv(part);
            more = part.more();
            parts.push_back(std::move(part));
          }
          while (more) {  // drain an oversized message
            zmq::message_t rest;
            (void)slot.socket->recv(rest);
            more = rest.more();
          }
          if (parts.size() != 1) break;
          if (auto answer = agent.onPeerFrame(parts[0].to_string_view(), now)) {
            const std::string bytes = answer->dump();
            if (slot.socket->send(msg, zmq::send_flags::sndmore | zmq::send_flags::dontwait))
              (void)slot.socket->send(zmq::buffer(bytes), zmq::send_flags::dontwait);
          }
          break;
        }
        case SlotKind::Zap:
          break;
      }
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) spdlog::error("{}: receive: {}", agent.blade(), e.what());
    } catch (const std::exception& e) {
      spdlog::critical("{}: unexpected exception handling a frame: {}", agent.blade(), e.what());
    }
  }
  if (n == 1000) check(i);
}

// One epoll set over every socket's ZMQ_FD, so a turn costs what is ready, not what
// exists: zmq::poll over 5,000 sockets, 200 times a second, was most of a simulator's CPU.
void AgentHost::run() {
  auto& impl = *impl_;
  auto& agents = impl.agents;
  impl.epoll = ::epoll_create1(EPOLL_CLOEXEC);
  if (impl.epoll < 0) {
    spdlog::critical("agent: epoll_create1: {}", std::strerror(errno));
    return;
  }
  if (impl.zap) {
    // The ZAP socket is not the blade's; it is looked at like one.
    impl.slots.push_back({SlotKind::Zap, 0, nullptr});
    impl.queuedForCheck.push_back(0);
  }
  for (std::size_t i = 0; i < impl.slots.size(); ++i) {
    if (impl.slots[i].kind == SlotKind::Zap) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = i;
      ::epoll_ctl(impl.epoll, EPOLL_CTL_ADD, impl.zap->socket().get(zmq::sockopt::fd), &ev);
      impl.check(i);
      continue;
    }
    impl.watch(i);
  }
  for (auto& a : agents) a->start(monotonicMs());
  // Pace the loop so a busy fabric is served in batches (at most ~200 turns a second)
  // rather than one turn per frame.
  constexpr std::int64_t kMinCycleMs = 5;
  std::vector<epoll_event> events(4096);
  std::int64_t lastCycle = 0;
  while (!stop_) {
    const std::int64_t now0 = monotonicMs();
    std::int64_t next = now0 + 100;
    for (const auto& a : agents) next = std::min(next, a->nextTickAt());
    if (agents.size() > 64 && now0 - lastCycle < kMinCycleMs)
      std::this_thread::sleep_for(std::chrono::milliseconds(kMinCycleMs - (now0 - lastCycle)));
    lastCycle = monotonicMs();
    const int wait = impl.recheck.empty() ? static_cast<int>(std::clamp<std::int64_t>(next - lastCycle, 0, 100)) : 0;
    const int ready = ::epoll_wait(impl.epoll, events.data(), static_cast<int>(events.size()), wait);
    if (ready < 0 && errno != EINTR) spdlog::error("agent: epoll_wait: {}", std::strerror(errno));
    for (int k = 0; k < ready; ++k) impl.check(static_cast<std::size_t>(events[k].data.u64));
    std::vector<std::size_t> look;
    look.swap(impl.recheck);
    for (std::size_t i : look) impl.queuedForCheck[i] = 0;
    const std::int64_t now = monotonicMs();
    for (std::size_t i : look)
      if (impl.slots[i].kind == SlotKind::Zap || impl.slots[i].socket->handle() != nullptr) impl.receive(i, now);
    for (auto& a : agents)
      if (a->nextTickAt() <= now) a->tick(now);
  }
  ::close(impl.epoll);
  impl.epoll = -1;
}

}  // namespace loom::agent
