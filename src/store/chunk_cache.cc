#include "store/chunk_cache.h"

#include "port/port.h"
#include "util/bytes.h"

namespace permfs::store {

namespace {
constexpr std::size_t kAlign = 4096;  // O_DIRECT-safe, like every chunk read buffer
}  // namespace

std::uint64_t ChunkCache::IdHash::operator()(const Sha256Digest& d) const noexcept {
  // The id is a SHA-256: any 8 of its bytes are already uniformly distributed.
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | d.bytes[i];
  return v;
}

ChunkCache::~ChunkCache() {
  for (Slot& s : slots_)
    if (s.buf) port::Deallocate(s.buf, slot_bytes_, kAlign);
}

void ChunkCache::Configure(std::size_t capacity_bytes, std::size_t slot_bytes) noexcept {
  MutexLock l(&mu_);
  PERMFS_ASSERT(used_ == 0);  // before first use
  slot_bytes_ = slot_bytes;
  max_slots_ = slot_bytes == 0 ? 0 : capacity_bytes / slot_bytes;
  if (max_slots_ >= kNoSlot) max_slots_ = kNoSlot - 1;
  slots_.assign(max_slots_, Slot{});
  free_.clear();
  free_.reserve(max_slots_);
  index_.Clear();
}

void ChunkCache::Unlink(std::uint32_t s) {
  Slot& x = slots_[s];
  if (x.prev != kNoSlot) slots_[x.prev].next = x.next;
  else head_ = x.next;
  if (x.next != kNoSlot) slots_[x.next].prev = x.prev;
  else tail_ = x.prev;
  x.prev = x.next = kNoSlot;
}

void ChunkCache::PushFront(std::uint32_t s) {
  Slot& x = slots_[s];
  x.prev = kNoSlot;
  x.next = head_;
  if (head_ != kNoSlot) slots_[head_].prev = s;
  head_ = s;
  if (tail_ == kNoSlot) tail_ = s;
}

bool ChunkCache::Read(const Sha256Digest& id, std::uint32_t offset, std::uint32_t len,
                      std::uint8_t* out, bool count_miss) noexcept {
  if (max_slots_ == 0) return false;
  MutexLock l(&mu_);
  const std::uint32_t* s = index_.Find(id);
  if (s == nullptr || offset > slots_[*s].len || len > slots_[*s].len - offset) {
    if (count_miss) ++stats_.misses;
    return false;
  }
  const std::uint32_t slot = *s;
  CopyBytes(out, slots_[slot].buf + offset, len);
  if (head_ != slot) {
    Unlink(slot);
    PushFront(slot);
  }
  ++stats_.hits;
  return true;
}

std::uint32_t ChunkCache::Acquire() noexcept {
  if (max_slots_ == 0) return kNoSlot;
  MutexLock l(&mu_);
  std::uint32_t s = kNoSlot;
  if (!free_.empty()) {
    s = free_.back();
    free_.pop_back();
  } else if (used_ < max_slots_) {
    void* p = port::Allocate(slot_bytes_, kAlign);
    if (p == nullptr) return kNoSlot;  // the caller falls back to its own buffer
    s = used_++;
    slots_[s].buf = static_cast<std::uint8_t*>(p);
    ++stats_.slots;
  } else if (tail_ != kNoSlot) {
    s = tail_;
    Unlink(s);
    (void)index_.Erase(slots_[s].id);
    ++stats_.evictions;
  } else {
    return kNoSlot;  // every slot is being filled by another reader
  }
  slots_[s].state = State::kOwned;
  return s;
}

void ChunkCache::Publish(std::uint32_t slot, const Sha256Digest& id, std::uint32_t len) noexcept {
  MutexLock l(&mu_);
  Slot& x = slots_[slot];
  PERMFS_ASSERT(x.state == State::kOwned);
  if (len > slot_bytes_ || !index_.Insert(id, slot).second) {  // another reader was first
    x.state = State::kFree;
    free_.push_back(slot);
    return;
  }
  x.id = id;
  x.len = len;
  x.state = State::kCached;
  PushFront(slot);
}

void ChunkCache::Release(std::uint32_t slot) noexcept {
  MutexLock l(&mu_);
  PERMFS_ASSERT(slots_[slot].state == State::kOwned);
  slots_[slot].state = State::kFree;
  free_.push_back(slot);
}

void ChunkCache::Erase(const Sha256Digest& id) noexcept {
  if (max_slots_ == 0) return;
  MutexLock l(&mu_);
  const std::uint32_t* s = index_.Find(id);
  if (s == nullptr) return;
  const std::uint32_t slot = *s;
  Unlink(slot);
  (void)index_.Erase(id);
  slots_[slot].state = State::kFree;
  free_.push_back(slot);
}

ChunkCacheStats ChunkCache::stats() const noexcept {
  MutexLock l(&mu_);
  return stats_;
}

}  // namespace permfs::store
