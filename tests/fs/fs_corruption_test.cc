// Corrupted images (RELIABILITY.md §4.2 bit rot, plus structural damage): mount and fsck never
// crash, and never return wrong file data. For every damaged image:
//   - Fsck either fails (non-OK status / errors reported, FsckExitCode 4) or reports the volume
//     clean (0 or 1: a flip in an unused area, a superblock with a good mirror) — and then every
//     file must read back intact;
//   - if Volume::Mount + Filesystem::Open succeed, every Read/Readlink/GetXattr that succeeds
//     returns the original bytes (damage is an error, never data).
// Damage: random 1-8 bit flips in metadata blocks (B+tree nodes found through BTree::Check's
// node_fn, bitmap blocks, the volume root, the journal, the superblocks), a truncated device,
// a wrong magic, a zeroed journal, a zeroed volume root.
// Also: the dedupe proof on a sparse 512 MiB FileBlockDevice image, and fsck repair of a wrong
// chunk refcount, a wrong nlink, a leaked block and a dangling directory entry (exit 4 without
// --repair, 1 with it, 0 on the next run).
//
// Env: PERMFS_FS_FLIPS = bit-flip trials (default 600). A failure names the trial and block.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

#include "block/mem_block_device.h"
#include "btree/btree.h"
#include "format/volume_root.h"
#include "fs/filesystem.h"
#include "fs/fsck.h"
#include "hosted/file_block_device.h"
#include "util/random.h"
#include "volume/volume.h"
#include "testutil/volume_fixture.h"

namespace permfs::fs {
namespace {

using testutil::EnvU64;
using testutil::Str;

constexpr std::uint32_t kBs = 4096;
const Credentials kCred{1000, 1000};

struct FileWant {
  std::uint64_t ino;
  std::string data;    // regular files
  std::string target;  // symlinks
  std::string xattr;   // value of user.x ("" = none)
};

struct Image {
  std::vector<std::uint8_t> bytes;
  std::vector<FileWant> files;
  std::vector<std::uint64_t> meta_blocks;  // every metadata block in use
  std::uint64_t journal_start = 0, journal_blocks = 0, root_block = 0, block_count = 0;
};

// A populated, cleanly unmounted volume and the list of its metadata blocks.
Image BuildImage() {
  Image img;
  block::MemBlockDevice dev(2048, kBs);
  volume::MkfsOptions mo;
  mo.journal_blocks = 64;
  mo.record_size = 4096;
  EXPECT_TRUE(volume::Volume::Mkfs(&dev, mo).ok());
  {
    auto v = volume::Volume::Mount(&dev, {});
    EXPECT_TRUE(v.ok());
    EXPECT_TRUE(Filesystem::Format(v->get(), {0, 0}).ok());
    Filesystem fs(v->get());
    EXPECT_TRUE(fs.Open().ok());
    Random r(42);
    std::uint64_t dirs[3] = {kRootIno, fs.Mkdir(kRootIno, "d1", 0755, kCred)->ino, 0};
    dirs[2] = fs.Mkdir(dirs[1], "d2", 0755, kCred)->ino;
    for (int i = 0; i < 40; ++i) {
      auto c = fs.Create(dirs[i % 3], "file" + std::to_string(i), 0644, 0, kCred);
      EXPECT_TRUE(c.ok());
      FileWant w{c->ino, std::string(r.Uniform(3) == 0 ? r.Uniform(100) : r.Uniform(30000), '\0'), "", ""};
      r.Fill(w.data.data(), w.data.size());
      if (i % 7 == 0 && w.data.size() > 8192) std::fill(w.data.begin() + 4096, w.data.begin() + 8192, '\0');
      EXPECT_TRUE(fs.Write(c->ino, 0, reinterpret_cast<const std::uint8_t*>(w.data.data()), w.data.size()).ok());
      if (i % 3 == 0) {
        w.xattr = std::string(1 + r.Uniform(2000), 'x');
        EXPECT_TRUE(fs.SetXattr(c->ino, "user.x", w.xattr, 0).ok());
      }
      if (i % 5 == 0) {
        EXPECT_TRUE(fs.Link(c->ino, dirs[(i + 1) % 3], "link" + std::to_string(i)).ok());
      }
      img.files.push_back(w);
    }
    for (int i = 0; i < 5; ++i) {
      std::string t(1 + r.Uniform(1500), 's');
      auto s = fs.Symlink(dirs[i % 3], "sym" + std::to_string(i), t, kCred);
      EXPECT_TRUE(s.ok());
      img.files.push_back(FileWant{s->ino, "", t, ""});
    }
    // Leave the journal with some history: a few synced changes after a checkpoint.
    EXPECT_TRUE((*v)->meta()->SyncAndCheckpoint().ok());
    EXPECT_TRUE(fs.Rename(kRootIno, "file0", dirs[2], "moved0", 0, nullptr).ok());
    EXPECT_TRUE(fs.Sync().ok());
    const format::Superblock& sb = (*v)->sb();
    img.journal_start = sb.journal_start;
    img.journal_blocks = sb.journal_blocks;
    img.root_block = sb.root_block;
    img.block_count = sb.block_count;
    EXPECT_TRUE((*v)->Unmount().ok());
  }
  {  // Enumerate metadata blocks on the clean image.
    auto v = volume::Volume::Mount(&dev, {});
    EXPECT_TRUE(v.ok());
    std::set<std::uint64_t> blocks = {0, 1, img.root_block, img.block_count - 1};
    for (std::uint64_t b = img.journal_start; b < img.journal_start + img.journal_blocks; ++b) blocks.insert(b);
    const format::Superblock& sb = (*v)->sb();
    for (std::uint32_t s = 0; s < sb.shard_count; ++s)
      for (std::uint32_t k = 0; k < sb.bitmap_blocks_per_shard; ++k)
        blocks.insert((*v)->allocator()->BitmapBlockOf(s, k));
    {
      journal::ReadView view((*v)->meta());
      for (std::uint32_t id = 1; id < format::kMaxTrees; ++id) {
        btree::BTree t((*v)->meta(), (*v)->allocator(), (*v)->roots(), id);
        btree::TreeCheckStats ts;
        EXPECT_TRUE(t.Check(view, &ts,
                            [](void* ctx, std::uint64_t b) { static_cast<std::set<std::uint64_t>*>(ctx)->insert(b); },
                            &blocks)
                        .ok());
      }
    }
    EXPECT_TRUE((*v)->Unmount().ok());
    img.meta_blocks.assign(blocks.begin(), blocks.end());
  }
  img.bytes = dev.Snapshot();
  return img;
}

struct Outcome {
  int fsck_exit = -1;
  bool mounted = false;
  std::uint64_t wrong = 0, unreadable = 0;
  std::string first_wrong;
};

// Fsck + mount + read everything back from a damaged image.
Outcome Examine(std::vector<std::uint8_t> bytes, const Image& img) {
  Outcome out;
  const std::size_t blocks = bytes.size() / kBs;
  {
    block::MemBlockDevice dev(bytes, kBs);
    FsckOptions fo;
    fo.verify_data = true;
    FsckReport rep;
    Status st = Fsck(&dev, fo, &rep);
    out.fsck_exit = FsckExitCode(st, rep);
  }
  block::MemBlockDevice dev(std::move(bytes), kBs);
  (void)blocks;
  auto v = volume::Volume::Mount(&dev, {});
  if (!v.ok()) return out;
  {
    Filesystem fs(v->get());
    if (fs.Open().ok()) {
      out.mounted = true;
      for (const FileWant& w : img.files) {
        auto a = fs.GetAttr(w.ino);
        if (!a.ok()) {
          ++out.unreadable;
          continue;
        }
        auto bad = [&](const std::string& what) {
          if (out.wrong++ == 0) out.first_wrong = "ino " + std::to_string(w.ino) + ": " + what;
        };
        if (IsSymlink(a->mode)) {
          auto t = fs.Readlink(w.ino);
          if (!t.ok()) ++out.unreadable;
          else if (*t != w.target) bad("symlink target differs");
        } else if (IsRegular(a->mode)) {
          std::string buf(w.data.size() + 16, '\x77');
          auto n = fs.Read(w.ino, 0, buf.size(), reinterpret_cast<std::uint8_t*>(buf.data()));
          if (!n.ok()) ++out.unreadable;
          else if (*n != w.data.size() || buf.compare(0, *n, w.data) != 0) bad("file data differs (size " + std::to_string(*n) + ")");
        } else {
          bad("inode changed type");
        }
        auto x = fs.GetXattr(w.ino, "user.x");
        if (x.ok() && *x != w.xattr) bad("xattr differs");
        if (!x.ok() && x.status().code() == Code::kNoData && !w.xattr.empty()) ++out.unreadable;
      }
    }
  }
  (void)(*v)->Unmount();
  return out;
}

class FsCorruptionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { image_ = new Image(BuildImage()); }
  static void TearDownTestSuite() {
    delete image_;
    image_ = nullptr;
  }
  static Image* image_;

  // The common verdict: detected (exit 4 / mount refused) or clean with intact data; never
  // wrong data from a successful read.
  void Verdict(const std::string& what, const Outcome& o, bool must_detect = false) {
    EXPECT_EQ(o.wrong, 0u) << what << ": a successful read returned wrong data: " << o.first_wrong;
    EXPECT_TRUE(o.fsck_exit == kFsckClean || o.fsck_exit == kFsckCorrected || o.fsck_exit == kFsckUncorrected)
        << what << ": fsck exit " << o.fsck_exit;
    if (o.fsck_exit != kFsckUncorrected) {
      EXPECT_FALSE(must_detect) << what << ": damage not reported (fsck exit " << o.fsck_exit << ")";
      EXPECT_TRUE(o.mounted) << what << ": fsck says clean but the volume does not mount";
      EXPECT_EQ(o.unreadable, 0u) << what << ": fsck says clean but files are unreadable";
    }
  }
};
Image* FsCorruptionTest::image_ = nullptr;

TEST_F(FsCorruptionTest, CleanImageIsClean) {
  Outcome o = Examine(image_->bytes, *image_);
  EXPECT_EQ(o.fsck_exit, kFsckClean);
  EXPECT_TRUE(o.mounted);
  EXPECT_EQ(o.unreadable, 0u);
  EXPECT_EQ(o.wrong, 0u);
  EXPECT_GT(image_->meta_blocks.size(), 70u);
}

TEST_F(FsCorruptionTest, RandomBitFlipsInMetadata) {
  const std::uint64_t trials = EnvU64("PERMFS_FS_FLIPS", 600);
  Random r(EnvU64("PERMFS_FS_FLIP_SEED", 1));
  std::uint64_t detected = 0, clean = 0, failures = 0;
  for (std::uint64_t t = 0; t < trials && failures < 5; ++t) {
    std::vector<std::uint8_t> bytes = image_->bytes;
    const std::uint64_t blk = image_->meta_blocks[r.Uniform(static_cast<std::uint32_t>(image_->meta_blocks.size()))];
    const std::uint32_t flips = 1 + r.Uniform(8);
    for (std::uint32_t i = 0; i < flips; ++i)
      bytes[blk * kBs + r.Uniform(kBs)] ^= static_cast<std::uint8_t>(1u << r.Uniform(8));
    Outcome o = Examine(std::move(bytes), *image_);
    const std::string what = "flip trial " + std::to_string(t) + " block " + std::to_string(blk) +
                             " (" + std::to_string(flips) + " bits)";
    Verdict(what, o);
    if (HasFailure()) ++failures;
    (o.fsck_exit == kFsckUncorrected ? detected : clean)++;
  }
  std::printf("%llu bit-flip trials: %llu detected by fsck, %llu clean with intact data, %llu failures\n",
              static_cast<unsigned long long>(trials), static_cast<unsigned long long>(detected),
              static_cast<unsigned long long>(clean), static_cast<unsigned long long>(failures));
}

TEST_F(FsCorruptionTest, TruncatedImage) {
  const std::size_t n = image_->bytes.size() / kBs;
  for (std::size_t keep : {std::size_t{1}, std::size_t{3}, std::size_t{70}, n / 2, n - 2, n - 1}) {
    std::vector<std::uint8_t> bytes(image_->bytes.begin(), image_->bytes.begin() + static_cast<std::ptrdiff_t>(keep * kBs));
    Outcome o = Examine(std::move(bytes), *image_);
    Verdict("truncated to " + std::to_string(keep) + " blocks", o, /*must_detect=*/true);
  }
}

TEST_F(FsCorruptionTest, WrongMagicZeroedJournalZeroedRoot) {
  const Image& im = *image_;
  {  // Primary superblock magic: the mirror still serves.
    auto b = im.bytes;
    for (int i = 0; i < 8; ++i) b[i] ^= 0xff;
    Verdict("primary magic", Examine(b, im));
  }
  {  // Every superblock copy (0, 1, last).
    auto b = im.bytes;
    for (std::uint64_t blk : {std::uint64_t{0}, std::uint64_t{1}, im.block_count - 1})
      for (int i = 0; i < 8; ++i) b[blk * kBs + i] ^= 0xff;
    Verdict("all magics", Examine(b, im), true);
  }
  {  // Zeroed journal region.
    auto b = im.bytes;
    std::fill(b.begin() + static_cast<std::ptrdiff_t>(im.journal_start * kBs),
              b.begin() + static_cast<std::ptrdiff_t>((im.journal_start + im.journal_blocks) * kBs), 0);
    Verdict("zeroed journal", Examine(b, im));
  }
  {  // Zeroed volume root.
    auto b = im.bytes;
    std::fill(b.begin() + static_cast<std::ptrdiff_t>(im.root_block * kBs),
              b.begin() + static_cast<std::ptrdiff_t>((im.root_block + 1) * kBs), 0);
    Verdict("zeroed volume root", Examine(b, im), true);
  }
  {  // Every metadata block zeroed in turn (a lost write).
    for (std::uint64_t blk : im.meta_blocks) {
      if (blk >= im.journal_start && blk < im.journal_start + im.journal_blocks && blk % 8 != 0) continue;
      auto b = im.bytes;
      std::fill(b.begin() + static_cast<std::ptrdiff_t>(blk * kBs), b.begin() + static_cast<std::ptrdiff_t>((blk + 1) * kBs), 0);
      Verdict("zeroed block " + std::to_string(blk), Examine(b, im));
      if (::testing::Test::HasFailure()) break;
    }
  }
}

// ---- Dedupe -------------------------------------------------------------------------------

TEST(FsDedupeTest, SameHundredMiBTwiceUsesOnce) {
  const std::string path = "/tmp/permfs_dedupe_" + std::to_string(::getpid()) + ".img";
  hosted::FileOpenOptions fo;
  fo.create_size_bytes = 512ull << 20;
  auto dev = hosted::FileBlockDevice::Open(path, fo);
  ASSERT_TRUE(dev.ok()) << Str(dev.status());
  struct Rm {
    std::string p;
    ~Rm() { ::unlink(p.c_str()); }
  } rm{path};
  ASSERT_TRUE(volume::Volume::Mkfs(dev->get(), {}).ok());
  auto v = volume::Volume::Mount(dev->get(), {});
  ASSERT_TRUE(v.ok());
  ASSERT_TRUE(Filesystem::Format(v->get(), {0, 0}).ok());
  auto fs = std::make_unique<Filesystem>(v->get());
  ASSERT_TRUE(fs->Open().ok());
  auto free_blocks = [&] {
    EXPECT_TRUE((*v)->meta()->SyncAndCheckpoint().ok());
    return fs->Statfs()->free_blocks;
  };
  const std::uint64_t f0 = free_blocks();
  const std::size_t kMiB = 1 << 20, kTotal = 100 * kMiB;
  std::string chunk(kMiB, '\0');
  auto fill = [&](std::size_t i) {
    Random r(1000 + i);
    r.Fill(chunk.data(), chunk.size());
  };
  auto a = fs->Create(kRootIno, "a", 0644, 0, kCred);
  auto b = fs->Create(kRootIno, "b", 0644, 0, kCred);
  ASSERT_TRUE(a.ok() && b.ok());
  for (std::uint64_t ino : {a->ino, b->ino})
    for (std::size_t i = 0; i < kTotal / kMiB; ++i) {
      fill(i);
      ASSERT_TRUE(fs->Write(ino, i * kMiB, reinterpret_cast<const std::uint8_t*>(chunk.data()), kMiB).ok());
    }
  const std::uint64_t f1 = free_blocks();
  const std::uint64_t used = f0 - f1, data_blocks = kTotal / kBs;
  std::printf("dedupe: two 100 MiB files use %llu blocks (%.1f MiB); the data alone is %llu blocks\n",
              static_cast<unsigned long long>(used), used * 4096.0 / kMiB,
              static_cast<unsigned long long>(data_blocks));
  EXPECT_GE(used, data_blocks);
  EXPECT_LE(used, data_blocks + data_blocks / 20) << "the second copy was stored again";
  auto check = [&](std::uint64_t ino) {
    for (std::size_t i = 0; i < kTotal / kMiB; i += 7) {
      fill(i);
      std::string got(kMiB, '\0');
      auto n = fs->Read(ino, i * kMiB, kMiB, reinterpret_cast<std::uint8_t*>(got.data()));
      ASSERT_TRUE(n.ok() && *n == kMiB);
      ASSERT_TRUE(got == chunk) << "MiB " << i;
    }
  };
  UnlinkOutcome o;
  ASSERT_TRUE(fs->Unlink(kRootIno, "a", &o).ok());
  ASSERT_TRUE(fs->Reclaim(o.orphan).ok());
  check(b->ino);
  const std::uint64_t f2 = free_blocks();
  EXPECT_LE(f2 - f1, data_blocks / 50) << "deleting one copy freed shared data";
  ASSERT_TRUE(fs->Unlink(kRootIno, "b", &o).ok());
  ASSERT_TRUE(fs->Reclaim(o.orphan).ok());
  const std::uint64_t f3 = free_blocks();
  std::printf("dedupe: free blocks %llu -> %llu (both) -> %llu (one deleted) -> %llu (both deleted)\n",
              static_cast<unsigned long long>(f0), static_cast<unsigned long long>(f1),
              static_cast<unsigned long long>(f2), static_cast<unsigned long long>(f3));
  EXPECT_LE(f0 - f3, 64u) << "space not returned";
  fs.reset();
  ASSERT_TRUE((*v)->Unmount().ok());
  FsckOptions opt;
  FsckReport rep;
  ASSERT_TRUE(Fsck(dev->get(), opt, &rep).ok());
  EXPECT_EQ(rep.errors, 0u);
}

// ---- fsck repair ----------------------------------------------------------------------------

class FsckRepairTest : public ::testing::Test {
 protected:
  block::MemBlockDevice dev_{4096, kBs};
  std::uint64_t file_ = 0, dir_ = 0;
  void SetUp() override {
    ASSERT_TRUE(volume::Volume::Mkfs(&dev_, {}).ok());
    auto v = volume::Volume::Mount(&dev_, {});
    ASSERT_TRUE(v.ok());
    ASSERT_TRUE(Filesystem::Format(v->get(), {0, 0}).ok());
    Filesystem fs(v->get());
    ASSERT_TRUE(fs.Open().ok());
    dir_ = fs.Mkdir(kRootIno, "d", 0755, kCred)->ino;
    file_ = fs.Create(dir_, "f", 0644, 0, kCred)->ino;
    std::string data(200000, 'q');
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31 + i / 997);
    ASSERT_TRUE(fs.Write(file_, 0, reinterpret_cast<const std::uint8_t*>(data.data()), data.size()).ok());
    ASSERT_TRUE(fs.Link(file_, kRootIno, "f2").ok());
    ASSERT_TRUE((*v)->Unmount().ok());
  }
  // Applies `damage` inside one transaction on a mounted volume.
  template <typename F>
  void Damage(F&& damage) {
    auto v = volume::Volume::Mount(&dev_, {});
    ASSERT_TRUE(v.ok());
    {
      Filesystem fs(v->get());
      auto t = (*v)->meta()->Begin();
      ASSERT_TRUE(t.ok());
      damage(v->get(), &fs, *t);
      ASSERT_TRUE(t->Commit().ok());
    }
    ASSERT_TRUE((*v)->Unmount().ok());
  }
  int RunFsck(bool repair, std::string* problems = nullptr) {
    FsckOptions o;
    o.repair = repair;
    o.verify_data = true;
    FsckReport r;
    Status st = Fsck(&dev_, o, &r);
    if (problems)
      for (const std::string& p : r.problems) *problems += p + "; ";
    return FsckExitCode(st, r);
  }
  void ExpectRepairCycle(const char* what) {
    std::string p;
    EXPECT_EQ(RunFsck(false, &p), kFsckUncorrected) << what;
    EXPECT_FALSE(p.empty()) << what;
    std::printf("%s: fsck reports: %s\n", what, p.c_str());
    EXPECT_EQ(RunFsck(false), kFsckUncorrected) << what << ": a check without --repair changed the volume";
    std::string p2;
    EXPECT_EQ(RunFsck(true, &p2), kFsckCorrected) << what << ": " << p2;
    std::string p3;
    EXPECT_EQ(RunFsck(false, &p3), kFsckClean) << what << " after repair: " << p3;
    // The file is still readable after the repair (through either name).
    auto v = volume::Volume::Mount(&dev_, {});
    ASSERT_TRUE(v.ok());
    {
      Filesystem fs(v->get());
      ASSERT_TRUE(fs.Open().ok());
      auto l = fs.Lookup(kRootIno, "f2");
      ASSERT_TRUE(l.ok()) << what;
      std::string buf(l->size, '\0');
      auto n = fs.Read(l->ino, 0, buf.size(), reinterpret_cast<std::uint8_t*>(buf.data()));
      EXPECT_TRUE(n.ok()) << what;
    }
    ASSERT_TRUE((*v)->Unmount().ok());
  }
};

TEST_F(FsckRepairTest, WrongChunkRefcount) {
  Damage([](volume::Volume*, Filesystem* fs, journal::WriteTxn& t) {
    store::ChunkId id{};
    {
      // First chunk of the index (read inside the transaction).
      struct C {
        store::ChunkId* id;
      } c{&id};
      ASSERT_TRUE(fs->chunks()
                      ->ForEach(t,
                                [](void* p, const store::ChunkLocation& l) {
                                  *static_cast<C*>(p)->id = l.id;
                                  return false;
                                },
                                &c)
                      .ok());
    }
    ASSERT_TRUE(fs->chunks()->SetRefcount(t, id, 5).ok());
  });
  ExpectRepairCycle("wrong refcount");
}

TEST_F(FsckRepairTest, WrongLinkCount) {
  const std::uint64_t ino = file_;
  Damage([ino](volume::Volume* v, Filesystem*, journal::WriteTxn& t) {
    btree::BTree it(v->meta(), v->allocator(), v->roots(), kInodeTree);
    std::string val;
    ASSERT_TRUE(it.Get(t, btree::Slice(InodeKey(ino)), &val).ok());
    auto rec = InodeRecord::Decode(ino, reinterpret_cast<const std::uint8_t*>(val.data()), val.size());
    ASSERT_TRUE(rec.ok());
    rec->nlink = 7;
    std::uint8_t buf[InodeRecord::kEncodedSize];
    rec->Encode(buf);
    ASSERT_TRUE(it.Put(t, btree::Slice(InodeKey(ino)), btree::Slice(buf, sizeof buf)).ok());
  });
  ExpectRepairCycle("wrong nlink");
}

TEST_F(FsckRepairTest, LeakedBlock) {
  Damage([](volume::Volume* v, Filesystem*, journal::WriteTxn& t) {
    auto e = v->allocator()->Allocate(t, 3, 3, 0);
    ASSERT_TRUE(e.ok()) << Str(e.status());
  });
  ExpectRepairCycle("leaked blocks");
}

TEST_F(FsckRepairTest, DanglingDirectoryEntry) {
  const std::uint64_t dir = dir_;
  Damage([dir](volume::Volume* v, Filesystem*, journal::WriteTxn& t) {
    btree::BTree dt(v->meta(), v->allocator(), v->roots(), kDirTree);
    DirEntry e{"ghost", 987654, DirentType(kTypeRegular)};
    ASSERT_TRUE(dt.Put(t, btree::Slice(DirKey(dir, DirHash(e.name))), btree::Slice(EncodeBucket(&e, 1))).ok());
  });
  ExpectRepairCycle("dangling entry");
}

}  // namespace
}  // namespace permfs::fs
