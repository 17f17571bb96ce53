// Result: a value or why not; how control code reports failure without exceptions.
#pragma once

#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace exitgw {

struct Error {
  std::string message;
};

// Result<T>: the value, or an Error with a message for people. Result<T, Code> carries an
// enumerated reason instead (a handshake's rejection that indexes a counter array); beside such
// an enum an ADL-found `std::string_view reason_name(Code)` names it.
template <typename T, typename E = Error>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(E error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  // The message (Error), or the reason code.
  const auto& error() const {
    if constexpr (std::is_same_v<E, Error>)
      return std::get<Error>(v_).message;
    else
      return std::get<E>(v_);
  }
  // A reason code's name.
  std::string_view error_name() const requires(!std::is_same_v<E, Error>) {
    return reason_name(error());
  }

 private:
  std::variant<T, E> v_;
};

struct Ok {};
using Status = Result<Ok>;

inline Error make_error(std::string message) {
  return Error{std::move(message)};
}

}  // namespace exitgw
