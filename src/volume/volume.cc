#include "volume/volume.h"

#include "format/volume_root.h"
#include "util/bytes.h"
#include "util/coding.h"
#include "util/log.h"

namespace permfs::volume {

using format::Superblock;

namespace {

// Reads `count` filesystem-size blocks at byte offset off using a temporary BlockIo.
Status ReadAt(block::BlockDevice* dev, std::uint32_t bs, std::uint64_t blockno,
              std::vector<std::uint8_t>* buf) {
  block::BlockIo io(dev, bs);
  if (!io.valid()) return Status::InvalidArgument("device block size larger than fs block size");
  buf->assign(bs, 0);
  return io.Read(blockno, 1, buf->data());
}

}  // namespace

Result<Superblock> ReadSuperblock(block::BlockDevice* dev, MountReport* report) noexcept {
  std::vector<std::uint8_t> buf;
  const std::uint64_t dev_bytes = dev->size_bytes();
  // Primary: block 0, whose first 4 KiB tell the block size.
  Status first_err = Status::Corruption("no valid superblock found");
  Status st = ReadAt(dev, format::kMinBlockSize, 0, &buf);
  if (!st.ok()) return st;
  {
    std::uint32_t bs = DecodeLE32(buf.data() + format::kMetaHeaderSize + 12);
    if (bs >= format::kMinBlockSize && bs <= format::kMaxBlockSize && (bs & (bs - 1)) == 0 &&
        bs <= dev_bytes) {
      Status rs = bs == format::kMinBlockSize ? Status() : ReadAt(dev, bs, 0, &buf);
      if (!rs.ok()) return rs;
      auto sb = Superblock::Decode(buf.data(), buf.size(), 0, dev_bytes / bs);
      if (sb.ok()) return sb;
      first_err = sb.status();
    }
  }
  // Mirrors: block 1 and the last block, for every possible block size.
  for (std::uint32_t bs = format::kMinBlockSize; bs <= format::kMaxBlockSize; bs *= 2) {
    if (dev_bytes < 2ull * bs) break;
    const std::uint64_t nblocks = dev_bytes / bs;
    for (std::uint64_t blockno : {std::uint64_t{1}, nblocks - 1}) {
      if (!ReadAt(dev, bs, blockno, &buf).ok()) continue;
      auto sb = Superblock::Decode(buf.data(), buf.size(), blockno, nblocks);
      if (!sb.ok() || sb->block_size != bs) continue;
      // Copies live at block 1, the volume's last block and (when the layout left a tail of the
      // device unused) the device's last block.
      if (blockno != 1 && blockno != sb->mirror_block() && blockno != nblocks - 1) continue;
      PERMFS_LOG(kWarn, "superblock: primary copy damaged (", first_err.message(),
                 "); using the mirror at block ", blockno);
      if (report) {
        report->used_mirror = true;
        report->mirror_block = blockno;
      }
      return sb;
    }
  }
  return first_err;
}

bool HasPermfsSuperblock(block::BlockDevice* dev) noexcept {
  return ReadSuperblock(dev, nullptr).ok();
}

Status Volume::Mkfs(block::BlockDevice* dev, const MkfsOptions& opt) noexcept {
  block::BlockIo io(dev, opt.block_size);
  if (!io.valid()) return Status::InvalidArgument("device block size does not divide block size");
  if (dev->capabilities().read_only) return Status::ReadOnly("device is read-only");
  format::LayoutOptions lo;
  lo.block_size = opt.block_size;
  lo.block_count = io.block_count();
  lo.journal_blocks = opt.journal_blocks;
  lo.record_size = opt.record_size;
  lo.label = opt.label;
  PERMFS_ASSIGN_OR_RETURN(Superblock sb, format::PlanLayout(lo));
  port::FillRandom(sb.uuid.bytes, sizeof sb.uuid.bytes);
  sb.mkfs_time_ns = port::WallClockNanos();
  sb.node_id = opt.node_id;
  sb.volume_id = opt.volume_id;

  // Invalidate any old superblock first, so a crash during mkfs never leaves a volume that
  // mounts with stale structures.
  std::vector<std::uint8_t> blk(sb.block_size, 0);
  PERMFS_RETURN_IF_ERROR(io.Write(0, 1, blk.data()));
  PERMFS_RETURN_IF_ERROR(io.Write(1, 1, blk.data()));
  PERMFS_RETURN_IF_ERROR(io.Write(io.block_count() - 1, 1, blk.data()));
  PERMFS_RETURN_IF_ERROR(io.Write(sb.block_count - 1, 1, blk.data()));
  PERMFS_RETURN_IF_ERROR(io.Flush());

  // The volume root: empty trees, initial counters.
  format::MetaHeader h;
  h.type = format::BlockType::kVolumeRoot;
  h.blockno = sb.root_block;
  h.generation = 0;
  h.uuid = sb.uuid;
  format::EncodeMetaHeader(h, blk.data());
  format::VolumeRoot vr;
  vr.counters[format::kCounterNextInode] = 2;
  vr.EncodePayload(blk.data(), sb.block_size);
  format::SealMetaBlock(blk.data(), sb.block_size);
  PERMFS_RETURN_IF_ERROR(io.Write(sb.root_block, 1, blk.data()));

  {
    journal::MetaStoreOptions mo;
    mo.cache_blocks = 1024;
    journal::MetaStore ms(&io, sb, mo);
    PERMFS_RETURN_IF_ERROR(ms.Format());
    alloc::Allocator al(&ms, sb);
    PERMFS_RETURN_IF_ERROR(al.Format());
    PERMFS_RETURN_IF_ERROR(ms.SyncAndCheckpoint());
  }

  // Superblock copies last: mirrors, then the primary.
  sb.Encode(blk.data(), 1);
  PERMFS_RETURN_IF_ERROR(io.Write(1, 1, blk.data()));
  sb.Encode(blk.data(), sb.mirror_block());
  PERMFS_RETURN_IF_ERROR(io.Write(sb.mirror_block(), 1, blk.data()));
  if (io.block_count() - 1 != sb.mirror_block()) {
    // The layout left the device's tail unused: keep a copy where a reader without the
    // superblock looks for one.
    sb.Encode(blk.data(), io.block_count() - 1);
    PERMFS_RETURN_IF_ERROR(io.Write(io.block_count() - 1, 1, blk.data()));
  }
  PERMFS_RETURN_IF_ERROR(io.Flush());
  sb.Encode(blk.data(), 0);
  PERMFS_RETURN_IF_ERROR(io.Write(0, 1, blk.data()));
  return io.Flush();
}

Volume::Volume(block::BlockDevice* dev, const Superblock& sb, const MountOptions& opt) noexcept
    : dev_(dev), sb_(sb), opt_(opt), io_(dev, sb.block_size),
      meta_(&io_, sb_, journal::MetaStoreOptions{opt.cache_blocks, 0, opt.read_only, false}),
      alloc_(&meta_, sb_), roots_(sb_) {}

Volume::~Volume() = default;

Result<Owned<Volume>> Volume::Mount(block::BlockDevice* dev, const MountOptions& opt,
                                    MountReport* report) noexcept {
  MountReport local;
  if (!report) report = &local;
  PERMFS_ASSIGN_OR_RETURN(Superblock sb, ReadSuperblock(dev, report));
  MountOptions o = opt;
  if (dev->capabilities().read_only) o.read_only = true;
  if (sb.ro_compat & ~format::kRoCompatKnown) o.read_only = true;
  Owned<Volume> v(new Volume(dev, sb, o));
  if (!v->io_.valid()) return Status::InvalidArgument("device block size does not divide block size");
  if (report->used_mirror && !o.read_only) {
    std::vector<std::uint8_t> blk(sb.block_size);
    sb.Encode(blk.data(), 0);
    PERMFS_RETURN_IF_ERROR(v->io_.Write(0, 1, blk.data()));
    PERMFS_RETURN_IF_ERROR(v->io_.Flush());
    PERMFS_LOG(kWarn, "superblock: primary copy rewritten from the mirror");
  }
  PERMFS_RETURN_IF_ERROR(v->meta_.Open());
  journal::MetaStoreStats ms = v->meta_.stats();
  report->replayed_transactions = ms.replayed_transactions;
  report->replayed_blocks = ms.replayed_blocks;
  PERMFS_RETURN_IF_ERROR(v->alloc_.Load());
  return v;
}

Status Volume::Unmount() noexcept {
  if (opt_.read_only) return Status();
  return meta_.SyncAndCheckpoint();
}

}  // namespace permfs::volume
