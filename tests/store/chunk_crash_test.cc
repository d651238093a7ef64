// Crash harness for file data and the journal's data manifest (DESIGN-NOTES "Crash guarantees").
//
// File data is written to free blocks and is NOT flushed before the journal commit that
// references it: the commit's one flush covers both, and the commit carries a manifest (block,
// length, CRC32C of every new data extent). So a crash can leave the commit record on the disk
// while a data write of the same transaction is lost or torn. This harness records workloads of
// overwrites (dedup, frees and reuse after checkpoints included) on four files through
// RecordingBlockDevice, enumerates every crash state CrashStateEnumerator allows (flush and
// every-op cut points; prefixes, epoch subsets, torn and garbage writes) and checks each one:
//   1. the volume mounts (replay) and the filesystem opens;
//   2. every file reads back without error (never a CRC/Corruption error) and the four files
//      equal the model after ONE op j with  last durable op <= j <= last completed op + 1:
//      nothing synced is lost, nothing half-applied, no file shows data that never reached the
//      disk;
//   3. every chunk index entry reads back with a good CRC (no entry points at missing data);
//   4. a second mount replays nothing and shows the same files.
// It also counts the states in which replay discarded a committed transaction because its
// manifest data was not on the disk, and requires that there are some: the harness really
// produces "journal persisted, data lost" states.
//
// Env: PERMFS_CRASH_STATES = minimum number of states (default 20000);
//      PERMFS_CRASH_SEED = first workload seed (default 1).
// A failure prints "crash:wl=chunk/seed<S>:cuts=<flushes|everyop>:<state id>: <what>".
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
#include "fs/filesystem.h"
#include "util/random.h"
#include "volume/volume.h"
#include "testutil/trace_marks.h"
#include "testutil/volume_fixture.h"

namespace permfs::store {
namespace {

using testutil::EnvU64;
using testutil::Str;

constexpr std::uint32_t kBs = 4096;
constexpr std::uint64_t kDevBlocks = 1536;  // 6 MiB
constexpr std::uint64_t kJournal = 64;      // checkpoints every few ops: frees get reused
constexpr std::uint32_t kRs = 4096;
constexpr int kFiles = 4;
const fs::Credentials kCred{0, 0};

volume::MountOptions MountOpts() {
  volume::MountOptions o;
  o.cache_blocks = 256;
  return o;
}

std::string FileName(int i) { return "f" + std::to_string(i); }

using Files = std::vector<std::string>;  // contents of f0..f3

struct Workload {
  std::uint64_t seed = 0;
  std::vector<std::uint8_t> base;
  std::vector<block::TraceEntry> trace;
  std::vector<Files> model;                        // model[j] = files after op j (0 = setup)
  std::vector<std::uint64_t> durable_at, done_at;  // per trace index: last durable / done op
  std::string error;
};

// Bytes of one write: drawn from a small pool of patterns, so equal records recur (dedup).
std::string Pattern(Random& r, std::size_t n) {
  std::string s(n, '\0');
  Random p(1000 + r.Uniform(6));
  p.Fill(s.data(), s.size());
  return s;
}

void ApplyWrite(std::string* file, std::uint64_t off, const std::string& data) {
  if (file->size() < off + data.size()) file->resize(off + data.size(), '\0');
  file->replace(off, data.size(), data);
}

Workload Record(std::uint64_t seed, int ops) {
  Workload w;
  w.seed = seed;
  Random r(seed);
  block::MemBlockDevice mem(kDevBlocks, kBs);
  volume::MkfsOptions mo;
  mo.journal_blocks = kJournal;
  mo.record_size = kRs;
  Status st = volume::Volume::Mkfs(&mem, mo);
  if (!st.ok()) {
    w.error = "mkfs: " + Str(st);
    return w;
  }
  Files files(kFiles);
  std::uint64_t inos[kFiles] = {};
  {  // Setup, unmounted cleanly: the base image.
    auto v = volume::Volume::Mount(&mem, MountOpts());
    if (!v.ok()) {
      w.error = "mount: " + Str(v.status());
      return w;
    }
    st = fs::Filesystem::Format(v->get(), kCred);
    fs::Filesystem f(v->get());
    if (st.ok()) st = f.Open();
    for (int i = 0; i < kFiles && st.ok(); ++i) {
      auto c = f.Create(fs::kRootIno, FileName(i), 0644, 0, kCred);
      if (!c.ok()) {
        st = c.status();
        break;
      }
      inos[i] = c->ino;
      const std::string data = Pattern(r, 2000 + r.Uniform(9000));
      st = f.Write(inos[i], 0, reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
      ApplyWrite(&files[i], 0, data);
    }
    if (st.ok()) st = (*v)->Unmount();
    if (!st.ok()) {
      w.error = "setup: " + Str(st);
      return w;
    }
  }
  w.base = mem.Snapshot();
  w.model.push_back(files);
  block::RecordingBlockDevice rec(&mem);
  {
    auto v = volume::Volume::Mount(&rec, MountOpts());
    if (!v.ok()) {
      w.error = "mount: " + Str(v.status());
      return w;
    }
    fs::Filesystem f(v->get());
    st = f.Open();
    for (int j = 1; j <= ops && st.ok(); ++j) {
      const int i = static_cast<int>(r.Uniform(kFiles));
      // Overwrites and appends of 1..4 records, aligned or not (one handle each).
      const std::uint64_t off = r.OneIn(2) ? r.Uniform(3) * kRs : r.Uniform(12000);
      const std::string data = Pattern(r, 1 + r.Uniform(3 * kRs));
      st = f.Write(inos[i], off, reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
      if (!st.ok()) break;
      ApplyWrite(&files[i], off, data);
      w.model.push_back(files);
      rec.Mark(("op " + std::to_string(j)).c_str());
      if (!r.OneIn(4) || j == ops) {
        st = f.Sync();
        rec.Mark(("durable " + std::to_string(j)).c_str());
      }
    }
    if (st.ok()) st = (*v)->Unmount();
    if (!st.ok()) {
      w.error = "workload: " + Str(st);
      return w;
    }
  }
  w.trace = rec.TraceCopy();
  w.durable_at = testutil::LatestMark(w.trace, "durable");
  w.done_at = testutil::LatestMark(w.trace, "op");
  return w;
}

// Reads f0..f3 of a mounted filesystem; the first error is returned.
Status ReadFiles(fs::Filesystem* f, Files* out) {
  out->assign(kFiles, std::string());
  for (int i = 0; i < kFiles; ++i) {
    auto in = f->Lookup(fs::kRootIno, FileName(i));
    if (!in.ok()) return in.status();
    std::string& s = (*out)[static_cast<std::size_t>(i)];
    s.assign(in->size, '\0');
    auto n = f->Read(in->ino, 0, s.size(), reinterpret_cast<std::uint8_t*>(s.data()));
    if (!n.ok()) return n.status();
    if (*n != s.size()) return Status::Corruption("short read");
  }
  return Status();
}

// Reads every chunk the index names; returns the number of entries, or the first error.
Result<std::uint64_t> CheckEveryChunk(fs::Filesystem* f) {
  struct Ctx {
    ChunkStore* cs;
    std::uint64_t n = 0;
    Status st;
  } c{f->chunks()};
  journal::ReadView view(f->volume()->meta());
  Status st = f->chunks()->ForEach(
      view,
      [](void* p, const ChunkLocation& l) {
        auto* c = static_cast<Ctx*>(p);
        std::vector<std::uint8_t> b(l.length);
        ++c->n;
        c->st = c->cs->ReadLocated(l, 0, l.length, b.data());
        return c->st.ok();
      },
      &c);
  if (!st.ok()) return st;
  if (!c.st.ok()) return c.st;
  return c.n;
}

struct Checker {
  std::uint64_t states = 0, failures = 0, discarded_states = 0;
  bool quiet = false;

  void Fail(const std::string& id, const std::string& what) {
    ++failures;
    if (!quiet && failures <= 8) ADD_FAILURE() << id << ": " << what;
  }

  // Returns the op the state recovered to, or -1.
  std::int64_t CheckOne(const std::string& id, std::vector<std::uint8_t> image, const Workload& w,
                        std::uint64_t lo, std::uint64_t hi) {
    ++states;
    block::MemBlockDevice dev(std::move(image), kBs);
    Files got;
    std::int64_t T = -1;
    {
      auto v = volume::Volume::Mount(&dev, MountOpts());
      if (!v.ok()) {
        Fail(id, "mount: " + Str(v.status()));
        return -1;
      }
      if ((*v)->meta()->stats().replay_discarded_transactions > 0) ++discarded_states;
      fs::Filesystem f(v->get());
      Status st = f.Open();
      if (!st.ok()) {
        Fail(id, "Filesystem::Open: " + Str(st));
        return -1;
      }
      st = ReadFiles(&f, &got);
      if (!st.ok()) {
        Fail(id, "reading the files: " + Str(st));
        return -1;
      }
      for (std::uint64_t j = hi + 1; j-- > lo;)
        if (w.model[j] == got) {
          T = static_cast<std::int64_t>(j);
          break;
        }
      if (T < 0) {
        std::string any = "none";
        for (std::size_t j = 0; j < w.model.size(); ++j)
          if (w.model[j] == got) any = std::to_string(j);
        Fail(id, "files are not the model after any op in [" + std::to_string(lo) + ", " +
                     std::to_string(hi) + "] (they match op " + any + ")");
        return -1;
      }
      auto chunks = CheckEveryChunk(&f);
      if (!chunks.ok()) {
        Fail(id, "chunk index entry with bad data: " + Str(chunks.status()));
        return -1;
      }
      st = (*v)->Unmount();
      if (!st.ok()) {
        Fail(id, "unmount: " + Str(st));
        return -1;
      }
    }
    {
      volume::MountReport mr;
      auto v = volume::Volume::Mount(&dev, MountOpts(), &mr);
      if (!v.ok()) {
        Fail(id, "second mount: " + Str(v.status()));
        return -1;
      }
      if (mr.replayed_transactions != 0) Fail(id, "second mount replayed transactions");
      fs::Filesystem f(v->get());
      Files again;
      Status st = f.Open();
      if (st.ok()) st = ReadFiles(&f, &again);
      if (!st.ok() || again != got) Fail(id, "second mount changed the files");
    }
    return T;
  }

  void Run(const Workload& w, block::CutPoints cuts, std::uint64_t limit) {
    block::CrashStateOptions o;
    o.seed = w.seed + 1;
    o.cut_points = cuts;
    o.prefixes = o.subsets = o.torn = true;
    o.full_subset_limit = 6;
    o.max_subsets_per_cut = 32;
    o.torn_samples = 8;
    o.garbage_variants = 2;
    block::CrashStateEnumerator en(w.base, kBs, w.trace, o);
    ASSERT_TRUE(en.status().ok()) << Str(en.status());
    const std::string prefix = "crash:wl=chunk/seed" + std::to_string(w.seed) + ":cuts=" +
                               (cuts == block::CutPoints::kFlushes ? "flushes" : "everyop") + ":";
    block::CrashState cs;
    std::uint64_t n = 0;
    while (n < limit && en.Next(&cs)) {
      ++n;
      const std::uint64_t lo =
          cs.marks_durable < 0 ? 0 : w.durable_at[static_cast<std::size_t>(cs.marks_durable)];
      std::uint64_t hi = cs.last_mark < 0 ? 0 : w.done_at[static_cast<std::size_t>(cs.last_mark)];
      if (hi + 1 < w.model.size()) ++hi;  // the op in flight at the cut may have committed
      CheckOne(prefix + cs.id, std::move(cs.image), w, lo, hi);
      if (failures > 8 && !quiet) return;
    }
  }
};

TEST(ChunkCrashTest, LostOrTornDataNeverSurfacesAfterReplay) {
  const std::uint64_t target = EnvU64("PERMFS_CRASH_STATES", 20000);
  const std::uint64_t seed0 = EnvU64("PERMFS_CRASH_SEED", 1);
  const auto t0 = std::chrono::steady_clock::now();
  Checker c;
  std::uint64_t workloads = 0;
  for (std::uint64_t seed = seed0; c.states < target && c.failures == 0; ++seed) {
    Workload w = Record(seed, 12);
    ASSERT_TRUE(w.error.empty()) << "seed " << seed << ": " << w.error;
    ++workloads;
    c.Run(w, block::CutPoints::kFlushes, ~0ull);
    if (c.failures == 0) c.Run(w, block::CutPoints::kEveryOp, 1500);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%llu crash states checked, %llu failures, %llu states where replay discarded a "
              "transaction whose data was not on the disk (%llu workloads, %.1f s)\n",
              static_cast<unsigned long long>(c.states),
              static_cast<unsigned long long>(c.failures),
              static_cast<unsigned long long>(c.discarded_states),
              static_cast<unsigned long long>(workloads), secs);
  EXPECT_GE(c.states, target);
  EXPECT_EQ(c.failures, 0u);
  EXPECT_GT(c.discarded_states, 0u) << "no crash state lost data behind a persisted commit";
}

// The checker can fail: the final image claimed for an earlier durable op, and a data block of
// a file damaged behind the journal's back, are both flagged.
TEST(ChunkCrashTest, CheckerDetectsBadStates) {
  Workload w = Record(77, 4);
  ASSERT_TRUE(w.error.empty()) << w.error;
  block::CrashStateOptions o;
  o.subsets = o.torn = false;
  o.cut_points = block::CutPoints::kMarks;
  block::CrashStateEnumerator en(w.base, kBs, w.trace, o);
  block::CrashState cs, last;
  while (en.Next(&cs)) last = cs;
  ASSERT_FALSE(last.image.empty());
  const std::uint64_t n = w.model.size() - 1;
  {
    Checker c;
    EXPECT_EQ(c.CheckOne("final", last.image, w, n, n), static_cast<std::int64_t>(n));
    EXPECT_EQ(c.failures, 0u);
  }
  if (w.model[n] != w.model[0]) {
    Checker c;
    c.quiet = true;
    c.CheckOne("old", w.base, w, n, n);
    EXPECT_EQ(c.failures, 1u);
  }
  {  // Flip a byte of a checkpointed chunk (no manifest covers it any more): reading must flag
     // it. (Flipping one still named by a journaled manifest makes replay discard that
     // transaction instead, which is a legal recovery.)
    block::MemBlockDevice dev(last.image, kBs);
    std::uint64_t blk = 0;
    {
      auto v = volume::Volume::Mount(&dev, MountOpts());
      ASSERT_TRUE(v.ok());
      {
        fs::Filesystem f(v->get());
        journal::ReadView view((*v)->meta());
        ASSERT_TRUE(f.chunks()
                        ->ForEach(view,
                                  [](void* p, const ChunkLocation& l) {
                                    *static_cast<std::uint64_t*>(p) = l.block;
                                    return false;
                                  },
                                  &blk)
                        .ok());
      }
      ASSERT_TRUE((*v)->Unmount().ok());
    }
    ASSERT_NE(blk, 0u);
    std::vector<std::uint8_t> img = dev.Snapshot();
    img[blk * kBs] ^= 0x10;  // byte 0: every chunk has at least one byte
    Checker c;
    c.quiet = true;
    c.CheckOne("bitflip", img, w, 0, n);
    EXPECT_EQ(c.failures, 1u);
  }
}

}  // namespace
}  // namespace permfs::store
