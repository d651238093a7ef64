// B+tree benchmarks on a 256 MiB RAM volume (4 KiB blocks) with 1M keys of 16 bytes and values
// of 16 bytes: insert ops/s (sequential and random keys; 1 and 100 ops per WriteTxn handle),
// point lookups with a warm cache, and full-scan entries/s. No Sync in the insert loops: this
// measures the tree and the metadata cache, commits happen at the store's threshold (group
// commit is measured by journal_bench).
//
// Each insert benchmark inserts exactly 1M keys into a fresh volume (fixed iteration count).

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "block/mem_block_device.h"
#include "btree/btree.h"
#include "util/random.h"
#include "volume/volume.h"

namespace permfs {
namespace {

constexpr std::uint64_t kKeys = 1000000;
constexpr std::uint64_t kBlocks = (256ull << 20) / 4096;

std::uint64_t Mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

// 16-byte big-endian key: sequential keys sort in insertion order.
void MakeKey(std::uint64_t i, bool random, std::uint8_t* k) {
  const std::uint64_t hi = random ? Mix(i) : i;
  for (int b = 0; b < 8; ++b) k[b] = static_cast<std::uint8_t>(hi >> (56 - 8 * b));
  for (int b = 0; b < 8; ++b) k[8 + b] = static_cast<std::uint8_t>(i >> (56 - 8 * b));
}

struct Vol {
  std::unique_ptr<block::MemBlockDevice> dev;
  Owned<volume::Volume> v;
  Vol() {
    dev = std::make_unique<block::MemBlockDevice>(kBlocks, 4096);
    if (!volume::Volume::Mkfs(dev.get(), {}).ok()) std::abort();
    volume::MountOptions mo;
    mo.cache_blocks = 65536;  // the whole tree fits: warm-cache figures
    auto r = volume::Volume::Mount(dev.get(), mo);
    if (!r.ok()) std::abort();
    v = std::move(*r);
  }
  btree::BTree Tree() { return btree::BTree(v->meta(), v->allocator(), v->roots(), 1); }
};

void Insert(benchmark::State& state) {
  const bool random = state.range(0) != 0;
  const std::uint64_t per_handle = static_cast<std::uint64_t>(state.range(1));
  Vol vol;
  auto t = vol.Tree();
  std::uint64_t i = 0;
  std::uint8_t key[16], val[16] = {};
  for (auto _ : state) {
    auto txn = vol.v->meta()->Begin();
    if (!txn.ok()) {
      state.SkipWithError("Begin failed");
      break;
    }
    for (std::uint64_t j = 0; j < per_handle; ++j, ++i) {
      MakeKey(i, random, key);
      val[0] = static_cast<std::uint8_t>(i);
      Status st = t.Insert(*txn, btree::Slice(key, 16), btree::Slice(val, 16));
      if (!st.ok()) {
        state.SkipWithError(st.message());
        break;
      }
    }
    if (!txn->Commit().ok()) state.SkipWithError("Commit failed");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(i));
  state.counters["keys"] = static_cast<double>(i);
}
BENCHMARK(Insert)
    ->ArgNames({"random", "ops_per_handle"})
    ->Args({0, 1})->Iterations(kKeys)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(Insert)
    ->ArgNames({"random", "ops_per_handle"})
    ->Args({1, 1})->Iterations(kKeys)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(Insert)
    ->ArgNames({"random", "ops_per_handle"})
    ->Args({0, 100})->Iterations(kKeys / 100)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(Insert)
    ->ArgNames({"random", "ops_per_handle"})
    ->Args({1, 100})->Iterations(kKeys / 100)
    ->Unit(benchmark::kMillisecond);

// One shared 1M-key volume (random insertion order), built on first use.
Vol& Filled() {
  static Vol* vol = [] {
    auto* x = new Vol;
    auto t = x->Tree();
    std::uint8_t key[16], val[16] = {};
    for (std::uint64_t i = 0; i < kKeys;) {
      auto txn = x->v->meta()->Begin();
      if (!txn.ok()) std::abort();
      // 100 random keys per handle: one handle must fit the journal (max_txn_blocks).
      for (int j = 0; j < 100; ++j, ++i) {
        MakeKey(i, true, key);
        Status st = t.Insert(*txn, btree::Slice(key, 16), btree::Slice(val, 16));
        if (!st.ok()) {
          std::fprintf(stderr, "fill: insert %llu: %s\n", static_cast<unsigned long long>(i),
                       st.message());
          std::abort();
        }
      }
      if (!txn->Commit().ok()) std::abort();
    }
    if (!x->v->meta()->SyncAndCheckpoint().ok()) std::abort();
    return x;
  }();
  return *vol;
}

void Lookup(benchmark::State& state) {
  Vol& vol = Filled();
  auto t = vol.Tree();
  Random rnd(1);
  std::uint8_t key[16];
  std::string v;
  std::uint64_t n = 0;
  // Warm-up: touch every node once.
  {
    journal::ReadView view(vol.v->meta());
    btree::TreeCheckStats st;
    if (!t.Check(view, &st, nullptr, nullptr).ok()) std::abort();
    state.counters["height"] = st.height;
    state.counters["nodes"] = static_cast<double>(st.nodes);
  }
  for (auto _ : state) {
    journal::ReadView view(vol.v->meta());  // one view per 100 lookups
    for (int j = 0; j < 100; ++j) {
      MakeKey(rnd.Uniform64(kKeys), true, key);
      if (!t.Get(view, btree::Slice(key, 16), &v).ok()) {
        state.SkipWithError("lookup missed");
        break;
      }
      ++n;
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(n));
}
BENCHMARK(Lookup);

void ScanAll(benchmark::State& state) {
  Vol& vol = Filled();
  auto t = vol.Tree();
  std::uint64_t n = 0;
  for (auto _ : state) {
    journal::ReadView view(vol.v->meta());
    std::uint64_t c = 0;
    Status st = t.Scan(view, btree::Slice(), btree::Slice(),
                       [](void* ctx, const btree::Slice&, const btree::Slice&) {
                         ++*static_cast<std::uint64_t*>(ctx);
                         return true;
                       },
                       &c);
    if (!st.ok() || c != kKeys) state.SkipWithError("scan failed");
    n += c;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(n));
}
BENCHMARK(ScanAll)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace permfs

BENCHMARK_MAIN();
