#include "block/block_io.h"

namespace permfs::block {

BlockIo::BlockIo(BlockDevice* dev, std::uint32_t fs_block_size) noexcept
    : dev_(dev), bs_(fs_block_size), ratio_(0) {
  std::uint32_t dbs = dev->geometry().block_size;
  if (dbs != 0 && fs_block_size >= dbs && fs_block_size % dbs == 0) ratio_ = fs_block_size / dbs;
}

std::uint64_t BlockIo::block_count() const noexcept {
  return ratio_ ? dev_->geometry().block_count / ratio_ : 0;
}

Status BlockIo::Transfer(Op op, std::uint64_t blockno, std::uint64_t count, std::uint8_t* buf,
                         std::uint32_t flags) const noexcept {
  if (!ratio_) return Status::InvalidArgument("device block size does not divide fs block size");
  if (blockno >= block_count() || count > block_count() - blockno)
    return Status::InvalidArgument("block range beyond the end of the volume");
  std::uint64_t max = dev_->geometry().max_transfer_blocks / ratio_;
  if (max == 0) max = 1;
  while (count > 0) {
    std::uint64_t n = count < max ? count : max;
    Request r;
    r.op = op;
    r.flags = flags;
    r.lba = blockno * ratio_;
    r.count = static_cast<std::uint32_t>(n * ratio_);
    r.data = buf;
    PERMFS_RETURN_IF_ERROR(dev_->Execute(&r));
    blockno += n;
    count -= n;
    if (buf) buf += n * bs_;
  }
  return Status();
}

Status BlockIo::Read(std::uint64_t blockno, std::uint64_t count, void* buf) const noexcept {
  return Transfer(Op::kRead, blockno, count, static_cast<std::uint8_t*>(buf), 0);
}

Status BlockIo::Write(std::uint64_t blockno, std::uint64_t count, const void* buf,
                      std::uint32_t flags) const noexcept {
  return Transfer(Op::kWrite, blockno, count,
                  static_cast<std::uint8_t*>(const_cast<void*>(buf)), flags);
}

Status BlockIo::Flush() const noexcept { return dev_->Flush(); }

Status BlockIo::Discard(std::uint64_t blockno, std::uint64_t count) const noexcept {
  if (!dev_->capabilities().discard) return Status();
  return Transfer(Op::kDiscard, blockno, count, nullptr, 0);
}

}  // namespace permfs::block
