// `events`: the controller's event log, once or followed (long polls) until Ctrl-C.
#include <algorithm>
#include <csignal>
#include <ctime>
#include <memory>
#include <optional>

#include "tools/loomctl/Api.h"
#include "tools/loomctl/Commands.h"
#include "tools/loomctl/Views.h"

namespace loom::loomctl {

namespace {

std::string clockTime(const Json& e) {
  if (!e.contains("time_ms") || !e["time_ms"].is_number()) return "-";
  const std::time_t t = static_cast<std::time_t>(e["time_ms"].get<std::int64_t>() / 1000);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

void printEventLine(Context& context, const Json& e) {
  std::string subject;
  if (!e.value("blade", std::string()).empty()) subject += e["blade"].get<std::string>();
  if (!e.value("server", std::string()).empty())
    subject += (subject.empty() ? "" : "/") + e["server"].get<std::string>();
  const std::string level = text(e, "level");
  const Style style = level == "error"                        ? Style::Bad
                      : level == "warning" || level == "warn" ? Style::Warning
                                                              : Style::Dim;
  // Aligned: ids to six digits, levels to the longest ("warning").
  std::string id = text(e, "id");
  if (id.size() < 6) id.insert(0, 6 - id.size(), ' ');
  const std::string pad(level.size() < 7 ? 7 - level.size() : 0, ' ');
  *context.out << id << "  " << clockTime(e) << "  " << styled(level, style, context.color) << pad << "  "
               << (subject.empty() ? "" : styled(subject, Style::Bold, context.color) + ": ") << text(e, "message")
               << "\n";
}

}  // namespace

void registerEvents(CLI::App& app, Context& context) {
  struct Options {
    bool follow = false;
    std::optional<std::uint64_t> since;
    std::optional<std::uint64_t> tail;
    std::uint64_t limit = 1000;
  };
  auto options = std::make_shared<Options>();
  CLI::App* events = app.add_subcommand("events", "Controller events (applies, blade and server changes, failures)");
  events->add_flag("-f,--follow", options->follow,
                   "Keep printing new events until Ctrl-C (with -o json: one object per line)");
  events->add_option("--since", options->since, "Only events after this id (with --follow: the history first)")
      ->type_name("ID");
  events->add_option("--tail", options->tail, "Only the latest N (--follow starts with the latest 10)")
      ->type_name("N")
      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{10000}))
      ->excludes("--since");
  events->add_option("--limit", options->limit, "At most this many events per request")
      ->capture_default_str()
      ->type_name("N");
  events->callback([&context, options] {
    std::uint64_t since = options->since.value_or(0);
    // Where the listing starts: after --since, or the latest --tail (a follow without
    // --since starts with the latest 10, as `tail -f` does, not the whole history).
    std::optional<std::uint64_t> tail = options->tail;
    if (!tail && !options->since && options->follow) tail = 10;
    // --tail 0 --follow: only what comes next; the latest one says where that starts.
    const bool quietFirst = options->follow && tail == std::uint64_t{0};
    const std::string from = tail ? "tail=" + std::to_string(quietFirst ? 1 : *tail) : "since=" + std::to_string(since);
    if (!options->follow) {
      Json list = getJson(context, "/v1/events?" + from + "&limit=" + std::to_string(options->limit));
      show(context, list, [&](const Json& l) {
        for (const auto& e : l) printEventLine(context, e);
      });
      return;
    }
    // Ctrl-C ends the follow between polls (and, in the shell, only the follow).
    clearInterrupt();
    auto previous = std::signal(SIGINT, [](int) { requestInterrupt(); });
    try {
      bool first = true;
      while (!interruptRequested()) {
        ApiRequest r;
        // Short long-polls: a Ctrl-C is noticed within seconds.
        r.target = "/v1/events?" + (first ? from : "since=" + std::to_string(since)) +
                   "&limit=" + std::to_string(options->limit) + (first ? "" : "&wait=2");
        r.timeout = std::chrono::seconds(30);
        first = false;
        Json list = requestJson(context, r);
        const bool print = !(quietFirst && r.target.find("tail=") != std::string::npos);
        for (const auto& e : list) {
          since = std::max<std::uint64_t>(since, e.value("id", std::uint64_t{0}));
          if (!print) continue;
          if (context.output == OutputFormat::Table)
            printEventLine(context, e);
          else
            *context.out << e.dump() << "\n";  // one JSON object per line: a stream
        }
        context.out->flush();
      }
    } catch (...) {
      std::signal(SIGINT, previous);
      throw;
    }
    std::signal(SIGINT, previous);
  });
}

}  // namespace loom::loomctl
