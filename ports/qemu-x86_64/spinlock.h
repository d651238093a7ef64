// The kernel's lock: a test-and-test-and-set spinlock. Interrupts are never used for locking
// (this kernel runs with IF=0 and one CPU); on several CPUs it is a correct spinlock too. A lock
// that stays contended for ~2^27 spins is reported as a deadlock through the panic path: on one
// CPU without preemption, contention can only mean the current context already holds it.
#pragma once

#include <atomic>
#include <cstdint>

#include "arch.h"
#include "internal.h"

namespace permfs::qemu {

class SpinLock {
 public:
  void Lock() noexcept {
    if (!locked_.exchange(1, std::memory_order_acquire)) return;
    SlowLock();
  }
  bool TryLock() noexcept {
    return locked_.load(std::memory_order_relaxed) == 0 &&
           !locked_.exchange(1, std::memory_order_acquire);
  }
  void Unlock() noexcept { locked_.store(0, std::memory_order_release); }
  bool IsLocked() const noexcept { return locked_.load(std::memory_order_relaxed) != 0; }

 private:
  void SlowLock() noexcept {
    std::uint64_t spins = 0;
    for (;;) {
      while (locked_.load(std::memory_order_relaxed)) {
        arch::Pause();
        if (++spins == (1ull << 27))
          PanicCommon(__FILE__, __LINE__, "spinlock deadlock (lock held by this CPU?)", nullptr);
      }
      if (!locked_.exchange(1, std::memory_order_acquire)) return;
    }
  }
  std::atomic<std::uint32_t> locked_{0};
};

class SpinGuard {
 public:
  explicit SpinGuard(SpinLock* l) noexcept : l_(l) { l_->Lock(); }
  ~SpinGuard() { l_->Unlock(); }
  SpinGuard(const SpinGuard&) = delete;
  SpinGuard& operator=(const SpinGuard&) = delete;

 private:
  SpinLock* l_;
};

}  // namespace permfs::qemu
