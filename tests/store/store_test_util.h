// Test helpers for the chunk store: a mounted volume on a MemBlockDevice plus one-call put/read.
// Thread-safety: StoreVolume is shared across threads only through its thread-safe members
// (Volume, ChunkStore); the helper functions may be called from many threads at once.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "block/mem_block_device.h"
#include "store/chunk_store.h"
#include "testutil/volume_fixture.h"
#include "util/random.h"
#include "volume/volume.h"

namespace permfs::store::storetest {

using testutil::Str;

struct StoreVolume {
  std::unique_ptr<block::MemBlockDevice> dev;
  Owned<volume::Volume> vol;
  std::unique_ptr<ChunkStore> cs;

  // mkfs + mount on a fresh RAM device of `blocks` 4 KiB blocks.
  static std::unique_ptr<StoreVolume> Make(std::uint64_t blocks,
                                           std::uint32_t record_size = 65536) {
    auto s = std::make_unique<StoreVolume>();
    s->dev = std::make_unique<block::MemBlockDevice>(blocks, 4096);
    volume::MkfsOptions mo;
    mo.record_size = record_size;
    Status st = volume::Volume::Mkfs(s->dev.get(), mo);
    EXPECT_TRUE(st.ok()) << Str(st);
    if (!st.ok()) return nullptr;
    if (!s->Mount()) return nullptr;
    return s;
  }
  bool Mount() {
    cs.reset();
    vol.reset();
    auto v = volume::Volume::Mount(dev.get(), {});
    EXPECT_TRUE(v.ok()) << Str(v.status());
    if (!v.ok()) return false;
    vol = std::move(*v);
    cs = std::make_unique<ChunkStore>(vol.get());
    return true;
  }
  // Drops the volume without unmounting (what a crash after the last Sync leaves) and mounts.
  bool Remount() { return Mount(); }

  alloc::AllocStats astats() { return vol->allocator()->stats(); }
};

inline std::vector<std::uint8_t> RandomBytes(std::uint64_t seed, std::size_t n) {
  Random r(seed);
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; i += 8) {
    std::uint64_t x = r.Next64();
    for (std::size_t k = 0; k < 8 && i + k < n; ++k) v[i + k] = static_cast<std::uint8_t>(x >> (8 * k));
  }
  return v;
}

// Prepare + Commit in a transaction of its own. Returns the status of the first failing step.
inline Status Put(StoreVolume& s, const std::vector<std::uint8_t>& data, ChunkId* id = nullptr,
                  bool keep_cached = false) {
  auto p = s.cs->Prepare(data.data(), data.size(), alloc::Draw::kOrdinary, 0, keep_cached);
  if (!p.ok()) return p.status();
  if (id) *id = p->id;
  auto t = s.vol->meta()->Begin();
  if (!t.ok()) {
    s.cs->Abandon(*p);
    return t.status();
  }
  Status st = s.cs->Commit(*t, *p, data.data());
  if (!st.ok()) {
    t->Abort();
    return st;
  }
  return t->Commit();
}

inline Status InTxn(StoreVolume& s, Status (*fn)(ChunkStore*, journal::WriteTxn&, const ChunkId&),
                    const ChunkId& id) {
  auto t = s.vol->meta()->Begin();
  if (!t.ok()) return t.status();
  Status st = fn(s.cs.get(), *t, id);
  if (!st.ok()) {
    t->Abort();
    return st;
  }
  return t->Commit();
}
inline Status Unref(StoreVolume& s, const ChunkId& id) {
  return InTxn(s, [](ChunkStore* c, journal::WriteTxn& t, const ChunkId& i) { return c->Unref(t, i); }, id);
}
inline Status Ref(StoreVolume& s, const ChunkId& id) {
  return InTxn(s, [](ChunkStore* c, journal::WriteTxn& t, const ChunkId& i) { return c->Ref(t, i); }, id);
}

inline Result<ChunkLocation> Locate(StoreVolume& s, const ChunkId& id) {
  journal::ReadView view(s.vol->meta());
  return s.cs->Locate(view, id);
}

// Whole chunk, through Locate (under a view) then ReadLocated (no lock).
inline Status ReadAll(StoreVolume& s, const ChunkId& id, std::vector<std::uint8_t>* out) {
  auto loc = Locate(s, id);
  if (!loc.ok()) return loc.status();
  out->assign(loc->length, 0);
  return s.cs->ReadLocated(*loc, 0, loc->length, out->data());
}

}  // namespace permfs::store::storetest
