// The ZAP handler (ZeroMQ RFC 27) of a CurveZMQ server: it answers the handshakes of
// every socket of its context that sets a ZAP domain, from allow-lists of public keys.
// An accepted handshake's key becomes the connection's "User-Id", which ZeroMQ attaches
// to every message from it (connectionKey()); the lists as they are now give that key
// its role (roleOf()): loomd accepts relay envelopes only from a relay's key. The lists
// can change while connections stay open (SIGHUP re-reads them): a key no longer listed
// has no role, and its owner drops what that connection sends from then on. Used by
// loomd and by `loom-agent relay`.
//
// Single-threaded: its owner polls socket() and calls handle() when it is readable, and
// calls setKeys() and roleOf() on the same thread.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <zmq.hpp>

namespace loom::protocol {

inline constexpr const char* kRoleAgent = "agent";
inline constexpr const char* kRoleRelay = "relay";

class ZapAuthenticator {
 public:
  // Called for each refused handshake with the presented key (Z85, or "(none)") and the
  // peer's address.
  using OnRefused = std::function<void(const std::string& key, const std::string& address)>;

  // Binds inproc://zeromq.zap.01 in `context` (one authenticator per context); create it
  // before the server socket binds, so no handshake finds it missing. A key in both lists
  // is a relay.
  ZapAuthenticator(zmq::context_t& context, std::set<std::string> agentKeys, std::set<std::string> relayKeys,
                   OnRefused onRefused);

  zmq::socket_t& socket() { return socket_; }
  // Answers every pending request. Never throws.
  void handle();
  // Replaces the lists: handshakes from now on, and roleOf(), follow the new ones.
  void setKeys(std::set<std::string> agentKeys, std::set<std::string> relayKeys);
  // kRoleRelay, kRoleAgent, or "" for a key in neither list (any more).
  std::string roleOf(const std::string& key) const;
  std::size_t agentKeyCount() const { return agentKeys_.size(); }
  std::size_t relayKeyCount() const { return relayKeys_.size(); }

 private:
  zmq::socket_t socket_;
  std::set<std::string> agentKeys_, relayKeys_;
  OnRefused onRefused_;
};

// The public key (Z85) the connection a received frame came from authenticated with; ""
// when there is none (no authentication, or a frame ZeroMQ made itself, such as a
// ROUTER's routing id).
std::string connectionKey(zmq::message_t& frame);

}  // namespace loom::protocol
