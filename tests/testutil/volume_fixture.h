// Test helper: lays out a PermFS volume on a BlockDevice (superblock copies + sealed volume root),
// and opens the journaled metadata store and the allocator on it, fresh (mkfs) or by remount.
//
//   block::MemBlockDevice dev(4096);
//   auto v = testutil::TestVolume::MakeFresh(&dev, {});   // MetaStore::Format + Allocator::Format
//   ASSERT_TRUE(v.ok()) << testutil::Str(v.status());
//   ... (*v)->ms->Begin() ...
//   v->reset();                                           // drop it (no unmount work is done)
//   auto w = testutil::TestVolume::Remount(&dev, {});      // MetaStore::Open (replay) + Load
//
// Thread-safety: a TestVolume is used like the objects it holds (MetaStore/Allocator are
// thread-safe; the struct itself is not).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "alloc/allocator.h"
#include "block/block_device.h"
#include "block/block_io.h"
#include "format/superblock.h"
#include "journal/meta_store.h"
#include "util/result.h"
#include "util/status.h"

namespace permfs::testutil {

// "Code: message" for assertion messages.
std::string Str(const Status& st);

// The unsigned number in environment variable `name` (harness sizes such as
// PERMFS_CRASH_STATES), or `dflt` when it is unset or empty.
std::uint64_t EnvU64(const char* name, std::uint64_t dflt);

struct VolumeOptions {
  std::uint64_t journal_blocks = 0;   // 0: PlanLayout's default
  std::uint64_t uuid_seed = 1;        // uuid bytes derive from this (deterministic)
  bool with_allocator = true;         // Format()/Load() an Allocator too
  journal::MetaStoreOptions store;    // passed to the MetaStore
};

// The layout PlanLayout gives for a volume of `blocks` 4 KiB blocks, with a deterministic uuid.
Result<format::Superblock> MakeSuperblock(std::uint64_t blocks, const VolumeOptions& opt);
// Writes the superblock (blocks 0, 1 and the last) and an empty sealed volume root (block 2),
// then flushes. Does not touch the journal or the shards.
Status WriteVolumeHeaders(block::BlockDevice* dev, const format::Superblock& sb);
// Reads and decodes the primary superblock of `dev`.
Result<format::Superblock> ReadSuperblock(block::BlockDevice* dev);

struct TestVolume {
  format::Superblock sb;
  std::unique_ptr<block::BlockIo> io;
  std::unique_ptr<journal::MetaStore> ms;
  std::unique_ptr<alloc::Allocator> alloc;  // null when !with_allocator

  // mkfs: headers, MetaStore::Format(), and Allocator::Format() when asked. `blocks` must not
  // exceed the device size (the volume may end before the device does).
  static Result<std::unique_ptr<TestVolume>> MakeFresh(block::BlockDevice* dev,
                                                       std::uint64_t blocks,
                                                       const VolumeOptions& opt = {});
  // mount: superblock from block 0, MetaStore::Open() (journal replay), Allocator::Load().
  static Result<std::unique_ptr<TestVolume>> Remount(block::BlockDevice* dev,
                                                     const VolumeOptions& opt = {});

  ~TestVolume();
};

}  // namespace permfs::testutil
