// Helpers shared by the MetaStore tests: recognisable test metadata blocks.
#pragma once

#include <cstdint>
#include <cstring>

#include "format/meta_block.h"
#include "journal/meta_store.h"
#include "util/coding.h"
#include "util/result.h"

namespace permfs::journal::testing {

inline constexpr std::uint64_t kTestOwner = 77;

inline format::Expect LeafAt(std::uint64_t b) {
  return format::Expect{format::BlockType::kBTreeLeaf, b, nullptr, true, kTestOwner};
}

// Payload: the 8-byte little-endian tag at offset 64, then (tag, block) mixed bytes to the end.
inline void FillPayload(std::uint8_t* blk, std::uint32_t bs, std::uint64_t b, std::uint64_t tag) {
  EncodeLE64(blk + format::kMetaHeaderSize, tag);
  std::uint64_t x = tag * 0x9E3779B97F4A7C15ull ^ (b << 20);
  for (std::uint32_t i = format::kMetaHeaderSize + 8; i < bs; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    EncodeLE64(blk + i, x);
  }
}

// The tag of a payload written by FillPayload, or ~0 if the pattern does not match.
inline std::uint64_t PayloadTag(const std::uint8_t* blk, std::uint32_t bs, std::uint64_t b) {
  std::uint64_t tag = DecodeLE64(blk + format::kMetaHeaderSize);
  std::uint64_t x = tag * 0x9E3779B97F4A7C15ull ^ (b << 20);
  for (std::uint32_t i = format::kMetaHeaderSize + 8; i < bs; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    if (DecodeLE64(blk + i) != x) return ~0ull;
  }
  return tag;
}

// Reads block b through a ReadView and returns its tag.
inline Result<std::uint64_t> ReadTag(MetaStore* ms, std::uint64_t b) {
  ReadView v(ms);
  auto r = v.Read(b, LeafAt(b));
  if (!r.ok()) return r.status();
  return PayloadTag(*r, ms->block_size(), b);
}

// Tag of the HOME copy on a raw image: ~0 unless the block is a valid sealed leaf for b.
inline std::uint64_t HomeTag(const std::uint8_t* image, std::uint32_t bs, std::uint64_t b,
                             const format::Uuid& uuid) {
  const std::uint8_t* blk = image + b * bs;
  format::Expect e{format::BlockType::kBTreeLeaf, b, &uuid, true, kTestOwner};
  if (!format::VerifyMetaBlock(blk, bs, e).ok()) return ~0ull;
  return PayloadTag(blk, bs, b);
}

}  // namespace permfs::journal::testing
