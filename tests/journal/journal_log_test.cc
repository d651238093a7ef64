// JournalLog unit tests: the leveldb db/log_test.cc set, adapted to a circular block journal.
// Every test works on a MemBlockDevice and pokes the raw image to simulate torn, corrupt, stale
// or foreign blocks, then checks what a fresh JournalLog (a "remount") scans back.

#include "journal/journal_log.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "block/faulty_block_device.h"
#include "block/mem_block_device.h"
#include "format/journal_blocks.h"
#include "format/meta_block.h"
#include "testutil/volume_fixture.h"
#include "util/random.h"

namespace permfs::journal {
namespace {

using testutil::Str;

constexpr std::uint32_t kBs = 4096;
const std::uint64_t kCap = format::DescriptorCapacity(kBs);

struct Txn {
  std::uint64_t seq = 0;
  std::vector<std::uint64_t> homes;
  std::vector<std::vector<std::uint8_t>> data;
};

// A sealed metadata block for `home` whose payload is a pattern derived from `tag`.
std::vector<std::uint8_t> MakeBlock(const format::Superblock& sb, std::uint64_t home,
                                    std::uint64_t tag) {
  std::vector<std::uint8_t> b(kBs, 0);
  format::MetaHeader h;
  h.type = format::BlockType::kBTreeLeaf;
  h.blockno = home;
  h.generation = tag;
  h.uuid = sb.uuid;
  format::EncodeMetaHeader(h, b.data());
  Random rnd(tag * 1000003 + home);
  rnd.Fill(b.data() + format::kMetaHeaderSize, kBs - format::kMetaHeaderSize);
  format::SealMetaBlock(b.data(), kBs);
  return b;
}

Txn MakeTxn(const format::Superblock& sb, std::uint64_t seq, std::size_t n) {
  Txn t;
  t.seq = seq;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t home = sb.shard_start + 1 + (seq * 7 + i) % 50;
    t.homes.push_back(home);
    t.data.push_back(MakeBlock(sb, home, seq * 100000 + i));
  }
  return t;
}

Status AppendTxn(JournalLog* log, const Txn& t) {
  std::vector<LogBlock> lb;
  for (std::size_t i = 0; i < t.homes.size(); ++i) lb.push_back(LogBlock{t.homes[i], t.data[i].data()});
  return log->Append(t.seq, lb.data(), lb.size());
}

struct Scanned {
  std::vector<Txn> txns;
  ScanResult res;
  Status st;
};

Status Collect(void* ctx, std::uint64_t seq, const LogBlock* blocks, std::size_t n) {
  auto* out = static_cast<std::vector<Txn>*>(ctx);
  Txn t;
  t.seq = seq;
  for (std::size_t i = 0; i < n; ++i) {
    t.homes.push_back(blocks[i].home);
    t.data.emplace_back(blocks[i].data, blocks[i].data + kBs);
  }
  out->push_back(std::move(t));
  return Status();
}

class JournalLogTest : public ::testing::Test {
 protected:
  void Init(std::uint64_t blocks, std::uint64_t journal_blocks, std::uint64_t uuid_seed = 1) {
    dev_ = std::make_unique<block::MemBlockDevice>(blocks, kBs);
    testutil::VolumeOptions o;
    o.journal_blocks = journal_blocks;
    o.uuid_seed = uuid_seed;
    auto sb = testutil::MakeSuperblock(blocks, o);
    ASSERT_TRUE(sb.ok()) << Str(sb.status());
    sb_ = *sb;
    io_ = std::make_unique<block::BlockIo>(dev_.get(), kBs);
    log_ = std::make_unique<JournalLog>(io_.get(), sb_);
    ASSERT_TRUE(log_->Format().ok());
  }

  // A fresh JournalLog over the same device: Open + Scan, as a remount does.
  Scanned Reopen() {
    Scanned s;
    log_ = std::make_unique<JournalLog>(io_.get(), sb_);
    s.st = log_->Open();
    if (!s.st.ok()) return s;
    s.st = log_->Scan(&Collect, &s.txns, &s.res);
    return s;
  }

  std::uint64_t LogBlockNo(std::uint64_t offset) const {
    return sb_.journal_start + 2 + offset % (sb_.journal_blocks - 2);
  }
  std::uint8_t* Raw(std::uint64_t blockno) { return dev_->raw() + blockno * kBs; }
  std::uint8_t* RawLog(std::uint64_t offset) { return Raw(LogBlockNo(offset)); }

  // Appends and remembers where the transaction starts.
  void Append(const Txn& t) {
    starts_.push_back(log_->head_offset());
    ASSERT_TRUE(AppendTxn(log_.get(), t).ok());
  }

  void ExpectTxns(const Scanned& s, const std::vector<Txn>& want) {
    ASSERT_TRUE(s.st.ok()) << Str(s.st);
    ASSERT_EQ(s.txns.size(), want.size());
    EXPECT_EQ(s.res.transactions, want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(s.txns[i].seq, want[i].seq) << "txn " << i;
      EXPECT_EQ(s.txns[i].homes, want[i].homes) << "txn " << i;
      ASSERT_EQ(s.txns[i].data.size(), want[i].data.size());
      for (std::size_t j = 0; j < want[i].data.size(); ++j)
        EXPECT_TRUE(s.txns[i].data[j] == want[i].data[j]) << "txn " << i << " block " << j;
    }
  }

  std::unique_ptr<block::MemBlockDevice> dev_;
  format::Superblock sb_;
  std::unique_ptr<block::BlockIo> io_;
  std::unique_ptr<JournalLog> log_;
  std::vector<std::uint64_t> starts_;
};

TEST_F(JournalLogTest, EmptyLogScansNothing) {
  Init(512, 32);
  EXPECT_EQ(log_->log_blocks(), 30u);
  Scanned s = Reopen();
  ExpectTxns(s, {});
  EXPECT_EQ(s.res.first_seq, 1u);
  EXPECT_EQ(s.res.next_seq, 1u);
  EXPECT_EQ(s.res.end_offset, 0u);
  EXPECT_EQ(log_->used_blocks(), 0u);
  EXPECT_EQ(log_->next_seq(), 1u);
}

TEST_F(JournalLogTest, SingleTransactionRoundTrip) {
  Init(512, 32);
  Txn t = MakeTxn(sb_, 1, 3);
  Append(t);
  EXPECT_EQ(log_->used_blocks(), 5u);
  EXPECT_EQ(log_->head_offset(), 5u);
  EXPECT_EQ(log_->next_seq(), 2u);
  Scanned s = Reopen();
  ExpectTxns(s, {t});
  EXPECT_EQ(s.res.blocks, 3u);
  EXPECT_EQ(s.res.next_seq, 2u);
  EXPECT_EQ(s.res.end_offset, 5u);
  EXPECT_EQ(log_->used_blocks(), 5u);
  EXPECT_EQ(log_->head_offset(), 5u);
  // The reopened log continues the sequence where the scan ended.
  Txn t2 = MakeTxn(sb_, 2, 1);
  ASSERT_TRUE(AppendTxn(log_.get(), t2).ok());
  ExpectTxns(Reopen(), {t, t2});
}

TEST_F(JournalLogTest, ScanWithoutCallbackPositionsTheHead) {
  Init(512, 32);
  Append(MakeTxn(sb_, 1, 2));
  Append(MakeTxn(sb_, 2, 2));
  JournalLog log(io_.get(), sb_);
  ASSERT_TRUE(log.Open().ok());
  ScanResult r;
  ASSERT_TRUE(log.Scan(nullptr, nullptr, &r).ok());
  EXPECT_EQ(r.transactions, 2u);
  EXPECT_EQ(log.head_offset(), 8u);
  EXPECT_EQ(log.used_blocks(), 8u);
  EXPECT_EQ(log.next_seq(), 3u);
}

TEST_F(JournalLogTest, ReplayCallbackErrorStopsScan) {
  Init(512, 32);
  Append(MakeTxn(sb_, 1, 1));
  Append(MakeTxn(sb_, 2, 1));
  JournalLog log(io_.get(), sb_);
  ASSERT_TRUE(log.Open().ok());
  int calls = 0;
  Status st = log.Scan(
      [](void* c, std::uint64_t, const LogBlock*, std::size_t) -> Status {
        ++*static_cast<int*>(c);
        return Status::IOError("replay target failed");
      },
      &calls, nullptr);
  EXPECT_TRUE(st.IsIOError()) << Str(st);
  EXPECT_EQ(calls, 1);
}

// Many transactions of random sizes through several laps of the circular log, with a
// "checkpoint" (SetTail to the head) whenever the log is full. After every step a remount must
// scan exactly the transactions appended since the last checkpoint.
TEST_F(JournalLogTest, ManyTransactionsWrapAround) {
  Init(512, 32);
  Random rnd(7);
  std::vector<Txn> live;
  std::uint64_t seq = 1, wraps = 0, written = 0;
  for (int step = 0; step < 200; ++step) {
    Txn t = MakeTxn(sb_, seq, 1 + rnd.Uniform(6));
    std::uint64_t before = log_->head_offset();
    Status st = AppendTxn(log_.get(), t);
    if (st.IsNoSpace()) {
      EXPECT_GT(log_->BlocksNeeded(t.homes.size()), log_->free_blocks());
      ASSERT_TRUE(log_->SetTail(log_->head_offset(), seq, 0).ok());
      EXPECT_EQ(log_->used_blocks(), 0u);
      live.clear();
      st = AppendTxn(log_.get(), t);
    }
    ASSERT_TRUE(st.ok()) << Str(st);
    written += log_->BlocksNeeded(t.homes.size());
    if (log_->head_offset() < before) ++wraps;
    live.push_back(t);
    ++seq;
    if (step % 5 == 0) {
      std::uint64_t head = log_->head_offset(), used = log_->used_blocks();
      Scanned s = Reopen();
      ExpectTxns(s, live);
      if (HasFatalFailure()) return;
      EXPECT_EQ(s.res.next_seq, seq);
      EXPECT_EQ(log_->head_offset(), head);
      EXPECT_EQ(log_->used_blocks(), used);
    }
  }
  EXPECT_GE(wraps, 5u);
  EXPECT_GT(written, 10 * log_->log_blocks());
}

// A transaction with more data blocks than one descriptor holds, also wrapping the log end.
TEST_F(JournalLogTest, MultiDescriptorTransactions) {
  Init(4096, 1024);
  const std::uint64_t n = 2 * kCap + 7;  // three descriptors
  EXPECT_EQ(log_->BlocksNeeded(n), n + 3 + 1);
  Txn big = MakeTxn(sb_, 1, n);
  Append(big);
  ExpectTxns(Reopen(), {big});
  // The commit is the last block and says three descriptors.
  auto c = format::DecodeCommit(RawLog(n + 3), kBs);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->descriptors, 3u);
  EXPECT_EQ(c->data_blocks, n);

  // Move the tail so the next big transaction straddles the end of the log.
  Txn filler = MakeTxn(sb_, 2, 300);
  Append(filler);
  ASSERT_TRUE(log_->SetTail(log_->head_offset(), 3, 0).ok());
  Txn wrapping = MakeTxn(sb_, 3, n);
  std::uint64_t start = log_->head_offset();
  ASSERT_LT(log_->log_blocks() - start, log_->BlocksNeeded(n));
  Append(wrapping);
  EXPECT_LT(log_->head_offset(), start);
  ExpectTxns(Reopen(), {wrapping});
}

TEST_F(JournalLogTest, MissingMiddleDescriptorDropsTransaction) {
  Init(4096, 1024);
  Txn a = MakeTxn(sb_, 1, 3);
  Txn big = MakeTxn(sb_, 2, 2 * kCap + 1);
  Append(a);
  Append(big);
  // Second descriptor of `big`: after descriptor 0 and its kCap data blocks.
  std::memset(RawLog(starts_[1] + 1 + kCap), 0, kBs);
  Scanned s = Reopen();
  ExpectTxns(s, {a});
  EXPECT_EQ(s.res.next_seq, 2u);
  EXPECT_EQ(s.res.end_offset, starts_[1]);
}

// Torn trailing transaction: whatever piece of the last transaction is missing or damaged, it is
// ignored as a whole and the earlier ones are kept (leveldb TruncatedTrailingRecordIsIgnored).
enum class Damage { kDropCommit, kDropMiddleData, kFlipDataByte, kGarbageCommit, kDropDescriptor,
                    kFlipDescriptorByte, kStaleCommit };

class JournalTornTest : public JournalLogTest, public ::testing::WithParamInterface<Damage> {};

TEST_P(JournalTornTest, TornTrailingTransactionIgnored) {
  Init(512, 32);
  Txn t1 = MakeTxn(sb_, 1, 2), t2 = MakeTxn(sb_, 2, 3), t3 = MakeTxn(sb_, 3, 3);
  Append(t1);
  Append(t2);
  std::vector<std::uint8_t> t2_commit(RawLog(starts_[1] + 4), RawLog(starts_[1] + 4) + kBs);
  Append(t3);
  const std::uint64_t s3 = starts_[2];
  Random rnd(3);
  switch (GetParam()) {
    case Damage::kDropCommit: std::memset(RawLog(s3 + 4), 0, kBs); break;
    case Damage::kDropMiddleData: std::memset(RawLog(s3 + 2), 0, kBs); break;
    case Damage::kFlipDataByte: RawLog(s3 + 3)[1234] ^= 0x10; break;
    case Damage::kGarbageCommit: rnd.Fill(RawLog(s3 + 4), kBs); break;
    case Damage::kDropDescriptor: std::memset(RawLog(s3), 0, kBs); break;
    case Damage::kFlipDescriptorByte: RawLog(s3)[200] ^= 1; break;
    // A commit record of an earlier transaction where t3's commit should be.
    case Damage::kStaleCommit: std::memcpy(RawLog(s3 + 4), t2_commit.data(), kBs); break;
  }
  Scanned s = Reopen();
  ExpectTxns(s, {t1, t2});
  EXPECT_EQ(s.res.next_seq, 3u);
  EXPECT_EQ(s.res.end_offset, s3);
  EXPECT_EQ(log_->head_offset(), s3);
  EXPECT_EQ(log_->used_blocks(), s3);
}

INSTANTIATE_TEST_SUITE_P(AllDamage, JournalTornTest,
                         ::testing::Values(Damage::kDropCommit, Damage::kDropMiddleData,
                                           Damage::kFlipDataByte, Damage::kGarbageCommit,
                                           Damage::kDropDescriptor, Damage::kFlipDescriptorByte,
                                           Damage::kStaleCommit));

// Damage in a middle transaction: the log ends there (later transactions are not replayed even
// though they are intact, because replay must be a prefix).
TEST_F(JournalLogTest, CorruptMiddleTransactionEndsTheLog) {
  Init(512, 32);
  Txn t1 = MakeTxn(sb_, 1, 2), t2 = MakeTxn(sb_, 2, 2), t3 = MakeTxn(sb_, 3, 2);
  Append(t1);
  Append(t2);
  Append(t3);
  RawLog(starts_[1] + 1)[4000] ^= 0x80;
  ExpectTxns(Reopen(), {t1});
}

// Sealed (valid checksum) but inconsistent records: wrong counts, wrong order, wrong type.
TEST_F(JournalLogTest, SealedButInconsistentRecordsRejected) {
  Init(512, 32);
  Txn t1 = MakeTxn(sb_, 1, 2), t2 = MakeTxn(sb_, 2, 3);
  Append(t1);
  Append(t2);
  const std::uint64_t s2 = starts_[1];
  std::vector<std::uint8_t> saved(dev_->raw(), dev_->raw() + dev_->raw_size());
  auto restore = [&] { std::memcpy(dev_->raw(), saved.data(), saved.size()); };

  // Commit claims one data block fewer ("bad length").
  {
    std::uint8_t* c = RawLog(s2 + 4);
    auto cp = format::DecodeCommit(c, kBs);
    ASSERT_TRUE(cp.ok());
    format::CommitPayload bad = *cp;
    bad.data_blocks -= 1;
    format::EncodeCommit(c, kBs, bad);
    format::SealMetaBlock(c, kBs);
    ExpectTxns(Reopen(), {t1});
    restore();
  }
  // Commit with a wrong chained CRC.
  {
    std::uint8_t* c = RawLog(s2 + 4);
    format::CommitPayload bad = *format::DecodeCommit(c, kBs);
    bad.chained_crc ^= 1;
    format::EncodeCommit(c, kBs, bad);
    format::SealMetaBlock(c, kBs);
    ExpectTxns(Reopen(), {t1});
    restore();
  }
  // Descriptor that says it is descriptor #1 of its transaction.
  {
    std::uint8_t* d = RawLog(s2);
    std::vector<format::DescriptorEntry> e(kCap);
    auto dp = format::DecodeDescriptor(d, kBs, e.data());
    ASSERT_TRUE(dp.ok());
    format::DescriptorPayload bad = *dp;
    bad.index = 1;
    format::EncodeDescriptor(d, kBs, bad, e.data());
    format::SealMetaBlock(d, kBs);
    ExpectTxns(Reopen(), {t1});
    restore();
  }
  // Descriptor entry pointing outside the volume.
  {
    std::uint8_t* d = RawLog(s2);
    std::vector<format::DescriptorEntry> e(kCap);
    format::DescriptorPayload dp = *format::DecodeDescriptor(d, kBs, e.data());
    e[1].home_block = sb_.block_count + 5;
    format::EncodeDescriptor(d, kBs, dp, e.data());
    format::SealMetaBlock(d, kBs);
    // A checksummed record that targets a block outside the journaled area is not a torn
    // tail but damage (or a hostile image): replay refuses it.
    EXPECT_TRUE(Reopen().st.IsCorruption());
    restore();
  }
  // Descriptor entry targeting the superblock or the journal region itself.
  for (std::uint64_t target : {std::uint64_t{0}, std::uint64_t{1}, sb_.journal_start,
                               sb_.journal_start + 5, sb_.block_count - 1}) {
    std::uint8_t* d = RawLog(s2);
    std::vector<format::DescriptorEntry> e(kCap);
    format::DescriptorPayload dp = *format::DecodeDescriptor(d, kBs, e.data());
    e[0].home_block = target;
    format::EncodeDescriptor(d, kBs, dp, e.data());
    format::SealMetaBlock(d, kBs);
    EXPECT_TRUE(Reopen().st.IsCorruption()) << "target " << target;
    restore();
  }
  // Unexpected record type: a sealed bitmap block where the descriptor should be.
  {
    std::uint8_t* d = RawLog(s2);
    format::MetaHeader h = format::DecodeMetaHeader(d);
    h.type = format::BlockType::kBitmap;
    format::EncodeMetaHeader(h, d);
    format::SealMetaBlock(d, kBs);
    ExpectTxns(Reopen(), {t1});
    restore();
  }
  // A descriptor of the right transaction that names another block (a misdirected write).
  {
    std::uint8_t* d = RawLog(s2);
    format::MetaHeader h = format::DecodeMetaHeader(d);
    h.blockno = LogBlockNo(s2 + 1);
    format::EncodeMetaHeader(h, d);
    format::SealMetaBlock(d, kBs);
    ExpectTxns(Reopen(), {t1});
    restore();
  }
  // A descriptor with the wrong transaction sequence (owner).
  {
    std::uint8_t* d = RawLog(s2);
    format::MetaHeader h = format::DecodeMetaHeader(d);
    h.owner = 3;
    format::EncodeMetaHeader(h, d);
    format::SealMetaBlock(d, kBs);
    ExpectTxns(Reopen(), {t1});
    restore();
  }
  ExpectTxns(Reopen(), {t1, t2});
}

// Stale transactions from the previous lap sit right after the live ones: their sequence numbers
// are older, so the scan must stop instead of replaying them.
TEST_F(JournalLogTest, StaleTransactionFromPreviousLapNotReplayed) {
  Init(512, 32);  // 30 log blocks = ten 1-block transactions
  std::vector<Txn> lap1;
  for (std::uint64_t s = 1; s <= 10; ++s) {
    lap1.push_back(MakeTxn(sb_, s, 1));
    Append(lap1.back());
  }
  EXPECT_EQ(log_->used_blocks(), 30u);
  EXPECT_EQ(log_->head_offset(), 0u);
  EXPECT_TRUE(AppendTxn(log_.get(), MakeTxn(sb_, 11, 1)).IsNoSpace());
  ExpectTxns(Reopen(), lap1);  // a completely full log scans fully
  ASSERT_TRUE(log_->SetTail(log_->head_offset(), 11, 0).ok());
  std::vector<Txn> lap2;
  for (std::uint64_t s = 11; s <= 15; ++s) {
    lap2.push_back(MakeTxn(sb_, s, 1));
    Append(lap2.back());
  }
  // Offsets 15.. still hold transactions 6..10 of the first lap, intact and sealed.
  Scanned s = Reopen();
  ExpectTxns(s, lap2);
  EXPECT_EQ(s.res.next_seq, 16u);
  EXPECT_EQ(s.res.end_offset, 15u);
  // A tail in the middle of lap 2.
  ASSERT_TRUE(log_->SetTail(6, 13, 0).ok());
  ExpectTxns(Reopen(), {lap2[2], lap2[3], lap2[4]});
}

// Transactions written by an earlier mkfs of another volume, with the sequence numbers this
// volume expects next, are rejected by their uuid.
TEST_F(JournalLogTest, BlocksFromAnotherVolumeIgnored) {
  Init(512, 32, /*uuid_seed=*/1);
  format::Superblock old_sb = sb_;
  std::vector<Txn> old;
  for (std::uint64_t s = 1; s <= 4; ++s) {
    old.push_back(MakeTxn(old_sb, s, 1));
    Append(old.back());
  }
  // New volume with another uuid on the same device and the same layout.
  testutil::VolumeOptions o;
  o.journal_blocks = 32;
  o.uuid_seed = 2;
  auto sb = testutil::MakeSuperblock(512, o);
  ASSERT_TRUE(sb.ok());
  ASSERT_FALSE(sb->uuid == old_sb.uuid);
  sb_ = *sb;
  log_ = std::make_unique<JournalLog>(io_.get(), sb_);
  ASSERT_TRUE(log_->Format().ok());
  ExpectTxns(Reopen(), {});
  Txn n1 = MakeTxn(sb_, 1, 1);  // same size as old txn 1: old txn 2 follows at the head
  ASSERT_TRUE(AppendTxn(log_.get(), n1).ok());
  ExpectTxns(Reopen(), {n1});
}

TEST_F(JournalLogTest, GarbageAfterTheTailIgnored) {
  Init(512, 32);
  Random rnd(11);
  // Garbage in the whole log of a fresh journal.
  for (std::uint64_t o = 0; o < log_->log_blocks(); ++o) rnd.Fill(RawLog(o), kBs);
  ExpectTxns(Reopen(), {});
  Txn t1 = MakeTxn(sb_, 1, 4), t2 = MakeTxn(sb_, 2, 2);
  Append(t1);
  Append(t2);
  ExpectTxns(Reopen(), {t1, t2});
  // Zeros after the tail.
  for (std::uint64_t o = log_->head_offset(); o < log_->log_blocks(); ++o)
    std::memset(RawLog(o), 0, kBs);
  ExpectTxns(Reopen(), {t1, t2});
}

TEST_F(JournalLogTest, HeaderSlotFallback) {
  Init(512, 32);
  Txn t1 = MakeTxn(sb_, 1, 2), t2 = MakeTxn(sb_, 2, 2);
  Append(t1);
  Append(t2);
  // Format wrote write_count 0 (slot 0) and 1 (slot 1); this writes 2 into slot 0.
  ASSERT_TRUE(log_->SetTail(starts_[1], 2, 0).ok());
  EXPECT_EQ(log_->header().write_count, 2u);
  ExpectTxns(Reopen(), {t2});
  EXPECT_EQ(log_->tail_offset(), starts_[1]);
  std::vector<std::uint8_t> saved(dev_->raw(), dev_->raw() + dev_->raw_size());

  // Slot A (0, the newer) corrupt: slot B (older tail at 0) is used; t1 is replayed again.
  Raw(sb_.journal_start)[100] ^= 0x01;
  ExpectTxns(Reopen(), {t1, t2});
  EXPECT_EQ(log_->header().write_count, 1u);
  EXPECT_EQ(log_->tail_offset(), 0u);

  // Both corrupt: Corruption, never an empty log.
  Raw(sb_.journal_start + 1)[3000] ^= 0x01;
  Scanned s = Reopen();
  EXPECT_TRUE(s.st.IsCorruption()) << Str(s.st);

  // Only slot B corrupt: slot A is used.
  std::memcpy(dev_->raw(), saved.data(), saved.size());
  Raw(sb_.journal_start + 1)[3000] ^= 0x01;
  ExpectTxns(Reopen(), {t2});
  // The next SetTail writes slot B again, repairing it.
  ASSERT_TRUE(log_->SetTail(log_->head_offset(), 3, 0).ok());
  EXPECT_EQ(log_->header().write_count, 3u);
  Raw(sb_.journal_start)[100] ^= 0x01;  // now only B is valid, and it is the newest
  ExpectTxns(Reopen(), {});
  EXPECT_EQ(log_->tail_seq(), 3u);

  // A valid header copied into the other slot is rejected (blockno / parity mismatch).
  std::memcpy(dev_->raw(), saved.data(), saved.size());
  std::memcpy(Raw(sb_.journal_start + 1), Raw(sb_.journal_start), kBs);
  std::memset(Raw(sb_.journal_start), 0, kBs);
  s = Reopen();
  EXPECT_TRUE(s.st.IsCorruption()) << Str(s.st);
}

TEST_F(JournalLogTest, SetTailThenReopen) {
  Init(512, 32);
  Txn t1 = MakeTxn(sb_, 1, 3), t2 = MakeTxn(sb_, 2, 1), t3 = MakeTxn(sb_, 3, 2);
  Append(t1);
  Append(t2);
  Append(t3);
  EXPECT_EQ(log_->used_blocks(), 5u + 3u + 4u);
  ASSERT_TRUE(log_->SetTail(starts_[1], 2, 42).ok());
  EXPECT_EQ(log_->used_blocks(), 7u);
  EXPECT_EQ(log_->tail_seq(), 2u);
  Scanned s = Reopen();
  ExpectTxns(s, {t2, t3});
  EXPECT_EQ(s.res.first_seq, 2u);
  EXPECT_EQ(log_->header().root_generation, 42u);
  EXPECT_EQ(log_->used_blocks(), 7u);
  ASSERT_TRUE(log_->SetTail(log_->head_offset(), 4, 43).ok());
  EXPECT_EQ(log_->used_blocks(), 0u);
  EXPECT_EQ(log_->free_blocks(), log_->log_blocks());
  ExpectTxns(Reopen(), {});
  EXPECT_TRUE(log_->SetTail(log_->log_blocks(), 4, 0).code() == Status::InvalidArgument("").code());
}

TEST_F(JournalLogTest, AppendNoSpaceWhenFull) {
  Init(512, 32);
  std::vector<Txn> all;
  std::uint64_t seq = 1;
  for (;;) {
    Txn t = MakeTxn(sb_, seq, 4);  // 6 log blocks each: 5 fit in 30
    std::uint64_t head = log_->head_offset(), used = log_->used_blocks();
    std::vector<std::uint8_t> before(dev_->raw(), dev_->raw() + dev_->raw_size());
    Status st = AppendTxn(log_.get(), t);
    if (st.IsNoSpace()) {
      EXPECT_EQ(log_->head_offset(), head);
      EXPECT_EQ(log_->used_blocks(), used);
      EXPECT_EQ(log_->next_seq(), seq);
      EXPECT_TRUE(std::memcmp(before.data(), dev_->raw(), before.size()) == 0)
          << "a refused append wrote to the device";
      break;
    }
    ASSERT_TRUE(st.ok()) << Str(st);
    all.push_back(t);
    ++seq;
  }
  EXPECT_EQ(all.size(), 5u);
  EXPECT_EQ(log_->free_blocks(), 0u);
  // A smaller transaction does not fit either.
  EXPECT_TRUE(AppendTxn(log_.get(), MakeTxn(sb_, seq, 1)).IsNoSpace());
  ExpectTxns(Reopen(), all);
  // Freeing the two oldest makes room for exactly one more 4-block transaction.
  ASSERT_TRUE(log_->SetTail(12, 3, 0).ok());
  EXPECT_EQ(log_->free_blocks(), 12u);
  Txn a = MakeTxn(sb_, seq, 4), b = MakeTxn(sb_, seq + 1, 4), c = MakeTxn(sb_, seq + 2, 4);
  ASSERT_TRUE(AppendTxn(log_.get(), a).ok());
  ASSERT_TRUE(AppendTxn(log_.get(), b).ok());
  EXPECT_TRUE(AppendTxn(log_.get(), c).IsNoSpace());
  ExpectTxns(Reopen(), {all[2], all[3], all[4], a, b});
}

TEST_F(JournalLogTest, AppendArgumentChecks) {
  Init(512, 32);
  Txn t = MakeTxn(sb_, 2, 1);
  EXPECT_EQ(AppendTxn(log_.get(), t).code(), Status::InvalidArgument("").code());
  EXPECT_EQ(log_->Append(1, nullptr, 0).code(), Status::InvalidArgument("").code());
  // Larger than the whole log.
  Txn huge = MakeTxn(sb_, 1, log_->MaxTransactionBlocks() + 1);
  EXPECT_TRUE(AppendTxn(log_.get(), huge).IsNoSpace());
  ExpectTxns(Reopen(), {});
}

TEST_F(JournalLogTest, ReadErrorDuringScanIsIOError) {
  Init(512, 32);
  Append(MakeTxn(sb_, 1, 2));
  Append(MakeTxn(sb_, 2, 2));
  bool clean_run = false;
  for (std::uint64_t n = 1; n <= 20 && !clean_run; ++n) {
    block::FaultyBlockDevice faulty(dev_.get());
    block::BlockIo fio(&faulty, kBs);
    JournalLog log(&fio, sb_);
    faulty.FailNth(block::FaultOp::kRead, n, block::FaultMode::kTransient);
    Status st = log.Open();
    if (st.ok()) st = log.Scan(nullptr, nullptr, nullptr);
    if (faulty.faults_injected() == 0) {
      EXPECT_TRUE(st.ok()) << Str(st);
      // Two header slots, eight log blocks, and the block that ends the scan.
      EXPECT_EQ(n, 12u);
      clean_run = true;
      continue;
    }
    // A failed read never silently truncates the log.
    EXPECT_TRUE(st.IsIOError()) << "read #" << n << ": " << Str(st);
  }
  EXPECT_TRUE(clean_run);
}

// BlocksNeeded / MaxTransactionBlocks arithmetic, for many log sizes.
TEST(JournalLogArithmetic, BlocksNeededAndMaxTransaction) {
  block::MemBlockDevice dev(8192, kBs);
  block::BlockIo io(&dev, kBs);
  for (std::uint64_t jb : {16ull, 17ull, 32ull, 64ull, 100ull, 255ull, 256ull, 257ull, 300ull,
                           506ull, 507ull, 508ull, 509ull, 510ull, 760ull, 1000ull, 2048ull,
                           4096ull}) {
    testutil::VolumeOptions o;
    o.journal_blocks = jb;
    auto sb = testutil::MakeSuperblock(8192, o);
    ASSERT_TRUE(sb.ok()) << jb;
    JournalLog log(&io, *sb);
    const std::uint64_t L = jb - 2;
    EXPECT_EQ(log.log_blocks(), L);
    EXPECT_EQ(log.BlocksNeeded(1), 3u);
    EXPECT_EQ(log.BlocksNeeded(kCap), kCap + 2);
    EXPECT_EQ(log.BlocksNeeded(kCap + 1), kCap + 4);
    EXPECT_EQ(log.BlocksNeeded(3 * kCap), 3 * kCap + 4);
    const std::uint64_t m = log.MaxTransactionBlocks();
    EXPECT_LE(log.BlocksNeeded(m), L) << "journal_blocks " << jb;
    EXPECT_GT(log.BlocksNeeded(m + 1), L) << "journal_blocks " << jb << ": " << m
                                          << " is not the largest transaction that fits";
  }
  // The largest transaction really fits an empty log, and round-trips.
  testutil::VolumeOptions o;
  o.journal_blocks = 300;
  auto sb = testutil::MakeSuperblock(8192, o);
  JournalLog log(&io, *sb);
  ASSERT_TRUE(log.Format().ok());
  Txn t = MakeTxn(*sb, 1, log.MaxTransactionBlocks());
  ASSERT_TRUE(AppendTxn(&log, t).ok());
  JournalLog again(&io, *sb);
  ASSERT_TRUE(again.Open().ok());
  std::vector<Txn> got;
  ASSERT_TRUE(again.Scan(&Collect, &got, nullptr).ok());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].homes, t.homes);
}

}  // namespace
}  // namespace permfs::journal
