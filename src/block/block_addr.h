// BlockAddr: the 256-bit global address of a block, and the VolumeMap that resolves it.
//
// Encoded on disk as 32 bytes, four little-endian 64-bit words:
//   word 0: block offset within the volume, in filesystem blocks
//   word 1: bits 0..15 shard (allocation group), bits 16..47 volume id, bits 48..63 zero
//   word 2: node id (0 = "this node" is NOT allowed on disk; nodes are numbered from 1)
//   word 3: reserved, must be zero
// A null address (all zero) means "no block". Decode() rejects non-zero reserved bits.
//
// VolumeMap maps (node, volume) to a BlockDevice owned by this process. Resolving an address
// whose node or volume this process does not own is a clean NoDevice error, never a wild read.
// Thread-safety: BlockAddr is a value. VolumeMap: Add/Remove/Resolve are internally locked.
#pragma once

#include <cstdint>
#include <vector>

#include "block/block_device.h"
#include "util/result.h"
#include "util/sync.h"

namespace permfs::block {

struct BlockAddr {
  static constexpr std::size_t kEncodedSize = 32;

  std::uint64_t offset = 0;
  std::uint16_t shard = 0;
  std::uint32_t volume = 0;
  std::uint64_t node = 0;

  bool IsNull() const noexcept { return offset == 0 && shard == 0 && volume == 0 && node == 0; }

  void Encode(std::uint8_t out[kEncodedSize]) const noexcept;
  // Validates reserved bits; returns Corruption on a malformed address.
  static Result<BlockAddr> Decode(const std::uint8_t in[kEncodedSize]) noexcept;

  friend bool operator==(const BlockAddr&, const BlockAddr&) = default;
};

class VolumeMap {
 public:
  explicit VolumeMap(std::uint64_t local_node) : local_node_(local_node) {}

  std::uint64_t local_node() const noexcept { return local_node_; }

  // Registers a device for (node, volume). Exists if already registered.
  Status Add(std::uint64_t node, std::uint32_t volume, BlockDevice* dev) noexcept;
  Status Remove(std::uint64_t node, std::uint32_t volume) noexcept;

  // The device holding `addr`, after checking the offset is inside it.
  Result<BlockDevice*> Resolve(const BlockAddr& addr) const noexcept;

 private:
  struct Entry {
    std::uint64_t node;
    std::uint32_t volume;
    BlockDevice* dev;
  };
  const std::uint64_t local_node_;
  mutable Mutex mu_;
  std::vector<Entry> entries_ PERMFS_GUARDED_BY(mu_);
};

}  // namespace permfs::block
