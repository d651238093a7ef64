#include "block/faulty_block_device.h"

#include <gtest/gtest.h>

#include <vector>

#include "block/mem_block_device.h"

namespace permfs::block {
namespace {

constexpr std::uint32_t kBs = 512;

class FaultyTest : public ::testing::Test {
 protected:
  FaultyTest() : mem_(32, kBs), dev_(&mem_), buf_(kBs, 0x11), rd_(kBs) {}
  Status W(std::uint64_t lba) { return dev_.Write(lba, 1, buf_.data()); }
  Status R(std::uint64_t lba) { return dev_.Read(lba, 1, rd_.data()); }
  std::uint8_t Raw(std::uint64_t lba) { return mem_.raw()[lba * kBs]; }

  MemBlockDevice mem_;
  FaultyBlockDevice dev_;
  std::vector<std::uint8_t> buf_;
  std::vector<std::uint8_t> rd_;
};

TEST_F(FaultyTest, FailNthTransient) {
  for (FaultOp op : {FaultOp::kRead, FaultOp::kWrite, FaultOp::kFlush}) {
    dev_.FailNth(op, 3, FaultMode::kTransient);
    auto call = [&] {
      switch (op) {
        case FaultOp::kRead: return R(0);
        case FaultOp::kWrite: return W(0);
        default: return dev_.Flush();
      }
    };
    EXPECT_TRUE(call().ok());
    EXPECT_TRUE(call().ok());
    EXPECT_EQ(call().code(), Code::kIOError);
    EXPECT_TRUE(call().ok());
    EXPECT_TRUE(call().ok());
  }
  EXPECT_EQ(dev_.faults_injected(), 3u);
  EXPECT_EQ(dev_.reads(), 5u);
  EXPECT_EQ(dev_.writes(), 5u);
  EXPECT_EQ(dev_.flushes(), 5u);
}

TEST_F(FaultyTest, FailNthPersistentAndOtherKindsUnaffected) {
  dev_.FailNth(FaultOp::kWrite, 2, FaultMode::kPersistent);
  buf_.assign(kBs, 0x22);
  EXPECT_TRUE(W(1).ok());
  EXPECT_EQ(W(2).code(), Code::kIOError);
  EXPECT_EQ(W(3).code(), Code::kIOError);
  EXPECT_EQ(dev_.WriteZeroes(4, 1).code(), Code::kIOError);
  EXPECT_TRUE(R(1).ok());
  EXPECT_TRUE(dev_.Flush().ok());
  EXPECT_EQ(Raw(1), 0x22);
  EXPECT_EQ(Raw(2), 0);  // failed writes are not forwarded
  dev_.ClearFaults();
  EXPECT_TRUE(W(2).ok());
  EXPECT_EQ(dev_.counters().io_errors, 3u);
}

TEST_F(FaultyTest, NoSpaceAfterBlocks) {
  std::vector<std::uint8_t> big(4 * kBs, 1);
  ASSERT_TRUE(dev_.Write(0, 4, big.data()).ok());  // before arming: not counted
  dev_.SetNoSpaceAfter(5);
  EXPECT_TRUE(dev_.Write(0, 4, big.data()).ok());
  EXPECT_EQ(dev_.Write(4, 2, big.data()).code(), Code::kNoSpace);
  EXPECT_TRUE(dev_.Write(4, 1, big.data()).ok());
  EXPECT_EQ(W(9).code(), Code::kNoSpace);
  EXPECT_TRUE(dev_.Discard(0, 4).ok());  // discards need no space
  EXPECT_TRUE(R(0).ok());
  EXPECT_EQ(dev_.counters().no_space, 2u);
}

TEST_F(FaultyTest, BitRotOnReads) {
  buf_.assign(kBs, 0);
  std::vector<std::uint8_t> two(2 * kBs, 0);
  ASSERT_TRUE(dev_.Write(4, 2, two.data()).ok());
  dev_.AddBitRot(5, 7, 0x81, FaultMode::kTransient);
  ASSERT_TRUE(R(4).ok());  // does not cover lba 5
  EXPECT_EQ(rd_[7], 0);
  ASSERT_TRUE(dev_.Read(4, 2, two.data()).ok());
  EXPECT_EQ(two[kBs + 7], 0x81);
  EXPECT_EQ(mem_.raw()[5 * kBs + 7], 0);  // the device itself is intact
  ASSERT_TRUE(R(5).ok());
  EXPECT_EQ(rd_[7], 0);  // transient: fired once

  dev_.AddBitRot(5, 0, 0x01, FaultMode::kPersistent);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(R(5).ok());
    EXPECT_EQ(rd_[0], 1);
  }
  EXPECT_EQ(dev_.counters().bit_rots, 4u);
}

TEST_F(FaultyTest, LostWrites) {
  dev_.LoseNthWrite(2, FaultMode::kTransient);
  buf_.assign(kBs, 0x33);
  EXPECT_TRUE(W(1).ok());
  EXPECT_TRUE(W(2).ok());
  EXPECT_TRUE(W(3).ok());
  EXPECT_EQ(Raw(1), 0x33);
  EXPECT_EQ(Raw(2), 0);
  EXPECT_EQ(Raw(3), 0x33);

  dev_.LoseWritesTo(7, FaultMode::kPersistent);
  std::vector<std::uint8_t> big(3 * kBs, 0x44);
  EXPECT_TRUE(dev_.Write(6, 3, big.data()).ok());  // covers lba 7: dropped entirely
  EXPECT_TRUE(W(7).ok());
  EXPECT_TRUE(W(8).ok());
  EXPECT_EQ(Raw(6), 0);
  EXPECT_EQ(Raw(7), 0);
  EXPECT_EQ(Raw(8), 0x33);

  dev_.LoseWritesTo(10, FaultMode::kTransient);
  EXPECT_TRUE(W(10).ok());
  EXPECT_EQ(Raw(10), 0);
  EXPECT_TRUE(W(10).ok());
  EXPECT_EQ(Raw(10), 0x33);
  EXPECT_EQ(dev_.counters().lost_writes, 4u);
}

TEST_F(FaultyTest, MisdirectedWrite) {
  EXPECT_EQ(dev_.MisdirectNthWrite(1, 32, FaultMode::kTransient).code(),
            Code::kInvalidArgument);
  ASSERT_TRUE(dev_.MisdirectNthWrite(2, 20, FaultMode::kTransient).ok());
  buf_.assign(kBs, 0x55);
  EXPECT_TRUE(W(1).ok());
  EXPECT_TRUE(W(2).ok());
  EXPECT_TRUE(W(3).ok());
  EXPECT_EQ(Raw(1), 0x55);
  EXPECT_EQ(Raw(2), 0);
  EXPECT_EQ(Raw(20), 0x55);
  EXPECT_EQ(Raw(3), 0x55);
  EXPECT_EQ(dev_.counters().misdirected_writes, 1u);

  ASSERT_TRUE(dev_.MisdirectNthWrite(1, 25, FaultMode::kPersistent).ok());
  buf_.assign(kBs, 0x66);
  EXPECT_TRUE(W(4).ok());
  EXPECT_TRUE(W(5).ok());
  EXPECT_EQ(Raw(4), 0);
  EXPECT_EQ(Raw(5), 0);
  EXPECT_EQ(Raw(25), 0x66);
}

TEST_F(FaultyTest, MalformedRequestsPassThrough) {
  dev_.FailNth(FaultOp::kWrite, 1, FaultMode::kTransient);
  EXPECT_EQ(dev_.Write(40, 1, buf_.data()).code(), Code::kInvalidArgument);
  EXPECT_EQ(W(0).code(), Code::kIOError);  // the malformed request did not count
}

}  // namespace
}  // namespace permfs::block
