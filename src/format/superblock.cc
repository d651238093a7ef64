#include "format/superblock.h"

#include "util/bytes.h"
#include "util/coding.h"

namespace permfs::format {

std::uint64_t Superblock::shard_length(std::uint32_t shard) const noexcept {
  std::uint64_t first = shard_first_block(shard);
  if (first >= block_count) return 0;
  std::uint64_t len = block_count - first;
  return len < shard_blocks ? len : shard_blocks;
}

void Superblock::Encode(std::uint8_t* b, std::uint64_t blockno) const noexcept {
  FillBytes(b, 0, block_size);
  MetaHeader h;
  h.type = BlockType::kSuperblock;
  h.blockno = blockno;
  h.uuid = uuid;
  EncodeMetaHeader(h, b);
  Writer w(b + kMetaHeaderSize, block_size - kMetaHeaderSize);
  w.U64(kSuperMagic);
  w.U32(format_version);
  w.U32(block_size);
  w.U64(block_count);
  w.U64(compat);
  w.U64(ro_compat);
  w.U64(incompat);
  w.Bytes(uuid.bytes, 16);
  w.Bytes(label, kLabelSize);
  w.U64(root_block);
  w.U64(journal_start);
  w.U64(journal_blocks);
  w.U64(shard_start);
  w.U64(shard_blocks);
  w.U32(shard_count);
  w.U32(bitmap_blocks_per_shard);
  w.U32(record_size);
  w.U32(0);
  w.I64(mkfs_time_ns);
  w.U64(node_id);
  w.U32(volume_id);
  w.U32(0);
  SealMetaBlock(b, block_size);
}

Result<Superblock> Superblock::Decode(const std::uint8_t* b, std::size_t buf_size,
                                      std::uint64_t blockno,
                                      std::uint64_t device_blocks) noexcept {
  if (buf_size < kMinBlockSize) return Status::InvalidArgument("superblock buffer too small");
  Reader r(b + kMetaHeaderSize, buf_size - kMetaHeaderSize);
  if (DecodeLE32(b) != kMetaMagic) return Status::Corruption("superblock: bad magic");
  if (r.U64() != kSuperMagic) return Status::Corruption("superblock: not a PermFS volume");
  Superblock s;
  s.format_version = r.U32();
  s.block_size = r.U32();
  if (s.format_version != kFormatVersion)
    return Status(Code::kNotSupported, "superblock: unsupported format version");
  if (s.block_size < kMinBlockSize || s.block_size > kMaxBlockSize ||
      (s.block_size & (s.block_size - 1)) != 0)
    return Status::Corruption("superblock: bad block size");
  if (s.block_size > buf_size) return Status::InvalidArgument("superblock: buffer < block size");
  Expect e{BlockType::kSuperblock, blockno, nullptr};
  PERMFS_RETURN_IF_ERROR(VerifyMetaBlock(b, s.block_size, e));
  s.block_count = r.U64();
  s.compat = r.U64();
  s.ro_compat = r.U64();
  s.incompat = r.U64();
  r.Bytes(s.uuid.bytes, 16);
  r.Bytes(s.label, kLabelSize);
  s.label[kLabelSize - 1] = 0;
  s.root_block = r.U64();
  s.journal_start = r.U64();
  s.journal_blocks = r.U64();
  s.shard_start = r.U64();
  s.shard_blocks = r.U64();
  s.shard_count = r.U32();
  s.bitmap_blocks_per_shard = r.U32();
  s.record_size = r.U32();
  r.U32();
  s.mkfs_time_ns = r.I64();
  s.node_id = r.U64();
  s.volume_id = r.U32();
  if (!r.ok()) return Status::Corruption("superblock: truncated");
  MetaHeader h = DecodeMetaHeader(b);
  if (!(h.uuid == s.uuid)) return Status::Corruption("superblock: header uuid mismatch");
  PERMFS_RETURN_IF_ERROR(s.Validate());
  if (device_blocks != 0 && s.block_count > device_blocks)
    return Status::Corruption("superblock: volume is larger than its device (truncated image?)");
  if (s.incompat & ~kIncompatKnown)
    return Status(Code::kNotSupported, "superblock: unknown incompatible feature");
  return s;
}

Status Superblock::Validate() const noexcept {
  const std::uint64_t n = block_count;
  if (n < 64) return Status::Corruption("superblock: volume too small");
  if (n > (1ull << 48)) return Status::Corruption("superblock: volume too large");
  if (root_block != 2) return Status::Corruption("superblock: bad root block");
  if (journal_start != 3 || journal_blocks < 16 || journal_blocks > n / 2)
    return Status::Corruption("superblock: bad journal region");
  if (shard_start != journal_start + journal_blocks)
    return Status::Corruption("superblock: shards do not follow the journal");
  if (bitmap_blocks_per_shard == 0 || bitmap_blocks_per_shard > 1024)
    return Status::Corruption("superblock: bad bitmap blocks per shard");
  if (shard_blocks != bitmap_blocks_per_shard * bits_per_bitmap_block())
    return Status::Corruption("superblock: shard size does not match its bitmaps");
  if (shard_start >= n - 1) return Status::Corruption("superblock: no room for shards");
  std::uint64_t data = n - shard_start;
  std::uint64_t want = (data + shard_blocks - 1) / shard_blocks;
  if (shard_count == 0 || shard_count > kMaxShards || shard_count != want)
    return Status::Corruption("superblock: bad shard count");
  if (shard_length(shard_count - 1) <= bitmap_blocks_per_shard)
    return Status::Corruption("superblock: last shard holds only bitmaps");
  if (record_size < 4096 || record_size > (1u << 20) || (record_size & (record_size - 1)))
    return Status::Corruption("superblock: bad record size");
  if (node_id == 0) return Status::Corruption("superblock: node id 0");
  return Status();
}

Result<Superblock> PlanLayout(const LayoutOptions& opt) noexcept {
  Superblock s;
  s.block_size = opt.block_size;
  if (s.block_size < kMinBlockSize || s.block_size > kMaxBlockSize ||
      (s.block_size & (s.block_size - 1)))
    return Status::InvalidArgument("block size must be a power of two from 4096 to 65536");
  s.block_count = opt.block_count;
  if (s.block_count < 128) return Status::InvalidArgument("device too small (need 128 blocks)");
  if (s.block_count > (1ull << 48)) return Status::InvalidArgument("device too large");
  if (opt.record_size < 4096 || opt.record_size > (1u << 20) ||
      (opt.record_size & (opt.record_size - 1)))
    return Status::InvalidArgument("record size must be a power of two from 4 KiB to 1 MiB");
  s.record_size = opt.record_size;
  s.incompat = opt.journal_manifest ? kIncompatJournalManifest : 0;
  std::uint64_t jb = opt.journal_blocks;
  if (jb == 0) {
    jb = s.block_count / 64;
    if (jb < 64) jb = 64;
    if (jb > 16384) jb = 16384;
  }
  if (jb < 16 || jb > s.block_count / 2) return Status::InvalidArgument("bad journal size");
  s.journal_start = 3;
  s.journal_blocks = jb;
  s.shard_start = s.journal_start + jb;
  const std::uint64_t data = s.block_count - s.shard_start;
  std::uint32_t bpb = 1;
  if (opt.shard_blocks_hint > s.bits_per_bitmap_block())
    bpb = static_cast<std::uint32_t>(opt.shard_blocks_hint / s.bits_per_bitmap_block());
  while ((data + bpb * s.bits_per_bitmap_block() - 1) / (bpb * s.bits_per_bitmap_block()) >
         kMaxShards)
    bpb *= 2;
  if (bpb > 1024) return Status::InvalidArgument("device too large for the bitmap layout");
  s.bitmap_blocks_per_shard = bpb;
  s.shard_blocks = bpb * s.bits_per_bitmap_block();
  s.shard_count = static_cast<std::uint32_t>((data + s.shard_blocks - 1) / s.shard_blocks);
  // A last shard that would hold only its bitmaps is folded away by shrinking the volume's
  // usable range: simplest is to require room, so trim block_count-derived count instead.
  if (s.shard_length(s.shard_count - 1) <= bpb) {
    if (s.shard_count == 1) return Status::InvalidArgument("device too small");
    s.shard_count -= 1;
    s.block_count = s.shard_first_block(s.shard_count) ;
  }
  std::size_t i = 0;
  for (; opt.label && opt.label[i] && i < kLabelSize - 1; ++i) s.label[i] = opt.label[i];
  if (opt.label && opt.label[i]) return Status::InvalidArgument("label longer than 63 bytes");
  PERMFS_RETURN_IF_ERROR(s.Validate());
  return s;
}

}  // namespace permfs::format
