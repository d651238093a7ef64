// The port contract: everything the PermFS engine core needs from the operating system.
//
// This header is the specification a new OS implements to embed PermFS (see docs/PORTING.md).
// The core layers (util … shell) include no OS header; they reach the outside world only through
// the functions declared here, which a port defines at link time. Two ports ship with PermFS:
// src/hosted/port_posix.cc (Linux/POSIX processes) and ports/qemu-x86_64 (a freestanding kernel).
//
// Rules every implementation must honour:
//  - Every function may be called from any thread the engine runs on, concurrently, unless the
//    comment says otherwise.
//  - Allocate() returns nullptr on failure; the engine turns that into Status::NoMemory. It never
//    throws and never panics on its own.
//  - Panic() must not allocate, must not return, and must be safe to call with any engine lock
//    held. It logs the message through the same sink as Log() (or a lower-level console) and then
//    halts, reboots or aborts according to the port's policy.
//  - Mutex/CondVar storage is opaque: the engine reserves kLockStorageBytes bytes, suitably
//    aligned, and never looks inside. A port whose native lock is larger must indirect.
//  - The monotonic clock never goes backwards. Wall-clock time is only used for file timestamps.
#pragma once

#include <cstddef>
#include <cstdint>

namespace permfs::port {

// ---- Memory -------------------------------------------------------------------------------
// Allocates `bytes` bytes aligned to `align` (a power of two, at most 4096). Returns nullptr when
// memory is exhausted. `bytes` may be zero (a unique non-null pointer or nullptr both fine).
void* Allocate(std::size_t bytes, std::size_t align) noexcept;
// Frees memory from Allocate(). `bytes` and `align` are the values given to Allocate().
void Deallocate(void* ptr, std::size_t bytes, std::size_t align) noexcept;

// ---- Locks --------------------------------------------------------------------------------
inline constexpr std::size_t kLockStorageBytes = 64;
struct alignas(16) LockStorage {
  unsigned char bytes[kLockStorageBytes];
};

void MutexInit(LockStorage* m) noexcept;
void MutexDestroy(LockStorage* m) noexcept;
void MutexLock(LockStorage* m) noexcept;
void MutexUnlock(LockStorage* m) noexcept;
bool MutexTryLock(LockStorage* m) noexcept;

void CondVarInit(LockStorage* cv) noexcept;
void CondVarDestroy(LockStorage* cv) noexcept;
// Atomically releases `m`, waits, and reacquires `m`. Spurious wakeups are allowed.
void CondVarWait(LockStorage* cv, LockStorage* m) noexcept;
// As CondVarWait, but returns after at most `timeout_ns` nanoseconds. Returns false on timeout.
bool CondVarWaitFor(LockStorage* cv, LockStorage* m, std::uint64_t timeout_ns) noexcept;
void CondVarSignal(LockStorage* cv) noexcept;
void CondVarBroadcast(LockStorage* cv) noexcept;

// Gives up the CPU briefly (used by spin-then-wait paths). May be a no-op.
void Yield() noexcept;

// ---- Time ---------------------------------------------------------------------------------
// Nanoseconds from an arbitrary epoch; never decreases.
std::uint64_t MonotonicNanos() noexcept;
// Nanoseconds since 1970-01-01T00:00:00Z, for file timestamps. A port without a real-time
// clock may return MonotonicNanos() plus a boot-time constant.
std::int64_t WallClockNanos() noexcept;

// ---- Randomness ---------------------------------------------------------------------------
// Fills `out` with unpredictable bytes (volume UUIDs, inode generations). Need not be
// cryptographic on ports without an entropy source, but must differ between boots.
void FillRandom(void* out, std::size_t len) noexcept;

// ---- Logging and panic --------------------------------------------------------------------
enum class LogLevel : std::uint8_t { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
// Writes one log line (no trailing newline in `msg`). Must not call back into the engine.
void Log(LogLevel level, const char* msg, std::size_t len) noexcept;

// Called by the engine when an invariant is broken (never for I/O errors or bad on-disk data,
// which come back as a Status). Must not allocate and must not return.
[[noreturn]] void Panic(const char* file, int line, const char* msg) noexcept;

// ---- Optional acceleration ----------------------------------------------------------------
// SHA-256 of `len` bytes into `out`. Returns false if the port has no accelerated
// implementation, in which case the engine uses its portable one. Must give identical results.
bool Sha256(const void* data, std::size_t len, std::uint8_t out[32]) noexcept;

}  // namespace permfs::port
