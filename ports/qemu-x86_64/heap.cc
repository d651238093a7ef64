// The kernel's global allocator: a binary buddy allocator over one static pool.
//
// Why buddy: O(log n) allocate/free, alignment for free (a block of 2^k bytes is 2^k-aligned
// relative to the 2 MiB-aligned arena, so any power-of-two alignment is just a size round-up),
// exact coalescing, and no per-allocation header, so unsized operator delete works: a byte map
// (1 byte per 32-byte unit, carved from the front of the pool) records the order of every block
// start and whether it is free. Cost: internal fragmentation up to 2x for odd sizes.
//
// Every free is checked: freeing a pointer that is not a live block start, or a sized free whose
// size/alignment maps to a different block order, panics (catches double frees and mismatched
// sizes). Thread-safety: one spinlock. An OS replaces all of this with SetAllocatorHooks().
#include <cstddef>
#include <cstdint>

#include "internal.h"
#include "kernel.h"
#include "port/port.h"
#include "spinlock.h"

namespace permfs::qemu {
namespace {

constexpr unsigned kMinOrder = 5;   // 32-byte units
constexpr unsigned kMaxOrder = 30;  // 1 GiB blocks at most
constexpr std::uint8_t kFreeBit = 0x80;

struct FreeNode {
  FreeNode* next;
  FreeNode* prev;
};

struct Heap {
  SpinLock lock;
  std::uint8_t* map = nullptr;   // one byte per unit: 0 = not a block start, else order-kMinOrder+1 (| kFreeBit)
  std::uint8_t* arena = nullptr;
  std::uint64_t arena_bytes = 0;
  FreeNode* free_list[kMaxOrder + 1] = {};
  HeapStats stats;
  AllocatorHooks hooks;
  bool hooks_set = false;
  PortAllocProfile profile;  // under `lock`
};
Heap g_heap;

void ProfilePortAllocate(std::size_t bytes, std::size_t align) {
  SpinGuard g(&g_heap.lock);
  PortAllocProfile& p = g_heap.profile;
  for (int i = 0; i < p.nshapes; ++i)
    if (p.shapes[i].bytes == bytes && p.shapes[i].align == align) {
      ++p.shapes[i].calls;
      return;
    }
  if (p.nshapes == kMaxAllocShapes) {
    ++p.other;
    return;
  }
  p.shapes[p.nshapes++] = AllocShape{bytes, align, 1};
}

unsigned OrderFor(std::size_t bytes, std::size_t align) {
  std::size_t need = bytes ? bytes : 1;
  if (align > need) need = align;
  unsigned k = kMinOrder;
  while ((std::size_t{1} << k) < need) {
    if (++k > kMaxOrder) return kMaxOrder + 1;
  }
  return k;
}

std::uint8_t& MapAt(std::uint64_t off) { return g_heap.map[off >> kMinOrder]; }

void PushFree(std::uint64_t off, unsigned k) {
  auto* n = reinterpret_cast<FreeNode*>(g_heap.arena + off);
  n->prev = nullptr;
  n->next = g_heap.free_list[k];
  if (n->next) n->next->prev = n;
  g_heap.free_list[k] = n;
  MapAt(off) = static_cast<std::uint8_t>((k - kMinOrder + 1) | kFreeBit);
}

void RemoveFree(std::uint64_t off, unsigned k) {
  auto* n = reinterpret_cast<FreeNode*>(g_heap.arena + off);
  if (n->prev) n->prev->next = n->next;
  else g_heap.free_list[k] = n->next;
  if (n->next) n->next->prev = n->prev;
  MapAt(off) = 0;
}

void* BuddyAlloc(std::size_t bytes, std::size_t align) {
  const unsigned want = OrderFor(bytes, align);
  SpinGuard g(&g_heap.lock);
  unsigned k = want;
  while (k <= kMaxOrder && !g_heap.free_list[k]) ++k;
  if (k > kMaxOrder) {
    ++g_heap.stats.failed_allocs;
    return nullptr;
  }
  const std::uint64_t off =
      static_cast<std::uint64_t>(reinterpret_cast<std::uint8_t*>(g_heap.free_list[k]) - g_heap.arena);
  RemoveFree(off, k);
  while (k > want) {  // split, keep the lower half
    --k;
    PushFree(off + (std::uint64_t{1} << k), k);
  }
  MapAt(off) = static_cast<std::uint8_t>(want - kMinOrder + 1);
  HeapStats& s = g_heap.stats;
  s.bytes_in_use += std::uint64_t{1} << want;
  if (s.bytes_in_use > s.peak_bytes) s.peak_bytes = s.bytes_in_use;
  ++s.allocations;
  ++s.total_allocs;
  return g_heap.arena + off;
}

// expect_order == 0: unsized free.
void BuddyFree(void* p, unsigned expect_order) {
  auto* b = static_cast<std::uint8_t*>(p);
  if (b < g_heap.arena || b >= g_heap.arena + g_heap.arena_bytes)
    PanicCommon(__FILE__, __LINE__, "free of a pointer outside the heap", nullptr);
  std::uint64_t off = static_cast<std::uint64_t>(b - g_heap.arena);
  SpinGuard g(&g_heap.lock);
  const std::uint8_t m = (off & ((1u << kMinOrder) - 1)) ? 0 : MapAt(off);
  if (m == 0 || (m & kFreeBit))
    PanicCommon(__FILE__, __LINE__, "free of a pointer that is not a live allocation (double free?)",
                nullptr);
  unsigned k = m - 1 + kMinOrder;
  if (expect_order && expect_order != k)
    PanicCommon(__FILE__, __LINE__, "sized free does not match the allocation's size/alignment",
                nullptr);
  HeapStats& s = g_heap.stats;
  s.bytes_in_use -= std::uint64_t{1} << k;
  --s.allocations;
  MapAt(off) = 0;
  while (k < kMaxOrder) {
    const std::uint64_t buddy = off ^ (std::uint64_t{1} << k);
    if (buddy + (std::uint64_t{1} << k) > g_heap.arena_bytes) break;
    if (MapAt(buddy) != static_cast<std::uint8_t>((k - kMinOrder + 1) | kFreeBit)) break;
    RemoveFree(buddy, k);
    if (buddy < off) off = buddy;
    ++k;
  }
  PushFree(off, k);
}

}  // namespace

void HeapInit(void* base, std::size_t bytes) noexcept {
  auto start = reinterpret_cast<std::uintptr_t>(base);
  const std::uintptr_t end = start + bytes;
  // Map for the worst case (whole pool), then the arena from the next 2 MiB boundary.
  const std::uint64_t units = bytes >> kMinOrder;
  g_heap.map = reinterpret_cast<std::uint8_t*>(start);
  std::uintptr_t arena = (start + units + (2u << 20) - 1) & ~std::uintptr_t{(2u << 20) - 1};
  if (arena >= end) PanicCommon(__FILE__, __LINE__, "heap pool too small", nullptr);
  g_heap.arena = reinterpret_cast<std::uint8_t*>(arena);
  g_heap.arena_bytes = (end - arena) & ~std::uint64_t{(1u << kMinOrder) - 1};
  for (std::uint64_t i = 0; i < (g_heap.arena_bytes >> kMinOrder); ++i) g_heap.map[i] = 0;
  // Seed: the largest aligned power-of-two blocks that fit.
  std::uint64_t off = 0;
  while (off + (1u << kMinOrder) <= g_heap.arena_bytes) {
    unsigned k = kMaxOrder;
    while (k > kMinOrder && ((off & ((std::uint64_t{1} << k) - 1)) ||
                             off + (std::uint64_t{1} << k) > g_heap.arena_bytes))
      --k;
    PushFree(off, k);
    off += std::uint64_t{1} << k;
  }
  g_heap.stats.pool_bytes = g_heap.arena_bytes;
}

HeapStats GetHeapStats() noexcept {
  HeapStats s = g_heap.stats;  // racy snapshot by design: also used on the panic path
  s.os_hooks = g_heap.hooks_set;
  return s;
}

void SetAllocatorHooks(const AllocatorHooks& hooks) noexcept {
  if (g_heap.stats.total_allocs != 0)
    PanicCommon(__FILE__, __LINE__, "SetAllocatorHooks after the first allocation", nullptr);
  g_heap.hooks = hooks;
  g_heap.hooks_set = hooks.allocate != nullptr && hooks.deallocate != nullptr;
}

void ResetHeapPeak() noexcept {
  SpinGuard g(&g_heap.lock);
  g_heap.stats.peak_bytes = g_heap.stats.bytes_in_use;
}

PortAllocProfile GetPortAllocProfile() noexcept {
  SpinGuard g(&g_heap.lock);
  return g_heap.profile;
}

std::size_t HeapBlockSize(const void* p) noexcept {
  auto* b = static_cast<const std::uint8_t*>(p);
  if (g_heap.hooks_set || b < g_heap.arena || b >= g_heap.arena + g_heap.arena_bytes) return 0;
  const std::uint64_t off = static_cast<std::uint64_t>(b - g_heap.arena);
  if (off & ((1u << kMinOrder) - 1)) return 0;
  const std::uint8_t m = MapAt(off);
  if (m == 0 || (m & kFreeBit)) return 0;
  return std::size_t{1} << (m - 1 + kMinOrder);
}

// Used by operator new/delete (cxxrt.cc): unsized frees pass bytes == 0 and align == 0.
void* HeapAllocate(std::size_t bytes, std::size_t align) noexcept {
  if (g_heap.hooks_set) return g_heap.hooks.allocate(bytes, align, g_heap.hooks.ctx);
  if (!g_heap.arena) return nullptr;
  return BuddyAlloc(bytes, align);
}

void HeapFree(void* p, std::size_t bytes, std::size_t align, bool sized) noexcept {
  if (!p) return;
  if (g_heap.hooks_set) {
    g_heap.hooks.deallocate(p, bytes, align, g_heap.hooks.ctx);
    return;
  }
  BuddyFree(p, sized ? OrderFor(bytes, align) : 0);
}

}  // namespace permfs::qemu

namespace permfs::port {

void* Allocate(std::size_t bytes, std::size_t align) noexcept {
  qemu::ProfilePortAllocate(bytes, align);
  return qemu::HeapAllocate(bytes, align);
}

void Deallocate(void* ptr, std::size_t bytes, std::size_t align) noexcept {
  qemu::HeapFree(ptr, bytes, align, true);
}

}  // namespace permfs::port
