#include "block/crash_state.h"

#include <utility>

#include "util/bytes.h"

namespace permfs::block {

namespace {

std::uint64_t SplitMix(std::uint64_t* state) {
  std::uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Deterministic stream for (seed, cut, n, salt).
std::uint64_t StreamSeed(std::uint64_t seed, std::uint64_t cut, std::uint64_t n,
                         std::uint64_t salt) {
  std::uint64_t s = seed ^ 0x5bd1e9955bd1e995ull;
  s = SplitMix(&s) ^ cut;
  s = SplitMix(&s) ^ n;
  s = SplitMix(&s) ^ salt;
  return SplitMix(&s);
}

class BitStream {
 public:
  explicit BitStream(std::uint64_t seed) : state_(seed) {}
  bool NextBit() {
    if (left_ == 0) {
      word_ = SplitMix(&state_);
      left_ = 64;
    }
    bool b = word_ & 1;
    word_ >>= 1;
    --left_;
    return b;
  }

 private:
  std::uint64_t state_;
  std::uint64_t word_ = 0;
  int left_ = 0;
};

void AppendDec(std::string* s, std::uint64_t v) {
  char buf[24];
  int n = 0;
  do {
    buf[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) s->push_back(buf[--n]);
}

void AppendHex(std::string* s, std::uint64_t v) {
  static const char kDigits[] = "0123456789abcdef";
  char buf[16];
  int n = 0;
  do {
    buf[n++] = kDigits[v & 15];
    v >>= 4;
  } while (v);
  s->append("0x");
  while (n) s->push_back(buf[--n]);
}

// Parses decimal or 0x-prefixed hex. Rejects empty strings, junk and overflow.
bool ParseU64(const std::string& s, std::uint64_t* out) {
  std::size_t i = 0;
  std::uint64_t base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    i = 2;
  }
  if (i >= s.size()) return false;
  std::uint64_t v = 0;
  for (; i < s.size(); ++i) {
    char c = s[i];
    std::uint64_t d;
    if (c >= '0' && c <= '9') d = static_cast<std::uint64_t>(c - '0');
    else if (base == 16 && c >= 'a' && c <= 'f') d = static_cast<std::uint64_t>(c - 'a' + 10);
    else if (base == 16 && c >= 'A' && c <= 'F') d = static_cast<std::uint64_t>(c - 'A' + 10);
    else return false;
    if (v > (~0ull - d) / base) return false;
    v = v * base + d;
  }
  *out = v;
  return true;
}

constexpr std::uint32_t kMaxFullBits = 20;

}  // namespace

CrashStateEnumerator::CrashStateEnumerator(std::vector<std::uint8_t> base,
                                           std::uint32_t block_size,
                                           const std::vector<TraceEntry>& trace,
                                           CrashStateOptions options)
    : base_(std::move(base)), block_size_(block_size), trace_(trace), opt_(options) {
  if (opt_.full_subset_limit > kMaxFullBits) opt_.full_subset_limit = kMaxFullBits;
  if (opt_.torn_full_limit > kMaxFullBits) opt_.torn_full_limit = kMaxFullBits;
  if (opt_.atomic_write_blocks == 0) opt_.atomic_write_blocks = 1;
  const std::uint64_t n = trace_.size();
  if (block_size_ == 0 || base_.size() % block_size_ != 0) {
    status_ = Status::InvalidArgument("crash state: image size not a multiple of block size");
    return;
  }
  const std::uint64_t blocks = base_.size() / block_size_;
  for (std::uint64_t i = 0; i < n; ++i) {
    const TraceEntry& e = trace_[i];
    if (i > 0 && e.seq <= trace_[i - 1].seq) {
      status_ = Status::InvalidArgument("crash state: trace seqs not increasing");
      return;
    }
    if (!IsMutating(e)) continue;
    if (e.lba > blocks || e.count > blocks - e.lba) {
      status_ = Status::InvalidArgument("crash state: trace entry beyond the image");
      return;
    }
    if (e.op == TraceOp::kWrite &&
        e.data.size() != static_cast<std::uint64_t>(e.count) * block_size_) {
      status_ = Status::InvalidArgument("crash state: write data size mismatch");
      return;
    }
  }
  // Durable boundary per cut.
  boundary_.assign(n + 1, 0);
  prev_mark_.assign(n + 1, -1);
  std::uint64_t b = 0;
  std::int64_t last_mark = -1;
  for (std::uint64_t k = 0; k < n; ++k) {
    const TraceEntry& e = trace_[k];
    if (e.op == TraceOp::kFlush) {
      // First index whose seq >= flush_covers_seq (binary search; seqs are increasing).
      std::uint64_t lo = 0, hi = k;  // the flush covers at most the entries before itself
      while (lo < hi) {
        std::uint64_t mid = lo + (hi - lo) / 2;
        if (trace_[mid].seq < e.flush_covers_seq) lo = mid + 1;
        else hi = mid;
      }
      if (lo > b) b = lo;
    }
    if (e.op == TraceOp::kMark) last_mark = static_cast<std::int64_t>(k);
    boundary_[k + 1] = b;
    prev_mark_[k + 1] = last_mark;
  }
  // Cut points.
  switch (opt_.cut_points) {
    case CutPoints::kEveryOp: {
      auto extend = [&](std::uint64_t k) {
        while (k < n && trace_[k].op == TraceOp::kMark) ++k;
        return k;
      };
      cuts_.push_back(extend(0));
      for (std::uint64_t i = 0; i < n; ++i)
        if (trace_[i].op != TraceOp::kMark) cuts_.push_back(extend(i + 1));
      break;
    }
    case CutPoints::kMarks:
      for (std::uint64_t i = 0; i < n; ++i)
        if (trace_[i].op == TraceOp::kMark) cuts_.push_back(i + 1);
      break;
    case CutPoints::kFlushes:
      for (std::uint64_t i = 0; i < n; ++i)
        if (trace_[i].op == TraceOp::kFlush) cuts_.push_back(i);
      if (cuts_.empty() || cuts_.back() != n) cuts_.push_back(n);
      break;
  }
  durable_ = base_;
  if (opt_.prefixes) all_ = base_;
}

bool CrashStateEnumerator::IsMutating(const TraceEntry& e) const {
  return e.op == TraceOp::kWrite || e.op == TraceOp::kDiscard ||
         e.op == TraceOp::kWriteZeroes;
}

bool CrashStateEnumerator::IsDurableAlone(const TraceEntry& e) const {
  return (e.flags & kFua) != 0;
}

void CrashStateEnumerator::ApplyEntry(std::vector<std::uint8_t>* image,
                                      const TraceEntry& e) const {
  const std::size_t off = static_cast<std::size_t>(e.lba) * block_size_;
  const std::size_t len = static_cast<std::size_t>(e.count) * block_size_;
  switch (e.op) {
    case TraceOp::kWrite:
      CopyBytes(image->data() + off, e.data.data(), len);
      break;
    case TraceOp::kDiscard:
    case TraceOp::kWriteZeroes:
      FillBytes(image->data() + off, 0, len);
      break;
    default:
      break;
  }
}

CrashStateEnumerator::CutInfo CrashStateEnumerator::ComputeCut(std::uint64_t cut) const {
  CutInfo ci;
  ci.cut = cut;
  ci.boundary = boundary_[cut];
  for (std::uint64_t j = ci.boundary; j < cut; ++j) {
    const TraceEntry& e = trace_[j];
    if (!IsMutating(e)) continue;
    ci.post.push_back(j);
    if (!IsDurableAlone(e)) {
      ci.epoch.push_back(j);
      if (e.op == TraceOp::kWrite && e.count > opt_.atomic_write_blocks) {
        ci.torn_target = static_cast<std::int64_t>(j);
        ci.torn_units = (e.count + opt_.atomic_write_blocks - 1) / opt_.atomic_write_blocks;
      }
    }
  }
  return ci;
}

void CrashStateEnumerator::PlanCut(const CutInfo& ci, std::vector<Spec>* specs) const {
  specs->clear();
  const std::uint64_t seed = opt_.seed;
  if (opt_.prefixes) specs->push_back({Mode::kPrefix, 0, 0});
  const std::uint64_t e = ci.epoch.size();
  if (opt_.subsets && e > 0) {
    if (e <= opt_.full_subset_limit) {
      for (std::uint64_t m = 0; m < (1ull << e); ++m) specs->push_back({Mode::kSubset, m, 0});
    } else {
      for (std::uint64_t s = 0; s < opt_.max_subsets_per_cut; ++s)
        specs->push_back({Mode::kSample, s, seed});
      for (std::uint64_t i = 0; i < e; ++i) specs->push_back({Mode::kDrop, i, 0});
      for (std::uint64_t i = 0; i < e; ++i) specs->push_back({Mode::kKeep, i, 0});
    }
  }
  if (opt_.torn && ci.torn_target >= 0) {
    const std::uint32_t u = ci.torn_units;
    if (u <= opt_.torn_full_limit) {
      for (std::uint64_t m = 1; m + 1 < (1ull << u); ++m) specs->push_back({Mode::kTorn, m, 0});
    } else {
      for (std::uint64_t s = 0; s < opt_.torn_samples; ++s)
        specs->push_back({Mode::kTornSample, s, seed});
    }
    const std::uint64_t count = trace_[static_cast<std::uint64_t>(ci.torn_target)].count;
    const std::uint64_t gv = opt_.garbage_variants;
    if (count <= gv) {
      for (std::uint64_t blk = 0; blk < count; ++blk) specs->push_back({Mode::kGarbage, blk, seed});
    } else if (gv > 0) {
      std::uint64_t st = StreamSeed(seed, ci.cut, 0, 4);
      const std::uint64_t stride = count / gv;
      for (std::uint64_t j = 0; j < gv; ++j)
        specs->push_back({Mode::kGarbage, j * stride + SplitMix(&st) % stride, seed});
    }
  }
}

std::string CrashStateEnumerator::MakeId(std::uint64_t cut, const Spec& spec) const {
  std::string id = "cut=";
  AppendDec(&id, cut);
  switch (spec.mode) {
    case Mode::kPrefix:
      id += ":mode=prefix";
      break;
    case Mode::kSubset:
      id += ":mode=subset:mask=";
      AppendHex(&id, spec.param);
      break;
    case Mode::kSample:
      id += ":mode=sample:n=";
      AppendDec(&id, spec.param);
      id += ":seed=";
      AppendDec(&id, spec.seed);
      break;
    case Mode::kDrop:
      id += ":mode=drop:i=";
      AppendDec(&id, spec.param);
      break;
    case Mode::kKeep:
      id += ":mode=keep:i=";
      AppendDec(&id, spec.param);
      break;
    case Mode::kTorn:
      id += ":mode=torn:mask=";
      AppendHex(&id, spec.param);
      break;
    case Mode::kTornSample:
      id += ":mode=tornsample:n=";
      AppendDec(&id, spec.param);
      id += ":seed=";
      AppendDec(&id, spec.seed);
      break;
    case Mode::kGarbage:
      id += ":mode=garbage:blk=";
      AppendDec(&id, spec.param);
      id += ":seed=";
      AppendDec(&id, spec.seed);
      break;
  }
  return id;
}

Status CrashStateEnumerator::MakeState(const CutInfo& ci, const Spec& spec,
                                       const std::vector<std::uint8_t>& durable,
                                       const std::vector<std::uint8_t>* all,
                                       CrashState* out) const {
  const std::uint64_t e = ci.epoch.size();
  switch (spec.mode) {
    case Mode::kPrefix:
      break;
    case Mode::kSubset:
      if (e > kMaxFullBits || spec.param >= (1ull << e))
        return Status::InvalidArgument("crash state id: subset mask out of range");
      break;
    case Mode::kDrop:
    case Mode::kKeep:
      if (spec.param >= e) return Status::InvalidArgument("crash state id: index out of range");
      break;
    case Mode::kSample:
      break;
    case Mode::kTorn:
    case Mode::kTornSample:
    case Mode::kGarbage:
      if (ci.torn_target < 0)
        return Status::InvalidArgument("crash state id: no torn write at this cut");
      if (spec.mode == Mode::kTorn &&
          (ci.torn_units > kMaxFullBits || spec.param >= (1ull << ci.torn_units)))
        return Status::InvalidArgument("crash state id: torn mask out of range");
      if (spec.mode == Mode::kGarbage &&
          spec.param >= trace_[static_cast<std::uint64_t>(ci.torn_target)].count)
        return Status::InvalidArgument("crash state id: garbage block out of range");
      break;
  }

  out->cut = ci.cut;
  out->cut_seq = ci.cut > 0 ? trace_[ci.cut - 1].seq : 0;
  out->durable_prefix = ci.boundary;
  const std::uint64_t first_volatile = ci.epoch.empty() ? ci.cut : ci.epoch[0];
  out->marks_durable = prev_mark_[first_volatile];
  out->last_mark = prev_mark_[ci.cut];
  out->id = MakeId(ci.cut, spec);

  if (spec.mode == Mode::kPrefix && all != nullptr) {
    out->image = *all;
    return Status();
  }
  out->image = durable;
  std::vector<std::uint8_t>* img = &out->image;

  if (spec.mode == Mode::kTorn || spec.mode == Mode::kTornSample ||
      spec.mode == Mode::kGarbage) {
    const std::uint64_t target = static_cast<std::uint64_t>(ci.torn_target);
    for (std::uint64_t j : ci.post) {
      const TraceEntry& t = trace_[j];
      if (j < target || (j > target && IsDurableAlone(t))) {
        ApplyEntry(img, t);
        continue;
      }
      if (j > target) continue;
      const std::uint32_t unit = opt_.atomic_write_blocks;
      const std::size_t ub = static_cast<std::size_t>(unit) * block_size_;
      const std::size_t base_off = static_cast<std::size_t>(t.lba) * block_size_;
      if (spec.mode == Mode::kGarbage) {
        ApplyEntry(img, t);
        std::uint64_t st = StreamSeed(spec.seed, ci.cut, spec.param, 3);
        std::uint8_t* p = img->data() + base_off + spec.param * block_size_;
        for (std::uint32_t b = 0; b < block_size_; b += 8) {
          std::uint64_t r = SplitMix(&st);
          for (std::uint32_t k = 0; k < 8 && b + k < block_size_; ++k)
            p[b + k] = static_cast<std::uint8_t>(r >> (8 * k));
        }
        continue;
      }
      BitStream bits(StreamSeed(spec.seed, ci.cut, spec.param, 2));
      for (std::uint32_t u = 0; u < ci.torn_units; ++u) {
        bool take = spec.mode == Mode::kTorn ? ((spec.param >> u) & 1) != 0 : bits.NextBit();
        if (!take) continue;
        const std::size_t off = static_cast<std::size_t>(u) * ub;
        const std::size_t len = off + ub <= t.data.size() ? ub : t.data.size() - off;
        CopyBytes(img->data() + base_off + off, t.data.data() + off, len);
      }
    }
    return Status();
  }

  BitStream bits(StreamSeed(spec.seed, ci.cut, spec.param, 1));
  std::uint64_t ei = 0;  // index into the epoch
  for (std::uint64_t j : ci.post) {
    const TraceEntry& t = trace_[j];
    if (IsDurableAlone(t)) {
      ApplyEntry(img, t);
      continue;
    }
    bool take = true;
    switch (spec.mode) {
      case Mode::kSubset: take = ((spec.param >> ei) & 1) != 0; break;
      case Mode::kSample: take = bits.NextBit(); break;
      case Mode::kDrop: take = ei != spec.param; break;
      case Mode::kKeep: take = ei == spec.param; break;
      default: break;
    }
    ++ei;
    if (take) ApplyEntry(img, t);
  }
  return Status();
}

bool CrashStateEnumerator::Next(CrashState* out) {
  if (!status_.ok()) return false;
  while (true) {
    if (!cut_ready_) {
      if (cut_pos_ >= cuts_.size()) return false;
      const std::uint64_t cut = cuts_[cut_pos_];
      cur_ = ComputeCut(cut);
      for (; durable_upto_ < cur_.boundary; ++durable_upto_)
        ApplyEntry(&durable_, trace_[durable_upto_]);
      if (opt_.prefixes)
        for (; all_upto_ < cut; ++all_upto_) ApplyEntry(&all_, trace_[all_upto_]);
      PlanCut(cur_, &specs_);
      spec_pos_ = 0;
      cut_ready_ = true;
    }
    if (spec_pos_ >= specs_.size()) {
      cut_ready_ = false;
      ++cut_pos_;
      continue;
    }
    const Spec& spec = specs_[spec_pos_++];
    Status st = MakeState(cur_, spec, durable_, opt_.prefixes ? &all_ : nullptr, out);
    if (!st.ok()) continue;  // cannot happen for planned specs
    ++produced_;
    return true;
  }
}

Result<CrashState> CrashStateEnumerator::Build(const std::string& id) const {
  if (!status_.ok()) return status_;
  // Split "k=v:k=v:...".
  std::uint64_t cut = 0;
  bool have_cut = false;
  std::string mode;
  Spec spec;
  spec.seed = opt_.seed;
  bool have_param = false;
  std::size_t pos = 0;
  while (pos <= id.size()) {
    std::size_t end = id.find(':', pos);
    if (end == std::string::npos) end = id.size();
    const std::string tok = id.substr(pos, end - pos);
    const std::size_t eq = tok.find('=');
    if (eq == std::string::npos) return Status::InvalidArgument("crash state id: bad token");
    const std::string key = tok.substr(0, eq);
    const std::string val = tok.substr(eq + 1);
    std::uint64_t v = 0;
    if (key == "mode") {
      mode = val;
    } else {
      if (!ParseU64(val, &v)) return Status::InvalidArgument("crash state id: bad number");
      if (key == "cut") {
        cut = v;
        have_cut = true;
      } else if (key == "seed") {
        spec.seed = v;
      } else if (key == "mask" || key == "n" || key == "i" || key == "blk") {
        spec.param = v;
        have_param = true;
      } else {
        return Status::InvalidArgument("crash state id: unknown key");
      }
    }
    pos = end + 1;
  }
  if (!have_cut || cut > trace_.size())
    return Status::InvalidArgument("crash state id: missing or bad cut");
  if (mode == "prefix") spec.mode = Mode::kPrefix;
  else if (mode == "subset") spec.mode = Mode::kSubset;
  else if (mode == "sample") spec.mode = Mode::kSample;
  else if (mode == "drop") spec.mode = Mode::kDrop;
  else if (mode == "keep") spec.mode = Mode::kKeep;
  else if (mode == "torn") spec.mode = Mode::kTorn;
  else if (mode == "tornsample") spec.mode = Mode::kTornSample;
  else if (mode == "garbage") spec.mode = Mode::kGarbage;
  else return Status::InvalidArgument("crash state id: unknown mode");
  if (spec.mode != Mode::kPrefix && !have_param)
    return Status::InvalidArgument("crash state id: missing parameter");
  if (spec.mode != Mode::kSample && spec.mode != Mode::kTornSample &&
      spec.mode != Mode::kGarbage)
    spec.seed = 0;

  CutInfo ci = ComputeCut(cut);
  std::vector<std::uint8_t> durable = base_;
  for (std::uint64_t j = 0; j < ci.boundary; ++j) ApplyEntry(&durable, trace_[j]);
  CrashState out;
  Status st = MakeState(ci, spec, durable, nullptr, &out);
  if (!st.ok()) return st;
  return out;
}

}  // namespace permfs::block
