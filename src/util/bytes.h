// Byte helpers that work without <cstring>: copy, fill, compare, and a tiny span-like view.
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>

namespace permfs {

inline void CopyBytes(void* dst, const void* src, std::size_t n) noexcept {
  if (n) __builtin_memcpy(dst, src, n);
}
inline void MoveBytes(void* dst, const void* src, std::size_t n) noexcept {
  if (n) __builtin_memmove(dst, src, n);
}
inline void FillBytes(void* dst, std::uint8_t v, std::size_t n) noexcept {
  if (n) __builtin_memset(dst, v, n);
}
inline int CompareBytes(const void* a, const void* b, std::size_t n) noexcept {
  return n ? __builtin_memcmp(a, b, n) : 0;
}
inline bool IsAllZero(const void* p, std::size_t n) noexcept {
  const auto* b = static_cast<const std::uint8_t*>(p);
  for (std::size_t i = 0; i < n; ++i)
    if (b[i]) return false;
  return true;
}
inline std::size_t StrLen(const char* s) noexcept { return __builtin_strlen(s); }

// Lexicographic compare of two byte strings of different lengths (memcmp order, shorter first).
inline int CompareByteStrings(const std::uint8_t* a, std::size_t an, const std::uint8_t* b,
                              std::size_t bn) noexcept {
  std::size_t n = an < bn ? an : bn;
  int c = CompareBytes(a, b, n);
  if (c != 0) return c;
  return an < bn ? -1 : (an > bn ? 1 : 0);
}

}  // namespace permfs
