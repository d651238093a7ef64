// The superblock: the volume's static description (docs/FORMAT.md §4).
//
// Written at mkfs (and by fsck --repair), never by normal operation: everything that changes at
// run time lives in journaled blocks (the volume root, bitmaps, B+tree nodes). Three identical
// copies are kept — block 0 (primary), block 1 and the last block of the volume — differing only
// in the header's blockno. Mount reads the primary and falls back to the mirrors.
//
// Decode() validates every field and the layout's internal consistency, so a hostile image can
// never make the engine allocate absurd amounts of memory or address outside the device.
// Thread-safety: plain value type.
#pragma once

#include <cstddef>
#include <cstdint>

#include "format/meta_block.h"
#include "util/result.h"

namespace permfs::format {

inline constexpr std::uint32_t kFormatVersion = 1;
inline constexpr std::uint64_t kSuperMagic = 0x0131534D46726550ull;  // "PerFMS1\x01"-ish tag
inline constexpr std::size_t kLabelSize = 64;
inline constexpr std::uint32_t kMinBlockSize = 4096;
inline constexpr std::uint32_t kMaxBlockSize = 65536;
inline constexpr std::uint32_t kMaxShards = 65535;
// Bytes at the start of a bitmap block's payload before the bits (free count + reserved).
inline constexpr std::size_t kBitmapPayloadHeader = 16;

// Feature flags (docs/FORMAT.md §4.3). A mount refuses a volume with an unknown incompat bit,
// mounts read-only with an unknown ro_compat bit, and ignores unknown compat bits.
inline constexpr std::uint64_t kCompatKnown = 0;
inline constexpr std::uint64_t kRoCompatKnown = 0;
// incompat bit 0, "journal_manifest": journal transactions may carry data manifest blocks
// (§6.2) and file data is not flushed before the commit that references it; replay must verify
// every manifest extent before applying a transaction. A reader that does not know the bit would
// misread such a journal, so it must refuse the volume. Set by mkfs (PlanLayout) by default; a
// volume without it gets the older protocol (flush data, then write the journal).
inline constexpr std::uint64_t kIncompatJournalManifest = 1ull << 0;
inline constexpr std::uint64_t kIncompatKnown = kIncompatJournalManifest;

struct Superblock {
  std::uint32_t format_version = kFormatVersion;
  std::uint32_t block_size = 4096;
  std::uint64_t block_count = 0;
  std::uint64_t compat = 0;
  std::uint64_t ro_compat = 0;
  std::uint64_t incompat = 0;
  Uuid uuid;
  char label[kLabelSize] = {};
  std::uint64_t root_block = 2;
  std::uint64_t journal_start = 0;
  std::uint64_t journal_blocks = 0;
  std::uint64_t shard_start = 0;
  std::uint64_t shard_blocks = 0;
  std::uint32_t shard_count = 0;
  std::uint32_t bitmap_blocks_per_shard = 0;
  std::uint32_t record_size = 65536;
  std::int64_t mkfs_time_ns = 0;
  std::uint64_t node_id = 1;
  std::uint32_t volume_id = 1;

  std::uint64_t mirror_block() const noexcept { return block_count - 1; }
  // Bits (blocks) one bitmap block tracks.
  std::uint64_t bits_per_bitmap_block() const noexcept {
    return (static_cast<std::uint64_t>(block_size) - kMetaHeaderSize - kBitmapPayloadHeader) * 8;
  }
  std::uint64_t shard_first_block(std::uint32_t shard) const noexcept {
    return shard_start + static_cast<std::uint64_t>(shard) * shard_blocks;
  }
  // Number of blocks shard `shard` covers (the last one may be short).
  std::uint64_t shard_length(std::uint32_t shard) const noexcept;

  // Encodes into a full block (block_size bytes) as the copy stored at `blockno`, sealed.
  void Encode(std::uint8_t* block, std::uint64_t blockno) const noexcept;
  // Decodes and validates the copy stored at `blockno`. `device_blocks` is the device's size in
  // filesystem blocks (0 = unknown); a volume larger than its device is Corruption.
  static Result<Superblock> Decode(const std::uint8_t* block, std::size_t buf_size,
                                   std::uint64_t blockno, std::uint64_t device_blocks) noexcept;
  // Checks layout invariants (regions inside the device and disjoint, counts consistent).
  Status Validate() const noexcept;
};

struct LayoutOptions {
  std::uint32_t block_size = 4096;
  std::uint64_t block_count = 0;
  std::uint64_t journal_blocks = 0;  // 0 = default: blocks/64 clamped to [64, 16384]
  std::uint32_t record_size = 65536;
  std::uint64_t shard_blocks_hint = 0;  // 0 = one bitmap block per shard
  const char* label = "";
  bool journal_manifest = true;  // set incompat kIncompatJournalManifest (false: tests, old tools)
};

// Computes the layout of a new volume. The caller fills uuid and mkfs time.
Result<Superblock> PlanLayout(const LayoutOptions& opt) noexcept;

}  // namespace permfs::format
