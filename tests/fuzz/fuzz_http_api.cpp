// libFuzzer target for loomd's HTTP request path: the API router and every endpoint with
// its JSON and YAML bodies and query parameters (controller/api/), through the controller
// core on an in-memory SQLite store, the way tests/controller drives it. Two registered
// blades and the examples' declarations are applied first, so that names resolve and
// changes reach the planner. The input is: method byte, path (to the first '\n'), then
// query pairs "k=v" one a line up to an empty line, then the body. The method byte also
// says who asks: three in four inputs carry the admin token (tests/support/TestToken.h),
// so the endpoints behind the access check are reached; the rest carry none, and the
// refusal path is fuzzed too.
// Besides ASan/UBSan findings (and libFuzzer's time-outs and memory limit) it traps on an
// answer the HTTP layer could not send: a status outside 100..599, or a JSON answer that
// is not JSON; and on a 500, which the router answers when a handler threw (a bug it
// keeps from taking loomd down, but a bug).
// The core keeps its state from one input to the next (as loomd does between requests);
// it starts afresh every 2,000 inputs, so a finding replays from the base state alone in
// most cases (`fuzz_http_api FILE`).
// How to build and run: tools/fuzz.sh http_api [SECONDS].
#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "controller/Controller.h"
#include "tests/support/TestToken.h"

namespace {

using namespace loom;
using controller::ApiRequest;
using controller::ApiResponse;

struct Core {
  std::unique_ptr<controller::StateStore> store;
  std::unique_ptr<controller::Controller> controller;
  std::int64_t now = 1000;
  int inputs = 0;
};
Core core;

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

ApiResponse call(const ApiRequest& request) {
  ApiResponse out{0, "", ""};
  core.controller->handleApi(request, core.now, [&out](ApiResponse r) { out = std::move(r); });
  return out;
}

void registerBlade(const std::string& name, const std::string& chassis) {
  protocol::Register r;
  r.blade = name;
  r.inventory.chassis = chassis;
  r.inventory.cores = 32;
  r.inventory.memoryMib = 262144;
  r.inventory.hypervisors = {"kvm", "xen"};
  core.controller->onFrame(name, protocol::encode(r).dump(), core.now);
}

void startCore() {
  core.controller.reset();
  core.store = std::move(controller::openSqliteStateStore(":memory:")).value();
  const controller::ControllerOptions options = loom::testing::withTestAdmin({});
  core.controller = std::make_unique<controller::Controller>(
      *core.store, options, [](const std::string&, const std::string&) {}, [] { return std::int64_t{1}; });
  if (!core.controller->recover(core.now)) std::abort();
  registerBlade("c1-s1", "c1");
  registerBlade("c2-s1", "c2");
  const std::string dir = LOOM_EXAMPLES_DIR;
  std::string base;
  for (const char* f : {"partitions.yaml", "networks.yaml", "identity.yaml", "pools.yaml", "servers.yaml"})
    base += readFile(dir + "/" + f) + "\n---\n";
  const auto r = call(loom::testing::asAdmin({"POST", "/v1/apply", {}, base}));
  if (r.status != 200) {
    std::fprintf(stderr, "fuzz_http_api: the examples do not apply: %s\n", r.body.c_str());
    std::abort();
  }
  core.inputs = 0;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);  // an event is a log line: millions of them
  startCore();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  if (++core.inputs > 2000) startCore();
  static const char* const kMethods[] = {"GET", "POST", "DELETE", "PUT", "HEAD"};
  ApiRequest request;
  request.method = kMethods[data[0] % 5];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  auto line = [&rest]() {
    const auto nl = rest.find('\n');
    std::string out(rest.substr(0, nl));
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    return out;
  };
  request.path = line();
  for (std::string kv = line(); !kv.empty(); kv = line()) {
    const auto eq = kv.find('=');
    // A long-poll (?wait=) parks the request until a later tick: not within one input.
    if (kv.substr(0, eq) == "wait") continue;
    request.query[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
  }
  request.body = std::string(rest);
  if ((data[0] / 5) % 4 != 3) request = loom::testing::asAdmin(std::move(request));

  const ApiResponse r = call(request);
  if (r.status == 0) return 0;  // answered later (none are, without ?wait)
  if (r.status < 100 || r.status > 599 || r.status == 500) {
    std::fprintf(stderr, "fuzz_http_api: status %d for %s %s\n", r.status, request.method.c_str(),
                 request.path.c_str());
    std::abort();
  }
  if (r.contentType == "application/json" && !protocol::Json::accept(r.body)) {
    std::fprintf(stderr, "fuzz_http_api: %s %s answered JSON that is not JSON: %.300s\n", request.method.c_str(),
                 request.path.c_str(), r.body.c_str());
    std::abort();
  }
  core.now += 50;
  core.controller->tick(core.now);
  return 0;
}
