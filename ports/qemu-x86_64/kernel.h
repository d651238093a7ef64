// The reference kernel's own API: the hooks an OS (or the kernel tests) uses on top of the port
// contract in src/port/port.h. Everything here is specific to ports/qemu-x86_64; the engine core
// never includes this header.
#pragma once

#include <cstddef>
#include <cstdint>

namespace permfs::qemu {

// ---- Exit codes (isa-debug-exit at port 0xf4: QEMU exits with (value << 1) | 1) ------------
enum class ExitCode : std::uint32_t {
  kPass = 0x10,   // QEMU status 33: the test passed
  kFail = 0x11,   // QEMU status 35: the test returned failure
  kPanic = 0x12,  // QEMU status 37: port::Panic or a CPU exception
};
inline constexpr int QemuStatus(ExitCode c) { return (static_cast<int>(c) << 1) | 1; }
// Leaves QEMU through isa-debug-exit; halts forever if the device is absent.
[[noreturn]] void Exit(ExitCode code) noexcept;

// ---- Panic policy and reporters ------------------------------------------------------------
enum class PanicPolicy : std::uint8_t { kExit = 0, kHalt = 1 };
// Default: PERMFS_QEMU_PANIC_HALT at compile time (-DPERMFS_QEMU_PANIC_HALT=1 -> halt), and the
// boot command line option panic=halt|exit overrides it.
void SetPanicPolicy(PanicPolicy p) noexcept;

// A panic reporter prints one part of the engine state when the kernel panics. It runs on the
// panic path: it must not allocate, must not take locks that may be held (use try-locks or read
// racy counters) and must print only through PanicPrint*. Up to kMaxPanicReporters.
using PanicReporterFn = void (*)(void* arg);
inline constexpr int kMaxPanicReporters = 8;
// Returns false if the table is full.
bool RegisterPanicReporter(const char* name, PanicReporterFn fn, void* arg) noexcept;
void UnregisterPanicReporter(PanicReporterFn fn, void* arg) noexcept;
// Allocation-free printing for panic reporters (also usable anywhere, goes straight to COM1).
void PanicPrint(const char* s) noexcept;
void PanicPrintDec(std::uint64_t v) noexcept;
void PanicPrintHex(std::uint64_t v) noexcept;

// ---- Idle pollers ---------------------------------------------------------------------------
// With no interrupts and a single CPU, "waiting" means running the pollers: CondVarWait and the
// idle loop call every registered poller (e.g. the virtio-blk driver's completion poll), so a
// condition that a device completion will make true does become true while someone waits.
// A poller must not block and must tolerate being called with arbitrary engine locks held (the
// virtio driver uses a try-lock). Up to kMaxIdlePollers.
using IdlePollerFn = void (*)(void* arg);
inline constexpr int kMaxIdlePollers = 8;
bool RegisterIdlePoller(IdlePollerFn fn, void* arg) noexcept;
void UnregisterIdlePoller(IdlePollerFn fn, void* arg) noexcept;
void RunIdlePollers() noexcept;

// ---- DMA address translation -----------------------------------------------------------------
// Returns the bus/physical address of the byte at `virt`, valid up to the end of its 4 KiB page.
// This kernel is identity-mapped (virtual == physical); an OS with real paging installs its own
// translation with SetVirtToPhys. Drivers call VirtToPhys per page and never assume contiguity.
using VirtToPhysFn = std::uint64_t (*)(const void* virt);
void SetVirtToPhys(VirtToPhysFn fn) noexcept;
std::uint64_t VirtToPhys(const void* virt) noexcept;

// ---- Allocator -------------------------------------------------------------------------------
// Byte counts are buddy-block bytes (each allocation is rounded up to a power of two, at least
// 32 bytes and at least its alignment), so they are exact for every free, sized or not.
struct HeapStats {
  std::uint64_t pool_bytes = 0;      // bytes the buddy arena manages
  std::uint64_t bytes_in_use = 0;    // bytes of live blocks
  std::uint64_t peak_bytes = 0;      // high-water mark of bytes_in_use
  std::uint64_t allocations = 0;     // live allocation count
  std::uint64_t total_allocs = 0;    // successful allocations since boot
  std::uint64_t failed_allocs = 0;   // allocations that returned nullptr (pool exhausted)
  bool os_hooks = false;             // an OS allocator is plugged in (stats then stay zero)
};
// Hands the pool to the built-in buddy allocator (once, at boot).
void HeapInit(void* base, std::size_t bytes) noexcept;
HeapStats GetHeapStats() noexcept;
// Plug an OS allocator instead of the built-in pool: once set (before the first allocation),
// port::Allocate/Deallocate and every operator new/delete forward to these.
struct AllocatorHooks {
  void* (*allocate)(std::size_t bytes, std::size_t align, void* ctx) = nullptr;
  void (*deallocate)(void* p, std::size_t bytes, std::size_t align, void* ctx) = nullptr;
  void* ctx = nullptr;
};
void SetAllocatorHooks(const AllocatorHooks& hooks) noexcept;
// Size of the allocation at p as known to the allocator (block size), 0 if unknown.
std::size_t HeapBlockSize(const void* p) noexcept;
// Restarts the high-water mark at the current use (to measure the peak of one phase).
void ResetHeapPeak() noexcept;
// What the engine asks port::Allocate for (not operator new): each distinct (bytes, align) pair
// with its call count (the first kMaxAllocShapes pairs; `other` counts calls beyond them).
struct AllocShape {
  std::uint64_t bytes = 0;
  std::uint64_t align = 0;
  std::uint64_t calls = 0;
};
inline constexpr int kMaxAllocShapes = 16;
struct PortAllocProfile {
  AllocShape shapes[kMaxAllocShapes];
  int nshapes = 0;
  std::uint64_t other = 0;
};
PortAllocProfile GetPortAllocProfile() noexcept;

// ---- Time --------------------------------------------------------------------------------------
void ClockInit() noexcept;               // calibrate the TSC against the PIT, read the CMOS RTC
std::uint64_t TscHz() noexcept;
std::int64_t BootWallClockSeconds() noexcept;  // RTC at boot, seconds since the Unix epoch

// ---- CPU ---------------------------------------------------------------------------------------
void CpuInit() noexcept;                 // TSS, IDT, PIC masked, XSAVE/AVX if present
bool CpuHasRdrand() noexcept;

// ---- Console ------------------------------------------------------------------------------------
void SerialInit() noexcept;
void SerialWrite(const char* s, std::size_t n) noexcept;
// printf-like, allocation-free: %s %d %u %x %lu %ld %lx %llu %lld %llx %zu %p %c %%, width and
// zero-padding for numbers (e.g. %08x). Truncates lines at 512 characters.
void Printf(const char* fmt, ...) noexcept __attribute__((format(printf, 1, 2)));

}  // namespace permfs::qemu
