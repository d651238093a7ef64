// Kernel tests of the port itself: C++ runtime, allocator, locks, clock, randomness, and the
// panic path (port::Panic and CPU exceptions).
#include <cstdint>
#include <new>
#include <string>
#include <vector>

#include "ktest.h"
#include "port/port.h"
#include "util/assert.h"
#include "util/bytes.h"
#include "util/log.h"
#include "util/status.h"
#include "util/sync.h"

namespace permfs::qemu {
namespace {

// Static constructor: proves main.cc ran .init_array.
struct StaticInit {
  StaticInit() : magic(0x5157) {}
  int magic;
};
StaticInit g_static_init;

int LocalStaticCount() {
  static int calls_at_init = [] { return 7; }();
  return calls_at_init;
}

struct alignas(256) OverAligned {
  std::uint8_t bytes[300];
};

void TestReporter(void* arg) {
  Printf("journal_seq=%lu (test reporter)", *static_cast<std::uint64_t*>(arg));
}
std::uint64_t g_fake_journal_seq = 42;

}  // namespace

bool TestRuntime(TestContext&) {
  KCHECK(g_static_init.magic == 0x5157);
  KCHECK(LocalStaticCount() == 7);

  // ---- allocator ----
  const HeapStats base = GetHeapStats();
  KCHECK(base.pool_bytes >= (8u << 20));
  void* ptrs[64];
  for (int i = 0; i < 64; ++i) {
    const std::size_t align = std::size_t{1} << (i % 13);  // 1 .. 4096
    const std::size_t bytes = 1 + static_cast<std::size_t>(i) * 977;
    ptrs[i] = port::Allocate(bytes, align);
    KCHECK(ptrs[i] != nullptr);
    KCHECK((reinterpret_cast<std::uintptr_t>(ptrs[i]) & (align - 1)) == 0);
    KCHECK(HeapBlockSize(ptrs[i]) >= bytes);
    for (std::size_t b = 0; b < bytes; ++b) static_cast<std::uint8_t*>(ptrs[i])[b] = static_cast<std::uint8_t>(i);
  }
  for (int i = 0; i < 64; ++i) {
    const std::size_t bytes = 1 + static_cast<std::size_t>(i) * 977;
    const auto* p = static_cast<const std::uint8_t*>(ptrs[i]);
    KCHECK(p[0] == static_cast<std::uint8_t>(i) && p[bytes - 1] == static_cast<std::uint8_t>(i));
  }
  KCHECK(GetHeapStats().allocations == base.allocations + 64);
  for (int i = 63; i >= 0; --i)
    port::Deallocate(ptrs[i], 1 + static_cast<std::size_t>(i) * 977, std::size_t{1} << (i % 13));
  KCHECK(GetHeapStats().bytes_in_use == base.bytes_in_use);
  KCHECK(port::Allocate(std::size_t{1} << 40, 16) == nullptr);  // exhausted -> nullptr
  KCHECK(GetHeapStats().failed_allocs == base.failed_allocs + 1);
  // Coalescing: a block of half the pool is still available after churn.
  void* big = port::Allocate(base.pool_bytes / 4, 4096);
  KCHECK(big != nullptr);
  port::Deallocate(big, base.pool_bytes / 4, 4096);

  // ---- operator new / delete, all forms ----
  int* one = new int(5);
  int* arr = new int[100];
  auto* al = new OverAligned;
  auto* al_arr = new OverAligned[3];
  int* nt = new (std::nothrow) int(6);
  KCHECK((reinterpret_cast<std::uintptr_t>(al) & 255) == 0);
  KCHECK((reinterpret_cast<std::uintptr_t>(al_arr) & 255) == 0);
  KCHECK(*one == 5 && *nt == 6);
  void* raw = ::operator new(100, std::align_val_t{64}, std::nothrow);
  KCHECK((reinterpret_cast<std::uintptr_t>(raw) & 63) == 0);
#if defined(__cpp_sized_deallocation)
  ::operator delete(raw, 100, std::align_val_t{64});
#else
  ::operator delete(raw, std::align_val_t{64});  // clang without -fsized-deallocation
#endif
  delete one;
  delete[] arr;
  delete al;
  delete[] al_arr;
  delete nt;
  KCHECK(GetHeapStats().bytes_in_use == base.bytes_in_use);

  // ---- std::vector / std::string on the kernel allocator ----
  {
    std::vector<std::uint64_t> v;
    for (std::uint64_t i = 0; i < 20000; ++i) v.push_back(i * i);
    std::uint64_t sum = 0;
    for (auto x : v) sum += x;
    KCHECK(sum == 2666466670000ull);
    std::string s = "permfs";
    for (int i = 0; i < 10; ++i) s += "-kernel";
    KCHECK(s.size() == 6 + 70);
    KCHECK(s.substr(0, 6) == "permfs");
  }
  KCHECK(GetHeapStats().bytes_in_use == base.bytes_in_use);

  // ---- locks ----
  Mutex mu;
  {
    MutexLock l(&mu);
    KCHECK(!mu.TryLock());
  }
  KCHECK(mu.TryLock());
  mu.Unlock();
  CondVar cv(&mu);
  mu.Lock();
  const std::uint64_t w0 = port::MonotonicNanos();
  const bool signalled = cv.WaitFor(2000000);  // 2 ms, nobody signals
  const std::uint64_t waited = port::MonotonicNanos() - w0;
  mu.Unlock();
  KCHECK(!signalled);
  KCHECK(waited >= 2000000);
  cv.Signal();

  // ---- time ----
  const std::uint64_t t0 = port::MonotonicNanos();
  std::uint64_t prev = t0;
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t t = port::MonotonicNanos();
    KCHECK(t >= prev);
    prev = t;
  }
  KCHECK(prev > t0);
  const std::int64_t wall = port::WallClockNanos();
  KCHECK(wall > 1577836800ll * 1000000000ll);  // after 2020-01-01
  Printf("wall clock: %ld s since epoch\n", wall / 1000000000);

  // ---- randomness ----
  std::uint8_t r1[32] = {}, r2[32] = {};
  port::FillRandom(r1, sizeof r1);
  port::FillRandom(r2, sizeof r2);
  KCHECK(CompareBytes(r1, r2, sizeof r1) != 0);
  KCHECK(!IsAllZero(r1, sizeof r1));

  // ---- engine logging, Status ----
  PERMFS_LOG(kInfo, "engine log through port::Log: ", 42, " ", true);
  KCHECK(Status::NoSpace().ToErrno() == 28);
  return true;
}

bool TestPanic(TestContext& ctx) {
  // Engine state the report must show: a live allocation and an I/O in flight.
  void* leak = port::Allocate(12345, 64);
  KCHECK(leak != nullptr);
  static std::uint8_t buf[4096];
  static block::Request req;
  req.op = block::Op::kRead;
  req.lba = 0;
  req.count = 1;
  req.data = buf;
  req.on_complete = [](block::Request*, Status) {};
  ctx.disk->Submit(&req);  // never polled: stays in flight
  KCHECK(RegisterPanicReporter("journal", &TestReporter, &g_fake_journal_seq));
  PERMFS_PANIC("deliberate panic for qemu_panic");
}

bool TestFault(TestContext&) {
  // 4 GiB is just past the identity map: a read there page-faults.
  volatile std::uint64_t* bad = reinterpret_cast<volatile std::uint64_t*>(0x100000000ull);
  Printf("reading %p to provoke a page fault\n", const_cast<std::uint64_t*>(bad));
  const std::uint64_t v = *bad;
  Printf("read returned %lu: no fault?\n", v);
  return false;
}

}  // namespace permfs::qemu
