// virtio-blk driver (legacy/transitional PCI interface, virtio 1.x spec §4.1.4.8 + §5.2)
// implementing permfs::block::BlockDevice.
//
// Why legacy: the legacy interface is one I/O BAR of registers, so discovery is PCI config
// space + port I/O and no MMIO mapping, capability-list walking or 64-bit feature negotiation is
// needed; QEMU -machine pc exposes it (transitional device 1af4:1001) by default. A modern-only
// device (1af4:1042) is ignored.
//
// Model (see docs/PORTING.md for the contract this fills in):
//  - one virtqueue; each request is a descriptor chain: header (device-readable), data segments
//    (one per physically contiguous run, found through VirtToPhys page by page), status byte
//    (device-writable). Discard/write-zeroes carry one 16-byte range segment instead of data;
//  - up to `queue_depth` requests in flight (min(queue size / 3, 128) slots); more wait in a
//    FIFO inside the driver and start as slots free up;
//  - no interrupts: capabilities().polled = true. Completions (on_complete callbacks) are
//    delivered from Poll(), never from Submit(), and never with the driver lock held, so a
//    callback may Submit again. The driver also registers an idle poller (kernel.h) so that
//    CondVar waits make progress;
//  - 4096-byte logical blocks (8 sectors) or the device's blk_size if larger;
//  - VIRTIO_BLK_F_FLUSH negotiated -> volatile_cache = true and Flush = VIRTIO_BLK_T_FLUSH;
//    without it QEMU turns its cache to write-through and Flush completes at once;
//  - there is no FUA in virtio-blk: a kFua write completes after a flush that follows it;
//  - DISCARD / WRITE_ZEROES are used when negotiated (QEMU offers both), split to the device's
//    max sectors per request; write-zeroes without the feature is emulated with writes of a
//    zero buffer;
//  - requests larger than the device's segment limit run as several device requests in turn.
#pragma once

#include <atomic>
#include <cstdint>

#include "block/block_device.h"
#include "pci.h"
#include "spinlock.h"

namespace permfs::qemu {

class VirtioBlk final : public block::BlockDevice {
 public:
  // Finds and initialises every legacy virtio-blk function (up to kMaxDisks), once.
  static int ProbeAll() noexcept;
  static VirtioBlk* Disk(int index) noexcept;
  static VirtioBlk* ProbeFirst() noexcept { return ProbeAll() > 0 ? Disk(0) : nullptr; }
  static constexpr int kMaxDisks = 4;

  const block::Geometry& geometry() const noexcept override { return geo_; }
  const block::Capabilities& capabilities() const noexcept override { return caps_; }
  void Submit(block::Request* req) noexcept override;
  void Poll() noexcept override;

  struct Stats {
    std::uint32_t in_flight = 0;       // device requests in the ring now
    std::uint32_t max_in_flight = 0;   // high-water mark
    std::uint32_t queued = 0;          // requests waiting for a slot
    std::uint64_t submitted = 0;       // requests accepted by Submit
    std::uint64_t completed = 0;       // callbacks delivered
    std::uint64_t device_requests = 0; // descriptor chains issued (splits, FUA flushes count)
    std::uint64_t notifies = 0;        // queue notifications (port writes)
    std::uint64_t errors = 0;          // completions with a non-OK status
  };
  Stats stats() const noexcept;
  std::uint32_t host_features() const noexcept { return host_features_; }
  std::uint32_t guest_features() const noexcept { return guest_features_; }
  std::uint16_t queue_size() const noexcept { return qsz_; }
  void PrintInfo() const noexcept;

 private:
  struct Slot;
  VirtioBlk(pci::Address addr, std::uint16_t io) noexcept;
  bool Init() noexcept;
  bool StartLocked(Slot* s) noexcept;        // builds and posts a device request for s
  void KickLocked() noexcept;                // starts pending requests while slots are free
  bool NextPhaseLocked(Slot* s) noexcept;    // after a device completion: more to do?
  void PollImpl(bool try_lock) noexcept;
  static void IdlePoll(void* self) noexcept;
  static void PanicReport(void* self) noexcept;
  std::uint16_t AllocDesc() noexcept;

  pci::Address addr_;
  std::uint16_t io_;
  block::Geometry geo_;
  block::Capabilities caps_;
  std::uint32_t host_features_ = 0;
  std::uint32_t guest_features_ = 0;
  std::uint32_t sectors_per_block_ = 8;
  std::uint32_t seg_limit_ = 1;          // data segments per device request
  std::uint32_t size_max_ = 0;           // bytes per segment (0 = no limit)
  std::uint32_t max_discard_sectors_ = 0;
  std::uint32_t max_write_zeroes_sectors_ = 0;

  // Ring (legacy layout: descriptors, avail, padding to 4 KiB, used).
  std::uint16_t qsz_ = 0;
  struct Desc;
  Desc* desc_ = nullptr;
  volatile std::uint16_t* avail_ = nullptr;  // flags, idx, ring[qsz]
  volatile std::uint8_t* used_ = nullptr;    // flags, idx, {id, len}[qsz]
  std::uint16_t free_head_ = 0;
  std::uint16_t num_free_ = 0;
  std::uint16_t avail_idx_ = 0;
  std::uint16_t last_used_ = 0;
  std::uint16_t notified_idx_ = 0;       // avail index at the last notification decision

  Slot* slots_ = nullptr;
  std::uint32_t nslots_ = 0;
  Slot* free_slots_ = nullptr;
  Slot* stalled_ = nullptr;              // split requests waiting for descriptors to continue
  Slot** head_to_slot_ = nullptr;
  std::uint8_t* zero_buf_ = nullptr;     // write-zeroes emulation
  std::uint32_t zero_blocks_ = 0;

  block::Request* pending_head_ = nullptr;
  block::Request* pending_tail_ = nullptr;

  mutable SpinLock lock_;
  Stats stats_;
  std::atomic<std::uint32_t> in_flight_atomic_{0};
};

}  // namespace permfs::qemu
