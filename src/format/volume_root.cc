#include "format/volume_root.h"

#include "util/coding.h"

namespace permfs::format {

void VolumeRoot::EncodePayload(std::uint8_t* b, std::size_t block_size) const noexcept {
  Writer w(b + kMetaHeaderSize, block_size - kMetaHeaderSize);
  for (std::uint64_t c : counters) w.U64(c);
  for (const TreeRoot& t : trees) {
    w.U64(t.root_block);
    w.U64(t.root_generation);
    w.U32(t.height);
    w.U32(t.flags);
    w.U64(t.entries);
  }
  w.Zeros(w.remaining());
}

namespace {

constexpr std::size_t kTreeRootSize = 32;
constexpr std::size_t kTreesOffset = kMetaHeaderSize + 8 * kRootCounters;
static_assert(kTreesOffset + kTreeRootSize * kMaxTrees <= 4096, "volume root fits the smallest block");

Status CheckTree(const TreeRoot& t) noexcept {
  if (t.height > 32) return Status::Corruption("volume root: tree too tall");
  if ((t.height == 0) != (t.root_block == 0))
    return Status::Corruption("volume root: tree height and root disagree");
  return Status();
}

}  // namespace

Result<VolumeRoot> VolumeRoot::DecodePayload(const std::uint8_t* b,
                                             std::size_t block_size) noexcept {
  if (block_size < kTreesOffset + kTreeRootSize * kMaxTrees)
    return Status::Corruption("volume root: truncated");
  VolumeRoot v;
  for (std::size_t i = 0; i < kRootCounters; ++i) v.counters[i] = DecodeCounter(b, i);
  for (std::size_t i = 0; i < kMaxTrees; ++i) {
    PERMFS_ASSIGN_OR_RETURN(v.trees[i], DecodeTree(b, i));
  }
  return v;
}

std::uint64_t VolumeRoot::DecodeCounter(const std::uint8_t* b, std::size_t idx) noexcept {
  return DecodeLE64(b + kMetaHeaderSize + 8 * idx);
}

void VolumeRoot::EncodeCounter(std::uint8_t* b, std::size_t idx, std::uint64_t value) noexcept {
  EncodeLE64(b + kMetaHeaderSize + 8 * idx, value);
}

Result<TreeRoot> VolumeRoot::DecodeTree(const std::uint8_t* b, std::size_t tree) noexcept {
  const std::uint8_t* p = b + kTreesOffset + kTreeRootSize * tree;
  TreeRoot t;
  t.root_block = DecodeLE64(p);
  t.root_generation = DecodeLE64(p + 8);
  t.height = DecodeLE32(p + 16);
  t.flags = DecodeLE32(p + 20);
  t.entries = DecodeLE64(p + 24);
  PERMFS_RETURN_IF_ERROR(CheckTree(t));
  return t;
}

void VolumeRoot::EncodeTree(std::uint8_t* b, std::size_t tree, const TreeRoot& t) noexcept {
  std::uint8_t* p = b + kTreesOffset + kTreeRootSize * tree;
  EncodeLE64(p, t.root_block);
  EncodeLE64(p + 8, t.root_generation);
  EncodeLE32(p + 16, t.height);
  EncodeLE32(p + 20, t.flags);
  EncodeLE64(p + 24, t.entries);
}

}  // namespace permfs::format
