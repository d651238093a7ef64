// ChunkStore and the journal's data manifest (docs/DESIGN-NOTES.md "Crash guarantees"):
//  - Put + Sync costs one device flush (the data is journaled in the commit's manifest, not
//    flushed ahead of it), counted on a RecordingBlockDevice trace;
//  - only Commit's insert of a new chunk enters a manifest: deduplicated, abandoned and
//    aborted copies never do (their blocks may be reused at once);
//  - the rare path where Commit writes the data itself is noted too;
//  - a chunk whose data write was lost is not in the index after the crash (the transaction that
//    inserted it is discarded at replay), and the chunks committed before it are intact.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "block/recording_block_device.h"
#include "fs/filesystem.h"
#include "store/store_test_util.h"

namespace permfs::store {
namespace {

using namespace storetest;  // NOLINT

constexpr std::uint64_t kBlocks = 8192;  // 32 MiB

// A volume on a RAM device, mounted through a recording device.
struct TracedVolume {
  std::unique_ptr<block::MemBlockDevice> mem;
  std::unique_ptr<block::RecordingBlockDevice> rec;
  Owned<volume::Volume> vol;
  std::unique_ptr<ChunkStore> cs;

  static std::unique_ptr<TracedVolume> Make() {
    auto t = std::make_unique<TracedVolume>();
    t->mem = std::make_unique<block::MemBlockDevice>(kBlocks, 4096);
    Status st = volume::Volume::Mkfs(t->mem.get(), {});
    EXPECT_TRUE(st.ok()) << Str(st);
    t->rec = std::make_unique<block::RecordingBlockDevice>(t->mem.get());
    if (!t->Mount(t->rec.get())) return nullptr;
    return t;
  }
  bool Mount(block::BlockDevice* dev) {
    cs.reset();
    vol.reset();
    auto v = volume::Volume::Mount(dev, {});
    EXPECT_TRUE(v.ok()) << Str(v.status());
    if (!v.ok()) return false;
    vol = std::move(*v);
    cs = std::make_unique<ChunkStore>(vol.get());
    return true;
  }
  journal::MetaStoreStats mstats() const { return vol->meta()->stats(); }
  std::size_t FlushesSinceMark() const {
    auto tr = rec->TraceCopy();
    std::size_t i = tr.size(), n = 0;
    while (i > 0 && tr[i - 1].op != block::TraceOp::kMark) --i;
    for (; i < tr.size(); ++i) n += tr[i].op == block::TraceOp::kFlush;
    return n;
  }
};

Status PutTo(TracedVolume& v, const std::vector<std::uint8_t>& data, ChunkId* id = nullptr) {
  auto p = v.cs->Prepare(data.data(), data.size());
  if (!p.ok()) return p.status();
  if (id) *id = p->id;
  auto t = v.vol->meta()->Begin();
  if (!t.ok()) {
    v.cs->Abandon(*p);
    return t.status();
  }
  Status st = v.cs->Commit(*t, *p, data.data());
  if (!st.ok()) {
    t->Abort();
    return st;
  }
  return t->Commit();
}

Status ReadBack(TracedVolume& v, const ChunkId& id, std::vector<std::uint8_t>* out) {
  journal::ReadView view(v.vol->meta());
  auto loc = v.cs->Locate(view, id);
  if (!loc.ok()) return loc.status();
  out->assign(loc->length, 0);
  return v.cs->ReadLocated(*loc, 0, loc->length, out->data());
}

TEST(ChunkManifestTest, PutAndSyncIsOneFlush) {
  auto v = TracedVolume::Make();
  ASSERT_TRUE(v);
  for (int i = 1; i <= 5; ++i) {
    v->rec->Mark("put");
    auto data = RandomBytes(i, i == 3 ? 65536 : 4096 * i - 7);
    ASSERT_TRUE(PutTo(*v, data).ok());
    ASSERT_TRUE(v->vol->meta()->Sync().ok());
    EXPECT_EQ(v->FlushesSinceMark(), 1u) << "put " << i;
  }
  EXPECT_EQ(v->mstats().data_flushes, 0u);
  EXPECT_EQ(v->mstats().manifest_entries, 5u);
  // Many puts in one transaction: still one flush.
  v->rec->Mark("batch");
  for (int i = 10; i < 40; ++i) ASSERT_TRUE(PutTo(*v, RandomBytes(i, 5000)).ok());
  ASSERT_TRUE(v->vol->meta()->Sync().ok());
  EXPECT_EQ(v->FlushesSinceMark(), 1u);
  EXPECT_EQ(v->mstats().manifest_entries, 35u);
}

// The fs_mark pattern through the namespace layer: 4 KiB write + fsync of new files and of an
// existing one costs one device flush per fsync.
TEST(ChunkManifestTest, FileWriteAndFsyncIsOneFlush) {
  auto v = TracedVolume::Make();
  ASSERT_TRUE(v);
  const fs::Credentials root{0, 0};
  ASSERT_TRUE(fs::Filesystem::Format(v->vol.get(), root).ok());
  fs::Filesystem f(v->vol.get());
  ASSERT_TRUE(f.Open().ok());
  ASSERT_TRUE(f.Sync().ok());
  const auto base = v->mstats();
  std::uint64_t last = 0;
  for (int i = 0; i < 20; ++i) {
    auto in = f.Create(fs::kRootIno, "file" + std::to_string(i), 0644, 0, root);
    ASSERT_TRUE(in.ok()) << Str(in.status());
    last = in->ino;
    auto data = RandomBytes(1000 + i, 4096);
    v->rec->Mark("write+fsync");
    const std::uint64_t cp = v->mstats().checkpoints;
    ASSERT_TRUE(f.Write(in->ino, 0, data.data(), data.size()).ok());
    ASSERT_TRUE(f.Sync().ok());
    // A checkpoint (log half full) adds its own two flushes; the commit itself has one.
    EXPECT_EQ(v->FlushesSinceMark(), 1u + 2 * (v->mstats().checkpoints - cp)) << "file " << i;
  }
  for (int i = 0; i < 5; ++i) {  // appends to one file
    auto data = RandomBytes(2000 + i, 4096);
    v->rec->Mark("append+fsync");
    const std::uint64_t cp = v->mstats().checkpoints;
    ASSERT_TRUE(f.Write(last, 4096 * (i + 1), data.data(), data.size()).ok());
    ASSERT_TRUE(f.Sync().ok());
    EXPECT_EQ(v->FlushesSinceMark(), 1u + 2 * (v->mstats().checkpoints - cp)) << "append " << i;
  }
  EXPECT_LT(v->mstats().checkpoints - base.checkpoints, 5u);
  EXPECT_EQ(v->mstats().data_flushes, base.data_flushes);
  EXPECT_EQ(v->mstats().manifest_entries - base.manifest_entries, 25u);
}

TEST(ChunkManifestTest, OnlyNewlyInsertedChunksEnterAManifest) {
  auto v = TracedVolume::Make();
  ASSERT_TRUE(v);
  auto data = RandomBytes(1, 10000);
  ChunkId id;
  ASSERT_TRUE(PutTo(*v, data, &id).ok());
  ASSERT_TRUE(PutTo(*v, data).ok());  // dedup at Prepare: +1 reference
  ASSERT_TRUE(v->vol->meta()->Sync().ok());
  EXPECT_EQ(v->mstats().manifest_entries, 1u);

  // Two writers prepare the same new chunk: the second copy is released by Commit.
  auto other = RandomBytes(2, 7000);
  auto p1 = v->cs->Prepare(other.data(), other.size());
  auto p2 = v->cs->Prepare(other.data(), other.size());
  ASSERT_TRUE(p1.ok() && p2.ok());
  {
    auto t = v->vol->meta()->Begin();
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(v->cs->Commit(*t, *p1, other.data()).ok());
    ASSERT_TRUE(v->cs->Commit(*t, *p2, other.data()).ok());
    ASSERT_TRUE(t->Commit().ok());
  }
  // Abandoned, and committed-then-aborted chunks.
  auto third = RandomBytes(3, 20000);
  auto p3 = v->cs->Prepare(third.data(), third.size());
  ASSERT_TRUE(p3.ok());
  v->cs->Abandon(*p3);
  auto p4 = v->cs->Prepare(third.data(), third.size());
  ASSERT_TRUE(p4.ok());
  {
    auto t = v->vol->meta()->Begin();
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(v->cs->Commit(*t, *p4, third.data()).ok());
    t->Abort();
  }
  ASSERT_TRUE(v->vol->meta()->Sync().ok());
  EXPECT_EQ(v->mstats().manifest_entries, 2u);
  EXPECT_EQ(v->mstats().data_flushes, 0u);
  // The released extents are reused by other data; replay is not disturbed by that.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(PutTo(*v, RandomBytes(100 + i, 20000)).ok());
  ASSERT_TRUE(v->vol->meta()->Sync().ok());
  EXPECT_EQ(v->mstats().manifest_entries, 6u);
  ASSERT_TRUE(v->Mount(v->mem.get()));  // crash: nothing checkpointed since the mount
  EXPECT_EQ(v->mstats().replay_discarded_transactions, 0u);
  std::vector<std::uint8_t> back;
  ASSERT_TRUE(ReadBack(*v, id, &back).ok());
  EXPECT_EQ(back, data);
}

// Prepare deduplicated against a chunk that was freed before Commit: Commit stores the data
// itself, inside the transaction, and notes it like any other new chunk.
TEST(ChunkManifestTest, DataWrittenByCommitIsNoted) {
  auto v = TracedVolume::Make();
  ASSERT_TRUE(v);
  auto data = RandomBytes(3, 30000);
  ChunkId id;
  ASSERT_TRUE(PutTo(*v, data, &id).ok());
  ASSERT_TRUE(v->vol->meta()->SyncAndCheckpoint().ok());
  auto p = v->cs->Prepare(data.data(), data.size());
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->extent.count, 0u);
  {
    auto t = v->vol->meta()->Begin();
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(v->cs->Unref(*t, id).ok());
    ASSERT_TRUE(v->cs->Commit(*t, *p, data.data()).ok());
    ASSERT_TRUE(t->Commit().ok());
  }
  v->rec->Mark("commit");
  ASSERT_TRUE(v->vol->meta()->Sync().ok());
  EXPECT_EQ(v->FlushesSinceMark(), 1u);
  EXPECT_EQ(v->mstats().manifest_entries, 2u);
  EXPECT_EQ(v->mstats().data_flushes, 0u);
  ASSERT_TRUE(v->Mount(v->mem.get()));
  std::vector<std::uint8_t> back;
  ASSERT_TRUE(ReadBack(*v, id, &back).ok());
  EXPECT_EQ(back, data);
}

// A chunk's extent named by a manifest in the journal is not handed out again before the
// checkpoint that retires the transaction: freed blocks wait for a checkpoint, and an aborted
// commit's returned reservation was never in a manifest. So replay never refuses a durable
// transaction because its data was legitimately overwritten.
TEST(ChunkManifestTest, ManifestExtentIsNotReusedWhileItsTransactionIsInTheJournal) {
  auto v = TracedVolume::Make();
  ASSERT_TRUE(v);
  ASSERT_TRUE(v->vol->meta()->SyncAndCheckpoint().ok());
  auto a = RandomBytes(1, 30000);
  ChunkId a_id;
  ASSERT_TRUE(PutTo(*v, a, &a_id).ok());
  ASSERT_TRUE(v->vol->meta()->Sync().ok());
  ChunkLocation a_loc;
  {
    journal::ReadView view(v->vol->meta());
    auto l = v->cs->Locate(view, a_id);
    ASSERT_TRUE(l.ok());
    a_loc = *l;
  }
  {  // The last reference goes (the blocks wait for a checkpoint).
    auto t = v->vol->meta()->Begin();
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(v->cs->Unref(*t, a_id).ok());
    ASSERT_TRUE(t->Commit().ok());
  }
  ASSERT_TRUE(v->vol->meta()->Sync().ok());
  const std::uint64_t checkpoints = v->mstats().checkpoints;
  std::vector<ChunkId> ids;
  for (int i = 0; i < 12; ++i) {
    // Every other chunk is committed and aborted: its reservation returns to the pool at once.
    auto data = RandomBytes(10 + i, 30000);
    auto p = v->cs->Prepare(data.data(), data.size());
    ASSERT_TRUE(p.ok());
    EXPECT_FALSE(p->extent.start < a_loc.block + a_loc.block_count &&
                 a_loc.block < p->extent.start + p->extent.count)
        << "chunk " << i << " reuses blocks of a chunk freed after the last checkpoint";
    auto t = v->vol->meta()->Begin();
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(v->cs->Commit(*t, *p, data.data()).ok());
    if (i % 2) {
      t->Abort();
    } else {
      ASSERT_TRUE(t->Commit().ok());
      ids.push_back(Sha256(data.data(), data.size()));
    }
    ASSERT_TRUE(v->vol->meta()->Sync().ok());
  }
  ASSERT_EQ(v->mstats().checkpoints, checkpoints) << "a checkpoint ran: the test proves nothing";
  EXPECT_EQ(v->mstats().manifest_entries, 7u);
  ASSERT_TRUE(v->Mount(v->mem.get()));  // crash
  EXPECT_EQ(v->mstats().replay_discarded_transactions, 0u);
  std::vector<std::uint8_t> back;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    ASSERT_TRUE(ReadBack(*v, ids[i], &back).ok()) << i;
    EXPECT_EQ(back, RandomBytes(10 + 2 * i, 30000));
  }
}

// The data write of a chunk is lost by the device (it reports success): the commit that
// inserted the chunk and every later one are not replayed; nothing in the index points at
// missing data, and everything synced before is intact.
TEST(ChunkManifestTest, LostDataWriteNeverLeavesADanglingIndexEntry) {
  auto v = TracedVolume::Make();
  ASSERT_TRUE(v);
  auto before = RandomBytes(1, 12000);
  ChunkId before_id;
  ASSERT_TRUE(PutTo(*v, before, &before_id).ok());
  ASSERT_TRUE(v->vol->meta()->Sync().ok());

  auto lost = RandomBytes(2, 12000);
  auto p = v->cs->Prepare(lost.data(), lost.size());
  ASSERT_TRUE(p.ok());
  const ChunkId lost_id = p->id;
  // Undo the data write on the device, as a crash before the flush could.
  std::vector<std::uint8_t> zeros(p->extent.count * 4096, 0);
  block::BlockIo raw(v->mem.get(), 4096);
  ASSERT_TRUE(raw.Write(p->extent.start, p->extent.count, zeros.data()).ok());
  {
    auto t = v->vol->meta()->Begin();
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(v->cs->Commit(*t, *p, lost.data()).ok());
    ASSERT_TRUE(t->Commit().ok());
  }
  ASSERT_TRUE(v->vol->meta()->Sync().ok());
  auto after = RandomBytes(3, 5000);
  ChunkId after_id;
  ASSERT_TRUE(PutTo(*v, after, &after_id).ok());
  ASSERT_TRUE(v->vol->meta()->Sync().ok());

  ASSERT_TRUE(v->Mount(v->mem.get()));
  EXPECT_EQ(v->mstats().replay_discarded_transactions, 2u);
  std::vector<std::uint8_t> back;
  ASSERT_TRUE(ReadBack(*v, before_id, &back).ok());
  EXPECT_EQ(back, before);
  EXPECT_TRUE(ReadBack(*v, lost_id, &back).IsNotFound());
  EXPECT_TRUE(ReadBack(*v, after_id, &back).IsNotFound());
  // Every index entry left reads back with a good CRC.
  struct Ctx {
    TracedVolume* v;
    int n = 0, bad = 0;
  } c{v.get()};
  {
    journal::ReadView view(v->vol->meta());
    ASSERT_TRUE(v->cs
                    ->ForEach(view,
                              [](void* p, const ChunkLocation& l) {
                                auto* c = static_cast<Ctx*>(p);
                                std::vector<std::uint8_t> b(l.length);
                                ++c->n;
                                c->bad += !c->v->cs->ReadLocated(l, 0, l.length, b.data()).ok();
                                return true;
                              },
                              &c)
                    .ok());
  }
  EXPECT_EQ(c.n, 1);
  EXPECT_EQ(c.bad, 0);
  // The volume keeps working: the lost chunk can be stored again.
  ASSERT_TRUE(PutTo(*v, lost).ok());
  ASSERT_TRUE(v->vol->meta()->Sync().ok());
  ASSERT_TRUE(v->Mount(v->mem.get()));
  ASSERT_TRUE(ReadBack(*v, lost_id, &back).ok());
  EXPECT_EQ(back, lost);
}

}  // namespace
}  // namespace permfs::store
