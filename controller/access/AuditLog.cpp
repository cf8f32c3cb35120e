#include "controller/access/AuditLog.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace loom::controller::access {
namespace {

constexpr std::size_t kCounters = 16;     // refusal counters per window, at most
constexpr std::size_t kSourcesKept = 64;  // distinct sources named per counter
constexpr std::size_t kFieldMax = 512;    // a client's text kept in a record, at most

std::string bounded(std::string s) {
  if (s.size() > kFieldMax) s.resize(kFieldMax);
  return s;
}

// The peer's host without its port: one client's connections are one source.
std::string hostOf(const std::string& peer) {
  const auto colon = peer.rfind(':');
  return colon == std::string::npos ? peer : peer.substr(0, colon);
}

AuditRecord recordOf(const ApiRequest& req, const Verdict& v) {
  AuditRecord r;
  r.tokenId = v.caller.tokenId;
  r.role = v.caller.role;
  r.source = bounded(req.peer);
  r.method = bounded(req.method);
  r.path = bounded(req.path);
  r.targets = bounded(v.targets);
  return r;
}

// The {"error": ...} of a refusal or failure, for its record's outcome.
std::string errorOf(const ApiResponse& response) {
  const auto j = api::Json::parse(response.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) return bounded(j["error"].get<std::string>());
  return "status " + std::to_string(response.status);
}

}  // namespace

AuditLog::AuditLog(Journal& journal, WallClock wallClock, AuditOptions options)
    : journal_(journal), wallClock_(std::move(wallClock)), options_(options) {
  journal_.setRider(this);
}

void AuditLog::append(Change& change, AuditRecord record) {
  record.id = ++lastId_;
  if (record.timeMs == 0) record.timeMs = wallClock_();
  if (options_.retention && record.id > options_.retention)
    change.deleteAuditThrough = std::max(change.deleteAuditThrough, record.id - options_.retention);
  change.appendAudit.push_back(std::move(record));
}

void AuditLog::refused(const ApiRequest& req, const Verdict& v) {
  const std::int64_t wall = wallClock_();
  if (wall - windowStart_ >= options_.refusalWindowMs) endWindow(wall);
  const int status = v.refusal ? v.refusal->status : 0;
  if (windowRecorded_ < options_.refusalBurst) {
    ++windowRecorded_;
    AuditRecord r = recordOf(req, v);
    r.timeMs = wall;
    r.status = status;
    r.outcome = "refused: " + (status == 401 || !v.refusal ? v.reason : errorOf(*v.refusal));
    append(journal_.pending(), std::move(r));
    return;
  }
  // Over the burst: counted, written once when the window ends.
  std::string key = std::to_string(status) + " " + v.reason;
  if (!counted_.contains(key) && counted_.size() >= kCounters) key = std::to_string(status) + " (other reasons)";
  Refusals& c = counted_[key];
  ++c.count;
  const std::string host = hostOf(req.peer);
  if (c.sources.size() < kSourcesKept) c.sources.insert(host);
  c.lastSource = bounded(req.peer);
  c.lastMethod = bounded(req.method);
  c.lastPath = bounded(req.path);
  c.lastToken = v.caller.tokenId.empty() ? std::string() : v.caller.tokenId;
}

void AuditLog::endWindow(std::int64_t wall) {
  for (auto& [key, c] : counted_) {
    AuditRecord r;
    r.timeMs = wall;
    r.status = std::stoi(key.substr(0, key.find(' ')));
    r.source = c.lastSource;
    r.method = c.lastMethod;
    r.path = c.lastPath;
    r.tokenId = c.lastToken;
    r.count = c.count;
    r.outcome = "refused " + std::to_string(c.count) + " more times in " +
                std::to_string(options_.refusalWindowMs / 1000) + " s (" + key.substr(key.find(' ') + 1) + ") from " +
                std::to_string(c.sources.size()) + (c.sources.size() >= kSourcesKept ? " or more" : "") +
                (c.sources.size() == 1 ? " source" : " sources") + "; the last is shown";
    append(journal_.pending(), std::move(r));
  }
  counted_.clear();
  windowStart_ = wall;
  windowRecorded_ = 0;
}

void AuditLog::changing(const ApiRequest& req, const Verdict& v) {
  current_ = Current{};
  current_.active = true;
  current_.record = recordOf(req, v);
}

void AuditLog::noteTargets(const std::string& targets) {
  if (current_.active && !current_.written) current_.record.targets = bounded(targets);
}

void AuditLog::ride(Change& change) {
  if (!current_.active || current_.written) return;
  AuditRecord r = current_.record;
  r.timeMs = wallClock_();
  r.status = 200;
  r.outcome = "applied";
  append(change, std::move(r));
  current_.riding = true;
}

void AuditLog::landed(bool ok) {
  if (!current_.riding) return;
  current_.riding = false;
  if (ok)
    current_.written = true;
  else
    --lastId_;  // not in the store: the id is taken again (nothing took one since)
}

void AuditLog::changed(const ApiResponse& response) {
  if (!current_.active) return;
  Current done = std::move(current_);
  current_ = Current{};
  if (done.written) return;  // it rode with the change's commit
  AuditRecord r = std::move(done.record);
  r.timeMs = wallClock_();
  r.status = response.status;
  const bool ok = response.status >= 200 && response.status < 300;
  r.outcome = ok ? "done (nothing to store)" : "failed: " + errorOf(response);
  append(journal_.pending(), std::move(r));
  // Acknowledged only once its record is durable; a failure changed nothing and waits
  // for the next batch.
  if (ok)
    if (auto s = journal_.commitNow(Change{}); !s)
      spdlog::error("audit: the record of {} {} was not stored: {}", done.record.method, done.record.path,
                    s.error().message);
}

Result<std::vector<AuditRecord>> AuditLog::read(std::uint64_t since, std::size_t limit, const std::string& token) {
  journal_.flush();
  std::vector<AuditRecord> out;
  // Filtered by token: pages of the store until `limit` match or it ends (bounded: the
  // store holds at most `retention`).
  while (out.size() < limit) {
    auto page = journal_.store().audit(since, token.empty() ? limit - out.size() : 1000);
    if (!page) return page.error();
    if (page->empty()) break;
    since = page->back().id;
    for (auto& r : *page)
      if ((token.empty() || r.tokenId == token) && out.size() < limit) out.push_back(std::move(r));
    if (token.empty()) break;
  }
  return out;
}

Status AuditLog::wait(std::uint64_t since, std::size_t limit, const std::string& token, std::int64_t deadline,
                      std::int64_t now, Answer answer) {
  if (lastId_ > since || deadline <= now) {
    auto records = read(since, limit, token);
    if (!records) return records.error();
    if (!records->empty() || deadline <= now) {
      answer(std::move(*records));
      return okStatus();
    }
    since = lastId_;  // only other tokens' records: wait for newer ones
  }
  waiters_.push_back({since, limit, token, deadline, std::move(answer)});
  return okStatus();
}

void AuditLog::tick(std::int64_t now) {
  const std::int64_t wall = wallClock_();
  if (!counted_.empty() && wall - windowStart_ >= options_.refusalWindowMs) endWindow(wall);
  if (waiters_.empty()) return;
  std::vector<Waiter> keep;
  for (auto& w : waiters_) {
    if (lastId_ <= w.since && w.deadline > now) {
      keep.push_back(std::move(w));
      continue;
    }
    auto records = read(w.since, w.limit, w.token);
    if (records && records->empty() && w.deadline > now) {
      w.since = lastId_;
      keep.push_back(std::move(w));
      continue;
    }
    w.answer(records ? std::move(*records) : std::vector<AuditRecord>{});
  }
  waiters_ = std::move(keep);
}

api::Json auditJsonList(const std::vector<AuditRecord>& records) {
  api::Json out = api::Json::array();
  for (const auto& r : records)
    out.push_back({{"id", r.id},
                   {"time_ms", r.timeMs},
                   {"token", r.tokenId},
                   {"role", r.role},
                   {"source", r.source},
                   {"method", r.method},
                   {"path", r.path},
                   {"targets", r.targets},
                   {"status", r.status},
                   {"outcome", r.outcome},
                   {"count", r.count}});
  return out;
}

}  // namespace loom::controller::access
