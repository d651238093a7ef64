#include "hosted/uring_block_device.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace permfs::hosted {

namespace {

constexpr std::uint32_t kDirectAlignment = 4096;

struct Op {
  block::Request* req = nullptr;
  std::uint8_t* buf = nullptr;  // what the kernel reads/writes (req->data or the bounce buffer)
  bool bounce = false;
  std::size_t len = 0;
  std::size_t done = 0;
  std::uint64_t off = 0;
  Op* next = nullptr;
};

}  // namespace

struct UringBlockDevice::Impl {
  HostImage img;
  block::Geometry geo;
  block::Capabilities caps;
  bool direct = false;
  io_uring ring;
  bool started = false;  // ring initialised and reaper running
  std::thread reaper;

  std::mutex mu;  // guards the SQ and everything below
  std::condition_variable idle;
  std::uint32_t inflight = 0;     // ops in the kernel
  std::uint64_t outstanding = 0;  // ops accepted and not yet completed
  Op* pend_head = nullptr;
  Op* pend_tail = nullptr;

  ~Impl() {
    if (!started) {
      if (img.fd >= 0) close(img.fd);
      return;
    }
    {
      std::unique_lock<std::mutex> l(mu);
      idle.wait(l, [&] { return outstanding == 0; });
      // Wake the reaper with a NOP whose user_data is null.
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      while (sqe == nullptr) {
        io_uring_submit(&ring);
        sqe = io_uring_get_sqe(&ring);
      }
      io_uring_prep_nop(sqe);
      io_uring_sqe_set_data(sqe, nullptr);
      io_uring_submit(&ring);
    }
    reaper.join();
    io_uring_queue_exit(&ring);
    close(img.fd);
  }

  // Queues `op`'s next SQE (its remaining bytes). Caller holds mu. Returns false if the ring
  // refused it.
  bool IssueLocked(Op* op) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (sqe == nullptr) {
      io_uring_submit(&ring);
      sqe = io_uring_get_sqe(&ring);
      if (sqe == nullptr) return false;
    }
    block::Request* r = op->req;
    switch (r->op) {
      case block::Op::kRead:
        io_uring_prep_read(sqe, img.fd, op->buf + op->done,
                           static_cast<unsigned>(op->len - op->done), op->off + op->done);
        break;
      case block::Op::kWrite:
        io_uring_prep_write(sqe, img.fd, op->buf + op->done,
                            static_cast<unsigned>(op->len - op->done), op->off + op->done);
        if (r->flags & block::kFua) sqe->rw_flags = RWF_DSYNC;
        break;
      default:  // kFlush
        io_uring_prep_fsync(sqe, img.fd, IORING_FSYNC_DATASYNC);
        sqe->flags |= IOSQE_IO_DRAIN;
        break;
    }
    io_uring_sqe_set_data(sqe, op);
    int ret;
    do {
      ret = io_uring_submit(&ring);
    } while (ret == -EINTR || ret == -EAGAIN);
    return ret >= 0;
  }

  // Completes `op` (caller does NOT hold mu), then frees a slot for a queued op.
  void Finish(Op* op, Status st) {
    block::Request* r = op->req;
    if (st.ok() && op->bounce && r->op == block::Op::kRead) memcpy(r->data, op->buf, op->len);
    if (op->bounce) free(op->buf);
    delete op;
    std::vector<Op*> failed;
    {
      std::lock_guard<std::mutex> l(mu);
      --inflight;
      StartQueuedLocked(&failed);
    }
    for (Op* f : failed) Finish(f, Status::IOError("io_uring: submission failed"));
    r->on_complete(r, st);
    std::lock_guard<std::mutex> l(mu);
    if (--outstanding == 0) idle.notify_all();
  }

  void StartQueuedLocked(std::vector<Op*>* failed) {
    while (pend_head != nullptr && inflight < geo.queue_depth) {
      Op* op = pend_head;
      pend_head = op->next;
      if (pend_head == nullptr) pend_tail = nullptr;
      ++inflight;
      if (!IssueLocked(op)) failed->push_back(op);
    }
  }

  void Reap() {
    while (true) {
      io_uring_cqe* cqe = nullptr;
      int ret = io_uring_wait_cqe(&ring, &cqe);
      if (ret == -EINTR || ret == -EAGAIN) continue;
      if (ret < 0) return;  // ring broken: nothing more will complete
      Op* op = static_cast<Op*>(io_uring_cqe_get_data(cqe));
      const int res = cqe->res;
      io_uring_cqe_seen(&ring, cqe);
      if (op == nullptr) return;  // shutdown NOP
      {
        // The submitting thread wrote `op` and its Request before issuing the SQE, and it issues
        // SQEs only while holding mu. The kernel's ring orders those writes before this CQE, but
        // that edge is invisible to the C++ memory model (and to ThreadSanitizer). Acquiring mu
        // once synchronises with that unlock and makes the hand-over explicit.
        std::lock_guard<std::mutex> l(mu);
      }
      Handle(op, res);
    }
  }

  void Handle(Op* op, int res) {
    const block::Op kind = op->req->op;
    if (res == -EAGAIN || res == -EINTR) {
      Reissue(op);
      return;
    }
    if (res < 0) {
      const int err = -res;
      const char* msg = kind == block::Op::kRead    ? "io_uring: read failed"
                        : kind == block::Op::kWrite ? "io_uring: write failed"
                                                    : "io_uring: flush failed";
      Finish(op, internal::ErrnoStatus(err, msg));
      return;
    }
    if (kind == block::Op::kFlush) {
      Finish(op, Status());
      return;
    }
    if (res == 0) {
      Finish(op, Status::IOError(kind == block::Op::kRead ? "io_uring: read past the end"
                                                          : "io_uring: write made no progress"));
      return;
    }
    op->done += static_cast<std::size_t>(res);
    if (op->done < op->len) {
      Reissue(op);
      return;
    }
    Finish(op, Status());
  }

  void Reissue(Op* op) {
    bool ok;
    {
      std::lock_guard<std::mutex> l(mu);
      ok = IssueLocked(op);
    }
    if (!ok) Finish(op, Status::IOError("io_uring: resubmission failed"));
  }
};

Result<std::unique_ptr<UringBlockDevice>> UringBlockDevice::Open(const std::string& path,
                                                                 const UringOpenOptions& o) {
  if (o.queue_depth == 0 || o.queue_depth > 4096)
    return Status::InvalidArgument("io_uring queue depth must be 1..4096");
  FileOpenOptions fo;
  fo.block_size = o.block_size;
  fo.create_size_bytes = o.create_size_bytes;
  fo.read_only = o.read_only;
  fo.exclusive = o.exclusive;
  bool direct = o.direct;
  Result<HostImage> img = OpenHostImage(path, fo, direct ? O_DIRECT : 0);
  if (!img.ok() && direct && img.status().code() == Code::kInvalidArgument) {
    // Some filesystems refuse O_DIRECT with EINVAL; retry buffered.
    Result<HostImage> buffered = OpenHostImage(path, fo, 0);
    if (buffered.ok()) {
      direct = false;
      img = std::move(buffered);
    }
  }
  if (!img.ok()) return img.status();

  auto impl = std::make_unique<Impl>();
  impl->img = img.value();
  impl->direct = direct;
  block::Geometry& g = impl->geo;
  g.block_size = o.block_size;
  g.physical_block_size = impl->img.physical_sector > o.block_size &&
                                  impl->img.physical_sector <= 65536
                              ? impl->img.physical_sector
                              : o.block_size;
  g.block_count = impl->img.size_bytes / o.block_size;
  g.atomic_write_blocks = 1;
  g.max_transfer_blocks = 256;
  g.buffer_alignment = direct ? kDirectAlignment : 1;
  g.queue_depth = o.queue_depth;
  block::Capabilities& c = impl->caps;
  c.volatile_cache = true;
  c.fua = true;
  c.discard = true;
  c.write_zeroes = true;
  c.read_only = o.read_only;
  c.polled = false;

  int ret = io_uring_queue_init(o.queue_depth, &impl->ring, 0);
  if (ret < 0) {
    return internal::ErrnoStatus(-ret, "io_uring_queue_init failed");
  }
  Impl* raw = impl.get();
  impl->reaper = std::thread([raw] { raw->Reap(); });
  impl->started = true;
  return std::unique_ptr<UringBlockDevice>(new UringBlockDevice(std::move(impl)));
}

UringBlockDevice::UringBlockDevice(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
UringBlockDevice::~UringBlockDevice() = default;

const block::Geometry& UringBlockDevice::geometry() const noexcept { return impl_->geo; }
const block::Capabilities& UringBlockDevice::capabilities() const noexcept {
  return impl_->caps;
}
bool UringBlockDevice::direct_io() const noexcept { return impl_->direct; }
bool UringBlockDevice::is_block_device() const noexcept { return impl_->img.is_block_device; }

void UringBlockDevice::Submit(block::Request* req) noexcept {
  Status st = CheckRequest(*req);
  if (!st.ok()) {
    req->on_complete(req, st);
    return;
  }
  Impl* im = impl_.get();
  const std::uint32_t bs = im->geo.block_size;
  if (req->op == block::Op::kDiscard || req->op == block::Op::kWriteZeroes) {
    const std::uint64_t off = req->lba * bs;
    const std::uint64_t len = static_cast<std::uint64_t>(req->count) * bs;
    st = req->op == block::Op::kDiscard ? internal::DiscardRange(im->img, off, len)
                                        : internal::ZeroRange(im->img, off, len);
    req->on_complete(req, st);
    return;
  }
  Op* op = new (std::nothrow) Op;
  if (op == nullptr) {
    req->on_complete(req, Status::NoMemory("io_uring: no memory"));
    return;
  }
  op->req = req;
  if (req->op != block::Op::kFlush) {
    op->len = static_cast<std::size_t>(req->count) * bs;
    op->off = req->lba * bs;
    op->buf = req->data;
    const std::uint32_t align = im->geo.buffer_alignment;
    if (align > 1 && reinterpret_cast<std::uintptr_t>(req->data) % align != 0) {
      void* b = nullptr;
      if (posix_memalign(&b, align, op->len) != 0) {
        delete op;
        req->on_complete(req, Status::NoMemory("io_uring: no memory for a bounce buffer"));
        return;
      }
      op->buf = static_cast<std::uint8_t*>(b);
      op->bounce = true;
      if (req->op == block::Op::kWrite) memcpy(op->buf, req->data, op->len);
    }
  }
  bool failed = false;
  {
    std::lock_guard<std::mutex> l(im->mu);
    ++im->outstanding;
    if (im->inflight < im->geo.queue_depth) {
      ++im->inflight;
      failed = !im->IssueLocked(op);
    } else {
      if (im->pend_tail) im->pend_tail->next = op;
      else im->pend_head = op;
      im->pend_tail = op;
    }
  }
  if (failed) im->Finish(op, Status::IOError("io_uring: submission failed"));
}

}  // namespace permfs::hosted
