// ChunkCache: a bounded LRU of verified chunk plaintext, keyed by chunk id.
//
// Chunks are content-addressed and immutable, so a cached chunk can never go stale: the bytes
// stored under an id are the bytes of that id for as long as anyone can name it. The cache
// therefore needs no invalidation; it only bounds memory. It serves the read path of
// ChunkStore::ReadLocated: a 4 KiB read that misses the kernel's page cache would otherwise read
// and CRC-check the whole chunk (up to one record) again for every page of it.
//
// Slots: capacity / slot_bytes fixed-size buffers, allocated on first use and kept until
// destruction. A slot is free, owned (a reader is filling it, not findable) or cached (in the
// index and the LRU list). The miss protocol is Acquire() -> fill and verify the buffer ->
// Publish() (or Release() if the read failed). Acquire() takes a free slot, allocates one, or
// evicts the least recently used cached chunk; it returns kNoSlot when the cache is disabled
// or every slot is owned by another reader (the caller then uses its own buffer).
// Two readers that miss the same chunk both read it; the second Publish() frees its slot.
//
// Thread-safety: every method may be called from many threads at once (one internal mutex;
// copies of cache hits happen under it, which is cheap at record size).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "util/hash_map.h"
#include "util/sha256.h"
#include "util/sync.h"

namespace permfs::store {

struct ChunkCacheStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t evictions = 0;
  std::uint64_t slots = 0;  // buffers allocated (each slot_bytes)
};

class ChunkCache {
 public:
  static constexpr std::uint32_t kNoSlot = 0xFFFFFFFFu;

  ChunkCache() noexcept = default;
  ~ChunkCache();
  ChunkCache(const ChunkCache&) = delete;
  ChunkCache& operator=(const ChunkCache&) = delete;

  // Sets the size (0 disables). slot_bytes is the largest buffer a reader needs (a whole chunk
  // extent, block-aligned); capacity_bytes / slot_bytes slots at most. Call before concurrent use.
  void Configure(std::size_t capacity_bytes, std::size_t slot_bytes) noexcept;
  bool enabled() const noexcept { return max_slots_ != 0; }
  std::size_t slot_bytes() const noexcept { return slot_bytes_; }

  // On a hit copies plaintext [offset, offset + len) of chunk `id` into `out` and returns true.
  // The range must lie inside the cached length (a hit with a shorter cached length is a miss).
  // `count_miss` false: a miss is not counted (a lookup that would not fill the cache anyway).
  bool Read(const Sha256Digest& id, std::uint32_t offset, std::uint32_t len, std::uint8_t* out,
            bool count_miss = true) noexcept;

  // A slot for a miss, or kNoSlot. Buffer(slot) stays valid and private until Publish/Release.
  std::uint32_t Acquire() noexcept;
  std::uint8_t* Buffer(std::uint32_t slot) const noexcept { return slots_[slot].buf; }
  // Makes the verified plaintext in Buffer(slot) (`len` bytes) findable under `id`.
  void Publish(std::uint32_t slot, const Sha256Digest& id, std::uint32_t len) noexcept;
  // Gives an acquired slot back unused.
  void Release(std::uint32_t slot) noexcept;
  // Drops chunk `id` if cached (its slot is free for the next Acquire without an eviction).
  void Erase(const Sha256Digest& id) noexcept;

  ChunkCacheStats stats() const noexcept;

 private:
  struct IdHash {
    std::uint64_t operator()(const Sha256Digest& d) const noexcept;
  };
  enum class State : std::uint8_t { kFree, kOwned, kCached };
  struct Slot {
    std::uint8_t* buf = nullptr;
    Sha256Digest id{};
    std::uint32_t len = 0;
    std::uint32_t prev = kNoSlot;  // LRU list (cached slots only); head = most recent
    std::uint32_t next = kNoSlot;
    State state = State::kFree;
  };

  void Unlink(std::uint32_t s) PERMFS_REQUIRES(mu_);
  void PushFront(std::uint32_t s) PERMFS_REQUIRES(mu_);

  std::size_t slot_bytes_ = 0;
  std::size_t max_slots_ = 0;
  mutable Mutex mu_;
  std::vector<Slot> slots_;  // max_slots_ entries, sized once by Configure (Buffer() is unlocked)
  std::uint32_t used_ PERMFS_GUARDED_BY(mu_) = 0;  // slots that ever got a buffer
  std::vector<std::uint32_t> free_ PERMFS_GUARDED_BY(mu_);
  HashMap<Sha256Digest, std::uint32_t, IdHash> index_ PERMFS_GUARDED_BY(mu_);
  std::uint32_t head_ PERMFS_GUARDED_BY(mu_) = kNoSlot;
  std::uint32_t tail_ PERMFS_GUARDED_BY(mu_) = kNoSlot;
  ChunkCacheStats stats_ PERMFS_GUARDED_BY(mu_);
};

}  // namespace permfs::store
