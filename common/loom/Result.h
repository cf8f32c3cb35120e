// Result<T>: the value-or-error type every Loom component returns for expected failures
// (bad config, hypervisor errors, network trouble). Exceptions stay at process edges;
// impossible states are assertions.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace loom {

// What kind of failure, so callers can branch without parsing messages.
enum class Errc {
  Invalid,      // the request or input is malformed or violates a rule
  NotFound,     // a named thing does not exist
  Conflict,     // the request collides with existing state
  Unsupported,  // the operation is not offered by this driver/host
  Unavailable,  // the backend (hypervisor, controller, store) cannot be reached/used here
  Timeout,      // an operation did not finish in its allotted time
  Io,           // an OS or library call failed
  Internal,     // a bug or an unexpected state reported by a dependency
};

inline const char* errcName(Errc code) {
  switch (code) {
    case Errc::Invalid:
      return "invalid";
    case Errc::NotFound:
      return "not-found";
    case Errc::Conflict:
      return "conflict";
    case Errc::Unsupported:
      return "unsupported";
    case Errc::Unavailable:
      return "unavailable";
    case Errc::Timeout:
      return "timeout";
    case Errc::Io:
      return "io";
    case Errc::Internal:
      return "internal";
  }
  return "unknown";
}

// An error carries a message meant for an operator: it quotes the offending name
// ("unknown driver 'xen2'"), not an internal code path.
struct Error {
  Errc code = Errc::Internal;
  std::string message;
};

inline Error makeError(Errc code, std::string message) { return Error{code, std::move(message)}; }

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

inline Status okStatus() { return {}; }

}  // namespace loom
