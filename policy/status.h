// Status and StatusOr: failures of the machinery (a file that cannot be read,
// input that is not JSON, a limit exceeded on data from outside). Problems in a
// user's policy text are Diagnostics (diagnostic.h); outcomes of a tool call are
// Decisions (interpreter/decision.h). Nothing in toolwarden throws across a
// public API: functions that can fail return one of these.
#ifndef TOOLWARDEN_POLICY_STATUS_H_
#define TOOLWARDEN_POLICY_STATUS_H_

#include <optional>
#include <string>
#include <utility>

namespace toolwarden {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // the caller's input is malformed
  kNotFound,            // a named thing (file, session, tool) does not exist
  kResourceExhausted,   // a named limit was exceeded
  kFailedPrecondition,  // the operation does not fit the current state
  kInternal,            // a bug in toolwarden
  kUnavailable,         // an outside system did not answer
};

class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
inline Status InvalidArgumentError(std::string m) {
  return Status(StatusCode::kInvalidArgument, std::move(m));
}
inline Status NotFoundError(std::string m) { return Status(StatusCode::kNotFound, std::move(m)); }
inline Status ResourceExhaustedError(std::string m) {
  return Status(StatusCode::kResourceExhausted, std::move(m));
}
inline Status FailedPreconditionError(std::string m) {
  return Status(StatusCode::kFailedPrecondition, std::move(m));
}
inline Status InternalError(std::string m) { return Status(StatusCode::kInternal, std::move(m)); }

// Either a value or a non-OK Status.
template <typename T>
class StatusOr {
 public:
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    if (status_.ok()) status_ = InternalError("StatusOr built from an OK status without a value");
  }
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  const T& value() const& { return *value_; }
  T& value() & { return *value_; }
  T&& value() && { return std::move(*value_); }
  const T& operator*() const& { return *value_; }
  T& operator*() & { return *value_; }
  const T* operator->() const { return &*value_; }
  T* operator->() { return &*value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace toolwarden

#endif  // TOOLWARDEN_POLICY_STATUS_H_
