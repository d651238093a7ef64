#include <map>

#include "fs/filesystem.h"
#include "fs_fixture.h"

namespace permfs::fs::test {
namespace {

int Errno(const Status& s) { return s.ToErrno(); }

TEST_F(FsFixture, CreateLookupReadWriteRemount) {
  Make();
  auto f = fs_->Create(kRootIno, "hello.txt", 0644, 0, cred_);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_GT(f->ino, kRootIno);
  EXPECT_EQ(f->uid, 1000u);
  ASSERT_TRUE(WriteStr(f->ino, 0, "hello, world").ok());
  EXPECT_EQ(ReadAll(f->ino), "hello, world");
  ASSERT_TRUE(WriteStr(f->ino, 7, "PermFS!").ok());
  EXPECT_EQ(ReadAll(f->ino), "hello, PermFS!");
  Remount();
  auto l = fs_->Lookup(kRootIno, "hello.txt");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->ino, f->ino);
  EXPECT_EQ(ReadAll(l->ino), "hello, PermFS!");
}

TEST_F(FsFixture, ErrnoPaths) {
  Make();
  auto d = fs_->Mkdir(kRootIno, "d", 0755, cred_);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(Errno(fs_->Mkdir(kRootIno, "d", 0755, cred_).status()), 17);       // EEXIST
  EXPECT_EQ(Errno(fs_->Lookup(kRootIno, "nope").status()), 2);                 // ENOENT
  EXPECT_EQ(Errno(fs_->Lookup(kRootIno, std::string(256, 'x')).status()), 36);  // ENAMETOOLONG
  EXPECT_EQ(Errno(fs_->Create(kRootIno, std::string(256, 'x'), 0644, 0, cred_).status()), 36);
  auto f = fs_->Create(d->ino, "f", 0644, 0, cred_);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(Errno(fs_->Lookup(f->ino, "x").status()), 20);                 // ENOTDIR
  EXPECT_EQ(Errno(fs_->Rmdir(kRootIno, "d")), 39);                          // ENOTEMPTY
  EXPECT_EQ(Errno(fs_->Unlink(kRootIno, "d", nullptr)), 21);                // EISDIR
  EXPECT_EQ(Errno(fs_->Rmdir(d->ino, "f")), 20);                            // ENOTDIR
  EXPECT_EQ(Errno(fs_->Link(d->ino, kRootIno, "dl").status()), 1);         // EPERM
  EXPECT_EQ(Errno(fs_->Rename(kRootIno, "d", d->ino, "sub", 0, nullptr)), 22);  // EINVAL loop
  EXPECT_EQ(Errno(fs_->GetXattr(f->ino, "user.none").status()), 61);       // ENODATA
  EXPECT_EQ(Errno(fs_->Read(d->ino, 0, 10, nullptr).status()), 21);        // EISDIR
}

TEST_F(FsFixture, DirectoryLinkCountsAndRename) {
  Make();
  auto a = fs_->Mkdir(kRootIno, "a", 0755, cred_);
  auto b = fs_->Mkdir(kRootIno, "b", 0755, cred_);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(fs_->GetAttr(kRootIno)->nlink, 4u);
  auto c = fs_->Mkdir(a->ino, "c", 0755, cred_);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(fs_->GetAttr(a->ino)->nlink, 3u);
  ASSERT_TRUE(fs_->Rename(a->ino, "c", b->ino, "c2", 0, nullptr).ok());
  EXPECT_EQ(fs_->GetAttr(a->ino)->nlink, 2u);
  EXPECT_EQ(fs_->GetAttr(b->ino)->nlink, 3u);
  EXPECT_EQ(fs_->Lookup(c->ino, "..")->ino, b->ino);
  // Exchange a file and a directory.
  auto f = fs_->Create(kRootIno, "f", 0644, 0, cred_);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(fs_->Rename(kRootIno, "f", b->ino, "c2", kRenameExchange, nullptr).ok());
  EXPECT_EQ(fs_->Lookup(kRootIno, "f")->ino, c->ino);
  EXPECT_EQ(fs_->Lookup(b->ino, "c2")->ino, f->ino);
  EXPECT_EQ(fs_->GetAttr(kRootIno)->nlink, 5u);
  EXPECT_EQ(fs_->GetAttr(b->ino)->nlink, 2u);
  EXPECT_EQ(Errno(fs_->Rename(kRootIno, "a", kRootIno, "b", kRenameNoReplace, nullptr)), 17);
  Remount();
  EXPECT_EQ(fs_->GetAttr(kRootIno)->nlink, 5u);
}

TEST_F(FsFixture, UnlinkReclaimsSpaceAndHardLinks) {
  Make();
  auto before = vol_->allocator()->stats();
  auto f = fs_->Create(kRootIno, "big", 0644, 0, cred_);
  ASSERT_TRUE(f.ok());
  std::string data(1 << 20, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + i / 4096);
  ASSERT_TRUE(WriteStr(f->ino, 0, data).ok());
  ASSERT_TRUE(fs_->Link(f->ino, kRootIno, "big2").ok());
  EXPECT_EQ(fs_->GetAttr(f->ino)->nlink, 2u);
  UnlinkOutcome o;
  ASSERT_TRUE(fs_->Unlink(kRootIno, "big", &o).ok());
  EXPECT_EQ(o.orphan, 0u);
  EXPECT_EQ(ReadAll(f->ino), data);
  ASSERT_TRUE(fs_->Unlink(kRootIno, "big2", &o).ok());
  EXPECT_EQ(o.orphan, f->ino);
  ASSERT_TRUE(fs_->Reclaim(o.orphan).ok());
  EXPECT_EQ(Errno(fs_->GetAttr(f->ino).status()), 2);
  ASSERT_TRUE(vol_->meta()->SyncAndCheckpoint().ok());
  auto after = vol_->allocator()->stats();
  // All data blocks came back; metadata may keep a few tree nodes.
  EXPECT_LE(before.free_blocks - after.free_blocks, 8u);
}

TEST_F(FsFixture, TruncateSparseSeekAndPunch) {
  Make();
  auto f = fs_->Create(kRootIno, "s", 0644, 0, cred_);
  ASSERT_TRUE(f.ok());
  const std::uint64_t rs = fs_->record_size();
  ASSERT_TRUE(WriteStr(f->ino, 10 * rs + 5, "tail").ok());
  EXPECT_EQ(fs_->GetAttr(f->ino)->size, 10 * rs + 9);
  EXPECT_EQ(*fs_->SeekData(f->ino, 0), 10 * rs);
  EXPECT_EQ(*fs_->SeekHole(f->ino, 0), 0u);
  EXPECT_EQ(*fs_->SeekHole(f->ino, 10 * rs), 10 * rs + 9);
  std::string s = ReadAll(f->ino);
  EXPECT_EQ(s.substr(10 * rs + 5), "tail");
  EXPECT_EQ(s.substr(0, 10 * rs + 5), std::string(10 * rs + 5, '\0'));
  // Shrink into the record, then grow: the cut bytes must read as zeros.
  ASSERT_TRUE(fs_->Truncate(f->ino, 10 * rs + 6).ok());
  ASSERT_TRUE(fs_->Truncate(f->ino, 10 * rs + 20).ok());
  s = ReadAll(f->ino);
  EXPECT_EQ(s.substr(10 * rs + 5), std::string("t") + std::string(14, '\0'));
  // Punch the middle of a data run.
  ASSERT_TRUE(WriteStr(f->ino, 0, std::string(3 * rs, 'x')).ok());
  ASSERT_TRUE(fs_->Fallocate(f->ino, kFallocPunchHole | kFallocKeepSize, 100, rs + 50).ok());
  s = ReadAll(f->ino);
  EXPECT_EQ(s.substr(0, 100), std::string(100, 'x'));
  EXPECT_EQ(s.substr(100, rs + 50), std::string(rs + 50, '\0'));
  EXPECT_EQ(s.substr(rs + 150, rs), std::string(rs, 'x'));
  EXPECT_EQ(fs_->GetAttr(f->ino)->size, 10 * rs + 20);
  Remount();
  EXPECT_EQ(ReadAll(f->ino), s);
}

// CloneRecords shares chunks (refcounts, holes, a short last record), keeps the size covering
// every cloned byte, refuses overlap within one file and directories, and survives a remount and
// a verifying fsck (TearDown); deleting the source leaves the clone's chunks alive.
TEST_F(FsFixture, CloneRecordsSharesChunks) {
  Make();
  const std::uint64_t rs = fs_->record_size();
  auto s = fs_->Create(kRootIno, "s", 0644, 0, cred_);
  auto d = fs_->Create(kRootIno, "d", 0644, 0, cred_);
  auto dir = fs_->Mkdir(kRootIno, "dir", 0755, cred_);
  ASSERT_TRUE(s.ok() && d.ok() && dir.ok());
  std::string src(3 * rs + 10, 'a');
  for (std::size_t i = 0; i < src.size(); ++i) src[i] = static_cast<char>('a' + i % 23);
  src.replace(rs, rs, std::string(rs, '\0'));  // record 1 is a hole
  ASSERT_TRUE(WriteStr(s->ino, 0, src.substr(0, rs)).ok());
  ASSERT_TRUE(WriteStr(s->ino, 2 * rs, src.substr(2 * rs)).ok());
  ASSERT_TRUE(WriteStr(d->ino, 0, std::string(5 * rs, 'z')).ok());
  const std::uint64_t written0 = fs_->chunks()->stats().bytes_written;
  std::uint64_t done = 0;
  auto e = fs_->Create(kRootIno, "e", 0644, 0, cred_);
  ASSERT_TRUE(e.ok());
  // src's short last record (10 bytes) would reach past a size of 5: refused, nothing changed.
  EXPECT_EQ(fs_->CloneRecords(s->ino, 3, e->ino, 0, 1, 5, &done).code(), Code::kInvalidArgument);
  EXPECT_EQ(fs_->GetAttr(e->ino)->size, 0u);
  // Records 0..2 of s over records 1..3 of d: d keeps records 0 and 4, record 2 becomes a hole
  // (its chunk loses the reference), and the size stays 5 * rs.
  ASSERT_TRUE(fs_->CloneRecords(s->ino, 0, d->ino, 1, 3, 4 * rs, &done).ok());
  EXPECT_EQ(done, 3u);
  EXPECT_EQ(fs_->chunks()->stats().bytes_written, written0);
  const std::string want = std::string(rs, 'z') + src.substr(0, 3 * rs) + std::string(rs, 'z');
  EXPECT_TRUE(ReadAll(d->ino) == want);
  EXPECT_EQ(fs_->GetAttr(d->ino)->size, 5 * rs);
  EXPECT_EQ(fs_->GetAttr(d->ino)->data_bytes, 4 * rs);
  // The short last record into the empty file: the size becomes its end.
  ASSERT_TRUE(fs_->CloneRecords(s->ino, 3, e->ino, 7, 1, 7 * rs + 10, &done).ok());
  const std::string want_e = std::string(7 * rs, '\0') + src.substr(3 * rs);
  EXPECT_TRUE(ReadAll(e->ino) == want_e);
  EXPECT_EQ(fs_->GetAttr(e->ino)->data_bytes, 10u);
  EXPECT_EQ(fs_->CloneRecords(d->ino, 0, d->ino, 1, 2, 5 * rs, &done).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(Errno(fs_->CloneRecords(s->ino, 0, dir->ino, 0, 1, rs, &done)), 21);  // EISDIR
  EXPECT_EQ(Errno(fs_->CloneRecords(dir->ino, 0, d->ino, 0, 1, rs, &done)), 21);
  // The source goes; the clones keep their data.
  UnlinkOutcome o;
  ASSERT_TRUE(fs_->Unlink(kRootIno, "s", &o).ok());
  ASSERT_TRUE(fs_->Reclaim(o.orphan).ok());
  Remount();
  EXPECT_TRUE(ReadAll(d->ino) == want);
  EXPECT_TRUE(ReadAll(e->ino) == want_e);
}

TEST_F(FsFixture, SymlinksXattrsAndReadDir) {
  Make();
  std::string target(3000, 'p');
  auto l = fs_->Symlink(kRootIno, "ln", target, cred_);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*fs_->Readlink(l->ino), target);
  auto f = fs_->Create(kRootIno, "x", 0644, 0, cred_);
  std::string big(65536, 'v');
  ASSERT_TRUE(fs_->SetXattr(f->ino, "user.big", big, 0).ok());
  ASSERT_TRUE(fs_->SetXattr(f->ino, "user.small", "1", kXattrCreate).ok());
  EXPECT_EQ(Errno(fs_->SetXattr(f->ino, "user.small", "2", kXattrCreate)), 17);
  EXPECT_EQ(Errno(fs_->SetXattr(f->ino, "user.none", "2", kXattrReplace)), 61);
  EXPECT_EQ(Errno(fs_->SetXattr(f->ino, "user.huge", std::string(65537, 'x'), 0)), 7);
  EXPECT_EQ(Errno(fs_->SetXattr(f->ino, "bogus.ns", "x", 0)), 95);
  EXPECT_EQ(*fs_->GetXattr(f->ino, "user.big"), big);
  EXPECT_EQ(fs_->ListXattr(f->ino)->size(), 2u);
  InodeRecord after;  // both give back the inode they stored, with its new ctime
  ASSERT_TRUE(fs_->SetXattr(f->ino, "user.small", "3", 0, &after).ok());
  EXPECT_EQ(after.ino, f->ino);
  EXPECT_EQ(after.ctime_ns, fs_->GetAttr(f->ino)->ctime_ns);
  after = InodeRecord();
  ASSERT_TRUE(fs_->RemoveXattr(f->ino, "user.big", &after).ok());
  EXPECT_EQ(after.ctime_ns, fs_->GetAttr(f->ino)->ctime_ns);
  EXPECT_EQ(after.mode, f->mode);
  EXPECT_EQ(fs_->ListXattr(f->ino)->size(), 1u);
  for (int i = 0; i < 500; ++i) ASSERT_TRUE(fs_->Create(kRootIno, "f" + std::to_string(i), 0644, 0, cred_).ok());
  // Paged readdir: resume from every cookie.
  std::map<std::string, int> seen;
  std::uint64_t cookie = 0;
  for (;;) {
    struct Ctx {
      std::map<std::string, int>* seen;
      std::uint64_t last;
      int n;
    } c{&seen, cookie, 0};
    ASSERT_TRUE(fs_->ReadDir(kRootIno, cookie,
                             [](void* p, const DirEntry& e, std::uint64_t next) {
                               auto* c = static_cast<Ctx*>(p);
                               (*c->seen)[e.name]++;
                               c->last = next;
                               return ++c->n < 37;
                             },
                             &c)
                    .ok());
    if (c.n == 0) break;
    cookie = c.last;
  }
  EXPECT_EQ(seen.size(), 502u);
  for (auto& [name, count] : seen) EXPECT_EQ(count, 1) << name;
}

// A file's records lie one after another on the device, whether written in one call or one
// record per transaction: sequential reads are sequential I/O. (Chunks used to go round-robin
// over the shards, one shard per record.) After a hole placement starts afresh.
TEST_F(FsFixture, FileRecordsArePlacedInOrder) {
  Make(100000);  // three shards of 128 MiB
  ASSERT_GT(vol_->sb().shard_count, 2u);
  constexpr std::uint64_t kRs = 65536;
  auto record = [](int file, int i) {
    std::string s(kRs, '\0');
    for (std::size_t k = 0; k < s.size(); k += 8)
      s[k] = static_cast<char>('a' + (file * 31 + i + k / 8) % 26);
    return s;
  };
  auto a = fs_->Create(kRootIno, "a", 0644, 0, cred_);
  auto b = fs_->Create(kRootIno, "b", 0644, 0, cred_);
  ASSERT_TRUE(a.ok() && b.ok());
  std::string all;
  for (int i = 0; i < 16; ++i) all += record(1, i);
  ASSERT_TRUE(WriteStr(a->ino, 0, all).ok());  // one call
  for (int i = 0; i < 16; ++i) {
    if (i == 8) continue;                                       // a hole at record 8
    ASSERT_TRUE(WriteStr(b->ino, i * kRs, record(2, i)).ok());  // one record per call
  }
  {
    journal::ReadView view(vol_->meta());
    auto loc = [&](int file, int i) {  // chunks are named by their content
      const std::string r = record(file, i);
      auto l = fs_->chunks()->Locate(
          view, Sha256(reinterpret_cast<const std::uint8_t*>(r.data()), r.size()));
      EXPECT_TRUE(l.ok()) << "file " << file << " record " << i;
      return l.ok() ? *l : store::ChunkLocation{};
    };
    for (int file : {1, 2}) {
      store::ChunkLocation prev = loc(file, 0);
      for (int i = 1; i < 16; ++i) {
        if (file == 2 && i == 8) continue;
        const store::ChunkLocation cur = loc(file, i);
        if (!(file == 2 && i == 9)) {
          EXPECT_EQ(cur.block, prev.block + prev.block_count) << "file " << file << " record " << i;
        }
        prev = cur;
      }
    }
  }
  EXPECT_EQ(ReadAll(a->ino), all);
}

}  // namespace
}  // namespace permfs::fs::test
