// loomd: the Loom controller. Wires the state store, the controller core and its agent
// fabric (controller/Term.h: one term as the acting controller) and the HTTP API (its
// own thread). Alone on SQLite it runs one term for its whole life; as one of several
// replicas on etcd it campaigns (controller/Election.h), runs a term while it leads and
// answers as a standby otherwise. See controller/README.md.
#include <pthread.h>
#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#ifdef LOOM_TCMALLOC
#include <gperftools/malloc_extension_c.h>
#include <gperftools/tcmalloc.h>
#endif

#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "controller/Election.h"
#include "controller/HttpServer.h"
#include "controller/Leadership.h"
#include "controller/LoomdCommandLine.h"
#include "controller/PreloadedStore.h"
#include "controller/ReplicaApi.h"
#include "controller/ServiceNotifier.h"
#include "controller/Term.h"
#include "controller/TlsKeygen.h"
#include "controller/WarmCopy.h"
#include "controller/access/AdminTokenFile.h"
#include "loom/CommandLine.h"
#include "protocol/CurveKeys.h"

namespace {

// The allocator this loomd runs on (LOOM_MALLOC at build time; common/CMakeLists.txt and
// docs/PERFORMANCE.md, "The allocator", say why tcmalloc).
std::string allocatorName() {
#ifdef LOOM_TCMALLOC
  int major = 0, minor = 0;
  const char* patch = nullptr;
  return fmt::format("tcmalloc ({})", tc_version(&major, &minor, &patch));
#else
  return "the C library's malloc";
#endif
}

// tcmalloc keeps the pages loomd frees (an apply's request body and parse, a recovery's
// load) for reuse, where glibc returns its large blocks to the kernel at once: the core
// loop hands them back every few seconds, so that loomd's RSS follows its live heap
// (docs/PERFORMANCE.md, "The allocator"). `hook`: the turn's other work, kept.
std::function<void(std::int64_t)> withHeapRelease(std::function<void(std::int64_t)> hook) {
#ifdef LOOM_TCMALLOC
  constexpr std::int64_t kReleaseEveryMs = 5000;
  return [hook = std::move(hook), last = std::int64_t{0}](std::int64_t now) mutable {
    if (hook) hook(now);
    if (now - last < kReleaseEveryMs) return;
    last = now;
    std::size_t freeBytes = 0;
    MallocExtension_GetNumericProperty("tcmalloc.pageheap_free_bytes", &freeBytes);
    const auto t0 = std::chrono::steady_clock::now();
    MallocExtension_ReleaseFreeMemory();
    const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    spdlog::debug("heap: {} MB of free pages handed back to the system in {:.1f} ms", freeBytes >> 20, ms);
  };
#else
  return hook;
#endif
}

using namespace loom;
using namespace loom::loomd;
using controller::ControllerLoop;

// How long a new leader waits for its warm copy to reach its epoch (the leader key's own
// creation, which the copy's watch delivers within milliseconds when it follows etcd)
// before it loads from etcd instead.
constexpr std::chrono::milliseconds kCopyCatchUp{300};

std::atomic<bool> gStopping{false};
std::atomic<controller::HttpServer*> gHttp{nullptr};
std::atomic<controller::Election*> gElection{nullptr};
std::atomic<controller::Term*> gTerm{nullptr};  // the term being served, for the signal handler

// The term being served and its epoch, for the HTTP thread; and the allow-lists a SIGHUP
// put in force, for the term being served and each term to come.
struct CurrentTerm {
  std::mutex mutex;
  controller::Term* term = nullptr;
  std::uint64_t epoch = 0;
  std::optional<std::pair<std::set<std::string>, std::set<std::string>>> reloadedKeys;  // (agents, relays)
};
CurrentTerm gCurrent;
// Held while SIGHUP's reload uses gHttp, and while gHttp is taken away (ApiThread).
std::mutex gReloadMutex;

void onSignal(int) {
  gStopping = true;
  // Each of these only sets an atomic and writes an eventfd or a pipe: async-signal-safe.
  if (auto* t = gTerm.load()) t->stop();
  if (auto* e = gElection.load()) e->stop();
  if (auto* h = gHttp.load()) h->stop();
}

std::int64_t wallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double secondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

int fail(const std::string& message) {
  std::cerr << "loomd: " << message << "\n";
  return 1;
}

// Where the API serves, said once at start.
void logApi(const controller::HttpServer& http) {
  if (http.scheme() == "https")
    spdlog::info("API over TLS: {}", http.certificateSummary());
  else
    spdlog::warn(
        "API over plain HTTP: anyone on its network can read and change requests; for loopback and labs "
        "only (--api-tls-cert/--api-tls-key serve HTTPS: docs/SECURITY.md)");
}

// Serves the API on its own thread until stop (HttpServer::run).
struct ApiThread {
  explicit ApiThread(controller::HttpServer& http) : thread([&http] { http.run(); }) {}
  ~ApiThread() {
    controller::HttpServer* h = nullptr;
    {
      std::lock_guard lock(gReloadMutex);
      h = gHttp.exchange(nullptr);
    }
    if (h) h->stop();
    thread.join();
  }
  std::thread thread;
};

// The allow-lists a SIGHUP put in force, into a term that starts serving (it was built
// with the lists of the start). Under gCurrent.mutex.
void takeReloadedKeys(controller::Term& term) {
  if (gCurrent.reloadedKeys) term.setAllowedKeys(gCurrent.reloadedKeys->first, gCurrent.reloadedKeys->second);
}

// "+2 -1" between what was in force and what is now.
std::string keyChanges(const std::set<std::string>& before, const std::set<std::string>& after) {
  std::size_t added = 0, removed = 0;
  for (const auto& k : after) added += before.count(k) == 0;
  for (const auto& k : before) removed += after.count(k) == 0;
  return "+" + std::to_string(added) + " -" + std::to_string(removed);
}

// SIGHUP: the fabric's allow-lists (--allow, --allow-relays) and the API's TLS pair are
// read again. A file that does not read keeps what is in force, with the precise error
// logged; the lists change only together.
void reloadOnHangup(const CommandLine& cl, std::pair<std::set<std::string>, std::set<std::string>>& inForce) {
  std::lock_guard reloading(gReloadMutex);
  if (!cl.insecure) {
    auto agents = protocol::readAllowList(cl.allowPath);
    auto relays = cl.relaysPath.empty() ? Result<std::set<std::string>>(std::set<std::string>{})
                                        : protocol::readAllowList(cl.relaysPath);
    if (!agents || !relays) {
      spdlog::error("SIGHUP: {}; the allow-lists in force stay ({} agent key(s), {} relay key(s))",
                    (!agents ? agents : relays).error().message, inForce.first.size(), inForce.second.size());
    } else {
      spdlog::info(
          "SIGHUP: allow-lists re-read: {} agent key(s) ({}), {} relay key(s) ({}); a removed key's "
          "connections are cut off",
          agents->size(), keyChanges(inForce.first, *agents), relays->size(), keyChanges(inForce.second, *relays));
      if (agents->empty() && relays->empty()) spdlog::warn("SIGHUP: no key is allowed now: every agent is cut off");
      inForce = {*agents, *relays};
      std::lock_guard lock(gCurrent.mutex);
      gCurrent.reloadedKeys = inForce;
      if (gCurrent.term) takeReloadedKeys(*gCurrent.term);
    }
  }
  if (auto* http = gHttp.load(); http && http->scheme() == "https") {
    if (auto s = http->reloadTls(); !s)
      spdlog::error("SIGHUP: {}; the TLS pair in force stays ({})", s.error().message, http->certificateSummary());
    else
      spdlog::info("SIGHUP: TLS pair re-read: {}", http->certificateSummary());
  }
}

// The thread that takes SIGHUP (blocked in every other thread: main blocks it before
// any thread starts) and reloads; until destroyed.
class HangupReloader {
 public:
  HangupReloader(const CommandLine& cl, const controller::FabricOptions& fabric)
      : thread_([this, &cl, keys = std::pair(fabric.allowedKeys, fabric.relayKeys)]() mutable {
          sigset_t hup;
          sigemptyset(&hup);
          sigaddset(&hup, SIGHUP);
          const timespec poll{0, 200'000'000};
          while (!stop_ && !gStopping)
            if (::sigtimedwait(&hup, nullptr, &poll) == SIGHUP) reloadOnHangup(cl, keys);
        }) {}
  ~HangupReloader() {
    stop_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A loomd alone: one term on SQLite for its whole life.
int runSolo(const CommandLine& cl, controller::TermOptions options, const ApiAddress& api,
            const std::optional<controller::TlsFiles>& tls, std::chrono::steady_clock::time_point started) {
  const auto storeOpening = std::chrono::steady_clock::now();
  auto store = controller::openSqliteStateStore(cl.statePath);
  if (!store) return fail(store.error().message);
  const double storeOpen = secondsSince(storeOpening);
  auto leadership = controller::Leadership::solo();  // always acting, epoch 0
  controller::ServiceNotifier notifier;
  if (notifier.watchdogMs() > 0) options.onTurn = [&notifier](std::int64_t now) { notifier.alive(now); };
  options.onTurn = withHeapRelease(std::move(options.onTurn));
  options.status = [path = cl.statePath] { return controller::soloStatus(path, 0); };
  controller::Term term(**store, std::move(options), leadership, wallMs);
  if (auto s = term.start(); !s) return fail(s.error().message);
  controller::HttpServer http(
      api.host, api.port, [&term](const controller::ApiRequest& req, auto done) { term.handle(req, std::move(done)); },
      tls);
  auto port = http.listen();
  if (!port) return fail(port.error().message);
  logApi(http);
  spdlog::info(
      "serving: agents on {}, API on {}://{}:{} (state {}, ready {:.3f} s after start: store opened in {:.3f} s, "
      "recovered in {:.3f} s)",
      cl.agents, http.scheme(), api.host, *port, cl.statePath, secondsSince(started), storeOpen,
      term.recoverySeconds());
  // A machine-readable line for scripts and tests that asked for port 0.
  std::cout << "loomd: api-port " << *port << std::endl;
  {
    std::lock_guard lock(gCurrent.mutex);
    gCurrent.term = &term;
    takeReloadedKeys(term);
  }
  gTerm = &term;
  gHttp = &http;
  if (gStopping) term.stop();
  notifier.ready("serving: agents on " + cl.agents + ", API on " + http.scheme() + "://" + api.host + ":" +
                 std::to_string(*port));
  if (notifier.watchdogMs() > 0)
    spdlog::info("systemd watchdog: the core loop pings every {} ms", notifier.watchdogMs() / 2);
  {
    ApiThread apiThread(http);
    term.run();
    notifier.stopping();
  }
  gTerm = nullptr;
  std::lock_guard lock(gCurrent.mutex);
  gCurrent.term = nullptr;
  // (SQLite answers every commit; a store that left one unanswered is loaded afresh.)
  if (term.endedBehindStore()) return fail("a change's outcome in the state store is unknown; start loomd again");
  return 0;
}

// One of several replicas on etcd: a standby until it wins, a term while it leads, and
// back to standing by when the term ends (it could not renew its lease in time).
int runReplica(const CommandLine& cl, const controller::TermOptions& options, const ApiAddress& api,
               const std::optional<controller::TlsFiles>& tls, const controller::EtcdStoreOptions& url) {
  auto leadership = controller::Leadership::replica(ControllerLoop::monotonicMs);
  controller::ElectionOptions eo;
  eo.endpoints = url.endpoints;
  eo.prefix = url.prefix;
  eo.ttlSeconds = cl.leaderTtlS;
  eo.self.name = cl.name;
  eo.self.agents = cl.agents;
  // The warm copy (controller/WarmCopy.h): followed while this replica stands by, so that
  // it answers reads; stopped while it leads (the term recovers from the store itself).
  controller::WarmCopyOptions wo;
  wo.store = url;
  controller::WarmCopy warm(wo, ControllerLoop::monotonicMs);
  controller::StandbyReads reads(warm, url);  // the HTTP thread's
  controller::HttpServer http(
      api.host, api.port,
      [&](const controller::ApiRequest& req, auto done) {
        controller::Election* election = gElection.load();
        std::unique_lock lock(gCurrent.mutex);
        // A standby's status, checked from its copy's tokens; the leader's is a route of its term.
        if (req.method == "GET" && req.path == "/v1/status" && election && !gCurrent.term) {
          lock.unlock();
          if (auto no = reads.refusal(req, controller::access::Access::ReadFabric, *election))
            return done(std::move(*no));
          const auto copy = warm.state();
          return done(controller::replicaStatus(*election, std::nullopt, ControllerLoop::monotonicMs(), &copy));
        }
        if (gCurrent.term)
          return gCurrent.term->handle(
              req, [done = std::move(done), name = cl.name, epoch = gCurrent.epoch](controller::ApiResponse r) mutable {
                controller::addLeaderHeaders(r, name, epoch);
                done(std::move(r));
              });
        lock.unlock();
        if (!election) return done(controller::ApiResponse{503, "application/json", "{\"error\":\"starting\"}\n"});
        if (auto r = reads.answer(req, *election, ControllerLoop::monotonicMs())) return done(std::move(*r));
        done(controller::standbyAnswer(*election));
      },
      tls);
  auto port = http.listen();
  if (!port) return fail(port.error().message);
  logApi(http);
  eo.self.api = cl.advertise.empty() ? http.scheme() + "://" + api.host + ":" + std::to_string(*port) : cl.advertise;
  std::cout << "loomd: api-port " << *port << std::endl;
  gHttp = &http;
  std::optional<ApiThread> apiThread(std::in_place, http);

  // Opened once: its check of etcd's limits (a txn as large as an apply's) is paid at
  // start, not at every takeover; each term only sets its guard.
  auto opened = controller::openEtcdStateStore(url);
  if (!opened) return fail("--store: " + opened.error().message);
  std::unique_ptr<controller::EtcdStateStore> store = std::move(*opened);
  controller::Election election(eo, leadership, ControllerLoop::monotonicMs);
  if (auto s = election.start(); !s) return fail(s.error().message);
  gElection = &election;
  warm.start();
  spdlog::info("replica {} on etcd {} (prefix {}): standing by, API on {}", eo.self.name, fmt::join(url.endpoints, ","),
               url.prefix, eo.self.api);
  controller::ServiceNotifier notifier;
  notifier.ready("standing by: replica " + eo.self.name + ", API on " + eo.self.api);
  while (!gStopping) {
    // The term's end may come from the election's thread at any time, even before the
    // term is built: `lost` is set first, then the term is stopped if there is one; the
    // main thread sets `serving`, then looks at `lost` (seq_cst: one of them sees the other).
    std::atomic<bool> lost{false};
    std::atomic<controller::Term*> serving{nullptr};
    auto epoch = election.campaign([&lost, &serving] {
      lost = true;
      if (auto* t = serving.load()) t->stop();
    });
    if (!epoch) break;  // stopping
    const auto won = std::chrono::steady_clock::now();
    // Every commit of this term requires the leader key of this term: a write after the
    // term ended changes nothing.
    store->setGuard(election.leaderKey(), static_cast<std::int64_t>(*epoch));
    controller::TermOptions termOptions = options;
    termOptions.status = [&election, e = *epoch] {
      return controller::replicaStatus(election, e, ControllerLoop::monotonicMs());
    };
    if (notifier.watchdogMs() > 0) termOptions.onTurn = [&notifier](std::int64_t now) { notifier.alive(now); };
    termOptions.onTurn = withHeapRelease(std::move(termOptions.onTurn));
    // The term starts from the warm copy when it holds every change up to this epoch
    // (controller/PreloadedStore.h says why that is the store as the term begins); else
    // it loads from etcd.
    std::optional<controller::StoredState> fromCopy;
    const auto epochRevision = static_cast<std::int64_t>(*epoch);
    if (warm.waitForRevision(epochRevision, kCopyCatchUp))
      if (auto snap = warm.snapshot(); snap && snap->second.revision >= epochRevision) {
        spdlog::info("term {}: starting from the warm copy (revision {})", *epoch, snap->second.revision);
        fromCopy = std::move(snap->first);
      }
    if (!fromCopy) spdlog::info("term {}: the warm copy is not at the epoch yet; loading from etcd", *epoch);
    controller::PreloadedStore termStore(*store, std::move(fromCopy));
    controller::Term term(termStore, std::move(termOptions), leadership, wallMs);
    serving = &term;
    gTerm = &term;
    if (lost || gStopping) term.stop();  // run() then returns at once
    if (auto s = term.start(); !s) {
      gTerm = nullptr;
      spdlog::error("term {}: {}; resigning", *epoch, s.error().message);
      election.resign();
      warm.start();
      continue;
    }
    {
      std::lock_guard lock(gCurrent.mutex);
      gCurrent.term = &term;
      gCurrent.epoch = *epoch;
      takeReloadedKeys(term);
    }
    // The term serves now; until it did, the warm copy answered reads (it follows a store
    // that no past term can write, and this one had not yet). Asked to stop, not waited
    // for: its threads end on their own.
    warm.stop();
    spdlog::info("term {}: leading, serving {:.3f} s after the win (recovered in {:.3f} s)", *epoch, secondsSince(won),
                 term.recoverySeconds());
    notifier.ready("leading: replica " + eo.self.name + ", epoch " + std::to_string(*epoch));
    term.run();
    {
      std::lock_guard lock(gCurrent.mutex);
      gCurrent.term = nullptr;
    }
    gTerm = nullptr;
    serving = nullptr;
    if (gStopping) {
      election.resign();  // hand over at once
      spdlog::info("term {}: resigned", *epoch);
    } else if (term.endedBehindStore()) {
      // Its memory may be behind the store: hand over, and start from the store if this
      // replica wins again.
      election.resign();
      spdlog::warn("term {}: resigned (a change's outcome in the store was unknown); standing by", *epoch);
      notifier.ready("standing by: replica " + eo.self.name);
      warm.start();
    } else {
      spdlog::warn("term {}: ended (the lease could not be renewed in time); standing by", *epoch);
      notifier.ready("standing by: replica " + eo.self.name);
      warm.start();
    }
  }
  notifier.stopping();
  // The API thread reads the election and the warm copy: it ends first.
  apiThread.reset();
  gElection = nullptr;
  warm.stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const auto started = std::chrono::steady_clock::now();
  CLI::App app{"loomd: the Loom blade-fabric controller"};
  addConfigFile(app);
  CommandLine cl;
  addOptions(app, cl);
  auto* keygen = app.add_subcommand("keygen",
                                    "write a CurveZMQ key pair (NAME.key secret, NAME.pub public); with --tls, a "
                                    "self-signed TLS pair for the API of a lab (HOST.tls.crt, HOST.tls.key)");
  std::string keyDir, keyName = "loomd";
  bool keygenTls = false;
  int tlsDays = 365;
  keygen->add_option("--out", keyDir, "directory (with --tls: the current one by default)");
  keygen->add_option("--name", keyName, "file base name (e.g. an agent's blade name); with --tls the API's host name")
      ->capture_default_str();
  keygen->add_flag("--tls", keygenTls,
                   "a self-signed certificate (ECDSA P-256, subjectAltName DNS:NAME and IP:127.0.0.1) and its key "
                   "(0600) for --api-tls-cert/--api-tls-key; loomctl --ca names the certificate");
  keygen->add_option("--days", tlsDays, "with --tls: how long the certificate is valid")
      ->capture_default_str()
      ->check(CLI::Range(1, 3650));
  if (auto rc = parseCommandLine(app, "loomd", argc, argv)) return *rc;
  spdlog::set_level(spdlog::level::from_str(cl.logLevel));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ loomd: %v");

  if (*keygen && keygenTls) {
    if (!keygen->count("--name")) return fail("keygen --tls needs --name HOST: the host name clients connect to");
    auto pair = controller::writeSelfSignedTlsPair(keyDir.empty() ? "." : keyDir, keyName, tlsDays);
    if (!pair) return fail(pair.error().message);
    std::cout << "wrote " << pair->certFile << " (certificate, its own CA: loomctl --ca) and " << pair->keyFile
              << " (secret key): " << pair->summary << "\n";
    return 0;
  }
  if (*keygen) {
    if (keyDir.empty()) return fail("keygen needs --out DIR");
    auto kp = protocol::writeCurveKeyPair(keyDir, keyName);
    if (!kp) return fail(kp.error().message);
    std::cout << "wrote " << keyDir << "/" << keyName << ".key (secret) and " << keyDir << "/" << keyName
              << ".pub: " << kp->publicKey << "\n";
    return 0;
  }
  if (auto why = checkTimings(cl.opts); !why.empty()) return fail(why);
  spdlog::info("allocator: {}", allocatorName());
  const auto api = parseApi(cl.api);
  if (!api) return fail(api.error().message);
  controller::TermOptions options;
  options.controller = cl.opts;
  // The first start's admin token (controller/access/AdminTokenFile.h): asked for only
  // when the store has never held a token.
  const std::string tokenFile = !cl.adminTokenFile.empty() ? cl.adminTokenFile
                                : cl.store.empty()         ? controller::access::adminTokenPathBeside(cl.statePath)
                                                           : std::string("admin.token");
  options.controller.adminBootstrap = [tokenFile] { return controller::access::readOrWriteAdminToken(tokenFile); };
  options.controller.fabricRenewsLeases = true;  // the fabric thread answers heartbeats (ControllerLoop)
  options.recoveryNice = cl.recoveryNice;
  auto fabric = fabricOptions(cl);
  if (!fabric) return fail(fabric.error().message);
  options.fabric = *fabric;
  if (!options.controller.fenceCommand.empty()) spdlog::info("fence command: {}", options.controller.fenceCommand);

  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  std::signal(SIGPIPE, SIG_IGN);
  // SIGHUP is taken by the reloader's thread alone (HangupReloader): blocked here, before
  // any thread starts, so every thread inherits the mask.
  sigset_t hup;
  sigemptyset(&hup);
  sigaddset(&hup, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &hup, nullptr);
  const auto tls = tlsFiles(cl);
  if (!tls) return fail(tls.error().message);
  if (*tls)
    if (auto s = controller::HttpServer::checkTls(**tls); !s) return fail(s.error().message);
  HangupReloader reloader(cl, options.fabric);
  if (cl.store.empty()) return runSolo(cl, std::move(options), *api, *tls, started);

  if (app.count("--state"))
    return fail("--store " + cl.store + " and --state " + cl.statePath +
                " name two state stores: give one (--state: this host's SQLite file; --store: etcd)");
  auto url = controller::parseEtcdStoreUrl(cl.store);
  if (!url) return fail("--store: " + url.error().message);
  if (cl.name.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    cl.name = host;
  }
  return runReplica(cl, options, *api, *tls, *url);
}
