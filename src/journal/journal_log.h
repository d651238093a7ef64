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
// Data manifests: a transaction may carry a manifest, the file-data extents its metadata
// references, with their CRC32C. The caller writes that data (completed writes) before calling
// Append() and does not flush it: Append's one flush makes data and log durable together. Scan()
// reads every manifest extent back before a transaction is handed to the replay callback; if
// the bytes do not match (the data did not reach the disk before the crash), that transaction
// and every later one are treated as not committed, like a torn tail, and a warning is logged.
// If they cannot be read, Scan() fails with the IOError (never drops acknowledged work for it). A manifest extent outside the shards is Corruption (never crash damage).
//
// Thread-safety: not thread-safe; MetaStore serialises all calls.
#pragma once

#include <cstdint>
#include <vector>

#include "block/block_io.h"
#include "format/journal_blocks.h"
#include "format/superblock.h"
#include "util/result.h"

namespace permfs::journal {

struct LogBlock {
  std::uint64_t home = 0;            // where the block lives in the volume
  const std::uint8_t* data = nullptr;  // block_size bytes, already sealed
};

struct ScanResult {
  std::uint64_t transactions = 0;
  std::uint64_t blocks = 0;
  std::uint64_t manifest_entries = 0;  // data extents verified in the applied transactions
  std::uint64_t first_seq = 0;  // sequence at the tail
  std::uint64_t next_seq = 0;   // first sequence not applied
  std::uint64_t end_offset = 0;  // log offset just past the last applied transaction
  // Manifest check failures: the first transaction whose data did not verify (0: none), and the
  // complete transactions not applied because of it (itself and every later one).
  std::uint64_t rejected_seq = 0;
  std::uint64_t discarded = 0;
  // Sequence after the last complete transaction in the log, applied or discarded. A new
  // transaction must use a larger sequence, so discarded records can never be taken for live.
  std::uint64_t end_seq = 0;
};

// True if a manifest entry names file data a replay may read: 1..record_size bytes in whole
// blocks inside the shards, below the mirror superblock (FORMAT.md §6.3 step 3).
inline bool ManifestEntryValid(const format::ManifestEntry& e,
                               const format::Superblock& sb) noexcept {
  const std::uint64_t blocks = (std::uint64_t{e.length} + sb.block_size - 1) / sb.block_size;
  return e.length != 0 && e.length <= sb.record_size && e.block >= sb.shard_start &&
         e.block < sb.mirror_block() && blocks <= sb.mirror_block() - e.block;
}

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

  // Blocks a transaction of `data_blocks` blocks and `manifest_entries` manifest entries
  // occupies in the log.
  std::uint64_t BlocksNeeded(std::uint64_t data_blocks,
                             std::uint64_t manifest_entries = 0) const noexcept;
  std::uint64_t log_blocks() const noexcept { return log_blocks_; }
  std::uint64_t used_blocks() const noexcept { return __atomic_load_n(&used_, __ATOMIC_RELAXED); }
  std::uint64_t free_blocks() const noexcept { return log_blocks_ - used_blocks(); }
  // Largest transaction (in data blocks, without a manifest) that fits an empty log.
  std::uint64_t MaxTransactionBlocks() const noexcept;

  std::uint64_t head_offset() const noexcept { return head_; }
  std::uint64_t tail_offset() const noexcept { return header_.tail_offset; }
  std::uint64_t tail_seq() const noexcept { return header_.tail_seq; }
  const format::JournalHeader& header() const noexcept { return header_; }

  // Appends transaction `seq` (which must be the next sequence) with its data manifest (may be
  // empty) and makes it durable with one flush, together with every write that completed
  // before the call (the manifest's data). NoSpace if it does not fit in the free log space
  // (the caller checkpoints first).
  Status Append(std::uint64_t seq, const LogBlock* blocks, std::size_t count,
                const format::ManifestEntry* manifest = nullptr,
                std::size_t manifest_count = 0) noexcept;
  // Records that everything before (offset, seq) is checkpointed home; durable on return.
  Status SetTail(std::uint64_t offset, std::uint64_t seq, std::uint64_t root_generation) noexcept;

  std::uint64_t next_seq() const noexcept { return next_seq_; }
  // Forces the next sequence (after recovery, to step over a torn transaction's number).
  void set_next_seq(std::uint64_t s) noexcept { next_seq_ = s; }

 private:
  std::uint64_t LogBlockNo(std::uint64_t offset) const noexcept {
    return start_ + 2 + (offset % log_blocks_);
  }
  struct TxnBuf;  // one transaction read back by Scan (journal_log.cc)
  Status WriteRun(std::uint64_t offset, const std::uint8_t* buf, std::uint64_t n) noexcept;
  Status ReadLogBlock(std::uint64_t offset, std::uint8_t* buf) noexcept;
  Status WriteHeaderSlot(const format::JournalHeader& h) noexcept;
  // Reads transaction `seq` starting at log offset `pos`, at most `room` blocks long. True if
  // it is complete and intact (its blocks and manifest are in `t`), false if the log ends
  // there; IOError or Corruption (a checksummed record naming a reserved block) otherwise.
  Result<bool> ReadTransaction(std::uint64_t pos, std::uint64_t room, std::uint64_t seq,
                               TxnBuf* t) noexcept;
  // Reads the `count` logged images that follow a descriptor (entries in t->entries) from log
  // offset `offset` into `t`. False if one is torn; Corruption if one targets a reserved block.
  Result<bool> ReadLoggedImages(std::uint64_t offset, std::uint32_t count, TxnBuf* t) noexcept;
  // Reads every manifest extent of `t` back. Returns the index of the first entry whose data
  // does not match its CRC (`*why` says how), or the entry count if all match. A read error is
  // returned as such (the mount fails; acknowledged transactions are never dropped for it).
  Result<std::size_t> VerifyManifest(TxnBuf* t, const char** why) noexcept;
  // `t` holds complete transaction `seq` read at (pos, used): counts it and the complete
  // transactions that follow it in the log (Scan after a manifest refusal). Clobbers `t`.
  Result<std::uint64_t> CountFrom(std::uint64_t pos, std::uint64_t used, std::uint64_t seq,
                                  TxnBuf* t) noexcept;
  // Encodes the manifest blocks of a transaction into `out`, extending `chained`.
  void HeadLogBlock(format::BlockType type, std::uint64_t offset, std::uint64_t seq,
                    std::uint8_t* blk) const noexcept;
  void EncodeManifestBlocks(std::uint64_t seq, std::uint64_t offset,
                            const format::ManifestEntry* manifest, std::size_t n,
                            std::uint8_t* out, std::uint32_t* chained) noexcept;

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
