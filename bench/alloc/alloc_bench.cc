// Allocator microbenchmarks: in-memory reservations (1 and 2 threads) and journaled
// Allocate+Free transactions, on a 100k-block (4-shard) RAM volume.

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "alloc/allocator.h"
#include "block/mem_block_device.h"
#include "testutil/volume_fixture.h"

namespace permfs {
namespace {

struct Vol {
  std::unique_ptr<block::MemBlockDevice> dev;
  std::unique_ptr<testutil::TestVolume> v;
};

// One shared volume, built on first use (thread-safe static initialisation).
Vol& Shared() {
  static Vol* vol = [] {
    auto* x = new Vol;
    x->dev = std::make_unique<block::MemBlockDevice>(100000, 4096);
    auto r = testutil::TestVolume::MakeFresh(x->dev.get(), 100000);
    if (!r.ok()) {
      std::fprintf(stderr, "volume setup failed: %s\n", testutil::Str(r.status()).c_str());
      std::abort();
    }
    x->v = std::move(*r);
    return x;
  }();
  return *vol;
}

void BM_ReserveUnreserve(benchmark::State& state) {
  alloc::Allocator* a = Shared().v->alloc.get();
  const std::uint64_t want = static_cast<std::uint64_t>(state.range(0));
  for (auto _ : state) {
    auto e = a->Reserve(want, 1, 0);
    if (!e.ok()) {
      state.SkipWithError("Reserve failed");
      break;
    }
    a->Unreserve(*e);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ReserveUnreserve)->Arg(1)->Arg(16)->Threads(1)->Threads(2)->UseRealTime();

// Reserve with a hint: the locality path (scan starts at the hint).
void BM_ReserveUnreserveHinted(benchmark::State& state) {
  Vol& v = Shared();
  alloc::Allocator* a = v.v->alloc.get();
  const std::uint64_t hint = v.v->sb.shard_start + 20000 + 1000 * state.thread_index();
  for (auto _ : state) {
    auto e = a->Reserve(1, 1, hint);
    if (!e.ok()) {
      state.SkipWithError("Reserve failed");
      break;
    }
    a->Unreserve(*e);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ReserveUnreserveHinted)->Threads(1)->Threads(2)->UseRealTime();

// One transaction allocating a block, one freeing it (no Sync per transaction: commits happen at
// the store's threshold). Freed blocks only become reusable after a checkpoint, so when the
// allocator runs dry with frees pending, the caller protocol applies: abort, SyncAndCheckpoint,
// retry (counted in "checkpoints").
void BM_AllocateFreeInTxns(benchmark::State& state) {
  Vol& v = Shared();
  journal::MetaStore* ms = v.v->ms.get();
  alloc::Allocator* a = v.v->alloc.get();
  std::uint64_t checkpoints = 0;
  for (auto _ : state) {
    alloc::Extent e;
    for (;;) {
      auto t = ms->Begin();
      if (!t.ok()) { state.SkipWithError("Begin failed"); return; }
      auto r = a->Allocate(*t, 1, 1, 0);
      if (r.ok()) {
        e = *r;
        if (!t->Commit().ok()) { state.SkipWithError("Commit failed"); return; }
        break;
      }
      t->Abort();
      if (!r.status().IsNoSpace() || !a->HasPendingFrees()) {
        std::fprintf(stderr, "Allocate: %s\n", testutil::Str(r.status()).c_str());
        state.SkipWithError("Allocate failed");
        return;
      }
      if (!ms->SyncAndCheckpoint().ok()) { state.SkipWithError("checkpoint failed"); return; }
      ++checkpoints;
    }
    auto t = ms->Begin();
    if (!t.ok()) { state.SkipWithError("Begin failed"); return; }
    if (!a->Free(*t, e).ok()) { state.SkipWithError("Free failed"); return; }
    if (!t->Commit().ok()) { state.SkipWithError("Commit failed"); return; }
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["checkpoints"] = static_cast<double>(checkpoints);
}
BENCHMARK(BM_AllocateFreeInTxns)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace permfs

BENCHMARK_MAIN();
