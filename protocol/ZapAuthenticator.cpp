#include "protocol/ZapAuthenticator.h"

#include <spdlog/spdlog.h>

#include <vector>

namespace loom::protocol {

ZapAuthenticator::ZapAuthenticator(zmq::context_t& context, std::set<std::string> agentKeys,
                                   std::set<std::string> relayKeys, OnRefused onRefused)
    : socket_(context, zmq::socket_type::rep),
      agentKeys_(std::move(agentKeys)),
      relayKeys_(std::move(relayKeys)),
      onRefused_(std::move(onRefused)) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.bind("inproc://zeromq.zap.01");
}

void ZapAuthenticator::handle() {
  std::vector<zmq::message_t> req;
  try {
    while (true) {
      req.clear();
      zmq::message_t part;
      if (!socket_.recv(part, zmq::recv_flags::dontwait)) return;
      req.push_back(std::move(part));
      while (req.back().more()) {
        zmq::message_t more;
        (void)socket_.recv(more);
        req.push_back(std::move(more));
      }
      // ZAP request: version, request id, domain, address, routing id, mechanism, credentials...
      std::string role;
      std::string keyText = "(none)";
      if (req.size() >= 7 && req[5].to_string_view() == "CURVE" && req[6].size() == 32) {
        char z85[41];
        zmq_z85_encode(z85, static_cast<const std::uint8_t*>(req[6].data()), 32);
        keyText = z85;
        role = roleOf(keyText);
      }
      if (role.empty() && onRefused_) onRefused_(keyText, req.size() > 3 ? req[3].to_string() : "?");
      const std::string version = req.empty() ? "1.0" : req[0].to_string();
      const std::string requestId = req.size() > 1 ? req[1].to_string() : "";
      const std::string status = role.empty() ? "400" : "200";
      socket_.send(zmq::buffer(version), zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(requestId), zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(status), zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(std::string(role.empty() ? "refused" : "OK")), zmq::send_flags::sndmore);
      // The User-Id of the connection: its key, whose role is looked up at each message.
      socket_.send(zmq::buffer(role.empty() ? std::string() : keyText), zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(std::string()), zmq::send_flags::none);
    }
  } catch (const zmq::error_t& e) {
    spdlog::error("zap: {}", e.what());
  }
}

void ZapAuthenticator::setKeys(std::set<std::string> agentKeys, std::set<std::string> relayKeys) {
  agentKeys_ = std::move(agentKeys);
  relayKeys_ = std::move(relayKeys);
}

std::string ZapAuthenticator::roleOf(const std::string& key) const {
  if (relayKeys_.count(key)) return kRoleRelay;
  if (agentKeys_.count(key)) return kRoleAgent;
  return "";
}

std::string connectionKey(zmq::message_t& frame) {
  // zmq_msg_gets fails (EINVAL) when the property is absent: no ZAP, or no metadata.
  const char* value = zmq_msg_gets(frame.handle(), "User-Id");
  return value ? value : "";
}

}  // namespace loom::protocol
