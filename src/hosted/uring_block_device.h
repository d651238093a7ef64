// UringBlockDevice: an asynchronous BlockDevice over io_uring, with O_DIRECT on a raw block
// device or an image file.
//
// Submission: Submit() validates the request (CheckRequest: out-of-range, oversize (more than
// max_transfer_blocks = 256), zero-count, read-only refusals complete inline), then queues an
// SQE. At most `queue_depth` requests are in the kernel; more wait in a FIFO and are issued as
// slots free up. A completion thread reaps CQEs and calls on_complete (never inline for reads,
// writes and flushes). Short transfers and -EAGAIN/-EINTR are resubmitted for the remainder.
// Buffers that are not aligned to buffer_alignment (4096 when O_DIRECT is in use) go through an
// aligned bounce buffer.
// Flush = IORING_OP_FSYNC(DATASYNC) issued with IOSQE_IO_DRAIN, so it starts only after every
// SQE submitted before it has completed: it covers every write that completed before it (rule 2)
// and, more strongly, every write submitted before it.
// FUA = write with RWF_DSYNC. Discard / WriteZeroes run synchronously in Submit (fallocate for
// files, BLKDISCARD / BLKZEROOUT for block devices) and complete inline.
// If the filesystem refuses O_DIRECT (EINVAL), the image is opened buffered instead
// (direct_io() tells which).
// The destructor waits for every in-flight and queued request to complete, then joins the
// completion thread. Callers must not Submit() concurrently with destruction.
//
// Thread-safety: Submit() may be called from many threads at once, and from on_complete.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "block/block_device.h"
#include "hosted/file_block_device.h"
#include "util/result.h"

namespace permfs::hosted {

struct UringOpenOptions {
  std::uint32_t block_size = 4096;
  std::uint64_t create_size_bytes = 0;
  bool read_only = false;
  bool exclusive = true;
  std::uint32_t queue_depth = 64;
  bool direct = true;  // O_DIRECT (falls back to buffered if the filesystem refuses it)
};

class UringBlockDevice final : public block::BlockDevice {
 public:
  static Result<std::unique_ptr<UringBlockDevice>> Open(const std::string& path,
                                                        const UringOpenOptions& options);
  ~UringBlockDevice() override;

  const block::Geometry& geometry() const noexcept override;
  const block::Capabilities& capabilities() const noexcept override;
  void Submit(block::Request* req) noexcept override;

  bool direct_io() const noexcept;
  bool is_block_device() const noexcept;

 private:
  struct Impl;
  explicit UringBlockDevice(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace permfs::hosted
