// In-memory POSIX model of the PermFS namespace, for the differential (fs_model_test) and crash
// (fs_crash_test) harnesses.
//
// The model keeps inodes keyed by the inode number the filesystem assigned (so hard links and
// open-unlinked files are tracked exactly). Each operation computes the errno PermFS must return
// (Linux semantics; where POSIX leaves the choice between two errors open, `alt` names the other
// acceptable one) and applies itself only on success.
//
// Canon() / CanonFs() render a namespace (everything reachable from the root) as sorted text
// lines — path, inode, mode, link count, size, rdev, content hash, symlink target, xattrs and the
// '..' of directories — so the model and a mounted filesystem can be compared line by line, or
// hashed into one 64-bit value per op boundary.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "fs/filesystem.h"
#include "util/sha256.h"

namespace permfs::fs::model {

inline constexpr int kENOENT = 2, kENXIO = 6, kE2BIG = 7, kEEXIST = 17, kENOTDIR = 20,
                     kEISDIR = 21, kEINVAL = 22, kEFBIG = 27, kEMLINK = 31, kERANGE = 34,
                     kENAMETOOLONG = 36, kENOTEMPTY = 39, kENODATA = 61, kEOPNOTSUPP = 95,
                     kEPERM = 1;

struct Expect {
  int err = 0;
  int alt = -1;  // another acceptable errno, or -1
  bool Accepts(int e) const { return e == err || (alt >= 0 && e == alt); }
};

struct MNode {
  std::uint32_t mode = 0;  // type | permission bits
  std::uint32_t nlink = 0;
  std::uint64_t rdev = 0;
  std::string data;    // regular files: the content (size == data.size())
  std::string target;  // symlinks
  std::map<std::string, std::string> xattrs;
  std::map<std::string, std::uint64_t> entries;  // directories
  std::uint64_t parent = 0;                      // directories
};

inline std::string Hex(const std::string& s) {
  Sha256Digest d = Sha256(s.data(), s.size());
  char out[65];
  ToHex(d, out);
  return std::string(out, 16);
}

class Model {
 public:
  Model() {
    MNode root;
    root.mode = kTypeDir | 0755;
    root.nlink = 2;
    root.parent = kRootIno;
    nodes[kRootIno] = root;
  }

  std::map<std::uint64_t, MNode> nodes;
  std::set<std::uint64_t> open_orphans;  // nlink 0, kept alive by an "open handle"

  MNode* Get(std::uint64_t ino) {
    auto it = nodes.find(ino);
    return it == nodes.end() ? nullptr : &it->second;
  }
  bool IsDirIno(std::uint64_t ino) {
    MNode* n = Get(ino);
    return n && IsDir(n->mode);
  }
  // True if `ino` is `anc` or below it.
  bool Within(std::uint64_t ino, std::uint64_t anc) {
    for (int i = 0; i < 100000; ++i) {
      if (ino == anc) return true;
      if (ino == kRootIno) return false;
      ino = nodes[ino].parent;
    }
    return false;
  }

  static bool TooLong(const std::string& n) { return n.size() > kMaxNameLen; }

  // ---- Namespace ------------------------------------------------------------------------
  // Expected result of creating `name` in `dir` (file, dir or symlink).
  Expect CheckCreate(std::uint64_t dir, const std::string& name, bool is_dir) {
    if (TooLong(name)) return {kENAMETOOLONG};
    MNode* d = Get(dir);
    if (!d || !IsDir(d->mode)) return {kENOTDIR};
    if (d->entries.count(name)) return {kEEXIST};
    if (is_dir && d->nlink >= kMaxLinks) return {kEMLINK};
    return {};
  }
  void ApplyCreate(std::uint64_t dir, const std::string& name, std::uint64_t ino,
                   std::uint32_t mode, std::uint64_t rdev, const std::string& target) {
    MNode& d = nodes[dir];
    MNode n;
    n.mode = mode;
    if (IsDir(mode) && (d.mode & kModeSetgid)) n.mode |= kModeSetgid;
    n.nlink = IsDir(mode) ? 2 : 1;
    n.rdev = rdev;
    n.target = target;
    n.parent = IsDir(mode) ? dir : 0;
    if (IsDir(mode)) d.nlink++;
    d.entries[name] = ino;
    nodes[ino] = n;
  }

  Expect CheckLink(std::uint64_t ino, std::uint64_t dir, const std::string& name) {
    if (TooLong(name)) return {kENAMETOOLONG};
    MNode* n = Get(ino);
    if (!n) return {kENOENT};
    if (IsDir(n->mode)) return {kEPERM, nodes[dir].entries.count(name) ? kEEXIST : -1};
    if (n->nlink == 0) return {kENOENT};
    if (n->nlink >= kMaxLinks) return {kEMLINK};
    if (nodes[dir].entries.count(name)) return {kEEXIST};
    return {};
  }
  void ApplyLink(std::uint64_t ino, std::uint64_t dir, const std::string& name) {
    nodes[ino].nlink++;
    nodes[dir].entries[name] = ino;
  }

  // Drops one link of a non-directory; returns true if it became an orphan.
  bool DropFileLink(std::uint64_t ino) {
    MNode& n = nodes[ino];
    n.nlink--;
    return n.nlink == 0;
  }

  Expect CheckUnlink(std::uint64_t dir, const std::string& name) {
    if (TooLong(name)) return {kENAMETOOLONG};
    auto& e = nodes[dir].entries;
    auto it = e.find(name);
    if (it == e.end()) return {kENOENT};
    if (IsDirIno(it->second)) return {kEISDIR};
    return {};
  }
  // Returns the orphaned inode (0 if none).
  std::uint64_t ApplyUnlink(std::uint64_t dir, const std::string& name) {
    auto& e = nodes[dir].entries;
    std::uint64_t ino = e[name];
    e.erase(name);
    return DropFileLink(ino) ? ino : 0;
  }

  Expect CheckRmdir(std::uint64_t dir, const std::string& name) {
    if (TooLong(name)) return {kENAMETOOLONG};
    auto& e = nodes[dir].entries;
    auto it = e.find(name);
    if (it == e.end()) return {kENOENT};
    MNode& n = nodes[it->second];
    if (!IsDir(n.mode)) return {kENOTDIR};
    if (!n.entries.empty()) return {kENOTEMPTY};
    return {};
  }
  void ApplyRmdir(std::uint64_t dir, const std::string& name) {
    auto& e = nodes[dir].entries;
    std::uint64_t ino = e[name];
    e.erase(name);
    nodes[dir].nlink--;
    nodes.erase(ino);
  }

  Expect CheckRename(std::uint64_t od, const std::string& on, std::uint64_t nd,
                     const std::string& nn, std::uint32_t flags) {
    if ((flags & kRenameNoReplace) && (flags & kRenameExchange)) return {kEINVAL};
    if (TooLong(on) || TooLong(nn)) return {kENAMETOOLONG};
    auto& oe = nodes[od].entries;
    auto it = oe.find(on);
    if (it == oe.end()) return {kENOENT};
    const std::uint64_t src = it->second;
    auto& ne = nodes[nd].entries;
    auto jt = ne.find(nn);
    const bool exists = jt != ne.end();
    if (exists && (flags & kRenameNoReplace)) return {kEEXIST};
    if (!exists && (flags & kRenameExchange)) return {kENOENT};
    if (exists && jt->second == src) return {};
    const bool sdir = IsDirIno(src);
    if (sdir && od != nd && Within(nd, src)) return {kEINVAL};
    if (flags & kRenameExchange) {
      if (IsDirIno(jt->second) && od != nd && Within(od, jt->second)) return {kEINVAL};
      return {};
    }
    if (exists) {
      const std::uint64_t dst = jt->second;
      const bool ddir = IsDirIno(dst);
      // Linux reports a target that is an ancestor of the source as ENOTEMPTY before the type
      // checks; the type check first is as good.
      const int anc = Within(od, dst) ? kENOTEMPTY : -1;
      if (sdir && !ddir) return {kENOTDIR, anc};
      if (!sdir && ddir) return {kEISDIR, anc};
      if (ddir && !nodes[dst].entries.empty()) return {kENOTEMPTY};
    }
    if (sdir && od != nd && nodes[nd].nlink >= kMaxLinks && !exists) return {kEMLINK};
    return {};
  }
  // Returns an orphaned file inode (0 if none).
  std::uint64_t ApplyRename(std::uint64_t od, const std::string& on, std::uint64_t nd,
                            const std::string& nn, std::uint32_t flags) {
    auto& oe = nodes[od].entries;
    auto& ne = nodes[nd].entries;
    const std::uint64_t src = oe[on];
    auto jt = ne.find(nn);
    if (jt != ne.end() && jt->second == src) {
      if (!(flags & kRenameExchange)) return 0;
    }
    const bool sdir = IsDirIno(src);
    if (flags & kRenameExchange) {
      const std::uint64_t dst = jt->second;
      const bool ddir = IsDirIno(dst);
      oe[on] = dst;
      nodes[nd].entries[nn] = src;
      if (od != nd) {
        if (sdir) {
          nodes[src].parent = nd;
          nodes[od].nlink--;
          nodes[nd].nlink++;
        }
        if (ddir) {
          nodes[dst].parent = od;
          nodes[nd].nlink--;
          nodes[od].nlink++;
        }
      }
      return 0;
    }
    std::uint64_t orphan = 0;
    if (jt != ne.end()) {
      const std::uint64_t dst = jt->second;
      ne.erase(jt);
      if (IsDirIno(dst)) {
        // The replaced directory is an orphan like a file's last link: reclaimed once closed.
        nodes[nd].nlink--;
        nodes[dst].nlink = 0;
        orphan = dst;
      } else if (DropFileLink(dst)) {
        orphan = dst;
      }
    }
    nodes[od].entries.erase(on);
    nodes[nd].entries[nn] = src;
    if (sdir && od != nd) {
      nodes[src].parent = nd;
      nodes[od].nlink--;
      nodes[nd].nlink++;
    }
    return orphan;
  }

  void Reclaim(std::uint64_t ino) {
    open_orphans.erase(ino);
    nodes.erase(ino);
  }
  // A mount reclaims every orphan.
  void DropAllOrphans() {
    for (std::uint64_t o : open_orphans) nodes.erase(o);
    open_orphans.clear();
  }

  // ---- File data ------------------------------------------------------------------------
  static void Write(MNode& n, std::uint64_t off, const std::string& d) {
    if (d.empty()) return;
    if (n.data.size() < off + d.size()) n.data.resize(off + d.size(), '\0');
    std::copy(d.begin(), d.end(), n.data.begin() + static_cast<std::ptrdiff_t>(off));
  }
  static void Truncate(MNode& n, std::uint64_t size) { n.data.resize(size, '\0'); }
  // Fallocate with PermFS semantics (PUNCH_HOLE needs KEEP_SIZE).
  static Expect CheckFallocate(std::uint32_t mode, std::uint64_t len) {
    if (len == 0) return {kEINVAL};
    if ((mode & kFallocPunchHole) && !(mode & kFallocKeepSize)) return {kEOPNOTSUPP};
    if ((mode & kFallocPunchHole) && (mode & kFallocZeroRange)) return {kEINVAL};
    return {};
  }
  static void Fallocate(MNode& n, std::uint32_t mode, std::uint64_t off, std::uint64_t len) {
    const std::uint64_t end = off + len;
    if (mode & (kFallocPunchHole | kFallocZeroRange)) {
      const std::uint64_t lim = std::min<std::uint64_t>(end, n.data.size());
      for (std::uint64_t i = off; i < lim; ++i) n.data[i] = '\0';
    }
    if (!(mode & kFallocKeepSize) && end > n.data.size()) n.data.resize(end, '\0');
  }

  // ---- Xattrs ---------------------------------------------------------------------------
  static Expect CheckSetXattr(MNode& n, const std::string& name, const std::string& value,
                              std::uint32_t flags) {
    if (name.size() > kMaxNameLen) return {kERANGE};
    if (value.size() > 65536) return {kE2BIG};
    const bool exists = n.xattrs.count(name) != 0;
    if (exists && (flags & kXattrCreate)) return {kEEXIST};
    if (!exists && (flags & kXattrReplace)) return {kENODATA};
    return {};
  }

  // ---- Canonical rendering --------------------------------------------------------------
  static std::string Line(const std::string& path, std::uint64_t ino, const MNode& n,
                          std::uint64_t dotdot) {
    std::string s = path + " ino=" + std::to_string(ino) + " mode=" + std::to_string(n.mode) +
                    " nlink=" + std::to_string(n.nlink);
    if (IsRegular(n.mode)) s += " size=" + std::to_string(n.data.size()) + " data=" + Hex(n.data);
    if (IsSymlink(n.mode)) s += " target=" + Hex(n.target) + "/" + std::to_string(n.target.size());
    if (IsDir(n.mode)) s += " dotdot=" + std::to_string(dotdot);
    if ((n.mode & kTypeMask) == kTypeBlock || (n.mode & kTypeMask) == kTypeChar)
      s += " rdev=" + std::to_string(n.rdev);
    for (auto& [k, v] : n.xattrs) s += " x:" + k + "=" + Hex(v) + "/" + std::to_string(v.size());
    return s;
  }
  void CanonRec(std::uint64_t ino, const std::string& path, std::vector<std::string>* out) {
    MNode& n = nodes[ino];
    out->push_back(Line(path, ino, n, IsDir(n.mode) ? n.parent : 0));
    if (IsDir(n.mode))
      for (auto& [name, child] : n.entries) CanonRec(child, path + "/" + name, out);
  }
  std::vector<std::string> Canon() {
    std::vector<std::string> out;
    CanonRec(kRootIno, "", &out);
    std::sort(out.begin(), out.end());
    return out;
  }
  std::string CanonOrphan(std::uint64_t ino) { return Line("<orphan>", ino, nodes[ino], 0); }
};

inline std::uint64_t HashLines(const std::vector<std::string>& lines) {
  std::uint64_t h = 1469598103934665603ull;
  for (const std::string& l : lines) {
    for (unsigned char c : l) h = (h ^ c) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
  }
  return h;
}

// Reads one inode of the filesystem into the model's MNode shape (entries excluded).
inline Status LoadFsNode(Filesystem* fs, std::uint64_t ino, MNode* n, std::uint64_t* dotdot) {
  auto a = fs->GetAttr(ino);
  if (!a.ok()) return a.status();
  n->mode = a->mode;
  n->nlink = a->nlink;
  n->rdev = ((a->mode & kTypeMask) == kTypeBlock || (a->mode & kTypeMask) == kTypeChar) ? a->rdev : 0;
  if (IsRegular(a->mode)) {
    n->data.assign(a->size, '\0');
    if (a->size > 0) {
      auto r = fs->Read(ino, 0, n->data.size(), reinterpret_cast<std::uint8_t*>(n->data.data()));
      if (!r.ok()) return r.status();
      if (*r != a->size) return Status::Corruption("short read of a whole file");
    }
  }
  if (IsSymlink(a->mode)) {
    auto t = fs->Readlink(ino);
    if (!t.ok()) return t.status();
    n->target = *t;
  }
  auto xl = fs->ListXattr(ino);
  if (!xl.ok()) return xl.status();
  for (const std::string& x : *xl) {
    auto v = fs->GetXattr(ino, x);
    if (!v.ok()) return v.status();
    n->xattrs[x] = *v;
  }
  if (dotdot) {
    *dotdot = 0;
    if (IsDir(a->mode)) {
      auto p = fs->Lookup(ino, "..");
      if (!p.ok()) return p.status();
      *dotdot = p->ino;
    }
  }
  return Status();
}

inline Status ListDir(Filesystem* fs, std::uint64_t dir, std::vector<DirEntry>* out) {
  out->clear();
  return fs->ReadDir(
      dir, 0,
      [](void* ctx, const DirEntry& e, std::uint64_t) {
        static_cast<std::vector<DirEntry>*>(ctx)->push_back(e);
        return true;
      },
      out);
}

// Renders the filesystem's namespace like Model::Canon(). Errors are reported as lines (so they
// show up in a diff) and in *st.
inline std::vector<std::string> CanonFs(Filesystem* fs, Status* st) {
  std::vector<std::string> out;
  *st = Status();
  struct Item {
    std::uint64_t ino;
    std::string path;
  };
  std::vector<Item> todo{{kRootIno, ""}};
  std::set<std::uint64_t> seen_dirs;
  while (!todo.empty()) {
    Item it = todo.back();
    todo.pop_back();
    MNode n;
    std::uint64_t dotdot = 0;
    Status s = LoadFsNode(fs, it.ino, &n, &dotdot);
    if (!s.ok()) {
      *st = s;
      out.push_back(it.path + " ERROR " + s.CodeName() + ": " + s.message());
      continue;
    }
    out.push_back(Model::Line(it.path, it.ino, n, dotdot));
    if (IsDir(n.mode)) {
      if (!seen_dirs.insert(it.ino).second) {
        *st = Status::Corruption("directory cycle");
        out.push_back(it.path + " ERROR directory reached twice");
        continue;
      }
      std::vector<DirEntry> es;
      s = ListDir(fs, it.ino, &es);
      if (!s.ok()) {
        *st = s;
        out.push_back(it.path + " ERROR readdir " + s.CodeName());
        continue;
      }
      std::set<std::string> names;
      for (const DirEntry& e : es) {
        if (!names.insert(e.name).second) out.push_back(it.path + "/" + e.name + " DUPLICATE");
        // The entry type must match the inode; Lookup must agree with readdir.
        auto l = fs->Lookup(it.ino, e.name);
        if (!l.ok() || l->ino != e.ino || DirentType(l->mode) != e.type)
          out.push_back(it.path + "/" + e.name + " LOOKUP-MISMATCH");
        todo.push_back({e.ino, it.path + "/" + e.name});
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// First few differing lines of two sorted renderings, for failure messages.
inline std::string DiffLines(const std::vector<std::string>& want,
                             const std::vector<std::string>& got, std::size_t max = 12) {
  std::string s;
  std::size_t i = 0, j = 0, n = 0;
  while ((i < want.size() || j < got.size()) && n < max) {
    if (j >= got.size() || (i < want.size() && want[i] < got[j])) {
      s += "  model only: " + want[i++] + "\n";
      ++n;
    } else if (i >= want.size() || got[j] < want[i]) {
      s += "  fs only:    " + got[j++] + "\n";
      ++n;
    } else {
      ++i, ++j;
    }
  }
  return s;
}

}  // namespace permfs::fs::model
