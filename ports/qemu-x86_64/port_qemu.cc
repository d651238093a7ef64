// The reference kernel's implementation of the port contract (src/port/port.h), except
// Allocate/Deallocate (heap.cc) and the clock (clock.cc).
//
// Concurrency model: one CPU, interrupts off, no preemption, devices polled. Mutex = spinlock
// (correct on SMP too). CondVar = a generation counter: Wait releases the mutex, runs the idle
// pollers (which deliver device completions, the only thing that can change state while one
// context waits) until the generation moves or a short spin budget runs out, then reacquires
// the mutex. Returning without a signal is a spurious wakeup, which the contract allows, so a
// caller's predicate loop always makes progress.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

#include "arch.h"
#include "internal.h"
#include "kernel.h"
#include "port/port.h"
#include "spinlock.h"

#ifndef PERMFS_QEMU_PANIC_HALT
#define PERMFS_QEMU_PANIC_HALT 0
#endif

namespace permfs::qemu {
namespace {

struct CondVarState {
  std::atomic<std::uint64_t> generation{0};
};
static_assert(sizeof(SpinLock) <= port::kLockStorageBytes);
static_assert(sizeof(CondVarState) <= port::kLockStorageBytes);

SpinLock* AsLock(port::LockStorage* s) { return std::launder(reinterpret_cast<SpinLock*>(s->bytes)); }
CondVarState* AsCv(port::LockStorage* s) {
  return std::launder(reinterpret_cast<CondVarState*>(s->bytes));
}

// Spin rounds a CondVarWait polls before returning as a spurious wakeup.
constexpr int kWaitRounds = 256;

struct Reporter {
  const char* name;
  PanicReporterFn fn;
  void* arg;
};
Reporter g_reporters[kMaxPanicReporters];

struct Poller {
  IdlePollerFn fn;
  void* arg;
};
Poller g_pollers[kMaxIdlePollers];
bool g_in_pollers = false;

std::uint64_t IdentityVirtToPhys(const void* v) { return reinterpret_cast<std::uintptr_t>(v); }
VirtToPhysFn g_virt_to_phys = &IdentityVirtToPhys;

PanicPolicy g_panic_policy = PERMFS_QEMU_PANIC_HALT ? PanicPolicy::kHalt : PanicPolicy::kExit;
std::atomic<int> g_panicking{0};

// FillRandom fallback: splitmix64 state, mixed with the TSC on every call.
std::uint64_t g_rng_state = 0x9E3779B97F4A7C15ull;
SpinLock g_rng_lock;

std::uint64_t SplitMix(std::uint64_t& s) {
  std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

bool Rdrand64(std::uint64_t* out) {
  for (int i = 0; i < 10; ++i) {
    unsigned char ok;
    std::uint64_t v;
    asm volatile("rdrand %0; setc %1" : "=r"(v), "=qm"(ok));
    if (ok) {
      *out = v;
      return true;
    }
  }
  return false;
}

void PrintBacktrace(std::uint64_t rbp) {
  PanicPrint("backtrace (frame pointers):");
  const auto lo = reinterpret_cast<std::uint64_t>(boot_stack_bottom);
  const auto hi = reinterpret_cast<std::uint64_t>(boot_stack_top);
  for (int i = 0; i < 16 && rbp >= lo && rbp + 16 <= hi && (rbp & 7) == 0; ++i) {
    const auto* fp = reinterpret_cast<const std::uint64_t*>(rbp);
    if (fp[1] == 0) break;
    PanicPrint(" ");
    PanicPrintHex(fp[1]);
    if (fp[0] <= rbp) break;
    rbp = fp[0];
  }
  PanicPrint("\n");
}

}  // namespace

// ---- hooks --------------------------------------------------------------------------------------
bool RegisterPanicReporter(const char* name, PanicReporterFn fn, void* arg) noexcept {
  for (auto& r : g_reporters) {
    if (!r.fn) {
      r = {name, fn, arg};
      return true;
    }
  }
  return false;
}
void UnregisterPanicReporter(PanicReporterFn fn, void* arg) noexcept {
  for (auto& r : g_reporters)
    if (r.fn == fn && r.arg == arg) r = {nullptr, nullptr, nullptr};
}

bool RegisterIdlePoller(IdlePollerFn fn, void* arg) noexcept {
  for (auto& p : g_pollers) {
    if (!p.fn) {
      p = {fn, arg};
      return true;
    }
  }
  return false;
}
void UnregisterIdlePoller(IdlePollerFn fn, void* arg) noexcept {
  for (auto& p : g_pollers)
    if (p.fn == fn && p.arg == arg) p = {nullptr, nullptr};
}
void RunIdlePollers() noexcept {
  if (g_in_pollers) return;  // a completion callback that waits must not recurse
  g_in_pollers = true;
  for (auto& p : g_pollers)
    if (p.fn) p.fn(p.arg);
  g_in_pollers = false;
}

void SetVirtToPhys(VirtToPhysFn fn) noexcept { g_virt_to_phys = fn ? fn : &IdentityVirtToPhys; }
std::uint64_t VirtToPhys(const void* virt) noexcept { return g_virt_to_phys(virt); }

void SetPanicPolicy(PanicPolicy p) noexcept { g_panic_policy = p; }
bool PanicPolicyIsHalt() noexcept { return g_panic_policy == PanicPolicy::kHalt; }

[[noreturn]] void Exit(ExitCode code) noexcept {
  arch::Outl(0xF4, static_cast<std::uint32_t>(code));
  // No isa-debug-exit device: stop here.
  for (;;) {
    arch::Cli();
    arch::Hlt();
  }
}

void RandomInit() noexcept {
  g_rng_state ^= arch::Rdtsc() * 0xD6E8FEB86659FD93ull;
  g_rng_state ^= static_cast<std::uint64_t>(BootWallClockSeconds()) * 0xA0761D6478BD642Full;
  SplitMix(g_rng_state);
}

// ---- panic ------------------------------------------------------------------------------------
[[noreturn]] void PanicCommon(const char* file, int line, const char* msg,
                              const ExceptionFrame* frame) noexcept {
  arch::Cli();
  if (g_panicking.fetch_add(1) != 0) {
    // A panic while panicking (e.g. a reporter faulted): stop at once.
    PanicPrint("\nPANIC (nested) - giving up\n");
    Exit(ExitCode::kPanic);
  }
  PanicPrint("\n=============== PermFS kernel panic ===============\n");
  PanicPrint("PANIC at ");
  PanicPrint(file ? file : "?");
  PanicPrint(":");
  PanicPrintDec(static_cast<std::uint64_t>(line));
  PanicPrint(": ");
  PanicPrint(msg ? msg : "(no message)");
  PanicPrint("\n");
  std::uint64_t rbp;
  if (frame) {
    Printf("cpu exception: vector=%lu error_code=0x%lx rip=0x%lx rsp=0x%lx rflags=0x%lx\n",
           frame->vector, frame->error_code, frame->rip, frame->rsp, frame->rflags);
    if (frame->vector == 14) Printf("page fault address (cr2)=0x%lx\n", arch::ReadCr2());
    Printf("rax=0x%lx rbx=0x%lx rcx=0x%lx rdx=0x%lx rsi=0x%lx rdi=0x%lx rbp=0x%lx\n", frame->rax,
           frame->rbx, frame->rcx, frame->rdx, frame->rsi, frame->rdi, frame->rbp);
    rbp = frame->rbp;
  } else {
    rbp = reinterpret_cast<std::uint64_t>(__builtin_frame_address(0));
  }
  PrintBacktrace(rbp);
  const HeapStats h = GetHeapStats();
  Printf("allocator: in_use=%lu peak=%lu live_allocations=%lu total_allocations=%lu failed=%lu "
         "pool=%lu%s\n",
         h.bytes_in_use, h.peak_bytes, h.allocations, h.total_allocs, h.failed_allocs,
         h.pool_bytes, h.os_hooks ? " (os allocator hooks)" : "");
  for (const auto& r : g_reporters) {
    if (!r.fn) continue;
    PanicPrint(r.name ? r.name : "reporter");
    PanicPrint(": ");
    r.fn(r.arg);
    PanicPrint("\n");
  }
  if (g_panic_policy == PanicPolicy::kHalt) {
    PanicPrint("panic policy: halt (CPU stopped)\n");
    for (;;) {
      arch::Cli();
      arch::Hlt();
    }
  }
  PanicPrint("panic policy: exit via isa-debug-exit\n");
  Exit(ExitCode::kPanic);
}

}  // namespace permfs::qemu

// ---- the port contract -------------------------------------------------------------------------
namespace permfs::port {

using qemu::AsCv;
using qemu::AsLock;

void MutexInit(LockStorage* m) noexcept { new (m->bytes) qemu::SpinLock(); }
void MutexDestroy(LockStorage* m) noexcept {
  if (AsLock(m)->IsLocked()) Panic(__FILE__, __LINE__, "destroying a locked mutex");
  AsLock(m)->~SpinLock();
}
void MutexLock(LockStorage* m) noexcept { AsLock(m)->Lock(); }
void MutexUnlock(LockStorage* m) noexcept { AsLock(m)->Unlock(); }
bool MutexTryLock(LockStorage* m) noexcept { return AsLock(m)->TryLock(); }

void CondVarInit(LockStorage* cv) noexcept { new (cv->bytes) qemu::CondVarState(); }
void CondVarDestroy(LockStorage* cv) noexcept { AsCv(cv)->~CondVarState(); }

void CondVarWait(LockStorage* cv, LockStorage* m) noexcept {
  const std::uint64_t gen = AsCv(cv)->generation.load(std::memory_order_acquire);
  MutexUnlock(m);
  for (int i = 0; i < qemu::kWaitRounds; ++i) {
    qemu::RunIdlePollers();
    if (AsCv(cv)->generation.load(std::memory_order_acquire) != gen) break;
    qemu::arch::Pause();
  }
  MutexLock(m);
}

bool CondVarWaitFor(LockStorage* cv, LockStorage* m, std::uint64_t timeout_ns) noexcept {
  const std::uint64_t gen = AsCv(cv)->generation.load(std::memory_order_acquire);
  const std::uint64_t start = MonotonicNanos();
  MutexUnlock(m);
  bool signalled = false;
  for (;;) {
    qemu::RunIdlePollers();
    if (AsCv(cv)->generation.load(std::memory_order_acquire) != gen) {
      signalled = true;
      break;
    }
    if (MonotonicNanos() - start >= timeout_ns) break;
    qemu::arch::Pause();
  }
  MutexLock(m);
  return signalled;
}

void CondVarSignal(LockStorage* cv) noexcept {
  AsCv(cv)->generation.fetch_add(1, std::memory_order_release);
}
void CondVarBroadcast(LockStorage* cv) noexcept {
  AsCv(cv)->generation.fetch_add(1, std::memory_order_release);
}

void Yield() noexcept {
  qemu::RunIdlePollers();
  qemu::arch::Pause();
}

void FillRandom(void* out, std::size_t len) noexcept {
  auto* p = static_cast<std::uint8_t*>(out);
  while (len > 0) {
    std::uint64_t v;
    if (!(qemu::CpuHasRdrand() && qemu::Rdrand64(&v))) {
      qemu::SpinGuard g(&qemu::g_rng_lock);
      qemu::g_rng_state ^= qemu::arch::Rdtsc();
      v = qemu::SplitMix(qemu::g_rng_state);
    }
    const std::size_t n = len < 8 ? len : 8;
    for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
    p += n;
    len -= n;
  }
}

void Log(LogLevel level, const char* msg, std::size_t len) noexcept {
  static const char* const kNames[] = {"debug", "info", "warn", "error"};
  const unsigned l = static_cast<unsigned>(level);
  const std::uint64_t ms = MonotonicNanos() / 1000000;
  qemu::Printf("[%5lu.%03lu %s] ", ms / 1000, ms % 1000, l < 4 ? kNames[l] : "?");
  qemu::SerialWrite(msg, len);
  qemu::SerialWrite("\n", 1);
}

[[noreturn]] void Panic(const char* file, int line, const char* msg) noexcept {
  qemu::PanicCommon(file, line, msg, nullptr);
}

// No SHA-256 instructions are used by this port: the engine's portable code runs.
bool Sha256(const void*, std::size_t, std::uint8_t*) noexcept { return false; }

}  // namespace permfs::port
