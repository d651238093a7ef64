#include "block/mem_block_device.h"

#include "util/bytes.h"

namespace permfs::block {

namespace {
Geometry MemGeometry(std::uint64_t count, std::uint32_t bs) {
  Geometry g;
  g.block_size = bs;
  g.physical_block_size = bs;
  g.block_count = count;
  g.atomic_write_blocks = 1;
  g.max_transfer_blocks = 1u << 16;
  g.buffer_alignment = 1;
  g.queue_depth = 64;
  return g;
}
Capabilities MemCaps() {
  Capabilities c;
  c.volatile_cache = false;
  c.fua = true;
  c.discard = true;
  c.write_zeroes = true;
  return c;
}
}  // namespace

MemBlockDevice::MemBlockDevice(std::uint64_t block_count, std::uint32_t block_size)
    : geo_(MemGeometry(block_count, block_size)), caps_(MemCaps()),
      data_(block_count * block_size, 0) {}

MemBlockDevice::MemBlockDevice(std::vector<std::uint8_t> image, std::uint32_t block_size)
    : geo_(MemGeometry(image.size() / block_size, block_size)), caps_(MemCaps()),
      data_(std::move(image)) {
  data_.resize(geo_.block_count * block_size);
}

void MemBlockDevice::Submit(Request* req) noexcept {
  Status st = CheckRequest(*req);
  if (st.ok()) {
    const std::size_t off = req->lba * geo_.block_size;
    const std::size_t len = static_cast<std::size_t>(req->count) * geo_.block_size;
    MutexLock l(&mu_);
    switch (req->op) {
      case Op::kRead:
        CopyBytes(req->data, data_.data() + off, len);
        break;
      case Op::kWrite:
        CopyBytes(data_.data() + off, req->data, len);
        break;
      case Op::kDiscard:
      case Op::kWriteZeroes:
        FillBytes(data_.data() + off, 0, len);
        break;
      case Op::kFlush:
        break;
    }
  }
  req->on_complete(req, st);
}

std::vector<std::uint8_t> MemBlockDevice::Snapshot() const {
  MutexLock l(&mu_);
  return data_;
}

}  // namespace permfs::block
