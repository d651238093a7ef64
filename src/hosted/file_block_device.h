// FileBlockDevice: a synchronous BlockDevice over an image file or a block device node, using
// pread/pwrite (short I/O and EINTR handled), fdatasync for Flush, pwritev2(RWF_DSYNC) for FUA
// (fallback: pwrite + fdatasync), fallocate(PUNCH_HOLE) / BLKDISCARD for Discard and
// fallocate(ZERO_RANGE) / BLKZEROOUT for WriteZeroes (fallback: writing zeros).
//
// Every request completes inline, before Submit() returns. Errors: EIO and other device errors
// map to IOError, ENOSPC from the host filesystem to NoSpace, bad requests to InvalidArgument,
// writes to a read-only device to ReadOnly.
//
// Opening: `create_size_bytes` = 0 means the path must exist; otherwise a missing regular file
// is created SPARSE with that size (ftruncate). The size must be a multiple of block_size
// (InvalidArgument otherwise); block_size must be a power of two in 512..65536 and not smaller
// than a block device's logical sector size. `exclusive` takes a non-blocking flock (LOCK_EX when
// read-write, LOCK_SH when read-only; block devices are also opened O_EXCL when read-write), so
// two processes (or two opens in one process) cannot use one image read-write: the second
// Open() fails with Busy.
//
// Thread-safety: Submit() may be called from many threads at once (pread/pwrite are positional).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "block/block_device.h"
#include "util/result.h"

namespace permfs::hosted {

struct FileOpenOptions {
  std::uint32_t block_size = 4096;
  std::uint64_t create_size_bytes = 0;
  bool read_only = false;
  bool exclusive = true;
};

// An opened host file or block device (shared by the file and io_uring backends).
struct HostImage {
  int fd = -1;
  bool is_block_device = false;
  std::uint64_t size_bytes = 0;
  std::uint32_t logical_sector = 512;
  std::uint32_t physical_sector = 512;
};
// Opens, creates, locks and sizes `path` as described above. `extra_flags` are OR'ed into the
// open(2) flags (e.g. O_DIRECT). On error nothing stays open.
Result<HostImage> OpenHostImage(const std::string& path, const FileOpenOptions& options,
                                int extra_flags);

class FileBlockDevice final : public block::BlockDevice {
 public:
  static Result<std::unique_ptr<FileBlockDevice>> Open(const std::string& path,
                                                       const FileOpenOptions& options);
  ~FileBlockDevice() override;

  const block::Geometry& geometry() const noexcept override { return geo_; }
  const block::Capabilities& capabilities() const noexcept override { return caps_; }
  void Submit(block::Request* req) noexcept override;

  int fd() const noexcept { return img_.fd; }
  bool is_block_device() const noexcept { return img_.is_block_device; }

 private:
  FileBlockDevice(HostImage img, const FileOpenOptions& options);
  Status DoRead(block::Request* req);
  Status DoWrite(block::Request* req);
  Status DoDiscard(block::Request* req);
  Status DoWriteZeroes(block::Request* req);

  HostImage img_;
  block::Geometry geo_;
  block::Capabilities caps_;
};

// Helpers shared with the io_uring backend.
namespace internal {
Status ErrnoStatus(int err, const char* msg);
Status PreadFull(int fd, void* buf, std::size_t len, std::uint64_t off);
Status PwriteFull(int fd, const void* buf, std::size_t len, std::uint64_t off);
// Discard / zero a byte range synchronously (file: fallocate; device: ioctl; zeroing falls back
// to writing zeros).
Status DiscardRange(const HostImage& img, std::uint64_t off, std::uint64_t len);
Status ZeroRange(const HostImage& img, std::uint64_t off, std::uint64_t len);
}  // namespace internal

}  // namespace permfs::hosted
