// Allocator unit tests: accounting, deferred reuse of freed blocks, double free/allocation
// detection, abort, reservations, locality, exhaustion, multi-shard volumes, concurrency and
// remount consistency.

#include "alloc/allocator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "block/mem_block_device.h"
#include "format/meta_block.h"
#include "testutil/volume_fixture.h"
#include "util/coding.h"
#include "util/random.h"

namespace permfs::alloc {

// Found by argument-dependent lookup, so they live in the types' namespace.
bool operator==(const AllocStats& a, const AllocStats& b) {
  return a.total_blocks == b.total_blocks && a.free_blocks == b.free_blocks &&
         a.available_blocks == b.available_blocks && a.pending_free_blocks == b.pending_free_blocks;
}
std::ostream& operator<<(std::ostream& os, const AllocStats& s) {
  return os << "{total " << s.total_blocks << " free " << s.free_blocks << " avail "
            << s.available_blocks << " pending " << s.pending_free_blocks << "}";
}
std::ostream& operator<<(std::ostream& os, const Extent& e) {
  return os << "[" << e.start << "+" << e.count << "]";
}

namespace {

using testutil::Str;
using testutil::TestVolume;

constexpr std::uint32_t kBs = 4096;


class AllocatorTest : public ::testing::Test {
 protected:
  void Fresh(std::uint64_t blocks, std::uint64_t journal_blocks = 0) {
    vol_.reset();
    dev_ = std::make_unique<block::MemBlockDevice>(blocks, kBs);
    testutil::VolumeOptions o;
    o.journal_blocks = journal_blocks;
    auto v = TestVolume::MakeFresh(dev_.get(), blocks, o);
    ASSERT_TRUE(v.ok()) << Str(v.status());
    vol_ = std::move(*v);
    a_ = vol_->alloc.get();
    ms_ = vol_->ms.get();
  }
  Status TryRemount() {
    vol_.reset();
    a_ = nullptr;
    ms_ = nullptr;
    auto v = TestVolume::Remount(dev_.get());
    if (!v.ok()) return v.status();
    vol_ = std::move(*v);
    a_ = vol_->alloc.get();
    ms_ = vol_->ms.get();
    return Status();
  }
  void Remount() { ASSERT_TRUE(TryRemount().ok()); }

  const format::Superblock& sb() const { return vol_->sb; }
  // Expected free blocks of a fresh volume: shard blocks minus bitmaps minus the mirror.
  std::uint64_t FreshFree() const {
    std::uint64_t total = 0;
    for (std::uint32_t s = 0; s < sb().shard_count; ++s) total += sb().shard_length(s);
    return total - std::uint64_t{sb().shard_count} * sb().bitmap_blocks_per_shard - 1;
  }

  Result<Extent> AllocOne(std::uint64_t want, std::uint64_t min, std::uint64_t hint) {
    auto t = ms_->Begin();
    t->set_use_reserve(true);  // allocator mechanics, not the reserve
    if (!t.ok()) return t.status();
    auto e = a_->Allocate(*t, want, min, hint);
    if (!e.ok()) return e.status();
    PERMFS_RETURN_IF_ERROR(t->Commit());
    PERMFS_RETURN_IF_ERROR(ms_->Sync());
    return e;
  }
  Status FreeOne(const Extent& e) {
    auto t = ms_->Begin();
    t->set_use_reserve(true);  // allocator mechanics, not the reserve
    if (!t.ok()) return t.status();
    Status st = a_->Free(*t, e);
    if (!st.ok()) return st;  // the handle aborts when destroyed
    PERMFS_RETURN_IF_ERROR(t->Commit());
    return ms_->Sync();
  }
  std::vector<std::uint8_t> BitmapBytes(std::uint32_t shard) {
    std::uint64_t b = a_->BitmapBlockOf(shard, 0);
    journal::ReadView v(ms_);
    auto r = v.Read(b, format::Expect{format::BlockType::kBitmap, b, nullptr, true, shard});
    EXPECT_TRUE(r.ok()) << Str(r.status());
    if (!r.ok()) return {};
    // Skip the header's generation (it changes with every transaction that touches the block).
    return std::vector<std::uint8_t>(*r + format::kMetaHeaderSize, *r + kBs);
  }

  std::unique_ptr<block::MemBlockDevice> dev_;
  std::unique_ptr<TestVolume> vol_;
  Allocator* a_ = nullptr;
  journal::MetaStore* ms_ = nullptr;
};

TEST_F(AllocatorTest, FormatLoadRoundTrip) {
  Fresh(4096);
  ASSERT_EQ(sb().shard_count, 1u);
  AllocStats s = a_->stats();
  EXPECT_EQ(s.total_blocks, sb().shard_length(0));
  EXPECT_EQ(s.free_blocks, FreshFree());
  EXPECT_EQ(s.available_blocks, FreshFree());
  EXPECT_EQ(s.pending_free_blocks, 0u);
  EXPECT_FALSE(a_->HasPendingFrees());
  EXPECT_FALSE(a_->IsDataBlock(sb().shard_start));  // the bitmap
  EXPECT_TRUE(a_->IsDataBlock(sb().shard_start + 1));
  EXPECT_FALSE(a_->IsDataBlock(sb().mirror_block()));
  EXPECT_FALSE(a_->IsDataBlock(sb().journal_start));
  Remount();
  EXPECT_EQ(a_->stats(), s);
  ASSERT_TRUE(ms_->SyncAndCheckpoint().ok());
  Remount();
  EXPECT_EQ(a_->stats(), s);
}

TEST_F(AllocatorTest, AllocateFreeAccountingAndDeferredReuse) {
  Fresh(4096, 512);
  const std::uint64_t F = FreshFree();
  const std::uint64_t hint = sb().shard_start + 200;
  auto e = AllocOne(10, 10, hint);
  ASSERT_TRUE(e.ok()) << Str(e.status());
  EXPECT_EQ(*e, (Extent{hint, 10}));
  EXPECT_EQ(a_->stats(), (AllocStats{a_->stats().total_blocks, F - 10, F - 10, 0}));
  ASSERT_TRUE(FreeOne(*e).ok());
  EXPECT_EQ(a_->stats(), (AllocStats{a_->stats().total_blocks, F, F - 10, 10}));
  EXPECT_TRUE(a_->HasPendingFrees());
  // Not reusable before a checkpoint: a reservation at the hint skips them.
  auto r = a_->Reserve(10, 1, hint, Draw::kPrivileged);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->start >= e->end() || r->end() <= e->start) << r->start;
  a_->Unreserve(*r);
  // A plain Sync (no checkpoint in a 510-block log) does not release them either.
  ASSERT_TRUE(ms_->Sync().ok());
  EXPECT_EQ(a_->stats().pending_free_blocks, 10u);
  ASSERT_TRUE(ms_->SyncAndCheckpoint().ok());
  EXPECT_EQ(a_->stats(), (AllocStats{a_->stats().total_blocks, F, F, 0}));
  EXPECT_FALSE(a_->HasPendingFrees());
  auto again = AllocOne(10, 10, hint);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *e) << "the freed blocks were not reused after the checkpoint";
}

// Without a hint, next-fit goes back to space a checkpoint freed before it takes space never
// written (cheaper to flush on a sparse image or thin-provisioned storage).
TEST_F(AllocatorTest, CheckpointedSpaceIsReusedBeforeFreshSpace) {
  Fresh(4096, 512);
  ASSERT_EQ(sb().shard_count, 1u) << "the test reasons about one shard's cursor";
  std::vector<Extent> got;
  for (int i = 0; i < 4; ++i) {
    auto e = AllocOne(16, 16, 0);
    ASSERT_TRUE(e.ok()) << Str(e.status());
    got.push_back(*e);
  }
  ASSERT_TRUE(FreeOne(got[1]).ok());
  // Pending: the next reservation takes fresh space after the last one.
  auto r = a_->Reserve(16, 16, 0, Draw::kPrivileged);
  ASSERT_TRUE(r.ok());
  EXPECT_GE(r->start, got[3].end());
  a_->Unreserve(*r);
  ASSERT_TRUE(ms_->SyncAndCheckpoint().ok());
  auto again = AllocOne(16, 16, 0);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, got[1]);
  // Then next-fit goes on past the reused hole, not back over it.
  auto next = AllocOne(16, 16, 0);
  ASSERT_TRUE(next.ok());
  EXPECT_GE(next->start, got[3].end());
}

// A checkpoint taken at the start of a commit (journal more than half full) covers only the
// transactions before the running one: a free in the running transaction stays pending.
TEST_F(AllocatorTest, FreeInRunningTransactionSurvivesCheckpoint) {
  Fresh(4096, 64);  // 62 log blocks: a commit checkpoints first once more than 31 are used
  auto e = AllocOne(4, 4, sb().shard_start + 50);
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(ms_->SyncAndCheckpoint().ok());
  while (ms_->stats().journal_used <= ms_->stats().journal_size / 2)
    ASSERT_TRUE(AllocOne(1, 1, 0).ok());
  const auto cps = ms_->stats().checkpoints;
  ASSERT_TRUE(FreeOne(*e).ok());
  EXPECT_EQ(ms_->stats().checkpoints, cps + 1) << "the commit did not checkpoint first";
  EXPECT_EQ(a_->stats().pending_free_blocks, 4u)
      << "a free was released by a checkpoint that did not include its transaction";
  auto r = a_->Reserve(4, 1, e->start, Draw::kPrivileged);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->start >= e->end() || r->end() <= e->start);
  a_->Unreserve(*r);
  ASSERT_TRUE(ms_->SyncAndCheckpoint().ok());
  EXPECT_EQ(a_->stats().pending_free_blocks, 0u);
}

TEST_F(AllocatorTest, DoubleFreeAndDoubleAllocationAreCorruption) {
  Fresh(4096);
  auto e = AllocOne(8, 8, sb().shard_start + 100);
  ASSERT_TRUE(e.ok());
  const AllocStats before = a_->stats();
  // Freeing never-allocated blocks.
  EXPECT_TRUE(FreeOne(Extent{sb().shard_start + 500, 3}).IsCorruption());
  // Freeing an extent that is half allocated.
  EXPECT_TRUE(FreeOne(Extent{e->start + 4, 8}).IsCorruption());
  EXPECT_EQ(a_->stats(), before);
  ASSERT_TRUE(FreeOne(*e).ok());
  EXPECT_TRUE(FreeOne(*e).IsCorruption()) << "double free not detected";
  // Recording an extent that is already allocated on disk.
  auto f = AllocOne(2, 2, sb().shard_start + 300);
  ASSERT_TRUE(f.ok());
  const AllocStats mid = a_->stats();
  {
    auto t = ms_->Begin();
    ASSERT_TRUE(t.ok());
    t->set_use_reserve(true);  // allocator mechanics, not the reserve
    EXPECT_TRUE(a_->CommitReserved(*t, *f).IsCorruption()) << "double allocation not detected";
    t->Abort();
  }
  EXPECT_EQ(a_->stats(), mid);
  // Outside the data area.
  {
    auto t = ms_->Begin();
    ASSERT_TRUE(t.ok());
    t->set_use_reserve(true);  // allocator mechanics, not the reserve
    EXPECT_TRUE(a_->Free(*t, Extent{sb().shard_start, 1}).IsCorruption());  // the bitmap
    EXPECT_TRUE(a_->Free(*t, Extent{sb().mirror_block(), 1}).IsCorruption());
    EXPECT_EQ(a_->CommitReserved(*t, Extent{sb().journal_start, 1}).code(),
              Status::InvalidArgument("").code());
  }
  ASSERT_TRUE(ms_->SyncAndCheckpoint().ok());
  Remount();
  EXPECT_EQ(a_->stats().free_blocks, mid.free_blocks);
}

// Double free inside one extent that spans a used and a free block must not leave a
// half-updated bitmap when the caller (wrongly) commits after the error.
TEST_F(AllocatorTest, FailedFreeLeavesBitmapConsistent) {
  Fresh(4096);
  auto e = AllocOne(4, 4, sb().shard_start + 100);
  ASSERT_TRUE(e.ok());
  {
    auto t = ms_->Begin();
    ASSERT_TRUE(t.ok());
    t->set_use_reserve(true);  // allocator mechanics, not the reserve
    EXPECT_TRUE(a_->Free(*t, Extent{e->start, 6}).IsCorruption());
    ASSERT_TRUE(t->Commit().ok());
  }
  ASSERT_TRUE(ms_->SyncAndCheckpoint().ok());
  Status st = TryRemount();
  EXPECT_TRUE(st.ok()) << "bitmap left inconsistent by a refused free: " << Str(st);
}

TEST_F(AllocatorTest, AbortRestoresMemoryAndDisk) {
  Fresh(4096);
  auto keep = AllocOne(5, 5, sb().shard_start + 10);
  ASSERT_TRUE(keep.ok());
  const AllocStats before = a_->stats();
  const auto bits_before = BitmapBytes(0);
  {
    auto t = ms_->Begin();
    ASSERT_TRUE(t.ok());
    t->set_use_reserve(true);  // allocator mechanics, not the reserve
    auto x = a_->Allocate(*t, 7, 7, sb().shard_start + 400);
    ASSERT_TRUE(x.ok());
    auto y = a_->Allocate(*t, 3, 1, 0);
    ASSERT_TRUE(y.ok());
    ASSERT_TRUE(a_->Free(*t, *keep).ok());
    ASSERT_TRUE(a_->Free(*t, *x).ok());  // allocate + free in one handle
    EXPECT_NE(a_->stats(), before);
    t->Abort();
  }
  EXPECT_EQ(a_->stats(), before);
  EXPECT_EQ(BitmapBytes(0), bits_before);
  EXPECT_FALSE(a_->HasPendingFrees());
  ASSERT_TRUE(ms_->SyncAndCheckpoint().ok());
  Remount();
  EXPECT_EQ(a_->stats(), before);
  EXPECT_EQ(BitmapBytes(0), bits_before);
}

TEST_F(AllocatorTest, ReserveUnreserveCommitReserved) {
  Fresh(4096);
  const AllocStats s0 = a_->stats();
  EXPECT_EQ(a_->Reserve(0, 0, 0, Draw::kPrivileged).status().code(), Status::InvalidArgument("").code());
  EXPECT_EQ(a_->Reserve(4, 5, 0, Draw::kPrivileged).status().code(), Status::InvalidArgument("").code());
  auto r = a_->Reserve(16, 16, sb().shard_start + 64, Draw::kPrivileged);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->count, 16u);
  EXPECT_EQ(a_->stats().available_blocks, s0.available_blocks - 16);
  EXPECT_EQ(a_->stats().free_blocks, s0.free_blocks);
  a_->Unreserve(*r);
  EXPECT_EQ(a_->stats(), s0);
  r = a_->Reserve(16, 16, sb().shard_start + 64, Draw::kPrivileged);
  ASSERT_TRUE(r.ok());
  // Commit the reservation, then abort: the reservation stays with the caller.
  {
    auto t = ms_->Begin();
    ASSERT_TRUE(t.ok());
    t->set_use_reserve(true);  // allocator mechanics, not the reserve
    ASSERT_TRUE(a_->CommitReserved(*t, *r).ok());
    EXPECT_EQ(a_->stats().free_blocks, s0.free_blocks - 16);
    t->Abort();
  }
  EXPECT_EQ(a_->stats().free_blocks, s0.free_blocks);
  EXPECT_EQ(a_->stats().available_blocks, s0.available_blocks - 16);
  {
    auto t = ms_->Begin();
    ASSERT_TRUE(t.ok());
    t->set_use_reserve(true);  // allocator mechanics, not the reserve
    ASSERT_TRUE(a_->CommitReserved(*t, *r).ok());
    ASSERT_TRUE(t->Commit().ok());
  }
  ASSERT_TRUE(ms_->Sync().ok());
  EXPECT_EQ(a_->stats().free_blocks, s0.free_blocks - 16);
  EXPECT_EQ(a_->stats().available_blocks, s0.available_blocks - 16);
  Remount();
  EXPECT_EQ(a_->stats().free_blocks, s0.free_blocks - 16);
  EXPECT_EQ(a_->stats().available_blocks, s0.free_blocks - 16);
}

TEST_F(AllocatorTest, LocalityAndContiguity) {
  Fresh(100000);
  ASSERT_GE(sb().shard_count, 3u);
  for (std::uint32_t s = 0; s < sb().shard_count; ++s) {
    const std::uint64_t h = sb().shard_first_block(s) + 777;
    auto e = AllocOne(1, 1, h);
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->start, h) << "shard " << s;
    // The next allocation hinted at the end of the previous one continues it.
    auto f = AllocOne(100, 100, e->end());
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(f->start, e->end());
    // A hint on a used block finds the nearest free run after it.
    auto g = AllocOne(1, 1, h);
    ASSERT_TRUE(g.ok());
    EXPECT_EQ(g->start, f->end());
  }
  // A large contiguous extent.
  auto big = a_->Reserve(5000, 5000, 0, Draw::kPrivileged);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->count, 5000u);
  EXPECT_EQ(big->start / sb().shard_blocks, (big->end() - 1) / sb().shard_blocks);
  a_->Unreserve(*big);
  // Cross-shard extents are refused.
  auto t = ms_->Begin();
  ASSERT_TRUE(t.ok());
  t->set_use_reserve(true);  // allocator mechanics, not the reserve
  Extent cross{sb().shard_first_block(1) - 5, 10};
  EXPECT_EQ(a_->CommitReserved(*t, cross).code(), Status::InvalidArgument("").code());
}

TEST_F(AllocatorTest, FragmentedSpaceGivesBestRunAtLeastMin) {
  Fresh(4096);
  // Reserve everything, then release runs of 3 and one run of 9.
  std::vector<Extent> all;
  for (;;) {
    auto r = a_->Reserve(1024, 1, 0, Draw::kPrivileged);
    if (!r.ok()) {
      EXPECT_TRUE(r.status().IsNoSpace());
      break;
    }
    all.push_back(*r);
  }
  EXPECT_EQ(a_->stats().available_blocks, 0u);
  const std::uint64_t base = sb().shard_start + 1000;
  auto release = [&](std::uint64_t start, std::uint64_t n) {
    // Split the covering reservation so Unreserve gets exactly [start, start+n).
    a_->Unreserve(Extent{start, n});
  };
  for (int i = 0; i < 10; ++i) release(base + i * 10, 3);
  release(base + 200, 9);
  auto r = a_->Reserve(20, 5, base, Draw::kPrivileged);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (Extent{base + 200, 9}));
  EXPECT_TRUE(a_->Reserve(4, 4, base, Draw::kPrivileged).status().IsNoSpace());
  auto s = a_->Reserve(4, 2, base, Draw::kPrivileged);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->count, 3u);
}

TEST_F(AllocatorTest, ExhaustionAndRecoveryAfterCheckpoint) {
  Fresh(1024, 64);
  const std::uint64_t F = FreshFree();
  std::vector<Extent> got;
  std::uint64_t total = 0;
  for (;;) {
    auto e = AllocOne(64, 1, 0);
    if (!e.ok()) {
      EXPECT_TRUE(e.status().IsNoSpace()) << Str(e.status());
      break;
    }
    got.push_back(*e);
    total += e->count;
  }
  EXPECT_EQ(total, F);
  EXPECT_EQ(a_->stats().free_blocks, 0u);
  EXPECT_EQ(a_->stats().available_blocks, 0u);
  // No two extents overlap.
  std::sort(got.begin(), got.end(), [](const Extent& x, const Extent& y) { return x.start < y.start; });
  for (std::size_t i = 1; i < got.size(); ++i) EXPECT_LE(got[i - 1].end(), got[i].start);
  ASSERT_TRUE(ms_->SyncAndCheckpoint().ok());  // no automatic checkpoint during the frees
  ASSERT_TRUE(FreeOne(got[3]).ok());
  ASSERT_TRUE(FreeOne(got[5]).ok());
  EXPECT_TRUE(AllocOne(1, 1, 0).status().IsNoSpace()) << "freed blocks reused before a checkpoint";
  EXPECT_TRUE(a_->HasPendingFrees());
  ASSERT_TRUE(ms_->SyncAndCheckpoint().ok());
  auto e = AllocOne(got[3].count, 1, 0);
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(*e == got[3] || *e == got[5]);
  Remount();
  EXPECT_EQ(a_->stats().free_blocks, got[5].count + got[3].count - e->count);
}

TEST_F(AllocatorTest, MultiShardVolume) {
  Fresh(100000);
  ASSERT_GE(sb().shard_count, 3u);
  const AllocStats s0 = a_->stats();
  EXPECT_EQ(s0.free_blocks, FreshFree());
  // Unhinted reservations spread over shards.
  std::set<std::uint64_t> shards;
  std::vector<Extent> rs;
  for (int i = 0; i < 8; ++i) {
    auto r = a_->Reserve(10, 10, 0, Draw::kPrivileged);
    ASSERT_TRUE(r.ok());
    shards.insert((r->start - sb().shard_start) / sb().shard_blocks);
    rs.push_back(*r);
  }
  EXPECT_GE(shards.size(), 3u);
  for (auto& r : rs) a_->Unreserve(r);
  // Fill shard 0 completely; a hinted allocation there spills to another shard.
  const std::uint64_t len0 = sb().shard_length(0) - sb().bitmap_blocks_per_shard;
  auto r0 = a_->Reserve(len0, len0, sb().shard_first_block(0), Draw::kPrivileged);
  ASSERT_TRUE(r0.ok());
  EXPECT_EQ(r0->start, sb().shard_first_block(0) + sb().bitmap_blocks_per_shard);
  auto spill = a_->Reserve(5, 5, sb().shard_first_block(0) + 10, Draw::kPrivileged);
  ASSERT_TRUE(spill.ok());
  EXPECT_NE((spill->start - sb().shard_start) / sb().shard_blocks, 0u);
  a_->Unreserve(*spill);
  a_->Unreserve(*r0);
  EXPECT_EQ(a_->stats(), s0);
  // The last (short) shard: allocating its last block works; the mirror is never handed out.
  const std::uint32_t last = sb().shard_count - 1;
  std::uint64_t last_free = 0;
  for (;;) {
    auto r = a_->Reserve(1000, 1, sb().shard_first_block(last), Draw::kPrivileged);
    ASSERT_TRUE(r.ok());
    if ((r->start - sb().shard_start) / sb().shard_blocks != last) {
      a_->Unreserve(*r);
      break;
    }
    EXPECT_LT(r->end(), sb().mirror_block() + 1);
    EXPECT_FALSE(r->start <= sb().mirror_block() && sb().mirror_block() < r->end());
    last_free += r->count;
  }
  EXPECT_EQ(last_free, sb().shard_length(last) - sb().bitmap_blocks_per_shard - 1);
}

TEST_F(AllocatorTest, ConcurrentReserveUnreserveNeverDoubleHandsOut) {
  Fresh(100000);
  const AllocStats s0 = a_->stats();
  std::vector<std::atomic<std::uint8_t>> owner(sb().block_count);
  std::atomic<int> dup{0};
  std::atomic<std::uint64_t> ops{0};
  constexpr int kThreads = 4;
  std::vector<std::thread> th;
  for (int t = 0; t < kThreads; ++t) {
    th.emplace_back([&, t] {
      Random rnd(100 + t);
      std::vector<Extent> held;
      for (int i = 0; i < 20000; ++i) {
        if (held.size() < 64 && !rnd.OneIn(3)) {
          std::uint64_t want = 1 + rnd.Uniform(16);
          std::uint64_t hint = rnd.OneIn(2) ? 0 : sb().shard_start + rnd.Uniform64(sb().block_count - sb().shard_start);
          auto r = a_->Reserve(want, 1, hint, Draw::kPrivileged);
          if (!r.ok()) continue;
          for (std::uint64_t b = r->start; b < r->end(); ++b)
            if (owner[b].exchange(static_cast<std::uint8_t>(t + 1)) != 0) ++dup;
          held.push_back(*r);
        } else if (!held.empty()) {
          std::size_t k = rnd.Uniform(static_cast<std::uint32_t>(held.size()));
          Extent e = held[k];
          held[k] = held.back();
          held.pop_back();
          for (std::uint64_t b = e.start; b < e.end(); ++b)
            if (owner[b].exchange(0) != t + 1) ++dup;
          a_->Unreserve(e);
        }
        ++ops;
      }
      for (const Extent& e : held) {
        for (std::uint64_t b = e.start; b < e.end(); ++b) owner[b].store(0);
        a_->Unreserve(e);
      }
    });
  }
  for (auto& x : th) x.join();
  EXPECT_EQ(dup.load(), 0) << "a block was handed out twice";
  EXPECT_EQ(a_->stats(), s0);
  EXPECT_EQ(ops.load(), kThreads * 20000u);
}

// Concurrent transactions (Allocate/Free through the metadata lock) racing with Reserve.
TEST_F(AllocatorTest, ConcurrentTransactionsAndReservations) {
  Fresh(100000);
  std::atomic<int> errors{0};
  std::vector<std::thread> th;
  for (int t = 0; t < 3; ++t) {
    th.emplace_back([&, t] {
      Random rnd(7 + t);
      std::vector<Extent> mine;
      for (int i = 0; i < 300; ++i) {
        auto w = ms_->Begin();
        w->set_use_reserve(true);  // allocator mechanics, not the reserve
        if (!w.ok()) { ++errors; return; }
        if (mine.empty() || rnd.OneIn(2)) {
          auto e = a_->Allocate(*w, 1 + rnd.Uniform(8), 1, 0);
          if (!e.ok()) { ++errors; return; }
          mine.push_back(*e);
        } else {
          if (!a_->Free(*w, mine.back()).ok()) { ++errors; return; }
          mine.pop_back();
        }
        if (!w->Commit().ok()) { ++errors; return; }
        if (rnd.OneIn(10) && !ms_->Sync().ok()) { ++errors; return; }
        if (rnd.OneIn(50) && !ms_->SyncAndCheckpoint().ok()) { ++errors; return; }
      }
    });
  }
  for (auto& x : th) x.join();
  ASSERT_EQ(errors.load(), 0);
  ASSERT_TRUE(ms_->SyncAndCheckpoint().ok());
  const AllocStats s = a_->stats();
  EXPECT_EQ(s.pending_free_blocks, 0u);
  EXPECT_EQ(s.available_blocks, s.free_blocks);
  Remount();
  EXPECT_EQ(a_->stats(), s);
}

// Random allocate/free sequences, with and without a checkpoint before the crash: a remount
// reproduces the on-disk state exactly, and every extent the model holds is still allocated.
TEST_F(AllocatorTest, RemountAfterRandomSequencesMatchesModel) {
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    SCOPED_TRACE(seed);
    Fresh(100000, 256);
    Random rnd(seed);
    std::vector<Extent> live;
    for (int i = 0; i < 400; ++i) {
      auto t = ms_->Begin();
      ASSERT_TRUE(t.ok());
      t->set_use_reserve(true);  // allocator mechanics, not the reserve
      int ops = 1 + static_cast<int>(rnd.Uniform(4));
      for (int k = 0; k < ops; ++k) {
        if (live.empty() || rnd.Uniform(5) < 3) {
          std::uint64_t hint = rnd.OneIn(2) ? 0 : sb().shard_start + rnd.Uniform64(90000);
          auto e = a_->Allocate(*t, 1 + rnd.Uniform(40), 1, hint);
          ASSERT_TRUE(e.ok()) << Str(e.status());
          live.push_back(*e);
        } else {
          std::size_t j = rnd.Uniform(static_cast<std::uint32_t>(live.size()));
          ASSERT_TRUE(a_->Free(*t, live[j]).ok());
          live[j] = live.back();
          live.pop_back();
        }
      }
      ASSERT_TRUE(t->Commit().ok());
      if (rnd.OneIn(4)) {
        ASSERT_TRUE(ms_->Sync().ok());
      }
      if (rnd.OneIn(40)) {
        ASSERT_TRUE(ms_->SyncAndCheckpoint().ok());
      }
    }
    ASSERT_TRUE(ms_->Sync().ok());
    std::uint64_t used = 0;
    for (const Extent& e : live) used += e.count;
    const AllocStats before = a_->stats();
    EXPECT_EQ(before.free_blocks, FreshFree() - used);
    EXPECT_EQ(before.available_blocks, before.free_blocks - before.pending_free_blocks);
    Remount();  // crash: journal replay
    const AllocStats after = a_->stats();
    EXPECT_EQ(after.total_blocks, before.total_blocks);
    EXPECT_EQ(after.free_blocks, before.free_blocks);
    EXPECT_EQ(after.available_blocks, before.free_blocks);
    EXPECT_EQ(after.pending_free_blocks, 0u);
    // Every live extent is allocated on disk: freeing it succeeds, and a second free fails.
    auto t = ms_->Begin();
    ASSERT_TRUE(t.ok());
    t->set_use_reserve(true);  // allocator mechanics, not the reserve
    for (const Extent& e : live) ASSERT_TRUE(a_->Free(*t, e).ok());
    t->Abort();
    // Nothing else is allocated: reserving all available space never touches a live extent.
    std::vector<std::uint8_t> used_map(sb().block_count, 0);
    for (const Extent& e : live)
      for (std::uint64_t b = e.start; b < e.end(); ++b) used_map[b] = 1;
    std::uint64_t reserved = 0;
    for (;;) {
      auto r = a_->Reserve(4096, 1, 0, Draw::kPrivileged);
      if (!r.ok()) break;
      for (std::uint64_t b = r->start; b < r->end(); ++b) ASSERT_EQ(used_map[b], 0) << b;
      reserved += r->count;
    }
    EXPECT_EQ(reserved, after.free_blocks);
    ASSERT_TRUE(ms_->SyncAndCheckpoint().ok());
    Remount();
    EXPECT_EQ(a_->stats().free_blocks, after.free_blocks);
  }
}

TEST_F(AllocatorTest, CorruptBitmapIsCorruptionAtLoad) {
  Fresh(4096);
  ASSERT_TRUE(AllocOne(10, 10, 0).ok());
  ASSERT_TRUE(ms_->SyncAndCheckpoint().ok());
  const std::uint64_t bb = a_->BitmapBlockOf(0, 0);
  auto img = dev_->Snapshot();
  // Free count off by one, block resealed (checksum valid): the count check catches it.
  std::uint8_t* p = dev_->raw() + bb * kBs;
  EncodeLE64(p + format::kMetaHeaderSize, DecodeLE64(p + format::kMetaHeaderSize) + 1);
  format::SealMetaBlock(p, kBs);
  Status st = TryRemount();
  EXPECT_TRUE(st.IsCorruption()) << Str(st);
  // A bit flipped without resealing: the checksum catches it.
  std::memcpy(dev_->raw(), img.data(), img.size());
  dev_->raw()[bb * kBs + 900] ^= 0x01;
  st = TryRemount();
  EXPECT_TRUE(st.IsCorruption()) << Str(st);
  // A bitmap that marks its own bitmap block free (count adjusted, resealed).
  std::memcpy(dev_->raw(), img.data(), img.size());
  p = dev_->raw() + bb * kBs;
  p[format::kMetaHeaderSize + format::kBitmapPayloadHeader] &= 0xFE;
  EncodeLE64(p + format::kMetaHeaderSize, DecodeLE64(p + format::kMetaHeaderSize) + 1);
  format::SealMetaBlock(p, kBs);
  st = TryRemount();
  EXPECT_TRUE(st.IsCorruption()) << Str(st);
  std::memcpy(dev_->raw(), img.data(), img.size());
  EXPECT_TRUE(TryRemount().ok());
}

TEST_F(AllocatorTest, ReserveIsKeptForSpaceFreeingOperations) {
  Fresh(4096);
  // Drain everything an ordinary caller may take; the reserve stays for privileged callers.
  std::vector<Extent> taken;
  for (;;) {
    auto r = a_->Reserve(64, 1, 0);
    if (!r.ok()) {
      EXPECT_TRUE(r.status().IsNoSpace());
      break;
    }
    taken.push_back(*r);
  }
  EXPECT_GE(a_->stats().available_blocks, a_->reserve_blocks());
  auto p = a_->Reserve(1, 1, 0, Draw::kPrivileged);
  ASSERT_TRUE(p.ok());
  a_->Unreserve(*p);
  for (const Extent& e : taken) a_->Unreserve(e);
}

// Promised blocks: never more than is available beside the reserve; ordinary reservations leave
// them alone, promised ones draw on them, and Unpromise hands them back.
TEST_F(AllocatorTest, PromisesHoldSpaceForPromisedDraws) {
  Fresh(4096);
  const std::uint64_t usable = a_->stats().available_blocks - a_->reserve_blocks();
  EXPECT_FALSE(a_->Promise(usable + 1)) << "more than is available";
  EXPECT_EQ(a_->stats().promised_blocks, 0u) << "a refused promise holds nothing";
  ASSERT_TRUE(a_->Promise(usable - 10));
  EXPECT_EQ(a_->stats().promised_blocks, usable - 10);
  EXPECT_FALSE(a_->Promise(11));
  ASSERT_TRUE(a_->Promise(10));
  a_->Unpromise(10);
  // Ordinary callers get only the 10 unpromised blocks.
  auto o = a_->Reserve(64, 1, 0);
  ASSERT_TRUE(o.ok()) << Str(o.status());
  EXPECT_EQ(o->count, 10u);
  EXPECT_TRUE(a_->Reserve(1, 1, 0).status().IsNoSpace());
  // Promised draws take the promised blocks.
  std::vector<Extent> drawn;
  std::uint64_t got = 0;
  while (got < usable - 10) {
    auto r = a_->Reserve(64, 1, 0, Draw::kPromised);
    ASSERT_TRUE(r.ok()) << "after " << got << ": " << Str(r.status());
    got += r->count;
    drawn.push_back(*r);
  }
  EXPECT_EQ(got, usable - 10);
  EXPECT_TRUE(a_->Reserve(1, 1, 0, Draw::kPromised).status().IsNoSpace()) << "the reserve stays";
  a_->Unpromise(usable - 10);
  EXPECT_EQ(a_->stats().promised_blocks, 0u);
  for (const Extent& e : drawn) a_->Unreserve(e);
  a_->Unreserve(*o);
  // With the promise gone, ordinary callers may use the space again.
  auto again = a_->Reserve(64, 64, 0);
  ASSERT_TRUE(again.ok()) << Str(again.status());
  a_->Unreserve(*again);
}

}  // namespace
}  // namespace permfs::alloc
