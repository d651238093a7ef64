#include "format/meta_block.h"

#include "util/bytes.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace permfs::format {

const char* BlockTypeName(BlockType t) noexcept {
  switch (t) {
    case BlockType::kSuperblock: return "superblock";
    case BlockType::kVolumeRoot: return "volume-root";
    case BlockType::kJournalHeader: return "journal-header";
    case BlockType::kJournalDescriptor: return "journal-descriptor";
    case BlockType::kJournalCommit: return "journal-commit";
    case BlockType::kBitmap: return "bitmap";
    case BlockType::kBTreeLeaf: return "btree-leaf";
    case BlockType::kBTreeInternal: return "btree-internal";
    case BlockType::kJournalManifest: return "journal-manifest";
  }
  return "unknown";
}

void EncodeMetaHeader(const MetaHeader& h, std::uint8_t* b) noexcept {
  EncodeLE32(b + 0, kMetaMagic);
  EncodeLE16(b + 4, static_cast<std::uint16_t>(h.type));
  EncodeLE16(b + 6, kMetaHeaderVersion);
  EncodeLE32(b + 8, 0);
  EncodeLE32(b + 12, 0);
  EncodeLE64(b + 16, h.blockno);
  EncodeLE64(b + 24, h.owner);
  EncodeLE64(b + 32, h.generation);
  CopyBytes(b + 40, h.uuid.bytes, 16);
  EncodeLE64(b + 56, 0);
}

MetaHeader DecodeMetaHeader(const std::uint8_t* b) noexcept {
  MetaHeader h;
  h.type = static_cast<BlockType>(DecodeLE16(b + 4));
  h.blockno = DecodeLE64(b + 16);
  h.owner = DecodeLE64(b + 24);
  h.generation = DecodeLE64(b + 32);
  CopyBytes(h.uuid.bytes, b + 40, 16);
  return h;
}

void SetMetaGeneration(std::uint8_t* block, std::uint64_t generation) noexcept {
  EncodeLE64(block + 32, generation);
}
std::uint64_t MetaGeneration(const std::uint8_t* block) noexcept { return DecodeLE64(block + 32); }

std::uint32_t ComputeMetaCrc(const std::uint8_t* block, std::size_t block_size) noexcept {
  static constexpr std::uint8_t kZero[4] = {0, 0, 0, 0};
  std::uint32_t crc = Crc32c(block, 8);
  crc = Crc32cExtend(crc, kZero, 4);
  return Crc32cExtend(crc, block + 12, block_size - 12);
}

void SealMetaBlock(std::uint8_t* block, std::size_t block_size) noexcept {
  EncodeLE32(block + 8, ComputeMetaCrc(block, block_size));
}

Status VerifyMetaBlock(const std::uint8_t* b, std::size_t block_size,
                       const Expect& e) noexcept {
  if (block_size < kMetaHeaderSize * 2) return Status::InvalidArgument("block size too small");
  if (DecodeLE32(b) != kMetaMagic) return Status::Corruption("metadata block: bad magic");
  if (DecodeLE16(b + 6) != kMetaHeaderVersion)
    return Status::Corruption("metadata block: unknown header version");
  if (DecodeLE32(b + 8) != ComputeMetaCrc(b, block_size))
    return Status::Corruption("metadata block: checksum mismatch");
  if (DecodeLE16(b + 4) != static_cast<std::uint16_t>(e.type))
    return Status::Corruption("metadata block: unexpected block type");
  if (DecodeLE64(b + 16) != e.blockno)
    return Status::Corruption("metadata block: wrong block number (misdirected write)");
  if (e.uuid && CompareBytes(b + 40, e.uuid->bytes, 16) != 0)
    return Status::Corruption("metadata block: belongs to another volume");
  if (e.check_owner && DecodeLE64(b + 24) != e.owner)
    return Status::Corruption("metadata block: wrong owner");
  return Status();
}

}  // namespace permfs::format
