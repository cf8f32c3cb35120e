// The test driver's journal: one entry per domain start and per end of a run (stop,
// destroy, crash, watchdog), stamped with wall-clock ms and the blade, so a checker can
// prove a server never ran on two blades at overlapping times (invariant 1).
//
// File format (param journal=PATH): one JSON object per line, appended and flushed per
// event; several drivers (even several processes) may share one file because each line
// is a single O_APPEND write:
//   {"t":1700000000123,"blade":"c1-s1","event":"start","domain":"web-01","uuid":"4c4f..."}
// A run is the interval from a "start" to the next non-start event of the same uuid on
// the same blade; a run without an end is still open.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "drivers/test/Clock.h"
#include "loom/Result.h"

namespace loom::drivers::test {

enum class JournalEvent { Start, Stop, Destroy, Crash, Watchdog };
const char* toString(JournalEvent event);

struct JournalEntry {
  TimeMs timeMs = 0;
  std::string blade;
  JournalEvent event = JournalEvent::Start;
  std::string domain;
  std::string uuid;

  bool operator==(const JournalEntry&) const = default;
};

std::string formatJournalLine(const JournalEntry& entry);  // without the newline
Result<JournalEntry> parseJournalLine(const std::string& line);
// Reads a journal file; an unparsable line is an Invalid error naming the line number.
Result<std::vector<JournalEntry>> readJournal(const std::string& path);

// The first server (by uuid) found running on two blades at overlapping times, described
// for an operator ("server 'web-01' (uuid ...) ran on c1-s1 from ... and on c1-s2 from
// ... at once"); nullopt when there is none. Entries need not be sorted.
std::optional<std::string> findDoubleRun(std::vector<JournalEntry> entries);

// The in-memory journal plus its optional file. Not thread-safe: the owner locks.
class Journal {
 public:
  Journal() = default;
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  Status open(const std::string& path);  // append mode, created when missing
  void record(const JournalEntry& entry);
  const std::vector<JournalEntry>& entries() const { return entries_; }

 private:
  std::vector<JournalEntry> entries_;
  int fd_ = -1;
  std::string path_;
};

}  // namespace loom::drivers::test
