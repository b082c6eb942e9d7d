// Error values for parsers and loaders: no exceptions on paths that must be fuzzable.
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace kvq {

struct Error {
  std::string message;
};

template <typename... Args>
Error make_error(fmt::format_string<Args...> format, Args&&... args) {
  return Error{fmt::format(format, std::forward<Args>(args)...)};
}

// A value or an Error. Minimal stand-in for C++23 std::expected.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}
  Result(Error error) : state_(std::move(error)) {}

  bool ok() const { return std::holds_alternative<T>(state_); }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<Error>(state_); }

 private:
  std::variant<T, Error> state_;
};

// Success or an Error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error.message)), failed_(true) {}
  static Status Ok() { return Status(); }

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const std::string& message() const { return error_; }
  Error error() const { return Error{error_}; }

 private:
  std::string error_;
  bool failed_ = false;
};

// Always-on invariant check: a violated invariant is a bug, not a user error.
#define KVQ_CHECK(cond)                                                                             \
  do {                                                                                              \
    if (!(cond)) {                                                                                  \
      std::fprintf(stderr, "kvq: internal error: %s failed at %s:%d\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                                 \
    }                                                                                               \
  } while (0)

#ifdef NDEBUG
#define KVQ_DCHECK(cond) ((void)0)
#else
#define KVQ_DCHECK(cond) KVQ_CHECK(cond)
#endif

// Propagates an error from an expression yielding Status or Result.
#define KVQ_RETURN_IF_ERROR(expr)                      \
  do {                                                 \
    auto&& kvq_status_ = (expr);                       \
    if (!kvq_status_.ok()) return kvq_status_.error(); \
  } while (0)

}  // namespace kvq
