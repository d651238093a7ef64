// Filesystem (namespace + chunk store) microbenchmarks, in process, no FUSE:
//   - creates/s, lookups/s and readdir entries/s with 1,000 and 1,000,000 entries in ONE
//     directory (the 1M case on a sparse FileBlockDevice image in PERMFS_BENCH_DIR, default /tmp);
//   - sequential write and read MB/s of a 256 MiB file on a MemBlockDevice (64 KiB records),
//     next to the limits measured in the same binary: SHA-256 (util Sha256, what every written
//     record costs) and memcpy bandwidth.
// Each benchmark runs one iteration over the whole working set (manual timing of the measured
// part only); the counters are the figures. Create/Lookup/ReadDir share the populated volume.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "block/mem_block_device.h"
#include "fs/filesystem.h"
#include "hosted/file_block_device.h"
#include "util/random.h"
#include "util/sha256.h"
#include "volume/volume.h"

namespace permfs::fs {
namespace {

[[noreturn]] void Die(const char* what, const Status& st) {
  std::fprintf(stderr, "%s: %s: %s\n", what, st.CodeName(), st.message());
  std::abort();
}

struct Env {
  std::unique_ptr<block::BlockDevice> dev;
  Owned<volume::Volume> vol;
  std::unique_ptr<Filesystem> fs;
  std::string path;
  std::uint64_t dir = 0;
  ~Env() {
    fs.reset();
    if (vol) (void)vol->Unmount();
    vol.reset();
    dev.reset();
    if (!path.empty()) ::unlink(path.c_str());
  }
};

std::unique_ptr<Env> MakeEnv(std::uint64_t bytes, bool file) {
  auto e = std::make_unique<Env>();
  if (file) {
    const char* d = std::getenv("PERMFS_BENCH_DIR");
    e->path = std::string(d && *d ? d : "/tmp") + "/permfs_fs_bench_" + std::to_string(::getpid()) + ".img";
    ::unlink(e->path.c_str());
    hosted::FileOpenOptions fo;
    fo.create_size_bytes = bytes;
    auto dev = hosted::FileBlockDevice::Open(e->path, fo);
    if (!dev.ok()) Die("open image", dev.status());
    e->dev = std::move(*dev);
  } else {
    e->dev = std::make_unique<block::MemBlockDevice>(bytes / 4096);
  }
  Status st = volume::Volume::Mkfs(e->dev.get(), {});
  if (!st.ok()) Die("mkfs", st);
  volume::MountOptions mo;
  mo.cache_blocks = 65536;
  auto v = volume::Volume::Mount(e->dev.get(), mo);
  if (!v.ok()) Die("mount", v.status());
  e->vol = std::move(*v);
  st = Filesystem::Format(e->vol.get(), {0, 0});
  if (!st.ok()) Die("format", st);
  e->fs = std::make_unique<Filesystem>(e->vol.get());
  st = e->fs->Open();
  if (!st.ok()) Die("open", st);
  return e;
}

std::string Name(std::uint64_t i) { return "entry-" + std::to_string(i * 2654435761u % 1000000007u); }

std::map<std::int64_t, std::unique_ptr<Env>>& Dirs() {
  static std::map<std::int64_t, std::unique_ptr<Env>> m;
  return m;
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Creates N empty files in one directory (one transaction each, Sync at the end).
void BM_Create(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  for (auto _ : state) {
    auto e = MakeEnv(n >= 100000 ? (8ull << 30) : (256ull << 20), n >= 100000);
    const Credentials cred{1000, 1000};
    e->dir = e->fs->Mkdir(kRootIno, "big", 0755, cred)->ino;
    const auto t0 = std::chrono::steady_clock::now();
    for (std::int64_t i = 0; i < n; ++i) {
      auto r = e->fs->Create(e->dir, Name(static_cast<std::uint64_t>(i)), 0644, 0, cred);
      if (!r.ok()) Die("create", r.status());
    }
    Status st = e->fs->Sync();
    if (!st.ok()) Die("sync", st);
    const double s = Seconds(t0);
    state.SetIterationTime(s);
    state.counters["creates_per_s"] = static_cast<double>(n) / s;
    Dirs()[n] = std::move(e);
  }
}

void BM_Lookup(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  Env* e = Dirs()[n].get();
  if (!e) {
    state.SkipWithError("run BM_Create first");
    return;
  }
  const std::int64_t lookups = n < 200000 ? 200000 : n;
  Random r(7);
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (std::int64_t i = 0; i < lookups; ++i) {
      auto l = e->fs->Lookup(e->dir, Name(r.Uniform64(static_cast<std::uint64_t>(n))));
      if (!l.ok()) Die("lookup", l.status());
      benchmark::DoNotOptimize(l->ino);
    }
    const double s = Seconds(t0);
    state.SetIterationTime(s);
    state.counters["lookups_per_s"] = static_cast<double>(lookups) / s;
  }
}

void BM_ReadDir(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  Env* e = Dirs()[n].get();
  if (!e) {
    state.SkipWithError("run BM_Create first");
    return;
  }
  for (auto _ : state) {
    std::uint64_t count = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const int passes = n < 100000 ? 200 : 1;
    for (int p = 0; p < passes; ++p) {
      Status st = e->fs->ReadDir(
          e->dir, 0,
          [](void* c, const DirEntry&, std::uint64_t) {
            ++*static_cast<std::uint64_t*>(c);
            return true;
          },
          &count);
      if (!st.ok()) Die("readdir", st);
    }
    const double s = Seconds(t0);
    if (count != static_cast<std::uint64_t>(n) * passes) state.SkipWithError("readdir count wrong");
    state.SetIterationTime(s);
    state.counters["entries_per_s"] = static_cast<double>(count) / s;
  }
  Dirs().erase(n);  // free the volume
}

constexpr std::size_t kFileBytes = 256u << 20;
constexpr std::size_t kIo = 1u << 20;

std::unique_ptr<Env>& SeqEnv() {
  static std::unique_ptr<Env> e;
  return e;
}

void BM_SeqWrite(benchmark::State& state) {
  std::string buf(kIo, '\0');
  for (auto _ : state) {
    SeqEnv().reset();
    SeqEnv() = MakeEnv(kFileBytes + (kFileBytes / 2), false);
    Env* e = SeqEnv().get();
    auto f = e->fs->Create(kRootIno, "seq", 0644, 0, {0, 0});
    e->dir = f->ino;
    Random r(3);
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t off = 0; off < kFileBytes; off += kIo) {
      r.Fill(buf.data(), buf.size());  // fresh content: no dedupe
      Status st = e->fs->Write(f->ino, off, reinterpret_cast<const std::uint8_t*>(buf.data()), kIo);
      if (!st.ok()) Die("write", st);
    }
    Status st = e->fs->Sync();
    if (!st.ok()) Die("sync", st);
    const double s = Seconds(t0);
    state.SetIterationTime(s);
    state.counters["MB_per_s"] = kFileBytes / 1e6 / s;
  }
}

void BM_SeqRead(benchmark::State& state) {
  Env* e = SeqEnv().get();
  if (!e) {
    state.SkipWithError("run BM_SeqWrite first");
    return;
  }
  std::string buf(kIo, '\0');
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t off = 0; off < kFileBytes; off += kIo) {
      auto n = e->fs->Read(e->dir, off, kIo, reinterpret_cast<std::uint8_t*>(buf.data()));
      if (!n.ok() || *n != kIo) Die("read", n.status());
    }
    const double s = Seconds(t0);
    state.SetIterationTime(s);
    state.counters["MB_per_s"] = kFileBytes / 1e6 / s;
  }
  SeqEnv().reset();
}

// The limits: SHA-256 of 64 KiB records (every written record is hashed once), memcpy.
void BM_Sha256Limit(benchmark::State& state) {
  std::string buf(65536, 'x');
  Random(5).Fill(buf.data(), buf.size());
  std::uint64_t bytes = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(Sha256(buf.data(), buf.size()));
    bytes += buf.size();
  }
  state.counters["MB_per_s"] = benchmark::Counter(static_cast<double>(bytes) / 1e6, benchmark::Counter::kIsRate);
}

void BM_MemcpyLimit(benchmark::State& state) {
  std::vector<char> a(64u << 20, 1), b(64u << 20, 2);
  std::uint64_t bytes = 0;
  for (auto _ : state) {
    std::memcpy(b.data(), a.data(), a.size());
    benchmark::ClobberMemory();
    bytes += a.size();
  }
  state.counters["MB_per_s"] = benchmark::Counter(static_cast<double>(bytes) / 1e6, benchmark::Counter::kIsRate);
}

BENCHMARK(BM_Create)->Arg(1000)->Arg(1000000)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Lookup)->Arg(1000)->Arg(1000000)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReadDir)->Arg(1000)->Arg(1000000)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SeqWrite)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SeqRead)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Sha256Limit);
BENCHMARK(BM_MemcpyLimit);

}  // namespace
}  // namespace permfs::fs

BENCHMARK_MAIN();
