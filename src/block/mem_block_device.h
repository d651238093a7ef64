// MemBlockDevice: a RAM-backed BlockDevice honouring the full contract (see block_device.h).
//
// Completes every request inline. Writes land in memory at once (a RAM device has no volatile
// cache to lose unless wrapped by a recording/crash device). Snapshot() copies the image, so a
// test can fork a device cheaply, like littlefs's emubd copy.
// Thread-safety: Submit may be called concurrently; requests on overlapping ranges are serialised
// by an internal lock.
#pragma once

#include <cstdint>
#include <vector>

#include "block/block_device.h"
#include "util/sync.h"

namespace permfs::block {

class MemBlockDevice final : public BlockDevice {
 public:
  MemBlockDevice(std::uint64_t block_count, std::uint32_t block_size = 4096);
  // Adopts an existing image (size must be a multiple of block_size).
  MemBlockDevice(std::vector<std::uint8_t> image, std::uint32_t block_size);

  const Geometry& geometry() const noexcept override { return geo_; }
  const Capabilities& capabilities() const noexcept override { return caps_; }
  void Submit(Request* req) noexcept override;

  // Copy of the whole image.
  std::vector<std::uint8_t> Snapshot() const;
  // Direct access for tests and fault injection (not synchronised with in-flight requests).
  std::uint8_t* raw() noexcept { return data_.data(); }
  std::size_t raw_size() const noexcept { return data_.size(); }
  void set_read_only(bool ro) noexcept { caps_.read_only = ro; }

 private:
  Geometry geo_;
  Capabilities caps_;
  mutable Mutex mu_;
  std::vector<std::uint8_t> data_;
};

}  // namespace permfs::block
