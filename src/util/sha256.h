// SHA-256 (FIPS 180-4).
//
// Contract:
//  - Sha256(data, n) returns the digest, using the port's accelerated implementation
//    (port::Sha256; OpenSSL on the hosted port) when it has one, else the portable code below.
//    Both give identical results.
//  - Sha256Portable is an incremental hasher in plain C++ (no OS, no intrinsics). Update() may be
//    called any number of times with pieces of any size (data may be null when n == 0); Finish()
//    returns the digest of everything given since construction (or the previous Finish()) and
//    resets the object so it can hash a new message.
//  - Sha256PortableOneShot(data, n) is the portable path in one call.
//  - ToHex writes the 64 lowercase hex digits of a digest plus a terminating NUL.
// Thread-safety: free functions are pure and thread-safe; a Sha256Portable object is a value
// used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>

namespace permfs {

struct Sha256Digest {
  std::uint8_t bytes[32];

  friend bool operator==(const Sha256Digest& a, const Sha256Digest& b) noexcept {
    return __builtin_memcmp(a.bytes, b.bytes, sizeof a.bytes) == 0;
  }
  friend bool operator!=(const Sha256Digest& a, const Sha256Digest& b) noexcept {
    return !(a == b);
  }
};

class Sha256Portable {
 public:
  Sha256Portable() noexcept { Reset(); }

  void Update(const void* data, std::size_t n) noexcept;
  Sha256Digest Finish() noexcept;
  void Reset() noexcept;

 private:
  void Compress(const std::uint8_t* block) noexcept;

  std::uint32_t h_[8];
  std::uint8_t buf_[64];
  std::size_t buf_len_;
  std::uint64_t total_len_;  // bytes
};

Sha256Digest Sha256PortableOneShot(const void* data, std::size_t n) noexcept;
Sha256Digest Sha256(const void* data, std::size_t n) noexcept;

// Writes 64 lowercase hex characters and a NUL into out[0..64].
void ToHex(const Sha256Digest& d, char out[65]) noexcept;

}  // namespace permfs
