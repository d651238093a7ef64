#include "format/journal_blocks.h"

#include "util/coding.h"

namespace permfs::format {

void JournalHeader::EncodePayload(std::uint8_t* b, std::size_t block_size) const noexcept {
  Writer w(b + kMetaHeaderSize, block_size - kMetaHeaderSize);
  w.U64(write_count);
  w.U64(tail_offset);
  w.U64(tail_seq);
  w.U64(root_generation);
  w.Zeros(w.remaining());
}

Result<JournalHeader> JournalHeader::DecodePayload(const std::uint8_t* b,
                                                   std::size_t block_size) noexcept {
  Reader r(b + kMetaHeaderSize, block_size - kMetaHeaderSize);
  JournalHeader h;
  h.write_count = r.U64();
  h.tail_offset = r.U64();
  h.tail_seq = r.U64();
  h.root_generation = r.U64();
  if (!r.ok()) return Status::Corruption("journal header: truncated");
  if (h.tail_seq == 0) return Status::Corruption("journal header: sequence 0");
  return h;
}

void EncodeDescriptor(std::uint8_t* b, std::size_t block_size, const DescriptorPayload& d,
                      const DescriptorEntry* entries) noexcept {
  Writer w(b + kMetaHeaderSize, block_size - kMetaHeaderSize);
  w.U32(d.index);
  w.U32(d.count);
  w.U64(0);
  for (std::uint32_t i = 0; i < d.count; ++i) {
    w.U64(entries[i].home_block);
    w.U32(entries[i].crc);
    w.U32(entries[i].flags);
  }
  w.Zeros(w.remaining());
}

Result<DescriptorPayload> DecodeDescriptor(const std::uint8_t* b, std::size_t block_size,
                                           DescriptorEntry* entries) noexcept {
  Reader r(b + kMetaHeaderSize, block_size - kMetaHeaderSize);
  DescriptorPayload d;
  d.index = r.U32();
  d.count = r.U32();
  r.U64();
  if (d.count == 0 || d.count > DescriptorCapacity(block_size))
    return Status::Corruption("journal descriptor: bad entry count");
  for (std::uint32_t i = 0; i < d.count; ++i) {
    entries[i].home_block = r.U64();
    entries[i].crc = r.U32();
    entries[i].flags = r.U32();
  }
  if (!r.ok()) return Status::Corruption("journal descriptor: truncated");
  return d;
}

void EncodeManifest(std::uint8_t* b, std::size_t block_size, const ManifestPayload& m,
                    const ManifestEntry* entries) noexcept {
  Writer w(b + kMetaHeaderSize, block_size - kMetaHeaderSize);
  w.U32(m.index);
  w.U32(m.count);
  w.U64(0);
  for (std::uint32_t i = 0; i < m.count; ++i) {
    w.U64(entries[i].block);
    w.U32(entries[i].length);
    w.U32(entries[i].crc);
  }
  w.Zeros(w.remaining());
}

Result<ManifestPayload> DecodeManifest(const std::uint8_t* b, std::size_t block_size,
                                       ManifestEntry* entries) noexcept {
  Reader r(b + kMetaHeaderSize, block_size - kMetaHeaderSize);
  ManifestPayload m;
  m.index = r.U32();
  m.count = r.U32();
  const std::uint64_t reserved = r.U64();
  if (reserved != 0) return Status::Corruption("journal manifest: reserved bytes set");
  if (m.count == 0 || m.count > ManifestCapacity(block_size))
    return Status::Corruption("journal manifest: bad entry count");
  for (std::uint32_t i = 0; i < m.count; ++i) {
    entries[i].block = r.U64();
    entries[i].length = r.U32();
    entries[i].crc = r.U32();
    if (entries[i].length == 0) return Status::Corruption("journal manifest: empty extent");
  }
  if (!r.ok()) return Status::Corruption("journal manifest: truncated");
  return m;
}

void EncodeCommit(std::uint8_t* b, std::size_t block_size, const CommitPayload& c) noexcept {
  Writer w(b + kMetaHeaderSize, block_size - kMetaHeaderSize);
  w.U32(c.descriptors);
  w.U32(c.data_blocks);
  w.U32(c.chained_crc);
  w.U32(c.manifest_blocks);
  w.I64(c.commit_time_ns);
  w.Zeros(w.remaining());
}

Result<CommitPayload> DecodeCommit(const std::uint8_t* b, std::size_t block_size) noexcept {
  Reader r(b + kMetaHeaderSize, block_size - kMetaHeaderSize);
  CommitPayload c;
  c.descriptors = r.U32();
  c.data_blocks = r.U32();
  c.chained_crc = r.U32();
  c.manifest_blocks = r.U32();
  c.commit_time_ns = r.I64();
  if (!r.ok() || c.descriptors == 0) return Status::Corruption("journal commit: malformed");
  return c;
}

}  // namespace permfs::format
