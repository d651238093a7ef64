#define FUSE_USE_VERSION 312

#include "fuse/fuse_adapter.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fs/filesystem.h"
#include "fuse/mount_device.h"
#include "fuse/shutdown.h"
#include "fuse/uring_transport.h"
#include "fuse/wire_tap.h"
#include "hosted/log_sink.h"
#include "hosted/open_device.h"
#include "shell/platform_shell.h"
#include "volume/volume.h"

namespace permfs::fuse {
namespace {

using shell::PlatformShell;

struct MountState;

// Sends kernel cache invalidations from its own thread, never from a thread holding shell locks.
// "Soon" attribute invalidations of a node are sent at most once a second: the first at once,
// later ones at the end of that second, merged. WriteBackThen() invalidates a file's page cache,
// which makes the kernel write its dirty pages back first (as WRITEs the session's threads
// serve) and returns once they are answered, then runs a continuation; once the session has
// exited, only the continuation runs (nobody would serve those WRITEs).
class Invalidator final : public shell::InvalidationSink {
 public:
  void Start(fuse_session* se) {
    se_ = se;
    thread_ = std::thread([this] { Run(); });
  }
  // Asks the thread to finish what is queued (write-backs then run their continuation only) and
  // waits up to `bound`; false if it is still busy then: stuck in the kernel on a write-back
  // nobody serves any more. Join() after that (and after aborting the connection if false).
  bool StopWithin(std::chrono::milliseconds bound) {
    std::unique_lock<std::mutex> l(mu_);
    stop_ = true;
    cv_.notify_all();
    return cv_.wait_for(l, bound, [this] { return finished_; });
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  void InvalidateNode(shell::NodeId node) noexcept override { Push({node, std::string(), Kind::kNode}); }
  void InvalidateEntry(shell::NodeId parent, const std::string& name) noexcept override {
    Push({parent, name, Kind::kEntry});
  }
  void InvalidateAttrs(shell::NodeId node) noexcept override { Push({node, std::string(), Kind::kAttrs}); }
  void InvalidateAttrsSoon(shell::NodeId node) noexcept override {
    Push({node, std::string(), Kind::kAttrsSoon});
  }
  void WriteBackThen(std::uint64_t node, std::function<void()> then) {
    Push({node, std::string(), Kind::kWriteBack, std::move(then)});
  }

 private:
  static constexpr std::chrono::milliseconds kAttrsInterval{1000};
  using Clock = std::chrono::steady_clock;
  enum class Kind { kNode, kEntry, kAttrs, kAttrsSoon, kWriteBack };
  struct Item {
    std::uint64_t node;
    std::string name;
    Kind kind;
    std::function<void()> then = nullptr;  // kWriteBack
  };
  void Push(Item it) {
    {
      std::lock_guard<std::mutex> l(mu_);
      q_.push_back(std::move(it));
    }
    cv_.notify_all();  // the thread, or StopWithin's waiter
  }
  // A negative offset invalidates the attributes only (the page cache stays).
  void SendAttrs(std::uint64_t node, Clock::time_point now) {
    fuse_lowlevel_notify_inval_inode(se_, node, -1, 0);
    attrs_sent_[node] = now;
    deferred_.erase(node);
  }
  void Run() {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      if (deferred_.empty()) {
        cv_.wait(l, [this] { return stop_ || !q_.empty(); });
      } else {
        Clock::time_point due = Clock::time_point::max();
        for (const auto& [node, t] : deferred_) due = std::min(due, t);
        cv_.wait_until(l, due, [this] { return stop_ || !q_.empty(); });
      }
      if (q_.empty() && stop_) {
        finished_ = true;
        cv_.notify_all();
        return;
      }
      std::deque<Item> batch;
      batch.swap(q_);
      l.unlock();
      const Clock::time_point now = Clock::now();
      for (Item& it : batch) {
        switch (it.kind) {
          case Kind::kNode:
            fuse_lowlevel_notify_inval_inode(se_, it.node, 0, 0);
            break;
          case Kind::kEntry:
            fuse_lowlevel_notify_inval_entry(se_, it.node, it.name.data(), it.name.size());
            break;
          case Kind::kAttrs:
            SendAttrs(it.node, now);
            break;
          case Kind::kWriteBack:
            // Once the loop has ended (the session has exited before the loop returns, and
            // before Stop) nobody serves the WRITEs of the write-back.
            if (!fuse_session_exited(se_))
              fuse_lowlevel_notify_inval_inode(se_, it.node, 0, 0);
            it.then();
            break;
          case Kind::kAttrsSoon: {
            if (deferred_.count(it.node)) break;  // already due at the end of its second
            auto sent = attrs_sent_.find(it.node);
            if (sent != attrs_sent_.end() && now - sent->second < kAttrsInterval)
              deferred_[it.node] = sent->second + kAttrsInterval;
            else
              SendAttrs(it.node, now);
            break;
          }
        }
      }
      std::vector<std::uint64_t> due;
      for (const auto& [node, t] : deferred_)
        if (t <= now) due.push_back(node);
      for (std::uint64_t node : due) SendAttrs(node, now);
      // Forget send times that no longer hold anything back.
      if (attrs_sent_.size() > 4096) {
        for (auto it = attrs_sent_.begin(); it != attrs_sent_.end();)
          it = now - it->second >= kAttrsInterval ? attrs_sent_.erase(it) : std::next(it);
      }
      l.lock();
    }
  }
  fuse_session* se_ = nullptr;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> q_;
  bool stop_ = false;
  bool finished_ = false;
  // Owned by the invalidation thread.
  std::unordered_map<std::uint64_t, Clock::time_point> attrs_sent_;
  std::unordered_map<std::uint64_t, Clock::time_point> deferred_;  // node -> when to send
};

struct MountState {
  PlatformShell* shell = nullptr;
  fs::Filesystem* fs = nullptr;
  // Entry/attribute cache lifetime. The kernel keeps its own caches right for every change made
  // through it; the shell sends InvalidateAttrs for what changes behind it (st_blocks after a
  // promotion or fallocate), so the lifetime can be long.
  double timeout = 10.0;
  bool read_only = false;
  bool writeback = true;
  bool xattrs = true;  // false (noxattr): the xattr ops are not registered, so no POSIX ACLs
  bool selinux_xattr = false;  // true (selinux_xattr): security.selinux stored like any xattr
  std::uint32_t block_size = 4096;
  Invalidator* inval = nullptr;
  const UringTransport* ring = nullptr;  // set when the io_uring transport was started
  std::atomic<std::size_t> seek_writebacks{0};  // SEEK_DATA/HOLE answers waiting for one
};

MountState* State(fuse_req_t req) { return static_cast<MountState*>(fuse_req_userdata(req)); }

void ReplyErr(fuse_req_t req, const Status& st) { fuse_reply_err(req, st.ok() ? 0 : st.ToErrno()); }

void FillStat(const fs::InodeRecord& in, std::uint32_t bs, struct stat* st) {
  memset(st, 0, sizeof *st);
  st->st_ino = in.ino;
  st->st_mode = in.mode;
  st->st_nlink = in.nlink;
  st->st_uid = in.uid;
  st->st_gid = in.gid;
  st->st_rdev = in.rdev;
  st->st_size = static_cast<off_t>(in.size);
  st->st_blksize = bs;
  st->st_blocks = static_cast<blkcnt_t>((in.data_bytes + 511) / 512);
  auto to_ts = [](std::int64_t ns) {
    timespec ts;
    std::int64_t sec = ns / 1000000000;
    std::int64_t rem = ns % 1000000000;
    if (rem < 0) {
      rem += 1000000000;
      sec -= 1;
    }
    ts.tv_sec = static_cast<time_t>(sec);
    ts.tv_nsec = static_cast<long>(rem);
    return ts;
  };
  st->st_atim = to_ts(in.atime_ns);
  st->st_mtim = to_ts(in.mtime_ns);
  st->st_ctim = to_ts(in.ctime_ns);
}

// Times are stored as signed 64-bit nanoseconds (1677..2262); later or earlier times are clamped
// to the representable range instead of wrapping around (ext4 clamps to its range likewise).
std::int64_t TsToNs(const timespec& ts) {
  std::int64_t ns = 0;
  if (__builtin_mul_overflow(static_cast<std::int64_t>(ts.tv_sec), 1000000000ll, &ns) ||
      __builtin_add_overflow(ns, static_cast<std::int64_t>(ts.tv_nsec), &ns))
    return ts.tv_sec < 0 ? INT64_MIN : INT64_MAX;
  return ns;
}

std::int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return TsToNs(ts);
}

void FillEntry(MountState* m, const fs::InodeRecord& in, fuse_entry_param* e) {
  memset(e, 0, sizeof *e);
  e->ino = in.ino;
  e->generation = in.generation;
  FillStat(in, m->block_size, &e->attr);
  e->attr_timeout = m->timeout;
  e->entry_timeout = m->timeout;
}

void ReplyEntry(fuse_req_t req, const Result<fs::InodeRecord>& r) {
  if (!r.ok()) return ReplyErr(req, r.status());
  fuse_entry_param e;
  FillEntry(State(req), *r, &e);
  if (fuse_reply_entry(req, &e) != 0) State(req)->shell->forget(r->ino, 1);
}

fs::Credentials Creds(fuse_req_t req) {
  const fuse_ctx* c = fuse_req_ctx(req);
  return fs::Credentials{c->uid, c->gid};
}

// The caller's umask (FUSE_CAP_DONT_MASK: the kernel leaves applying it to us).
std::uint32_t Umask(fuse_req_t req) { return fuse_req_ctx(req)->umask & 0777u; }

bool ReadOnlyReply(fuse_req_t req) {
  if (!State(req)->read_only) return false;
  fuse_reply_err(req, EROFS);
  return true;
}

// Whether the requester is in group g (its primary group or a supplementary one).
bool CallerInGroup(const void* req_ptr, std::uint32_t g) {
  fuse_req_t req = static_cast<fuse_req_t>(const_cast<void*>(req_ptr));
  if (fuse_req_ctx(req)->gid == g) return true;
  std::vector<gid_t> groups(64);
  int n = fuse_req_getgroups(req, static_cast<int>(groups.size()), groups.data());
  if (n > static_cast<int>(groups.size())) {
    groups.resize(static_cast<std::size_t>(n));
    n = fuse_req_getgroups(req, n, groups.data());
  }
  for (int i = 0; i < n && i < static_cast<int>(groups.size()); ++i)
    if (groups[static_cast<std::size_t>(i)] == g) return true;
  return false;
}

// The privilege clearing a request asks of us under FUSE_HANDLE_KILLPRIV_V2 (none when the
// kernel kept that duty). `caps`: the operation loses security.capability; `suidgid`: the set-ID
// bits go (the kernel's kill bit); `capable`: the caller has CAP_FSETID, so it keeps a set-group-ID
// bit without group execute, which Linux otherwise drops unless the caller is in the file's group
// (setattr_should_drop_sgid; the wire does not carry that rule, the shell asks CallerInGroup).
shell::KillPrivileges KillFor(fuse_req_t req, bool caps, bool suidgid, bool capable) {
  shell::KillPrivileges k;
  if (!wire::KillPrivV2()) return k;
  k.caps = caps;
  k.suidgid = suidgid;
  if (suidgid && !capable) {
    k.keeps_sgid = CallerInGroup;
    k.ctx = req;
  }
  return k;
}

// ---- Operations ----------------------------------------------------------------------------

void OpInit(void* userdata, fuse_conn_info* conn) {
  auto* m = static_cast<MountState*>(userdata);
  auto want = [conn](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
  want(FUSE_CAP_ASYNC_READ);
  want(FUSE_CAP_READDIRPLUS);
  want(FUSE_CAP_READDIRPLUS_AUTO);
  want(FUSE_CAP_PARALLEL_DIROPS);
  if (m->xattrs) want(FUSE_CAP_POSIX_ACL);
  // The umask comes with each create/mkdir/mknod and the shell applies it unless the parent has
  // a default ACL (which replaces it).
  want(FUSE_CAP_DONT_MASK);
  want(FUSE_CAP_CACHE_SYMLINKS);
  want(FUSE_CAP_ASYNC_DIO);
  // O_TRUNC comes with the OPEN (TruncateAtOpen) instead of as a SETATTR after it.
  want(FUSE_CAP_ATOMIC_O_TRUNC);
  if (m->writeback && !m->read_only) want(FUSE_CAP_WRITEBACK_CACHE);
  // Locks: the kernel's local lock manager implements fcntl/OFD/flock semantics.
  conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
  conn->max_write = 1u << 20;
  conn->max_readahead = 1u << 20;
  conn->time_gran = 1;
}

void OpDestroy(void* userdata) {
  auto* m = static_cast<MountState*>(userdata);
  m->shell->SyncAll().IgnoreError();
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  ReplyEntry(req, State(req)->shell->lookup(parent, name));
}

void OpForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  State(req)->shell->forget(ino, nlookup);
  fuse_reply_none(req);
}

void OpForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) State(req)->shell->forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  auto r = State(req)->shell->attrs(ino);
  if (!r.ok()) return ReplyErr(req, r.status());
  struct stat st;
  FillStat(*r, State(req)->block_size, &st);
  fuse_reply_attr(req, &st, State(req)->timeout);
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  if (ReadOnlyReply(req)) return;
  // FUSE_HANDLE_KILLPRIV_V2: a size or owner change loses security.capability; the kernel asks
  // for set-user/group-ID clearing (chown of a non-directory, truncate without CAP_FSETID)
  // unless the request sets the mode itself.
  // chown(f, -1, -1): the kernel drops the mode change it would have made and sets the kill bit
  // only when an owner is given, yet Linux clears the set-ID bits and capabilities for it as for
  // any chown. It arrives as a change of ctime alone for a regular file under the writeback
  // cache (nothing else sends that: the kernel's own time write-backs carry mtime, utimensat
  // with both times omitted sends nothing), and as a change of nothing for any other file.
  // An empty SETATTR of a regular file is instead the kernel's privilege removal before a write
  // (file_remove_privs), which the WRITE's own kill bit covers; the type tells them apart.
  // Linux makes that clearing a mode change, which only the owner may make; the kernel dropped
  // that check along with the mode, so the shell makes it (KillPrivileges::owner_only).
  bool chown_same_owner = to_set == FUSE_SET_ATTR_CTIME;
  if (to_set == 0) {
    auto a = State(req)->shell->attrs(ino);
    if (!a.ok()) return ReplyErr(req, a.status());
    chown_same_owner = !fs::IsRegular(a->mode) && !fs::IsDir(a->mode);  // directories lose nothing
  }
  const bool owner_change =
      chown_same_owner || (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) != 0;
  shell::KillPrivileges kill =
      KillFor(req, owner_change || (to_set & FUSE_SET_ATTR_SIZE),
              (wire::KillSuidgid() || chown_same_owner) && !(to_set & FUSE_SET_ATTR_MODE),
              owner_change && fuse_req_ctx(req)->uid == 0);
  if (chown_same_owner && fuse_req_ctx(req)->uid != 0) {
    kill.owner_only = true;
    kill.caller_uid = fuse_req_ctx(req)->uid;
  }
  fs::SetAttrRequest r;
  const std::int64_t now = NowNs();
  if (to_set & FUSE_SET_ATTR_MODE) r.mask |= fs::kSetMode, r.mode = attr->st_mode;
  if (to_set & FUSE_SET_ATTR_UID) r.mask |= fs::kSetUid, r.uid = attr->st_uid;
  if (to_set & FUSE_SET_ATTR_GID) r.mask |= fs::kSetGid, r.gid = attr->st_gid;
  if (to_set & FUSE_SET_ATTR_SIZE) r.mask |= fs::kSetSize, r.size = static_cast<std::uint64_t>(attr->st_size);
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) r.mask |= fs::kSetAtime, r.atime_ns = now;
  else if (to_set & FUSE_SET_ATTR_ATIME) r.mask |= fs::kSetAtime, r.atime_ns = TsToNs(attr->st_atim);
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) r.mask |= fs::kSetMtime, r.mtime_ns = now;
  else if (to_set & FUSE_SET_ATTR_MTIME) r.mask |= fs::kSetMtime, r.mtime_ns = TsToNs(attr->st_mtim);
  if (to_set & FUSE_SET_ATTR_CTIME) r.mask |= fs::kSetCtime, r.ctime_ns = TsToNs(attr->st_ctim);
  if ((to_set & FUSE_SET_ATTR_SIZE) && !(to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)))
    r.mask |= fs::kSetMtime, r.mtime_ns = now;
  auto res = State(req)->shell->setattr(ino, r, kill);
  if (!res.ok()) return ReplyErr(req, res.status());
  struct stat st;
  FillStat(*res, State(req)->block_size, &st);
  fuse_reply_attr(req, &st, State(req)->timeout);
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  auto r = State(req)->shell->readlink(ino);
  if (!r.ok()) return ReplyErr(req, r.status());
  fuse_reply_readlink(req, r->c_str());
}

void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  if (ReadOnlyReply(req)) return;
  auto* s = State(req)->shell;
  if (S_ISDIR(mode)) return ReplyEntry(req, s->mkdir(parent, name, mode, Creds(req), Umask(req)));
  ReplyEntry(req, s->mknod(parent, name, mode, rdev, Creds(req), Umask(req)));
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  if (ReadOnlyReply(req)) return;
  ReplyEntry(req, State(req)->shell->mkdir(parent, name, mode, Creds(req), Umask(req)));
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  if (ReadOnlyReply(req)) return;
  ReplyErr(req, State(req)->shell->unlink(parent, name));
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  if (ReadOnlyReply(req)) return;
  ReplyErr(req, State(req)->shell->rmdir(parent, name));
}

void OpSymlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  if (ReadOnlyReply(req)) return;
  ReplyEntry(req, State(req)->shell->symlink(parent, name, link, Creds(req)));
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned int flags) {
  if (ReadOnlyReply(req)) return;
  std::uint32_t f = 0;
  if (flags & RENAME_NOREPLACE) f |= fs::kRenameNoReplace;
  if (flags & RENAME_EXCHANGE) f |= fs::kRenameExchange;
  if (flags & RENAME_WHITEOUT) f |= fs::kRenameWhiteout;
  ReplyErr(req, State(req)->shell->rename(parent, name, newparent, newname, f));
}

void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  if (ReadOnlyReply(req)) return;
  ReplyEntry(req, State(req)->shell->link(ino, newparent, newname));
}

// fuse_file_info::fh of a writable handle: the kernel may hold dirty pages for its file until
// its RELEASE, and the shell counts it (has_writers).
constexpr std::uint64_t kWritableHandle = 1;

bool Writable(const fuse_file_info* fi) { return (fi->flags & O_ACCMODE) != O_RDONLY; }

// O_TRUNC of an open (FUSE_CAP_ATOMIC_O_TRUNC: the kernel sends it with the OPEN and no SETATTR
// follows; it sets its own size to 0 when the open succeeds). As do_truncate: size 0, new mtime
// and ctime, security.capability removed, the set-ID bits when the kernel's bit says the caller
// lacks CAP_FSETID.
Result<fs::InodeRecord> TruncateAtOpen(fuse_req_t req, fuse_ino_t ino) {
  fs::SetAttrRequest r;
  r.mask = fs::kSetSize | fs::kSetMtime | fs::kSetCtime;
  r.size = 0;
  r.mtime_ns = r.ctime_ns = NowNs();
  return State(req)->shell->setattr(ino, r, KillFor(req, true, wire::KillSuidgid(), false));
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  const bool truncate = (fi->flags & O_TRUNC) != 0;
  if (State(req)->read_only && ((fi->flags & O_ACCMODE) != O_RDONLY || truncate))
    return (void)fuse_reply_err(req, EROFS);
  const bool writable = Writable(fi);
  Status st = State(req)->shell->open(ino, writable);
  if (!st.ok()) return ReplyErr(req, st);
  fi->fh = writable ? kWritableHandle : 0;
  if (truncate) {
    if (auto t = TruncateAtOpen(req, ino); !t.ok()) {
      State(req)->shell->release(ino, writable).IgnoreError();
      return ReplyErr(req, t.status());
    }
  }
  // O_DIRECT goes through the kernel's direct_IO path (no FOPEN_DIRECT_IO): it writes back and
  // invalidates the page cache over the range first, so an O_DIRECT read sees earlier buffered
  // writes of other descriptors and an O_DIRECT write is seen by later buffered reads, as on a
  // local filesystem. (FOPEN_DIRECT_IO would bypass the cache without that flush.)
  fi->keep_cache = 1;
  if (fuse_reply_open(req, fi) != 0) State(req)->shell->release(ino, writable).IgnoreError();
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
              fuse_file_info* fi) {
  if (ReadOnlyReply(req)) return;
  auto* m = State(req);
  const bool writable = Writable(fi);
  bool existed = false;
  auto r = m->shell->create(parent, name, mode, Creds(req), (fi->flags & O_EXCL) != 0, Umask(req),
                            writable, &existed);
  if (!r.ok()) return ReplyErr(req, r.status());
  // The name appeared between the kernel's LOOKUP and this CREATE: an open of an existing file.
  if (existed && (fi->flags & O_TRUNC)) {
    auto t = TruncateAtOpen(req, r->ino);
    if (!t.ok()) {
      m->shell->release(r->ino, writable).IgnoreError();
      m->shell->forget(r->ino, 1);
      return ReplyErr(req, t.status());
    }
    *r = *t;
  }
  fuse_entry_param e;
  FillEntry(m, *r, &e);
  fi->fh = writable ? kWritableHandle : 0;
  if (fuse_reply_create(req, &e, fi) != 0) {
    m->shell->release(r->ino, writable).IgnoreError();
    m->shell->forget(r->ino, 1);
  }
}

void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  // One buffer per session thread, kept: a fresh 1 MiB vector per read is an mmap, page faults
  // and an munmap with a TLB shootdown each time.
  thread_local std::vector<std::uint8_t> buf;
  if (buf.size() < size) buf.resize(size);
  auto r = State(req)->shell->read(ino, static_cast<std::uint64_t>(off), size, buf.data());
  if (!r.ok()) return ReplyErr(req, r.status());
  fuse_reply_buf(req, reinterpret_cast<const char*>(buf.data()), *r);
}

void OpWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
             fuse_file_info* fi) {
  if (ReadOnlyReply(req)) return;
  // FUSE_HANDLE_KILLPRIV_V2: every write loses security.capability; set-user/group-ID bits go
  // when the kernel says the writer lacks CAP_FSETID.
  const shell::KillPrivileges kill = KillFor(req, true, wire::KillSuidgid(), false);
  auto* m = State(req);
  Status st = m->shell->write(ino, static_cast<std::uint64_t>(off),
                              reinterpret_cast<const std::uint8_t*>(buf), size, kill);
  if (!st.ok()) {
    // Pages of the writeback cache: write(2) succeeded long ago and close/fsync will report the
    // error; the kernel keeps the refused bytes cached (and its larger size), so the shell makes
    // the file match that size and drops the cached pages.
    if (st.IsNoSpace() && fi->writepage)
      m->shell->write_refused(ino, static_cast<std::uint64_t>(off), size).IgnoreError();
    return ReplyErr(req, st);
  }
  fuse_reply_write(req, size);
}

// No FLUSH handler: libfuse answers ENOSYS to the first one and the kernel sends no more, which
// saves close(2) a round trip. Nothing is left for it: the kernel writes a writeback cache's
// dirty pages back at close before it would send FLUSH (a refused WRITE fails the close), write()
// promises the space of what it accepts, and RELEASE promotes the file's dirty records.

void OpRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  // The kernel wrote the handle's dirty pages back before sending this.
  ReplyErr(req, State(req)->shell->release(ino, (fi->fh & kWritableHandle) != 0));
}

// copy_file_range(2) (and cp, which uses it): records that line up in both files are shared,
// not copied (PlatformShell::copy_range). The kernel has written both ranges' dirty pages back
// before it sends this, and drops its cached pages of the destination range after the reply.
void OpCopyFileRange(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info*,
                     fuse_ino_t ino_out, off_t off_out, fuse_file_info*, size_t len, int flags) {
  if (ReadOnlyReply(req)) return;
  if (flags != 0 || off_in < 0 || off_out < 0) return (void)fuse_reply_err(req, EINVAL);
  // As a write: the destination loses security.capability, and its set-ID bits unless the
  // caller is root (the request carries no kill bit; a WRITE's says "lacks CAP_FSETID").
  const shell::KillPrivileges kill = KillFor(req, true, fuse_req_ctx(req)->uid != 0, false);
  // The reply's count is 32 bits wide: copy_range stops at 1 GiB, callers loop.
  auto r = State(req)->shell->copy_range(ino_in, static_cast<std::uint64_t>(off_in), ino_out,
                                         static_cast<std::uint64_t>(off_out), len, kill);
  if (!r.ok()) return ReplyErr(req, r.status());
  fuse_reply_write(req, *r);
}

void OpFsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info*) {
  ReplyErr(req, State(req)->shell->fsync(ino, datasync != 0));
}

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Status st = State(req)->shell->opendir(ino);
  if (!st.ok()) return ReplyErr(req, st);
  fi->cache_readdir = 0;
  fuse_reply_open(req, fi);
}

void ReadDirCommon(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) {
  auto* m = State(req);
  std::vector<char> buf(size);
  size_t pos = 0;
  auto add = [&](const char* name, const fs::InodeRecord* in, std::uint64_t ino_num,
                 std::uint32_t mode, off_t next) -> bool {
    size_t need;
    if (plus) {
      fuse_entry_param e;
      memset(&e, 0, sizeof e);
      if (in) FillEntry(m, *in, &e);
      else e.attr.st_ino = ino_num, e.attr.st_mode = mode;
      need = fuse_add_direntry_plus(req, buf.data() + pos, size - pos, name, &e, next);
    } else {
      struct stat st;
      memset(&st, 0, sizeof st);
      st.st_ino = ino_num;
      st.st_mode = mode;
      need = fuse_add_direntry(req, buf.data() + pos, size - pos, name, &st, next);
    }
    if (need > size - pos) return false;
    pos += need;
    return true;
  };
  auto self = m->shell->attrs(ino);
  if (!self.ok()) return ReplyErr(req, self.status());
  if (off < 1) {
    if (!add(".", nullptr, ino, S_IFDIR, 1)) return (void)fuse_reply_buf(req, buf.data(), pos);
  }
  if (off < 2) {
    if (!add("..", nullptr, self->parent ? self->parent : ino, S_IFDIR, 2))
      return (void)fuse_reply_buf(req, buf.data(), pos);
  }
  // Collect a page of entries first (the shell holds a read lock while enumerating), then add.
  struct Item {
    fs::DirEntry e;
    std::uint64_t next;
  };
  std::vector<Item> items;
  const std::size_t want = size / 32 + 2;
  struct Ctx {
    std::vector<Item>* items;
    std::size_t want;
  } c{&items, want};
  Status st = m->shell->enumerate(
      ino, off >= 16 ? static_cast<std::uint64_t>(off) : 0,
      [](void* p, const fs::DirEntry& e, std::uint64_t next) {
        auto* c = static_cast<Ctx*>(p);
        c->items->push_back(Item{e, next});
        return c->items->size() < c->want;
      },
      &c);
  if (!st.ok() && pos == 0) return ReplyErr(req, st);
  for (const Item& it : items) {
    if (plus) {
      auto r = m->shell->lookup(ino, it.e.name);
      if (!r.ok()) continue;  // removed meanwhile
      if (!add(it.e.name.c_str(), &*r, r->ino, r->mode, static_cast<off_t>(it.next))) {
        m->shell->forget(r->ino, 1);
        break;
      }
    } else if (!add(it.e.name.c_str(), nullptr, it.e.ino, static_cast<std::uint32_t>(it.e.type) << 12,
                    static_cast<off_t>(it.next))) {
      break;
    }
  }
  fuse_reply_buf(req, buf.data(), pos);
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  ReadDirCommon(req, ino, size, off, false);
}

void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  ReadDirCommon(req, ino, size, off, true);
}

void OpReleasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  ReplyErr(req, State(req)->shell->releasedir(ino));
}

void OpFsyncdir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) {
  ReplyErr(req, State(req)->fs->Sync());
}

void OpStatfs(fuse_req_t req, fuse_ino_t) {
  auto r = State(req)->shell->statfs();
  if (!r.ok()) return ReplyErr(req, r.status());
  struct statvfs s;
  memset(&s, 0, sizeof s);
  s.f_bsize = r->block_size;
  s.f_frsize = r->block_size;
  s.f_blocks = r->total_blocks;
  s.f_bfree = r->free_blocks;
  s.f_bavail = r->available_blocks;
  s.f_files = r->total_inodes;
  s.f_ffree = r->free_inodes;
  s.f_favail = r->free_inodes;
  s.f_namemax = r->max_name_len;
  fuse_reply_statfs(req, &s);
}

// security.selinux is not supported on a FUSE mount unless `-o selinux_xattr`: SELinux labels
// FUSE inodes by genfscon, never from this attribute, so storing it serves no policy. Answering
// EOPNOTSUPP (rather than ENODATA) lets ls(1) and libselinux record that the device has no
// labels and stop asking: `ls -l` otherwise sends one GETXATTR round trip per listed file.
// Labels stored on an earlier mount with the option stay on disk, hidden from listxattr.
constexpr char kSelinuxXattr[] = "security.selinux";
bool UnsupportedLabel(fuse_req_t req, const char* name) {
  return !State(req)->selinux_xattr && strcmp(name, kSelinuxXattr) == 0;
}

void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                int flags) {
  if (UnsupportedLabel(req, name)) return (void)fuse_reply_err(req, EOPNOTSUPP);
  if (ReadOnlyReply(req)) return;
  std::uint32_t f = 0;
  if (flags & XATTR_CREATE) f |= fs::kXattrCreate;
  if (flags & XATTR_REPLACE) f |= fs::kXattrReplace;
  // An access ACL set by a caller outside the file's group and without CAP_FSETID loses
  // S_ISGID (posix_acl_update_mode; the kernel's FUSE_SETXATTR_ACL_KILL_SGID does not reach
  // libfuse 3.14's setxattr).
  shell::KillPrivileges kill;
  if (fuse_req_ctx(req)->uid != 0) {
    kill.keeps_sgid = CallerInGroup;
    kill.ctx = req;
  }
  ReplyErr(req, State(req)->shell->setxattr(ino, name, std::string(value, size), f, kill));
}

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  if (UnsupportedLabel(req, name)) return (void)fuse_reply_err(req, EOPNOTSUPP);
  auto r = State(req)->shell->getxattr(ino, name);
  if (!r.ok()) return ReplyErr(req, r.status());
  if (size == 0) return (void)fuse_reply_xattr(req, r->size());
  if (r->size() > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, r->data(), r->size());
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  auto r = State(req)->shell->listxattr(ino);
  if (!r.ok()) return ReplyErr(req, r.status());
  std::string out;
  for (const std::string& n : *r) {
    if (!State(req)->selinux_xattr && n == kSelinuxXattr) continue;
    out += n;
    out.push_back('\0');
  }
  if (size == 0) return (void)fuse_reply_xattr(req, out.size());
  if (out.size() > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, out.data(), out.size());
}

void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  if (UnsupportedLabel(req, name)) return (void)fuse_reply_err(req, EOPNOTSUPP);
  if (ReadOnlyReply(req)) return;
  ReplyErr(req, State(req)->shell->removexattr(ino, name));
}

void OpFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, fuse_file_info*) {
  if (ReadOnlyReply(req)) return;
  if (off < 0 || len <= 0) return (void)fuse_reply_err(req, EINVAL);
  // Linux treats fallocate as a modification (file_modified): capability and, for a caller
  // without CAP_FSETID, the set-ID bits go. FALLOCATE carries no kill bit, so under
  // FUSE_HANDLE_KILLPRIV_V2 root stands for CAP_FSETID here.
  const bool capable = fuse_req_ctx(req)->uid == 0;
  if (const shell::KillPrivileges kill = KillFor(req, true, !capable, capable); kill.any()) {
    Status k = State(req)->shell->kill_privileges(ino, kill);
    if (!k.ok()) return ReplyErr(req, k);
  }
  ReplyErr(req, State(req)->shell->fallocate(ino, static_cast<std::uint32_t>(mode),
                                             static_cast<std::uint64_t>(off),
                                             static_cast<std::uint64_t>(len)));
}

// SEEK_DATA / SEEK_HOLE. A file with a writable handle open may have dirty pages the daemon has
// not seen: the invalidation thread has them written back first, and answers. Over the io_uring
// transport the receiving worker waits for the reply, and the write-back's WRITEs need a free
// worker on their queue: with fewer such waits than workers per queue one always is; past that
// ENOSYS hands lseek to the kernel's generic code for the rest of the mount (every byte up to
// the kernel's own size is data: no holes reported, never a wrong answer).
void OpLseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info*) {
  if (off < 0) return (void)fuse_reply_err(req, ENXIO);
  MountState* m = State(req);
  auto answer = [m, req, ino, off, whence] {
    auto r = m->shell->lseek(ino, static_cast<std::uint64_t>(off), whence);
    if (!r.ok()) return ReplyErr(req, r.status());
    fuse_reply_lseek(req, static_cast<off_t>(*r));
  };
  if (!m->shell->has_writers(ino)) return answer();
  std::size_t limit = SIZE_MAX;
  if (m->ring && m->ring->negotiated()) limit = m->ring->threads_per_queue() - 1;
  if (m->seek_writebacks.fetch_add(1) >= limit) {
    m->seek_writebacks.fetch_sub(1);
    return (void)fuse_reply_err(req, ENOSYS);
  }
  m->inval->WriteBackThen(ino, [m, answer] {
    answer();
    m->seek_writebacks.fetch_sub(1);
  });
}

fuse_lowlevel_ops MakeOps() {
  fuse_lowlevel_ops o;
  memset(&o, 0, sizeof o);
  o.init = OpInit;
  o.destroy = OpDestroy;
  o.lookup = OpLookup;
  o.forget = OpForget;
  o.forget_multi = OpForgetMulti;
  o.getattr = OpGetattr;
  o.setattr = OpSetattr;
  o.readlink = OpReadlink;
  o.mknod = OpMknod;
  o.mkdir = OpMkdir;
  o.unlink = OpUnlink;
  o.rmdir = OpRmdir;
  o.symlink = OpSymlink;
  o.rename = OpRename;
  o.link = OpLink;
  o.open = OpOpen;
  o.read = OpRead;
  o.write = OpWrite;
  o.release = OpRelease;
  o.fsync = OpFsync;
  o.opendir = OpOpendir;
  o.readdir = OpReaddir;
  o.readdirplus = OpReaddirplus;
  o.releasedir = OpReleasedir;
  o.fsyncdir = OpFsyncdir;
  o.statfs = OpStatfs;
  o.setxattr = OpSetxattr;
  o.getxattr = OpGetxattr;
  o.listxattr = OpListxattr;
  o.removexattr = OpRemovexattr;
  o.create = OpCreate;
  o.fallocate = OpFallocate;
  o.copy_file_range = OpCopyFileRange;
  o.lseek = OpLseek;
  return o;
}

// ---- Mount command -------------------------------------------------------------------------

void Usage(FILE* f) {
  std::fprintf(f,
               "usage: permfs mount IMAGE MOUNTPOINT [-o OPTIONS] [-f|--foreground] [-d]\n"
               "options: ro, rw, sync, noatime, relatime, allow_other, hot_tier_mb=N,\n"
               "         read_cache_mb=N (recently read chunks kept in memory; 0: none),\n"
               "         noxattr (no extended attributes or ACLs: no GETXATTR before each write),\n"
               "         selinux_xattr (store security.selinux; default: EOPNOTSUPP for it),\n"
               "         idle_flush_ms=N, writeback_cache, no_writeback_cache, threads=N,\n"
               "         bdi_max_ratio=N (kernel dirty-cache share, %% of the threshold; 0: keep),\n"
               "         read_ahead_kb=N (kernel readahead window, default 1024; 0: keep 128),\n"
               "         and libfuse options (fsname=, max_read=, ...)\n");
}

// The kernel caps a FUSE mount's dirty page cache at 1% of the dirty threshold with a strict
// per-device limit (protection against untrusted daemons), so random writes are throttled to
// one WRITE round trip each. A root-mounted PermFS is trusted: give its backing device a larger
// share and lift the strict limit (Linux 6.2+ sysfs knobs; silently skipped elsewhere).
// The kernel also caps a FUSE mount's readahead at its 128 KiB default whatever max_readahead
// the daemon asks for; a 1 MiB window lets one READ cover 16 chunks (+12% cold sequential read).
// Either knob is skipped when its value is 0.
void TuneBdi(const MountDevice& device, unsigned max_ratio, unsigned read_ahead_kb) {
  const std::string bdi = "/sys/class/bdi/" + device.BdiName() + "/";
  auto put = [&](const char* knob, const std::string& v) {
    if (FILE* f = std::fopen((bdi + knob).c_str(), "w")) {
      std::fputs(v.c_str(), f);
      std::fclose(f);
    }
  };
  if (max_ratio > 0) {
    put("max_ratio", std::to_string(max_ratio));
    put("strict_limit", "0");
  }
  if (read_ahead_kb > 0) put("read_ahead_kb", std::to_string(read_ahead_kb));
}

bool ParseUint(const std::string& s, std::uint64_t* out) {
  if (s.empty()) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
    if (v > (1ull << 40)) return false;
  }
  *out = v;
  return true;
}

}  // namespace

int MountMain(int argc, char** argv) {
  std::string image, mountpoint;
  std::vector<std::string> fuse_opts;
  bool foreground = false, debug = false, read_only = false, sync = false, writeback = true,
       xattrs = true, selinux_xattr = false;
  enum class UringMode { kAuto, kOn, kOff } uring_mode = UringMode::kAuto;
  // Default hot tier: 1/64 of physical memory, between 256 MiB and 1 GiB. bench/compare
  // --scaling found no throughput gain above 256 MiB here (the kernel's page cache in front
  // absorbs bursts); a bigger budget only raised the daemon's memory (1/16 of 24 GiB gave 1 GiB
  // peak RSS in a sequential write).
  // Default read cache: 1/64 of physical memory, between 32 and 512 MiB (a 4 KiB page-cache
  // miss would otherwise re-read and re-verify a whole chunk for every page of it).
  std::uint64_t hot_mb = 256, cache_mb = 32, idle_ms = 5000, threads = 8, bdi_ratio = 40,
                readahead_kb = 1024;
  {
    const long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psize > 0) {
      const std::uint64_t mb = static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(psize) >> 20;
      hot_mb = mb / 64 < 256 ? 256 : mb / 64 > 1024 ? 1024 : mb / 64;
      cache_mb = mb / 64 < 32 ? 32 : mb / 64 > 512 ? 512 : mb / 64;
    }
  }
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      Usage(stdout);
      return 0;
    }
    if (a == "-f" || a == "--foreground") {
      foreground = true;
    } else if (a == "-d") {
      debug = true;
      foreground = true;
    } else if (a == "-o" || a.rfind("-o", 0) == 0) {
      std::string opts = a == "-o" ? (i + 1 < argc ? argv[++i] : "") : a.substr(2);
      std::size_t start = 0;
      while (start <= opts.size()) {
        std::size_t comma = opts.find(',', start);
        std::string o = opts.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        start = comma == std::string::npos ? opts.size() + 1 : comma + 1;
        if (o.empty()) continue;
        std::uint64_t v = 0;
        if (o == "ro") read_only = true;
        else if (o == "rw") read_only = false;
        else if (o == "sync") sync = true;
        else if (o == "async" || o == "noatime" || o == "relatime" || o == "atime" ||
                 o == "nodiratime" || o == "defaults" || o == "nofail" || o == "_netdev" ||
                 o == "auto" || o == "noauto" || o == "user" || o == "nouser" || o == "exec" ||
                 o == "noexec" || o == "suid" || o == "nosuid" || o == "dev" || o == "nodev")
          continue;  // atime is never updated on read: noatime semantics (see docs)
        else if (o == "writeback_cache") writeback = true;
        else if (o == "no_writeback_cache") writeback = false;
        else if (o == "noxattr") xattrs = false;
        else if (o == "xattr") xattrs = true;
        else if (o == "selinux_xattr") selinux_xattr = true;
        else if (o == "uring") uring_mode = UringMode::kOn;
        else if (o == "nouring") uring_mode = UringMode::kOff;
        else if (o.rfind("hot_tier_mb=", 0) == 0) {
          if (!ParseUint(o.substr(12), &v) || v == 0) {
            std::fprintf(stderr, "permfs mount: bad value in %s\n", o.c_str());
            return 2;
          }
          hot_mb = v;
        } else if (o.rfind("read_cache_mb=", 0) == 0) {
          if (!ParseUint(o.substr(14), &v) || v > (1u << 20)) {
            std::fprintf(stderr, "permfs mount: bad value in %s\n", o.c_str());
            return 2;
          }
          cache_mb = v;
        } else if (o.rfind("read_ahead_kb=", 0) == 0) {
          if (!ParseUint(o.substr(14), &v) || v > 65536) {
            std::fprintf(stderr, "permfs mount: bad value in %s\n", o.c_str());
            return 2;
          }
          readahead_kb = v;
        } else if (o.rfind("bdi_max_ratio=", 0) == 0) {
          if (!ParseUint(o.substr(14), &v) || v > 100) {
            std::fprintf(stderr, "permfs mount: bad value in %s\n", o.c_str());
            return 2;
          }
          bdi_ratio = v;
        } else if (o.rfind("idle_flush_ms=", 0) == 0) {
          if (!ParseUint(o.substr(14), &v)) {
            std::fprintf(stderr, "permfs mount: bad value in %s\n", o.c_str());
            return 2;
          }
          idle_ms = v;
        } else if (o.rfind("threads=", 0) == 0) {
          if (!ParseUint(o.substr(8), &v) || v == 0 || v > 256) {
            std::fprintf(stderr, "permfs mount: bad value in %s\n", o.c_str());
            return 2;
          }
          threads = v;
        } else {
          fuse_opts.push_back(o);
        }
      }
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "permfs mount: unknown option %s\n", a.c_str());
      Usage(stderr);
      return 2;
    } else if (image.empty()) {
      image = a;
    } else if (mountpoint.empty()) {
      mountpoint = a;
    } else {
      std::fprintf(stderr, "permfs mount: unexpected argument %s\n", a.c_str());
      Usage(stderr);
      return 2;
    }
  }
  if (image.empty() || mountpoint.empty()) {
    Usage(stderr);
    return 2;
  }
  struct stat mst;
  if (stat(mountpoint.c_str(), &mst) != 0) {
    // ENOTCONN: a dead FUSE mount is still there (`fusermount3 -u` it).
    std::fprintf(stderr, "permfs mount: %s: %s\n", mountpoint.c_str(), strerror(errno));
    return 1;
  }
  if (!S_ISDIR(mst.st_mode)) {
    std::fprintf(stderr, "permfs mount: %s: not a directory\n", mountpoint.c_str());
    return 1;
  }

  // Memory stays bounded only if freed hot-tier records (64 KiB+) go back to the OS: with glibc's
  // dynamic mmap threshold they come from per-thread arenas instead, which fragment and keep
  // growing (~30 MiB per GiB written to one file with 8 session threads). A fixed threshold
  // serves them with mmap/munmap; fewer arenas bound the rest.
  mallopt(M_MMAP_THRESHOLD, 64 * 1024);
  mallopt(M_ARENA_MAX, 4);

  hosted::OpenOptions oo;
  oo.block_size = 4096;
  oo.read_only = read_only;
  oo.exclusive = true;
  oo.backend = hosted::Backend::kFile;
  auto dev = hosted::OpenBlockDevice(image, oo);
  if (!dev.ok()) {
    std::fprintf(stderr, "permfs mount: cannot open %s: %s\n", image.c_str(), dev.status().message());
    return 1;
  }
  volume::MountOptions vo;
  vo.read_only = read_only;
  volume::MountReport report;
  auto vol = volume::Volume::Mount(dev->get(), vo, &report);
  if (!vol.ok()) {
    std::fprintf(stderr,
                 "permfs mount: %s is not a mountable PermFS volume: %s\n"
                 "  run `permfs fsck %s` to check (and `permfs fsck --repair %s` to repair) it\n",
                 image.c_str(), vol.status().message(), image.c_str(), image.c_str());
    return 1;
  }
  if (report.replayed_transactions)
    std::fprintf(stderr, "permfs mount: replayed %llu journal transactions\n",
                 static_cast<unsigned long long>(report.replayed_transactions));
  read_only = (*vol)->read_only();
  fs::Filesystem fsys(vol->get());
  fsys.chunks()->SetReadCache(static_cast<std::size_t>(cache_mb) << 20);
  if (!read_only) {
    Status st = fsys.Open();
    if (!st.ok()) {
      std::fprintf(stderr, "permfs mount: %s: %s; run `permfs fsck %s`\n", image.c_str(),
                   st.message(), image.c_str());
      return 1;
    }
  }
  shell::ShellOptions so;
  so.budget_bytes = hot_mb << 20;
  so.idle_flush_ns = idle_ms * 1000000ull;
  so.sync_writes = sync;
  PlatformShell sh(&fsys, so);
  MountState ms;
  ms.shell = &sh;
  ms.fs = &fsys;
  ms.read_only = read_only;
  ms.writeback = writeback && !sync;
  ms.block_size = (*vol)->sb().block_size;
  ms.xattrs = xattrs;
  ms.selinux_xattr = selinux_xattr;

  std::string opt_string = "default_permissions,fsname=" + image + ",subtype=permfs";
  if (read_only) opt_string += ",ro";
  for (const std::string& o : fuse_opts) opt_string += "," + o;
  std::vector<std::string> fargs = {"permfs", "-o", opt_string};
  if (debug) fargs.push_back("-d");
  std::vector<char*> fargv;
  for (std::string& s : fargs) fargv.push_back(s.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(fargv.size()), fargv.data());
  fuse_lowlevel_ops ops = MakeOps();
  if (!xattrs) {
    // Unregistered ops answer ENOSYS once; the kernel then stops asking. The point: with xattrs
    // the kernel sends a GETXATTR(security.capability) round trip before every write(2)
    // (FUSE never sets SB_NOSEC), which bounds small-write rates.
    ops.getxattr = nullptr;
    ops.setxattr = nullptr;
    ops.listxattr = nullptr;
    ops.removexattr = nullptr;
  }
  fuse_session* se = fuse_session_new(&args, &ops, sizeof ops, &ms);
  // fuse_session_new parsed `args` into a copy it allocated (and keeps nothing of it).
  fuse_opt_free_args(&args);
  if (!se) {
    std::fprintf(stderr, "permfs mount: cannot create the FUSE session (bad -o option?)\n");
    return 1;
  }
  if (uring_mode == UringMode::kOn && !FuseUringEnabled()) {
    // Before the mount: the kernel decides what FUSE_INIT offers when it sends it, at mount time.
    std::string why;
    if (!EnableFuseUring(&why))
      std::fprintf(stderr, "permfs mount: no FUSE over io_uring (%s); using /dev/fuse\n", why.c_str());
  }
  // Ours first: fuse_set_signal_handlers then leaves SIGTERM, SIGINT and SIGHUP alone.
  Terminator terminator;
  // Before the mount: once mounted, resolving the path would stat the mount's root, which asks
  // this daemon, not serving yet.
  char abs_mountpoint[PATH_MAX];
  if (!realpath(mountpoint.c_str(), abs_mountpoint)) {
    std::fprintf(stderr, "permfs mount: %s: %s\n", mountpoint.c_str(), strerror(errno));
    fuse_session_destroy(se);
    return 1;
  }
  if (fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, mountpoint.c_str()) != 0) {
    std::fprintf(stderr, "permfs mount: cannot mount on %s\n", mountpoint.c_str());
    fuse_session_destroy(se);
    return 1;
  }
  const std::optional<MountDevice> device = FindMountDevice(abs_mountpoint);
  if (device)
    TuneBdi(*device, read_only ? 0u : static_cast<unsigned>(bdi_ratio),
            static_cast<unsigned>(readahead_kb));
  if (!foreground) fuse_daemonize(0);
  // FUSE over io_uring (Linux 6.14+): per-CPU request queues served on the CPU that issued the
  // request. `uring` turns the module parameter on; by default it is used when already on.
  std::unique_ptr<UringTransport> ring;
  if (uring_mode != UringMode::kOff && FuseUringEnabled()) {
    std::string why;
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    const std::uint64_t cpus = online > 0 ? static_cast<std::uint64_t>(online) : 1;
    ring = UringTransport::Start(se, static_cast<unsigned>((threads + cpus - 1) / cpus), &why);
    if (ring)
      std::fprintf(stderr, "permfs mount: FUSE over io_uring: %u queues x %u threads\n",
                   ring->queues(), ring->threads_per_queue());
    else if (uring_mode == UringMode::kOn)
      std::fprintf(stderr, "permfs mount: no FUSE over io_uring (%s); using /dev/fuse\n",
                   why.c_str());
  }
  if (!ring && !wire::InstallClassicHooks(se))
    std::fprintf(stderr, "permfs mount: cannot hook the FUSE session's I/O; continuing without\n");
  ms.ring = ring.get();
  Invalidator inval;
  ms.inval = &inval;
  inval.Start(se);
  sh.set_invalidation_sink(&inval);
  std::atomic<bool> stop{false};
  std::thread ticker([&] {
    while (!stop.load()) {
      for (int i = 0; i < 10 && !stop.load(); ++i) usleep(100000);
      if (!stop.load() && !read_only) sh.Tick().IgnoreError();
    }
  });
  std::thread flusher;
  if (!read_only) flusher = std::thread([&] { sh.RunFlusher(); });
  fuse_loop_config* cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(cfg, static_cast<unsigned>(threads));
  fuse_loop_cfg_set_clone_fd(cfg, 0);
  terminator.Start(se, [&sh, se] {
    // Only files with a writable handle can have dirty pages (a shared writable mapping keeps
    // its handle); syncfs would not do: FUSE answers it once the WRITEs are queued, not served.
    // Returns once the kernel has written the file's dirty pages back and had them answered.
    for (shell::NodeId id : sh.nodes_with_writers()) fuse_lowlevel_notify_inval_inode(se, id, 0, 0);
  });
  int rc = fuse_session_loop_mt(se, cfg);
  terminator.LoopEnded();
  fuse_loop_cfg_destroy(cfg);
  if (ring) {
    ring->Stop();
    const std::string failure = ring->failure();
    if (!ring->negotiated())
      std::fprintf(stderr, "permfs mount: FUSE over io_uring not used: %s\n",
                   failure.empty() ? "not negotiated" : failure.c_str());
    else if (!failure.empty())
      std::fprintf(stderr, "permfs mount: FUSE over io_uring: %s\n", failure.c_str());
    if (uring_mode == UringMode::kOn)
      std::fprintf(stderr, "permfs mount: served %llu requests over io_uring\n",
                   static_cast<unsigned long long>(ring->served()));
  }
  stop.store(true);
  ticker.join();
  sh.StopFlusher();
  if (flusher.joinable()) flusher.join();
  // Before the unmount closes /dev/fuse (its thread writes there). Write-backs still queued are
  // answered without one: nobody serves their WRITEs any more. Their answers run shell calls
  // that may still notify the sink, so it goes only after the thread.
  // A thread of ours still inside the kernel waiting on a write-back nobody serves any more is
  // released by aborting the connection: exiting would not release it, and the mount's users
  // would hang with it.
  if (!inval.StopWithin(std::chrono::seconds(2))) {
    std::string why;
    if (!device || !AbortConnection(device->FuseConnection(), &why))
      std::fprintf(stderr, "permfs mount: cannot abort the FUSE connection%s%s; waiting\n",
                   why.empty() ? "" : ": ", why.c_str());
    else
      std::fprintf(stderr, "permfs mount: aborted the FUSE connection: the kernel still waited "
                   "on a write-back nobody serves\n");
  }
  inval.Join();
  sh.set_invalidation_sink(nullptr);
  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  ring.reset();
  sh.ForgetAll();  // the kernel is gone: its references with it
  Status st = sh.SyncAll();
  Status um = (*vol)->Unmount();
  if (!st.ok() || !um.ok()) {
    std::fprintf(stderr, "permfs mount: unmount of %s failed: %s\n", image.c_str(),
                 (!st.ok() ? st : um).message());
    return 1;
  }
  return rc == 0 ? 0 : 1;
}

int UmountMain(int argc, char** argv) {
  if (argc != 2 || argv[1][0] == '-') {
    std::fprintf(stderr, "usage: permfs umount MOUNTPOINT\n");
    return 2;
  }
  pid_t pid = fork();
  if (pid == 0) {
    execlp("fusermount3", "fusermount3", "-u", argv[1], static_cast<char*>(nullptr));
    std::perror("permfs umount: fusermount3");
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) return 1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

}  // namespace permfs::fuse
