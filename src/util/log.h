// Engine logging through port::Log, with a tiny allocation-free formatter.
//
//   PERMFS_LOG(kWarn, "journal: replayed ", n, " transactions");
//
// Arguments may be C strings, integers (signed/unsigned) and bools; the line is truncated at
// 255 characters. Thread-safety: safe from any thread (each call formats on its own stack).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "port/port.h"

namespace permfs {

class LineBuffer {
 public:
  void Append(const char* s) noexcept {
    if (!s) s = "(null)";
    while (*s && len_ < kCap) buf_[len_++] = *s++;
  }
  void AppendUnsigned(std::uint64_t v, int base = 10) noexcept {
    char tmp[24];
    int n = 0;
    do {
      unsigned d = static_cast<unsigned>(v % base);
      tmp[n++] = static_cast<char>(d < 10 ? '0' + d : 'a' + d - 10);
      v /= base;
    } while (v && n < 24);
    while (n && len_ < kCap) buf_[len_++] = tmp[--n];
  }
  void AppendSigned(std::int64_t v) noexcept {
    if (v < 0) {
      Append("-");
      AppendUnsigned(static_cast<std::uint64_t>(-(v + 1)) + 1);
    } else {
      AppendUnsigned(static_cast<std::uint64_t>(v));
    }
  }
  template <typename T>
  void Put(const T& v) noexcept {
    if constexpr (std::is_same_v<T, bool>) {
      Append(v ? "true" : "false");
    } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
      AppendSigned(v);
    } else if constexpr (std::is_integral_v<T>) {
      AppendUnsigned(v);
    } else if constexpr (std::is_enum_v<T>) {
      AppendSigned(static_cast<std::int64_t>(v));
    } else {
      Append(v);
    }
  }
  const char* data() const noexcept { return buf_; }
  std::size_t size() const noexcept { return len_; }
  const char* c_str() noexcept {
    buf_[len_] = 0;
    return buf_;
  }

 private:
  static constexpr std::size_t kCap = 255;
  char buf_[kCap + 1];
  std::size_t len_ = 0;
};

template <typename... Args>
void LogLine(port::LogLevel level, const Args&... args) noexcept {
  LineBuffer b;
  (b.Put(args), ...);
  port::Log(level, b.data(), b.size());
}

}  // namespace permfs

#define PERMFS_LOG(level, ...) ::permfs::LogLine(::permfs::port::LogLevel::level, __VA_ARGS__)
