// FaultyBlockDevice: a BlockDevice decorator that injects programmable storage faults
// (RELIABILITY.md §4.2): EIO on the Nth read/write/flush, a simulated full device (NoSpace),
// bit rot on reads of an LBA, lost writes and misdirected writes.
//
// Counting. Every fault that names an "Nth call" counts calls of that kind submitted AFTER the
// fault was armed, starting at 1: FailNth(kWrite, 1, ...) fails the very next write.
// "Writes" for counting purposes are kWrite, kDiscard and kWriteZeroes requests.
// Modes: kTransient fires once (at the Nth call) and then disarms; kPersistent fires at the Nth
// call and at every matching call after it until cleared.
//
// Faults:
//  - FailNth(kind, n, mode): the call completes with IOError and is NOT forwarded.
//  - SetNoSpaceAfter(blocks): once `blocks` blocks have been written (counted from arming), any
//    write that would exceed the limit completes with NoSpace and is not forwarded (persistent).
//  - AddBitRot(lba, byte_offset, xor_mask, mode): reads covering `lba` return data whose byte
//    `byte_offset` of that block is XORed with xor_mask (the device itself is untouched).
//    Transient: only the next such read.
//  - LoseWritesTo(lba, mode): writes covering `lba` complete OK but do nothing.
//  - LoseNthWrite(n, mode): the Nth write completes OK but does nothing.
//  - MisdirectNthWrite(n, target_lba, mode): the Nth write is performed at target_lba instead
//    (same length). Arming returns InvalidArgument if target_lba cannot hold a 1-block write; at
//    fire time a write that would not fit at target_lba is lost instead.
// At most one fault of each kind is armed at a time (re-arming replaces it). When several faults
// match one request, the precedence is: fail > no-space > lost > misdirect; bit rot applies to
// any successful read. ClearFaults() disarms everything (counters keep running).
//
// The wrapped device is not owned and must outlive this object; geometry and capabilities are
// the wrapped device's.
// Thread-safety: Submit() and every method may be called from many threads at once.
#pragma once

#include <cstdint>

#include "block/block_device.h"
#include "util/sync.h"

namespace permfs::block {

enum class FaultMode : std::uint8_t { kTransient = 0, kPersistent = 1 };
enum class FaultOp : std::uint8_t { kRead = 0, kWrite = 1, kFlush = 2 };

struct FaultCounters {
  std::uint64_t reads = 0;           // read requests submitted
  std::uint64_t writes = 0;          // write/discard/write-zeroes requests submitted
  std::uint64_t flushes = 0;         // flush requests submitted
  std::uint64_t blocks_written = 0;  // blocks of writes forwarded successfully-or-not
  std::uint64_t faults_injected = 0; // total fault firings of every kind
  std::uint64_t io_errors = 0;
  std::uint64_t no_space = 0;
  std::uint64_t bit_rots = 0;
  std::uint64_t lost_writes = 0;
  std::uint64_t misdirected_writes = 0;
};

class FaultyBlockDevice final : public BlockDevice {
 public:
  explicit FaultyBlockDevice(BlockDevice* inner);
  ~FaultyBlockDevice() override;

  const Geometry& geometry() const noexcept override { return inner_->geometry(); }
  const Capabilities& capabilities() const noexcept override { return inner_->capabilities(); }
  void Submit(Request* req) noexcept override;
  void Poll() noexcept override { inner_->Poll(); }

  // n >= 1 (n == 0 is treated as 1).
  void FailNth(FaultOp op, std::uint64_t n, FaultMode mode);
  void SetNoSpaceAfter(std::uint64_t blocks);
  void AddBitRot(std::uint64_t lba, std::uint32_t byte_offset, std::uint8_t xor_mask,
                 FaultMode mode);
  void LoseWritesTo(std::uint64_t lba, FaultMode mode);
  void LoseNthWrite(std::uint64_t n, FaultMode mode);
  Status MisdirectNthWrite(std::uint64_t n, std::uint64_t target_lba, FaultMode mode);
  void ClearFaults();

  FaultCounters counters() const;
  std::uint64_t reads() const { return counters().reads; }
  std::uint64_t writes() const { return counters().writes; }
  std::uint64_t flushes() const { return counters().flushes; }
  std::uint64_t faults_injected() const { return counters().faults_injected; }

 private:
  // An "Nth call" trigger: fires when the per-kind counter reaches `at` (and after, if
  // persistent).
  struct NthTrigger {
    bool armed = false;
    FaultMode mode = FaultMode::kTransient;
    std::uint64_t at = 0;  // absolute counter value at which it fires
    bool Fires(std::uint64_t count);
  };
  struct LbaTrigger {
    bool armed = false;
    FaultMode mode = FaultMode::kTransient;
    std::uint64_t lba = 0;
  };
  struct Pending;
  static void OnInnerComplete(Request* req, Status st);

  BlockDevice* const inner_;
  mutable Mutex mu_;
  FaultCounters c_ PERMFS_GUARDED_BY(mu_);
  NthTrigger fail_[3] PERMFS_GUARDED_BY(mu_);
  bool nospace_armed_ PERMFS_GUARDED_BY(mu_) = false;
  std::uint64_t nospace_limit_ PERMFS_GUARDED_BY(mu_) = 0;   // absolute blocks_written limit
  LbaTrigger rot_ PERMFS_GUARDED_BY(mu_);
  std::uint32_t rot_offset_ PERMFS_GUARDED_BY(mu_) = 0;
  std::uint8_t rot_mask_ PERMFS_GUARDED_BY(mu_) = 0;
  LbaTrigger lose_lba_ PERMFS_GUARDED_BY(mu_);
  NthTrigger lose_nth_ PERMFS_GUARDED_BY(mu_);
  NthTrigger misdirect_ PERMFS_GUARDED_BY(mu_);
  std::uint64_t misdirect_lba_ PERMFS_GUARDED_BY(mu_) = 0;
};

}  // namespace permfs::block
