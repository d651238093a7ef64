// Kernel entry (after boot.S): console, CPU tables, memory, clock, static constructors, PCI and
// virtio-blk, then the kernel test named on the multiboot command line.
//
// Command line (QEMU -append): `test=NAME [panic=halt|exit] [key=value ...]`.
// `test=list` prints the test table.
#include <cstddef>
#include <cstdint>

#include "arch.h"
#include "internal.h"
#include "kernel.h"
#include "ktest.h"
#include "port/port.h"
#include "virtio_blk.h"

#ifndef PERMFS_QEMU_POOL_MB
#define PERMFS_QEMU_POOL_MB 256
#endif

extern "C" {
extern char __image_start[], __image_end[], __pool_start[];
using InitFn = void (*)();
extern InitFn __init_array_start[], __init_array_end[];
}

namespace permfs::qemu {
namespace {

constexpr std::uint32_t kMultibootBootloaderMagic = 0x2BADB002;
char g_cmdline[1024];

bool StrEq(const char* a, const char* b, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (a[i] != b[i]) return false;
  return true;
}
std::size_t Len(const char* s) {
  std::size_t n = 0;
  while (s[n]) ++n;
  return n;
}

// Finds `key=` as a whole word; copies its value into a small static slot.
const char* FindOption(const char* cmdline, const char* key) {
  static char values[8][128];
  static int next = 0;
  const std::size_t klen = Len(key);
  const char* p = cmdline;
  while (*p) {
    while (*p == ' ') ++p;
    const char* word = p;
    while (*p && *p != ' ') ++p;
    if (static_cast<std::size_t>(p - word) > klen && StrEq(word, key, klen) && word[klen] == '=') {
      char* out = values[next++ & 7];
      std::size_t n = static_cast<std::size_t>(p - word) - klen - 1;
      if (n > 127) n = 127;
      for (std::size_t i = 0; i < n; ++i) out[i] = word[klen + 1 + i];
      out[n] = 0;
      return out;
    }
  }
  return nullptr;
}

bool NameEq(const char* a, const char* b) {
  while (*a && *a == *b) ++a, ++b;
  return *a == *b;
}

}  // namespace

const char* TestContext::Option(const char* key, const char* def) const noexcept {
  const char* v = FindOption(cmdline, key);
  return v ? v : def;
}

std::uint64_t TestContext::OptionU64(const char* key, std::uint64_t def) const noexcept {
  const char* v = FindOption(cmdline, key);
  if (!v || !*v) return def;
  std::uint64_t r = 0;
  for (; *v >= '0' && *v <= '9'; ++v) r = r * 10 + static_cast<std::uint64_t>(*v - '0');
  return r;
}

}  // namespace permfs::qemu

extern "C" [[noreturn]] void permfs_qemu_main(std::uint32_t magic, std::uint64_t info_addr) {
  using namespace permfs::qemu;
  SerialInit();
  CpuInit();
  Printf("\nPermFS reference kernel (qemu-x86_64) booting\n");
  if (magic != kMultibootBootloaderMagic)
    PanicCommon(__FILE__, __LINE__, "not started by a multiboot loader", nullptr);

  // Multiboot info lives right after the image, i.e. inside the heap pool: copy what we need
  // before the allocator takes the pool over.
  const auto* mbi = reinterpret_cast<const std::uint32_t*>(info_addr);
  const std::uint32_t flags = mbi[0];
  std::uint64_t mem_top = 0;
  if (flags & 0x1) mem_top = (1ull << 20) + static_cast<std::uint64_t>(mbi[2]) * 1024;
  if ((flags & 0x4) && mbi[4]) {
    const char* src = reinterpret_cast<const char*>(static_cast<std::uintptr_t>(mbi[4]));
    std::size_t i = 0;
    for (; src[i] && i + 1 < sizeof g_cmdline; ++i) g_cmdline[i] = src[i];
    g_cmdline[i] = 0;
  }

  // The static pool: from the end of the image, PERMFS_QEMU_POOL_MB or what memory allows.
  const auto pool = reinterpret_cast<std::uint64_t>(__pool_start);
  std::uint64_t pool_bytes = static_cast<std::uint64_t>(PERMFS_QEMU_POOL_MB) << 20;
  if (mem_top && pool + pool_bytes > mem_top) {
    if (mem_top < pool + (8ull << 20))
      PanicCommon(__FILE__, __LINE__, "less than 8 MiB of memory after the kernel image", nullptr);
    pool_bytes = mem_top - pool;
  }
  HeapInit(__pool_start, pool_bytes);

  ClockInit();
  RandomInit();
  for (InitFn* f = __init_array_start; f != __init_array_end; ++f) (*f)();

  TestContext ctx;
  ctx.cmdline = g_cmdline;
  const char* policy = ctx.Option("panic");
  if (policy && NameEq(policy, "halt")) SetPanicPolicy(PanicPolicy::kHalt);
  if (policy && NameEq(policy, "exit")) SetPanicPolicy(PanicPolicy::kExit);

  const HeapStats hs = GetHeapStats();
  Printf("cmdline: '%s'\n", g_cmdline);
  Printf("memory: top=%lu MiB, image %p-%p, heap pool %lu MiB at %p\n", mem_top >> 20,
         static_cast<void*>(__image_start), static_cast<void*>(__image_end), hs.pool_bytes >> 20,
         static_cast<void*>(__pool_start));
  Printf("clock: tsc %lu.%03lu MHz, rtc %ld s since epoch; rdrand %s; panic policy %s\n",
         TscHz() / 1000000, (TscHz() / 1000) % 1000, BootWallClockSeconds(),
         CpuHasRdrand() ? "yes" : "no", PanicPolicyIsHalt() ? "halt" : "exit");

  const char* name = ctx.Option("test", "list");
  if (NameEq(name, "list")) {
    Printf("kernel tests:\n");
    for (const KernelTest* t = kKernelTests; t->name; ++t)
      Printf("  %s%s  %s\n", t->name, t->needs_disk ? " (disk)" : "", t->description);
    Printf("PASS list\n");
    Exit(ExitCode::kPass);
  }
  const KernelTest* test = nullptr;
  for (const KernelTest* t = kKernelTests; t->name; ++t)
    if (NameEq(t->name, name)) test = t;
  if (!test) {
    Printf("unknown test '%s' (test=list shows the table)\nFAIL %s\n", name, name);
    Exit(ExitCode::kFail);
  }
  ctx.name = test->name;

  VirtioBlk* disk = nullptr;
  if (test->needs_disk) {
    disk = VirtioBlk::ProbeFirst();
    if (!disk) {
      Printf("no virtio-blk disk found (legacy 1af4:1001 on -machine pc)\nFAIL %s\n", name);
      Exit(ExitCode::kFail);
    }
    disk->PrintInfo();
    ctx.disk = disk;
  }

  // Paint the unused boot stack so the test's peak stack use can be reported.
  {
    char* lo = boot_stack_bottom;
    char* hi = static_cast<char*>(__builtin_frame_address(0)) - 1024;
    for (char* p = lo; p < hi; ++p) *reinterpret_cast<volatile char*>(p) = static_cast<char>(0xA5);
  }
  Printf("RUN %s\n", name);
  const std::uint64_t t0 = permfs::port::MonotonicNanos();
  const bool ok = test->fn(ctx);
  const std::uint64_t ms = (permfs::port::MonotonicNanos() - t0) / 1000000;
  const HeapStats end = GetHeapStats();
  Printf("heap after test: in_use=%lu peak=%lu live_allocations=%lu\n", end.bytes_in_use,
         end.peak_bytes, end.allocations);
  std::uint64_t untouched = 0;
  while (boot_stack_bottom + untouched < boot_stack_top &&
         static_cast<unsigned char>(boot_stack_bottom[untouched]) == 0xA5)
    ++untouched;
  Printf("stack: peak use %lu KiB of %lu KiB\n",
         (static_cast<std::uint64_t>(boot_stack_top - boot_stack_bottom) - untouched) / 1024,
         static_cast<std::uint64_t>(boot_stack_top - boot_stack_bottom) / 1024);
  if (ok) {
    Printf("PASS %s (%lu ms)\n", name, ms);
    Exit(ExitCode::kPass);
  }
  Printf("FAIL %s (%lu ms)\n", name, ms);
  Exit(ExitCode::kFail);
}
