// The common header of every metadata block, and its checksum rule (docs/FORMAT.md §3).
//
// Every metadata block (superblock copies, volume root, journal header, descriptor, manifest and
// commit blocks, allocation bitmaps, B+tree nodes) starts with this 64-byte header:
//
//   off size field
//    0   4   magic        0x424D4650 ("PFMB" little endian)
//    4   2   type         BlockType
//    6   2   header_version (1)
//    8   4   crc32c       CRC32C of the whole block with these 4 bytes taken as zero
//   12   4   reserved (0)
//   16   8   blockno      the block's own address in the volume (detects misdirected writes)
//   24   8   owner        tree id / shard index / journal sequence, by type
//   32   8   generation   sequence of the transaction that last wrote the block (journal header
//                          slots: their write count; superblock copies: 0)
//   40  16   volume_uuid  the volume's UUID (rejects blocks left by an earlier mkfs)
//   56   8   reserved (0)
//
// VerifyMetaBlock() checks magic, type, crc, blockno, uuid (and owner when asked) and returns
// Corruption naming the first check that failed. SealMetaBlock() fills the crc.
// Thread-safety: pure functions over caller-owned buffers.
#pragma once

#include <cstddef>
#include <cstdint>

#include "util/status.h"

namespace permfs::format {

inline constexpr std::uint32_t kMetaMagic = 0x424D4650u;
inline constexpr std::size_t kMetaHeaderSize = 64;
inline constexpr std::uint16_t kMetaHeaderVersion = 1;

enum class BlockType : std::uint16_t {
  kSuperblock = 1,
  kVolumeRoot = 2,
  kJournalHeader = 3,
  kJournalDescriptor = 4,
  kJournalCommit = 5,
  kBitmap = 6,
  kBTreeLeaf = 7,
  kBTreeInternal = 8,
  kJournalManifest = 9,  // data manifest of a journal transaction (FORMAT.md §6.2)
};

const char* BlockTypeName(BlockType t) noexcept;

struct Uuid {
  std::uint8_t bytes[16] = {};
  friend bool operator==(const Uuid&, const Uuid&) = default;
};

struct MetaHeader {
  BlockType type = BlockType::kSuperblock;
  std::uint64_t blockno = 0;
  std::uint64_t owner = 0;
  std::uint64_t generation = 0;
  Uuid uuid;
};

// Writes the header fields into the first 64 bytes of `block` (crc left zero).
void EncodeMetaHeader(const MetaHeader& h, std::uint8_t* block) noexcept;
// Reads the header fields without verifying anything.
MetaHeader DecodeMetaHeader(const std::uint8_t* block) noexcept;

// Sets the header's generation field in place.
void SetMetaGeneration(std::uint8_t* block, std::uint64_t generation) noexcept;
std::uint64_t MetaGeneration(const std::uint8_t* block) noexcept;

// Computes the block checksum (crc field taken as zero).
std::uint32_t ComputeMetaCrc(const std::uint8_t* block, std::size_t block_size) noexcept;
// Stores ComputeMetaCrc() into the header.
void SealMetaBlock(std::uint8_t* block, std::size_t block_size) noexcept;

struct Expect {
  BlockType type;
  std::uint64_t blockno;
  const Uuid* uuid;            // nullptr: do not check (superblock discovery)
  bool check_owner = false;
  std::uint64_t owner = 0;
  // Optional structural check of the payload, run once when the block is read from the device
  // (cached copies were checked when loaded). Returns Corruption on a malformed payload.
  Status (*validate)(const std::uint8_t* block, std::size_t block_size) = nullptr;
};

// Full verification of a block read from the device.
Status VerifyMetaBlock(const std::uint8_t* block, std::size_t block_size,
                       const Expect& expect) noexcept;

}  // namespace permfs::format
