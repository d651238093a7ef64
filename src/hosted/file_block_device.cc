#include "hosted/file_block_device.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <new>

namespace permfs::hosted {

namespace internal {

Status ErrnoStatus(int err, const char* msg) {
  if (err == ENOSPC || err == EDQUOT) return Status::NoSpace(msg);
  if (err == EROFS) return Status::ReadOnly(msg);
  return StatusFromErrno(err, msg);
}

Status PreadFull(int fd, void* buf, std::size_t len, std::uint64_t off) {
  auto* p = static_cast<std::uint8_t*>(buf);
  while (len > 0) {
    ssize_t n = pread(fd, p, len, static_cast<off_t>(off));
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return ErrnoStatus(errno, "file device: read failed");
    }
    if (n == 0) return Status::IOError("file device: read past the end of the image");
    p += n;
    len -= static_cast<std::size_t>(n);
    off += static_cast<std::uint64_t>(n);
  }
  return Status();
}

Status PwriteFull(int fd, const void* buf, std::size_t len, std::uint64_t off) {
  const auto* p = static_cast<const std::uint8_t*>(buf);
  while (len > 0) {
    ssize_t n = pwrite(fd, p, len, static_cast<off_t>(off));
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return ErrnoStatus(errno, "file device: write failed");
    }
    if (n == 0) return Status::IOError("file device: write made no progress");
    p += n;
    len -= static_cast<std::size_t>(n);
    off += static_cast<std::uint64_t>(n);
  }
  return Status();
}

namespace {
Status WriteZerosSlow(int fd, std::uint64_t off, std::uint64_t len) {
  constexpr std::size_t kChunk = 1 << 20;
  void* z = nullptr;
  if (posix_memalign(&z, 4096, kChunk) != 0) return Status::NoMemory();
  memset(z, 0, kChunk);
  Status st;
  while (len > 0 && st.ok()) {
    std::size_t n = len < kChunk ? static_cast<std::size_t>(len) : kChunk;
    st = PwriteFull(fd, z, n, off);
    off += n;
    len -= n;
  }
  free(z);
  return st;
}
bool Unsupported(int err) { return err == EOPNOTSUPP || err == ENOTTY || err == ENOSYS || err == EINVAL; }
}  // namespace

Status DiscardRange(const HostImage& img, std::uint64_t off, std::uint64_t len) {
  int r;
  if (img.is_block_device) {
    std::uint64_t range[2] = {off, len};
    r = ioctl(img.fd, BLKDISCARD, &range);
  } else {
    do {
      r = fallocate(img.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off),
                    static_cast<off_t>(len));
    } while (r < 0 && errno == EINTR);
  }
  if (r == 0) return Status();
  // Discard is advisory: contents become unspecified either way.
  if (Unsupported(errno)) return Status();
  return ErrnoStatus(errno, "file device: discard failed");
}

Status ZeroRange(const HostImage& img, std::uint64_t off, std::uint64_t len) {
  int r;
  if (img.is_block_device) {
    std::uint64_t range[2] = {off, len};
    r = ioctl(img.fd, BLKZEROOUT, &range);
  } else {
    do {
      r = fallocate(img.fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off),
                    static_cast<off_t>(len));
    } while (r < 0 && errno == EINTR);
  }
  if (r == 0) return Status();
  if (Unsupported(errno)) return WriteZerosSlow(img.fd, off, len);
  return ErrnoStatus(errno, "file device: write-zeroes failed");
}

}  // namespace internal

using internal::ErrnoStatus;

Result<HostImage> OpenHostImage(const std::string& path, const FileOpenOptions& o,
                                int extra_flags) {
  const std::uint32_t bs = o.block_size;
  if (bs < 512 || bs > 65536 || (bs & (bs - 1)) != 0)
    return Status::InvalidArgument("block size must be a power of two in 512..65536");
  HostImage img;
  int flags = (o.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | extra_flags;
  struct stat st;
  bool exists = stat(path.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) return ErrnoStatus(errno, "cannot stat device path");
  if (exists && S_ISBLK(st.st_mode)) {
    img.is_block_device = true;
    if (o.exclusive && !o.read_only) flags |= O_EXCL;
  } else if (exists && !S_ISREG(st.st_mode)) {
    return Status::InvalidArgument("device path is neither a regular file nor a block device");
  }
  bool created = false;
  if (!exists) {
    if (o.create_size_bytes == 0) return Status::NotFound("device image does not exist");
    if (o.read_only) return Status::InvalidArgument("cannot create a read-only image");
    flags |= O_CREAT | O_EXCL;
    created = true;
  }
  int fd;
  do {
    fd = open(path.c_str(), flags, 0644);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    if (errno == EBUSY) return Status::Busy("device is in use (opened exclusively elsewhere)");
    if (errno == EEXIST) return Status::Busy("image was created concurrently by someone else");
    return ErrnoStatus(errno, "cannot open device path");
  }
  img.fd = fd;
  auto fail = [&](Status s) -> Result<HostImage> {
    close(fd);
    if (created) unlink(path.c_str());
    return s;
  };
  if (o.exclusive) {
    int r;
    do {
      r = flock(fd, (o.read_only ? LOCK_SH : LOCK_EX) | LOCK_NB);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
      created = false;  // not ours to delete
      if (errno == EWOULDBLOCK) return fail(Status::Busy("image is locked by another user"));
      return fail(ErrnoStatus(errno, "cannot lock image"));
    }
  }
  if (created && ftruncate(fd, static_cast<off_t>(o.create_size_bytes)) != 0)
    return fail(ErrnoStatus(errno, "cannot size new image"));
  if (img.is_block_device) {
    std::uint64_t size = 0;
    int lss = 0;
    unsigned int pss = 0;
    if (ioctl(fd, BLKGETSIZE64, &size) != 0) return fail(ErrnoStatus(errno, "BLKGETSIZE64 failed"));
    if (ioctl(fd, BLKSSZGET, &lss) != 0) return fail(ErrnoStatus(errno, "BLKSSZGET failed"));
    if (ioctl(fd, BLKPBSZGET, &pss) != 0) pss = static_cast<unsigned int>(lss);
    img.size_bytes = size;
    img.logical_sector = static_cast<std::uint32_t>(lss);
    img.physical_sector = pss;
    if (bs < img.logical_sector)
      return fail(Status::InvalidArgument("block size smaller than the device's sector size"));
  } else {
    struct stat fst;
    if (fstat(fd, &fst) != 0) return fail(ErrnoStatus(errno, "cannot stat image"));
    img.size_bytes = static_cast<std::uint64_t>(fst.st_size);
    img.physical_sector = static_cast<std::uint32_t>(fst.st_blksize);
  }
  if (img.size_bytes == 0) return fail(Status::InvalidArgument("device image is empty"));
  if (img.size_bytes % bs != 0)
    return fail(Status::InvalidArgument("device size is not a multiple of the block size"));
  return img;
}

Result<std::unique_ptr<FileBlockDevice>> FileBlockDevice::Open(const std::string& path,
                                                               const FileOpenOptions& options) {
  PERMFS_ASSIGN_OR_RETURN(HostImage img, OpenHostImage(path, options, 0));
  return std::unique_ptr<FileBlockDevice>(new FileBlockDevice(img, options));
}

FileBlockDevice::FileBlockDevice(HostImage img, const FileOpenOptions& o) : img_(img) {
  geo_.block_size = o.block_size;
  geo_.physical_block_size =
      img.physical_sector > o.block_size && img.physical_sector <= 65536 ? img.physical_sector
                                                                         : o.block_size;
  geo_.block_count = img.size_bytes / o.block_size;
  geo_.atomic_write_blocks = 1;
  geo_.max_transfer_blocks = 256;
  geo_.buffer_alignment = 1;
  geo_.queue_depth = 1;
  caps_.volatile_cache = true;
  caps_.fua = true;
  caps_.discard = true;
  caps_.write_zeroes = true;
  caps_.read_only = o.read_only;
  caps_.polled = false;
}

FileBlockDevice::~FileBlockDevice() {
  if (img_.fd >= 0) close(img_.fd);
}

Status FileBlockDevice::DoRead(block::Request* req) {
  return internal::PreadFull(img_.fd, req->data,
                             static_cast<std::size_t>(req->count) * geo_.block_size,
                             req->lba * geo_.block_size);
}

Status FileBlockDevice::DoWrite(block::Request* req) {
  const std::size_t len = static_cast<std::size_t>(req->count) * geo_.block_size;
  const std::uint64_t off = req->lba * geo_.block_size;
  if ((req->flags & block::kFua) == 0) return internal::PwriteFull(img_.fd, req->data, len, off);
  // FUA: pwritev2(RWF_DSYNC), looping over short writes; fall back to write + fdatasync.
  std::size_t done = 0;
  while (done < len) {
    struct iovec iov = {req->data + done, len - done};
    ssize_t n = pwritev2(img_.fd, &iov, 1, static_cast<off_t>(off + done), RWF_DSYNC);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      if (errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL) break;
      return ErrnoStatus(errno, "file device: FUA write failed");
    }
    if (n == 0) return Status::IOError("file device: write made no progress");
    done += static_cast<std::size_t>(n);
  }
  if (done == len) return Status();
  PERMFS_RETURN_IF_ERROR(internal::PwriteFull(img_.fd, req->data + done, len - done, off + done));
  if (fdatasync(img_.fd) != 0) return ErrnoStatus(errno, "file device: fdatasync failed");
  return Status();
}

void FileBlockDevice::Submit(block::Request* req) noexcept {
  Status st = CheckRequest(*req);
  if (st.ok()) {
    const std::uint64_t off = req->lba * geo_.block_size;
    const std::uint64_t len = static_cast<std::uint64_t>(req->count) * geo_.block_size;
    switch (req->op) {
      case block::Op::kRead:
        st = DoRead(req);
        break;
      case block::Op::kWrite:
        st = DoWrite(req);
        break;
      case block::Op::kFlush:
        if (fdatasync(img_.fd) != 0) st = ErrnoStatus(errno, "file device: fdatasync failed");
        break;
      case block::Op::kDiscard:
        st = internal::DiscardRange(img_, off, len);
        break;
      case block::Op::kWriteZeroes:
        st = internal::ZeroRange(img_, off, len);
        break;
    }
  }
  req->on_complete(req, st);
}

}  // namespace permfs::hosted
