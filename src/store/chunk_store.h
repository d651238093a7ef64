// ChunkStore: file data as immutable content-addressed chunks (docs/FORMAT.md §9).
//
// A chunk is one record of file data (at most superblock.record_size bytes) named by the SHA-256
// of its plaintext. The CAS index (B+tree kTreeId, key = the 32-byte id) maps an id to where the
// chunk is stored (a BlockAddr extent of whole blocks), its length, a reference count and the
// CRC32C of the stored bytes. Identical chunks are stored once: a second put adds a reference.
//
// Write protocol (data before metadata, live data never overwritten):
//   1. Prepare(data)   — no lock held: hash, look the id up; if the chunk is new, reserve free
//                        blocks and write the data there (no flush).
//   2. Commit(txn, p)  — inside a WriteTxn: +1 reference (existing chunk) or insert the index
//                        entry, record the reserved blocks as allocated and add the extent with
//                        its length and CRC to the transaction's data manifest
//                        (WriteTxn::NoteData), so the journal commit makes the data durable with
//                        its one flush and replay refuses the transaction if the data is not on
//                        the disk. In the rare race where a chunk seen in step 1 was freed since,
//                        Commit writes the data itself (hence the `data` argument) and notes it
//                        the same way.
//   3. Abandon(p)      — if the caller does not commit a prepared chunk (error paths). An
//                        abandoned extent never enters a manifest (it may be reused at once).
// Unref() drops a reference; the last one deletes the index entry and frees the blocks in the
// same transaction (they become reusable after the next checkpoint). If the WriteTxn aborts,
// everything Commit/Ref/Unref did is undone.
//
// Read protocol: Locate() under a ReadView (or WriteTxn) gives a ChunkLocation; ReadLocated()
// then reads the blocks with no lock held and verifies the CRC32C of the stored bytes. A
// mismatch is Corruption, never data. fsck can also verify ids against SHA-256 (VerifyId).
//
// Error contract: as for BTree, a non-OK status from Commit/Ref/Unref/SetRefcount means the
// caller must Abort() the WriteTxn; the abort also returns the blocks Commit reserved to the
// free pool (no leak, no double use). A PreparedChunk is consumed by Commit whatever its result.
// Corruption (bytes on the device are wrong), IOError (the device failed) and NoSpace stay
// distinct all the way up.
//
// Index value (64 bytes, little-endian; see EncodeLocation):
//   [0,32)  BlockAddr of the first block (node = sb.node_id, volume = sb.volume_id,
//           shard = (block - sb.shard_start) / sb.shard_blocks)
//   [32,36) length   [36,40) stored_length   [40,44) block_count   [44,48) flags
//   [48,56) refcount [56,60) crc32c of the stored bytes   [60,64) reserved, zero
// Data blocks carry no header: a chunk fills ceil(stored_length / block_size) whole blocks of
// one shard's data area, the tail of the last block zero-filled (not covered by the CRC).
//
// Thread-safety: all methods may be called from many threads at once (Prepare/ReadLocated take
// no metadata lock; the others run under the caller's WriteTxn/ReadView). Prepare takes a
// ReadView and may force a checkpoint (when the volume is full but frees wait for one), so the
// calling thread must hold no ReadView or WriteTxn of this volume while it runs.
// A ChunkLocation stays readable while the chunk is referenced; after its last Unref the blocks
// are reused only after a checkpoint; a ReadLocated of a stale location after that is a caller
// bug that the CRC almost always turns into Corruption (not a guarantee: 2^-32). Callers that
// may read while another thread drops the last reference must order the two themselves (the fs
// layer's inode lock).
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "alloc/allocator.h"
#include "store/chunk_cache.h"
#include "btree/btree.h"
#include "journal/meta_store.h"
#include "util/result.h"
#include "util/sha256.h"
#include "volume/volume.h"

namespace permfs::store {

using ChunkId = Sha256Digest;

// Where and how a chunk is stored (the CAS index value, 64 bytes on disk).
struct ChunkLocation {
  ChunkId id;
  std::uint64_t block = 0;        // first block of the extent (BlockAddr offset)
  std::uint32_t block_count = 0;  // blocks of the extent
  std::uint32_t length = 0;       // plaintext bytes
  std::uint32_t stored_length = 0;  // bytes stored (== length while uncompressed)
  std::uint32_t flags = 0;        // bit 0: compressed (reserved, not produced by format v1)
  std::uint64_t refcount = 0;
  std::uint32_t crc = 0;          // CRC32C of the stored bytes
};

// The result of Prepare: owns the reservation of `extent` until Commit or Abandon. It is a plain
// value, so exactly one copy of it may be passed to Commit/Abandon (a second copy would release
// or commit the same blocks twice).
struct PreparedChunk {
  ChunkId id;
  std::uint32_t length = 0;
  alloc::Extent extent;   // blocks reserved and written by Prepare (count 0: deduplicated)
  std::uint32_t crc = 0;  // CRC32C of the written bytes
  bool active = false;    // false after Commit or Abandon
};

struct ChunkStoreStats {
  std::uint64_t prepared = 0;
  std::uint64_t dedup_hits = 0;     // Prepare/Commit found the chunk already stored
  std::uint64_t bytes_written = 0;  // data bytes written by Prepare
  std::uint64_t bytes_read = 0;
  std::uint64_t corruptions = 0;    // CRC mismatches detected on read
};

class ChunkStore {
 public:
  static constexpr std::uint32_t kTreeId = 5;
  static constexpr std::size_t kIndexValueSize = 64;

  explicit ChunkStore(volume::Volume* v) noexcept;

  std::uint32_t max_chunk_size() const noexcept { return record_size_; }

  // Step 1. `len` must be 1..max_chunk_size().
  // `draw`: which free space a new chunk may use (alloc::Draw: kPrivileged for space-freeing
  // operations such as truncate, kPromised for data that was promised space).
  // `near`: a block to place a new chunk at or after when it is free (the block after the
  // previous record's chunk, so a file's records lie in order on the device); 0 lets the
  // allocator spread chunks over the shards.
  // `keep_cached`: also put the plaintext in the read cache (the caller expects to read the
  // chunk back soon: a record rewritten piecemeal is read again to merge its next piece).
  Result<PreparedChunk> Prepare(const std::uint8_t* data, std::size_t len,
                                alloc::Draw draw = alloc::Draw::kOrdinary, std::uint64_t near = 0,
                                bool keep_cached = false) noexcept;
  // Step 2. Consumes `p` (also on error). `data` is the same bytes that were given to Prepare;
  // it is only read when the chunk Prepare deduplicated against was freed meanwhile (then the
  // data is written inside the transaction, and a full volume gives NoSpace: no checkpoint can
  // be forced while a WriteTxn is held).
  Status Commit(journal::WriteTxn& t, PreparedChunk& p, const std::uint8_t* data) noexcept;
  // Releases a prepared chunk that will not be committed. Consumes `p`.
  void Abandon(PreparedChunk& p) noexcept;

  // +1 reference to a stored chunk (NotFound if it is not stored).
  Status Ref(journal::WriteTxn& t, const ChunkId& id) noexcept;
  // -1 reference; the last frees the chunk. NotFound if not stored.
  Status Unref(journal::WriteTxn& t, const ChunkId& id) noexcept;

  Result<ChunkLocation> Locate(journal::BlockReader& r, const ChunkId& id) noexcept;
  // Reads plaintext bytes [offset, offset + len) of the chunk into `out` (verifying the CRC of
  // the whole stored chunk). InvalidArgument if the range is outside the chunk.
  Status ReadLocated(const ChunkLocation& loc, std::uint32_t offset, std::uint32_t len,
                     std::uint8_t* out) noexcept;
  // Reads the chunk and checks SHA-256(plaintext) == id (fsck deep verification).
  Status VerifyId(const ChunkLocation& loc) noexcept;

  // Visits every index entry in id order (fsck, info). Return false from fn to stop.
  Status ForEach(journal::BlockReader& r, bool (*fn)(void* ctx, const ChunkLocation& loc),
                 void* ctx) noexcept;

  // Direct access for fsck repair: overwrite an index entry's refcount. A refcount of 0 deletes
  // the entry and frees its blocks (as the last Unref does). NotFound if not stored.
  Status SetRefcount(journal::WriteTxn& t, const ChunkId& id, std::uint64_t refcount) noexcept;

  ChunkStoreStats stats() const noexcept;
  btree::BTree* index() noexcept { return &index_; }

  // Keeps up to `bytes` of recently read chunks in memory (ChunkCache; 0, the default, keeps
  // none). ReadLocated serves reads of a cached chunk from it, and a partial read of a chunk
  // not cached fills it (a whole-chunk read does not); Prepare(keep_cached) fills it too.
  // VerifyId always reads the device. Call before the store is used from several threads.
  void SetReadCache(std::size_t bytes) noexcept;
  ChunkCacheStats read_cache_stats() const noexcept { return cache_.stats(); }
  // Drops a chunk from the read cache (a kept chunk its record's next version superseded, so
  // the cache holds one version of a record rewritten piecemeal, not every one).
  void DropCached(const ChunkId& id) noexcept { cache_.Erase(id); }

 private:
  // Reads the whole extent of `loc` into `buf` (block_count * block_size bytes) and checks the
  // CRC32C of the stored bytes. `loc` must have passed ValidateLocation.
  Status ReadVerified(const ChunkLocation& loc, std::uint8_t* buf) noexcept;
  // Writes `len` bytes (zero-padded to whole blocks) at `e` and returns their CRC32C.
  Status WriteData(const alloc::Extent& e, const std::uint8_t* data, std::size_t len,
                   std::uint32_t* crc) noexcept;
  Status StoreLocation(journal::WriteTxn& t, const ChunkLocation& loc, bool insert) noexcept;
  // Puts `len` bytes of plaintext of chunk `id` in the read cache (if enabled and a slot frees).
  void KeepCached(const ChunkId& id, const std::uint8_t* data, std::size_t len) noexcept;
  Status DropLocation(journal::WriteTxn& t, const ChunkLocation& loc) noexcept;

  volume::Volume* vol_;
  btree::BTree index_;
  const std::uint32_t bs_;
  const std::uint32_t record_size_;
  ChunkCache cache_;
  // Counters (atomics: updated from many threads).
  std::atomic<std::uint64_t> prepared_{0}, dedup_hits_{0}, bytes_written_{0}, bytes_read_{0},
      corruptions_{0};
};

// Encoding of the index value (exposed for tests and fsck). EncodeLocation writes
// kIndexValueSize bytes. DecodeLocation accepts only values EncodeLocation could have written
// for this volume: exactly 64 bytes, a BlockAddr of this node/volume/shard, an extent of
// block_count == ceil(stored_length / block_size) blocks inside one shard's data area,
// 1 <= length == stored_length <= record_size, flags 0, refcount >= 1, reserved 0; anything
// else is Corruption.
void EncodeLocation(const ChunkLocation& loc, const format::Superblock& sb, std::uint8_t* out64);
Result<ChunkLocation> DecodeLocation(const ChunkId& id, const std::uint8_t* in, std::size_t len,
                                     const format::Superblock& sb);
// The extent/length checks of DecodeLocation (not refcount), for a ChunkLocation from anywhere.
Status ValidateLocation(const ChunkLocation& loc, const format::Superblock& sb) noexcept;

}  // namespace permfs::store
