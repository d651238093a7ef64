// Microbenchmarks for the util layer: CRC32C, SHA-256, HashMap.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "util/crc32c.h"
#include "util/hash_map.h"
#include "util/random.h"
#include "util/sha256.h"

namespace permfs {
namespace {

std::vector<std::uint8_t> RandomBuffer(std::size_t n) {
  std::vector<std::uint8_t> buf(n);
  Random rnd(n);
  rnd.Fill(buf.data(), n);
  return buf;
}

void BM_Crc32cPortable(benchmark::State& state) {
  auto buf = RandomBuffer(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(Crc32cPortable(0, buf.data(), buf.size()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Crc32cPortable)->Arg(4 << 10)->Arg(64 << 10)->Arg(1 << 20);

void BM_Crc32cHardware(benchmark::State& state) {
  if (!Crc32cHasHardware()) {
    state.SkipWithError("no SSE4.2");
    return;
  }
  auto buf = RandomBuffer(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(Crc32cHardware(0, buf.data(), buf.size()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Crc32cHardware)->Arg(4 << 10)->Arg(64 << 10)->Arg(1 << 20);

void BM_Sha256Portable(benchmark::State& state) {
  auto buf = RandomBuffer(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(Sha256PortableOneShot(buf.data(), buf.size()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Sha256Portable)->Arg(4 << 10)->Arg(64 << 10)->Arg(1 << 20);

void BM_Sha256Port(benchmark::State& state) {
  auto buf = RandomBuffer(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(Sha256(buf.data(), buf.size()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Sha256Port)->Arg(4 << 10)->Arg(64 << 10)->Arg(1 << 20);

std::vector<std::uint64_t> RandomKeys(std::size_t n) {
  std::vector<std::uint64_t> keys(n);
  Random rnd(99);
  for (auto& k : keys) k = rnd.Next64();
  return keys;
}

void BM_HashMapInsert(benchmark::State& state) {
  auto keys = RandomKeys(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    HashMap<std::uint64_t, std::uint64_t> m;
    for (auto k : keys) m.Insert(k, k);
    benchmark::DoNotOptimize(m.size());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_HashMapInsert)->Arg(1 << 10)->Arg(1 << 16)->Arg(1 << 20);

void BM_StdUnorderedMapInsert(benchmark::State& state) {
  auto keys = RandomKeys(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    std::unordered_map<std::uint64_t, std::uint64_t> m;
    for (auto k : keys) m.emplace(k, k);
    benchmark::DoNotOptimize(m.size());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_StdUnorderedMapInsert)->Arg(1 << 10)->Arg(1 << 16)->Arg(1 << 20);

// Half the lookups hit, half miss.
void BM_HashMapFind(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  auto keys = RandomKeys(2 * n);
  HashMap<std::uint64_t, std::uint64_t> m;
  for (std::size_t i = 0; i < n; ++i) m.Insert(keys[i], i);
  std::uint64_t sum = 0;
  for (auto _ : state) {
    for (auto k : keys) {
      const std::uint64_t* v = m.Find(k);
      sum += v ? *v : 1;
    }
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 2 * state.range(0));
}
BENCHMARK(BM_HashMapFind)->Arg(1 << 10)->Arg(1 << 16)->Arg(1 << 20);

void BM_StdUnorderedMapFind(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  auto keys = RandomKeys(2 * n);
  std::unordered_map<std::uint64_t, std::uint64_t> m;
  for (std::size_t i = 0; i < n; ++i) m.emplace(keys[i], i);
  std::uint64_t sum = 0;
  for (auto _ : state) {
    for (auto k : keys) {
      auto it = m.find(k);
      sum += it != m.end() ? it->second : 1;
    }
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 2 * state.range(0));
}
BENCHMARK(BM_StdUnorderedMapFind)->Arg(1 << 10)->Arg(1 << 16)->Arg(1 << 20);

}  // namespace
}  // namespace permfs

BENCHMARK_MAIN();
