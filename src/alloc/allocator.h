// Allocator: free-space management per shard (allocation group), docs/FORMAT.md §7.
//
// Durable state: one or more bitmap blocks at the start of every shard (1 bit per block, 1 =
// used) with the count of free blocks they cover, plus a digest in the volume root (the XOR of a
// hash of every bitmap block's number and generation) that Load() checks, so a bitmap block
// whose write was lost is detected at mount. They are metadata blocks, changed only inside
// journal transactions (WriteTxn) and read back on mount (Load), so allocation state can never
// disagree with the metadata that references it after a crash.
//
// In-memory state: per shard, a search bitmap where a block is marked when it is used, reserved
// by a writer that has not committed yet, or freed by a transaction that is not checkpointed yet.
// Freed blocks only become reusable after a checkpoint has moved the freeing transaction home
// (CheckpointListener), so a block is never overwritten while the journal could still replay an
// older owner into it, and data is never overwritten while committed metadata may point at it.
//
// Promises (in memory only): space set aside for data that is not written yet, like delayed
// allocation — a hot tier's dirty records — so that writing it later cannot fail for space.
// Promise(n) succeeds when n more blocks are available now beside the reserve and every earlier
// promise (blocks freed but waiting for a checkpoint do not count: the caller may force one and
// ask again). Ordinary reservations then leave the promised blocks alone; the promised data and
// its metadata draw on them (Draw::kPromised). Unpromise(n) hands blocks back once the data's
// own blocks are committed, or when the data is discarded. A promise never exceeds what is
// available, and each promised draw stays within its promise, so promised data always finds
// its blocks.
//
// Two-phase allocation for data: Reserve() (in memory, no transaction, per-shard lock) lets the
// caller write data outside the metadata lock; CommitReserved() then records it in a transaction.
// Metadata blocks use Allocate() (both steps inside the transaction). Every journaled change
// registers an undo on the WriteTxn, so an aborted transaction restores the in-memory state too.
//
// Thread-safety: all methods may be called concurrently. Lock order: metadata lock (WriteTxn) ->
// shard lock -> pending lock. Reserve/Unreserve take only a shard lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "format/superblock.h"
#include "journal/meta_store.h"
#include "util/result.h"
#include "util/sync.h"

namespace permfs::alloc {

struct Extent {
  std::uint64_t start = 0;
  std::uint64_t count = 0;
  std::uint64_t end() const noexcept { return start + count; }
  friend bool operator==(const Extent&, const Extent&) = default;
};

// Which free space a reservation may draw on.
enum class Draw : std::uint8_t {
  kOrdinary,    // neither the reserve nor promised blocks
  kPromised,    // data that was promised space, and its metadata: promised blocks too
  kPrivileged,  // space-freeing operations: promised blocks and the reserve
};

struct AllocStats {
  std::uint64_t total_blocks = 0;    // blocks inside shards (data + bitmaps)
  std::uint64_t free_blocks = 0;     // free on disk (what statfs reports)
  std::uint64_t available_blocks = 0;  // free and reusable right now
  std::uint64_t pending_free_blocks = 0;  // freed, waiting for a checkpoint
  std::uint64_t promised_blocks = 0;      // promised to data not written yet
};

class Allocator final : public journal::CheckpointListener {
 public:
  Allocator(journal::MetaStore* ms, const format::Superblock& sb) noexcept;
  ~Allocator() override;
  Allocator(const Allocator&) = delete;
  Allocator& operator=(const Allocator&) = delete;

  // mkfs: writes every bitmap block. Blocks outside shards (superblock, root, journal) are not
  // tracked; the mirror superblock in the last block is marked used.
  Status Format() noexcept;
  // mount: reads every bitmap block and rebuilds the in-memory state. Corruption if a bitmap's
  // stored free count disagrees with its bits.
  Status Load() noexcept;

  // Finds a run of between `min` and `want` free blocks, near `hint` when possible, and marks it
  // reserved in memory. NoSpace if no run of `min` blocks is available.
  // Unless kPrivileged, the last reserve_blocks() blocks are refused (NoSpace): they are kept
  // for operations that free space, which must succeed on a full volume. A kOrdinary draw also
  // leaves the promised blocks alone.
  Result<Extent> Reserve(std::uint64_t want, std::uint64_t min, std::uint64_t hint,
                         Draw draw = Draw::kOrdinary) noexcept;
  std::uint64_t reserve_blocks() const noexcept { return reserve_blocks_; }
  void Unreserve(const Extent& e) noexcept;
  // Records a reserved extent as used in the on-disk bitmaps (inside `txn`). On abort the
  // reservation stays with the caller.
  Status CommitReserved(journal::WriteTxn& txn, const Extent& e) noexcept;
  // Reserve + CommitReserved; an abort of `txn` releases the reservation too. kPrivileged when
  // txn.use_reserve(), else kPromised when txn.use_promised().
  Result<Extent> Allocate(journal::WriteTxn& txn, std::uint64_t want, std::uint64_t min,
                          std::uint64_t hint) noexcept;
  // Marks the extent free on disk (inside `txn`); reusable after the next checkpoint.
  // Corruption if any block of it is not allocated (double free).
  Status Free(journal::WriteTxn& txn, const Extent& e) noexcept;

  // See "Promises" above. Promise is all or nothing: false (nothing promised) if it does not fit.
  [[nodiscard]] bool Promise(std::uint64_t blocks) noexcept;
  void Unpromise(std::uint64_t blocks) noexcept;
  // Blocks an ordinary reservation could still take: available, beside the reserve and every
  // promise (0 when none).
  std::uint64_t unpromised_blocks() const noexcept;

  // True if the block is inside a shard's data area (not a bitmap, not outside shards).
  bool IsDataBlock(std::uint64_t blockno) const noexcept;
  // True while freed blocks wait for a checkpoint (a NoSpace may clear after one).
  bool HasPendingFrees() const noexcept;
  // Bitmap block `index` of `shard` (for fsck and tools).
  std::uint64_t BitmapBlockOf(std::uint32_t shard, std::uint32_t index) const noexcept {
    return BitmapBlock(shard, index);
  }

  AllocStats stats() const noexcept;
  void OnCheckpointed(std::uint64_t seq) noexcept override;

 private:
  struct Shard;
  struct Pending {
    std::uint64_t seq;
    Extent extent;
  };

  std::uint64_t BitmapBlock(std::uint32_t shard, std::uint32_t index) const noexcept {
    return sb_.shard_first_block(shard) + index;
  }
  std::uint32_t ShardOf(std::uint64_t blockno) const noexcept {
    return static_cast<std::uint32_t>((blockno - sb_.shard_start) / sb_.shard_blocks);
  }
  bool TryReserveInShard(Shard& s, std::uint32_t idx, std::uint64_t want, std::uint64_t min,
                         std::uint64_t hint, Extent* out) noexcept;
  // Sets (used=true) or clears bits of `e` in the on-disk bitmaps inside `txn`.
  Status UpdateDisk(journal::WriteTxn& txn, const Extent& e, bool used) noexcept;
  // XORs `delta` into the volume root's bitmap digest (inside `txn`).
  Status XorDigest(journal::WriteTxn& txn, std::uint64_t delta) noexcept;

  static void UndoCommit(void* ctx, std::uint64_t start, std::uint64_t count);
  static void UndoAllocate(void* ctx, std::uint64_t start, std::uint64_t count);
  static void UndoFree(void* ctx, std::uint64_t start, std::uint64_t count);

  journal::MetaStore* ms_;
  const format::Superblock sb_;
  std::vector<Shard*> shards_;
  std::atomic<std::uint32_t> next_shard_{0};
  std::atomic<std::int64_t> avail_total_{0};  // sum of the shards' available blocks
  std::uint64_t reserve_blocks_ = 0;
  std::atomic<std::int64_t> promised_{0};
  mutable Mutex pending_mu_;
  std::vector<Pending> pending_ PERMFS_GUARDED_BY(pending_mu_);
};

}  // namespace permfs::alloc
