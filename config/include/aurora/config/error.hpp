// Error values for expected failures, and Result<T>: a value or an Error.
//
// Every error that comes from input names the offending field path and value, e.g.
// `gpus[3].bandwidth_gbps: must be > 0, got -5`. Boundaries convert Errors once: the CLI to
// exit code 2, the HTTP router to a status code, the engine to a per-request error event.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

#include "aurora/config/check.hpp"

namespace aurora {

enum class ErrorCode {
  kInvalidArgument,    // bad input: config, scenario, request, checkpoint
  kNotFound,           // a file, model or route that does not exist
  kUnsupported,        // valid input we do not handle (architecture, dtype)
  kResourceExhausted,  // queue full, KV cache full, too many connections
  kUnavailable,        // loading or draining
  kCancelled,
  kDeadlineExceeded,
  kInternal,
};

const char* error_code_name(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;  // full message, starts with the field path when there is one
  std::string field;    // the field path alone ("" when none)

  static Error invalid(std::string field, const std::string& what) {
    std::string msg = field.empty() ? what : field + ": " + what;
    return Error{ErrorCode::kInvalidArgument, std::move(msg), std::move(field)};
  }
  static Error make(ErrorCode code, std::string message) { return Error{code, std::move(message), {}}; }
};

// Thrown inside parsers and loaders; caught at their public boundary and returned as an Error.
class ErrorException : public std::runtime_error {
 public:
  explicit ErrorException(Error error) : std::runtime_error(error.message), error_(std::move(error)) {}
  const Error& error() const { return error_; }

 private:
  Error error_;
};

[[noreturn]] inline void throw_error(Error error) { throw ErrorException(std::move(error)); }
[[noreturn]] inline void throw_invalid(std::string field, const std::string& what) {
  throw ErrorException(Error::invalid(std::move(field), what));
}

// A value or an Error. Small on purpose: std::expected is C++23.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    check_ok();
    return std::get<0>(v_);
  }
  const T& value() const& {
    check_ok();
    return std::get<0>(v_);
  }
  T&& value() && {
    check_ok();
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const {
    AURORA_CHECK_MSG(!ok(), "Result::error() on a value");
    return std::get<1>(v_);
  }

 private:
  void check_ok() const {
    if (!ok()) detail::check_failed("Result::ok()", __FILE__, __LINE__, std::get<1>(v_).message);
  }
  std::variant<T, Error> v_;
};

// Result<void>: success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    AURORA_CHECK_MSG(!ok_, "Result::error() on success");
    return error_;
  }

 private:
  Error error_;
  bool ok_ = true;
};

// Runs fn(), converting a thrown ErrorException into an Error result.
template <class Fn>
auto capture_errors(Fn&& fn) -> Result<decltype(fn())> {
  try {
    if constexpr (std::is_void_v<decltype(fn())>) {
      fn();
      return {};
    } else {
      return fn();
    }
  } catch (const ErrorException& e) {
    return e.error();
  }
}

}  // namespace aurora
