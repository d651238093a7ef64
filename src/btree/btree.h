// BTree: the one B+tree implementation behind every metadata keyspace (inodes, directory
// entries, chunk maps, xattrs, the chunk index, threads/snapshots, orphans).
//
// Keys are byte strings of 1..255 bytes compared with memcmp order (encode integers big-endian to
// keep numeric order); key + value of one entry is at most MaxEntryPayload(block_size) bytes.
// Nodes are metadata blocks (btree/node.h) owned by the tree id, changed only inside a WriteTxn.
//
// Lost-write detection: every child pointer stores the child's generation (the transaction that
// last wrote it) and the tree root records the root's generation, so a node that is internally
// valid but stale (a write the device dropped) is reported as Corruption on the way down.
// Every modification therefore rewrites the path from the changed leaf to the root; that path is
// shared by all operations in a group commit, so the cost is amortised.
//
// Error contract: on any non-OK status from a modifying call (Put/Insert/Delete), the caller
// must Abort() the WriteTxn; the tree may be half-changed inside the aborted handle.
// Thread-safety: a BTree object is stateless apart from its ids; concurrency comes from the
// MetaStore lock held by the WriteTxn / ReadView passed in.
#pragma once

#include <cstdint>
#include <string>

#include "alloc/allocator.h"
#include "btree/node.h"
#include "format/volume_root.h"
#include "journal/meta_store.h"

namespace permfs::btree {

// Where tree roots live (the volume root block; a test may supply its own).
class RootStore {
 public:
  virtual Result<format::TreeRoot> GetRoot(journal::BlockReader& r, std::uint32_t tree) = 0;
  virtual Status SetRoot(journal::WriteTxn& t, std::uint32_t tree, const format::TreeRoot& root) = 0;

 protected:
  ~RootStore() = default;
};

// Called for each entry by Scan; the slices are valid only during the call. Return false to stop.
using ScanFn = bool (*)(void* ctx, const Slice& key, const Slice& value);

struct TreeCheckStats {
  std::uint64_t nodes = 0;
  std::uint64_t leaves = 0;
  std::uint64_t entries = 0;
  std::uint32_t height = 0;
};

class BTree {
 public:
  BTree(journal::MetaStore* ms, alloc::Allocator* alloc, RootStore* roots,
        std::uint32_t tree_id) noexcept
      : alloc_(alloc), roots_(roots), id_(tree_id), bs_(ms->block_size()) {}

  std::uint32_t id() const noexcept { return id_; }
  std::size_t max_entry_payload() const noexcept { return MaxEntryPayload(bs_); }

  // NotFound if absent.
  Status Get(journal::BlockReader& r, const Slice& key, std::string* value) noexcept;
  // Inserts or replaces.
  Status Put(journal::WriteTxn& t, const Slice& key, const Slice& value) noexcept;
  // Inserts; Exists if the key is present (tree unchanged).
  Status Insert(journal::WriteTxn& t, const Slice& key, const Slice& value) noexcept;
  // NotFound if absent (tree unchanged).
  Status Delete(journal::WriteTxn& t, const Slice& key) noexcept;
  // Visits entries with start <= key < end in key order (an empty `end` means no bound).
  Status Scan(journal::BlockReader& r, const Slice& start, const Slice& end, ScanFn fn,
              void* ctx) noexcept;
  // Number of entries (from the root record).
  Result<std::uint64_t> Count(journal::BlockReader& r) noexcept;
  // fsck: verifies every node (checksums, generations, levels, key order and key ranges,
  // entry count) and calls node_fn for every node block. Never modifies anything.
  Status Check(journal::BlockReader& r, TreeCheckStats* stats,
               void (*node_fn)(void* ctx, std::uint64_t blockno), void* ctx) noexcept;

 private:
  struct PathElem {
    std::uint64_t block;
    std::uint64_t generation;
    std::size_t index;  // child taken (internal) or lower bound (leaf)
  };
  static constexpr int kMaxHeight = 32;
  struct Path {
    PathElem e[kMaxHeight];
    int depth = 0;  // number of nodes, root at 0, leaf at depth-1
    std::string upper;  // smallest separator above the leaf's range
    bool has_upper = false;
    const std::uint8_t* leaf_data = nullptr;
  };
  struct Carry {
    bool split = false;
    std::string sep;
    std::uint64_t block = 0;
    bool underflow = false;
  };

  format::Expect NodeExpect(std::uint32_t level, std::uint64_t blockno) const noexcept;
  Status Descend(journal::BlockReader& r, const format::TreeRoot& root, const Slice& key,
                 Path* path) noexcept;
  Result<std::uint8_t*> ModifyNode(journal::WriteTxn& t, std::uint64_t block,
                                   std::uint32_t level) noexcept;
  Status InsertWithSplit(journal::WriteTxn& t, std::uint8_t* node, std::uint64_t blockno,
                         std::size_t pos, const Slice& k, const Slice& v, Carry* out) noexcept;
  Status Rebalance(journal::WriteTxn& t, std::uint8_t* parent, std::uint64_t parent_block,
                   std::size_t idx, std::uint32_t child_level, Carry* out) noexcept;
  Status FixUp(journal::WriteTxn& t, format::TreeRoot* root, Path* path, Carry carry) noexcept;
  Status PutImpl(journal::WriteTxn& t, const Slice& key, const Slice& value,
                 bool must_be_new) noexcept;
  Status CheckNode(journal::BlockReader& r, std::uint64_t block, std::uint64_t gen,
                   std::uint32_t level, const std::string* lo, const std::string* hi,
                   TreeCheckStats* st, void (*node_fn)(void*, std::uint64_t), void* ctx,
                   int depth) noexcept;

  alloc::Allocator* alloc_;
  RootStore* roots_;
  std::uint32_t id_;
  std::uint32_t bs_;
};

// RootStore over the volume root block (format/volume_root.h), plus its counters.
class VolumeRootStore final : public RootStore {
 public:
  explicit VolumeRootStore(const format::Superblock& sb) noexcept : sb_(sb) {}
  Result<format::TreeRoot> GetRoot(journal::BlockReader& r, std::uint32_t tree) override;
  Status SetRoot(journal::WriteTxn& t, std::uint32_t tree, const format::TreeRoot& root) override;
  Result<std::uint64_t> GetCounter(journal::BlockReader& r, std::size_t idx) noexcept;
  Status SetCounter(journal::WriteTxn& t, std::size_t idx, std::uint64_t value) noexcept;
  Result<format::VolumeRoot> Load(journal::BlockReader& r) noexcept;

 private:
  format::Expect RootExpect() const noexcept;
  const format::Superblock sb_;
};

}  // namespace permfs::btree
