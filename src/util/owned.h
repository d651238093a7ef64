// Owned<T>: a minimal unique owner (std::unique_ptr is not available to freestanding core code).
// Deletes with `delete`, which the port backs with its allocator.
// Thread-safety: as a raw pointer.
#pragma once

#include <utility>

namespace permfs {

template <typename T>
class Owned {
 public:
  Owned() noexcept = default;
  explicit Owned(T* p) noexcept : p_(p) {}
  Owned(Owned&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
  template <typename U>
  Owned(Owned<U>&& o) noexcept : p_(o.release()) {}  // NOLINT
  Owned& operator=(Owned&& o) noexcept {
    if (this != &o) {
      delete p_;
      p_ = o.p_;
      o.p_ = nullptr;
    }
    return *this;
  }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  ~Owned() { delete p_; }

  T* get() const noexcept { return p_; }
  T* operator->() const noexcept { return p_; }
  T& operator*() const noexcept { return *p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  T* release() noexcept {
    T* p = p_;
    p_ = nullptr;
    return p;
  }
  void reset(T* p = nullptr) noexcept {
    delete p_;
    p_ = p;
  }

 private:
  T* p_ = nullptr;
};

template <typename T, typename... Args>
Owned<T> MakeOwned(Args&&... args) {
  return Owned<T>(new T(std::forward<Args>(args)...));
}

}  // namespace permfs
