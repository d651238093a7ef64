#include "journal/journal_log.h"

#include "util/bytes.h"
#include "util/coding.h"
#include "util/crc32c.h"
#include "util/log.h"

namespace permfs::journal {

using format::BlockType;
using format::Expect;
using format::MetaHeader;

JournalLog::JournalLog(const block::BlockIo* io, const format::Superblock& sb) noexcept
    : io_(io), sb_(sb), bs_(sb.block_size), start_(sb.journal_start),
      log_blocks_(sb.journal_blocks - 2) {}

std::uint64_t JournalLog::BlocksNeeded(std::uint64_t data_blocks,
                                       std::uint64_t manifest_entries) const noexcept {
  const std::uint64_t cap = format::DescriptorCapacity(bs_);
  const std::uint64_t mcap = format::ManifestCapacity(bs_);
  const std::uint64_t descs = data_blocks == 0 ? 1 : (data_blocks + cap - 1) / cap;
  return descs + data_blocks + (manifest_entries + mcap - 1) / mcap + 1;
}

std::uint64_t JournalLog::MaxTransactionBlocks() const noexcept {
  std::uint64_t cap = format::DescriptorCapacity(bs_);
  // descs + n + 1 <= log  with descs = ceil(n / cap)
  std::uint64_t n = (log_blocks_ - 2) * cap / (cap + 1);
  while (n > 0 && BlocksNeeded(n) > log_blocks_) --n;
  // The estimate can be low by one or more: grow to the largest n that still fits.
  while (BlocksNeeded(n + 1) <= log_blocks_) ++n;
  return n;
}

Status JournalLog::WriteHeaderSlot(const format::JournalHeader& h) noexcept {
  std::vector<std::uint8_t> b(bs_, 0);
  MetaHeader mh;
  mh.type = BlockType::kJournalHeader;
  mh.blockno = start_ + (h.write_count & 1);
  mh.generation = h.write_count;
  mh.uuid = sb_.uuid;
  format::EncodeMetaHeader(mh, b.data());
  h.EncodePayload(b.data(), bs_);
  format::SealMetaBlock(b.data(), bs_);
  PERMFS_RETURN_IF_ERROR(io_->Write(mh.blockno, 1, b.data()));
  return io_->Flush();
}

Status JournalLog::Format() noexcept {
  format::JournalHeader h;
  h.write_count = 0;
  h.tail_offset = 0;
  h.tail_seq = 1;
  PERMFS_RETURN_IF_ERROR(WriteHeaderSlot(h));
  h.write_count = 1;
  PERMFS_RETURN_IF_ERROR(WriteHeaderSlot(h));
  header_ = h;
  head_ = 0;
  __atomic_store_n(&used_, 0, __ATOMIC_RELAXED);
  next_seq_ = 1;
  return Status();
}

Status JournalLog::Open() noexcept {
  std::vector<std::uint8_t> b(bs_);
  bool have = false;
  Status first_err = Status::Corruption("journal: no valid header slot");
  for (std::uint64_t slot = 0; slot < 2; ++slot) {
    Status st = io_->Read(start_ + slot, 1, b.data());
    if (!st.ok()) {
      if (st.IsIOError()) return st;
      continue;
    }
    Expect e{BlockType::kJournalHeader, start_ + slot, &sb_.uuid};
    st = format::VerifyMetaBlock(b.data(), bs_, e);
    if (!st.ok()) {
      first_err = st;
      continue;
    }
    auto h = format::JournalHeader::DecodePayload(b.data(), bs_);
    if (!h.ok()) {
      first_err = h.status();
      continue;
    }
    if ((h->write_count & 1) != slot || h->tail_offset >= log_blocks_) {
      first_err = Status::Corruption("journal header: inconsistent slot");
      continue;
    }
    if (!have || h->write_count > header_.write_count) header_ = *h;
    have = true;
  }
  if (!have) return first_err;
  head_ = header_.tail_offset;
  __atomic_store_n(&used_, 0, __ATOMIC_RELAXED);
  next_seq_ = header_.tail_seq;
  return Status();
}

Status JournalLog::ReadLogBlock(std::uint64_t offset, std::uint8_t* buf) noexcept {
  return io_->Read(LogBlockNo(offset), 1, buf);
}

// A transaction as read back from the log.
struct JournalLog::TxnBuf {
  std::vector<format::DescriptorEntry> entries;
  std::vector<format::ManifestEntry> mentries;  // one manifest block's worth
  std::vector<std::uint8_t> blk;
  std::vector<std::uint8_t> data;  // the transaction's logged metadata images
  std::vector<LogBlock> logged;
  std::vector<format::ManifestEntry> manifest;
  std::vector<std::uint8_t> extent;  // VerifyManifest's read buffer
  std::uint64_t length = 0;         // log blocks the transaction occupies
};

namespace {

void ChainCrc(std::uint32_t* chained, const std::uint8_t* sealed_block) {
  std::uint8_t le[4];
  EncodeLE32(le, DecodeLE32(sealed_block + 8));
  *chained = Crc32cExtend(*chained, le, 4);
}

}  // namespace

Result<bool> JournalLog::ReadTransaction(std::uint64_t pos, std::uint64_t room, std::uint64_t seq,
                                         TxnBuf* t) noexcept {
  std::uint64_t off = 0;  // blocks consumed by this transaction so far
  std::uint32_t desc_index = 0;
  std::uint32_t man_index = 0;
  std::uint32_t chained = 0;
  t->data.clear();
  t->logged.clear();
  t->manifest.clear();
  t->length = 0;
  for (;;) {
    if (off + 1 > room) return false;
    Status st = ReadLogBlock(pos + off, t->blk.data());
    if (!st.ok()) {
      if (st.IsIOError()) return st;
      return false;
    }
    // Descriptors come first, then manifest blocks, then the commit record.
    const BlockType type = format::DecodeMetaHeader(t->blk.data()).type;
    BlockType want = man_index > 0 ? BlockType::kJournalManifest : BlockType::kJournalDescriptor;
    const bool trailer = type == BlockType::kJournalCommit || type == BlockType::kJournalManifest;
    if (desc_index > 0 && trailer) want = type;
    Expect e{want, LogBlockNo(pos + off), &sb_.uuid, true, seq};
    if (!format::VerifyMetaBlock(t->blk.data(), bs_, e).ok()) return false;
    if (want == BlockType::kJournalCommit) {
      auto c = format::DecodeCommit(t->blk.data(), bs_);
      if (!c.ok() || c->descriptors != desc_index || c->data_blocks != t->logged.size() ||
          c->manifest_blocks != man_index || c->chained_crc != chained)
        return false;
      t->length = off + 1;
      for (std::size_t i = 0; i < t->logged.size(); ++i)
        t->logged[i].data = t->data.data() + i * bs_;
      return true;
    }
    if (want == BlockType::kJournalManifest) {
      auto m = format::DecodeManifest(t->blk.data(), bs_, t->mentries.data());
      if (!m.ok() || m->index != man_index) return false;
      for (std::uint32_t i = 0; i < m->count; ++i) {
        // File data lives in the shards, below the mirror superblock; a checksummed manifest
        // naming anything else is damage or a hostile image, not a crash.
        if (!ManifestEntryValid(t->mentries[i], sb_))
          return Status::Corruption("journal: manifest names an extent outside the data area");
        t->manifest.push_back(t->mentries[i]);
      }
      ChainCrc(&chained, t->blk.data());
      off += 1;
      ++man_index;
      continue;
    }
    auto d = format::DecodeDescriptor(t->blk.data(), bs_, t->entries.data());
    if (!d.ok() || d->index != desc_index) return false;
    ChainCrc(&chained, t->blk.data());
    if (off + 1 + d->count + 1 > room) return false;
    PERMFS_ASSIGN_OR_RETURN(bool intact, ReadLoggedImages(pos + off + 1, d->count, t));
    if (!intact) return false;
    off += 1 + d->count;
    ++desc_index;
  }
}

Result<bool> JournalLog::ReadLoggedImages(std::uint64_t offset, std::uint32_t count,
                                          TxnBuf* t) noexcept {
  const std::size_t base = t->data.size();
  t->data.resize(base + static_cast<std::size_t>(count) * bs_);
  for (std::uint32_t i = 0; i < count; ++i) {
    std::uint8_t* p = t->data.data() + base + static_cast<std::size_t>(i) * bs_;
    Status rs = ReadLogBlock(offset + i, p);
    if (!rs.ok()) {
      if (rs.IsIOError()) return rs;
      return false;
    }
    const std::uint64_t home = t->entries[i].home_block;
    // Only the volume root and shard blocks are journaled: never the superblock copies
    // or the journal region, whatever a (hostile) log says.
    const bool home_ok = home == sb_.root_block ||
                         (home >= sb_.shard_start && home < sb_.mirror_block());
    if (!home_ok) return Status::Corruption("journal: transaction targets a reserved block");
    if (Crc32c(p, bs_) != t->entries[i].crc) return false;
    t->logged.push_back(LogBlock{home, nullptr});
  }
  return true;
}

Result<std::size_t> JournalLog::VerifyManifest(TxnBuf* t, const char** why) noexcept {
  std::vector<std::uint8_t>* buf = &t->extent;
  for (std::size_t i = 0; i < t->manifest.size(); ++i) {
    const format::ManifestEntry& me = t->manifest[i];
    const std::uint64_t blocks = (me.length + bs_ - 1) / bs_;
    buf->resize(static_cast<std::size_t>(blocks) * bs_);
    // A read error is not a crash artefact: fail the mount (nothing is lost; it can be
    // retried) rather than silently drop acknowledged transactions.
    PERMFS_RETURN_IF_ERROR(io_->Read(me.block, blocks, buf->data()));
    if (Crc32c(buf->data(), me.length) != me.crc) {
      *why = "CRC32C mismatch";
      return i;
    }
  }
  return t->manifest.size();
}

Result<std::uint64_t> JournalLog::CountFrom(std::uint64_t pos, std::uint64_t used,
                                            std::uint64_t seq, TxnBuf* t) noexcept {
  std::uint64_t n = 0;
  for (bool more = true; more;) {
    ++n;
    pos = (pos + t->length) % log_blocks_;
    used += t->length;
    PERMFS_ASSIGN_OR_RETURN(more, ReadTransaction(pos, log_blocks_ - used, seq + n, t));
  }
  return n;
}

Status JournalLog::Scan(ReplayFn fn, void* ctx, ScanResult* out) noexcept {
  TxnBuf t;
  t.entries.resize(format::DescriptorCapacity(bs_));
  t.mentries.resize(format::ManifestCapacity(bs_));
  t.blk.resize(bs_);
  std::uint64_t pos = header_.tail_offset;
  std::uint64_t used = 0;
  std::uint64_t seq = header_.tail_seq;
  ScanResult res;
  res.first_seq = seq;

  for (;;) {
    PERMFS_ASSIGN_OR_RETURN(bool complete, ReadTransaction(pos, log_blocks_ - used, seq, &t));
    if (!complete) break;
    const char* why = "";
    PERMFS_ASSIGN_OR_RETURN(const std::size_t bad, VerifyManifest(&t, &why));
    if (bad < t.manifest.size()) {
      // The data did not reach the disk before the crash: this transaction was never durable,
      // so neither was any later one. Count them (their sequences must not be reused).
      res.rejected_seq = seq;
      const format::ManifestEntry me = t.manifest[bad];
      PERMFS_ASSIGN_OR_RETURN(res.discarded, CountFrom(pos, used, seq, &t));
      PERMFS_LOG(kWarn, "journal: transaction ", seq, " references file data that is not on ",
                 "the disk (", why, ", block ", me.block, ", ", me.length, " bytes): it and ",
                 res.discarded - 1, " later transactions are not replayed");
      break;
    }
    if (fn) PERMFS_RETURN_IF_ERROR(fn(ctx, seq, t.logged.data(), t.logged.size()));
    res.transactions++;
    res.blocks += t.logged.size();
    res.manifest_entries += t.manifest.size();
    pos = (pos + t.length) % log_blocks_;
    used += t.length;
    ++seq;
  }
  head_ = pos;
  __atomic_store_n(&used_, used, __ATOMIC_RELAXED);
  next_seq_ = seq;
  res.next_seq = seq;
  res.end_offset = pos;
  res.end_seq = seq + res.discarded;
  if (out) *out = res;
  return Status();
}

Status JournalLog::WriteRun(std::uint64_t offset, const std::uint8_t* buf,
                            std::uint64_t n) noexcept {
  offset %= log_blocks_;
  std::uint64_t first = log_blocks_ - offset;
  if (first > n) first = n;
  PERMFS_RETURN_IF_ERROR(io_->Write(LogBlockNo(offset), first, buf));
  if (n > first) PERMFS_RETURN_IF_ERROR(io_->Write(LogBlockNo(0), n - first, buf + first * bs_));
  return Status();
}

// The header of a log record block of transaction `seq` at log offset `offset`.
void JournalLog::HeadLogBlock(BlockType type, std::uint64_t offset, std::uint64_t seq,
                              std::uint8_t* blk) const noexcept {
  MetaHeader mh;
  mh.type = type;
  mh.blockno = LogBlockNo(offset);
  mh.owner = seq;
  mh.generation = seq;
  mh.uuid = sb_.uuid;
  format::EncodeMetaHeader(mh, blk);
}

void JournalLog::EncodeManifestBlocks(std::uint64_t seq, std::uint64_t offset,
                                      const format::ManifestEntry* manifest, std::size_t n,
                                      std::uint8_t* out, std::uint32_t* chained) noexcept {
  const std::size_t cap = format::ManifestCapacity(bs_);
  std::uint32_t index = 0;
  for (std::size_t done = 0; done < n; ++index) {
    const std::size_t k = n - done < cap ? n - done : cap;
    std::uint8_t* blk = out + static_cast<std::size_t>(index) * bs_;
    HeadLogBlock(BlockType::kJournalManifest, offset + index, seq, blk);
    format::ManifestPayload mp{index, static_cast<std::uint32_t>(k)};
    format::EncodeManifest(blk, bs_, mp, manifest + done);
    format::SealMetaBlock(blk, bs_);
    ChainCrc(chained, blk);
    done += k;
  }
}

Status JournalLog::Append(std::uint64_t seq, const LogBlock* blocks, std::size_t count,
                          const format::ManifestEntry* manifest,
                          std::size_t manifest_count) noexcept {
  if (seq != next_seq_) return Status::InvalidArgument("journal: out-of-order sequence");
  if (count == 0) return Status::InvalidArgument("journal: empty transaction");
  if (manifest_count != 0 && manifest == nullptr)
    return Status::InvalidArgument("journal: manifest entries missing");
  for (std::size_t i = 0; i < manifest_count; ++i)
    if (!ManifestEntryValid(manifest[i], sb_))
      return Status::InvalidArgument("journal: manifest extent outside the data area");
  const std::uint64_t total = BlocksNeeded(count, manifest_count);
  if (total > free_blocks()) return Status::NoSpace("journal full");
  const std::uint64_t cap = format::DescriptorCapacity(bs_);
  const std::uint64_t mcap = format::ManifestCapacity(bs_);
  buf_.assign(total * bs_, 0);
  std::vector<format::DescriptorEntry> entries(cap);
  std::uint64_t off = 0;
  std::uint32_t chained = 0;
  std::uint32_t desc_index = 0;
  for (std::size_t done = 0; done < count;) {
    std::size_t n = count - done < cap ? count - done : cap;
    std::uint8_t* desc = buf_.data() + off * bs_;
    for (std::size_t i = 0; i < n; ++i) {
      const LogBlock& lb = blocks[done + i];
      std::uint8_t* dst = buf_.data() + (off + 1 + i) * bs_;
      CopyBytes(dst, lb.data, bs_);
      entries[i].home_block = lb.home;
      entries[i].crc = Crc32c(dst, bs_);
      entries[i].flags = 0;
    }
    HeadLogBlock(BlockType::kJournalDescriptor, head_ + off, seq, desc);
    format::DescriptorPayload dp{desc_index, static_cast<std::uint32_t>(n)};
    format::EncodeDescriptor(desc, bs_, dp, entries.data());
    format::SealMetaBlock(desc, bs_);
    ChainCrc(&chained, desc);
    off += 1 + n;
    done += n;
    ++desc_index;
  }
  const std::uint64_t manifest_blocks = (manifest_count + mcap - 1) / mcap;
  EncodeManifestBlocks(seq, head_ + off, manifest, manifest_count, buf_.data() + off * bs_,
                       &chained);
  off += manifest_blocks;
  std::uint8_t* commit = buf_.data() + off * bs_;
  HeadLogBlock(BlockType::kJournalCommit, head_ + off, seq, commit);
  format::CommitPayload cp;
  cp.descriptors = desc_index;
  cp.data_blocks = static_cast<std::uint32_t>(count);
  cp.chained_crc = chained;
  cp.manifest_blocks = static_cast<std::uint32_t>(manifest_blocks);
  cp.commit_time_ns = port::WallClockNanos();
  format::EncodeCommit(commit, bs_, cp);
  format::SealMetaBlock(commit, bs_);
  PERMFS_ASSERT(off + 1 == total);

  // The manifest's data was written (completed) before this call: the one flush below makes it
  // durable together with the log records.
  PERMFS_RETURN_IF_ERROR(WriteRun(head_, buf_.data(), total));
  PERMFS_RETURN_IF_ERROR(io_->Flush());
  head_ = (head_ + total) % log_blocks_;
  __atomic_store_n(&used_, used_ + total, __ATOMIC_RELAXED);
  ++next_seq_;
  return Status();
}

Status JournalLog::SetTail(std::uint64_t offset, std::uint64_t seq,
                           std::uint64_t root_generation) noexcept {
  if (offset >= log_blocks_) return Status::InvalidArgument("journal: tail beyond log");
  format::JournalHeader h = header_;
  h.write_count += 1;
  h.tail_offset = offset;
  h.tail_seq = seq;
  h.root_generation = root_generation;
  PERMFS_RETURN_IF_ERROR(WriteHeaderSlot(h));
  header_ = h;
  __atomic_store_n(&used_, offset == head_ ? 0 : (head_ + log_blocks_ - offset) % log_blocks_,
                   __ATOMIC_RELAXED);
  return Status();
}

}  // namespace permfs::journal
