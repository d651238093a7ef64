#include "journal/meta_store.h"

#include "util/bytes.h"
#include "util/log.h"
#include "util/sort.h"

namespace permfs::journal {

using format::BlockType;
using format::Expect;

CheckpointListener::~CheckpointListener() = default;

struct MetaStore::Entry {
  std::uint64_t blockno = 0;
  std::uint8_t* data = nullptr;
  std::uint32_t pins = 0;
  bool dirty = false;
  bool freed = false;
  std::uint64_t epoch = 0;  // last handle that saved this block's pre-image
  Entry* prev = nullptr;
  Entry* next = nullptr;
};

// ---------------------------------------------------------------------------------------------
// MetaStore: construction, cache

MetaStore::MetaStore(const block::BlockIo* io, const format::Superblock& sb,
                     const MetaStoreOptions& opt) noexcept
    : io_(io), sb_(sb), bs_(sb.block_size), opt_(opt),
      manifest_enabled_((sb.incompat & format::kIncompatJournalManifest) != 0), log_(io, sb),
      commit_cv_(&commit_mu_) {
  max_txn_blocks_ = log_.MaxTransactionBlocks();
  commit_threshold_ = opt.commit_threshold_blocks ? opt.commit_threshold_blocks
                                                  : max_txn_blocks_ / 4;
  if (commit_threshold_ == 0) commit_threshold_ = 1;
}

MetaStore::~MetaStore() {
  MutexLock l(&cache_mu_);
  map_.ForEach([this](const std::uint64_t&, Entry*& e) { FreeEntry(e); });
  map_.Clear();
  checkpoint_.ForEach([this](const std::uint64_t&, Frozen& f) { FreeBlock(f.data); });
  checkpoint_.Clear();
}

std::uint8_t* MetaStore::AllocBlock() noexcept {
  auto* p = static_cast<std::uint8_t*>(port::Allocate(bs_, 64));
  if (p == nullptr) PERMFS_PANIC("out of memory for a metadata block");
  return p;
}

void MetaStore::FreeBlock(std::uint8_t* p) noexcept {
  if (p) port::Deallocate(p, bs_, 64);
}

void MetaStore::FreeEntry(Entry* e) noexcept {
  FreeBlock(e->data);
  e->~Entry();
  port::Deallocate(e, sizeof(Entry), alignof(Entry));
}

MetaStore::Entry* MetaStore::NewEntry(std::uint64_t blockno) noexcept {
  void* mem = port::Allocate(sizeof(Entry), alignof(Entry));
  if (mem == nullptr) PERMFS_PANIC("out of memory for a cache entry");
  Entry* e = new (mem) Entry();
  e->blockno = blockno;
  e->data = AllocBlock();
  return e;
}

void MetaStore::LinkFront(Entry* e) noexcept {
  e->prev = nullptr;
  e->next = lru_head_;
  if (lru_head_) lru_head_->prev = e;
  lru_head_ = e;
  if (!lru_tail_) lru_tail_ = e;
}

void MetaStore::Unlink(Entry* e) noexcept {
  if (e->prev) e->prev->next = e->next;
  else lru_head_ = e->next;
  if (e->next) e->next->prev = e->prev;
  else lru_tail_ = e->prev;
  e->prev = e->next = nullptr;
}

void MetaStore::EvictLocked() noexcept {
  int budget = 64;
  Entry* e = lru_tail_;
  while (map_.size() > opt_.cache_blocks && e != nullptr && budget-- > 0) {
    Entry* prev = e->prev;
    if (e->pins == 0 && !e->dirty) {
      Unlink(e);
      map_.Erase(e->blockno);
      FreeEntry(e);
    }
    e = prev;
  }
}

static Status CheckCachedHeader(const std::uint8_t* data, const Expect& ex) noexcept {
  format::MetaHeader h = format::DecodeMetaHeader(data);
  if (h.type != ex.type) return Status::Corruption("metadata block: unexpected block type");
  if (ex.check_owner && h.owner != ex.owner)
    return Status::Corruption("metadata block: wrong owner");
  return Status();
}

Result<MetaStore::Entry*> MetaStore::Lookup(std::uint64_t blockno, const Expect& expect,
                                            bool pin) noexcept {
  if (blockno >= sb_.block_count || blockno < sb_.root_block)
    return Status::Corruption("metadata pointer outside the volume");
  MutexLock l(&cache_mu_);
  if (Entry** pe = map_.Find(blockno)) {
    Entry* e = *pe;
    if (e->freed) return Status::Corruption("reference to a freed metadata block");
    PERMFS_RETURN_IF_ERROR(CheckCachedHeader(e->data, expect));
    ++hits_;
    Unlink(e);
    LinkFront(e);
    if (pin) ++e->pins;
    return e;
  }
  ++misses_;
  Entry* e = NewEntry(blockno);
  if (Frozen* f = checkpoint_.Find(blockno)) {
    CopyBytes(e->data, f->data, bs_);
    Status st = CheckCachedHeader(e->data, expect);
    if (!st.ok()) {
      FreeEntry(e);
      return st;
    }
  } else {
    Status st = io_->Read(blockno, 1, e->data);
    if (st.ok()) {
      Expect ex = expect;
      ex.blockno = blockno;
      ex.uuid = &sb_.uuid;
      st = format::VerifyMetaBlock(e->data, bs_, ex);
      if (st.ok() && ex.validate) st = ex.validate(e->data, bs_);
    }
    if (!st.ok()) {
      FreeEntry(e);
      return st;
    }
  }
  map_.Insert(blockno, e);
  LinkFront(e);
  if (pin) ++e->pins;
  EvictLocked();
  return e;
}

void MetaStore::Unpin(Entry* e) noexcept {
  PERMFS_ASSERT(e->pins > 0);
  --e->pins;
}

// ---------------------------------------------------------------------------------------------
// WriteTxn

WriteTxn::WriteTxn(WriteTxn&& o) noexcept
    : store_(o.store_), seq_(o.seq_), epoch_(o.epoch_), dirty_start_(o.dirty_start_),
      manifest_start_(o.manifest_start_), use_reserve_(o.use_reserve_),
      use_promised_(o.use_promised_),
      pre_(std::move(o.pre_)), undo_(std::move(o.undo_)), pinned_(std::move(o.pinned_)),
      forgotten_(std::move(o.forgotten_)) {
  o.store_ = nullptr;
}

WriteTxn::~WriteTxn() {
  if (store_) Abort();
}

// Saves the block's pre-image the first time this handle touches it and adds it to the running
// transaction's dirty list (refusing a transaction that would not fit the journal; a manifest
// that no longer fits next to the blocks is replaced by a pre-commit flush).
Status WriteTxn::TrackDirty(void* entry) noexcept {
  MetaStore* s = store_;
  auto* e = static_cast<MetaStore::Entry*>(entry);
  if (!e->dirty && !s->FitsLog(s->dirty_.size() + 1, s->manifest_.size())) {
    if (s->manifest_.empty() || !s->FitsLog(s->dirty_.size() + 1, 0))
      return Status::NoSpace("metadata transaction too large for the journal");
    s->SpillManifest();
  }
  if (e->epoch != epoch_) {
    std::uint8_t* copy = s->AllocBlock();
    CopyBytes(copy, e->data, s->bs_);
    pre_.push_back(PreImage{e, copy, e->dirty, e->freed});
    e->epoch = epoch_;
  }
  if (!e->dirty) {
    e->dirty = true;
    s->dirty_.push_back(e);
    __atomic_store_n(&s->dirty_size_hint_, s->dirty_.size(), __ATOMIC_RELAXED);
  }
  return Status();
}

Result<std::uint8_t*> WriteTxn::Modify(std::uint64_t blockno, const Expect& expect) noexcept {
  PERMFS_ASSERT(store_);
  MetaStore* s = store_;
  PERMFS_ASSIGN_OR_RETURN(MetaStore::Entry * e, s->Lookup(blockno, expect, true));
  pinned_.push_back(e);
  PERMFS_RETURN_IF_ERROR(TrackDirty(e));
  format::SetMetaGeneration(e->data, seq_);
  return e->data;
}

Result<std::uint8_t*> WriteTxn::Create(std::uint64_t blockno, BlockType type,
                                       std::uint64_t owner) noexcept {
  PERMFS_ASSERT(store_);
  MetaStore* s = store_;
  if (blockno >= s->sb_.block_count || blockno <= s->sb_.root_block)
    return Status::Corruption("new metadata block outside the volume");
  MetaStore::Entry* e = nullptr;
  {
    MutexLock l(&s->cache_mu_);
    if (MetaStore::Entry** pe = s->map_.Find(blockno)) {
      e = *pe;
    } else {
      e = s->NewEntry(blockno);
      FillBytes(e->data, 0, s->bs_);
      s->map_.Insert(blockno, e);
      s->LinkFront(e);
      pre_.push_back(PreImage{e, nullptr, false, false});
      e->epoch = epoch_;
    }
    ++e->pins;
    s->EvictLocked();  // a new entry counts against cache_blocks like a miss does
  }
  pinned_.push_back(e);
  PERMFS_RETURN_IF_ERROR(TrackDirty(e));
  e->freed = false;
  FillBytes(e->data, 0, s->bs_);
  format::MetaHeader h;
  h.type = type;
  h.blockno = blockno;
  h.owner = owner;
  h.generation = seq_;
  h.uuid = s->sb_.uuid;
  format::EncodeMetaHeader(h, e->data);
  return e->data;
}

Result<const std::uint8_t*> WriteTxn::Read(std::uint64_t blockno, const Expect& expect) noexcept {
  PERMFS_ASSERT(store_);
  PERMFS_ASSIGN_OR_RETURN(MetaStore::Entry * e, store_->Lookup(blockno, expect, true));
  pinned_.push_back(e);
  return static_cast<const std::uint8_t*>(e->data);
}

void WriteTxn::Forget(std::uint64_t blockno) noexcept { forgotten_.push_back(blockno); }

void WriteTxn::AddUndo(UndoFn fn, void* ctx, std::uint64_t a, std::uint64_t b) noexcept {
  undo_.push_back(Undo{fn, ctx, a, b});
}

void WriteTxn::NoteData(std::uint64_t block, std::uint32_t length, std::uint32_t crc) noexcept {
  PERMFS_ASSERT(store_);
  MetaStore* s = store_;
  if (length == 0) return;
  // An entry replay would refuse as hostile would make the volume unmountable after a crash.
  PERMFS_ASSERT_MSG(ManifestEntryValid(format::ManifestEntry{block, length, crc}, s->sb_),
                    "NoteData: extent outside the data area");
  if (!s->manifest_enabled_ || s->manifest_spilled_ ||
      !s->FitsLog(s->dirty_.size(), s->manifest_.size() + 1)) {
    s->SpillManifest();
    return;
  }
  s->manifest_.push_back(format::ManifestEntry{block, length, crc});
  __atomic_store_n(&s->manifest_size_hint_, s->manifest_.size(), __ATOMIC_RELAXED);
}

Status WriteTxn::Commit() noexcept {
  PERMFS_ASSERT(store_);
  MetaStore* s = store_;
  const bool changed = !pre_.empty();
  {
    MutexLock l(&s->cache_mu_);
    for (std::uint64_t b : forgotten_) {
      if (MetaStore::Entry** pe = s->map_.Find(b)) (*pe)->freed = true;
    }
    for (const PreImage& p : pre_) s->FreeBlock(p.data);
    for (void* e : pinned_) s->Unpin(static_cast<MetaStore::Entry*>(e));
  }
  pre_.clear();
  pinned_.clear();
  undo_.clear();
  forgotten_.clear();
  if (changed) {
    MutexLock l(&s->commit_mu_);
    if (seq_ > s->last_change_seq_) s->last_change_seq_ = seq_;
  }
  Release();
  return Status();
}

void WriteTxn::Abort() noexcept {
  PERMFS_ASSERT(store_);
  MetaStore* s = store_;
  {
    MutexLock l(&s->cache_mu_);
    for (void* e : pinned_) s->Unpin(static_cast<MetaStore::Entry*>(e));
    pinned_.clear();
    for (std::size_t i = pre_.size(); i-- > 0;) {
      PreImage& p = pre_[i];
      auto* e = static_cast<MetaStore::Entry*>(p.entry);
      e->epoch = 0;
      if (p.data) {
        CopyBytes(e->data, p.data, s->bs_);
        s->FreeBlock(p.data);
        e->dirty = p.was_dirty;
        e->freed = p.was_freed;
      } else {
        // Created by this handle: it did not exist before.
        PERMFS_ASSERT(e->pins == 0);
        s->Unlink(e);
        s->map_.Erase(e->blockno);
        s->FreeEntry(e);
      }
    }
  }
  // Entries made dirty by this handle sit at the end of the dirty list, its manifest entries at
  // the end of the manifest. (A spill stays: flushing before the journal is always safe.)
  s->dirty_.resize(dirty_start_);
  __atomic_store_n(&s->dirty_size_hint_, s->dirty_.size(), __ATOMIC_RELAXED);
  if (s->manifest_.size() > manifest_start_) s->manifest_.resize(manifest_start_);
  __atomic_store_n(&s->manifest_size_hint_, s->manifest_.size(), __ATOMIC_RELAXED);
  pre_.clear();
  for (std::size_t i = undo_.size(); i-- > 0;) undo_[i].fn(undo_[i].ctx, undo_[i].a, undo_[i].b);
  undo_.clear();
  forgotten_.clear();
  Release();
}

void WriteTxn::Release() noexcept {
  MetaStore* s = store_;
  store_ = nullptr;
  s->rw_.Unlock();
}

// ---------------------------------------------------------------------------------------------
// ReadView

ReadView::ReadView(MetaStore* s) noexcept : store_(s) { store_->rw_.LockShared(); }

ReadView::~ReadView() {
  {
    MutexLock l(&store_->cache_mu_);
    for (void* e : pinned_) store_->Unpin(static_cast<MetaStore::Entry*>(e));
  }
  store_->rw_.UnlockShared();
}

Result<const std::uint8_t*> ReadView::Read(std::uint64_t blockno, const Expect& expect) noexcept {
  PERMFS_ASSIGN_OR_RETURN(MetaStore::Entry * e, store_->Lookup(blockno, expect, true));
  pinned_.push_back(e);
  return static_cast<const std::uint8_t*>(e->data);
}

// ---------------------------------------------------------------------------------------------
// Transactions, commit, checkpoint

Result<WriteTxn> MetaStore::Begin() noexcept {
  if (opt_.read_only) return Status::ReadOnly("volume is mounted read-only");
  {
    MutexLock l(&commit_mu_);
    if (!error_.ok()) return Status::ReadOnly("volume went read-only after a write error");
  }
  if (running_log_blocks() >= commit_threshold_) PERMFS_RETURN_IF_ERROR(Sync());
  rw_.Lock();
  {
    MutexLock l(&commit_mu_);
    if (!error_.ok()) {
      rw_.Unlock();
      return Status::ReadOnly("volume went read-only after a write error");
    }
  }
  if (dirty_.empty()) __atomic_store_n(&running_since_ns_, port::MonotonicNanos(), __ATOMIC_RELAXED);
  WriteTxn t(this, running_seq_, ++epoch_);
  t.dirty_start_ = dirty_.size();
  t.manifest_start_ = manifest_.size();
  return t;
}

std::uint64_t MetaStore::running_dirty_blocks() const noexcept {
  return __atomic_load_n(&dirty_size_hint_, __ATOMIC_RELAXED);
}

std::uint64_t MetaStore::running_log_blocks() const noexcept {
  const std::uint64_t mcap = format::ManifestCapacity(bs_);
  const std::uint64_t m = __atomic_load_n(&manifest_size_hint_, __ATOMIC_RELAXED);
  return running_dirty_blocks() + (m + mcap - 1) / mcap;
}

bool MetaStore::FitsLog(std::uint64_t dirty, std::uint64_t manifest) const noexcept {
  return log_.BlocksNeeded(dirty, manifest) <= log_.log_blocks();
}

void MetaStore::SpillManifest() noexcept {
  TakeManifest(nullptr);
  manifest_spilled_ = true;
}

bool MetaStore::TakeManifest(std::vector<format::ManifestEntry>* out) noexcept {
  if (out) out->swap(manifest_);
  manifest_.clear();
  const bool spilled = manifest_spilled_;
  manifest_spilled_ = false;
  __atomic_store_n(&manifest_size_hint_, 0, __ATOMIC_RELAXED);
  return spilled;
}

Status MetaStore::Sync() noexcept {
  std::uint64_t target;
  {
    MutexLock l(&commit_mu_);
    target = last_change_seq_;
  }
  return CommitUntil(target);
}

Status MetaStore::CommitUntil(std::uint64_t target) noexcept {
  commit_mu_.Lock();
  for (;;) {
    if (!error_.ok()) {
      Status e = error_;
      commit_mu_.Unlock();
      return e;
    }
    if (durable_seq_ >= target) break;
    if (committing_) {
      commit_cv_.Wait();
      continue;
    }
    committing_ = true;
    commit_mu_.Unlock();
    Status st = DoCommit();
    commit_mu_.Lock();
    committing_ = false;
    commit_cv_.SignalAll();
    if (!st.ok()) {
      commit_mu_.Unlock();
      return st;
    }
  }
  commit_mu_.Unlock();
  return Status();
}

Status MetaStore::DoCommit() noexcept {
  const bool data_heavy =
      opt_.checkpoint_data_bytes != 0 && journal_data_bytes_ >= opt_.checkpoint_data_bytes;
  if (log_.used_blocks() > log_.log_blocks() / 2 || data_heavy) {
    Status st = DoCheckpoint();
    if (!st.ok()) {
      SetError(st);
      return st;
    }
  }
  rw_.Lock();
  const std::size_t n = dirty_.size();
  const std::uint64_t seq = running_seq_;
  if (n == 0) {
    // Nothing can reference data without a changed block: drop any manifest.
    TakeManifest(nullptr);
    rw_.Unlock();
    MutexLock l(&commit_mu_);
    if (seq - 1 > durable_seq_) durable_seq_ = seq - 1;
    return Status();
  }
  if (log_.BlocksNeeded(n, manifest_.size()) > log_.free_blocks()) {
    Status st = DoCheckpoint();
    if (!st.ok()) {
      rw_.Unlock();
      SetError(st);
      return st;
    }
  }
  // Every handle in this transaction has ended, so the data its manifest names has been written
  // (completed writes): Append's one flush makes it durable with the journal records. Only a
  // spilled manifest needs the data flushed first.
  std::vector<format::ManifestEntry> manifest;
  const bool flush_data = TakeManifest(&manifest);
  std::vector<LogBlock> blocks(n);
  {
    MutexLock l(&cache_mu_);
    for (std::size_t i = 0; i < n; ++i) {
      Entry* e = dirty_[i];
      std::uint8_t* f = AllocBlock();
      CopyBytes(f, e->data, bs_);
      format::SealMetaBlock(f, bs_);
      if (Frozen* old = checkpoint_.Find(e->blockno)) {
        FreeBlock(old->data);
        *old = Frozen{seq, f};
      } else {
        checkpoint_.Insert(e->blockno, Frozen{seq, f});
      }
      e->dirty = false;
      blocks[i] = LogBlock{e->blockno, f};
    }
    EvictLocked();  // the entries just made clean may now exceed cache_blocks
  }
  dirty_.clear();
  __atomic_store_n(&dirty_size_hint_, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&running_seq_, seq + 1, __ATOMIC_RELAXED);
  rw_.Unlock();

  Status st;
  if (flush_data) st = io_->Flush();
  if (st.ok()) st = log_.Append(seq, blocks.data(), n, manifest.data(), manifest.size());
  if (!st.ok()) {
    PERMFS_LOG(kError, "journal: commit of transaction ", seq, " failed: ", st.message(),
               "; volume is now read-only");
    SetError(st);
    return st;
  }
  for (const format::ManifestEntry& me : manifest) journal_data_bytes_ += me.length;
  MutexLock l(&commit_mu_);
  durable_seq_ = seq;
  if (flush_data) ++data_flushes_;
  manifest_entries_ += manifest.size();
  ++commits_;
  committed_blocks_ += n;
  return Status();
}

Status MetaStore::DoCheckpoint() noexcept {
  struct Item {
    std::uint64_t blockno;
    std::uint8_t* data;
  };
  std::vector<Item> items;
  {
    MutexLock l(&cache_mu_);
    items.reserve(checkpoint_.size());
    checkpoint_.ForEach([&items](const std::uint64_t& b, Frozen& f) {
      items.push_back(Item{b, f.data});
    });
  }
  if (items.empty() && log_.used_blocks() == 0) {
    journal_data_bytes_ = 0;
    return Status();
  }
  Sort(items.data(), items.data() + items.size(),
       [](const Item& a, const Item& b) { return a.blockno < b.blockno; });
  std::vector<std::uint8_t> run;
  for (std::size_t i = 0; i < items.size();) {
    std::size_t j = i + 1;
    while (j < items.size() && items[j].blockno == items[j - 1].blockno + 1 && j - i < 256) ++j;
    if (j - i == 1) {
      PERMFS_RETURN_IF_ERROR(io_->Write(items[i].blockno, 1, items[i].data));
    } else {
      run.resize((j - i) * bs_);
      for (std::size_t k = i; k < j; ++k) CopyBytes(run.data() + (k - i) * bs_, items[k].data, bs_);
      PERMFS_RETURN_IF_ERROR(io_->Write(items[i].blockno, j - i, run.data()));
    }
    if (items[i].blockno <= sb_.root_block && items[j - 1].blockno >= sb_.root_block) {
      for (std::size_t k = i; k < j; ++k)
        if (items[k].blockno == sb_.root_block) root_generation_ = format::MetaGeneration(items[k].data);
    }
    i = j;
  }
  PERMFS_RETURN_IF_ERROR(io_->Flush());
  PERMFS_RETURN_IF_ERROR(log_.SetTail(log_.head_offset(), log_.next_seq(), root_generation_));
  journal_data_bytes_ = 0;  // no manifest left in the journal to verify at replay
  {
    MutexLock l(&cache_mu_);
    for (const Item& it : items) {
      Frozen* f = checkpoint_.Find(it.blockno);
      if (f && f->data == it.data) {
        FreeBlock(f->data);
        checkpoint_.Erase(it.blockno);
      }
    }
  }
  ++checkpoints_;
  const std::uint64_t done = log_.next_seq() - 1;
  for (CheckpointListener* l : listeners_) l->OnCheckpointed(done);
  return Status();
}

Status MetaStore::SyncAndCheckpoint() noexcept {
  PERMFS_RETURN_IF_ERROR(Sync());
  commit_mu_.Lock();
  while (committing_) commit_cv_.Wait();
  if (!error_.ok()) {
    Status e = error_;
    commit_mu_.Unlock();
    return e;
  }
  committing_ = true;
  commit_mu_.Unlock();
  Status st = DoCheckpoint();
  if (!st.ok()) SetError(st);
  commit_mu_.Lock();
  committing_ = false;
  commit_cv_.SignalAll();
  commit_mu_.Unlock();
  return st;
}

Status MetaStore::Tick(std::uint64_t max_age_ns) noexcept {
  if (running_dirty_blocks() == 0) return Status();
  std::uint64_t since = __atomic_load_n(&running_since_ns_, __ATOMIC_RELAXED);
  if (port::MonotonicNanos() - since < max_age_ns) return Status();
  return Sync();
}

void MetaStore::AddCheckpointListener(CheckpointListener* l) noexcept { listeners_.push_back(l); }

void MetaStore::SetError(Status st) noexcept {
  MutexLock l(&commit_mu_);
  if (error_.ok()) error_ = st.IsIOError() ? st : Status::IOError(st.message());
}

bool MetaStore::errored() const noexcept {
  MutexLock l(&commit_mu_);
  return !error_.ok();
}

Status MetaStore::error() const noexcept {
  MutexLock l(&commit_mu_);
  return error_;
}

std::uint64_t MetaStore::durable_seq() const noexcept {
  MutexLock l(&commit_mu_);
  return durable_seq_;
}

MetaStoreStats MetaStore::stats() const noexcept {
  MetaStoreStats s;
  {
    MutexLock l(&commit_mu_);
    s.commits = commits_;
    s.committed_blocks = committed_blocks_;
    s.durable_seq = durable_seq_;
    s.data_flushes = data_flushes_;
    s.manifest_entries = manifest_entries_;
  }
  {
    MutexLock l(&cache_mu_);
    s.cache_hits = hits_;
    s.cache_misses = misses_;
  }
  s.checkpoints = checkpoints_.load(std::memory_order_relaxed);
  s.replayed_transactions = replayed_txns_;
  s.replayed_blocks = replayed_blocks_;
  s.replay_discarded_transactions = replay_discarded_;
  s.running_seq = __atomic_load_n(&running_seq_, __ATOMIC_RELAXED);
  s.journal_used = log_.used_blocks();
  s.journal_size = log_.log_blocks();
  return s;
}

// ---------------------------------------------------------------------------------------------
// Format, open, replay

Status MetaStore::Format() noexcept {
  PERMFS_RETURN_IF_ERROR(log_.Format());
  running_seq_ = log_.next_seq();
  MutexLock l(&commit_mu_);
  durable_seq_ = running_seq_ - 1;
  last_change_seq_ = durable_seq_;
  return Status();
}

Status MetaStore::Replay() noexcept {
  PERMFS_RETURN_IF_ERROR(log_.Open());
  struct Ctx {
    MetaStore* self;
    bool into_memory;
  } ctx{this, opt_.read_only};
  ScanResult res;
  if (opt_.skip_replay) {
    // Inspection of a dirty journal: only possible read-only (a writable mount would move the
    // tail past transactions it never applied).
    if (!opt_.read_only) return Status::InvalidArgument("skip_replay needs a read-only mount");
    PERMFS_RETURN_IF_ERROR(log_.Scan(nullptr, nullptr, &res));
    res.transactions = 0;
    res.blocks = 0;
  } else {
    PERMFS_RETURN_IF_ERROR(log_.Scan(
      [](void* c, std::uint64_t seq, const LogBlock* blocks, std::size_t n) -> Status {
        auto* x = static_cast<Ctx*>(c);
        MetaStore* s = x->self;
        for (std::size_t i = 0; i < n; ++i) {
          if (x->into_memory) {
            std::uint8_t* f = s->AllocBlock();
            CopyBytes(f, blocks[i].data, s->bs_);
            MutexLock l(&s->cache_mu_);
            if (Frozen* old = s->checkpoint_.Find(blocks[i].home)) {
              s->FreeBlock(old->data);
              *old = Frozen{seq, f};
            } else {
              s->checkpoint_.Insert(blocks[i].home, Frozen{seq, f});
            }
          } else {
            PERMFS_RETURN_IF_ERROR(s->io_->Write(blocks[i].home, 1, blocks[i].data));
          }
        }
        return Status();
      },
      &ctx, &res));
  }
  replayed_txns_ = res.transactions;
  replayed_blocks_ = res.blocks;
  replay_discarded_ = res.discarded;
  if (res.transactions > 0)
    PERMFS_LOG(kInfo, "journal: replayed ", res.transactions, " transactions (", res.blocks,
               " blocks, ", res.manifest_entries, " data extents verified)");
  if (!opt_.read_only) {
    PERMFS_RETURN_IF_ERROR(io_->Flush());
    // Step over every sequence still in the log past the new head (transactions discarded for
    // missing data) and the one a torn transaction may have used, so their leftovers can never
    // be taken for a new transaction's records.
    log_.set_next_seq(res.end_seq + 1);
  }
  // Lost-write check on the volume root: its generation may only move forward.
  std::vector<std::uint8_t> root(bs_);
  {
    MutexLock l(&cache_mu_);
    if (Frozen* f = checkpoint_.Find(sb_.root_block)) CopyBytes(root.data(), f->data, bs_);
    else {
      Status st = io_->Read(sb_.root_block, 1, root.data());
      if (!st.ok()) return st;
    }
  }
  Expect ex{BlockType::kVolumeRoot, sb_.root_block, &sb_.uuid};
  PERMFS_RETURN_IF_ERROR(format::VerifyMetaBlock(root.data(), bs_, ex));
  root_generation_ = format::MetaGeneration(root.data());
  if (root_generation_ < log_.header().root_generation)
    return Status::Corruption("volume root is older than the journal says (lost write)");
  if (!opt_.read_only)
    PERMFS_RETURN_IF_ERROR(log_.SetTail(log_.head_offset(), log_.next_seq(), root_generation_));
  running_seq_ = log_.next_seq();
  MutexLock l(&commit_mu_);
  durable_seq_ = running_seq_ - 1;
  last_change_seq_ = durable_seq_;
  return Status();
}

Status MetaStore::Open() noexcept { return Replay(); }

}  // namespace permfs::journal
