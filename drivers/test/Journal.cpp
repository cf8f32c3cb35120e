#include "drivers/test/Journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <tuple>

namespace loom::drivers::test {
namespace {

void appendQuoted(std::string& out, const std::string& s) {
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';  // names never contain control characters; keep one line per event
    } else {
      out += c;
    }
  }
  out += '"';
}

// Finds "key": in a line we wrote ourselves and reads the value after it.
std::optional<std::string> stringField(const std::string& line, const std::string& key) {
  const std::string needle = "\"" + key + "\":\"";
  auto pos = line.find(needle);
  if (pos == std::string::npos) return std::nullopt;
  std::string out;
  for (pos += needle.size(); pos < line.size(); ++pos) {
    char c = line[pos];
    if (c == '\\' && pos + 1 < line.size()) {
      out += line[++pos];
    } else if (c == '"') {
      return out;
    } else {
      out += c;
    }
  }
  return std::nullopt;
}

std::optional<JournalEvent> eventFromString(const std::string& s) {
  for (auto e :
       {JournalEvent::Start, JournalEvent::Stop, JournalEvent::Destroy, JournalEvent::Crash, JournalEvent::Watchdog}) {
    if (s == toString(e)) return e;
  }
  return std::nullopt;
}

}  // namespace

const char* toString(JournalEvent event) {
  switch (event) {
    case JournalEvent::Start:
      return "start";
    case JournalEvent::Stop:
      return "stop";
    case JournalEvent::Destroy:
      return "destroy";
    case JournalEvent::Crash:
      return "crash";
    case JournalEvent::Watchdog:
      return "watchdog";
  }
  return "unknown";
}

std::string formatJournalLine(const JournalEntry& e) {
  std::string out = "{\"t\":" + std::to_string(e.timeMs) + ",\"blade\":";
  appendQuoted(out, e.blade);
  out += ",\"event\":\"";
  out += toString(e.event);
  out += "\",\"domain\":";
  appendQuoted(out, e.domain);
  out += ",\"uuid\":";
  appendQuoted(out, e.uuid);
  out += '}';
  return out;
}

Result<JournalEntry> parseJournalLine(const std::string& line) {
  JournalEntry e;
  const auto t = line.find("\"t\":");
  auto blade = stringField(line, "blade");
  auto event = stringField(line, "event");
  auto domain = stringField(line, "domain");
  auto uuid = stringField(line, "uuid");
  if (t == std::string::npos || !blade || !event || !domain || !uuid) {
    return makeError(Errc::Invalid, "not a journal line: '" + line + "'");
  }
  char* end = nullptr;
  e.timeMs = std::strtoll(line.c_str() + t + 4, &end, 10);
  auto parsed = eventFromString(*event);
  if (!parsed) return makeError(Errc::Invalid, "unknown journal event '" + *event + "'");
  e.event = *parsed;
  e.blade = std::move(*blade);
  e.domain = std::move(*domain);
  e.uuid = std::move(*uuid);
  return e;
}

Result<std::vector<JournalEntry>> readJournal(const std::string& path) {
  std::ifstream in(path);
  if (!in) return makeError(Errc::Io, "cannot read journal '" + path + "'");
  std::vector<JournalEntry> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    auto e = parseJournalLine(line);
    if (!e) return makeError(Errc::Invalid, path + ":" + std::to_string(n) + ": " + e.error().message);
    out.push_back(std::move(*e));
  }
  return out;
}

std::optional<std::string> findDoubleRun(std::vector<JournalEntry> entries) {
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.timeMs < b.timeMs; });
  struct Run {
    std::string blade, domain;
    TimeMs from = 0, to = std::numeric_limits<TimeMs>::max();
  };
  std::map<std::string, std::vector<Run>> runs;                // uuid -> runs
  std::map<std::pair<std::string, std::string>, size_t> open;  // (uuid, blade) -> open run
  for (const auto& e : entries) {
    auto& list = runs[e.uuid];
    auto key = std::make_pair(e.uuid, e.blade);
    if (e.event == JournalEvent::Start) {
      if (!open.count(key)) {
        open[key] = list.size();
        list.push_back(Run{e.blade, e.domain, e.timeMs});
      }
    } else if (auto it = open.find(key); it != open.end()) {
      list[it->second].to = e.timeMs;
      open.erase(it);
    }
  }
  auto when = [](TimeMs t) {
    return t == std::numeric_limits<TimeMs>::max() ? std::string("still running") : std::to_string(t);
  };
  for (const auto& [uuid, list] : runs) {
    for (size_t i = 0; i < list.size(); ++i) {
      for (size_t j = i + 1; j < list.size(); ++j) {
        const Run& a = list[i];
        const Run& b = list[j];
        // Half-open runs [from, to): a stop at t and a start elsewhere at t do not overlap.
        if (a.blade != b.blade && a.from < b.to && b.from < a.to) {
          return "server '" + a.domain + "' (uuid " + uuid + ") ran on " + a.blade + " [" + std::to_string(a.from) +
                 ", " + when(a.to) + ") and on " + b.blade + " [" + std::to_string(b.from) + ", " + when(b.to) +
                 ") at once";
        }
      }
    }
  }
  return std::nullopt;
}

Journal::~Journal() {
  if (fd_ >= 0) ::close(fd_);
}

Status Journal::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return makeError(Errc::Io, "cannot open journal '" + path + "': " + std::strerror(errno));
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  path_ = path;
  return okStatus();
}

void Journal::record(const JournalEntry& entry) {
  entries_.push_back(entry);
  if (fd_ < 0) return;
  // One write() per line: O_APPEND makes each line land whole even with several writers.
  const std::string line = formatJournalLine(entry) + "\n";
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // a full disk loses journal lines, not domains; the memory copy stays
    done += static_cast<size_t>(n);
  }
}

}  // namespace loom::drivers::test
