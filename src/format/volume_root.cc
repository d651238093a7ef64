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

Result<VolumeRoot> VolumeRoot::DecodePayload(const std::uint8_t* b,
                                             std::size_t block_size) noexcept {
  VolumeRoot v;
  Reader r(b + kMetaHeaderSize, block_size - kMetaHeaderSize);
  for (std::uint64_t& c : v.counters) c = r.U64();
  for (TreeRoot& t : v.trees) {
    t.root_block = r.U64();
    t.root_generation = r.U64();
    t.height = r.U32();
    t.flags = r.U32();
    t.entries = r.U64();
    if (t.height > 32) return Status::Corruption("volume root: tree too tall");
    if ((t.height == 0) != (t.root_block == 0))
      return Status::Corruption("volume root: tree height and root disagree");
  }
  if (!r.ok()) return Status::Corruption("volume root: truncated");
  return v;
}

}  // namespace permfs::format
