// ChunkStore: round trips, deduplication, durability, abort paths, corruption, hostile index
// values, concurrency and ENOSPC (issue 3, item 1).
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <map>
#include <thread>

#include "store/store_test_util.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace permfs::store {
namespace {

using namespace storetest;  // NOLINT

constexpr std::uint64_t kSmall = 8192;  // 32 MiB volume

// ---- Round trip -------------------------------------------------------------------------

TEST(ChunkStoreTest, RoundTripSizesAndRandomRanges) {
  auto s = StoreVolume::Make(kSmall);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->cs->max_chunk_size(), 65536u);
  Random rnd(7);
  for (std::size_t size : {1u, 4095u, 4096u, 4097u, 65536u}) {
    SCOPED_TRACE(size);
    auto data = RandomBytes(size, size);
    ChunkId id;
    ASSERT_TRUE(Put(*s, data, &id).ok());
    EXPECT_EQ(id, Sha256(data.data(), data.size()));
    auto loc = Locate(*s, id);
    ASSERT_TRUE(loc.ok()) << Str(loc.status());
    EXPECT_EQ(loc->length, size);
    EXPECT_EQ(loc->stored_length, size);
    EXPECT_EQ(loc->block_count, (size + 4095) / 4096);
    EXPECT_EQ(loc->refcount, 1u);
    EXPECT_EQ(loc->crc, Crc32c(data.data(), size));
    EXPECT_TRUE(s->vol->allocator()->IsDataBlock(loc->block));
    std::vector<std::uint8_t> all;
    ASSERT_TRUE(ReadAll(*s, id, &all).ok());
    EXPECT_EQ(all, data);
    EXPECT_TRUE(s->cs->VerifyId(*loc).ok());
    // The zero-filled tail of the last block is not part of the chunk, but must be zero.
    const std::uint8_t* raw = s->dev->raw() + loc->block * 4096;
    for (std::size_t i = size; i < loc->block_count * 4096u; ++i) ASSERT_EQ(raw[i], 0) << i;
    for (int i = 0; i < 200; ++i) {
      std::uint32_t off = rnd.Uniform(static_cast<std::uint32_t>(size));
      std::uint32_t len = rnd.Uniform(static_cast<std::uint32_t>(size - off) + 1);
      std::vector<std::uint8_t> out(len + 1, 0xEE);
      Status st = s->cs->ReadLocated(*loc, off, len, out.data());
      ASSERT_TRUE(st.ok()) << Str(st);
      ASSERT_EQ(0, std::memcmp(out.data(), data.data() + off, len));
      ASSERT_EQ(out[len], 0xEE);  // nothing written past len
    }
    std::uint8_t b;
    EXPECT_EQ(s->cs->ReadLocated(*loc, static_cast<std::uint32_t>(size), 1, &b).code(),
              Code::kInvalidArgument);
    EXPECT_EQ(s->cs->ReadLocated(*loc, 1, static_cast<std::uint32_t>(size), &b).code(),
              Code::kInvalidArgument);
    EXPECT_EQ(s->cs->ReadLocated(*loc, 0xFFFFFFFFu, 2, &b).code(), Code::kInvalidArgument);
  }
  std::vector<std::uint8_t> big(65537, 1);
  EXPECT_EQ(s->cs->Prepare(big.data(), big.size()).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(s->cs->Prepare(big.data(), 0).status().code(), Code::kInvalidArgument);
  ChunkId missing{};
  EXPECT_TRUE(Locate(*s, missing).status().IsNotFound());
  EXPECT_TRUE(Unref(*s, missing).IsNotFound());
  EXPECT_TRUE(Ref(*s, missing).IsNotFound());
}

// ---- Dedupe ---------------------------------------------------------------------------------

TEST(ChunkStoreTest, DedupeRefcountAndFree) {
  auto s = StoreVolume::Make(kSmall);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->vol->meta()->SyncAndCheckpoint().ok());
  const auto base = s->astats();
  auto data = RandomBytes(11, 65536);
  ChunkId id;
  ASSERT_TRUE(Put(*s, data, &id).ok());
  const auto once = s->astats();
  // 16 data blocks plus the index's first leaf.
  EXPECT_EQ(base.free_blocks - once.free_blocks, 17u);
  auto loc1 = Locate(*s, id);
  ASSERT_TRUE(loc1.ok());

  ChunkId id2;
  ASSERT_TRUE(Put(*s, data, &id2).ok());
  EXPECT_EQ(id, id2);
  EXPECT_EQ(s->astats().free_blocks, once.free_blocks);  // no new data
  auto loc2 = Locate(*s, id);
  ASSERT_TRUE(loc2.ok());
  EXPECT_EQ(loc2->block, loc1->block);
  EXPECT_EQ(loc2->refcount, 2u);
  EXPECT_EQ(s->cs->stats().dedup_hits, 1u);
  EXPECT_EQ(s->cs->stats().bytes_written, 65536u);

  ASSERT_TRUE(Unref(*s, id).ok());
  std::vector<std::uint8_t> back;
  ASSERT_TRUE(ReadAll(*s, id, &back).ok());
  EXPECT_EQ(back, data);
  EXPECT_EQ(Locate(*s, id)->refcount, 1u);

  ASSERT_TRUE(Unref(*s, id).ok());
  EXPECT_TRUE(Locate(*s, id).status().IsNotFound());
  ASSERT_TRUE(s->vol->meta()->SyncAndCheckpoint().ok());
  const auto after = s->astats();
  // The data comes back; the index keeps (at most) its empty root leaf.
  EXPECT_GE(after.free_blocks + 1, base.free_blocks);
  EXPECT_EQ(after.pending_free_blocks, 0u);
  EXPECT_EQ(after.available_blocks, after.free_blocks);
}

// Two writers prepare the same new chunk before either commits: both write a copy, the second
// Commit finds the first one's entry, adds a reference and releases its own copy.
TEST(ChunkStoreTest, ConcurrentPrepareOfSameNewChunk) {
  auto s = StoreVolume::Make(kSmall);
  ASSERT_TRUE(s);
  auto data = RandomBytes(12, 10000);
  const auto base = s->astats();
  auto p1 = s->cs->Prepare(data.data(), data.size());
  auto p2 = s->cs->Prepare(data.data(), data.size());
  ASSERT_TRUE(p1.ok() && p2.ok());
  EXPECT_EQ(p1->extent.count, 3u);
  EXPECT_EQ(p2->extent.count, 3u);
  EXPECT_NE(p1->extent.start, p2->extent.start);
  EXPECT_EQ(s->astats().available_blocks, base.available_blocks - 6);
  const std::uint64_t first_copy = p1->extent.start;
  {
    auto t = s->vol->meta()->Begin();
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(s->cs->Commit(*t, *p1, data.data()).ok());
    ASSERT_TRUE(s->cs->Commit(*t, *p2, data.data()).ok());
    EXPECT_FALSE(p1->active);
    EXPECT_FALSE(p2->active);
    ASSERT_TRUE(t->Commit().ok());
  }
  auto loc = Locate(*s, p1->id);
  ASSERT_TRUE(loc.ok());
  EXPECT_EQ(loc->refcount, 2u);
  EXPECT_EQ(loc->block, first_copy);
  // Only one copy is allocated (3 blocks + the index leaf); the other reservation is released.
  const auto now = s->astats();
  EXPECT_EQ(base.free_blocks - now.free_blocks, 4u);
  EXPECT_EQ(base.available_blocks - now.available_blocks, 4u);
  EXPECT_EQ(s->cs->stats().dedup_hits, 1u);
  // Committing a consumed PreparedChunk is refused.
  auto t = s->vol->meta()->Begin();
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(s->cs->Commit(*t, *p1, data.data()).code(), Code::kInvalidArgument);
  t->Abort();
}

// Issue 3 "Prove it": the same 100 MiB stored twice uses ~100 MiB; dropping one set keeps the
// other readable; dropping both returns the space.
TEST(ChunkStoreTest, Dedupe100MiBTwice) {
  constexpr int kChunks = 1600;  // 1600 x 64 KiB = 100 MiB
  auto s = StoreVolume::Make(76800);  // 300 MiB
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->vol->meta()->SyncAndCheckpoint().ok());
  const auto base = s->astats();
  std::vector<ChunkId> ids(kChunks);
  for (int pass = 0; pass < 2; ++pass) {
    for (int i = 0; i < kChunks; i += 32) {
      // Prepare a batch with no lock held, then commit the batch in one transaction.
      std::vector<std::vector<std::uint8_t>> batch;
      std::vector<PreparedChunk> prepared;
      for (int k = i; k < i + 32; ++k) {
        // Regenerated every pass: the second pass goes through Prepare's hash + lookup.
        batch.push_back(RandomBytes(1000 + k, 65536));
        auto p = s->cs->Prepare(batch.back().data(), batch.back().size());
        ASSERT_TRUE(p.ok()) << Str(p.status());
        EXPECT_EQ(p->extent.count, pass == 0 ? 16u : 0u);
        ids[k] = p->id;
        prepared.push_back(*p);
      }
      auto t = s->vol->meta()->Begin();
      ASSERT_TRUE(t.ok());
      for (int k = 0; k < 32; ++k) {
        Status st = s->cs->Commit(*t, prepared[k], batch[k].data());
        ASSERT_TRUE(st.ok()) << Str(st);
      }
      ASSERT_TRUE(t->Commit().ok());
      if (i % 256 == 0) {
        ASSERT_TRUE(s->vol->meta()->Sync().ok());
      }
    }
  }
  ASSERT_TRUE(s->vol->meta()->SyncAndCheckpoint().ok());
  const auto full = s->astats();
  const std::uint64_t used = base.free_blocks - full.free_blocks;
  const std::uint64_t data_blocks = kChunks * 16ull;
  std::printf("100 MiB twice: %llu blocks used (%llu data, %llu index)\n",
              static_cast<unsigned long long>(used), static_cast<unsigned long long>(data_blocks),
              static_cast<unsigned long long>(used - data_blocks));
  EXPECT_GE(used, data_blocks);
  EXPECT_LT(used, data_blocks + data_blocks / 50);  // ~100 MiB, not 200 MiB
  EXPECT_EQ(s->cs->stats().bytes_written, data_blocks * 4096);
  for (const ChunkId& id : ids) {
    ASSERT_EQ(Locate(*s, id)->refcount, 2u);
  }

  for (int i = 0; i < kChunks; i += 64) {
    auto t = s->vol->meta()->Begin();
    ASSERT_TRUE(t.ok());
    for (int k = i; k < i + 64; ++k) ASSERT_TRUE(s->cs->Unref(*t, ids[k]).ok());
    ASSERT_TRUE(t->Commit().ok());
  }
  ASSERT_TRUE(s->vol->meta()->SyncAndCheckpoint().ok());
  EXPECT_EQ(s->astats().free_blocks, full.free_blocks);  // nothing freed yet
  for (int k = 0; k < kChunks; ++k) {
    std::vector<std::uint8_t> back;
    ASSERT_TRUE(ReadAll(*s, ids[k], &back).ok());
    ASSERT_TRUE(back == RandomBytes(1000 + k, 65536)) << k;
  }
  for (int i = 0; i < kChunks; i += 64) {
    auto t = s->vol->meta()->Begin();
    ASSERT_TRUE(t.ok());
    for (int k = i; k < i + 64; ++k) ASSERT_TRUE(s->cs->Unref(*t, ids[k]).ok());
    ASSERT_TRUE(t->Commit().ok());
  }
  ASSERT_TRUE(s->vol->meta()->SyncAndCheckpoint().ok());
  const auto end = s->astats();
  EXPECT_GE(end.free_blocks + 1, base.free_blocks);  // at most the empty index root remains
  EXPECT_EQ(end.available_blocks, end.free_blocks);
  journal::ReadView view(s->vol->meta());
  EXPECT_EQ(*s->cs->index()->Count(view), 0u);
}

// ---- Durability and abort -------------------------------------------------------------------

TEST(ChunkStoreTest, DurableAcrossRemount) {
  auto s = StoreVolume::Make(kSmall);
  ASSERT_TRUE(s);
  std::map<int, ChunkId> ids;
  for (int i = 0; i < 40; ++i) {
    auto d = RandomBytes(500 + i, 1 + i * 1500);
    ASSERT_TRUE(Put(*s, d, &ids[i]).ok());
    for (int r = 0; r < i % 3; ++r) ASSERT_TRUE(Ref(*s, ids[i]).ok());
  }
  ASSERT_TRUE(s->vol->meta()->Sync().ok());
  const auto before = s->astats();
  // Crash after the Sync: no unmount, no checkpoint. Mount replays the journal.
  ASSERT_TRUE(s->Remount());
  EXPECT_EQ(s->astats().free_blocks, before.free_blocks);
  for (int i = 0; i < 40; ++i) {
    auto loc = Locate(*s, ids[i]);
    ASSERT_TRUE(loc.ok()) << i << " " << Str(loc.status());
    EXPECT_EQ(loc->refcount, 1u + i % 3);
    std::vector<std::uint8_t> back;
    ASSERT_TRUE(ReadAll(*s, ids[i], &back).ok());
    EXPECT_TRUE(back == RandomBytes(500 + i, 1 + i * 1500));
    EXPECT_TRUE(s->cs->VerifyId(*loc).ok());
  }
  // ForEach sees every entry, in id order.
  struct Ctx {
    int n = 0;
    ChunkId last{};
    bool ordered = true;
  } ctx;
  {
    journal::ReadView view(s->vol->meta());
    ASSERT_TRUE(s->cs->ForEach(view,
                               [](void* c, const ChunkLocation& l) {
                                 auto* x = static_cast<Ctx*>(c);
                                 if (x->n > 0 && std::memcmp(x->last.bytes, l.id.bytes, 32) >= 0)
                                   x->ordered = false;
                                 x->last = l.id;
                                 ++x->n;
                                 return true;
                               },
                               &ctx)
                    .ok());
  }
  EXPECT_EQ(ctx.n, 40);
  EXPECT_TRUE(ctx.ordered);
  // Clean unmount + mount too.
  ASSERT_TRUE(s->vol->Unmount().ok());
  ASSERT_TRUE(s->Mount());
  EXPECT_EQ(Locate(*s, ids[5])->refcount, 3u);
}

TEST(ChunkStoreTest, AbortAfterCommitLeavesNoTrace) {
  auto s = StoreVolume::Make(kSmall);
  ASSERT_TRUE(s);
  auto keep = RandomBytes(1, 20000);
  ChunkId keep_id;
  ASSERT_TRUE(Put(*s, keep, &keep_id).ok());
  ASSERT_TRUE(s->vol->meta()->SyncAndCheckpoint().ok());
  const auto base = s->astats();

  // New chunk, aborted.
  auto data = RandomBytes(2, 40000);
  auto p = s->cs->Prepare(data.data(), data.size());
  ASSERT_TRUE(p.ok());
  const ChunkId id = p->id;
  {
    auto t = s->vol->meta()->Begin();
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(s->cs->Commit(*t, *p, data.data()).ok());
    t->Abort();
  }
  EXPECT_TRUE(Locate(*s, id).status().IsNotFound());
  EXPECT_EQ(s->astats().free_blocks, base.free_blocks);
  EXPECT_EQ(s->astats().available_blocks, base.available_blocks);

  // Existing chunk (+1), aborted.
  auto p2 = s->cs->Prepare(keep.data(), keep.size());
  ASSERT_TRUE(p2.ok());
  EXPECT_EQ(p2->extent.count, 0u);
  {
    auto t = s->vol->meta()->Begin();
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(s->cs->Commit(*t, *p2, keep.data()).ok());
    EXPECT_EQ(s->cs->Locate(*t, keep_id)->refcount, 2u);
    t->Abort();
  }
  EXPECT_EQ(Locate(*s, keep_id)->refcount, 1u);

  // Last Unref, aborted: the chunk is still stored and its blocks still allocated.
  {
    auto t = s->vol->meta()->Begin();
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(s->cs->Unref(*t, keep_id).ok());
    EXPECT_TRUE(s->cs->Locate(*t, keep_id).status().IsNotFound());
    t->Abort();
  }
  EXPECT_EQ(Locate(*s, keep_id)->refcount, 1u);
  std::vector<std::uint8_t> back;
  ASSERT_TRUE(ReadAll(*s, keep_id, &back).ok());
  EXPECT_EQ(back, keep);

  // Abandon releases the reservation.
  auto p3 = s->cs->Prepare(data.data(), data.size());
  ASSERT_TRUE(p3.ok());
  EXPECT_EQ(s->astats().available_blocks, base.available_blocks - 10);
  s->cs->Abandon(*p3);
  EXPECT_FALSE(p3->active);

  ASSERT_TRUE(s->vol->meta()->SyncAndCheckpoint().ok());
  const auto end = s->astats();
  EXPECT_EQ(end.free_blocks, base.free_blocks);
  EXPECT_EQ(end.available_blocks, base.available_blocks);
  EXPECT_EQ(end.pending_free_blocks, 0u);
  // The aborted chunk's blocks are reusable: the same data stores cleanly now.
  ChunkId again;
  ASSERT_TRUE(Put(*s, data, &again).ok());
  ASSERT_TRUE(ReadAll(*s, again, &back).ok());
  EXPECT_EQ(back, data);
  // And after a remount the on-disk state agrees with memory.
  ASSERT_TRUE(s->vol->meta()->Sync().ok());
  const auto mem = s->astats();
  ASSERT_TRUE(s->Remount());
  EXPECT_EQ(s->astats().free_blocks, mem.free_blocks);
}

// Prepare deduplicates against a chunk whose last reference is dropped before Commit: Commit
// must store the data itself (inside the transaction), and an abort of that must not leak.
TEST(ChunkStoreTest, DedupRacingWithFree) {
  auto s = StoreVolume::Make(kSmall);
  ASSERT_TRUE(s);
  auto data = RandomBytes(3, 30000);
  ChunkId id;
  ASSERT_TRUE(Put(*s, data, &id).ok());
  const auto old_loc = *Locate(*s, id);
  ASSERT_TRUE(s->vol->meta()->SyncAndCheckpoint().ok());
  const auto base = s->astats();

  for (int round = 0; round < 2; ++round) {
    auto p = s->cs->Prepare(data.data(), data.size());
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->extent.count, 0u);  // dedup
    auto t = s->vol->meta()->Begin();
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(s->cs->Unref(*t, id).ok());  // last reference gone, blocks pending free
    Status st = s->cs->Commit(*t, *p, data.data());
    ASSERT_TRUE(st.ok()) << Str(st);
    auto loc = s->cs->Locate(*t, id);
    ASSERT_TRUE(loc.ok());
    EXPECT_EQ(loc->refcount, 1u);
    EXPECT_NE(loc->block, old_loc.block);  // the freed blocks are not reused before a checkpoint
    if (round == 0) {
      t->Abort();
      EXPECT_EQ(Locate(*s, id)->block, old_loc.block);
      EXPECT_EQ(s->astats().free_blocks, base.free_blocks);
      EXPECT_EQ(s->astats().available_blocks, base.available_blocks);
      EXPECT_EQ(s->astats().pending_free_blocks, 0u);
    } else {
      ASSERT_TRUE(t->Commit().ok());
    }
  }
  std::vector<std::uint8_t> back;
  ASSERT_TRUE(ReadAll(*s, id, &back).ok());
  EXPECT_EQ(back, data);
  ASSERT_TRUE(s->vol->meta()->SyncAndCheckpoint().ok());
  EXPECT_EQ(s->astats().free_blocks, base.free_blocks);  // one copy, as before
  EXPECT_EQ(s->astats().available_blocks, base.available_blocks);
  ASSERT_TRUE(s->Remount());
  ASSERT_TRUE(ReadAll(*s, id, &back).ok());
  EXPECT_EQ(back, data);
}

TEST(ChunkStoreTest, SetRefcount) {
  auto s = StoreVolume::Make(kSmall);
  ASSERT_TRUE(s);
  auto data = RandomBytes(4, 5000);
  ChunkId id;
  ASSERT_TRUE(Put(*s, data, &id).ok());
  const auto with = s->astats();
  auto t = s->vol->meta()->Begin();
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(s->cs->SetRefcount(*t, id, 7).ok());
  EXPECT_EQ(s->cs->Locate(*t, id)->refcount, 7u);
  ASSERT_TRUE(s->cs->SetRefcount(*t, id, 0).ok());
  EXPECT_TRUE(s->cs->Locate(*t, id).status().IsNotFound());
  ChunkId none{};
  EXPECT_TRUE(s->cs->SetRefcount(*t, none, 1).IsNotFound());
  ASSERT_TRUE(t->Commit().ok());
  EXPECT_GE(s->astats().free_blocks, with.free_blocks + 2);
  EXPECT_LE(s->astats().free_blocks, with.free_blocks + 3);  // + the index leaf, if dropped
}

// ---- Corruption -----------------------------------------------------------------------------

TEST(ChunkStoreTest, FlippedDataByteIsCorruptionNeverData) {
  auto s = StoreVolume::Make(kSmall);
  ASSERT_TRUE(s);
  auto data = RandomBytes(5, 50000);
  ChunkId id;
  ASSERT_TRUE(Put(*s, data, &id).ok());
  auto loc = Locate(*s, id);
  ASSERT_TRUE(loc.ok());
  std::uint8_t* raw = s->dev->raw() + loc->block * 4096;
  Random rnd(99);
  for (int i = 0; i < 20; ++i) {
    const std::uint32_t pos = rnd.Uniform(50000);
    raw[pos] ^= static_cast<std::uint8_t>(1u << rnd.Uniform(8));
    std::vector<std::uint8_t> out(100, 0xAB);
    // Even a range that does not cover the flipped byte is refused: the whole chunk is checked.
    const std::uint32_t off = pos < 25000 ? 40000 : 0;
    Status st = s->cs->ReadLocated(*loc, off, 100, out.data());
    EXPECT_TRUE(st.IsCorruption()) << Str(st);
    EXPECT_EQ(out, std::vector<std::uint8_t>(100, 0xAB));
    EXPECT_TRUE(s->cs->VerifyId(*loc).IsCorruption());
    raw[pos] = data[pos];
    ASSERT_TRUE(s->cs->ReadLocated(*loc, off, 100, out.data()).ok());
  }
  EXPECT_EQ(s->cs->stats().corruptions, 40u);
  // A flip in the zero padding is not data: reads stay good.
  raw[50000 + 7] ^= 1;
  std::vector<std::uint8_t> back;
  EXPECT_TRUE(ReadAll(*s, id, &back).ok());
}

// Content replaced and the CRC in the index "fixed": CRC reads pass, VerifyId (SHA-256) fails.
TEST(ChunkStoreTest, VerifyIdCatchesContentWithRecomputedCrc) {
  auto s = StoreVolume::Make(kSmall);
  ASSERT_TRUE(s);
  auto data = RandomBytes(6, 8192);
  ChunkId id;
  ASSERT_TRUE(Put(*s, data, &id).ok());
  auto loc = *Locate(*s, id);
  auto evil = RandomBytes(66, 8192);
  std::memcpy(s->dev->raw() + loc.block * 4096, evil.data(), evil.size());
  loc.crc = Crc32c(evil.data(), evil.size());
  {
    auto t = s->vol->meta()->Begin();
    ASSERT_TRUE(t.ok());
    std::uint8_t v[ChunkStore::kIndexValueSize];
    EncodeLocation(loc, s->vol->sb(), v);
    ASSERT_TRUE(s->cs->index()->Put(*t, btree::Slice(id.bytes, 32), btree::Slice(v, sizeof v)).ok());
    ASSERT_TRUE(t->Commit().ok());
  }
  auto loc2 = Locate(*s, id);
  ASSERT_TRUE(loc2.ok());
  std::vector<std::uint8_t> out(8192);
  EXPECT_TRUE(s->cs->ReadLocated(*loc2, 0, 8192, out.data()).ok());  // the CRC alone can't tell
  Status st = s->cs->VerifyId(*loc2);
  EXPECT_TRUE(st.IsCorruption()) << Str(st);
}

// ---- Hostile index values -----------------------------------------------------------------

class DecodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    s_ = StoreVolume::Make(kSmall);
    ASSERT_TRUE(s_);
    sb_ = s_->vol->sb();
    good_.id = Sha256("x", 1);
    good_.block = sb_.shard_start + sb_.bitmap_blocks_per_shard + 10;
    good_.length = good_.stored_length = 12345;
    good_.block_count = 4;
    good_.refcount = 3;
    good_.crc = 0xDEADBEEF;
    EncodeLocation(good_, sb_, enc_);
  }
  Status Decode(const std::uint8_t* v, std::size_t n = ChunkStore::kIndexValueSize) {
    auto r = DecodeLocation(good_.id, v, n, sb_);
    return r.ok() ? Status() : r.status();
  }
  // Decodes `enc_` with one field replaced.
  Status With(ChunkLocation loc) {
    std::uint8_t v[64];
    EncodeLocation(loc, sb_, v);
    return Decode(v);
  }
  std::unique_ptr<StoreVolume> s_;
  format::Superblock sb_;
  ChunkLocation good_;
  std::uint8_t enc_[64];
};

TEST_F(DecodeTest, GoodValueRoundTrips) {
  auto r = DecodeLocation(good_.id, enc_, 64, sb_);
  ASSERT_TRUE(r.ok()) << Str(r.status());
  EXPECT_EQ(r->block, good_.block);
  EXPECT_EQ(r->length, 12345u);
  EXPECT_EQ(r->stored_length, 12345u);
  EXPECT_EQ(r->block_count, 4u);
  EXPECT_EQ(r->refcount, 3u);
  EXPECT_EQ(r->crc, 0xDEADBEEFu);
  EXPECT_EQ(r->flags, 0u);
  // Byte layout.
  EXPECT_EQ(DecodeLE64(enc_ + 0), good_.block);
  EXPECT_EQ(DecodeLE64(enc_ + 8), static_cast<std::uint64_t>(sb_.volume_id) << 16);
  EXPECT_EQ(DecodeLE64(enc_ + 16), sb_.node_id);
  EXPECT_EQ(DecodeLE64(enc_ + 24), 0u);
  EXPECT_EQ(DecodeLE32(enc_ + 32), 12345u);
  EXPECT_EQ(DecodeLE32(enc_ + 36), 12345u);
  EXPECT_EQ(DecodeLE32(enc_ + 40), 4u);
  EXPECT_EQ(DecodeLE32(enc_ + 44), 0u);
  EXPECT_EQ(DecodeLE64(enc_ + 48), 3u);
  EXPECT_EQ(DecodeLE32(enc_ + 56), 0xDEADBEEFu);
  EXPECT_EQ(DecodeLE32(enc_ + 60), 0u);
}

TEST_F(DecodeTest, RejectsHostileValues) {
  EXPECT_TRUE(Decode(enc_, 63).IsCorruption());
  EXPECT_TRUE(Decode(enc_, 65).IsCorruption());
  EXPECT_TRUE(Decode(enc_, 0).IsCorruption());
  EXPECT_TRUE(DecodeLocation(good_.id, nullptr, 64, sb_).status().IsCorruption());
  auto l = good_;
  // Lengths.
  l = good_; l.length = l.stored_length = 0; l.block_count = 0;
  EXPECT_TRUE(With(l).IsCorruption());
  l = good_; l.length = l.stored_length = sb_.record_size + 1; l.block_count = 17;
  EXPECT_TRUE(With(l).IsCorruption());
  l = good_; l.length = l.stored_length = 0xFFFFFFFFu; l.block_count = 1048576;
  EXPECT_TRUE(With(l).IsCorruption());
  l = good_; l.stored_length = 12000;
  EXPECT_TRUE(With(l).IsCorruption());
  l = good_; l.block_count = 3;
  EXPECT_TRUE(With(l).IsCorruption());
  l = good_; l.block_count = 5;
  EXPECT_TRUE(With(l).IsCorruption());
  l = good_; l.block_count = 0xFFFFFFFFu;
  EXPECT_TRUE(With(l).IsCorruption());
  l = good_; l.flags = 1;
  EXPECT_TRUE(With(l).IsCorruption());
  l = good_; l.flags = 0x80000000u;
  EXPECT_TRUE(With(l).IsCorruption());
  l = good_; l.refcount = 0;
  EXPECT_TRUE(With(l).IsCorruption());
  // Extents outside the data area.
  for (std::uint64_t b : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{2}, sb_.journal_start,
                          sb_.shard_start - 1, sb_.shard_start /* bitmap */,
                          sb_.block_count - 1 /* mirror superblock */, sb_.block_count - 2,
                          sb_.block_count, sb_.block_count + 100, ~std::uint64_t{0},
                          ~std::uint64_t{0} - 2}) {
    l = good_;
    l.block = b;
    EXPECT_TRUE(With(l).IsCorruption()) << b;
  }
  // An extent crossing into the next shard (when there is one) or past the last shard.
  l = good_;
  l.block = sb_.shard_start + sb_.shard_blocks - 2;
  EXPECT_TRUE(With(l).IsCorruption());
  // Reserved bytes and foreign addresses.
  std::uint8_t v[64];
  std::memcpy(v, enc_, 64); v[60] = 1;
  EXPECT_TRUE(Decode(v).IsCorruption());
  std::memcpy(v, enc_, 64); v[24] = 1;  // BlockAddr reserved word
  EXPECT_TRUE(Decode(v).IsCorruption());
  std::memcpy(v, enc_, 64); v[15] = 1;  // BlockAddr word 1 bits 48..63
  EXPECT_TRUE(Decode(v).IsCorruption());
  std::memcpy(v, enc_, 64); EncodeLE64(v + 16, sb_.node_id + 1);
  EXPECT_TRUE(Decode(v).IsCorruption());
  std::memcpy(v, enc_, 64); EncodeLE64(v + 8, static_cast<std::uint64_t>(sb_.volume_id + 1) << 16);
  EXPECT_TRUE(Decode(v).IsCorruption());
  std::memcpy(v, enc_, 64); EncodeLE64(v + 8, (static_cast<std::uint64_t>(sb_.volume_id) << 16) | 1);
  EXPECT_TRUE(Decode(v).IsCorruption());  // wrong shard
}

TEST_F(DecodeTest, RandomValuesNeverEscapeTheDataArea) {
  Random rnd(2024);
  int accepted = 0;
  for (int i = 0; i < 200000; ++i) {
    std::uint8_t v[64];
    std::memcpy(v, enc_, 64);
    // Mutate a few bytes of a valid value (fully random values are rejected trivially).
    const int n = 1 + static_cast<int>(rnd.Uniform(4));
    for (int k = 0; k < n; ++k) v[rnd.Uniform(64)] = static_cast<std::uint8_t>(rnd.Next32());
    auto r = DecodeLocation(good_.id, v, 64, sb_);
    if (!r.ok()) {
      ASSERT_TRUE(r.status().IsCorruption());
      continue;
    }
    ++accepted;
    ASSERT_TRUE(s_->vol->allocator()->IsDataBlock(r->block));
    ASSERT_TRUE(s_->vol->allocator()->IsDataBlock(r->block + r->block_count - 1));
    ASSERT_EQ(r->block_count, (r->stored_length + sb_.block_size - 1) / sb_.block_size);
    ASSERT_LE(r->length, sb_.record_size);
    ASSERT_GE(r->refcount, 1u);
  }
  EXPECT_GT(accepted, 0);
  // ReadLocated / VerifyId refuse a hand-built location that Decode would refuse.
  ChunkLocation bad = good_;
  bad.block = 0;
  std::uint8_t out[16];
  EXPECT_TRUE(s_->cs->ReadLocated(bad, 0, 16, out).IsCorruption());
  EXPECT_TRUE(s_->cs->VerifyId(bad).IsCorruption());
  bad = good_;
  bad.block_count = 1000;
  EXPECT_TRUE(s_->cs->ReadLocated(bad, 0, 16, out).IsCorruption());
}

// An index entry damaged on disk surfaces as Corruption from every entry point.
TEST(ChunkStoreTest, DamagedIndexEntryIsCorruption) {
  auto s = StoreVolume::Make(kSmall);
  ASSERT_TRUE(s);
  auto data = RandomBytes(8, 3000);
  ChunkId id;
  ASSERT_TRUE(Put(*s, data, &id).ok());
  auto loc = *Locate(*s, id);
  loc.block = 3;  // the journal
  {
    auto t = s->vol->meta()->Begin();
    ASSERT_TRUE(t.ok());
    std::uint8_t v[64];
    EncodeLocation(loc, s->vol->sb(), v);
    ASSERT_TRUE(s->cs->index()->Put(*t, btree::Slice(id.bytes, 32), btree::Slice(v, 64)).ok());
    ASSERT_TRUE(t->Commit().ok());
  }
  EXPECT_TRUE(Locate(*s, id).status().IsCorruption());
  EXPECT_TRUE(s->cs->Prepare(data.data(), data.size()).status().IsCorruption());
  EXPECT_TRUE(Unref(*s, id).IsCorruption());
  EXPECT_TRUE(Ref(*s, id).IsCorruption());
  journal::ReadView view(s->vol->meta());
  EXPECT_TRUE(s->cs->ForEach(view, [](void*, const ChunkLocation&) { return true; }, nullptr)
                  .IsCorruption());
}

// ---- Concurrency ----------------------------------------------------------------------------

TEST(ChunkStoreTest, ConcurrentPutsCountEveryReference) {
  auto s = StoreVolume::Make(16384);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->vol->meta()->SyncAndCheckpoint().ok());
  const auto base = s->astats();
  constexpr int kThreads = 4, kIters = 300, kDistinct = 60;
  std::vector<std::vector<std::uint8_t>> pool;
  std::vector<ChunkId> pool_ids;
  for (int i = 0; i < kDistinct; ++i) {
    pool.push_back(RandomBytes(7000 + i, 1 + (i * 2749) % 65536));
    pool_ids.push_back(Sha256(pool.back().data(), pool.back().size()));
  }
  std::vector<std::atomic<int>> commits(kDistinct);
  std::atomic<int> failures{0};
  std::vector<std::thread> th;
  for (int w = 0; w < kThreads; ++w) {
    th.emplace_back([&, w] {
      Random rnd(w + 1);
      for (int i = 0; i < kIters; ++i) {
        // Overlapping sets: thread w draws from [w*10, w*10 + 30).
        const int k = w * 10 + static_cast<int>(rnd.Uniform(30));
        if (!Put(*s, pool[k]).ok()) {
          ++failures;
          continue;
        }
        ++commits[k];
        if (rnd.OneIn(50) && !s->vol->meta()->Sync().ok()) ++failures;
      }
    });
  }
  for (auto& t : th) t.join();
  ASSERT_EQ(failures.load(), 0);
  std::uint64_t data_blocks = 0;
  int stored = 0;
  for (int k = 0; k < kDistinct; ++k) {
    auto loc = Locate(*s, pool_ids[k]);
    if (commits[k] == 0) {
      EXPECT_TRUE(loc.status().IsNotFound());
      continue;
    }
    ASSERT_TRUE(loc.ok()) << k;
    EXPECT_EQ(loc->refcount, static_cast<std::uint64_t>(commits[k].load())) << k;
    data_blocks += loc->block_count;
    ++stored;
    std::vector<std::uint8_t> back;
    ASSERT_TRUE(ReadAll(*s, pool_ids[k], &back).ok());
    EXPECT_TRUE(back == pool[k]);
  }
  ASSERT_TRUE(s->vol->meta()->SyncAndCheckpoint().ok());
  // No duplicate copies survive: only the data of distinct chunks (and the index) is allocated.
  const auto now = s->astats();
  EXPECT_EQ(now.available_blocks, now.free_blocks);  // no stray reservation
  EXPECT_GE(base.free_blocks - now.free_blocks, data_blocks);
  EXPECT_LE(base.free_blocks - now.free_blocks, data_blocks + 4);
  // Drop everything: all the space comes back.
  for (int k = 0; k < kDistinct; ++k)
    for (int r = 0; r < commits[k]; ++r) ASSERT_TRUE(Unref(*s, pool_ids[k]).ok());
  ASSERT_TRUE(s->vol->meta()->SyncAndCheckpoint().ok());
  EXPECT_GE(s->astats().free_blocks + 1, base.free_blocks);
  EXPECT_GT(stored, 40);
}

// ---- ENOSPC ---------------------------------------------------------------------------------

TEST(ChunkStoreTest, NoSpaceThenFreeThenSpaceAgain) {
  auto s = StoreVolume::Make(4096);  // 16 MiB
  ASSERT_TRUE(s);
  std::vector<ChunkId> ids;
  Status last;
  for (int i = 0; i < 1000; ++i) {
    auto data = RandomBytes(20000 + i, 65536);
    ChunkId id;
    last = Put(*s, data, &id);
    if (!last.ok()) break;
    ids.push_back(id);
  }
  ASSERT_TRUE(last.IsNoSpace()) << Str(last);
  ASSERT_GT(ids.size(), 100u);
  ASSERT_TRUE(s->vol->meta()->Sync().ok());
  // Again: still NoSpace, nothing leaked by the failed attempt.
  auto extra = RandomBytes(99999, 65536);
  EXPECT_TRUE(s->cs->Prepare(extra.data(), extra.size()).status().IsNoSpace());
  const auto full = s->astats();
  EXPECT_EQ(full.available_blocks, full.free_blocks);

  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Unref(*s, ids[i]).ok());
  EXPECT_TRUE(s->vol->allocator()->HasPendingFrees());
  // No explicit checkpoint: Prepare sees pending frees and forces one itself.
  const auto checkpoints = s->vol->meta()->stats().checkpoints;
  ChunkId id;
  Status st = Put(*s, extra, &id);
  ASSERT_TRUE(st.ok()) << Str(st);
  EXPECT_GT(s->vol->meta()->stats().checkpoints, checkpoints);
  ASSERT_TRUE(s->vol->meta()->SyncAndCheckpoint().ok());
  for (int i = 0; i < 8; ++i) {
    auto d = RandomBytes(50000 + i, 65536);
    st = Put(*s, d);
    ASSERT_TRUE(st.ok()) << i << " " << Str(st);
  }
  for (std::size_t i = 10; i < ids.size(); ++i) {
    std::vector<std::uint8_t> back;
    ASSERT_TRUE(ReadAll(*s, ids[i], &back).ok());
    ASSERT_TRUE(back == RandomBytes(20000 + i, 65536)) << i;
  }
  ASSERT_TRUE(s->Remount());
  std::vector<std::uint8_t> back;
  ASSERT_TRUE(ReadAll(*s, id, &back).ok());
  EXPECT_EQ(back, extra);
}

TEST(ChunkStoreTest, ReadOnlyVolumeRefusesPrepare) {
  auto s = StoreVolume::Make(kSmall);
  ASSERT_TRUE(s);
  auto data = RandomBytes(9, 100);
  ChunkId id;
  ASSERT_TRUE(Put(*s, data, &id).ok());
  ASSERT_TRUE(s->vol->Unmount().ok());
  s->cs.reset();
  s->vol.reset();
  volume::MountOptions mo;
  mo.read_only = true;
  auto v = volume::Volume::Mount(s->dev.get(), mo);
  ASSERT_TRUE(v.ok());
  s->vol = std::move(*v);
  s->cs = std::make_unique<ChunkStore>(s->vol.get());
  EXPECT_EQ(s->cs->Prepare(data.data(), data.size()).status().code(), Code::kReadOnly);
  std::vector<std::uint8_t> back;
  ASSERT_TRUE(ReadAll(*s, id, &back).ok());
  EXPECT_EQ(back, data);
}

}  // namespace
}  // namespace permfs::store
