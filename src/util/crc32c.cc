// CRC-32C: slicing-by-8 portable path and an SSE4.2 path with three interleaved streams.
// The three-stream scheme and the zero-shift operator tables follow Mark Adler's crc32c.c
// (zlib license): three CRCs are computed independently over adjacent blocks and then combined
// by "shifting" the earlier ones over the later blocks' length with precomputed tables.

#include "util/crc32c.h"

#include <atomic>
#include <cstddef>
#include <cstdint>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace permfs {
namespace {

constexpr std::uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli polynomial

// ---- Portable: slicing-by-8 ------------------------------------------------------------------

struct SliceTables {
  std::uint32_t t[8][256];
};

constexpr SliceTables MakeSliceTables() {
  SliceTables s{};
  for (std::uint32_t n = 0; n < 256; ++n) {
    std::uint32_t c = n;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    s.t[0][n] = c;
  }
  for (std::uint32_t n = 0; n < 256; ++n) {
    std::uint32_t c = s.t[0][n];
    for (int k = 1; k < 8; ++k) {
      c = s.t[0][c & 0xff] ^ (c >> 8);
      s.t[k][n] = c;
    }
  }
  return s;
}

constexpr SliceTables kSlice = MakeSliceTables();

inline std::uint64_t LoadLE64(const std::uint8_t* p) {
  return static_cast<std::uint64_t>(p[0]) | static_cast<std::uint64_t>(p[1]) << 8 |
         static_cast<std::uint64_t>(p[2]) << 16 | static_cast<std::uint64_t>(p[3]) << 24 |
         static_cast<std::uint64_t>(p[4]) << 32 | static_cast<std::uint64_t>(p[5]) << 40 |
         static_cast<std::uint64_t>(p[6]) << 48 | static_cast<std::uint64_t>(p[7]) << 56;
}

// Operates on the raw register (no pre/post inversion).
std::uint32_t PortableRaw(std::uint32_t c, const std::uint8_t* p, std::size_t n) {
  const auto& t = kSlice.t;
  while (n && (reinterpret_cast<std::uintptr_t>(p) & 7) != 0) {
    c = t[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    --n;
  }
  while (n >= 8) {
    std::uint64_t w = LoadLE64(p) ^ c;
    c = t[7][w & 0xff] ^ t[6][(w >> 8) & 0xff] ^ t[5][(w >> 16) & 0xff] ^
        t[4][(w >> 24) & 0xff] ^ t[3][(w >> 32) & 0xff] ^ t[2][(w >> 40) & 0xff] ^
        t[1][(w >> 48) & 0xff] ^ t[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n) {
    c = t[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    --n;
  }
  return c;
}

#if defined(__x86_64__)

// ---- Hardware: SSE4.2 crc32, three interleaved streams ------------------------------------

constexpr std::size_t kLong = 8192;  // bytes per stream in the long loop (power of two)
constexpr std::size_t kShort = 256;  // bytes per stream in the short loop (power of two)

// GF(2) 32x32 matrices as arrays of columns.
constexpr std::uint32_t Gf2Times(const std::uint32_t* mat, std::uint32_t vec) {
  std::uint32_t sum = 0;
  while (vec) {
    if (vec & 1) sum ^= *mat;
    vec >>= 1;
    ++mat;
  }
  return sum;
}

constexpr void Gf2Square(std::uint32_t* square, const std::uint32_t* mat) {
  for (int n = 0; n < 32; ++n) square[n] = Gf2Times(mat, mat[n]);
}

// Table that applies "append `len` zero bytes" (len a power of two) to a raw CRC register,
// one lookup per register byte.
struct ShiftTable {
  std::uint32_t t[4][256];
};

constexpr ShiftTable MakeShiftTable(std::size_t len) {
  std::uint32_t even[32] = {};
  std::uint32_t odd[32] = {};
  odd[0] = kPoly;  // operator for one zero bit
  std::uint32_t row = 1;
  for (int n = 1; n < 32; ++n) {
    odd[n] = row;
    row <<= 1;
  }
  Gf2Square(even, odd);  // two zero bits
  Gf2Square(odd, even);  // four zero bits
  const std::uint32_t* op = even;
  // Each square doubles the shift: the first gives one zero byte.
  while (true) {
    Gf2Square(even, odd);
    len >>= 1;
    if (len == 0) {
      op = even;
      break;
    }
    Gf2Square(odd, even);
    len >>= 1;
    if (len == 0) {
      op = odd;
      break;
    }
  }
  ShiftTable z{};
  for (std::uint32_t n = 0; n < 256; ++n) {
    z.t[0][n] = Gf2Times(op, n);
    z.t[1][n] = Gf2Times(op, n << 8);
    z.t[2][n] = Gf2Times(op, n << 16);
    z.t[3][n] = Gf2Times(op, n << 24);
  }
  return z;
}

constexpr ShiftTable kLongShift = MakeShiftTable(kLong);
constexpr ShiftTable kShortShift = MakeShiftTable(kShort);

inline std::uint32_t Shift(const ShiftTable& z, std::uint32_t crc) {
  return z.t[0][crc & 0xff] ^ z.t[1][(crc >> 8) & 0xff] ^ z.t[2][(crc >> 16) & 0xff] ^
         z.t[3][crc >> 24];
}

__attribute__((target("sse4.2"))) inline std::uint64_t Load64(const std::uint8_t* p) {
  std::uint64_t v;
  __builtin_memcpy(&v, p, 8);
  return v;
}

// Three streams of `block` bytes each: crc0 over [p, p+block), crc1 over the next block,
// crc2 over the one after; then crc0 is shifted over two blocks and combined.
__attribute__((target("sse4.2"))) inline std::uint64_t HwTriple(std::uint64_t crc0,
                                                                 const std::uint8_t* p,
                                                                 std::size_t block,
                                                                 const ShiftTable& shift) {
  std::uint64_t crc1 = 0;
  std::uint64_t crc2 = 0;
  const std::uint8_t* end = p + block;
  do {
    crc0 = __builtin_ia32_crc32di(crc0, Load64(p));
    crc1 = __builtin_ia32_crc32di(crc1, Load64(p + block));
    crc2 = __builtin_ia32_crc32di(crc2, Load64(p + 2 * block));
    p += 8;
  } while (p < end);
  crc0 = Shift(shift, static_cast<std::uint32_t>(crc0)) ^ crc1;
  crc0 = Shift(shift, static_cast<std::uint32_t>(crc0)) ^ crc2;
  return crc0;
}

__attribute__((target("sse4.2"))) std::uint32_t HardwareRaw(std::uint32_t crc,
                                                             const std::uint8_t* p,
                                                             std::size_t n) {
  std::uint64_t c = crc;
  while (n && (reinterpret_cast<std::uintptr_t>(p) & 7) != 0) {
    c = __builtin_ia32_crc32qi(static_cast<std::uint32_t>(c), *p++);
    --n;
  }
  while (n >= 3 * kLong) {
    c = HwTriple(c, p, kLong, kLongShift);
    p += 3 * kLong;
    n -= 3 * kLong;
  }
  while (n >= 3 * kShort) {
    c = HwTriple(c, p, kShort, kShortShift);
    p += 3 * kShort;
    n -= 3 * kShort;
  }
  while (n >= 8) {
    c = __builtin_ia32_crc32di(c, Load64(p));
    p += 8;
    n -= 8;
  }
  while (n) {
    c = __builtin_ia32_crc32qi(static_cast<std::uint32_t>(c), *p++);
    --n;
  }
  return static_cast<std::uint32_t>(c);
}

bool DetectHardware() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  return (ecx & bit_SSE4_2) != 0;
}

#endif  // __x86_64__

using CrcFn = std::uint32_t (*)(std::uint32_t, const void*, std::size_t) noexcept;

// 0 = not probed yet, 1 = no hardware CRC, 2 = hardware CRC available.
std::atomic<int> g_has_hardware{0};
std::atomic<CrcFn> g_extend{nullptr};

}  // namespace

std::uint32_t Crc32cPortable(std::uint32_t crc, const void* data, std::size_t n) noexcept {
  return ~PortableRaw(~crc, static_cast<const std::uint8_t*>(data), n);
}

std::uint32_t Crc32cHardware(std::uint32_t crc, const void* data, std::size_t n) noexcept {
#if defined(__x86_64__)
  return ~HardwareRaw(~crc, static_cast<const std::uint8_t*>(data), n);
#else
  return Crc32cPortable(crc, data, n);
#endif
}

bool Crc32cHasHardware() noexcept {
  int v = g_has_hardware.load(std::memory_order_relaxed);
  if (v == 0) {
#if defined(__x86_64__)
    v = DetectHardware() ? 2 : 1;
#else
    v = 1;
#endif
    g_has_hardware.store(v, std::memory_order_relaxed);
  }
  return v == 2;
}

std::uint32_t Crc32cExtend(std::uint32_t crc, const void* data, std::size_t n) noexcept {
  CrcFn fn = g_extend.load(std::memory_order_relaxed);
  if (__builtin_expect(fn == nullptr, 0)) {
    // Racing first callers all compute the same answer; any of their stores is correct.
    fn = Crc32cHasHardware() ? &Crc32cHardware : &Crc32cPortable;
    g_extend.store(fn, std::memory_order_relaxed);
  }
  return fn(crc, data, n);
}

}  // namespace permfs
