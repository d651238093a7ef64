// Data manifests in the journal (docs/FORMAT.md §6.2/§6.3, DESIGN-NOTES "Crash guarantees").
//
// JournalLog level: a transaction's manifest blocks round-trip; replay reads every manifest
// extent back and refuses a transaction whose data does not match, together with every later
// transaction (a read error of that data fails the scan instead); damaged or inconsistent manifest records end the log like a
// torn tail; a checksummed manifest naming blocks outside the data area is Corruption.
// MetaStore level: a commit with a manifest issues exactly one device flush (recorded trace);
// a volume without the journal_manifest feature and an oversized manifest fall back to a
// flush before the journal; an aborted handle's entries never reach the journal; a data write
// that was lost makes replay discard that transaction and the later ones, and the sequence
// numbers of discarded transactions are never reused.

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "block/faulty_block_device.h"
#include "block/mem_block_device.h"
#include "block/recording_block_device.h"
#include "format/journal_blocks.h"
#include "format/meta_block.h"
#include "journal/journal_log.h"
#include "journal/meta_store.h"
#include "journal/store_test_util.h"
#include "testutil/volume_fixture.h"
#include "util/crc32c.h"
#include "util/random.h"

namespace permfs::journal {
namespace {

using namespace permfs::journal::testing;  // NOLINT
using format::ManifestEntry;
using testutil::Str;
using testutil::TestVolume;
using testutil::VolumeOptions;

constexpr std::uint32_t kBs = 4096;
const std::uint64_t kMcap = format::ManifestCapacity(kBs);

// `len` bytes of seeded random data, zero-padded to whole blocks.
std::vector<std::uint8_t> DataBytes(std::uint64_t seed, std::uint32_t len) {
  std::vector<std::uint8_t> v((len + kBs - 1) / kBs * kBs, 0);
  Random r(seed);
  r.Fill(v.data(), len);
  return v;
}

// ---- JournalLog level -------------------------------------------------------------------------

struct Scan {
  Status st;
  ScanResult res;
  std::vector<std::uint64_t> seqs;  // transactions handed to the replay callback
};

Status CollectSeq(void* ctx, std::uint64_t seq, const LogBlock*, std::size_t) {
  static_cast<std::vector<std::uint64_t>*>(ctx)->push_back(seq);
  return Status();
}

class ManifestLogTest : public ::testing::Test {
 protected:
  static constexpr std::uint64_t kBlocks = 2048;

  void SetUp() override {
    dev_ = std::make_unique<block::MemBlockDevice>(kBlocks, kBs);
    VolumeOptions o;
    o.journal_blocks = 64;
    auto sb = testutil::MakeSuperblock(kBlocks, o);
    ASSERT_TRUE(sb.ok()) << Str(sb.status());
    sb_ = *sb;
    ASSERT_NE(sb_.incompat & format::kIncompatJournalManifest, 0u);
    io_ = std::make_unique<block::BlockIo>(dev_.get(), kBs);
    log_ = std::make_unique<JournalLog>(io_.get(), sb_);
    ASSERT_TRUE(log_->Format().ok());
    next_data_ = sb_.shard_start + 400;
  }

  // A sealed metadata block image for `home`.
  std::vector<std::uint8_t> Meta(std::uint64_t home, std::uint64_t tag) {
    std::vector<std::uint8_t> b(kBs, 0);
    format::MetaHeader h;
    h.type = format::BlockType::kBTreeLeaf;
    h.blockno = home;
    h.owner = kTestOwner;
    h.generation = tag;
    h.uuid = sb_.uuid;
    format::EncodeMetaHeader(h, b.data());
    FillPayload(b.data(), kBs, home, tag);
    format::SealMetaBlock(b.data(), kBs);
    return b;
  }

  // Writes `len` bytes of file data at the next free data block; returns its manifest entry.
  ManifestEntry WriteData(std::uint32_t len) {
    ManifestEntry e;
    e.block = next_data_;
    e.length = len;
    auto bytes = DataBytes(next_data_, len);
    e.crc = Crc32c(bytes.data(), len);
    std::memcpy(dev_->raw() + e.block * kBs, bytes.data(), bytes.size());
    next_data_ += bytes.size() / kBs;
    return e;
  }

  // Appends transaction `seq` with `n` metadata blocks and the given manifest.
  Status Append(std::uint64_t seq, std::size_t n, const std::vector<ManifestEntry>& m) {
    std::vector<std::vector<std::uint8_t>> imgs;
    std::vector<LogBlock> lb;
    auto home = [&](std::size_t i) { return sb_.shard_start + 1 + (seq * 3 + i) % 40; };
    for (std::size_t i = 0; i < n; ++i) imgs.push_back(Meta(home(i), seq));
    for (std::size_t i = 0; i < n; ++i) lb.push_back(LogBlock{home(i), imgs[i].data()});
    starts_.push_back(log_->head_offset());
    return log_->Append(seq, lb.data(), lb.size(), m.data(), m.size());
  }

  Scan Reopen(block::BlockIo* io = nullptr) {
    Scan s;
    log_ = std::make_unique<JournalLog>(io ? io : io_.get(), sb_);
    s.st = log_->Open();
    if (s.st.ok()) s.st = log_->Scan(&CollectSeq, &s.seqs, &s.res);
    return s;
  }

  std::uint8_t* RawLog(std::uint64_t offset) {
    return dev_->raw() + (sb_.journal_start + 2 + offset % (sb_.journal_blocks - 2)) * kBs;
  }
  std::uint8_t* RawData(std::uint64_t block) { return dev_->raw() + block * kBs; }

  std::unique_ptr<block::MemBlockDevice> dev_;
  format::Superblock sb_;
  std::unique_ptr<block::BlockIo> io_;
  std::unique_ptr<JournalLog> log_;
  std::vector<std::uint64_t> starts_;
  std::uint64_t next_data_ = 0;
};

TEST_F(ManifestLogTest, ManifestBlocksRoundTripWithTheirLayout) {
  // 300 extents of 1..9000 bytes: two manifest blocks (251 + 49 entries).
  std::vector<ManifestEntry> m;
  Random r(5);
  for (int i = 0; i < 300; ++i) m.push_back(WriteData(1 + r.Uniform(9000)));
  EXPECT_EQ(log_->BlocksNeeded(2, 300), 1u + 2u + 2u + 1u);
  EXPECT_EQ(log_->BlocksNeeded(2, kMcap), 1u + 2u + 1u + 1u);
  EXPECT_EQ(log_->BlocksNeeded(2, 0), log_->BlocksNeeded(2));
  ASSERT_TRUE(Append(1, 2, m).ok());
  EXPECT_EQ(log_->used_blocks(), 6u);

  // Log layout: descriptor, 2 images, manifest 0 (251), manifest 1 (49), commit.
  std::vector<ManifestEntry> got(kMcap);
  for (std::uint32_t k = 0; k < 2; ++k) {
    const std::uint8_t* b = RawLog(3 + k);
    EXPECT_EQ(format::DecodeMetaHeader(b).type, format::BlockType::kJournalManifest);
    EXPECT_EQ(format::DecodeMetaHeader(b).owner, 1u);
    auto mp = format::DecodeManifest(b, kBs, got.data());
    ASSERT_TRUE(mp.ok()) << Str(mp.status());
    EXPECT_EQ(mp->index, k);
    EXPECT_EQ(mp->count, k == 0 ? kMcap : 300 - kMcap);
    for (std::uint32_t i = 0; i < mp->count; ++i) {
      const ManifestEntry& want = m[k * kMcap + i];
      EXPECT_EQ(got[i].block, want.block);
      EXPECT_EQ(got[i].length, want.length);
      EXPECT_EQ(got[i].crc, want.crc);
    }
  }
  auto cp = format::DecodeCommit(RawLog(5), kBs);
  ASSERT_TRUE(cp.ok());
  EXPECT_EQ(cp->descriptors, 1u);
  EXPECT_EQ(cp->data_blocks, 2u);
  EXPECT_EQ(cp->manifest_blocks, 2u);

  ASSERT_TRUE(Append(2, 1, {}).ok());  // a transaction without a manifest follows
  Scan s = Reopen();
  ASSERT_TRUE(s.st.ok()) << Str(s.st);
  EXPECT_EQ(s.seqs, (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(s.res.manifest_entries, 300u);
  EXPECT_EQ(s.res.rejected_seq, 0u);
  EXPECT_EQ(s.res.discarded, 0u);
  EXPECT_EQ(s.res.next_seq, 3u);
  EXPECT_EQ(s.res.end_seq, 3u);
  // The zero padding after an extent's bytes is not covered by its CRC.
  for (const ManifestEntry& e : m)
    if (e.length % kBs) RawData(e.block + e.length / kBs)[kBs - 1] ^= 0xFF;
  s = Reopen();
  EXPECT_EQ(s.seqs, (std::vector<std::uint64_t>{1, 2}));
}

TEST_F(ManifestLogTest, DataMismatchRejectsTheTransactionAndEveryLaterOne) {
  const ManifestEntry e1 = WriteData(5000), e2 = WriteData(4096), e3 = WriteData(77);
  ASSERT_TRUE(Append(1, 2, {e1}).ok());
  ASSERT_TRUE(Append(2, 1, {e2}).ok());
  ASSERT_TRUE(Append(3, 3, {e3}).ok());
  ASSERT_TRUE(Append(4, 1, {}).ok());
  std::vector<std::uint8_t> saved(dev_->raw(), dev_->raw() + dev_->raw_size());
  auto restore = [&] { std::memcpy(dev_->raw(), saved.data(), saved.size()); };

  // A lost write: the extent of transaction 2 still holds its old (zero) contents.
  std::memset(RawData(e2.block), 0, kBs);
  Scan s = Reopen();
  ASSERT_TRUE(s.st.ok()) << Str(s.st);
  EXPECT_EQ(s.seqs, (std::vector<std::uint64_t>{1}));
  EXPECT_EQ(s.res.transactions, 1u);
  EXPECT_EQ(s.res.rejected_seq, 2u);
  EXPECT_EQ(s.res.discarded, 3u);  // 2, 3 and 4
  EXPECT_EQ(s.res.next_seq, 2u);
  EXPECT_EQ(s.res.end_seq, 5u);
  EXPECT_EQ(s.res.end_offset, starts_[1]);
  EXPECT_EQ(log_->head_offset(), starts_[1]);
  EXPECT_EQ(log_->next_seq(), 2u);
  restore();

  // A torn data write: one byte of the last transaction's only extent differs.
  RawData(e3.block)[76] ^= 1;
  s = Reopen();
  EXPECT_EQ(s.seqs, (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(s.res.rejected_seq, 3u);
  EXPECT_EQ(s.res.discarded, 2u);
  EXPECT_EQ(s.res.end_seq, 5u);
  restore();

  // The second block of a two-block extent.
  RawData(e1.block + 1)[0] ^= 0x80;
  s = Reopen();
  EXPECT_TRUE(s.seqs.empty());
  EXPECT_EQ(s.res.rejected_seq, 1u);
  EXPECT_EQ(s.res.discarded, 4u);
  EXPECT_EQ(s.res.end_offset, 0u);
  restore();

  s = Reopen();
  EXPECT_EQ(s.seqs, (std::vector<std::uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(s.res.manifest_entries, 3u);
}

// A read error is not a crash artefact: on a log block or on a manifest extent it fails the scan
// with IOError (the mount can be retried) and never makes replay drop an acknowledged
// transaction.
TEST_F(ManifestLogTest, ReadErrorsFailTheScanAndNeverRefuse) {
  const ManifestEntry e1 = WriteData(9000);
  ASSERT_TRUE(Append(1, 1, {e1}).ok());
  int rejections = 0;
  bool clean_run = false;
  for (std::uint64_t n = 1; n <= 20 && !clean_run; ++n) {
    block::FaultyBlockDevice faulty(dev_.get());
    block::BlockIo fio(&faulty, kBs);
    faulty.FailNth(block::FaultOp::kRead, n, block::FaultMode::kTransient);
    Scan s = Reopen(&fio);
    if (faulty.faults_injected() == 0) {
      ASSERT_TRUE(s.st.ok()) << Str(s.st);
      EXPECT_EQ(s.seqs, (std::vector<std::uint64_t>{1}));
      clean_run = true;
      continue;
    }
    if (s.st.ok()) {
      ++rejections;  // a fault turned into a quiet refusal: wrong
    } else {
      EXPECT_TRUE(s.st.IsIOError()) << "read #" << n << ": " << Str(s.st);
    }
  }
  EXPECT_TRUE(clean_run);
  EXPECT_EQ(rejections, 0);
  log_ = std::make_unique<JournalLog>(io_.get(), sb_);
}

TEST_F(ManifestLogTest, DamagedOrInconsistentManifestRecordsEndTheLog) {
  const ManifestEntry e1 = WriteData(100), e2 = WriteData(200);
  ASSERT_TRUE(Append(1, 1, {e1}).ok());
  ASSERT_TRUE(Append(2, 2, {e2, e1}).ok());
  const std::uint64_t m2 = starts_[1] + 3;  // descriptor, 2 images, manifest, commit
  const std::uint64_t c2 = m2 + 1;
  ASSERT_EQ(format::DecodeMetaHeader(RawLog(m2)).type, format::BlockType::kJournalManifest);
  std::vector<std::uint8_t> saved(dev_->raw(), dev_->raw() + dev_->raw_size());
  auto restore = [&] { std::memcpy(dev_->raw(), saved.data(), saved.size()); };
  auto expect_only_first = [&](const char* what) {
    Scan s = Reopen();
    ASSERT_TRUE(s.st.ok()) << what << ": " << Str(s.st);
    EXPECT_EQ(s.seqs, (std::vector<std::uint64_t>{1})) << what;
    EXPECT_EQ(s.res.rejected_seq, 0u) << what << ": a torn record is not a data refusal";
    restore();
  };
  std::vector<ManifestEntry> ent(kMcap);

  RawLog(m2)[100] ^= 1;  // torn manifest block (checksum fails)
  expect_only_first("torn manifest");
  std::memset(RawLog(m2), 0, kBs);  // never written
  expect_only_first("missing manifest");
  {  // the commit does not count the manifest block
    format::CommitPayload cp = *format::DecodeCommit(RawLog(c2), kBs);
    cp.manifest_blocks = 0;
    format::EncodeCommit(RawLog(c2), kBs, cp);
    format::SealMetaBlock(RawLog(c2), kBs);
    expect_only_first("commit without manifest count");
  }
  {  // the chained CRC does not cover the manifest block
    format::CommitPayload cp = *format::DecodeCommit(RawLog(c2), kBs);
    cp.chained_crc = Crc32c(RawLog(starts_[1]) + 8, 4);
    format::EncodeCommit(RawLog(c2), kBs, cp);
    format::SealMetaBlock(RawLog(c2), kBs);
    expect_only_first("chained crc without the manifest");
  }
  {  // manifest numbered 1
    format::ManifestPayload mp = *format::DecodeManifest(RawLog(m2), kBs, ent.data());
    mp.index = 1;
    format::EncodeManifest(RawLog(m2), kBs, mp, ent.data());
    format::SealMetaBlock(RawLog(m2), kBs);
    expect_only_first("manifest index 1");
  }
  {  // a manifest block where the descriptor should be
    std::uint8_t* d = RawLog(starts_[1]);
    format::MetaHeader h = format::DecodeMetaHeader(d);
    h.type = format::BlockType::kJournalManifest;
    format::EncodeMetaHeader(h, d);
    format::SealMetaBlock(d, kBs);
    expect_only_first("manifest first");
  }
  {  // a manifest of another transaction (sequence in the owner field)
    format::MetaHeader h = format::DecodeMetaHeader(RawLog(m2));
    h.owner = 7;
    format::EncodeMetaHeader(h, RawLog(m2));
    format::SealMetaBlock(RawLog(m2), kBs);
    expect_only_first("foreign manifest");
  }
  {  // a zero-length extent does not decode
    format::ManifestPayload mp = *format::DecodeManifest(RawLog(m2), kBs, ent.data());
    ent[1].length = 0;
    format::EncodeManifest(RawLog(m2), kBs, mp, ent.data());
    format::SealMetaBlock(RawLog(m2), kBs);
    expect_only_first("empty extent");
  }
  // A checksummed manifest naming blocks outside the data area is damage, not a crash.
  for (std::uint64_t block : {std::uint64_t{0}, std::uint64_t{2}, sb_.journal_start + 3,
                              sb_.block_count - 1, sb_.block_count + 10}) {
    format::ManifestPayload mp = *format::DecodeManifest(RawLog(m2), kBs, ent.data());
    ent[0].block = block;
    format::EncodeManifest(RawLog(m2), kBs, mp, ent.data());
    format::SealMetaBlock(RawLog(m2), kBs);
    EXPECT_TRUE(Reopen().st.IsCorruption()) << "block " << block;
    restore();
  }
  {  // an extent longer than a record, or running past the volume
    format::ManifestPayload mp = *format::DecodeManifest(RawLog(m2), kBs, ent.data());
    ent[0].length = sb_.record_size + 1;
    format::EncodeManifest(RawLog(m2), kBs, mp, ent.data());
    format::SealMetaBlock(RawLog(m2), kBs);
    EXPECT_TRUE(Reopen().st.IsCorruption());
    restore();
    mp = *format::DecodeManifest(RawLog(m2), kBs, ent.data());
    ent[0].block = sb_.block_count - 3;
    ent[0].length = 3 * kBs;
    format::EncodeManifest(RawLog(m2), kBs, mp, ent.data());
    format::SealMetaBlock(RawLog(m2), kBs);
    EXPECT_TRUE(Reopen().st.IsCorruption());
    restore();
  }
  Scan s = Reopen();
  EXPECT_EQ(s.seqs, (std::vector<std::uint64_t>{1, 2}));
}

TEST_F(ManifestLogTest, AppendArgumentChecksAndNoSpace) {
  const ManifestEntry e = WriteData(10);
  ManifestEntry empty = e;
  empty.length = 0;
  std::vector<std::uint8_t> img = Meta(sb_.shard_start + 1, 1);
  LogBlock lb{sb_.shard_start + 1, img.data()};
  EXPECT_EQ(log_->Append(1, &lb, 1, nullptr, 1).code(), Code::kInvalidArgument);
  EXPECT_EQ(log_->Append(1, &lb, 1, &empty, 1).code(), Code::kInvalidArgument);
  ManifestEntry outside = e;
  outside.block = sb_.journal_start;
  EXPECT_EQ(log_->Append(1, &lb, 1, &outside, 1).code(), Code::kInvalidArgument);
  // A manifest that does not fit the log next to the block.
  std::vector<ManifestEntry> huge(kMcap * log_->log_blocks(), e);
  EXPECT_TRUE(log_->Append(1, &lb, 1, huge.data(), huge.size()).IsNoSpace());
  EXPECT_EQ(log_->used_blocks(), 0u);
  ASSERT_TRUE(log_->Append(1, &lb, 1, &e, 1).ok());
  Scan s = Reopen();
  EXPECT_EQ(s.seqs, (std::vector<std::uint64_t>{1}));
}

// ---- MetaStore level --------------------------------------------------------------------------

class ManifestStoreTest : public ::testing::Test {
 protected:
  static constexpr std::uint64_t kBlocks = 2048;

  // A fresh volume (no allocator) on mem_, remounted on the recording device rec_.
  void Fresh(std::uint64_t journal_blocks = 64, bool feature = true) {
    vol_.reset();
    rec_.reset();
    mem_ = std::make_unique<block::MemBlockDevice>(kBlocks, kBs);
    opt_ = VolumeOptions();
    opt_.journal_blocks = journal_blocks;
    opt_.with_allocator = false;
    auto sb = testutil::MakeSuperblock(kBlocks, opt_);
    ASSERT_TRUE(sb.ok()) << Str(sb.status());
    if (!feature) sb->incompat &= ~format::kIncompatJournalManifest;
    ASSERT_TRUE(testutil::WriteVolumeHeaders(mem_.get(), *sb).ok());
    {
      block::BlockIo io(mem_.get(), kBs);
      MetaStore ms(&io, *sb, opt_.store);
      ASSERT_TRUE(ms.Format().ok());
      auto t = ms.Begin();
      ASSERT_TRUE(t.ok());
      for (std::uint64_t i = 0; i < 8; ++i) {
        auto p = t->Create(B(*sb, i), format::BlockType::kBTreeLeaf, kTestOwner);
        ASSERT_TRUE(p.ok());
        FillPayload(*p, kBs, B(*sb, i), 0);
      }
      ASSERT_TRUE(t->Commit().ok());
      ASSERT_TRUE(ms.SyncAndCheckpoint().ok());
    }
    rec_ = std::make_unique<block::RecordingBlockDevice>(mem_.get());
    Mount(rec_.get());
  }
  void Mount(block::BlockDevice* dev) {
    vol_.reset();
    ms_ = nullptr;
    auto v = TestVolume::Remount(dev, opt_);
    ASSERT_TRUE(v.ok()) << Str(v.status());
    vol_ = std::move(*v);
    ms_ = vol_->ms.get();
  }
  static std::uint64_t B(const format::Superblock& sb, std::uint64_t i) {
    return sb.shard_start + 10 + i;
  }
  std::uint64_t B(std::uint64_t i) const { return B(vol_->sb, i); }
  std::uint64_t D(std::uint64_t i) const { return vol_->sb.shard_start + 500 + 4 * i; }

  // Writes `len` bytes of data at D(i) through `dev` (default: the mounted volume's device).
  ManifestEntry WriteData(std::uint64_t i, std::uint32_t len, std::uint64_t seed,
                          block::BlockDevice* dev = nullptr) {
    auto bytes = DataBytes(seed, len);
    block::BlockIo io(dev ? dev : rec_.get(), kBs);
    EXPECT_TRUE(io.Write(D(i), bytes.size() / kBs, bytes.data()).ok());
    return ManifestEntry{D(i), len, Crc32c(bytes.data(), len)};
  }
  // One handle: block B(b) gets `tag`, and the extents are noted.
  Status Txn(std::uint64_t b, std::uint64_t tag, const std::vector<ManifestEntry>& m,
             bool abort = false) {
    auto t = ms_->Begin();
    if (!t.ok()) return t.status();
    auto p = t->Modify(B(b), LeafAt(B(b)));
    if (!p.ok()) return p.status();
    FillPayload(*p, kBs, B(b), tag);
    for (const ManifestEntry& e : m) t->NoteData(e.block, e.length, e.crc);
    if (abort) {
      t->Abort();
      return Status();
    }
    return t->Commit();
  }
  std::uint64_t Tag(std::uint64_t b) {
    auto r = ReadTag(ms_, B(b));
    EXPECT_TRUE(r.ok()) << Str(r.status());
    return r.ok() ? *r : ~0ull;
  }
  // Trace entries of `op` after the last mark.
  std::vector<block::TraceEntry> SinceMark(block::TraceOp op) {
    std::vector<block::TraceEntry> out;
    auto tr = rec_->TraceCopy();
    std::size_t i = tr.size();
    while (i > 0 && tr[i - 1].op != block::TraceOp::kMark) --i;
    for (; i < tr.size(); ++i)
      if (tr[i].op == op) out.push_back(tr[i]);
    return out;
  }
  bool InJournal(std::uint64_t lba) const {
    return lba >= vol_->sb.journal_start && lba < vol_->sb.journal_start + vol_->sb.journal_blocks;
  }

  std::unique_ptr<block::MemBlockDevice> mem_;
  std::unique_ptr<block::RecordingBlockDevice> rec_;
  std::unique_ptr<block::FaultyBlockDevice> faulty_;
  VolumeOptions opt_;
  std::unique_ptr<TestVolume> vol_;
  MetaStore* ms_ = nullptr;
};

// The fsync path of a data write: data writes, journal writes, ONE flush that covers both.
TEST_F(ManifestStoreTest, CommitWithAManifestIssuesExactlyOneFlush) {
  Fresh();
  for (int round = 1; round <= 3; ++round) {
    rec_->Mark("start");
    const ManifestEntry e1 = WriteData(2 * round, 4096, round);
    const ManifestEntry e2 = WriteData(2 * round + 1, 9000, round + 100);
    ASSERT_TRUE(Txn(round % 4, round, {e1, e2}).ok());
    ASSERT_TRUE(ms_->Sync().ok());
    auto flushes = SinceMark(block::TraceOp::kFlush);
    auto writes = SinceMark(block::TraceOp::kWrite);
    ASSERT_EQ(flushes.size(), 1u) << "round " << round;
    // Two data writes, then the journal write; the flush is submitted after all of them
    // completed, so it makes the data and the commit record durable together.
    ASSERT_EQ(writes.size(), 3u);
    EXPECT_EQ(writes[0].lba, e1.block);
    EXPECT_EQ(writes[1].lba, e2.block);
    EXPECT_TRUE(InJournal(writes[2].lba));
    EXPECT_GT(flushes[0].flush_covers_seq, writes[2].seq);
  }
  MetaStoreStats st = ms_->stats();
  EXPECT_EQ(st.data_flushes, 0u);
  EXPECT_EQ(st.manifest_entries, 6u);
  EXPECT_EQ(st.commits, 3u);
  // Nothing left to commit: no flush at all.
  rec_->Mark("idle");
  ASSERT_TRUE(ms_->Sync().ok());
  EXPECT_TRUE(SinceMark(block::TraceOp::kFlush).empty());
  // A commit without file data: one flush as before.
  ASSERT_TRUE(Txn(5, 50, {}).ok());
  ASSERT_TRUE(ms_->Sync().ok());
  EXPECT_EQ(SinceMark(block::TraceOp::kFlush).size(), 1u);
  EXPECT_EQ(ms_->stats().manifest_entries, 6u);
  // Everything replays.
  Mount(mem_.get());
  EXPECT_EQ(ms_->stats().replay_discarded_transactions, 0u);
  EXPECT_EQ(Tag(1), 1u);
  EXPECT_EQ(Tag(2), 2u);
  EXPECT_EQ(Tag(3), 3u);
  EXPECT_EQ(Tag(5), 50u);
}

// A volume made without the journal_manifest feature keeps the older protocol: flush the data,
// then write and flush the journal; nothing is written as a manifest.
TEST_F(ManifestStoreTest, VolumeWithoutTheFeatureFlushesDataFirst) {
  Fresh(64, false);
  ASSERT_EQ(vol_->sb.incompat & format::kIncompatJournalManifest, 0u);
  rec_->Mark("start");
  const ManifestEntry e = WriteData(0, 5000, 9);
  ASSERT_TRUE(Txn(0, 1, {e}).ok());
  ASSERT_TRUE(ms_->Sync().ok());
  auto flushes = SinceMark(block::TraceOp::kFlush);
  auto writes = SinceMark(block::TraceOp::kWrite);
  ASSERT_EQ(flushes.size(), 2u);
  ASSERT_EQ(writes.size(), 2u);
  EXPECT_EQ(writes[0].lba, e.block);
  EXPECT_TRUE(InJournal(writes[1].lba));
  // The first flush covers the data and precedes the journal write.
  EXPECT_GT(flushes[0].flush_covers_seq, writes[0].seq);
  EXPECT_LT(flushes[0].seq, writes[1].seq);
  EXPECT_EQ(ms_->stats().data_flushes, 1u);
  EXPECT_EQ(ms_->stats().manifest_entries, 0u);
  // Nothing in the log names the data: damaging it does not stop replay.
  mem_->raw()[e.block * kBs] ^= 1;
  Mount(mem_.get());
  EXPECT_EQ(Tag(0), 1u);
  EXPECT_EQ(ms_->stats().replay_discarded_transactions, 0u);
}

// A manifest that would not fit the log next to the transaction's blocks is replaced by a flush
// before the journal write; it never makes a handle fail.
TEST_F(ManifestStoreTest, OversizedManifestSpillsToAPreCommitFlush) {
  Fresh(16);  // 14 log blocks
  const ManifestEntry e = WriteData(0, 100, 3);
  const std::uint64_t fit = (14 - 3) * kMcap;  // descriptor + 1 block + commit + 11 manifests
  {
    auto t = ms_->Begin();
    ASSERT_TRUE(t.ok());
    auto p = t->Modify(B(0), LeafAt(B(0)));
    ASSERT_TRUE(p.ok());
    FillPayload(*p, kBs, B(0), 1);
    for (std::uint64_t i = 0; i < fit; ++i) t->NoteData(e.block, e.length, e.crc);
    // Still a manifest; a second block no longer fits next to it: the manifest is spilled,
    // the block is accepted.
    auto q = t->Modify(B(1), LeafAt(B(1)));
    ASSERT_TRUE(q.ok()) << Str(q.status());
    FillPayload(*q, kBs, B(1), 1);
    ASSERT_TRUE(t->Commit().ok());
  }
  rec_->Mark("spilled");
  ASSERT_TRUE(ms_->Sync().ok());
  EXPECT_EQ(SinceMark(block::TraceOp::kFlush).size(), 2u);
  EXPECT_EQ(ms_->stats().data_flushes, 1u);
  EXPECT_EQ(ms_->stats().manifest_entries, 0u);
  // NoteData past the limit spills too; the next transaction has a manifest again.
  {
    auto t = ms_->Begin();
    ASSERT_TRUE(t.ok());
    auto p = t->Modify(B(2), LeafAt(B(2)));
    ASSERT_TRUE(p.ok());
    FillPayload(*p, kBs, B(2), 2);
    for (std::uint64_t i = 0; i < fit + 1; ++i) t->NoteData(e.block, e.length, e.crc);
    ASSERT_TRUE(t->Commit().ok());
  }
  ASSERT_TRUE(ms_->Sync().ok());
  EXPECT_EQ(ms_->stats().data_flushes, 2u);
  ASSERT_TRUE(Txn(3, 3, {e}).ok());
  rec_->Mark("manifest again");
  ASSERT_TRUE(ms_->Sync().ok());
  EXPECT_EQ(SinceMark(block::TraceOp::kFlush).size(), 1u);
  EXPECT_EQ(ms_->stats().data_flushes, 2u);
  EXPECT_EQ(ms_->stats().manifest_entries, 1u);
  Mount(mem_.get());
  EXPECT_EQ(Tag(0), 1u);
  EXPECT_EQ(Tag(1), 1u);
  EXPECT_EQ(Tag(2), 2u);
  EXPECT_EQ(Tag(3), 3u);
}

// Entries of an aborted handle never reach the journal: its extent may be reused at once, so a
// manifest naming it could make replay refuse a valid transaction.
TEST_F(ManifestStoreTest, AbortedHandleEntriesAreDropped) {
  Fresh();
  const ManifestEntry kept = WriteData(0, 6000, 1), dropped = WriteData(1, 6000, 2);
  ASSERT_TRUE(Txn(0, 1, {kept}).ok());
  ASSERT_TRUE(Txn(1, 1, {dropped}, /*abort=*/true).ok());
  ASSERT_TRUE(Txn(2, 1, {}).ok());
  ASSERT_TRUE(ms_->Sync().ok());
  EXPECT_EQ(ms_->stats().manifest_entries, 1u);
  // The aborted extent is reused for other bytes: replay still applies the transaction.
  std::memset(mem_->raw() + dropped.block * kBs, 0xAB, 2 * kBs);
  Mount(mem_.get());
  EXPECT_EQ(ms_->stats().replay_discarded_transactions, 0u);
  EXPECT_EQ(Tag(0), 1u);
  EXPECT_EQ(Tag(1), 0u);
  EXPECT_EQ(Tag(2), 1u);
}

// The crash this protects against: the data write never reached the disk, the commit did.
// Replay refuses that transaction and every later one; the discarded records are never taken
// for new ones afterwards, and the volume keeps working.
TEST_F(ManifestStoreTest, LostDataWriteDiscardsTheTransactionAndLaterOnes) {
  Fresh();
  faulty_ = std::make_unique<block::FaultyBlockDevice>(mem_.get());
  block::FaultyBlockDevice& faulty = *faulty_;
  Mount(&faulty);
  ASSERT_TRUE(Txn(0, 1, {}).ok());  // durable, no data
  ASSERT_TRUE(ms_->Sync().ok());
  const ManifestEntry good = WriteData(0, 4096, 1, &faulty);
  ASSERT_TRUE(Txn(1, 2, {good}).ok());
  ASSERT_TRUE(ms_->Sync().ok());
  faulty.LoseWritesTo(D(1), block::FaultMode::kPersistent);
  const ManifestEntry lost = WriteData(1, 4096, 2, &faulty);  // "completes", never lands
  ASSERT_TRUE(Txn(2, 3, {lost}).ok());
  ASSERT_TRUE(ms_->Sync().ok());
  ASSERT_TRUE(Txn(0, 4, {}).ok());
  ASSERT_TRUE(ms_->Sync().ok());
  ASSERT_TRUE(Txn(3, 5, {good}).ok());
  ASSERT_TRUE(ms_->Sync().ok());
  const std::uint64_t last_seq = ms_->stats().durable_seq;
  vol_.reset();  // crash: nothing checkpointed

  Mount(mem_.get());
  MetaStoreStats st = ms_->stats();
  EXPECT_EQ(st.replayed_transactions, 2u);
  EXPECT_EQ(st.replay_discarded_transactions, 3u);
  EXPECT_EQ(Tag(0), 1u);
  EXPECT_EQ(Tag(1), 2u);
  EXPECT_EQ(Tag(2), 0u);
  EXPECT_EQ(Tag(3), 0u);
  // New transactions use sequences past every discarded one (and the one after them).
  EXPECT_GE(st.running_seq, last_seq + 2);
  // New work lands where the discarded records were; a crash now must replay only it.
  ASSERT_TRUE(Txn(4, 6, {}).ok());
  ASSERT_TRUE(ms_->Sync().ok());
  ASSERT_TRUE(Txn(5, 7, {}).ok());
  ASSERT_TRUE(ms_->Sync().ok());
  Mount(mem_.get());
  EXPECT_EQ(ms_->stats().replayed_transactions, 2u);
  EXPECT_EQ(ms_->stats().replay_discarded_transactions, 0u);
  EXPECT_EQ(Tag(0), 1u);
  EXPECT_EQ(Tag(2), 0u);
  EXPECT_EQ(Tag(3), 0u);
  EXPECT_EQ(Tag(4), 6u);
  EXPECT_EQ(Tag(5), 7u);
  Mount(mem_.get());
  EXPECT_EQ(ms_->stats().replayed_transactions, 0u);
  EXPECT_EQ(Tag(4), 6u);
}

// A read-only mount applies the same rule in memory and writes nothing.
TEST_F(ManifestStoreTest, ReadOnlyMountRefusesMissingDataToo) {
  Fresh();
  const ManifestEntry e = WriteData(0, 4096, 1);
  ASSERT_TRUE(Txn(0, 1, {}).ok());
  ASSERT_TRUE(ms_->Sync().ok());
  ASSERT_TRUE(Txn(1, 2, {e}).ok());
  ASSERT_TRUE(ms_->Sync().ok());
  vol_.reset();
  mem_->raw()[e.block * kBs + 5] ^= 1;
  const std::vector<std::uint8_t> before = mem_->Snapshot();
  opt_.store.read_only = true;
  Mount(mem_.get());
  EXPECT_EQ(Tag(0), 1u);
  EXPECT_EQ(Tag(1), 0u);
  EXPECT_EQ(ms_->stats().replay_discarded_transactions, 1u);
  vol_.reset();
  EXPECT_TRUE(mem_->Snapshot() == before);
}

// Committed transactions in the journal that reference more data than checkpoint_data_bytes
// force a checkpoint before the next commit (bounding what replay has to read back).
TEST_F(ManifestStoreTest, DataHeavyJournalIsCheckpointed) {
  Fresh();
  opt_.store.checkpoint_data_bytes = 3 * 4096;
  Mount(rec_.get());
  for (std::uint64_t i = 0; i < 6; ++i) {
    const ManifestEntry e = WriteData(i, 4096, i);
    ASSERT_TRUE(Txn(i % 4, i + 1, {e}).ok());
    ASSERT_TRUE(ms_->Sync().ok());
  }
  // Commits 1-3 reach the budget, commit 4 checkpoints first; commits 4-6 again, and so on.
  EXPECT_EQ(ms_->stats().checkpoints, 1u);
  EXPECT_EQ(ms_->stats().data_flushes, 0u);
}

}  // namespace
}  // namespace permfs::journal
