// HashMap<K, V>: an open-addressing hash map for core code (which cannot use
// std::unordered_map).
//
// Contract:
//  - Linear probing over a power-of-two table with backward-shift deletion (no tombstones);
//    the table grows (doubling) before the load factor would pass 0.75. An empty map owns no
//    memory.
//  - Find() returns a pointer to the value or nullptr. Insert(k, v) adds the pair if k is
//    absent and returns {value, true}; if k is present it leaves the map unchanged and returns
//    {existing value, false}. operator[] inserts a value-initialised V when k is absent.
//    Erase() returns whether k was present.
//  - Pointers to values stay valid until the next Insert/operator[] that adds a key, Erase,
//    Reserve, Clear or destruction (entries move on rehash and on backward shift).
//  - ForEach(f) calls f(const K&, V&) once per entry in unspecified order. f may modify the
//    value but must not insert, erase, clear or reserve on the same map: doing so panics.
//  - K needs Hash and Eq (by default DefaultHash<K>: integers, enums, pointers and
//    std::array<std::uint8_t, N>; DefaultEq<K>: operator==). V may be move-only.
//  - Allocation uses std::vector; running out of memory is fatal, as for every std container in
//    the core.
// Thread-safety: not synchronised. Concurrent const calls (Find, size, const ForEach) are safe;
// anything else needs external locking.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "util/assert.h"

namespace permfs {

// Strong 64-bit finaliser (splitmix64 / murmur3 fmix64 family): every input bit affects every
// output bit, so sequential keys spread over the whole table.
constexpr std::uint64_t Mix64(std::uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x;
}

// Non-cryptographic 64-bit hash of a byte string (seedable).
inline std::uint64_t HashBytes(const void* data, std::size_t n, std::uint64_t seed = 0) noexcept {
  const auto* p = static_cast<const std::uint8_t*>(data);
  std::uint64_t h = seed ^ (0x9E3779B97F4A7C15ull * (n + 1));
  while (n >= 8) {
    std::uint64_t w;
    __builtin_memcpy(&w, p, 8);
    h = (h ^ Mix64(w)) * 0x9E3779B97F4A7C15ull;
    h = (h << 29) | (h >> 35);
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    std::uint64_t w = 0;
    for (std::size_t i = 0; i < n; ++i) w |= static_cast<std::uint64_t>(p[i]) << (8 * i);
    h = (h ^ Mix64(w)) * 0x9E3779B97F4A7C15ull;
  }
  return Mix64(h);
}

template <class K, class Enable = void>
struct DefaultHash;  // undefined: supply a Hash for other key types

template <class K>
struct DefaultHash<K, std::enable_if_t<std::is_integral_v<K> || std::is_enum_v<K>>> {
  std::uint64_t operator()(K k) const noexcept {
    return Mix64(static_cast<std::uint64_t>(k));
  }
};

template <class K>
struct DefaultHash<K*, void> {
  std::uint64_t operator()(K* k) const noexcept {
    return Mix64(static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(k)));
  }
};

template <std::size_t N>
struct DefaultHash<std::array<std::uint8_t, N>, void> {
  std::uint64_t operator()(const std::array<std::uint8_t, N>& k) const noexcept {
    return HashBytes(k.data(), N);
  }
};

template <class K>
struct DefaultEq {
  bool operator()(const K& a, const K& b) const { return a == b; }
};

template <class K, class V, class Hash = DefaultHash<K>, class Eq = DefaultEq<K>>
class HashMap {
 public:
  HashMap() = default;
  explicit HashMap(Hash hash, Eq eq = Eq()) : hash_(std::move(hash)), eq_(std::move(eq)) {}
  ~HashMap() { DestroyAll(); }

  HashMap(HashMap&& o) noexcept
      : slots_(std::move(o.slots_)),
        used_(std::move(o.used_)),
        size_(o.size_),
        hash_(std::move(o.hash_)),
        eq_(std::move(o.eq_)) {
    o.size_ = 0;
    o.slots_.clear();
    o.used_.clear();
  }
  HashMap& operator=(HashMap&& o) noexcept {
    if (this != &o) {
      DestroyAll();
      slots_ = std::move(o.slots_);
      used_ = std::move(o.used_);
      size_ = o.size_;
      hash_ = std::move(o.hash_);
      eq_ = std::move(o.eq_);
      o.size_ = 0;
      o.slots_.clear();
      o.used_.clear();
    }
    return *this;
  }
  HashMap(const HashMap& o) : hash_(o.hash_), eq_(o.eq_) { CopyFrom(o); }
  HashMap& operator=(const HashMap& o) {
    if (this != &o) {
      Clear();
      hash_ = o.hash_;
      eq_ = o.eq_;
      CopyFrom(o);
    }
    return *this;
  }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::size_t capacity() const noexcept { return used_.size(); }

  V* Find(const K& k) {
    std::size_t i;
    return Lookup(k, &i) ? &At(i).value : nullptr;
  }
  const V* Find(const K& k) const {
    std::size_t i;
    return Lookup(k, &i) ? &At(i).value : nullptr;
  }
  bool Contains(const K& k) const { return Find(k) != nullptr; }

  std::pair<V*, bool> Insert(const K& k, V v) {
    std::size_t i;
    if (Lookup(k, &i)) return {&At(i).value, false};
    CheckNotIterating();
    if (NeedsGrowth(size_ + 1)) {
      Rehash(GrowCapacity(size_ + 1));
      i = FreeSlotFor(k);
    }
    new (&slots_[i]) Entry{k, std::move(v)};
    used_[i] = 1;
    ++size_;
    return {&At(i).value, true};
  }

  V& operator[](const K& k) {
    if (V* v = Find(k)) return *v;
    return *Insert(k, V()).first;
  }

  bool Erase(const K& k) {
    std::size_t i;
    if (!Lookup(k, &i)) return false;
    CheckNotIterating();
    const std::size_t mask = used_.size() - 1;
    // Backward shift: pull later members of the probe run into the hole while that keeps each
    // entry at or after its home slot.
    std::size_t hole = i;
    for (std::size_t j = (i + 1) & mask; used_[j]; j = (j + 1) & mask) {
      const std::size_t home = hash_(At(j).key) & mask;
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        At(hole) = std::move(At(j));
        hole = j;
      }
    }
    At(hole).~Entry();
    used_[hole] = 0;
    --size_;
    return true;
  }

  void Clear() {
    CheckNotIterating();
    DestroyAll();
    slots_.clear();
    used_.clear();
    slots_.shrink_to_fit();
    used_.shrink_to_fit();
  }

  // Makes room for `n` entries without further rehashing.
  void Reserve(std::size_t n) {
    CheckNotIterating();
    if (NeedsGrowth(n)) Rehash(GrowCapacity(n));
  }

  template <class F>
  void ForEach(F&& f) {
    ++iterating_;
    for (std::size_t i = 0; i < used_.size(); ++i) {
      if (used_[i]) {
        Entry& e = At(i);
        f(static_cast<const K&>(e.key), e.value);
      }
    }
    --iterating_;
  }
  template <class F>
  void ForEach(F&& f) const {
    ++iterating_;
    for (std::size_t i = 0; i < used_.size(); ++i) {
      if (used_[i]) {
        const Entry& e = At(i);
        f(e.key, e.value);
      }
    }
    --iterating_;
  }

 private:
  struct Entry {
    K key;
    V value;
  };
  struct Slot {
    alignas(Entry) unsigned char raw[sizeof(Entry)];
  };

  static constexpr std::size_t kMinCapacity = 8;

  Entry& At(std::size_t i) { return *std::launder(reinterpret_cast<Entry*>(slots_[i].raw)); }
  const Entry& At(std::size_t i) const {
    return *std::launder(reinterpret_cast<const Entry*>(slots_[i].raw));
  }

  // Finds k. Returns true with *slot = its index, or false with *slot = the free slot where it
  // would go (undefined when the table is empty).
  bool Lookup(const K& k, std::size_t* slot) const {
    *slot = 0;
    if (used_.empty()) return false;
    const std::size_t mask = used_.size() - 1;
    std::size_t i = hash_(k) & mask;
    while (used_[i]) {
      if (eq_(At(i).key, k)) {
        *slot = i;
        return true;
      }
      i = (i + 1) & mask;
    }
    *slot = i;
    return false;
  }

  std::size_t FreeSlotFor(const K& k) const {
    const std::size_t mask = used_.size() - 1;
    std::size_t i = hash_(k) & mask;
    while (used_[i]) i = (i + 1) & mask;
    return i;
  }

  bool NeedsGrowth(std::size_t n) const { return n * 4 > used_.size() * 3; }

  static std::size_t GrowCapacity(std::size_t n) {
    std::size_t cap = kMinCapacity;
    while (n * 4 > cap * 3) cap *= 2;
    return cap;
  }

  void Rehash(std::size_t cap) {
    std::vector<Slot> old_slots(cap);
    std::vector<std::uint8_t> old_used(cap, 0);
    old_slots.swap(slots_);
    old_used.swap(used_);
    const std::size_t mask = cap - 1;
    for (std::size_t i = 0; i < old_used.size(); ++i) {
      if (!old_used[i]) continue;
      Entry* e = std::launder(reinterpret_cast<Entry*>(old_slots[i].raw));
      std::size_t j = hash_(e->key) & mask;
      while (used_[j]) j = (j + 1) & mask;
      new (&slots_[j]) Entry(std::move(*e));
      used_[j] = 1;
      e->~Entry();
    }
  }

  void DestroyAll() {
    if constexpr (!std::is_trivially_destructible_v<Entry>) {
      for (std::size_t i = 0; i < used_.size(); ++i)
        if (used_[i]) At(i).~Entry();
    }
    for (auto& u : used_) u = 0;
    size_ = 0;
  }

  void CopyFrom(const HashMap& o) {
    Reserve(o.size_);
    o.ForEach([this](const K& k, const V& v) { Insert(k, v); });
  }

  void CheckNotIterating() const {
    PERMFS_ASSERT_MSG(iterating_ == 0, "HashMap modified during ForEach");
  }

  std::vector<Slot> slots_;
  std::vector<std::uint8_t> used_;  // 1 = slots_[i] holds a live Entry
  std::size_t size_ = 0;
  mutable int iterating_ = 0;
  [[no_unique_address]] Hash hash_;
  [[no_unique_address]] Eq eq_;
};

}  // namespace permfs
