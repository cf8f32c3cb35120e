// The admin token of the controllers the C++ tests build in process: their recover()
// stores its hash on a first start (ControllerOptions::adminBootstrap), and the requests
// the tests hand to handleApi() show it, as loomctl would (controller/access/).
#pragma once

#include <string>
#include <utility>

#include "controller/ControllerOptions.h"
#include "controller/api/Api.h"

namespace loom::testing {

inline constexpr const char* kTestAdminToken =
    "loom_0000000000a1_00000000000000000000000000000000000000000000000000000000000000a1";

// `options` with the test admin token as the first start's.
inline controller::ControllerOptions withTestAdmin(controller::ControllerOptions options) {
  options.adminBootstrap = [] { return Result<std::string>(std::string(kTestAdminToken)); };
  return options;
}

// `request` as the test admin sends it.
inline controller::ApiRequest asAdmin(controller::ApiRequest request) {
  request.authorization = std::string("Bearer ") + kTestAdminToken;
  request.peer = "test";
  return request;
}

}  // namespace loom::testing
