// Namespace operations of Filesystem (see filesystem.h). File data lives in file_data.cc,
// extended attributes in xattr.cc.
#include "fs/filesystem.h"

#include "fs/txn_runner.h"
#include "util/bytes.h"
#include "util/log.h"

namespace permfs::fs {

using btree::Slice;
using journal::BlockReader;
using journal::ReadView;
using journal::WriteTxn;

namespace {

std::int64_t Now() { return port::WallClockNanos(); }

constexpr std::size_t kBucketCap = 8;
constexpr std::size_t kSymlinkPiece = 800;

}  // namespace

Filesystem::Filesystem(volume::Volume* v) noexcept
    : vol_(v), store_(v), inodes_(v->meta(), v->allocator(), v->roots(), kInodeTree),
      dirs_(v->meta(), v->allocator(), v->roots(), kDirTree),
      chunks_(v->meta(), v->allocator(), v->roots(), kChunkTree),
      xattrs_(v->meta(), v->allocator(), v->roots(), kXattrTree),
      orphans_(v->meta(), v->allocator(), v->roots(), kOrphanTree),
      rs_(v->sb().record_size) {}

bool Filesystem::ValidName(const std::string& name) noexcept {
  if (name.empty() || name == "." || name == "..") return false;
  for (char c : name)
    if (c == '/' || c == '\0') return false;
  return true;
}

Status Filesystem::CheckName(const std::string& name) noexcept {
  if (name.size() > kMaxNameLen) return Status(Code::kNameTooLong, "name longer than 255 bytes");
  if (!ValidName(name)) return Status::InvalidArgument("invalid file name");
  return Status();
}

Result<InodeRecord> Filesystem::LoadInode(BlockReader& r, std::uint64_t ino) noexcept {
  if (ino == 0) return Status::InvalidArgument("inode 0 is never valid");
  std::string v;
  Status st = inodes_.Get(r, Slice(InodeKey(ino)), &v);
  if (st.IsNotFound()) return Status(Code::kNotFound, "no such inode");
  PERMFS_RETURN_IF_ERROR(st);
  return InodeRecord::Decode(ino, reinterpret_cast<const std::uint8_t*>(v.data()), v.size());
}

Status Filesystem::StoreInode(WriteTxn& t, const InodeRecord& in) noexcept {
  std::uint8_t buf[InodeRecord::kEncodedSize];
  in.Encode(buf);
  return inodes_.Put(t, Slice(InodeKey(in.ino)), Slice(buf, sizeof buf));
}

Status Filesystem::Format(volume::Volume* v, const Credentials& owner,
                          std::uint32_t root_mode) noexcept {
  Filesystem fs(v);
  return fs.RunTxn([&](WriteTxn& t) -> Status {
    InodeRecord root;
    root.ino = kRootIno;
    root.mode = kTypeDir | (root_mode & 07777);
    root.uid = owner.uid;
    root.gid = owner.gid;
    root.nlink = 2;
    root.atime_ns = root.mtime_ns = root.ctime_ns = root.btime_ns = Now();
    root.generation = 1;
    root.parent = kRootIno;
    PERMFS_RETURN_IF_ERROR(fs.inodes_.Insert(t, Slice(InodeKey(kRootIno)), Slice(std::string())));
    PERMFS_RETURN_IF_ERROR(fs.StoreInode(t, root));
    PERMFS_RETURN_IF_ERROR(v->roots()->SetCounter(t, format::kCounterNextInode, kRootIno + 1));
    return v->roots()->SetCounter(t, format::kCounterInodes, 1);
  });
}

Status Filesystem::Open() noexcept {
  // Collect orphans first (no lock held while reclaiming).
  std::vector<std::pair<std::uint64_t, std::uint8_t>> todo;
  {
    ReadView view(vol_->meta());
    PERMFS_RETURN_IF_ERROR(orphans_.Scan(
        view, Slice(), Slice(),
        [](void* ctx, const Slice& k, const Slice& v) {
          auto* out = static_cast<std::vector<std::pair<std::uint64_t, std::uint8_t>>*>(ctx);
          if (k.size == 8 && v.size >= 1) out->push_back({KeyU64(k.data), v.data[0]});
          return true;
        },
        &todo));
  }
  for (auto& [ino, kind] : todo) {
    if (kind == static_cast<std::uint8_t>(OrphanKind::kTruncate)) {
      PERMFS_RETURN_IF_ERROR(FinishTruncate(ino));
    } else {
      PERMFS_RETURN_IF_ERROR(Reclaim(ino));
    }
  }
  if (!todo.empty()) PERMFS_LOG(kInfo, "fs: processed ", todo.size(), " orphan records at mount");
  return Status();
}

// ---- Directory entries --------------------------------------------------------------------

Result<DirEntry> Filesystem::FindEntry(BlockReader& r, std::uint64_t dir,
                                       const std::string& name) noexcept {
  std::string v;
  Status st = dirs_.Get(r, Slice(DirKey(dir, DirHash(name))), &v);
  if (st.IsNotFound()) return Status(Code::kNotFound, "no such file or directory");
  PERMFS_RETURN_IF_ERROR(st);
  DirEntry es[kBucketCap];
  std::size_t n = 0;
  PERMFS_RETURN_IF_ERROR(
      DecodeBucket(reinterpret_cast<const std::uint8_t*>(v.data()), v.size(), es, kBucketCap, &n));
  for (std::size_t i = 0; i < n; ++i)
    if (es[i].name == name) return es[i];
  return Status(Code::kNotFound, "no such file or directory");
}

Status Filesystem::AddEntry(WriteTxn& t, std::uint64_t dir, const DirEntry& e) noexcept {
  const std::string key = DirKey(dir, DirHash(e.name));
  std::string v;
  DirEntry es[kBucketCap];
  std::size_t n = 0;
  Status st = dirs_.Get(t, Slice(key), &v);
  if (st.ok()) {
    PERMFS_RETURN_IF_ERROR(DecodeBucket(reinterpret_cast<const std::uint8_t*>(v.data()), v.size(),
                                        es, kBucketCap, &n));
    for (std::size_t i = 0; i < n; ++i)
      if (es[i].name == e.name) return Status::Exists("file exists");
    if (n == kBucketCap) return Status::NoSpace("directory hash bucket full");
  } else if (!st.IsNotFound()) {
    return st;
  }
  es[n++] = e;
  std::string enc = EncodeBucket(es, n);
  if (enc.size() + key.size() > dirs_.max_entry_payload())
    return Status::NoSpace("directory hash bucket full");
  return dirs_.Put(t, Slice(key), Slice(enc));
}

Status Filesystem::RemoveEntry(WriteTxn& t, std::uint64_t dir, const std::string& name) noexcept {
  const std::string key = DirKey(dir, DirHash(name));
  std::string v;
  PERMFS_RETURN_IF_ERROR(dirs_.Get(t, Slice(key), &v));
  DirEntry es[kBucketCap];
  std::size_t n = 0;
  PERMFS_RETURN_IF_ERROR(
      DecodeBucket(reinterpret_cast<const std::uint8_t*>(v.data()), v.size(), es, kBucketCap, &n));
  std::size_t keep = 0;
  bool found = false;
  for (std::size_t i = 0; i < n; ++i) {
    if (es[i].name == name) {
      found = true;
      continue;
    }
    es[keep++] = es[i];
  }
  if (!found) return Status::NotFound();
  if (keep == 0) return dirs_.Delete(t, Slice(key));
  return dirs_.Put(t, Slice(key), Slice(EncodeBucket(es, keep)));
}

Result<bool> Filesystem::DirIsEmpty(BlockReader& r, std::uint64_t dir) noexcept {
  bool any = false;
  PERMFS_RETURN_IF_ERROR(dirs_.Scan(
      r, Slice(DirKey(dir, 0)), Slice(DirKey(dir + 1, 0)),
      [](void* ctx, const Slice&, const Slice&) {
        *static_cast<bool*>(ctx) = true;
        return false;
      },
      &any));
  return !any;
}

// ---- Lookups ------------------------------------------------------------------------------

Result<InodeRecord> Filesystem::GetAttr(std::uint64_t ino) noexcept {
  ReadView view(vol_->meta());
  return LoadInode(view, ino);
}

Result<InodeRecord> Filesystem::Lookup(std::uint64_t parent, const std::string& name) noexcept {
  if (name.size() > kMaxNameLen) return Status(Code::kNameTooLong, "name longer than 255 bytes");
  ReadView view(vol_->meta());
  PERMFS_ASSIGN_OR_RETURN(InodeRecord dir, LoadInode(view, parent));
  if (!IsDir(dir.mode)) return Status(Code::kNotDirectory, "not a directory");
  if (name == ".") return dir;
  if (name == "..") return LoadInode(view, dir.parent);
  if (name.empty()) return Status(Code::kNotFound, "empty name");
  PERMFS_ASSIGN_OR_RETURN(DirEntry e, FindEntry(view, parent, name));
  return LoadInode(view, e.ino);
}

Status Filesystem::ReadDir(std::uint64_t dir, std::uint64_t cookie, DirFn fn, void* ctx) noexcept {
  ReadView view(vol_->meta());
  PERMFS_ASSIGN_OR_RETURN(InodeRecord d, LoadInode(view, dir));
  if (!IsDir(d.mode)) return Status(Code::kNotDirectory, "not a directory");
  // cookie = (hash60 << 3 | index in bucket) + 16; 0 starts from the beginning.
  std::uint64_t start_hash = 0, skip_upto = 0;
  bool have_cookie = cookie >= 16;
  if (have_cookie) {
    start_hash = (cookie - 16) >> 3;
    skip_upto = (cookie - 16) & 7;
  }
  struct Ctx {
    DirFn fn;
    void* ctx;
    std::uint64_t dir;
    std::uint64_t start_hash;
    std::uint64_t skip_upto;
    bool have_cookie;
    Status st;
  } c{fn, ctx, dir, start_hash, skip_upto, have_cookie, Status()};
  PERMFS_RETURN_IF_ERROR(dirs_.Scan(
      view, Slice(DirKey(dir, start_hash)), Slice(DirKey(dir + 1, 0)),
      [](void* p, const Slice& k, const Slice& v) {
        auto* c = static_cast<Ctx*>(p);
        std::uint64_t h = KeyU64(k.data + 8);
        DirEntry es[kBucketCap];
        std::size_t n = 0;
        c->st = DecodeBucket(v.data, v.size, es, kBucketCap, &n);
        if (!c->st.ok()) return false;
        for (std::size_t i = 0; i < n; ++i) {
          // Resume strictly after the entry the cookie names.
          if (c->have_cookie && h == c->start_hash && i <= c->skip_upto) continue;
          std::uint64_t next = ((h << 3) | i) + 16;
          if (!c->fn(c->ctx, es[i], next)) return false;
        }
        return true;
      },
      &c));
  return c.st;
}

// ---- Creation -----------------------------------------------------------------------------

Result<InodeRecord> Filesystem::NewInode(WriteTxn& t, std::uint64_t parent_ino,
                                         const InodeRecord& parent, std::uint32_t mode,
                                         std::uint64_t rdev, const Credentials& cred) noexcept {
  PERMFS_ASSIGN_OR_RETURN(std::uint64_t next,
                          vol_->roots()->GetCounter(t, format::kCounterNextInode));
  PERMFS_ASSIGN_OR_RETURN(std::uint64_t count, vol_->roots()->GetCounter(t, format::kCounterInodes));
  if (next < kRootIno + 1) return Status::Corruption("inode counter below the root");
  PERMFS_RETURN_IF_ERROR(vol_->roots()->SetCounter(t, format::kCounterNextInode, next + 1));
  PERMFS_RETURN_IF_ERROR(vol_->roots()->SetCounter(t, format::kCounterInodes, count + 1));
  InodeRecord in;
  in.ino = next;
  in.mode = mode;
  in.uid = cred.uid;
  in.gid = cred.gid;
  if (parent.mode & kModeSetgid) {
    in.gid = parent.gid;
    if (IsDir(mode)) in.mode |= kModeSetgid;
  }
  in.nlink = IsDir(mode) ? 2 : 1;
  in.atime_ns = in.mtime_ns = in.ctime_ns = in.btime_ns = Now();
  port::FillRandom(&in.generation, sizeof in.generation);
  in.generation |= 1;
  in.rdev = rdev;
  in.parent = IsDir(mode) ? parent_ino : 0;
  return in;
}

Result<InodeRecord> Filesystem::MakeNode(std::uint64_t parent, const std::string& name,
                                         std::uint32_t mode, std::uint64_t rdev,
                                         const Credentials& cred, bool exclusive,
                                         const std::string* symlink_target) noexcept {
  PERMFS_RETURN_IF_ERROR(CheckName(name));
  InodeRecord result;
  Status st = RunTxn([&](WriteTxn& t) -> Status {
    PERMFS_ASSIGN_OR_RETURN(InodeRecord dir, LoadInode(t, parent));
    if (!IsDir(dir.mode)) return Status(Code::kNotDirectory, "parent is not a directory");
    if (dir.nlink == 0) return Status(Code::kNotFound, "parent directory was removed");
    auto existing = FindEntry(t, parent, name);
    if (existing.ok()) {
      if (exclusive) return Status::Exists("file exists");
      PERMFS_ASSIGN_OR_RETURN(result, LoadInode(t, existing->ino));
      return Status();
    }
    if (!existing.status().IsNotFound()) return existing.status();
    if (IsDir(mode) && dir.nlink >= kMaxLinks) return Status(Code::kTooManyLinks, "too many links");
    PERMFS_ASSIGN_OR_RETURN(InodeRecord in, NewInode(t, parent, dir, mode, rdev, cred));
    if (symlink_target) {
      in.size = symlink_target->size();
      for (std::size_t off = 0, part = 0; off < symlink_target->size(); off += kSymlinkPiece, ++part) {
        std::string key = SymlinkKey(in.ino) + std::string(1, static_cast<char>(part));
        std::string piece = symlink_target->substr(off, kSymlinkPiece);
        PERMFS_RETURN_IF_ERROR(inodes_.Insert(t, Slice(key), Slice(piece)));
      }
    }
    PERMFS_RETURN_IF_ERROR(StoreInode(t, in));
    PERMFS_RETURN_IF_ERROR(AddEntry(t, parent, DirEntry{name, in.ino, DirentType(mode)}));
    dir.mtime_ns = dir.ctime_ns = in.ctime_ns;
    if (IsDir(mode)) dir.nlink += 1;
    PERMFS_RETURN_IF_ERROR(StoreInode(t, dir));
    result = in;
    return Status();
  });
  if (!st.ok()) return st;
  return result;
}

Result<InodeRecord> Filesystem::Create(std::uint64_t parent, const std::string& name,
                                       std::uint32_t mode, std::uint64_t rdev,
                                       const Credentials& cred, bool exclusive) noexcept {
  std::uint32_t type = mode & kTypeMask;
  if (type == 0) type = kTypeRegular;
  if (type == kTypeDir || type == kTypeSymlink)
    return Status::InvalidArgument("use Mkdir/Symlink for directories and symlinks");
  if (type != kTypeBlock && type != kTypeChar) rdev = 0;
  return MakeNode(parent, name, type | (mode & 07777), rdev, cred, exclusive, nullptr);
}

Result<InodeRecord> Filesystem::Mkdir(std::uint64_t parent, const std::string& name,
                                      std::uint32_t mode, const Credentials& cred) noexcept {
  return MakeNode(parent, name, kTypeDir | (mode & 07777), 0, cred, true, nullptr);
}

Result<InodeRecord> Filesystem::Symlink(std::uint64_t parent, const std::string& name,
                                        const std::string& target,
                                        const Credentials& cred) noexcept {
  if (target.empty()) return Status(Code::kNotFound, "empty symlink target");
  if (target.size() > kMaxSymlinkLen) return Status(Code::kNameTooLong, "symlink target too long");
  return MakeNode(parent, name, kTypeSymlink | 0777, 0, cred, true, &target);
}

Result<std::string> Filesystem::Readlink(std::uint64_t ino) noexcept {
  ReadView view(vol_->meta());
  PERMFS_ASSIGN_OR_RETURN(InodeRecord in, LoadInode(view, ino));
  if (!IsSymlink(in.mode)) return Status::InvalidArgument("not a symbolic link");
  std::string out;
  std::string prefix = SymlinkKey(ino);
  PERMFS_RETURN_IF_ERROR(inodes_.Scan(
      view, Slice(prefix), Slice(InodeKey(ino) + std::string(1, '\x02')),
      [](void* ctx, const Slice&, const Slice& v) {
        static_cast<std::string*>(ctx)->append(reinterpret_cast<const char*>(v.data), v.size);
        return true;
      },
      &out));
  if (out.size() != in.size) return Status::Corruption("symlink target length mismatch");
  return out;
}

Result<InodeRecord> Filesystem::Link(std::uint64_t ino, std::uint64_t new_parent,
                                     const std::string& new_name) noexcept {
  PERMFS_RETURN_IF_ERROR(CheckName(new_name));
  InodeRecord result;
  Status st = RunTxn([&](WriteTxn& t) -> Status {
    PERMFS_ASSIGN_OR_RETURN(InodeRecord in, LoadInode(t, ino));
    if (IsDir(in.mode)) return Status(Code::kPermission, "hard links to directories are not allowed");
    if (in.nlink == 0) return Status(Code::kNotFound, "file was removed");
    if (in.nlink >= kMaxLinks) return Status(Code::kTooManyLinks, "too many links");
    PERMFS_ASSIGN_OR_RETURN(InodeRecord dir, LoadInode(t, new_parent));
    if (!IsDir(dir.mode)) return Status(Code::kNotDirectory, "not a directory");
    if (dir.nlink == 0) return Status(Code::kNotFound, "directory was removed");
    PERMFS_RETURN_IF_ERROR(AddEntry(t, new_parent, DirEntry{new_name, ino, DirentType(in.mode)}));
    std::int64_t now = Now();
    in.nlink += 1;
    in.ctime_ns = now;
    dir.mtime_ns = dir.ctime_ns = now;
    PERMFS_RETURN_IF_ERROR(StoreInode(t, in));
    PERMFS_RETURN_IF_ERROR(StoreInode(t, dir));
    result = in;
    return Status();
  });
  if (!st.ok()) return st;
  return result;
}

Status Filesystem::DropLink(WriteTxn& t, InodeRecord& in, UnlinkOutcome* out) noexcept {
  if (in.nlink == 0) return Status::Corruption("link count underflow");
  in.nlink -= 1;
  if (IsDir(in.mode)) in.nlink = 0;  // a removed directory has no links at all
  in.ctime_ns = Now();
  PERMFS_RETURN_IF_ERROR(StoreInode(t, in));
  if (in.nlink == 0) {
    std::uint8_t rec[9] = {static_cast<std::uint8_t>(OrphanKind::kUnlinked)};
    PERMFS_RETURN_IF_ERROR(orphans_.Put(t, Slice(OrphanKey(in.ino)), Slice(rec, sizeof rec)));
    if (out) out->orphan = in.ino;
  }
  return Status();
}

Status Filesystem::Unlink(std::uint64_t parent, const std::string& name,
                          UnlinkOutcome* out) noexcept {
  if (name.size() > kMaxNameLen) return Status(Code::kNameTooLong, "name longer than 255 bytes");
  if (name == "." || name == "..") return Status(Code::kIsDirectory, "cannot unlink . or ..");
  if (out) *out = UnlinkOutcome{};
  return RunFreeingTxn([&](WriteTxn& t) -> Status {
    PERMFS_ASSIGN_OR_RETURN(InodeRecord dir, LoadInode(t, parent));
    if (!IsDir(dir.mode)) return Status(Code::kNotDirectory, "not a directory");
    PERMFS_ASSIGN_OR_RETURN(DirEntry e, FindEntry(t, parent, name));
    PERMFS_ASSIGN_OR_RETURN(InodeRecord in, LoadInode(t, e.ino));
    if (IsDir(in.mode)) return Status(Code::kIsDirectory, "is a directory");
    PERMFS_RETURN_IF_ERROR(RemoveEntry(t, parent, name));
    PERMFS_RETURN_IF_ERROR(DropLink(t, in, out));
    dir.mtime_ns = dir.ctime_ns = in.ctime_ns;
    return StoreInode(t, dir);
  });
}

Status Filesystem::Rmdir(std::uint64_t parent, const std::string& name,
                         UnlinkOutcome* outcome) noexcept {
  if (name.size() > kMaxNameLen) return Status(Code::kNameTooLong, "name longer than 255 bytes");
  if (name == ".") return Status::InvalidArgument("cannot remove .");
  if (name == "..") return Status(Code::kNotEmpty, "cannot remove ..");
  if (outcome) *outcome = UnlinkOutcome{};
  UnlinkOutcome out;
  Status st = RunFreeingTxn([&](WriteTxn& t) -> Status {
    PERMFS_ASSIGN_OR_RETURN(InodeRecord dir, LoadInode(t, parent));
    if (!IsDir(dir.mode)) return Status(Code::kNotDirectory, "not a directory");
    PERMFS_ASSIGN_OR_RETURN(DirEntry e, FindEntry(t, parent, name));
    PERMFS_ASSIGN_OR_RETURN(InodeRecord in, LoadInode(t, e.ino));
    if (!IsDir(in.mode)) return Status(Code::kNotDirectory, "not a directory");
    PERMFS_ASSIGN_OR_RETURN(bool empty, DirIsEmpty(t, e.ino));
    if (!empty) return Status(Code::kNotEmpty, "directory not empty");
    PERMFS_RETURN_IF_ERROR(RemoveEntry(t, parent, name));
    PERMFS_RETURN_IF_ERROR(DropLink(t, in, &out));
    dir.nlink -= 1;
    dir.mtime_ns = dir.ctime_ns = in.ctime_ns;
    return StoreInode(t, dir);
  });
  if (!st.ok()) return st;
  // The caller that tracks references reclaims once the removed directory is no longer open.
  if (outcome) {
    *outcome = out;
    return Status();
  }
  return out.orphan ? Reclaim(out.orphan) : Status();
}

Status Filesystem::Rename(std::uint64_t old_parent, const std::string& old_name,
                          std::uint64_t new_parent, const std::string& new_name,
                          std::uint32_t flags, UnlinkOutcome* out) noexcept {
  if (out) *out = UnlinkOutcome{};
  if (flags & ~(kRenameNoReplace | kRenameExchange | kRenameWhiteout))
    return Status::InvalidArgument("unknown rename flags");
  if (flags & kRenameWhiteout) return Status::InvalidArgument("RENAME_WHITEOUT not supported");
  if ((flags & kRenameNoReplace) && (flags & kRenameExchange))
    return Status::InvalidArgument("RENAME_NOREPLACE with RENAME_EXCHANGE");
  if (old_name.size() > kMaxNameLen || new_name.size() > kMaxNameLen)
    return Status(Code::kNameTooLong, "name longer than 255 bytes");
  if (!ValidName(old_name) || !ValidName(new_name))
    return Status(Code::kBusy, "cannot rename . or ..");
  std::uint64_t replaced_dir = 0;
  Status st = RunFreeingTxn([&](WriteTxn& t) -> Status {
    PERMFS_ASSIGN_OR_RETURN(InodeRecord op, LoadInode(t, old_parent));
    PERMFS_ASSIGN_OR_RETURN(InodeRecord np, LoadInode(t, new_parent));
    if (!IsDir(op.mode) || !IsDir(np.mode)) return Status(Code::kNotDirectory, "not a directory");
    if (np.nlink == 0) return Status(Code::kNotFound, "target directory was removed");
    PERMFS_ASSIGN_OR_RETURN(DirEntry se, FindEntry(t, old_parent, old_name));
    PERMFS_ASSIGN_OR_RETURN(InodeRecord src, LoadInode(t, se.ino));
    auto te = FindEntry(t, new_parent, new_name);
    if (!te.ok() && !te.status().IsNotFound()) return te.status();
    const bool target_exists = te.ok();
    // RENAME_NOREPLACE refuses any existing target, even the source itself (as Linux does).
    if (target_exists && (flags & kRenameNoReplace)) return Status::Exists("target exists");
    if (!target_exists && (flags & kRenameExchange)) return Status(Code::kNotFound, "no target");
    if (old_parent == new_parent && old_name == new_name) return Status();
    if (target_exists && te->ino == se.ino && !(flags & kRenameExchange)) return Status();
    // A directory may not move into its own subtree.
    auto check_loop = [&](std::uint64_t moving_dir, std::uint64_t dest) -> Status {
      std::uint64_t cur = dest;
      for (int depth = 0; depth < 100000; ++depth) {
        if (cur == moving_dir) return Status::InvalidArgument("cannot move a directory into itself");
        if (cur == kRootIno) return Status();
        PERMFS_ASSIGN_OR_RETURN(InodeRecord c, LoadInode(t, cur));
        cur = c.parent;
      }
      return Status::Corruption("directory parent chain does not reach the root");
    };
    if (IsDir(src.mode) && old_parent != new_parent) PERMFS_RETURN_IF_ERROR(check_loop(se.ino, new_parent));
    const std::int64_t now = Now();
    if (flags & kRenameExchange) {
      PERMFS_ASSIGN_OR_RETURN(InodeRecord dst, LoadInode(t, te->ino));
      if (IsDir(dst.mode) && old_parent != new_parent) PERMFS_RETURN_IF_ERROR(check_loop(te->ino, old_parent));
      // A parent that gains a subdirectory must stay within the link limit.
      if (old_parent != new_parent && IsDir(src.mode) != IsDir(dst.mode) &&
          (IsDir(src.mode) ? np.nlink : op.nlink) >= kMaxLinks)
        return Status(Code::kTooManyLinks, "too many links");
      PERMFS_RETURN_IF_ERROR(RemoveEntry(t, old_parent, old_name));
      PERMFS_RETURN_IF_ERROR(RemoveEntry(t, new_parent, new_name));
      PERMFS_RETURN_IF_ERROR(AddEntry(t, old_parent, DirEntry{old_name, dst.ino, DirentType(dst.mode)}));
      PERMFS_RETURN_IF_ERROR(AddEntry(t, new_parent, DirEntry{new_name, src.ino, DirentType(src.mode)}));
      if (old_parent != new_parent) {
        if (IsDir(src.mode)) { src.parent = new_parent; op.nlink--; np.nlink++; }
        if (IsDir(dst.mode)) { dst.parent = old_parent; np.nlink--; op.nlink++; }
      }
      src.ctime_ns = dst.ctime_ns = now;
      PERMFS_RETURN_IF_ERROR(StoreInode(t, src));
      PERMFS_RETURN_IF_ERROR(StoreInode(t, dst));
    } else {
      if (target_exists) {
        PERMFS_ASSIGN_OR_RETURN(InodeRecord dst, LoadInode(t, te->ino));
        if (IsDir(src.mode) && !IsDir(dst.mode)) return Status(Code::kNotDirectory, "target is not a directory");
        if (!IsDir(src.mode) && IsDir(dst.mode)) return Status(Code::kIsDirectory, "target is a directory");
        if (IsDir(dst.mode)) {
          PERMFS_ASSIGN_OR_RETURN(bool empty, DirIsEmpty(t, dst.ino));
          if (!empty) return Status(Code::kNotEmpty, "target directory not empty");
          np.nlink -= 1;
        }
        PERMFS_RETURN_IF_ERROR(RemoveEntry(t, new_parent, new_name));
        UnlinkOutcome o;
        PERMFS_RETURN_IF_ERROR(DropLink(t, dst, &o));
        if (out) *out = o;
        else if (IsDir(dst.mode)) replaced_dir = o.orphan;
      }
      // A directory moving to a new parent adds a link to it (unless it replaces a directory).
      if (IsDir(src.mode) && old_parent != new_parent && !target_exists && np.nlink >= kMaxLinks)
        return Status(Code::kTooManyLinks, "too many links");
      PERMFS_RETURN_IF_ERROR(RemoveEntry(t, old_parent, old_name));
      PERMFS_RETURN_IF_ERROR(AddEntry(t, new_parent, DirEntry{new_name, src.ino, DirentType(src.mode)}));
      if (IsDir(src.mode) && old_parent != new_parent) {
        src.parent = new_parent;
        op.nlink -= 1;
        np.nlink += 1;
      }
      src.ctime_ns = now;
      PERMFS_RETURN_IF_ERROR(StoreInode(t, src));
    }
    op.mtime_ns = op.ctime_ns = now;
    np.mtime_ns = np.ctime_ns = now;
    // Same directory: `np` carries every change (op and np are two copies of one inode).
    if (old_parent == new_parent) return StoreInode(t, np);
    PERMFS_RETURN_IF_ERROR(StoreInode(t, op));
    return StoreInode(t, np);
  });
  if (!st.ok()) return st;
  return replaced_dir ? Reclaim(replaced_dir) : Status();
}

// ---- Attributes ---------------------------------------------------------------------------

Result<InodeRecord> Filesystem::SetAttr(std::uint64_t ino, const SetAttrRequest& req) noexcept {
  if (req.mask & kSetSize) {
    PERMFS_ASSIGN_OR_RETURN(InodeRecord cur, GetAttr(ino));
    if (IsDir(cur.mode)) return Status(Code::kIsDirectory, "cannot truncate a directory");
    if (!IsRegular(cur.mode)) return Status::InvalidArgument("cannot truncate this file type");
    PERMFS_RETURN_IF_ERROR(Truncate(ino, req.size));
  }
  InodeRecord result;
  Status st = RunTxn([&](WriteTxn& t) -> Status {
    PERMFS_ASSIGN_OR_RETURN(InodeRecord in, LoadInode(t, ino));
    const std::int64_t now = Now();
    if (req.mask & kSetMode) in.mode = (in.mode & kTypeMask) | (req.mode & 07777);
    if (req.mask & kSetUid) in.uid = req.uid;
    if (req.mask & kSetGid) in.gid = req.gid;
    if (req.mask & kSetAtime) in.atime_ns = req.atime_ns;
    if (req.mask & kSetMtime) in.mtime_ns = req.mtime_ns;
    in.ctime_ns = (req.mask & kSetCtime) ? req.ctime_ns : now;
    PERMFS_RETURN_IF_ERROR(StoreInode(t, in));
    result = in;
    return Status();
  });
  if (!st.ok()) return st;
  return result;
}

Result<StatfsInfo> Filesystem::Statfs() noexcept {
  StatfsInfo s;
  const format::Superblock& sb = vol_->sb();
  alloc::AllocStats a = vol_->allocator()->stats();
  s.block_size = sb.block_size;
  s.total_blocks = sb.block_count;
  // Blocks promised to data not written yet count as used, as they will be.
  s.free_blocks = a.free_blocks > a.promised_blocks ? a.free_blocks - a.promised_blocks : 0;
  s.available_blocks = s.free_blocks;
  ReadView view(vol_->meta());
  PERMFS_ASSIGN_OR_RETURN(std::uint64_t inodes, vol_->roots()->GetCounter(view, format::kCounterInodes));
  // Inodes are not preallocated: each needs about one B+tree entry, so the free-inode figure is
  // what the free space could hold.
  s.free_inodes = s.free_blocks * (sb.block_size / 256);
  s.total_inodes = inodes + s.free_inodes;
  return s;
}

// ---- Reclaim ------------------------------------------------------------------------------

Status Filesystem::DeleteKeyRange(std::uint32_t tree_id, const std::string& from,
                                  const std::string& to) noexcept {
  btree::BTree tree(vol_->meta(), vol_->allocator(), vol_->roots(), tree_id);
  for (;;) {
    std::vector<std::string> keys;
    {
      ReadView view(vol_->meta());
      PERMFS_RETURN_IF_ERROR(tree.Scan(
          view, Slice(from), Slice(to),
          [](void* ctx, const Slice& k, const Slice&) {
            auto* v = static_cast<std::vector<std::string>*>(ctx);
            v->push_back(k.ToString());
            return v->size() < 256;
          },
          &keys));
    }
    if (keys.empty()) return Status();
    PERMFS_RETURN_IF_ERROR(RunFreeingTxn([&](WriteTxn& t) -> Status {
      for (const std::string& k : keys) {
        Status st = tree.Delete(t, Slice(k));
        if (!st.ok() && !st.IsNotFound()) return st;
      }
      return Status();
    }));
  }
}

Status Filesystem::Reclaim(std::uint64_t ino) noexcept {
  ExclusiveLock l(InodeLock(ino));
  bool linked = false;
  {
    ReadView view(vol_->meta());
    auto in = LoadInode(view, ino);
    if (!in.ok() && !in.status().IsNotFound()) return in.status();
    linked = in.ok() && in->nlink > 0;
  }
  if (linked) {
    // Not an orphan (any more): only drop a stale orphan record, never the data.
    return RunFreeingTxn([&](WriteTxn& t) -> Status {
      Status st = orphans_.Delete(t, Slice(OrphanKey(ino)));
      return st.IsNotFound() ? Status() : st;
    });
  }
  // Data, xattrs and symlink pieces go first, in as many transactions as they need; the orphan
  // record keeps the work restartable after a crash.
  PERMFS_RETURN_IF_ERROR(UnmapRecords(ino, 0, ~0ull));
  PERMFS_RETURN_IF_ERROR(DeleteKeyRange(kXattrTree, XattrKey(ino, 0, 0), XattrKey(ino + 1, 0, 0)));
  return RunFreeingTxn([&](WriteTxn& t) -> Status {
    auto in = LoadInode(t, ino);
    if (in.ok() && in->nlink > 0) {
      Status st = orphans_.Delete(t, Slice(OrphanKey(ino)));
      return st.IsNotFound() ? Status() : st;
    }
    if (in.ok()) {
      std::string prefix = SymlinkKey(ino);
      std::vector<std::string> pieces;
      PERMFS_RETURN_IF_ERROR(inodes_.Scan(
          t, Slice(prefix), Slice(InodeKey(ino) + std::string(1, '\x02')),
          [](void* ctx, const Slice& k, const Slice&) {
            static_cast<std::vector<std::string>*>(ctx)->push_back(k.ToString());
            return true;
          },
          &pieces));
      for (const std::string& k : pieces) PERMFS_RETURN_IF_ERROR(inodes_.Delete(t, Slice(k)));
      PERMFS_RETURN_IF_ERROR(inodes_.Delete(t, Slice(InodeKey(ino))));
      PERMFS_ASSIGN_OR_RETURN(std::uint64_t count,
                              vol_->roots()->GetCounter(t, format::kCounterInodes));
      PERMFS_RETURN_IF_ERROR(
          vol_->roots()->SetCounter(t, format::kCounterInodes, count ? count - 1 : 0));
    } else if (!in.status().IsNotFound()) {
      return in.status();
    }
    Status st = orphans_.Delete(t, Slice(OrphanKey(ino)));
    return st.IsNotFound() ? Status() : st;
  });
}

}  // namespace permfs::fs
