// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit-compatible with iSCSI (RFC 3720),
// ext4/btrfs metadata checksums and leveldb/crc32c: Crc32c("123456789", 9) == 0xE3069283.
//
// Contract:
//  - Crc32c(data, n) is the complete CRC (register preset to ~0, final value inverted).
//  - Crc32cExtend(crc, data, n) continues a finished CRC: for byte strings a and b,
//    Crc32cExtend(Crc32c(a), b) == Crc32c(a + b), and Crc32cExtend(0, a) == Crc32c(a).
//  - Crc32cPortable / Crc32cHardware have Extend semantics and always return identical values.
//    Crc32cPortable is a slicing-by-8 table implementation that runs anywhere.
//    Crc32cHardware uses the SSE4.2 crc32 instruction (three interleaved streams on large
//    buffers); call it only when Crc32cHasHardware() is true. On non-x86-64 builds it is the
//    portable path.
//  - Crc32c/Crc32cExtend pick the fastest path once, on first use (CPUID), and keep it.
//  - `data` may be null when n == 0; there is no alignment requirement.
// Thread-safety: every function is pure and may be called from any number of threads at once
// (tables are constexpr; the dispatch choice is published through a relaxed atomic).
#pragma once

#include <cstddef>
#include <cstdint>

namespace permfs {

std::uint32_t Crc32cExtend(std::uint32_t crc, const void* data, std::size_t n) noexcept;

inline std::uint32_t Crc32c(const void* data, std::size_t n) noexcept {
  return Crc32cExtend(0, data, n);
}

std::uint32_t Crc32cPortable(std::uint32_t crc, const void* data, std::size_t n) noexcept;
std::uint32_t Crc32cHardware(std::uint32_t crc, const void* data, std::size_t n) noexcept;
bool Crc32cHasHardware() noexcept;

// Masked form for CRCs stored next to the data they cover (as leveldb does), so that a CRC of a
// buffer which itself embeds CRCs does not degenerate. Unmask(Mask(c)) == c.
inline std::uint32_t Crc32cMask(std::uint32_t crc) noexcept {
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}
inline std::uint32_t Crc32cUnmask(std::uint32_t masked) noexcept {
  std::uint32_t rot = masked - 0xa282ead8u;
  return (rot >> 17) | (rot << 15);
}

}  // namespace permfs
