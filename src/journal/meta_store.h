// MetaStore: the metadata block cache and the transaction manager on top of the journal.
//
// Every metadata block the engine reads goes through MetaStore, which verifies its header and
// checksum (format/meta_block.h) and caches it. Every change to a metadata block happens inside a
// WriteTxn and joins the *running transaction*; a commit freezes the running transaction, writes
// it to the journal (JournalLog) with one device flush, and keeps the frozen copies until a
// checkpoint writes them home and moves the journal tail. Many operations share one commit
// (group commit): Sync() waits until everything before it is durable, and concurrent callers of
// Sync() are served by the same journal write and flush.
//
// Data before metadata, with one flush: a handle that references freshly written file data
// names it with WriteTxn::NoteData() (first block, length, CRC32C). The running transaction
// collects these entries into its *data manifest*, which the commit writes into the journal with
// the metadata blocks. The data writes completed before the handle ended, so the journal's one
// flush makes data and metadata durable together; replay reads every manifest extent back and
// refuses a transaction whose data did not reach the disk (and every later one). Blocks named by
// a manifest are allocated by that transaction; they can be freed only by it or a later one, and
// freed blocks are reused only after the checkpoint that retires both, so replay never reads a
// manifest extent that was legitimately overwritten. Fallback: on a volume without the
// journal_manifest feature, or when the manifest would not fit the log next to the transaction's
// blocks, the commit flushes the device before writing the journal instead (stats data_flushes).
//
// Write path contract:
//  - Begin() returns a WriteTxn holding the exclusive metadata lock; readers (ReadView) hold it
//    shared. A thread never holds a ReadView while asking for a WriteTxn.
//  - WriteTxn::Modify()/Create() return a writable block; the block's generation is stamped with
//    the running sequence. The first time a handle touches a block, its pre-image is saved, so
//    Abort() (or destroying an uncommitted WriteTxn) restores every block and runs the handle's
//    undo callbacks in reverse order: a failed operation leaves no trace.
//  - WriteTxn::Commit() ends the handle and keeps its changes in the running transaction. They
//    become durable at the next commit (Sync(), the commit threshold, or Tick()).
//  - After a journal write or flush fails, the store is *errored*: every later Begin() and Sync()
//    fails (never reports success for data that did not reach the disk). Remount to recover.
//
// Crash safety: a block reaches its home location only through a checkpoint, after the
// transaction holding it is durable in the journal; replay on Open() re-applies every committed
// transaction (up to the first whose manifest data is not on the disk), so home blocks are
// always either checkpointed or recoverable.
//
// Thread-safety: all public methods may be called from any thread. Lock order:
//   commit role (committing_) -> rw_ (metadata lock) -> cache_mu_;  rw_ -> allocator shard locks.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "block/block_io.h"
#include "format/meta_block.h"
#include "format/superblock.h"
#include "journal/journal_log.h"
#include "util/hash_map.h"
#include "util/result.h"
#include "util/rwlock.h"
#include "util/sync.h"

namespace permfs::journal {

struct MetaStoreOptions {
  std::size_t cache_blocks = 16384;            // clean blocks kept in memory
  std::uint64_t commit_threshold_blocks = 0;   // 0: a quarter of the largest transaction
  bool read_only = false;                      // refuse writes (replay still runs unless...)
  bool skip_replay = false;                    // for read-only inspection of a dirty journal
  // A checkpoint is forced before a commit once the committed transactions in the journal
  // reference more file data than this (bytes; 0 = no limit). Replay reads all of it back to
  // verify the manifests, so this bounds the extra mount time after a crash.
  std::uint64_t checkpoint_data_bytes = std::uint64_t{256} << 20;
};

struct MetaStoreStats {
  std::uint64_t commits = 0;
  std::uint64_t committed_blocks = 0;
  std::uint64_t checkpoints = 0;
  std::uint64_t cache_hits = 0;
  std::uint64_t cache_misses = 0;
  std::uint64_t replayed_transactions = 0;
  std::uint64_t replayed_blocks = 0;
  // Pre-commit flushes for data-before-metadata: only when a manifest cannot be used (volume
  // without the journal_manifest feature, or a manifest too large for the log). 0 normally.
  std::uint64_t data_flushes = 0;
  std::uint64_t manifest_entries = 0;  // data extents committed in journal manifests
  std::uint64_t replay_discarded_transactions = 0;  // refused at mount: manifest data missing
  std::uint64_t durable_seq = 0;
  std::uint64_t running_seq = 0;
  std::uint64_t journal_used = 0;
  std::uint64_t journal_size = 0;
};

// Told when a checkpoint has moved every transaction up to `seq` home (blocks freed by those
// transactions may now be reused).
class CheckpointListener {
 public:
  virtual ~CheckpointListener();
  virtual void OnCheckpointed(std::uint64_t seq) noexcept = 0;
};

using UndoFn = void (*)(void* ctx, std::uint64_t a, std::uint64_t b);

class MetaStore;

// Read access to metadata blocks, from a ReadView or from inside a WriteTxn.
class BlockReader {
 public:
  virtual Result<const std::uint8_t*> Read(std::uint64_t blockno,
                                           const format::Expect& expect) noexcept = 0;

 protected:
  ~BlockReader() = default;
};

class WriteTxn final : public BlockReader {
 public:
  WriteTxn(WriteTxn&& o) noexcept;
  WriteTxn(const WriteTxn&) = delete;
  WriteTxn& operator=(const WriteTxn&) = delete;
  WriteTxn& operator=(WriteTxn&&) = delete;
  ~WriteTxn();

  bool active() const noexcept { return store_ != nullptr; }
  // Sequence of the running transaction these changes join.
  std::uint64_t seq() const noexcept { return seq_; }
  MetaStore* store() const noexcept { return store_; }

  // Writable copy of an existing block (read and verified if not cached).
  Result<std::uint8_t*> Modify(std::uint64_t blockno, const format::Expect& expect) noexcept;
  // A freshly allocated block: zero-filled, header written (type, blockno, owner, generation).
  Result<std::uint8_t*> Create(std::uint64_t blockno, format::BlockType type,
                               std::uint64_t owner) noexcept;
  // Read-only access within the transaction.
  Result<const std::uint8_t*> Read(std::uint64_t blockno,
                                   const format::Expect& expect) noexcept override;
  // The block is no longer metadata (freed in this transaction).
  void Forget(std::uint64_t blockno) noexcept;
  // Registers an undo action for in-memory state changed by this handle.
  void AddUndo(UndoFn fn, void* ctx, std::uint64_t a, std::uint64_t b) noexcept;
  // Data before metadata: this handle references `length` bytes of file data stored from block
  // `block` on (whole blocks, written by completed device writes before this call) whose
  // CRC32C is `crc`. The entry joins the running transaction's data manifest (dropped again if
  // the handle aborts); the commit journals it, so replay applies the transaction only if the
  // device holds these bytes. Only for data in blocks this transaction allocates: an extent that
  // may be freed and reused while the transaction is in the journal must never be noted.
  void NoteData(std::uint64_t block, std::uint32_t length, std::uint32_t crc) noexcept;

  // Operations that free space (unlink, rmdir, truncate, ...) may dip into the allocator's
  // small reserve, so they still succeed on a full volume.
  void set_use_reserve(bool v) noexcept { use_reserve_ = v; }
  bool use_reserve() const noexcept { return use_reserve_; }
  // Writing data that was promised space (Allocator::Promise): its metadata may use the
  // promised blocks too.
  void set_use_promised(bool v) noexcept { use_promised_ = v; }
  bool use_promised() const noexcept { return use_promised_; }

  Status Commit() noexcept;
  void Abort() noexcept;

 private:
  friend class MetaStore;
  explicit WriteTxn(MetaStore* s, std::uint64_t seq, std::uint64_t epoch) noexcept
      : store_(s), seq_(seq), epoch_(epoch) {}
  struct Undo {
    UndoFn fn;
    void* ctx;
    std::uint64_t a, b;
  };
  struct PreImage {
    void* entry;
    std::uint8_t* data;  // nullptr when the block was created by this handle
    bool was_dirty;
    bool was_freed;
  };
  void Release() noexcept;
  Status TrackDirty(void* entry) noexcept;

  MetaStore* store_;
  std::uint64_t seq_;
  std::uint64_t epoch_;
  std::size_t dirty_start_ = 0;  // size of the running dirty list when this handle began
  std::size_t manifest_start_ = 0;  // size of the running manifest when this handle began
  bool use_reserve_ = false;
  bool use_promised_ = false;
  std::vector<PreImage> pre_;
  std::vector<Undo> undo_;
  std::vector<void*> pinned_;
  std::vector<std::uint64_t> forgotten_;
};

// Shared, read-only access to metadata blocks. Pointers returned by Read() stay valid until the
// view is destroyed.
class ReadView final : public BlockReader {
 public:
  explicit ReadView(MetaStore* s) noexcept;
  ~ReadView();
  ReadView(const ReadView&) = delete;
  ReadView& operator=(const ReadView&) = delete;
  Result<const std::uint8_t*> Read(std::uint64_t blockno,
                                   const format::Expect& expect) noexcept override;

 private:
  MetaStore* store_;
  std::vector<void*> pinned_;
};

class MetaStore {
 public:
  MetaStore(const block::BlockIo* io, const format::Superblock& sb,
            const MetaStoreOptions& opt) noexcept;
  ~MetaStore();
  MetaStore(const MetaStore&) = delete;
  MetaStore& operator=(const MetaStore&) = delete;

  // mkfs: formats the journal region. The store is then open and empty.
  Status Format() noexcept;
  // mount: opens the journal and replays committed transactions (unless skip_replay).
  Status Open() noexcept;

  Result<WriteTxn> Begin() noexcept;

  // Commits the running transaction (if it has changes made before this call) and waits until it
  // is durable. Concurrent callers share commits.
  Status Sync() noexcept;
  // Sync() and then a checkpoint: every block home, journal empty. Used at unmount.
  Status SyncAndCheckpoint() noexcept;
  // Periodic work: commits the running transaction if it is older than `max_age_ns`.
  Status Tick(std::uint64_t max_age_ns) noexcept;

  void AddCheckpointListener(CheckpointListener* l) noexcept;

  bool errored() const noexcept;
  Status error() const noexcept;
  bool read_only() const noexcept { return opt_.read_only; }
  const format::Superblock& superblock() const noexcept { return sb_; }
  std::uint32_t block_size() const noexcept { return bs_; }
  const block::BlockIo* io() const noexcept { return io_; }
  MetaStoreStats stats() const noexcept;
  std::uint64_t durable_seq() const noexcept;
  // Largest number of distinct blocks one running transaction may hold.
  std::uint64_t max_txn_blocks() const noexcept { return max_txn_blocks_; }
  // Blocks dirty in the running transaction (approximate when read without the lock).
  std::uint64_t running_dirty_blocks() const noexcept;

 private:
  friend class WriteTxn;
  friend class ReadView;
  struct Entry;
  struct Frozen {
    std::uint64_t seq;
    std::uint8_t* data;
  };

  Result<Entry*> Lookup(std::uint64_t blockno, const format::Expect& expect, bool pin) noexcept;
  Entry* NewEntry(std::uint64_t blockno) noexcept;
  void Unpin(Entry* e) noexcept;
  void EvictLocked() noexcept;
  void LinkFront(Entry* e) noexcept;
  void Unlink(Entry* e) noexcept;
  void FreeEntry(Entry* e) noexcept;

  // True if a transaction of `dirty` blocks and `manifest` manifest entries fits an empty log.
  bool FitsLog(std::uint64_t dirty, std::uint64_t manifest) const noexcept;
  // Replaces the running manifest by a pre-commit flush (caller holds rw_ exclusively).
  // Empties the running manifest (into *out if given) and clears the spill mark; returns
  // whether it was spilled (the commit must flush data first). rw_ held exclusively.
  bool TakeManifest(std::vector<format::ManifestEntry>* out) noexcept;
  void SpillManifest() noexcept;
  // Log blocks the running transaction needs (approximate when read without the lock).
  std::uint64_t running_log_blocks() const noexcept;

  Status CommitUntil(std::uint64_t target) noexcept;
  Status DoCommit() noexcept;              // caller holds the commit role
  Status DoCheckpoint() noexcept;          // caller holds the commit role
  Status Replay() noexcept;
  void SetError(Status st) noexcept;
  std::uint8_t* AllocBlock() noexcept;
  void FreeBlock(std::uint8_t* p) noexcept;

  const block::BlockIo* io_;
  const format::Superblock sb_;
  const std::uint32_t bs_;
  const MetaStoreOptions opt_;
  const bool manifest_enabled_;  // superblock has incompat journal_manifest
  JournalLog log_;
  std::uint64_t max_txn_blocks_ = 0;
  std::uint64_t commit_threshold_ = 0;

  RwLock rw_;  // the metadata lock: WriteTxn exclusive, ReadView shared

  mutable Mutex cache_mu_;
  HashMap<std::uint64_t, Entry*> map_ PERMFS_GUARDED_BY(cache_mu_);
  Entry* lru_head_ PERMFS_GUARDED_BY(cache_mu_) = nullptr;  // most recent
  Entry* lru_tail_ PERMFS_GUARDED_BY(cache_mu_) = nullptr;
  HashMap<std::uint64_t, Frozen> checkpoint_ PERMFS_GUARDED_BY(cache_mu_);
  std::uint64_t hits_ = 0, misses_ = 0;

  // Running transaction (guarded by rw_ held exclusively).
  std::vector<Entry*> dirty_;
  std::uint64_t dirty_size_hint_ = 0;  // dirty_.size(), readable without the lock (atomics)
  std::vector<format::ManifestEntry> manifest_;  // the running transaction's data manifest
  std::uint64_t manifest_size_hint_ = 0;  // manifest_.size(), readable without the lock
  bool manifest_spilled_ = false;  // flush before the journal instead of a manifest
  std::uint64_t running_seq_ = 1;
  std::uint64_t epoch_ = 0;
  std::uint64_t running_since_ns_ = 0;
  std::uint64_t root_generation_ = 0;  // generation of the volume root as last checkpointed

  // Commit state.
  mutable Mutex commit_mu_;
  CondVar commit_cv_;
  bool committing_ PERMFS_GUARDED_BY(commit_mu_) = false;
  std::uint64_t durable_seq_ PERMFS_GUARDED_BY(commit_mu_) = 0;
  std::uint64_t last_change_seq_ PERMFS_GUARDED_BY(commit_mu_) = 0;
  Status error_ PERMFS_GUARDED_BY(commit_mu_);
  std::uint64_t commits_ = 0, committed_blocks_ = 0;
  std::atomic<std::uint64_t> checkpoints_{0};
  std::uint64_t data_flushes_ = 0, manifest_entries_ = 0;
  std::uint64_t journal_data_bytes_ = 0;  // manifest bytes of committed, un-checkpointed
                                          // transactions (commit role only)
  std::uint64_t replay_discarded_ = 0;    // written before any concurrency
  std::uint64_t replayed_txns_ = 0, replayed_blocks_ = 0;  // written before any concurrency
  std::vector<CheckpointListener*> listeners_;
};

}  // namespace permfs::journal
