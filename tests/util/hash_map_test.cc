#include "util/hash_map.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "util/random.h"

namespace permfs {
namespace {

TEST(HashMapTest, BasicOperations) {
  HashMap<std::uint64_t, int> m;
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.Find(1), nullptr);
  EXPECT_FALSE(m.Erase(1));
  auto [v, inserted] = m.Insert(1, 10);
  EXPECT_TRUE(inserted);
  EXPECT_EQ(*v, 10);
  auto [v2, inserted2] = m.Insert(1, 20);  // does not overwrite
  EXPECT_FALSE(inserted2);
  EXPECT_EQ(*v2, 10);
  EXPECT_EQ(m.size(), 1u);
  m[2] += 5;  // value-initialised, then modified
  EXPECT_EQ(*m.Find(2), 5);
  EXPECT_EQ(m.size(), 2u);
  EXPECT_TRUE(m.Erase(1));
  EXPECT_FALSE(m.Erase(1));
  EXPECT_EQ(m.Find(1), nullptr);
  EXPECT_EQ(m.size(), 1u);
  const auto& cm = m;
  ASSERT_NE(cm.Find(2), nullptr);
  EXPECT_EQ(*cm.Find(2), 5);
  m.Clear();
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.Find(2), nullptr);
  m[3] = 1;
  EXPECT_EQ(m.size(), 1u);
}

TEST(HashMapTest, LoadFactorAndReserve) {
  HashMap<int, int> m;
  m.Reserve(1000);
  const std::size_t cap = m.capacity();
  EXPECT_GE(cap * 3, 1000u * 4);
  EXPECT_EQ(cap & (cap - 1), 0u);
  for (int i = 0; i < 1000; ++i) m.Insert(i, i);
  EXPECT_EQ(m.capacity(), cap);  // no rehash after Reserve
  for (int i = 0; i < 100000; ++i) m.Insert(i, i);
  EXPECT_LE(m.size() * 4, m.capacity() * 3);
}

TEST(HashMapTest, RandomizedDifferentialAgainstUnorderedMap) {
  Random rnd(7);
  HashMap<std::uint64_t, std::uint64_t> m;
  std::unordered_map<std::uint64_t, std::uint64_t> ref;
  for (int step = 0; step < 400000; ++step) {
    // Small key space: plenty of hits, misses, re-inserts and long probe runs.
    const std::uint64_t k = rnd.Uniform(step < 200000 ? 5000 : 50000);
    switch (rnd.Uniform(6)) {
      case 0:
      case 1: {
        const std::uint64_t v = rnd.Next64();
        auto [p, ins] = m.Insert(k, v);
        auto [it, ref_ins] = ref.insert({k, v});
        ASSERT_EQ(ins, ref_ins);
        ASSERT_EQ(*p, it->second);
        break;
      }
      case 2:
        ASSERT_EQ(m.Erase(k), ref.erase(k) == 1);
        break;
      case 3: {
        const std::uint64_t v = rnd.Next64();
        m[k] = v;
        ref[k] = v;
        break;
      }
      default: {
        const std::uint64_t* p = m.Find(k);
        auto it = ref.find(k);
        ASSERT_EQ(p != nullptr, it != ref.end());
        if (p) {
          ASSERT_EQ(*p, it->second);
        }
      }
    }
    ASSERT_EQ(m.size(), ref.size());
  }
  std::size_t seen = 0;
  m.ForEach([&](const std::uint64_t& k, std::uint64_t& v) {
    ++seen;
    auto it = ref.find(k);
    ASSERT_NE(it, ref.end());
    EXPECT_EQ(v, it->second);
  });
  EXPECT_EQ(seen, ref.size());
}

TEST(HashMapTest, EraseHeavy) {
  Random rnd(8);
  HashMap<std::uint32_t, std::uint32_t> m;
  std::unordered_map<std::uint32_t, std::uint32_t> ref;
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 2000; ++i) {
      std::uint32_t k = rnd.Next32();
      m.Insert(k, i);
      ref.insert({k, i});
    }
    // Erase most of what is there, leaving clusters with holes to shift through.
    std::vector<std::uint32_t> keys;
    for (auto& [k, v] : ref) keys.push_back(k);
    for (std::uint32_t k : keys) {
      if (!rnd.OneIn(10)) {
        ASSERT_TRUE(m.Erase(k));
        ref.erase(k);
      }
    }
    ASSERT_EQ(m.size(), ref.size());
    for (auto& [k, v] : ref) {
      const std::uint32_t* p = m.Find(k);
      ASSERT_NE(p, nullptr);
      ASSERT_EQ(*p, v);
    }
  }
  for (auto& [k, v] : ref) ASSERT_TRUE(m.Erase(k));
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.Find(1), nullptr);
}

// Keys that all collide on a few home slots force long runs through backward shift.
struct BadHash {
  std::uint64_t operator()(std::uint64_t k) const { return k % 3; }
};

TEST(HashMapTest, CollidingKeys) {
  HashMap<std::uint64_t, std::uint64_t, BadHash> m;
  for (std::uint64_t i = 0; i < 300; ++i) m.Insert(i, i * 2);
  for (std::uint64_t i = 0; i < 300; i += 2) ASSERT_TRUE(m.Erase(i));
  for (std::uint64_t i = 0; i < 300; ++i) {
    const std::uint64_t* p = m.Find(i);
    if (i % 2) {
      ASSERT_NE(p, nullptr) << i;
      EXPECT_EQ(*p, i * 2);
    } else {
      EXPECT_EQ(p, nullptr) << i;
    }
  }
}

TEST(HashMapTest, MoveOnlyValues) {
  HashMap<int, std::vector<int>> m;
  for (int i = 0; i < 1000; ++i) m[i].push_back(i);
  for (int i = 0; i < 1000; ++i) m[i].push_back(i + 1);
  for (int i = 0; i < 1000; i += 3) m.Erase(i);
  for (int i = 0; i < 1000; ++i) {
    auto* v = m.Find(i);
    if (i % 3 == 0) {
      EXPECT_EQ(v, nullptr);
    } else {
      ASSERT_NE(v, nullptr);
      EXPECT_EQ(*v, (std::vector<int>{i, i + 1}));
    }
  }
  HashMap<int, std::unique_ptr<int>> u;
  for (int i = 0; i < 500; ++i) u.Insert(i, std::make_unique<int>(i));
  auto [p, ins] = u.Insert(7, std::make_unique<int>(99));
  EXPECT_FALSE(ins);
  EXPECT_EQ(**p, 7);
  HashMap<int, std::unique_ptr<int>> moved(std::move(u));
  EXPECT_EQ(moved.size(), 500u);
  EXPECT_TRUE(u.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(**moved.Find(499), 499);
  u = std::move(moved);
  EXPECT_EQ(**u.Find(3), 3);
}

TEST(HashMapTest, CopyIsDeep) {
  HashMap<int, std::string> a;
  for (int i = 0; i < 100; ++i) a.Insert(i, std::to_string(i));
  HashMap<int, std::string> b = a;
  b[5] = "five";
  EXPECT_EQ(*a.Find(5), "5");
  EXPECT_EQ(*b.Find(5), "five");
  EXPECT_EQ(b.size(), 100u);
  a = b;
  EXPECT_EQ(*a.Find(5), "five");
}

TEST(HashMapTest, ByteArrayKeys) {
  using Key = std::array<std::uint8_t, 32>;
  Random rnd(9);
  HashMap<Key, int> m;
  std::vector<Key> keys(5000);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    rnd.Fill(keys[i].data(), keys[i].size());
    ASSERT_TRUE(m.Insert(keys[i], static_cast<int>(i)).second);
  }
  for (std::size_t i = 0; i < keys.size(); ++i) ASSERT_EQ(*m.Find(keys[i]), static_cast<int>(i));
  Key other{};
  EXPECT_EQ(m.Find(other), nullptr);
  // Hash depends on every byte.
  Key a{}, b{};
  b[31] = 1;
  EXPECT_NE(DefaultHash<Key>()(a), DefaultHash<Key>()(b));
}

TEST(HashMapTest, IntegerHashSpreadsSequentialKeys) {
  DefaultHash<std::uint64_t> h;
  // Low bits of consecutive keys must not be consecutive (the table masks low bits).
  int same_bucket = 0;
  for (std::uint64_t i = 0; i < 1024; ++i)
    if ((h(i) & 1023) == (h(i + 1) & 1023)) ++same_bucket;
  EXPECT_LT(same_bucket, 10);
}

TEST(HashMapTest, ForEachCanModifyValues) {
  HashMap<int, int> m;
  for (int i = 0; i < 100; ++i) m.Insert(i, i);
  m.ForEach([](const int&, int& v) { v *= 2; });
  int sum = 0;
  const auto& cm = m;
  cm.ForEach([&](const int&, const int& v) { sum += v; });
  EXPECT_EQ(sum, 2 * 4950);
}

TEST(HashMapDeathTest, ModifyDuringForEachPanics) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  HashMap<int, int> m;
  for (int i = 0; i < 10; ++i) m.Insert(i, i);
  EXPECT_DEATH(m.ForEach([&](const int& k, int&) { m.Erase(k); }), "modified during ForEach");
}

}  // namespace
}  // namespace permfs
