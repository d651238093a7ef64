// Crash-consistency harness for the B+tree over a Volume (RELIABILITY.md §4.1), at the
// BlockDevice seam. A workload of random B+tree handles (Put/Delete of random keys across two
// trees, a handful of ops per handle, Commit; Sync every few handles, then Mark("durable <h>"))
// runs on a Volume mounted over a RecordingBlockDevice (the mount and the final unmount are
// recorded too). A small journal (64 blocks) forces wrap-around and checkpoints. The model keeps a
// 64-bit content hash of both trees after every handle.
//
// Every crash state from CrashStateEnumerator (cut at flushes and at every op; prefixes, epoch
// subsets, torn and garbage writes) is mounted and checked:
//   - Volume::Mount succeeds (no bit flips were injected, so Corruption is a failure);
//   - BTree::Check passes for every tree, no node block is reachable twice, and the data blocks
//     the bitmaps mark used are exactly the reachable node blocks (no leak, no double use);
//   - the content hash equals the model after some handle h with
//       last handle marked durable before the cut <= h <= last handle committed before the cut
//     (nothing durable lost, nothing half-applied);
//   - Unmount succeeds, and a second mount replays 0 transactions and shows the same content.
// Depth 2: for a sample of states the mount's own writes are recorded, cut again (prefixes,
// subsets, torn) and each state must mount to exactly the same handle.
//
// Env: PERMFS_CRASH_STATES = minimum number of depth-1 states (default 40000);
//      PERMFS_CRASH_SEED   = first workload seed (default 1);
//      PERMFS_CRASH_REPRO  = "<seed>:<flushes|everyop>:<state id>" checks that one state only.
// A failure prints "crash:wl=btree/seed<S>:cuts=<flushes|everyop>:<state id>" (state id + seed).

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "block/crash_state.h"
#include "block/mem_block_device.h"
#include "block/recording_block_device.h"
#include "btree/btree.h"
#include "btree/btree_test_util.h"
#include "util/random.h"
#include "volume/volume.h"
#include "testutil/trace_marks.h"

namespace permfs {
namespace {

using btreetest::Model;
using btreetest::StatusStr;

constexpr std::uint32_t kBs = 4096;
constexpr std::uint64_t kDevBlocks = 512;  // 2 MiB
constexpr std::uint64_t kJournal = 64;
const std::vector<std::uint32_t> kTrees = {1, 2};

std::uint64_t EnvU64(const char* name, std::uint64_t dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : dflt;
}

volume::MountOptions MountOpts() {
  volume::MountOptions o;
  o.cache_blocks = 64;  // small: reads go to the checkpoint map and the device
  return o;
}

std::uint64_t HashOf(const std::vector<Model>& models) {
  btreetest::Hasher hs;
  for (std::size_t i = 0; i < kTrees.size(); ++i) btreetest::HashModel(&hs, kTrees[i], models[i]);
  return hs.h;
}

struct Workload {
  std::uint64_t seed = 0;
  std::vector<std::uint8_t> base;  // image after mkfs, when recording began
  std::vector<block::TraceEntry> trace;
  std::vector<std::uint64_t> hashes;  // hashes[h] = content after handle h (0 = empty)
  // Per trace index i: last "durable <h>" / "commit <h>" mark value at index <= i.
  std::vector<std::uint64_t> durable_at, commit_at;
  std::uint64_t handles = 0, syncs = 0, checkpoints = 0;
  std::uint32_t max_height = 0;
};

Workload Record(std::uint64_t seed, std::uint64_t handles) {
  Workload w;
  w.seed = seed;
  block::MemBlockDevice mem(kDevBlocks, kBs);
  volume::MkfsOptions mo;
  mo.journal_blocks = kJournal;
  Status ms = volume::Volume::Mkfs(&mem, mo);
  EXPECT_TRUE(ms.ok()) << StatusStr(ms);
  if (!ms.ok()) return w;
  w.base = mem.Snapshot();
  block::RecordingBlockDevice rec(&mem);
  Random rnd(seed);
  // Key pool: short and long keys, so leaves split and merge often at this size.
  std::vector<std::string> keys;
  for (int i = 0; i < 160; ++i) {
    std::string k(1 + rnd.Uniform(rnd.OneIn(4) ? 60 : 10), 'a');
    for (char& c : k) c = static_cast<char>('a' + rnd.Uniform(6));
    keys.push_back(k);
  }
  std::vector<Model> models(kTrees.size());
  w.hashes.push_back(HashOf(models));
  {
    auto v = volume::Volume::Mount(&rec, MountOpts());
    EXPECT_TRUE(v.ok()) << StatusStr(v.status());
    if (!v.ok()) return w;
    for (std::uint64_t h = 1; h <= handles; ++h) {
      auto txn = (*v)->meta()->Begin();
      EXPECT_TRUE(txn.ok()) << StatusStr(txn.status());
      if (!txn.ok()) return w;
      const std::uint32_t ops = 1 + rnd.Uniform(8);
      for (std::uint32_t op = 0; op < ops; ++op) {
        const std::size_t ti = rnd.Uniform(static_cast<std::uint32_t>(kTrees.size()));
        btree::BTree t((*v)->meta(), (*v)->allocator(), (*v)->roots(), kTrees[ti]);
        const std::string& k = keys[rnd.Uniform(static_cast<std::uint32_t>(keys.size()))];
        if (rnd.Uniform(100) < 35) {
          Status st = t.Delete(*txn, btree::Slice(k));
          EXPECT_TRUE(st.ok() || st.IsNotFound()) << StatusStr(st);
          models[ti].erase(k);
        } else {
          std::string val(rnd.OneIn(5) ? rnd.Uniform(600) : rnd.Uniform(60), '\0');
          rnd.Fill(val.data(), val.size());
          Status st = t.Put(*txn, btree::Slice(k), btree::Slice(val));
          EXPECT_TRUE(st.ok()) << StatusStr(st);
          if (!st.ok()) return w;
          models[ti][k] = val;
        }
      }
      EXPECT_TRUE(txn->Commit().ok());
      w.hashes.push_back(HashOf(models));
      rec.Mark(("commit " + std::to_string(h)).c_str());
      if (rnd.OneIn(3) || h == handles) {
        Status st = (*v)->meta()->Sync();
        EXPECT_TRUE(st.ok()) << StatusStr(st);
        rec.Mark(("durable " + std::to_string(h)).c_str());
        ++w.syncs;
      }
    }
    w.checkpoints = (*v)->meta()->stats().checkpoints;
    {
      journal::ReadView view((*v)->meta());
      for (std::uint32_t id : kTrees) {
        auto root = (*v)->roots()->GetRoot(view, id);
        if (root.ok() && root->height > w.max_height) w.max_height = root->height;
      }
    }
    Status st = (*v)->Unmount();
    EXPECT_TRUE(st.ok()) << StatusStr(st);
  }
  w.handles = handles;
  w.trace = rec.TraceCopy();
  w.durable_at = testutil::LatestMark(w.trace, "durable");
  w.commit_at = testutil::LatestMark(w.trace, "commit");
  return w;
}

struct Checker {
  std::uint64_t states = 0, depth2_states = 0, failures = 0;
  std::uint64_t depth2_every = 97;
  std::uint64_t depth2_budget = 0;
  bool quiet = false;  // count failures without reporting them (self-test of the checker)

  void Fail(const std::string& id, const std::string& what) {
    ++failures;
    if (!quiet && failures <= 10) ADD_FAILURE() << id << ": " << what;
  }

  // Mounts `image` and checks it; returns the handle it recovered to, or -1 (failure reported).
  // `exact` >= 0 demands that handle (depth 2), else any h in [lo, hi].
  std::int64_t CheckOne(const std::string& id, std::vector<std::uint8_t> image, const Workload& w,
                        std::uint64_t lo, std::uint64_t hi, std::int64_t exact, bool depth2) {
    std::vector<std::uint8_t> pre;
    if (depth2) pre = image;
    block::MemBlockDevice dev(std::move(image), kBs);
    std::int64_t T = -1;
    std::vector<block::TraceEntry> mount_trace;
    {
      std::unique_ptr<block::RecordingBlockDevice> rec;
      block::BlockDevice* d = &dev;
      if (depth2) {
        rec = std::make_unique<block::RecordingBlockDevice>(&dev);
        d = rec.get();
      }
      auto v = volume::Volume::Mount(d, MountOpts());
      if (!v.ok()) {
        Fail(id, "mount failed: " + StatusStr(v.status()));
        return -1;
      }
      if (rec) mount_trace = rec->TraceCopy();  // the mount's own writes
      std::uint64_t hash = 0;
      Status hs = btreetest::HashTrees(v->get(), kTrees, &hash);
      if (!hs.ok()) {
        Fail(id, "full scan failed after mount: " + StatusStr(hs));
        return -1;
      }
      if (exact >= 0) {
        if (hash == w.hashes[static_cast<std::size_t>(exact)]) T = exact;
      } else {
        for (std::uint64_t h = hi + 1; h-- > lo;)
          if (w.hashes[h] == hash) {
            T = static_cast<std::int64_t>(h);
            break;
          }
      }
      if (T < 0) {
        std::string any = "none";
        for (std::size_t h = 0; h < w.hashes.size(); ++h)
          if (w.hashes[h] == hash) any = std::to_string(h);
        Fail(id, "content is not the model at any handle in [" +
                     (exact >= 0 ? std::to_string(exact) + ", " + std::to_string(exact)
                                 : std::to_string(lo) + ", " + std::to_string(hi)) +
                     "] (matches handle " + any + ")");
        return -1;
      }
      std::string err = btreetest::FsckTrees(v->get());
      if (!err.empty()) {
        Fail(id, "fsck after mount: " + err);
        return -1;
      }
      Status us = (*v)->Unmount();
      if (!us.ok()) {
        Fail(id, "unmount failed: " + StatusStr(us));
        return -1;
      }
    }
    // Second mount: nothing left to replay, same content, still consistent.
    {
      volume::MountReport rep;
      auto v = volume::Volume::Mount(&dev, MountOpts(), &rep);
      if (!v.ok()) {
        Fail(id, "second mount failed: " + StatusStr(v.status()));
        return -1;
      }
      if (rep.replayed_transactions != 0)
        Fail(id, "second mount replayed " + std::to_string(rep.replayed_transactions) +
                     " transactions");
      std::uint64_t hash = 0;
      Status hs = btreetest::HashTrees(v->get(), kTrees, &hash);
      if (!hs.ok() || hash != w.hashes[static_cast<std::size_t>(T)])
        Fail(id, "second mount changed the content: " + StatusStr(hs));
      if (depth2) {  // full fsck again on a sample (it is the expensive part)
        std::string err = btreetest::FsckTrees(v->get());
        if (!err.empty()) Fail(id, "fsck after second mount: " + err);
      }
    }
    if (depth2) {
      block::CrashStateOptions o;
      o.cut_points = block::CutPoints::kEveryOp;
      o.torn = true;
      o.garbage_variants = 1;
      o.full_subset_limit = 4;
      o.max_subsets_per_cut = 8;
      block::CrashStateEnumerator en(pre, kBs, mount_trace, o);
      if (!en.status().ok()) {
        Fail(id, "depth-2 enumerator: " + StatusStr(en.status()));
        return T;
      }
      block::CrashState cs;
      while (en.Next(&cs)) {
        ++depth2_states;
        CheckOne(id + ":depth2:" + cs.id, std::move(cs.image), w, 0, 0, T, false);
      }
    }
    return T;
  }

  static block::CrashStateOptions Options(const Workload& w, block::CutPoints cuts) {
    block::CrashStateOptions o;
    o.seed = w.seed;
    o.cut_points = cuts;
    o.prefixes = o.subsets = o.torn = true;
    o.full_subset_limit = 6;
    o.max_subsets_per_cut = 48;
    o.garbage_variants = 3;
    return o;
  }

  static std::string Prefix(const Workload& w, block::CutPoints cuts) {
    return "crash:wl=btree/seed" + std::to_string(w.seed) + ":cuts=" +
           (cuts == block::CutPoints::kFlushes ? "flushes" : "everyop") + ":";
  }

  void Check(const Workload& w, const std::string& prefix, block::CrashState& cs, bool d2) {
    const std::uint64_t lo =
        cs.marks_durable < 0 ? 0 : w.durable_at[static_cast<std::size_t>(cs.marks_durable)];
    const std::uint64_t hi =
        cs.last_mark < 0 ? 0 : w.commit_at[static_cast<std::size_t>(cs.last_mark)];
    CheckOne(prefix + cs.id, std::move(cs.image), w, lo, hi, -1, d2);
  }

  void Run(const Workload& w, block::CutPoints cuts, std::uint64_t limit) {
    block::CrashStateEnumerator en(w.base, kBs, w.trace, Options(w, cuts));
    ASSERT_TRUE(en.status().ok()) << StatusStr(en.status());
    const std::string prefix = Prefix(w, cuts);
    block::CrashState cs;
    while (states < limit && en.Next(&cs)) {
      ++states;
      const bool d2 = depth2_budget > 0 && states % depth2_every == 0;
      if (d2) --depth2_budget;
      Check(w, prefix, cs, d2);
      if (failures > 0 && !quiet) return;
    }
  }
};

constexpr std::uint64_t kHandles = 150;

TEST(BTreeCrashTest, EveryCrashStateRecoversToAHandleBoundary) {
  if (const char* repro = std::getenv("PERMFS_CRASH_REPRO"); repro && *repro) {
    // "<seed>:<flushes|everyop>:<state id>"
    std::string r(repro);
    const auto a = r.find(':'), b = r.find(':', a + 1);
    ASSERT_NE(b, std::string::npos) << "bad PERMFS_CRASH_REPRO";
    const std::uint64_t seed = std::strtoull(r.c_str(), nullptr, 10);
    const block::CutPoints cuts =
        r.substr(a + 1, b - a - 1) == "flushes" ? block::CutPoints::kFlushes
                                                : block::CutPoints::kEveryOp;
    Workload w = Record(seed, kHandles);
    block::CrashStateEnumerator en(w.base, kBs, w.trace, Checker::Options(w, cuts));
    auto cs = en.Build(r.substr(b + 1));
    ASSERT_TRUE(cs.ok()) << StatusStr(cs.status());
    Checker c;
    c.depth2_budget = 1;
    c.Check(w, Checker::Prefix(w, cuts), *cs, true);
    std::printf("%llu crash states checked, %llu failures (repro)\n",
                static_cast<unsigned long long>(1 + c.depth2_states),
                static_cast<unsigned long long>(c.failures));
    EXPECT_EQ(c.failures, 0u);
    return;
  }
  const std::uint64_t target = EnvU64("PERMFS_CRASH_STATES", 40000);
  const std::uint64_t seed0 = EnvU64("PERMFS_CRASH_SEED", 1);
  Checker c;
  c.depth2_budget = target / 400 + 1;
  const auto t0 = std::chrono::steady_clock::now();
  std::uint64_t workloads = 0, trace_ops = 0, checkpoints = 0;
  for (std::uint64_t seed = seed0; c.states < target; ++seed) {
    Workload w = Record(seed, kHandles);
    ASSERT_EQ(w.hashes.size(), kHandles + 1) << "workload seed " << seed << " did not complete";
    ASSERT_FALSE(w.trace.empty());
    trace_ops += w.trace.size();
    EXPECT_GE(w.max_height, 2u) << "seed " << seed << ": trees too small to split";
    checkpoints += w.checkpoints;
    // Flush cut points fully, every-op cut points up to the target share of this workload.
    c.Run(w, block::CutPoints::kFlushes, ~0ull);
    if (c.failures == 0) c.Run(w, block::CutPoints::kEveryOp, c.states + 3000);
    ++workloads;
    if (c.failures > 0) break;
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%llu crash states checked, %llu failures (%llu depth-1 + %llu depth-2 states; "
              "%llu workloads of %llu handles, %llu trace ops, %llu checkpoints; %.1f s)\n",
              static_cast<unsigned long long>(c.states + c.depth2_states),
              static_cast<unsigned long long>(c.failures),
              static_cast<unsigned long long>(c.states),
              static_cast<unsigned long long>(c.depth2_states),
              static_cast<unsigned long long>(workloads),
              static_cast<unsigned long long>(kHandles),
              static_cast<unsigned long long>(trace_ops),
              static_cast<unsigned long long>(checkpoints), secs);
  EXPECT_GE(c.states, target);
  EXPECT_EQ(c.failures, 0u);
}

// The harness can fail: content from no handle, a leaked block and a lost durable handle are
// each flagged.
TEST(BTreeCrashTest, CheckerDetectsBadStates) {
  Workload w = Record(77, 12);
  ASSERT_EQ(w.hashes.size(), 13u);
  block::CrashStateOptions o;
  o.subsets = o.torn = false;
  o.cut_points = block::CutPoints::kMarks;
  block::CrashStateEnumerator en(w.base, kBs, w.trace, o);
  block::CrashState cs, last;
  while (en.Next(&cs)) last = cs;
  ASSERT_FALSE(last.image.empty());
  {  // The clean final state passes.
    Checker c;
    EXPECT_EQ(c.CheckOne("final", last.image, w, 12, 12, -1, false), 12);
    EXPECT_EQ(c.failures, 0u);
  }
  {  // A durable handle lost: the final content demanded, an older one required.
    Checker c;
    c.quiet = true;
    c.CheckOne("lost", last.image, w, 0, 11, -1, false);
    EXPECT_EQ(c.failures, 1u) << "content of handle 12 accepted for [0, 11]";
  }
  {  // Extra data no handle wrote.
    block::MemBlockDevice dev(last.image, kBs);
    {
      auto v = volume::Volume::Mount(&dev, MountOpts());
      ASSERT_TRUE(v.ok());
      auto txn = (*v)->meta()->Begin();
      ASSERT_TRUE(txn.ok());
      btree::BTree t((*v)->meta(), (*v)->allocator(), (*v)->roots(), kTrees[0]);
      ASSERT_TRUE(t.Put(*txn, btree::Slice(std::string("zz-bogus")), btree::Slice()).ok());
      ASSERT_TRUE(txn->Commit().ok());
      ASSERT_TRUE((*v)->Unmount().ok());
    }
    Checker c;
    c.quiet = true;
    c.CheckOne("extra", dev.Snapshot(), w, 0, 12, -1, false);
    EXPECT_EQ(c.failures, 1u) << "content from no handle accepted";
  }
  {  // A leaked block (allocated in the bitmap, reachable from nothing).
    block::MemBlockDevice dev(last.image, kBs);
    {
      auto v = volume::Volume::Mount(&dev, MountOpts());
      ASSERT_TRUE(v.ok());
      auto txn = (*v)->meta()->Begin();
      ASSERT_TRUE(txn.ok());
      ASSERT_TRUE((*v)->allocator()->Allocate(*txn, 1, 1, 0).ok());
      ASSERT_TRUE(txn->Commit().ok());
      ASSERT_TRUE((*v)->Unmount().ok());
    }
    Checker c;
    c.quiet = true;
    c.CheckOne("leak", dev.Snapshot(), w, 0, 12, -1, false);
    EXPECT_EQ(c.failures, 1u) << "a leaked block was not flagged";
  }
}

}  // namespace
}  // namespace permfs
