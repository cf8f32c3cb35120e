// The API's routing table: (method, path pattern) -> handler. Patterns name their
// variable segments (`/v1/blades/:name/drain`); a path that matches no pattern is a 404,
// one that matches with another method a 405 that says which methods it takes. A handler
// that throws answers 500 (a bug is a log line, never a crash).
//
// Every route declares what it needs (access::RouteAccess: a class of access, and which
// object its `:name` names); route() runs the access check (access::AccessGate) before
// any handler, so no handler checks. The observer (the audit log) hears each refusal,
// and each change request before its handler runs and once it is answered.
//
// Built once by the core; route() runs on the core thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "controller/access/AccessGate.h"
#include "controller/api/Api.h"

namespace loom::controller::api {

class ApiRouter {
 public:
  using Params = std::vector<std::string>;  // the variable segments, in order
  using Handler = std::function<void(const ApiRequest&, const Params&, std::int64_t now, Reply)>;
  // A handler that answers at once.
  using Simple = std::function<ApiResponse(const ApiRequest&, const Params&, std::int64_t now)>;

  // What hears about requests the router lets through or refuses (AuditLog).
  class Observer {
   public:
    virtual ~Observer() = default;
    // A request the access check refused (401, 403, or a scoped token's 404).
    virtual void refused(const ApiRequest& request, const access::Verdict& verdict) = 0;
    // A change request (any method but GET) about to run; then its answer, before the
    // client has it. Core thread, in that order, once each.
    virtual void changing(const ApiRequest& request, const access::Verdict& verdict) = 0;
    virtual void changed(const ApiResponse& response) = 0;
  };

  void add(const std::string& method, const std::string& pattern, access::RouteAccess access, Handler handler);
  void add(const std::string& method, const std::string& pattern, access::RouteAccess access, Simple handler);
  // The check every request passes; without one (a router not yet wired), every request
  // but an Open route's is refused 401. Both must outlive the router.
  void setGate(const access::AccessGate* gate, Observer* observer = nullptr) {
    gate_ = gate;
    observer_ = observer;
  }
  // `reply` is called exactly once, possibly later (a handler's long-poll). The request's
  // `caller` is set by the check before the handler sees it.
  void route(ApiRequest request, std::int64_t now, const Reply& reply) const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
    access::RouteAccess access;
    Handler handler;
  };
  std::vector<Route> routes_;
  const access::AccessGate* gate_ = nullptr;
  Observer* observer_ = nullptr;
};

}  // namespace loom::controller::api
