#include "alloc/allocator.h"

#include "format/volume_root.h"

#include "util/bytes.h"
#include "util/coding.h"
#include "util/log.h"

namespace permfs::alloc {

using format::BlockType;
using format::Expect;
using journal::WriteTxn;

namespace {

constexpr std::size_t kBitsOffset = format::kMetaHeaderSize + format::kBitmapPayloadHeader;

inline bool TestBit(const std::vector<std::uint64_t>& v, std::uint64_t i) {
  return (v[i >> 6] >> (i & 63)) & 1;
}
inline void SetBit(std::vector<std::uint64_t>& v, std::uint64_t i) { v[i >> 6] |= 1ull << (i & 63); }
inline void ClearBit(std::vector<std::uint64_t>& v, std::uint64_t i) {
  v[i >> 6] &= ~(1ull << (i & 63));
}
inline bool DiskBit(const std::uint8_t* blk, std::uint64_t i) {
  return (blk[kBitsOffset + (i >> 3)] >> (i & 7)) & 1;
}
inline void SetDiskBit(std::uint8_t* blk, std::uint64_t i, bool v) {
  std::uint8_t& b = blk[kBitsOffset + (i >> 3)];
  if (v) b = static_cast<std::uint8_t>(b | (1u << (i & 7)));
  else b = static_cast<std::uint8_t>(b & ~(1u << (i & 7)));
}

// One bitmap block's contribution to the volume root's bitmap digest (counter kCounterBitmapDigest):
// the XOR over all bitmap blocks of DigestTerm(blockno, generation). A bitmap block whose write
// was lost still carries an old generation, so the digest no longer matches at mount.
std::uint64_t DigestTerm(std::uint64_t blockno, std::uint64_t generation) {
  std::uint64_t z = blockno * 0x9E3779B97F4A7C15ull ^ (generation + 0x632BE59BD9B4E019ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

Status Allocator::XorDigest(WriteTxn& txn, std::uint64_t delta) noexcept {
  if (delta == 0) return Status();
  Expect ex{BlockType::kVolumeRoot, sb_.root_block, nullptr};
  PERMFS_ASSIGN_OR_RETURN(std::uint8_t * root, txn.Modify(sb_.root_block, ex));
  PERMFS_ASSIGN_OR_RETURN(format::VolumeRoot vr, format::VolumeRoot::DecodePayload(root, sb_.block_size));
  vr.counters[format::kCounterBitmapDigest] ^= delta;
  vr.EncodePayload(root, sb_.block_size);
  return Status();
}

struct Allocator::Shard {
  Mutex mu;
  std::vector<std::uint64_t> search;  // 1 = not available (used, reserved or pending free)
  std::uint64_t first = 0;            // first block of the shard
  std::uint64_t length = 0;           // blocks covered
  std::uint64_t avail = 0;            // zero bits in `search` within length
  std::uint64_t disk_free = 0;        // free blocks according to the on-disk bitmaps
  std::uint64_t cursor = 0;           // next-fit position
};

Allocator::Allocator(journal::MetaStore* ms, const format::Superblock& sb) noexcept
    : ms_(ms), sb_(sb) {
  shards_.reserve(sb.shard_count);
  for (std::uint32_t i = 0; i < sb.shard_count; ++i) {
    void* mem = port::Allocate(sizeof(Shard), alignof(Shard));
    if (!mem) PERMFS_PANIC("out of memory for allocator shards");
    Shard* s = new (mem) Shard();
    s->first = sb.shard_first_block(i);
    s->length = sb.shard_length(i);
    s->search.assign((sb.shard_blocks + 63) / 64, ~0ull);
    shards_.push_back(s);
  }
  // Reserve for space-freeing operations: 0.5% of the volume, at least 32 and at most 8192 blocks.
  reserve_blocks_ = sb.block_count / 200;
  if (reserve_blocks_ < 32) reserve_blocks_ = 32;
  if (reserve_blocks_ > 8192) reserve_blocks_ = 8192;
  ms_->AddCheckpointListener(this);
}

Allocator::~Allocator() {
  for (Shard* s : shards_) {
    s->~Shard();
    port::Deallocate(s, sizeof(Shard), alignof(Shard));
  }
}

bool Allocator::IsDataBlock(std::uint64_t b) const noexcept {
  if (b < sb_.shard_start || b >= sb_.block_count) return false;
  std::uint64_t rel = (b - sb_.shard_start) % sb_.shard_blocks;
  return rel >= sb_.bitmap_blocks_per_shard && b != sb_.mirror_block();
}

Status Allocator::Format() noexcept {
  const std::uint64_t bits = sb_.bits_per_bitmap_block();
  const std::uint32_t bpb = sb_.bitmap_blocks_per_shard;
  std::uint64_t batch = ms_->max_txn_blocks() / 2;
  if (batch == 0) batch = 1;
  for (std::uint32_t s = 0; s < sb_.shard_count;) {
    PERMFS_ASSIGN_OR_RETURN(WriteTxn txn, ms_->Begin());
    std::uint64_t in_txn = 0;
    std::uint64_t digest = 0;
    for (; s < sb_.shard_count && in_txn + bpb <= batch; ++s) {
      const std::uint64_t len = sb_.shard_length(s);
      const std::uint64_t first = sb_.shard_first_block(s);
      for (std::uint32_t k = 0; k < bpb; ++k) {
        PERMFS_ASSIGN_OR_RETURN(std::uint8_t * blk, txn.Create(BitmapBlock(s, k), BlockType::kBitmap, s));
        std::uint64_t free_count = 0;
        for (std::uint64_t i = 0; i < bits; ++i) {
          std::uint64_t rel = k * bits + i;
          bool used = rel < bpb || rel >= len || first + rel == sb_.mirror_block();
          SetDiskBit(blk, i, used);
          if (!used) ++free_count;
        }
        EncodeLE64(blk + format::kMetaHeaderSize, free_count);
        digest ^= DigestTerm(BitmapBlock(s, k), txn.seq());
        ++in_txn;
      }
    }
    PERMFS_RETURN_IF_ERROR(XorDigest(txn, digest));
    PERMFS_RETURN_IF_ERROR(txn.Commit());
    PERMFS_RETURN_IF_ERROR(ms_->Sync());
  }
  return Load();
}

Status Allocator::Load() noexcept {
  const std::uint64_t bits = sb_.bits_per_bitmap_block();
  const std::uint32_t bpb = sb_.bitmap_blocks_per_shard;
  journal::ReadView view(ms_);
  std::uint64_t digest = 0;
  for (std::uint32_t s = 0; s < sb_.shard_count; ++s) {
    Shard& sh = *shards_[s];
    MutexLock l(&sh.mu);
    sh.search.assign((sb_.shard_blocks + 63) / 64, ~0ull);
    sh.avail = 0;
    sh.disk_free = 0;
    sh.cursor = bpb;
    for (std::uint32_t k = 0; k < bpb; ++k) {
      const std::uint64_t bn = BitmapBlock(s, k);
      Expect ex{BlockType::kBitmap, bn, nullptr, true, s};
      PERMFS_ASSIGN_OR_RETURN(const std::uint8_t* blk, view.Read(bn, ex));
      digest ^= DigestTerm(bn, format::MetaGeneration(blk));
      std::uint64_t stored_free = DecodeLE64(blk + format::kMetaHeaderSize);
      std::uint64_t counted = 0;
      for (std::uint64_t i = 0; i < bits; ++i) {
        std::uint64_t rel = k * bits + i;
        bool used = DiskBit(blk, i);
        if (!used) {
          if (rel < bpb || rel >= sh.length)
            return Status::Corruption("bitmap marks a bitmap block or a block past the shard free");
          ++counted;
          ClearBit(sh.search, rel);
        }
      }
      if (counted != stored_free) return Status::Corruption("bitmap free count disagrees with its bits");
      const std::uint64_t mirror = sb_.mirror_block();
      if (mirror >= sh.first + k * bits && mirror < sh.first + (k + 1) * bits && mirror < sh.first + sh.length &&
          !DiskBit(blk, mirror - sh.first - k * bits))
        return Status::Corruption("bitmap marks the superblock mirror free");
      sh.avail += counted;
      sh.disk_free += counted;
    }
  }
  std::int64_t total_avail = 0;
  for (Shard* sh : shards_) {
    MutexLock l(&sh->mu);
    total_avail += static_cast<std::int64_t>(sh->avail);
  }
  avail_total_.store(total_avail, std::memory_order_relaxed);
  Expect rex{BlockType::kVolumeRoot, sb_.root_block, nullptr};
  PERMFS_ASSIGN_OR_RETURN(const std::uint8_t* root, view.Read(sb_.root_block, rex));
  PERMFS_ASSIGN_OR_RETURN(format::VolumeRoot vr, format::VolumeRoot::DecodePayload(root, sb_.block_size));
  if (vr.counters[format::kCounterBitmapDigest] != digest)
    return Status::Corruption("allocation bitmaps disagree with the volume root (lost bitmap write)");
  return Status();
}

bool Allocator::TryReserveInShard(Shard& s, std::uint32_t, std::uint64_t want,
                                  std::uint64_t min, std::uint64_t hint, Extent* out) noexcept {
  const std::uint64_t n = s.length;
  std::uint64_t p = (hint >= s.first && hint < s.first + n) ? hint - s.first : s.cursor;
  if (p >= n) p = 0;
  std::uint64_t scanned = 0, best_start = 0, best_len = 0;
  while (scanned < n) {
    if (p >= n) p = 0;
    if ((p & 63) == 0 && p + 64 <= n && s.search[p >> 6] == ~0ull) {
      p += 64;
      scanned += 64;
      continue;
    }
    if (TestBit(s.search, p)) {
      ++p;
      ++scanned;
      continue;
    }
    std::uint64_t start = p, len = 0;
    while (p < n && len < want) {
      if ((p & 63) == 0 && p + 64 <= n && len + 64 <= want && s.search[p >> 6] == 0) {
        p += 64;
        len += 64;
        continue;
      }
      if (TestBit(s.search, p)) break;
      ++p;
      ++len;
    }
    scanned += len;
    if (len >= want) {
      best_start = start;
      best_len = len;
      break;
    }
    if (len > best_len) {
      best_start = start;
      best_len = len;
    }
  }
  if (best_len < min || best_len == 0) return false;
  if (best_len > want) best_len = want;
  for (std::uint64_t i = 0; i < best_len; ++i) SetBit(s.search, best_start + i);
  s.avail -= best_len;
  avail_total_.fetch_sub(static_cast<std::int64_t>(best_len), std::memory_order_relaxed);
  s.cursor = best_start + best_len;
  *out = Extent{s.first + best_start, best_len};
  return true;
}

Result<Extent> Allocator::Reserve(std::uint64_t want, std::uint64_t min, std::uint64_t hint,
                                  Draw draw) noexcept {
  if (want == 0 || min == 0 || min > want) return Status::InvalidArgument("bad reservation size");
  if (draw != Draw::kPrivileged) {
    const std::int64_t avail = avail_total_.load(std::memory_order_relaxed);
    const std::int64_t floor = static_cast<std::int64_t>(reserve_blocks_);
    std::int64_t room = avail - floor;
    if (draw == Draw::kOrdinary) room -= promised_.load(std::memory_order_relaxed);
    if (room < static_cast<std::int64_t>(min)) return Status::NoSpace();
    if (room < static_cast<std::int64_t>(want)) want = static_cast<std::uint64_t>(room);
  }
  const std::uint32_t n = sb_.shard_count;
  std::uint32_t first;
  if (hint >= sb_.shard_start && hint < sb_.block_count) first = ShardOf(hint);
  else first = next_shard_.fetch_add(1, std::memory_order_relaxed) % n;
  for (std::uint32_t i = 0; i < n; ++i) {
    std::uint32_t idx = (first + i) % n;
    Shard& s = *shards_[idx];
    MutexLock l(&s.mu);
    if (s.avail < min) continue;
    Extent e;
    if (TryReserveInShard(s, idx, want, min, i == 0 ? hint : 0, &e)) return e;
  }
  return Status::NoSpace();
}

void Allocator::Unreserve(const Extent& e) noexcept {
  if (e.count == 0) return;
  Shard& s = *shards_[ShardOf(e.start)];
  MutexLock l(&s.mu);
  for (std::uint64_t b = e.start; b < e.end(); ++b) {
    PERMFS_ASSERT(TestBit(s.search, b - s.first));
    ClearBit(s.search, b - s.first);
  }
  // Next-fit resumes at the lowest block handed back, so space freed by checkpoints is reused
  // before never-written space: on a sparse image file or thin-provisioned storage a write into
  // never-written space costs the host an allocation and a metadata commit at every flush.
  if (e.start - s.first < s.cursor) s.cursor = e.start - s.first;
  s.avail += e.count;
  avail_total_.fetch_add(static_cast<std::int64_t>(e.count), std::memory_order_relaxed);
}

Status Allocator::UpdateDisk(WriteTxn& txn, const Extent& e, bool used) noexcept {
  const std::uint64_t bits = sb_.bits_per_bitmap_block();
  // Check every bit before changing any, so a refused request (double free / allocation) leaves
  // the bitmaps and their free counts untouched even if the caller commits anyway.
  for (std::uint64_t b = e.start; b < e.end();) {
    const std::uint32_t s = ShardOf(b);
    const std::uint64_t rel = b - sb_.shard_first_block(s);
    const std::uint64_t bn = BitmapBlock(s, static_cast<std::uint32_t>(rel / bits));
    Expect ex{BlockType::kBitmap, bn, nullptr, true, s};
    PERMFS_ASSIGN_OR_RETURN(const std::uint8_t* blk, txn.Read(bn, ex));
    for (std::uint64_t i = rel % bits; i < bits && b < e.end(); ++i, ++b) {
      if (DiskBit(blk, i) == used)
        return Status::Corruption(used ? "allocator: block already allocated"
                                       : "allocator: double free");
    }
  }
  std::uint64_t digest = 0;
  std::uint64_t b = e.start;
  while (b < e.end()) {
    const std::uint32_t s = ShardOf(b);
    const std::uint64_t rel = b - sb_.shard_first_block(s);
    const std::uint32_t k = static_cast<std::uint32_t>(rel / bits);
    const std::uint64_t bn = BitmapBlock(s, k);
    Expect ex{BlockType::kBitmap, bn, nullptr, true, s};
    PERMFS_ASSIGN_OR_RETURN(const std::uint8_t* before, txn.Read(bn, ex));
    const std::uint64_t old_gen = format::MetaGeneration(before);
    PERMFS_ASSIGN_OR_RETURN(std::uint8_t * blk, txn.Modify(bn, ex));
    const std::uint64_t new_gen = format::MetaGeneration(blk);
    if (old_gen != new_gen) digest ^= DigestTerm(bn, old_gen) ^ DigestTerm(bn, new_gen);
    std::uint64_t free_count = DecodeLE64(blk + format::kMetaHeaderSize);
    std::uint64_t i = rel % bits;
    for (; i < bits && b < e.end(); ++i, ++b) {
      if (DiskBit(blk, i) == used)
        return Status::Corruption(used ? "allocator: block already allocated"
                                       : "allocator: double free");
      SetDiskBit(blk, i, used);
      if (used) --free_count;
      else ++free_count;
    }
    EncodeLE64(blk + format::kMetaHeaderSize, free_count);
  }
  return XorDigest(txn, digest);
}

Status Allocator::CommitReserved(WriteTxn& txn, const Extent& e) noexcept {
  if (e.count == 0 || !IsDataBlock(e.start) || !IsDataBlock(e.end() - 1) ||
      ShardOf(e.start) != ShardOf(e.end() - 1))
    return Status::InvalidArgument("extent outside one shard's data area");
  PERMFS_RETURN_IF_ERROR(UpdateDisk(txn, e, true));
  Shard& s = *shards_[ShardOf(e.start)];
  {
    MutexLock l(&s.mu);
    s.disk_free -= e.count;
  }
  txn.AddUndo(&UndoCommit, this, e.start, e.count);
  return Status();
}

Result<Extent> Allocator::Allocate(WriteTxn& txn, std::uint64_t want, std::uint64_t min,
                                   std::uint64_t hint) noexcept {
  const Draw draw = txn.use_reserve()    ? Draw::kPrivileged
                    : txn.use_promised() ? Draw::kPromised
                                         : Draw::kOrdinary;
  PERMFS_ASSIGN_OR_RETURN(Extent e, Reserve(want, min, hint, draw));
  Status st = CommitReserved(txn, e);
  if (!st.ok()) {
    Unreserve(e);
    return st;
  }
  txn.AddUndo(&UndoAllocate, this, e.start, e.count);
  return e;
}

Status Allocator::Free(WriteTxn& txn, const Extent& e) noexcept {
  if (e.count == 0) return Status();
  if (!IsDataBlock(e.start) || !IsDataBlock(e.end() - 1) ||
      ShardOf(e.start) != ShardOf(e.end() - 1))
    return Status::Corruption("freeing an extent outside one shard's data area");
  PERMFS_RETURN_IF_ERROR(UpdateDisk(txn, e, false));
  Shard& s = *shards_[ShardOf(e.start)];
  {
    MutexLock l(&s.mu);
    s.disk_free += e.count;
  }
  {
    MutexLock l(&pending_mu_);
    pending_.push_back(Pending{txn.seq(), e});
  }
  txn.AddUndo(&UndoFree, this, e.start, e.count);
  return Status();
}

void Allocator::UndoCommit(void* ctx, std::uint64_t start, std::uint64_t count) {
  auto* a = static_cast<Allocator*>(ctx);
  Shard& s = *a->shards_[a->ShardOf(start)];
  MutexLock l(&s.mu);
  s.disk_free += count;
}

void Allocator::UndoAllocate(void* ctx, std::uint64_t start, std::uint64_t count) {
  static_cast<Allocator*>(ctx)->Unreserve(Extent{start, count});
}

void Allocator::UndoFree(void* ctx, std::uint64_t start, std::uint64_t count) {
  auto* a = static_cast<Allocator*>(ctx);
  {
    Shard& s = *a->shards_[a->ShardOf(start)];
    MutexLock l(&s.mu);
    s.disk_free -= count;
  }
  MutexLock l(&a->pending_mu_);
  for (std::size_t i = a->pending_.size(); i-- > 0;) {
    if (a->pending_[i].extent == Extent{start, count}) {
      a->pending_[i] = a->pending_.back();
      a->pending_.pop_back();
      return;
    }
  }
  PERMFS_PANIC("allocator: undo of a free that is not pending");
}

void Allocator::OnCheckpointed(std::uint64_t seq) noexcept {
  std::vector<Extent> ready;
  {
    MutexLock l(&pending_mu_);
    for (std::size_t i = 0; i < pending_.size();) {
      if (pending_[i].seq <= seq) {
        ready.push_back(pending_[i].extent);
        pending_[i] = pending_.back();
        pending_.pop_back();
      } else {
        ++i;
      }
    }
  }
  for (const Extent& e : ready) Unreserve(e);
}

bool Allocator::Promise(std::uint64_t blocks) noexcept {
  if (blocks == 0) return true;
  const std::int64_t want = static_cast<std::int64_t>(blocks);
  std::int64_t cur = promised_.load(std::memory_order_relaxed);
  for (;;) {
    const std::int64_t free = avail_total_.load(std::memory_order_relaxed) -
                              static_cast<std::int64_t>(reserve_blocks_);
    if (free - cur < want) return false;
    if (promised_.compare_exchange_weak(cur, cur + want, std::memory_order_relaxed)) return true;
  }
}

void Allocator::Unpromise(std::uint64_t blocks) noexcept {
  const std::int64_t before =
      promised_.fetch_sub(static_cast<std::int64_t>(blocks), std::memory_order_relaxed);
  PERMFS_ASSERT(before >= static_cast<std::int64_t>(blocks));
}

std::uint64_t Allocator::unpromised_blocks() const noexcept {
  const std::int64_t n = avail_total_.load(std::memory_order_relaxed) -
                         static_cast<std::int64_t>(reserve_blocks_) -
                         promised_.load(std::memory_order_relaxed);
  return n > 0 ? static_cast<std::uint64_t>(n) : 0;
}

bool Allocator::HasPendingFrees() const noexcept {
  MutexLock l(&pending_mu_);
  return !pending_.empty();
}

AllocStats Allocator::stats() const noexcept {
  AllocStats st;
  for (Shard* s : shards_) {
    MutexLock l(&s->mu);
    st.total_blocks += s->length;
    st.free_blocks += s->disk_free;
    st.available_blocks += s->avail;
  }
  st.promised_blocks = static_cast<std::uint64_t>(promised_.load(std::memory_order_relaxed));
  MutexLock l(&pending_mu_);
  for (const Pending& p : pending_) st.pending_free_blocks += p.extent.count;
  return st;
}

}  // namespace permfs::alloc
