// A real etcd cluster for a test: tools/etcd.sh starts N members on free loopback ports
// (data in a fresh temporary directory) and the destructor stops them.
#pragma once

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#ifndef LOOM_SOURCE_DIR
#error "LOOM_SOURCE_DIR must name the repository (tools/etcd.sh)"
#endif

namespace loom::test {

class EtcdCluster {
 public:
  // nullptr when etcd could not start; `why` says why. Whether that skips or fails the
  // test is the caller's (mustRun()). `extraArgs`: more etcd flags for every member (a
  // later flag wins: "--max-txn-ops 128" gives etcd's default back).
  static std::unique_ptr<EtcdCluster> start(int members, std::string& why, const std::string& extraArgs = {}) {
    static int serial = 0;
    auto dir = std::filesystem::temp_directory_path() /
               ("loom-etcd-" + std::to_string(::getpid()) + "-" + std::to_string(serial++));
    std::filesystem::remove_all(dir);
    std::unique_ptr<EtcdCluster> c(new EtcdCluster(dir.string(), extraArgs));
    std::string out;
    const int rc = c->run("start " + std::to_string(members), &out);
    if (rc != 0) {
      why = "tools/etcd.sh start failed (exit " + std::to_string(rc) + "): " + out;
      c->dir_.clear();  // nothing to stop
      std::filesystem::remove_all(dir);
      return nullptr;
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    c->list_ = out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
    std::size_t start = 0;
    for (;;) {
      const auto comma = c->list_.find(',', start);
      c->endpoints_.push_back(c->list_.substr(start, comma == std::string::npos ? comma : comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    return c;
  }

  ~EtcdCluster() {
    if (dir_.empty()) return;
    (void)run("stop", nullptr);
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  const std::vector<std::string>& endpoints() const { return endpoints_; }
  const std::string& endpointList() const { return list_; }  // "h:p,h:p,h:p"
  const std::string& dir() const { return dir_; }

  bool killMember(int i) { return run("kill-member " + std::to_string(i), nullptr) == 0; }
  bool startMember(int i) { return run("start-member " + std::to_string(i), nullptr) == 0; }

  // CI=true: a missing etcd is a failure, not a skip (tests must run there).
  static bool mustRun() {
    const char* ci = std::getenv("CI");
    return ci && std::string(ci) == "true";
  }

 private:
  EtcdCluster(std::string dir, std::string extraArgs) : dir_(std::move(dir)), extraArgs_(std::move(extraArgs)) {}

  int run(const std::string& args, std::string* out) {
    // "VERB [ARG]" -> tools/etcd.sh VERB DIR [ARG]
    const auto space = args.find(' ');
    const std::string verb = args.substr(0, space), rest = space == std::string::npos ? "" : args.substr(space);
    // ETCD_OWNER_PID: the members are stopped when this process ends, however it ends.
    const std::string cmd = "ETCD_OWNER_PID=" + std::to_string(::getpid()) + " ETCD_EXTRA_ARGS='" + extraArgs_ + "' " +
                            std::string(LOOM_SOURCE_DIR) + "/tools/etcd.sh " + verb + " '" + dir_ + "'" + rest +
                            " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return -1;
    std::array<char, 4096> buf{};
    std::size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0)
      if (out) out->append(buf.data(), n);
    const int status = ::pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string dir_;
  std::string extraArgs_;
  std::string list_;
  std::vector<std::string> endpoints_;
};

}  // namespace loom::test
