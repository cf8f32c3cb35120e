// Internal to the etcd client (loom_etcd): HTTP/1.1 to one member over Boost.Beast. A
// Connection is one TCP connection and the io_context that drives it; every operation on
// it runs asynchronously, driven by the calling thread up to a deadline, so one code path
// bounds resolving, connecting, writing and reading (Beast's tcp_stream timeouts close the
// socket, which a watch polling its stop flag cannot use). An Exchange is what became of
// one request; EtcdClient::call (EtcdTransport.cpp) turns exchanges with the members into
// the failover EtcdClient.h describes. Not thread-safe, like the client.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <utility>
// After <utility>: Boost 1.74's asio/awaitable.hpp uses std::exchange without including it.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "controller/etcd/EtcdClient.h"

namespace loom::controller::etcd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// An answer's header, at most (the body's bounds are the client's Options).
constexpr std::size_t kHeaderLimit = std::size_t{16} * 1024;

struct EtcdClient::Connection {
  asio::io_context ioc;
  tcp::socket socket{ioc};
  beast::flat_buffer buffer;
  std::size_t index = static_cast<std::size_t>(-1);  // the member it is connected to
  bool reused = false;                               // it has carried an exchange already

  // Runs handlers until `done` or `deadline`; false on the deadline.
  bool runUntil(const bool& done, Clock::time_point deadline);
  // Closes the socket and lets every pending handler finish (with operation_aborted).
  // Idempotent; the Connection can connect again afterwards.
  void close();
  // Closes, then resolves and connects to `endpoint` ("host:port", "[v6]:port") as
  // member `idx`. "" on success, else why not; `timedOut` says whether the deadline passed.
  std::string connect(const std::string& endpoint, std::size_t idx, Clock::time_point deadline, bool& timedOut);
};

// What became of one request to one member.
struct EtcdClient::Exchange {
  enum class Outcome {
    Answered,  // an HTTP answer: `status`, `body`
    NotSent,   // etcd did not get the request (connect or write failed)
    Stale,     // a kept-alive connection was closed under us before any answer byte
    Refused,   // the answer was malformed or too large: not read further
    Lost,      // sent, then no answer (broken or timed out): a write's outcome is unknown
  };
  Outcome outcome = Outcome::NotSent;
  bool timedOut = false;
  unsigned status = 0;
  std::string body;
  std::string error;
};

}  // namespace loom::controller::etcd
