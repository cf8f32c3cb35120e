// Internal to the etcd client (loom_etcd): the JSON of etcd's v3 gateway, both ways.
// Request bodies are written as text straight into a string (every string in them is
// base64 or an enum name, so nothing needs escaping: a commit of 50,000 ops is ~30 MB of
// JSON). Answers are proto3 JSON, read by a Decoder that never throws: a field of the
// wrong type, bad base64 or a body that is not an object is remembered as the first
// failure and reported as one Errc::Io error naming the member. No I/O here.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controller/etcd/EtcdClient.h"

namespace loom::controller::etcd {

// etcd's gRPC status codes (google.golang.org/grpc/codes) as Loom error kinds.
Errc errcOfGrpc(std::int64_t code);

// ---- request bodies: each appends to `out`.

// `"name":"<base64 of bytes>"`
void field(std::string& out, const char* name, std::string_view bytes);
// `"name":"<decimal v>"` (proto3 JSON writes 64-bit integers as strings)
void numberField(std::string& out, const char* name, std::int64_t v);
// A RangeRequest: `limit` 0 and `revision` 0 are left out (no limit, latest).
void writeRangeBody(std::string& out, const std::string& key, const std::string& rangeEnd, std::int64_t limit,
                    std::int64_t revision);
// A TxnRequest, nested txns included.
void writeTxnBody(std::string& out, const TxnRequest& t);
// Whether the txn (or one nested in it) reads a range: its answer is bounded as a range's.
bool hasRange(const TxnRequest& t);

// ---- answers. Proto3 JSON: 64-bit integers are decimal strings, zero values and empty
// lists are left out (a missing field reads as zero / empty / false / null).
class Decoder {
 public:
  using json = nlohmann::json;

  explicit Decoder(std::string endpoint) : endpoint_(std::move(endpoint)) {}

  bool ok() const { return error_.empty(); }
  // The first failure, as the error the caller returns.
  Error error() const { return makeError(Errc::Io, "etcd " + endpoint_ + ": malformed answer: " + error_); }
  void fail(const std::string& what) {
    if (error_.empty()) error_ = what;
  }

  // The member's answer as a JSON object, or nullopt (and a failure).
  std::optional<json> parse(const std::string& body);

  // A field of `o`; absent: nullptr / 0 / false / empty. Present with the wrong type: the
  // same, and a failure.
  const json* object(const json& o, const char* name);
  const json* array(const json& o, const char* name);
  std::int64_t int64(const json& o, const char* name);
  std::uint64_t uint64(const json& o, const char* name);
  bool boolean(const json& o, const char* name);
  std::string text(const json& o, const char* name);
  std::string bytes(const json& o, const char* name);  // base64-decoded
  std::vector<std::string> texts(const json& o, const char* name);

  // header.revision of an answer.
  std::int64_t headerRevision(const json& o);
  KeyValue keyValue(const json& o);
  RangeResult range(const json& o);
  TxnResult txn(const json& o);

 private:
  std::string endpoint_;
  std::string error_;
};

}  // namespace loom::controller::etcd
