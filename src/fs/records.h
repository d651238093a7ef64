// On-disk records of the namespace (docs/FORMAT.md §10): inode records, directory entry buckets,
// chunk-map entries, xattr pieces and orphan records, with the B+tree keys that index them.
//
// Keyspaces (one B+tree each, ids fixed by the format):
//   kInodeTree   key ino(BE64)                     -> InodeRecord (128 bytes)
//                key ino(BE64) 0x01                -> symlink target bytes
//   kDirTree     key dir(BE64) hash60(name)(BE64)  -> bucket of {u8 type, u64 ino, u16 len, name}
//   kChunkTree   key ino(BE64) record(BE64)        -> {chunk id[32], u32 length, u32 flags}
//   kXattrTree   key ino(BE64) hash64(name)(BE64) part(u8) -> piece (part 0 starts with the
//                name and the total value length)
//   kOrphanTree  key ino(BE64)                     -> {u8 kind, u64 size}
// Integers inside keys are big-endian so key order is numeric order; values are little-endian.
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "util/result.h"
#include "util/sha256.h"

namespace permfs::fs {

inline constexpr std::uint32_t kInodeTree = 1;
inline constexpr std::uint32_t kDirTree = 2;
inline constexpr std::uint32_t kChunkTree = 3;
inline constexpr std::uint32_t kXattrTree = 4;
// 5 is the chunk store's index (store::ChunkStore::kTreeId).
inline constexpr std::uint32_t kOrphanTree = 6;

inline constexpr std::uint64_t kRootIno = 1;
inline constexpr std::size_t kMaxNameLen = 255;
inline constexpr std::size_t kMaxSymlinkLen = 4095;
inline constexpr std::uint32_t kMaxLinks = 65000;

// File type bits (POSIX S_IF*), kept here so the core needs no OS header.
inline constexpr std::uint32_t kTypeMask = 0170000;
inline constexpr std::uint32_t kTypeSocket = 0140000;
inline constexpr std::uint32_t kTypeSymlink = 0120000;
inline constexpr std::uint32_t kTypeRegular = 0100000;
inline constexpr std::uint32_t kTypeBlock = 0060000;
inline constexpr std::uint32_t kTypeDir = 0040000;
inline constexpr std::uint32_t kTypeChar = 0020000;
inline constexpr std::uint32_t kTypeFifo = 0010000;
inline constexpr std::uint32_t kModeSetuid = 04000;
inline constexpr std::uint32_t kModeSetgid = 02000;
inline constexpr std::uint32_t kModeSticky = 01000;

inline bool IsDir(std::uint32_t mode) { return (mode & kTypeMask) == kTypeDir; }
inline bool IsRegular(std::uint32_t mode) { return (mode & kTypeMask) == kTypeRegular; }
inline bool IsSymlink(std::uint32_t mode) { return (mode & kTypeMask) == kTypeSymlink; }
// Directory-entry type byte (as Linux DT_*): mode >> 12.
inline std::uint8_t DirentType(std::uint32_t mode) { return static_cast<std::uint8_t>((mode >> 12) & 15); }

struct Timespec {
  std::int64_t ns = 0;  // nanoseconds since the epoch (signed: dates before 1970 work)
};

struct InodeRecord {
  static constexpr std::size_t kEncodedSize = 128;
  std::uint64_t ino = 0;
  std::uint32_t mode = 0;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint32_t nlink = 0;
  std::uint64_t size = 0;
  std::int64_t atime_ns = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  std::int64_t btime_ns = 0;
  std::uint64_t generation = 0;
  std::uint64_t flags = 0;
  std::uint64_t rdev = 0;
  std::uint64_t parent = 0;      // directories: the parent directory (for '..' and loop checks)
  std::uint64_t data_bytes = 0;  // bytes of chunk data referenced (for st_blocks)

  void Encode(std::uint8_t out[kEncodedSize]) const noexcept;
  static Result<InodeRecord> Decode(std::uint64_t ino, const std::uint8_t* in,
                                    std::size_t len) noexcept;
};

struct DirEntry {
  std::string name;
  std::uint64_t ino = 0;
  std::uint8_t type = 0;
};

struct ChunkMapEntry {
  static constexpr std::size_t kEncodedSize = 40;
  Sha256Digest id;
  std::uint32_t length = 0;  // valid bytes of this record
  std::uint32_t flags = 0;
  void Encode(std::uint8_t out[kEncodedSize]) const noexcept;
  static Result<ChunkMapEntry> Decode(const std::uint8_t* in, std::size_t len,
                                      std::uint32_t record_size) noexcept;
};

enum class OrphanKind : std::uint8_t { kUnlinked = 1, kTruncate = 2 };

// Name hashing for directory and xattr keys (seeded FNV-1a/mix; stable across versions).
std::uint64_t NameHash64(const std::string& name) noexcept;
inline std::uint64_t DirHash(const std::string& name) noexcept { return NameHash64(name) >> 4; }

std::string InodeKey(std::uint64_t ino);
std::string SymlinkKey(std::uint64_t ino);
std::string DirKey(std::uint64_t dir, std::uint64_t hash);
std::string ChunkKey(std::uint64_t ino, std::uint64_t record);
std::string XattrKey(std::uint64_t ino, std::uint64_t hash, std::uint8_t part);
std::string OrphanKey(std::uint64_t ino);
std::uint64_t KeyU64(const std::uint8_t* p);  // big-endian field of a key

// Directory bucket encoding (usually one entry; several on a 60-bit hash collision).
std::string EncodeBucket(const DirEntry* entries, std::size_t n);
Status DecodeBucket(const std::uint8_t* p, std::size_t len, DirEntry* out, std::size_t cap,
                    std::size_t* n) noexcept;

}  // namespace permfs::fs
