#include "drivers/Driver.h"

namespace loom::drivers {

const char* toString(DomainState state) {
  switch (state) {
    case DomainState::Defined: return "defined";
    case DomainState::Running: return "running";
    case DomainState::Paused: return "paused";
    case DomainState::ShuttingDown: return "shutting-down";
    case DomainState::Shutoff: return "shutoff";
    case DomainState::Crashed: return "crashed";
  }
  return "unknown";
}

}  // namespace loom::drivers
