#include "block/block_addr.h"

#include "util/coding.h"

namespace permfs::block {

void BlockAddr::Encode(std::uint8_t out[kEncodedSize]) const noexcept {
  EncodeLE64(out, offset);
  EncodeLE64(out + 8, static_cast<std::uint64_t>(shard) | (static_cast<std::uint64_t>(volume) << 16));
  EncodeLE64(out + 16, node);
  EncodeLE64(out + 24, 0);
}

Result<BlockAddr> BlockAddr::Decode(const std::uint8_t in[kEncodedSize]) noexcept {
  BlockAddr a;
  a.offset = DecodeLE64(in);
  std::uint64_t w1 = DecodeLE64(in + 8);
  a.shard = static_cast<std::uint16_t>(w1 & 0xffff);
  a.volume = static_cast<std::uint32_t>((w1 >> 16) & 0xffffffffu);
  a.node = DecodeLE64(in + 16);
  if ((w1 >> 48) != 0 || DecodeLE64(in + 24) != 0)
    return Status::Corruption("block address has non-zero reserved bits");
  return a;
}

Status VolumeMap::Add(std::uint64_t node, std::uint32_t volume, BlockDevice* dev) noexcept {
  if (dev == nullptr || node == 0) return Status::InvalidArgument("bad volume registration");
  MutexLock l(&mu_);
  for (const Entry& e : entries_)
    if (e.node == node && e.volume == volume) return Status::Exists("volume already mapped");
  entries_.push_back(Entry{node, volume, dev});
  return Status();
}

Status VolumeMap::Remove(std::uint64_t node, std::uint32_t volume) noexcept {
  MutexLock l(&mu_);
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].node == node && entries_[i].volume == volume) {
      entries_[i] = entries_.back();
      entries_.pop_back();
      return Status();
    }
  }
  return Status::NotFound("volume not mapped");
}

Result<BlockDevice*> VolumeMap::Resolve(const BlockAddr& addr) const noexcept {
  if (addr.IsNull()) return Status::InvalidArgument("null block address");
  MutexLock l(&mu_);
  for (const Entry& e : entries_) {
    if (e.node == addr.node && e.volume == addr.volume) {
      if (addr.offset >= e.dev->block_count())
        return Status::Corruption("block address beyond the end of its volume");
      return e.dev;
    }
  }
  return Status(Code::kNoDevice, "block address names a volume this node does not serve");
}

}  // namespace permfs::block
