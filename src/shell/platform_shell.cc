#include "shell/platform_shell.h"

#include "util/bytes.h"
#include "util/log.h"
#include "util/sort.h"

namespace permfs::shell {

using fs::Credentials;

struct PlatformShell::Record {
  std::uint8_t* data = nullptr;  // record_size bytes; bytes this record does not define are zero
  std::uint32_t len = 0;         // end of the bytes this record defines
  bool complete = false;         // data[0, len) is the whole record; else only `valid` sectors
  std::uint64_t valid = 0;       // partial record: bit i = sector i holds current bytes
  std::uint64_t dirtied_ns = 0;
  std::uint32_t promised = 0;    // blocks promised for this record's chunk (FreeRecord returns them)
};

struct PlatformShell::Node {
  explicit Node(NodeId i) : id(i) {}
  const NodeId id;
  // Guarded by table_mu_.
  std::uint64_t lookups = 0;
  std::uint64_t opens = 0;
  std::uint64_t writers = 0;  // the writable ones among the opens
  std::uint32_t pins = 0;
  bool orphan = false;
  // Guarded by mu.
  Mutex mu;
  CondVar promoted{&mu};            // signalled when a promotion of this node ends
  HashMap<std::uint64_t, Record> dirty;
  HashMap<std::uint64_t, Record> flight;  // being promoted: read-only, owned by the promoter
  bool promoting = false;
  std::atomic<std::uint64_t> dirty_count{0};  // dirty + in-flight records
  bool attrs_loaded = false;
  std::uint32_t mode = 0;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint64_t size = 0;          // logical size including unpromoted writes
  std::uint64_t committed_size = 0;  // size of the inode as committed
  std::uint64_t data_seq = 0;        // bumped whenever committed data changes under the node
  std::int64_t mtime_ns = 0;       // last write time while dirty
  enum class Caps : std::uint8_t { kUnknown, kAbsent, kPresent };
  Caps caps = Caps::kUnknown;      // whether security.capability is set (kill_privileges)
  Status deferred;                 // a failed promotion, reported at the next write/flush/fsync
};

namespace {

// Pins a node for the duration of a call.
class NodeRef {
 public:
  NodeRef(PlatformShell* s, void* n, void (*drop)(PlatformShell*, void*)) : s_(s), n_(n), drop_(drop) {}
  ~NodeRef() {
    if (n_) drop_(s_, n_);
  }
  NodeRef(const NodeRef&) = delete;
  NodeRef& operator=(const NodeRef&) = delete;

 private:
  PlatformShell* s_;
  void* n_;
  void (*drop_)(PlatformShell*, void*);
};

// POSIX ACLs in the Linux xattr format (system.posix_acl_access / _default): a little-endian
// u32 version (2), then entries {u16 tag, u16 perm, u32 id}. With FUSE_CAP_POSIX_ACL the kernel
// enforces them but leaves to the filesystem what ext4 does in posix_acl_update_mode /
// posix_acl_chmod / posix_acl_create: the mode follows a new access ACL, chmod updates the ACL,
// and new entries inherit the parent's default ACL.
constexpr char kAclAccess[] = "system.posix_acl_access";
constexpr char kAclDefault[] = "system.posix_acl_default";
constexpr char kCapsXattr[] = "security.capability";
enum : std::uint16_t {
  kAclUserObj = 0x01, kAclUser = 0x02, kAclGroupObj = 0x04, kAclGroup = 0x08, kAclMask = 0x10,
  kAclOther = 0x20,
};

std::uint16_t AclTag(const std::string& a, std::size_t i) {
  return static_cast<std::uint16_t>(static_cast<std::uint8_t>(a[4 + 8 * i]) |
                                    static_cast<std::uint8_t>(a[5 + 8 * i]) << 8);
}
std::uint16_t AclPerm(const std::string& a, std::size_t i) {
  return static_cast<std::uint16_t>(static_cast<std::uint8_t>(a[6 + 8 * i]) |
                                    static_cast<std::uint8_t>(a[7 + 8 * i]) << 8);
}
void SetAclPerm(std::string* a, std::size_t i, std::uint16_t perm) {
  (*a)[6 + 8 * i] = static_cast<char>(perm & 0xff);
  (*a)[7 + 8 * i] = static_cast<char>(perm >> 8);
}
// Entry count of a well-formed ACL (version 2, with USER_OBJ, GROUP_OBJ and OTHER), else -1.
long AclEntries(const std::string& a) {
  if (a.size() < 4 || (a.size() - 4) % 8 != 0) return -1;
  if (static_cast<std::uint8_t>(a[0]) != 2 || a[1] != 0 || a[2] != 0 || a[3] != 0) return -1;
  const std::size_t n = (a.size() - 4) / 8;
  unsigned seen = 0;
  for (std::size_t i = 0; i < n; ++i) seen |= AclTag(a, i);
  if ((seen & (kAclUserObj | kAclGroupObj | kAclOther)) != (kAclUserObj | kAclGroupObj | kAclOther))
    return -1;
  if ((seen & (kAclUser | kAclGroup)) && !(seen & kAclMask)) return -1;
  return static_cast<long>(n);
}
// True if the ACL says no more than the mode bits do (no named entries, no mask).
bool AclIsMinimal(const std::string& a, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    std::uint16_t t = AclTag(a, i);
    if (t == kAclUser || t == kAclGroup || t == kAclMask) return false;
  }
  return true;
}
// The permission bits an access ACL implies (group class = mask if present).
std::uint32_t AclModeBits(const std::string& a, std::size_t n) {
  std::uint32_t u = 0, g = 0, o = 0, m = 0;
  bool has_mask = false;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t p = AclPerm(a, i) & 7u;
    switch (AclTag(a, i)) {
      case kAclUserObj: u = p; break;
      case kAclGroupObj: g = p; break;
      case kAclOther: o = p; break;
      case kAclMask: m = p, has_mask = true; break;
      default: break;
    }
  }
  return (u << 6) | ((has_mask ? m : g) << 3) | o;
}
// chmod: the ACL's owner, group-class and other entries take the new mode bits.
void AclChmod(std::string* a, std::size_t n, std::uint32_t mode) {
  bool has_mask = false;
  for (std::size_t i = 0; i < n; ++i) has_mask |= AclTag(*a, i) == kAclMask;
  for (std::size_t i = 0; i < n; ++i) {
    switch (AclTag(*a, i)) {
      case kAclUserObj: SetAclPerm(a, i, (mode >> 6) & 7); break;
      case kAclGroupObj: if (!has_mask) SetAclPerm(a, i, (mode >> 3) & 7); break;
      case kAclMask: SetAclPerm(a, i, (mode >> 3) & 7); break;
      case kAclOther: SetAclPerm(a, i, mode & 7); break;
      default: break;
    }
  }
}
// posix_acl_create_masq: masks a copy of the parent's default ACL by the create mode; returns the
// resulting permission bits.
std::uint32_t AclCreateMasq(std::string* a, std::size_t n, std::uint32_t mode) {
  std::uint32_t m = mode & 0777;
  long group_obj = -1, mask = -1;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint16_t p = AclPerm(*a, i);
    switch (AclTag(*a, i)) {
      case kAclUserObj:
        p &= static_cast<std::uint16_t>((m >> 6) & 7);
        SetAclPerm(a, i, p);
        m &= (static_cast<std::uint32_t>(p) << 6) | ~0700u;
        break;
      case kAclGroupObj: group_obj = static_cast<long>(i); break;
      case kAclMask: mask = static_cast<long>(i); break;
      case kAclOther:
        p &= static_cast<std::uint16_t>(m & 7);
        SetAclPerm(a, i, p);
        m &= p | ~07u;
        break;
      default: break;
    }
  }
  const long gi = mask >= 0 ? mask : group_obj;
  if (gi >= 0) {
    const std::size_t i = static_cast<std::size_t>(gi);
    std::uint16_t p = AclPerm(*a, i) & static_cast<std::uint16_t>((m >> 3) & 7);
    SetAclPerm(a, i, p);
    m &= (static_cast<std::uint32_t>(p) << 3) | ~070u;
  }
  return m & 0777;
}

}  // namespace

PlatformShell::PlatformShell(fs::Filesystem* fs, const ShellOptions& opt) noexcept
    : fs_(fs),
      opt_(opt),
      rs_(fs->record_size()),
      ss_(fs->record_size() % 64 == 0 ? fs->record_size() / 64 : fs->record_size()),
      all_valid_(fs->record_size() % 64 == 0 ? ~0ull : 1ull) {
  // Keep up to a quarter of the budget (at most 32 MiB) of free buffers for reuse.
  std::uint64_t cap = opt.budget_bytes / 4;
  if (cap > (32ull << 20)) cap = 32ull << 20;
  pool_cap_ = static_cast<std::size_t>(cap / rs_);
}

PlatformShell::~PlatformShell() {
  MutexLock l(&table_mu_);
  nodes_.ForEach([this](const NodeId&, Node*& n) {
    n->dirty.ForEach([this](const std::uint64_t&, Record& r) { port::Deallocate(r.data, rs_, 64); });
    n->flight.ForEach([this](const std::uint64_t&, Record& r) { port::Deallocate(r.data, rs_, 64); });
    delete n;
  });
  nodes_.Clear();
  MutexLock p(&pool_mu_);
  for (std::uint8_t* b : pool_) port::Deallocate(b, rs_, 64);
  pool_.clear();
}

std::uint8_t* PlatformShell::GetBuffer() noexcept {
  {
    MutexLock l(&pool_mu_);
    if (!pool_.empty()) {
      std::uint8_t* p = pool_.back();
      pool_.pop_back();
      return p;
    }
  }
  return static_cast<std::uint8_t*>(port::Allocate(rs_, 64));
}

void PlatformShell::PutBuffer(std::uint8_t* p) noexcept {
  if (!p) return;
  {
    MutexLock l(&pool_mu_);
    if (pool_.size() < pool_cap_) {
      pool_.push_back(p);
      return;
    }
  }
  port::Deallocate(p, rs_, 64);
}

void PlatformShell::FreeRecord(Record* rec) noexcept {
  PutBuffer(rec->data);
  rec->data = nullptr;
  fs_->UnpromiseBlocks(rec->promised);
  rec->promised = 0;
  dirty_bytes_.fetch_sub(rs_, std::memory_order_relaxed);
  dirty_records_.fetch_sub(1, std::memory_order_relaxed);
}

PlatformShell::Node* PlatformShell::GetNode(NodeId id, bool create) noexcept {
  MutexLock l(&table_mu_);
  if (Node** p = nodes_.Find(id)) {
    (*p)->pins++;
    return *p;
  }
  if (!create) return nullptr;
  Node* n = new Node(id);
  n->pins = 1;
  nodes_.Insert(id, n);
  return n;
}

void PlatformShell::MaybeDropNode(NodeId id) noexcept {
  MutexLock l(&table_mu_);
  Node** p = nodes_.Find(id);
  if (!p) return;
  Node* n = *p;
  if (n->pins > 0) n->pins--;
  if (n->pins == 0 && n->lookups == 0 && n->opens == 0 && !n->orphan &&
      n->dirty_count.load(std::memory_order_acquire) == 0 && n->deferred.ok()) {
    nodes_.Erase(id);
    delete n;
  }
}

#define PERMFS_PIN(var, node_id, create_flag)                                               \
  Node* var = GetNode(node_id, create_flag);                                                \
  NodeRef var##_ref(this, var, [](PlatformShell* s_, void* n_) {                            \
    s_->MaybeDropNode(static_cast<Node*>(n_)->id);                                          \
  })

Status PlatformShell::LoadNodeAttrs(Node* n) noexcept {
  if (n->attrs_loaded) return Status();
  PERMFS_ASSIGN_OR_RETURN(InodeRecord a, fs_->GetAttr(n->id));
  n->mode = a.mode;
  n->uid = a.uid;
  n->gid = a.gid;
  n->size = a.size;
  n->committed_size = a.size;
  n->mtime_ns = a.mtime_ns;
  n->attrs_loaded = true;
  return Status();
}

std::uint32_t PlatformShell::SetIdBitsToClear(const Node* n, const KillPrivileges& kill) noexcept {
  if (!kill.suidgid || fs::IsDir(n->mode)) return 0;
  std::uint32_t clear = n->mode & fs::kModeSetuid;
  if ((n->mode & fs::kModeSetgid) &&
      ((n->mode & 0010u) || (kill.keeps_sgid && !kill.keeps_sgid(kill.ctx, n->gid))))
    clear |= fs::kModeSetgid;
  return clear;
}

Status PlatformShell::KillPrivilegesLocked(Node* n, const KillPrivileges& kill) noexcept {
  PERMFS_RETURN_IF_ERROR(LoadNodeAttrs(n));
  if (const std::uint32_t clear = SetIdBitsToClear(n, kill)) {
    fs::SetAttrRequest r;
    r.mask = fs::kSetMode;
    r.mode = n->mode & 07777u & ~clear;
    PERMFS_ASSIGN_OR_RETURN(InodeRecord a, fs_->SetAttr(n->id, r));
    n->mode = a.mode;
    if (sink_) sink_->InvalidateAttrs(n->id);
  }
  return kill.caps ? RemoveCapabilityLocked(n, nullptr) : Status();
}

Status PlatformShell::RemoveCapabilityLocked(Node* n, InodeRecord* attrs) noexcept {
  if (n->caps == Node::Caps::kUnknown) {
    auto v = fs_->GetXattr(n->id, kCapsXattr);
    if (!v.ok() && v.status().code() != Code::kNoData) return v.status();
    n->caps = v.ok() ? Node::Caps::kPresent : Node::Caps::kAbsent;
  }
  if (n->caps != Node::Caps::kPresent) return Status();
  InodeRecord after;
  Status st = fs_->RemoveXattr(n->id, kCapsXattr, &after);
  if (!st.ok() && st.code() != Code::kNoData) return st;
  n->caps = Node::Caps::kAbsent;
  if (st.ok() && attrs) attrs->ctime_ns = after.ctime_ns;  // the removal moved it
  return Status();
}

Status PlatformShell::kill_privileges(NodeId node, const KillPrivileges& kill) noexcept {
  PERMFS_PIN(n, node, true);
  MutexLock l(&n->mu);
  return KillPrivilegesLocked(n, kill);
}

void PlatformShell::NoteXattrChange(NodeId id, const std::string& name,
                                    const InodeRecord* attrs) noexcept {
  if (!attrs && name != kCapsXattr) return;  // nothing the node remembers
  PERMFS_PIN(n, id, false);
  if (!n) return;
  MutexLock l(&n->mu);
  if (name == kCapsXattr) n->caps = Node::Caps::kUnknown;
  if (attrs && n->attrs_loaded) n->mode = attrs->mode;
}

void PlatformShell::WaitPromotion(Node* n) noexcept {
  while (n->promoting) n->promoted.Wait();
}

std::uint64_t PlatformShell::BaseLen(Node* n, std::uint64_t r) noexcept {
  const std::uint64_t rs0 = r * rs_;
  std::uint64_t end = n->committed_size;
  if (const Record* f = n->flight.Find(r)) {
    if (rs0 + f->len > end) end = rs0 + f->len;
  }
  if (end > n->size) end = n->size;  // truncated since
  if (end <= rs0) return 0;
  return end - rs0 < rs_ ? end - rs0 : rs_;
}

void PlatformShell::Overlay(const Record& rec, std::uint64_t r, std::uint64_t off,
                            std::uint64_t count, std::uint8_t* buf) const noexcept {
  const std::uint64_t rs0 = r * rs_;
  const std::uint64_t a = off > rs0 ? off : rs0;
  const std::uint64_t b = (off + count) < rs0 + rs_ ? off + count : rs0 + rs_;
  if (a >= b) return;
  if (rec.complete) {
    // The record is the whole truth for its range: bytes past len are a hole.
    CopyBytes(buf + (a - off), rec.data + (a - rs0), static_cast<std::size_t>(b - a));
    return;
  }
  for (std::uint64_t p = a; p < b;) {
    const std::uint64_t sec = (p - rs0) / ss_;
    const std::uint64_t sec_end = rs0 + (sec + 1) * ss_;
    const std::uint64_t q = sec_end < b ? sec_end : b;
    if (rec.valid & (1ull << sec))
      CopyBytes(buf + (p - off), rec.data + (p - rs0), static_cast<std::size_t>(q - p));
    p = q;
  }
}

Status PlatformShell::CompleteRecord(Node* n, std::uint64_t r) noexcept {
  // The bytes below must be stable: wait for an in-flight copy of this record to commit.
  while (n->promoting && n->flight.Find(r)) n->promoted.Wait();
  Record* rec = n->dirty.Find(r);
  if (!rec || rec->complete) return Status();
  const std::uint64_t rs0 = r * rs_;
  const std::uint64_t base = BaseLen(n, r);
  std::uint8_t* buf = GetBuffer();
  if (!buf) return Status::NoMemory();
  std::size_t have = 0;
  if (base > 0) {
    auto got = fs_->Read(n->id, rs0, static_cast<std::size_t>(base), buf);
    if (!got.ok()) {
      PutBuffer(buf);
      return got.status();
    }
    have = *got;
  }
  FillBytes(buf + have, 0, rs_ - have);
  rec = n->dirty.Find(r);  // (no insert happened, but stay robust)
  Overlay(*rec, r, rs0, rs_, buf);
  PutBuffer(rec->data);
  rec->data = buf;
  rec->complete = true;
  rec->valid = all_valid_;
  if (base > rec->len) rec->len = static_cast<std::uint32_t>(base);
  sync_completions_.fetch_add(1, std::memory_order_relaxed);
  return Status();
}

Status PlatformShell::PromoteLocked(Node* n, Pick pick) noexcept {
  WaitPromotion(n);
  if (n->dirty.empty()) return Status();
  struct Item {
    std::uint64_t index;
    Record rec;
  };
  std::vector<Item> items;
  const std::uint64_t now = port::MonotonicNanos();
  n->dirty.ForEach([&](const std::uint64_t& k, Record& r) {
    bool take = true;
    if (pick == Pick::kIdle) take = now - r.dirtied_ns >= opt_.idle_flush_ns;
    if (pick == Pick::kFull) take = r.complete && r.len == rs_;
    if (take) items.push_back(Item{k, r});
  });
  if (items.empty()) return Status();
  Sort(items.data(), items.data() + items.size(),
       [](const Item& a, const Item& b) { return a.index < b.index; });
  // Into the in-flight set: readers overlay it, writers start new dirty records over it.
  for (const Item& it : items) {
    n->flight.Insert(it.index, it.rec);
    n->dirty.Erase(it.index);
  }
  n->promoting = true;
  const bool had_data = n->committed_size > 0;
  const std::uint64_t size = n->size;
  const NodeId id = n->id;
  n->mu.Unlock();

  constexpr std::size_t kBatch = 64;
  Status st;
  std::size_t done = 0;  // items committed
  std::vector<std::uint8_t*> merged;
  for (std::size_t i = 0; i < items.size() && st.ok(); i += kBatch) {
    const std::size_t end = i + kBatch < items.size() ? i + kBatch : items.size();
    std::vector<fs::Filesystem::RecordWrite> recs;
    std::uint64_t bytes = 0;
    // A partial record is merged with the committed bytes under it. Only this promotion
    // changes them (truncate and friends wait for it), so they are read without the node lock.
    for (std::size_t j = i; j < end && st.ok(); ++j) {
      const Record& r = items[j].rec;
      if (r.complete) {
        recs.push_back(fs::Filesystem::RecordWrite{items[j].index, r.data, r.len});
        bytes += r.len;
        continue;
      }
      std::uint8_t* buf = GetBuffer();
      if (!buf) {
        st = Status::NoMemory();
        break;
      }
      merged.push_back(buf);
      const std::uint64_t rs0 = items[j].index * rs_;
      std::uint64_t len = r.len;
      std::size_t have = 0;  // committed bytes read into buf
      if (size > rs0) {
        const std::uint64_t want = size - rs0 < rs_ ? size - rs0 : rs_;
        auto got = fs_->Read(id, rs0, static_cast<std::size_t>(want), buf);
        if (!got.ok()) {
          st = got.status();
          break;
        }
        have = *got;
        if (have > len) len = have;
      }
      FillBytes(buf + have, 0, rs_ - have);
      Overlay(r, items[j].index, rs0, rs_, buf);
      partial_merges_.fetch_add(1, std::memory_order_relaxed);
      recs.push_back(fs::Filesystem::RecordWrite{items[j].index, buf, len, true});
      bytes += len;
    }
    if (!st.ok()) break;
    // The file is at least as long as the end of the last record promoted; the logical size is
    // committed with the final batch.
    const bool last = end == items.size();
    std::uint64_t min_size = last && pick != Pick::kIdle && pick != Pick::kFull ? size : 0;
    for (const auto& rw : recs) {
      const std::uint64_t e = rw.index * rs_ + rw.len;
      if (e > min_size && e <= size) min_size = e;
    }
    st = fs_->WriteRecords(id, recs.data(), recs.size(), min_size, true, opt_.promise_space);
    for (std::uint8_t* b : merged) PutBuffer(b);
    merged.clear();
    if (!st.ok()) break;
    n->mu.Lock();
    ++n->data_seq;
    for (std::size_t j = i; j < end; ++j) {
      n->flight.Erase(items[j].index);
      FreeRecord(&items[j].rec);
    }
    if (min_size > n->committed_size) n->committed_size = min_size;
    n->dirty_count.store(n->dirty.size() + n->flight.size(), std::memory_order_release);
    n->mu.Unlock();
    done = end;
    promotions_.fetch_add(1, std::memory_order_relaxed);
    promoted_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
  for (std::uint8_t* b : merged) PutBuffer(b);
  n->mu.Lock();
  if (!st.ok()) {
    // Back into the dirty set, under any newer dirty record written meanwhile.
    for (std::size_t j = done; j < items.size(); ++j) {
      const std::uint64_t k = items[j].index;
      Record old = items[j].rec;
      n->flight.Erase(k);
      if (Record* newer = n->dirty.Find(k)) {
        if (newer->complete) {
          FreeRecord(&old);
          continue;
        }
        Overlay(*newer, k, k * rs_, rs_, old.data);
        old.valid |= newer->valid;
        if (newer->len > old.len) old.len = newer->len;
        old.dirtied_ns = newer->dirtied_ns;
        old.promised += newer->promised;  // covers the merged length
        newer->promised = 0;
        FreeRecord(newer);
        *newer = old;
      } else {
        n->dirty.Insert(k, old);
      }
    }
    n->deferred = st;
    PERMFS_LOG(kWarn, "shell: promotion of node ", id, " failed: ", st.message());
  }
  n->dirty_count.store(n->dirty.size() + n->flight.size(), std::memory_order_release);
  n->promoting = false;
  n->promoted.SignalAll();
  // st_blocks changed. A file without committed data before may be showing 0 blocks, which
  // archivers read as "all holes": that one is told at once.
  if (done > 0 && sink_) {
    if (had_data) sink_->InvalidateAttrsSoon(id);
    else sink_->InvalidateAttrs(id);
  }
  return st;
}

Status PlatformShell::OverBudget(Node* current) noexcept {
  const std::uint64_t dirty = dirty_bytes_.load(std::memory_order_relaxed);
  if (dirty > opt_.budget_bytes / 4) KickFlusher();
  if (dirty <= opt_.budget_bytes) return Status();
  budget_promotions_.fetch_add(1, std::memory_order_relaxed);
  Status first;
  if (current) {
    MutexLock l(&current->mu);
    first = PromoteLocked(current, Pick::kAll);
  }
  if (dirty_bytes_.load(std::memory_order_relaxed) <= opt_.budget_bytes) return first;
  PromoteOthers(current, true);
  return first;
}

void PlatformShell::PromoteOthers(Node* current, bool until_under_budget) noexcept {
  std::vector<NodeId> ids;
  {
    MutexLock l(&table_mu_);
    nodes_.ForEach([&](const NodeId& id, Node*& n) {
      if (n->dirty_count.load() > 0 && n != current) ids.push_back(id);
    });
  }
  for (NodeId id : ids) {
    if (until_under_budget && dirty_bytes_.load(std::memory_order_relaxed) <= opt_.budget_bytes)
      break;
    PERMFS_PIN(n, id, false);
    if (!n) continue;
    MutexLock l(&n->mu);
    PromoteLocked(n, Pick::kAll).IgnoreError();  // a failure is reported to that node's writer
  }
}

std::size_t PlatformShell::DiscardDirtyLocked(Node* n) noexcept {
  WaitPromotion(n);  // nothing in flight afterwards
  const std::size_t records = n->dirty.size();
  n->dirty.ForEach([this](const std::uint64_t&, Record& r) { FreeRecord(&r); });
  n->dirty.Clear();
  ++n->data_seq;
  n->dirty_count.store(0, std::memory_order_release);
  n->deferred = Status();
  return records;
}

void PlatformShell::DropDirtyLocked(Node* n) noexcept {
  const std::size_t records = DiscardDirtyLocked(n);
  if (records == 0) return;
  dropped_records_.fetch_add(records, std::memory_order_relaxed);
  PERMFS_LOG(kWarn, "shell: no space for ", records, " dirty records of node ", n->id,
             " at its last close: dropped (ENOSPC was reported)");
  CommitSizeLocked(n);
  if (sink_) sink_->InvalidateNode(n->id);
}

void PlatformShell::CommitSizeLocked(Node* n) noexcept {
  // A size change is metadata only (the journal's reserve); if even that fails, the committed
  // size is what the file has after a remount.
  if (n->attrs_loaded && n->size > n->committed_size) {
    fs::SetAttrRequest req;
    req.mask = fs::kSetSize;
    req.size = n->size;
    if (fs_->SetAttr(n->id, req).ok()) n->committed_size = n->size;
    else n->attrs_loaded = false;
  }
}

// ---- The flusher ---------------------------------------------------------------------------

void PlatformShell::KickFlusher() noexcept {
  if (flusher_kicked_.exchange(true, std::memory_order_acq_rel)) return;
  MutexLock l(&flusher_mu_);
  flusher_cv_.Signal();
}

void PlatformShell::RunFlusher() noexcept {
  MutexLock l(&flusher_mu_);
  flusher_running_ = true;
  while (!flusher_stop_) {
    if (!flusher_kicked_.load(std::memory_order_acquire)) flusher_cv_.WaitFor(1000000000ull);
    if (flusher_stop_) break;
    flusher_kicked_.store(false, std::memory_order_release);
    flusher_mu_.Unlock();
    DrainReclaims();
    FlushSome();
    flusher_mu_.Lock();
  }
  flusher_running_ = false;
  flusher_mu_.Unlock();
  DrainReclaims();
  flusher_mu_.Lock();
}

void PlatformShell::StopFlusher() noexcept {
  MutexLock l(&flusher_mu_);
  flusher_stop_ = true;
  flusher_cv_.SignalAll();
}

// Past a quarter of the budget: promote full records (a sequential writer's finished ones).
// Past seven eighths: promote everything of the nodes with the most dirty data until back
// under three quarters.
void PlatformShell::FlushSome() noexcept {
  const std::uint64_t quarter = opt_.budget_bytes / 4;
  if (dirty_bytes_.load(std::memory_order_relaxed) <= quarter) return;
  struct Cand {
    NodeId id;
    std::uint64_t count;
  };
  std::vector<Cand> cands;
  {
    MutexLock l(&table_mu_);
    nodes_.ForEach([&](const NodeId& id, Node*& n) {
      const std::uint64_t c = n->dirty_count.load(std::memory_order_relaxed);
      if (c > 0) cands.push_back(Cand{id, c});
    });
  }
  Sort(cands.data(), cands.data() + cands.size(),
       [](const Cand& a, const Cand& b) { return a.count > b.count; });
  for (const Cand& c : cands) {
    if (dirty_bytes_.load(std::memory_order_relaxed) <= quarter) break;
    PERMFS_PIN(n, c.id, false);
    if (!n) continue;
    MutexLock l(&n->mu);
    if (PromoteLocked(n, Pick::kFull).ok()) flusher_promotions_.fetch_add(1, std::memory_order_relaxed);
  }
  // Partial records are cheapest while they stay in memory (a rewrite costs nothing, a
  // promotion reads, hashes and writes a whole record): promote them only near the budget.
  const std::uint64_t eighth = opt_.budget_bytes / 8;
  if (dirty_bytes_.load(std::memory_order_relaxed) <= 7 * eighth) return;
  for (const Cand& c : cands) {
    if (dirty_bytes_.load(std::memory_order_relaxed) <= 6 * eighth) break;
    PERMFS_PIN(n, c.id, false);
    if (!n) continue;
    MutexLock l(&n->mu);
    if (PromoteLocked(n, Pick::kAll).ok()) flusher_promotions_.fetch_add(1, std::memory_order_relaxed);
  }
}

// ---- The seam ------------------------------------------------------------------------------

Result<InodeRecord> PlatformShell::lookup(NodeId parent, const std::string& name) noexcept {
  PERMFS_ASSIGN_OR_RETURN(InodeRecord a, fs_->Lookup(parent, name));
  PERMFS_PIN(n, a.ino, true);
  {
    MutexLock l(&table_mu_);
    n->lookups++;
  }
  MutexLock l(&n->mu);
  if (n->attrs_loaded && n->dirty_count.load() > 0) {
    a.size = n->size;
    a.mtime_ns = n->mtime_ns;
  }
  return a;
}

void PlatformShell::forget(NodeId node, std::uint64_t nlookup) noexcept {
  PERMFS_PIN(n, node, false);
  if (!n) return;
  bool reclaim = false;
  {
    MutexLock l(&table_mu_);
    n->lookups = n->lookups > nlookup ? n->lookups - nlookup : 0;
    reclaim = n->orphan && n->lookups == 0 && n->opens == 0;
  }
  if (!reclaim) return;
  // FORGET has no reply: with a flusher the reclaim (a transaction) runs there, in batches,
  // off the request path. The orphan record keeps it crash-safe meanwhile. The flusher is woken
  // per kReclaimBatch orphans, not per orphan (a wakeup per file cost `rm -rf` a third of its
  // time); fewer wait for its once-a-second round, or for statfs or a write short of space.
  {
    MutexLock l(&flusher_mu_);
    if (flusher_running_ && !flusher_stop_) {
      reclaims_.push_back(node);
      if (reclaims_.size() >= kReclaimBatch &&
          !flusher_kicked_.exchange(true, std::memory_order_acq_rel))
        flusher_cv_.Signal();
      return;
    }
  }
  ReclaimIfUnused(node).IgnoreError();
}

void PlatformShell::DrainReclaims() noexcept {
  std::vector<NodeId> ids;
  {
    MutexLock l(&flusher_mu_);
    ids.swap(reclaims_);
  }
  for (NodeId id : ids) ReclaimIfUnused(id).IgnoreError();
}

Result<InodeRecord> PlatformShell::attrs(NodeId node) noexcept {
  PERMFS_ASSIGN_OR_RETURN(InodeRecord a, fs_->GetAttr(node));
  PERMFS_PIN(n, node, false);
  if (n) {
    MutexLock l(&n->mu);
    if (n->attrs_loaded && (n->dirty_count.load() > 0 || n->size != a.size)) {
      a.size = n->size;
      if (n->dirty_count.load() > 0) a.mtime_ns = n->mtime_ns;
    }
  }
  return a;
}

Result<std::size_t> PlatformShell::read(NodeId node, std::uint64_t off, std::size_t len,
                                        std::uint8_t* buf) noexcept {
  PERMFS_PIN(n, node, true);
  std::uint64_t seq;
  std::size_t count = len;
  {
    MutexLock l(&n->mu);
    PERMFS_RETURN_IF_ERROR(LoadNodeAttrs(n));
    if (fs::IsDir(n->mode)) return Status(Code::kIsDirectory, "is a directory");
    if (off >= n->size || len == 0) return std::size_t{0};
    if (n->size - off < count) count = static_cast<std::size_t>(n->size - off);
    seq = n->data_seq;
  }
  // The committed bytes are read without the node lock (reads of one file run in parallel and
  // do not wait for a promotion's I/O). If committed data changed meanwhile (a promotion
  // retired in-flight records, a truncate), they are read again under the lock.
  PERMFS_ASSIGN_OR_RETURN(std::size_t got, fs_->Read(node, off, count, buf));
  MutexLock l(&n->mu);
  if (n->data_seq != seq) {
    if (off >= n->size) return std::size_t{0};
    if (n->size - off < count) count = static_cast<std::size_t>(n->size - off);
    PERMFS_ASSIGN_OR_RETURN(got, fs_->Read(node, off, count, buf));
  }
  if (got < count) FillBytes(buf + got, 0, count - got);
  if (n->dirty_count.load() > 0) {
    // Committed bytes, then in-flight records, then dirty records over them.
    const std::uint64_t first = off / rs_, last = (off + count - 1) / rs_;
    for (std::uint64_t r = first; r <= last; ++r) {
      if (const Record* f = n->flight.Find(r)) Overlay(*f, r, off, count, buf);
      if (const Record* d = n->dirty.Find(r)) Overlay(*d, r, off, count, buf);
    }
  }
  return count;
}

// Blocks promised for one write and not yet handed to its records; the rest goes back.
class PlatformShell::PromisePool {
 public:
  PromisePool(fs::Filesystem* fs, std::uint64_t blocks) noexcept : fs_(fs), blocks_(blocks) {}
  ~PromisePool() { fs_->UnpromiseBlocks(blocks_); }
  PromisePool(const PromisePool&) = delete;
  PromisePool& operator=(const PromisePool&) = delete;
  // Takes `n` blocks from the pool, promising what it lacks (false if that does not fit).
  bool Take(std::uint64_t n) noexcept {
    if (n > blocks_) {
      if (!fs_->PromiseBlocks(n - blocks_)) return false;
      blocks_ = n;
    }
    blocks_ -= n;
    return true;
  }

 private:
  fs::Filesystem* fs_;
  std::uint64_t blocks_;
};

std::uint64_t PlatformShell::PromiseNeeded(Node* n, std::uint64_t off, std::uint64_t end) noexcept {
  std::uint64_t want = 0;
  for (std::uint64_t r = off / rs_; r <= (end - 1) / rs_; ++r) {
    const std::uint64_t rs0 = r * rs_;
    std::uint64_t len = (end < rs0 + rs_ ? end : rs0 + rs_) - rs0;
    std::uint64_t have = 0;
    if (const Record* rec = n->dirty.Find(r)) {
      if (rec->len > len) len = rec->len;
      have = rec->promised;
    }
    const std::uint64_t base = BaseLen(n, r);  // a partial record is merged with these bytes
    if (base > len) len = base;
    const std::uint64_t need = fs_->RecordPromiseBlocks(len);
    if (need > have) want += need - have;
  }
  return want;
}

Status PlatformShell::write(NodeId node, std::uint64_t off, const std::uint8_t* data,
                            std::size_t len, const KillPrivileges& kill) noexcept {
  if (off > fs::Filesystem::kMaxFileSize || len > fs::Filesystem::kMaxFileSize - off)
    return Status(Code::kFileTooBig, "file too large");
  PERMFS_PIN(n, node, true);
  // Space first, promised before any byte changes. When it does not fit, this node's records
  // are promoted (they may need less than promised: dedupe, holes, chunks they replace), then
  // every node's, and only then is the write refused.
  for (int attempt = 0;; ++attempt) {
    if (attempt == 2) {
      DrainReclaims();  // deleted files the flusher has not reclaimed yet
      PromoteOthers(n, false);
    }
    MutexLock l(&n->mu);
    if (!n->deferred.ok()) {
      Status st = n->deferred;
      n->deferred = Status();
      return st;
    }
    PERMFS_RETURN_IF_ERROR(LoadNodeAttrs(n));
    if (fs::IsDir(n->mode)) return Status(Code::kIsDirectory, "is a directory");
    if (!fs::IsRegular(n->mode)) return Status::InvalidArgument("not a regular file");
    if (len == 0) return Status();
    if (opt_.promise_space && fs_->SpaceIsTight())
      return WriteThroughLocked(n, off, data, len, kill);
    const std::uint64_t want = opt_.promise_space ? PromiseNeeded(n, off, off + len) : 0;
    if (want > 0 && !fs_->PromiseBlocks(want)) {
      if (attempt == 2) {
        refused_writes_.fetch_add(1, std::memory_order_relaxed);
        return Status(Code::kNoSpace, "no space for the data of this write");
      }
      if (attempt == 0) {
        Status st = PromoteLocked(n, Pick::kAll);
        if (!st.ok()) {
          n->deferred = Status();  // reported now
          return st;
        }
      }
      continue;
    }
    PromisePool pool(fs_, want);
    if (kill.any()) PERMFS_RETURN_IF_ERROR(KillPrivilegesLocked(n, kill));
    PERMFS_RETURN_IF_ERROR(WriteLocked(n, off, data, len, &pool));
    if (opt_.sync_writes) {
      PERMFS_RETURN_IF_ERROR(PromoteLocked(n, Pick::kAll));
      PERMFS_RETURN_IF_ERROR(fs_->Sync());
    }
    break;
  }
  // Over budget: promote this node now; if even that fails the write reports it (the data stays
  // in the hot tier), so a full device cannot make memory grow without bound.
  Status st = OverBudget(n);
  if (!st.ok()) {
    MutexLock l(&n->mu);
    n->deferred = Status();
    return st;
  }
  return Status();
}

Status PlatformShell::WriteLocked(Node* n, std::uint64_t off, const std::uint8_t* data,
                                  std::size_t len, PromisePool* pool) noexcept {
  const std::uint64_t end = off + len;
  const std::uint64_t now = port::MonotonicNanos();
  // Bytes copied so far: a failure part way still covers them with the size (a record never
  // holds bytes past the size, which a later extension would otherwise expose).
  std::uint64_t done = off;
  const auto fail = [&](Status st) {
    if (done > n->size) n->size = done;
    if (done > off) n->mtime_ns = port::WallClockNanos();
    return st;
  };
  for (std::uint64_t r = off / rs_; r <= (end - 1) / rs_; ++r) {
    const std::uint64_t rs0 = r * rs_;
    const std::uint64_t lo = (off > rs0 ? off : rs0) - rs0;
    const std::uint64_t hi = (end < rs0 + rs_ ? end : rs0 + rs_) - rs0;
    // CompleteRecord may wait for a promotion, which may take this record meanwhile: retry.
    Record* rec = nullptr;
    for (;;) {
      rec = n->dirty.Find(r);
      if (!rec) {
        Record nr;
        nr.data = GetBuffer();
        if (!nr.data) return fail(Status::NoMemory());
        // Bytes a record does not define are zero; the ones this write covers are copied below.
        FillBytes(nr.data, 0, static_cast<std::size_t>(lo));
        FillBytes(nr.data + hi, 0, static_cast<std::size_t>(rs_ - hi));
        // Complete when nothing lies below it or this write covers all of that; otherwise
        // partial: the bytes below are merged at promotion, not read now.
        const std::uint64_t base = BaseLen(n, r);
        nr.complete = base == 0 || (lo == 0 && hi >= base);
        nr.valid = nr.complete ? all_valid_ : 0;
        n->dirty.Insert(r, nr);
        rec = n->dirty.Find(r);
        dirty_bytes_.fetch_add(rs_, std::memory_order_relaxed);
        dirty_records_.fetch_add(1, std::memory_order_relaxed);
        n->dirty_count.store(n->dirty.size() + n->flight.size(), std::memory_order_release);
      }
      if (rec->complete) break;
      // A sector the write covers only in part keeps its other bytes: zeros if they lie past
      // everything below, else the record must be completed first.
      const std::uint64_t s_lo = lo / ss_, s_hi = (hi - 1) / ss_;
      const std::uint64_t base = BaseLen(n, r);
      bool need = false;
      for (std::uint64_t sec : {s_lo, s_hi}) {
        const std::uint64_t a = sec * ss_, b = a + ss_;
        const bool whole = lo <= a && hi >= b;
        if (!whole && !(rec->valid & (1ull << sec)) && a < base) need = true;
      }
      if (need) {
        if (Status st = CompleteRecord(n, r); !st.ok()) return fail(st);
        continue;
      }
      const std::uint64_t nbits = s_hi - s_lo + 1;
      const std::uint64_t bits = nbits >= 64 ? ~0ull : ((1ull << nbits) - 1) << s_lo;
      rec->valid |= bits & all_valid_;
      // Every sector held: each one below the base was written whole, so the record now
      // defines all of its bytes.
      if (rec->valid == all_valid_) rec->complete = true;
      break;
    }
    if (opt_.promise_space) {
      // The record's promise grows to what it will store. The pool holds that normally; a
      // promotion that took the record while CompleteRecord waited may make it promise more.
      std::uint64_t stored = hi > rec->len ? hi : rec->len;
      const std::uint64_t base = BaseLen(n, r);
      if (base > stored) stored = base;
      const std::uint64_t need = fs_->RecordPromiseBlocks(stored);
      if (need > rec->promised) {
        if (!pool->Take(need - rec->promised)) {
          refused_writes_.fetch_add(1, std::memory_order_relaxed);
          return fail(Status(Code::kNoSpace, "no space for the data of this write"));
        }
        rec->promised = static_cast<std::uint32_t>(need);
      }
    }
    CopyBytes(rec->data + lo, data + (rs0 + lo - off), static_cast<std::size_t>(hi - lo));
    if (hi > rec->len) rec->len = static_cast<std::uint32_t>(hi);
    rec->dirtied_ns = now;
    done = rs0 + hi;
  }
  if (end > n->size) n->size = end;
  n->mtime_ns = port::WallClockNanos();
  return Status();
}

Status PlatformShell::PromoteAllLocked(Node* n) noexcept {
  // Each promotion lets go of the node lock, so writers may add records meanwhile: until none
  // is left.
  while (!n->dirty.empty() || n->promoting) {
    Status st = PromoteLocked(n, Pick::kAll);
    if (!st.ok()) {
      n->deferred = Status();  // reported now
      return st;
    }
  }
  return Status();
}

Status PlatformShell::WriteThroughLocked(Node* n, std::uint64_t off, const std::uint8_t* data,
                                         std::size_t len, const KillPrivileges& kill) noexcept {
  // Nothing of the node may stay in the hot tier: a dirty record promoted after this write
  // would put older bytes over it.
  PERMFS_RETURN_IF_ERROR(PromoteAllLocked(n));
  if (kill.any()) PERMFS_RETURN_IF_ERROR(KillPrivilegesLocked(n, kill));
  Status st = fs_->Write(n->id, off, data, len);
  // Committed data changed (all of it, or the batches before a failure): readers and the
  // attributes take it from the volume.
  ++n->data_seq;
  n->attrs_loaded = false;
  Status loaded = LoadNodeAttrs(n);
  if (!st.ok()) {
    if (st.IsNoSpace()) refused_writes_.fetch_add(1, std::memory_order_relaxed);
    return st;
  }
  return loaded;
}

Status PlatformShell::write_refused(NodeId node, std::uint64_t off, std::size_t len) noexcept {
  PERMFS_PIN(n, node, false);
  if (!n) return Status();
  {
    MutexLock l(&n->mu);
    PERMFS_RETURN_IF_ERROR(LoadNodeAttrs(n));
    if (!fs::IsRegular(n->mode)) return Status();
    if (off + len > n->size) {
      n->size = off + len;
      CommitSizeLocked(n);
    }
  }
  // Logged at the 1st, 2nd, 4th, 8th... refusal: a full volume refuses every page written back.
  const std::uint64_t refused = refused_writes_.load(std::memory_order_relaxed);
  if ((refused & (refused - 1)) == 0)
    PERMFS_LOG(kWarn, "shell: no space for ", len, " bytes at ", off, " of node ", node,
               " already accepted by the platform's cache: not stored (ENOSPC reported; ",
               refused, " writes refused so far)");
  if (sink_) sink_->InvalidateNode(node);
  return Status();
}

Result<std::size_t> PlatformShell::CopyThrough(NodeId src, std::uint64_t off_in, NodeId dst,
                                               std::uint64_t off_out, std::size_t len,
                                               const KillPrivileges& kill) noexcept {
  if (len == 0) return std::size_t{0};
  std::uint8_t* buf = GetBuffer();
  if (!buf) return Status::NoMemory();
  std::size_t done = 0;
  Status failed;
  while (done < len) {
    const std::size_t want = len - done < rs_ ? len - done : rs_;
    auto got = read(src, off_in + done, want, buf);
    if (!got.ok()) {
      failed = got.status();
      break;
    }
    if (*got == 0) break;  // src ended
    Status st = write(dst, off_out + done, buf, *got, kill);
    if (!st.ok()) {
      failed = st;
      break;
    }
    done += *got;
    if (*got < want) break;
  }
  PutBuffer(buf);
  if (done == 0 && !failed.ok()) return failed;
  return done;
}

Result<std::size_t> PlatformShell::copy_range(NodeId src, std::uint64_t off_in, NodeId dst,
                                              std::uint64_t off_out, std::size_t len,
                                              const KillPrivileges& kill) noexcept {
  if (len > kMaxCopy) len = kMaxCopy;
  if (off_in > fs::Filesystem::kMaxFileSize || off_out > fs::Filesystem::kMaxFileSize ||
      len > fs::Filesystem::kMaxFileSize - off_out)
    return Status(Code::kFileTooBig, "file too large");
  if (src == dst && off_out < off_in + len && off_in < off_out + len)
    return Status::InvalidArgument("overlapping ranges in one file");
  // Sharing needs src's chunks: its hot-tier records go to the volume first.
  std::uint64_t src_size;
  {
    PERMFS_PIN(s, src, true);
    MutexLock l(&s->mu);
    PERMFS_RETURN_IF_ERROR(LoadNodeAttrs(s));
    if (fs::IsDir(s->mode)) return Status(Code::kIsDirectory, "is a directory");
    if (!fs::IsRegular(s->mode)) return Status::InvalidArgument("not a regular file");
    PERMFS_RETURN_IF_ERROR(PromoteAllLocked(s));
    src_size = s->size;
  }
  if (off_in >= src_size || len == 0) return std::size_t{0};
  if (src_size - off_in < len) len = static_cast<std::size_t>(src_size - off_in);
  if (off_in % rs_ != off_out % rs_) return CopyThrough(src, off_in, dst, off_out, len, kill);

  // head: bytes before the first record boundary; then whole records; then the tail.
  std::size_t head = static_cast<std::size_t>((rs_ - off_in % rs_) % rs_);
  if (head > len) head = len;
  std::size_t done = 0;
  if (head > 0) {
    PERMFS_ASSIGN_OR_RETURN(std::size_t n, CopyThrough(src, off_in, dst, off_out, head, kill));
    done = n;
    if (n < head) return done;
  }
  const std::uint64_t whole = (len - head) / rs_;
  const std::uint64_t rest = (len - head) % rs_;
  // src's last record, shorter than a record, can be shared too when the copy ends at src's end
  // and nothing of dst lies past the copy (its chunk then ends at dst's new size).
  const bool eof_record = rest > 0 && off_in + len == src_size;
  if (whole > 0 || eof_record) {
    PERMFS_PIN(d, dst, true);
    MutexLock l(&d->mu);
    if (!d->deferred.ok()) {
      Status st = d->deferred;
      d->deferred = Status();
      return done > 0 ? Result<std::size_t>(done) : Result<std::size_t>(st);
    }
    Status st = LoadNodeAttrs(d);
    if (st.ok() && fs::IsDir(d->mode)) st = Status(Code::kIsDirectory, "is a directory");
    if (st.ok() && !fs::IsRegular(d->mode)) st = Status::InvalidArgument("not a regular file");
    // dst's own unpromoted records in the range would land over the shared ones later.
    if (st.ok()) st = PromoteAllLocked(d);
    if (st.ok() && kill.any()) st = KillPrivilegesLocked(d, kill);
    if (!st.ok()) return done > 0 ? Result<std::size_t>(done) : Result<std::size_t>(st);
    std::uint64_t count = whole, bytes = whole * rs_;
    if (eof_record && off_out + len >= d->size) {
      ++count;
      bytes += rest;
    }
    std::uint64_t cloned = 0;
    st = fs_->CloneRecords(src, (off_in + head) / rs_, dst, (off_out + head) / rs_, count,
                           off_out + head + bytes, &cloned);
    // Committed data changed (all of it, or the batches before a failure): readers and the
    // attributes take it from the volume.
    ++d->data_seq;
    d->attrs_loaded = false;
    Status loaded = LoadNodeAttrs(d);
    const std::uint64_t cloned_bytes = cloned * rs_ < bytes ? cloned * rs_ : bytes;
    done += static_cast<std::size_t>(cloned_bytes);
    if (!st.ok()) return done > 0 ? Result<std::size_t>(done) : Result<std::size_t>(st);
    if (!loaded.ok()) return done > 0 ? Result<std::size_t>(done) : Result<std::size_t>(loaded);
    if (sink_) sink_->InvalidateAttrs(dst);  // st_blocks
  }
  if (done < len) {
    auto n = CopyThrough(src, off_in + done, dst, off_out + done, len - done, kill);
    if (!n.ok()) return done > 0 ? Result<std::size_t>(done) : n;
    done += *n;
  }
  return done;
}

Status PlatformShell::enumerate(NodeId dir, std::uint64_t cookie, fs::DirFn fn, void* ctx) noexcept {
  return fs_->ReadDir(dir, cookie, fn, ctx);
}

void PlatformShell::invalidate(NodeId node) noexcept {
  {
    PERMFS_PIN(n, node, false);
    if (n) {
      MutexLock l(&n->mu);
      if (n->dirty_count.load() == 0 && !n->promoting) n->attrs_loaded = false;
    }
  }
  if (sink_) sink_->InvalidateNode(node);
}

Status PlatformShell::flush(NodeId node) noexcept {
  PERMFS_PIN(n, node, false);
  if (!n) return Status();
  MutexLock l(&n->mu);
  Status deferred = n->deferred;
  n->deferred = Status();
  Status st = PromoteLocked(n, Pick::kAll);
  if (!deferred.ok()) return deferred;
  if (!st.ok()) n->deferred = Status();  // reported now
  return st;
}

Status PlatformShell::fsync(NodeId node, bool) noexcept {
  PERMFS_RETURN_IF_ERROR(flush(node));
  return fs_->Sync();
}

Status PlatformShell::AddOpen(NodeId node, bool writable, bool dir) noexcept {
  PERMFS_PIN(n, node, true);
  {
    MutexLock l(&n->mu);
    PERMFS_RETURN_IF_ERROR(LoadNodeAttrs(n));
    if (dir && !fs::IsDir(n->mode)) return Status(Code::kNotDirectory, "not a directory");
  }
  MutexLock l(&table_mu_);
  n->opens++;
  if (writable) n->writers++;
  return Status();
}

bool PlatformShell::DropOpenLocked(Node* n, bool writable) noexcept {
  if (n->opens > 0) n->opens--;
  if (writable && n->writers > 0) n->writers--;
  return n->opens == 0;
}

Status PlatformShell::open(NodeId node, bool writable) noexcept {
  return AddOpen(node, writable, false);
}

bool PlatformShell::has_writers(NodeId node) noexcept {
  PERMFS_PIN(n, node, false);
  if (!n) return false;
  MutexLock l(&table_mu_);
  return n->writers > 0;
}

std::vector<NodeId> PlatformShell::nodes_with_writers() noexcept {
  std::vector<NodeId> ids;
  MutexLock l(&table_mu_);
  nodes_.ForEach([&](const NodeId& id, Node*& n) {
    if (n->writers > 0) ids.push_back(id);
  });
  return ids;
}

Status PlatformShell::opendir(NodeId node) noexcept { return AddOpen(node, false, true); }

// An open directory holds its inode like an open file: removed while open, it is reclaimed at
// the last close.
Status PlatformShell::releasedir(NodeId node) noexcept {
  PERMFS_PIN(n, node, false);
  if (!n) return Status();
  bool reclaim = false;
  {
    MutexLock l(&table_mu_);
    reclaim = DropOpenLocked(n, false) && n->orphan && n->lookups == 0;
  }
  return reclaim ? ReclaimIfUnused(node) : Status();
}

Status PlatformShell::release(NodeId node, bool writable) noexcept {
  PERMFS_PIN(n, node, false);
  if (!n) return Status();
  Status st;
  bool orphan;
  {
    MutexLock l(&table_mu_);
    orphan = n->orphan;
  }
  if (!orphan) st = flush(node);
  bool reclaim = false, last = false;
  {
    MutexLock l(&table_mu_);
    last = DropOpenLocked(n, writable);
    reclaim = n->orphan && last && n->lookups == 0;
  }
  if (last && st.IsNoSpace()) {
    // The last close of a file whose dirty data does not fit: the application has been told
    // (close returned ENOSPC, and again here), and while the file was open it could make room
    // (truncate, delete other files) and keep it. Kept any longer, the data would fail at every
    // flush and at unmount, holding memory and keeping the volume from unmounting cleanly, so
    // it is dropped, like pages whose writeback failed: the ranges read as zeros (holes cost no
    // space) and the size stays what the kernel already shows, so the file reads the same
    // before and after a remount.
    MutexLock l(&n->mu);
    DropDirtyLocked(n);
  }
  if (reclaim) {
    Status rs = ReclaimIfUnused(node);
    if (st.ok()) st = rs;
  }
  return st;
}

// ---- Namespace -----------------------------------------------------------------------------

Result<std::uint32_t> PlatformShell::NewEntryMode(NodeId parent, std::uint32_t mode,
                                                  std::uint32_t umask,
                                                  InheritedAcl* acl) noexcept {
  auto d = fs_->GetXattr(parent, kAclDefault);
  if (!d.ok() && d.status().code() != Code::kNoData) return d.status();
  const long n = d.ok() ? AclEntries(*d) : -1;
  if (n < 0) return mode & ~(umask & 0777u);
  std::string access = *d;
  const std::uint32_t bits = AclCreateMasq(&access, static_cast<std::size_t>(n), mode);
  if (!AclIsMinimal(access, static_cast<std::size_t>(n))) acl->access = access;
  if (fs::IsDir(mode)) acl->dflt = *d;
  return (mode & ~0777u) | bits;
}

Status PlatformShell::ApplyInheritedAcl(const InheritedAcl& acl, InodeRecord* made) noexcept {
  // Setting them moves the ctime: the attributes the caller hands out must be those after, or
  // the platform sees the ctime change later with no operation to explain it.
  if (!acl.access.empty())
    PERMFS_RETURN_IF_ERROR(fs_->SetXattr(made->ino, kAclAccess, acl.access, 0, made));
  if (!acl.dflt.empty())
    PERMFS_RETURN_IF_ERROR(fs_->SetXattr(made->ino, kAclDefault, acl.dflt, 0, made));
  return Status();
}

// A new entry was handed to the adapter: +1 lookup reference (and +1 open for create).
void PlatformShell::NoteNewReference(NodeId id, bool opened, bool writable) noexcept {
  PERMFS_PIN(n, id, true);
  MutexLock l(&table_mu_);
  n->lookups++;
  if (opened) n->opens++;
  if (opened && writable) n->writers++;
}

Result<InodeRecord> PlatformShell::create(NodeId parent, const std::string& name,
                                          std::uint32_t mode, const Credentials& cred,
                                          bool exclusive, std::uint32_t umask,
                                          bool writable, bool* existed) noexcept {
  if (existed) *existed = false;
  InheritedAcl acl;
  PERMFS_ASSIGN_OR_RETURN(std::uint32_t m, NewEntryMode(parent, mode, umask, &acl));
  // Only a new inode inherits: O_CREAT without O_EXCL of an existing name returns it unchanged.
  auto made = fs_->Create(parent, name, m, 0, cred, true);
  if (!made.ok() && made.status().code() == Code::kExists && !exclusive) {
    made = fs_->Create(parent, name, m, 0, cred, false);
    if (existed) *existed = made.ok();
  } else if (made.ok())
    PERMFS_RETURN_IF_ERROR(ApplyInheritedAcl(acl, &*made));
  if (!made.ok()) return made.status();
  NoteNewReference(made->ino, true, writable);
  return *made;
}

Result<InodeRecord> PlatformShell::mknod(NodeId parent, const std::string& name,
                                         std::uint32_t mode, std::uint64_t rdev,
                                         const Credentials& cred, std::uint32_t umask) noexcept {
  InheritedAcl acl;
  PERMFS_ASSIGN_OR_RETURN(std::uint32_t m, NewEntryMode(parent, mode, umask, &acl));
  PERMFS_ASSIGN_OR_RETURN(InodeRecord a, fs_->Create(parent, name, m, rdev, cred, true));
  PERMFS_RETURN_IF_ERROR(ApplyInheritedAcl(acl, &a));
  NoteNewReference(a.ino, false, false);
  return a;
}

Result<InodeRecord> PlatformShell::mkdir(NodeId parent, const std::string& name,
                                         std::uint32_t mode, const Credentials& cred,
                                         std::uint32_t umask) noexcept {
  InheritedAcl acl;
  PERMFS_ASSIGN_OR_RETURN(std::uint32_t m,
                          NewEntryMode(parent, mode | fs::kTypeDir, umask, &acl));
  PERMFS_ASSIGN_OR_RETURN(InodeRecord a, fs_->Mkdir(parent, name, m & 07777u, cred));
  PERMFS_RETURN_IF_ERROR(ApplyInheritedAcl(acl, &a));
  NoteNewReference(a.ino, false, false);
  return a;
}

Result<InodeRecord> PlatformShell::symlink(NodeId parent, const std::string& name,
                                           const std::string& target,
                                           const Credentials& cred) noexcept {
  PERMFS_ASSIGN_OR_RETURN(InodeRecord a, fs_->Symlink(parent, name, target, cred));
  NoteNewReference(a.ino, false, false);
  return a;
}

Result<std::string> PlatformShell::readlink(NodeId node) noexcept { return fs_->Readlink(node); }

Result<InodeRecord> PlatformShell::link(NodeId node, NodeId new_parent,
                                        const std::string& new_name) noexcept {
  PERMFS_ASSIGN_OR_RETURN(InodeRecord a, fs_->Link(node, new_parent, new_name));
  PERMFS_PIN(n, node, true);
  {
    MutexLock l(&table_mu_);
    n->lookups++;
  }
  MutexLock l(&n->mu);
  if (n->attrs_loaded) a.size = n->size;
  return a;
}

void PlatformShell::NoteOrphan(std::uint64_t ino) noexcept {
  bool now = false;
  {
    PERMFS_PIN(n, ino, true);
    MutexLock l(&table_mu_);
    n->orphan = true;
    now = n->opens == 0 && n->lookups == 0;
  }
  if (now) ReclaimIfUnused(ino).IgnoreError();
}

Status PlatformShell::ReclaimIfUnused(NodeId id) noexcept {
  PERMFS_PIN(n, id, false);
  if (!n) return fs_->Reclaim(id);
  {
    MutexLock l(&table_mu_);
    if (!n->orphan || n->opens > 0 || n->lookups > 0) return Status();
    n->orphan = false;
  }
  {
    // Dirty data of a file nobody can reach any more is simply dropped.
    MutexLock l(&n->mu);
    DiscardDirtyLocked(n);
    n->attrs_loaded = false;
  }
  return fs_->Reclaim(id);
}

Status PlatformShell::unlink(NodeId parent, const std::string& name) noexcept {
  fs::UnlinkOutcome o;
  PERMFS_RETURN_IF_ERROR(fs_->Unlink(parent, name, &o));
  if (o.orphan) NoteOrphan(o.orphan);
  return Status();
}

Status PlatformShell::rmdir(NodeId parent, const std::string& name) noexcept {
  fs::UnlinkOutcome o;
  PERMFS_RETURN_IF_ERROR(fs_->Rmdir(parent, name, &o));
  if (o.orphan) NoteOrphan(o.orphan);
  return Status();
}

Status PlatformShell::rename(NodeId old_parent, const std::string& old_name, NodeId new_parent,
                             const std::string& new_name, std::uint32_t flags) noexcept {
  fs::UnlinkOutcome o;
  PERMFS_RETURN_IF_ERROR(fs_->Rename(old_parent, old_name, new_parent, new_name, flags, &o));
  if (o.orphan) NoteOrphan(o.orphan);
  return Status();
}

Result<InodeRecord> PlatformShell::setattr(NodeId node, const fs::SetAttrRequest& req,
                                           const KillPrivileges& kill) noexcept {
  PERMFS_PIN(n, node, true);
  MutexLock l(&n->mu);
  // Promote first: explicit times must not be overwritten by a later promotion, and a size
  // change applies to promoted data.
  if (!n->deferred.ok()) {
    Status st = n->deferred;
    n->deferred = Status();
    return st;
  }
  // Loaded before anything changes: the size handling below and the set-ID rule depend on them.
  if (kill.suidgid || kill.owner_only) PERMFS_RETURN_IF_ERROR(LoadNodeAttrs(n));
  if (kill.owner_only) {
    if (n->uid != kill.caller_uid && SetIdBitsToClear(n, kill))
      return Status(Code::kPermission, "only the owner may clear the set-ID bits");
  }
  if ((req.mask & fs::kSetSize) && n->attrs_loaded && req.size < n->size) {
    // Dirty data past the new end is dropped, not promoted: a truncate must work on a full
    // volume (and not write what it is about to free).
    WaitPromotion(n);
    std::vector<std::uint64_t> drop;
    const std::uint64_t keep = (req.size + rs_ - 1) / rs_;  // records [0, keep) survive
    n->dirty.ForEach([&](const std::uint64_t& k, Record&) {
      if (k >= keep) drop.push_back(k);
    });
    for (std::uint64_t k : drop) {
      FreeRecord(n->dirty.Find(k));
      n->dirty.Erase(k);
    }
    if (Record* rec = req.size % rs_ ? n->dirty.Find(req.size / rs_) : nullptr) {
      const std::uint32_t cut = static_cast<std::uint32_t>(req.size % rs_);
      FillBytes(rec->data + cut, 0, rs_ - cut);
      if (rec->len > cut) rec->len = cut;
    }
    n->size = req.size;
    n->dirty_count.store(n->dirty.size() + n->flight.size(), std::memory_order_release);
  }
  Status promoted = PromoteLocked(n, Pick::kAll);
  if (!promoted.ok()) {
    n->deferred = Status();  // reported now
    return promoted;
  }
  // Set-ID bits go in the same change, decided on the attributes before it: Linux asks whether
  // the caller is in the file's group as it was (a chown to a group of the caller's still drops
  // S_ISGID from a file of a group it is not in).
  fs::SetAttrRequest change = req;
  if (kill.suidgid) {
    if (const std::uint32_t clear = SetIdBitsToClear(n, kill)) {
      if (!(change.mask & fs::kSetMode)) {
        change.mask |= fs::kSetMode;
        change.mode = n->mode & 07777u;
      }
      change.mode &= ~clear;
    }
  }
  auto res = fs_->SetAttr(node, change);
  ++n->data_seq;
  if (!res.ok()) {
    n->attrs_loaded = n->dirty_count.load() > 0;  // reload from the volume when clean
    return res.status();
  }
  InodeRecord a = *res;
  if ((change.mask & fs::kSetMode) && !fs::IsSymlink(a.mode)) {
    auto acl = fs_->GetXattr(node, kAclAccess);
    if (!acl.ok() && acl.status().code() != Code::kNoData) return acl.status();
    const long entries = acl.ok() ? AclEntries(*acl) : -1;
    if (entries >= 0) {
      AclChmod(&*acl, static_cast<std::size_t>(entries), a.mode);
      InodeRecord after;
      PERMFS_RETURN_IF_ERROR(fs_->SetXattr(node, kAclAccess, *acl, 0, &after));
      a.ctime_ns = after.ctime_ns;  // the ACL moved it again
    }
  }
  n->mode = a.mode;
  n->uid = a.uid;
  n->gid = a.gid;
  n->committed_size = a.size;
  // The promotion above let go of the node lock: writes that landed meanwhile took the in-memory
  // size past the committed one, and count as written after this change.
  if (n->attrs_loaded && n->size > a.size) a.size = n->size;
  n->size = a.size;
  n->mtime_ns = a.mtime_ns;
  n->attrs_loaded = true;
  if (kill.caps) PERMFS_RETURN_IF_ERROR(RemoveCapabilityLocked(n, &a));
  return a;
}

Result<std::string> PlatformShell::getxattr(NodeId node, const std::string& name) noexcept {
  return fs_->GetXattr(node, name);
}
Status PlatformShell::setxattr(NodeId node, const std::string& name, const std::string& value,
                               std::uint32_t flags, const KillPrivileges& kill) noexcept {
  if (name == kAclAccess) {
    const long n = AclEntries(value);
    if (n < 0) return Status::InvalidArgument("malformed POSIX ACL");
    PERMFS_ASSIGN_OR_RETURN(InodeRecord a, fs_->GetAttr(node));
    fs::SetAttrRequest r;
    r.mask = fs::kSetMode;
    r.mode = (a.mode & 07000u) | AclModeBits(value, static_cast<std::size_t>(n));
    if ((r.mode & fs::kModeSetgid) && kill.keeps_sgid && !kill.keeps_sgid(kill.ctx, a.gid))
      r.mode &= ~fs::kModeSetgid;
    if (AclIsMinimal(value, static_cast<std::size_t>(n))) {
      Status st = fs_->RemoveXattr(node, name);
      if (!st.ok() && st.code() != Code::kNoData) return st;
    } else {
      PERMFS_RETURN_IF_ERROR(fs_->SetXattr(node, name, value, flags));
    }
    PERMFS_ASSIGN_OR_RETURN(InodeRecord after, fs_->SetAttr(node, r));
    NoteXattrChange(node, name, &after);
    return Status();
  }
  Status st = fs_->SetXattr(node, name, value, flags);
  NoteXattrChange(node, name, nullptr);
  return st;
}
Result<std::vector<std::string>> PlatformShell::listxattr(NodeId node) noexcept {
  return fs_->ListXattr(node);
}
Status PlatformShell::removexattr(NodeId node, const std::string& name) noexcept {
  Status st = fs_->RemoveXattr(node, name);
  NoteXattrChange(node, name, nullptr);
  return st;
}
Result<fs::StatfsInfo> PlatformShell::statfs() noexcept {
  DrainReclaims();  // space of files deleted just now counts as free (the flusher batches them)
  return fs_->Statfs();
}

Status PlatformShell::fallocate(NodeId node, std::uint32_t mode, std::uint64_t off,
                                std::uint64_t len) noexcept {
  PERMFS_PIN(n, node, true);
  MutexLock l(&n->mu);
  PERMFS_RETURN_IF_ERROR(PromoteLocked(n, Pick::kAll));
  Status fst = fs_->Fallocate(node, mode, off, len);
  ++n->data_seq;
  PERMFS_RETURN_IF_ERROR(fst);
  // Writes that landed while the promotion had let go of the lock are in the in-memory size
  // only; fallocate never shrinks a file, so the larger of the two is the size.
  const std::uint64_t in_memory = n->attrs_loaded ? n->size : 0;
  n->attrs_loaded = false;
  if (sink_) sink_->InvalidateAttrs(node);  // st_blocks
  PERMFS_RETURN_IF_ERROR(LoadNodeAttrs(n));
  if (in_memory > n->size) n->size = in_memory;
  return Status();
}

Result<std::uint64_t> PlatformShell::lseek(NodeId node, std::uint64_t off, int whence) noexcept {
  PERMFS_PIN(n, node, true);
  MutexLock l(&n->mu);
  PERMFS_RETURN_IF_ERROR(PromoteLocked(n, Pick::kAll));
  if (whence == 3) return fs_->SeekData(node, off);
  if (whence == 4) return fs_->SeekHole(node, off);
  return Status::InvalidArgument("lseek whence must be SEEK_DATA or SEEK_HOLE");
}

// ---- Host duties ---------------------------------------------------------------------------

Status PlatformShell::Tick() noexcept {
  std::vector<NodeId> ids;
  {
    MutexLock l(&table_mu_);
    nodes_.ForEach([&](const NodeId& id, Node*& n) {
      if (n->dirty_count.load() > 0) ids.push_back(id);
    });
  }
  for (NodeId id : ids) {
    PERMFS_PIN(n, id, false);
    if (!n) continue;
    MutexLock l(&n->mu);
    std::uint64_t before = n->dirty_count.load();
    PromoteLocked(n, Pick::kIdle).IgnoreError();  // kept as the node's deferred error
    if (n->dirty_count.load() < before) idle_promotions_.fetch_add(1, std::memory_order_relaxed);
  }
  return fs_->volume()->meta()->Tick(opt_.commit_interval_ns);
}

void PlatformShell::ForgetAll() noexcept {
  std::vector<NodeId> orphans;
  {
    MutexLock l(&table_mu_);
    nodes_.ForEach([&](const NodeId& id, Node*& n) {
      n->lookups = 0;
      if (n->orphan && n->opens == 0) orphans.push_back(id);
    });
  }
  for (NodeId id : orphans) ReclaimIfUnused(id).IgnoreError();
}

Status PlatformShell::SyncAll() noexcept {
  DrainReclaims();
  std::vector<NodeId> ids;
  {
    MutexLock l(&table_mu_);
    nodes_.ForEach([&](const NodeId& id, Node*&) { ids.push_back(id); });
  }
  Status first;
  for (NodeId id : ids) {
    PERMFS_PIN(n, id, false);
    if (!n) continue;
    MutexLock l(&n->mu);
    Status st = PromoteLocked(n, Pick::kAll);
    if (first.ok() && !st.ok()) first = st;
  }
  Status st = fs_->Sync();
  return first.ok() ? st : first;
}

ShellStats PlatformShell::stats() const noexcept {
  ShellStats s;
  s.flusher_promotions = flusher_promotions_.load();
  s.partial_merges = partial_merges_.load();
  s.dropped_records = dropped_records_.load();
  s.sync_completions = sync_completions_.load();
  s.refused_writes = refused_writes_.load();
  s.dirty_bytes = dirty_bytes_.load();
  s.dirty_records = dirty_records_.load();
  s.promotions = promotions_.load();
  s.promoted_bytes = promoted_bytes_.load();
  s.budget_promotions = budget_promotions_.load();
  s.idle_promotions = idle_promotions_.load();
  MutexLock l(&table_mu_);
  s.nodes = nodes_.size();
  return s;
}

}  // namespace permfs::shell
