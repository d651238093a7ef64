#include "util/crc32c.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "util/random.h"

namespace permfs {
namespace {

TEST(Crc32cTest, CheckValue) {
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(Crc32cPortable(0, "123456789", 9), 0xE3069283u);
  EXPECT_EQ(Crc32cHardware(0, "123456789", 9), 0xE3069283u);
  EXPECT_EQ(Crc32c(nullptr, 0), 0u);
}

TEST(Crc32cTest, Rfc3720Vectors) {
  std::uint8_t buf[32];
  std::memset(buf, 0, sizeof buf);
  EXPECT_EQ(Crc32c(buf, sizeof buf), 0x8A9136AAu);
  std::memset(buf, 0xff, sizeof buf);
  EXPECT_EQ(Crc32c(buf, sizeof buf), 0x62A8AB43u);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<std::uint8_t>(i);
  EXPECT_EQ(Crc32c(buf, sizeof buf), 0x46DD794Eu);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<std::uint8_t>(31 - i);
  EXPECT_EQ(Crc32c(buf, sizeof buf), 0x113FDB5Cu);
  // iSCSI SCSI Read(10) command PDU from RFC 3720 B.4.
  const std::uint8_t pdu[48] = {
      0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
      0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  EXPECT_EQ(Crc32c(pdu, sizeof pdu), 0xD9963A56u);
}

TEST(Crc32cTest, ExtendComposes) {
  Random rnd(1);
  std::vector<std::uint8_t> buf(100000);
  rnd.Fill(buf.data(), buf.size());
  const std::uint32_t whole = Crc32c(buf.data(), buf.size());
  for (std::size_t split : {0, 1, 7, 8, 9, 255, 4096, 50001, 99999, 100000}) {
    std::uint32_t c = Crc32c(buf.data(), split);
    EXPECT_EQ(Crc32cExtend(c, buf.data() + split, buf.size() - split), whole) << split;
    EXPECT_EQ(Crc32cPortable(Crc32cPortable(0, buf.data(), split), buf.data() + split,
                             buf.size() - split),
              whole);
  }
  // Many small pieces.
  std::uint32_t c = 0;
  std::size_t pos = 0;
  while (pos < buf.size()) {
    std::size_t len = rnd.Uniform(300);
    if (len > buf.size() - pos) len = buf.size() - pos;
    c = Crc32cExtend(c, buf.data() + pos, len);
    pos += len;
  }
  EXPECT_EQ(c, whole);
}

TEST(Crc32cTest, MaskRoundTrip) {
  const std::uint32_t c = Crc32c("foo", 3);
  EXPECT_NE(Crc32cMask(c), c);
  EXPECT_EQ(Crc32cUnmask(Crc32cMask(c)), c);
}

TEST(Crc32cTest, HardwareMatchesPortableAllLengthsAndAlignments) {
  if (!Crc32cHasHardware()) GTEST_SKIP() << "no SSE4.2";
  Random rnd(2);
  std::vector<std::uint8_t> buf(4096 + 16);
  rnd.Fill(buf.data(), buf.size());
  for (std::size_t align = 0; align < 16; ++align) {
    for (std::size_t len = 0; len <= 4096; ++len) {
      const std::uint8_t* p = buf.data() + align;
      const std::uint32_t seed = static_cast<std::uint32_t>(len * 2654435761u + align);
      const std::uint32_t sw = Crc32cPortable(seed, p, len);
      const std::uint32_t hw = Crc32cHardware(seed, p, len);
      if (sw != hw) {
        FAIL() << "mismatch at align " << align << " len " << len;
      }
    }
  }
}

TEST(Crc32cTest, HardwareMatchesPortableLargeBuffers) {
  if (!Crc32cHasHardware()) GTEST_SKIP() << "no SSE4.2";
  Random rnd(3);
  // Sizes straddle the 3*8192 and 3*256 stream block boundaries.
  for (std::size_t len : {24575, 24576, 24577, 49152 + 767, 1 << 20, (3 << 20) + 13,
                          (4 << 20) + 24576 * 3 + 777}) {
    std::vector<std::uint8_t> buf(len + 8);
    rnd.Fill(buf.data(), buf.size());
    for (std::size_t align : {0, 3}) {
      EXPECT_EQ(Crc32cPortable(0, buf.data() + align, len),
                Crc32cHardware(0, buf.data() + align, len))
          << len << " " << align;
    }
  }
  std::vector<std::uint8_t> zeros(1 << 20, 0);
  EXPECT_EQ(Crc32cPortable(0, zeros.data(), zeros.size()),
            Crc32cHardware(0, zeros.data(), zeros.size()));
}

TEST(Crc32cTest, DispatchMatchesPortable) {
  Random rnd(4);
  std::vector<std::uint8_t> buf(70000);
  rnd.Fill(buf.data(), buf.size());
  EXPECT_EQ(Crc32c(buf.data(), buf.size()), Crc32cPortable(0, buf.data(), buf.size()));
}

}  // namespace
}  // namespace permfs
