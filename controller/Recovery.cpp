// Controller::recover: each room loads what it keeps from the store, then what a restart
// means is said (events) and the first plan is due.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "controller/Controller.h"

namespace loom::controller {

Status Controller::recover(std::int64_t now) {
  now_ = now;
  auto loaded = journal_.store().load();
  if (!loaded) return loaded.error();
  StoredState& st = *loaded;
  std::vector<std::string> problems;
  auto restored = desired_.restore(std::move(st.declarations), st.identities, &problems);
  for (const auto& p : problems) spdlog::error("state store: {}", p);
  if (!restored) return restored;
  replanner_.restore(st);
  registry_.restore(st.blades);
  for (const auto& b : st.blades) detector_.restore(b.name, b.adminState == "retired", now);
  // Until each is heard, every blade not retired may hold the oldest version kept.
  std::vector<std::string> mayHold;
  for (const auto& [name, k] : registry_.all())
    if (k.adminState != "retired") mayHold.push_back(name);
  problems.clear();
  quorum_.restore(st.quorumVersions, mayHold, &problems);
  for (const auto& p : problems) spdlog::error("state store: {}", p);
  quorum_.markDirty(now);
  // Operations in flight when the controller stopped are not resent as such: what is
  // still needed is recomputed from what the agents report when they re-register, the
  // only trustworthy view after a crash.
  // A replica's term numbers its operations from epoch << 32 at least: the ids its
  // predecessor handed out last may never have reached the store, and an agent's late
  // answer to one of those must not be taken for the answer to a new operation.
  reconciler_.restore(std::max(st.lastOperationId, leadership_.epoch() << 32), std::move(st.pendingOperations));
  events_.restore(st.lastEventId);
  audit_.restore(st.lastAuditId);
  const bool firstStart = st.tokens.empty();
  tokens_.restore(std::move(st.tokens));
  if (firstStart && options_.adminBootstrap) {
    // The store has never held a token: the first admin's, whose secret only the
    // bootstrap (loomd's admin.token) holds.
    auto token = options_.adminBootstrap();
    if (!token) return makeError(token.error().code, "the first admin token: " + token.error().message);
    auto record = access::TokenTable::recordOf(*token, access::Role::Admin, "first start (admin.token)", wallClock_());
    if (!record) return makeError(Errc::Invalid, "the first admin token: " + record.error().message);
    Change c;
    c.putTokens.push_back(*record);
    if (auto s = journal_.commitNow(std::move(c)); !s)
      return makeError(s.error().code, "the first admin token was not stored: " + s.error().message);
    events_.add("info", "", "", "first start: admin token " + record->id + " made");
    tokens_.put(std::move(*record));
  }
  events_.add("info", "", "",
              "controller started: " + std::to_string(desired_.declarations().servers.size()) + " servers, " +
                  std::to_string(registry_.all().size()) + " blades, " +
                  std::to_string(replanner_.placement().bindings.size()) + " bindings recovered");
  warnAboutTheLease();
  if (detector_.unconfirmed())
    events_.add("info", "", "",
                "starts wait until the " + std::to_string(detector_.unconfirmed()) +
                    " blades known before the restart have registered again or been fenced: a server being moved may "
                    "still run on one");
  replanner_.markDirty(now);
  journal_.flush();
  return okStatus();
}

void Controller::warnAboutTheLease() {
  // After a restart every agent reconnects at once: 10,000 agents on 2 shared cores took
  // 2-3 s (docs/PERFORMANCE.md; reckoned here as 0.5 ms a blade, with room). An agent's
  // last answer may be two beats old (one when every beat asks), and it fences a tenth of
  // the lease early: what is left of the lease must cover the reconnect.
  const std::size_t blades = registry_.all().size();
  const std::int64_t reconnectMs = static_cast<std::int64_t>(blades) / 2;
  const std::int64_t answerAgeMs = (options_.leaseMs < 3 * options_.heartbeatMs ? 1 : 2) * options_.heartbeatMs;
  const std::int64_t leftMs = options_.leaseMs - answerAgeMs - options_.leaseMs / 10;
  if (blades && reconnectMs > leftMs)
    events_.add("warning", "", "",
                "lease " + std::to_string(options_.leaseMs) + " ms is short for " + std::to_string(blades) +
                    " blades: after a controller restart agents may run it out while they reconnect (up to " +
                    std::to_string(reconnectMs) + " ms) and fence themselves; raise --lease-ms to " +
                    std::to_string(((reconnectMs + answerAgeMs) * 10 / 9 + 999) / 1000 * 1000) + " or more");
}

}  // namespace loom::controller
