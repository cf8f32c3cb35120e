// The plan frame as text, written straight from the message (RapidJSON's Writer), for
// loomd's hot path: after a failover a plan frame carries the spec of every server moved
// to the blade, and building nlohmann's tree of it and dump()ing it was about a third of
// the fence-to-steps-sent time (docs/PERFORMANCE.md, "loomd's real path").
//
// Contract: writePlanFrame(m) parses to the same JSON value as encode(m) (protocol/
// Messages.h), which stays the protocol's reference encoder and the agent's decoder's
// counterpart. Keys come in encode(m).dump()'s order (sorted), so for text without
// control characters the bytes are the same too; a control character is escaped as
// \u00XX with upper-case hex where dump() writes lower case (the same string to any JSON
// reader). Strings are written as they are: declarations are UTF-8 (config/).
// tests/protocol/PlanFrameWriterTest.cpp holds both; a field added to PlanMsg, PlanStep or
// ServerSpec fails the build here until this writer writes it too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "protocol/Messages.h"

namespace loom::protocol {

// {"epoch":E,"steps":[...],"type":"plan","v":1} (no "epoch" when it is 0): the frame's
// bytes, ready for the socket.
std::string writePlanFrame(const PlanMsg& m);

// The same, step by step, for a sender that keeps its steps in its own records (the
// reconciler's operations): no PlanMsg, so no copy of each define's spec. step() in the
// order they run, then finish() once.
class PlanFrameWriter {
 public:
  // `epoch` as PlanMsg::epoch (0: left out).
  explicit PlanFrameWriter(std::size_t expectedSteps = 1, std::uint64_t epoch = 0);
  ~PlanFrameWriter();
  PlanFrameWriter(const PlanFrameWriter&) = delete;
  PlanFrameWriter& operator=(const PlanFrameWriter&) = delete;

  // As PlanStep: `hypervisor` for prepare-hypervisor, `spec` (or null) for define.
  void step(std::uint64_t op, pool::StepKind kind, const std::string& server, const std::string& hypervisor,
            const ServerSpec* spec);
  std::size_t steps() const { return steps_; }
  // The frame; the writer is spent.
  std::string finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::size_t steps_ = 0;
};

}  // namespace loom::protocol
