// Fault injection under a Volume with B+tree workloads (RELIABILITY.md §4.2), through
// FaultyBlockDevice:
//  (a) EIO at the Nth read / write / flush, transient and persistent, N = 1, 2, ... until a run
//      hits no fault (SQLite do_faultsim_test): every failing call returns IOError (EIO), never
//      crashes; after a write/flush fault the store is errored and never reports a later
//      Sync/Begin/Unmount as successful; a remount without faults is consistent and holds every
//      handle durable before the fault. A device that reports full (NoSpace) is covered too.
//  (b) a full volume: Put returns NoSpace (ENOSPC) and leaves the tree unchanged, deletes still
//      work, and after SyncAndCheckpoint inserts work again.
//  (c) bit flips in every metadata block class after unmount: mount + full scan + Check gives a
//      clean error (Corruption; for the primary superblock a mount from the mirror) or exactly
//      correct data, never wrong data; flips in B+tree nodes, bitmaps and the volume root are
//      detected 100%.
//  (d) lost writes (LoseWritesTo a block during checkpoint) and misdirected writes: detected as
//      Corruption on read, never stale data.
// Failures print the fault kind, N and seed.

#include <gtest/gtest.h>

#include <cerrno>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "block/faulty_block_device.h"
#include "block/mem_block_device.h"
#include "btree/btree.h"
#include "btree/btree_test_util.h"
#include "util/random.h"
#include "volume/volume.h"

namespace permfs {
namespace {

using btreetest::Model;
using btreetest::StatusStr;

constexpr std::uint32_t kBs = 4096;
const std::vector<std::uint32_t> kTrees = {1, 2};

volume::MountOptions SmallCache() {
  volume::MountOptions o;
  o.cache_blocks = 16;  // force reads to reach the device
  return o;
}

std::uint64_t HashOf(const std::vector<Model>& models) {
  btreetest::Hasher hs;
  for (std::size_t i = 0; i < kTrees.size(); ++i) btreetest::HashModel(&hs, kTrees[i], models[i]);
  return hs.h;
}

std::string Key(Random& rnd, int pool) {
  char b[48];
  std::snprintf(b, sizeof b, "key-%05u-%.*s", rnd.Uniform(static_cast<std::uint32_t>(pool)),
                static_cast<int>(rnd.Uniform(20)), "xxxxxxxxxxxxxxxxxxxxxxxx");
  return b;
}

// A formatted, populated, cleanly unmounted volume.
struct BaseImage {
  std::vector<std::uint8_t> image;
  std::vector<Model> models;
  std::uint64_t blocks = 0;
};

BaseImage MakeBase(std::uint64_t blocks, std::uint64_t seed, int handles) {
  BaseImage b;
  b.blocks = blocks;
  block::MemBlockDevice mem(blocks, kBs);
  volume::MkfsOptions mo;
  mo.journal_blocks = 64;
  EXPECT_TRUE(volume::Volume::Mkfs(&mem, mo).ok());
  b.models.resize(kTrees.size());
  auto v = volume::Volume::Mount(&mem, {});
  EXPECT_TRUE(v.ok());
  if (!v.ok()) return b;
  Random rnd(seed);
  for (int h = 0; h < handles; ++h) {
    auto txn = (*v)->meta()->Begin();
    EXPECT_TRUE(txn.ok());
    for (int op = 0; op < 10; ++op) {
      const std::size_t ti = rnd.Uniform(2);
      btree::BTree t((*v)->meta(), (*v)->allocator(), (*v)->roots(), kTrees[ti]);
      std::string k = Key(rnd, 400);
      std::string val(rnd.Uniform(120), static_cast<char>('a' + rnd.Uniform(26)));
      EXPECT_TRUE(t.Put(*txn, btree::Slice(k), btree::Slice(val)).ok());
      b.models[ti][k] = val;
    }
    EXPECT_TRUE(txn->Commit().ok());
  }
  EXPECT_TRUE((*v)->Unmount().ok());
  b.image = mem.Snapshot();
  return b;
}

// ------------------------------------------------------------------------------------------------
// (a) EIO at the Nth read/write/flush

struct FaultRun {
  bool fired = false;
  std::string failure;  // empty when every rule held
  std::uint64_t ops_failed = 0;
};

// Runs a workload on a faulty device: mount, handles with Put/Delete/Get/Scan, periodic Sync and
// a checkpoint, unmount. Checks the rules during the run, then clears the faults and verifies the
// device by remounting.
FaultRun RunWithFault(const BaseImage& base, block::FaultOp op, std::uint64_t n,
                      block::FaultMode mode, std::uint64_t seed, bool device_full) {
  FaultRun r;
  block::MemBlockDevice mem(base.image, kBs);
  block::FaultyBlockDevice f(&mem);
  if (device_full) f.SetNoSpaceAfter(n);
  else f.FailNth(op, n, mode);
  std::vector<Model> models = base.models;
  std::vector<std::uint64_t> hashes = {HashOf(models)};
  std::uint64_t durable = 0;
  auto bad = [&](const std::string& what) {
    if (r.failure.empty()) r.failure = what;
  };
  // A failing call must say EIO (or ENOSPC for a full device; EROFS once the store is errored).
  auto check_err = [&](const Status& st, const char* where, bool errored_ok) {
    if (st.ok()) return;
    ++r.ops_failed;
    const bool ok_code = st.IsIOError() || (device_full && st.IsNoSpace()) ||
                         (errored_ok && st.code() == Code::kReadOnly);
    if (!ok_code) bad(std::string(where) + " returned " + StatusStr(st));
    if (st.IsIOError() && st.ToErrno() != EIO) bad(std::string(where) + ": IOError is not EIO");
  };
  {
    auto v = volume::Volume::Mount(&f, SmallCache());
    if (!v.ok()) {
      check_err(v.status(), "Mount", false);
    } else {
      Random rnd(seed);
      bool errored = false;
      for (int h = 1; h <= 24 && r.failure.empty(); ++h) {
        auto txn = (*v)->meta()->Begin();
        if (!txn.ok()) {
          check_err(txn.status(), "Begin", true);
          if (!(*v)->meta()->errored()) bad("Begin failed but the store is not errored");
          errored = true;
          break;
        }
        if (errored) bad("Begin succeeded after a write error");
        std::vector<Model> next = models;
        bool failed = false;
        for (int op_i = 0; op_i < 6 && !failed; ++op_i) {
          const std::size_t ti = rnd.Uniform(2);
          btree::BTree t((*v)->meta(), (*v)->allocator(), (*v)->roots(), kTrees[ti]);
          std::string k = Key(rnd, 400);
          Status st;
          if (rnd.OneIn(3)) {
            st = t.Delete(*txn, btree::Slice(k));
            if (st.IsNotFound()) st = Status();
            if (st.ok()) next[ti].erase(k);
          } else if (rnd.OneIn(4)) {
            std::string val;
            st = t.Get(*txn, btree::Slice(k), &val);
            if (st.IsNotFound()) {
              if (next[ti].count(k)) bad("Get: NotFound for a present key");
              st = Status();
            } else if (st.ok() && next[ti][k] != val) {
              bad("Get returned a wrong value");
            }
          } else {
            std::string val(rnd.Uniform(300), static_cast<char>('A' + rnd.Uniform(26)));
            st = t.Put(*txn, btree::Slice(k), btree::Slice(val));
            if (st.ok()) next[ti][k] = val;
          }
          if (!st.ok()) {
            check_err(st, "B+tree op", false);
            failed = true;
          }
        }
        if (failed) {
          txn->Abort();
        } else {
          if (!txn->Commit().ok()) bad("Commit failed");
          models = std::move(next);
          hashes.push_back(HashOf(models));
        }
        if (h % 3 == 0 || h % 10 == 0) {
          Status st = h % 10 == 0 ? (*v)->meta()->SyncAndCheckpoint() : (*v)->meta()->Sync();
          if (st.ok()) {
            if (errored) bad("Sync reported success after a write error");
            durable = hashes.size() - 1;
          } else {
            check_err(st, "Sync", true);
            if (!(*v)->meta()->errored()) bad("Sync failed but the store is not errored");
            errored = true;
          }
        }
        if (h % 8 == 0) {  // a reader: full scan of both trees
          std::uint64_t hs = 0;
          Status st = btreetest::HashTrees(v->get(), kTrees, &hs);
          if (st.ok() && hs != hashes.back()) bad("scan returned wrong content");
          if (!st.ok()) check_err(st, "Scan", false);
        }
      }
      if (r.failure.empty()) {
        Status st = (*v)->Unmount();
        if (st.ok()) {
          if (errored || (*v)->meta()->errored()) bad("Unmount reported success when errored");
          durable = hashes.size() - 1;
        } else {
          check_err(st, "Unmount", true);
        }
      }
      // A write/flush fault that fired must leave the store errored (never swallowed).
      const block::FaultCounters fc = f.counters();
      if ((fc.io_errors > 0 && op != block::FaultOp::kRead) || fc.no_space > 0) {
        if (!(*v)->meta()->errored()) bad("a write/flush fault fired but the store is not errored");
      }
    }
  }
  r.fired = f.counters().faults_injected > 0;
  // Remount without faults: consistent, and everything durable before the fault is there.
  f.ClearFaults();
  auto v = volume::Volume::Mount(&mem, {});
  if (!v.ok()) {
    bad("remount after the fault failed: " + StatusStr(v.status()));
    return r;
  }
  std::string err = btreetest::FsckTrees(v->get());
  if (!err.empty()) bad("fsck after remount: " + err);
  std::uint64_t hs = 0;
  Status st = btreetest::HashTrees(v->get(), kTrees, &hs);
  if (!st.ok()) {
    bad("scan after remount: " + StatusStr(st));
    return r;
  }
  bool found = false;
  for (std::size_t h = durable; h < hashes.size(); ++h) found |= hashes[h] == hs;
  if (!found)
    bad("content after remount is not the state after any handle >= the last durable one (" +
        std::to_string(durable) + " of " + std::to_string(hashes.size() - 1) + ")");
  if (!(*v)->Unmount().ok()) bad("final unmount failed");
  return r;
}

TEST(FaultInjectionTest, EioAtEveryNthCallUntilNoFaultFires) {
  const BaseImage base = MakeBase(1024, 5, 30);
  ASSERT_FALSE(base.image.empty());
  struct Kind {
    block::FaultOp op;
    const char* name;
  };
  const Kind kinds[] = {{block::FaultOp::kRead, "read"},
                        {block::FaultOp::kWrite, "write"},
                        {block::FaultOp::kFlush, "flush"}};
  std::uint64_t points = 0;
  for (const Kind& k : kinds) {
    for (block::FaultMode mode : {block::FaultMode::kTransient, block::FaultMode::kPersistent}) {
      const char* mname = mode == block::FaultMode::kTransient ? "transient" : "persistent";
      std::uint64_t n = 1;
      for (;; ++n) {
        FaultRun r = RunWithFault(base, k.op, n, mode, 1000 + n, false);
        ASSERT_TRUE(r.failure.empty())
            << "fault=" << k.name << " mode=" << mname << " N=" << n << " seed=" << 1000 + n
            << ": " << r.failure;
        if (!r.fired) break;
        ++points;
        ASSERT_LT(n, 100000u) << "the loop does not terminate";
      }
      std::printf("EIO %s/%s: %llu fault points, clean run at N=%llu\n", k.name, mname,
                  static_cast<unsigned long long>(n - 1), static_cast<unsigned long long>(n));
      EXPECT_GT(n, 1u) << "no fault point for " << k.name;
    }
  }
  std::printf("EIO fault points covered: %llu\n", static_cast<unsigned long long>(points));
}

// The device reports full (NoSpace on writes past a limit): same rules as a write error.
TEST(FaultInjectionTest, DeviceFullAtEveryWriteLimit) {
  const BaseImage base = MakeBase(1024, 6, 30);
  std::uint64_t n = 0;
  for (;; ++n) {
    FaultRun r = RunWithFault(base, block::FaultOp::kWrite, n, block::FaultMode::kPersistent,
                              2000 + n, true);
    ASSERT_TRUE(r.failure.empty()) << "device full after " << n << " blocks, seed=" << 2000 + n
                                   << ": " << r.failure;
    if (!r.fired) break;
  }
  std::printf("device-full fault points: %llu\n", static_cast<unsigned long long>(n));
  EXPECT_GT(n, 0u);
}

// ------------------------------------------------------------------------------------------------
// (b) a full volume (allocator NoSpace)

TEST(FaultInjectionTest, FullVolumeNoSpaceThenDeleteThenInsertAgain) {
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    SCOPED_TRACE("seed=" + std::to_string(seed));
    block::MemBlockDevice mem(256, kBs);  // 1 MiB: ~180 data blocks
    volume::MkfsOptions mo;
    mo.journal_blocks = 64;
    ASSERT_TRUE(volume::Volume::Mkfs(&mem, mo).ok());
    auto v = volume::Volume::Mount(&mem, {});
    ASSERT_TRUE(v.ok());
    btree::BTree t((*v)->meta(), (*v)->allocator(), (*v)->roots(), 1);
    Random rnd(seed);
    Model model;
    auto scan_equals_model = [&]() {
      journal::ReadView view((*v)->meta());
      Model got;
      Status st = btreetest::ScanAll(t, view, &got);
      return st.ok() && got == model;
    };
    std::uint64_t nospace = 0, consecutive = 0, puts = 0;
    while (consecutive < 40) {
      auto txn = (*v)->meta()->Begin();
      ASSERT_TRUE(txn.ok()) << StatusStr(txn.status());
      std::string k = Key(rnd, 1000000) + std::string(rnd.Uniform(100), 'p');
      std::string val(200 + rnd.Uniform(400), 'v');
      Status st = t.Put(*txn, btree::Slice(k), btree::Slice(val));
      if (st.ok()) {
        ASSERT_TRUE(txn->Commit().ok());
        model[k] = val;
        consecutive = 0;
        ++puts;
      } else {
        ASSERT_TRUE(st.IsNoSpace()) << StatusStr(st);
        EXPECT_EQ(st.ToErrno(), ENOSPC);
        txn->Abort();
        ++nospace;
        ++consecutive;
        ASSERT_TRUE(scan_equals_model()) << "a failed Put changed the tree";
      }
      ASSERT_LT(puts, 100000u);
    }
    EXPECT_GT(nospace, 0u);
    EXPECT_EQ(btreetest::FsckTrees(v->get()), "");
    ASSERT_TRUE((*v)->meta()->Sync().ok());
    // Deleting on a full volume works (every delete, one per handle).
    std::vector<std::string> keys;
    for (const auto& [k, val] : model) keys.push_back(k);
    std::uint64_t delete_nospace = 0;
    for (std::size_t i = 0; i < keys.size(); i += 2) {
      auto txn = (*v)->meta()->Begin();
      ASSERT_TRUE(txn.ok());
      Status st = t.Delete(*txn, btree::Slice(keys[i]));
      if (st.ok()) {
        ASSERT_TRUE(txn->Commit().ok());
        model.erase(keys[i]);
      } else {
        ADD_FAILURE() << "Delete on a full volume failed: " << StatusStr(st) << " (key " << i
                      << ")";
        ++delete_nospace;
        txn->Abort();
      }
    }
    EXPECT_EQ(delete_nospace, 0u);
    ASSERT_TRUE(scan_equals_model());
    // Freed blocks come back after a checkpoint; inserts work again.
    ASSERT_TRUE((*v)->meta()->SyncAndCheckpoint().ok());
    EXPECT_FALSE((*v)->allocator()->HasPendingFrees());
    for (int i = 0; i < 20; ++i) {
      auto txn = (*v)->meta()->Begin();
      ASSERT_TRUE(txn.ok());
      std::string k = "again-" + std::to_string(i);
      Status st = t.Put(*txn, btree::Slice(k), btree::Slice(std::string(300, 'a')));
      ASSERT_TRUE(st.ok()) << "insert after freeing space: " << StatusStr(st);
      ASSERT_TRUE(txn->Commit().ok());
      model[k] = std::string(300, 'a');
    }
    EXPECT_EQ(btreetest::FsckTrees(v->get()), "");
    ASSERT_TRUE((*v)->Unmount().ok());
    auto w = volume::Volume::Mount(&mem, {});
    ASSERT_TRUE(w.ok());
    btree::BTree t2((*w)->meta(), (*w)->allocator(), (*w)->roots(), 1);
    journal::ReadView view((*w)->meta());
    Model got;
    ASSERT_TRUE(btreetest::ScanAll(t2, view, &got).ok());
    EXPECT_EQ(got, model);
  }
}

// Deleting must never need space: with long random-length keys, separators change length when
// a delete redistributes two siblings, which can overflow the parent. Fill to NoSpace, then
// delete everything in random order, one key per handle.
TEST(FaultInjectionTest, DeleteEverythingOnAFullVolumeWithLongKeys) {
  std::uint64_t deletes = 0, failed = 0;
  for (std::uint64_t seed = 1; seed <= 12; ++seed) {
    block::MemBlockDevice mem(256, kBs);
    volume::MkfsOptions mo;
    mo.journal_blocks = 64;
    ASSERT_TRUE(volume::Volume::Mkfs(&mem, mo).ok());
    auto v = volume::Volume::Mount(&mem, {});
    ASSERT_TRUE(v.ok());
    btree::BTree t((*v)->meta(), (*v)->allocator(), (*v)->roots(), 1);
    Random rnd(seed);
    Model model;
    for (int consecutive = 0; consecutive < 60;) {
      auto txn = (*v)->meta()->Begin();
      ASSERT_TRUE(txn.ok());
      std::string k(1 + rnd.Uniform(255), '\0');
      for (char& c : k) c = static_cast<char>('a' + rnd.Uniform(3));
      std::string val(rnd.Uniform(16), 'v');
      Status st = t.Put(*txn, btree::Slice(k), btree::Slice(val));
      if (st.ok()) {
        ASSERT_TRUE(txn->Commit().ok());
        model[k] = val;
        consecutive = 0;
      } else {
        ASSERT_TRUE(st.IsNoSpace()) << StatusStr(st);
        txn->Abort();
        ++consecutive;
      }
    }
    std::vector<std::string> keys;
    for (const auto& [k, val] : model) keys.push_back(k);
    for (std::size_t i = keys.size(); i > 1; --i)
      std::swap(keys[i - 1], keys[rnd.Uniform(static_cast<std::uint32_t>(i))]);
    for (const std::string& k : keys) {
      auto txn = (*v)->meta()->Begin();
      ASSERT_TRUE(txn.ok());
      Status st = t.Delete(*txn, btree::Slice(k));
      ++deletes;
      if (st.ok()) {
        ASSERT_TRUE(txn->Commit().ok());
        model.erase(k);
      } else {
        ASSERT_TRUE(st.IsNoSpace()) << StatusStr(st);
        if (failed++ < 3)
          ADD_FAILURE() << "seed=" << seed << ": Delete on a full volume: " << StatusStr(st);
        txn->Abort();
      }
    }
    EXPECT_EQ(btreetest::FsckTrees(v->get()), "") << "seed=" << seed;
    ASSERT_TRUE((*v)->Unmount().ok());
  }
  std::printf("deletes on a full volume: %llu, failed with NoSpace: %llu\n",
              static_cast<unsigned long long>(deletes), static_cast<unsigned long long>(failed));
  EXPECT_EQ(failed, 0u);
}

// ------------------------------------------------------------------------------------------------
// (c) bit flips in every metadata block

struct MetaBlock {
  std::uint64_t blockno;
  std::string cls;  // sb-primary, sb-mirror, root, jheader, jlog, bitmap, node
};

std::vector<MetaBlock> EnumerateMetadata(const BaseImage& base) {
  std::vector<MetaBlock> out;
  block::MemBlockDevice mem(base.image, kBs);
  auto v = volume::Volume::Mount(&mem, volume::MountOptions{true, 16384});  // read-only
  EXPECT_TRUE(v.ok());
  if (!v.ok()) return out;
  const format::Superblock& sb = (*v)->sb();
  out.push_back({0, "sb-primary"});
  out.push_back({1, "sb-mirror"});
  out.push_back({sb.mirror_block(), "sb-mirror"});
  out.push_back({sb.root_block, "root"});
  out.push_back({sb.journal_start, "jheader"});
  out.push_back({sb.journal_start + 1, "jheader"});
  for (std::uint64_t b = sb.journal_start + 2; b < sb.journal_start + sb.journal_blocks; b += 9)
    out.push_back({b, "jlog"});
  for (std::uint32_t s = 0; s < sb.shard_count; ++s)
    for (std::uint32_t k = 0; k < sb.bitmap_blocks_per_shard; ++k)
      out.push_back({(*v)->allocator()->BitmapBlockOf(s, k), "bitmap"});
  std::vector<std::uint64_t> nodes;
  EXPECT_EQ(btreetest::FsckTrees(v->get(), &nodes), "");
  for (std::uint64_t b : nodes) out.push_back({b, "node"});
  return out;
}

TEST(FaultInjectionTest, BitFlipsInEveryMetadataBlock) {
  const BaseImage base = MakeBase(512, 9, 40);
  ASSERT_FALSE(base.image.empty());
  const std::uint64_t want = HashOf(base.models);
  const std::vector<MetaBlock> blocks = EnumerateMetadata(base);
  ASSERT_GT(blocks.size(), 10u);
  struct Count {
    std::uint64_t trials = 0, detected = 0, correct = 0, via_mirror = 0;
  };
  std::map<std::string, Count> counts;
  const int kTrials = 4000;
  Random rnd(4242);
  for (int trial = 0; trial < kTrials; ++trial) {
    const MetaBlock& mb = blocks[static_cast<std::size_t>(trial) % blocks.size()];
    block::MemBlockDevice mem(base.image, kBs);
    const int flips = 1 + static_cast<int>(rnd.Uniform(8));
    std::uint8_t* blk = mem.raw() + mb.blockno * kBs;
    std::vector<std::uint32_t> bits;
    for (int i = 0; i < flips; ++i) {
      std::uint32_t bit;
      do bit = rnd.Uniform(kBs * 8);
      while (std::find(bits.begin(), bits.end(), bit) != bits.end());
      bits.push_back(bit);
      blk[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    }
    const std::string id = "trial=" + std::to_string(trial) + " block=" +
                           std::to_string(mb.blockno) + " (" + mb.cls + ") flips=" +
                           std::to_string(flips) + " seed=4242";
    Count& c = counts[mb.cls];
    ++c.trials;
    volume::MountReport rep;
    auto v = volume::Volume::Mount(&mem, {}, &rep);
    if (!v.ok()) {
      ASSERT_TRUE(v.status().IsCorruption()) << id << ": mount " << StatusStr(v.status());
      ++c.detected;
      continue;
    }
    if (rep.used_mirror) ++c.via_mirror;
    std::uint64_t hs = 0;
    Status st = btreetest::HashTrees(v->get(), kTrees, &hs);
    std::string fsck = st.ok() ? btreetest::FsckTrees(v->get()) : std::string();
    if (!st.ok()) {
      ASSERT_TRUE(st.IsCorruption()) << id << ": scan " << StatusStr(st);
      ++c.detected;
      continue;
    }
    if (!fsck.empty()) {
      ASSERT_NE(fsck.find("Corruption"), std::string::npos) << id << ": " << fsck;
      ++c.detected;
      continue;
    }
    ASSERT_EQ(hs, want) << id << ": WRONG DATA returned without an error";
    ++c.correct;
    if (mb.cls == "sb-primary") {
      EXPECT_TRUE(rep.used_mirror) << id << ": damaged primary superblock not noticed";
    }
  }
  std::uint64_t total = 0, detected = 0;
  for (const auto& [cls, c] : counts) {
    std::printf("bit flips in %-10s: %5llu trials, %5llu detected (Corruption), %5llu correct "
                "data (%llu via the mirror superblock), 0 wrong\n",
                cls.c_str(), static_cast<unsigned long long>(c.trials),
                static_cast<unsigned long long>(c.detected),
                static_cast<unsigned long long>(c.correct),
                static_cast<unsigned long long>(c.via_mirror));
    total += c.trials;
    detected += c.detected;
    if (cls == "node" || cls == "bitmap" || cls == "root") {
      EXPECT_EQ(c.detected, c.trials) << cls << ": not every flip detected";
    }
    if (cls == "sb-primary") {
      EXPECT_EQ(c.via_mirror, c.trials);
    }
  }
  std::printf("%llu bit-flip trials, %llu detected, 0 wrong data\n",
              static_cast<unsigned long long>(total), static_cast<unsigned long long>(detected));
}

// ------------------------------------------------------------------------------------------------
// (d) lost and misdirected writes

// Mounts `mem` through `f`, rewrites every value of both trees (every leaf and internal node is
// rewritten), syncs. Returns the new models.
std::vector<Model> RewriteAll(block::BlockDevice* dev, const BaseImage& base, bool unmount) {
  std::vector<Model> models = base.models;
  auto v = volume::Volume::Mount(dev, {});
  EXPECT_TRUE(v.ok());
  if (!v.ok()) return models;
  for (std::size_t ti = 0; ti < kTrees.size(); ++ti) {
    btree::BTree t((*v)->meta(), (*v)->allocator(), (*v)->roots(), kTrees[ti]);
    std::vector<std::string> keys;
    for (const auto& [k, val] : models[ti]) keys.push_back(k);
    for (std::size_t i = 0; i < keys.size(); i += 20) {
      auto txn = (*v)->meta()->Begin();
      EXPECT_TRUE(txn.ok());
      for (std::size_t j = i; j < std::min(keys.size(), i + 20); ++j) {
        std::string val = models[ti][keys[j]] + std::string(40, '#');
        EXPECT_TRUE(t.Put(*txn, btree::Slice(keys[j]), btree::Slice(val)).ok());
        models[ti][keys[j]] = val;
      }
      EXPECT_TRUE(txn->Commit().ok());
    }
  }
  EXPECT_TRUE((*v)->meta()->Sync().ok());
  if (unmount) {
    EXPECT_TRUE((*v)->Unmount().ok());
  }
  return models;
}

// Outcome of reading a damaged volume: "detected", "correct", or a failure description.
// `how` (optional) receives what caught it.
std::string Verify(block::BlockDevice* dev, std::uint64_t want, std::uint64_t stale,
                   std::string* how = nullptr) {
  auto v = volume::Volume::Mount(dev, {});
  if (how) *how = "mount: " + StatusStr(v.status());
  if (!v.ok()) return v.status().IsCorruption() ? "detected" : "mount: " + StatusStr(v.status());
  std::uint64_t hs = 0;
  Status st = btreetest::HashTrees(v->get(), kTrees, &hs);
  if (how) *how = "scan: " + StatusStr(st);
  if (!st.ok()) return st.IsCorruption() ? "detected" : "scan: " + StatusStr(st);
  std::string fsck = btreetest::FsckTrees(v->get());
  if (!fsck.empty())
    return fsck.find("Corruption") != std::string::npos ? "detected" : "fsck-only: " + fsck;
  if (hs == want) return "correct";
  return hs == stale ? "STALE data returned" : "WRONG data returned";
}

TEST(FaultInjectionTest, LostWritesDuringCheckpointAreDetected) {
  const BaseImage base = MakeBase(1024, 11, 40);
  const std::uint64_t stale = HashOf(base.models);
  std::vector<MetaBlock> blocks = EnumerateMetadata(base);
  std::map<std::string, std::pair<int, int>> counts;  // class -> (lost, detected)
  for (const MetaBlock& mb : blocks) {
    if (mb.cls != "node" && mb.cls != "root" && mb.cls != "bitmap") continue;
    block::MemBlockDevice mem(base.image, kBs);
    block::FaultyBlockDevice f(&mem);
    f.LoseWritesTo(mb.blockno, block::FaultMode::kPersistent);
    std::vector<Model> models = RewriteAll(&f, base, true);
    if (f.counters().lost_writes == 0) continue;  // this block was not rewritten
    f.ClearFaults();
    std::string how;
    std::string out = Verify(&mem, HashOf(models), stale, &how);
    if (mb.cls == "bitmap") std::printf("  bitmap block %llu lost write: %s (%s)\n",
                                        static_cast<unsigned long long>(mb.blockno), out.c_str(),
                                        how.c_str());
    auto& c = counts[mb.cls];
    ++c.first;
    if (out == "detected") ++c.second;
    if (mb.cls == "bitmap") {
      // A bitmap has no parent pointer: a lost bitmap write is caught only by fsck's
      // cross-check (bitmap vs reachable nodes), reported as "fsck-only".
      EXPECT_TRUE(out == "detected" || out == "correct" || out.rfind("fsck-only", 0) == 0)
          << "bitmap block " << mb.blockno << ": " << out;
      continue;
    }
    EXPECT_EQ(out, "detected") << mb.cls << " block " << mb.blockno << ": lost write gave " << out;
  }
  for (const auto& [cls, c] : counts)
    std::printf("lost write to a %-6s block: %d trials, %d detected as Corruption\n", cls.c_str(),
                c.first, c.second);
  EXPECT_GT(counts["node"].first, 5);
  EXPECT_GT(counts["root"].first, 0);
}

// A single-block lost write, made by hand: after a rewrite of everything and a clean unmount,
// one metadata block is put back to its previous (internally valid) version. FaultyBlockDevice
// loses whole requests, and a checkpoint writes contiguous runs, so this isolates one block.
TEST(FaultInjectionTest, SingleStaleMetadataBlockIsDetected) {
  const BaseImage base = MakeBase(1024, 13, 40);
  const std::uint64_t stale = HashOf(base.models);
  std::vector<MetaBlock> blocks = EnumerateMetadata(base);
  block::MemBlockDevice fresh(base.image, kBs);
  std::vector<Model> models = RewriteAll(&fresh, base, true);
  const std::vector<std::uint8_t> after = fresh.Snapshot();
  std::map<std::string, std::pair<int, int>> counts;  // class -> (trials, engine-detected)
  int bitmap_fsck_only = 0;
  for (const MetaBlock& mb : blocks) {
    if (mb.cls != "node" && mb.cls != "root" && mb.cls != "bitmap" && mb.cls != "jheader")
      continue;
    const std::size_t off = mb.blockno * kBs;
    if (std::equal(after.begin() + off, after.begin() + off + kBs, base.image.begin() + off))
      continue;  // not rewritten
    block::MemBlockDevice mem(after, kBs);
    std::memcpy(mem.raw() + off, base.image.data() + off, kBs);
    std::string how;
    std::string out = Verify(&mem, HashOf(models), stale, &how);
    auto& c = counts[mb.cls];
    ++c.first;
    if (out == "detected") ++c.second;
    if (mb.cls == "bitmap") {
      // The volume root's bitmap digest makes the engine itself refuse a stale bitmap at mount.
      if (out.rfind("fsck-only", 0) == 0) ++bitmap_fsck_only;
      EXPECT_EQ(out, "detected") << "stale bitmap block " << mb.blockno << ": " << out;
    } else if (mb.cls == "jheader") {
      EXPECT_TRUE(out == "detected" || out == "correct")
          << "stale journal header " << mb.blockno << ": " << out;
    } else {
      EXPECT_EQ(out, "detected") << mb.cls << " block " << mb.blockno << ": stale copy gave "
                                 << out;
    }
  }
  for (const auto& [cls, c] : counts)
    std::printf("single stale %-7s block: %d trials, %d detected by the engine as Corruption\n",
                cls.c_str(), c.first, c.second);
  std::printf("single stale bitmap block: %d caught only by the fsck cross-check\n",
              bitmap_fsck_only);
  EXPECT_EQ(bitmap_fsck_only, 0);
  EXPECT_GT(counts["node"].first, 5);
}

TEST(FaultInjectionTest, MisdirectedWritesAreDetected) {
  const BaseImage base = MakeBase(1024, 12, 40);
  const std::uint64_t stale = HashOf(base.models);
  std::vector<MetaBlock> blocks = EnumerateMetadata(base);
  std::vector<std::uint64_t> nodes;
  for (const MetaBlock& mb : blocks)
    if (mb.cls == "node") nodes.push_back(mb.blockno);
  ASSERT_GT(nodes.size(), 4u);
  int trials = 0, detected = 0, correct = 0;
  Random rnd(31);
  for (std::uint64_t n = 1;; ++n) {
    block::MemBlockDevice mem(base.image, kBs);
    block::FaultyBlockDevice f(&mem);
    std::vector<Model> models;
    std::uint64_t target = nodes[rnd.Uniform(static_cast<std::uint32_t>(nodes.size()))];
    {
      // Everything durable in the journal first; the fault hits the unmount checkpoint.
      models = RewriteAll(&f, base, false);
    }
    // RewriteAll dropped its volume without unmounting: mount again (replay) and checkpoint
    // with the fault armed on the Nth write.
    ASSERT_TRUE(f.MisdirectNthWrite(n, target, block::FaultMode::kTransient).ok());
    bool mount_detected = false;
    {
      auto v = volume::Volume::Mount(&f, {});
      if (!v.ok()) {
        // The misdirected write hit the mount's own replay; the allocator's bitmap digest or a
        // checksum catches the damage at once. Anything but Corruption is a failure.
        ASSERT_TRUE(v.status().IsCorruption()) << StatusStr(v.status());
        mount_detected = true;
      } else {
        Status st = (*v)->Unmount();
        ASSERT_TRUE(st.ok()) << StatusStr(st);
      }
    }
    if (f.counters().misdirected_writes == 0) break;
    f.ClearFaults();
    ++trials;
    std::string out = mount_detected ? "detected" : Verify(&mem, HashOf(models), stale);
    if (out == "detected") {
      ++detected;
    } else if (out == "correct") {
      ++correct;
    } else {
      ADD_FAILURE() << "misdirected write #" << n << " to block " << target << ": " << out;
    }
    ASSERT_LT(n, 10000u);
  }
  std::printf("misdirected writes: %d trials, %d detected as Corruption, %d harmless (correct "
              "data), 0 wrong\n", trials, detected, correct);
  EXPECT_GT(trials, 3);
  EXPECT_GT(detected, 0);
}

}  // namespace
}  // namespace permfs
