// ChunkStore implementation. Contract, on-disk value layout and thread-safety: chunk_store.h.
//
// Invariants kept here:
//  - A block of a chunk is either reserved in memory by exactly one PreparedChunk (or by a
//    running WriteTxn's undo list), or committed as allocated in the bitmaps together with the
//    index entry that names it, in the same transaction. Nothing else ever points at it.
//  - Data is written (completed writes) before the handle that references it ends, and the
//    handle that inserts the index entry notes the extent in its transaction's data manifest
//    (WriteTxn::NoteData), so the one flush of the commit covers the data and replay verifies
//    it. Only Commit's insert of a new entry notes data: a deduplicated or abandoned copy is
//    released at once and must never be named by a manifest.
//  - Every value read from the index goes through DecodeLocation before it is used to address
//    the device or size a buffer.
#include "store/chunk_store.h"

#include "block/block_addr.h"
#include "port/port.h"
#include "util/bytes.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace permfs::store {

using journal::WriteTxn;

namespace {

constexpr std::size_t kBufferAlign = 4096;  // port::Allocate's maximum; enough for O_DIRECT

// A block-aligned heap buffer (no <memory> in the core).
class BlockBuffer {
 public:
  explicit BlockBuffer(std::size_t n) noexcept
      : n_(n), p_(static_cast<std::uint8_t*>(port::Allocate(n, kBufferAlign))) {}
  ~BlockBuffer() {
    if (p_) port::Deallocate(p_, n_, kBufferAlign);
  }
  BlockBuffer(const BlockBuffer&) = delete;
  BlockBuffer& operator=(const BlockBuffer&) = delete;
  std::uint8_t* get() const noexcept { return p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }

 private:
  std::size_t n_;
  std::uint8_t* p_;
};

inline btree::Slice IdKey(const ChunkId& id) noexcept { return btree::Slice(id.bytes, sizeof id.bytes); }

inline std::uint64_t BlocksFor(std::uint64_t bytes, std::uint32_t bs) noexcept {
  return (bytes + bs - 1) / bs;
}

// Undo for a reservation handed to a transaction by Commit: an abort returns it to the pool.
void UndoReserve(void* ctx, std::uint64_t start, std::uint64_t count) {
  static_cast<alloc::Allocator*>(ctx)->Unreserve(alloc::Extent{start, count});
}

constexpr Status kOverflow{Code::kOverflow, "chunk reference count overflow"};

}  // namespace

// ---- Index value encoding -----------------------------------------------------------------

void EncodeLocation(const ChunkLocation& loc, const format::Superblock& sb, std::uint8_t* out64) {
  block::BlockAddr a;
  a.offset = loc.block;
  a.shard = (sb.shard_blocks != 0 && loc.block >= sb.shard_start)
                ? static_cast<std::uint16_t>((loc.block - sb.shard_start) / sb.shard_blocks)
                : 0;
  a.volume = sb.volume_id;
  a.node = sb.node_id;
  a.Encode(out64);
  EncodeLE32(out64 + 32, loc.length);
  EncodeLE32(out64 + 36, loc.stored_length);
  EncodeLE32(out64 + 40, loc.block_count);
  EncodeLE32(out64 + 44, loc.flags);
  EncodeLE64(out64 + 48, loc.refcount);
  EncodeLE32(out64 + 56, loc.crc);
  EncodeLE32(out64 + 60, 0);
}

Status ValidateLocation(const ChunkLocation& loc, const format::Superblock& sb) noexcept {
  const std::uint32_t bs = sb.block_size;
  if (bs == 0 || sb.shard_blocks == 0 || sb.block_count == 0)
    return Status::Corruption("chunk store: superblock geometry is empty");
  if (loc.length == 0 || loc.length > sb.record_size)
    return Status::Corruption("chunk length is zero or larger than the record size");
  if (loc.flags != 0) return Status::Corruption("chunk has unknown flags (compression unsupported)");
  if (loc.stored_length != loc.length)
    return Status::Corruption("uncompressed chunk with stored_length != length");
  if (loc.block_count != BlocksFor(loc.stored_length, bs))
    return Status::Corruption("chunk block_count does not match its stored length");
  // The extent must lie inside one shard's data area (never a bitmap block, never the mirror
  // superblock in the last block, never outside the shards).
  if (loc.block < sb.shard_start) return Status::Corruption("chunk extent before the shards");
  const std::uint64_t last_data = sb.block_count - 1;  // mirror superblock: excluded
  if (loc.block >= last_data || loc.block_count > last_data - loc.block)
    return Status::Corruption("chunk extent past the end of the volume");
  const std::uint64_t rel_all = loc.block - sb.shard_start;
  const std::uint64_t shard = rel_all / sb.shard_blocks;
  if (shard >= sb.shard_count) return Status::Corruption("chunk extent outside every shard");
  const std::uint64_t rel = rel_all % sb.shard_blocks;
  if (rel < sb.bitmap_blocks_per_shard)
    return Status::Corruption("chunk extent overlaps a bitmap block");
  const std::uint64_t shard_len = sb.shard_length(static_cast<std::uint32_t>(shard));
  if (rel >= shard_len || loc.block_count > shard_len - rel)
    return Status::Corruption("chunk extent crosses a shard boundary");
  return Status();
}

Result<ChunkLocation> DecodeLocation(const ChunkId& id, const std::uint8_t* in, std::size_t len,
                                     const format::Superblock& sb) {
  if (in == nullptr || len != ChunkStore::kIndexValueSize)
    return Status::Corruption("chunk index value has the wrong size");
  auto addr = block::BlockAddr::Decode(in);
  if (!addr.ok()) return Status::Corruption("chunk index value holds a malformed block address");
  if (addr->node != sb.node_id || addr->volume != sb.volume_id)
    return Status::Corruption("chunk address names another node or volume");
  ChunkLocation loc;
  loc.id = id;
  loc.block = addr->offset;
  loc.length = DecodeLE32(in + 32);
  loc.stored_length = DecodeLE32(in + 36);
  loc.block_count = DecodeLE32(in + 40);
  loc.flags = DecodeLE32(in + 44);
  loc.refcount = DecodeLE64(in + 48);
  loc.crc = DecodeLE32(in + 56);
  if (DecodeLE32(in + 60) != 0) return Status::Corruption("chunk index value: reserved bits set");
  if (loc.refcount == 0) return Status::Corruption("chunk index entry with zero references");
  PERMFS_RETURN_IF_ERROR(ValidateLocation(loc, sb));
  if (addr->shard != (loc.block - sb.shard_start) / sb.shard_blocks)
    return Status::Corruption("chunk address shard does not match its block");
  return loc;
}

// ---- ChunkStore -----------------------------------------------------------------------------

ChunkStore::ChunkStore(volume::Volume* v) noexcept
    : vol_(v),
      index_(v->meta(), v->allocator(), v->roots(), kTreeId),
      bs_(v->sb().block_size),
      record_size_(v->sb().record_size) {}

Status ChunkStore::WriteData(const alloc::Extent& e, const std::uint8_t* data, std::size_t len,
                             std::uint32_t* crc) noexcept {
  const std::size_t bytes = static_cast<std::size_t>(e.count) * bs_;
  if (len > bytes) return Status::InvalidArgument("chunk larger than its extent");
  *crc = Crc32c(data, len);
  if (len == bytes) {
    // Whole blocks: no padding to add, write straight from the caller's buffer (the device
    // bounces it if its alignment requires).
    PERMFS_RETURN_IF_ERROR(vol_->io()->Write(e.start, e.count, data));
    bytes_written_.fetch_add(len, std::memory_order_relaxed);
    return Status();
  }
  BlockBuffer buf(bytes);
  if (!buf) return Status::NoMemory();
  CopyBytes(buf.get(), data, len);
  FillBytes(buf.get() + len, 0, bytes - len);
  PERMFS_RETURN_IF_ERROR(vol_->io()->Write(e.start, e.count, buf.get()));
  bytes_written_.fetch_add(len, std::memory_order_relaxed);
  return Status();
}

Result<PreparedChunk> ChunkStore::Prepare(const std::uint8_t* data, std::size_t len,
                                          alloc::Draw draw, std::uint64_t near,
                                          bool keep_cached) noexcept {
  if (data == nullptr || len == 0 || len > record_size_)
    return Status::InvalidArgument("chunk size must be 1..record_size");
  if (vol_->read_only()) return Status::ReadOnly();
  PreparedChunk p;
  p.id = Sha256(data, len);
  p.length = static_cast<std::uint32_t>(len);
  prepared_.fetch_add(1, std::memory_order_relaxed);
  {
    // Scoped: the view must be gone before anything below may need the metadata lock.
    journal::ReadView view(vol_->meta());
    std::string value;
    Status st = index_.Get(view, IdKey(p.id), &value);
    if (st.ok()) {
      auto loc = DecodeLocation(p.id, reinterpret_cast<const std::uint8_t*>(value.data()),
                                value.size(), vol_->sb());
      if (!loc.ok()) return loc.status();
      dedup_hits_.fetch_add(1, std::memory_order_relaxed);
      p.active = true;  // extent.count == 0: Commit adds a reference
      if (keep_cached) KeepCached(p.id, data, len);
      return p;
    }
    if (!st.IsNotFound()) return st;
  }
  alloc::Allocator* a = vol_->allocator();
  const std::uint64_t blocks = BlocksFor(len, bs_);
  Result<alloc::Extent> e = a->Reserve(blocks, blocks, near, draw);
  if (!e.ok() && e.status().IsNoSpace() && a->HasPendingFrees()) {
    // Space freed by committed transactions becomes reusable after a checkpoint. No lock is
    // held here, so forcing one is safe.
    PERMFS_RETURN_IF_ERROR(vol_->meta()->SyncAndCheckpoint());
    e = a->Reserve(blocks, blocks, near, draw);
  }
  if (!e.ok()) return e.status();
  Status st = WriteData(*e, data, len, &p.crc);
  if (!st.ok()) {
    a->Unreserve(*e);
    return st;
  }
  p.extent = *e;
  p.active = true;
  if (keep_cached) KeepCached(p.id, data, len);
  return p;
}

// The bytes are the plaintext of `id` by construction (it is their hash), so they are as good
// as a verified read: whether or not the chunk is committed, anything that names `id` later
// names exactly these bytes.
void ChunkStore::KeepCached(const ChunkId& id, const std::uint8_t* data, std::size_t len) noexcept {
  if (!cache_.enabled() || len > cache_.slot_bytes()) return;
  const std::uint32_t slot = cache_.Acquire();
  if (slot == ChunkCache::kNoSlot) return;
  CopyBytes(cache_.Buffer(slot), data, len);
  cache_.Publish(slot, id, static_cast<std::uint32_t>(len));
}

void ChunkStore::Abandon(PreparedChunk& p) noexcept {
  if (p.active && p.extent.count > 0) vol_->allocator()->Unreserve(p.extent);
  p.extent = alloc::Extent{};
  p.active = false;
}

Status ChunkStore::StoreLocation(WriteTxn& t, const ChunkLocation& loc, bool insert) noexcept {
  std::uint8_t v[kIndexValueSize];
  EncodeLocation(loc, vol_->sb(), v);
  const btree::Slice value(v, sizeof v);
  return insert ? index_.Insert(t, IdKey(loc.id), value) : index_.Put(t, IdKey(loc.id), value);
}

Status ChunkStore::DropLocation(WriteTxn& t, const ChunkLocation& loc) noexcept {
  PERMFS_RETURN_IF_ERROR(index_.Delete(t, IdKey(loc.id)));
  // Freed blocks become reusable only after this transaction is checkpointed (allocator rule),
  // so a reader that located the chunk before this commit still reads intact data.
  return vol_->allocator()->Free(t, alloc::Extent{loc.block, loc.block_count});
}

Status ChunkStore::Commit(WriteTxn& t, PreparedChunk& p, const std::uint8_t* data) noexcept {
  if (!p.active) return Status::InvalidArgument("chunk not prepared, or already consumed");
  // Consume p first: from here on the reservation belongs to this call (and, once handed to
  // the transaction's undo list, to an abort).
  const alloc::Extent reserved = p.extent;
  p.extent = alloc::Extent{};
  p.active = false;
  alloc::Allocator* a = vol_->allocator();
  if (p.length == 0 || p.length > record_size_ ||
      (reserved.count != 0 && reserved.count != BlocksFor(p.length, bs_))) {
    a->Unreserve(reserved);
    return Status::InvalidArgument("prepared chunk is malformed");
  }

  std::string value;
  Status st = index_.Get(t, IdKey(p.id), &value);
  if (st.ok()) {
    // Stored already (Prepare found it, or another writer committed it meanwhile): one more
    // reference. Our own copy, if any, is not referenced by anything: release it now.
    a->Unreserve(reserved);
    if (reserved.count != 0) dedup_hits_.fetch_add(1, std::memory_order_relaxed);
    PERMFS_ASSIGN_OR_RETURN(ChunkLocation loc,
                            DecodeLocation(p.id, reinterpret_cast<const std::uint8_t*>(value.data()),
                                           value.size(), vol_->sb()));
    if (loc.refcount == ~std::uint64_t{0}) return kOverflow;
    ++loc.refcount;
    return StoreLocation(t, loc, false);
  }
  if (!st.IsNotFound()) {
    a->Unreserve(reserved);
    return st;
  }

  ChunkLocation loc;
  loc.id = p.id;
  loc.length = p.length;
  loc.stored_length = p.length;
  loc.refcount = 1;
  alloc::Extent e = reserved;
  if (e.count == 0) {
    // Prepare deduplicated against a chunk whose last reference was dropped since: store the
    // data now, inside the transaction. (No checkpoint can be forced while the WriteTxn is
    // held, so a full volume gives NoSpace here.)
    if (data == nullptr) return Status::InvalidArgument("Commit needs the chunk's data");
    const std::uint64_t blocks = BlocksFor(p.length, bs_);
    // Allocate registers its own undo: an abort returns the blocks to the pool.
    PERMFS_ASSIGN_OR_RETURN(e, a->Allocate(t, blocks, blocks, 0));
    PERMFS_RETURN_IF_ERROR(WriteData(e, data, p.length, &loc.crc));
  } else {
    // The reservation now rides on the transaction: an abort unreserves it (after the
    // allocator's own undo of CommitReserved restored the free count).
    t.AddUndo(&UndoReserve, a, e.start, e.count);
    PERMFS_RETURN_IF_ERROR(a->CommitReserved(t, e));
    loc.crc = p.crc;
  }
  loc.block = e.start;
  loc.block_count = static_cast<std::uint32_t>(e.count);
  PERMFS_RETURN_IF_ERROR(StoreLocation(t, loc, true));
  // The new entry names data written outside the journal: journal it in the data manifest
  // (an abort of `t` drops the entry together with the allocation).
  t.NoteData(loc.block, loc.stored_length, loc.crc);
  return Status();
}

Status ChunkStore::Ref(WriteTxn& t, const ChunkId& id) noexcept {
  PERMFS_ASSIGN_OR_RETURN(ChunkLocation loc, Locate(t, id));
  if (loc.refcount == ~std::uint64_t{0}) return kOverflow;
  ++loc.refcount;
  return StoreLocation(t, loc, false);
}

Status ChunkStore::Unref(WriteTxn& t, const ChunkId& id) noexcept {
  PERMFS_ASSIGN_OR_RETURN(ChunkLocation loc, Locate(t, id));
  if (loc.refcount > 1) {
    --loc.refcount;
    return StoreLocation(t, loc, false);
  }
  return DropLocation(t, loc);
}

Status ChunkStore::SetRefcount(WriteTxn& t, const ChunkId& id, std::uint64_t refcount) noexcept {
  std::string value;
  PERMFS_RETURN_IF_ERROR(index_.Get(t, IdKey(id), &value));
  // fsck repairs entries whose count is wrong, so a stored count of 0 is accepted here (only
  // the count is replaced; the rest of the value must still be valid).
  if (value.size() == kIndexValueSize) {
    std::uint8_t tmp[kIndexValueSize];
    CopyBytes(tmp, value.data(), kIndexValueSize);
    if (DecodeLE64(tmp + 48) == 0) EncodeLE64(tmp + 48, 1);
    PERMFS_ASSIGN_OR_RETURN(ChunkLocation loc, DecodeLocation(id, tmp, sizeof tmp, vol_->sb()));
    if (refcount == 0) return DropLocation(t, loc);
    loc.refcount = refcount;
    return StoreLocation(t, loc, false);
  }
  return Status::Corruption("chunk index value has the wrong size");
}

Result<ChunkLocation> ChunkStore::Locate(journal::BlockReader& r, const ChunkId& id) noexcept {
  std::string value;
  PERMFS_RETURN_IF_ERROR(index_.Get(r, IdKey(id), &value));
  return DecodeLocation(id, reinterpret_cast<const std::uint8_t*>(value.data()), value.size(),
                        vol_->sb());
}

Status ChunkStore::ReadVerified(const ChunkLocation& loc, std::uint8_t* buf) noexcept {
  PERMFS_RETURN_IF_ERROR(vol_->io()->Read(loc.block, loc.block_count, buf));
  bytes_read_.fetch_add(loc.stored_length, std::memory_order_relaxed);
  if (Crc32c(buf, loc.stored_length) != loc.crc) {
    corruptions_.fetch_add(1, std::memory_order_relaxed);
    return Status::Corruption("chunk data fails its CRC32C");
  }
  return Status();
}

Status ChunkStore::ReadLocated(const ChunkLocation& loc, std::uint32_t offset, std::uint32_t len,
                               std::uint8_t* out) noexcept {
  PERMFS_RETURN_IF_ERROR(ValidateLocation(loc, vol_->sb()));
  if (offset > loc.length || len > loc.length - offset)
    return Status::InvalidArgument("read range outside the chunk");
  if (len == 0) return Status();
  if (out == nullptr) return Status::InvalidArgument("null output buffer");
  const std::size_t bytes = static_cast<std::size_t>(loc.block_count) * bs_;
  const bool whole = offset == 0 && len == loc.length;
  // A whole-chunk read (sequential I/O, promotion merges) does not fill the cache: nothing else
  // will ask for this chunk soon, and caching it would push out chunks that partial reads come
  // back to. It is served from the cache when the chunk is there (Prepare's keep_cached puts a
  // record rewritten piecemeal there for its next merge). When the chunk fills its blocks
  // exactly a miss is read straight into `out`.
  if (whole && cache_.Read(loc.id, 0, len, out, /*count_miss=*/false)) return Status();
  if (whole && bytes == len) {
    Status st = ReadVerified(loc, out);
    if (!st.ok()) FillBytes(out, 0, len);  // bytes that failed their CRC never reach a caller
    return st;
  }
  if (!whole && cache_.Read(loc.id, offset, len, out)) return Status();
  const std::uint32_t slot =
      !whole && bytes <= cache_.slot_bytes() ? cache_.Acquire() : ChunkCache::kNoSlot;
  if (slot == ChunkCache::kNoSlot) {
    BlockBuffer buf(bytes);
    if (!buf) return Status::NoMemory();
    PERMFS_RETURN_IF_ERROR(ReadVerified(loc, buf.get()));
    CopyBytes(out, buf.get() + offset, len);
    return Status();
  }
  std::uint8_t* buf = cache_.Buffer(slot);
  Status st = ReadVerified(loc, buf);
  if (!st.ok()) {
    cache_.Release(slot);
    return st;
  }
  CopyBytes(out, buf + offset, len);
  cache_.Publish(slot, loc.id, loc.length);
  return Status();
}

void ChunkStore::SetReadCache(std::size_t bytes) noexcept {
  cache_.Configure(bytes, static_cast<std::size_t>(BlocksFor(record_size_, bs_)) * bs_);
}

Status ChunkStore::VerifyId(const ChunkLocation& loc) noexcept {
  PERMFS_RETURN_IF_ERROR(ValidateLocation(loc, vol_->sb()));
  BlockBuffer buf(static_cast<std::size_t>(loc.block_count) * bs_);
  if (!buf) return Status::NoMemory();
  PERMFS_RETURN_IF_ERROR(ReadVerified(loc, buf.get()));
  if (Sha256(buf.get(), loc.length) != loc.id) {
    corruptions_.fetch_add(1, std::memory_order_relaxed);
    return Status::Corruption("chunk content does not match its id (SHA-256)");
  }
  return Status();
}

Status ChunkStore::ForEach(journal::BlockReader& r,
                           bool (*fn)(void* ctx, const ChunkLocation& loc), void* ctx) noexcept {
  struct State {
    bool (*fn)(void*, const ChunkLocation&);
    void* ctx;
    const format::Superblock* sb;
    Status st;
  } s{fn, ctx, &vol_->sb(), Status()};
  Status scan = index_.Scan(
      r, btree::Slice(), btree::Slice(),
      [](void* c, const btree::Slice& key, const btree::Slice& value) -> bool {
        State* s = static_cast<State*>(c);
        ChunkId id;
        if (key.size != sizeof id.bytes) {
          s->st = Status::Corruption("chunk index key is not a 32-byte id");
          return false;
        }
        CopyBytes(id.bytes, key.data, sizeof id.bytes);
        auto loc = DecodeLocation(id, value.data, value.size, *s->sb);
        if (!loc.ok()) {
          s->st = loc.status();
          return false;
        }
        return s->fn(s->ctx, *loc);
      },
      &s);
  PERMFS_RETURN_IF_ERROR(scan);
  return s.st;
}

ChunkStoreStats ChunkStore::stats() const noexcept {
  ChunkStoreStats s;
  s.prepared = prepared_.load(std::memory_order_relaxed);
  s.dedup_hits = dedup_hits_.load(std::memory_order_relaxed);
  s.bytes_written = bytes_written_.load(std::memory_order_relaxed);
  s.bytes_read = bytes_read_.load(std::memory_order_relaxed);
  s.corruptions = corruptions_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace permfs::store
