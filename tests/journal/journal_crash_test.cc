// Crash-consistency harness for the journal + MetaStore (RELIABILITY.md §4.1), at the BlockDevice
// seam: a workload of random transactions is recorded through RecordingBlockDevice, every crash
// state the persistence model allows is generated (prefixes, subsets of the last epoch, torn and
// garbage writes; cut at flushes and at every op), and each one is mounted and checked:
//   - MetaStore::Open succeeds (no Corruption: no bit flips were injected);
//   - every transaction marked durable before the cut is fully visible;
//   - the blocks equal the model exactly as of ONE transaction boundary T >= the last durable
//     one (all-or-nothing per transaction, no mixing of two transactions' blocks);
//   - a second mount replays nothing and sees the same state (recovery is idempotent).
// Depth 2: for a sample of states, the recovery's own writes are recorded and cut again, and
// every resulting state must recover to the same T.
//
// Env: PERMFS_CRASH_STATES = minimum number of depth-1 states to check (default 100000);
//      PERMFS_CRASH_SEED = first workload seed (default 1).
// A failure prints a repro id "crash:wl=journal/seed<S>:cuts=<flushes|everyop>:<state id>".

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "block/crash_state.h"
#include "block/mem_block_device.h"
#include "block/recording_block_device.h"
#include "format/volume_root.h"
#include "journal/meta_store.h"
#include "journal/store_test_util.h"
#include "testutil/volume_fixture.h"
#include "util/random.h"

namespace permfs::journal {
namespace {

using testutil::EnvU64;

using namespace permfs::journal::testing;  // NOLINT
using testutil::Str;
using testutil::TestVolume;

constexpr std::uint32_t kBs = 4096;
constexpr std::uint64_t kBlocks = 256;
constexpr std::uint64_t kJournal = 24;  // 22 log blocks: checkpoints every few transactions
constexpr std::uint64_t kN = 8;         // test metadata blocks; slot kN is the volume root

using State = std::vector<std::uint64_t>;  // tag of every block + the root counter

testutil::VolumeOptions Opts() {
  testutil::VolumeOptions o;
  o.journal_blocks = kJournal;
  o.with_allocator = false;
  o.store.cache_blocks = 4;  // small cache: reads go to the checkpoint map and the device
  return o;
}

std::uint64_t Blk(const format::Superblock& sb, std::uint64_t i) { return sb.shard_start + 1 + i; }

format::Expect RootExpect(const format::Superblock& sb) {
  return format::Expect{format::BlockType::kVolumeRoot, sb.root_block, nullptr};
}

// Reads the state a mounted store shows.
Result<State> ReadState(MetaStore* ms) {
  const format::Superblock& sb = ms->superblock();
  State s(kN + 1);
  ReadView v(ms);
  for (std::uint64_t i = 0; i < kN; ++i) {
    auto r = v.Read(Blk(sb, i), LeafAt(Blk(sb, i)));
    if (!r.ok()) return r.status();
    s[i] = PayloadTag(*r, kBs, Blk(sb, i));
  }
  auto r = v.Read(sb.root_block, RootExpect(sb));
  if (!r.ok()) return r.status();
  auto vr = format::VolumeRoot::DecodePayload(*r, kBs);
  if (!vr.ok()) return vr.status();
  s[kN] = vr->counters[format::kCounterNextInode];
  return s;
}

std::string Render(const State& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i) out += ' ';
    out += s[i] == ~0ull ? std::string("?") : std::to_string(s[i]);
  }
  return out + "]";
}

struct Workload {
  std::uint64_t seed = 0;
  std::vector<std::uint8_t> base;          // image when recording began
  std::vector<block::TraceEntry> trace;
  std::vector<State> model;                // model[t] = state after transaction t
};

// Builds a fresh volume with kN blocks (tag 0) checkpointed home, then records `txns` random
// transactions (each synced, then marked "durable <t>").
Workload Record(std::uint64_t seed, std::uint64_t txns) {
  Workload w;
  w.seed = seed;
  block::MemBlockDevice mem(kBlocks, kBs);
  {
    auto v = TestVolume::MakeFresh(&mem, kBlocks, Opts());
    EXPECT_TRUE(v.ok()) << Str(v.status());
    if (!v.ok()) return w;
    MetaStore* ms = (*v)->ms.get();
    auto t = ms->Begin();
    EXPECT_TRUE(t.ok());
    for (std::uint64_t i = 0; i < kN; ++i) {
      auto p = t->Create(Blk((*v)->sb, i), format::BlockType::kBTreeLeaf, kTestOwner);
      EXPECT_TRUE(p.ok());
      FillPayload(*p, kBs, Blk((*v)->sb, i), 0);
    }
    EXPECT_TRUE(t->Commit().ok());
    EXPECT_TRUE(ms->SyncAndCheckpoint().ok());
  }
  w.base = mem.Snapshot();
  w.model.push_back(State(kN + 1, 0));
  block::RecordingBlockDevice rec(&mem);
  auto v = TestVolume::Remount(&rec, Opts());
  EXPECT_TRUE(v.ok()) << Str(v.status());
  if (!v.ok()) return w;
  MetaStore* ms = (*v)->ms.get();
  const format::Superblock sb = (*v)->sb;
  Random rnd(seed);
  for (std::uint64_t t = 1; t <= txns; ++t) {
    State next = w.model.back();
    auto h = ms->Begin();
    EXPECT_TRUE(h.ok());
    if (!h.ok()) return w;
    const std::uint32_t n = 1 + rnd.Uniform(3);
    for (std::uint32_t k = 0; k < n; ++k) {
      const std::uint64_t i = rnd.Uniform(kN);
      auto p = h->Modify(Blk(sb, i), LeafAt(Blk(sb, i)));
      EXPECT_TRUE(p.ok());
      FillPayload(*p, kBs, Blk(sb, i), t);
      next[i] = t;
    }
    if (rnd.OneIn(3)) {  // the volume root too (exercises the lost-write generation check)
      auto p = h->Modify(sb.root_block, RootExpect(sb));
      EXPECT_TRUE(p.ok());
      auto vr = format::VolumeRoot::DecodePayload(*p, kBs);
      EXPECT_TRUE(vr.ok());
      vr->counters[format::kCounterNextInode] = t;
      vr->EncodePayload(*p, kBs);
      next[kN] = t;
    }
    EXPECT_TRUE(h->Commit().ok());
    Status st = ms->Sync();
    EXPECT_TRUE(st.ok()) << Str(st);
    w.model.push_back(next);
    rec.Mark(("durable " + std::to_string(t)).c_str());
    if (rnd.OneIn(12)) {
      EXPECT_TRUE(ms->SyncAndCheckpoint().ok());
      rec.Mark(("checkpoint " + std::to_string(t)).c_str());
    }
  }
  v->reset();
  w.trace = rec.TraceCopy();
  return w;
}

// Transaction number named by a mark ("durable 12" / "checkpoint 12"), or 0.
std::uint64_t MarkTxn(const std::vector<block::TraceEntry>& trace, std::int64_t idx) {
  if (idx < 0) return 0;
  const std::string& m = trace[static_cast<std::size_t>(idx)].mark;
  auto sp = m.find(' ');
  return sp == std::string::npos ? 0 : std::strtoull(m.c_str() + sp + 1, nullptr, 10);
}

struct Checker {
  std::uint64_t states = 0, depth2_states = 0, failures = 0;
  std::uint64_t depth2_every = 7;
  std::uint64_t depth2_budget = 0;
  bool quiet = false;  // count failures without reporting them (self-test of the checker)

  void Fail(const std::string& id, const std::string& what) {
    ++failures;
    if (!quiet && failures <= 10) ADD_FAILURE() << id << ": " << what;
  }

  // Mounts `image`, returns the T it recovered to (or -1 on failure, reported).
  std::int64_t CheckOne(const std::string& id, std::vector<std::uint8_t> image,
                        const Workload& w, std::uint64_t lo, std::uint64_t hi,
                        std::int64_t exact, bool depth2) {
    std::vector<std::uint8_t> pre;
    if (depth2) pre = image;
    block::MemBlockDevice dev(std::move(image), kBs);
    std::int64_t T = -1;
    std::vector<block::TraceEntry> replay_trace;
    {
      std::unique_ptr<block::RecordingBlockDevice> rec;
      block::BlockDevice* d = &dev;
      if (depth2) {
        rec = std::make_unique<block::RecordingBlockDevice>(&dev);
        d = rec.get();
      }
      auto v = TestVolume::Remount(d, Opts());
      if (!v.ok()) {
        Fail(id, "mount failed: " + Str(v.status()));
        return -1;
      }
      auto s = ReadState((*v)->ms.get());
      if (!s.ok()) {
        Fail(id, "read failed after mount: " + Str(s.status()));
        return -1;
      }
      if (exact >= 0) {
        if (*s != w.model[static_cast<std::size_t>(exact)])
          Fail(id, "recovered " + Render(*s) + ", expected exactly txn " + std::to_string(exact) +
                       " " + Render(w.model[static_cast<std::size_t>(exact)]));
        else
          T = exact;
      } else {
        for (std::uint64_t t = hi + 1; t-- > lo;)
          if (w.model[t] == *s) {
            T = static_cast<std::int64_t>(t);
            break;
          }
        if (T < 0) {
          std::string why = "state " + Render(*s) + " is not the model at any txn in [" +
                            std::to_string(lo) + ", " + std::to_string(hi) + "]";
          Fail(id, why);
          return -1;
        }
      }
      if (rec) replay_trace = rec->TraceCopy();
    }
    if (T < 0) return -1;
    // Second mount: nothing left to replay, same state.
    {
      auto v = TestVolume::Remount(&dev, Opts());
      if (!v.ok()) {
        Fail(id, "second mount failed: " + Str(v.status()));
        return -1;
      }
      if ((*v)->ms->stats().replayed_transactions != 0)
        Fail(id, "second mount replayed transactions again");
      auto s = ReadState((*v)->ms.get());
      if (!s.ok() || *s != w.model[static_cast<std::size_t>(T)])
        Fail(id, "second mount changed the state");
    }
    if (depth2) {
      block::CrashStateOptions o;
      o.cut_points = block::CutPoints::kEveryOp;
      o.torn = true;
      o.garbage_variants = 0;
      o.max_subsets_per_cut = 64;
      block::CrashStateEnumerator en(pre, kBs, replay_trace, o);
      EXPECT_TRUE(en.status().ok());
      block::CrashState cs;
      while (en.Next(&cs)) {
        ++depth2_states;
        CheckOne(id + ":depth2:" + cs.id, std::move(cs.image), w, 0, 0, T, false);
      }
    }
    return T;
  }

  void Run(const Workload& w, block::CutPoints cuts) {
    block::CrashStateOptions o;
    o.seed = w.seed;
    o.cut_points = cuts;
    o.prefixes = o.subsets = o.torn = true;
    o.full_subset_limit = 8;
    o.max_subsets_per_cut = 128;
    o.garbage_variants = 4;
    block::CrashStateEnumerator en(w.base, kBs, w.trace, o);
    ASSERT_TRUE(en.status().ok()) << Str(en.status());
    const std::string wl = "crash:wl=journal/seed" + std::to_string(w.seed) + ":cuts=" +
                           (cuts == block::CutPoints::kFlushes ? "flushes" : "everyop") + ":";
    block::CrashState cs;
    while (en.Next(&cs)) {
      ++states;
      const std::uint64_t durable = MarkTxn(w.trace, cs.marks_durable);
      // Transactions started before the cut: at most one past the last mark.
      std::uint64_t started = MarkTxn(w.trace, cs.last_mark) + 1;
      if (started >= w.model.size()) started = w.model.size() - 1;
      const bool d2 = depth2_budget > 0 && states % depth2_every == 0;
      if (d2) --depth2_budget;
      CheckOne(wl + cs.id, std::move(cs.image), w, durable, started, -1, d2);
    }
  }
};

TEST(JournalCrashTest, EveryCrashStateRecoversToATransactionBoundary) {
  const std::uint64_t target = EnvU64("PERMFS_CRASH_STATES", 100000);
  const std::uint64_t seed0 = EnvU64("PERMFS_CRASH_SEED", 1);
  Checker c;
  c.depth2_budget = target / 100 + 1;  // every 7th state, ~130 replay cuts each
  const auto t0 = std::chrono::steady_clock::now();
  std::uint64_t workloads = 0;
  for (std::uint64_t seed = seed0; c.states < target; ++seed) {
    Workload w = Record(seed, 24);
    ASSERT_EQ(w.model.size(), 25u);
    ASSERT_FALSE(w.trace.empty());
    c.Run(w, block::CutPoints::kFlushes);
    c.Run(w, block::CutPoints::kEveryOp);
    ++workloads;
    if (c.failures > 0) break;
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%llu crash states checked, %llu failures (%llu workloads, %llu depth-2 states, "
              "%.1f s)\n",
              static_cast<unsigned long long>(c.states + c.depth2_states),
              static_cast<unsigned long long>(c.failures),
              static_cast<unsigned long long>(workloads),
              static_cast<unsigned long long>(c.depth2_states), secs);
  EXPECT_EQ(c.failures, 0u);
}

// The harness itself can fail: a store that applied transactions partially would be caught.
// Here a crash state is hand-made with one block of a later transaction copied home.
TEST(JournalCrashTest, CheckerDetectsAMixedState) {
  Workload w = Record(99, 6);
  ASSERT_EQ(w.model.size(), 7u);
  // Final image with everything applied, then block 0 set back to its base content while the
  // model says the last transaction touched it (if it did not, pick one that was touched).
  block::CrashStateOptions o;
  o.subsets = o.torn = false;
  o.cut_points = block::CutPoints::kMarks;
  block::CrashStateEnumerator en(w.base, kBs, w.trace, o);
  block::CrashState cs, last;
  while (en.Next(&cs)) last = cs;
  ASSERT_FALSE(last.image.empty());
  // Mount once so everything is home, then corrupt the mix on the home copies.
  block::MemBlockDevice dev(last.image, kBs);
  std::uint64_t touched = kN;
  {
    auto v = TestVolume::Remount(&dev, Opts());
    ASSERT_TRUE(v.ok());
    ASSERT_TRUE((*v)->ms->SyncAndCheckpoint().ok());
    for (std::uint64_t i = 0; i < kN; ++i)
      if (w.model[6][i] == 6) touched = i;
  }
  if (touched == kN) GTEST_SKIP() << "last transaction only touched the root";
  auto sb = testutil::ReadSuperblock(&dev);
  ASSERT_TRUE(sb.ok());
  const std::uint64_t b = Blk(*sb, touched);
  std::memcpy(dev.raw() + b * kBs, w.base.data() + b * kBs, kBs);
  Checker c;
  c.quiet = true;
  c.CheckOne("mixed", dev.Snapshot(), w, 6, 6, -1, false);
  EXPECT_EQ(c.failures, 1u) << "a mixed state was not flagged";
}

}  // namespace
}  // namespace permfs::journal
