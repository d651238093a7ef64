// OpenBlockDevice: opens an image file or block device with the right backend, for tools.
//
// kAuto picks the io_uring backend (O_DIRECT) for block devices and the synchronous file backend
// for regular files (and for paths that do not exist yet and get created). See
// file_block_device.h and uring_block_device.h for the option semantics and error codes.
// Thread-safety: a free function; safe to call concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "block/block_device.h"
#include "util/result.h"

namespace permfs::hosted {

enum class Backend : std::uint8_t { kAuto, kFile, kUring };

struct OpenOptions {
  std::uint32_t block_size = 4096;
  std::uint64_t create_size_bytes = 0;
  bool read_only = false;
  bool exclusive = true;
  Backend backend = Backend::kAuto;
  std::uint32_t queue_depth = 64;  // io_uring only
};

Result<std::unique_ptr<block::BlockDevice>> OpenBlockDevice(const std::string& path,
                                                            const OpenOptions& options);

}  // namespace permfs::hosted
