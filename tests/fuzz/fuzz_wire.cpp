// libFuzzer target for the fabric's wire decoder and validator (protocol/Messages.cpp,
// protocol/Validation.cpp): every byte string a blade (or anything that reaches the fabric
// port with an allowed key) can send loomd, and every frame loomd or a peer can send an
// agent. Besides ASan/UBSan findings it traps on answers the fabric relies on:
//   - peekPlainHeartbeat accepts only what parseFrame + validate accept, with the same
//     meaning (the fabric thread answers leases from the peek alone);
//   - a frame validate() accepted decodes without throwing, and its decoded message
//     encodes back into a frame validate() accepts (what loomd relays or stores stays
//     well-formed).
// How to build and run: tools/fuzz.sh wire [SECONDS] (docs/SECURITY.md, "Fuzzing").
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/Messages.h"
#include "protocol/Validation.h"

namespace {

namespace p = loom::protocol;

[[noreturn]] void trap(const char* what, std::string_view input, const std::string& detail = "") {
  std::fprintf(stderr, "fuzz_wire: %s: %.*s %s\n", what, static_cast<int>(std::min<std::size_t>(input.size(), 400)),
               input.data(), detail.c_str());
  std::abort();
}

template <class Message>
void roundTrip(const Message& m, std::string_view input) {
  const p::Json again = p::encode(m);
  if (auto bad = p::validate(again)) trap("a decoded frame encodes into one validate() refuses", input, bad->message);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const auto peek = p::peekPlainHeartbeat(bytes);

  p::Json frame;
  if (auto bad = p::parseFrame(bytes, frame)) {
    if (peek) trap("peekPlainHeartbeat accepted what parseFrame refuses", bytes, bad->message);
    return 0;
  }
  if (auto bad = p::validate(frame)) {
    if (peek) trap("peekPlainHeartbeat accepted what validate refuses", bytes, bad->message);
    return 0;
  }
  (void)p::epochOf(frame);
  const std::string type = frame["type"].get<std::string>();
  namespace t = p::type;
  if (type == t::kHeartbeat) {
    const auto m = p::decodeHeartbeat(frame);
    if (peek && (peek->seq != m.seq || peek->ack != m.ack || peek->echo != m.echo ||
                 peek->policyVersion != m.policyVersion || peek->shieldMs != m.shieldMs || peek->holding != m.holding))
      trap("peekPlainHeartbeat and decodeHeartbeat disagree", bytes);
    roundTrip(m, bytes);
  } else if (peek) {
    trap("peekPlainHeartbeat accepted a frame that is not a heartbeat", bytes);
  } else if (type == t::kRegister) {
    roundTrip(p::decodeRegister(frame), bytes);
  } else if (type == t::kRegistered) {
    roundTrip(p::decodeRegistered(frame), bytes);
  } else if (type == t::kLeaseRenewed) {
    roundTrip(p::decodeLeaseRenewed(frame), bytes);
  } else if (type == t::kPlan) {
    roundTrip(p::decodePlan(frame), bytes);
  } else if (type == t::kStepResult) {
    roundTrip(p::decodeStepResult(frame), bytes);
  } else if (type == t::kEvent) {
    roundTrip(p::decodeEvent(frame), bytes);
  } else if (type == t::kReregister) {
    roundTrip(p::decodeReregister(frame), bytes);
  } else if (type == t::kPolicy) {
    roundTrip(p::decodePolicy(frame), bytes);
  } else if (type == t::kPeerAsk) {
    roundTrip(p::decodePeerAsk(frame), bytes);
  } else if (type == t::kPeerAnswer) {
    roundTrip(p::decodePeerAnswer(frame), bytes);
  }
  return 0;
}
