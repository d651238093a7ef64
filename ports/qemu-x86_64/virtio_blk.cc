#include "virtio_blk.h"

#include <cstddef>
#include <cstdint>
#include <new>

#include "arch.h"
#include "kernel.h"
#include "port/port.h"

namespace permfs::qemu {

using block::Op;
using block::Request;

namespace {

// Legacy virtio PCI register offsets in BAR0 (I/O space), MSI-X off.
constexpr std::uint16_t kRegHostFeatures = 0x00;
constexpr std::uint16_t kRegGuestFeatures = 0x04;
constexpr std::uint16_t kRegQueuePfn = 0x08;
constexpr std::uint16_t kRegQueueSize = 0x0C;
constexpr std::uint16_t kRegQueueSelect = 0x0E;
constexpr std::uint16_t kRegQueueNotify = 0x10;
constexpr std::uint16_t kRegStatus = 0x12;
constexpr std::uint16_t kRegConfig = 0x14;

constexpr std::uint8_t kStatusAck = 1, kStatusDriver = 2, kStatusDriverOk = 4, kStatusFailed = 128;

// Feature bits (virtio-blk, low 32).
constexpr std::uint32_t kFSizeMax = 1u << 1;
constexpr std::uint32_t kFSegMax = 1u << 2;
constexpr std::uint32_t kFRo = 1u << 5;
constexpr std::uint32_t kFBlkSize = 1u << 6;
constexpr std::uint32_t kFFlush = 1u << 9;
constexpr std::uint32_t kFTopology = 1u << 10;
constexpr std::uint32_t kFDiscard = 1u << 13;
constexpr std::uint32_t kFWriteZeroes = 1u << 14;

// Device config offsets (struct virtio_blk_config).
constexpr std::uint16_t kCfgCapacity = 0;
constexpr std::uint16_t kCfgSizeMax = 8;
constexpr std::uint16_t kCfgSegMax = 12;
constexpr std::uint16_t kCfgBlkSize = 20;
constexpr std::uint16_t kCfgPhysExp = 24;
constexpr std::uint16_t kCfgMaxDiscardSectors = 36;
constexpr std::uint16_t kCfgMaxWriteZeroesSectors = 48;

// Request types and status values.
constexpr std::uint32_t kTIn = 0, kTOut = 1, kTFlush = 4, kTDiscard = 11, kTWriteZeroes = 13;
constexpr std::uint8_t kSOk = 0, kSUnsupp = 2;

constexpr std::uint16_t kDescNext = 1, kDescWrite = 2;
constexpr std::uint16_t kAvailNoInterrupt = 1;
constexpr std::uint16_t kUsedNoNotify = 1;
constexpr std::uint32_t kMaxSlots = 128;
constexpr std::uint32_t kPage = 4096;

VirtioBlk* g_disks[VirtioBlk::kMaxDisks];
int g_ndisks = -1;

std::uint64_t AlignUp(std::uint64_t v, std::uint64_t a) { return (v + a - 1) & ~(a - 1); }

}  // namespace

struct VirtioBlk::Desc {
  std::uint64_t addr;
  std::uint32_t len;
  std::uint16_t flags;
  std::uint16_t next;
};

// Per-slot DMA area (device-visible) and bookkeeping. One slot = one Request in progress.
struct VirtioBlk::Slot {
  struct Dma {
    std::uint32_t type;
    std::uint32_t reserved;
    std::uint64_t sector;
    // discard / write-zeroes range (struct virtio_blk_discard_write_zeroes)
    std::uint64_t range_sector;
    std::uint32_t range_sectors;
    std::uint32_t range_flags;
    std::uint8_t status;
  };
  Dma* dma = nullptr;
  Request* req = nullptr;
  Slot* next_free = nullptr;
  std::uint64_t cur_lba = 0;     // next block to transfer
  std::uint32_t left = 0;        // blocks still to transfer
  std::uint32_t last_blocks = 0; // blocks in the device request in flight
  std::uint64_t data_off = 0;    // byte offset into req->data of cur_lba
  bool fua_flush = false;        // the in-flight device request is the FUA follow-up flush
  std::uint16_t head = 0;
};

// ---- probe and init ----------------------------------------------------------------------------
int VirtioBlk::ProbeAll() noexcept {
  if (g_ndisks >= 0) return g_ndisks;
  g_ndisks = 0;
  pci::Scan(
      [](pci::Address a, std::uint16_t vendor, std::uint16_t device, void*) -> bool {
        if (vendor != 0x1AF4) return false;
        if (device == 0x1042) {
          Printf("virtio-blk: %02x:%02x.%u is modern-only (1af4:1042), skipped: this driver "
                 "speaks the legacy interface (use disable-legacy=off)\n",
                 a.bus, a.dev, a.fn);
          return false;
        }
        if (device != 0x1001) return false;
        const pci::Bar bar = pci::ReadBar(a, 0);
        if (!bar.present || !bar.io) {
          Printf("virtio-blk: %02x:%02x.%u has no I/O BAR0\n", a.bus, a.dev, a.fn);
          return false;
        }
        auto* d = new (std::nothrow) VirtioBlk(a, static_cast<std::uint16_t>(bar.base));
        if (!d) return true;
        if (!d->Init()) {
          delete d;
          return false;
        }
        g_disks[g_ndisks++] = d;
        return g_ndisks == kMaxDisks;
      },
      nullptr);
  return g_ndisks;
}

VirtioBlk* VirtioBlk::Disk(int index) noexcept {
  return (index >= 0 && index < g_ndisks) ? g_disks[index] : nullptr;
}

VirtioBlk::VirtioBlk(pci::Address addr, std::uint16_t io) noexcept : addr_(addr), io_(io) {}

bool VirtioBlk::Init() noexcept {
  pci::EnableDevice(addr_, /*intx=*/false);
  auto cfg8 = [&](std::uint16_t off) { return arch::Inb(static_cast<std::uint16_t>(io_ + kRegConfig + off)); };
  auto cfg32 = [&](std::uint16_t off) { return arch::Inl(static_cast<std::uint16_t>(io_ + kRegConfig + off)); };

  arch::Outb(io_ + kRegStatus, 0);  // reset
  arch::Outb(io_ + kRegStatus, kStatusAck);
  arch::Outb(io_ + kRegStatus, kStatusAck | kStatusDriver);
  host_features_ = arch::Inl(io_ + kRegHostFeatures);
  guest_features_ = host_features_ & (kFSizeMax | kFSegMax | kFRo | kFBlkSize | kFFlush |
                                      kFTopology | kFDiscard | kFWriteZeroes);
  arch::Outl(io_ + kRegGuestFeatures, guest_features_);
  auto fail = [&](const char* why) {
    Printf("virtio-blk: init failed: %s\n", why);
    arch::Outb(io_ + kRegStatus, kStatusFailed);
    return false;
  };

  // Geometry.
  const std::uint64_t capacity =
      static_cast<std::uint64_t>(cfg32(kCfgCapacity)) | (static_cast<std::uint64_t>(cfg32(kCfgCapacity + 4)) << 32);
  std::uint32_t blk_size = (guest_features_ & kFBlkSize) ? cfg32(kCfgBlkSize) : 512;
  if (blk_size < 512 || blk_size > 65536 || (blk_size & (blk_size - 1))) blk_size = 512;
  std::uint32_t phys = blk_size;
  if (guest_features_ & kFTopology) {
    const std::uint8_t exp = cfg8(kCfgPhysExp);
    if (exp < 8) phys = blk_size << exp;
  }
  const std::uint32_t bs = blk_size > kPage ? blk_size : kPage;
  sectors_per_block_ = bs / 512;
  geo_.block_size = bs;
  geo_.physical_block_size = phys > bs ? phys : bs;
  geo_.block_count = capacity / sectors_per_block_;
  geo_.atomic_write_blocks = 1;
  geo_.buffer_alignment = 1;  // any alignment works: segments are split at page boundaries
  if (geo_.block_count == 0) return fail("capacity below one logical block");
  if (guest_features_ & kFSizeMax) size_max_ = cfg32(kCfgSizeMax);
  if (size_max_ != 0 && size_max_ < kPage) size_max_ = 0;  // nonsense value: ignore
  caps_.volatile_cache = (guest_features_ & kFFlush) != 0;
  caps_.fua = false;
  caps_.discard = (guest_features_ & kFDiscard) != 0;
  caps_.write_zeroes = (guest_features_ & kFWriteZeroes) != 0;
  caps_.read_only = (guest_features_ & kFRo) != 0;
  caps_.polled = true;
  if (caps_.discard) max_discard_sectors_ = cfg32(kCfgMaxDiscardSectors);
  if (caps_.write_zeroes) max_write_zeroes_sectors_ = cfg32(kCfgMaxWriteZeroesSectors);
  if (max_discard_sectors_ == 0) max_discard_sectors_ = 1u << 22;
  if (max_write_zeroes_sectors_ == 0) max_write_zeroes_sectors_ = 1u << 22;

  // Virtqueue 0.
  arch::Outw(io_ + kRegQueueSelect, 0);
  qsz_ = arch::Inw(io_ + kRegQueueSize);
  if (qsz_ < 4) return fail("queue 0 missing or too small");
  const std::uint64_t desc_bytes = 16ull * qsz_;
  const std::uint64_t avail_bytes = 6 + 2ull * qsz_;
  const std::uint64_t used_off = AlignUp(desc_bytes + avail_bytes, kPage);
  const std::uint64_t ring_bytes = used_off + AlignUp(6 + 8ull * qsz_, kPage);
  auto* ring = static_cast<std::uint8_t*>(port::Allocate(ring_bytes, kPage));
  if (!ring) return fail("no memory for the virtqueue");
  for (std::uint64_t i = 0; i < ring_bytes; ++i) ring[i] = 0;
  const std::uint64_t ring_phys = VirtToPhys(ring);
  for (std::uint64_t off = kPage; off < ring_bytes; off += kPage)
    if (VirtToPhys(ring + off) != ring_phys + off)
      return fail("virtqueue memory is not physically contiguous");
  if ((ring_phys >> 12) >> 32) return fail("virtqueue above the 44-bit legacy PFN limit");
  desc_ = reinterpret_cast<Desc*>(ring);
  avail_ = reinterpret_cast<volatile std::uint16_t*>(ring + desc_bytes);
  used_ = ring + used_off;
  for (std::uint16_t i = 0; i < qsz_; ++i) desc_[i].next = static_cast<std::uint16_t>(i + 1);
  free_head_ = 0;
  num_free_ = qsz_;
  avail_[0] = kAvailNoInterrupt;  // polled driver: no used-buffer interrupts

  // Data segments per device request: what the device accepts and the ring can hold
  // (header + status + data <= queue size).
  seg_limit_ = qsz_ - 2u;
  if (guest_features_ & kFSegMax) {
    const std::uint32_t seg_max = cfg32(kCfgSegMax);
    if (seg_max >= 1 && seg_max < seg_limit_) seg_limit_ = seg_max;
  }
  geo_.max_transfer_blocks = 1024;  // 4 MiB; larger transfers are split inside one request

  // Slots and their DMA areas.
  nslots_ = qsz_ / 3u;
  if (nslots_ > kMaxSlots) nslots_ = kMaxSlots;
  geo_.queue_depth = nslots_;
  slots_ = new (std::nothrow) Slot[nslots_];
  head_to_slot_ = new (std::nothrow) Slot*[qsz_];
  const std::size_t dma_stride = AlignUp(sizeof(Slot::Dma), 64);
  auto* dma = static_cast<std::uint8_t*>(port::Allocate(dma_stride * nslots_, kPage));
  zero_blocks_ = 16;
  zero_buf_ = static_cast<std::uint8_t*>(port::Allocate(std::size_t{zero_blocks_} * bs, kPage));
  if (!slots_ || !head_to_slot_ || !dma || !zero_buf_) return fail("no memory for request slots");
  for (std::size_t i = 0; i < std::size_t{zero_blocks_} * bs; ++i) zero_buf_[i] = 0;
  for (std::uint32_t i = 0; i < nslots_; ++i) {
    slots_[i].dma = reinterpret_cast<Slot::Dma*>(dma + i * dma_stride);
    slots_[i].next_free = i + 1 < nslots_ ? &slots_[i + 1] : nullptr;
  }
  free_slots_ = &slots_[0];

  arch::Outl(io_ + kRegQueuePfn, static_cast<std::uint32_t>(ring_phys >> 12));
  arch::Outb(io_ + kRegStatus, kStatusAck | kStatusDriver | kStatusDriverOk);
  if (arch::Inb(io_ + kRegStatus) & kStatusFailed) return fail("device refused DRIVER_OK");

  RegisterIdlePoller(&VirtioBlk::IdlePoll, this);
  RegisterPanicReporter("virtio-blk", &VirtioBlk::PanicReport, this);
  return true;
}

void VirtioBlk::PrintInfo() const noexcept {
  Printf("virtio-blk %02x:%02x.%u io=0x%x: %lu blocks of %u bytes (%lu MiB), physical %u, "
         "queue %u, depth %u, seg_limit %u, size_max %u\n",
         addr_.bus, addr_.dev, addr_.fn, io_, geo_.block_count, geo_.block_size,
         (geo_.block_count * geo_.block_size) >> 20, geo_.physical_block_size, qsz_,
         geo_.queue_depth, seg_limit_, size_max_);
  Printf("virtio-blk features: host=0x%08x negotiated=0x%08x flush=%s discard=%s (max %u "
         "sectors) write_zeroes=%s (max %u sectors) read_only=%s\n",
         host_features_, guest_features_, caps_.volatile_cache ? "yes" : "no",
         caps_.discard ? "yes" : "no", max_discard_sectors_, caps_.write_zeroes ? "yes" : "no",
         max_write_zeroes_sectors_, caps_.read_only ? "yes" : "no");
}

// ---- submission ---------------------------------------------------------------------------------
std::uint16_t VirtioBlk::AllocDesc() noexcept {
  const std::uint16_t d = free_head_;
  free_head_ = desc_[d].next;
  --num_free_;
  return d;
}

void VirtioBlk::Submit(Request* req) noexcept {
  Status st = CheckRequest(*req);
  if (st.ok()) {
    // Operations with nothing to do on this device complete at once.
    const bool noop = (req->op == Op::kFlush && !caps_.volatile_cache) ||
                      (req->op == Op::kDiscard && !caps_.discard);
    if (!noop) {
      req->device_private = nullptr;
      SpinGuard g(&lock_);
      ++stats_.submitted;
      if (pending_tail_) pending_tail_->device_private = req;
      else pending_head_ = req;
      pending_tail_ = req;
      ++stats_.queued;
      KickLocked();
      return;
    }
    SpinGuard g(&lock_);
    ++stats_.submitted;
    ++stats_.completed;
  }
  if (!st.ok()) {
    SpinGuard g(&lock_);
    ++stats_.errors;
  }
  req->on_complete(req, st);
}

void VirtioBlk::KickLocked() noexcept {
  while (stalled_ && StartLocked(stalled_)) stalled_ = stalled_->next_free;
  while (!stalled_ && pending_head_ && free_slots_) {
    Request* req = pending_head_;
    Slot* s = free_slots_;
    s->req = req;
    s->cur_lba = req->lba;
    s->left = req->count;
    s->data_off = 0;
    s->fua_flush = false;
    if (!StartLocked(s)) {
      s->req = nullptr;
      break;  // out of descriptors: retry when some complete
    }
    free_slots_ = s->next_free;
    pending_head_ = static_cast<Request*>(req->device_private);
    if (!pending_head_) pending_tail_ = nullptr;
    --stats_.queued;
  }
  // Notify for everything posted since the last notification (new requests and the
  // continuations PollImpl posted).
  if (avail_idx_ != notified_idx_) {
    notified_idx_ = avail_idx_;
    arch::Mb();
    const std::uint16_t used_flags = *reinterpret_cast<volatile std::uint16_t*>(used_);
    if (!(used_flags & kUsedNoNotify)) {
      arch::Outw(io_ + kRegQueueNotify, 0);
      ++stats_.notifies;
    }
  }
}

bool VirtioBlk::StartLocked(Slot* s) noexcept {
  Request* req = s->req;
  Slot::Dma* dma = s->dma;
  const std::uint32_t bs = geo_.block_size;
  struct Seg {
    std::uint64_t phys;
    std::uint32_t len;
  };
  // Data segments for a read/write of blocks starting at s->cur_lba.
  Seg segs[64];
  std::uint32_t nseg = 0;
  std::uint32_t blocks = 0;
  bool device_writes_data = false;
  const std::uint32_t max_segs = seg_limit_ < 64 ? seg_limit_ : 64;

  if (s->fua_flush) {
    dma->type = kTFlush;
    dma->sector = 0;
  } else if (req->op == Op::kFlush) {
    dma->type = kTFlush;
    dma->sector = 0;
  } else if (req->op == Op::kDiscard || (req->op == Op::kWriteZeroes && caps_.write_zeroes)) {
    const bool discard = req->op == Op::kDiscard;
    std::uint32_t max_blocks =
        (discard ? max_discard_sectors_ : max_write_zeroes_sectors_) / sectors_per_block_;
    if (max_blocks == 0) max_blocks = 1;
    blocks = s->left < max_blocks ? s->left : max_blocks;
    dma->type = discard ? kTDiscard : kTWriteZeroes;
    dma->sector = 0;
    dma->range_sector = s->cur_lba * sectors_per_block_;
    dma->range_sectors = blocks * sectors_per_block_;
    dma->range_flags = 0;  // write-zeroes: do not ask for unmap
    segs[nseg++] = {VirtToPhys(&dma->range_sector), 16};
  } else {
    // Read, write, or write-zeroes emulated with writes of the zero buffer.
    const bool zeroes = req->op == Op::kWriteZeroes;
    dma->type = req->op == Op::kRead ? kTIn : kTOut;
    dma->sector = s->cur_lba * sectors_per_block_;
    device_writes_data = req->op == Op::kRead;
    std::uint32_t limit = zeroes ? zero_blocks_ : s->left;
    if (limit > s->left) limit = s->left;
    const std::uint8_t* base = zeroes ? zero_buf_ : req->data + s->data_off;
    // Add whole blocks while the segments they need fit.
    while (blocks < limit) {
      Seg local[64];
      std::uint32_t n = nseg;
      for (std::uint32_t i = 0; i < nseg; ++i) local[i] = segs[i];
      const std::uint8_t* p = base + static_cast<std::uint64_t>(blocks) * bs;
      std::uint32_t remaining = bs;
      bool fits = true;
      while (remaining) {
        const std::uint64_t phys = VirtToPhys(p);
        std::uint32_t chunk = kPage - static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(p) & (kPage - 1));
        if (chunk > remaining) chunk = remaining;
        if (n > 0 && local[n - 1].phys + local[n - 1].len == phys &&
            (size_max_ == 0 || local[n - 1].len + chunk <= size_max_)) {
          local[n - 1].len += chunk;
        } else if (n < max_segs) {
          local[n++] = {phys, chunk};
        } else {
          fits = false;
          break;
        }
        p += chunk;
        remaining -= chunk;
      }
      if (!fits) break;
      for (std::uint32_t i = 0; i < n; ++i) segs[i] = local[i];
      nseg = n;
      ++blocks;
    }
    if (blocks == 0) return false;  // cannot happen with max_segs >= 2; be safe
  }

  if (num_free_ < nseg + 2) return false;
  dma->status = 0xFF;
  const std::uint16_t head = AllocDesc();
  desc_[head].addr = VirtToPhys(dma);
  desc_[head].len = 16;
  desc_[head].flags = kDescNext;
  std::uint16_t prev = head;
  for (std::uint32_t i = 0; i < nseg; ++i) {
    const std::uint16_t d = AllocDesc();
    desc_[prev].next = d;
    desc_[d].addr = segs[i].phys;
    desc_[d].len = segs[i].len;
    desc_[d].flags = static_cast<std::uint16_t>(kDescNext | (device_writes_data ? kDescWrite : 0));
    prev = d;
  }
  const std::uint16_t st = AllocDesc();
  desc_[prev].next = st;
  desc_[st].addr = VirtToPhys(&dma->status);
  desc_[st].len = 1;
  desc_[st].flags = kDescWrite;

  s->head = head;
  s->last_blocks = blocks;
  head_to_slot_[head] = s;
  arch::Mb();
  avail_[2 + (avail_idx_ % qsz_)] = head;
  arch::Mb();
  ++avail_idx_;
  avail_[1] = avail_idx_;
  ++stats_.device_requests;
  ++stats_.in_flight;
  if (stats_.in_flight > stats_.max_in_flight) stats_.max_in_flight = stats_.in_flight;
  in_flight_atomic_.store(stats_.in_flight, std::memory_order_relaxed);
  return true;
}

// After a successful device request: advance, and say whether another device request is needed.
bool VirtioBlk::NextPhaseLocked(Slot* s) noexcept {
  Request* req = s->req;
  if (s->fua_flush) return false;
  if (req->op == Op::kFlush) return false;
  s->cur_lba += s->last_blocks;
  s->left -= s->last_blocks;
  if (req->op != Op::kWriteZeroes) s->data_off += std::uint64_t{s->last_blocks} * geo_.block_size;
  if (s->left > 0) return true;
  if (req->op == Op::kWrite && (req->flags & block::kFua) && caps_.volatile_cache) {
    s->fua_flush = true;  // no FUA in virtio-blk: write, then flush
    return true;
  }
  return false;
}

// ---- completion ---------------------------------------------------------------------------------
void VirtioBlk::Poll() noexcept { PollImpl(false); }
void VirtioBlk::IdlePoll(void* self) noexcept { static_cast<VirtioBlk*>(self)->PollImpl(true); }

void VirtioBlk::PollImpl(bool try_lock) noexcept {
  struct Done {
    Request* req;
    Status st;
  };
  Done done[kMaxSlots];
  std::uint32_t ndone = 0;
  if (try_lock) {
    if (!lock_.TryLock()) return;
  } else {
    lock_.Lock();
  }
  for (;;) {
    const std::uint16_t used_idx =
        __atomic_load_n(reinterpret_cast<volatile std::uint16_t*>(used_ + 2), __ATOMIC_ACQUIRE);
    if (used_idx == last_used_) break;
    const volatile std::uint8_t* elem = used_ + 4 + 8u * (last_used_ % qsz_);
    const std::uint32_t id = *reinterpret_cast<const volatile std::uint32_t*>(elem);
    ++last_used_;
    if (id >= qsz_ || !head_to_slot_[id]) {
      lock_.Unlock();
      PanicCommon(__FILE__, __LINE__, "virtio-blk: device returned an unknown descriptor", nullptr);
    }
    Slot* s = head_to_slot_[id];
    head_to_slot_[id] = nullptr;
    // Return the chain to the free list.
    std::uint16_t d = id;
    for (;;) {
      const bool more = desc_[d].flags & kDescNext;
      const std::uint16_t next = desc_[d].next;
      desc_[d].next = free_head_;
      free_head_ = d;
      ++num_free_;
      if (!more) break;
      d = next;
    }
    --stats_.in_flight;
    const std::uint8_t dev_status = s->dma->status;
    Status st;
    if (dev_status == kSUnsupp) st = Status::NotSupported("virtio-blk: request type unsupported");
    else if (dev_status != kSOk) st = Status::IOError("virtio-blk: device reported an I/O error");
    if (st.ok() && NextPhaseLocked(s)) {
      // Next part of a split request, or the flush that follows a FUA write. If the ring is
      // full it waits (ahead of new requests) for descriptors.
      if (!StartLocked(s)) {
        s->next_free = stalled_;
        stalled_ = s;
      }
      continue;
    }
    done[ndone++] = {s->req, st};
    if (!st.ok()) ++stats_.errors;
    ++stats_.completed;
    s->req = nullptr;
    s->next_free = free_slots_;
    free_slots_ = s;
  }
  in_flight_atomic_.store(stats_.in_flight, std::memory_order_relaxed);
  KickLocked();
  lock_.Unlock();
  // Callbacks run without the driver lock: they may Submit() or Poll() again.
  for (std::uint32_t i = 0; i < ndone; ++i) done[i].req->on_complete(done[i].req, done[i].st);
}

VirtioBlk::Stats VirtioBlk::stats() const noexcept {
  SpinGuard g(&lock_);
  return stats_;
}

void VirtioBlk::PanicReport(void* self) noexcept {
  // Panic path: no lock (it may be held), racy counters are fine.
  auto* d = static_cast<VirtioBlk*>(self);
  Printf("in_flight=%u queued=%u submitted=%lu completed=%lu errors=%lu max_in_flight=%u",
         d->in_flight_atomic_.load(std::memory_order_relaxed), d->stats_.queued,
         d->stats_.submitted, d->stats_.completed, d->stats_.errors, d->stats_.max_in_flight);
}

}  // namespace permfs::qemu
