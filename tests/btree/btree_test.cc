// B+tree unit tests: node layout operations and validation (btree/node.h), then the tree over a
// mounted Volume, differentially against std::map (btree/btree.h). Seeds are printed on failure
// (SCOPED_TRACE) so a failing run can be replayed with the same parameters.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "block/mem_block_device.h"
#include "btree/btree.h"
#include "btree/btree_test_util.h"
#include "btree/node.h"
#include "format/meta_block.h"
#include "util/coding.h"
#include "util/random.h"
#include "volume/volume.h"

namespace permfs {
namespace {

using btree::NodeView;
using btree::NodeWriter;
using btree::Slice;
using btreetest::Model;
using btreetest::StatusStr;

std::string RandBytes(Random& r, std::size_t n) {
  std::string s(n, '\0');
  r.Fill(s.data(), n);
  return s;
}

// ------------------------------------------------------------------------------------------------
// Node level

class NodeTest : public ::testing::TestWithParam<std::uint32_t> {
 protected:
  void SetUp() override {
    bs_ = GetParam();
    buf_.assign(bs_, 0xEE);
    NodeWriter(buf_.data(), bs_).Init(0);
  }
  // Contents of the node as (key, value) pairs in slot order.
  std::vector<std::pair<std::string, std::string>> Items() const {
    NodeView n(buf_.data(), bs_);
    std::vector<std::pair<std::string, std::string>> out;
    for (std::size_t i = 0; i < n.count(); ++i)
      out.emplace_back(n.key(i).ToString(), n.value(i).ToString());
    return out;
  }
  std::uint32_t bs_ = 4096;
  std::vector<std::uint8_t> buf_;
};

TEST_P(NodeTest, InitIsAnEmptyValidLeaf) {
  NodeView n(buf_.data(), bs_);
  EXPECT_EQ(n.count(), 0u);
  EXPECT_TRUE(n.is_leaf());
  EXPECT_EQ(n.used_bytes(), 0u);
  EXPECT_EQ(DecodeLE32(buf_.data() + 68), bs_);
  EXPECT_TRUE(btree::ValidateNode(buf_.data(), bs_).ok());
  bool found = true;
  EXPECT_EQ(n.LowerBound(Slice(std::string("a")), &found), 0u);
  EXPECT_FALSE(found);
  // The meta header bytes are untouched by Init.
  for (std::size_t i = 0; i < format::kMetaHeaderSize; ++i) ASSERT_EQ(buf_[i], 0xEE) << i;
}

// Random inserts and removes against a sorted vector model; every state validates, and an insert
// is refused only when the live bytes really do not fit.
TEST_P(NodeTest, RandomInsertRemoveMatchesModel) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE("seed=" + std::to_string(seed) + " bs=" + std::to_string(bs_));
    Random rnd(seed);
    NodeWriter w(buf_.data(), bs_);
    w.Init(0);
    std::vector<std::pair<std::string, std::string>> model;
    std::size_t refused = 0;
    for (int op = 0; op < 3000; ++op) {
      if (model.empty() || rnd.Uniform(100) < 60) {
        std::string k = RandBytes(rnd, 1 + rnd.Uniform(rnd.OneIn(4) ? 255 : 12));
        std::string v = RandBytes(rnd, rnd.Uniform(rnd.OneIn(5) ? 600 : 40));
        bool found = false;
        std::size_t pos = w.LowerBound(Slice(k), &found);
        auto it = std::lower_bound(model.begin(), model.end(), std::make_pair(k, std::string()),
                                   [](const auto& a, const auto& b) { return a.first < b.first; });
        ASSERT_EQ(pos, static_cast<std::size_t>(it - model.begin()));
        ASSERT_EQ(found, it != model.end() && it->first == k);
        if (found) continue;
        const std::size_t need = btree::kEntryOverhead + k.size() + v.size();
        const bool fits = w.used_bytes() + need <= btree::NodeCapacity(bs_);
        const bool ok = w.InsertAt(pos, Slice(k), Slice(v));
        ASSERT_EQ(ok, fits) << "used=" << w.used_bytes() << " need=" << need;
        if (ok) model.insert(it, {k, v});
        else ++refused;
      } else {
        std::size_t i = rnd.Uniform(static_cast<std::uint32_t>(model.size()));
        w.RemoveAt(i);
        model.erase(model.begin() + static_cast<std::ptrdiff_t>(i));
      }
      Status st = btree::ValidateNode(buf_.data(), bs_);
      ASSERT_TRUE(st.ok()) << "op " << op << ": " << StatusStr(st);
      ASSERT_EQ(Items(), model) << "op " << op;
    }
    EXPECT_GT(refused, 0u) << "the node never filled up";
  }
}

TEST_P(NodeTest, CompactReclaimsHolesAndKeepsOrder) {
  NodeWriter w(buf_.data(), bs_);
  std::vector<std::pair<std::string, std::string>> model;
  for (int i = 0; i < 40; ++i) {
    char k[8];
    std::snprintf(k, sizeof k, "k%03d", i);
    std::string v(30, static_cast<char>('a' + i % 26));
    ASSERT_TRUE(w.InsertAt(static_cast<std::size_t>(i), Slice(std::string(k)), Slice(v)));
    model.emplace_back(k, v);
  }
  // Remove every other entry (holes in the middle of the entry area).
  for (int i = 39; i >= 0; i -= 2) {
    w.RemoveAt(static_cast<std::size_t>(i));
    model.erase(model.begin() + i);
  }
  const std::size_t used = w.used_bytes();
  w.Compact();
  EXPECT_EQ(Items(), model);
  EXPECT_EQ(DecodeLE32(buf_.data() + 68), bs_ - (used - 2 * model.size()));
  EXPECT_TRUE(btree::ValidateNode(buf_.data(), bs_).ok());
  // Removing everything resets data_start to the block end.
  while (w.count() > 0) w.RemoveAt(0);
  EXPECT_EQ(DecodeLE32(buf_.data() + 68), bs_);
}

// A fragmented node accepts an insert that only fits after compaction.
TEST_P(NodeTest, InsertCompactsAFragmentedNode) {
  NodeWriter w(buf_.data(), bs_);
  std::size_t i = 0;
  const std::string v(100, 'v');
  for (;; ++i) {
    char k[16];
    std::snprintf(k, sizeof k, "key%06zu", i);
    if (!w.InsertAt(i, Slice(std::string(k)), Slice(v))) break;
  }
  ASSERT_GT(i, 4u);
  // Free two entries in the middle: no contiguous gap, but room in total.
  w.RemoveAt(1);
  w.RemoveAt(1);
  const std::string big(150, 'B');
  ASSERT_TRUE(w.InsertAt(1, Slice(std::string("key000001x")), Slice(big)));
  EXPECT_TRUE(btree::ValidateNode(buf_.data(), bs_).ok());
  EXPECT_EQ(w.value(1).ToString(), big);
  EXPECT_EQ(w.key(0).ToString(), "key000000");
  EXPECT_EQ(w.key(2).ToString(), "key000003");
}

TEST_P(NodeTest, SetValueGrowShrinkAndRefusal) {
  NodeWriter w(buf_.data(), bs_);
  ASSERT_TRUE(w.InsertAt(0, Slice(std::string("a")), Slice(std::string("1"))));
  ASSERT_TRUE(w.InsertAt(1, Slice(std::string("b")), Slice(std::string("22"))));
  ASSERT_TRUE(w.InsertAt(2, Slice(std::string("c")), Slice(std::string("333"))));
  // Same size: in place.
  ASSERT_TRUE(w.SetValue(1, Slice(std::string("XY"))));
  // Growth and shrink.
  const std::string grown(500, 'g');
  ASSERT_TRUE(w.SetValue(1, Slice(grown)));
  EXPECT_EQ(w.value(1).ToString(), grown);
  ASSERT_TRUE(w.SetValue(0, Slice(std::string())));
  EXPECT_EQ(w.value(0).size, 0u);
  auto items = Items();
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0], std::make_pair(std::string("a"), std::string()));
  EXPECT_EQ(items[1], std::make_pair(std::string("b"), grown));
  EXPECT_EQ(items[2], std::make_pair(std::string("c"), std::string("333")));
  EXPECT_TRUE(btree::ValidateNode(buf_.data(), bs_).ok());
  // Fill the node, then a growth that cannot fit is refused and leaves the node unchanged.
  for (int i = 0;; ++i) {
    std::string k = "d" + std::to_string(1000 + i);
    if (!w.InsertAt(w.count(), Slice(k), Slice(std::string(64, 'f')))) break;
  }
  const auto before = Items();
  const std::string huge(bs_ / 2, 'H');
  EXPECT_FALSE(w.SetValue(1, Slice(huge)));
  EXPECT_EQ(Items(), before);
  EXPECT_TRUE(btree::ValidateNode(buf_.data(), bs_).ok());
  // Growth that fits only after compaction of holes succeeds.
  w.RemoveAt(5);
  w.RemoveAt(5);
  const std::string more(grown.size() + 100, 'm');
  ASSERT_TRUE(w.SetValue(1, Slice(more)));
  EXPECT_EQ(w.value(1).ToString(), more);
  EXPECT_TRUE(btree::ValidateNode(buf_.data(), bs_).ok());
}

TEST_P(NodeTest, InternalNodeChildrenAndChildFor) {
  NodeWriter w(buf_.data(), bs_);
  w.Init(1);
  ASSERT_TRUE(w.InsertAt(0, Slice(), Slice(btree::EncodeChild(100, 7))));
  ASSERT_TRUE(w.InsertAt(1, Slice(std::string("m")), Slice(btree::EncodeChild(200, 8))));
  ASSERT_TRUE(w.InsertAt(2, Slice(std::string("t")), Slice(btree::EncodeChild(300, 9))));
  EXPECT_TRUE(btree::ValidateNode(buf_.data(), bs_).ok());
  EXPECT_FALSE(w.is_leaf());
  EXPECT_EQ(w.child(1), 200u);
  EXPECT_EQ(w.child_generation(2), 9u);
  EXPECT_EQ(w.ChildFor(Slice(std::string("a"))), 0u);
  EXPECT_EQ(w.ChildFor(Slice(std::string("m"))), 1u);
  EXPECT_EQ(w.ChildFor(Slice(std::string("mz"))), 1u);
  EXPECT_EQ(w.ChildFor(Slice(std::string("t"))), 2u);
  EXPECT_EQ(w.ChildFor(Slice(std::string("zzz"))), 2u);
  w.SetChild(1, 222, 88);
  w.SetChildGeneration(2, 99);
  EXPECT_EQ(w.child(1), 222u);
  EXPECT_EQ(w.child_generation(1), 88u);
  EXPECT_EQ(w.child_generation(2), 99u);
  EXPECT_EQ(w.child(2), 300u);
}

// Every malformed field is rejected with Corruption (never accepted, never a crash).
TEST_P(NodeTest, ValidateRejectsEveryMalformedField) {
  NodeWriter w(buf_.data(), bs_);
  for (int i = 0; i < 5; ++i) {
    std::string k = "key" + std::to_string(i);
    ASSERT_TRUE(w.InsertAt(static_cast<std::size_t>(i), Slice(k), Slice(std::string(10, 'v'))));
  }
  ASSERT_TRUE(btree::ValidateNode(buf_.data(), bs_).ok());
  const std::vector<std::uint8_t> good = buf_;
  const std::uint32_t bs = bs_;
  auto slot = [&](std::size_t i) { return DecodeLE16(buf_.data() + btree::kNodeHeader + 2 * i); };
  struct Case {
    const char* name;
    std::function<void()> mutate;
  };
  std::vector<Case> cases = {
      {"level too high", [&] { EncodeLE16(buf_.data() + 64, 33); }},
      {"count past block", [&] { EncodeLE16(buf_.data() + 66, 0xFFFF); }},
      {"count past data_start", [&] { EncodeLE16(buf_.data() + 66, static_cast<std::uint16_t>((DecodeLE32(buf_.data() + 68) - btree::kNodeHeader) / 2 + 1)); }},
      {"data_start past block", [&] { EncodeLE32(buf_.data() + 68, bs + 1); }},
      {"data_start inside slots", [&] { EncodeLE32(buf_.data() + 68, btree::kNodeHeader + 4); }},
      {"offset below data_start", [&] { EncodeLE16(buf_.data() + btree::kNodeHeader + 2, static_cast<std::uint16_t>(DecodeLE32(buf_.data() + 68) - 1)); }},
      {"offset at block end", [&] { EncodeLE16(buf_.data() + btree::kNodeHeader, static_cast<std::uint16_t>(bs - 2)); }},
      {"key length overruns", [&] { EncodeLE16(buf_.data() + slot(0), 0xFFF0); }},
      {"value length overruns", [&] { EncodeLE16(buf_.data() + slot(0) + 2, 0xFFF0); }},
      {"key too long", [&] {
         // A key of 256 bytes that still fits the block.
         w.Init(0);
         std::string k(256, 'k');
         ASSERT_TRUE(w.InsertAt(0, Slice(k), Slice()));
       }},
      {"keys out of order", [&] {
         std::uint16_t a = slot(1), b = slot(2);
         EncodeLE16(buf_.data() + btree::kNodeHeader + 2, b);
         EncodeLE16(buf_.data() + btree::kNodeHeader + 4, a);
       }},
      {"duplicate keys", [&] {
         EncodeLE16(buf_.data() + btree::kNodeHeader + 2, slot(2));
       }},
      {"internal node with a bad child pointer size", [&] { EncodeLE16(buf_.data() + 64, 1); }},
      {"empty internal node", [&] {
         w.Init(1);
       }},
  };
  if (bs_ <= 0x10000) {
    // Offsets are u16: on a 64 KiB block every offset is in range, so this case needs < 64 KiB.
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    buf_ = good;
    c.mutate();
    Status st = btree::ValidateNode(buf_.data(), bs_);
    EXPECT_TRUE(st.IsCorruption()) << c.name << " accepted: " << StatusStr(st);
  }
  // Random corruption of the payload never crashes the validator, and whatever it accepts can
  // be walked safely (LowerBound, key/value access stay inside the block).
  Random rnd(77);
  std::size_t rejected = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    buf_ = good;
    const int flips = 1 + static_cast<int>(rnd.Uniform(8));
    for (int f = 0; f < flips; ++f) {
      std::size_t byte = 64 + rnd.Uniform(static_cast<std::uint32_t>(
                                  btree::kNodeHeader + 2 * 5 + 16 - 64));
      if (rnd.OneIn(2)) byte = 64 + rnd.Uniform(bs_ - 64);
      buf_[byte] ^= static_cast<std::uint8_t>(1u << rnd.Uniform(8));
    }
    Status st = btree::ValidateNode(buf_.data(), bs_);
    if (!st.ok()) {
      ASSERT_TRUE(st.IsCorruption());
      ++rejected;
      continue;
    }
    NodeView n(buf_.data(), bs_);
    for (std::size_t i = 0; i < n.count(); ++i) {
      Slice k = n.key(i), v = n.value(i);
      ASSERT_GE(k.data, buf_.data());
      ASSERT_LE(v.data + v.size, buf_.data() + bs_);
    }
    bool found;
    (void)n.LowerBound(Slice(std::string("key2")), &found);
  }
  EXPECT_GT(rejected, 0u);
}

TEST_P(NodeTest, ReadWriteItemsRoundTrip) {
  NodeWriter w(buf_.data(), bs_);
  std::vector<btree::Item> items;
  for (int i = 0; i < 20; ++i)
    items.push_back(btree::Item{"k" + std::to_string(100 + i), std::string(i * 3, 'x')});
  btree::WriteItems(w, 0, items.data(), items.size());
  std::vector<btree::Item> back;
  btree::ReadItems(w, &back);
  ASSERT_EQ(back.size(), items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    EXPECT_EQ(back[i].key, items[i].key);
    EXPECT_EQ(back[i].value, items[i].value);
  }
  EXPECT_TRUE(btree::ValidateNode(buf_.data(), bs_).ok());
}

INSTANTIATE_TEST_SUITE_P(BlockSizes, NodeTest, ::testing::Values(4096u, 16384u));

// ------------------------------------------------------------------------------------------------
// Tree level

struct Env {
  std::unique_ptr<block::MemBlockDevice> dev;
  Owned<volume::Volume> vol;
  alloc::AllocStats fresh;  // allocator stats right after mkfs + mount

  btree::BTree Tree(std::uint32_t id) {
    return btree::BTree(vol->meta(), vol->allocator(), vol->roots(), id);
  }
};

class TreeTest : public ::testing::TestWithParam<std::uint32_t> {
 protected:
  void SetUp() override {
    bs_ = GetParam();
    env_.dev = std::make_unique<block::MemBlockDevice>((64ull << 20) / 4096, 4096);
    volume::MkfsOptions mo;
    mo.block_size = bs_;
    ASSERT_TRUE(volume::Volume::Mkfs(env_.dev.get(), mo).ok());
    Mount();
    env_.fresh = env_.vol->allocator()->stats();
  }
  void TearDown() override {
    if (env_.vol.get()) {
      Status st = env_.vol->Unmount();
      EXPECT_TRUE(st.ok()) << StatusStr(st);
    }
  }
  void Mount() {
    auto v = volume::Volume::Mount(env_.dev.get(), {});
    ASSERT_TRUE(v.ok()) << StatusStr(v.status());
    env_.vol = std::move(*v);
  }
  void Remount() {
    ASSERT_TRUE(env_.vol->Unmount().ok());
    env_.vol = Owned<volume::Volume>();
    volume::MountReport rep;
    auto v = volume::Volume::Mount(env_.dev.get(), {}, &rep);
    ASSERT_TRUE(v.ok()) << StatusStr(v.status());
    EXPECT_EQ(rep.replayed_transactions, 0u) << "unmount left work for the next mount";
    env_.vol = std::move(*v);
  }
  Model ScanTree(std::uint32_t id) {
    journal::ReadView view(env_.vol->meta());
    auto t = env_.Tree(id);
    Model m;
    Status st = btreetest::ScanAll(t, view, &m);
    EXPECT_TRUE(st.ok()) << StatusStr(st);
    return m;
  }
  btree::TreeCheckStats CheckTree(std::uint32_t id, const Model* expect) {
    journal::ReadView view(env_.vol->meta());
    auto t = env_.Tree(id);
    btree::TreeCheckStats st;
    Status s = t.Check(view, &st, nullptr, nullptr);
    EXPECT_TRUE(s.ok()) << "tree " << id << ": " << StatusStr(s);
    if (expect) {
      EXPECT_EQ(st.entries, expect->size());
      auto c = t.Count(view);
      EXPECT_TRUE(c.ok());
      if (c.ok()) {
        EXPECT_EQ(*c, expect->size());
      }
    }
    return st;
  }
  void FsckAll() {
    std::string err = btreetest::FsckTrees(env_.vol.get());
    EXPECT_TRUE(err.empty()) << err;
  }

  std::uint32_t bs_ = 4096;
  Env env_;
};

// Keys for the differential test: a pool with random lengths 1..255 (plus some short ones so that
// prefixes and near-collisions are common).
std::vector<std::string> KeyPool(Random& rnd, std::size_t n) {
  std::vector<std::string> keys;
  while (keys.size() < n) {
    std::size_t len = rnd.OneIn(3) ? 1 + rnd.Uniform(255) : 1 + rnd.Uniform(8);
    std::string k(len, '\0');
    for (char& c : k) c = static_cast<char>(rnd.OneIn(4) ? rnd.Uniform(256) : 'a' + rnd.Uniform(4));
    keys.push_back(std::move(k));
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

std::string RandValue(Random& rnd, std::size_t max_payload, const std::string& key) {
  const std::size_t room = max_payload - key.size();
  std::size_t len;
  switch (rnd.Uniform(4)) {
    case 0: len = 0; break;
    case 1: len = rnd.Uniform(static_cast<std::uint32_t>(room + 1)); break;  // up to the max
    default: len = rnd.Uniform(static_cast<std::uint32_t>(std::min<std::size_t>(room, 48) + 1));
  }
  return RandBytes(rnd, len);
}

// The randomized differential test: mixed Put/Insert/Delete/Get/Scan over many handles with
// random aborts, Check after every batch, periodic remounts.
TEST_P(TreeTest, DifferentialAgainstStdMap) {
  const std::uint64_t seeds[] = {1, 2, 3};
  for (std::uint64_t seed : seeds) {
    SCOPED_TRACE("seed=" + std::to_string(seed) + " bs=" + std::to_string(bs_));
    Random rnd(seed * 7919 + bs_);
    const std::uint32_t id = static_cast<std::uint32_t>(1 + seed);
    std::vector<std::string> keys = KeyPool(rnd, 600);
    auto tree = env_.Tree(id);
    const std::size_t maxp = tree.max_entry_payload();
    Model model;
    std::uint64_t aborts = 0, max_height = 0;
    for (int batch = 0; batch < 120; ++batch) {
      const bool abort = rnd.OneIn(5);
      Model shadow = model;  // what this handle would produce
      alloc::AllocStats before = env_.vol->allocator()->stats();
      {
        auto txn = env_.vol->meta()->Begin();
        ASSERT_TRUE(txn.ok()) << StatusStr(txn.status());
        auto t = env_.Tree(id);
        const int ops = 1 + static_cast<int>(rnd.Uniform(batch % 10 == 0 ? 200 : 25));
        for (int op = 0; op < ops; ++op) {
          const std::string& k = keys[rnd.Uniform(static_cast<std::uint32_t>(keys.size()))];
          const std::uint32_t what = rnd.Uniform(100);
          SCOPED_TRACE("batch " + std::to_string(batch) + " op " + std::to_string(op));
          if (what < 40) {
            std::string v = RandValue(rnd, maxp, k);
            Status st = t.Put(*txn, Slice(k), Slice(v));
            ASSERT_TRUE(st.ok()) << StatusStr(st);
            shadow[k] = v;
          } else if (what < 55) {
            std::string v = RandValue(rnd, maxp, k);
            Status st = t.Insert(*txn, Slice(k), Slice(v));
            if (shadow.count(k)) {
              ASSERT_EQ(st.code(), Code::kExists) << StatusStr(st);
            } else {
              ASSERT_TRUE(st.ok()) << StatusStr(st);
              shadow[k] = v;
            }
          } else if (what < 80) {
            Status st = t.Delete(*txn, Slice(k));
            if (shadow.erase(k)) {
              ASSERT_TRUE(st.ok()) << StatusStr(st);
            } else {
              ASSERT_TRUE(st.IsNotFound()) << StatusStr(st);
            }
          } else if (what < 95) {
            std::string v;
            Status st = t.Get(*txn, Slice(k), &v);
            auto it = shadow.find(k);
            if (it == shadow.end()) {
              ASSERT_TRUE(st.IsNotFound()) << StatusStr(st);
            } else {
              ASSERT_TRUE(st.ok()) << StatusStr(st);
              ASSERT_EQ(v, it->second);
            }
          } else {
            Model got;
            ASSERT_TRUE(btreetest::ScanAll(t, *txn, &got).ok());
            ASSERT_EQ(got, shadow);
          }
        }
        if (abort) {
          txn->Abort();
          ++aborts;
        } else {
          ASSERT_TRUE(txn->Commit().ok());
          model = std::move(shadow);
        }
      }
      if (abort) {
        // An aborted handle leaves the tree and the allocator exactly as before.
        alloc::AllocStats after = env_.vol->allocator()->stats();
        EXPECT_EQ(after.free_blocks, before.free_blocks);
        EXPECT_EQ(after.available_blocks, before.available_blocks);
        EXPECT_EQ(after.pending_free_blocks, before.pending_free_blocks);
      }
      ASSERT_EQ(ScanTree(id), model) << "batch " << batch << (abort ? " (aborted)" : "");
      auto st = CheckTree(id, &model);
      max_height = std::max<std::uint64_t>(max_height, st.height);
      if (rnd.OneIn(4)) {
        ASSERT_TRUE(env_.vol->meta()->Sync().ok());
      }
      if (rnd.OneIn(10)) {
        ASSERT_TRUE(env_.vol->meta()->SyncAndCheckpoint().ok());
      }
      if (batch % 40 == 39) {
        Remount();
        ASSERT_EQ(ScanTree(id), model);
        FsckAll();
      }
      if (HasFatalFailure()) return;
    }
    EXPECT_GT(aborts, 0u);
    EXPECT_GE(max_height, 2u) << "the test never split the root";
  }
  FsckAll();
}

// Sequential appends and reverse inserts (the sequential split path), then point checks.
TEST_P(TreeTest, SequentialAndReverseInserts) {
  for (int reverse = 0; reverse < 2; ++reverse) {
    const std::uint32_t id = 5 + static_cast<std::uint32_t>(reverse);
    Model model;
    const int n = 20000;
    for (int b = 0; b < n / 500; ++b) {
      auto txn = env_.vol->meta()->Begin();
      ASSERT_TRUE(txn.ok());
      auto t = env_.Tree(id);
      for (int j = 0; j < 500; ++j) {
        int i = b * 500 + j;
        if (reverse) i = n - 1 - i;
        char k[32];
        std::snprintf(k, sizeof k, "seq%09d", i);
        std::string v = "v" + std::to_string(i * 31);
        Status st = t.Insert(*txn, Slice(std::string(k)), Slice(v));
        ASSERT_TRUE(st.ok()) << k << ": " << StatusStr(st);
        model[k] = v;
      }
      ASSERT_TRUE(txn->Commit().ok());
    }
    auto st = CheckTree(id, &model);
    EXPECT_GE(st.height, 2u);
    // Sequential appends fill leaves almost completely (the split keeps the left node whole).
    const double per_leaf = static_cast<double>(st.entries) / static_cast<double>(st.leaves);
    const double max_per_leaf =
        static_cast<double>(btree::NodeCapacity(bs_)) / (btree::kEntryOverhead + 12 + 8);
    if (!reverse) {
      EXPECT_GT(per_leaf, 0.85 * max_per_leaf) << "leaves=" << st.leaves;
    } else {
      EXPECT_GT(per_leaf, 0.4 * max_per_leaf) << "leaves=" << st.leaves;
    }
    ASSERT_EQ(ScanTree(id), model);
    journal::ReadView view(env_.vol->meta());
    auto t = env_.Tree(id);
    std::string v;
    EXPECT_TRUE(t.Get(view, Slice(std::string("seq000000000")), &v).ok());
    EXPECT_EQ(v, "v0");
    EXPECT_TRUE(t.Get(view, Slice(std::string("seq000019999")), &v).ok());
    EXPECT_TRUE(t.Get(view, Slice(std::string("seq00001999")), &v).IsNotFound());
    EXPECT_TRUE(t.Get(view, Slice(std::string("zzz")), &v).IsNotFound());
    EXPECT_TRUE(t.Get(view, Slice(std::string("a")), &v).IsNotFound());
  }
  FsckAll();
  Remount();
  FsckAll();
}

// Fill a tree with long keys (height >= 3), delete everything in random order: the tree becomes
// empty (height 0) and every node block is freed (allocator back to its post-mkfs state).
TEST_P(TreeTest, DeleteEverythingFreesAllNodes) {
  for (int order = 0; order < 3; ++order) {  // random, ascending, descending
    SCOPED_TRACE("order=" + std::to_string(order));
    const std::uint32_t id = 7;
    Random rnd(100 + order);
    Model model;
    std::vector<std::string> keys;
    for (int i = 0; i < 3000; ++i) {
      std::string k(150 + rnd.Uniform(100), 'k');
      std::snprintf(k.data(), k.size(), "%08d", static_cast<int>(rnd.Uniform(1u << 30)));
      k[8] = '.';
      keys.push_back(k);
    }
    for (std::size_t b = 0; b < keys.size(); b += 100) {
      auto txn = env_.vol->meta()->Begin();
      ASSERT_TRUE(txn.ok());
      auto t = env_.Tree(id);
      for (std::size_t i = b; i < std::min(keys.size(), b + 100); ++i) {
        std::string v = RandBytes(rnd, rnd.Uniform(40));
        Status ps = t.Put(*txn, Slice(keys[i]), Slice(v));
        ASSERT_TRUE(ps.ok()) << i << ": " << StatusStr(ps);
        model[keys[i]] = v;
      }
      ASSERT_TRUE(txn->Commit().ok());
    }
    auto st = CheckTree(id, &model);
    if (bs_ == 4096) {
      EXPECT_GE(st.height, 3u);
    }
    FsckAll();
    std::vector<std::string> del(model.size());
    std::transform(model.begin(), model.end(), del.begin(), [](const auto& p) { return p.first; });
    if (order == 0) {
      for (std::size_t i = del.size(); i > 1; --i)
        std::swap(del[i - 1], del[rnd.Uniform(static_cast<std::uint32_t>(i))]);
    } else if (order == 2) {
      std::reverse(del.begin(), del.end());
    }
    for (std::size_t b = 0; b < del.size(); b += 97) {
      auto txn = env_.vol->meta()->Begin();
      ASSERT_TRUE(txn.ok());
      auto t = env_.Tree(id);
      for (std::size_t i = b; i < std::min(del.size(), b + 97); ++i) {
        Status s = t.Delete(*txn, Slice(del[i]));
        ASSERT_TRUE(s.ok()) << i << ": " << StatusStr(s);
        model.erase(del[i]);
      }
      ASSERT_TRUE(txn->Commit().ok());
      CheckTree(id, &model);
      if (HasFatalFailure()) return;
    }
    ASSERT_TRUE(model.empty());
    st = CheckTree(id, &model);
    EXPECT_EQ(st.height, 0u);
    EXPECT_EQ(st.nodes, 0u);
    {
      journal::ReadView view(env_.vol->meta());
      auto root = env_.vol->roots()->GetRoot(view, id);
      ASSERT_TRUE(root.ok());
      EXPECT_EQ(root->height, 0u);
      EXPECT_EQ(root->root_block, 0u);
      EXPECT_EQ(root->entries, 0u);
    }
    ASSERT_TRUE(env_.vol->meta()->SyncAndCheckpoint().ok());
    alloc::AllocStats a = env_.vol->allocator()->stats();
    EXPECT_EQ(a.free_blocks, env_.fresh.free_blocks) << "node blocks leaked";
    EXPECT_EQ(a.available_blocks, env_.fresh.available_blocks);
    EXPECT_EQ(a.pending_free_blocks, 0u);
    FsckAll();
  }
  Remount();
  alloc::AllocStats a = env_.vol->allocator()->stats();
  EXPECT_EQ(a.free_blocks, env_.fresh.free_blocks);
}

TEST_P(TreeTest, ScanBounds) {
  const std::uint32_t id = 8;
  Model model;
  {
    auto txn = env_.vol->meta()->Begin();
    ASSERT_TRUE(txn.ok());
    auto t = env_.Tree(id);
    for (int i = 0; i < 3000; i += 3) {
      char k[16];
      std::snprintf(k, sizeof k, "%05d", i);
      ASSERT_TRUE(t.Put(*txn, Slice(std::string(k)), Slice(std::string(k) + "-val")).ok());
      model[k] = std::string(k) + "-val";
    }
    ASSERT_TRUE(txn->Commit().ok());
  }
  journal::ReadView view(env_.vol->meta());
  auto t = env_.Tree(id);
  Random rnd(5);
  for (int trial = 0; trial < 500; ++trial) {
    char a[16], b[16];
    std::snprintf(a, sizeof a, "%05d", static_cast<int>(rnd.Uniform(3100)));
    std::snprintf(b, sizeof b, "%05d", static_cast<int>(rnd.Uniform(3100)));
    std::string start = rnd.OneIn(10) ? std::string() : std::string(a);
    std::string end = rnd.OneIn(10) ? std::string() : std::string(b);
    if (!start.empty() && rnd.OneIn(5)) start.pop_back();  // a prefix, not a key
    Model got;
    ASSERT_TRUE(btreetest::ScanRange(t, view, start, end, &got).ok());
    Model want;
    for (auto it = model.lower_bound(start);
         it != model.end() && (end.empty() || it->first < end); ++it)
      want.insert(*it);
    ASSERT_EQ(got, want) << "[" << start << ", " << end << ")";
  }
  // Early stop: the callback's false ends the scan after exactly n entries.
  struct Ctx {
    int left;
    int seen;
  } ctx{17, 0};
  ASSERT_TRUE(t.Scan(view, Slice(std::string("00300")), Slice(),
                     [](void* c, const Slice&, const Slice&) {
                       auto* x = static_cast<Ctx*>(c);
                       ++x->seen;
                       return --x->left > 0;
                     },
                     &ctx)
                  .ok());
  EXPECT_EQ(ctx.seen, 17);
  // Empty range and an empty tree.
  Model got;
  ASSERT_TRUE(btreetest::ScanRange(t, view, "00500", "00500", &got).ok());
  EXPECT_TRUE(got.empty());
  auto empty = env_.Tree(9);
  ASSERT_TRUE(btreetest::ScanAll(empty, view, &got).ok());
  EXPECT_TRUE(got.empty());
  std::string v;
  EXPECT_TRUE(empty.Get(view, Slice(std::string("x")), &v).IsNotFound());
}

TEST_P(TreeTest, BadArgumentsLeaveTheTreeUnchanged) {
  auto txn = env_.vol->meta()->Begin();
  ASSERT_TRUE(txn.ok());
  auto t = env_.Tree(1);
  const std::size_t maxp = t.max_entry_payload();
  EXPECT_EQ(t.Put(*txn, Slice(), Slice(std::string("v"))).code(), Code::kInvalidArgument);
  EXPECT_EQ(t.Put(*txn, Slice(std::string(256, 'k')), Slice()).code(), Code::kInvalidArgument);
  EXPECT_EQ(t.Put(*txn, Slice(std::string(10, 'k')), Slice(std::string(maxp - 9, 'v'))).code(),
            Code::kInvalidArgument);
  EXPECT_TRUE(t.Put(*txn, Slice(std::string(10, 'k')), Slice(std::string(maxp - 10, 'v'))).ok());
  EXPECT_TRUE(t.Put(*txn, Slice(std::string(255, 'z')), Slice(std::string(maxp - 255, 'v'))).ok());
  EXPECT_TRUE(t.Delete(*txn, Slice(std::string("absent"))).IsNotFound());
  ASSERT_TRUE(txn->Commit().ok());
  auto bad = env_.Tree(16);
  journal::ReadView view(env_.vol->meta());
  std::string v;
  EXPECT_EQ(bad.Get(view, Slice(std::string("x")), &v).code(), Code::kInvalidArgument);
}

// Trees 1..15 in one volume, interleaved in the same handles; each matches its own model.
TEST_P(TreeTest, FifteenTreesInOneVolume) {
  Random rnd(15);
  std::vector<Model> models(16);
  std::vector<std::uint32_t> ids;
  for (std::uint32_t id = 1; id <= 15; ++id) ids.push_back(id);
  for (int batch = 0; batch < 30; ++batch) {
    auto txn = env_.vol->meta()->Begin();
    ASSERT_TRUE(txn.ok());
    for (int op = 0; op < 150; ++op) {
      const std::uint32_t id = 1 + rnd.Uniform(15);
      auto t = env_.Tree(id);
      std::string k = "t" + std::to_string(id) + "/" + std::to_string(rnd.Uniform(400));
      if (rnd.OneIn(4)) {
        Status st = t.Delete(*txn, Slice(k));
        ASSERT_TRUE(st.ok() || st.IsNotFound());
        models[id].erase(k);
      } else {
        std::string v = RandBytes(rnd, rnd.Uniform(60));
        ASSERT_TRUE(t.Put(*txn, Slice(k), Slice(v)).ok());
        models[id][k] = v;
      }
    }
    ASSERT_TRUE(txn->Commit().ok());
    if (batch % 10 == 9) {
      for (std::uint32_t id : ids) {
        ASSERT_EQ(ScanTree(id), models[id]) << "tree " << id;
        CheckTree(id, &models[id]);
      }
      FsckAll();
    }
  }
  Remount();
  for (std::uint32_t id : ids) ASSERT_EQ(ScanTree(id), models[id]) << "tree " << id;
  FsckAll();
  // Tree 0 was never touched.
  EXPECT_TRUE(ScanTree(0).empty());
}

INSTANTIATE_TEST_SUITE_P(BlockSizes, TreeTest, ::testing::Values(4096u, 16384u));

}  // namespace
}  // namespace permfs
