// loomd's HTTP API transport (Boost.Beast, async, one io thread). It only parses and
// writes HTTP: every request becomes an ApiRequest handed to `handler`, which answers
// later from any thread through `done` (the controller core thread does). Beast is
// confined to HttpServer.cpp, the one translation unit that pays its compile cost.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "controller/api/Api.h"
#include "loom/Result.h"

namespace loom::controller {

class HttpServer {
 public:
  using Done = std::function<void(ApiResponse)>;
  using Handler = std::function<void(ApiRequest, Done)>;

  HttpServer(std::string address, unsigned short port, Handler handler);
  ~HttpServer();

  // Binds and listens; returns the bound port (useful with port 0).
  Result<unsigned short> listen();
  // Serves until stop(). Call from the HTTP thread.
  void run();
  void stop();  // thread-safe

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom::controller
