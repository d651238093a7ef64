#include "testutil/volume_fixture.h"

#include <cstdlib>
#include <vector>

#include "format/meta_block.h"
#include "format/volume_root.h"
#include "util/random.h"

namespace permfs::testutil {

std::uint64_t EnvU64(const char* name, std::uint64_t dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : dflt;
}

std::string Str(const Status& st) {
  std::string s = st.CodeName();
  if (!st.ok()) {
    s += ": ";
    s += st.message();
  }
  return s;
}

Result<format::Superblock> MakeSuperblock(std::uint64_t blocks, const VolumeOptions& opt) {
  format::LayoutOptions lo;
  lo.block_size = 4096;
  lo.block_count = blocks;
  lo.journal_blocks = opt.journal_blocks;
  lo.label = "test";
  auto sb = format::PlanLayout(lo);
  if (!sb.ok()) return sb.status();
  Random rnd(opt.uuid_seed * 0x9E3779B97F4A7C15ull + 17);
  rnd.Fill(sb->uuid.bytes, sizeof(sb->uuid.bytes));
  sb->mkfs_time_ns = 1;
  return sb;
}

Status WriteVolumeHeaders(block::BlockDevice* dev, const format::Superblock& sb) {
  block::BlockIo io(dev, sb.block_size);
  if (!io.valid()) return Status::InvalidArgument("device block size does not divide 4096");
  std::vector<std::uint8_t> b(sb.block_size, 0);
  for (std::uint64_t where : {std::uint64_t{0}, std::uint64_t{1}, sb.mirror_block()}) {
    sb.Encode(b.data(), where);
    PERMFS_RETURN_IF_ERROR(io.Write(where, 1, b.data()));
  }
  std::vector<std::uint8_t> root(sb.block_size, 0);
  format::MetaHeader h;
  h.type = format::BlockType::kVolumeRoot;
  h.blockno = sb.root_block;
  h.uuid = sb.uuid;
  format::EncodeMetaHeader(h, root.data());
  format::VolumeRoot{}.EncodePayload(root.data(), sb.block_size);
  format::SealMetaBlock(root.data(), sb.block_size);
  PERMFS_RETURN_IF_ERROR(io.Write(sb.root_block, 1, root.data()));
  return io.Flush();
}

Result<format::Superblock> ReadSuperblock(block::BlockDevice* dev) {
  block::BlockIo io(dev, 4096);
  std::vector<std::uint8_t> b(4096);
  PERMFS_RETURN_IF_ERROR(io.Read(0, 1, b.data()));
  return format::Superblock::Decode(b.data(), b.size(), 0, io.block_count());
}

TestVolume::~TestVolume() {
  alloc.reset();
  ms.reset();
  io.reset();
}

Result<std::unique_ptr<TestVolume>> TestVolume::MakeFresh(block::BlockDevice* dev,
                                                          std::uint64_t blocks,
                                                          const VolumeOptions& opt) {
  auto sb = MakeSuperblock(blocks, opt);
  if (!sb.ok()) return sb.status();
  PERMFS_RETURN_IF_ERROR(WriteVolumeHeaders(dev, *sb));
  auto v = std::make_unique<TestVolume>();
  v->sb = *sb;
  v->io = std::make_unique<block::BlockIo>(dev, sb->block_size);
  v->ms = std::make_unique<journal::MetaStore>(v->io.get(), v->sb, opt.store);
  PERMFS_RETURN_IF_ERROR(v->ms->Format());
  if (opt.with_allocator) {
    v->alloc = std::make_unique<alloc::Allocator>(v->ms.get(), v->sb);
    PERMFS_RETURN_IF_ERROR(v->alloc->Format());
  }
  return v;
}

Result<std::unique_ptr<TestVolume>> TestVolume::Remount(block::BlockDevice* dev,
                                                        const VolumeOptions& opt) {
  auto sb = ReadSuperblock(dev);
  if (!sb.ok()) return sb.status();
  auto v = std::make_unique<TestVolume>();
  v->sb = *sb;
  v->io = std::make_unique<block::BlockIo>(dev, sb->block_size);
  v->ms = std::make_unique<journal::MetaStore>(v->io.get(), v->sb, opt.store);
  PERMFS_RETURN_IF_ERROR(v->ms->Open());
  if (opt.with_allocator) {
    v->alloc = std::make_unique<alloc::Allocator>(v->ms.get(), v->sb);
    PERMFS_RETURN_IF_ERROR(v->alloc->Load());
  }
  return v;
}

}  // namespace permfs::testutil
