// Helpers shared by the engine tests (engine_tests.cc: the B+tree level; fs_tests.cc: the POSIX
// namespace): deterministic content, the journal panic reporter, timing and mount helpers.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "journal/meta_store.h"
#include "ktest.h"
#include "port/port.h"
#include "util/sha256.h"
#include "volume/volume.h"

namespace permfs::qemu::ktest {

// ---- deterministic content -------------------------------------------------------------------
inline std::uint64_t Mix(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Writes `len` pseudo-random bytes of stream `stream` to `out`.
inline void FillBytes(std::uint64_t stream, char* out, std::size_t len) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < len; ++i) {
    if ((i & 7) == 0) v = Mix(stream * 0x100000001B3ull + (i >> 3));
    out[i] = static_cast<char>(v >> (8 * (i & 7)));
  }
}

// `len` pseudo-random bytes of stream `stream`.
inline std::string Bytes(std::uint64_t stream, std::size_t len) {
  std::string s(len, '\0');
  FillBytes(stream, s.data(), len);
  return s;
}

// Key "<prefix><n as `digits` zero-padded decimal><suffix>": decimal order == numeric order.
inline std::string NumKey(const char* prefix, std::uint64_t n, int digits, const char* suffix = "") {
  std::string k(prefix);
  char d[24];
  for (int i = digits - 1; i >= 0; --i, n /= 10) d[i] = static_cast<char>('0' + n % 10);
  k.append(d, static_cast<std::size_t>(digits));
  k.append(suffix);
  return k;
}

inline std::string U64s(std::initializer_list<std::uint64_t> words) {
  std::string s;
  for (std::uint64_t w : words)
    for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>(w >> (8 * i)));
  return s;
}

inline void PrintDigest(const char* what, const Sha256Digest& d) {
  char hex[65];
  ToHex(d, hex);
  Printf("ENGINE %s digest %s\n", what, hex);
}

// ---- panic reporter --------------------------------------------------------------------------
// The reporter runs on the panic path, where the MetaStore's locks may be held by the code that
// panicked (MetaStore::stats() takes them and would deadlock on the spinlock). So the test
// publishes a snapshot of MetaStore::stats() after every commit point (Note) and the reporter
// prints the snapshot with no lock and no allocation.
struct EngineSnapshot {
  const char* test = nullptr;
  const char* phase = "";
  std::uint64_t durable_seq = 0;
  std::uint64_t running_seq = 0;
  std::uint64_t commits = 0;
  std::uint64_t checkpoints = 0;
  std::uint64_t journal_used = 0;
  std::uint64_t journal_size = 0;
};
inline volatile EngineSnapshot g_snap;

inline void EngineReporter(void*) {
  PanicPrint("durable_seq=");
  PanicPrintDec(g_snap.durable_seq);
  PanicPrint(" running_seq=");
  PanicPrintDec(g_snap.running_seq);
  PanicPrint(" commits=");
  PanicPrintDec(g_snap.commits);
  PanicPrint(" checkpoints=");
  PanicPrintDec(g_snap.checkpoints);
  PanicPrint(" journal_used=");
  PanicPrintDec(g_snap.journal_used);
  PanicPrint("/");
  PanicPrintDec(g_snap.journal_size);
  PanicPrint(" (engine test ");
  PanicPrint(g_snap.test ? g_snap.test : "?");
  PanicPrint(", phase ");
  PanicPrint(g_snap.phase ? g_snap.phase : "?");
  PanicPrint(", as of the last commit point)");
}

// Registers the reporter for the lifetime of an engine test.
class ReporterScope {
 public:
  explicit ReporterScope(const char* test) {
    g_snap.test = test;
    g_snap.phase = "start";
    registered_ = RegisterPanicReporter("journal", &EngineReporter, nullptr);
  }
  ~ReporterScope() {
    if (registered_) UnregisterPanicReporter(&EngineReporter, nullptr);
    g_snap.test = nullptr;
  }
  bool ok() const { return registered_; }

 private:
  bool registered_ = false;
};

inline void Note(volume::Volume* v, const char* phase) {
  const journal::MetaStoreStats s = v->meta()->stats();
  g_snap.phase = phase;
  g_snap.durable_seq = s.durable_seq;
  g_snap.running_seq = s.running_seq;
  g_snap.commits = s.commits;
  g_snap.checkpoints = s.checkpoints;
  g_snap.journal_used = s.journal_used;
  g_snap.journal_size = s.journal_size;
}

// ---- helpers ---------------------------------------------------------------------------------
inline std::uint64_t NowNs() { return port::MonotonicNanos(); }
inline std::uint64_t Ms(std::uint64_t ns) { return ns / 1000000; }

inline void PrintLayout(const format::Superblock& sb) {
  Printf("ENGINE layout: %lu blocks of %u, root %lu, journal %lu+%lu, shards %u x %lu blocks "
         "(%u bitmap blocks each) from %lu, mirror %lu\n",
         sb.block_count, sb.block_size, sb.root_block, sb.journal_start, sb.journal_blocks,
         sb.shard_count, sb.shard_blocks, sb.bitmap_blocks_per_shard, sb.shard_start,
         sb.mirror_block());
}

inline Result<Owned<volume::Volume>> MountReporting(block::BlockDevice* dev,
                                                    volume::MountReport* rep, std::uint64_t* ns) {
  const std::uint64_t t0 = NowNs();
  auto v = volume::Volume::Mount(dev, volume::MountOptions{}, rep);
  *ns = NowNs() - t0;
  if (v.ok())
    Printf("ENGINE mount: %lu ms, replayed %lu transactions (%lu blocks)%s\n", Ms(*ns),
           rep->replayed_transactions, rep->replayed_blocks,
           rep->used_mirror ? ", used the mirror superblock" : "");
  return v;
}

}  // namespace permfs::qemu::ktest

// As KCHECK_OK for a Result.
#define KCHECK_RESULT(res)                                                                    \
  do {                                                                                        \
    if (!(res).ok()) {                                                                        \
      ::permfs::qemu::Printf("CHECK_OK failed at %s:%d: %s -> %s (%s)\n", __FILE__, __LINE__, \
                             #res, (res).status().CodeName(), (res).status().message());      \
      return false;                                                                           \
    }                                                                                         \
  } while (0)
