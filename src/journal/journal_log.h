// JournalLog: the on-disk write-ahead log (docs/FORMAT.md §6) — appending transactions, scanning
// them back for replay, and moving the tail at checkpoint. It knows nothing of what the logged
// blocks mean; MetaStore (meta_store.h) decides what goes into a transaction and when.
//
// Region: superblock.journal_start, journal_blocks blocks. Blocks 0 and 1 of the region are the
// two header slots (written alternately, the valid one with the larger write_count wins); the
// rest is a circular log.
//
// Durability: Append() returns after the transaction's blocks are written and the device is
// flushed, so an OK Append means the transaction survives a crash. SetTail() writes a header
// slot and flushes. Scan() stops at the first block that is not the next expected, intact piece
// of a transaction: a torn, unchecksummed or stale tail is ignored, never applied.
//
// Thread-safety: not thread-safe; MetaStore serialises all calls.
#pragma once

#include <cstdint>
#include <vector>

#include "block/block_io.h"
#include "format/journal_blocks.h"
#include "format/superblock.h"

namespace permfs::journal {

struct LogBlock {
  std::uint64_t home = 0;            // where the block lives in the volume
  const std::uint8_t* data = nullptr;  // block_size bytes, already sealed
};

struct ScanResult {
  std::uint64_t transactions = 0;
  std::uint64_t blocks = 0;
  std::uint64_t first_seq = 0;  // sequence at the tail
  std::uint64_t next_seq = 0;   // first sequence not found
  std::uint64_t end_offset = 0;  // log offset just past the last valid transaction
};

// Called for each committed transaction in order; `blocks` data pointers are valid only during
// the call. Returning non-OK stops the scan with that status.
using ReplayFn = Status (*)(void* ctx, std::uint64_t seq, const LogBlock* blocks,
                            std::size_t count);

class JournalLog {
 public:
  JournalLog(const block::BlockIo* io, const format::Superblock& sb) noexcept;

  // Writes both header slots for an empty log (mkfs).
  Status Format() noexcept;
  // Reads the header slots; positions the log at the tail. Corruption if neither slot is valid.
  Status Open() noexcept;
  // Reads committed transactions from the tail onwards, calling fn for each, and positions the
  // head after the last one. Does not change the device.
  Status Scan(ReplayFn fn, void* ctx, ScanResult* out) noexcept;

  // Blocks a transaction of `data_blocks` blocks occupies in the log.
  std::uint64_t BlocksNeeded(std::uint64_t data_blocks) const noexcept;
  std::uint64_t log_blocks() const noexcept { return log_blocks_; }
  std::uint64_t used_blocks() const noexcept { return __atomic_load_n(&used_, __ATOMIC_RELAXED); }
  std::uint64_t free_blocks() const noexcept { return log_blocks_ - used_blocks(); }
  // Largest transaction (in data blocks) that fits an empty log.
  std::uint64_t MaxTransactionBlocks() const noexcept;

  std::uint64_t head_offset() const noexcept { return head_; }
  std::uint64_t tail_offset() const noexcept { return header_.tail_offset; }
  std::uint64_t tail_seq() const noexcept { return header_.tail_seq; }
  const format::JournalHeader& header() const noexcept { return header_; }

  // Appends transaction `seq` (which must be the next sequence) and makes it durable.
  // NoSpace if it does not fit in the free log space (the caller checkpoints first).
  Status Append(std::uint64_t seq, const LogBlock* blocks, std::size_t count) noexcept;
  // Records that everything before (offset, seq) is checkpointed home; durable on return.
  Status SetTail(std::uint64_t offset, std::uint64_t seq, std::uint64_t root_generation) noexcept;

  std::uint64_t next_seq() const noexcept { return next_seq_; }
  // Forces the next sequence (after recovery, to step over a torn transaction's number).
  void set_next_seq(std::uint64_t s) noexcept { next_seq_ = s; }

 private:
  std::uint64_t LogBlockNo(std::uint64_t offset) const noexcept {
    return start_ + 2 + (offset % log_blocks_);
  }
  Status WriteRun(std::uint64_t offset, const std::uint8_t* buf, std::uint64_t n) noexcept;
  Status ReadLogBlock(std::uint64_t offset, std::uint8_t* buf) noexcept;
  Status WriteHeaderSlot(const format::JournalHeader& h) noexcept;

  const block::BlockIo* io_;
  const format::Superblock sb_;
  const std::uint32_t bs_;
  const std::uint64_t start_;
  const std::uint64_t log_blocks_;
  format::JournalHeader header_;
  std::uint64_t head_ = 0;
  std::uint64_t used_ = 0;  // written by the committer only; read with atomic loads (stats)
  std::uint64_t next_seq_ = 1;
  std::vector<std::uint8_t> buf_;  // staging for Append
};

}  // namespace permfs::journal
