// PlatformShell hot tier: partial records merged at promotion, in-flight records, the flusher,
// the budget, and errors — always against a byte model of each file, through remounts and fsck.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fs/fs_fixture.h"
#include "shell/platform_shell.h"

namespace permfs::shell {
namespace {

using fs::test::FsFixture;

class ShellTest : public FsFixture {
 protected:
  void SetUp() override { Make(16384); }
  void TearDown() override {
    StopShell();
    FsFixture::TearDown();
  }
  void StartShell(ShellOptions o = {}) {
    opt_ = o;
    shell_ = std::make_unique<PlatformShell>(fs_.get(), o);
  }
  void StopShell() {
    if (!shell_) return;
    EXPECT_TRUE(shell_->SyncAll().ok());
    shell_.reset();
  }
  std::uint64_t NewFile(const std::string& name) {
    auto r = fs_->Create(1, name, fs::kTypeRegular | 0644, 0, cred_, true);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r->ino : 0;
  }
  static std::string Pattern(std::size_t n, std::uint32_t seed) {
    std::string s(n, '\0');
    std::mt19937 g(seed);
    for (char& c : s) c = static_cast<char>(g());
    return s;
  }
  Status Write(std::uint64_t ino, std::uint64_t off, const std::string& s) {
    return shell_->write(ino, off, reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  }
  std::string ShellRead(std::uint64_t ino, std::uint64_t off, std::size_t n) {
    std::string out(n, '\x55');
    auto r = shell_->read(ino, off, n, reinterpret_cast<std::uint8_t*>(out.data()));
    EXPECT_TRUE(r.ok()) << r.status().message();
    out.resize(r.ok() ? *r : 0);
    return out;
  }
  static void ModelWrite(std::string* m, std::uint64_t off, const std::string& s) {
    if (m->size() < off + s.size()) m->resize(off + s.size(), '\0');
    m->replace(off, s.size(), s);
  }
  void ExpectFile(std::uint64_t ino, const std::string& model, const char* where) {
    auto a = shell_->attrs(ino);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->size, model.size()) << where;
    EXPECT_TRUE(ShellRead(ino, 0, model.size() + 100) == model) << where;
  }

  // The shell's view, then the volume's after the shell is gone and the volume remounted.
  void ExpectFileSurvivesRemount(std::uint64_t ino, const std::string& model, const char* where) {
    ExpectFile(ino, model, where);
    StopShell();
    Remount();
    EXPECT_EQ(ReadAll(ino), model) << where;
  }

  ShellOptions opt_;
  std::unique_ptr<PlatformShell> shell_;
};

TEST_F(ShellTest, AlignedSmallWritesDoNotReadAndMergeAtPromotion) {
  const std::uint64_t ino = NewFile("f");
  std::string model = Pattern(300000, 1);  // ~4.6 records, last one short
  ASSERT_TRUE(WriteStr(ino, 0, model).ok());
  StartShell();
  // 4 KiB writes at aligned offsets in committed records: no synchronous read.
  for (std::uint64_t off : {4096ull, 65536ull + 8192, 3 * 65536ull + 61440, 4 * 65536ull + 4096}) {
    std::string d = Pattern(4096, static_cast<std::uint32_t>(off));
    ASSERT_TRUE(Write(ino, off, d).ok());
    ModelWrite(&model, off, d);
  }
  EXPECT_EQ(shell_->stats().sync_completions, 0u);
  ExpectFile(ino, model, "before promotion");
  ASSERT_TRUE(shell_->flush(ino).ok());
  EXPECT_EQ(shell_->stats().partial_merges, 4u);
  EXPECT_EQ(shell_->stats().dirty_bytes, 0u);
  ExpectFileSurvivesRemount(ino, model, "after promotion");
}

// copy_range: records aligned alike in both files are shared (no data written, the chunk gains
// a reference), the bytes around them and misaligned copies go through read/write; unpromoted
// writes on either side are part of what is copied or copied over; the source's short last
// record is shared when the copy ends at its end and nothing of the target lies past it.
TEST_F(ShellTest, CopyRangeSharesAlignedRecordsAndCopiesTheRest) {
  constexpr std::uint64_t kRs = 65536;
  const std::uint64_t src = NewFile("src"), dst = NewFile("dst"), mis = NewFile("mis"),
                      whole = NewFile("whole");
  std::string msrc = Pattern(10 * kRs + 1000, 7);
  ASSERT_TRUE(WriteStr(src, 0, msrc).ok());
  std::string mdst = Pattern(4 * kRs + 5, 8);
  ASSERT_TRUE(WriteStr(dst, 0, mdst).ok());
  StartShell();
  // Unpromoted bytes in both files.
  const std::string a = Pattern(3000, 9), b = Pattern(5000, 10);
  ASSERT_TRUE(Write(src, 2 * kRs + 100, a).ok());
  ModelWrite(&msrc, 2 * kRs + 100, a);
  ASSERT_TRUE(Write(dst, kRs + 7, b).ok());
  ModelWrite(&mdst, kRs + 7, b);
  store::ChunkStore* cs = fs_->chunks();

  // Aligned: 100 head bytes, 6 shared records, 333 tail bytes.
  std::uint64_t written0 = cs->stats().bytes_written;
  const std::uint64_t len1 = (kRs - 100) + 6 * kRs + 333;
  auto n = shell_->copy_range(src, 100, dst, 2 * kRs + 100, len1);
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(*n, len1);
  ModelWrite(&mdst, 2 * kRs + 100, msrc.substr(100, len1));
  ExpectFile(dst, mdst, "aligned copy");
  ASSERT_TRUE(shell_->flush(dst).ok());
  // Only the head and tail records were written (merged with what dst had there), and the
  // source's records promoted first: not the six shared ones.
  EXPECT_LE(cs->stats().bytes_written - written0, 4 * kRs);

  // Misaligned: everything is copied through, and a copy past src's end stops there.
  n = shell_->copy_range(src, 1, mis, 5, 20 * kRs);
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(*n, msrc.size() - 1);
  std::string mmis(5, '\0');
  mmis += msrc.substr(1);
  ExpectFile(mis, mmis, "misaligned copy");
  n = shell_->copy_range(src, msrc.size(), mis, 0, 100);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);

  // The whole file into an empty one: every record shared, the short last one included.
  ASSERT_TRUE(shell_->flush(src).ok());
  written0 = cs->stats().bytes_written;
  n = shell_->copy_range(src, 0, whole, 0, msrc.size());
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(*n, msrc.size());
  EXPECT_EQ(cs->stats().bytes_written, written0);
  ExpectFile(whole, msrc, "whole copy");
  auto wa = shell_->attrs(whole);
  ASSERT_TRUE(wa.ok());
  EXPECT_EQ(wa->data_bytes, msrc.size());

  // Within one file: a non-overlapping aligned copy works, an overlapping one is refused.
  n = shell_->copy_range(whole, 0, whole, 12 * kRs, 2 * kRs);
  ASSERT_TRUE(n.ok()) << n.status().message();
  std::string mwhole = msrc;
  ModelWrite(&mwhole, 12 * kRs, msrc.substr(0, 2 * kRs));
  ExpectFile(whole, mwhole, "copy within a file");
  EXPECT_EQ(shell_->copy_range(whole, 0, whole, kRs, 2 * kRs).status().code(),
            Code::kInvalidArgument);
  // Overwriting the shared records of one file leaves the other's alone.
  const std::string c = Pattern(kRs, 11);
  ASSERT_TRUE(Write(src, 3 * kRs, c).ok());
  ModelWrite(&msrc, 3 * kRs, c);
  ASSERT_TRUE(shell_->flush(src).ok());
  ExpectFile(whole, mwhole, "after the source changed");
  ExpectFile(src, msrc, "source after its change");

  ExpectFileSurvivesRemount(dst, mdst, "aligned copy");
  EXPECT_EQ(ReadAll(mis), mmis);
  EXPECT_EQ(ReadAll(whole), mwhole);
  EXPECT_EQ(ReadAll(src), msrc);
}

TEST_F(ShellTest, UnalignedWriteIntoCommittedSectorCompletesTheRecord) {
  const std::uint64_t ino = NewFile("f");
  std::string model = Pattern(100000, 2);
  ASSERT_TRUE(WriteStr(ino, 0, model).ok());
  StartShell();
  std::string d = Pattern(10, 3);
  ASSERT_TRUE(Write(ino, 5000, d).ok());
  ModelWrite(&model, 5000, d);
  EXPECT_EQ(shell_->stats().sync_completions, 1u);
  ExpectFile(ino, model, "dirty");
  // An unaligned write past the committed end needs no read (the bytes there are zeros).
  std::string e = Pattern(333, 4);
  ASSERT_TRUE(Write(ino, 100000 + 70000, e).ok());
  ModelWrite(&model, 170000, e);
  EXPECT_EQ(shell_->stats().sync_completions, 1u);
  ExpectFile(ino, model, "extended");
  ASSERT_TRUE(shell_->flush(ino).ok());
  ExpectFileSurvivesRemount(ino, model, "promoted");
}

TEST_F(ShellTest, PartialRecordFullyOverwrittenBecomesComplete) {
  const std::uint64_t ino = NewFile("f");
  std::string model = Pattern(65536, 5);
  ASSERT_TRUE(WriteStr(ino, 0, model).ok());
  StartShell();
  for (std::uint64_t off = 65536 - 4096;; off -= 4096) {  // backwards: partial until the end
    std::string d = Pattern(4096, static_cast<std::uint32_t>(off + 7));
    ASSERT_TRUE(Write(ino, off, d).ok());
    ModelWrite(&model, off, d);
    if (off == 0) break;
  }
  ASSERT_TRUE(shell_->flush(ino).ok());
  EXPECT_EQ(shell_->stats().partial_merges, 0u);  // complete by the time it was promoted
  ExpectFile(ino, model, "promoted");
}

// Random writes (aligned and not), reads, truncates, flushes and idle/budget promotions on
// three files against a byte model; then remount and fsck.
TEST_F(ShellTest, RandomOpsMatchModel) {
  for (std::uint32_t seed = 1; seed <= 4; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937_64 g(seed);
    std::vector<std::uint64_t> inos;
    std::vector<std::string> models(3);
    for (int i = 0; i < 3; ++i) inos.push_back(NewFile("r" + std::to_string(seed) + "_" + std::to_string(i)));
    ShellOptions o;
    o.budget_bytes = 8 * 65536;  // budget promotions happen often
    o.idle_flush_ns = 0;         // Tick promotes everything
    StartShell(o);
    for (int op = 0; op < 1500; ++op) {
      const std::size_t f = g() % 3;
      std::string& m = models[f];
      const unsigned kind = static_cast<unsigned>(g() % 100);
      if (kind < 60) {
        std::uint64_t off = g() % (600 * 1024);
        std::size_t len = 1 + g() % 20000;
        if (g() % 2) off &= ~std::uint64_t{4095}, len = 4096 * (1 + g() % 4);
        std::string d = Pattern(len, static_cast<std::uint32_t>(g()));
        ASSERT_TRUE(Write(inos[f], off, d).ok());
        ModelWrite(&m, off, d);
      } else if (kind < 80) {
        const std::uint64_t off = m.empty() ? 0 : g() % (m.size() + 1000);
        const std::size_t len = 1 + g() % 150000;
        std::string want = off < m.size() ? m.substr(off, len) : std::string();
        ASSERT_EQ(ShellRead(inos[f], off, len), want) << "op " << op;
      } else if (kind < 86) {
        fs::SetAttrRequest r;
        r.mask = fs::kSetSize;
        r.size = g() % (700 * 1024);
        ASSERT_TRUE(shell_->setattr(inos[f], r).ok());
        m.resize(r.size, '\0');
      } else if (kind < 93) {
        ASSERT_TRUE(shell_->flush(inos[f]).ok());
      } else if (kind < 97) {
        ASSERT_TRUE(shell_->Tick().ok());
      } else {
        ASSERT_TRUE(shell_->fsync(inos[f], false).ok());
      }
    }
    for (int i = 0; i < 3; ++i) ExpectFile(inos[i], models[i], "end");
    StopShell();
    Remount();
    for (int i = 0; i < 3; ++i) EXPECT_EQ(ReadAll(inos[i]), models[i]);
  }
}

// Writers, a reader and the flusher on one file at once, with a budget small enough that the
// flusher and budget promotions run all the time. Each writer owns its own byte ranges, so the
// final contents are known; reads must always see a consistent snapshot of each 4 KiB block.
TEST_F(ShellTest, ConcurrentWritersReaderAndFlusher) {
  const std::uint64_t ino = NewFile("c");
  std::string base = Pattern(2 << 20, 9);
  ASSERT_TRUE(WriteStr(ino, 0, base).ok());
  ShellOptions o;
  o.budget_bytes = 16 * 65536;
  StartShell(o);
  std::thread flusher([this] { shell_->RunFlusher(); });
  constexpr int kWriters = 2;
  std::vector<std::string> finals(kWriters);
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  // Every 4 KiB block holds one repeated byte, so a torn read shows up as mixed bytes.
  std::string init(2 << 20, '\0');
  for (std::size_t b = 0; b < init.size() / 4096; ++b)
    std::fill(init.begin() + static_cast<long>(b * 4096), init.begin() + static_cast<long>((b + 1) * 4096), static_cast<char>(b % 7 + 1));
  ASSERT_TRUE(Write(ino, 0, init).ok());
  ASSERT_TRUE(shell_->flush(ino).ok());
  std::thread reader([&] {
    std::mt19937 g(77);
    std::string buf(4096, '\0');
    while (!done.load()) {
      const std::uint64_t blk = g() % 512;
      auto r = shell_->read(ino, blk * 4096, 4096, reinterpret_cast<std::uint8_t*>(buf.data()));
      if (!r.ok() || *r != 4096) {
        bad++;
        continue;
      }
      for (char c : buf)
        if (c != buf[0]) {
          bad++;
          break;
        }
    }
  });
  std::vector<std::thread> writers;
  std::vector<std::string> models(kWriters, init);
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      std::mt19937 g(static_cast<unsigned>(w + 100));
      for (int i = 0; i < 3000; ++i) {
        std::uint64_t blk = g() % 256 * 2 + static_cast<unsigned>(w);  // writer w owns blocks of parity w
        const char v = static_cast<char>('A' + g() % 26);
        std::string d(4096, v);
        if (!Write(ino, blk * 4096, d).ok()) bad++;
        models[w].replace(blk * 4096, 4096, d);
      }
    });
  }
  for (auto& t : writers) t.join();
  done.store(true);
  reader.join();
  shell_->StopFlusher();
  flusher.join();
  EXPECT_EQ(bad.load(), 0);
  std::string want = init;
  for (std::size_t blk = 0; blk < 512; ++blk) {
    const std::string& m = models[blk % 2];
    want.replace(blk * 4096, 4096, m, blk * 4096, 4096);
  }
  ExpectFile(ino, want, "after writers");
  EXPECT_GT(shell_->stats().flusher_promotions + shell_->stats().budget_promotions, 0u);
  StopShell();
  Remount();
  EXPECT_EQ(ReadAll(ino), want);
}

// setattr and fallocate promote the file first, and a promotion lets go of the node while it
// writes: appends that land meanwhile extend the file. The size taken from the volume after
// the change must not undo them (it did: reads past the committed size came back short, which
// the kernel's writeback cache shows as zeros, and a later promotion committed the short size).
TEST_F(ShellTest, AttributeChangesKeepSizeOfConcurrentAppends) {
  const std::uint64_t ino = NewFile("grow");
  StartShell();
  std::atomic<bool> done{false};
  std::atomic<int> shrunk{0}, errors{0};
  std::thread changer([&] {
    std::uint32_t i = 0;
    while (!done.load()) {
      fs::SetAttrRequest req;
      req.mask = fs::kSetMode;
      req.mode = (++i % 2) ? 0600u : 0644u;
      if (!shell_->setattr(ino, req, {}).ok()) errors++;
      // A hole punched far below the appends (KEEP_SIZE): a change that reloads attributes.
      if (i % 4 == 0 && !shell_->fallocate(ino, 0x01 | 0x02, 0, 4096).ok()) errors++;
    }
  });
  std::string model;
  for (std::uint64_t i = 0; i < 400 && shrunk.load() == 0; ++i) {
    const std::uint64_t off = (i + 1) * 4096;  // block 0 stays a hole
    const std::string d = Pattern(4096, static_cast<std::uint32_t>(i));
    ASSERT_TRUE(Write(ino, off, d).ok());
    ModelWrite(&model, off, d);
    if (i % 16 == 15) {
      ASSERT_TRUE(shell_->flush(ino).ok());  // committed data under the appends
    }
    auto a = shell_->attrs(ino);
    ASSERT_TRUE(a.ok());
    if (a->size < off + 4096) shrunk++;
  }
  done.store(true);
  changer.join();
  EXPECT_EQ(shrunk.load(), 0);
  EXPECT_EQ(errors.load(), 0);
  ExpectFileSurvivesRemount(ino, model, "after appends with concurrent attribute changes");
}

// has_writers: the writable handles among the opens (an adapter with a writeback cache asks
// before answering SEEK_DATA/SEEK_HOLE from the shell's view alone).
TEST_F(ShellTest, WritableOpensAreCounted) {
  StartShell();
  auto made = shell_->create(1, "w", fs::kTypeRegular | 0644, cred_, true, 022, true);
  ASSERT_TRUE(made.ok());
  const std::uint64_t ino = made->ino;
  EXPECT_TRUE(shell_->has_writers(ino));
  ASSERT_TRUE(shell_->open(ino, false).ok());
  ASSERT_TRUE(shell_->release(ino, true).ok());  // the created handle
  EXPECT_FALSE(shell_->has_writers(ino));        // a reader alone
  ASSERT_TRUE(shell_->open(ino, true).ok());
  EXPECT_TRUE(shell_->has_writers(ino));
  ASSERT_TRUE(shell_->release(ino, true).ok());
  ASSERT_TRUE(shell_->release(ino, false).ok());
  EXPECT_FALSE(shell_->has_writers(ino));
}

// At unmount the kernel's references go away without their FORGETs being read: ForgetAll
// reclaims a file unlinked while open then, instead of leaving an orphan for the next mount.
TEST_F(ShellTest, ForgetAllReclaimsUnlinkedFiles) {
  StartShell();
  auto made = shell_->create(1, "gone", fs::kTypeRegular | 0644, cred_, true, 022);
  ASSERT_TRUE(made.ok()) << made.status().message();
  ASSERT_TRUE(Write(made->ino, 0, Pattern(100000, 3)).ok());
  ASSERT_TRUE(shell_->unlink(1, "gone").ok());
  ASSERT_TRUE(shell_->release(made->ino).ok());  // the handle is closed; the lookup remains
  EXPECT_TRUE(fs_->GetAttr(made->ino).ok());     // an orphan still
  shell_->ForgetAll();
  EXPECT_EQ(fs_->GetAttr(made->ino).status().code(), Code::kNotFound);
}

// A removed directory stays readable through the references the platform still holds (an
// open descriptor, the kernel's lookup) and is reclaimed when the last of them goes; one
// replaced by rename the same way.
TEST_F(ShellTest, RemovedDirectoryLivesWhileReferenced) {
  StartShell();
  auto d = shell_->mkdir(1, "d", 0755, cred_, 022);
  ASSERT_TRUE(d.ok()) << d.status().message();
  ASSERT_TRUE(shell_->opendir(d->ino).ok());
  ASSERT_TRUE(shell_->rmdir(1, "d").ok());
  auto a = shell_->attrs(d->ino);
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->nlink, 0u);
  // Nothing can be made inside it.
  EXPECT_EQ(shell_->mkdir(d->ino, "x", 0755, cred_, 022).status().code(), Code::kNotFound);
  shell_->forget(d->ino, 1);                // the lookup from mkdir goes first
  EXPECT_TRUE(shell_->attrs(d->ino).ok());  // the open handle still holds it
  ASSERT_TRUE(shell_->releasedir(d->ino).ok());
  EXPECT_EQ(fs_->GetAttr(d->ino).status().code(), Code::kNotFound);

  auto e = shell_->mkdir(1, "e", 0755, cred_, 022);
  auto f = shell_->mkdir(1, "f", 0755, cred_, 022);
  ASSERT_TRUE(e.ok() && f.ok());
  ASSERT_TRUE(shell_->rename(1, "e", 1, "f", 0).ok());
  EXPECT_EQ(shell_->attrs(f->ino)->nlink, 0u);
  EXPECT_EQ(shell_->attrs(1)->nlink, 3u);  // ".", its own entry, and e's ".." (now named f)
  shell_->ForgetAll();
  EXPECT_EQ(fs_->GetAttr(f->ino).status().code(), Code::kNotFound);
  EXPECT_TRUE(fs_->GetAttr(e->ino).ok());
}

// Inherited ACLs are part of making an entry: the attributes handed out already carry the
// ctime that setting them left, or the platform later sees ctime move with no operation.
// Setting an inode's ACL moves its ctime a second time, after the call's own change; the
// attributes returned must carry that, or the platform caches a ctime the volume does not have.
TEST_F(ShellTest, AclChangesAreInTheReturnedAttributes) {
  StartShell();
  auto d = shell_->mkdir(1, "d", 0755, cred_, 022);
  ASSERT_TRUE(d.ok());
  std::string acl("\x02\0\0\0", 4);  // version 2, then (tag, perm, id) entries
  auto entry = [&acl](std::uint16_t tag, std::uint16_t perm, std::uint32_t id) {
    const char e[8] = {static_cast<char>(tag), static_cast<char>(tag >> 8),
                       static_cast<char>(perm), 0, static_cast<char>(id),
                       static_cast<char>(id >> 8), static_cast<char>(id >> 16),
                       static_cast<char>(id >> 24)};
    acl.append(e, 8);
  };
  entry(0x01, 7, ~0u);   // owner rwx
  entry(0x02, 5, 1000);  // user 1000 r-x
  entry(0x04, 5, ~0u);   // group r-x
  entry(0x10, 5, ~0u);   // mask r-x
  entry(0x20, 5, ~0u);   // other r-x
  ASSERT_TRUE(shell_->setxattr(d->ino, "system.posix_acl_default", acl, 0).ok());
  Result<InodeRecord> made[] = {
      shell_->mkdir(d->ino, "sub", 0755, cred_, 022),
      shell_->create(d->ino, "f", fs::kTypeRegular | 0644, cred_, true, 022),
      shell_->mknod(d->ino, "p", fs::kTypeFifo | 0644, 0, cred_, 022),
  };
  for (const auto& m : made) {
    ASSERT_TRUE(m.ok()) << m.status().message();
    EXPECT_TRUE(fs_->GetXattr(m->ino, "system.posix_acl_access").ok()) << m->ino;
    EXPECT_EQ(m->ctime_ns, fs_->GetAttr(m->ino)->ctime_ns) << m->ino;
    fs::SetAttrRequest chmod;  // rewrites the ACL's mask entry
    chmod.mask = fs::kSetMode;
    chmod.mode = 0700;
    auto after = shell_->setattr(m->ino, chmod);
    ASSERT_TRUE(after.ok()) << after.status().message();
    EXPECT_EQ(after->ctime_ns, fs_->GetAttr(m->ino)->ctime_ns) << m->ino;
  }
}

TEST_F(ShellTest, SequentialWriterIsPromotedByTheFlusher) {
  const std::uint64_t ino = NewFile("s");
  ShellOptions o;
  o.budget_bytes = 64 * 65536;
  StartShell(o);
  std::thread flusher([this] { shell_->RunFlusher(); });
  std::string model;
  for (int i = 0; i < 400; ++i) {
    std::string d = Pattern(32768, static_cast<std::uint32_t>(i));
    ASSERT_TRUE(Write(ino, model.size(), d).ok());
    model += d;
    EXPECT_LE(shell_->stats().dirty_bytes, o.budget_bytes + 65536);
  }
  shell_->StopFlusher();
  flusher.join();
  ExpectFileSurvivesRemount(ino, model, "written");
}

// A promotion that fails keeps the data in memory (readable) and reports the error once.
// (Without promises: with them, data that does not fit is refused at write; see below.)
TEST_F(ShellTest, FailedPromotionKeepsDataAndReportsError) {
  Unmount();
  Make(2048);  // 8 MiB volume
  const std::uint64_t ino = NewFile("big");
  ShellOptions o;
  o.promise_space = false;
  StartShell(o);
  std::string model;
  for (int i = 0; i < 200; ++i) {  // 12.5 MiB: more than the volume holds
    std::string d = Pattern(65536, static_cast<std::uint32_t>(i + 1000));
    ASSERT_TRUE(Write(ino, model.size(), d).ok());
    model += d;
  }
  Status st = shell_->flush(ino);
  EXPECT_TRUE(st.IsNoSpace()) << st.message();
  ExpectFile(ino, model, "after failed promotion");
  // Shrinking the file makes the rest fit.
  fs::SetAttrRequest r;
  r.mask = fs::kSetSize;
  r.size = 1 << 20;
  st = shell_->setattr(ino, r).status();
  if (!st.ok()) {
    EXPECT_TRUE(st.IsNoSpace());
    st = shell_->setattr(ino, r).status();
  }
  ASSERT_TRUE(st.ok()) << st.message();
  model.resize(1 << 20);
  ASSERT_TRUE(shell_->flush(ino).ok());
  ExpectFileSurvivesRemount(ino, model, "after truncate");
}

// At the last close, dirty data that still does not fit is dropped (ENOSPC was reported at the
// flush before): its ranges read as zeros, the size stays, nothing stays in memory, and the
// volume syncs and unmounts cleanly.
TEST_F(ShellTest, LastCloseDropsDataThatDoesNotFit) {
  Unmount();
  Make(2048);  // 8 MiB volume
  const std::uint64_t ino = NewFile("big");
  ShellOptions o;
  o.promise_space = false;
  StartShell(o);
  ASSERT_TRUE(shell_->open(ino).ok());
  std::string model;
  for (int i = 0; i < 200; ++i) {  // 12.5 MiB: more than the volume holds
    std::string d = Pattern(65536, static_cast<std::uint32_t>(i + 2000));
    ASSERT_TRUE(Write(ino, model.size(), d).ok());
    model += d;
  }
  EXPECT_TRUE(shell_->flush(ino).IsNoSpace());  // close(2)
  EXPECT_TRUE(shell_->release(ino).IsNoSpace());
  EXPECT_GT(shell_->stats().dropped_records, 0u);
  EXPECT_EQ(shell_->stats().dirty_bytes, 0u);
  // The size stays; every record is either what was written or, dropped, zeros.
  auto a = shell_->attrs(ino);
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->size, model.size());
  const std::string got = ReadAll(ino);
  ASSERT_EQ(got.size(), model.size());
  std::size_t kept = 0;
  for (std::size_t off = 0; off < got.size(); off += 65536) {
    const std::string r = got.substr(off, 65536);
    if (r == model.substr(off, 65536)) ++kept;
    else EXPECT_EQ(r, std::string(r.size(), '\0')) << "record at " << off;
  }
  EXPECT_GT(kept, 0u);
  EXPECT_LT(kept, 200u);
  ExpectFile(ino, got, "the shell's view is what is stored");
  ASSERT_TRUE(shell_->SyncAll().ok());
  // The volume is still usable: a small file fits after the big one is truncated.
  fs::SetAttrRequest r;
  r.mask = fs::kSetSize;
  r.size = 1 << 20;
  ASSERT_TRUE(shell_->setattr(ino, r).ok());
  const std::uint64_t small = NewFile("small");
  const std::string sd = Pattern(100000, 7);
  ASSERT_TRUE(Write(small, 0, sd).ok());
  ASSERT_TRUE(shell_->flush(small).ok());
  StopShell();
  Remount();
  EXPECT_EQ(ReadAll(ino), got.substr(0, 1 << 20));
  EXPECT_EQ(ReadAll(small), sd);
}

// Space is promised at write: more than the volume holds is refused by write() itself, with
// nothing of the refused write changed; everything accepted promotes, statfs counts dirty data
// as used, and the space returns when the data goes.
TEST_F(ShellTest, WriteIsRefusedWhenItsSpaceCannotBePromised) {
  Unmount();
  Make(2048);  // 8 MiB volume
  const std::uint64_t ino = NewFile("big");
  StartShell();
  auto before = shell_->statfs();
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(Write(ino, 0, Pattern(65536, 1)).ok());
  auto after = shell_->statfs();
  ASSERT_TRUE(after.ok());
  EXPECT_GE(before->free_blocks - after->free_blocks, 16u) << "dirty data counts as used";
  std::string model = Pattern(65536, 1);
  Status st;
  for (int i = 1; i < 200 && st.ok(); ++i) {  // 12.5 MiB: more than the volume holds
    const std::string d = Pattern(65536, static_cast<std::uint32_t>(i + 1));
    st = Write(ino, model.size(), d);
    if (st.ok()) model += d;
  }
  ASSERT_TRUE(st.IsNoSpace()) << st.message();
  EXPECT_GT(model.size(), 4u << 20) << "most of the volume was usable";
  EXPECT_EQ(shell_->stats().refused_writes, 1u);
  ExpectFile(ino, model, "the refused write changed nothing");
  ASSERT_TRUE(shell_->flush(ino).ok()) << "what was accepted promotes";
  EXPECT_EQ(shell_->stats().dropped_records, 0u);
  ExpectFile(ino, model, "promoted");
  // Removing the data gives the space back: a new file fits again.
  fs::SetAttrRequest r;
  r.mask = fs::kSetSize;
  r.size = 0;
  ASSERT_TRUE(shell_->setattr(ino, r).ok());
  const std::uint64_t other = NewFile("other");
  const std::string od = Pattern(2 << 20, 5);
  ASSERT_TRUE(Write(other, 0, od).ok());
  ExpectFileSurvivesRemount(other, od, "written after the space returned");
  EXPECT_EQ(ReadAll(ino), "");
}

// Several writers on a nearly full volume: every byte a write() accepted is stored (no
// promotion fails and nothing is dropped at close), each refused write changed nothing. Whole
// records: a promise counts blocks, and a chunk needs them in one run, so records of many sizes
// rewritten on a full volume can still find the space too fragmented (see platform_shell.h).
TEST_F(ShellTest, ConcurrentWritersNeverLoseAcceptedData) {
  Unmount();
  Make(2048);  // 8 MiB volume
  constexpr int kWriters = 4;
  std::uint64_t inos[kWriters];
  for (int w = 0; w < kWriters; ++w) inos[w] = NewFile("f" + std::to_string(w));
  ShellOptions o;
  o.budget_bytes = 16 * 65536;  // promotions while writing, from the writers and the flusher
  StartShell(o);
  std::thread flusher([this] { shell_->RunFlusher(); });
  std::string models[kWriters];
  std::vector<std::thread> ts;
  for (int w = 0; w < kWriters; ++w) {
    ts.emplace_back([&, w] {
      for (int i = 0; i < 100; ++i) {
        const std::string d = Pattern(65536, static_cast<std::uint32_t>(w * 1000 + i));
        Status st = Write(inos[w], models[w].size(), d);
        if (st.ok()) models[w] += d;
        else EXPECT_TRUE(st.IsNoSpace()) << st.message();
      }
    });
  }
  for (auto& t : ts) t.join();
  for (int w = 0; w < kWriters; ++w) EXPECT_TRUE(shell_->flush(inos[w]).ok());
  shell_->StopFlusher();
  flusher.join();
  EXPECT_GT(shell_->stats().refused_writes, 0u);
  EXPECT_EQ(shell_->stats().dropped_records, 0u);
  StopShell();
  Remount();
  std::size_t total = 0;
  for (int w = 0; w < kWriters; ++w) {
    const std::string got = ReadAll(inos[w]);
    EXPECT_TRUE(got == models[w]) << "writer " << w << ": " << got.size() << " bytes stored, "
                                  << models[w].size() << " accepted";
    total += models[w].size();
  }
  EXPECT_GT(total, 4u << 20);
}

// Nearly full with the free space cut into one-block holes: a promise (a count of blocks) can
// hold while no run of a record's blocks exists. Writes then go through to the volume, so each
// one either stores its bytes or fails with its own ENOSPC and leaves nothing behind: no
// promotion fails later where nobody would hear of it, and what fits in the holes still fits.
TEST_F(ShellTest, NearlyFullFragmentedVolumeRefusesWritesItCannotPlace) {
  Unmount();
  Make(2048);  // 8 MiB volume
  std::vector<std::string> names;
  for (int i = 0;; ++i) {
    const std::string name = "s" + std::to_string(i);
    auto r = fs_->Create(1, name, fs::kTypeRegular | 0644, 0, cred_, true);
    if (!r.ok()) break;
    names.push_back(name);
    if (!WriteStr(r->ino, 0, Pattern(4096, static_cast<std::uint32_t>(100000 + i))).ok()) break;
  }
  ASSERT_GT(names.size(), 500u);
  for (std::size_t i = 0; i < names.size(); i += 2) {
    fs::UnlinkOutcome out;
    ASSERT_TRUE(fs_->Unlink(1, names[i], &out).ok());
    if (out.orphan) {
      ASSERT_TRUE(fs_->Reclaim(out.orphan).ok());
    }
  }
  StartShell();
  std::vector<std::pair<std::uint64_t, std::string>> stored;
  Status st;
  for (int i = 0; i < 100 && st.ok(); ++i) {
    const std::uint64_t ino = NewFile("big" + std::to_string(i));
    const std::string d = Pattern(65536, static_cast<std::uint32_t>(i + 7));
    st = Write(ino, 0, d);
    if (st.ok()) {
      stored.emplace_back(ino, d);
      continue;
    }
    EXPECT_TRUE(st.IsNoSpace()) << st.message();
    EXPECT_EQ(shell_->stats().dirty_records, 0u) << "nothing of the refused write stays";
    ExpectFile(ino, "", "after the refused write");
  }
  ASSERT_FALSE(st.ok()) << "the volume never filled";
  // One-block records fit in the holes.
  const std::uint64_t small = NewFile("small");
  const std::string sd = Pattern(3000, 8);
  ASSERT_TRUE(Write(small, 0, sd).ok());
  for (const auto& [ino, d] : stored) EXPECT_TRUE(shell_->flush(ino).ok());
  EXPECT_EQ(shell_->stats().dropped_records, 0u);
  StopShell();
  Remount();
  EXPECT_EQ(ReadAll(small), sd);
  for (const auto& [ino, d] : stored) EXPECT_TRUE(ReadAll(ino) == d) << "inode " << ino;
}

// write_refused: bytes a writeback cache accepted but the shell refused read as zeros past the
// old end, under a size that covers them, now and after a remount.
TEST_F(ShellTest, RefusedWriteExtendsTheSizeWithAHole) {
  const std::uint64_t ino = NewFile("f");
  StartShell();
  const std::string d = Pattern(5000, 8);
  ASSERT_TRUE(Write(ino, 0, d).ok());
  ASSERT_TRUE(shell_->write_refused(ino, 100000, 3000).ok());
  std::string model = d;
  model.resize(103000, '\0');
  ExpectFileSurvivesRemount(ino, model, "after a refused write");
}

}  // namespace
// kill_privileges: which mode bits go for which request, and the remembered absence of
// security.capability is forgotten when the attribute is set again (through the shell).
TEST_F(ShellTest, KillPrivilegesClearsBitsAndCapability) {
  StartShell();
  KillPrivileges suidgid;
  suidgid.suidgid = true;
  KillPrivileges outsider = suidgid;  // a caller in no group
  outsider.keeps_sgid = [](const void*, std::uint32_t) { return false; };
  KillPrivileges caps;
  caps.caps = true;
  struct Case {
    std::uint32_t mode;
    KillPrivileges kill;
    std::uint32_t want;
    const char* what;
  } cases[] = {
      {06755, suidgid, 00755, "group-executable: both go"},
      {06745, suidgid, 02745, "setgid without g+x stays..."},
      {06745, outsider, 00745, "...unless the caller is outside the group"},
      {06755, caps, 06755, "capability only"},
      {00755, suidgid, 00755, "nothing to clear"},
  };
  int i = 0;
  for (const Case& c : cases) {
    const std::uint64_t ino = NewFile("k" + std::to_string(i++));
    fs::SetAttrRequest r;
    r.mask = fs::kSetMode;
    r.mode = c.mode;
    ASSERT_TRUE(shell_->setattr(ino, r).ok());
    ASSERT_TRUE(Write(ino, 0, "data").ok());
    ASSERT_TRUE(shell_->kill_privileges(ino, c.kill).ok());
    EXPECT_EQ(shell_->attrs(ino)->mode & 07777u, c.want) << c.what;
    ASSERT_TRUE(shell_->SyncAll().ok());
    EXPECT_EQ(fs_->GetAttr(ino)->mode & 07777u, c.want) << "committed: " << c.what;
  }
  // Folded into setattr (a chown by an outsider's request): the returned attributes show it.
  {
    const std::uint64_t ino = NewFile("chown");
    fs::SetAttrRequest r;
    r.mask = fs::kSetMode;
    r.mode = 06745;
    ASSERT_TRUE(shell_->setattr(ino, r).ok());
    fs::SetAttrRequest own;
    own.mask = fs::kSetUid;
    own.uid = 1000;
    auto a = shell_->setattr(ino, own, outsider);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->uid, 1000u);
    EXPECT_EQ(a->mode & 07777u, 00745u);
  }
  // The group test looks at the group the file had: a chown into the caller's group does not
  // let it keep S_ISGID on a file of a group it is not in, and a truncate in the same request
  // still shrinks the file.
  {
    const std::uint64_t ino = NewFile("chgrp");
    ASSERT_TRUE(Write(ino, 0, std::string(100000, 'g')).ok());
    fs::SetAttrRequest r;
    r.mask = fs::kSetMode | fs::kSetGid;
    r.mode = 02666;
    r.gid = 1001;
    ASSERT_TRUE(shell_->setattr(ino, r).ok());
    KillPrivileges member = suidgid;  // in group 2000 only
    member.keeps_sgid = [](const void*, std::uint32_t gid) { return gid == 2000; };
    fs::SetAttrRequest chgrp;
    chgrp.mask = fs::kSetGid | fs::kSetSize;
    chgrp.gid = 2000;
    chgrp.size = 10;
    auto a = shell_->setattr(ino, chgrp, member);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->gid, 2000u);
    EXPECT_EQ(a->mode & 07777u, 00666u);
    EXPECT_EQ(a->size, 10u);
    EXPECT_EQ(fs_->GetAttr(ino)->mode & 07777u, 00666u);
    EXPECT_EQ(shell_->attrs(ino)->size, 10u);
  }
  // Owner only (chown(f, -1, -1)): someone else's file with a bit to clear is refused before
  // anything changes; the owner clears it; nothing to clear is no refusal.
  {
    const std::uint64_t ino = NewFile("owner");  // owned by cred_.uid
    fs::SetAttrRequest r;
    r.mask = fs::kSetMode;
    r.mode = 06755;
    ASSERT_TRUE(shell_->setattr(ino, r).ok());
    KillPrivileges only = suidgid;
    only.owner_only = true;
    only.caller_uid = cred_.uid + 1;
    fs::SetAttrRequest touch;
    touch.mask = fs::kSetCtime;
    touch.ctime_ns = 1;
    EXPECT_EQ(shell_->setattr(ino, touch, only).status().code(), Code::kPermission);
    EXPECT_EQ(fs_->GetAttr(ino)->mode & 07777u, 06755u);
    EXPECT_NE(fs_->GetAttr(ino)->ctime_ns, 1);
    only.caller_uid = cred_.uid;
    auto a = shell_->setattr(ino, touch, only);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->mode & 07777u, 00755u);
    only.caller_uid = cred_.uid + 1;
    EXPECT_TRUE(shell_->setattr(ino, touch, only).ok());
  }
  // A write that clears caps removes the capability; set again after the node learned it was
  // absent, the next write removes it again.
  const std::uint64_t ino = NewFile("cap");
  const std::string cap(20, '\x01');
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE(shell_->setxattr(ino, "security.capability", cap, 0).ok());
    ASSERT_TRUE(shell_->write(ino, 0, reinterpret_cast<const std::uint8_t*>("x"), 1, {}).ok());
    EXPECT_TRUE(shell_->getxattr(ino, "security.capability").ok()) << "no kill asked";
    ASSERT_TRUE(shell_->write(ino, 1, reinterpret_cast<const std::uint8_t*>("y"), 1, caps).ok());
    auto g = shell_->getxattr(ino, "security.capability");
    ASSERT_FALSE(g.ok()) << "round " << round;
    EXPECT_EQ(g.status().code(), Code::kNoData);
  }
  // A directory keeps its setgid bit (it means inheritance there, not privilege).
  auto d = fs_->Mkdir(1, "dir", 02775, cred_);
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(shell_->kill_privileges(d->ino, outsider).ok());
  EXPECT_EQ(shell_->attrs(d->ino)->mode & 07777u, 02775u);
}

}  // namespace permfs::shell
