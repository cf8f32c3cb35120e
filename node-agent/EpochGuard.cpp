#include "node-agent/EpochGuard.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace loom::agent {

namespace {
// A stale leader has one epoch; a handful logged covers any real sequence of takeovers.
constexpr std::size_t kMaxLogged = 64;
}  // namespace

EpochGuard::EpochGuard(std::string blade, std::string path) : blade_(std::move(blade)), path_(std::move(path)) {}

void EpochGuard::load() {
  if (path_.empty()) return;
  std::ifstream in(path_);
  if (!in) return;
  std::string text;
  std::getline(in, text);
  std::uint64_t value = 0;
  std::size_t used = 0;
  try {
    value = std::stoull(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || text[0] == '-') {
    spdlog::warn("{}: ignoring an unreadable leader epoch in '{}'", blade_, path_);
    return;
  }
  highest_ = value;
  if (highest_) spdlog::info("{}: following leaders of epoch {} or newer (kept in '{}')", blade_, highest_, path_);
}

EpochGuard::Verdict EpochGuard::admit(std::uint64_t epoch, std::string_view type) {
  if (epoch == 0 || epoch == highest_) return Verdict::Accept;
  if (epoch > highest_) {
    if (highest_)
      spdlog::info("{}: a new leader, epoch {} (was {}): frames of older epochs are refused from now on", blade_, epoch,
                   highest_);
    highest_ = epoch;
    save();
    return Verdict::Raise;
  }
  ++refused_;
  if (logged_.size() < kMaxLogged && logged_.insert(epoch).second)
    spdlog::warn(
        "{}: refused a '{}' of epoch {}: the leader of epoch {} replaced that loomd (further frames of epoch {} are "
        "counted, not logged)",
        blade_, type, epoch, highest_, epoch);
  return Verdict::Refuse;
}

void EpochGuard::save() const {
  if (path_.empty()) return;
  const std::string tmp = path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << highest_ << "\n";
    if (!out) {
      spdlog::warn("{}: cannot keep the leader epoch in '{}': a restarted agent would accept older leaders' frames",
                   blade_, tmp);
      return;
    }
  }
  if (std::rename(tmp.c_str(), path_.c_str()) != 0)
    spdlog::warn("{}: cannot keep the leader epoch in '{}': a restarted agent would accept older leaders' frames",
                 blade_, path_);
}

}  // namespace loom::agent
