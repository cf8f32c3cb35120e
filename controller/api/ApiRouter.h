// The API's routing table: (method, path pattern) -> handler. Patterns name their
// variable segments (`/v1/blades/:name/drain`); a path that matches no pattern is a 404,
// one that matches with another method a 405 that says which methods it takes. A handler
// that throws answers 500 (a bug is a log line, never a crash).
//
// Built once by the core; route() runs on the core thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "controller/api/Api.h"

namespace loom::controller::api {

class ApiRouter {
 public:
  using Params = std::vector<std::string>;  // the variable segments, in order
  using Handler = std::function<void(const ApiRequest&, const Params&, std::int64_t now, Reply)>;
  // A handler that answers at once.
  using Simple = std::function<ApiResponse(const ApiRequest&, const Params&, std::int64_t now)>;

  void add(const std::string& method, const std::string& pattern, Handler handler);
  void add(const std::string& method, const std::string& pattern, Simple handler);
  // `reply` is called exactly once, possibly later (a handler's long-poll).
  void route(const ApiRequest& request, std::int64_t now, const Reply& reply) const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
    Handler handler;
  };
  std::vector<Route> routes_;
};

}  // namespace loom::controller::api
