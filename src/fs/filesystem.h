// Filesystem: the POSIX namespace over a mounted Volume — inodes, directories, regular files as
// chunk maps over the ChunkStore, symlinks, hard links, xattrs, device nodes, FIFOs and sockets,
// the orphan list, statfs. Every namespace operation is one journal transaction (all or nothing);
// operations on large files (truncate, unlink of a big file) run as a short sequence of
// transactions made crash-safe by an orphan record that mount finishes.
//
// Errors are POSIX-shaped Status codes (Status::ToErrno gives the errno): NotFound ENOENT,
// Exists EEXIST, NotDirectory ENOTDIR, IsDirectory EISDIR, NotEmpty ENOTEMPTY, NameTooLong
// ENAMETOOLONG, TooManyLinks EMLINK, NoSpace ENOSPC, FileTooBig EFBIG, InvalidArgument EINVAL,
// Permission EPERM, Busy EBUSY, NoData ENODATA, Range ERANGE, ReadOnly EROFS, Corruption,
// IOError. Permission checks (mode bits, ownership) are the adapter's job (the kernel does them
// under FUSE default_permissions); the filesystem stores what it is told.
//
// Durability: changes join the running journal transaction and become durable at Sync()/fsync,
// at the commit threshold, or when the host calls Tick(). Data written by Write() is durable
// together with the metadata that references it (data is flushed before the commit).
//
// Thread-safety: all methods may be called concurrently. Namespace changes serialise on the
// metadata lock; lookups, getattr and readdir share it; file data operations of one inode are
// serialised by a per-inode stripe lock (lock order: inode stripe -> metadata lock).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fs/records.h"
#include "store/chunk_store.h"
#include "util/rwlock.h"
#include "util/sync.h"
#include "volume/volume.h"

namespace permfs::fs {

struct Credentials {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
};

enum SetAttrMask : std::uint32_t {
  kSetMode = 1u << 0,
  kSetUid = 1u << 1,
  kSetGid = 1u << 2,
  kSetSize = 1u << 3,
  kSetAtime = 1u << 4,
  kSetMtime = 1u << 5,
  kSetCtime = 1u << 6,
};

struct SetAttrRequest {
  std::uint32_t mask = 0;
  std::uint32_t mode = 0;  // permission bits (type bits ignored)
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint64_t size = 0;
  std::int64_t atime_ns = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
};

enum RenameFlags : std::uint32_t {
  kRenameNoReplace = 1u << 0,  // RENAME_NOREPLACE
  kRenameExchange = 1u << 1,   // RENAME_EXCHANGE
  kRenameWhiteout = 1u << 2,   // RENAME_WHITEOUT (not supported: EINVAL)
};

enum FallocateMode : std::uint32_t {
  kFallocKeepSize = 0x01,   // FALLOC_FL_KEEP_SIZE
  kFallocPunchHole = 0x02,  // FALLOC_FL_PUNCH_HOLE (requires KEEP_SIZE)
  kFallocZeroRange = 0x10,  // FALLOC_FL_ZERO_RANGE
};

enum XattrFlags : std::uint32_t {
  kXattrCreate = 1,   // XATTR_CREATE: fail with EEXIST if present
  kXattrReplace = 2,  // XATTR_REPLACE: fail with ENODATA if absent
};

struct StatfsInfo {
  std::uint32_t block_size = 0;
  std::uint64_t total_blocks = 0;
  std::uint64_t free_blocks = 0;
  std::uint64_t available_blocks = 0;
  std::uint64_t total_inodes = 0;
  std::uint64_t free_inodes = 0;
  std::uint32_t max_name_len = kMaxNameLen;
};

// Result of an operation that may drop a file's last link. If `orphan` is non-zero the inode
// has no names left and sits on the orphan list; the caller calls Reclaim(orphan) once no open
// handle refers to it (immediately, if none does).
struct UnlinkOutcome {
  std::uint64_t orphan = 0;
};

// Called for each directory entry by ReadDir; `next_cookie` resumes after this entry.
// Return false to stop.
using DirFn = bool (*)(void* ctx, const DirEntry& e, std::uint64_t next_cookie);

class Filesystem {
 public:
  static constexpr std::uint64_t kMaxFileSize = 1ull << 52;  // 4 PiB

  // mkfs step: creates the root directory (inode 1). The volume must be freshly made.
  static Status Format(volume::Volume* v, const Credentials& root_owner,
                       std::uint32_t root_mode = 0755) noexcept;

  explicit Filesystem(volume::Volume* v) noexcept;
  Filesystem(const Filesystem&) = delete;
  Filesystem& operator=(const Filesystem&) = delete;

  // Mount step: finishes interrupted truncations and reclaims unlinked orphans.
  Status Open() noexcept;

  volume::Volume* volume() const noexcept { return vol_; }
  store::ChunkStore* chunks() noexcept { return &store_; }
  std::uint32_t record_size() const noexcept { return rs_; }

  // ---- Namespace -----------------------------------------------------------------------
  Result<InodeRecord> GetAttr(std::uint64_t ino) noexcept;
  Result<InodeRecord> Lookup(std::uint64_t parent, const std::string& name) noexcept;
  // Creates a regular file, FIFO, socket or device node (type from `mode`). With `exclusive`
  // an existing name is EEXIST; without, the existing inode is returned.
  Result<InodeRecord> Create(std::uint64_t parent, const std::string& name, std::uint32_t mode,
                             std::uint64_t rdev, const Credentials& cred,
                             bool exclusive = true) noexcept;
  Result<InodeRecord> Mkdir(std::uint64_t parent, const std::string& name, std::uint32_t mode,
                            const Credentials& cred) noexcept;
  Result<InodeRecord> Symlink(std::uint64_t parent, const std::string& name,
                              const std::string& target, const Credentials& cred) noexcept;
  Result<std::string> Readlink(std::uint64_t ino) noexcept;
  Result<InodeRecord> Link(std::uint64_t ino, std::uint64_t new_parent,
                           const std::string& new_name) noexcept;
  Status Unlink(std::uint64_t parent, const std::string& name, UnlinkOutcome* out) noexcept;
  // Without `out` the removed directory is reclaimed at once; with it, as Unlink: the caller
  // reclaims it once nothing holds it open (fstat of an open, removed directory still works).
  Status Rmdir(std::uint64_t parent, const std::string& name,
               UnlinkOutcome* out = nullptr) noexcept;
  Status Rename(std::uint64_t old_parent, const std::string& old_name, std::uint64_t new_parent,
                const std::string& new_name, std::uint32_t flags, UnlinkOutcome* out) noexcept;
  Result<InodeRecord> SetAttr(std::uint64_t ino, const SetAttrRequest& req) noexcept;
  // Entries after `cookie` (0 = from the start), in cookie order; cookies are stable across
  // concurrent changes (hash-ordered), never 0, 1 or 2 (left for "." and "..").
  Status ReadDir(std::uint64_t dir, std::uint64_t cookie, DirFn fn, void* ctx) noexcept;
  // Frees an orphan's data and inode (no-op if it has links again or is gone).
  Status Reclaim(std::uint64_t ino) noexcept;

  // ---- File data -----------------------------------------------------------------------
  // Reads up to `len` bytes at `off` (short at end of file; holes read as zeros).
  Result<std::size_t> Read(std::uint64_t ino, std::uint64_t off, std::size_t len,
                           std::uint8_t* out) noexcept;
  Status Write(std::uint64_t ino, std::uint64_t off, const std::uint8_t* data,
               std::size_t len) noexcept;
  // Whole-record write used by the hot tier: record `index` becomes exactly `data[0..len)`
  // (len <= record_size; an all-zero record becomes a hole), and the file size becomes at least
  // `min_size`. All records of one call commit in one transaction.
  struct RecordWrite {
    std::uint64_t index;
    const std::uint8_t* data;
    std::size_t len;
    // The record was merged from a partial write: its chunk is kept in the read cache, where
    // the merge of the record's next piece will find it.
    bool merged = false;
  };
  // Record dst_first+k of `dst` becomes record src_first+k of `src` for k < count: the same chunk
  // with one more reference (no data read, written or allocated), or a hole where src has none;
  // what dst held there loses its reference. dst's size becomes at least `min_size`, which must
  // cover every cloned chunk's bytes (a record never holds bytes past the size: InvalidArgument
  // otherwise); its mtime and ctime move. Runs in transactions of many records each: `*done`
  // is the number of records cloned when it returns, also on error. src == dst is allowed when
  // the two runs do not overlap. Takes dst's stripe lock.
  Status CloneRecords(std::uint64_t src, std::uint64_t src_first, std::uint64_t dst,
                      std::uint64_t dst_first, std::uint64_t count, std::uint64_t min_size,
                      std::uint64_t* done) noexcept;
  // `promised`: the records' space was promised (PromiseBlocks), so they may use promised blocks.
  Status WriteRecords(std::uint64_t ino, const RecordWrite* recs, std::size_t n,
                      std::uint64_t min_size, bool touch_mtime = true,
                      bool promised = false) noexcept;
  // Space for data not written yet (alloc::Allocator, "Promises"): the blocks a record of `len`
  // bytes may need when it is written (its chunk and a share of the metadata that maps it).
  std::uint64_t RecordPromiseBlocks(std::uint64_t len) const noexcept;
  [[nodiscard]] bool PromiseBlocks(std::uint64_t blocks) noexcept;
  void UnpromiseBlocks(std::uint64_t blocks) noexcept;
  // Nearly full: less than 2% of the volume plus 64 records is left beside the promises. A
  // promise counts blocks, a chunk needs them in one run; this close to full the free space may
  // be too fragmented for a promised record, so the hot tier stops deferring its promotions.
  bool SpaceIsTight() const noexcept;
  Status Truncate(std::uint64_t ino, std::uint64_t size) noexcept;
  Status Fallocate(std::uint64_t ino, std::uint32_t mode, std::uint64_t off,
                   std::uint64_t len) noexcept;
  // SEEK_DATA / SEEK_HOLE: NoData... returns kNotFound as ENXIO semantics via Code::kNoDevice.
  Result<std::uint64_t> SeekData(std::uint64_t ino, std::uint64_t off) noexcept;
  Result<std::uint64_t> SeekHole(std::uint64_t ino, std::uint64_t off) noexcept;

  // ---- Extended attributes -------------------------------------------------------------
  Result<std::string> GetXattr(std::uint64_t ino, const std::string& name) noexcept;
  // Both move the inode's ctime; with `after`, they give back the inode as they stored it.
  Status SetXattr(std::uint64_t ino, const std::string& name, const std::string& value,
                  std::uint32_t flags, InodeRecord* after = nullptr) noexcept;
  Result<std::vector<std::string>> ListXattr(std::uint64_t ino) noexcept;
  Status RemoveXattr(std::uint64_t ino, const std::string& name,
                     InodeRecord* after = nullptr) noexcept;

  // ---- Volume --------------------------------------------------------------------------
  Result<StatfsInfo> Statfs() noexcept;
  Status Sync() noexcept { return vol_->meta()->Sync(); }

 private:
  friend class FsTxn;
  // Per-inode stripe: exclusive for anything that changes an inode's data or frees its chunks,
  // shared for reads (which then run in parallel on one file).
  RwLock* InodeLock(std::uint64_t ino) noexcept { return &stripes_[ino % kStripes]; }

  // Transaction runner: begins a WriteTxn, runs fn, commits or aborts; retries once after a
  // checkpoint when allocation failed only because freed space awaits a checkpoint.
  // `frees_space` lets the transaction use the allocator's reserve (unlink, rmdir, truncate...).
  template <typename F>
  Status RunTxn(F&& fn, bool frees_space = false) noexcept;
  template <typename F>
  Status RunFreeingTxn(F&& fn) noexcept { return RunTxn(static_cast<F&&>(fn), true); }

  Result<InodeRecord> LoadInode(journal::BlockReader& r, std::uint64_t ino) noexcept;
  Result<InodeRecord> LoadRegularFile(std::uint64_t ino) noexcept;
  Status StoreInode(journal::WriteTxn& t, const InodeRecord& in) noexcept;
  Result<DirEntry> FindEntry(journal::BlockReader& r, std::uint64_t dir,
                             const std::string& name) noexcept;
  Status AddEntry(journal::WriteTxn& t, std::uint64_t dir, const DirEntry& e) noexcept;
  Status RemoveEntry(journal::WriteTxn& t, std::uint64_t dir, const std::string& name) noexcept;
  Result<bool> DirIsEmpty(journal::BlockReader& r, std::uint64_t dir) noexcept;
  Result<InodeRecord> NewInode(journal::WriteTxn& t, std::uint64_t parent_ino,
                               const InodeRecord& parent, std::uint32_t mode,
                               std::uint64_t rdev, const Credentials& cred) noexcept;
  Result<InodeRecord> MakeNode(std::uint64_t parent, const std::string& name, std::uint32_t mode,
                               std::uint64_t rdev, const Credentials& cred, bool exclusive,
                               const std::string* symlink_target) noexcept;
  // Drops one link of `in` (already removed from its directory); puts it on the orphan list at
  // zero links. Writes the inode.
  Status DropLink(journal::WriteTxn& t, InodeRecord& in, UnlinkOutcome* out) noexcept;
  // Unmaps records [first, last) of `ino` in several transactions (the one path behind
  // truncate, punch hole and reclaim).
  Status UnmapRecords(std::uint64_t ino, std::uint64_t first, std::uint64_t last) noexcept;
  // Where a new chunk for record `index` of `ino` should go: the block after the chunk of
  // record index-1 (0, "anywhere", when there is none). Caller holds the stripe lock.
  std::uint64_t PlacementAfter(std::uint64_t ino, std::uint64_t index) noexcept;
  Status CommitRecordsLocked(std::uint64_t ino, const RecordWrite* recs, std::size_t n,
                             std::uint64_t min_size, std::uint64_t exact_size, bool touch,
                             alloc::Draw draw = alloc::Draw::kOrdinary) noexcept;
  // Rewrites the record holding byte `size` so nothing past `size` is stored (idempotent).
  Status TrimPartialRecord(std::uint64_t ino, std::uint64_t size) noexcept;
  Status DeleteKeyRange(std::uint32_t tree, const std::string& from, const std::string& to) noexcept;
  Status ZeroRange(std::uint64_t ino, std::uint64_t off, std::uint64_t len,
                   bool keep_size) noexcept;
  Result<std::string> ReadRecord(std::uint64_t ino, std::uint64_t index, std::uint64_t size) noexcept;
  Status FinishTruncate(std::uint64_t ino) noexcept;
  Result<std::uint64_t> SeekDataOrHole(std::uint64_t ino, std::uint64_t off, bool data) noexcept;

  static bool ValidName(const std::string& name) noexcept;
  static Status CheckName(const std::string& name) noexcept;

  static constexpr std::size_t kStripes = 64;
  volume::Volume* vol_;
  store::ChunkStore store_;
  btree::BTree inodes_, dirs_, chunks_, xattrs_, orphans_;
  const std::uint32_t rs_;
  RwLock stripes_[kStripes];
};

}  // namespace permfs::fs
