#include "block/recording_block_device.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "block/mem_block_device.h"

namespace permfs::block {
namespace {

constexpr std::uint32_t kBs = 512;

std::vector<std::uint8_t> Fill(std::uint32_t blocks, std::uint8_t v) {
  return std::vector<std::uint8_t>(static_cast<std::size_t>(blocks) * kBs, v);
}

TEST(RecordingBlockDevice, RecordsCompletedOpsInOrder) {
  MemBlockDevice mem(16, kBs);
  RecordingBlockDevice rec(&mem);
  auto a = Fill(2, 0xaa);
  ASSERT_TRUE(rec.Write(3, 2, a.data()).ok());
  rec.Mark("after write");
  ASSERT_TRUE(rec.Flush().ok());
  auto b = Fill(1, 0xbb);
  ASSERT_TRUE(rec.Write(5, 1, b.data(), kFua).ok());
  ASSERT_TRUE(rec.Discard(8, 2).ok());
  ASSERT_TRUE(rec.WriteZeroes(10, 1).ok());
  std::vector<std::uint8_t> rd(kBs);
  ASSERT_TRUE(rec.Read(3, 1, rd.data()).ok());  // reads are not recorded by default
  EXPECT_EQ(rd[0], 0xaa);
  // Failed ops are not recorded.
  EXPECT_EQ(rec.Write(15, 2, a.data()).code(), Code::kInvalidArgument);

  const auto& t = rec.trace();
  ASSERT_EQ(t.size(), 6u);
  EXPECT_EQ(t[0].op, TraceOp::kWrite);
  EXPECT_EQ(t[0].lba, 3u);
  EXPECT_EQ(t[0].count, 2u);
  EXPECT_EQ(t[0].data, a);
  EXPECT_EQ(t[1].op, TraceOp::kMark);
  EXPECT_EQ(t[1].mark, "after write");
  EXPECT_EQ(t[2].op, TraceOp::kFlush);
  EXPECT_EQ(t[2].flush_covers_seq, 2u);  // covers seq 0 and 1
  EXPECT_EQ(t[3].op, TraceOp::kWrite);
  EXPECT_EQ(t[3].flags, kFua);
  EXPECT_EQ(t[4].op, TraceOp::kDiscard);
  EXPECT_TRUE(t[4].data.empty());
  EXPECT_EQ(t[5].op, TraceOp::kWriteZeroes);
  for (std::size_t i = 0; i < t.size(); ++i) EXPECT_EQ(t[i].seq, i);

  rec.Clear();
  EXPECT_TRUE(rec.trace().empty());
  ASSERT_TRUE(rec.Flush().ok());
  EXPECT_EQ(rec.trace()[0].seq, 6u);  // seqs keep increasing
}

TEST(RecordingBlockDevice, RecordsReadsWhenAsked) {
  MemBlockDevice mem(4, kBs);
  RecordingBlockDevice rec(&mem, RecordingBlockDevice::Options{.record_reads = true});
  std::vector<std::uint8_t> rd(kBs);
  ASSERT_TRUE(rec.Read(1, 1, rd.data()).ok());
  ASSERT_EQ(rec.trace().size(), 1u);
  EXPECT_EQ(rec.trace()[0].op, TraceOp::kRead);
  EXPECT_TRUE(rec.trace()[0].data.empty());
}

TEST(RecordingBlockDevice, ConcurrentWritersAllRecorded) {
  MemBlockDevice mem(64, kBs);
  RecordingBlockDevice rec(&mem);
  std::vector<std::thread> th;
  for (int t = 0; t < 4; ++t) {
    th.emplace_back([&rec, t] {
      auto d = Fill(1, static_cast<std::uint8_t>(t + 1));
      for (int i = 0; i < 100; ++i) {
        ASSERT_TRUE(rec.Write(static_cast<std::uint64_t>(t * 16 + i % 16), 1, d.data()).ok());
        if (i % 10 == 0) rec.Mark("m");
      }
    });
  }
  for (auto& x : th) x.join();
  EXPECT_EQ(rec.trace().size(), 440u);
  for (std::size_t i = 1; i < rec.trace().size(); ++i)
    EXPECT_LT(rec.trace()[i - 1].seq, rec.trace()[i].seq);
}

TEST(RecordingBlockDevice, SerializeRoundTrip) {
  MemBlockDevice mem(16, kBs);
  RecordingBlockDevice rec(&mem);
  auto a = Fill(3, 0x5a);
  a[7] = 1;
  ASSERT_TRUE(rec.Write(1, 3, a.data(), kFua).ok());
  rec.Mark("txn 17 durable");
  ASSERT_TRUE(rec.Flush().ok());
  ASSERT_TRUE(rec.Discard(4, 4).ok());
  std::vector<std::uint8_t> bytes = rec.Serialize();

  std::vector<TraceEntry> back;
  std::uint32_t bs = 0;
  ASSERT_TRUE(RecordingBlockDevice::Deserialize(bytes.data(), bytes.size(), &back, &bs).ok());
  EXPECT_EQ(bs, kBs);
  const auto& t = rec.trace();
  ASSERT_EQ(back.size(), t.size());
  for (std::size_t i = 0; i < t.size(); ++i) {
    EXPECT_EQ(back[i].seq, t[i].seq);
    EXPECT_EQ(back[i].op, t[i].op);
    EXPECT_EQ(back[i].flags, t[i].flags);
    EXPECT_EQ(back[i].lba, t[i].lba);
    EXPECT_EQ(back[i].count, t[i].count);
    EXPECT_EQ(back[i].flush_covers_seq, t[i].flush_covers_seq);
    EXPECT_EQ(back[i].data, t[i].data);
    EXPECT_EQ(back[i].mark, t[i].mark);
  }

  // Every single-byte corruption and every truncation is rejected, never crashes.
  for (std::size_t i = 0; i < bytes.size(); i += 7) {
    auto bad = bytes;
    bad[i] ^= 0x40;
    EXPECT_EQ(DeserializeTrace(bad.data(), bad.size(), &back, &bs).code(), Code::kCorruption);
  }
  for (std::size_t n = 0; n < bytes.size(); n += 5)
    EXPECT_EQ(DeserializeTrace(bytes.data(), n, &back, &bs).code(), Code::kCorruption);
}

}  // namespace
}  // namespace permfs::block
