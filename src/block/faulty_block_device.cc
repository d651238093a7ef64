#include "block/faulty_block_device.h"

#include <new>

namespace permfs::block {

struct FaultyBlockDevice::Pending {
  Request child;
  Request* parent = nullptr;
  bool rot = false;
  std::size_t rot_byte = 0;  // byte index within the parent's buffer
  std::uint8_t rot_mask = 0;
};

bool FaultyBlockDevice::NthTrigger::Fires(std::uint64_t count) {
  if (!armed || count < at) return false;
  if (mode == FaultMode::kTransient) {
    armed = false;
    return count == at;
  }
  return true;
}

FaultyBlockDevice::FaultyBlockDevice(BlockDevice* inner) : inner_(inner) {}
FaultyBlockDevice::~FaultyBlockDevice() = default;

void FaultyBlockDevice::FailNth(FaultOp op, std::uint64_t n, FaultMode mode) {
  MutexLock l(&mu_);
  const std::uint64_t base = op == FaultOp::kRead    ? c_.reads
                             : op == FaultOp::kWrite ? c_.writes
                                                     : c_.flushes;
  NthTrigger& t = fail_[static_cast<int>(op)];
  t.armed = true;
  t.mode = mode;
  t.at = base + (n == 0 ? 1 : n);
}

void FaultyBlockDevice::SetNoSpaceAfter(std::uint64_t blocks) {
  MutexLock l(&mu_);
  nospace_armed_ = true;
  nospace_limit_ = c_.blocks_written + blocks;
}

void FaultyBlockDevice::AddBitRot(std::uint64_t lba, std::uint32_t byte_offset,
                                  std::uint8_t xor_mask, FaultMode mode) {
  MutexLock l(&mu_);
  rot_.armed = true;
  rot_.mode = mode;
  rot_.lba = lba;
  rot_offset_ = byte_offset % geometry().block_size;
  rot_mask_ = xor_mask;
}

void FaultyBlockDevice::LoseWritesTo(std::uint64_t lba, FaultMode mode) {
  MutexLock l(&mu_);
  lose_lba_.armed = true;
  lose_lba_.mode = mode;
  lose_lba_.lba = lba;
}

void FaultyBlockDevice::LoseNthWrite(std::uint64_t n, FaultMode mode) {
  MutexLock l(&mu_);
  lose_nth_.armed = true;
  lose_nth_.mode = mode;
  lose_nth_.at = c_.writes + (n == 0 ? 1 : n);
}

Status FaultyBlockDevice::MisdirectNthWrite(std::uint64_t n, std::uint64_t target_lba,
                                            FaultMode mode) {
  if (target_lba >= geometry().block_count)
    return Status::InvalidArgument("misdirect target beyond the end of the device");
  MutexLock l(&mu_);
  misdirect_.armed = true;
  misdirect_.mode = mode;
  misdirect_.at = c_.writes + (n == 0 ? 1 : n);
  misdirect_lba_ = target_lba;
  return Status();
}

void FaultyBlockDevice::ClearFaults() {
  MutexLock l(&mu_);
  for (NthTrigger& t : fail_) t.armed = false;
  nospace_armed_ = false;
  rot_.armed = false;
  lose_lba_.armed = false;
  lose_nth_.armed = false;
  misdirect_.armed = false;
}

FaultCounters FaultyBlockDevice::counters() const {
  MutexLock l(&mu_);
  return c_;
}

void FaultyBlockDevice::Submit(Request* req) noexcept {
  // Malformed requests are the inner device's business: forward them untouched.
  if (!CheckRequest(*req).ok()) {
    inner_->Submit(req);
    return;
  }
  const bool is_write =
      req->op == Op::kWrite || req->op == Op::kDiscard || req->op == Op::kWriteZeroes;
  const bool covers_rot_candidate = req->op == Op::kRead;
  enum class Action { kForward, kFail, kNoSpace, kLose, kMisdirect, kRot } action =
      Action::kForward;
  std::uint64_t target = 0;
  std::size_t rot_byte = 0;
  std::uint8_t rot_mask = 0;
  {
    MutexLock l(&mu_);
    std::uint64_t count = 0;
    NthTrigger* fail = nullptr;
    switch (req->op) {
      case Op::kRead:
        count = ++c_.reads;
        fail = &fail_[0];
        break;
      case Op::kFlush:
        count = ++c_.flushes;
        fail = &fail_[2];
        break;
      default:
        count = ++c_.writes;
        fail = &fail_[1];
        break;
    }
    const bool covers_lose_lba = lose_lba_.armed && is_write && req->lba <= lose_lba_.lba &&
                                 lose_lba_.lba - req->lba < req->count;
    if (fail->Fires(count)) {
      action = Action::kFail;
      ++c_.io_errors;
    } else if (is_write && req->op != Op::kDiscard && nospace_armed_ &&
               c_.blocks_written + req->count > nospace_limit_) {
      action = Action::kNoSpace;
      ++c_.no_space;
    } else if (covers_lose_lba || (is_write && lose_nth_.Fires(count))) {
      if (covers_lose_lba && lose_lba_.mode == FaultMode::kTransient) lose_lba_.armed = false;
      action = Action::kLose;
      ++c_.lost_writes;
    } else if (is_write && misdirect_.Fires(count)) {
      target = misdirect_lba_;
      if (target >= geometry().block_count || req->count > geometry().block_count - target) {
        action = Action::kLose;
        ++c_.lost_writes;
      } else {
        action = Action::kMisdirect;
        ++c_.misdirected_writes;
      }
    } else if (covers_rot_candidate && rot_.armed && req->lba <= rot_.lba &&
               rot_.lba - req->lba < req->count) {
      if (rot_.mode == FaultMode::kTransient) rot_.armed = false;
      action = Action::kRot;
      rot_byte = static_cast<std::size_t>(rot_.lba - req->lba) * geometry().block_size +
                 rot_offset_;
      rot_mask = rot_mask_;
      ++c_.bit_rots;
    }
    if (action != Action::kForward) ++c_.faults_injected;
    if ((action == Action::kForward || action == Action::kMisdirect) &&
        (req->op == Op::kWrite || req->op == Op::kWriteZeroes))
      c_.blocks_written += req->count;
  }
  switch (action) {
    case Action::kForward:
      inner_->Submit(req);
      return;
    case Action::kFail:
      req->on_complete(req, Status::IOError("injected I/O error"));
      return;
    case Action::kNoSpace:
      req->on_complete(req, Status::NoSpace("injected: device full"));
      return;
    case Action::kLose:
      req->on_complete(req, Status());
      return;
    case Action::kMisdirect:
    case Action::kRot:
      break;
  }
  auto* p = new (std::nothrow) Pending;
  if (p == nullptr) {
    req->on_complete(req, Status::NoMemory("faulty device: no memory"));
    return;
  }
  p->parent = req;
  p->child.op = req->op;
  p->child.flags = req->flags;
  p->child.lba = action == Action::kMisdirect ? target : req->lba;
  p->child.count = req->count;
  p->child.data = req->data;
  p->child.on_complete = &FaultyBlockDevice::OnInnerComplete;
  p->child.context = p;
  p->rot = action == Action::kRot;
  p->rot_byte = rot_byte;
  p->rot_mask = rot_mask;
  inner_->Submit(&p->child);
}

void FaultyBlockDevice::OnInnerComplete(Request* child, Status st) {
  auto* p = static_cast<Pending*>(child->context);
  Request* parent = p->parent;
  if (st.ok() && p->rot) parent->data[p->rot_byte] ^= p->rot_mask;
  delete p;
  parent->on_complete(parent, st);
}

}  // namespace permfs::block
