// Fsck: the whole-volume consistency check behind `permfs fsck` (and the crash harnesses).
//
// It mounts the volume (replaying the journal unless read_only), then walks every B+tree
// verifying checksums, generations, key order and ranges, and cross-checks:
//   - allocation: the blocks marked used in the bitmaps are exactly the blocks reachable from the
//     volume root (tree nodes, chunk extents, bitmap blocks, the superblock mirror) — leaks and
//     blocks used but marked free are both errors; a block reachable twice is an error;
//   - chunks: each index entry's refcount equals the number of chunk-map entries naming it, and
//     every chunk-map entry names an indexed chunk; optionally (verify_data) every chunk's bytes
//     hash to its id;
//   - namespace: every directory entry names an existing inode of the type it says; link counts
//     equal the number of entries (plus subdirectories for directories); directory parent
//     pointers agree with the entries; inodes with no entry are on the orphan list;
//     chunk-map entries only exist for regular files that exist, inside their size;
//   - counters: the inode count and the next-inode counter agree with the inode table.
// With repair it fixes what it safely can: leaked blocks are freed, refcounts, link counts and
// counters rewritten, dangling entries and stray chunk maps removed, unreferenced inodes put on
// the orphan list (reclaimed at the next mount). Exit status follows e2fsck (see FsckExit).
//
// Thread-safety: runs alone on the device (no other mount).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "block/block_device.h"
#include "util/result.h"

namespace permfs::fs {

struct FsckOptions {
  bool repair = false;
  bool read_only = false;    // do not even replay the journal (report only)
  bool verify_data = false;  // read every chunk and check SHA-256(content) == id
  // Progress callback: (phase name, done, total). May be null.
  void (*progress)(void* ctx, const char* phase, std::uint64_t done, std::uint64_t total) = nullptr;
  void* progress_ctx = nullptr;
};

struct FsckReport {
  std::uint64_t errors = 0;         // problems found
  std::uint64_t fixed = 0;          // problems repaired
  std::vector<std::string> problems;  // human-readable, at most kMaxProblems
  static constexpr std::size_t kMaxProblems = 1000;

  std::uint64_t replayed_transactions = 0;
  bool used_superblock_mirror = false;
  std::uint64_t inodes = 0, directories = 0, regular_files = 0, symlinks = 0, special_files = 0;
  std::uint64_t chunks = 0, chunk_refs = 0, chunk_bytes = 0, logical_bytes = 0;
  std::uint64_t tree_nodes = 0, total_blocks = 0, used_blocks = 0, free_blocks = 0;
  std::uint64_t orphans = 0;
};

enum FsckExit : int {
  kFsckClean = 0,
  kFsckCorrected = 1,
  kFsckUncorrected = 4,
  kFsckOperational = 8,
};

// Runs the check. A Status error means the check could not run at all (I/O error, or a volume
// too damaged to mount: `report` then says why in problems, and the exit code is 4).
Status Fsck(block::BlockDevice* dev, const FsckOptions& opt, FsckReport* report) noexcept;
int FsckExitCode(const Status& st, const FsckReport& report) noexcept;

}  // namespace permfs::fs
