// What the ZeroMQ-level tests share: reading one whole (multipart) message.
#pragma once

#include <chrono>
#include <string>
#include <vector>
#include <zmq.hpp>

namespace loom::testing {

// The parts of one whole message from `s`, or nothing within `ms`.
inline std::vector<std::string> receiveParts(zmq::socket_t& s, int ms = 3000) {
  std::vector<std::string> out;
  zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, std::chrono::milliseconds(ms)) <= 0) return out;
  bool more = true;
  while (more) {
    zmq::message_t m;
    (void)s.recv(m);
    more = m.more();
    out.push_back(m.to_string());
  }
  return out;
}

}  // namespace loom::testing
