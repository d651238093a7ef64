// ChunkStore microbenchmarks on a RAM volume (MemBlockDevice, 4 KiB blocks, 64 KiB records):
//   BM_PutUnique      Prepare + Commit of distinct 64 KiB chunks (hash, reserve, write, index insert)
//   BM_PutDuplicate   Prepare + Commit of the same chunk (hash, lookup, refcount + 1)
//   BM_ReadLocated    ReadLocated of whole 64 KiB chunks (read + CRC32C verify + copy)
//   BM_LocateAndRead  Locate under a ReadView, then ReadLocated
//   BM_Sha256 / BM_Crc32c / BM_Memcpy  the reference limits for 64 KiB buffers
// One transaction per chunk; a Sync (journal write + flush) every 256 chunks (16 MiB).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "block/mem_block_device.h"
#include "store/chunk_store.h"
#include "util/crc32c.h"
#include "util/random.h"
#include "util/sha256.h"
#include "volume/volume.h"

namespace permfs {
namespace {

constexpr std::size_t kChunk = 65536;
constexpr std::uint64_t kBlocks = 131072;  // 512 MiB
constexpr int kSyncEvery = 256;
constexpr int kRecycleEvery = 4096;  // 256 MiB of unique chunks, then drop them all

[[noreturn]] void Die(const char* what, const Status& st) {
  std::fprintf(stderr, "%s: %s (%s)\n", what, st.CodeName(), st.message());
  std::abort();
}

struct Env {
  std::unique_ptr<block::MemBlockDevice> dev;
  Owned<volume::Volume> vol;
  std::unique_ptr<store::ChunkStore> cs;
  Env() {
    dev = std::make_unique<block::MemBlockDevice>(kBlocks, 4096);
    Status st = volume::Volume::Mkfs(dev.get(), {});
    if (!st.ok()) Die("mkfs", st);
    auto v = volume::Volume::Mount(dev.get(), {});
    if (!v.ok()) Die("mount", v.status());
    vol = std::move(*v);
    cs = std::make_unique<store::ChunkStore>(vol.get());
  }
  void Put(const std::uint8_t* data, store::ChunkId* id) {
    auto p = cs->Prepare(data, kChunk);
    if (!p.ok()) Die("prepare", p.status());
    auto t = vol->meta()->Begin();
    if (!t.ok()) Die("begin", t.status());
    Status st = cs->Commit(*t, *p, data);
    if (!st.ok()) Die("commit", st);
    st = t->Commit();
    if (!st.ok()) Die("txn commit", st);
    if (id) *id = p->id;
  }
  void UnrefAll(const std::vector<store::ChunkId>& ids) {
    for (std::size_t i = 0; i < ids.size(); i += 64) {
      auto t = vol->meta()->Begin();
      if (!t.ok()) Die("begin", t.status());
      for (std::size_t k = i; k < ids.size() && k < i + 64; ++k) {
        Status st = cs->Unref(*t, ids[k]);
        if (!st.ok()) Die("unref", st);
      }
      Status st = t->Commit();
      if (!st.ok()) Die("txn commit", st);
    }
    Status st = vol->meta()->SyncAndCheckpoint();
    if (!st.ok()) Die("checkpoint", st);
  }
};

std::vector<std::uint8_t> RandomChunk(std::uint64_t seed) {
  Random r(seed);
  std::vector<std::uint8_t> v(kChunk);
  for (std::size_t i = 0; i < kChunk; i += 8) {
    std::uint64_t x = r.Next64();
    std::memcpy(&v[i], &x, 8);
  }
  return v;
}

void BM_PutUnique(benchmark::State& state) {
  Env env;
  auto buf = RandomChunk(1);
  std::vector<store::ChunkId> ids;
  std::uint64_t counter = 0;
  for (auto _ : state) {
    ++counter;
    std::memcpy(buf.data(), &counter, sizeof counter);  // distinct content, distinct id
    store::ChunkId id;
    env.Put(buf.data(), &id);
    ids.push_back(id);
    if (ids.size() % kSyncEvery == 0) {
      Status st = env.vol->meta()->Sync();
      if (!st.ok()) Die("sync", st);
    }
    if (ids.size() == kRecycleEvery) {
      state.PauseTiming();
      env.UnrefAll(ids);
      ids.clear();
      state.ResumeTiming();
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kChunk));
  auto s = env.cs->stats();
  state.counters["dedup_hits"] = static_cast<double>(s.dedup_hits);
  state.counters["data_flushes"] = static_cast<double>(env.vol->meta()->stats().data_flushes);
}
BENCHMARK(BM_PutUnique)->Unit(benchmark::kMicrosecond)->MinTime(1.0);

void BM_PutDuplicate(benchmark::State& state) {
  Env env;
  auto buf = RandomChunk(2);
  env.Put(buf.data(), nullptr);
  int n = 0;
  for (auto _ : state) {
    env.Put(buf.data(), nullptr);
    if (++n % kSyncEvery == 0) {
      Status st = env.vol->meta()->Sync();
      if (!st.ok()) Die("sync", st);
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kChunk));
  state.counters["dedup_hits"] = static_cast<double>(env.cs->stats().dedup_hits);
}
BENCHMARK(BM_PutDuplicate)->Unit(benchmark::kMicrosecond)->MinTime(1.0);

struct ReadEnv {
  Env env;
  std::vector<store::ChunkId> ids;
  std::vector<store::ChunkLocation> locs;
  ReadEnv() {
    for (int i = 0; i < 1024; ++i) {  // 64 MiB
      auto buf = RandomChunk(100 + i);
      store::ChunkId id;
      env.Put(buf.data(), &id);
      ids.push_back(id);
    }
    Status st = env.vol->meta()->SyncAndCheckpoint();
    if (!st.ok()) Die("checkpoint", st);
    journal::ReadView view(env.vol->meta());
    for (const auto& id : ids) {
      auto l = env.cs->Locate(view, id);
      if (!l.ok()) Die("locate", l.status());
      locs.push_back(*l);
    }
  }
};

void BM_ReadLocated(benchmark::State& state) {
  ReadEnv r;
  std::vector<std::uint8_t> out(kChunk);
  std::size_t i = 0;
  for (auto _ : state) {
    Status st = r.env.cs->ReadLocated(r.locs[i++ % r.locs.size()], 0, kChunk, out.data());
    if (!st.ok()) Die("read", st);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kChunk));
}
BENCHMARK(BM_ReadLocated)->Unit(benchmark::kMicrosecond)->MinTime(1.0);

void BM_LocateAndRead(benchmark::State& state) {
  ReadEnv r;
  std::vector<std::uint8_t> out(kChunk);
  std::size_t i = 0;
  for (auto _ : state) {
    store::ChunkLocation loc;
    {
      journal::ReadView view(r.env.vol->meta());
      auto l = r.env.cs->Locate(view, r.ids[i++ % r.ids.size()]);
      if (!l.ok()) Die("locate", l.status());
      loc = *l;
    }
    Status st = r.env.cs->ReadLocated(loc, 0, kChunk, out.data());
    if (!st.ok()) Die("read", st);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kChunk));
}
BENCHMARK(BM_LocateAndRead)->Unit(benchmark::kMicrosecond)->MinTime(1.0);

void BM_Sha256(benchmark::State& state) {
  auto buf = RandomChunk(3);
  for (auto _ : state) {
    auto d = Sha256(buf.data(), buf.size());
    benchmark::DoNotOptimize(d);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kChunk));
}
BENCHMARK(BM_Sha256)->Unit(benchmark::kMicrosecond);

void BM_Crc32c(benchmark::State& state) {
  auto buf = RandomChunk(4);
  for (auto _ : state) {
    auto c = Crc32c(buf.data(), buf.size());
    benchmark::DoNotOptimize(c);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kChunk));
}
BENCHMARK(BM_Crc32c)->Unit(benchmark::kMicrosecond);

void BM_Memcpy(benchmark::State& state) {
  auto src = RandomChunk(5);
  std::vector<std::uint8_t> dst(kChunk);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), kChunk);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kChunk));
}
BENCHMARK(BM_Memcpy)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace permfs

BENCHMARK_MAIN();
