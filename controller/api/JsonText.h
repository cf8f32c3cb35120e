// Writing API objects as JSON text with RapidJSON's Writer, no tree in between
// (controller/README.md, "API lists"): the few helpers every view uses, so the leader's
// views (Views.cpp) and a standby's (StandbyViews.cpp) write fields the same way.
#pragma once

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pool/Model.h"

namespace loom::controller::api::jsontext {

using JsonOut = rapidjson::Writer<rapidjson::StringBuffer>;

inline void put(JsonOut& w, const char* key, std::string_view v) {
  w.Key(key);
  w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
}
inline void put(JsonOut& w, const char* key, const std::string& v) { put(w, key, std::string_view(v)); }
inline void put(JsonOut& w, const char* key, const char* v) { put(w, key, std::string_view(v)); }
inline void put(JsonOut& w, const char* key, std::int64_t v) {
  w.Key(key);
  w.Int64(v);
}
inline void put(JsonOut& w, const char* key, std::uint64_t v) {
  w.Key(key);
  w.Uint64(v);
}
inline void put(JsonOut& w, const char* key, bool v) {
  w.Key(key);
  w.Bool(v);
}
inline void put(JsonOut& w, const char* key, const std::vector<std::string>& v) {
  w.Key(key);
  w.StartArray();
  for (const auto& e : v) w.String(e.data(), static_cast<rapidjson::SizeType>(e.size()));
  w.EndArray();
}
// A string, or null when it is empty.
inline void putOrNull(JsonOut& w, const char* key, std::string_view v) {
  if (!v.empty()) return put(w, key, v);
  w.Key(key);
  w.Null();
}

// A blade's BMC (`bmc`): where it is and whose credentials, never the password itself.
inline void putBmc(JsonOut& w, const pool::Bmc& bmc) {
  w.Key("bmc");
  w.StartObject();
  put(w, "address", bmc.address);
  put(w, "port", std::int64_t{bmc.port});
  put(w, "user", bmc.user);
  put(w, "password_file", bmc.passwordFile);
  w.EndObject();
}

// One object's text: `write` fills it.
template <class Write>
std::string objectText(Write&& write) {
  rapidjson::StringBuffer sb;
  JsonOut w(sb);
  w.StartObject();
  write(w);
  w.EndObject();
  return {sb.GetString(), sb.GetSize()};
}

}  // namespace loom::controller::api::jsontext
