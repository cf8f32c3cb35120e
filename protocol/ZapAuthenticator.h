// The ZAP handler (ZeroMQ RFC 27) of a CurveZMQ server: it answers the handshakes of
// every socket of its context that sets a ZAP domain, from allow-lists of public keys.
// A key's list gives the connection its role, which ZeroMQ then attaches to every
// message from it as the "User-Id" property: loomd accepts relay envelopes only from
// connections whose role is "relay". Used by loomd and by `loom-agent relay`.
//
// Single-threaded: its owner polls socket() and calls handle() when it is readable.
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

 private:
  zmq::socket_t socket_;
  std::set<std::string> agentKeys_, relayKeys_;
  OnRefused onRefused_;
};

// The role ZAP gave the connection a received frame came from ("" when there is none:
// no authentication, or a frame ZeroMQ made itself, such as a ROUTER's routing id).
std::string connectionRole(zmq::message_t& frame);

}  // namespace loom::protocol
