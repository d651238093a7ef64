#include "block/block_device.h"

#include <atomic>

#include "util/sync.h"

namespace permfs::block {

BlockDevice::~BlockDevice() = default;

namespace {

// One waiter per synchronous call. Inline completions (memory device) never touch the condvar.
struct SyncWaiter {
  SyncWaiter() : cv(&mu) {}
  Mutex mu;
  CondVar cv;
  std::atomic<bool> done{false};
  Status status;
};

void SyncComplete(Request* req, Status st) {
  auto* w = static_cast<SyncWaiter*>(req->context);
  MutexLock l(&w->mu);
  w->status = st;
  w->done.store(true, std::memory_order_release);
  w->cv.Signal();
}

}  // namespace

Status BlockDevice::Execute(Request* req) noexcept {
  SyncWaiter w;
  req->on_complete = &SyncComplete;
  req->context = &w;
  Submit(req);
  if (capabilities().polled) {
    while (!w.done.load(std::memory_order_acquire)) Poll();
  }
  MutexLock l(&w.mu);
  while (!w.done.load(std::memory_order_acquire)) w.cv.Wait();
  return w.status;
}

Status BlockDevice::Read(std::uint64_t lba, std::uint32_t count, void* buf) noexcept {
  Request r;
  r.op = Op::kRead;
  r.lba = lba;
  r.count = count;
  r.data = static_cast<std::uint8_t*>(buf);
  return Execute(&r);
}

Status BlockDevice::Write(std::uint64_t lba, std::uint32_t count, const void* buf,
                          std::uint32_t flags) noexcept {
  Request r;
  r.op = Op::kWrite;
  r.flags = flags;
  r.lba = lba;
  r.count = count;
  r.data = static_cast<std::uint8_t*>(const_cast<void*>(buf));
  return Execute(&r);
}

Status BlockDevice::Flush() noexcept {
  Request r;
  r.op = Op::kFlush;
  return Execute(&r);
}

Status BlockDevice::Discard(std::uint64_t lba, std::uint32_t count) noexcept {
  Request r;
  r.op = Op::kDiscard;
  r.lba = lba;
  r.count = count;
  return Execute(&r);
}

Status BlockDevice::WriteZeroes(std::uint64_t lba, std::uint32_t count) noexcept {
  Request r;
  r.op = Op::kWriteZeroes;
  r.lba = lba;
  r.count = count;
  return Execute(&r);
}

Status BlockDevice::CheckRequest(const Request& req) const noexcept {
  const Geometry& g = geometry();
  switch (req.op) {
    case Op::kFlush:
      return Status();
    case Op::kRead:
    case Op::kWrite:
      if (req.data == nullptr) return Status::InvalidArgument("block request without a buffer");
      if (req.count > g.max_transfer_blocks)
        return Status::InvalidArgument("block request larger than max_transfer_blocks");
      break;
    case Op::kDiscard:
    case Op::kWriteZeroes:
      break;
    default:
      return Status::InvalidArgument("unknown block op");
  }
  if (req.count == 0) return Status::InvalidArgument("block request of zero blocks");
  if (req.lba >= g.block_count || req.count > g.block_count - req.lba)
    return Status::InvalidArgument("block request beyond the end of the device");
  if (req.op != Op::kRead && capabilities().read_only)
    return Status::ReadOnly("device is read-only");
  return Status();
}

}  // namespace permfs::block
