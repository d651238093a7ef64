// Little-endian (and big-endian, for sortable keys) fixed-width encoding with bounds checks.
//
// Writer appends into a caller-owned byte range and records overflow instead of writing past the
// end; Reader consumes a byte range and records underflow instead of reading past it. Check
// ok() once after a sequence of calls: after the first failure every call is a no-op that
// returns zero. On-disk structures are encoded field by field with these, never by copying a
// struct, so padding never reaches the disk and the layout is the same on every CPU.
// Thread-safety: plain values; one thread per Writer/Reader.
#pragma once

#include <cstddef>
#include <cstdint>

#include "util/bytes.h"

namespace permfs {

inline void EncodeLE16(std::uint8_t* p, std::uint16_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v);
  p[1] = static_cast<std::uint8_t>(v >> 8);
}
inline void EncodeLE32(std::uint8_t* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
inline void EncodeLE64(std::uint8_t* p, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
inline std::uint16_t DecodeLE16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
inline std::uint32_t DecodeLE32(const std::uint8_t* p) noexcept {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
inline std::uint64_t DecodeLE64(const std::uint8_t* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
// Big-endian forms keep integer order equal to byte order: used inside B+tree keys.
inline void EncodeBE64(std::uint8_t* p, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * (7 - i)));
}
inline std::uint64_t DecodeBE64(const std::uint8_t* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}
inline void EncodeBE32(std::uint8_t* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * (3 - i)));
}
inline std::uint32_t DecodeBE32(const std::uint8_t* p) noexcept {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | p[i];
  return v;
}

class Writer {
 public:
  Writer(std::uint8_t* buf, std::size_t cap) noexcept : buf_(buf), cap_(cap) {}

  bool ok() const noexcept { return ok_; }
  std::size_t size() const noexcept { return pos_; }
  std::size_t remaining() const noexcept { return cap_ - pos_; }

  void U8(std::uint8_t v) noexcept {
    if (Room(1)) buf_[pos_++] = v;
  }
  void U16(std::uint16_t v) noexcept {
    if (Room(2)) EncodeLE16(buf_ + pos_, v), pos_ += 2;
  }
  void U32(std::uint32_t v) noexcept {
    if (Room(4)) EncodeLE32(buf_ + pos_, v), pos_ += 4;
  }
  void U64(std::uint64_t v) noexcept {
    if (Room(8)) EncodeLE64(buf_ + pos_, v), pos_ += 8;
  }
  void I64(std::int64_t v) noexcept { U64(static_cast<std::uint64_t>(v)); }
  void BE64(std::uint64_t v) noexcept {
    if (Room(8)) EncodeBE64(buf_ + pos_, v), pos_ += 8;
  }
  void Bytes(const void* p, std::size_t n) noexcept {
    if (Room(n)) CopyBytes(buf_ + pos_, p, n), pos_ += n;
  }
  void Zeros(std::size_t n) noexcept {
    if (Room(n)) FillBytes(buf_ + pos_, 0, n), pos_ += n;
  }

 private:
  bool Room(std::size_t n) noexcept {
    if (!ok_ || n > cap_ - pos_) {
      ok_ = false;
      return false;
    }
    return true;
  }
  std::uint8_t* buf_;
  std::size_t cap_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

class Reader {
 public:
  Reader(const std::uint8_t* buf, std::size_t len) noexcept : buf_(buf), len_(len) {}

  bool ok() const noexcept { return ok_; }
  std::size_t position() const noexcept { return pos_; }
  std::size_t remaining() const noexcept { return len_ - pos_; }
  const std::uint8_t* cursor() const noexcept { return buf_ + pos_; }

  std::uint8_t U8() noexcept { return Have(1) ? buf_[pos_++] : 0; }
  std::uint16_t U16() noexcept {
    if (!Have(2)) return 0;
    pos_ += 2;
    return DecodeLE16(buf_ + pos_ - 2);
  }
  std::uint32_t U32() noexcept {
    if (!Have(4)) return 0;
    pos_ += 4;
    return DecodeLE32(buf_ + pos_ - 4);
  }
  std::uint64_t U64() noexcept {
    if (!Have(8)) return 0;
    pos_ += 8;
    return DecodeLE64(buf_ + pos_ - 8);
  }
  std::int64_t I64() noexcept { return static_cast<std::int64_t>(U64()); }
  std::uint64_t BE64() noexcept {
    if (!Have(8)) return 0;
    pos_ += 8;
    return DecodeBE64(buf_ + pos_ - 8);
  }
  // Copies n bytes out; on underflow fills `out` with zeros.
  void Bytes(void* out, std::size_t n) noexcept {
    if (Have(n)) {
      CopyBytes(out, buf_ + pos_, n);
      pos_ += n;
    } else {
      FillBytes(out, 0, n);
    }
  }
  // Returns a pointer to the next n bytes and skips them, or nullptr on underflow.
  const std::uint8_t* Take(std::size_t n) noexcept {
    if (!Have(n)) return nullptr;
    pos_ += n;
    return buf_ + pos_ - n;
  }
  void Skip(std::size_t n) noexcept {
    if (Have(n)) pos_ += n;
  }

 private:
  bool Have(std::size_t n) noexcept {
    if (!ok_ || n > len_ - pos_) {
      ok_ = false;
      return false;
    }
    return true;
  }
  const std::uint8_t* buf_;
  std::size_t len_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace permfs
