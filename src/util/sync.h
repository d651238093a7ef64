// Mutex, CondVar and scoped lock over the port's lock primitives, with clang thread-safety
// annotations (checked with -Wthread-safety when building with clang).
//
// Thread-safety: these are the synchronisation primitives; a Mutex may be locked from any thread.
// Lock order across the engine is documented in docs/DESIGN-NOTES.md ("Lock order").
#pragma once

#include <cstdint>

#include "port/port.h"

#if defined(__clang__)
#define PERMFS_TSA(x) __attribute__((x))
#else
#define PERMFS_TSA(x)
#endif

#define PERMFS_CAPABILITY(x) PERMFS_TSA(capability(x))
#define PERMFS_SCOPED_CAPABILITY PERMFS_TSA(scoped_lockable)
#define PERMFS_GUARDED_BY(x) PERMFS_TSA(guarded_by(x))
#define PERMFS_PT_GUARDED_BY(x) PERMFS_TSA(pt_guarded_by(x))
#define PERMFS_REQUIRES(...) PERMFS_TSA(requires_capability(__VA_ARGS__))
#define PERMFS_EXCLUDES(...) PERMFS_TSA(locks_excluded(__VA_ARGS__))
#define PERMFS_ACQUIRE(...) PERMFS_TSA(acquire_capability(__VA_ARGS__))
#define PERMFS_RELEASE(...) PERMFS_TSA(release_capability(__VA_ARGS__))
#define PERMFS_TRY_ACQUIRE(...) PERMFS_TSA(try_acquire_capability(__VA_ARGS__))
#define PERMFS_NO_TSA PERMFS_TSA(no_thread_safety_analysis)

namespace permfs {

class PERMFS_CAPABILITY("mutex") Mutex {
 public:
  Mutex() noexcept { port::MutexInit(&s_); }
  ~Mutex() { port::MutexDestroy(&s_); }
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() PERMFS_ACQUIRE() { port::MutexLock(&s_); }
  void Unlock() PERMFS_RELEASE() { port::MutexUnlock(&s_); }
  bool TryLock() PERMFS_TRY_ACQUIRE(true) { return port::MutexTryLock(&s_); }

 private:
  friend class CondVar;
  port::LockStorage s_;
};

class PERMFS_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) PERMFS_ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() PERMFS_RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

class CondVar {
 public:
  explicit CondVar(Mutex* mu) noexcept : mu_(mu) { port::CondVarInit(&s_); }
  ~CondVar() { port::CondVarDestroy(&s_); }
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  void Wait() { port::CondVarWait(&s_, &mu_->s_); }
  // Returns false on timeout.
  bool WaitFor(std::uint64_t ns) { return port::CondVarWaitFor(&s_, &mu_->s_, ns); }
  void Signal() { port::CondVarSignal(&s_); }
  void SignalAll() { port::CondVarBroadcast(&s_); }

 private:
  Mutex* const mu_;
  port::LockStorage s_;
};

}  // namespace permfs
