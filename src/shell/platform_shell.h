// PlatformShell: the one seam every platform adapter (FUSE today; a kernel VFS, FSKit or ProjFS
// later) talks to. Node ids are inode numbers (1 = root); open-file state is keyed by node id,
// never by path.
//
// The hot tier. write() puts bytes into dirty records of that node, in memory, visible to
// read() and attrs() at once. A dirty record is either complete (it holds the record's bytes) or
// partial: a write that does not cover the record's existing bytes keeps only the sectors it
// wrote (a 64-bit valid mask, sector = record_size / 64) and the rest is merged from the
// committed record when the record is promoted — so a small write never waits for a read
// (except an unaligned write into a sector not yet held, which completes the record first).
// Records are promoted — turned into chunks, with the chunk map and inode committed in one
// transaction — by:
//   flush()   (a close of a file descriptor, for adapters that pass closes on; the FUSE
//              adapter does not, see write_refused),
//   fsync()   (then waits until the transaction is durable),
//   release() (last close of an open; also retires the open state and, for an unlinked file,
//              reclaims it once nothing refers to it),
//   Tick()    (records idle for longer than idle_flush_ns),
//   the flusher (RunFlusher(), on a host thread: full records once the hot tier passes a
//              quarter of its budget, everything of the fullest nodes past seven eighths), and
//   the memory budget (a write that takes the hot tier past budget_bytes promotes first),
// so memory stays bounded whatever the workload. A promotion takes records out of the dirty
// set into the node's in-flight set and hashes, writes and commits them with no shell lock
// held: reads and writes of the node go on meanwhile (reads see in-flight data; a write to an
// in-flight record starts a new dirty record over it). One promotion runs per node at a time.
// Space is promised at write(): a dirty record holds a promise (fs::Filesystem::PromiseBlocks)
// of the blocks its chunk will need, taken before any byte of the write changes, and handed back
// when the record is promoted or discarded. A write whose records do not fit promotes this
// node's records, then every node's (dedupe and overwrites may need less than promised), and is
// refused with ENOSPC if they still do not fit: so a full volume fails the write(2), not a later
// close or fsync. A platform that accepted the bytes already (a writeback cache) reports the
// refusal through write_refused(). A promise counts blocks, and a chunk needs its blocks in one
// run: on a nearly full volume whose free space is fragmented into runs shorter than a record
// (records of many sizes rewritten), a promotion can still find no room; so once the volume is
// nearly full (fs::Filesystem::SpaceIsTight) writes go through to the volume (WriteThroughLocked)
// and such a failure is that write's error. A promotion that fails (that, or an I/O error)
// keeps the dirty data and reports the error at the next write/flush/fsync of that node.
//
// Per-call contracts (errors are Status values; ToErrno() gives the errno):
//   lookup(parent, name)         -> attributes; +1 lookup reference on the node (see forget)
//   forget(node, n)              -> drops n lookup references (an unlinked node without users is
//                                   reclaimed: by the flusher if one runs, in batches within a
//                                   second or at the next statfs, else at once)
//   attrs(node)                  -> attributes including unpromoted size/mtime
//   read(node, off, buf)         -> bytes read (short at EOF); dirty data included
//   write(node, off, data)       -> all bytes accepted or an error (EFBIG, ENOSPC, ...)
//   write_refused(node, off, len) -> see write_refused below
//   enumerate(dir, cookie, fn)   -> entries after cookie (paged: fn returns false to stop)
//   invalidate(node)             -> forgets cached identity and tells the adapter (its callback
//                                   runs on the calling thread with no shell lock held)
//   flush(node) / release(node, writable) / fsync(node, datasync)
//   open(node, writable) / opendir(node) -> +1 open count (release/releasedir drop it)
//   has_writers(node)            -> a writable handle is open (data written through it may still
//                                   sit in the platform's own cache, e.g. a writeback cache);
//                                   nodes_with_writers() lists them all
//   create/mkdir/mknod/symlink/link/unlink/rmdir/rename/setattr/readlink, xattr get/set/list/
//   remove, statfs, fallocate, lseek (data/hole): as fs::Filesystem, with the hot tier folded in.
// After a promotion the shell tells the sink the node's attributes changed (st_blocks), so an
// adapter may cache attributes for long.
//
// Thread-safety: every call may run concurrently from any thread. Lock order: shell table lock
// (short, never held across a call into fs) -> node lock -> fs inode stripe -> metadata lock.
// The pool and flusher locks are leaves.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "fs/filesystem.h"
#include "util/hash_map.h"
#include "util/sync.h"

namespace permfs::shell {

using NodeId = std::uint64_t;
using fs::InodeRecord;

struct ShellOptions {
  std::uint64_t budget_bytes = 256ull << 20;   // hot-tier memory budget
  std::uint64_t idle_flush_ns = 5000000000ull;  // promote records idle this long
  std::uint64_t commit_interval_ns = 5000000000ull;  // journal commit age for Tick()
  bool sync_writes = false;                     // mount -o sync: every write promotes + syncs
  // Promise space at write() (above). Off only to test what follows a promotion without space.
  bool promise_space = true;
};

struct ShellStats {
  std::uint64_t dirty_bytes = 0;   // dirty and in-flight records (record_size each)
  std::uint64_t dirty_records = 0;
  std::uint64_t promotions = 0;
  std::uint64_t promoted_bytes = 0;
  std::uint64_t budget_promotions = 0;
  std::uint64_t idle_promotions = 0;
  std::uint64_t flusher_promotions = 0;
  std::uint64_t partial_merges = 0;    // partial records merged with committed data
  std::uint64_t dropped_records = 0;   // unplaceable dirty records dropped at last close
  std::uint64_t sync_completions = 0;  // writes that had to read a record first
  std::uint64_t refused_writes = 0;    // writes refused with ENOSPC (no space to promise)
  std::uint64_t nodes = 0;
};

// Told when cached kernel state for a node (or a name in a directory) must be dropped.
class InvalidationSink {
 public:
  virtual void InvalidateNode(NodeId node) noexcept = 0;
  virtual void InvalidateEntry(NodeId parent, const std::string& name) noexcept = 0;
  // The node's attributes (not its data) changed behind the adapter, e.g. st_blocks after a
  // promotion. May be called with shell locks held: must only queue, never call the shell.
  virtual void InvalidateAttrs(NodeId node) noexcept = 0;
  // As InvalidateAttrs, for a change the adapter may delay by up to a second and coalesce with
  // others of the same node: st_blocks of a file that already had committed data, after yet
  // another promotion (an fsync loop promotes the same file thousands of times a second; each
  // immediate invalidation costs the next write a GETATTR round trip).
  virtual void InvalidateAttrsSoon(NodeId node) noexcept { InvalidateAttrs(node); }

 protected:
  ~InvalidationSink() = default;
};

// The privilege clearing that comes with a write, truncate, fallocate or owner change when the
// adapter, not the host kernel, owns it (FUSE_HANDLE_KILLPRIV_V2). Plain data.
struct KillPrivileges {
  bool caps = false;     // remove security.capability
  bool suidgid = false;  // clear S_ISUID, and S_ISGID when S_IXGRP is set (not on directories)
  // With suidgid: whether the caller may keep S_ISGID without S_IXGRP on a file of group `gid`
  // (Linux: the caller is in that group, or has CAP_FSETID). Asked only for such a file, with
  // `ctx`; null: the caller keeps it.
  bool (*keeps_sgid)(const void* ctx, std::uint32_t gid) = nullptr;
  const void* ctx = nullptr;
  // The clearing is a mode change only the owner may make (Linux's chown(f, -1, -1)): with
  // `owner_only`, setattr refuses (EPERM) a caller other than `caller_uid` when a set-ID bit
  // would go, before changing anything.
  bool owner_only = false;
  std::uint32_t caller_uid = 0;
  bool any() const noexcept { return caps || suidgid; }
};

class PlatformShell {
 public:
  PlatformShell(fs::Filesystem* fs, const ShellOptions& opt) noexcept;
  ~PlatformShell();
  PlatformShell(const PlatformShell&) = delete;
  PlatformShell& operator=(const PlatformShell&) = delete;

  void set_invalidation_sink(InvalidationSink* s) noexcept { sink_ = s; }
  fs::Filesystem* filesystem() const noexcept { return fs_; }

  // ---- The seam ------------------------------------------------------------------------
  Result<InodeRecord> lookup(NodeId parent, const std::string& name) noexcept;
  void forget(NodeId node, std::uint64_t nlookup) noexcept;
  Result<InodeRecord> attrs(NodeId node) noexcept;
  Result<std::size_t> read(NodeId node, std::uint64_t off, std::size_t len,
                           std::uint8_t* buf) noexcept;
  // kill: the privilege clearing that comes with this write (see kill_privileges).
  Status write(NodeId node, std::uint64_t off, const std::uint8_t* data, std::size_t len,
               const KillPrivileges& kill = {}) noexcept;
  // write() refused [off, off+len) with ENOSPC, but the platform had accepted those bytes
  // already and can report the error only later (a writeback cache's pages: at close or fsync).
  // The range keeps what it held (zeros past the old end), the size grows to cover it as the
  // platform's own size already does, and the platform's cached pages of the node are dropped
  // (InvalidateNode), so the file reads the same now and after a remount.
  Status write_refused(NodeId node, std::uint64_t off, std::size_t len) noexcept;
  // copy_file_range(2): copies up to `len` bytes of `src` from `off_in` to `dst` at `off_out`,
  // stopping at src's end, and returns the bytes copied (0 at or past the end; a short count
  // after an error part way, or at kMaxCopy per call). Records that line up in both files
  // (off_in and off_out equal modulo the record size) are shared, not copied: dst's record takes
  // src's chunk with one more reference, no data is read or written and no space is used. The
  // bytes around them go through read() and write(). `kill` as for write(). Overlapping ranges
  // of one file are InvalidArgument. src's unpromoted writes are promoted first.
  static constexpr std::size_t kMaxCopy = std::size_t{1} << 30;
  Result<std::size_t> copy_range(NodeId src, std::uint64_t off_in, NodeId dst,
                                 std::uint64_t off_out, std::size_t len,
                                 const KillPrivileges& kill = {}) noexcept;
  Status enumerate(NodeId dir, std::uint64_t cookie, fs::DirFn fn, void* ctx) noexcept;
  void invalidate(NodeId node) noexcept;
  Status flush(NodeId node) noexcept;
  // `writable` as given to the open (or create) whose handle this closes.
  Status release(NodeId node, bool writable = false) noexcept;
  Status fsync(NodeId node, bool datasync) noexcept;
  bool has_writers(NodeId node) noexcept;
  // Every node that has a writable handle open (the ones the platform may hold dirty data of).
  std::vector<NodeId> nodes_with_writers() noexcept;

  // ---- Namespace calls -----------------------------------------------------------------
  Status open(NodeId node, bool writable = false) noexcept;
  Status opendir(NodeId node) noexcept;
  Status releasedir(NodeId node) noexcept;
  // Creates and opens (+1 lookup, +1 open). exclusive = O_EXCL semantics (check-then-act under
  // one transaction). Without it an existing name is opened unchanged and `*existed` (if given)
  // says so: the platform then applies O_TRUNC itself.
  // create/mknod/mkdir: `umask` is applied unless the parent has a default ACL
  // (system.posix_acl_default), which the new entry then inherits (POSIX.1e, as ext4 does).
  Result<InodeRecord> create(NodeId parent, const std::string& name, std::uint32_t mode,
                             const fs::Credentials& cred, bool exclusive,
                             std::uint32_t umask = 0, bool writable = false,
                             bool* existed = nullptr) noexcept;
  Result<InodeRecord> mknod(NodeId parent, const std::string& name, std::uint32_t mode,
                            std::uint64_t rdev, const fs::Credentials& cred,
                            std::uint32_t umask = 0) noexcept;
  Result<InodeRecord> mkdir(NodeId parent, const std::string& name, std::uint32_t mode,
                            const fs::Credentials& cred, std::uint32_t umask = 0) noexcept;
  Result<InodeRecord> symlink(NodeId parent, const std::string& name, const std::string& target,
                              const fs::Credentials& cred) noexcept;
  Result<std::string> readlink(NodeId node) noexcept;
  Result<InodeRecord> link(NodeId node, NodeId new_parent, const std::string& new_name) noexcept;
  Status unlink(NodeId parent, const std::string& name) noexcept;
  Status rmdir(NodeId parent, const std::string& name) noexcept;
  Status rename(NodeId old_parent, const std::string& old_name, NodeId new_parent,
                const std::string& new_name, std::uint32_t flags) noexcept;
  // A mode change also rewrites the access ACL's owner/group-class/other entries. `kill` is
  // applied after the change, under the same node lock; the result includes it.
  Result<InodeRecord> setattr(NodeId node, const fs::SetAttrRequest& req,
                              const KillPrivileges& kill = {}) noexcept;
  // Setting system.posix_acl_access also sets the mode's permission bits from it (and a
  // minimal ACL is stored as the mode alone); as Linux's posix_acl_update_mode, S_ISGID goes
  // unless `kill.keeps_sgid` says the caller may keep it (no callback: it stays).
  Result<std::string> getxattr(NodeId node, const std::string& name) noexcept;
  Status setxattr(NodeId node, const std::string& name, const std::string& value,
                  std::uint32_t flags, const KillPrivileges& kill = {}) noexcept;
  Result<std::vector<std::string>> listxattr(NodeId node) noexcept;
  Status removexattr(NodeId node, const std::string& name) noexcept;
  // Clears what `kill` says (see KillPrivileges). The common case (no set-ID bit, no
  // capability) costs no I/O: the node remembers whether it has the capability xattr.
  Status kill_privileges(NodeId node, const KillPrivileges& kill) noexcept;
  Result<fs::StatfsInfo> statfs() noexcept;
  Status fallocate(NodeId node, std::uint32_t mode, std::uint64_t off, std::uint64_t len) noexcept;
  // whence: 3 = SEEK_DATA, 4 = SEEK_HOLE (Linux values).
  Result<std::uint64_t> lseek(NodeId node, std::uint64_t off, int whence) noexcept;

  // ---- Host duties ---------------------------------------------------------------------
  // Idle promotion and periodic journal commit; the host calls it about once a second.
  Status Tick() noexcept;
  // Promotes everything, reclaims unlinked nodes with no users, and makes it all durable.
  Status SyncAll() noexcept;
  // The platform has let go of every node (unmount): its lookup references are dropped, and
  // unlinked nodes no handle holds any more are reclaimed now instead of at the next mount.
  // (FORGETs still queued when a FUSE session ends are never read.) Call before SyncAll.
  void ForgetAll() noexcept;
  // The background flusher: runs on a thread the host provides until StopFlusher(). Optional
  // (without it, budget promotions happen in the writing thread).
  void RunFlusher() noexcept;
  void StopFlusher() noexcept;
  ShellStats stats() const noexcept;

 private:
  struct Record;
  struct Node;
  class PromisePool;

  enum class Pick { kAll, kIdle, kFull };

  Node* GetNode(NodeId id, bool create) noexcept;
  void MaybeDropNode(NodeId id) noexcept;
  void NoteNewReference(NodeId id, bool opened, bool writable) noexcept;
  // +1 open (and writer) of a node; with `dir`, ENOTDIR for anything but a directory.
  Status AddOpen(NodeId node, bool writable, bool dir) noexcept;
  // -1 open (and writer); table_mu_ held. True when no open is left.
  bool DropOpenLocked(Node* n, bool writable) noexcept PERMFS_REQUIRES(table_mu_);
  Status LoadNodeAttrs(Node* n) noexcept;            // node lock held
  // Node lock held (let go of and retaken while promoting): promotes until nothing of the node
  // is in the hot tier or being promoted; a failure is reported here, not deferred.
  Status PromoteAllLocked(Node* n) noexcept;
  // copy_range's byte copy: read() then write(), in pieces.
  Result<std::size_t> CopyThrough(NodeId src, std::uint64_t off_in, NodeId dst,
                                  std::uint64_t off_out, std::size_t len,
                                  const KillPrivileges& kill) noexcept;
  // Node lock held: clears what `kill` asks for, each in its own change.
  Status KillPrivilegesLocked(Node* n, const KillPrivileges& kill) noexcept;
  // Node lock held: removes security.capability if the node has it; `attrs`, if given, takes
  // the ctime that moved.
  Status RemoveCapabilityLocked(Node* n, InodeRecord* attrs) noexcept;
  // Node lock held, attributes loaded: the set-ID bits `kill` clears from the node's mode.
  static std::uint32_t SetIdBitsToClear(const Node* n, const KillPrivileges& kill) noexcept;
  // An xattr of the node was set or removed: drops what the node remembers about
  // security.capability and takes the new mode (ACL) if attrs is given.
  void NoteXattrChange(NodeId id, const std::string& name, const InodeRecord* attrs) noexcept;
  // Node lock held on entry and exit; released while the records are written.
  Status PromoteLocked(Node* n, Pick pick) noexcept;
  void WaitPromotion(Node* n) noexcept;              // node lock held
  // Frees the node's dirty records and its deferred error once no promotion is in flight
  // (node lock held); returns how many there were.
  std::size_t DiscardDirtyLocked(Node* n) noexcept;
  // DiscardDirtyLocked for data that does not fit, at the last close (see release()).
  void DropDirtyLocked(Node* n) noexcept;
  // Commits the node's size if it grew past the committed size (metadata only; node lock held).
  void CommitSizeLocked(Node* n) noexcept;
  // The write's bytes into dirty records, each record's promise taken from `pool` (node lock
  // held, attributes loaded, a regular file).
  Status WriteLocked(Node* n, std::uint64_t off, const std::uint8_t* data, std::size_t len,
                     PromisePool* pool) noexcept;
  // A write when the volume is nearly full (fs::Filesystem::SpaceIsTight): the node's records
  // are promoted, then the bytes are written to the volume directly, so a failure to place them
  // is this write's error and nothing of a refused batch stays behind (node lock held).
  Status WriteThroughLocked(Node* n, std::uint64_t off, const std::uint8_t* data, std::size_t len,
                            const KillPrivileges& kill) noexcept;
  // Blocks a write of [off, end) must have promised beyond what its records hold (node lock held).
  std::uint64_t PromiseNeeded(Node* n, std::uint64_t off, std::uint64_t end) noexcept;
  // Promotes the nodes with dirty records but `current`, all of them or until the hot tier is
  // within its budget (no node lock held).
  void PromoteOthers(Node* current, bool until_under_budget) noexcept;
  // Bytes of record r below the dirty layer (committed or in flight), clamped to the size.
  std::uint64_t BaseLen(Node* n, std::uint64_t r) noexcept;  // node lock held
  // Turns the partial dirty record r into a complete one (reads the bytes below it).
  Status CompleteRecord(Node* n, std::uint64_t r) noexcept;  // node lock held
  void Overlay(const Record& rec, std::uint64_t r, std::uint64_t off, std::uint64_t count,
               std::uint8_t* buf) const noexcept;
  std::uint8_t* GetBuffer() noexcept;
  void PutBuffer(std::uint8_t* p) noexcept;
  void FreeRecord(Record* rec) noexcept;
  void KickFlusher() noexcept;
  void DrainReclaims() noexcept;
  void FlushSome() noexcept;
  Status ReclaimIfUnused(NodeId id) noexcept;
  void NoteOrphan(std::uint64_t ino) noexcept;
  Status OverBudget(Node* current) noexcept;
  // The mode of a new entry in `parent` and, if the parent has a default ACL, the ACLs it
  // inherits (empty strings: none).
  struct InheritedAcl {
    std::string access, dflt;
  };
  Result<std::uint32_t> NewEntryMode(NodeId parent, std::uint32_t mode, std::uint32_t umask,
                                     InheritedAcl* acl) noexcept;
  // Gives the new inode `*made` its inherited ACLs; `*made` becomes its attributes after that.
  Status ApplyInheritedAcl(const InheritedAcl& acl, InodeRecord* made) noexcept;

  fs::Filesystem* fs_;
  const ShellOptions opt_;
  const std::uint32_t rs_;
  InvalidationSink* sink_ = nullptr;

  const std::uint32_t ss_;  // sector of the valid mask: rs_ / 64
  std::uint64_t all_valid_;  // mask with one bit per sector

  mutable Mutex table_mu_;
  HashMap<NodeId, Node*> nodes_ PERMFS_GUARDED_BY(table_mu_);

  // Free record buffers (faulted-in memory; no mmap/munmap per record).
  Mutex pool_mu_;
  std::vector<std::uint8_t*> pool_ PERMFS_GUARDED_BY(pool_mu_);
  std::size_t pool_cap_;

  Mutex flusher_mu_;
  CondVar flusher_cv_{&flusher_mu_};
  bool flusher_stop_ PERMFS_GUARDED_BY(flusher_mu_) = false;
  bool flusher_running_ PERMFS_GUARDED_BY(flusher_mu_) = false;
  std::atomic<bool> flusher_kicked_{false};
  std::vector<NodeId> reclaims_ PERMFS_GUARDED_BY(flusher_mu_);  // orphans for the flusher
  static constexpr std::size_t kReclaimBatch = 64;

  std::atomic<std::uint64_t> dirty_bytes_{0};
  std::atomic<std::uint64_t> dirty_records_{0};
  std::atomic<std::uint64_t> promotions_{0}, promoted_bytes_{0}, budget_promotions_{0},
      idle_promotions_{0}, flusher_promotions_{0}, partial_merges_{0}, sync_completions_{0},
      dropped_records_{0}, refused_writes_{0};
  std::uint64_t last_commit_check_ns_ = 0;
};

}  // namespace permfs::shell
