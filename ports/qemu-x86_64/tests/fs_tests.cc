// Filesystem tests: the POSIX namespace layer (fs::Filesystem over Volume, ChunkStore, journal,
// allocator and B+trees — the engine's real code, not a stand-in) on the virtio-blk disk.
//
//   fs_roundtrip        mkfs + Format -> a directory tree, files of many sizes (0 .. 1 MiB, a
//                       sparse file with holes, a file grown by truncate), symlinks, hard links,
//                       xattrs, FIFO/device nodes, rename (move, replace, exchange), unlink,
//                       rmdir, truncate, punch hole, chmod/chown/utimes -> verify -> unmount ->
//                       mount -> verify every name, byte and attribute -> unmount -> fsck with
//                       data verification, 0 errors. Also the fs-level throughput figures.
//   fs_recover_write    boot 1 of 2: phase A synced and checkpointed; phase B synced (durable in
//                       the journal only, one unreclaimed orphan = "a file still open"); phase C
//                       never synced; stop without unmount.
//   fs_recover_verify   boot 2 of 2: mount replays phase B, Filesystem::Open reclaims the orphan,
//                       the durable state (A + B) matches exactly, phase C is all or nothing,
//                       fsck (data verified) is clean.
//   fs_panic            a deliberate panic while a filesystem is mounted, with a virtio request
//                       in flight: the report carries allocator, journal, fs and I/O state.
//
// The expected state is a model (FsModel) that every operation updates next to the filesystem.
// The operations are deterministic (content from the seed, inode numbers from the inode counter,
// which the model predicts and checks), so boot 2 of the recovery test rebuilds the model of
// boot 1 by running the same script without a filesystem.
#include <cstdint>
#include <string>
#include <vector>

#include "btree/btree.h"
#include "engine_common.h"
#include "fs/filesystem.h"
#include "fs/fsck.h"
#include "fs/records.h"
#include "ktest.h"
#include "port/port.h"
#include "util/crc32c.h"
#include "util/sha256.h"
#include "volume/volume.h"

namespace permfs::qemu {
using namespace ktest;
namespace {

using fs::Filesystem;
using fs::InodeRecord;
using fs::kRootIno;

constexpr fs::Credentials kRootCred{0, 0};
constexpr fs::Credentials kUserCred{1000, 1000};

// ---- the model -------------------------------------------------------------------------------
struct Xattr {
  std::string name;
  std::string value;
};

struct Node {
  std::uint64_t ino = 0;
  std::uint32_t mode = 0;  // type | permission bits
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint64_t rdev = 0;
  std::string data;  // regular file: content (holes are zeros); symlink: target
  std::vector<Xattr> xattrs;
  bool mtime_set = false;
  std::int64_t mtime_ns = 0;
  bool live = true;     // has an inode
  bool orphan = false;  // no names left, inode kept (open handle): on the orphan list
};

struct Name {
  std::uint64_t dir;
  std::string name;
  std::uint64_t ino;
};

struct FsModel {
  std::uint64_t next_ino = kRootIno + 1;
  std::vector<Node> nodes;
  std::vector<Name> names;

  FsModel() {
    Node root;
    root.ino = kRootIno;
    root.mode = fs::kTypeDir | 0755;
    nodes.push_back(root);
  }
  Node* Find(std::uint64_t ino) {
    for (Node& n : nodes)
      if (n.ino == ino) return &n;
    return nullptr;
  }
  const Node* Find(std::uint64_t ino) const { return const_cast<FsModel*>(this)->Find(ino); }
  Name* FindName(std::uint64_t dir, const std::string& name) {
    for (Name& n : names)
      if (n.dir == dir && n.name == name) return &n;
    return nullptr;
  }
  std::size_t NameCount(std::uint64_t ino) const {
    std::size_t c = 0;
    for (const Name& n : names) c += n.ino == ino;
    return c;
  }
  std::uint64_t ParentOf(std::uint64_t dir) const {
    if (dir == kRootIno) return kRootIno;
    for (const Name& n : names)
      if (n.ino == dir) return n.dir;
    return 0;
  }
  std::uint32_t ExpectedNlink(const Node& n) const {
    if (!fs::IsDir(n.mode)) return static_cast<std::uint32_t>(NameCount(n.ino));
    std::uint32_t links = 2;
    for (const Name& e : names)
      if (e.dir == n.ino && fs::IsDir(Find(e.ino)->mode)) ++links;
    return links;
  }
  // Removes a name; a node left without names loses its inode (or becomes an orphan).
  void DropName(std::uint64_t dir, const std::string& name, bool keep_orphan) {
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (names[i].dir != dir || names[i].name != name) continue;
      const std::uint64_t ino = names[i].ino;
      names.erase(names.begin() + static_cast<std::ptrdiff_t>(i));
      Node* n = Find(ino);
      if (NameCount(ino) == 0) {
        if (keep_orphan && !fs::IsDir(n->mode)) {
          n->orphan = true;
        } else {
          n->live = false;
        }
      }
      return;
    }
  }
  // Digest of the whole expected state, in model order (deterministic across boots).
  Sha256Digest Digest() const {
    Sha256Portable h;
    for (const Node& n : nodes) {
      if (!n.live || n.orphan) continue;
      const std::string hdr = U64s({n.ino, n.mode, n.uid, n.gid, n.rdev, n.data.size(),
                                    n.xattrs.size(), ExpectedNlink(n)});
      h.Update(hdr.data(), hdr.size());
      h.Update(n.data.data(), n.data.size());
      for (const Xattr& x : n.xattrs) {
        h.Update(x.name.data(), x.name.size());
        h.Update(x.value.data(), x.value.size());
      }
    }
    for (const Name& e : names) {
      const std::string hdr = U64s({e.dir, e.ino, e.name.size()});
      h.Update(hdr.data(), hdr.size());
      h.Update(e.name.data(), e.name.size());
    }
    return h.Finish();
  }
};

// ---- fs panic reporter: namespace-level progress, lock-free (as the journal snapshot) ----------
struct FsSnapshot {
  std::uint64_t inodes_created = 0;
  std::uint64_t bytes_written = 0;
  std::uint64_t last_ino = 0;
  const char* last_op = "";
};
volatile FsSnapshot g_fs_snap;

void FsReporter(void*) {
  PanicPrint("inodes_created=");
  PanicPrintDec(g_fs_snap.inodes_created);
  PanicPrint(" bytes_written=");
  PanicPrintDec(g_fs_snap.bytes_written);
  PanicPrint(" last_ino=");
  PanicPrintDec(g_fs_snap.last_ino);
  PanicPrint(" last_op=");
  PanicPrint(g_fs_snap.last_op ? g_fs_snap.last_op : "?");
}

class FsReporterScope {
 public:
  FsReporterScope() {
    g_fs_snap.inodes_created = 0;
    g_fs_snap.bytes_written = 0;
    g_fs_snap.last_ino = 0;
    g_fs_snap.last_op = "start";
    registered_ = RegisterPanicReporter("fs", &FsReporter, nullptr);
  }
  ~FsReporterScope() {
    if (registered_) UnregisterPanicReporter(&FsReporter, nullptr);
  }
  bool ok() const { return registered_; }

 private:
  bool registered_ = false;
};

#define FCHECK_OK(expr, what)                                                                  \
  do {                                                                                         \
    ::permfs::Status _fst = (expr);                                                            \
    if (!_fst.ok()) {                                                                          \
      ::permfs::qemu::Printf("CHECK_OK failed at %s:%d: %s [%s] -> %s (%s)\n", __FILE__,       \
                             __LINE__, #expr, (what), _fst.CodeName(), _fst.message());        \
      return false;                                                                            \
    }                                                                                          \
  } while (0)

// ---- FsWork: every operation on the filesystem (when `fs` is set) and on the model ------------
struct FsWork {
  Filesystem* fs = nullptr;  // null: update the model only (boot 2 rebuilding boot 1's state)
  FsModel m;
  std::uint64_t seed = 0;
  std::uint64_t bytes_written = 0;
  std::uint64_t last_orphan = 0;  // inode of the last unlink that kept an orphan

  std::uint64_t Ino(std::uint64_t dir, const std::string& name) {
    Name* e = m.FindName(dir, name);
    return e ? e->ino : 0;
  }

  std::uint64_t Stream(std::uint64_t tag) const { return seed ^ (tag * 0x9E3779B97F4A7C15ull); }

  bool NewNode(std::uint64_t dir, const std::string& name, std::uint32_t mode,
               const fs::Credentials& cred, std::uint64_t rdev, const std::string* target,
               std::uint64_t* ino_out) {
    const std::uint64_t ino = m.next_ino++;
    if (fs) {
      Result<InodeRecord> r = Status::InvalidArgument("unreached");
      if (fs::IsDir(mode)) {
        r = fs->Mkdir(dir, name, mode, cred);
      } else if (fs::IsSymlink(mode)) {
        r = fs->Symlink(dir, name, *target, cred);
      } else {
        r = fs->Create(dir, name, mode, rdev, cred);
      }
      FCHECK_OK(r.status(), name.c_str());
      if (r->ino != ino) {
        Printf("model: '%s' got inode %lu, expected %lu\n", name.c_str(), r->ino, ino);
        return false;
      }
      g_fs_snap.inodes_created = g_fs_snap.inodes_created + 1;
      g_fs_snap.last_ino = ino;
      g_fs_snap.last_op = "create";
    }
    Node n;
    n.ino = ino;
    n.mode = mode;
    n.uid = cred.uid;
    n.gid = cred.gid;
    n.rdev = (mode & fs::kTypeMask) == fs::kTypeChar || (mode & fs::kTypeMask) == fs::kTypeBlock
                 ? rdev
                 : 0;
    if (target) n.data = *target;
    m.nodes.push_back(n);
    m.names.push_back(Name{dir, name, ino});
    if (ino_out) *ino_out = ino;
    return true;
  }
  bool Mkdir(std::uint64_t dir, const std::string& name, std::uint64_t* ino,
             std::uint32_t perms = 0755) {
    return NewNode(dir, name, fs::kTypeDir | perms, kRootCred, 0, nullptr, ino);
  }
  bool Symlink(std::uint64_t dir, const std::string& name, const std::string& target) {
    return NewNode(dir, name, fs::kTypeSymlink | 0777, kRootCred, 0, &target, nullptr);
  }
  bool Special(std::uint64_t dir, const std::string& name, std::uint32_t mode, std::uint64_t rdev) {
    return NewNode(dir, name, mode, kRootCred, rdev, nullptr, nullptr);
  }
  // Writes `len` bytes of stream `tag` at `off` (in `piece`-byte calls; 0 = one call).
  bool Write(std::uint64_t ino, std::uint64_t off, std::size_t len, std::uint64_t tag,
             std::size_t piece = 0) {
    Node* n = m.Find(ino);
    if (!n) return false;
    const std::string bytes = Bytes(Stream(tag), len);
    if (fs) {
      if (piece == 0) piece = len ? len : 1;
      for (std::size_t done = 0; done < len; done += piece) {
        const std::size_t k = len - done < piece ? len - done : piece;
        FCHECK_OK(fs->Write(ino, off + done,
                            reinterpret_cast<const std::uint8_t*>(bytes.data()) + done, k),
                  "write");
      }
      bytes_written += len;
      g_fs_snap.bytes_written = bytes_written;
      g_fs_snap.last_ino = ino;
      g_fs_snap.last_op = "write";
    }
    if (n->data.size() < off + len) n->data.resize(off + len, '\0');
    n->data.replace(off, len, bytes);
    n->mtime_set = false;
    return true;
  }
  bool CreateFile(std::uint64_t dir, const std::string& name, std::size_t len, std::uint64_t tag,
                  std::uint64_t* ino_out = nullptr, std::size_t piece = 0,
                  std::uint32_t perms = 0644) {
    std::uint64_t ino = 0;
    if (!NewNode(dir, name, fs::kTypeRegular | perms, kRootCred, 0, nullptr, &ino)) return false;
    if (ino_out) *ino_out = ino;
    return len == 0 || Write(ino, 0, len, tag, piece);
  }
  bool Truncate(std::uint64_t ino, std::uint64_t size) {
    if (fs) FCHECK_OK(fs->Truncate(ino, size), "truncate");
    m.Find(ino)->data.resize(size, '\0');
    m.Find(ino)->mtime_set = false;
    return true;
  }
  bool Punch(std::uint64_t ino, std::uint64_t off, std::uint64_t len) {
    if (fs) FCHECK_OK(fs->Fallocate(ino, fs::kFallocPunchHole | fs::kFallocKeepSize, off, len),
                      "punch");
    std::string& d = m.Find(ino)->data;
    for (std::uint64_t i = off; i < off + len && i < d.size(); ++i) d[i] = '\0';
    m.Find(ino)->mtime_set = false;
    return true;
  }
  bool Link(std::uint64_t ino, std::uint64_t dir, const std::string& name) {
    if (fs) FCHECK_OK(fs->Link(ino, dir, name).status(), name.c_str());
    m.names.push_back(Name{dir, name, ino});
    return true;
  }
  // Unlinks a file, or rmdirs a directory; reclaims at once unless `keep_orphan`.
  bool Remove(std::uint64_t dir, const std::string& name, bool keep_orphan = false) {
    Name* e = m.FindName(dir, name);
    if (!e) return false;
    const bool is_dir = fs::IsDir(m.Find(e->ino)->mode);
    if (fs) {
      if (is_dir) {
        FCHECK_OK(fs->Rmdir(dir, name), name.c_str());
      } else {
        fs::UnlinkOutcome out;
        FCHECK_OK(fs->Unlink(dir, name, &out), name.c_str());
        const bool last = m.NameCount(e->ino) == 1;
        if (last != (out.orphan == e->ino)) {
          Printf("unlink '%s': orphan %lu, expected %s\n", name.c_str(), out.orphan,
                 last ? "this inode" : "none");
          return false;
        }
        if (out.orphan && !keep_orphan) FCHECK_OK(fs->Reclaim(out.orphan), "reclaim");
      }
    }
    if (keep_orphan && m.NameCount(e->ino) == 1) last_orphan = e->ino;
    m.DropName(dir, name, keep_orphan);
    return true;
  }
  bool Rename(std::uint64_t od, const std::string& on, std::uint64_t nd, const std::string& nn,
              std::uint32_t flags = 0) {
    Name* src = m.FindName(od, on);
    if (!src) return false;
    Name* dst = m.FindName(nd, nn);
    if (fs) {
      fs::UnlinkOutcome out;
      FCHECK_OK(fs->Rename(od, on, nd, nn, flags, &out), on.c_str());
      if (out.orphan) {
        if (!dst || out.orphan != dst->ino) {
          Printf("rename '%s': unexpected orphan %lu\n", on.c_str(), out.orphan);
          return false;
        }
        FCHECK_OK(fs->Reclaim(out.orphan), "reclaim");
      }
    }
    if (flags & fs::kRenameExchange) {
      const std::uint64_t a = src->ino;
      src->ino = dst->ino;
      dst->ino = a;
      return true;
    }
    if (dst) m.DropName(nd, nn, false);
    src = m.FindName(od, on);  // DropName may have moved the vector's elements
    src->dir = nd;
    src->name = nn;
    return true;
  }
  bool SetXattr(std::uint64_t ino, const std::string& name, std::size_t len, std::uint64_t tag) {
    const std::string v = Bytes(Stream(tag), len);
    if (fs) FCHECK_OK(fs->SetXattr(ino, name, v, 0), name.c_str());
    Node* n = m.Find(ino);
    for (Xattr& x : n->xattrs)
      if (x.name == name) {
        x.value = v;
        return true;
      }
    n->xattrs.push_back(Xattr{name, v});
    return true;
  }
  bool RemoveXattr(std::uint64_t ino, const std::string& name) {
    if (fs) FCHECK_OK(fs->RemoveXattr(ino, name), name.c_str());
    Node* n = m.Find(ino);
    for (std::size_t i = 0; i < n->xattrs.size(); ++i)
      if (n->xattrs[i].name == name) {
        n->xattrs.erase(n->xattrs.begin() + static_cast<std::ptrdiff_t>(i));
        return true;
      }
    return false;
  }
  bool SetAttr(std::uint64_t ino, const fs::SetAttrRequest& req) {
    if (fs) FCHECK_OK(fs->SetAttr(ino, req).status(), "setattr");
    Node* n = m.Find(ino);
    if (req.mask & fs::kSetMode) n->mode = (n->mode & fs::kTypeMask) | (req.mode & 07777);
    if (req.mask & fs::kSetUid) n->uid = req.uid;
    if (req.mask & fs::kSetGid) n->gid = req.gid;
    if (req.mask & fs::kSetMtime) {
      n->mtime_set = true;
      n->mtime_ns = req.mtime_ns;
    }
    return true;
  }
};

// ---- verification ------------------------------------------------------------------------------
struct VerifyStats {
  std::uint64_t inodes = 0, dirs = 0, files = 0, symlinks = 0, special = 0, names = 0;
  std::uint64_t file_bytes = 0, xattrs = 0;
};

// Compares the filesystem with the model: every directory's entries (no missing, extra or
// wrong entry), every inode's attributes, every file's bytes (whole-file read plus unaligned
// partial reads), every symlink target, every xattr; removed inodes are gone.
bool VerifyFs(Filesystem* f, const FsModel& m, const char* when, VerifyStats* out = nullptr) {
  VerifyStats vs;
  std::vector<std::uint8_t> buf;
  for (const Node& n : m.nodes) {
    if (!n.live) {
      auto gone = f->GetAttr(n.ino);
      if (gone.ok() || !gone.status().IsNotFound()) {
        Printf("verify: inode %lu should be gone (%s)\n", n.ino, gone.status().CodeName());
        return false;
      }
      continue;
    }
    auto a = f->GetAttr(n.ino);
    FCHECK_OK(a.status(), when);
    const std::uint32_t nlink = n.orphan ? 0 : m.ExpectedNlink(n);
    if (a->mode != n.mode || a->uid != n.uid || a->gid != n.gid || a->nlink != nlink ||
        a->rdev != n.rdev || (n.mtime_set && a->mtime_ns != n.mtime_ns)) {
      Printf("verify: inode %lu attributes: mode %o/%o uid %u/%u gid %u/%u nlink %u/%u "
             "rdev %lu/%lu mtime %ld/%ld (got/expected)\n",
             n.ino, a->mode, n.mode, a->uid, n.uid, a->gid, n.gid, a->nlink, nlink, a->rdev,
             n.rdev, a->mtime_ns, n.mtime_set ? n.mtime_ns : a->mtime_ns);
      return false;
    }
    ++vs.inodes;
    if (fs::IsRegular(n.mode)) {
      ++vs.files;
      vs.file_bytes += n.data.size();
      if (a->size != n.data.size()) {
        Printf("verify: inode %lu size %lu, expected %zu\n", n.ino, a->size, n.data.size());
        return false;
      }
      buf.assign(n.data.size() + 100, 0xEE);
      auto r = f->Read(n.ino, 0, buf.size(), buf.data());
      FCHECK_OK(r.status(), when);
      KCHECK(*r == n.data.size());
      if (__builtin_memcmp(buf.data(), n.data.data(), n.data.size()) != 0) {
        std::size_t i = 0;
        while (buf[i] == static_cast<std::uint8_t>(n.data[i])) ++i;
        Printf("verify: inode %lu: content differs at byte %zu of %zu\n", n.ino, i, n.data.size());
        return false;
      }
      // Unaligned partial reads (record-crossing), through the same path as a pread().
      for (std::uint64_t k = 0; k < 3 && n.data.size() > 2; ++k) {
        const std::uint64_t h = Mix(n.ino * 31 + k);
        const std::size_t off = h % n.data.size();
        const std::size_t len = 1 + (h >> 20) % (n.data.size() - off);
        auto p = f->Read(n.ino, off, len, buf.data());
        FCHECK_OK(p.status(), when);
        KCHECK(*p == len);
        KCHECK(__builtin_memcmp(buf.data(), n.data.data() + off, len) == 0);
      }
      // Past the end: 0 bytes.
      auto e = f->Read(n.ino, n.data.size(), 10, buf.data());
      FCHECK_OK(e.status(), when);
      KCHECK(*e == 0);
    } else if (fs::IsSymlink(n.mode)) {
      ++vs.symlinks;
      auto t = f->Readlink(n.ino);
      FCHECK_OK(t.status(), when);
      KCHECK(*t == n.data);
      KCHECK(a->size == n.data.size());
    } else if (fs::IsDir(n.mode)) {
      ++vs.dirs;
      struct Collect {
        std::vector<fs::DirEntry> entries;
      } c;
      FCHECK_OK(f->ReadDir(
                    n.ino, 0,
                    [](void* p, const fs::DirEntry& e, std::uint64_t) {
                      static_cast<Collect*>(p)->entries.push_back(e);
                      return true;
                    },
                    &c),
                when);
      std::size_t expected = 0;
      for (const Name& e : m.names) expected += e.dir == n.ino;
      if (c.entries.size() != expected) {
        Printf("verify: directory %lu has %zu entries, expected %zu\n", n.ino, c.entries.size(),
               expected);
        return false;
      }
      for (const fs::DirEntry& e : c.entries) {
        const Name* want = const_cast<FsModel&>(m).FindName(n.ino, e.name);
        if (!want || want->ino != e.ino || e.type != fs::DirentType(m.Find(e.ino)->mode)) {
          Printf("verify: directory %lu: unexpected entry '%s' -> %lu (type %u)\n", n.ino,
                 e.name.c_str(), e.ino, e.type);
          return false;
        }
        // The other path to the same entry: Lookup by name.
        auto l = f->Lookup(n.ino, e.name);
        FCHECK_OK(l.status(), e.name.c_str());
        KCHECK(l->ino == e.ino);
        ++vs.names;
      }
      auto dotdot = f->Lookup(n.ino, "..");
      FCHECK_OK(dotdot.status(), "..");
      KCHECK(dotdot->ino == m.ParentOf(n.ino));
    } else {
      ++vs.special;
    }
    auto xl = f->ListXattr(n.ino);
    FCHECK_OK(xl.status(), when);
    if (xl->size() != n.xattrs.size()) {
      Printf("verify: inode %lu has %zu xattrs, expected %zu\n", n.ino, xl->size(),
             n.xattrs.size());
      return false;
    }
    for (const Xattr& x : n.xattrs) {
      auto v = f->GetXattr(n.ino, x.name);
      FCHECK_OK(v.status(), x.name.c_str());
      KCHECK(*v == x.value);
      ++vs.xattrs;
    }
  }
  Printf("FS verify (%s): %lu inodes (%lu dirs, %lu files, %lu symlinks, %lu special), %lu names, "
         "%lu bytes of file data, %lu xattrs match\n",
         when, vs.inodes, vs.dirs, vs.files, vs.symlinks, vs.special, vs.names, vs.file_bytes,
         vs.xattrs);
  if (out) *out = vs;
  return true;
}

// Full fsck of the unmounted device with data verification: must be clean and agree with the
// model's counts.
bool FsckClean(block::BlockDevice* dev, const VerifyStats& vs, const char* when) {
  fs::FsckOptions o;
  o.verify_data = true;
  fs::FsckReport r;
  const std::uint64_t t0 = NowNs();
  Status st = fs::Fsck(dev, o, &r);
  const std::uint64_t ns = NowNs() - t0;
  FCHECK_OK(st, when);
  for (const std::string& p : r.problems) Printf("fsck problem: %s\n", p.c_str());
  Printf("FS fsck (%s, verify_data): %lu errors, %lu fixed, exit %d; %lu inodes (%lu dirs, %lu "
         "files, %lu symlinks, %lu special), %lu chunks (%lu refs, %lu bytes), %lu orphans, "
         "%lu tree nodes, %lu/%lu blocks used; replayed %lu; %lu ms\n",
         when, r.errors, r.fixed, fs::FsckExitCode(st, r), r.inodes, r.directories,
         r.regular_files, r.symlinks, r.special_files, r.chunks, r.chunk_refs, r.chunk_bytes,
         r.orphans, r.tree_nodes, r.used_blocks, r.total_blocks, r.replayed_transactions, Ms(ns));
  KCHECK(r.errors == 0);
  KCHECK(fs::FsckExitCode(st, r) == fs::kFsckClean);
  KCHECK(r.orphans == 0);
  KCHECK(r.inodes == vs.inodes);
  KCHECK(r.directories == vs.dirs);
  KCHECK(r.regular_files == vs.files);
  KCHECK(r.symlinks == vs.symlinks);
  KCHECK(r.special_files == vs.special);
  return true;
}

// Mounts the volume and opens the filesystem (orphans processed).
struct Mounted {
  Owned<volume::Volume> vol;
  Filesystem* fs = nullptr;
  volume::MountReport rep;
  std::uint64_t mount_ns = 0;
  ~Mounted() { delete fs; }
};

bool MountFs(block::BlockDevice* dev, Mounted* mt, bool format) {
  auto v = MountReporting(dev, &mt->rep, &mt->mount_ns);
  KCHECK_RESULT(v);
  mt->vol = static_cast<Owned<volume::Volume>&&>(*v);
  if (format) KCHECK_OK(Filesystem::Format(mt->vol.get(), kRootCred, 0755));
  mt->fs = new Filesystem(mt->vol.get());
  KCHECK_OK(mt->fs->Open());
  Note(mt->vol.get(), format ? "formatted" : "mounted");
  return true;
}

bool UnmountFs(Mounted* mt) {
  delete mt->fs;
  mt->fs = nullptr;
  const std::uint64_t t0 = NowNs();
  KCHECK_OK(mt->vol->Unmount());
  Printf("FS unmount (commit + checkpoint): %lu ms\n", Ms(NowNs() - t0));
  mt->vol = Owned<volume::Volume>();
  return true;
}

bool Sync(FsWork& w, const char* phase) {
  if (w.fs) {
    KCHECK_OK(w.fs->Sync());
    Note(w.fs->volume(), phase);
  }
  return true;
}

std::string Dec(std::uint64_t v) { return NumKey("", v, v >= 100000 ? 10 : 5); }

// =============================================================================================
// fs_roundtrip
// =============================================================================================
// The workload. `rs` is the volume's record size (file data is stored in records of rs bytes).
bool RoundtripWorkload(FsWork& w, std::uint32_t rs) {
  std::uint64_t docs, a, b, src, lib, empty, d;
  KCHECK(w.Mkdir(kRootIno, "docs", &docs));
  KCHECK(w.Mkdir(docs, "a", &a));
  KCHECK(w.Mkdir(a, "b", &b));
  KCHECK(w.Mkdir(kRootIno, "src", &src));
  KCHECK(w.Mkdir(src, "lib", &lib));
  KCHECK(w.Mkdir(kRootIno, "empty", &empty, 0700));
  KCHECK(Sync(w, "tree"));

  // Files of the sizes that matter for records of rs bytes and blocks of 4096.
  const std::size_t sizes[] = {0, 1, 4095, 4096, 4097, rs - 1, rs, rs + 1, 3 * rs,
                               (1u << 20) + 77};
  std::uint64_t sized[10];
  for (int i = 0; i < 10; ++i)
    KCHECK(w.CreateFile(docs, NumKey("size-", sizes[i], 7), sizes[i], 100 + i, &sized[i],
                        i == 9 ? 100000 : 0));  // the 1 MiB file in 100,000-byte writes
  // Overwrite the middle of the 1 MiB file across record boundaries, and extend it by appending.
  KCHECK(w.Write(sized[9], rs - 1000, 2 * rs + 2000, 150));
  KCHECK(w.Write(sized[9], (1u << 20) + 77, 5000, 151));
  KCHECK(Sync(w, "sized files"));

  // Sparse file: data at 0, in record 7, and across the record 39/40 boundary; the rest holes.
  std::uint64_t sparse;
  KCHECK(w.CreateFile(b, "sparse.bin", 1000, 200, &sparse));
  KCHECK(w.Write(sparse, 7 * std::uint64_t{rs} + 1234, 5000, 201));
  KCHECK(w.Write(sparse, 40 * std::uint64_t{rs} - 5, 10, 202));
  // A file grown by truncate only (all hole), and a file grown by truncate after data.
  std::uint64_t grown;
  KCHECK(w.CreateFile(b, "grown-by-truncate", 0, 0, &grown));
  KCHECK(w.Truncate(grown, 3 * std::uint64_t{rs} + 17));
  KCHECK(w.Truncate(sized[2], 70000));  // 4095 bytes of data, then zeros
  KCHECK(Sync(w, "sparse"));

  // Many small files in ten directories.
  std::uint64_t dirs[10];
  for (std::uint32_t i = 0; i < 10; ++i) {
    KCHECK(w.Mkdir(src, NumKey("d", i, 2), &d));
    dirs[i] = d;
    for (std::uint32_t j = 0; j < 20; ++j) {
      const std::uint64_t tag = 1000 + i * 100 + j;
      KCHECK(w.CreateFile(d, NumKey("f", j, 3, ".c"), Mix(w.Stream(tag)) % 9000, tag));
    }
    KCHECK(Sync(w, "small files"));
  }
  const std::uint64_t d0 = dirs[0], d1 = dirs[1], d2 = dirs[2], d3 = dirs[3];

  // Symlinks: short, long (two pieces), dangling, to a directory.
  KCHECK(w.Symlink(kRootIno, "link-short", "docs/size-0000001"));
  KCHECK(w.Symlink(src, "link-long", std::string(3000, 'L') + "/end"));
  KCHECK(w.Symlink(lib, "dangling", "/nowhere/at/all"));
  KCHECK(w.Symlink(docs, "to-b", "a/b"));
  // Special files.
  KCHECK(w.Special(kRootIno, "fifo", fs::kTypeFifo | 0600, 0));
  KCHECK(w.Special(kRootIno, "tty3", fs::kTypeChar | 0620, (4u << 8) | 3));
  KCHECK(w.Special(lib, "sock", fs::kTypeSocket | 0755, 0));

  // Hard links: the 4096-byte file gets two more names, then loses its first one.
  KCHECK(w.Link(sized[3], src, "hard-4096"));
  KCHECK(w.Link(sized[3], kRootIno, "hard-4096-root"));
  KCHECK(w.Remove(docs, "size-0004096"));

  // Xattrs: small, medium, large (several pieces), replaced, removed; on files and directories.
  KCHECK(w.SetXattr(sized[1], "user.small", 10, 300));
  KCHECK(w.SetXattr(sized[1], "user.mid", 3000, 301));
  KCHECK(w.SetXattr(sized[1], "user.big", 20000, 302));
  KCHECK(w.SetXattr(sized[1], "trusted.tag", 1, 303));
  KCHECK(w.SetXattr(sized[1], "user.mid", 500, 304));  // replace with a shorter value
  KCHECK(w.RemoveXattr(sized[1], "trusted.tag"));
  KCHECK(w.SetXattr(docs, "user.dir-attr", 64, 305));
  KCHECK(w.SetXattr(sparse, "user.sparse", 65536, 306));  // the largest value allowed
  KCHECK(Sync(w, "links and xattrs"));

  // Renames: within a directory, across directories, a directory with contents, over an
  // existing file (the replaced inode is reclaimed), an exchange of a file and a directory.
  KCHECK(w.Rename(d0, "f000.c", d0, "renamed.c"));
  KCHECK(w.Rename(d1, "f001.c", d2, "moved-here.c"));
  KCHECK(w.Rename(docs, "a", lib, "a-moved"));
  KCHECK(w.Rename(d3, "f003.c", d3, "f004.c"));  // replaces f004.c
  KCHECK(w.Rename(kRootIno, "empty", d2, "f005.c", fs::kRenameExchange));
  // Unlinks and rmdir: every 7th small file of d05..d09, a whole directory emptied and removed.
  for (std::uint32_t i = 5; i < 10; ++i)
    for (std::uint32_t j = 0; j < 20; j += 7)
      KCHECK(w.Remove(dirs[i], NumKey("f", j, 3, ".c")));
  const std::uint64_t d9 = dirs[9];
  for (std::uint32_t j = 0; j < 20; ++j)
    if (j % 7 != 0) KCHECK(w.Remove(d9, NumKey("f", j, 3, ".c")));
  KCHECK(w.Remove(src, "d09"));
  KCHECK(Sync(w, "renames and unlinks"));

  // Truncates and a punched hole.
  KCHECK(w.Truncate(sized[9], 300001));          // shrink into the middle of a record
  KCHECK(w.Truncate(sized[7], 0));               // to empty
  KCHECK(w.Punch(sized[8], rs / 2, rs + 10));    // across a record boundary
  KCHECK(w.Write(sized[6], rs / 3, 10, 400));    // rewrite 10 bytes inside a record

  // Attributes last (a later write would move mtime).
  fs::SetAttrRequest chmod;
  chmod.mask = fs::kSetMode;
  chmod.mode = 0600;
  KCHECK(w.SetAttr(sized[4], chmod));
  fs::SetAttrRequest chown;
  chown.mask = fs::kSetUid | fs::kSetGid;
  chown.uid = kUserCred.uid;
  chown.gid = 100;
  KCHECK(w.SetAttr(sized[5], chown));
  fs::SetAttrRequest utimes;
  utimes.mask = fs::kSetMtime | fs::kSetAtime;
  utimes.mtime_ns = 1700000000123456789ll;
  utimes.atime_ns = 1700000000000000000ll;
  KCHECK(w.SetAttr(sized[9], utimes));
  KCHECK(w.SetAttr(sparse, utimes));
  KCHECK(Sync(w, "truncates and attributes"));

  // Holes are holes, not stored zeros: SEEK_DATA/SEEK_HOLE see the record map.
  if (w.fs) {
    auto h0 = w.fs->SeekHole(sparse, 0);
    KCHECK_RESULT(h0);
    auto d7 = w.fs->SeekData(sparse, rs);
    KCHECK_RESULT(d7);
    auto g = w.fs->SeekData(grown, 0);
    Printf("FS sparse: SEEK_HOLE(0)=%lu SEEK_DATA(%u)=%lu; grown-by-truncate SEEK_DATA(0) -> %s\n",
           *h0, rs, *d7, g.ok() ? "data?" : g.status().CodeName());
    KCHECK(*h0 >= 1000 && *h0 <= rs);  // after record 0's data, at the latest its end
    KCHECK(*d7 == 7 * std::uint64_t{rs});
    KCHECK(!g.ok());
  }
  return true;
}

// fs-level throughput: creates, small files with data, one large file (MB/s), inside QEMU.
bool FsThroughput(FsWork& w, std::uint32_t nfiles, std::uint32_t big_mib, std::uint64_t* big_ino) {
  std::uint64_t bench, empties, smalls;
  KCHECK(w.Mkdir(kRootIno, "bench", &bench));
  KCHECK(w.Mkdir(bench, "empty-files", &empties));
  KCHECK(w.Mkdir(bench, "4k-files", &smalls));
  KCHECK(Sync(w, "bench"));

  std::uint64_t t0 = NowNs();
  for (std::uint32_t i = 0; i < nfiles; ++i)
    KCHECK(w.CreateFile(empties, NumKey("e", i, 5), 0, 0));
  std::uint64_t t1 = NowNs();
  KCHECK(Sync(w, "bench creates"));
  std::uint64_t t2 = NowNs();
  Printf("THROUGHPUT fs create (empty files, 1 txn each, one Sync at the end): %lu files/s "
         "(%u files in %lu ms + Sync %lu ms)\n",
         nfiles * std::uint64_t{1000000000} / (t2 - t0), nfiles, Ms(t1 - t0), Ms(t2 - t1));

  t0 = NowNs();
  for (std::uint32_t i = 0; i < nfiles; ++i)
    KCHECK(w.CreateFile(smalls, NumKey("s", i, 5), 4096, 5000 + i));
  t1 = NowNs();
  KCHECK(Sync(w, "bench 4k files"));
  t2 = NowNs();
  Printf("THROUGHPUT fs create+write 4 KiB files (one Sync at the end): %lu files/s, %lu KiB/s "
         "(%u files in %lu ms + Sync %lu ms)\n",
         nfiles * std::uint64_t{1000000000} / (t2 - t0),
         nfiles * std::uint64_t{4} * 1000000000 / (t2 - t0), nfiles, Ms(t1 - t0), Ms(t2 - t1));

  // One large file written in 1 MiB Write() calls, then Sync. The content is generated first
  // and the model updated after, so the timed loop (and the heap peak) is the engine's alone.
  KCHECK(w.CreateFile(bench, "large.bin", 0, 0, big_ino));
  const std::uint64_t bytes = std::uint64_t{big_mib} << 20;
  std::string content = Bytes(w.Stream(6000), bytes);
  const std::uint64_t heap0 = GetHeapStats().bytes_in_use;
  ResetHeapPeak();
  t0 = NowNs();
  for (std::uint64_t off = 0; off < bytes; off += 1u << 20)
    KCHECK_OK(w.fs->Write(*big_ino, off, reinterpret_cast<const std::uint8_t*>(content.data()) + off,
                          1u << 20));
  t1 = NowNs();
  KCHECK(Sync(w, "bench large file"));
  t2 = NowNs();
  const HeapStats hs = GetHeapStats();
  w.bytes_written += bytes;
  w.m.Find(*big_ino)->data = static_cast<std::string&&>(content);
  Printf("THROUGHPUT fs write %u MiB file (1 MiB writes, then Sync): %lu KiB/s (%lu ms write + "
         "%lu ms Sync)\n",
         big_mib, bytes / 1024 * 1000000000 / (t2 - t0), Ms(t1 - t0), Ms(t2 - t1));
  Printf("MEMORY fs 1 MiB writes + Sync: engine heap peak +%lu KiB over the mounted state\n",
         (hs.peak_bytes - heap0) / 1024);
  return true;
}

// In-kernel speed of the two hashes every data write pays (SHA-256 names the chunk, CRC32C
// checks the stored bytes): the ceiling of fs write throughput under this emulator.
void HashThroughput() {
  std::string buf = Bytes(77, 4u << 20);
  std::uint64_t t0 = NowNs();
  const Sha256Digest d = Sha256PortableOneShot(buf.data(), buf.size());
  const std::uint64_t sha_ns = NowNs() - t0;
  t0 = NowNs();
  const std::uint32_t c = Crc32c(buf.data(), buf.size());
  const std::uint64_t crc_ns = NowNs() - t0;
  Printf("THROUGHPUT sha256 (portable; port::Sha256 not accelerated here): %lu KiB/s; crc32c: "
         "%lu KiB/s (4 MiB each; %02x %08x)\n",
         std::uint64_t{4096} * 1000000000 / (sha_ns ? sha_ns : 1),
         std::uint64_t{4096} * 1000000000 / (crc_ns ? crc_ns : 1), d.bytes[0], c);
}

void PrintPortAllocProfile() {
  const PortAllocProfile p = GetPortAllocProfile();
  Printf("MEMORY port::Allocate requests (bytes/align x calls):");
  for (int i = 0; i < p.nshapes; ++i)
    Printf(" %lu/%lu x%lu", p.shapes[i].bytes, p.shapes[i].align, p.shapes[i].calls);
  if (p.other) Printf(" other x%lu", p.other);
  Printf("\n");
}

}  // namespace

bool TestFsRoundtrip(TestContext& ctx) {
  block::BlockDevice* dev = ctx.disk;
  ReporterScope rs(ctx.name);
  FsReporterScope frs;
  KCHECK(rs.ok() && frs.ok());
  FsWork w;
  w.seed = ctx.OptionU64("seed", 20240609);
  const std::uint32_t nfiles = static_cast<std::uint32_t>(ctx.OptionU64("bench_files", 300));
  const std::uint32_t big_mib = static_cast<std::uint32_t>(ctx.OptionU64("bench_mib", 8));

  std::uint64_t t0 = NowNs();
  volume::MkfsOptions mo;
  mo.label = "qemu-fs";
  KCHECK_OK(volume::Volume::Mkfs(dev, mo));
  Printf("FS mkfs: %lu ms (%lu MiB device)\n", Ms(NowNs() - t0), dev->size_bytes() >> 20);

  std::uint64_t big_ino = 0;
  VerifyStats vs;
  {
    Mounted mt;
    KCHECK(MountFs(dev, &mt, true));
    PrintLayout(mt.vol->sb());
    w.fs = mt.fs;
    const std::uint32_t rsz = mt.fs->record_size();
    t0 = NowNs();
    KCHECK(RoundtripWorkload(w, rsz));
    {
      const journal::MetaStoreStats s = mt.vol->meta()->stats();
      Printf("FS workload: %lu ms, %lu inodes created, %lu bytes written; %lu commits, %lu "
             "journaled blocks, %lu checkpoints, durable_seq %lu (record size %u)\n",
             Ms(NowNs() - t0), w.m.next_ino - 2, w.bytes_written, s.commits, s.committed_blocks,
             s.checkpoints, s.durable_seq, rsz);
    }
    KCHECK(VerifyFs(mt.fs, w.m, "before unmount", &vs));
    KCHECK(FsThroughput(w, nfiles, big_mib, &big_ino));
    KCHECK(UnmountFs(&mt));
  }
  PrintDigest("fs state", w.m.Digest());
  // ---- remount: nothing to replay, every name, byte and attribute is back ----
  {
    Mounted mt;
    const std::uint64_t heap0 = GetHeapStats().bytes_in_use;
    ResetHeapPeak();
    KCHECK(MountFs(dev, &mt, false));
    const HeapStats hm = GetHeapStats();
    Printf("MEMORY fs mount + Open: engine heap +%lu KiB in use, peak +%lu KiB\n",
           (hm.bytes_in_use - heap0) / 1024, (hm.peak_bytes - heap0) / 1024);
    KCHECK(mt.rep.replayed_transactions == 0);
    Printf("THROUGHPUT fs mount (clean, %lu MiB volume, Open included): %lu ms\n",
           dev->size_bytes() >> 20, Ms(mt.mount_ns));
    w.fs = mt.fs;
    t0 = NowNs();
    KCHECK(VerifyFs(mt.fs, w.m, "after remount", &vs));
    Printf("FS verify after remount: %lu ms\n", Ms(NowNs() - t0));
    // Cold read of the large file (chunks from the device, CRC-checked).
    const std::string& want = w.m.Find(big_ino)->data;
    std::vector<std::uint8_t> buf(1u << 20);
    t0 = NowNs();
    for (std::size_t off = 0; off < want.size(); off += buf.size()) {
      auto r = mt.fs->Read(big_ino, off, buf.size(), buf.data());
      KCHECK_RESULT(r);
      KCHECK(*r == buf.size());
      KCHECK(__builtin_memcmp(buf.data(), want.data() + off, buf.size()) == 0);
    }
    const std::uint64_t rd = NowNs() - t0;
    Printf("THROUGHPUT fs read %zu MiB file (1 MiB reads, verified): %lu KiB/s (%lu ms)\n",
           want.size() >> 20, want.size() / 1024 * 1000000000 / (rd ? rd : 1), Ms(rd));
    auto sf = mt.fs->Statfs();
    KCHECK_RESULT(sf);
    Printf("FS statfs: %lu of %lu blocks free, %lu inodes\n", sf->free_blocks, sf->total_blocks,
           sf->total_inodes - sf->free_inodes);
    Printf("MEMORY fs mounted after verifying every file: engine heap +%lu KiB in use (metadata "
           "cache warm)\n",
           (GetHeapStats().bytes_in_use - heap0) / 1024);
    KCHECK(UnmountFs(&mt));
  }
  {
    const std::uint64_t heap0 = GetHeapStats().bytes_in_use;
    ResetHeapPeak();
    KCHECK(FsckClean(dev, vs, "after the round trip"));
    Printf("MEMORY fsck (verify_data): engine heap peak +%lu KiB\n",
           (GetHeapStats().peak_bytes - heap0) / 1024);
  }
  HashThroughput();
  PrintPortAllocProfile();
  return true;
}

// =============================================================================================
// fs_recover_write / fs_recover_verify
// =============================================================================================
namespace {

constexpr std::uint64_t kRecoverJournalBlocks = 4096;
const char kReplayXattr[] = "user.expect-replayed";

// Phase A: synced, then checkpointed home.
bool RecoverPhaseA(FsWork& w) {
  std::uint64_t a, sub;
  KCHECK(w.Mkdir(kRootIno, "a", &a));
  KCHECK(w.Mkdir(a, "sub", &sub));
  for (std::uint32_t i = 0; i < 12; ++i)
    KCHECK(w.CreateFile(a, NumKey("f", i, 2), i == 0 ? 0 : 1 + Mix(w.Stream(i)) % 200000, i));
  KCHECK(w.CreateFile(sub, "deep", 70000, 20));
  KCHECK(w.Symlink(a, "to-deep", "sub/deep"));
  KCHECK(w.SetXattr(w.Ino(a, "f00"), "user.a", 100, 21));
  return Sync(w, "A");
}

// Phase B: each step synced (durable in the journal only).
bool RecoverPhaseB(FsWork& w) {
  const std::uint64_t a = w.Ino(kRootIno, "a"), sub = w.Ino(a, "sub");
  auto f = [&](int i) { return w.Ino(a, NumKey("f", static_cast<std::uint64_t>(i), 2)); };
  std::uint64_t b, deep;
  // B1: a new directory with files.
  KCHECK(w.Mkdir(kRootIno, "b", &b));
  for (std::uint32_t i = 0; i < 8; ++i)
    KCHECK(w.CreateFile(b, NumKey("g", i, 2), 1 + Mix(w.Stream(100 + i)) % 100000, 100 + i));
  KCHECK(Sync(w, "B1"));
  // B2: rewrite inside a file, shrink another, grow a third with a hole.
  KCHECK(w.Write(f(3), 1000, 70000, 110));
  KCHECK(w.Truncate(f(4), 1000));
  KCHECK(w.Truncate(f(5), 400000));
  KCHECK(Sync(w, "B2"));
  // B3: rename across directories, hard link, replace by rename.
  KCHECK(w.Link(f(6), b, "f06-link"));
  KCHECK(w.Rename(a, "f05", b, "moved"));
  KCHECK(w.Rename(a, "f09", a, "f10"));  // replaces f10 (reclaimed)
  KCHECK(Sync(w, "B3"));
  // B4: unlink with reclaim; unlink of a file that is "still open" (orphan left for mount).
  KCHECK(w.Remove(a, "f07"));
  KCHECK(w.Remove(a, "f08", /*keep_orphan=*/true));
  KCHECK(Sync(w, "B4"));
  // B5: xattrs, attributes, a deeper directory, a symlink, an unlink in a subdirectory.
  KCHECK(w.SetXattr(f(1), "user.b5", 5000, 120));
  KCHECK(w.RemoveXattr(f(0), "user.a"));
  fs::SetAttrRequest req;
  req.mask = fs::kSetMode | fs::kSetUid | fs::kSetMtime;
  req.mode = 0640;
  req.uid = 1234;
  req.mtime_ns = 1600000000000000001ll;
  KCHECK(w.SetAttr(f(2), req));
  KCHECK(w.Mkdir(b, "deep", &deep));
  KCHECK(w.Mkdir(deep, "er", nullptr));
  KCHECK(w.Symlink(b, "back", "../a/sub"));
  KCHECK(w.Remove(sub, "deep"));
  KCHECK(Sync(w, "B5"));
  // B6: a 1 MiB file, in 256 KiB writes.
  KCHECK(w.CreateFile(b, "big", (1u << 20) + 3, 130, nullptr, 1u << 18));
  return Sync(w, "B6");
}

// Phase C: never synced; after the stop it must be all or nothing.
bool RecoverPhaseC(FsWork& w) {
  std::uint64_t c;
  KCHECK(w.CreateFile(kRootIno, "c-unsynced", 30000, 200));
  KCHECK(w.Mkdir(kRootIno, "c-dir", &c));
  KCHECK(w.CreateFile(c, "x", 10, 201));
  KCHECK(w.Remove(w.Ino(kRootIno, "a"), "f11"));
  return true;
}

// Inodes on the orphan list, read straight from its B+tree (as Filesystem::Open does).
bool OrphanList(volume::Volume* v, std::vector<std::uint64_t>* out) {
  btree::BTree t(v->meta(), v->allocator(), v->roots(), fs::kOrphanTree);
  journal::ReadView view(v->meta());
  KCHECK_OK(t.Scan(view, btree::Slice(), btree::Slice(),
                   [](void* p, const btree::Slice& k, const btree::Slice&) {
                     if (k.size == 8)
                       static_cast<std::vector<std::uint64_t>*>(p)->push_back(fs::KeyU64(k.data));
                     return true;
                   },
                   out));
  return true;
}

}  // namespace

bool TestFsRecoverWrite(TestContext& ctx) {
  block::BlockDevice* dev = ctx.disk;
  ReporterScope rs(ctx.name);
  FsReporterScope frs;
  KCHECK(rs.ok() && frs.ok());
  volume::MkfsOptions mo;
  mo.label = "qemu-fs-recover";
  mo.journal_blocks = kRecoverJournalBlocks;  // all of phase B fits without a checkpoint
  KCHECK_OK(volume::Volume::Mkfs(dev, mo));
  // Boot 1 stops without unmounting: the volume and filesystem are deliberately leaked (no
  // destructor, no checkpoint), exactly as if the machine stopped.
  Mounted* mt = new Mounted;
  KCHECK(MountFs(dev, mt, true));
  volume::Volume* v = mt->vol.get();
  FsWork w;
  w.fs = mt->fs;
  w.seed = ctx.OptionU64("seed", 20240610);

  KCHECK(RecoverPhaseA(w));
  KCHECK_OK(v->meta()->SyncAndCheckpoint());
  Note(v, "A checkpointed");
  const journal::MetaStoreStats sa = v->meta()->stats();
  KCHECK(sa.journal_used == 0);

  KCHECK(RecoverPhaseB(w));
  // Record how many transactions the journal holds (this xattr's own commit included), so that
  // boot 2 can check the replay count exactly.
  const journal::MetaStoreStats sb0 = v->meta()->stats();
  const std::string expect = Dec(sb0.commits - sa.commits + 1);
  KCHECK_OK(w.fs->SetXattr(kRootIno, kReplayXattr, expect, 0));
  w.m.Find(kRootIno)->xattrs.push_back(Xattr{kReplayXattr, expect});
  KCHECK(Sync(w, "B done"));
  const journal::MetaStoreStats sb = v->meta()->stats();
  KCHECK(sb.checkpoints == sa.checkpoints);  // phase B is in the journal only
  KCHECK(sb.commits - sa.commits == sb0.commits - sa.commits + 1);
  KCHECK(sb.journal_used > 0);
  std::vector<std::uint64_t> orphans;
  KCHECK(OrphanList(v, &orphans));
  KCHECK(orphans.size() == 1 && orphans[0] == w.last_orphan);
  Printf("FS boot 1: phase A checkpointed; phase B %lu transactions durable in the journal only "
         "(%lu of %lu log blocks); orphan inode %lu left open; durable_seq %lu\n",
         sb.commits - sa.commits, sb.journal_used, sb.journal_size, w.last_orphan, sb.durable_seq);
  VerifyStats vs;
  KCHECK(VerifyFs(w.fs, w.m, "boot 1, durable state", &vs));
  PrintDigest("fs durable state", w.m.Digest());

  KCHECK(RecoverPhaseC(w));
  const journal::MetaStoreStats sc = v->meta()->stats();
  KCHECK(sc.durable_seq == sb.durable_seq);
  Printf("FS boot 1: phase C (%lu dirty metadata blocks) never synced; stopping WITHOUT unmount "
         "at durable_seq %lu\n",
         v->meta()->running_dirty_blocks(), sc.durable_seq);
  return true;  // the kernel exits here: no Unmount, no checkpoint, no destructor
}

bool TestFsRecoverVerify(TestContext& ctx) {
  block::BlockDevice* dev = ctx.disk;
  ReporterScope rs(ctx.name);
  FsReporterScope frs;
  KCHECK(rs.ok() && frs.ok());
  KCHECK(volume::HasPermfsSuperblock(dev));
  // Boot 1's durable state: its script (phases A and B) run on the model only.
  FsWork w;
  w.seed = ctx.OptionU64("seed", 20240610);
  KCHECK(RecoverPhaseA(w));
  KCHECK(RecoverPhaseB(w));
  const std::uint64_t orphan = w.last_orphan;
  KCHECK(orphan != 0);
  VerifyStats vs;
  {
    volume::MountReport rep;
    std::uint64_t mount_ns = 0;
    auto vr = MountReporting(dev, &rep, &mount_ns);
    KCHECK_RESULT(vr);
    volume::Volume* v = vr->get();
    Note(v, "replayed");
    PrintLayout(v->sb());
    KCHECK(v->sb().journal_blocks == kRecoverJournalBlocks);
    KCHECK(rep.replayed_transactions > 0);
    Printf("THROUGHPUT fs mount+replay: %lu ms for %lu transactions (%lu blocks)\n", Ms(mount_ns),
           rep.replayed_transactions, rep.replayed_blocks);
    // The file unlinked while "open" survived the stop on the orphan list ...
    std::vector<std::uint64_t> orphans;
    KCHECK(OrphanList(v, &orphans));
    KCHECK(orphans.size() == 1 && orphans[0] == orphan);
    // ... and Filesystem::Open (the mount step of the namespace) reclaims it.
    Filesystem* f = new Filesystem(v);
    KCHECK_OK(f->Open());
    orphans.clear();
    KCHECK(OrphanList(v, &orphans));
    KCHECK(orphans.empty());
    Printf("FS boot 2: orphan inode %lu found on the orphan list and reclaimed by Open\n", orphan);
    w.m.Find(orphan)->live = false;
    w.m.Find(orphan)->orphan = false;
    w.fs = f;
    // Exactly the transactions boot 1 made durable after its checkpoint were replayed.
    auto x = f->GetXattr(kRootIno, kReplayXattr);
    KCHECK_RESULT(x);
    std::uint64_t expect = 0;
    for (char ch : *x) expect = expect * 10 + static_cast<std::uint64_t>(ch - '0');
    Printf("FS boot 2: replayed %lu transactions, boot 1 recorded %lu\n",
           rep.replayed_transactions, expect);
    KCHECK(rep.replayed_transactions == expect);
    w.m.Find(kRootIno)->xattrs.push_back(Xattr{kReplayXattr, *x});
    // Phase C was never synced: all or nothing (nothing, unless the engine committed it on its
    // own). Its model is added only if its first effect is visible; VerifyFs then demands all.
    auto c = f->Lookup(kRootIno, "c-unsynced");
    KCHECK(c.ok() || c.status().IsNotFound());
    if (c.ok()) {
      w.fs = nullptr;
      KCHECK(RecoverPhaseC(w));
      w.fs = f;
    }
    Printf("FS boot 2: phase C (never synced) is %s\n", c.ok() ? "present in full" : "absent");
    KCHECK(VerifyFs(f, w.m, "boot 2, after replay", &vs));
    PrintDigest("fs durable state", w.m.Digest());
    // The recovered filesystem takes new changes and unmounts cleanly.
    KCHECK(w.CreateFile(kRootIno, "after-recovery", 12345, 300));
    KCHECK(w.Rename(kRootIno, "b", kRootIno, "b-renamed"));
    KCHECK(Sync(w, "after recovery"));
    delete f;
    w.fs = nullptr;
    KCHECK_OK(v->Unmount());
  }
  {
    Mounted mt;
    KCHECK(MountFs(dev, &mt, false));
    KCHECK(mt.rep.replayed_transactions == 0);
    KCHECK(VerifyFs(mt.fs, w.m, "boot 2, remount", &vs));
    KCHECK(UnmountFs(&mt));
  }
  KCHECK(FsckClean(dev, vs, "boot 2"));
  return true;
}

// =============================================================================================
// fs_panic: a panic while a filesystem is mounted reports allocator, journal, fs and I/O state.
// =============================================================================================
bool TestFsPanic(TestContext& ctx) {
  block::BlockDevice* dev = ctx.disk;
  ReporterScope rs(ctx.name);
  FsReporterScope frs;
  KCHECK(rs.ok() && frs.ok());
  KCHECK_OK(volume::Volume::Mkfs(dev, volume::MkfsOptions{}));
  Mounted* mt = new Mounted;  // never unmounted: the panic ends the boot
  KCHECK(MountFs(dev, mt, true));
  FsWork w;
  w.fs = mt->fs;
  w.seed = 7;
  std::uint64_t p;
  KCHECK(w.Mkdir(kRootIno, "p", &p));
  for (std::uint32_t i = 0; i < 5; ++i) {
    KCHECK(w.CreateFile(p, NumKey("f", i, 1), 10000, i));
    KCHECK(Sync(w, "files synced"));
  }
  Printf("FS panic test: durable_seq %lu, %lu bytes written before the panic\n",
         mt->vol->meta()->durable_seq(), w.bytes_written);
  // An I/O in flight at the time of the panic (submitted, never polled).
  static std::uint8_t buf[4096];
  static block::Request req;
  req.op = block::Op::kRead;
  req.lba = 0;
  req.count = 1;
  req.data = buf;
  req.on_complete = [](block::Request*, Status) {};
  dev->Submit(&req);
  g_fs_snap.last_op = "deliberate panic";
  port::Panic(__FILE__, __LINE__, "deliberate panic during a filesystem test");
}

}  // namespace permfs::qemu
