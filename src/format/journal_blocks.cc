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

namespace {

// Descriptor and manifest blocks share one payload layout: index u32, count u32, reserved u64
// (zero), then `count` 16-byte rows of (u64, u32, u32). Only the rows' meaning differs.
struct Row {
  std::uint64_t a;
  std::uint32_t b, c;
};

struct TableErrors {
  const char* reserved;
  const char* count;
  const char* row;  // a row `accept` refused
  const char* truncated;
};

template <class E, class ToRow>
void EncodeTable(std::uint8_t* blk, std::size_t block_size, std::uint32_t index,
                 std::uint32_t count, const E* entries, ToRow to_row) noexcept {
  Writer w(blk + kMetaHeaderSize, block_size - kMetaHeaderSize);
  w.U32(index);
  w.U32(count);
  w.U64(0);
  for (std::uint32_t i = 0; i < count; ++i) {
    const Row r = to_row(entries[i]);
    w.U64(r.a);
    w.U32(r.b);
    w.U32(r.c);
  }
  w.Zeros(w.remaining());
}

// `accept(row, &entry)` stores a row and says whether it is valid.
template <class E, class Accept>
Status DecodeTable(const std::uint8_t* blk, std::size_t block_size, std::size_t capacity,
                   const TableErrors& err, std::uint32_t* index, std::uint32_t* count, E* entries,
                   Accept accept) noexcept {
  Reader r(blk + kMetaHeaderSize, block_size - kMetaHeaderSize);
  *index = r.U32();
  *count = r.U32();
  if (r.U64() != 0) return Status::Corruption(err.reserved);
  if (*count == 0 || *count > capacity) return Status::Corruption(err.count);
  for (std::uint32_t i = 0; i < *count; ++i) {
    Row row;
    row.a = r.U64();
    row.b = r.U32();
    row.c = r.U32();
    if (!accept(row, &entries[i])) return Status::Corruption(err.row);
  }
  if (!r.ok()) return Status::Corruption(err.truncated);
  return Status();
}

}  // namespace

void EncodeDescriptor(std::uint8_t* b, std::size_t block_size, const DescriptorPayload& d,
                      const DescriptorEntry* entries) noexcept {
  EncodeTable(b, block_size, d.index, d.count, entries, [](const DescriptorEntry& e) {
    return Row{e.home_block, e.crc, e.flags};
  });
}

Result<DescriptorPayload> DecodeDescriptor(const std::uint8_t* b, std::size_t block_size,
                                           DescriptorEntry* entries) noexcept {
  static constexpr TableErrors kErr{"journal descriptor: reserved bytes set",
                                    "journal descriptor: bad entry count", "",
                                    "journal descriptor: truncated"};
  DescriptorPayload d;
  PERMFS_RETURN_IF_ERROR(DecodeTable(b, block_size, DescriptorCapacity(block_size), kErr, &d.index,
                                     &d.count, entries, [](const Row& r, DescriptorEntry* e) {
                                       *e = DescriptorEntry{r.a, r.b, r.c};
                                       return true;
                                     }));
  return d;
}

void EncodeManifest(std::uint8_t* b, std::size_t block_size, const ManifestPayload& m,
                    const ManifestEntry* entries) noexcept {
  EncodeTable(b, block_size, m.index, m.count, entries, [](const ManifestEntry& e) {
    return Row{e.block, e.length, e.crc};
  });
}

Result<ManifestPayload> DecodeManifest(const std::uint8_t* b, std::size_t block_size,
                                       ManifestEntry* entries) noexcept {
  static constexpr TableErrors kErr{"journal manifest: reserved bytes set",
                                    "journal manifest: bad entry count",
                                    "journal manifest: empty extent", "journal manifest: truncated"};
  ManifestPayload m;
  PERMFS_RETURN_IF_ERROR(DecodeTable(b, block_size, ManifestCapacity(block_size), kErr, &m.index,
                                     &m.count, entries, [](const Row& r, ManifestEntry* e) {
                                       *e = ManifestEntry{r.a, r.b, r.c};
                                       return r.b != 0;  // an extent has a length
                                     }));
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
