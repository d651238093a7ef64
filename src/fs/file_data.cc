// File data operations of Filesystem: regular files are chunk maps (record index -> chunk).
// Truncate, punch hole, zero range and reclaim all go through UnmapRecords().
#include "fs/filesystem.h"
#include "fs/txn_runner.h"
#include "util/bytes.h"
#include "util/coding.h"

namespace permfs::fs {

using btree::Slice;
using journal::ReadView;
using journal::WriteTxn;

namespace {

constexpr std::size_t kRecordsPerTxn = 64;
constexpr std::size_t kUnmapPerTxn = 128;

// Records per transaction, bounded by what the journal can hold: a record may dirty a chunk-map
// leaf, two chunk-index leaves (new and old id, random keys) and bitmap blocks, and the running
// transaction may already hold up to a quarter of the maximum (commit threshold). With a small
// journal (64 blocks, the default below 16 MiB) 64 records per handle overflow it (NoSpace).
std::size_t PerTxn(volume::Volume* v, std::size_t cap, std::size_t blocks_per_record) {
  const std::size_t n = static_cast<std::size_t>(v->meta()->max_txn_blocks() / 2 / blocks_per_record);
  return n < 1 ? 1 : n > cap ? cap : n;
}

struct MapItem {
  std::uint64_t index;
  ChunkMapEntry entry;
};

struct ScanCtx {
  std::vector<MapItem>* out;
  std::uint32_t rs;
  std::size_t limit;
  Status st;
};

bool CollectMap(void* p, const Slice& k, const Slice& v) {
  auto* c = static_cast<ScanCtx*>(p);
  if (k.size != 16) {
    c->st = Status::Corruption("chunk map key has the wrong size");
    return false;
  }
  auto e = ChunkMapEntry::Decode(v.data, v.size, c->rs);
  if (!e.ok()) {
    c->st = e.status();
    return false;
  }
  c->out->push_back(MapItem{KeyU64(k.data + 8), *e});
  return c->out->size() < c->limit;
}

std::int64_t Now() { return port::WallClockNanos(); }

}  // namespace

// The inode of a file whose data is about to be read or changed: EISDIR for a directory,
// EINVAL for anything else that is not a regular file. Caller holds the inode's stripe lock.
Result<InodeRecord> Filesystem::LoadRegularFile(std::uint64_t ino) noexcept {
  ReadView view(vol_->meta());
  PERMFS_ASSIGN_OR_RETURN(InodeRecord in, LoadInode(view, ino));
  if (IsDir(in.mode)) return Status(Code::kIsDirectory, "is a directory");
  if (!IsRegular(in.mode)) return Status::InvalidArgument("not a regular file");
  return in;
}

// Reads [off, off+len) clamped to `size` into out; caller holds the inode's stripe lock.
static Status ReadRange(volume::Volume* vol, store::ChunkStore* store, btree::BTree* chunks,
                        std::uint32_t rs, std::uint64_t ino, std::uint64_t off, std::size_t n,
                        std::uint8_t* out) {
  if (n == 0) return Status();
  const std::uint64_t first = off / rs, last = (off + n - 1) / rs;
  std::vector<MapItem> items;
  std::vector<store::ChunkLocation> locs;
  {
    ReadView view(vol->meta());
    ScanCtx c{&items, rs, ~std::size_t{0}, Status()};
    PERMFS_RETURN_IF_ERROR(chunks->Scan(view, Slice(ChunkKey(ino, first)),
                                        Slice(ChunkKey(ino, last + 1)), &CollectMap, &c));
    PERMFS_RETURN_IF_ERROR(c.st);
    locs.reserve(items.size());
    for (const MapItem& it : items) {
      PERMFS_ASSIGN_OR_RETURN(store::ChunkLocation loc, store->Locate(view, it.entry.id));
      if (loc.length != it.entry.length)
        return Status::Corruption("chunk map length disagrees with the chunk index");
      locs.push_back(loc);
    }
  }
  // Chunks are read straight into `out`; only the holes between them (sparse ranges, short
  // last records) are zero-filled. Items come in index order.
  std::uint64_t done = off;  // bytes before this are written
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::uint64_t rec_start = items[i].index * rs;
    const std::uint64_t a = off > rec_start ? off : rec_start;
    const std::uint64_t rec_end = rec_start + items[i].entry.length;
    const std::uint64_t b = (off + n) < rec_end ? (off + n) : rec_end;
    if (a >= b) continue;
    if (a > done) FillBytes(out + (done - off), 0, static_cast<std::size_t>(a - done));
    PERMFS_RETURN_IF_ERROR(store->ReadLocated(locs[i], static_cast<std::uint32_t>(a - rec_start),
                                              static_cast<std::uint32_t>(b - a),
                                              out + (a - off)));
    done = b;
  }
  if (off + n > done) FillBytes(out + (done - off), 0, static_cast<std::size_t>(off + n - done));
  return Status();
}

Result<std::size_t> Filesystem::Read(std::uint64_t ino, std::uint64_t off, std::size_t len,
                                     std::uint8_t* out) noexcept {
  SharedLock l(InodeLock(ino));
  PERMFS_ASSIGN_OR_RETURN(InodeRecord in, LoadRegularFile(ino));
  if (off >= in.size) return std::size_t{0};
  std::size_t n = len;
  if (in.size - off < n) n = static_cast<std::size_t>(in.size - off);
  PERMFS_RETURN_IF_ERROR(ReadRange(vol_, &store_, &chunks_, rs_, ino, off, n, out));
  return n;
}

Result<std::string> Filesystem::ReadRecord(std::uint64_t ino, std::uint64_t index,
                                           std::uint64_t size) noexcept {
  const std::uint64_t start = index * rs_;
  std::string buf;
  if (size <= start) return buf;
  std::uint64_t n = size - start;
  if (n > rs_) n = rs_;
  buf.assign(static_cast<std::size_t>(n), '\0');
  PERMFS_RETURN_IF_ERROR(ReadRange(vol_, &store_, &chunks_, rs_, ino, start,
                                   static_cast<std::size_t>(n),
                                   reinterpret_cast<std::uint8_t*>(buf.data())));
  return buf;
}

std::uint64_t Filesystem::PlacementAfter(std::uint64_t ino, std::uint64_t index) noexcept {
  if (index == 0) return 0;
  ReadView view(vol_->meta());
  std::string value;
  if (!chunks_.Get(view, Slice(ChunkKey(ino, index - 1)), &value).ok()) return 0;
  auto e = ChunkMapEntry::Decode(reinterpret_cast<const std::uint8_t*>(value.data()),
                                 value.size(), rs_);
  if (!e.ok()) return 0;  // only a hint: the read path reports a damaged map
  auto loc = store_.Locate(view, e->id);
  return loc.ok() ? loc->block + loc->block_count : 0;
}

// Commits whole records in one transaction; caller holds the stripe lock. The size becomes
// `exact_size` if it is not ~0, else at least `min_size`.
Status Filesystem::CommitRecordsLocked(std::uint64_t ino, const RecordWrite* recs, std::size_t n,
                                       std::uint64_t min_size, std::uint64_t exact_size,
                                       bool touch, alloc::Draw draw) noexcept {
  volume::Volume* vol = vol_;
  store::ChunkStore* store = &store_;
  btree::BTree* chunks = &chunks_;
  const std::uint32_t rs = rs_;
  for (int attempt = 0;; ++attempt) {
    std::vector<store::PreparedChunk> prepared(n);
    Status st;
    // A file's records go one after another on the device, so a sequential read is sequential
    // I/O (and a host's readahead on an image file helps instead of fetching other files' data).
    // `near` is where record `near_for` goes; a run of records (holes included) continues it.
    std::uint64_t near = 0, near_for = ~0ull;
    for (std::size_t i = 0; i < n && st.ok(); ++i) {
      if (recs[i].len > rs) {
        st = Status::InvalidArgument("record larger than the record size");
        break;
      }
      const bool in_run = recs[i].index == near_for;
      near_for = recs[i].index + 1;
      if (recs[i].len == 0 || IsAllZero(recs[i].data, recs[i].len)) continue;  // a hole
      if (!in_run) near = PlacementAfter(ino, recs[i].index);
      auto p = store->Prepare(recs[i].data, recs[i].len, draw, near, recs[i].merged);
      if (!p.ok()) {
        st = p.status();
      } else {
        if (p->extent.count > 0) near = p->extent.end();
        prepared[i] = std::move(*p);
      }
    }
    if (st.ok()) {
      auto t = vol->meta()->Begin();
      if (!t.ok()) {
        st = t.status();
      } else {
        t->set_use_reserve(draw == alloc::Draw::kPrivileged);
        t->set_use_promised(draw == alloc::Draw::kPromised);
        st = [&]() -> Status {
          PERMFS_ASSIGN_OR_RETURN(InodeRecord in, LoadInode(*t, ino));
          if (!IsRegular(in.mode)) return Status::InvalidArgument("not a regular file");
          for (std::size_t i = 0; i < n; ++i) {
            const std::string key = ChunkKey(ino, recs[i].index);
            std::string old;
            Status gs = chunks->Get(*t, Slice(key), &old);
            if (!gs.ok() && !gs.IsNotFound()) return gs;
            bool had_old = false;
            ChunkMapEntry oe;
            if (gs.ok()) {
              PERMFS_ASSIGN_OR_RETURN(
                  oe, ChunkMapEntry::Decode(reinterpret_cast<const std::uint8_t*>(old.data()),
                                            old.size(), rs));
              had_old = true;
            }
            if (prepared[i].active) {
              // Reference the new chunk before dropping the old one: rewriting a record with
              // identical content must not free the chunk in between.
              ChunkMapEntry ne;
              ne.id = prepared[i].id;
              ne.length = static_cast<std::uint32_t>(recs[i].len);
              PERMFS_RETURN_IF_ERROR(store->Commit(*t, prepared[i], recs[i].data));
              std::uint8_t enc[ChunkMapEntry::kEncodedSize];
              ne.Encode(enc);
              PERMFS_RETURN_IF_ERROR(chunks->Put(*t, Slice(key), Slice(enc, sizeof enc)));
              in.data_bytes += ne.length;
            } else if (had_old) {
              PERMFS_RETURN_IF_ERROR(chunks->Delete(*t, Slice(key)));
            }
            if (had_old) {
              PERMFS_RETURN_IF_ERROR(store->Unref(*t, oe.id));
              if (recs[i].merged && !(prepared[i].id == oe.id))
                store->DropCached(oe.id);
              in.data_bytes -= in.data_bytes >= oe.length ? oe.length : in.data_bytes;
            }
          }
          if (exact_size != ~0ull) in.size = exact_size;
          else if (min_size > in.size) in.size = min_size;
          if (touch) in.mtime_ns = in.ctime_ns = Now();
          return StoreInode(*t, in);
        }();
        if (st.ok()) st = t->Commit();
        else t->Abort();
      }
    }
    for (store::PreparedChunk& p : prepared)
      if (p.active) store->Abandon(p);
    if (st.IsNoSpace() && attempt == 0 && vol->allocator()->HasPendingFrees()) {
      PERMFS_RETURN_IF_ERROR(vol->meta()->SyncAndCheckpoint());
      continue;
    }
    return st;
  }
}

Status Filesystem::WriteRecords(std::uint64_t ino, const RecordWrite* recs, std::size_t n,
                                std::uint64_t min_size, bool touch_mtime, bool promised) noexcept {
  if (min_size > kMaxFileSize) return Status(Code::kFileTooBig, "file too large");
  ExclusiveLock l(InodeLock(ino));
  return CommitRecordsLocked(ino, recs, n, min_size, ~0ull, touch_mtime,
                             promised ? alloc::Draw::kPromised : alloc::Draw::kOrdinary);
}

// A record's chunk, plus one block for the chunk-map and chunk-index entries that come with it
// (a leaf holds dozens of entries, so one block per record covers the splits a batch causes).
std::uint64_t Filesystem::RecordPromiseBlocks(std::uint64_t len) const noexcept {
  const std::uint64_t bs = vol_->sb().block_size;
  return (len + bs - 1) / bs + 1;
}

bool Filesystem::PromiseBlocks(std::uint64_t blocks) noexcept {
  alloc::Allocator* a = vol_->allocator();
  if (a->Promise(blocks)) return true;
  // Space freed by committed transactions becomes available at a checkpoint (a file deleted to
  // make room): take one and ask again. The caller holds no ReadView or WriteTxn.
  if (!a->HasPendingFrees() || !vol_->meta()->SyncAndCheckpoint().ok()) return false;
  return a->Promise(blocks);
}

bool Filesystem::SpaceIsTight() const noexcept {
  const std::uint64_t tight = vol_->sb().block_count / 50 + 64 * RecordPromiseBlocks(rs_);
  return vol_->allocator()->unpromised_blocks() < tight;
}

void Filesystem::UnpromiseBlocks(std::uint64_t blocks) noexcept {
  if (blocks > 0) vol_->allocator()->Unpromise(blocks);
}

Status Filesystem::Write(std::uint64_t ino, std::uint64_t off, const std::uint8_t* data,
                         std::size_t len) noexcept {
  if (len == 0) return Status();
  if (off > kMaxFileSize || len > kMaxFileSize - off)
    return Status(Code::kFileTooBig, "file too large");
  ExclusiveLock l(InodeLock(ino));
  PERMFS_ASSIGN_OR_RETURN(InodeRecord in, LoadRegularFile(ino));
  const std::uint64_t end = off + len;
  std::uint64_t r = off / rs_;
  const std::uint64_t last = (end - 1) / rs_;
  while (r <= last) {
    std::vector<std::string> bufs;
    std::vector<RecordWrite> recs;
    for (const std::size_t per_txn = PerTxn(vol_, kRecordsPerTxn, 4); r <= last && bufs.size() < per_txn; ++r) {
      const std::uint64_t rec_start = r * rs_;
      const std::uint64_t cur_len = in.size > rec_start ? ((in.size - rec_start) < rs_ ? in.size - rec_start : rs_) : 0;
      const std::uint64_t lo = (off > rec_start ? off : rec_start) - rec_start;
      const std::uint64_t hi = (end < rec_start + rs_ ? end : rec_start + rs_) - rec_start;
      const std::uint64_t new_len = cur_len > hi ? cur_len : hi;
      std::string buf;
      if ((lo > 0 || hi < new_len) && cur_len > 0) {
        PERMFS_ASSIGN_OR_RETURN(buf, ReadRecord(ino, r, in.size));
      }
      buf.resize(static_cast<std::size_t>(new_len), '\0');
      CopyBytes(buf.data() + lo, data + (rec_start + lo - off), static_cast<std::size_t>(hi - lo));
      bufs.push_back(std::move(buf));
    }
    for (std::size_t i = 0; i < bufs.size(); ++i) {
      recs.push_back(RecordWrite{r - bufs.size() + i,
                                 reinterpret_cast<const std::uint8_t*>(bufs[i].data()), bufs[i].size()});
    }
    const std::uint64_t batch_end = (r * rs_ < end) ? r * rs_ : end;
    PERMFS_RETURN_IF_ERROR(CommitRecordsLocked(ino, recs.data(), recs.size(), batch_end, ~0ull, true));
    if (batch_end > in.size) in.size = batch_end;
  }
  return Status();
}

Status Filesystem::CloneRecords(std::uint64_t src, std::uint64_t src_first, std::uint64_t dst,
                                std::uint64_t dst_first, std::uint64_t count,
                                std::uint64_t min_size, std::uint64_t* done) noexcept {
  *done = 0;
  if (count == 0) return Status();
  const std::uint64_t max_records = kMaxFileSize / rs_;
  if (min_size > kMaxFileSize || dst_first > max_records || count > max_records - dst_first ||
      src_first > max_records || count > max_records - src_first)
    return Status(Code::kFileTooBig, "file too large");
  if (src == dst && src_first < dst_first + count && dst_first < src_first + count)
    return Status::InvalidArgument("overlapping records in one file");
  ExclusiveLock l(InodeLock(dst));
  PERMFS_RETURN_IF_ERROR(LoadRegularFile(src).status());
  // A record may dirty dst's chunk-map leaf and two chunk-index leaves (the chunk it gains, the
  // one it loses), as a promoted record does.
  const std::size_t per = PerTxn(vol_, kRecordsPerTxn, 4);
  while (*done < count) {
    const std::uint64_t k0 = *done;
    const std::uint64_t k1 = count - k0 < per ? count : k0 + per;
    PERMFS_RETURN_IF_ERROR(RunTxn([&](WriteTxn& t) -> Status {
      PERMFS_ASSIGN_OR_RETURN(InodeRecord in, LoadInode(t, dst));
      if (IsDir(in.mode)) return Status(Code::kIsDirectory, "is a directory");
      if (!IsRegular(in.mode)) return Status::InvalidArgument("not a regular file");
      std::vector<MapItem> from, old;
      ScanCtx cf{&from, rs_, ~std::size_t{0}, Status()};
      PERMFS_RETURN_IF_ERROR(chunks_.Scan(t, Slice(ChunkKey(src, src_first + k0)),
                                          Slice(ChunkKey(src, src_first + k1)), &CollectMap, &cf));
      PERMFS_RETURN_IF_ERROR(cf.st);
      ScanCtx co{&old, rs_, ~std::size_t{0}, Status()};
      PERMFS_RETURN_IF_ERROR(chunks_.Scan(t, Slice(ChunkKey(dst, dst_first + k0)),
                                          Slice(ChunkKey(dst, dst_first + k1)), &CollectMap, &co));
      PERMFS_RETURN_IF_ERROR(co.st);
      const std::uint64_t batch_end =
          min_size < (dst_first + k1) * rs_ ? min_size : (dst_first + k1) * rs_;
      const std::uint64_t new_size = in.size > batch_end ? in.size : batch_end;
      // The new references first: a record cloned onto a record with the same chunk must not
      // free it in between.
      for (const MapItem& it : from) {
        const std::uint64_t di = dst_first + (it.index - src_first);
        if (di * rs_ + it.entry.length > new_size)
          return Status::InvalidArgument("cloned record reaches past the file's size");
        PERMFS_RETURN_IF_ERROR(store_.Ref(t, it.entry.id));
        std::uint8_t enc[ChunkMapEntry::kEncodedSize];
        it.entry.Encode(enc);
        PERMFS_RETURN_IF_ERROR(chunks_.Put(t, Slice(ChunkKey(dst, di)), Slice(enc, sizeof enc)));
        in.data_bytes += it.entry.length;
      }
      std::size_t f = 0;  // both lists are in index order
      for (const MapItem& it : old) {
        const std::uint64_t si = src_first + (it.index - dst_first);
        while (f < from.size() && from[f].index < si) ++f;
        if (f == from.size() || from[f].index != si)
          PERMFS_RETURN_IF_ERROR(chunks_.Delete(t, Slice(ChunkKey(dst, it.index))));
        PERMFS_RETURN_IF_ERROR(store_.Unref(t, it.entry.id));
        in.data_bytes -= in.data_bytes >= it.entry.length ? it.entry.length : in.data_bytes;
      }
      in.size = new_size;
      in.mtime_ns = in.ctime_ns = Now();
      return StoreInode(t, in);
    }));
    *done = k1;
  }
  return Status();
}

Status Filesystem::UnmapRecords(std::uint64_t ino, std::uint64_t first,
                                std::uint64_t last) noexcept {
  const std::string to = last == ~0ull ? ChunkKey(ino + 1, 0) : ChunkKey(ino, last);
  for (;;) {
    std::vector<MapItem> items;
    {
      ReadView view(vol_->meta());
      ScanCtx c{&items, rs_, PerTxn(vol_, kUnmapPerTxn, 2), Status()};
      PERMFS_RETURN_IF_ERROR(chunks_.Scan(view, Slice(ChunkKey(ino, first)), Slice(to),
                                          &CollectMap, &c));
      PERMFS_RETURN_IF_ERROR(c.st);
    }
    if (items.empty()) return Status();
    PERMFS_RETURN_IF_ERROR(RunFreeingTxn([&](WriteTxn& t) -> Status {
      auto in = LoadInode(t, ino);
      if (!in.ok() && !in.status().IsNotFound()) return in.status();
      std::uint64_t freed = 0;
      for (const MapItem& it : items) {
        PERMFS_RETURN_IF_ERROR(chunks_.Delete(t, Slice(ChunkKey(ino, it.index))));
        PERMFS_RETURN_IF_ERROR(store_.Unref(t, it.entry.id));
        freed += it.entry.length;
      }
      if (!in.ok()) return Status();
      in->data_bytes -= in->data_bytes >= freed ? freed : in->data_bytes;
      return StoreInode(t, *in);
    }));
  }
}

Status Filesystem::Truncate(std::uint64_t ino, std::uint64_t size) noexcept {
  if (size > kMaxFileSize) return Status(Code::kFileTooBig, "file too large");
  ExclusiveLock l(InodeLock(ino));
  PERMFS_ASSIGN_OR_RETURN(InodeRecord in, LoadRegularFile(ino));
  if (size >= in.size) {
    return RunTxn([&](WriteTxn& t) -> Status {
      PERMFS_ASSIGN_OR_RETURN(InodeRecord cur, LoadInode(t, ino));
      cur.size = size;
      cur.mtime_ns = cur.ctime_ns = Now();
      return StoreInode(t, cur);
    });
  }
  // Shrink, freeing space before needing any (so it works on a full volume), in steps that a
  // crash can interrupt anywhere: (1) the new size and a "truncate pending" orphan record commit
  // together; (2) whole records past the end are unmapped; (3) the record holding the new end is
  // trimmed so a later extension reads zeros; (4) the orphan record goes. Mount finishes (2)-(4)
  // from the orphan record (FinishTruncate). An unlinked, still-open file keeps its "unlinked"
  // orphan record instead: reclaiming it frees everything anyway.
  PERMFS_RETURN_IF_ERROR(RunFreeingTxn([&](WriteTxn& t) -> Status {
    PERMFS_ASSIGN_OR_RETURN(InodeRecord cur, LoadInode(t, ino));
    if (cur.nlink > 0) {
      std::uint8_t orec[9];
      orec[0] = static_cast<std::uint8_t>(OrphanKind::kTruncate);
      EncodeLE64(orec + 1, size);
      PERMFS_RETURN_IF_ERROR(orphans_.Put(t, Slice(OrphanKey(ino)), Slice(orec, sizeof orec)));
    }
    cur.size = size;
    cur.mtime_ns = cur.ctime_ns = Now();
    return StoreInode(t, cur);
  }));
  PERMFS_RETURN_IF_ERROR(UnmapRecords(ino, (size + rs_ - 1) / rs_, ~0ull));
  PERMFS_RETURN_IF_ERROR(TrimPartialRecord(ino, size));
  return RunFreeingTxn([&](WriteTxn& t) -> Status {
    // If the file lost its last name meanwhile, its orphan record must stay "unlinked".
    PERMFS_ASSIGN_OR_RETURN(InodeRecord cur, LoadInode(t, ino));
    if (cur.nlink == 0) {
      std::uint8_t orec[9] = {static_cast<std::uint8_t>(OrphanKind::kUnlinked)};
      return orphans_.Put(t, Slice(OrphanKey(ino)), Slice(orec, sizeof orec));
    }
    Status st = orphans_.Delete(t, Slice(OrphanKey(ino)));
    return st.IsNotFound() ? Status() : st;
  });
}

Status Filesystem::TrimPartialRecord(std::uint64_t ino, std::uint64_t size) noexcept {
  const std::uint64_t within = size % rs_;
  if (within == 0) return Status();
  const std::uint64_t index = size / rs_;
  {
    ReadView view(vol_->meta());
    std::string v;
    Status st = chunks_.Get(view, Slice(ChunkKey(ino, index)), &v);
    if (st.IsNotFound()) return Status();
    PERMFS_RETURN_IF_ERROR(st);
    PERMFS_ASSIGN_OR_RETURN(
        ChunkMapEntry e,
        ChunkMapEntry::Decode(reinterpret_cast<const std::uint8_t*>(v.data()), v.size(), rs_));
    if (e.length <= within) return Status();  // nothing stored past the end
  }
  PERMFS_ASSIGN_OR_RETURN(std::string tail, ReadRecord(ino, index, size));
  tail.resize(static_cast<std::size_t>(within));
  RecordWrite rec{index, reinterpret_cast<const std::uint8_t*>(tail.data()), tail.size()};
  return CommitRecordsLocked(ino, &rec, 1, 0, ~0ull, false, alloc::Draw::kPrivileged);
}

Status Filesystem::FinishTruncate(std::uint64_t ino) noexcept {
  std::uint64_t size = 0;
  bool have_inode = false, unlinked = false;
  {
    ReadView view(vol_->meta());
    std::string v;
    Status st = orphans_.Get(view, Slice(OrphanKey(ino)), &v);
    if (st.IsNotFound()) return Status();
    PERMFS_RETURN_IF_ERROR(st);
    if (v.size() != 9) return Status::Corruption("orphan record has the wrong size");
    size = DecodeLE64(reinterpret_cast<const std::uint8_t*>(v.data()) + 1);
    auto in = LoadInode(view, ino);
    have_inode = in.ok();
    if (have_inode && in->nlink == 0) unlinked = true;
    if (have_inode) size = in->size;  // committed together with the orphan record
  }
  // An unlinked inode must not lose its orphan record: reclaim it whole instead.
  if (unlinked) return Reclaim(ino);
  if (have_inode) {
    ExclusiveLock l(InodeLock(ino));
    PERMFS_RETURN_IF_ERROR(UnmapRecords(ino, (size + rs_ - 1) / rs_, ~0ull));
    PERMFS_RETURN_IF_ERROR(TrimPartialRecord(ino, size));
  }
  return RunFreeingTxn([&](WriteTxn& t) -> Status {
    Status st = orphans_.Delete(t, Slice(OrphanKey(ino)));
    return st.IsNotFound() ? Status() : st;
  });
}

Status Filesystem::ZeroRange(std::uint64_t ino, std::uint64_t off, std::uint64_t len,
                             bool keep_size) noexcept {
  ExclusiveLock l(InodeLock(ino));
  PERMFS_ASSIGN_OR_RETURN(InodeRecord in, LoadRegularFile(ino));
  const std::uint64_t end = off + len;
  const std::uint64_t data_end = end < in.size ? end : in.size;
  // Partial records at the edges: rewrite with zeros inside the range.
  std::vector<std::string> bufs;
  std::vector<RecordWrite> recs;
  if (off < data_end) {
    const std::uint64_t first = off / rs_, last = (data_end - 1) / rs_;
    for (std::uint64_t r : {first, last}) {
      if (!recs.empty() && recs.back().index == r) continue;
      const std::uint64_t rs0 = r * rs_;
      const bool whole = off <= rs0 && data_end >= rs0 + rs_;
      if (whole) continue;
      PERMFS_ASSIGN_OR_RETURN(std::string buf, ReadRecord(ino, r, in.size));
      const std::uint64_t a = (off > rs0 ? off : rs0) - rs0;
      std::uint64_t b = (data_end < rs0 + buf.size() ? data_end : rs0 + buf.size()) - rs0;
      if (a < b) FillBytes(buf.data() + a, 0, static_cast<std::size_t>(b - a));
      bufs.push_back(std::move(buf));
      recs.push_back(RecordWrite{r, nullptr, 0});
    }
    for (std::size_t i = 0; i < recs.size(); ++i) {
      recs[i].data = reinterpret_cast<const std::uint8_t*>(bufs[i].data());
      recs[i].len = bufs[i].size();
    }
    PERMFS_RETURN_IF_ERROR(CommitRecordsLocked(ino, recs.data(), recs.size(), 0, ~0ull, true, alloc::Draw::kPrivileged));
    // Whole records inside the range become holes.
    const std::uint64_t full_first = (off + rs_ - 1) / rs_;
    const std::uint64_t full_last = data_end / rs_;
    if (full_first < full_last) PERMFS_RETURN_IF_ERROR(UnmapRecords(ino, full_first, full_last));
  }
  return RunFreeingTxn([&](WriteTxn& t) -> Status {
    PERMFS_ASSIGN_OR_RETURN(InodeRecord cur, LoadInode(t, ino));
    if (!keep_size && end > cur.size) cur.size = end;
    cur.mtime_ns = cur.ctime_ns = Now();
    return StoreInode(t, cur);
  });
}

Status Filesystem::Fallocate(std::uint64_t ino, std::uint32_t mode, std::uint64_t off,
                             std::uint64_t len) noexcept {
  if (len == 0) return Status::InvalidArgument("fallocate of zero length");
  if (off > kMaxFileSize || len > kMaxFileSize - off)
    return Status(Code::kFileTooBig, "file too large");
  if (mode & ~(kFallocKeepSize | kFallocPunchHole | kFallocZeroRange))
    return Status::NotSupported("fallocate mode not supported");
  if ((mode & kFallocPunchHole) && !(mode & kFallocKeepSize))
    return Status::NotSupported("PUNCH_HOLE requires KEEP_SIZE");
  if ((mode & kFallocPunchHole) && (mode & kFallocZeroRange))
    return Status::InvalidArgument("PUNCH_HOLE with ZERO_RANGE");
  {
    PERMFS_ASSIGN_OR_RETURN(InodeRecord in, GetAttr(ino));
    if (IsDir(in.mode)) return Status(Code::kIsDirectory, "is a directory");
    if (!IsRegular(in.mode)) return Status(Code::kNoDevice, "not a regular file");
  }
  if (mode & (kFallocPunchHole | kFallocZeroRange))
    return ZeroRange(ino, off, len, (mode & kFallocKeepSize) != 0);
  // Plain allocation: content-addressed data cannot be reserved ahead of its content, so
  // allocation only extends the size (the range reads as zeros).
  if (mode & kFallocKeepSize) return Status();
  ExclusiveLock l(InodeLock(ino));
  return RunTxn([&](WriteTxn& t) -> Status {
    PERMFS_ASSIGN_OR_RETURN(InodeRecord cur, LoadInode(t, ino));
    if (off + len > cur.size) {
      cur.size = off + len;
      cur.ctime_ns = Now();
      return StoreInode(t, cur);
    }
    return Status();
  });
}

// SEEK_DATA / SEEK_HOLE share one walk over the chunk map from the record holding `off`; they
// differ only in where they stop.
Result<std::uint64_t> Filesystem::SeekDataOrHole(std::uint64_t ino, std::uint64_t off,
                                                 bool data) noexcept {
  SharedLock l(InodeLock(ino));
  ReadView view(vol_->meta());
  PERMFS_ASSIGN_OR_RETURN(InodeRecord in, LoadInode(view, ino));
  if (off >= in.size) return Status(Code::kNoDevice, "offset beyond end of file");
  struct Ctx {
    bool data;
    std::uint64_t rs;
    std::uint64_t pos;  // SEEK_HOLE: end of the contiguous data seen so far
    std::uint64_t found = ~0ull;  // SEEK_DATA: first data byte at or after off
    Status st;
  } c{data, rs_, off};
  PERMFS_RETURN_IF_ERROR(chunks_.Scan(
      view, Slice(ChunkKey(ino, off / rs_)), Slice(ChunkKey(ino + 1, 0)),
      [](void* p, const Slice& k, const Slice& v) {
        auto* c = static_cast<Ctx*>(p);
        auto e = ChunkMapEntry::Decode(v.data, v.size, static_cast<std::uint32_t>(c->rs));
        if (!e.ok()) {
          c->st = e.status();
          return false;
        }
        const std::uint64_t start = KeyU64(k.data + 8) * c->rs;
        const std::uint64_t end = start + e->length;
        if (c->data) {
          if (end <= c->pos) return true;
          c->found = start > c->pos ? start : c->pos;
          return false;
        }
        if (start > c->pos) return false;  // a missing record: hole at pos
        if (end > c->pos) c->pos = end;
        return e->length == c->rs;         // a short record: hole right after its data
      },
      &c));
  PERMFS_RETURN_IF_ERROR(c.st);
  if (data) {
    if (c.found >= in.size) return Status(Code::kNoDevice, "no data after offset");
    return c.found;
  }
  return c.pos < in.size ? c.pos : in.size;
}

Result<std::uint64_t> Filesystem::SeekData(std::uint64_t ino, std::uint64_t off) noexcept {
  return SeekDataOrHole(ino, off, true);
}

Result<std::uint64_t> Filesystem::SeekHole(std::uint64_t ino, std::uint64_t off) noexcept {
  return SeekDataOrHole(ino, off, false);
}

}  // namespace permfs::fs
