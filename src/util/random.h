// Random: a small, fast, deterministic pseudo-random generator (xoshiro256**, seeded through
// splitmix64). The same seed gives the same sequence on every platform and build, so tests,
// the crash harness and simulations can be replayed from a printed seed. Not cryptographic:
// use port::FillRandom for UUIDs and anything an attacker must not predict.
//
// Thread-safety: a value type with mutable state; one thread per object (or external locking).
#pragma once

#include <cstddef>
#include <cstdint>

namespace permfs {

// One step of splitmix64: advances *state and returns a well-mixed 64-bit value.
inline std::uint64_t SplitMix64(std::uint64_t* state) noexcept {
  std::uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

class Random {
 public:
  explicit Random(std::uint64_t seed) noexcept {
    std::uint64_t sm = seed;
    for (auto& w : s_) w = SplitMix64(&sm);
  }

  std::uint64_t Next64() noexcept {
    const std::uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  std::uint32_t Next32() noexcept { return static_cast<std::uint32_t>(Next64() >> 32); }

  // Uniform in [0, n) without modulo bias (Lemire's method). Returns 0 when n == 0.
  std::uint32_t Uniform(std::uint32_t n) noexcept {
    if (n == 0) return 0;
    std::uint64_t m = static_cast<std::uint64_t>(Next32()) * n;
    std::uint32_t low = static_cast<std::uint32_t>(m);
    if (low < n) {
      const std::uint32_t threshold = static_cast<std::uint32_t>(-n) % n;
      while (low < threshold) {
        m = static_cast<std::uint64_t>(Next32()) * n;
        low = static_cast<std::uint32_t>(m);
      }
    }
    return static_cast<std::uint32_t>(m >> 32);
  }

  // Uniform in [0, n) for 64-bit ranges (rejection sampling). Returns 0 when n == 0.
  std::uint64_t Uniform64(std::uint64_t n) noexcept {
    if (n == 0) return 0;
    const std::uint64_t limit = ~std::uint64_t{0} - (~std::uint64_t{0} % n);
    std::uint64_t v;
    do {
      v = Next64();
    } while (v >= limit);
    return v % n;
  }

  // True with probability 1/n (always true for n <= 1).
  bool OneIn(std::uint32_t n) noexcept { return n <= 1 || Uniform(n) == 0; }

  // Fills `n` bytes at `out` (byte order independent of the CPU).
  void Fill(void* out, std::size_t n) noexcept {
    auto* p = static_cast<std::uint8_t*>(out);
    while (n > 0) {
      std::uint64_t v = Next64();
      const std::size_t k = n < 8 ? n : 8;
      for (std::size_t i = 0; i < k; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
      p += k;
      n -= k;
    }
  }

 private:
  static std::uint64_t Rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }

  std::uint64_t s_[4];
};

}  // namespace permfs
