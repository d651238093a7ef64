#include "util/sha256.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstdint>
#include <string>
#include <vector>

#include "util/random.h"

namespace permfs {
namespace {

std::string Hex(const Sha256Digest& d) {
  char buf[65];
  ToHex(d, buf);
  return std::string(buf);
}

Sha256Digest OpenSslSha256(const void* data, std::size_t n) {
  Sha256Digest d;
  unsigned int len = 0;
  EXPECT_EQ(EVP_Digest(data, n, d.bytes, &len, EVP_sha256(), nullptr), 1);
  EXPECT_EQ(len, 32u);
  return d;
}

struct Vector {
  std::string msg;
  const char* hex;
};

TEST(Sha256Test, FipsVectors) {
  const Vector vectors[] = {
      {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
      {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopq"
       "rlmnopqrsmnopqrstnopqrstu",
       "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
      {std::string(1000000, 'a'),
       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
  };
  for (const auto& v : vectors) {
    EXPECT_EQ(Hex(Sha256PortableOneShot(v.msg.data(), v.msg.size())), v.hex);
    EXPECT_EQ(Hex(Sha256(v.msg.data(), v.msg.size())), v.hex);
    // Byte-at-a-time updates exercise the buffering path.
    Sha256Portable s;
    for (char c : v.msg) s.Update(&c, 1);
    EXPECT_EQ(Hex(s.Finish()), v.hex);
  }
}

TEST(Sha256Test, FinishResets) {
  Sha256Portable s;
  s.Update("junk", 4);
  (void)s.Finish();
  s.Update("abc", 3);
  EXPECT_EQ(Hex(s.Finish()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hex(s.Finish()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256Test, DigestEquality) {
  Sha256Digest a = Sha256("x", 1);
  Sha256Digest b = Sha256("x", 1);
  Sha256Digest c = Sha256("y", 1);
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a == c);
  EXPECT_TRUE(a != c);
}

// Hashes `data` with the portable implementation in random-sized Update() pieces.
Sha256Digest PortableInPieces(const std::vector<std::uint8_t>& data, Random* rnd,
                              std::uint32_t max_piece) {
  Sha256Portable s;
  std::size_t pos = 0;
  while (pos < data.size()) {
    std::size_t len = rnd->Uniform(max_piece + 1);
    if (len > data.size() - pos) len = data.size() - pos;
    s.Update(data.data() + pos, len);
    pos += len;
  }
  return s.Finish();
}

TEST(Sha256Test, PortableMatchesOpenSslSmall) {
  Random rnd(42);
  for (std::size_t len = 0; len <= 2000; ++len) {
    std::vector<std::uint8_t> data(len);
    rnd.Fill(data.data(), len);
    const Sha256Digest want = OpenSslSha256(data.data(), len);
    ASSERT_EQ(Sha256PortableOneShot(data.data(), len), want) << len;
    ASSERT_EQ(PortableInPieces(data, &rnd, 150), want) << len;
    ASSERT_EQ(Sha256(data.data(), len), want) << len;
  }
}

TEST(Sha256Test, PortableMatchesOpenSslLarge) {
  Random rnd(43);
  for (std::size_t len : {1u << 20, (3u << 20) + 17, 5u << 20}) {
    std::vector<std::uint8_t> data(len);
    rnd.Fill(data.data(), len);
    const Sha256Digest want = OpenSslSha256(data.data(), len);
    EXPECT_EQ(Sha256PortableOneShot(data.data(), len), want) << len;
    EXPECT_EQ(PortableInPieces(data, &rnd, 100000), want) << len;
  }
}

}  // namespace
}  // namespace permfs
