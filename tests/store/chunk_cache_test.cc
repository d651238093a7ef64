// ChunkCache (LRU of verified chunk plaintext) on its own, and as ChunkStore's read cache:
// hits, eviction order, slot exhaustion, concurrent readers, and that a cached chunk never hides
// what fsck must see (VerifyId reads the device).
#include "store/chunk_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "store/store_test_util.h"

namespace permfs::store {
namespace {

using namespace storetest;  // NOLINT

Sha256Digest IdOf(std::uint32_t n) {
  Sha256Digest d{};
  std::memcpy(d.bytes, &n, sizeof n);
  d.bytes[31] = 0x5A;
  return d;
}

// Fills a slot with `len` bytes of pattern n and publishes it under IdOf(n).
void Put(ChunkCache& c, std::uint32_t n, std::uint32_t len) {
  const std::uint32_t s = c.Acquire();
  ASSERT_NE(s, ChunkCache::kNoSlot);
  std::memset(c.Buffer(s), static_cast<int>(n & 0xFF), len);
  c.Publish(s, IdOf(n), len);
}

bool Has(ChunkCache& c, std::uint32_t n) {
  std::uint8_t b = 0;
  return c.Read(IdOf(n), 0, 1, &b) && b == static_cast<std::uint8_t>(n & 0xFF);
}

TEST(ChunkCacheTest, DisabledCacheHasNoSlots) {
  ChunkCache c;
  EXPECT_FALSE(c.enabled());
  EXPECT_EQ(c.Acquire(), ChunkCache::kNoSlot);
  std::uint8_t b;
  EXPECT_FALSE(c.Read(IdOf(1), 0, 1, &b));
  c.Configure(1000, 4096);  // less than one slot: still disabled
  EXPECT_FALSE(c.enabled());
  EXPECT_EQ(c.Acquire(), ChunkCache::kNoSlot);
}

TEST(ChunkCacheTest, HitCopiesTheRequestedRangeOnly) {
  ChunkCache c;
  c.Configure(4 * 8192, 8192);
  const std::uint32_t s = c.Acquire();
  ASSERT_NE(s, ChunkCache::kNoSlot);
  for (int i = 0; i < 5000; ++i) c.Buffer(s)[i] = static_cast<std::uint8_t>(i * 7);
  c.Publish(s, IdOf(9), 5000);
  std::vector<std::uint8_t> out(101, 0xEE);
  ASSERT_TRUE(c.Read(IdOf(9), 1234, 100, out.data()));
  for (int i = 0; i < 100; ++i) ASSERT_EQ(out[i], static_cast<std::uint8_t>((1234 + i) * 7));
  EXPECT_EQ(out[100], 0xEE);
  // Outside the cached length is a miss, never bytes from past the chunk.
  EXPECT_FALSE(c.Read(IdOf(9), 4950, 51, out.data()));
  EXPECT_FALSE(c.Read(IdOf(9), 5001, 0, out.data()));
  EXPECT_TRUE(c.Read(IdOf(9), 5000, 0, out.data()));
  EXPECT_FALSE(c.Read(IdOf(10), 0, 1, out.data()));
  const ChunkCacheStats st = c.stats();
  EXPECT_EQ(st.hits, 2u);
  EXPECT_EQ(st.misses, 3u);
}

TEST(ChunkCacheTest, EvictsLeastRecentlyUsed) {
  ChunkCache c;
  c.Configure(3 * 4096, 4096);
  Put(c, 1, 4096);
  Put(c, 2, 4096);
  Put(c, 3, 4096);
  ASSERT_TRUE(Has(c, 1));  // 1 is now the most recent; 2 the least
  Put(c, 4, 4096);
  EXPECT_FALSE(Has(c, 2));
  EXPECT_TRUE(Has(c, 1));
  EXPECT_TRUE(Has(c, 3));
  EXPECT_TRUE(Has(c, 4));
  Put(c, 5, 4096);  // evicts 1 (3, 4 were touched after it)
  EXPECT_FALSE(Has(c, 1));
  EXPECT_EQ(c.stats().evictions, 2u);
  EXPECT_EQ(c.stats().slots, 3u);
}

TEST(ChunkCacheTest, OwnedSlotsAreNeverEvictedAndDuplicatesFreeTheirSlot) {
  ChunkCache c;
  c.Configure(2 * 4096, 4096);
  const std::uint32_t a = c.Acquire(), b = c.Acquire();
  ASSERT_NE(a, ChunkCache::kNoSlot);
  ASSERT_NE(b, ChunkCache::kNoSlot);
  EXPECT_EQ(c.Acquire(), ChunkCache::kNoSlot);  // both slots are being filled
  // Two readers missed the same chunk: the second publish gives its slot back.
  std::memset(c.Buffer(a), 7, 4096);
  std::memset(c.Buffer(b), 7, 4096);
  c.Publish(a, IdOf(7), 4096);
  c.Publish(b, IdOf(7), 4096);
  EXPECT_TRUE(Has(c, 7));
  const std::uint32_t f = c.Acquire();  // the freed slot, not an eviction
  ASSERT_NE(f, ChunkCache::kNoSlot);
  EXPECT_EQ(c.stats().evictions, 0u);
  c.Release(f);
  EXPECT_TRUE(Has(c, 7));
  // A publish longer than a slot is refused (the slot is freed, nothing is cached).
  const std::uint32_t g = c.Acquire();
  c.Publish(g, IdOf(8), 4097);
  EXPECT_FALSE(Has(c, 8));
}

TEST(ChunkCacheTest, ConcurrentReadersAlwaysSeeTheirChunksBytes) {
  ChunkCache c;
  c.Configure(16 * 4096, 4096);
  std::atomic<bool> bad{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      Random r(static_cast<std::uint64_t>(t) + 1);
      std::uint8_t buf[64];
      for (int i = 0; i < 20000 && !bad; ++i) {
        const std::uint32_t n = r.Uniform(40);  // 40 ids over 16 slots: constant eviction
        const std::uint32_t off = r.Uniform(4096 - 64);
        if (c.Read(IdOf(n), off, 64, buf)) {
          for (std::uint8_t x : buf)
            if (x != static_cast<std::uint8_t>(n * 3)) bad = true;
          continue;
        }
        const std::uint32_t s = c.Acquire();
        if (s == ChunkCache::kNoSlot) continue;
        std::memset(c.Buffer(s), static_cast<int>(n * 3 & 0xFF), 4096);
        if (r.Uniform(10) == 0) c.Release(s);  // a failed read
        else c.Publish(s, IdOf(n), 4096);
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_FALSE(bad);
  EXPECT_LE(c.stats().slots, 16u);
}

// ---- As ChunkStore's read cache ---------------------------------------------------------

// A store with a 1 MiB read cache holding one chunk of `size` random bytes.
struct CachedChunk {
  std::unique_ptr<StoreVolume> s;
  std::vector<std::uint8_t> data;
  ChunkLocation loc;
};

CachedChunk MakeCachedChunk(std::uint64_t seed, std::size_t size) {
  CachedChunk c;
  c.s = StoreVolume::Make(8192);
  if (!c.s) return c;
  c.s->cs->SetReadCache(1 << 20);
  c.data = RandomBytes(seed, size);
  ChunkId id;
  EXPECT_TRUE(Put(*c.s, c.data, &id).ok());
  auto loc = Locate(*c.s, id);
  EXPECT_TRUE(loc.ok());
  if (!loc.ok()) c.s.reset();
  else c.loc = *loc;
  return c;
}

TEST(ChunkStoreReadCacheTest, RepeatedReadsHitAndVerifyIdStillReadsTheDevice) {
  CachedChunk c = MakeCachedChunk(3, 65536);
  ASSERT_TRUE(c.s);
  const std::uint64_t read0 = c.s->cs->stats().bytes_read;
  std::vector<std::uint8_t> out(4096);
  for (std::uint32_t page = 0; page < 16; ++page) {
    ASSERT_TRUE(c.s->cs->ReadLocated(c.loc, page * 4096, 4096, out.data()).ok());
    ASSERT_EQ(0, std::memcmp(out.data(), c.data.data() + page * 4096, 4096)) << page;
  }
  EXPECT_EQ(c.s->cs->stats().bytes_read - read0, 65536u);  // one device read for 16 pages
  EXPECT_EQ(c.s->cs->read_cache_stats().hits, 15u);
  // The device copy goes bad: reads of the cached (content-addressed, verified) chunk still
  // return its true bytes, but fsck's VerifyId reads the device and reports the damage.
  c.s->dev->raw()[c.loc.block * 4096 + 100] ^= 0x40;
  ASSERT_TRUE(c.s->cs->ReadLocated(c.loc, 0, 4096, out.data()).ok());
  EXPECT_EQ(0, std::memcmp(out.data(), c.data.data(), 4096));
  EXPECT_TRUE(c.s->cs->VerifyId(c.loc).IsCorruption());
}

TEST(ChunkStoreReadCacheTest, CorruptChunkIsNeverCached) {
  CachedChunk c = MakeCachedChunk(4, 30000);
  ASSERT_TRUE(c.s);
  std::uint8_t* raw = c.s->dev->raw() + c.loc.block * 4096;
  raw[5] ^= 1;
  std::vector<std::uint8_t> out(100, 0xAB);
  for (int i = 0; i < 3; ++i) {  // every attempt reads the device again and fails
    EXPECT_TRUE(c.s->cs->ReadLocated(c.loc, 1000, 100, out.data()).IsCorruption());
    EXPECT_EQ(out, std::vector<std::uint8_t>(100, 0xAB));
  }
  raw[5] ^= 1;  // repaired: the next read verifies, returns and caches it
  ASSERT_TRUE(c.s->cs->ReadLocated(c.loc, 1000, 100, out.data()).ok());
  EXPECT_EQ(0, std::memcmp(out.data(), c.data.data() + 1000, 100));
  EXPECT_EQ(c.s->cs->read_cache_stats().hits, 0u);
  ASSERT_TRUE(c.s->cs->ReadLocated(c.loc, 0, 30000, nullptr).code() == Code::kInvalidArgument);
  ASSERT_TRUE(c.s->cs->ReadLocated(c.loc, 2000, 100, out.data()).ok());
  EXPECT_EQ(0, std::memcmp(out.data(), c.data.data() + 2000, 100));
  EXPECT_EQ(c.s->cs->read_cache_stats().hits, 1u);
}

TEST(ChunkStoreReadCacheTest, WholeChunkReadsBypassTheCache) {
  auto s = StoreVolume::Make(8192);
  ASSERT_TRUE(s);
  s->cs->SetReadCache(1 << 20);
  for (std::size_t size : {65536u, 30000u}) {  // fills its blocks exactly / a partial last block
    SCOPED_TRACE(size);
    auto data = RandomBytes(size, size);
    ChunkId id;
    ASSERT_TRUE(Put(*s, data, &id).ok());
    auto loc = Locate(*s, id);
    ASSERT_TRUE(loc.ok());
    const ChunkCacheStats before = s->cs->read_cache_stats();
    std::vector<std::uint8_t> all(size + 1, 0xEE);
    for (int i = 0; i < 2; ++i) {
      ASSERT_TRUE(s->cs->ReadLocated(*loc, 0, static_cast<std::uint32_t>(size), all.data()).ok());
      ASSERT_EQ(0, std::memcmp(all.data(), data.data(), size));
      ASSERT_EQ(all[size], 0xEE);
    }
    const ChunkCacheStats after = s->cs->read_cache_stats();
    EXPECT_EQ(after.hits, before.hits);
    EXPECT_EQ(after.misses, before.misses);
    EXPECT_EQ(after.slots, before.slots);
    // A failed whole read leaves zeros or the old buffer, never the bytes that failed their CRC.
    s->dev->raw()[loc->block * 4096 + 7] ^= 0x10;
    std::fill(all.begin(), all.end(), 0xEE);
    EXPECT_TRUE(s->cs->ReadLocated(*loc, 0, static_cast<std::uint32_t>(size), all.data()).IsCorruption());
    const std::uint8_t first = all[0];
    EXPECT_TRUE(first == 0 || first == 0xEE);
    for (std::size_t i = 0; i < size; ++i) ASSERT_EQ(all[i], first) << i;
    EXPECT_EQ(all[size], 0xEE);
  }
}

// Prepare(keep_cached) puts the chunk in the cache: whole and partial reads of it are served
// without a device read (the next merge of a record rewritten piecemeal). A dedup hit is
// cached too; without the flag nothing is.
TEST(ChunkStoreReadCacheTest, KeptChunksAreServedWithoutADeviceRead) {
  auto s = StoreVolume::Make(8192);
  ASSERT_TRUE(s);
  s->cs->SetReadCache(1 << 20);
  for (std::size_t size : {65536u, 30000u}) {
    SCOPED_TRACE(size);
    auto data = RandomBytes(size + 1, size);
    ChunkId id;
    ASSERT_TRUE(Put(*s, data, &id, /*keep_cached=*/true).ok());
    auto loc = Locate(*s, id);
    ASSERT_TRUE(loc.ok());
    const std::uint64_t read0 = s->cs->stats().bytes_read;
    const ChunkCacheStats before = s->cs->read_cache_stats();
    std::vector<std::uint8_t> all(size, 0xEE);
    ASSERT_TRUE(s->cs->ReadLocated(*loc, 0, static_cast<std::uint32_t>(size), all.data()).ok());
    EXPECT_EQ(all, data);
    std::vector<std::uint8_t> part(100);
    ASSERT_TRUE(s->cs->ReadLocated(*loc, 1234, 100, part.data()).ok());
    EXPECT_EQ(0, std::memcmp(part.data(), data.data() + 1234, 100));
    EXPECT_EQ(s->cs->stats().bytes_read, read0);
    EXPECT_EQ(s->cs->read_cache_stats().hits, before.hits + 2);
  }
  // Without the flag the chunk is not cached: its whole read goes to the device.
  auto plain = RandomBytes(77, 65536);
  ChunkId pid;
  ASSERT_TRUE(Put(*s, plain, &pid).ok());
  auto ploc = Locate(*s, pid);
  ASSERT_TRUE(ploc.ok());
  const std::uint64_t read1 = s->cs->stats().bytes_read;
  std::vector<std::uint8_t> got(65536);
  ASSERT_TRUE(s->cs->ReadLocated(*ploc, 0, 65536, got.data()).ok());
  EXPECT_EQ(got, plain);
  EXPECT_EQ(s->cs->stats().bytes_read - read1, 65536u);
  // A second put of the same bytes (dedup) with the flag caches them.
  ASSERT_TRUE(Put(*s, plain, &pid, /*keep_cached=*/true).ok());
  const std::uint64_t read2 = s->cs->stats().bytes_read;
  ASSERT_TRUE(s->cs->ReadLocated(*ploc, 0, 65536, got.data()).ok());
  EXPECT_EQ(got, plain);
  EXPECT_EQ(s->cs->stats().bytes_read, read2);
}

}  // namespace
}  // namespace permfs::store
