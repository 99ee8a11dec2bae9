// Status and Expected<T>: how errors cross the boundaries of the library.
//
// The loader, the executor and the public API return a Status (or an
// Expected<T>) whose message is one line naming the file, tensor or node and
// what is wrong. No exceptions cross these boundaries; inner code asserts
// its preconditions instead of re-validating them.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace sarai {

// What kind of failure a Status reports, for callers that act on it (the
// public API's error categories, include/sarai_rt/). Most errors leave it
// kUnspecified; the public API then names the category from where the error
// arose (loading: invalid model; running: internal).
enum class ErrorCode : int {
  kUnspecified = 0,
  kIo,                // a file cannot be opened, read or mapped
  kUnsupportedOp,     // the model uses an op this runtime lacks
  kBadInput,          // an input's name, dtype, rank or shape does not fit the model
  kOutOfMemoryBudget  // the memory budget cannot hold the run
};

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  static Status ok() { return Status(); }
  static Status error(std::string message) {
    Status s;
    s.message_ = std::move(message);
    s.failed_ = true;
    return s;
  }
  static Status error(ErrorCode code, std::string message) {
    Status s = error(std::move(message));
    s.code_ = code;
    return s;
  }
  bool is_ok() const { return !failed_; }
  explicit operator bool() const { return !failed_; }
  const std::string& message() const { return message_; }
  ErrorCode code() const { return code_; }
  // Prepends context ("file.onnx: ") to the message of a failed status.
  Status with_prefix(const std::string& prefix) const {
    if (!failed_) return *this;
    return error(code_, prefix + message_);
  }

 private:
  std::string message_;
  bool failed_ = false;
  ErrorCode code_ = ErrorCode::kUnspecified;
};

template <class T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
  Expected(Status status) : v_(std::move(status)) {      // NOLINT
    assert(!std::get<Status>(v_).is_ok() && "Expected built from an OK status");
  }
  bool has_value() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return has_value(); }
  T& value() & { assert(has_value()); return std::get<T>(v_); }
  const T& value() const& { assert(has_value()); return std::get<T>(v_); }
  T&& value() && { assert(has_value()); return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  Status status() const { return has_value() ? Status::ok() : std::get<Status>(v_); }
  const std::string& message() const {
    static const std::string kEmpty;
    return has_value() ? kEmpty : std::get<Status>(v_).message();
  }

 private:
  std::variant<T, Status> v_;
};

}  // namespace sarai

// Early-return helpers for code that returns Status or Expected<T>.
#define SARAI_RETURN_IF_ERROR(expr)              \
  do {                                           \
    ::sarai::Status sarai_status_ = (expr);      \
    if (!sarai_status_.is_ok()) return sarai_status_; \
  } while (0)

#define SARAI_CONCAT_INNER(a, b) a##b
#define SARAI_CONCAT(a, b) SARAI_CONCAT_INNER(a, b)
#define SARAI_ASSIGN_OR_RETURN(lhs, expr) \
  SARAI_ASSIGN_OR_RETURN_IMPL(SARAI_CONCAT(sarai_expected_, __LINE__), lhs, expr)
#define SARAI_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.has_value()) return tmp.status();        \
  lhs = std::move(tmp).value()
