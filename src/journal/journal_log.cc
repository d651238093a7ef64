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

std::uint64_t JournalLog::BlocksNeeded(std::uint64_t data_blocks) const noexcept {
  std::uint64_t cap = format::DescriptorCapacity(bs_);
  std::uint64_t descs = data_blocks == 0 ? 1 : (data_blocks + cap - 1) / cap;
  return descs + data_blocks + 1;
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

Status JournalLog::Scan(ReplayFn fn, void* ctx, ScanResult* out) noexcept {
  const std::uint64_t cap = format::DescriptorCapacity(bs_);
  std::vector<format::DescriptorEntry> entries(cap);
  std::vector<std::uint8_t> blk(bs_);
  std::vector<std::uint8_t> data;     // the transaction's data blocks
  std::vector<LogBlock> logged;
  std::uint64_t pos = header_.tail_offset;
  std::uint64_t used = 0;
  std::uint64_t seq = header_.tail_seq;
  ScanResult res;
  res.first_seq = seq;

  for (;;) {
    // One transaction: descriptors with their data, then the commit.
    std::uint64_t off = 0;  // blocks consumed by this transaction so far
    std::uint32_t desc_index = 0;
    std::uint32_t chained = 0;
    data.clear();
    logged.clear();
    bool complete = false;
    for (;;) {
      if (used + off + 1 > log_blocks_) break;
      Status st = ReadLogBlock(pos + off, blk.data());
      if (!st.ok()) {
        if (st.IsIOError()) return st;
        break;
      }
      MetaHeader h = format::DecodeMetaHeader(blk.data());
      BlockType want = h.type == BlockType::kJournalCommit && desc_index > 0
                           ? BlockType::kJournalCommit
                           : BlockType::kJournalDescriptor;
      Expect e{want, LogBlockNo(pos + off), &sb_.uuid, true, seq};
      if (!format::VerifyMetaBlock(blk.data(), bs_, e).ok()) break;
      if (want == BlockType::kJournalCommit) {
        auto c = format::DecodeCommit(blk.data(), bs_);
        if (!c.ok() || c->descriptors != desc_index || c->data_blocks != logged.size() ||
            c->chained_crc != chained)
          break;
        off += 1;
        complete = true;
        break;
      }
      auto d = format::DecodeDescriptor(blk.data(), bs_, entries.data());
      if (!d.ok() || d->index != desc_index) break;
      std::uint32_t dcrc = DecodeLE32(blk.data() + 8);
      std::uint8_t le[4];
      EncodeLE32(le, dcrc);
      chained = Crc32cExtend(chained, le, 4);
      if (used + off + 1 + d->count + 1 > log_blocks_) break;
      std::size_t base = data.size();
      data.resize(base + static_cast<std::size_t>(d->count) * bs_);
      bool good = true;
      for (std::uint32_t i = 0; i < d->count; ++i) {
        std::uint8_t* p = data.data() + base + static_cast<std::size_t>(i) * bs_;
        Status rs = ReadLogBlock(pos + off + 1 + i, p);
        if (!rs.ok()) {
          if (rs.IsIOError()) return rs;
          good = false;
          break;
        }
        const std::uint64_t home = entries[i].home_block;
        // Only the volume root and shard blocks are journaled: never the superblock copies
        // or the journal region, whatever a (hostile) log says.
        const bool home_ok = home == sb_.root_block ||
                             (home >= sb_.shard_start && home < sb_.mirror_block());
        if (!home_ok) return Status::Corruption("journal: transaction targets a reserved block");
        if (Crc32c(p, bs_) != entries[i].crc) {
          good = false;
          break;
        }
        logged.push_back(LogBlock{entries[i].home_block, nullptr});
      }
      if (!good) break;
      off += 1 + d->count;
      ++desc_index;
    }
    if (!complete) break;
    for (std::size_t i = 0; i < logged.size(); ++i)
      logged[i].data = data.data() + i * bs_;
    if (fn) PERMFS_RETURN_IF_ERROR(fn(ctx, seq, logged.data(), logged.size()));
    res.transactions++;
    res.blocks += logged.size();
    pos = (pos + off) % log_blocks_;
    used += off;
    ++seq;
  }
  head_ = pos;
  __atomic_store_n(&used_, used, __ATOMIC_RELAXED);
  next_seq_ = seq;
  res.next_seq = seq;
  res.end_offset = pos;
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

Status JournalLog::Append(std::uint64_t seq, const LogBlock* blocks, std::size_t count) noexcept {
  if (seq != next_seq_) return Status::InvalidArgument("journal: out-of-order sequence");
  if (count == 0) return Status::InvalidArgument("journal: empty transaction");
  const std::uint64_t total = BlocksNeeded(count);
  if (total > free_blocks()) return Status::NoSpace("journal full");
  const std::uint64_t cap = format::DescriptorCapacity(bs_);
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
    MetaHeader mh;
    mh.type = BlockType::kJournalDescriptor;
    mh.blockno = LogBlockNo(head_ + off);
    mh.owner = seq;
    mh.generation = seq;
    mh.uuid = sb_.uuid;
    format::EncodeMetaHeader(mh, desc);
    format::DescriptorPayload dp{desc_index, static_cast<std::uint32_t>(n)};
    format::EncodeDescriptor(desc, bs_, dp, entries.data());
    format::SealMetaBlock(desc, bs_);
    std::uint8_t le[4];
    EncodeLE32(le, DecodeLE32(desc + 8));
    chained = Crc32cExtend(chained, le, 4);
    off += 1 + n;
    done += n;
    ++desc_index;
  }
  std::uint8_t* commit = buf_.data() + off * bs_;
  MetaHeader mh;
  mh.type = BlockType::kJournalCommit;
  mh.blockno = LogBlockNo(head_ + off);
  mh.owner = seq;
  mh.generation = seq;
  mh.uuid = sb_.uuid;
  format::EncodeMetaHeader(mh, commit);
  format::CommitPayload cp;
  cp.descriptors = desc_index;
  cp.data_blocks = static_cast<std::uint32_t>(count);
  cp.chained_crc = chained;
  cp.commit_time_ns = port::WallClockNanos();
  format::EncodeCommit(commit, bs_, cp);
  format::SealMetaBlock(commit, bs_);
  PERMFS_ASSERT(off + 1 == total);

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
