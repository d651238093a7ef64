// MetaStore unit tests: transaction semantics (Modify/Create/Commit/Abort), durability through
// the journal (replay on remount), group commit, checkpoints and journal wrap, the block cache,
// corruption detection, I/O error handling and read-only mounts.

#include "journal/meta_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "block/faulty_block_device.h"
#include "block/mem_block_device.h"
#include "format/volume_root.h"
#include "journal/store_test_util.h"
#include "testutil/volume_fixture.h"
#include "util/random.h"

namespace permfs::journal {
namespace {

using namespace permfs::journal::testing;  // NOLINT
using testutil::Str;
using testutil::TestVolume;
using testutil::VolumeOptions;

constexpr std::uint32_t kBs = 4096;

// Completes flushes after a delay, so concurrent committers pile up behind one commit.
class SlowFlushDevice final : public block::BlockDevice {
 public:
  SlowFlushDevice(block::BlockDevice* inner, int flush_us) : inner_(inner), us_(flush_us) {}
  const block::Geometry& geometry() const noexcept override { return inner_->geometry(); }
  const block::Capabilities& capabilities() const noexcept override {
    return inner_->capabilities();
  }
  void Submit(block::Request* r) noexcept override {
    if (r->op == block::Op::kFlush) std::this_thread::sleep_for(std::chrono::microseconds(us_));
    inner_->Submit(r);
  }

 private:
  block::BlockDevice* inner_;
  int us_;
};

class MetaStoreTest : public ::testing::Test {
 protected:
  static constexpr std::uint64_t kBlocks = 2048;

  void Fresh(VolumeOptions o = {}) {
    o.with_allocator = false;
    opt_ = o;
    vol_.reset();
    dev_ = std::make_unique<block::MemBlockDevice>(kBlocks, kBs);
    auto v = TestVolume::MakeFresh(dev_.get(), kBlocks, o);
    ASSERT_TRUE(v.ok()) << Str(v.status());
    vol_ = std::move(*v);
    ms_ = vol_->ms.get();
  }
  // Drops the store WITHOUT any unmount work (a crash with every completed write durable) and
  // mounts again.
  void Remount(block::BlockDevice* dev = nullptr) {
    ASSERT_TRUE(TryRemount(dev).ok());
  }
  Status TryRemount(block::BlockDevice* dev = nullptr, const VolumeOptions* o = nullptr) {
    vol_.reset();
    ms_ = nullptr;
    VolumeOptions opt = o ? *o : opt_;
    opt.with_allocator = false;
    auto v = TestVolume::Remount(dev ? dev : dev_.get(), opt);
    if (!v.ok()) return v.status();
    vol_ = std::move(*v);
    ms_ = vol_->ms.get();
    return Status();
  }

  std::uint64_t B(std::uint64_t i) const { return vol_->sb.shard_start + 100 + i; }

  // Creates blocks B(0..n) with `tag` (in as few transactions as the journal allows) and syncs.
  void CreateBlocks(std::uint64_t n, std::uint64_t tag) {
    const std::uint64_t per = ms_->max_txn_blocks();
    for (std::uint64_t first = 0; first < n; first += per) {
      auto t = ms_->Begin();
      ASSERT_TRUE(t.ok()) << Str(t.status());
      for (std::uint64_t i = first; i < n && i < first + per; ++i) {
        auto p = t->Create(B(i), format::BlockType::kBTreeLeaf, kTestOwner);
        ASSERT_TRUE(p.ok()) << Str(p.status());
        FillPayload(*p, kBs, B(i), tag);
      }
      ASSERT_TRUE(t->Commit().ok());
      ASSERT_TRUE(ms_->Sync().ok());
    }
  }
  // Sets blocks `ids` to `tag` in one handle; optionally syncs.
  Status SetTags(const std::vector<std::uint64_t>& ids, std::uint64_t tag, bool sync) {
    auto t = ms_->Begin();
    if (!t.ok()) return t.status();
    for (std::uint64_t i : ids) {
      auto p = t->Modify(B(i), LeafAt(B(i)));
      if (!p.ok()) return p.status();
      FillPayload(*p, kBs, B(i), tag);
    }
    PERMFS_RETURN_IF_ERROR(t->Commit());
    return sync ? ms_->Sync() : Status();
  }
  std::uint64_t Tag(std::uint64_t i) {
    auto r = ReadTag(ms_, B(i));
    EXPECT_TRUE(r.ok()) << "block " << i << ": " << Str(r.status());
    return r.ok() ? *r : ~0ull;
  }
  std::uint64_t Home(std::uint64_t i) { return HomeTag(dev_->raw(), kBs, B(i), vol_->sb.uuid); }
  std::vector<std::uint8_t> Image() { return dev_->Snapshot(); }

  VolumeOptions opt_;
  std::unique_ptr<block::MemBlockDevice> dev_;
  std::unique_ptr<TestVolume> vol_;
  MetaStore* ms_ = nullptr;
};

TEST_F(MetaStoreTest, CommitIsInvisibleOnDiskUntilSyncAndReplayedOnRemount) {
  Fresh();
  auto before = Image();
  {
    auto t = ms_->Begin();
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t->seq(), ms_->stats().running_seq);
    auto p = t->Create(B(0), format::BlockType::kBTreeLeaf, kTestOwner);
    ASSERT_TRUE(p.ok());
    FillPayload(*p, kBs, B(0), 5);
    EXPECT_EQ(format::MetaGeneration(*p), t->seq());
    ASSERT_TRUE(t->Commit().ok());
    EXPECT_FALSE(t->active());
  }
  EXPECT_EQ(ms_->running_dirty_blocks(), 1u);
  EXPECT_TRUE(Image() == before) << "a committed-but-unsynced change reached the device";
  EXPECT_EQ(Tag(0), 5u);  // visible in memory
  const std::uint64_t d0 = ms_->durable_seq();
  ASSERT_TRUE(ms_->Sync().ok());
  EXPECT_EQ(ms_->durable_seq(), d0 + 1);
  EXPECT_EQ(ms_->stats().commits, 1u);
  EXPECT_EQ(ms_->running_dirty_blocks(), 0u);
  EXPECT_EQ(Home(0), ~0ull) << "a home block was written before a checkpoint";
  EXPECT_FALSE(Image() == before);  // the journal was written
  Remount();
  EXPECT_EQ(ms_->stats().replayed_transactions, 1u);
  EXPECT_EQ(ms_->stats().replayed_blocks, 1u);
  EXPECT_EQ(Home(0), 5u);  // replay wrote it home
  EXPECT_EQ(Tag(0), 5u);
  // A second remount finds an empty journal.
  Remount();
  EXPECT_EQ(ms_->stats().replayed_transactions, 0u);
  EXPECT_EQ(Tag(0), 5u);
}

TEST_F(MetaStoreTest, UnsyncedCommitIsLostOnCrash) {
  Fresh();
  CreateBlocks(2, 1);
  ASSERT_TRUE(SetTags({0, 1}, 2, /*sync=*/false).ok());
  Remount();
  EXPECT_EQ(Tag(0), 1u);
  EXPECT_EQ(Tag(1), 1u);
}

TEST_F(MetaStoreTest, SyncAndCheckpointThenRemountReplaysNothing) {
  Fresh();
  CreateBlocks(10, 1);
  ASSERT_TRUE(SetTags({3, 4}, 2, true).ok());
  ASSERT_TRUE(ms_->SyncAndCheckpoint().ok());
  EXPECT_GE(ms_->stats().checkpoints, 1u);
  EXPECT_EQ(ms_->stats().journal_used, 0u);
  for (std::uint64_t i = 0; i < 10; ++i) EXPECT_EQ(Home(i), (i == 3 || i == 4) ? 2u : 1u) << i;
  auto img = Image();
  Remount();
  EXPECT_EQ(ms_->stats().replayed_transactions, 0u);
  for (std::uint64_t i = 0; i < 10; ++i) EXPECT_EQ(Tag(i), (i == 3 || i == 4) ? 2u : 1u) << i;
  // Mount rewrites the journal header (tail/sequence) only: home blocks are untouched.
  auto after = Image();
  for (std::uint64_t i = 0; i < 10; ++i)
    EXPECT_EQ(std::memcmp(img.data() + B(i) * kBs, after.data() + B(i) * kBs, kBs), 0);
}

TEST_F(MetaStoreTest, AbortRestoresBytesDirtyStateAndRunsUndoInReverse) {
  Fresh();
  CreateBlocks(3, 1);
  // Handle 1 changes block 0 and commits into the running transaction (not synced).
  ASSERT_TRUE(SetTags({0}, 2, false).ok());
  EXPECT_EQ(ms_->running_dirty_blocks(), 1u);
  std::vector<std::uint64_t> order;
  {
    auto t = ms_->Begin();
    ASSERT_TRUE(t.ok());
    auto p0 = t->Modify(B(0), LeafAt(B(0)));
    ASSERT_TRUE(p0.ok());
    FillPayload(*p0, kBs, B(0), 3);
    auto p1 = t->Modify(B(1), LeafAt(B(1)));
    ASSERT_TRUE(p1.ok());
    FillPayload(*p1, kBs, B(1), 3);
    auto p1b = t->Modify(B(1), LeafAt(B(1)));  // touching twice keeps the first pre-image
    ASSERT_TRUE(p1b.ok());
    FillPayload(*p1b, kBs, B(1), 4);
    auto pc = t->Create(B(50), format::BlockType::kBTreeLeaf, kTestOwner);
    ASSERT_TRUE(pc.ok());
    FillPayload(*pc, kBs, B(50), 3);
    auto cb = [](void* ctx, std::uint64_t a, std::uint64_t b) {
      static_cast<std::vector<std::uint64_t>*>(ctx)->push_back(a * 10 + b);
    };
    t->AddUndo(cb, &order, 1, 1);
    t->AddUndo(cb, &order, 2, 2);
    t->AddUndo(cb, &order, 3, 3);
    EXPECT_EQ(ms_->running_dirty_blocks(), 3u);
    t->Abort();
    EXPECT_FALSE(t->active());
  }
  EXPECT_EQ(order, (std::vector<std::uint64_t>{33, 22, 11}));
  EXPECT_EQ(ms_->running_dirty_blocks(), 1u);  // only handle 1's block
  EXPECT_EQ(Tag(0), 2u);
  EXPECT_EQ(Tag(1), 1u);
  {
    ReadView v(ms_);
    EXPECT_FALSE(v.Read(B(50), LeafAt(B(50))).ok()) << "an aborted Create is still visible";
  }
  // Destroying an uncommitted handle aborts it too.
  {
    auto t = ms_->Begin();
    ASSERT_TRUE(t.ok());
    auto p = t->Modify(B(2), LeafAt(B(2)));
    ASSERT_TRUE(p.ok());
    FillPayload(*p, kBs, B(2), 9);
  }
  EXPECT_EQ(Tag(2), 1u);
  EXPECT_EQ(ms_->running_dirty_blocks(), 1u);
  ASSERT_TRUE(ms_->Sync().ok());
  EXPECT_EQ(ms_->stats().committed_blocks, 3u + 1u);  // create(3) + block 0
  Remount();
  EXPECT_EQ(Tag(0), 2u);
  EXPECT_EQ(Tag(1), 1u);
  EXPECT_EQ(Tag(2), 1u);
  ReadView v(ms_);
  EXPECT_FALSE(v.Read(B(50), LeafAt(B(50))).ok());
}

TEST_F(MetaStoreTest, AbortOfHandleThatOnlyReadLeavesNoChange) {
  Fresh();
  CreateBlocks(1, 1);
  const auto commits = ms_->stats().commits;
  {
    auto t = ms_->Begin();
    ASSERT_TRUE(t.ok());
    auto r = t->Read(B(0), LeafAt(B(0)));
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE(t->Commit().ok());
  }
  ASSERT_TRUE(ms_->Sync().ok());
  EXPECT_EQ(ms_->stats().commits, commits) << "a read-only handle produced a journal commit";
}

TEST_F(MetaStoreTest, WrongTypeOwnerOrFreedBlockIsCorruption) {
  Fresh();
  CreateBlocks(2, 1);
  ReadView v(ms_);
  format::Expect wrong_type{format::BlockType::kBitmap, B(0), nullptr, true, kTestOwner};
  EXPECT_TRUE(v.Read(B(0), wrong_type).status().IsCorruption());
  format::Expect wrong_owner{format::BlockType::kBTreeLeaf, B(0), nullptr, true, kTestOwner + 1};
  EXPECT_TRUE(v.Read(B(0), wrong_owner).status().IsCorruption());
  EXPECT_TRUE(v.Read(vol_->sb.block_count, LeafAt(0)).status().IsCorruption());
  EXPECT_TRUE(v.Read(1, LeafAt(1)).status().IsCorruption());  // superblock mirror: not metadata
}

TEST_F(MetaStoreTest, ForgottenBlockCannotBeRead) {
  Fresh();
  CreateBlocks(2, 1);
  {
    auto t = ms_->Begin();
    ASSERT_TRUE(t.ok());
    auto p = t->Modify(B(1), LeafAt(B(1)));
    ASSERT_TRUE(p.ok());
    t->Forget(B(1));
    ASSERT_TRUE(t->Commit().ok());
  }
  ReadView v(ms_);
  EXPECT_TRUE(v.Read(B(1), LeafAt(B(1))).status().IsCorruption());
  EXPECT_TRUE(v.Read(B(0), LeafAt(B(0))).ok());
}

TEST_F(MetaStoreTest, TransactionLargerThanJournalIsNoSpaceAndAbortable) {
  VolumeOptions o;
  o.journal_blocks = 16;
  Fresh(o);
  const std::uint64_t max = ms_->max_txn_blocks();
  ASSERT_GT(max, 2u);
  ASSERT_LT(max + 1, 100u);
  CreateBlocks(1, 1);
  auto t = ms_->Begin();
  ASSERT_TRUE(t.ok());
  Status st;
  std::uint64_t made = 0;
  for (std::uint64_t i = 1; i <= max + 1; ++i) {
    auto p = t->Create(B(i), format::BlockType::kBTreeLeaf, kTestOwner);
    if (!p.ok()) {
      st = p.status();
      break;
    }
    ++made;
  }
  EXPECT_TRUE(st.IsNoSpace()) << Str(st);
  EXPECT_EQ(made, max);
  t->Abort();
  EXPECT_EQ(ms_->running_dirty_blocks(), 0u);
  EXPECT_TRUE(SetTags({0}, 2, true).ok());
  EXPECT_EQ(Tag(0), 2u);
}

TEST_F(MetaStoreTest, CommitThresholdAndTick) {
  VolumeOptions o;
  o.store.commit_threshold_blocks = 4;
  Fresh(o);
  CreateBlocks(8, 1);
  const auto d0 = ms_->durable_seq();
  ASSERT_TRUE(SetTags({0, 1, 2}, 2, false).ok());
  ASSERT_TRUE(SetTags({3}, 2, false).ok());
  EXPECT_EQ(ms_->durable_seq(), d0);
  // The next Begin sees 4 dirty blocks and commits them first.
  ASSERT_TRUE(SetTags({4}, 2, false).ok());
  EXPECT_EQ(ms_->durable_seq(), d0 + 1);
  EXPECT_EQ(ms_->running_dirty_blocks(), 1u);
  ASSERT_TRUE(ms_->Tick(3600ull * 1000000000ull).ok());
  EXPECT_EQ(ms_->running_dirty_blocks(), 1u);
  ASSERT_TRUE(ms_->Tick(0).ok());
  EXPECT_EQ(ms_->running_dirty_blocks(), 0u);
  EXPECT_EQ(ms_->durable_seq(), d0 + 2);
  Remount();
  for (std::uint64_t i = 0; i < 8; ++i) EXPECT_EQ(Tag(i), i <= 4 ? 2u : 1u) << i;
}

// 8 threads Begin/Modify/Commit/Sync concurrently: everything is durable and commits are shared.
TEST_F(MetaStoreTest, GroupCommitConcurrentSyncs) {
  vol_.reset();
  dev_ = std::make_unique<block::MemBlockDevice>(kBlocks, kBs);
  SlowFlushDevice slow(dev_.get(), 300);
  opt_ = VolumeOptions{};
  opt_.with_allocator = false;
  {
    auto v = TestVolume::MakeFresh(&slow, kBlocks, opt_);
    ASSERT_TRUE(v.ok()) << Str(v.status());
    vol_ = std::move(*v);
    ms_ = vol_->ms.get();
  }
  constexpr int kThreads = 8, kIters = 60;
  CreateBlocks(kThreads * 2, 0);
  const auto commits0 = ms_->stats().commits;
  std::atomic<int> failures{0};
  std::vector<std::thread> th;
  for (int t = 0; t < kThreads; ++t) {
    th.emplace_back([&, t] {
      for (int i = 1; i <= kIters; ++i) {
        auto w = ms_->Begin();
        if (!w.ok()) { ++failures; return; }
        for (int k = 0; k < 2; ++k) {
          std::uint64_t b = B(static_cast<std::uint64_t>(t * 2 + k));
          auto p = w->Modify(b, LeafAt(b));
          if (!p.ok()) { ++failures; return; }
          FillPayload(*p, kBs, b, static_cast<std::uint64_t>(i));
        }
        if (!w->Commit().ok()) { ++failures; return; }
        if (!ms_->Sync().ok()) { ++failures; return; }
        // Durable means: the journal's durable sequence covers this change.
        if (ms_->durable_seq() < w->seq()) { ++failures; return; }
      }
    });
  }
  for (auto& x : th) x.join();
  ASSERT_EQ(failures.load(), 0);
  const auto commits = ms_->stats().commits - commits0;
  std::printf("group commit: %d syncs -> %llu journal commits\n", kThreads * kIters,
              static_cast<unsigned long long>(commits));
  EXPECT_LT(commits, static_cast<std::uint64_t>(kThreads * kIters)) << "no commit was shared";
  EXPECT_GE(commits, static_cast<std::uint64_t>(kIters));
  ASSERT_TRUE(TryRemount(&slow).ok());
  for (int i = 0; i < kThreads * 2; ++i)
    EXPECT_EQ(Tag(static_cast<std::uint64_t>(i)), static_cast<std::uint64_t>(kIters)) << i;
  vol_.reset();
}

// Many commits through a tiny journal: checkpoints happen on their own, the log wraps, and a
// crash at any point between commits recovers the last synced state.
TEST_F(MetaStoreTest, JournalWrapsWithManyCommits) {
  VolumeOptions o;
  o.journal_blocks = 16;  // 14 log blocks
  Fresh(o);
  constexpr std::uint64_t kN = 20;
  CreateBlocks(kN, 0);
  std::vector<std::uint64_t> model(kN, 0);
  std::uint64_t checkpoints = 0;
  Random rnd(5);
  for (std::uint64_t txn = 1; txn <= 400; ++txn) {
    std::vector<std::uint64_t> ids;
    for (int k = 0, n = 1 + static_cast<int>(rnd.Uniform(3)); k < n; ++k) {
      std::uint64_t id = rnd.Uniform(kN);
      bool dup = false;
      for (auto x : ids) dup |= x == id;
      if (!dup) ids.push_back(id);
    }
    ASSERT_TRUE(SetTags(ids, txn, true).ok()) << txn;
    for (auto id : ids) model[id] = txn;
    if (txn % 97 == 0) {
      checkpoints += ms_->stats().checkpoints;
      Remount();
      for (std::uint64_t i = 0; i < kN; ++i) ASSERT_EQ(Tag(i), model[i]) << "txn " << txn;
    }
  }
  checkpoints += ms_->stats().checkpoints;
  EXPECT_GT(checkpoints, 20u);
  Remount();
  for (std::uint64_t i = 0; i < kN; ++i) EXPECT_EQ(Tag(i), model[i]) << i;
}

// A tiny cache: blocks only in the checkpoint map (committed, not yet home) and blocks on disk
// are both read back correctly after eviction.
TEST_F(MetaStoreTest, TinyCacheEvictionStillReturnsCorrectData) {
  VolumeOptions o;
  o.store.cache_blocks = 8;
  o.journal_blocks = 512;  // no checkpoint while creating: the blocks stay journal-only
  Fresh(o);
  constexpr std::uint64_t kN = 64;
  CreateBlocks(kN, 1);
  for (std::uint64_t i = 0; i < kN; ++i) EXPECT_EQ(Home(i), ~0ull);  // nothing home yet
  const auto misses0 = ms_->stats().cache_misses;
  for (std::uint64_t i = 0; i < kN; ++i) EXPECT_EQ(Tag(i), 1u) << i;
  EXPECT_GT(ms_->stats().cache_misses, misses0 + kN / 2) << "the cache did not evict";
  Random rnd(9);
  std::vector<std::uint64_t> model(kN, 1);
  for (std::uint64_t txn = 2; txn < 40; ++txn) {
    std::vector<std::uint64_t> ids{rnd.Uniform(kN / 2), kN / 2 + rnd.Uniform(kN / 2)};
    ASSERT_TRUE(SetTags(ids, txn, txn % 3 == 0).ok());
    for (auto id : ids) model[id] = txn;
    for (std::uint64_t i = 0; i < kN; i += 7) ASSERT_EQ(Tag(i), model[i]) << i;
  }
  ASSERT_TRUE(ms_->SyncAndCheckpoint().ok());
  for (std::uint64_t i = 0; i < kN; ++i) {
    EXPECT_EQ(Home(i), model[i]) << i;
    EXPECT_EQ(Tag(i), model[i]) << i;
  }
}

TEST_F(MetaStoreTest, CorruptHomeBlockIsCorruptionNeverData) {
  Fresh();
  CreateBlocks(4, 1);
  ASSERT_TRUE(ms_->SyncAndCheckpoint().ok());
  Remount();  // empty cache
  // Payload byte, header byte, checksum byte.
  dev_->raw()[B(0) * kBs + 3000] ^= 0x04;
  dev_->raw()[B(1) * kBs + 20] ^= 0x01;
  dev_->raw()[B(2) * kBs + 9] ^= 0x80;
  for (std::uint64_t i = 0; i < 3; ++i) {
    auto r = ReadTag(ms_, B(i));
    EXPECT_TRUE(r.status().IsCorruption()) << i << ": " << Str(r.status());
  }
  EXPECT_EQ(Tag(3), 1u);
  // A misdirected write: block 3's (valid, sealed) content lands at block 0's home.
  std::memcpy(dev_->raw() + B(0) * kBs, dev_->raw() + B(3) * kBs, kBs);
  Remount();
  EXPECT_TRUE(ReadTag(ms_, B(0)).status().IsCorruption());
  // A block of an earlier mkfs (same place, other uuid, valid checksum) is rejected too.
  std::uint8_t* b3 = dev_->raw() + B(3) * kBs;
  format::MetaHeader h = format::DecodeMetaHeader(b3);
  h.uuid.bytes[5] ^= 0xff;
  format::EncodeMetaHeader(h, b3);
  format::SealMetaBlock(b3, kBs);
  Remount();
  EXPECT_TRUE(ReadTag(ms_, B(3)).status().IsCorruption());
}

TEST_F(MetaStoreTest, LostVolumeRootWriteDetectedAtMount) {
  Fresh();
  const std::uint64_t root = vol_->sb.root_block;
  auto old_root = Image();
  {
    auto t = ms_->Begin();
    ASSERT_TRUE(t.ok());
    format::Expect ex{format::BlockType::kVolumeRoot, root, nullptr};
    auto p = t->Modify(root, ex);
    ASSERT_TRUE(p.ok()) << Str(p.status());
    auto vr = format::VolumeRoot::DecodePayload(*p, kBs);
    ASSERT_TRUE(vr.ok());
    vr->counters[format::kCounterNextInode] = 1234;
    vr->EncodePayload(*p, kBs);
    ASSERT_TRUE(t->Commit().ok());
  }
  ASSERT_TRUE(ms_->SyncAndCheckpoint().ok());
  Remount();  // fine
  // The root's home write is lost: the old (valid, sealed) root is back.
  std::memcpy(dev_->raw() + root * kBs, old_root.data() + root * kBs, kBs);
  Status st = TryRemount();
  EXPECT_TRUE(st.IsCorruption()) << Str(st);
}

// EIO on the Nth write or flush during a commit, for every N: Sync fails with IOError, the store
// is errored and refuses new transactions, and a remount of the device finds everything that
// was durable before the fault, with the failed transaction all-or-nothing.
TEST_F(MetaStoreTest, WriteAndFlushErrorsDuringCommit) {
  for (block::FaultOp op : {block::FaultOp::kWrite, block::FaultOp::kFlush}) {
    for (block::FaultMode mode : {block::FaultMode::kTransient, block::FaultMode::kPersistent}) {
      bool clean = false;
      for (std::uint64_t n = 1; n < 64 && !clean; ++n) {
        SCOPED_TRACE(::testing::Message() << "op " << int(op) << " mode " << int(mode) << " n " << n);
        VolumeOptions o;
        o.journal_blocks = 16;
        Fresh(o);
        CreateBlocks(6, 1);
        ASSERT_TRUE(SetTags({0, 1, 2}, 2, true).ok());  // durable, journal only
        block::FaultyBlockDevice faulty(dev_.get());
        ASSERT_TRUE(TryRemount(&faulty).ok());
        faulty.FailNth(op, n, mode);
        // Several commits, enough to force a checkpoint in the 14-block log.
        Status st;
        std::uint64_t synced = 2, attempted = 2;
        for (std::uint64_t tag = 3; tag < 9 && st.ok(); ++tag) {
          attempted = tag;
          st = SetTags({tag % 6, (tag + 1) % 6, (tag + 3) % 6}, tag, true);
          if (st.ok()) synced = tag;
        }
        if (faulty.faults_injected() == 0) {
          EXPECT_TRUE(st.ok()) << Str(st);
          clean = true;
          vol_.reset();
          continue;
        }
        if (!st.ok()) {
          EXPECT_TRUE(st.IsIOError()) << Str(st);
          EXPECT_TRUE(ms_->errored());
          EXPECT_TRUE(ms_->error().IsIOError());
          auto b = ms_->Begin();
          EXPECT_EQ(b.status().code(), Status::ReadOnly().code()) << Str(b.status());
          EXPECT_FALSE(ms_->Sync().ok()) << "a sync after a write error reported success";
          EXPECT_FALSE(ms_->SyncAndCheckpoint().ok());
        } else {
          // A transient fault swallowed by a retry would be a bug: every fault must surface.
          ADD_FAILURE() << "fault injected but every Sync succeeded";
        }
        // Remount the raw device (all completed writes durable).
        ASSERT_TRUE(TryRemount().ok());
        // Model: tags after `synced` must all be there; the next transaction may or may not be.
        std::vector<std::uint64_t> want(6, 1), next;
        for (std::uint64_t i : {0, 1, 2}) want[i] = 2;
        for (std::uint64_t tag = 3; tag <= synced; ++tag)
          for (std::uint64_t i : {tag % 6, (tag + 1) % 6, (tag + 3) % 6}) want[i] = tag;
        next = want;
        if (attempted > synced)
          for (std::uint64_t i : {attempted % 6, (attempted + 1) % 6, (attempted + 3) % 6})
            next[i] = attempted;
        std::vector<std::uint64_t> got(6);
        for (std::uint64_t i = 0; i < 6; ++i) got[i] = Tag(i);
        EXPECT_TRUE(got == want || got == next)
            << "after fault: block 0 = " << got[0] << " (synced through " << synced << ")";
        // And the remounted store works.
        EXPECT_TRUE(SetTags({5}, 100, true).ok());
      }
      EXPECT_TRUE(clean) << "fault loop never ran clean";
    }
  }
}

TEST_F(MetaStoreTest, CheckpointWriteErrorMakesStoreErrored) {
  Fresh();
  CreateBlocks(8, 1);
  ASSERT_TRUE(SetTags({1, 2}, 2, true).ok());
  block::FaultyBlockDevice faulty(dev_.get());
  ASSERT_TRUE(TryRemount(&faulty).ok());
  ASSERT_TRUE(SetTags({3, 4}, 3, true).ok());
  faulty.FailNth(block::FaultOp::kWrite, 2, block::FaultMode::kTransient);
  Status st = ms_->SyncAndCheckpoint();
  EXPECT_TRUE(st.IsIOError()) << Str(st);
  EXPECT_TRUE(ms_->errored());
  EXPECT_EQ(ms_->Begin().status().code(), Status::ReadOnly().code());
  ASSERT_TRUE(TryRemount().ok());
  for (std::uint64_t i = 0; i < 8; ++i)
    EXPECT_EQ(Tag(i), i == 1 || i == 2 ? 2u : i == 3 || i == 4 ? 3u : 1u) << i;
}

TEST_F(MetaStoreTest, ReadErrorIsIOErrorAndBitRotIsCorruption) {
  Fresh();
  CreateBlocks(3, 1);
  ASSERT_TRUE(ms_->SyncAndCheckpoint().ok());
  block::FaultyBlockDevice faulty(dev_.get());
  ASSERT_TRUE(TryRemount(&faulty).ok());
  faulty.FailNth(block::FaultOp::kRead, 1, block::FaultMode::kTransient);
  auto r = ReadTag(ms_, B(0));
  EXPECT_TRUE(r.status().IsIOError()) << Str(r.status());
  EXPECT_EQ(Tag(0), 1u);  // the failed read was not cached; a retry works
  faulty.AddBitRot(B(1), 777, 0x20, block::FaultMode::kTransient);
  r = ReadTag(ms_, B(1));
  EXPECT_TRUE(r.status().IsCorruption()) << Str(r.status());
  EXPECT_EQ(Tag(1), 1u);
  // EIO while mounting (reading the journal header) fails the mount with IOError.
  faulty.FailNth(block::FaultOp::kRead, 1, block::FaultMode::kPersistent);
  Status st = TryRemount(&faulty);
  EXPECT_TRUE(st.IsIOError()) << Str(st);
  vol_.reset();
}

TEST_F(MetaStoreTest, ReadOnlyMountReplaysIntoMemoryWithoutWriting) {
  Fresh();
  CreateBlocks(4, 1);
  ASSERT_TRUE(ms_->SyncAndCheckpoint().ok());
  ASSERT_TRUE(SetTags({0, 1}, 2, true).ok());   // journal only
  ASSERT_TRUE(SetTags({1, 2}, 3, true).ok());
  const auto img = Image();
  VolumeOptions ro;
  ro.store.read_only = true;
  ASSERT_TRUE(TryRemount(nullptr, &ro).ok());
  EXPECT_TRUE(ms_->read_only());
  EXPECT_EQ(ms_->stats().replayed_transactions, 2u);
  EXPECT_EQ(Tag(0), 2u);
  EXPECT_EQ(Tag(1), 3u);
  EXPECT_EQ(Tag(2), 3u);
  EXPECT_EQ(Tag(3), 1u);
  EXPECT_EQ(ms_->Begin().status().code(), Status::ReadOnly().code());
  EXPECT_TRUE(Image() == img) << "a read-only mount wrote to the device";
  // skip_replay: the journal is left alone and the home copies are what is seen.
  VolumeOptions skip;
  skip.store.read_only = true;
  skip.store.skip_replay = true;
  ASSERT_TRUE(TryRemount(nullptr, &skip).ok());
  EXPECT_EQ(ms_->stats().replayed_transactions, 0u);
  EXPECT_EQ(Tag(0), 1u);
  EXPECT_EQ(Tag(1), 1u);
  EXPECT_TRUE(Image() == img);
  // skip_replay on a writable mount would drop committed transactions: refused.
  VolumeOptions bad;
  bad.store.skip_replay = true;
  EXPECT_EQ(TryRemount(nullptr, &bad).code(), Status::InvalidArgument("").code());
  EXPECT_TRUE(Image() == img);
  // A normal mount still replays both.
  Remount();
  EXPECT_EQ(ms_->stats().replayed_transactions, 2u);
  EXPECT_EQ(Tag(1), 3u);
}

class CountingListener final : public CheckpointListener {
 public:
  void OnCheckpointed(std::uint64_t seq) noexcept override { seqs.push_back(seq); }
  std::vector<std::uint64_t> seqs;
};

TEST_F(MetaStoreTest, CheckpointListenerSeesCheckpointedSequence) {
  Fresh();
  CountingListener l;
  ms_->AddCheckpointListener(&l);
  CreateBlocks(2, 1);
  ASSERT_TRUE(SetTags({0}, 2, true).ok());
  const auto durable = ms_->durable_seq();
  ASSERT_TRUE(ms_->SyncAndCheckpoint().ok());
  ASSERT_FALSE(l.seqs.empty());
  EXPECT_GE(l.seqs.back(), durable);
  EXPECT_LT(l.seqs.back(), ms_->stats().running_seq);
}

}  // namespace
}  // namespace permfs::journal
