// Volume: a formatted PermFS volume on a BlockDevice — mkfs, mount (superblock discovery with
// mirror fallback, journal replay, allocator load) and unmount (commit + checkpoint, so the next
// mount replays nothing). It owns the MetaStore, the Allocator and the root store that every
// upper layer uses.
//
// Thread-safety: Mkfs/Mount/Unmount are not concurrent with anything else on the volume; the
// accessors return objects that are themselves thread-safe.
#pragma once

#include <cstdint>

#include "alloc/allocator.h"
#include "block/block_device.h"
#include "block/block_io.h"
#include "btree/btree.h"
#include "format/superblock.h"
#include "journal/meta_store.h"
#include "util/owned.h"
#include "util/result.h"

namespace permfs::volume {

struct MkfsOptions {
  std::uint32_t block_size = 4096;
  std::uint64_t journal_blocks = 0;  // 0 = default size
  std::uint32_t record_size = 65536;
  const char* label = "";
  std::uint64_t node_id = 1;
  std::uint32_t volume_id = 1;
  // Called with (done, total) while bitmaps are written, for a progress bar. May be null.
  void (*progress)(void* ctx, std::uint64_t done, std::uint64_t total) = nullptr;
  void* progress_ctx = nullptr;
};

struct MountOptions {
  bool read_only = false;
  std::size_t cache_blocks = 16384;
};

// What Mount() found and did, for tools and logs.
struct MountReport {
  bool used_mirror = false;          // the primary superblock was damaged
  std::uint64_t mirror_block = 0;
  std::uint64_t replayed_transactions = 0;
  std::uint64_t replayed_blocks = 0;
};

// Finds and validates the superblock (primary, then mirrors). Reports which copy was used.
Result<format::Superblock> ReadSuperblock(block::BlockDevice* dev, MountReport* report) noexcept;
// True if the device looks like it holds a PermFS volume (any superblock copy is valid).
bool HasPermfsSuperblock(block::BlockDevice* dev) noexcept;

class Volume {
 public:
  static Status Mkfs(block::BlockDevice* dev, const MkfsOptions& opt) noexcept;
  static Result<Owned<Volume>> Mount(block::BlockDevice* dev, const MountOptions& opt,
                                     MountReport* report = nullptr) noexcept;
  ~Volume();
  Volume(const Volume&) = delete;
  Volume& operator=(const Volume&) = delete;

  // Makes everything durable and checkpoints the journal. The Volume may be destroyed after.
  Status Unmount() noexcept;

  const format::Superblock& sb() const noexcept { return sb_; }
  block::BlockDevice* device() const noexcept { return dev_; }
  const block::BlockIo* io() const noexcept { return &io_; }
  journal::MetaStore* meta() noexcept { return &meta_; }
  alloc::Allocator* allocator() noexcept { return &alloc_; }
  btree::VolumeRootStore* roots() noexcept { return &roots_; }
  bool read_only() const noexcept { return opt_.read_only; }

 private:
  Volume(block::BlockDevice* dev, const format::Superblock& sb, const MountOptions& opt) noexcept;

  block::BlockDevice* dev_;
  const format::Superblock sb_;
  const MountOptions opt_;
  block::BlockIo io_;
  journal::MetaStore meta_;
  alloc::Allocator alloc_;
  btree::VolumeRootStore roots_;
};

}  // namespace permfs::volume
