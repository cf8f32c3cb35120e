// EtcdClient::watch: one POST /v3/watch whose answer is a stream of newline-delimited
// JSON messages, read on a connection of its own until the caller's stop flag is set,
// each message bounded by Options::maxWatchMessageBytes.
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>
#include <vector>

#include "controller/etcd/EtcdJson.h"
#include "controller/etcd/EtcdTransport.h"

namespace loom::controller::etcd {

using nlohmann::json;

namespace {

constexpr auto kWatchPoll = std::chrono::milliseconds(100);
constexpr std::size_t kWatchReadChunk = std::size_t{64} * 1024;

}  // namespace

Status EtcdClient::watch(const std::string& key, const std::string& rangeEnd, std::int64_t fromRevision,
                         const std::function<void(const WatchBatch&)>& onBatch, const std::atomic<bool>& stop) {
  std::string body = "{\"create_request\":{";
  field(body, "key", key);
  if (!rangeEnd.empty()) field(body += ',', "range_end", rangeEnd);
  if (fromRevision > 0) numberField(body += ',', "start_revision", fromRevision);
  body += "}}";

  // A connection of its own: the stream holds it until the watch ends.
  Connection w;
  const auto deadline = Clock::now() + options_.timeout;
  std::string failures;
  std::optional<http::response_parser<http::buffer_body>> parser;
  std::size_t at = endpoints_.size();
  for (std::size_t k = 0; k < endpoints_.size() && !parser; ++k) {
    const std::size_t i = (preferred_ + k) % endpoints_.size();
    const std::string& ep = endpoints_[i];
    bool timedOut = false;
    if (std::string why = w.connect(ep, i, deadline, timedOut); !why.empty()) {
      failures += (failures.empty() ? "" : "; ") + ep + ": " + why;
      continue;
    }
    http::request<http::string_body> req{http::verb::post, "/v3/watch", 11};
    req.set(http::field::host, ep);
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    bool done = false;
    beast::error_code ec;
    http::async_write(w.socket, req, [&](const beast::error_code& e, std::size_t) {
      ec = e;
      done = true;
    });
    if (!w.runUntil(done, deadline) || ec) {
      failures += (failures.empty() ? "" : "; ") + ep + ": cannot send the watch";
      w.close();
      continue;
    }
    parser.emplace();
    parser->header_limit(kHeaderLimit);
    parser->body_limit(boost::none);  // a stream: each message is bounded below
    done = false;
    http::async_read_header(w.socket, w.buffer, *parser, [&](const beast::error_code& e, std::size_t) {
      ec = e;
      done = true;
    });
    if (!w.runUntil(done, deadline) || ec) {
      failures += (failures.empty() ? "" : "; ") + ep + ": " + (done ? ec.message() : "no answer in time");
      w.close();
      parser.reset();
      continue;
    }
    at = i;
  }
  if (!parser) return makeError(Errc::Unavailable, "etcd: cannot watch '" + key + "' on any member (" + failures + ")");
  const std::string ep = endpoints_[at];
  preferred_ = at;
  const bool httpOk = parser->get().result_int() == 200;

  std::string pending;  // bytes of the stream not yet split into messages
  std::vector<char> chunk(kWatchReadChunk);
  auto handle = [&](std::string_view text) -> std::optional<Error> {
    Decoder d(ep);
    auto j = d.parse(std::string(text));
    if (!j) return d.error();
    if (const json* e = d.object(*j, "error"); e) {
      return makeError(Errc::Unavailable, "etcd " + ep + ": watch: " + d.text(*e, "message"));
    }
    if (!httpOk) {  // an error answer to the request itself: {"error": "...", "code": N}
      const std::string msg = d.text(*j, "message");
      return makeError(errcOfGrpc(d.int64(*j, "code")), "etcd " + ep + ": watch refused: " + msg);
    }
    const json* r = d.object(*j, "result");
    if (!r) {
      d.fail("watch message without 'result'");
      return d.error();
    }
    WatchBatch batch;
    batch.revision = d.headerRevision(*r);
    const bool canceled = d.boolean(*r, "canceled");
    const std::int64_t compacted = d.int64(*r, "compact_revision");
    const std::string reason = d.text(*r, "cancel_reason");
    if (const json* evs = d.array(*r, "events"))
      for (const auto& ev : *evs) {
        if (!ev.is_object()) {
          d.fail("a watch event is not an object");
          break;
        }
        WatchEvent we;
        we.type = d.text(ev, "type") == "DELETE" ? EventType::Delete : EventType::Put;
        if (const json* kv = d.object(ev, "kv")) we.kv = d.keyValue(*kv);
        batch.events.push_back(std::move(we));
      }
    if (!d.ok()) return d.error();
    if (compacted > 0)
      return makeError(Errc::Conflict, "etcd " + ep + ": watch of '" + key + "' from revision " +
                                           std::to_string(fromRevision) + ": history compacted up to revision " +
                                           std::to_string(compacted) + "; range again and watch from there");
    if (canceled)
      return makeError(Errc::Unavailable,
                       "etcd " + ep + ": watch of '" + key + "' cancelled" + (reason.empty() ? "" : ": " + reason));
    if (!batch.events.empty()) onBatch(batch);
    return std::nullopt;
  };

  for (;;) {
    parser->get().body().data = chunk.data();
    parser->get().body().size = chunk.size();
    parser->get().body().more = true;
    bool done = false;
    beast::error_code ec;
    http::async_read_some(w.socket, w.buffer, *parser, [&](const beast::error_code& e, std::size_t) {
      ec = e;
      done = true;
    });
    while (!done) {
      if (stop.load()) {
        w.close();
        return okStatus();
      }
      w.runUntil(done, Clock::now() + kWatchPoll);
    }
    if (ec == http::error::need_buffer) ec = {};
    const std::size_t n = chunk.size() - parser->get().body().size;
    // What was pending holds no newline (it was split up to its last): only the new bytes
    // are searched, so a message of many chunks is scanned once, not once per chunk.
    const std::size_t scanned = pending.size();
    pending.append(chunk.data(), n);
    std::size_t start = 0;
    for (auto nl = pending.find('\n', scanned); nl != std::string::npos; nl = pending.find('\n', start)) {
      std::string_view msg(pending.data() + start, nl - start);
      start = nl + 1;
      if (msg.find_first_not_of(" \r\t") == std::string_view::npos) continue;
      if (auto err = handle(msg)) {
        w.close();
        return *err;
      }
      if (stop.load()) {
        w.close();
        return okStatus();
      }
    }
    pending.erase(0, start);
    if (pending.size() > options_.maxWatchMessageBytes) {
      w.close();
      return makeError(Errc::Io, "etcd " + ep + ": a watch message larger than " +
                                     std::to_string(options_.maxWatchMessageBytes) + " bytes, refused");
    }
    if (ec || parser->is_done()) {
      // A last message without its newline, e.g. an error answer.
      if (!pending.empty() && pending.find_first_not_of(" \r\t\n") != std::string::npos)
        if (auto err = handle(pending)) {
          w.close();
          return *err;
        }
      w.close();
      if (stop.load()) return okStatus();
      return makeError(Errc::Unavailable, "etcd " + ep + ": watch of '" + key + "' ended: " +
                                              (ec ? ec.message() : std::string("the member closed the stream")));
    }
  }
}

}  // namespace loom::controller::etcd
