#include "block/recording_block_device.h"

#include <new>
#include <utility>

#include "util/bytes.h"
#include "util/coding.h"

namespace permfs::block {

namespace {

// Plain bitwise CRC-32 (IEEE, reflected). Traces are small and this is test tooling.
std::uint32_t TraceCrc32(const std::uint8_t* p, std::size_t n) {
  std::uint32_t crc = 0xffffffffu;
  for (std::size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

constexpr std::uint8_t kMagic[8] = {'P', 'F', 'T', 'R', 'A', 'C', 'E', '1'};
constexpr std::uint32_t kVersion = 1;

// Appends raw bytes (resize + copy: GCC 12 misreports vector::insert from small arrays).
void PutBytes(std::vector<std::uint8_t>* out, const void* p, std::size_t n) {
  const std::size_t at = out->size();
  out->resize(at + n);
  CopyBytes(out->data() + at, p, n);
}
void Put32(std::vector<std::uint8_t>* out, std::uint32_t v) {
  std::uint8_t b[4];
  EncodeLE32(b, v);
  PutBytes(out, b, 4);
}
void Put64(std::vector<std::uint8_t>* out, std::uint64_t v) {
  std::uint8_t b[8];
  EncodeLE64(b, v);
  PutBytes(out, b, 8);
}

class ByteReader {
 public:
  ByteReader(const std::uint8_t* p, std::size_t n) : p_(p), n_(n) {}
  bool Get8(std::uint8_t* v) {
    if (n_ - pos_ < 1) return false;
    *v = p_[pos_++];
    return true;
  }
  bool Get32(std::uint32_t* v) {
    if (n_ - pos_ < 4) return false;
    *v = DecodeLE32(p_ + pos_);
    pos_ += 4;
    return true;
  }
  bool Get64(std::uint64_t* v) {
    if (n_ - pos_ < 8) return false;
    *v = DecodeLE64(p_ + pos_);
    pos_ += 8;
    return true;
  }
  const std::uint8_t* GetBytes(std::size_t len) {
    if (n_ - pos_ < len) return nullptr;
    const std::uint8_t* r = p_ + pos_;
    pos_ += len;
    return r;
  }
  std::size_t remaining() const { return n_ - pos_; }

 private:
  const std::uint8_t* p_;
  std::size_t n_;
  std::size_t pos_ = 0;
};

}  // namespace

void SerializeTrace(const std::vector<TraceEntry>& trace, std::uint32_t block_size,
                    std::vector<std::uint8_t>* out) {
  out->clear();
  PutBytes(out, kMagic, 8);
  Put32(out, kVersion);
  Put32(out, block_size);
  Put64(out, trace.size());
  for (const TraceEntry& e : trace) {
    Put64(out, e.seq);
    out->push_back(static_cast<std::uint8_t>(e.op));
    Put32(out, e.flags);
    Put64(out, e.lba);
    Put32(out, e.count);
    Put64(out, e.flush_covers_seq);
    Put64(out, e.data.size());
    PutBytes(out, e.data.data(), e.data.size());
    Put32(out, static_cast<std::uint32_t>(e.mark.size()));
    PutBytes(out, e.mark.data(), e.mark.size());
  }
  Put32(out, TraceCrc32(out->data(), out->size()));
}

Status DeserializeTrace(const std::uint8_t* data, std::size_t len,
                        std::vector<TraceEntry>* trace, std::uint32_t* block_size) {
  if (data == nullptr || len < 8 + 4 + 4 + 8 + 4)
    return Status::Corruption("trace: too short");
  if (CompareBytes(data, kMagic, 8) != 0) return Status::Corruption("trace: bad magic");
  if (TraceCrc32(data, len - 4) != DecodeLE32(data + len - 4))
    return Status::Corruption("trace: CRC mismatch");
  ByteReader r(data + 8, len - 8 - 4);
  std::uint32_t version = 0, bs = 0;
  std::uint64_t n = 0;
  if (!r.Get32(&version) || !r.Get32(&bs) || !r.Get64(&n))
    return Status::Corruption("trace: truncated header");
  if (version != kVersion) return Status::Corruption("trace: unknown version");
  // Each entry takes at least 45 bytes: reject absurd counts before allocating.
  if (n > r.remaining() / 45) return Status::Corruption("trace: entry count too large");
  std::vector<TraceEntry> out;
  out.reserve(n);
  for (std::uint64_t i = 0; i < n; ++i) {
    TraceEntry e;
    std::uint8_t op = 0;
    std::uint64_t data_len = 0;
    std::uint32_t mark_len = 0;
    if (!r.Get64(&e.seq) || !r.Get8(&op) || !r.Get32(&e.flags) || !r.Get64(&e.lba) ||
        !r.Get32(&e.count) || !r.Get64(&e.flush_covers_seq) || !r.Get64(&data_len))
      return Status::Corruption("trace: truncated entry");
    if (op > static_cast<std::uint8_t>(TraceOp::kMark))
      return Status::Corruption("trace: unknown op");
    e.op = static_cast<TraceOp>(op);
    if (data_len > r.remaining()) return Status::Corruption("trace: truncated data");
    const std::uint8_t* d = r.GetBytes(static_cast<std::size_t>(data_len));
    if (d == nullptr) return Status::Corruption("trace: truncated data");
    e.data.assign(d, d + data_len);
    if (!r.Get32(&mark_len)) return Status::Corruption("trace: truncated entry");
    const std::uint8_t* m = r.GetBytes(mark_len);
    if (m == nullptr) return Status::Corruption("trace: truncated mark");
    e.mark.assign(reinterpret_cast<const char*>(m), mark_len);
    if (e.op == TraceOp::kWrite &&
        (bs == 0 || e.data.size() != static_cast<std::uint64_t>(e.count) * bs))
      return Status::Corruption("trace: write data size mismatch");
    if (!out.empty() && e.seq <= out.back().seq)
      return Status::Corruption("trace: sequence numbers not increasing");
    out.push_back(std::move(e));
  }
  if (r.remaining() != 0) return Status::Corruption("trace: trailing bytes");
  *trace = std::move(out);
  *block_size = bs;
  return Status();
}

struct RecordingBlockDevice::Pending {
  RecordingBlockDevice* dev;
  CompletionFn orig_fn;
  void* orig_ctx;
  std::uint64_t covers;  // next_seq_ at submission (flushes)
};

RecordingBlockDevice::RecordingBlockDevice(BlockDevice* inner, Options options)
    : inner_(inner), options_(options) {}

RecordingBlockDevice::~RecordingBlockDevice() = default;

void RecordingBlockDevice::Submit(Request* req) noexcept {
  if (req->op == Op::kRead && !options_.record_reads) {
    inner_->Submit(req);
    return;
  }
  auto* p = new (std::nothrow) Pending;
  if (p == nullptr) {
    req->on_complete(req, Status::NoMemory("recording device: no memory"));
    return;
  }
  p->dev = this;
  p->orig_fn = req->on_complete;
  p->orig_ctx = req->context;
  {
    MutexLock l(&mu_);
    p->covers = next_seq_;
  }
  req->on_complete = &RecordingBlockDevice::OnInnerComplete;
  req->context = p;
  inner_->Submit(req);
}

void RecordingBlockDevice::OnInnerComplete(Request* req, Status st) {
  auto* p = static_cast<Pending*>(req->context);
  req->on_complete = p->orig_fn;
  req->context = p->orig_ctx;
  RecordingBlockDevice* dev = p->dev;
  const std::uint64_t covers = p->covers;
  delete p;
  if (st.ok()) dev->Record(*req, covers);
  req->on_complete(req, st);
}

void RecordingBlockDevice::Record(const Request& req, std::uint64_t covers) {
  TraceEntry e;
  e.op = static_cast<TraceOp>(req.op);
  e.flags = req.flags;
  e.lba = req.lba;
  e.count = req.count;
  if (req.op == Op::kWrite) {
    const std::size_t len = static_cast<std::size_t>(req.count) * geometry().block_size;
    e.data.assign(req.data, req.data + len);
  }
  MutexLock l(&mu_);
  e.seq = next_seq_++;
  if (req.op == Op::kFlush) e.flush_covers_seq = covers;
  trace_.push_back(std::move(e));
}

void RecordingBlockDevice::Mark(const char* label) {
  TraceEntry e;
  e.op = TraceOp::kMark;
  e.mark = label ? label : "";
  MutexLock l(&mu_);
  e.seq = next_seq_++;
  trace_.push_back(std::move(e));
}

std::vector<TraceEntry> RecordingBlockDevice::TraceCopy() const {
  MutexLock l(&mu_);
  return trace_;
}

void RecordingBlockDevice::Clear() {
  MutexLock l(&mu_);
  trace_.clear();
}

std::vector<std::uint8_t> RecordingBlockDevice::Serialize() const {
  std::vector<std::uint8_t> out;
  MutexLock l(&mu_);
  SerializeTrace(trace_, geometry().block_size, &out);
  return out;
}

}  // namespace permfs::block
