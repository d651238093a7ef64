// Unit tests per operation: every errno each namespace/data/xattr operation can return, plus the
// POSIX corner cases (rename onto itself, RENAME_EXCHANGE across directories, rmdir of '.' and
// '..', open-unlinked files, SEEK_DATA/SEEK_HOLE at every boundary, fallocate modes, truncate
// across record boundaries, timestamps, setgid inheritance, special files, a full volume).
// The fixture (fs_fixture.h) runs a full fsck (verify_data) after every test.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "fs_fixture.h"
#include "fs_model.h"
#include "util/random.h"

namespace permfs::fs::test {
namespace {

constexpr int kOK = 0, kEPERM = 1, kENOENT = 2, kENXIO = 6, kE2BIG = 7, kEEXIST = 17,
              kENOTDIR = 20, kEISDIR = 21, kEINVAL = 22, kEFBIG = 27, kENOSPC = 28, kEMLINK = 31,
              kERANGE = 34, kENAMETOOLONG = 36, kENOTEMPTY = 39, kENODATA = 61,
              kEOPNOTSUPP = 95, kEBUSY = 16;

int E(const Status& s) { return s.ToErrno(); }
template <typename T>
int E(const Result<T>& r) {
  return r.status().ToErrno();
}

class FsErrnoTest : public FsFixture {
 protected:
  std::uint64_t Mk(std::uint64_t dir, const std::string& n) {
    auto r = fs_->Mkdir(dir, n, 0755, cred_);
    EXPECT_TRUE(r.ok()) << n << ": " << r.status().message();
    return r.ok() ? r->ino : 0;
  }
  std::uint64_t Cr(std::uint64_t dir, const std::string& n, const std::string& data = "") {
    auto r = fs_->Create(dir, n, 0644, 0, cred_);
    EXPECT_TRUE(r.ok()) << n << ": " << r.status().message();
    if (!r.ok()) return 0;
    if (!data.empty()) {
      EXPECT_TRUE(WriteStr(r->ino, 0, data).ok());
    }
    return r->ino;
  }
  InodeRecord A(std::uint64_t ino) {
    auto a = fs_->GetAttr(ino);
    EXPECT_TRUE(a.ok()) << ino;
    return a.ok() ? *a : InodeRecord{};
  }
  std::string Rnd(std::size_t n, std::uint64_t seed) {
    std::string s(n, '\0');
    Random r(seed);
    r.Fill(s.data(), n);
    return s;
  }
  void SetTimes(std::uint64_t ino, std::int64_t t) {
    SetAttrRequest q;
    q.mask = kSetMtime | kSetAtime | kSetCtime;
    q.mtime_ns = q.atime_ns = q.ctime_ns = t;
    ASSERT_TRUE(fs_->SetAttr(ino, q).ok());
  }
};

// ---- Lookup / names ------------------------------------------------------------------------

TEST_F(FsErrnoTest, LookupAndNameLengths) {
  Make();
  const std::uint64_t f = Cr(kRootIno, "f");
  EXPECT_EQ(E(fs_->Lookup(kRootIno, "missing")), kENOENT);
  EXPECT_EQ(E(fs_->Lookup(f, "x")), kENOTDIR);
  EXPECT_EQ(E(fs_->Lookup(kRootIno, std::string(255, 'n'))), kENOENT);
  EXPECT_EQ(E(fs_->Lookup(kRootIno, std::string(256, 'n'))), kENAMETOOLONG);
  EXPECT_EQ(fs_->Lookup(kRootIno, ".")->ino, kRootIno);
  EXPECT_EQ(fs_->Lookup(kRootIno, "..")->ino, kRootIno);
  EXPECT_EQ(E(fs_->GetAttr(0)), kEINVAL);
  EXPECT_EQ(E(fs_->GetAttr(999999)), kENOENT);
  // 255 bytes is fine everywhere, 256 is ENAMETOOLONG everywhere.
  const std::string n255(255, 'a'), n256(256, 'a');
  EXPECT_EQ(E(fs_->Create(kRootIno, n255, 0644, 0, cred_)), kOK);
  EXPECT_EQ(E(fs_->Create(kRootIno, n256, 0644, 0, cred_)), kENAMETOOLONG);
  EXPECT_EQ(E(fs_->Mkdir(kRootIno, std::string(255, 'd'), 0755, cred_)), kOK);
  EXPECT_EQ(E(fs_->Mkdir(kRootIno, n256, 0755, cred_)), kENAMETOOLONG);
  EXPECT_EQ(E(fs_->Symlink(kRootIno, std::string(255, 's'), "t", cred_)), kOK);
  EXPECT_EQ(E(fs_->Symlink(kRootIno, n256, "t", cred_)), kENAMETOOLONG);
  EXPECT_EQ(E(fs_->Link(f, kRootIno, std::string(255, 'l'))), kOK);
  EXPECT_EQ(E(fs_->Link(f, kRootIno, n256)), kENAMETOOLONG);
  EXPECT_EQ(E(fs_->Unlink(kRootIno, n256, nullptr)), kENAMETOOLONG);
  EXPECT_EQ(E(fs_->Rmdir(kRootIno, n256)), kENAMETOOLONG);
  EXPECT_EQ(E(fs_->Rename(kRootIno, n255, kRootIno, n256, 0, nullptr)), kENAMETOOLONG);
  EXPECT_EQ(E(fs_->Rename(kRootIno, n256, kRootIno, "x", 0, nullptr)), kENAMETOOLONG);
  EXPECT_EQ(E(fs_->Rename(kRootIno, n255, kRootIno, "x255", 0, nullptr)), kOK);
  EXPECT_EQ(fs_->Lookup(kRootIno, "x255")->ino, fs_->Lookup(kRootIno, "x255")->ino);
  // Names with '/' or NUL, empty names.
  EXPECT_EQ(E(fs_->Create(kRootIno, "a/b", 0644, 0, cred_)), kEINVAL);
  EXPECT_EQ(E(fs_->Create(kRootIno, std::string("a\0b", 3), 0644, 0, cred_)), kEINVAL);
  EXPECT_EQ(E(fs_->Create(kRootIno, "", 0644, 0, cred_)), kEINVAL);
  Remount();
  EXPECT_TRUE(fs_->Lookup(kRootIno, std::string(255, 'd')).ok());
}

// ---- Create / mkdir / symlink --------------------------------------------------------------

TEST_F(FsErrnoTest, CreateMkdirSymlink) {
  Make();
  const std::uint64_t d = Mk(kRootIno, "d");
  const std::uint64_t f = Cr(d, "f", "abc");
  EXPECT_EQ(E(fs_->Create(d, "f", 0644, 0, cred_)), kEEXIST);
  EXPECT_EQ(E(fs_->Mkdir(d, "f", 0755, cred_)), kEEXIST);
  EXPECT_EQ(E(fs_->Symlink(d, "f", "t", cred_)), kEEXIST);
  EXPECT_EQ(E(fs_->Create(f, "x", 0644, 0, cred_)), kENOTDIR);
  EXPECT_EQ(E(fs_->Mkdir(f, "x", 0755, cred_)), kENOTDIR);
  EXPECT_EQ(E(fs_->Symlink(f, "x", "t", cred_)), kENOTDIR);
  EXPECT_EQ(E(fs_->Create(kRootIno, "dir", kTypeDir | 0755, 0, cred_)), kEINVAL);
  // Non-exclusive create returns the existing inode.
  auto again = fs_->Create(d, "f", 0644, 0, cred_, false);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->ino, f);
  // Creating in a removed directory.
  const std::uint64_t gone = Mk(kRootIno, "gone");
  ASSERT_TRUE(fs_->Rmdir(kRootIno, "gone").ok());
  EXPECT_EQ(E(fs_->Create(gone, "x", 0644, 0, cred_)), kENOENT);
  EXPECT_EQ(E(fs_->Mkdir(gone, "x", 0755, cred_)), kENOENT);
  // Symlink targets: empty is ENOENT, 4095 bytes fine, 4096 ENAMETOOLONG.
  EXPECT_EQ(E(fs_->Symlink(d, "s0", "", cred_)), kENOENT);
  const std::string t4095(4095, 't');
  auto s = fs_->Symlink(d, "s1", t4095, cred_);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->size, 4095u);
  EXPECT_EQ(E(fs_->Symlink(d, "s2", std::string(4096, 't'), cred_)), kENAMETOOLONG);
  EXPECT_EQ(*fs_->Readlink(s->ino), t4095);
  EXPECT_EQ(E(fs_->Readlink(f)), kEINVAL);
  EXPECT_EQ(E(fs_->Readlink(d)), kEINVAL);
  // Reading or writing a directory or symlink.
  std::uint8_t b[4];
  EXPECT_EQ(E(fs_->Read(d, 0, 4, b)), kEISDIR);
  EXPECT_EQ(E(fs_->Write(d, 0, b, 4)), kEISDIR);
  EXPECT_EQ(E(fs_->Truncate(d, 0)), kEISDIR);
  EXPECT_EQ(E(fs_->Write(s->ino, 0, b, 4)), kEINVAL);
  EXPECT_EQ(E(fs_->ReadDir(f, 0, [](void*, const DirEntry&, std::uint64_t) { return true; }, nullptr)), kENOTDIR);
  Remount();
  EXPECT_EQ(*fs_->Readlink(s->ino), t4095);
  EXPECT_EQ(A(d).nlink, 2u);
}

// ---- Link / unlink / rmdir -----------------------------------------------------------------

TEST_F(FsErrnoTest, LinkUnlinkRmdir) {
  Make();
  const std::uint64_t d = Mk(kRootIno, "d");
  const std::uint64_t f = Cr(d, "f", "data");
  EXPECT_EQ(E(fs_->Link(d, kRootIno, "dl")), kEPERM);
  EXPECT_EQ(E(fs_->Link(f, d, "f")), kEEXIST);
  EXPECT_EQ(E(fs_->Link(f, f, "x")), kENOTDIR);
  EXPECT_EQ(E(fs_->Link(999999, d, "x")), kENOENT);
  auto l = fs_->Link(f, kRootIno, "f2");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->nlink, 2u);
  EXPECT_EQ(E(fs_->Unlink(d, "nope", nullptr)), kENOENT);
  EXPECT_EQ(E(fs_->Unlink(kRootIno, "d", nullptr)), kEISDIR);
  EXPECT_EQ(E(fs_->Unlink(f, "x", nullptr)), kENOTDIR);
  EXPECT_EQ(E(fs_->Unlink(d, ".", nullptr)), kEISDIR);
  EXPECT_EQ(E(fs_->Unlink(d, "..", nullptr)), kEISDIR);
  EXPECT_EQ(E(fs_->Rmdir(kRootIno, "nope")), kENOENT);
  EXPECT_EQ(E(fs_->Rmdir(kRootIno, "f2")), kENOTDIR);
  EXPECT_EQ(E(fs_->Rmdir(kRootIno, "d")), kENOTEMPTY);
  EXPECT_EQ(E(fs_->Rmdir(f, "x")), kENOTDIR);
  EXPECT_EQ(E(fs_->Rmdir(d, ".")), kEINVAL);
  EXPECT_EQ(E(fs_->Rmdir(d, "..")), kENOTEMPTY);
  EXPECT_EQ(E(fs_->Rmdir(kRootIno, ".")), kEINVAL);
  UnlinkOutcome o;
  ASSERT_TRUE(fs_->Unlink(d, "f", &o).ok());
  EXPECT_EQ(o.orphan, 0u);
  EXPECT_EQ(A(f).nlink, 1u);
  ASSERT_TRUE(fs_->Unlink(kRootIno, "f2", &o).ok());
  EXPECT_EQ(o.orphan, f);
  // Not reclaimed yet: the "open" file can no longer be linked (ENOENT).
  EXPECT_EQ(E(fs_->Link(f, d, "back")), kENOENT);
  ASSERT_TRUE(fs_->Reclaim(f).ok());
  EXPECT_EQ(E(fs_->GetAttr(f)), kENOENT);
  EXPECT_EQ(A(kRootIno).nlink, 3u);
  ASSERT_TRUE(fs_->Rmdir(kRootIno, "d").ok());
  EXPECT_EQ(A(kRootIno).nlink, 2u);
  EXPECT_EQ(E(fs_->GetAttr(d)), kENOENT);
}

// EMLINK: a file reaches kMaxLinks hard links.
TEST_F(FsErrnoTest, LinkCountLimit) {
  Make(32768);
  const std::uint64_t f = Cr(kRootIno, "f");
  const std::uint64_t d = Mk(kRootIno, "links");
  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint32_t i = 1; i < kMaxLinks; ++i) {
    Status st = fs_->Link(f, d, std::to_string(i)).status();
    ASSERT_TRUE(st.ok()) << i << ": " << st.message();
  }
  EXPECT_EQ(A(f).nlink, kMaxLinks);
  EXPECT_EQ(E(fs_->Link(f, d, "one-too-many")), kEMLINK);
  std::printf("%u links in %.1f s\n", kMaxLinks,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  // A rename over one of its own links is a no-op; unlinking one makes room again.
  ASSERT_TRUE(fs_->Rename(d, "1", d, "2", 0, nullptr).ok());
  EXPECT_EQ(A(f).nlink, kMaxLinks);
  ASSERT_TRUE(fs_->Unlink(d, "1", nullptr).ok());
  EXPECT_EQ(E(fs_->Link(f, d, "again")), kOK);
  Remount();
  EXPECT_EQ(A(f).nlink, kMaxLinks);
}

// EMLINK for directories: mkdir, and rename of a directory into a parent at the limit.
TEST_F(FsErrnoTest, SubdirLimit) {
  Make(32768);
  const std::uint64_t p = Mk(kRootIno, "p");
  for (std::uint32_t i = 2; i < kMaxLinks; ++i) {
    Status st = fs_->Mkdir(p, std::to_string(i), 0755, cred_).status();
    ASSERT_TRUE(st.ok()) << i << ": " << st.message();
  }
  EXPECT_EQ(A(p).nlink, kMaxLinks);
  EXPECT_EQ(E(fs_->Mkdir(p, "x", 0755, cred_)), kEMLINK);
  Mk(kRootIno, "mover");
  EXPECT_EQ(E(fs_->Rename(kRootIno, "mover", p, "mover", 0, nullptr)), kEMLINK)
      << "renaming a directory into a parent at the link limit must fail";
  EXPECT_LE(A(p).nlink, kMaxLinks);
  // Files can still be created there.
  EXPECT_EQ(E(fs_->Create(p, "file", 0644, 0, cred_)), kOK);
}

// ---- Rename ------------------------------------------------------------------------------------

TEST_F(FsErrnoTest, RenameErrors) {
  Make();
  const std::uint64_t a = Mk(kRootIno, "a"), b = Mk(kRootIno, "b");
  const std::uint64_t f = Cr(a, "f", "F"), g = Cr(a, "g", "G");
  const std::uint64_t nonempty = Mk(b, "nonempty");
  Cr(nonempty, "x");
  Mk(b, "empty");
  EXPECT_EQ(E(fs_->Rename(a, "nope", b, "x", 0, nullptr)), kENOENT);
  EXPECT_EQ(E(fs_->Rename(a, "f", f, "x", 0, nullptr)), kENOTDIR);
  EXPECT_EQ(E(fs_->Rename(f, "x", a, "x", 0, nullptr)), kENOTDIR);
  EXPECT_EQ(E(fs_->Rename(a, "f", a, "g", kRenameNoReplace, nullptr)), kEEXIST);
  EXPECT_EQ(E(fs_->Rename(a, "f", a, "none", kRenameExchange, nullptr)), kENOENT);
  EXPECT_EQ(E(fs_->Rename(a, "f", a, "g", kRenameNoReplace | kRenameExchange, nullptr)), kEINVAL);
  EXPECT_EQ(E(fs_->Rename(a, "f", a, "g", kRenameWhiteout, nullptr)), kEINVAL);
  EXPECT_EQ(E(fs_->Rename(a, "f", a, "g", 1u << 7, nullptr)), kEINVAL);
  EXPECT_EQ(E(fs_->Rename(kRootIno, "a", b, "empty", 0, nullptr)), kOK);  // dir over empty dir
  const std::uint64_t a2 = fs_->Lookup(b, "empty")->ino;
  EXPECT_EQ(a2, a);
  EXPECT_EQ(E(fs_->Rename(b, "empty", b, "nonempty", 0, nullptr)), kENOTEMPTY);
  EXPECT_EQ(E(fs_->Rename(a, "f", b, "nonempty", 0, nullptr)), kEISDIR);
  EXPECT_EQ(E(fs_->Rename(b, "nonempty", a, "f", 0, nullptr)), kENOTDIR);
  EXPECT_EQ(E(fs_->Rename(a, ".", a, "x", 0, nullptr)), kEBUSY);
  EXPECT_EQ(E(fs_->Rename(a, "f", a, "..", 0, nullptr)), kEBUSY);
  // Onto itself: same name is a no-op success; RENAME_NOREPLACE still reports EEXIST (Linux).
  EXPECT_EQ(E(fs_->Rename(a, "f", a, "f", 0, nullptr)), kOK);
  EXPECT_EQ(E(fs_->Rename(a, "f", a, "f", kRenameExchange, nullptr)), kOK);
  EXPECT_EQ(E(fs_->Rename(a, "f", a, "f", kRenameNoReplace, nullptr)), kEEXIST);
  EXPECT_EQ(fs_->Lookup(a, "f")->ino, f);
  // Onto a hard link of the same inode: no-op, both names stay, nlink unchanged.
  ASSERT_TRUE(fs_->Link(f, b, "hl").ok());
  UnlinkOutcome o;
  EXPECT_EQ(E(fs_->Rename(a, "f", b, "hl", 0, &o)), kOK);
  EXPECT_EQ(o.orphan, 0u);
  EXPECT_EQ(fs_->Lookup(a, "f")->ino, f);
  EXPECT_EQ(fs_->Lookup(b, "hl")->ino, f);
  EXPECT_EQ(A(f).nlink, 2u);
  // Replacing the last link of a file reports it as an orphan.
  EXPECT_EQ(E(fs_->Rename(a, "f", a, "g", 0, &o)), kOK);
  EXPECT_EQ(o.orphan, g);
  ASSERT_TRUE(fs_->Reclaim(g).ok());
  EXPECT_EQ(ReadAll(fs_->Lookup(a, "g")->ino), "F");
  Remount();
  EXPECT_EQ(A(f).nlink, 2u);
  EXPECT_EQ(E(fs_->GetAttr(g)), kENOENT);
}

TEST_F(FsErrnoTest, RenameIntoOwnSubtreeAtSeveralDepths) {
  Make();
  std::vector<std::uint64_t> chain{Mk(kRootIno, "top")};
  for (int i = 1; i <= 6; ++i) chain.push_back(Mk(chain.back(), "l" + std::to_string(i)));
  for (std::size_t depth = 0; depth < chain.size(); ++depth) {
    // Move "top" under chain[depth] (itself or a descendant): EINVAL, also with flags.
    EXPECT_EQ(E(fs_->Rename(kRootIno, "top", chain[depth], "moved", 0, nullptr)), kEINVAL) << depth;
    EXPECT_EQ(E(fs_->Rename(kRootIno, "top", chain[depth], "moved", kRenameNoReplace, nullptr)), kEINVAL) << depth;
    // Intermediate directories too: l1 under its own descendants.
    if (depth >= 2) {
      EXPECT_EQ(E(fs_->Rename(chain[0], "l1", chain[depth], "x", 0, nullptr)), kEINVAL) << depth;
    }
  }
  // EXCHANGE of an ancestor with a descendant: EINVAL both ways.
  const std::uint64_t f = Cr(chain[4], "file");
  (void)f;
  EXPECT_EQ(E(fs_->Rename(kRootIno, "top", chain[4], "file", kRenameExchange, nullptr)), kEINVAL);
  EXPECT_EQ(E(fs_->Rename(chain[4], "file", kRootIno, "top", kRenameExchange, nullptr)), kEINVAL);
  // A sideways move is fine.
  const std::uint64_t side = Mk(kRootIno, "side");
  EXPECT_EQ(E(fs_->Rename(chain[2], "l3", side, "l3", 0, nullptr)), kOK);
  EXPECT_EQ(fs_->Lookup(chain[3], "..")->ino, side);
  EXPECT_EQ(A(chain[2]).nlink, 2u);
  EXPECT_EQ(A(side).nlink, 3u);
}

TEST_F(FsErrnoTest, RenameExchangeFileAndDirAcrossDirectories) {
  Make();
  const std::uint64_t p = Mk(kRootIno, "p"), q = Mk(kRootIno, "q");
  const std::uint64_t f = Cr(p, "file", "contents");
  const std::uint64_t d = Mk(q, "dir");
  Mk(d, "sub");
  EXPECT_EQ(A(p).nlink, 2u);
  EXPECT_EQ(A(q).nlink, 3u);
  ASSERT_TRUE(fs_->Rename(p, "file", q, "dir", kRenameExchange, nullptr).ok());
  EXPECT_EQ(fs_->Lookup(p, "file")->ino, d);
  EXPECT_EQ(fs_->Lookup(q, "dir")->ino, f);
  EXPECT_EQ(A(p).nlink, 3u);
  EXPECT_EQ(A(q).nlink, 2u);
  EXPECT_EQ(A(d).nlink, 3u);
  EXPECT_EQ(A(f).nlink, 1u);
  EXPECT_EQ(fs_->Lookup(d, "..")->ino, p);
  // Two directories across parents.
  const std::uint64_t d2 = Mk(q, "d2");
  ASSERT_TRUE(fs_->Rename(p, "file", q, "d2", kRenameExchange, nullptr).ok());
  EXPECT_EQ(fs_->Lookup(d, "..")->ino, q);
  EXPECT_EQ(fs_->Lookup(d2, "..")->ino, p);
  EXPECT_EQ(A(p).nlink, 3u);
  EXPECT_EQ(A(q).nlink, 3u);
  Remount();
  EXPECT_EQ(fs_->Lookup(d, "..")->ino, q);
  EXPECT_EQ(ReadAll(fs_->Lookup(q, "dir")->ino), "contents");
}

// ---- Open-unlinked files -----------------------------------------------------------------------

TEST_F(FsErrnoTest, UnlinkedOpenFileStaysReadableUntilReclaim) {
  Make(16384, 4096);
  const std::string data = Rnd(50000, 3);
  const std::uint64_t f = Cr(kRootIno, "f", data);
  UnlinkOutcome o;
  ASSERT_TRUE(fs_->Unlink(kRootIno, "f", &o).ok());
  ASSERT_EQ(o.orphan, f);
  EXPECT_EQ(A(f).nlink, 0u);
  EXPECT_EQ(ReadAll(f), data);
  ASSERT_TRUE(fs_->Sync().ok());
  EXPECT_EQ(ReadAll(f), data);
  // Still writable and truncatable while "open".
  ASSERT_TRUE(WriteStr(f, 10, "xyz").ok());
  ASSERT_TRUE(fs_->SetXattr(f, "user.k", "v", 0).ok());
  ASSERT_TRUE(fs_->Truncate(f, 20000).ok());
  std::string want = data.substr(0, 20000);
  want.replace(10, 3, "xyz");
  EXPECT_EQ(ReadAll(f), want);
  ASSERT_TRUE(fs_->Reclaim(f).ok());
  EXPECT_EQ(E(fs_->GetAttr(f)), kENOENT);
  EXPECT_EQ(E(fs_->Read(f, 0, 1, nullptr)), kENOENT);
}

// Regression: truncating an unlinked-but-open file used to replace its "unlinked" orphan record
// by a "truncate" record and then delete it, so the inode and its data leaked forever (the next
// mount did not reclaim it; fsck: "inode not named by any directory and not an orphan").
TEST_F(FsErrnoTest, TruncateOfUnlinkedFileKeepsItOnTheOrphanList) {
  Make(16384, 4096);
  const auto free0 = vol_->allocator()->stats().free_blocks;
  const std::uint64_t f = Cr(kRootIno, "f", Rnd(100000, 4));
  UnlinkOutcome o;
  ASSERT_TRUE(fs_->Unlink(kRootIno, "f", &o).ok());
  ASSERT_EQ(o.orphan, f);
  ASSERT_TRUE(fs_->Truncate(f, 5000).ok());  // shrink while "open"
  ASSERT_TRUE(fs_->Truncate(f, 0).ok());
  Remount();  // no Reclaim: the mount must reclaim it
  EXPECT_EQ(E(fs_->GetAttr(f)), kENOENT) << "orphan lost its orphan record";
  ASSERT_TRUE(vol_->meta()->SyncAndCheckpoint().ok());
  EXPECT_LE(free0 - vol_->allocator()->stats().free_blocks, 8u);
}

// Unmounting with an unreclaimed orphan leaves a clean volume (fsck, in TearDown) and the next
// mount reclaims it.
TEST_F(FsErrnoTest, OrphanSurvivesUnmountAndIsReclaimedAtMount) {
  Make();
  const std::uint64_t f = Cr(kRootIno, "f", Rnd(200000, 5));
  ASSERT_TRUE(fs_->Unlink(kRootIno, "f", nullptr).ok());
  Unmount();
  {
    FsckOptions fo;
    fo.verify_data = true;
    fo.read_only = true;
    FsckReport r;
    ASSERT_TRUE(Fsck(dev_.get(), fo, &r).ok());
    EXPECT_EQ(r.errors, 0u);
    EXPECT_EQ(r.orphans, 1u);
  }
  Mount();
  EXPECT_EQ(E(fs_->GetAttr(f)), kENOENT);
}

// ---- ENOSPC, EFBIG ---------------------------------------------------------------------------

// Fills an 8 MiB volume with file data until ENOSPC.
class FullVolumeTest : public FsErrnoTest {
 protected:
  std::uint64_t d_ = 0;
  std::vector<std::uint64_t> files_;
  void Fill() {
    Make(2048, 4096);  // 8 MiB
    d_ = Mk(kRootIno, "d");
    Mk(kRootIno, "empty");
    Status st;
    for (int i = 0; i < 1000; ++i) {
      auto c = fs_->Create(d_, "f" + std::to_string(i), 0644, 0, cred_);
      if (!c.ok()) {
        st = c.status();
        break;
      }
      files_.push_back(c->ino);
      st = WriteStr(c->ino, 0, Rnd(256 * 1024, 100 + static_cast<std::uint64_t>(i)));
      if (!st.ok()) break;
    }
    ASSERT_EQ(E(st), kENOSPC) << "volume never filled: " << st.message();
    ASSERT_GE(files_.size(), 3u);
    EXPECT_EQ(E(WriteStr(files_[0], 1 << 20, Rnd(128 * 1024, 7))), kENOSPC);
  }
};

TEST_F(FullVolumeTest, UnlinkRmdirAlignedTruncateSucceed) {
  Fill();
  EXPECT_EQ(E(fs_->Truncate(files_[0], 8192)), kOK);  // record-aligned: no new chunk needed
  UnlinkOutcome o;
  EXPECT_EQ(E(fs_->Unlink(d_, "f1", &o)), kOK);
  if (o.orphan) {
    EXPECT_EQ(E(fs_->Reclaim(o.orphan)), kOK);
  }
  EXPECT_EQ(E(fs_->Rmdir(kRootIno, "empty")), kOK);
  // And the space comes back.
  ASSERT_TRUE(vol_->meta()->SyncAndCheckpoint().ok());
  EXPECT_EQ(E(WriteStr(files_[0], 0, Rnd(200 * 1024, 8))), kOK);
  Remount();
  EXPECT_EQ(A(files_[0]).size, 200u * 1024);
}

// KNOWN BUG (reported, not fixed): shrinking to a size inside a record rewrites the partial
// tail record as a NEW chunk before any record is freed, so on a full volume truncate(2) fails
// with ENOSPC — RELIABILITY.md §4.2 requires truncate to succeed on a full filesystem.
TEST_F(FullVolumeTest, UnalignedTruncateSucceeds) {
  Fill();
  EXPECT_EQ(E(fs_->Truncate(files_[0], 100)), kOK);
}

// KNOWN BUG (reported, not fixed): on a volume filled with metadata (empty files + xattrs),
// unlink fails with ENOSPC (the orphan record / B+tree changes need a new node and nothing is
// reserved for space-freeing operations).
TEST_F(FsErrnoTest, FullOfMetadataStillAllowsUnlink) {
  Make(1024, 4096);  // 4 MiB
  const std::uint64_t d = Mk(kRootIno, "d");
  Status st;
  int n = 0;
  for (; n < 200000; ++n) {
    auto c = fs_->Create(d, "file-with-a-longish-name-" + std::to_string(n), 0644, 0, cred_);
    if (!c.ok()) {
      st = c.status();
      break;
    }
    st = fs_->SetXattr(c->ino, "user.pad", std::string(2000, 'p'), 0);
    if (!st.ok()) break;
  }
  ASSERT_EQ(E(st), kENOSPC) << st.message();
  for (int k = 0; k < 20; ++k) {
    UnlinkOutcome o;
    Status us = fs_->Unlink(d, "file-with-a-longish-name-" + std::to_string(k), &o);
    EXPECT_EQ(E(us), kOK) << k << ": " << us.message();
    if (us.ok() && o.orphan) {
      EXPECT_EQ(E(fs_->Reclaim(o.orphan)), kOK) << k;
    }
  }
}

TEST_F(FsErrnoTest, FileTooBig) {
  Make();
  const std::uint64_t f = Cr(kRootIno, "f");
  const std::uint64_t max = Filesystem::kMaxFileSize;
  std::uint8_t b[2] = {1, 2};
  EXPECT_EQ(E(fs_->Write(f, max, b, 1)), kEFBIG);
  EXPECT_EQ(E(fs_->Write(f, max - 1, b, 2)), kEFBIG);
  EXPECT_EQ(E(fs_->Write(f, ~0ull - 1, b, 2)), kEFBIG);
  EXPECT_EQ(E(fs_->Truncate(f, max + 1)), kEFBIG);
  EXPECT_EQ(E(fs_->Fallocate(f, 0, max, 1)), kEFBIG);
  EXPECT_EQ(E(fs_->Fallocate(f, 0, ~0ull, 2)), kEFBIG);
  SetAttrRequest q;
  q.mask = kSetSize;
  q.size = max + 1;
  EXPECT_EQ(E(fs_->SetAttr(f, q)), kEFBIG);
  // The last byte is writable; the file is sparse.
  EXPECT_EQ(E(fs_->Write(f, max - 1, b, 1)), kOK);
  EXPECT_EQ(A(f).size, max);
  std::uint8_t r[4] = {9, 9, 9, 9};
  EXPECT_EQ(*fs_->Read(f, max - 2, 4, r), 2u);
  EXPECT_EQ(r[0], 0);
  EXPECT_EQ(r[1], 1);
  EXPECT_EQ(*fs_->SeekData(f, 0), (max - 1) / fs_->record_size() * fs_->record_size());
  EXPECT_EQ(E(fs_->Truncate(f, max)), kOK);
  EXPECT_EQ(E(fs_->Truncate(f, 0)), kOK);
}

// Regression: Write() never split a large write into transactions (its batch limit tested an
// always-empty vector), so one write of a few MiB on a volume with the default small journal
// (64 blocks, every volume below 16 MiB) failed with ENOSPC "metadata transaction too large".
TEST_F(FsErrnoTest, LargeWriteOnSmallJournal) {
  Make(4096, 4096);  // 16 MiB: default journal of 64 blocks
  const std::string data = Rnd(6 << 20, 9);
  const std::uint64_t f = Cr(kRootIno, "f");
  Status st = WriteStr(f, 0, data);
  ASSERT_TRUE(st.ok()) << st.message();
  st = WriteStr(f, 4096 * 3 + 5, data.substr(0, 5 << 20));  // overwrite: unref + ref per record
  ASSERT_TRUE(st.ok()) << st.message();
  std::string want = data;
  want.replace(4096 * 3 + 5, 5 << 20, data.substr(0, 5 << 20));
  EXPECT_EQ(ReadAll(f) == want, true);
  ASSERT_TRUE(fs_->Truncate(f, 1).ok());
  ASSERT_TRUE(fs_->Unlink(kRootIno, "f", nullptr).ok());
  ASSERT_TRUE(fs_->Reclaim(f).ok());
}

// ---- Xattrs --------------------------------------------------------------------------------

TEST_F(FsErrnoTest, XattrErrors) {
  Make();
  const std::uint64_t f = Cr(kRootIno, "f");
  const std::uint64_t d = Mk(kRootIno, "d");
  const std::uint64_t s = fs_->Symlink(kRootIno, "s", "target", cred_)->ino;
  EXPECT_EQ(E(fs_->GetXattr(f, "user.none")), kENODATA);
  EXPECT_EQ(E(fs_->RemoveXattr(f, "user.none")), kENODATA);
  EXPECT_EQ(E(fs_->SetXattr(f, "user.none", "v", kXattrReplace)), kENODATA);
  EXPECT_EQ(E(fs_->SetXattr(f, "user.a", "v", kXattrCreate)), kOK);
  EXPECT_EQ(E(fs_->SetXattr(f, "user.a", "w", kXattrCreate)), kEEXIST);
  EXPECT_EQ(E(fs_->SetXattr(f, "user.a", "w", kXattrReplace)), kOK);
  EXPECT_EQ(E(fs_->SetXattr(f, "user.a", "w", kXattrReplace | kXattrCreate)), kEINVAL);
  EXPECT_EQ(*fs_->GetXattr(f, "user.a"), "w");
  // Name length: 255 fine, 256 ERANGE.
  const std::string n255 = "user." + std::string(250, 'n'), n256 = "user." + std::string(251, 'n');
  EXPECT_EQ(E(fs_->SetXattr(f, n255, "v", 0)), kOK);
  EXPECT_EQ(E(fs_->SetXattr(f, n256, "v", 0)), kERANGE);
  EXPECT_EQ(E(fs_->GetXattr(f, n256)), kERANGE);
  // Value size: 65536 fine, 65537 E2BIG; empty values fine.
  const std::string v64k(65536, 'v');
  EXPECT_EQ(E(fs_->SetXattr(f, "user.big", v64k, 0)), kOK);
  EXPECT_EQ(*fs_->GetXattr(f, "user.big"), v64k);
  EXPECT_EQ(E(fs_->SetXattr(f, "user.big", std::string(65537, 'v'), 0)), kE2BIG);
  EXPECT_EQ(*fs_->GetXattr(f, "user.big"), v64k);
  EXPECT_EQ(E(fs_->SetXattr(f, "user.empty", "", 0)), kOK);
  EXPECT_EQ(*fs_->GetXattr(f, "user.empty"), "");
  // Shrinking a large value drops its old pieces.
  EXPECT_EQ(E(fs_->SetXattr(f, "user.big", "small", 0)), kOK);
  EXPECT_EQ(*fs_->GetXattr(f, "user.big"), "small");
  // Namespaces.
  for (const char* ok : {"trusted.t", "security.selinux", "system.posix_acl_access",
                         "system.posix_acl_default"})
    EXPECT_EQ(E(fs_->SetXattr(d, ok, "x", 0)), kOK) << ok;
  for (const char* bad : {"bogus.x", "system.other", "user.", "user", ""})
    EXPECT_NE(E(fs_->SetXattr(d, bad, "x", 0)), kOK) << bad;
  EXPECT_EQ(E(fs_->SetXattr(d, "bogus.x", "x", 0)), kEOPNOTSUPP);
  EXPECT_EQ(E(fs_->SetXattr(s, "user.on-symlink", "x", 0)), kOK);
  EXPECT_EQ(E(fs_->GetXattr(999999, "user.a")), kENOENT);
  EXPECT_EQ(E(fs_->SetXattr(999999, "user.a", "x", 0)), kENOENT);
  auto list = fs_->ListXattr(f);
  ASSERT_TRUE(list.ok());
  std::vector<std::string> names = *list;
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"user.a", "user.big", "user.empty", n255}));
  EXPECT_EQ(E(fs_->RemoveXattr(f, "user.a")), kOK);
  EXPECT_EQ(E(fs_->GetXattr(f, "user.a")), kENODATA);
  Remount();
  EXPECT_EQ(fs_->ListXattr(f)->size(), 3u);
  EXPECT_EQ(*fs_->GetXattr(s, "user.on-symlink"), "x");
  // Xattrs go with the inode.
  UnlinkOutcome o;
  ASSERT_TRUE(fs_->Unlink(kRootIno, "f", &o).ok());
  ASSERT_TRUE(fs_->Reclaim(o.orphan).ok());
}

// ---- SEEK_DATA / SEEK_HOLE -----------------------------------------------------------------

TEST_F(FsErrnoTest, SeekDataSeekHoleAtEveryBoundary) {
  Make(16384, 4096);
  const std::uint64_t rs = 4096;
  const std::uint64_t f = Cr(kRootIno, "f");
  // Layout: data [0, rs), hole [rs, 2rs), data [2rs, 2rs+100), hole [2rs+100, 5rs),
  // data [5rs, 6rs-10) = EOF.
  ASSERT_TRUE(WriteStr(f, 0, std::string(rs, 'a')).ok());
  ASSERT_TRUE(WriteStr(f, 2 * rs, std::string(100, 'b')).ok());
  ASSERT_TRUE(WriteStr(f, 5 * rs, std::string(rs - 10, 'c')).ok());
  const std::uint64_t size = 6 * rs - 10;
  ASSERT_EQ(A(f).size, size);
  struct Range {
    std::uint64_t a, b;
  };
  const std::vector<Range> data = {{0, rs}, {2 * rs, 2 * rs + 100}, {5 * rs, size}};
  auto want_data = [&](std::uint64_t off) -> std::int64_t {
    for (const Range& r : data) {
      if (off < r.a) return static_cast<std::int64_t>(r.a);
      if (off < r.b) return static_cast<std::int64_t>(off);
    }
    return -1;  // ENXIO
  };
  auto want_hole = [&](std::uint64_t off) -> std::int64_t {
    if (off >= size) return -1;
    for (const Range& r : data)
      if (off >= r.a && off < r.b) return static_cast<std::int64_t>(r.b);
    return static_cast<std::int64_t>(off);
  };
  std::vector<std::uint64_t> offs;
  for (std::uint64_t b : std::initializer_list<std::uint64_t>{0ull, rs, 2 * rs, 2 * rs + 100, 3 * rs, 4 * rs, 5 * rs, size, 6 * rs, 7 * rs})
    for (std::int64_t dlt : {-1, 0, 1})
      if (static_cast<std::int64_t>(b) + dlt >= 0) offs.push_back(b + dlt);
  offs.push_back(~0ull >> 1);
  for (int pass = 0; pass < 2; ++pass) {
    for (std::uint64_t off : offs) {
      auto sd = fs_->SeekData(f, off);
      auto sh = fs_->SeekHole(f, off);
      const std::int64_t wd = want_data(off), wh = want_hole(off);
      if (wd < 0) {
        EXPECT_EQ(E(sd), kENXIO) << "SEEK_DATA " << off;
      } else {
        ASSERT_TRUE(sd.ok()) << "SEEK_DATA " << off << ": " << sd.status().message();
        EXPECT_EQ(*sd, static_cast<std::uint64_t>(wd)) << "SEEK_DATA " << off;
      }
      if (wh < 0) {
        EXPECT_EQ(E(sh), kENXIO) << "SEEK_HOLE " << off;
      } else {
        ASSERT_TRUE(sh.ok()) << "SEEK_HOLE " << off << ": " << sh.status().message();
        EXPECT_EQ(*sh, static_cast<std::uint64_t>(wh)) << "SEEK_HOLE " << off;
      }
    }
    Remount();
  }
  // An empty file: everything ENXIO. A fully sparse file: SEEK_DATA ENXIO, SEEK_HOLE = off.
  const std::uint64_t e = Cr(kRootIno, "empty");
  EXPECT_EQ(E(fs_->SeekData(e, 0)), kENXIO);
  EXPECT_EQ(E(fs_->SeekHole(e, 0)), kENXIO);
  ASSERT_TRUE(fs_->Truncate(e, 10 * rs).ok());
  EXPECT_EQ(E(fs_->SeekData(e, 0)), kENXIO);
  EXPECT_EQ(*fs_->SeekHole(e, 5), 5u);
}

// ---- fallocate -----------------------------------------------------------------------------

TEST_F(FsErrnoTest, FallocateModes) {
  Make(16384, 4096);
  const std::uint64_t rs = 4096;
  const std::uint64_t f = Cr(kRootIno, "f", std::string(3 * rs, 'x'));
  const std::uint64_t d = Mk(kRootIno, "d");
  const std::uint64_t fifo = fs_->Create(kRootIno, "fifo", kTypeFifo | 0644, 0, cred_)->ino;
  EXPECT_EQ(E(fs_->Fallocate(f, kFallocPunchHole, 0, 10)), kEOPNOTSUPP);
  EXPECT_EQ(E(fs_->Fallocate(f, kFallocPunchHole | kFallocZeroRange | kFallocKeepSize, 0, 10)), kEINVAL);
  EXPECT_EQ(E(fs_->Fallocate(f, 0x80, 0, 10)), kEOPNOTSUPP);
  EXPECT_EQ(E(fs_->Fallocate(f, 0, 0, 0)), kEINVAL);
  EXPECT_EQ(E(fs_->Fallocate(d, 0, 0, 10)), kEISDIR);
  EXPECT_NE(E(fs_->Fallocate(fifo, 0, 0, 10)), kOK);  // Linux: ENODEV (no such Code: see report)
  // KEEP_SIZE beyond EOF: size unchanged. Plain mode: size grows, new range reads zeros.
  EXPECT_EQ(E(fs_->Fallocate(f, kFallocKeepSize, 0, 10 * rs)), kOK);
  EXPECT_EQ(A(f).size, 3 * rs);
  EXPECT_EQ(E(fs_->Fallocate(f, 0, 3 * rs, 100)), kOK);
  EXPECT_EQ(A(f).size, 3 * rs + 100);
  EXPECT_EQ(E(fs_->Fallocate(f, 0, 0, 10)), kOK);  // inside: nothing changes
  EXPECT_EQ(A(f).size, 3 * rs + 100);
  // PUNCH_HOLE|KEEP_SIZE across a record boundary and past EOF: size unchanged.
  EXPECT_EQ(E(fs_->Fallocate(f, kFallocPunchHole | kFallocKeepSize, rs - 5, 10)), kOK);
  EXPECT_EQ(E(fs_->Fallocate(f, kFallocPunchHole | kFallocKeepSize, 2 * rs + 1, 10 * rs)), kOK);
  EXPECT_EQ(A(f).size, 3 * rs + 100);
  std::string want = std::string(3 * rs, 'x') + std::string(100, '\0');
  for (std::uint64_t i = rs - 5; i < rs + 5; ++i) want[i] = '\0';
  for (std::uint64_t i = 2 * rs + 1; i < want.size(); ++i) want[i] = '\0';
  EXPECT_EQ(ReadAll(f), want);
  // ZERO_RANGE extends the size; with KEEP_SIZE it does not.
  EXPECT_EQ(E(fs_->Fallocate(f, kFallocZeroRange, 2, 5 * rs)), kOK);
  EXPECT_EQ(A(f).size, 5 * rs + 2);
  want = std::string(2, 'x') + std::string(5 * rs, '\0');
  EXPECT_EQ(ReadAll(f), want);
  EXPECT_EQ(E(fs_->Fallocate(f, kFallocZeroRange | kFallocKeepSize, 0, 9 * rs)), kOK);
  EXPECT_EQ(A(f).size, 5 * rs + 2);
  EXPECT_EQ(ReadAll(f), std::string(5 * rs + 2, '\0'));
  // Punched records are holes again.
  EXPECT_EQ(E(fs_->SeekData(f, 0)), kENXIO);
  Remount();
  EXPECT_EQ(ReadAll(f), std::string(5 * rs + 2, '\0'));
}

// ---- truncate ------------------------------------------------------------------------------

TEST_F(FsErrnoTest, TruncateAcrossRecordBoundaries) {
  Make(16384, 4096);
  const std::uint64_t rs = 4096;
  std::string model = Rnd(3 * rs + 500, 11);
  const std::uint64_t f = Cr(kRootIno, "f", model);
  const fs::Credentials c = cred_;
  (void)c;
  for (std::uint64_t size : std::initializer_list<std::uint64_t>{3 * rs + 499, 3 * rs + 1, 3 * rs, 3 * rs - 1, 2 * rs + 1, rs, rs - 1,
                             1ull, 0ull, 5 * rs + 3, 2 * rs - 7, 7 * rs, 0ull}) {
    ASSERT_TRUE(fs_->Truncate(f, size).ok()) << size;
    model.resize(size, '\0');
    EXPECT_EQ(A(f).size, size);
    ASSERT_EQ(ReadAll(f), model) << "after truncate to " << size;
    // Rewrite some bytes so the next shrink has data to cut.
    const std::string patch = Rnd(rs / 2 + 3, size);
    const std::uint64_t at = size > rs ? size - rs / 3 : 0;
    ASSERT_TRUE(WriteStr(f, at, patch).ok());
    if (model.size() < at + patch.size()) model.resize(at + patch.size(), '\0');
    model.replace(at, patch.size(), patch);
  }
  SetAttrRequest q;
  q.mask = kSetSize;
  q.size = 12345;
  ASSERT_TRUE(fs_->SetAttr(f, q).ok());
  model.resize(12345, '\0');
  Remount();
  EXPECT_EQ(ReadAll(f), model);
  EXPECT_EQ(E(fs_->Truncate(fs_->Symlink(kRootIno, "s", "t", cred_)->ino, 0)), kEINVAL);
  SetAttrRequest qd;
  qd.mask = kSetSize;
  EXPECT_EQ(E(fs_->SetAttr(kRootIno, qd)), kEISDIR);
}

// ---- Timestamps ------------------------------------------------------------------------------

TEST_F(FsErrnoTest, TimestampRules) {
  Make();
  const std::uint64_t d = Mk(kRootIno, "d");
  const std::uint64_t f = Cr(d, "f", "abc");
  const std::int64_t old = 1000000000LL * 1000000000LL;  // 2001
  auto reset = [&] {
    SetTimes(f, old);
    SetTimes(d, old);
  };
  // Write: mtime and ctime of the file change; the directory's do not.
  reset();
  ASSERT_TRUE(WriteStr(f, 1, "zz").ok());
  EXPECT_GT(A(f).mtime_ns, old);
  EXPECT_GT(A(f).ctime_ns, old);
  EXPECT_EQ(A(d).mtime_ns, old);
  // Read changes nothing but (maybe) atime.
  reset();
  ReadAll(f);
  EXPECT_EQ(A(f).mtime_ns, old);
  EXPECT_EQ(A(f).ctime_ns, old);
  // Truncate: mtime and ctime.
  reset();
  ASSERT_TRUE(fs_->Truncate(f, 1).ok());
  EXPECT_GT(A(f).mtime_ns, old);
  EXPECT_GT(A(f).ctime_ns, old);
  // Link: ctime of the file, mtime+ctime of the directory; the file's mtime stays.
  reset();
  ASSERT_TRUE(fs_->Link(f, d, "f2").ok());
  EXPECT_EQ(A(f).mtime_ns, old);
  EXPECT_GT(A(f).ctime_ns, old);
  EXPECT_GT(A(d).mtime_ns, old);
  EXPECT_GT(A(d).ctime_ns, old);
  // Unlink: same.
  reset();
  ASSERT_TRUE(fs_->Unlink(d, "f2", nullptr).ok());
  EXPECT_EQ(A(f).mtime_ns, old);
  EXPECT_GT(A(f).ctime_ns, old);
  EXPECT_GT(A(d).mtime_ns, old);
  // Rename: ctime of the moved inode, mtime+ctime of both directories.
  const std::uint64_t e = Mk(kRootIno, "e");
  reset();
  SetTimes(e, old);
  ASSERT_TRUE(fs_->Rename(d, "f", e, "g", 0, nullptr).ok());
  EXPECT_EQ(A(f).mtime_ns, old);
  EXPECT_GT(A(f).ctime_ns, old);
  EXPECT_GT(A(d).mtime_ns, old);
  EXPECT_GT(A(e).mtime_ns, old);
  // Setxattr: ctime only. Setattr: ctime (mode change), explicit times stored exactly.
  reset();
  ASSERT_TRUE(fs_->SetXattr(f, "user.t", "v", 0).ok());
  EXPECT_EQ(A(f).mtime_ns, old);
  EXPECT_GT(A(f).ctime_ns, old);
  reset();
  SetAttrRequest q;
  q.mask = kSetMode;
  q.mode = 0600;
  ASSERT_TRUE(fs_->SetAttr(f, q).ok());
  EXPECT_EQ(A(f).mtime_ns, old);
  EXPECT_GT(A(f).ctime_ns, old);
  EXPECT_EQ(A(f).mode, kTypeRegular | 0600);
  // Create: the new inode's times equal; the directory's mtime changes.
  reset();
  const std::uint64_t n = Cr(d, "new");
  EXPECT_EQ(A(n).mtime_ns, A(n).ctime_ns);
  EXPECT_EQ(A(n).btime_ns, A(n).ctime_ns);
  EXPECT_GT(A(d).mtime_ns, old);
  // Nanosecond precision, dates before 1970 and after 2038 round-trip through a remount.
  const std::int64_t times[] = {1234567891LL,
                                -1000000001LL,                      // 1969-12-31 23:59:58.999999999
                                -2208988800LL * 1000000000LL + 7,   // 1900
                                4102444800LL * 1000000000LL + 999999999LL,  // 2100
                                (1LL << 62) + 3};
  std::vector<std::uint64_t> inos;
  for (std::size_t i = 0; i < 5; ++i) {
    const std::uint64_t t = Cr(d, "t" + std::to_string(i));
    SetAttrRequest r;
    r.mask = kSetAtime | kSetMtime | kSetCtime;
    r.atime_ns = times[i] + 1;
    r.mtime_ns = times[i];
    r.ctime_ns = times[i] - 1;
    ASSERT_TRUE(fs_->SetAttr(t, r).ok());
    inos.push_back(t);
  }
  Remount();
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(A(inos[i]).mtime_ns, times[i]) << i;
    EXPECT_EQ(A(inos[i]).atime_ns, times[i] + 1) << i;
    EXPECT_EQ(A(inos[i]).ctime_ns, times[i] - 1) << i;
  }
}

// ---- setgid directories, special files ---------------------------------------------------

TEST_F(FsErrnoTest, SetgidDirectoryInheritance) {
  Make();
  const std::uint64_t sg = Mk(kRootIno, "sg");
  SetAttrRequest q;
  q.mask = kSetGid | kSetMode;
  q.gid = 500;
  q.mode = 02775;
  ASSERT_TRUE(fs_->SetAttr(sg, q).ok());
  auto f = fs_->Create(sg, "f", 0644, 0, cred_);
  auto d = fs_->Mkdir(sg, "d", 0755, cred_);
  ASSERT_TRUE(f.ok() && d.ok());
  EXPECT_EQ(f->gid, 500u);
  EXPECT_EQ(f->uid, cred_.uid);
  EXPECT_EQ(f->mode & kModeSetgid, 0u);
  EXPECT_EQ(d->gid, 500u);
  EXPECT_EQ(d->mode, kTypeDir | kModeSetgid | 0755);
  // Inherited again one level down.
  auto dd = fs_->Mkdir(d->ino, "dd", 0700, cred_);
  ASSERT_TRUE(dd.ok());
  EXPECT_EQ(dd->gid, 500u);
  EXPECT_EQ(dd->mode & kModeSetgid, kModeSetgid);
  // Without setgid, the creator's gid.
  auto plain = fs_->Create(kRootIno, "plain", 0644, 0, cred_);
  EXPECT_EQ(plain->gid, cred_.gid);
  Remount();
  EXPECT_EQ(A(dd->ino).gid, 500u);
}

TEST_F(FsErrnoTest, SpecialFilesRoundTrip) {
  Make();
  struct Want {
    const char* name;
    std::uint32_t mode;
    std::uint64_t rdev_in, rdev_out;
  };
  const Want ws[] = {{"fifo", kTypeFifo | 0640, 77, 0},
                     {"sock", kTypeSocket | 0777, 5, 0},
                     {"chr", kTypeChar | 0620, (136ull << 8) | 3, (136ull << 8) | 3},
                     {"blk", kTypeBlock | 0660, (8ull << 32) | 17, (8ull << 32) | 17},
                     {"reg", kTypeRegular | 04755, 9, 0}};
  for (const Want& w : ws) {
    auto c = fs_->Create(kRootIno, w.name, w.mode, w.rdev_in, cred_);
    ASSERT_TRUE(c.ok()) << w.name;
    EXPECT_EQ(c->mode, w.mode) << w.name;
    EXPECT_EQ(c->rdev, w.rdev_out) << w.name;
    EXPECT_EQ(c->nlink, 1u);
  }
  Remount();
  std::vector<DirEntry> es;
  ASSERT_TRUE(model::ListDir(fs_.get(), kRootIno, &es).ok());
  ASSERT_EQ(es.size(), 5u);
  for (const Want& w : ws) {
    auto l = fs_->Lookup(kRootIno, w.name);
    ASSERT_TRUE(l.ok()) << w.name;
    EXPECT_EQ(l->mode, w.mode) << w.name;
    EXPECT_EQ(l->rdev, w.rdev_out) << w.name;
    for (const DirEntry& e : es) {
      if (e.name == w.name) {
        EXPECT_EQ(e.type, DirentType(w.mode)) << w.name;
      }
    }
    if ((w.mode & kTypeMask) != kTypeRegular) {
      std::uint8_t b[1];
      EXPECT_EQ(E(fs_->Read(l->ino, 0, 1, b)), kEINVAL) << w.name;
      EXPECT_EQ(E(fs_->Write(l->ino, 0, b, 1)), kEINVAL) << w.name;
      EXPECT_EQ(E(fs_->Truncate(l->ino, 0)), kEINVAL) << w.name;
      ASSERT_TRUE(fs_->SetXattr(l->ino, "user.x", w.name, 0).ok());
      ASSERT_TRUE(fs_->Link(l->ino, kRootIno, std::string(w.name) + ".lnk").ok());
    }
  }
  UnlinkOutcome o;
  ASSERT_TRUE(fs_->Unlink(kRootIno, "chr", &o).ok());
  EXPECT_EQ(o.orphan, 0u);
  ASSERT_TRUE(fs_->Unlink(kRootIno, "chr.lnk", &o).ok());
  ASSERT_NE(o.orphan, 0u);
  ASSERT_TRUE(fs_->Reclaim(o.orphan).ok());
}

// ---- Statfs -----------------------------------------------------------------------------------

TEST_F(FsErrnoTest, StatfsCountsInodesAndSpace) {
  Make();
  auto s0 = fs_->Statfs();
  ASSERT_TRUE(s0.ok());
  EXPECT_EQ(s0->total_inodes - s0->free_inodes, 1u);
  EXPECT_EQ(s0->max_name_len, 255u);
  for (int i = 0; i < 10; ++i) Cr(kRootIno, "f" + std::to_string(i), Rnd(100000, i));
  auto s1 = fs_->Statfs();
  EXPECT_EQ(s1->total_inodes - s1->free_inodes, 11u);
  EXPECT_LT(s1->free_blocks, s0->free_blocks - 10 * 24);
  for (int i = 0; i < 10; ++i) {
    UnlinkOutcome o;
    ASSERT_TRUE(fs_->Unlink(kRootIno, "f" + std::to_string(i), &o).ok());
    ASSERT_TRUE(fs_->Reclaim(o.orphan).ok());
  }
  ASSERT_TRUE(vol_->meta()->SyncAndCheckpoint().ok());
  auto s2 = fs_->Statfs();
  EXPECT_EQ(s2->total_inodes - s2->free_inodes, 1u);
  EXPECT_LE(s0->free_blocks - s2->free_blocks, 8u);
}

}  // namespace
}  // namespace permfs::fs::test
