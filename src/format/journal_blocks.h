// Journal block payloads (docs/FORMAT.md §6): the two header slots, transaction descriptors and
// commit records. Headers are sealed meta blocks (see meta_block.h); these functions encode and
// decode the payload that follows the 64-byte header.
//
// A transaction with sequence S occupies consecutive log blocks (wrapping at the end of the log):
//   descriptor 0, its data blocks, descriptor 1, its data blocks, ...,
//   manifest 0, manifest 1, ... (none when the transaction references no new file data), commit
// Each descriptor lists the home block number and CRC32C of each data block that follows it.
// Each manifest block lists file-data extents the transaction's metadata references (first
// block, byte length, CRC32C of those bytes): replay applies the transaction only if the device
// holds exactly those bytes (the data was written without a flush before the commit).
// The commit record (whose header owner/generation carry S) holds the counts and a CRC chained
// over the descriptors' and manifest blocks' CRCs, so a transaction is replayed only if every
// block of it is present and intact.
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>

#include "format/meta_block.h"
#include "util/result.h"

namespace permfs::format {

struct JournalHeader {
  std::uint64_t write_count = 0;   // bumps on every header write; the newer valid slot wins
  std::uint64_t tail_offset = 0;   // log-relative block index of the oldest live transaction
  std::uint64_t tail_seq = 1;      // sequence expected at tail_offset
  std::uint64_t root_generation = 0;  // volume root generation at this checkpoint (lost writes)

  void EncodePayload(std::uint8_t* block, std::size_t block_size) const noexcept;
  static Result<JournalHeader> DecodePayload(const std::uint8_t* block,
                                             std::size_t block_size) noexcept;
};

struct DescriptorEntry {
  std::uint64_t home_block = 0;
  std::uint32_t crc = 0;  // CRC32C of the data block as logged
  std::uint32_t flags = 0;
};

// Entries one descriptor block can hold.
inline std::size_t DescriptorCapacity(std::size_t block_size) noexcept {
  return (block_size - kMetaHeaderSize - 16) / 16;
}

struct DescriptorPayload {
  std::uint32_t index = 0;  // descriptor number within the transaction
  std::uint32_t count = 0;  // entries that follow
};

void EncodeDescriptor(std::uint8_t* block, std::size_t block_size, const DescriptorPayload& d,
                      const DescriptorEntry* entries) noexcept;
// Decodes into `entries` (capacity DescriptorCapacity(block_size)).
Result<DescriptorPayload> DecodeDescriptor(const std::uint8_t* block, std::size_t block_size,
                                           DescriptorEntry* entries) noexcept;

// One file-data extent a transaction references (FORMAT.md §6.2, manifest block).
struct ManifestEntry {
  std::uint64_t block = 0;   // first block of the extent (whole blocks, data carry no header)
  std::uint32_t length = 0;  // bytes of data from `block` on (1 .. record_size)
  std::uint32_t crc = 0;     // CRC32C of those `length` bytes
};

// Entries one manifest block can hold (the same as a descriptor: 16 bytes each).
inline std::size_t ManifestCapacity(std::size_t block_size) noexcept {
  return DescriptorCapacity(block_size);
}

struct ManifestPayload {
  std::uint32_t index = 0;  // manifest block number within the transaction
  std::uint32_t count = 0;  // entries that follow, 1..ManifestCapacity
};

void EncodeManifest(std::uint8_t* block, std::size_t block_size, const ManifestPayload& m,
                    const ManifestEntry* entries) noexcept;
// Decodes into `entries` (capacity ManifestCapacity(block_size)). Corruption on a bad count, a
// zero length or non-zero reserved bytes.
Result<ManifestPayload> DecodeManifest(const std::uint8_t* block, std::size_t block_size,
                                       ManifestEntry* entries) noexcept;

struct CommitPayload {
  std::uint32_t descriptors = 0;
  std::uint32_t data_blocks = 0;
  std::uint32_t chained_crc = 0;  // CRC32C over the descriptors' then the manifests' header CRCs
  std::uint32_t manifest_blocks = 0;  // manifest blocks before the commit record
  std::int64_t commit_time_ns = 0;
};

void EncodeCommit(std::uint8_t* block, std::size_t block_size, const CommitPayload& c) noexcept;
Result<CommitPayload> DecodeCommit(const std::uint8_t* block, std::size_t block_size) noexcept;

}  // namespace permfs::format
