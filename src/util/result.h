// Result<T>: either a value of type T or a non-OK Status. C++20 has no std::expected; this is
// the engine's small, exception-free substitute.
//
// Accessing value() of an error Result panics (an engine bug, not a runtime condition).
// Thread-safety: a value type; as safe as T.
#pragma once

#include <new>
#include <type_traits>
#include <utility>

#include "util/assert.h"
#include "util/status.h"

namespace permfs {

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(const T& v) : status_(), has_(true) { new (&storage_) T(v); }          // NOLINT
  Result(T&& v) : status_(), has_(true) { new (&storage_) T(std::move(v)); }     // NOLINT
  Result(Status s) : status_(s), has_(false) {                                   // NOLINT
    PERMFS_ASSERT_MSG(!s.ok(), "Result built from an OK status without a value");
  }
  Result(const Result& o) : status_(o.status_), has_(o.has_) {
    if (has_) new (&storage_) T(o.ref());
  }
  Result(Result&& o) noexcept : status_(o.status_), has_(o.has_) {
    if (has_) new (&storage_) T(std::move(o.ref()));
  }
  Result& operator=(const Result& o) {
    if (this != &o) {
      Reset();
      status_ = o.status_;
      has_ = o.has_;
      if (has_) new (&storage_) T(o.ref());
    }
    return *this;
  }
  Result& operator=(Result&& o) noexcept {
    if (this != &o) {
      Reset();
      status_ = o.status_;
      has_ = o.has_;
      if (has_) new (&storage_) T(std::move(o.ref()));
    }
    return *this;
  }
  ~Result() { Reset(); }

  bool ok() const noexcept { return has_; }
  const Status& status() const noexcept { return status_; }

  T& value() & {
    PERMFS_ASSERT_MSG(has_, "value() of an error Result");
    return ref();
  }
  const T& value() const& {
    PERMFS_ASSERT_MSG(has_, "value() of an error Result");
    return ref();
  }
  T&& value() && {
    PERMFS_ASSERT_MSG(has_, "value() of an error Result");
    return std::move(ref());
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  T& ref() { return *std::launder(reinterpret_cast<T*>(&storage_)); }
  const T& ref() const { return *std::launder(reinterpret_cast<const T*>(&storage_)); }
  void Reset() {
    if (has_) ref().~T();
    has_ = false;
  }

  Status status_;
  bool has_;
  alignas(T) unsigned char storage_[sizeof(T)];
};

}  // namespace permfs

#define PERMFS_CONCAT_INNER(a, b) a##b
#define PERMFS_CONCAT(a, b) PERMFS_CONCAT_INNER(a, b)

// PERMFS_ASSIGN_OR_RETURN(auto x, Foo()); declares x from a Result or returns its Status.
#define PERMFS_ASSIGN_OR_RETURN(lhs, expr) \
  PERMFS_ASSIGN_OR_RETURN_IMPL(PERMFS_CONCAT(_permfs_r_, __LINE__), lhs, expr)
#define PERMFS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
