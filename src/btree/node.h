// B+tree node layout (docs/FORMAT.md §8) and in-place operations on a node's bytes.
//
// A node is one metadata block: the 64-byte meta header (type kBTreeLeaf or kBTreeInternal,
// owner = tree id), then
//   64  u16 level        0 for leaves
//   66  u16 count        number of entries
//   68  u32 data_start   offset of the lowest entry byte (entries grow down from the block end)
//   72  u64 reserved
//   80  u16 slot[count]  offsets of the entries, in key order
// Each entry is: u16 key_len, u16 value_len, key bytes, value bytes. In internal nodes the value
// is 16 bytes: u64 child block, u64 child generation. Entry i of an internal node covers keys
// >= key(i) and < key(i+1); key(0) of the leftmost node of each level is empty.
//
// NodeView reads a node; NodeWriter edits one in place (inserting compacts the entry area when
// fragmented). ValidateNode() checks everything a hostile image could get wrong: counts, offsets,
// lengths, key order. Nodes are validated once when read from the device.
// Thread-safety: plain views over caller-owned buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"

namespace permfs::btree {

inline constexpr std::size_t kNodeHeader = 80;
inline constexpr std::size_t kEntryOverhead = 2 + 4;  // slot + lengths
inline constexpr std::size_t kMaxKeySize = 255;
inline constexpr std::size_t kChildValueSize = 16;

inline std::size_t NodeCapacity(std::size_t bs) noexcept { return bs - kNodeHeader; }
// Largest key + value of one entry: a quarter of a node, so a split always succeeds.
inline std::size_t MaxEntryPayload(std::size_t bs) noexcept {
  return NodeCapacity(bs) / 4 - kEntryOverhead;
}

struct Slice {
  const std::uint8_t* data = nullptr;
  std::size_t size = 0;
  Slice() = default;
  Slice(const std::uint8_t* d, std::size_t n) : data(d), size(n) {}
  Slice(const std::string& s)  // NOLINT
      : data(reinterpret_cast<const std::uint8_t*>(s.data())), size(s.size()) {}
  Slice(const std::vector<std::uint8_t>& v) : data(v.data()), size(v.size()) {}  // NOLINT
  std::string ToString() const { return std::string(reinterpret_cast<const char*>(data), size); }
};
int Compare(const Slice& a, const Slice& b) noexcept;

class NodeView {
 public:
  NodeView(const std::uint8_t* block, std::size_t bs) noexcept : b_(block), bs_(bs) {}
  std::uint16_t level() const noexcept;
  std::uint16_t count() const noexcept;
  bool is_leaf() const noexcept { return level() == 0; }
  Slice key(std::size_t i) const noexcept;
  Slice value(std::size_t i) const noexcept;
  std::uint64_t child(std::size_t i) const noexcept;
  std::uint64_t child_generation(std::size_t i) const noexcept;
  // Index of the first entry with key >= k (count() if none); *found if equal.
  std::size_t LowerBound(const Slice& k, bool* found) const noexcept;
  // Internal nodes: index of the child whose range holds k.
  std::size_t ChildFor(const Slice& k) const noexcept;
  std::size_t used_bytes() const noexcept;  // slots + live entries
  std::size_t entry_size(std::size_t i) const noexcept;

 protected:
  std::size_t slot(std::size_t i) const noexcept;
  const std::uint8_t* b_;
  std::size_t bs_;
};

class NodeWriter : public NodeView {
 public:
  NodeWriter(std::uint8_t* block, std::size_t bs) noexcept : NodeView(block, bs), w_(block) {}
  // Resets the payload to an empty node of `level` (header bytes 0..63 untouched).
  void Init(std::uint16_t level) noexcept;
  // Inserts at index i; false (node unchanged) if it does not fit even after compaction.
  bool InsertAt(std::size_t i, const Slice& k, const Slice& v) noexcept;
  void RemoveAt(std::size_t i) noexcept;
  // Replaces entry i's value; false (unchanged) if the new value does not fit.
  bool SetValue(std::size_t i, const Slice& v) noexcept;
  void SetChild(std::size_t i, std::uint64_t child, std::uint64_t generation) noexcept;
  void SetChildGeneration(std::size_t i, std::uint64_t generation) noexcept;
  // Rewrites the entry area without holes.
  void Compact() noexcept;

 private:
  std::size_t data_start() const noexcept;
  void set_count(std::size_t n) noexcept;
  void set_data_start(std::size_t v) noexcept;
  void set_slot(std::size_t i, std::size_t off) noexcept;
  std::uint8_t* w_;
};

// Structural validation (registered as format::Expect::validate for tree nodes).
Status ValidateNode(const std::uint8_t* block, std::size_t bs) noexcept;

// An owned copy of a node's entries, for splits and merges.
struct Item {
  std::string key;
  std::string value;
  std::size_t size() const noexcept { return kEntryOverhead + key.size() + value.size(); }
};
void ReadItems(const NodeView& n, std::vector<Item>* out);
// Writes `items` as the node's whole content (caller guarantees they fit).
void WriteItems(NodeWriter& n, std::uint16_t level, const Item* items, std::size_t count) noexcept;

std::string EncodeChild(std::uint64_t child, std::uint64_t generation);

}  // namespace permfs::btree
