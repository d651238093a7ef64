// Journal block payloads (docs/FORMAT.md §6): the two header slots, transaction descriptors and
// commit records. Headers are sealed meta blocks (see meta_block.h); these functions encode and
// decode the payload that follows the 64-byte header.
//
// A transaction with sequence S occupies consecutive log blocks (wrapping at the end of the log):
//   descriptor 0, its data blocks, descriptor 1, its data blocks, ..., commit
// Each descriptor lists the home block number and CRC32C of each data block that follows it.
// The commit record (whose header owner/generation carry S) holds the counts and a CRC chained
// over the descriptors' CRCs, so a
// transaction is replayed only if every block of it is present and intact.
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

struct CommitPayload {
  std::uint32_t descriptors = 0;
  std::uint32_t data_blocks = 0;
  std::uint32_t chained_crc = 0;  // CRC32C over the descriptors' header CRCs, in order
  std::int64_t commit_time_ns = 0;
};

void EncodeCommit(std::uint8_t* block, std::size_t block_size, const CommitPayload& c) noexcept;
Result<CommitPayload> DecodeCommit(const std::uint8_t* block, std::size_t block_size) noexcept;

}  // namespace permfs::format
