#include "btree/btree.h"

#include "util/log.h"

namespace permfs::btree {

using format::BlockType;
using format::Expect;
using format::TreeRoot;
using journal::BlockReader;
using journal::WriteTxn;

namespace {

std::size_t SplitPoint(const std::vector<Item>& items) {
  std::size_t total = 0;
  for (const Item& it : items) total += it.size();
  std::size_t acc = 0, sp = 0;
  while (sp < items.size() && acc + items[sp].size() <= total / 2) acc += items[sp++].size();
  if (sp == 0) sp = 1;
  if (sp >= items.size()) sp = items.size() - 1;
  return sp;
}

}  // namespace

Expect BTree::NodeExpect(std::uint32_t level, std::uint64_t blockno) const noexcept {
  return Expect{level == 0 ? BlockType::kBTreeLeaf : BlockType::kBTreeInternal, blockno, nullptr,
                true, id_, &ValidateNode};
}

Status BTree::Descend(BlockReader& r, const TreeRoot& root, const Slice& key,
                      Path* path) noexcept {
  if (root.height == 0 || root.height > kMaxHeight)
    return Status::Corruption("btree: bad tree height");
  std::uint64_t blk = root.root_block;
  std::uint64_t gen = root.root_generation;
  path->depth = 0;
  path->has_upper = false;
  for (int level = static_cast<int>(root.height) - 1; level >= 0; --level) {
    PERMFS_ASSIGN_OR_RETURN(const std::uint8_t* data,
                            r.Read(blk, NodeExpect(static_cast<std::uint32_t>(level), blk)));
    if (format::MetaGeneration(data) != gen)
      return Status::Corruption("btree: node generation mismatch (lost or misplaced write)");
    NodeView n(data, bs_);
    if (n.level() != level) return Status::Corruption("btree: node at the wrong level");
    const int d = path->depth++;
    if (level == 0) {
      path->e[d] = PathElem{blk, gen, n.LowerBound(key, nullptr)};
      path->leaf_data = data;
      break;
    }
    std::size_t idx = n.ChildFor(key);
    if (idx + 1 < n.count()) {
      path->upper = n.key(idx + 1).ToString();
      path->has_upper = true;
    }
    path->e[d] = PathElem{blk, gen, idx};
    blk = n.child(idx);
    gen = n.child_generation(idx);
  }
  return Status();
}

Result<std::uint8_t*> BTree::ModifyNode(WriteTxn& t, std::uint64_t block,
                                        std::uint32_t level) noexcept {
  return t.Modify(block, NodeExpect(level, block));
}

Status BTree::Get(BlockReader& r, const Slice& key, std::string* value) noexcept {
  PERMFS_ASSIGN_OR_RETURN(TreeRoot root, roots_->GetRoot(r, id_));
  if (root.height == 0) return Status::NotFound();
  Path path;
  PERMFS_RETURN_IF_ERROR(Descend(r, root, key, &path));
  NodeView leaf(path.leaf_data, bs_);
  std::size_t i = path.e[path.depth - 1].index;
  if (i >= leaf.count() || Compare(leaf.key(i), key) != 0) return Status::NotFound();
  if (value) *value = leaf.value(i).ToString();
  return Status();
}

Status BTree::InsertWithSplit(WriteTxn& t, std::uint8_t* node, std::uint64_t blockno,
                              std::size_t pos, const Slice& k, const Slice& v,
                              Carry* out) noexcept {
  NodeWriter w(node, bs_);
  if (w.InsertAt(pos, k, v)) return Status();
  std::vector<Item> items;
  ReadItems(w, &items);
  items.insert(items.begin() + static_cast<std::ptrdiff_t>(pos), Item{k.ToString(), v.ToString()});
  const std::uint16_t level = w.level();
  std::size_t sp = (level == 0 && pos == items.size() - 1) ? items.size() - 1 : SplitPoint(items);
  PERMFS_ASSIGN_OR_RETURN(alloc::Extent ext, alloc_->Allocate(t, 1, 1, blockno));
  PERMFS_ASSIGN_OR_RETURN(
      std::uint8_t * right,
      t.Create(ext.start, level == 0 ? BlockType::kBTreeLeaf : BlockType::kBTreeInternal, id_));
  NodeWriter rw(right, bs_);
  WriteItems(rw, level, items.data() + sp, items.size() - sp);
  WriteItems(w, level, items.data(), sp);
  out->split = true;
  out->sep = items[sp].key;
  out->block = ext.start;
  return Status();
}

Status BTree::Rebalance(WriteTxn& t, std::uint8_t* parent, std::uint64_t parent_block,
                        std::size_t idx, std::uint32_t child_level, Carry* out) noexcept {
  NodeWriter pw(parent, bs_);
  if (pw.count() < 2) return Status();
  const std::size_t li = idx > 0 ? idx - 1 : 0;
  const std::size_t ri = li + 1;
  const std::uint64_t lb = pw.child(li), rb = pw.child(ri);
  for (std::size_t j : {li, ri}) {
    std::uint64_t b = pw.child(j);
    PERMFS_ASSIGN_OR_RETURN(const std::uint8_t* d, t.Read(b, NodeExpect(child_level, b)));
    if (format::MetaGeneration(d) != pw.child_generation(j))
      return Status::Corruption("btree: sibling generation mismatch (lost write)");
    if (NodeView(d, bs_).level() != child_level)
      return Status::Corruption("btree: sibling at the wrong level");
  }
  PERMFS_ASSIGN_OR_RETURN(std::uint8_t * ldata, ModifyNode(t, lb, child_level));
  PERMFS_ASSIGN_OR_RETURN(std::uint8_t * rdata, ModifyNode(t, rb, child_level));
  NodeWriter lw(ldata, bs_), rw(rdata, bs_);
  std::vector<Item> items, more;
  ReadItems(lw, &items);
  ReadItems(rw, &more);
  for (Item& it : more) items.push_back(std::move(it));
  const std::uint64_t seq = t.seq();
  std::size_t total = 0;
  for (const Item& it : items) total += it.size();
  const auto level = static_cast<std::uint16_t>(child_level);
  if (total <= NodeCapacity(bs_)) {
    WriteItems(lw, level, items.data(), items.size());
    PERMFS_RETURN_IF_ERROR(alloc_->Free(t, alloc::Extent{rb, 1}));
    t.Forget(rb);
    pw.RemoveAt(ri);
    pw.SetChildGeneration(li, seq);
    return Status();
  }
  std::size_t sp = SplitPoint(items);
  WriteItems(lw, level, items.data(), sp);
  WriteItems(rw, level, items.data() + sp, items.size() - sp);
  pw.SetChildGeneration(li, seq);
  pw.RemoveAt(ri);
  std::string child = EncodeChild(rb, seq);
  return InsertWithSplit(t, parent, parent_block, ri, Slice(items[sp].key), Slice(child), out);
}

Status BTree::FixUp(WriteTxn& t, TreeRoot* root, Path* path, Carry carry) noexcept {
  const std::uint64_t seq = t.seq();
  const std::size_t quarter = NodeCapacity(bs_) / 4;
  for (int d = path->depth - 2; d >= 0; --d) {
    const std::uint32_t level = root->height - 1 - static_cast<std::uint32_t>(d);
    PathElem& pe = path->e[d];
    PERMFS_ASSIGN_OR_RETURN(std::uint8_t * pdata, ModifyNode(t, pe.block, level));
    NodeWriter pw(pdata, bs_);
    pw.SetChildGeneration(pe.index, seq);
    Carry next;
    PERMFS_ASSERT(!(carry.split && carry.underflow));
    if (carry.split) {
      std::string child = EncodeChild(carry.block, seq);
      PERMFS_RETURN_IF_ERROR(
          InsertWithSplit(t, pdata, pe.block, pe.index + 1, Slice(carry.sep), Slice(child), &next));
    } else if (carry.underflow) {
      PERMFS_RETURN_IF_ERROR(Rebalance(t, pdata, pe.block, pe.index, level - 1, &next));
    }
    if (!next.split && d > 0 && NodeView(pdata, bs_).used_bytes() < quarter) next.underflow = true;
    carry = std::move(next);
  }
  if (carry.split) {
    PERMFS_ASSIGN_OR_RETURN(alloc::Extent ext, alloc_->Allocate(t, 1, 1, root->root_block));
    PERMFS_ASSIGN_OR_RETURN(std::uint8_t * rdata,
                            t.Create(ext.start, BlockType::kBTreeInternal, id_));
    Item items[2] = {Item{std::string(), EncodeChild(root->root_block, seq)},
                     Item{carry.sep, EncodeChild(carry.block, seq)}};
    NodeWriter rw(rdata, bs_);
    WriteItems(rw, static_cast<std::uint16_t>(root->height), items, 2);
    root->root_block = ext.start;
    root->height += 1;
  }
  root->root_generation = seq;
  // Collapse a root left with one child, or an empty leaf root.
  for (;;) {
    PERMFS_ASSIGN_OR_RETURN(const std::uint8_t* data,
                            t.Read(root->root_block, NodeExpect(root->height - 1, root->root_block)));
    NodeView n(data, bs_);
    if (root->height > 1 && n.count() == 1) {
      std::uint64_t old = root->root_block;
      root->root_block = n.child(0);
      root->root_generation = n.child_generation(0);
      root->height -= 1;
      PERMFS_RETURN_IF_ERROR(alloc_->Free(t, alloc::Extent{old, 1}));
      t.Forget(old);
      continue;
    }
    if (root->height == 1 && n.count() == 0) {
      PERMFS_RETURN_IF_ERROR(alloc_->Free(t, alloc::Extent{root->root_block, 1}));
      t.Forget(root->root_block);
      *root = TreeRoot{};
    }
    break;
  }
  return roots_->SetRoot(t, id_, *root);
}

Status BTree::PutImpl(WriteTxn& t, const Slice& key, const Slice& value,
                      bool must_be_new) noexcept {
  if (key.size == 0 || key.size > kMaxKeySize) return Status::InvalidArgument("btree: bad key size");
  if (key.size + value.size > MaxEntryPayload(bs_))
    return Status::InvalidArgument("btree: entry too large");
  PERMFS_ASSIGN_OR_RETURN(TreeRoot root, roots_->GetRoot(t, id_));
  if (root.height == 0) {
    PERMFS_ASSIGN_OR_RETURN(alloc::Extent ext, alloc_->Allocate(t, 1, 1, 0));
    PERMFS_ASSIGN_OR_RETURN(std::uint8_t * data, t.Create(ext.start, BlockType::kBTreeLeaf, id_));
    NodeWriter w(data, bs_);
    w.Init(0);
    w.InsertAt(0, key, value);
    root = TreeRoot{ext.start, t.seq(), 1, 0, 1};
    return roots_->SetRoot(t, id_, root);
  }
  Path path;
  PERMFS_RETURN_IF_ERROR(Descend(t, root, key, &path));
  PathElem& leaf = path.e[path.depth - 1];
  bool found;
  {
    NodeView v(path.leaf_data, bs_);
    found = leaf.index < v.count() && Compare(v.key(leaf.index), key) == 0;
  }
  if (found && must_be_new) return Status::Exists();
  PERMFS_ASSIGN_OR_RETURN(std::uint8_t * data, ModifyNode(t, leaf.block, 0));
  NodeWriter w(data, bs_);
  Carry carry;
  if (found) {
    if (!w.SetValue(leaf.index, value)) {
      w.RemoveAt(leaf.index);
      PERMFS_RETURN_IF_ERROR(InsertWithSplit(t, data, leaf.block, leaf.index, key, value, &carry));
    }
  } else {
    PERMFS_RETURN_IF_ERROR(InsertWithSplit(t, data, leaf.block, leaf.index, key, value, &carry));
    root.entries += 1;
  }
  return FixUp(t, &root, &path, std::move(carry));
}

Status BTree::Put(WriteTxn& t, const Slice& key, const Slice& value) noexcept {
  return PutImpl(t, key, value, false);
}

Status BTree::Insert(WriteTxn& t, const Slice& key, const Slice& value) noexcept {
  return PutImpl(t, key, value, true);
}

Status BTree::Delete(WriteTxn& t, const Slice& key) noexcept {
  PERMFS_ASSIGN_OR_RETURN(TreeRoot root, roots_->GetRoot(t, id_));
  if (root.height == 0) return Status::NotFound();
  Path path;
  PERMFS_RETURN_IF_ERROR(Descend(t, root, key, &path));
  PathElem& leaf = path.e[path.depth - 1];
  {
    NodeView v(path.leaf_data, bs_);
    if (leaf.index >= v.count() || Compare(v.key(leaf.index), key) != 0)
      return Status::NotFound();
  }
  PERMFS_ASSIGN_OR_RETURN(std::uint8_t * data, ModifyNode(t, leaf.block, 0));
  NodeWriter w(data, bs_);
  w.RemoveAt(leaf.index);
  if (root.entries > 0) root.entries -= 1;
  Carry carry;
  carry.underflow = path.depth > 1 && w.used_bytes() < NodeCapacity(bs_) / 4;
  return FixUp(t, &root, &path, std::move(carry));
}

Status BTree::Scan(BlockReader& r, const Slice& start, const Slice& end, ScanFn fn,
                   void* ctx) noexcept {
  std::string cur = start.ToString();
  for (;;) {
    PERMFS_ASSIGN_OR_RETURN(TreeRoot root, roots_->GetRoot(r, id_));
    if (root.height == 0) return Status();
    Path path;
    PERMFS_RETURN_IF_ERROR(Descend(r, root, Slice(cur), &path));
    NodeView leaf(path.leaf_data, bs_);
    for (std::size_t i = path.e[path.depth - 1].index; i < leaf.count(); ++i) {
      Slice k = leaf.key(i);
      if (end.size && Compare(k, end) >= 0) return Status();
      if (!fn(ctx, k, leaf.value(i))) return Status();
    }
    if (!path.has_upper) return Status();
    if (Compare(Slice(path.upper), Slice(cur)) <= 0)
      return Status::Corruption("btree: separators out of order");
    if (end.size && Compare(Slice(path.upper), end) >= 0) return Status();
    cur = path.upper;
  }
}

Result<std::uint64_t> BTree::Count(BlockReader& r) noexcept {
  PERMFS_ASSIGN_OR_RETURN(TreeRoot root, roots_->GetRoot(r, id_));
  return root.entries;
}

Status BTree::CheckNode(BlockReader& r, std::uint64_t block, std::uint64_t gen,
                        std::uint32_t level, const std::string* lo, const std::string* hi,
                        TreeCheckStats* st, void (*node_fn)(void*, std::uint64_t), void* ctx,
                        int depth) noexcept {
  if (depth > kMaxHeight) return Status::Corruption("btree: too deep");
  PERMFS_ASSIGN_OR_RETURN(const std::uint8_t* data, r.Read(block, NodeExpect(level, block)));
  PERMFS_RETURN_IF_ERROR(ValidateNode(data, bs_));
  if (format::MetaGeneration(data) != gen)
    return Status::Corruption("btree: node generation mismatch (lost or misplaced write)");
  NodeView n(data, bs_);
  if (n.level() != level) return Status::Corruption("btree: node at the wrong level");
  if (node_fn) node_fn(ctx, block);
  st->nodes++;
  const std::size_t cnt = n.count();
  for (std::size_t i = (level == 0 ? 0 : 1); i < cnt; ++i) {
    if (lo && Compare(n.key(i), Slice(*lo)) < 0)
      return Status::Corruption("btree: key below its subtree's range");
    if (hi && Compare(n.key(i), Slice(*hi)) >= 0)
      return Status::Corruption("btree: key above its subtree's range");
  }
  if (level == 0) {
    st->leaves++;
    st->entries += cnt;
    return Status();
  }
  // Copy what we need: recursion may evict nothing we pinned, but keep it simple and safe.
  std::vector<Item> items;
  ReadItems(n, &items);
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string* clo = i == 0 ? lo : &items[i].key;
    const std::string* chi = i + 1 < items.size() ? &items[i + 1].key : hi;
    auto* v = reinterpret_cast<const std::uint8_t*>(items[i].value.data());
    std::uint64_t child = 0, cgen = 0;
    for (int b = 7; b >= 0; --b) child = (child << 8) | v[b];
    for (int b = 15; b >= 8; --b) cgen = (cgen << 8) | v[b];
    PERMFS_RETURN_IF_ERROR(CheckNode(r, child, cgen, level - 1, clo, chi, st, node_fn, ctx, depth + 1));
  }
  return Status();
}

Status BTree::Check(BlockReader& r, TreeCheckStats* stats,
                    void (*node_fn)(void* ctx, std::uint64_t blockno), void* ctx) noexcept {
  TreeCheckStats st;
  PERMFS_ASSIGN_OR_RETURN(TreeRoot root, roots_->GetRoot(r, id_));
  if (root.height == 0) {
    if (root.entries != 0) return Status::Corruption("btree: empty tree with entries");
    if (stats) *stats = st;
    return Status();
  }
  PERMFS_RETURN_IF_ERROR(CheckNode(r, root.root_block, root.root_generation, root.height - 1,
                                   nullptr, nullptr, &st, node_fn, ctx, 0));
  st.height = root.height;
  if (stats) *stats = st;
  if (st.entries != root.entries) return Status::Corruption("btree: entry count mismatch");
  return Status();
}

// ---------------------------------------------------------------------------------------------

Expect VolumeRootStore::RootExpect() const noexcept {
  return Expect{BlockType::kVolumeRoot, sb_.root_block, nullptr, false, 0, nullptr};
}

Result<format::VolumeRoot> VolumeRootStore::Load(BlockReader& r) noexcept {
  PERMFS_ASSIGN_OR_RETURN(const std::uint8_t* data, r.Read(sb_.root_block, RootExpect()));
  return format::VolumeRoot::DecodePayload(data, sb_.block_size);
}

Result<TreeRoot> VolumeRootStore::GetRoot(BlockReader& r, std::uint32_t tree) {
  if (tree >= format::kMaxTrees) return Status::InvalidArgument("tree id out of range");
  PERMFS_ASSIGN_OR_RETURN(const std::uint8_t* data, r.Read(sb_.root_block, RootExpect()));
  return format::VolumeRoot::DecodeTree(data, tree);
}

Status VolumeRootStore::SetRoot(WriteTxn& t, std::uint32_t tree, const TreeRoot& root) {
  if (tree >= format::kMaxTrees) return Status::InvalidArgument("tree id out of range");
  PERMFS_ASSIGN_OR_RETURN(std::uint8_t * data, t.Modify(sb_.root_block, RootExpect()));
  format::VolumeRoot::EncodeTree(data, tree, root);
  return Status();
}

Result<std::uint64_t> VolumeRootStore::GetCounter(BlockReader& r, std::size_t idx) noexcept {
  if (idx >= format::kRootCounters) return Status::InvalidArgument("counter out of range");
  PERMFS_ASSIGN_OR_RETURN(const std::uint8_t* data, r.Read(sb_.root_block, RootExpect()));
  return format::VolumeRoot::DecodeCounter(data, idx);
}

Status VolumeRootStore::SetCounter(WriteTxn& t, std::size_t idx, std::uint64_t value) noexcept {
  if (idx >= format::kRootCounters) return Status::InvalidArgument("counter out of range");
  PERMFS_ASSIGN_OR_RETURN(std::uint8_t * data, t.Modify(sb_.root_block, RootExpect()));
  format::VolumeRoot::EncodeCounter(data, idx, value);
  return Status();
}

}  // namespace permfs::btree
