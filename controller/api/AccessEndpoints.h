// The API's access endpoints (docs/API.md, "Access"): tokens (create, list, revoke), the
// audit log, and whoami. Who may call them is declared with each route (install()):
// tokens and the audit log are the admin's; whoami any valid token's.
//
// Core thread only.
#pragma once

#include <cstdint>
#include <functional>

#include "controller/DesiredState.h"
#include "controller/EventLog.h"
#include "controller/Journal.h"
#include "controller/access/AuditLog.h"
#include "controller/access/TokenTable.h"
#include "controller/api/ApiRouter.h"

namespace loom::controller::api {

class AccessEndpoints {
 public:
  using WallClock = std::function<std::int64_t()>;
  AccessEndpoints(access::TokenTable& tokens, access::AuditLog& audit, Journal& journal, EventLog& events,
                  const DesiredState& desired, WallClock wallClock)
      : tokens_(tokens),
        audit_(audit),
        journal_(journal),
        events_(events),
        desired_(desired),
        wallClock_(std::move(wallClock)) {}

  void install(ApiRouter& router);

  // A token's JSON as listed (never its hash); `nowMs` decides "expired".
  static Json tokenJson(const TokenRecord& token, std::int64_t nowMs);

 private:
  ApiResponse create(const ApiRequest& request);
  ApiResponse revoke(const std::string& id);

  access::TokenTable& tokens_;
  access::AuditLog& audit_;
  Journal& journal_;
  EventLog& events_;
  const DesiredState& desired_;
  WallClock wallClock_;
};

}  // namespace loom::controller::api
