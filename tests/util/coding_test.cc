#include "util/coding.h"

#include <gtest/gtest.h>

namespace permfs {
namespace {

TEST(CodingTest, RoundTripFixedWidth) {
  std::uint8_t buf[64];
  Writer w(buf, sizeof buf);
  w.U8(0xab);
  w.U16(0x1234);
  w.U32(0xdeadbeef);
  w.U64(0x0102030405060708ull);
  w.BE64(0x1122334455667788ull);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.size(), 1u + 2 + 4 + 8 + 8);
  EXPECT_EQ(buf[1], 0x34);  // little endian
  EXPECT_EQ(buf[15], 0x11);  // big endian key bytes
  Reader r(buf, w.size());
  EXPECT_EQ(r.U8(), 0xab);
  EXPECT_EQ(r.U16(), 0x1234);
  EXPECT_EQ(r.U32(), 0xdeadbeefu);
  EXPECT_EQ(r.U64(), 0x0102030405060708ull);
  EXPECT_EQ(r.BE64(), 0x1122334455667788ull);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(CodingTest, WriterOverflowIsSticky) {
  std::uint8_t buf[5];
  Writer w(buf, sizeof buf);
  w.U32(1);
  w.U32(2);  // does not fit
  EXPECT_FALSE(w.ok());
  w.U8(3);  // still refused after the first failure
  EXPECT_EQ(w.size(), 4u);
}

TEST(CodingTest, ReaderUnderflowReturnsZeroAndFlags) {
  std::uint8_t buf[3] = {1, 2, 3};
  Reader r(buf, sizeof buf);
  EXPECT_EQ(r.U16(), 0x0201);
  EXPECT_EQ(r.U32(), 0u);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.Take(1), nullptr);
}

TEST(CodingTest, BigEndianKeysSortLikeIntegers) {
  std::uint8_t a[8], b[8];
  EncodeBE64(a, 255);
  EncodeBE64(b, 256);
  EXPECT_LT(CompareBytes(a, b, 8), 0);
}

}  // namespace
}  // namespace permfs
