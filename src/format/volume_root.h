// The volume root block: the single journaled block that anchors every run-time structure
// (docs/FORMAT.md §5). Lives at superblock.root_block; changed only inside transactions.
//
// It holds the roots of the metadata B+trees (block, generation, height, entry count), and a
// small array of 64-bit counters owned by the layers above (free blocks, next inode, ...).
// Thread-safety: plain value type.
#pragma once

#include <cstddef>
#include <cstdint>

#include "format/meta_block.h"
#include "util/result.h"

namespace permfs::format {

inline constexpr std::size_t kMaxTrees = 16;
inline constexpr std::size_t kRootCounters = 16;

// Well-known counter slots.
enum RootCounter : std::size_t {
  kCounterBitmapDigest = 0,  // alloc: XOR of hash(blockno, generation) over all bitmap blocks
  kCounterNextInode = 1,    // fs: next inode number to hand out
  kCounterInodes = 2,       // fs: live inodes
  kCounterReserved3 = 3,    // reserved, zero in v1
  kCounterNextTreeId = 4,   // reserved for threads/snapshots, zero in v1
};

struct TreeRoot {
  std::uint64_t root_block = 0;      // 0 = empty tree
  std::uint64_t root_generation = 0;  // generation the root node must carry
  std::uint32_t height = 0;           // 0 = empty, 1 = root is a leaf
  std::uint32_t flags = 0;
  std::uint64_t entries = 0;
  friend bool operator==(const TreeRoot&, const TreeRoot&) = default;
};

struct VolumeRoot {
  std::uint64_t counters[kRootCounters] = {};
  TreeRoot trees[kMaxTrees];

  // Encodes the payload into an already-headed block (bytes from kMetaHeaderSize on).
  void EncodePayload(std::uint8_t* block, std::size_t block_size) const noexcept;
  static Result<VolumeRoot> DecodePayload(const std::uint8_t* block,
                                          std::size_t block_size) noexcept;

  // One field of an already-headed block, without touching the rest (the B+tree reads a tree
  // root on every operation). `idx` must be < kRootCounters / `tree` < kMaxTrees.
  static std::uint64_t DecodeCounter(const std::uint8_t* block, std::size_t idx) noexcept;
  static void EncodeCounter(std::uint8_t* block, std::size_t idx, std::uint64_t value) noexcept;
  static Result<TreeRoot> DecodeTree(const std::uint8_t* block, std::size_t tree) noexcept;
  static void EncodeTree(std::uint8_t* block, std::size_t tree, const TreeRoot& root) noexcept;
};

}  // namespace permfs::format
