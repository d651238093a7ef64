// Randomized differential test: thousands of mixed namespace and data operations run against
// the Filesystem and an in-memory POSIX model (fs_model.h), comparing every errno, and after each
// batch every file's content, size, mode, link count, type, xattrs, symlink target and every
// directory listing (plus '..'), open-but-unlinked files and the inode count. Remounts happen
// between batches (orphans are reclaimed by the mount); each seed ends with a full Fsck
// (verify_data) that must report 0 errors.
//
// Env: PERMFS_FS_MODEL_OPS = operations per seed (default 2500).
//      PERMFS_FS_MODEL_SEED = run only this seed (repro).
// A failure prints "fs_model: seed=<S> rs=<R> op=<N>: ...".
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fs_fixture.h"
#include "fs_model.h"
#include "util/random.h"
#include "testutil/volume_fixture.h"

namespace permfs::fs::test {
namespace {

using testutil::EnvU64;

using model::Expect;
using model::MNode;
using model::Model;

class FsModelTest : public FsFixture, public ::testing::WithParamInterface<std::uint64_t> {
 protected:
  std::uint64_t seed_ = 0;
  std::uint32_t rs_ = 0;
  std::uint64_t op_no_ = 0;
  Random* rnd_ = nullptr;
  Model m_;
  bool failed_ = false;
  std::string last_op_;

  std::string Where() const {
    return "fs_model: seed=" + std::to_string(seed_) + " rs=" + std::to_string(rs_) +
           " op=" + std::to_string(op_no_) + " (" + last_op_ + ")";
  }
  void Fail(const std::string& what) {
    if (!failed_) ADD_FAILURE() << Where() << ": " << what;
    failed_ = true;
  }
  bool CheckErr(const Expect& want, const Status& got) {
    const int e = got.ToErrno();
    if (!want.Accepts(e)) {
      Fail("errno " + std::to_string(e) + " (" + got.CodeName() + ": " + got.message() +
           "), model wants " + std::to_string(want.err) +
           (want.alt >= 0 ? " or " + std::to_string(want.alt) : std::string()));
      return false;
    }
    return true;
  }

  // ---- Random choices ----------------------------------------------------------------
  std::vector<std::uint64_t> Inodes(bool dirs, bool files, bool others, bool orphans) {
    std::vector<std::uint64_t> v;
    for (auto& [ino, n] : m_.nodes) {
      if (n.nlink == 0 && !orphans) continue;
      if (IsDir(n.mode) ? dirs : IsRegular(n.mode) ? files : others) v.push_back(ino);
    }
    return v;
  }
  std::uint64_t Pick(const std::vector<std::uint64_t>& v) {
    return v.empty() ? 0 : v[rnd_->Uniform(static_cast<std::uint32_t>(v.size()))];
  }
  std::uint64_t PickDir() { return Pick(Inodes(true, false, false, false)); }
  std::string Name() {
    static const char* const kNames[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    if (rnd_->OneIn(150)) return std::string(256, 'L');  // ENAMETOOLONG
    if (rnd_->OneIn(150)) return std::string(255, 'M');  // longest valid
    return kNames[rnd_->Uniform(8)];
  }
  // An existing entry of `dir` most of the time (so renames/unlinks mostly succeed).
  std::string ExistingOrName(std::uint64_t dir) {
    auto& e = m_.nodes[dir].entries;
    if (!e.empty() && !rnd_->OneIn(5)) {
      auto it = e.begin();
      std::advance(it, rnd_->Uniform(static_cast<std::uint32_t>(e.size())));
      return it->first;
    }
    return Name();
  }
  std::string Data(std::size_t n) {
    std::string s(n, '\0');
    switch (rnd_->Uniform(4)) {
      case 0:
        break;  // zeros: holes
      case 1:
        for (char& c : s) c = static_cast<char>('a' + rnd_->Uniform(3));
        break;
      default:
        rnd_->Fill(s.data(), s.size());
    }
    return s;
  }
  // A whole record of one of a few fixed patterns (identical records dedupe).
  std::string Pattern(int k) {
    std::string s(rs_, '\0');
    Random r(1000 + static_cast<std::uint64_t>(k));
    r.Fill(s.data(), s.size());
    return s;
  }
  std::uint64_t Offset() {
    switch (rnd_->Uniform(4)) {
      case 0: return rnd_->Uniform(4 * rs_);
      case 1: return static_cast<std::uint64_t>(rnd_->Uniform(6)) * rs_ + rnd_->Uniform(3) - 1 + rs_;
      case 2: return rnd_->Uniform(300 * 1024);
      default: return rnd_->Uniform(64);
    }
  }
  std::size_t Length() {
    switch (rnd_->Uniform(5)) {
      case 0: return 1 + rnd_->Uniform(16);
      case 1: return rs_ + rnd_->Uniform(3) - 1;
      case 2: return 1 + rnd_->Uniform(3 * rs_);
      case 3: return 1 + rnd_->Uniform(2 * 1024 * 1024 / 16);
      default: return 1 + rnd_->Uniform(5000);
    }
  }

  void HandleOrphan(std::uint64_t reported, std::uint64_t expected) {
    if (reported != expected) {
      Fail("orphan reported " + std::to_string(reported) + ", model expects " +
           std::to_string(expected));
      return;
    }
    if (expected == 0) return;
    if (std::getenv("PERMFS_FS_MODEL_TRACE")) std::printf("  -> orphan %llu\n", static_cast<unsigned long long>(expected));
    if (rnd_->OneIn(2)) {
      Status st = fs_->Reclaim(expected);
      if (!st.ok()) return Fail(std::string("Reclaim failed: ") + st.message());
      m_.Reclaim(expected);
    } else {
      m_.open_orphans.insert(expected);  // "still open"
    }
  }

  // ---- One random operation ------------------------------------------------------------
  void Step() {
    const std::uint32_t r = rnd_->Uniform(100);
    if (r < 8) {  // create regular / special
      std::uint64_t d = PickDir();
      std::string n = Name();
      std::uint32_t mode = 0644, rdev = 0;
      switch (rnd_->Uniform(8)) {
        case 0: mode = kTypeFifo | 0600; break;
        case 1: mode = kTypeSocket | 0755; break;
        case 2: mode = kTypeChar | 0620; rdev = (rnd_->Uniform(256) << 8) | rnd_->Uniform(256); break;
        case 3: mode = kTypeBlock | 0660; rdev = 0x0801; break;
        default: mode = kTypeRegular | (0600 + rnd_->Uniform(0200)); break;
      }
      last_op_ = "create " + std::to_string(d) + "/" + n.substr(0, 8) + " mode=" + std::to_string(mode);
      Expect want = m_.CheckCreate(d, n, false);
      auto res = fs_->Create(d, n, mode, rdev, cred_);
      if (!CheckErr(want, res.status()) || !res.ok()) return;
      if (res->mode != mode) return Fail("create returned mode " + std::to_string(res->mode));
      m_.ApplyCreate(d, n, res->ino, mode, rdev, "");
    } else if (r < 14) {  // mkdir
      std::uint64_t d = PickDir();
      std::string n = Name();
      std::uint32_t mode = rnd_->OneIn(6) ? (kModeSetgid | 0775) : 0755;
      last_op_ = "mkdir " + std::to_string(d) + "/" + n.substr(0, 8);
      Expect want = m_.CheckCreate(d, n, true);
      auto res = fs_->Mkdir(d, n, mode, cred_);
      if (!CheckErr(want, res.status()) || !res.ok()) return;
      m_.ApplyCreate(d, n, res->ino, kTypeDir | mode, 0, "");
    } else if (r < 17) {  // symlink
      std::uint64_t d = PickDir();
      std::string n = Name();
      std::string target(1 + (rnd_->OneIn(10) ? rnd_->Uniform(4200) : rnd_->Uniform(40)), 'x');
      for (char& c : target) c = static_cast<char>('a' + rnd_->Uniform(26));
      last_op_ = "symlink " + std::to_string(d) + "/" + n.substr(0, 8) + " len=" + std::to_string(target.size());
      Expect want = target.size() > kMaxSymlinkLen ? Expect{model::kENAMETOOLONG} : m_.CheckCreate(d, n, false);
      auto res = fs_->Symlink(d, n, target, cred_);
      if (!CheckErr(want, res.status()) || !res.ok()) return;
      m_.ApplyCreate(d, n, res->ino, kTypeSymlink | 0777, 0, target);
    } else if (r < 35) {  // write
      std::uint64_t f = Pick(Inodes(false, true, false, true));
      if (!f) return;
      std::uint64_t off;
      std::string data;
      if (rnd_->OneIn(4)) {  // whole records of a shared pattern (dedupe)
        off = static_cast<std::uint64_t>(rnd_->Uniform(8)) * rs_;
        const int k = static_cast<int>(rnd_->Uniform(3));
        for (std::uint32_t i = 0, n = 1 + rnd_->Uniform(3); i < n; ++i) data += Pattern(k);
      } else {
        off = Offset();
        data = Data(Length());
      }
      last_op_ = "write ino=" + std::to_string(f) + " off=" + std::to_string(off) + " len=" + std::to_string(data.size());
      Status st = WriteStr(f, off, data);
      if (!CheckErr({}, st)) return;
      Model::Write(m_.nodes[f], off, data);
    } else if (r < 42) {  // truncate
      std::uint64_t f = Pick(Inodes(false, true, false, true));
      if (!f) return;
      const std::uint64_t cur = m_.nodes[f].data.size();
      std::uint64_t size;
      switch (rnd_->Uniform(4)) {
        case 0: size = cur ? rnd_->Uniform64(cur) : 0; break;
        case 1: size = cur + rnd_->Uniform(3 * rs_); break;
        case 2: size = static_cast<std::uint64_t>(rnd_->Uniform(5)) * rs_; break;
        default: size = rnd_->Uniform(1 << 20); break;
      }
      last_op_ = "truncate ino=" + std::to_string(f) + " " + std::to_string(cur) + "->" + std::to_string(size);
      Status st;
      if (rnd_->OneIn(2)) {
        st = fs_->Truncate(f, size);
      } else {
        SetAttrRequest req;
        req.mask = kSetSize;
        req.size = size;
        st = fs_->SetAttr(f, req).status();
      }
      if (!CheckErr({}, st)) return;
      Model::Truncate(m_.nodes[f], size);
    } else if (r < 49) {  // fallocate
      std::uint64_t f = Pick(Inodes(false, true, false, true));
      if (!f) return;
      static const std::uint32_t kModes[] = {
          0, kFallocKeepSize, kFallocPunchHole | kFallocKeepSize, kFallocPunchHole | kFallocKeepSize,
          kFallocZeroRange, kFallocZeroRange | kFallocKeepSize, kFallocPunchHole};
      const std::uint32_t mode = kModes[rnd_->Uniform(7)];
      const std::uint64_t off = Offset();
      const std::uint64_t len = rnd_->OneIn(40) ? 0 : Length();
      last_op_ = "fallocate ino=" + std::to_string(f) + " mode=" + std::to_string(mode) + " off=" +
                 std::to_string(off) + " len=" + std::to_string(len) +
                 " size=" + std::to_string(m_.nodes[f].data.size());
      Expect want = Model::CheckFallocate(mode, len);
      Status st = fs_->Fallocate(f, mode, off, len);
      if (!CheckErr(want, st) || !st.ok()) return;
      Model::Fallocate(m_.nodes[f], mode, off, len);
    } else if (r < 60) {  // rename
      std::uint64_t od = PickDir(), nd = rnd_->OneIn(2) ? od : PickDir();
      std::string on = ExistingOrName(od), nn = rnd_->OneIn(3) ? ExistingOrName(nd) : Name();
      std::uint32_t flags = 0;
      switch (rnd_->Uniform(10)) {
        case 0: flags = kRenameNoReplace; break;
        case 1: case 2: flags = kRenameExchange; break;
        case 3: if (rnd_->OneIn(10)) flags = kRenameNoReplace | kRenameExchange; break;
        default: break;
      }
      last_op_ = "rename " + std::to_string(od) + "/" + on.substr(0, 8) + " -> " + std::to_string(nd) +
                 "/" + nn.substr(0, 8) + " flags=" + std::to_string(flags);
      Expect want = m_.CheckRename(od, on, nd, nn, flags);
      UnlinkOutcome out;
      Status st = fs_->Rename(od, on, nd, nn, flags, &out);
      if (!CheckErr(want, st)) return;
      if (!st.ok()) return;
      const std::uint64_t orphan = m_.ApplyRename(od, on, nd, nn, flags);
      HandleOrphan(out.orphan, orphan);
    } else if (r < 65) {  // link
      std::uint64_t ino = rnd_->OneIn(12) ? PickDir() : Pick(Inodes(false, true, true, rnd_->OneIn(4)));
      if (!ino) return;
      std::uint64_t d = PickDir();
      std::string n = Name();
      last_op_ = "link ino=" + std::to_string(ino) + " -> " + std::to_string(d) + "/" + n.substr(0, 8);
      Expect want = m_.CheckLink(ino, d, n);
      auto res = fs_->Link(ino, d, n);
      if (!CheckErr(want, res.status()) || !res.ok()) return;
      m_.ApplyLink(ino, d, n);
      if (res->nlink != m_.nodes[ino].nlink) Fail("link returned nlink " + std::to_string(res->nlink));
    } else if (r < 73) {  // unlink
      std::uint64_t d = PickDir();
      std::string n = ExistingOrName(d);
      last_op_ = "unlink " + std::to_string(d) + "/" + n.substr(0, 8);
      Expect want = m_.CheckUnlink(d, n);
      UnlinkOutcome out;
      Status st = fs_->Unlink(d, n, &out);
      if (!CheckErr(want, st) || !st.ok()) return;
      HandleOrphan(out.orphan, m_.ApplyUnlink(d, n));
    } else if (r < 78) {  // rmdir
      std::uint64_t d = PickDir();
      std::string n = ExistingOrName(d);
      last_op_ = "rmdir " + std::to_string(d) + "/" + n.substr(0, 8);
      Expect want = m_.CheckRmdir(d, n);
      Status st = fs_->Rmdir(d, n);
      if (!CheckErr(want, st) || !st.ok()) return;
      m_.ApplyRmdir(d, n);
    } else if (r < 86) {  // setxattr / removexattr
      std::uint64_t ino = Pick(Inodes(true, true, true, true));
      static const char* const kX[] = {"user.a", "user.bb", "trusted.t", "security.selinux",
                                       "system.posix_acl_access", "user.a2"};
      std::string name = kX[rnd_->Uniform(6)];
      if (rnd_->OneIn(60)) name = "user." + std::string(251, 'n');  // 256 bytes: ERANGE
      MNode& n = m_.nodes[ino];
      if (rnd_->OneIn(3)) {
        last_op_ = "removexattr ino=" + std::to_string(ino) + " " + name.substr(0, 20);
        Expect want = name.size() > kMaxNameLen ? Expect{model::kERANGE}
                      : n.xattrs.count(name)    ? Expect{}
                                                : Expect{model::kENODATA};
        Status st = fs_->RemoveXattr(ino, name);
        if (!CheckErr(want, st) || !st.ok()) return;
        n.xattrs.erase(name);
      } else {
        std::size_t len = rnd_->OneIn(8) ? rnd_->Uniform(66000) : rnd_->Uniform(300);
        std::string value = Data(len);
        std::uint32_t flags = rnd_->Uniform(3);  // 0, CREATE, REPLACE
        last_op_ = "setxattr ino=" + std::to_string(ino) + " " + name.substr(0, 20) + " len=" +
                   std::to_string(len) + " flags=" + std::to_string(flags);
        Expect want = Model::CheckSetXattr(n, name, value, flags);
        Status st = fs_->SetXattr(ino, name, value, flags);
        if (!CheckErr(want, st) || !st.ok()) return;
        n.xattrs[name] = value;
      }
    } else if (r < 90) {  // setattr mode / times
      std::uint64_t ino = Pick(Inodes(true, true, true, true));
      SetAttrRequest req;
      req.mask = kSetMode | kSetMtime | kSetAtime;
      req.mode = rnd_->Uniform(07777 + 1);
      req.mtime_ns = static_cast<std::int64_t>(rnd_->Next64() >> 2) - (std::int64_t{1} << 61);
      req.atime_ns = req.mtime_ns + 1;
      last_op_ = "setattr ino=" + std::to_string(ino) + " mode=" + std::to_string(req.mode);
      auto res = fs_->SetAttr(ino, req);
      if (!CheckErr({}, res.status())) return;
      MNode& n = m_.nodes[ino];
      n.mode = (n.mode & kTypeMask) | req.mode;
      if (res->mtime_ns != req.mtime_ns || res->atime_ns != req.atime_ns)
        return Fail("setattr did not store the times");
      auto a = fs_->GetAttr(ino);
      if (!a.ok() || a->mtime_ns != req.mtime_ns) return Fail("setattr mtime did not round-trip");
    } else if (r < 93) {  // close an open orphan
      if (m_.open_orphans.empty()) return;
      std::uint64_t o = *m_.open_orphans.begin();
      last_op_ = "reclaim " + std::to_string(o);
      Status st = fs_->Reclaim(o);
      if (!CheckErr({}, st)) return;
      m_.Reclaim(o);
      if (fs_->GetAttr(o).status().ToErrno() != model::kENOENT) Fail("reclaimed inode still exists");
    } else {  // partial read + seek consistency
      std::uint64_t f = Pick(Inodes(false, true, false, true));
      if (!f) return;
      const std::string& d = m_.nodes[f].data;
      const std::uint64_t off = Offset();
      const std::size_t len = Length();
      last_op_ = "read ino=" + std::to_string(f) + " off=" + std::to_string(off) + " len=" + std::to_string(len);
      std::string buf(len, '\x55');
      auto n = fs_->Read(f, off, len, reinterpret_cast<std::uint8_t*>(buf.data()));
      if (!CheckErr({}, n.status())) return;
      const std::string want = off >= d.size() ? std::string() : d.substr(off, len);
      if (*n != want.size() || buf.substr(0, *n) != want) return Fail("partial read differs");
      CheckSeek(f, off);
    }
  }

  void CheckSeek(std::uint64_t f, std::uint64_t off) {
    const std::string& d = m_.nodes[f].data;
    auto sd = fs_->SeekData(f, off);
    auto sh = fs_->SeekHole(f, off);
    if (off >= d.size()) {
      if (sd.status().ToErrno() != model::kENXIO || sh.status().ToErrno() != model::kENXIO)
        Fail("SEEK_DATA/SEEK_HOLE at or beyond EOF must be ENXIO");
      return;
    }
    if (!sh.ok() || *sh < off || *sh > d.size())
      return Fail("SEEK_HOLE result out of range: " + std::to_string(sh.ok() ? *sh : ~0ull));
    if (sd.ok()) {
      if (*sd < off || *sd >= d.size()) return Fail("SEEK_DATA result out of range");
      for (std::uint64_t i = off; i < *sd; ++i)
        if (d[i] != 0) return Fail("SEEK_DATA skipped data at " + std::to_string(i));
    } else if (sd.status().ToErrno() == model::kENXIO) {
      for (std::uint64_t i = off; i < d.size(); ++i)
        if (d[i] != 0) return Fail("SEEK_DATA says no data, but byte " + std::to_string(i) + " is set");
    } else {
      Fail(std::string("SEEK_DATA failed: ") + sd.status().message());
    }
  }

  void Verify(const char* when) {
    if (failed_) return;
    Status st;
    std::vector<std::string> got = model::CanonFs(fs_.get(), &st);
    std::vector<std::string> want = m_.Canon();
    if (got != want) {
      Fail(std::string("namespace differs from the model ") + when + ":\n" + model::DiffLines(want, got));
      return;
    }
    for (std::uint64_t o : m_.open_orphans) {
      MNode n;
      Status s = model::LoadFsNode(fs_.get(), o, &n, nullptr);
      if (!s.ok()) return Fail("open orphan " + std::to_string(o) + " unreadable: " + s.message());
      std::string a = Model::Line("<orphan>", o, n, 0), b = m_.CanonOrphan(o);
      if (a != b) return Fail("open orphan differs:\n  model: " + b + "\n  fs:    " + a);
    }
    auto sf = fs_->Statfs();
    if (!sf.ok()) return Fail("statfs failed");
    if (sf->total_inodes - sf->free_inodes != m_.nodes.size())
      Fail("statfs inode count " + std::to_string(sf->total_inodes - sf->free_inodes) +
           " != model " + std::to_string(m_.nodes.size()));
  }

  void DoRemount() {
    std::vector<std::uint64_t> orphans(m_.open_orphans.begin(), m_.open_orphans.end());
    Remount();
    m_.DropAllOrphans();
    for (std::uint64_t o : orphans)
      if (fs_->GetAttr(o).status().ToErrno() != model::kENOENT)
        Fail("orphan " + std::to_string(o) + " survived a remount");
    Verify("after remount");
  }
};

TEST_P(FsModelTest, MatchesPosixModel) {
  seed_ = GetParam();
  if (std::uint64_t only = EnvU64("PERMFS_FS_MODEL_SEED", 0); only && only != seed_) GTEST_SKIP();
  static const std::uint32_t kRs[] = {4096, 65536, 4096, 16384};
  rs_ = kRs[seed_ % 4];
  const std::uint64_t ops = EnvU64("PERMFS_FS_MODEL_OPS", 2500);
  Make(16384, rs_);
  Random rnd(seed_ * 7919 + 17);
  rnd_ = &rnd;
  const std::uint64_t batch = 50;
  const bool trace = EnvU64("PERMFS_FS_MODEL_TRACE", 0) != 0;
  for (op_no_ = 1; op_no_ <= ops && !failed_; ++op_no_) {
    last_op_.clear();
    Step();
    if (trace && !last_op_.empty()) std::printf("op %llu: %s\n", static_cast<unsigned long long>(op_no_), last_op_.c_str());
    if (op_no_ % batch == 0) {
      Verify("after a batch");
      if (rnd.OneIn(4)) {
        DoRemount();
      } else if (rnd.OneIn(4)) {
        ASSERT_TRUE(vol_->meta()->SyncAndCheckpoint().ok());
      }
    }
  }
  if (!failed_) DoRemount();
  ASSERT_FALSE(failed_);
  std::printf("fs_model: seed=%llu rs=%u: %llu ops, %zu inodes at the end\n",
              static_cast<unsigned long long>(seed_), rs_,
              static_cast<unsigned long long>(ops), m_.nodes.size());
  ExpectClean();  // full fsck with verify_data: 0 errors
  if (::testing::Test::HasFailure()) ADD_FAILURE() << Where() << ": fsck after the run";
}

INSTANTIATE_TEST_SUITE_P(Seeds, FsModelTest, ::testing::Values(1, 2, 3, 4, 5, 6, 7, 8));

}  // namespace
}  // namespace permfs::fs::test
