// RwLock: a shared/exclusive lock over the port's mutex and condvar, with writer preference
// (a waiting writer blocks new readers, so a stream of readers cannot starve writers).
// Not recursive; a thread holding it shared must not ask for it exclusive.
// Thread-safety: this is a synchronisation primitive.
#pragma once

#include "util/sync.h"

namespace permfs {

class PERMFS_CAPABILITY("rwlock") RwLock {
 public:
  RwLock() : cv_(&mu_) {}

  void Lock() PERMFS_ACQUIRE() {
    MutexLock l(&mu_);
    ++writers_waiting_;
    while (writer_ || readers_ > 0) cv_.Wait();
    --writers_waiting_;
    writer_ = true;
  }
  void Unlock() PERMFS_RELEASE() {
    MutexLock l(&mu_);
    writer_ = false;
    cv_.SignalAll();
  }
  void LockShared() PERMFS_TSA(acquire_shared_capability()) {
    MutexLock l(&mu_);
    while (writer_ || writers_waiting_ > 0) cv_.Wait();
    ++readers_;
  }
  void UnlockShared() PERMFS_TSA(release_shared_capability()) {
    MutexLock l(&mu_);
    if (--readers_ == 0) cv_.SignalAll();
  }

 private:
  Mutex mu_;
  CondVar cv_;
  int readers_ = 0;
  int writers_waiting_ = 0;
  bool writer_ = false;
};

// Scoped holders.
class PERMFS_SCOPED_CAPABILITY ExclusiveLock {
 public:
  explicit ExclusiveLock(RwLock* l) PERMFS_ACQUIRE(l) : l_(l) { l_->Lock(); }
  ~ExclusiveLock() PERMFS_RELEASE() { l_->Unlock(); }
  ExclusiveLock(const ExclusiveLock&) = delete;
  ExclusiveLock& operator=(const ExclusiveLock&) = delete;

 private:
  RwLock* const l_;
};

class PERMFS_SCOPED_CAPABILITY SharedLock {
 public:
  explicit SharedLock(RwLock* l) PERMFS_TSA(acquire_shared_capability(l)) : l_(l) {
    l_->LockShared();
  }
  ~SharedLock() PERMFS_RELEASE() { l_->UnlockShared(); }
  SharedLock(const SharedLock&) = delete;
  SharedLock& operator=(const SharedLock&) = delete;

 private:
  RwLock* const l_;
};

}  // namespace permfs
