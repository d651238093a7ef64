#include "btree/node.h"

#include "format/meta_block.h"
#include "util/assert.h"
#include "util/bytes.h"
#include "util/coding.h"

namespace permfs::btree {

int Compare(const Slice& a, const Slice& b) noexcept {
  return CompareByteStrings(a.data, a.size, b.data, b.size);
}

std::uint16_t NodeView::level() const noexcept { return DecodeLE16(b_ + 64); }
std::uint16_t NodeView::count() const noexcept { return DecodeLE16(b_ + 66); }
std::size_t NodeView::slot(std::size_t i) const noexcept {
  return DecodeLE16(b_ + kNodeHeader + 2 * i);
}

Slice NodeView::key(std::size_t i) const noexcept {
  const std::uint8_t* e = b_ + slot(i);
  return Slice(e + 4, DecodeLE16(e));
}

Slice NodeView::value(std::size_t i) const noexcept {
  const std::uint8_t* e = b_ + slot(i);
  std::size_t kl = DecodeLE16(e);
  return Slice(e + 4 + kl, DecodeLE16(e + 2));
}

std::uint64_t NodeView::child(std::size_t i) const noexcept { return DecodeLE64(value(i).data); }
std::uint64_t NodeView::child_generation(std::size_t i) const noexcept {
  return DecodeLE64(value(i).data + 8);
}

std::size_t NodeView::entry_size(std::size_t i) const noexcept {
  const std::uint8_t* e = b_ + slot(i);
  return kEntryOverhead + DecodeLE16(e) + DecodeLE16(e + 2);
}

std::size_t NodeView::used_bytes() const noexcept {
  std::size_t n = count(), used = 0;
  for (std::size_t i = 0; i < n; ++i) used += entry_size(i);
  return used;
}

std::size_t NodeView::LowerBound(const Slice& k, bool* found) const noexcept {
  std::size_t lo = 0, hi = count();
  while (lo < hi) {
    std::size_t mid = (lo + hi) / 2;
    if (Compare(key(mid), k) < 0) lo = mid + 1;
    else hi = mid;
  }
  if (found) *found = lo < count() && Compare(key(lo), k) == 0;
  return lo;
}

std::size_t NodeView::ChildFor(const Slice& k) const noexcept {
  // Last entry with key <= k; entry 0 also takes keys below its key.
  std::size_t lo = 0, hi = count();
  while (lo < hi) {
    std::size_t mid = (lo + hi) / 2;
    if (Compare(key(mid), k) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo == 0 ? 0 : lo - 1;
}

std::size_t NodeWriter::data_start() const noexcept { return DecodeLE32(b_ + 68); }
void NodeWriter::set_count(std::size_t n) noexcept {
  EncodeLE16(w_ + 66, static_cast<std::uint16_t>(n));
}
void NodeWriter::set_data_start(std::size_t v) noexcept {
  EncodeLE32(w_ + 68, static_cast<std::uint32_t>(v));
}
void NodeWriter::set_slot(std::size_t i, std::size_t off) noexcept {
  EncodeLE16(w_ + kNodeHeader + 2 * i, static_cast<std::uint16_t>(off));
}

void NodeWriter::Init(std::uint16_t level) noexcept {
  FillBytes(w_ + format::kMetaHeaderSize, 0, bs_ - format::kMetaHeaderSize);
  EncodeLE16(w_ + 64, level);
  set_count(0);
  set_data_start(bs_);
}

void NodeWriter::Compact() noexcept {
  std::vector<std::uint8_t> tmp(bs_);
  std::size_t n = count();
  std::size_t pos = bs_;
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t sz = entry_size(i) - 2;
    pos -= sz;
    CopyBytes(tmp.data() + pos, b_ + slot(i), sz);
    EncodeLE16(tmp.data() + kNodeHeader + 2 * i, static_cast<std::uint16_t>(pos));
  }
  CopyBytes(w_ + pos, tmp.data() + pos, bs_ - pos);
  CopyBytes(w_ + kNodeHeader, tmp.data() + kNodeHeader, 2 * n);
  set_data_start(pos);
}

bool NodeWriter::InsertAt(std::size_t i, const Slice& k, const Slice& v) noexcept {
  const std::size_t n = count();
  PERMFS_ASSERT(i <= n);
  const std::size_t need = 4 + k.size + v.size;
  std::size_t slots_end = kNodeHeader + 2 * (n + 1);
  if (data_start() < slots_end || data_start() - slots_end < need) {
    if (used_bytes() + need + 2 > NodeCapacity(bs_)) return false;
    Compact();
    if (data_start() - slots_end < need) return false;
  }
  std::size_t pos = data_start() - need;
  EncodeLE16(w_ + pos, static_cast<std::uint16_t>(k.size));
  EncodeLE16(w_ + pos + 2, static_cast<std::uint16_t>(v.size));
  CopyBytes(w_ + pos + 4, k.data, k.size);
  CopyBytes(w_ + pos + 4 + k.size, v.data, v.size);
  MoveBytes(w_ + kNodeHeader + 2 * (i + 1), w_ + kNodeHeader + 2 * i, 2 * (n - i));
  set_slot(i, pos);
  set_count(n + 1);
  set_data_start(pos);
  return true;
}

void NodeWriter::RemoveAt(std::size_t i) noexcept {
  const std::size_t n = count();
  PERMFS_ASSERT(i < n);
  std::size_t off = slot(i);
  std::size_t raw = 4 + DecodeLE16(w_ + off) + DecodeLE16(w_ + off + 2);
  MoveBytes(w_ + kNodeHeader + 2 * i, w_ + kNodeHeader + 2 * (i + 1), 2 * (n - i - 1));
  set_count(n - 1);
  if (off == data_start()) set_data_start(off + raw);
  if (n - 1 == 0) set_data_start(bs_);
}

bool NodeWriter::SetValue(std::size_t i, const Slice& v) noexcept {
  Slice old = value(i);
  if (old.size == v.size) {
    CopyBytes(const_cast<std::uint8_t*>(old.data), v.data, v.size);
    return true;
  }
  std::string k = key(i).ToString();
  std::string saved = old.ToString();
  RemoveAt(i);
  if (InsertAt(i, Slice(k), v)) return true;
  bool back = InsertAt(i, Slice(k), Slice(saved));
  PERMFS_ASSERT(back);
  return false;
}

void NodeWriter::SetChild(std::size_t i, std::uint64_t child, std::uint64_t generation) noexcept {
  std::uint8_t* p = const_cast<std::uint8_t*>(value(i).data);
  EncodeLE64(p, child);
  EncodeLE64(p + 8, generation);
}

void NodeWriter::SetChildGeneration(std::size_t i, std::uint64_t generation) noexcept {
  EncodeLE64(const_cast<std::uint8_t*>(value(i).data) + 8, generation);
}

Status ValidateNode(const std::uint8_t* b, std::size_t bs) noexcept {
  NodeView n(b, bs);
  const std::size_t cnt = n.count();
  const std::size_t ds = DecodeLE32(b + 68);
  if (n.level() > 32) return Status::Corruption("btree node: level too high");
  if (kNodeHeader + 2 * cnt > bs || ds > bs || ds < kNodeHeader + 2 * cnt)
    return Status::Corruption("btree node: count or data area out of bounds");
  if (!n.is_leaf() && cnt == 0) return Status::Corruption("btree node: empty internal node");
  for (std::size_t i = 0; i < cnt; ++i) {
    std::size_t off = DecodeLE16(b + kNodeHeader + 2 * i);
    if (off < ds || off + 4 > bs) return Status::Corruption("btree node: entry offset out of bounds");
    std::size_t kl = DecodeLE16(b + off), vl = DecodeLE16(b + off + 2);
    if (off + 4 + kl + vl > bs) return Status::Corruption("btree node: entry overruns the block");
    if (kl > kMaxKeySize) return Status::Corruption("btree node: key too long");
    if (kl == 0 && (n.is_leaf() || i > 0)) return Status::Corruption("btree node: empty key");
    if (!n.is_leaf() && vl != kChildValueSize)
      return Status::Corruption("btree node: bad child pointer size");
    if (i > 0 && Compare(n.key(i - 1), n.key(i)) >= 0)
      return Status::Corruption("btree node: keys out of order");
  }
  return Status();
}

void ReadItems(const NodeView& n, std::vector<Item>* out) {
  out->clear();
  out->reserve(n.count());
  for (std::size_t i = 0; i < n.count(); ++i)
    out->push_back(Item{n.key(i).ToString(), n.value(i).ToString()});
}

void WriteItems(NodeWriter& n, std::uint16_t level, const Item* items, std::size_t count) noexcept {
  n.Init(level);
  for (std::size_t i = 0; i < count; ++i) {
    bool ok = n.InsertAt(i, Slice(items[i].key), Slice(items[i].value));
    PERMFS_ASSERT_MSG(ok, "btree: items do not fit a node");
  }
}

std::string EncodeChild(std::uint64_t child, std::uint64_t generation) {
  std::string s(16, '\0');
  auto* p = reinterpret_cast<std::uint8_t*>(s.data());
  EncodeLE64(p, child);
  EncodeLE64(p + 8, generation);
  return s;
}

}  // namespace permfs::btree
