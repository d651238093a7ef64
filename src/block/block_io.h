// BlockIo: filesystem-block addressing over a BlockDevice whose logical block may be smaller
// (e.g. 4 KiB filesystem blocks on a 512-byte-sector disk). Filesystem block n covers device
// blocks [n*k, (n+1)*k) with k = fs_block_size / device block size. Large transfers are split at
// the device's max_transfer_blocks.
// Thread-safety: as the underlying device (all methods may be called concurrently).
#pragma once

#include <cstdint>

#include "block/block_device.h"

namespace permfs::block {

class BlockIo {
 public:
  BlockIo(BlockDevice* dev, std::uint32_t fs_block_size) noexcept;

  // False when the device's block size does not divide fs_block_size.
  bool valid() const noexcept { return ratio_ != 0; }
  BlockDevice* device() const noexcept { return dev_; }
  std::uint32_t block_size() const noexcept { return bs_; }
  std::uint64_t block_count() const noexcept;
  bool needs_flush() const noexcept { return dev_->capabilities().volatile_cache; }

  Status Read(std::uint64_t blockno, std::uint64_t count, void* buf) const noexcept;
  Status Write(std::uint64_t blockno, std::uint64_t count, const void* buf,
               std::uint32_t flags = 0) const noexcept;
  Status Flush() const noexcept;
  Status Discard(std::uint64_t blockno, std::uint64_t count) const noexcept;

 private:
  Status Transfer(Op op, std::uint64_t blockno, std::uint64_t count, std::uint8_t* buf,
                  std::uint32_t flags) const noexcept;
  BlockDevice* dev_;
  std::uint32_t bs_;
  std::uint32_t ratio_;
};

}  // namespace permfs::block
