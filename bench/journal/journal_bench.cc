// Journal commit throughput: small transactions (2 blocks) each followed by Sync(), from 1 and
// 4 threads, on a RAM device and on an image file in /tmp (FileBlockDevice: Flush = fdatasync).
// Group commit lets concurrent Sync() callers share one journal write + flush; the counters show
// transactions per second and how many Sync() calls each journal commit served.
//
// Env: PERMFS_BENCH_DIR (default /tmp) for the image file.

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "block/mem_block_device.h"
#include "format/meta_block.h"
#include "hosted/file_block_device.h"
#include "journal/meta_store.h"
#include "testutil/volume_fixture.h"
#include "util/coding.h"

namespace permfs {
namespace {

constexpr std::uint64_t kBlocks = 16384;  // 64 MiB
constexpr int kMaxThreads = 8;

struct Vol {
  std::unique_ptr<block::BlockDevice> dev;
  std::unique_ptr<testutil::TestVolume> v;
};

[[noreturn]] void Die(const char* what, const Status& st) {
  std::fprintf(stderr, "%s: %s\n", what, testutil::Str(st).c_str());
  std::abort();
}

Vol* MakeVol(bool file) {
  auto* x = new Vol;
  if (file) {
    const char* dir = std::getenv("PERMFS_BENCH_DIR");
    std::string path = std::string(dir && *dir ? dir : "/tmp") + "/permfs_journal_bench.img";
    std::remove(path.c_str());
    hosted::FileOpenOptions o;
    o.create_size_bytes = kBlocks * 4096;
    auto d = hosted::FileBlockDevice::Open(path, o);
    if (!d.ok()) Die("open image", d.status());
    x->dev = std::move(*d);
  } else {
    x->dev = std::make_unique<block::MemBlockDevice>(kBlocks, 4096);
  }
  testutil::VolumeOptions o;
  o.with_allocator = false;
  auto r = testutil::TestVolume::MakeFresh(x->dev.get(), kBlocks, o);
  if (!r.ok()) Die("mkfs", r.status());
  x->v = std::move(*r);
  // Two metadata blocks per possible thread.
  journal::MetaStore* ms = x->v->ms.get();
  auto t = ms->Begin();
  if (!t.ok()) Die("begin", t.status());
  for (int i = 0; i < 2 * kMaxThreads; ++i) {
    std::uint64_t b = x->v->sb.shard_start + 1 + static_cast<std::uint64_t>(i);
    auto p = t->Create(b, format::BlockType::kBTreeLeaf, 1);
    if (!p.ok()) Die("create", p.status());
  }
  if (!t->Commit().ok()) Die("commit", Status::IOError("commit"));
  Status st = ms->SyncAndCheckpoint();
  if (!st.ok()) Die("sync", st);
  return x;
}

Vol& Get(bool file) {
  static Vol* mem = MakeVol(false);
  static Vol* img = file ? MakeVol(true) : nullptr;
  if (file && img == nullptr) img = MakeVol(true);
  return file ? *img : *mem;
}

std::uint64_t g_commits_before = 0;

// range(0): 0 = RAM device, 1 = image file in /tmp.
void BM_CommitSync(benchmark::State& state) {
  Vol& v = Get(state.range(0) == 1);
  journal::MetaStore* ms = v.v->ms.get();
  const int ti = state.thread_index();
  const std::uint64_t b0 = v.v->sb.shard_start + 1 + 2 * static_cast<std::uint64_t>(ti);
  const format::Expect e0{format::BlockType::kBTreeLeaf, b0, nullptr, true, 1};
  const format::Expect e1{format::BlockType::kBTreeLeaf, b0 + 1, nullptr, true, 1};
  if (ti == 0) g_commits_before = ms->stats().commits;
  std::uint64_t n = 0;
  for (auto _ : state) {
    auto t = ms->Begin();
    if (!t.ok()) { state.SkipWithError("Begin failed"); break; }
    auto p = t->Modify(b0, e0);
    auto q = t->Modify(b0 + 1, e1);
    if (!p.ok() || !q.ok()) { state.SkipWithError("Modify failed"); break; }
    EncodeLE64(*p + 64, ++n);
    EncodeLE64(*q + 64, n);
    if (!t->Commit().ok()) { state.SkipWithError("Commit failed"); break; }
    if (!ms->Sync().ok()) { state.SkipWithError("Sync failed"); break; }
  }
  state.SetItemsProcessed(state.iterations());
  if (ti == 0) {
    // Sync() calls per journal commit (> 1 means commits were shared).
    const double commits = static_cast<double>(ms->stats().commits - g_commits_before);
    const double syncs = static_cast<double>(state.iterations()) * state.threads();
    state.counters["syncs_per_commit"] = commits > 0 ? syncs / commits : 0;
    state.counters["commits_per_s"] =
        benchmark::Counter(commits, benchmark::Counter::kIsRate);
  }
}
BENCHMARK(BM_CommitSync)->Arg(0)->Arg(1)->Threads(1)->Threads(4)->UseRealTime();

}  // namespace
}  // namespace permfs

BENCHMARK_MAIN();
