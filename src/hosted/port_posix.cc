// Hosted implementation of the port contract (src/port/port.h) for Linux/POSIX processes:
// pthread locks, clock_gettime, getrandom, stderr logging and abort() on panic.
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#include "hosted/log_sink.h"
#include "port/port.h"

static_assert(sizeof(pthread_mutex_t) <= permfs::port::kLockStorageBytes);
static_assert(sizeof(pthread_cond_t) <= permfs::port::kLockStorageBytes);

namespace permfs::port {

void* Allocate(std::size_t bytes, std::size_t align) noexcept {
  if (bytes == 0) bytes = 1;
  if (align <= alignof(std::max_align_t)) return malloc(bytes);
  void* p = nullptr;
  if (posix_memalign(&p, align, bytes) != 0) return nullptr;
  return p;
}

void Deallocate(void* ptr, std::size_t, std::size_t) noexcept { free(ptr); }

static pthread_mutex_t* AsMutex(LockStorage* s) { return reinterpret_cast<pthread_mutex_t*>(s); }
static pthread_cond_t* AsCond(LockStorage* s) { return reinterpret_cast<pthread_cond_t*>(s); }

void MutexInit(LockStorage* m) noexcept { pthread_mutex_init(AsMutex(m), nullptr); }
void MutexDestroy(LockStorage* m) noexcept { pthread_mutex_destroy(AsMutex(m)); }
void MutexLock(LockStorage* m) noexcept {
  int rc = pthread_mutex_lock(AsMutex(m));
  if (rc != 0) Panic(__FILE__, __LINE__, "pthread_mutex_lock failed");
}
void MutexUnlock(LockStorage* m) noexcept { pthread_mutex_unlock(AsMutex(m)); }
bool MutexTryLock(LockStorage* m) noexcept { return pthread_mutex_trylock(AsMutex(m)) == 0; }

void CondVarInit(LockStorage* cv) noexcept {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(AsCond(cv), &attr);
  pthread_condattr_destroy(&attr);
}
void CondVarDestroy(LockStorage* cv) noexcept { pthread_cond_destroy(AsCond(cv)); }
void CondVarWait(LockStorage* cv, LockStorage* m) noexcept {
  pthread_cond_wait(AsCond(cv), AsMutex(m));
}
bool CondVarWaitFor(LockStorage* cv, LockStorage* m, std::uint64_t timeout_ns) noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  std::uint64_t ns = static_cast<std::uint64_t>(ts.tv_nsec) + timeout_ns % 1000000000ull;
  ts.tv_sec += static_cast<time_t>(timeout_ns / 1000000000ull + ns / 1000000000ull);
  ts.tv_nsec = static_cast<long>(ns % 1000000000ull);
  return pthread_cond_timedwait(AsCond(cv), AsMutex(m), &ts) != ETIMEDOUT;
}
void CondVarSignal(LockStorage* cv) noexcept { pthread_cond_signal(AsCond(cv)); }
void CondVarBroadcast(LockStorage* cv) noexcept { pthread_cond_broadcast(AsCond(cv)); }

void Yield() noexcept { sched_yield(); }

std::uint64_t MonotonicNanos() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

std::int64_t WallClockNanos() noexcept {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000ll + ts.tv_nsec;
}

void FillRandom(void* out, std::size_t len) noexcept {
  auto* p = static_cast<unsigned char*>(out);
  while (len > 0) {
    ssize_t n = getrandom(p, len, 0);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      Panic(__FILE__, __LINE__, "getrandom failed");
    }
    p += n;
    len -= static_cast<std::size_t>(n);
  }
}

void Log(LogLevel level, const char* msg, std::size_t len) noexcept {
  hosted::EmitLog(level, msg, len);
}

[[noreturn]] void Panic(const char* file, int line, const char* msg) noexcept {
  // No allocation: format into a stack buffer and write(2) it.
  char buf[512];
  int n = snprintf(buf, sizeof buf, "permfs PANIC at %s:%d: %s\n", file, line, msg);
  if (n > 0) {
    ssize_t w = write(2, buf, static_cast<std::size_t>(n) < sizeof buf ? n : sizeof buf - 1);
    (void)w;
  }
  abort();
}

bool Sha256(const void* data, std::size_t len, std::uint8_t out[32]) noexcept {
  unsigned int outlen = 0;
  return EVP_Digest(data, len, out, &outlen, EVP_sha256(), nullptr) == 1 && outlen == 32;
}

}  // namespace permfs::port
