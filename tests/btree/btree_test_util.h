// Helpers shared by the B+tree unit, crash and fault tests: a Volume on a device, full scans,
// content hashes, and the allocator-vs-reachable-nodes consistency check.
//
// Usage rule (engine): never hold a journal::ReadView while calling Begin/Sync/Unmount on the
// same thread; every helper here that takes a ReadView scopes it inside the call.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "alloc/allocator.h"
#include "btree/btree.h"
#include "format/superblock.h"
#include "format/volume_root.h"
#include "journal/meta_store.h"
#include "util/bytes.h"
#include "util/coding.h"
#include "volume/volume.h"

namespace permfs::btreetest {

using Model = std::map<std::string, std::string>;

inline std::string StatusStr(const Status& st) {
  return std::string(st.CodeName()) + ": " + st.message();
}

// Full scan of [start, end) into a map (an empty end means no bound).
inline Status ScanRange(btree::BTree& t, journal::BlockReader& r, const std::string& start,
                        const std::string& end, Model* out) {
  out->clear();
  struct Ctx {
    Model* m;
    std::string prev;
    bool first = true;
    bool order_ok = true;
  } ctx{out, {}, true, true};
  Status st = t.Scan(
      r, btree::Slice(start), btree::Slice(end),
      [](void* c, const btree::Slice& k, const btree::Slice& v) {
        auto* x = static_cast<Ctx*>(c);
        std::string ks = k.ToString();
        if (!x->first && !(x->prev < ks)) x->order_ok = false;
        x->first = false;
        x->prev = ks;
        (*x->m)[ks] = v.ToString();
        return true;
      },
      &ctx);
  if (st.ok() && !ctx.order_ok) return Status::Corruption("test: scan out of order");
  return st;
}

inline Status ScanAll(btree::BTree& t, journal::BlockReader& r, Model* out) {
  return ScanRange(t, r, std::string(), std::string(), out);
}

// 64-bit FNV-1a over length-prefixed keys and values; the tree id separates trees.
struct Hasher {
  std::uint64_t h = 1469598103934665603ull;
  void Byte(std::uint8_t b) {
    h ^= b;
    h *= 1099511628211ull;
  }
  void U64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) Byte(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void Str(const std::string& s) {
    U64(s.size());
    for (char c : s) Byte(static_cast<std::uint8_t>(c));
  }
};

inline void HashModel(Hasher* hs, std::uint32_t tree, const Model& m) {
  hs->U64(0xABCD0000ull + tree);
  hs->U64(m.size());
  for (const auto& [k, v] : m) {
    hs->Str(k);
    hs->Str(v);
  }
}

// Every block reachable from tree `t` (via Check's node_fn).
struct NodeCollector {
  std::vector<std::uint64_t> blocks;
  static void Fn(void* ctx, std::uint64_t b) {
    static_cast<NodeCollector*>(ctx)->blocks.push_back(b);
  }
};

// The data blocks the on-disk bitmaps mark used (read through the store, so replayed and cached
// copies count).
inline Status UsedDataBlocks(volume::Volume* v, journal::BlockReader& r,
                             std::vector<std::uint64_t>* out) {
  out->clear();
  const format::Superblock& sb = v->sb();
  const std::uint64_t bits = sb.bits_per_bitmap_block();
  constexpr std::size_t kBitsOffset = format::kMetaHeaderSize + format::kBitmapPayloadHeader;
  for (std::uint32_t s = 0; s < sb.shard_count; ++s) {
    const std::uint64_t first = sb.shard_first_block(s);
    const std::uint64_t len = sb.shard_length(s);
    for (std::uint32_t k = 0; k < sb.bitmap_blocks_per_shard; ++k) {
      const std::uint64_t bn = v->allocator()->BitmapBlockOf(s, k);
      format::Expect ex{format::BlockType::kBitmap, bn, nullptr, true, s};
      auto blk = r.Read(bn, ex);
      if (!blk.ok()) return blk.status();
      for (std::uint64_t i = 0; i < bits; ++i) {
        const std::uint64_t rel = k * bits + i;
        if (rel >= len) break;
        const std::uint64_t b = first + rel;
        if (!v->allocator()->IsDataBlock(b)) continue;
        if (((*blk)[kBitsOffset + (i >> 3)] >> (i & 7)) & 1) out->push_back(b);
      }
    }
  }
  return Status();
}

// fsck of the B+tree world of a volume: Check() of every tree (0..kMaxTrees-1), no block
// reachable twice, and bitmap-used data blocks == reachable node blocks exactly. Returns an empty
// string when clean, else what is wrong. `node_blocks` receives the sorted reachable blocks.
inline std::string FsckTrees(volume::Volume* v, std::vector<std::uint64_t>* node_blocks = nullptr) {
  journal::ReadView view(v->meta());
  NodeCollector nc;
  for (std::uint32_t id = 0; id < format::kMaxTrees; ++id) {
    btree::BTree t(v->meta(), v->allocator(), v->roots(), id);
    btree::TreeCheckStats st;
    Status s = t.Check(view, &st, &NodeCollector::Fn, &nc);
    if (!s.ok()) return "Check(tree " + std::to_string(id) + ") failed: " + StatusStr(s);
  }
  std::sort(nc.blocks.begin(), nc.blocks.end());
  for (std::size_t i = 1; i < nc.blocks.size(); ++i)
    if (nc.blocks[i] == nc.blocks[i - 1])
      return "node block " + std::to_string(nc.blocks[i]) + " reachable twice";
  std::vector<std::uint64_t> used;
  Status s = UsedDataBlocks(v, view, &used);
  if (!s.ok()) return "reading bitmaps failed: " + StatusStr(s);
  if (used != nc.blocks) {
    std::vector<std::uint64_t> leak, unalloc;
    std::set_difference(used.begin(), used.end(), nc.blocks.begin(), nc.blocks.end(),
                        std::back_inserter(leak));
    std::set_difference(nc.blocks.begin(), nc.blocks.end(), used.begin(), used.end(),
                        std::back_inserter(unalloc));
    std::string m = "allocator mismatch: " + std::to_string(leak.size()) +
                    " allocated but unreachable (leak), " + std::to_string(unalloc.size()) +
                    " reachable but free";
    if (!leak.empty()) m += "; first leaked block " + std::to_string(leak[0]);
    if (!unalloc.empty()) m += "; first unallocated node " + std::to_string(unalloc[0]);
    return m;
  }
  if (node_blocks) *node_blocks = nc.blocks;
  return std::string();
}

// Content hash of the listed trees, read through a fresh ReadView.
inline Status HashTrees(volume::Volume* v, const std::vector<std::uint32_t>& trees,
                        std::uint64_t* hash, std::vector<Model>* models = nullptr) {
  journal::ReadView view(v->meta());
  Hasher hs;
  if (models) models->clear();
  for (std::uint32_t id : trees) {
    btree::BTree t(v->meta(), v->allocator(), v->roots(), id);
    Model m;
    PERMFS_RETURN_IF_ERROR(ScanAll(t, view, &m));
    HashModel(&hs, id, m);
    if (models) models->push_back(std::move(m));
  }
  *hash = hs.h;
  return Status();
}

}  // namespace permfs::btreetest
