#include "fs/fsck.h"

#include <array>

#include "fs/filesystem.h"
#include "fs/records.h"
#include "util/bytes.h"
#include "util/coding.h"
#include "util/hash_map.h"
#include "util/log.h"

namespace permfs::fs {

using btree::Slice;
using journal::ReadView;

namespace {

using Key32 = std::array<std::uint8_t, 32>;

struct ChunkInfo {
  std::uint64_t refcount = 0;
  std::uint64_t counted = 0;
  std::uint64_t block = 0;
  std::uint32_t blocks = 0;
};

struct InodeInfo {
  std::uint32_t mode = 0;
  std::uint32_t nlink = 0;
  std::uint64_t parent = 0;
  std::uint64_t size = 0;
  std::uint64_t entries = 0;   // directory entries naming it
  std::uint64_t subdirs = 0;   // for directories: entries that are directories
  std::uint64_t named_by = 0;  // a directory that names it (for the parent check)
  bool orphan = false;
};

class Checker {
 public:
  Checker(FsckReport* r, const FsckOptions& o) : rep_(r), opt_(o) {}

  void Problem(const char* what, std::uint64_t a = 0, std::uint64_t b = 0) {
    rep_->errors++;
    if (rep_->problems.size() < FsckReport::kMaxProblems) {
      LineBuffer lb;
      lb.Append(what);
      if (a || b) {
        lb.Append(" (");
        lb.AppendUnsigned(a);
        if (b) {
          lb.Append(", ");
          lb.AppendUnsigned(b);
        }
        lb.Append(")");
      }
      rep_->problems.emplace_back(lb.data(), lb.size());
    }
  }
  void Progress(const char* phase, std::uint64_t done, std::uint64_t total) {
    if (opt_.progress) opt_.progress(opt_.progress_ctx, phase, done, total);
  }

  FsckReport* rep_;
  const FsckOptions& opt_;
};

struct BlockMap {
  std::vector<std::uint64_t> bits;
  Checker* ck;
  std::uint64_t count;
  bool Mark(std::uint64_t b) {
    if (b >= count) {
      ck->Problem("reference to a block outside the volume", b);
      return false;
    }
    std::uint64_t& w = bits[b >> 6];
    const std::uint64_t m = 1ull << (b & 63);
    if (w & m) {
      ck->Problem("block referenced twice", b);
      return false;
    }
    w |= m;
    return true;
  }
  bool Test(std::uint64_t b) const { return (bits[b >> 6] >> (b & 63)) & 1; }
};

Key32 ToKey(const Sha256Digest& d) {
  Key32 k;
  for (int i = 0; i < 32; ++i) k[i] = d.bytes[i];
  return k;
}

}  // namespace

int FsckExitCode(const Status& st, const FsckReport& report) noexcept {
  if (!st.ok()) {
    if (st.IsCorruption() || st.code() == Code::kNotSupported) return kFsckUncorrected;
    return kFsckOperational;
  }
  if (report.errors == 0) return kFsckClean;
  return report.fixed >= report.errors ? kFsckCorrected : kFsckUncorrected;
}

Status Fsck(block::BlockDevice* dev, const FsckOptions& opt, FsckReport* rep) noexcept {
  *rep = FsckReport{};
  Checker ck(rep, opt);
  volume::MountOptions mo;
  mo.read_only = opt.read_only;  // without repair the journal is still replayed (as e2fsck)
  volume::MountReport mr;
  auto mounted = volume::Volume::Mount(dev, mo, &mr);
  if (!mounted.ok()) {
    ck.Problem(mounted.status().message());
    return mounted.status();
  }
  volume::Volume* vol = mounted->get();
  rep->replayed_transactions = mr.replayed_transactions;
  rep->used_superblock_mirror = mr.used_mirror;
  if (mr.used_mirror) {
    ck.Problem("primary superblock damaged; recovered from a mirror", mr.mirror_block);
    if (!vol->read_only()) rep->fixed++;
  }
  const format::Superblock& sb = vol->sb();
  Filesystem fs(vol);
  store::ChunkStore* cs = fs.chunks();

  BlockMap used{std::vector<std::uint64_t>((sb.block_count + 63) / 64, 0), &ck, sb.block_count};
  // Fixed structures inside shards: bitmap blocks and the superblock mirror.
  for (std::uint32_t s = 0; s < sb.shard_count; ++s)
    for (std::uint32_t k = 0; k < sb.bitmap_blocks_per_shard; ++k)
      used.Mark(vol->allocator()->BitmapBlockOf(s, k));
  used.Mark(sb.mirror_block());

  HashMap<Key32, ChunkInfo> chunks;
  HashMap<std::uint64_t, InodeInfo> inodes;
  struct StrayMap {
    std::uint64_t ino, index;
  };
  std::vector<StrayMap> stray_maps;
  std::vector<std::pair<std::uint64_t, std::string>> dangling;  // (dir, name)
  std::uint64_t max_ino = 0;
  std::uint64_t next_inode = 0, inode_counter = 0;

  {
    ReadView view(vol->meta());
    // 1. Every tree's structure, marking node blocks.
    ck.Progress("trees", 0, format::kMaxTrees);
    for (std::uint32_t id = 1; id < format::kMaxTrees; ++id) {
      btree::BTree tree(vol->meta(), vol->allocator(), vol->roots(), id);
      btree::TreeCheckStats ts;
      Status st = tree.Check(view, &ts,
                             [](void* ctx, std::uint64_t b) { static_cast<BlockMap*>(ctx)->Mark(b); },
                             &used);
      if (!st.ok()) {
        ck.Problem(st.message(), id);
        return Status::Corruption("B+tree damaged: run fsck output for details");
      }
      rep->tree_nodes += ts.nodes;
      ck.Progress("trees", id, format::kMaxTrees);
    }
    // 2. The chunk index.
    struct ChunkCtx {
      HashMap<Key32, ChunkInfo>* chunks;
      BlockMap* used;
      FsckReport* rep;
    } cc{&chunks, &used, rep};
    PERMFS_RETURN_IF_ERROR(cs->ForEach(
        view,
        [](void* p, const store::ChunkLocation& loc) {
          auto* c = static_cast<ChunkCtx*>(p);
          ChunkInfo ci;
          ci.refcount = loc.refcount;
          ci.block = loc.block;
          ci.blocks = loc.block_count;
          c->chunks->Insert(ToKey(loc.id), ci);
          for (std::uint64_t b = loc.block; b < loc.block + loc.block_count; ++b) c->used->Mark(b);
          c->rep->chunks++;
          c->rep->chunk_bytes += loc.length;
          return true;
        },
        &cc));
    ck.Progress("chunks", rep->chunks, rep->chunks);
    // 3. Inodes and symlink pieces.
    struct InodeCtx {
      HashMap<std::uint64_t, InodeInfo>* inodes;
      Checker* ck;
      std::uint64_t* max_ino;
    } ic{&inodes, &ck, &max_ino};
    btree::BTree itree(vol->meta(), vol->allocator(), vol->roots(), kInodeTree);
    PERMFS_RETURN_IF_ERROR(itree.Scan(
        view, Slice(), Slice(),
        [](void* p, const Slice& k, const Slice& v) {
          auto* c = static_cast<InodeCtx*>(p);
          if (k.size < 8) {
            c->ck->Problem("malformed inode-table key");
            return true;
          }
          std::uint64_t ino = KeyU64(k.data);
          if (k.size == 8) {
            auto rec = InodeRecord::Decode(ino, v.data, v.size);
            if (!rec.ok()) {
              c->ck->Problem(rec.status().message(), ino);
              return true;
            }
            InodeInfo ii;
            ii.mode = rec->mode;
            ii.nlink = rec->nlink;
            ii.parent = rec->parent;
            ii.size = rec->size;
            c->inodes->Insert(ino, ii);
            if (ino > *c->max_ino) *c->max_ino = ino;
          } else if (k.size == 10 && k.data[8] == 1) {
            const InodeInfo* ii = c->inodes->Find(ino);
            if (!ii || !IsSymlink(ii->mode)) c->ck->Problem("symlink target without a symlink inode", ino);
          } else {
            c->ck->Problem("malformed inode-table key", ino);
          }
          return true;
        },
        &ic));
    ck.Progress("inodes", inodes.size(), inodes.size());
    // 4. Directory entries.
    struct DirCtx {
      HashMap<std::uint64_t, InodeInfo>* inodes;
      Checker* ck;
      std::vector<std::pair<std::uint64_t, std::string>>* dangling;
    } dc{&inodes, &ck, &dangling};
    btree::BTree dtree(vol->meta(), vol->allocator(), vol->roots(), kDirTree);
    PERMFS_RETURN_IF_ERROR(dtree.Scan(
        view, Slice(), Slice(),
        [](void* p, const Slice& k, const Slice& v) {
          auto* c = static_cast<DirCtx*>(p);
          if (k.size != 16) {
            c->ck->Problem("malformed directory key");
            return true;
          }
          const std::uint64_t dir = KeyU64(k.data), hash = KeyU64(k.data + 8);
          DirEntry es[8];
          std::size_t n = 0;
          Status st = DecodeBucket(v.data, v.size, es, 8, &n);
          if (!st.ok()) {
            c->ck->Problem(st.message(), dir);
            return true;
          }
          InodeInfo* d = c->inodes->Find(dir);
          for (std::size_t i = 0; i < n; ++i) {
            if (DirHash(es[i].name) != hash) c->ck->Problem("directory entry under the wrong hash", dir);
            InodeInfo* t = c->inodes->Find(es[i].ino);
            if (!d || !IsDir(d->mode) || !t) {
              c->ck->Problem(!t ? "directory entry names a missing inode" : "entry in a non-directory",
                             dir, es[i].ino);
              c->dangling->push_back({dir, es[i].name});
              continue;
            }
            if (DirentType(t->mode) != es[i].type)
              c->ck->Problem("directory entry type disagrees with the inode", dir, es[i].ino);
            t->entries++;
            t->named_by = dir;
            if (IsDir(t->mode)) d->subdirs++;
          }
          return true;
        },
        &dc));
    ck.Progress("directories", 1, 1);
    // 5. Orphans (before the chunk maps: an orphan may hold maps past its size — a truncation
    // cut short by a crash, finished at the next mount).
    btree::BTree otree(vol->meta(), vol->allocator(), vol->roots(), kOrphanTree);
    PERMFS_RETURN_IF_ERROR(otree.Scan(
        view, Slice(), Slice(),
        [](void* p, const Slice& k, const Slice&) {
          auto* c = static_cast<InodeCtx*>(p);
          if (k.size == 8) {
            if (InodeInfo* ii = c->inodes->Find(KeyU64(k.data))) ii->orphan = true;
          }
          return true;
        },
        &ic));
    // 5b. Chunk maps.
    struct MapCtx {
      HashMap<Key32, ChunkInfo>* chunks;
      HashMap<std::uint64_t, InodeInfo>* inodes;
      Checker* ck;
      std::vector<StrayMap>* stray;
      std::uint32_t rs;
      FsckReport* rep;
    } mc{&chunks, &inodes, &ck, &stray_maps, sb.record_size, rep};
    btree::BTree ctree(vol->meta(), vol->allocator(), vol->roots(), kChunkTree);
    PERMFS_RETURN_IF_ERROR(ctree.Scan(
        view, Slice(), Slice(),
        [](void* p, const Slice& k, const Slice& v) {
          auto* c = static_cast<MapCtx*>(p);
          if (k.size != 16) {
            c->ck->Problem("malformed chunk-map key");
            return true;
          }
          const std::uint64_t ino = KeyU64(k.data), index = KeyU64(k.data + 8);
          auto e = ChunkMapEntry::Decode(v.data, v.size, c->rs);
          if (!e.ok()) {
            c->ck->Problem(e.status().message(), ino, index);
            c->stray->push_back({ino, index});
            return true;
          }
          const InodeInfo* ii = c->inodes->Find(ino);
          if (!ii || !IsRegular(ii->mode) || (index * c->rs >= ii->size && !ii->orphan)) {
            c->ck->Problem("chunk map entry outside any file's data", ino, index);
            c->stray->push_back({ino, index});
          }
          ChunkInfo* ci = c->chunks->Find(ToKey(e->id));
          if (!ci) {
            c->ck->Problem("chunk map entry names a chunk that is not stored", ino, index);
            c->stray->push_back({ino, index});
            return true;
          }
          ci->counted++;
          c->rep->chunk_refs++;
          c->rep->logical_bytes += e->length;
          return true;
        },
        &mc));
    ck.Progress("chunk maps", 1, 1);
    // 6. Xattrs.
    btree::BTree xtree(vol->meta(), vol->allocator(), vol->roots(), kXattrTree);
    PERMFS_RETURN_IF_ERROR(xtree.Scan(
        view, Slice(), Slice(),
        [](void* p, const Slice& k, const Slice&) {
          auto* c = static_cast<InodeCtx*>(p);
          if (k.size != 17 || !c->inodes->Find(KeyU64(k.data)))
            c->ck->Problem("extended attribute of a missing inode", k.size >= 8 ? KeyU64(k.data) : 0);
          return true;
        },
        &ic));
    auto nx = vol->roots()->GetCounter(view, format::kCounterNextInode);
    auto ncount = vol->roots()->GetCounter(view, format::kCounterInodes);
    PERMFS_RETURN_IF_ERROR(nx.status());
    PERMFS_RETURN_IF_ERROR(ncount.status());
    next_inode = *nx;
    inode_counter = *ncount;
  }

  // ---- Cross-checks ------------------------------------------------------------------------
  struct LinkFix {
    std::uint64_t ino;
    std::uint32_t nlink;
  };
  std::vector<LinkFix> link_fixes;
  std::vector<std::uint64_t> unreferenced;
  std::uint64_t orphan_count = 0;
  inodes.ForEach([&](const std::uint64_t& ino, InodeInfo& ii) {
    if (IsDir(ii.mode)) rep->directories++;
    else if (IsRegular(ii.mode)) rep->regular_files++;
    else if (IsSymlink(ii.mode)) rep->symlinks++;
    else rep->special_files++;
    if (ii.orphan) orphan_count++;
    if (ino == kRootIno) {
      if (!IsDir(ii.mode)) ck.Problem("root inode is not a directory");
      if (ii.entries != 0) ck.Problem("root directory is named by an entry");
      if (ii.nlink != 2 + ii.subdirs) {
        ck.Problem("wrong link count", ino, ii.nlink);
        link_fixes.push_back({ino, static_cast<std::uint32_t>(2 + ii.subdirs)});
      }
      return;
    }
    if (ii.entries == 0) {
      if (!ii.orphan) {
        ck.Problem("inode not named by any directory and not an orphan", ino);
        unreferenced.push_back(ino);
      }
      return;
    }
    std::uint64_t want = IsDir(ii.mode) ? 2 + ii.subdirs : ii.entries;
    if (IsDir(ii.mode) && ii.entries != 1) ck.Problem("directory with several names", ino);
    if (IsDir(ii.mode) && ii.parent != ii.named_by) ck.Problem("directory parent pointer is wrong", ino);
    if (ii.nlink != want) {
      ck.Problem("wrong link count", ino, ii.nlink);
      link_fixes.push_back({ino, static_cast<std::uint32_t>(want)});
    }
  });
  rep->inodes = inodes.size();
  rep->orphans = orphan_count;
  if (!inodes.Find(kRootIno)) ck.Problem("root directory missing");
  if (inode_counter != inodes.size()) ck.Problem("inode counter is wrong", inode_counter, inodes.size());
  if (next_inode <= max_ino) ck.Problem("next-inode counter is not above every inode", next_inode, max_ino);

  struct RefFix {
    Key32 id;
    std::uint64_t refcount;
  };
  std::vector<RefFix> ref_fixes;
  chunks.ForEach([&](const Key32& id, ChunkInfo& ci) {
    if (ci.refcount != ci.counted) {
      ck.Problem("chunk reference count is wrong", ci.refcount, ci.counted);
      ref_fixes.push_back({id, ci.counted});
    }
  });

  // Allocation bitmaps against reachability.
  std::vector<std::uint64_t> leaked, unmarked;
  {
    ReadView view(vol->meta());
    const std::uint64_t bits = sb.bits_per_bitmap_block();
    for (std::uint32_t s = 0; s < sb.shard_count; ++s) {
      const std::uint64_t first = sb.shard_first_block(s), len = sb.shard_length(s);
      for (std::uint32_t k = 0; k < sb.bitmap_blocks_per_shard; ++k) {
        const std::uint64_t bn = vol->allocator()->BitmapBlockOf(s, k);
        format::Expect ex{format::BlockType::kBitmap, bn, nullptr, true, s};
        auto blk = view.Read(bn, ex);
        if (!blk.ok()) {
          ck.Problem(blk.status().message(), bn);
          continue;
        }
        for (std::uint64_t i = 0; i < bits; ++i) {
          const std::uint64_t rel = k * bits + i;
          if (rel >= len) break;
          const bool alloc = ((*blk)[format::kMetaHeaderSize + format::kBitmapPayloadHeader + (i >> 3)] >> (i & 7)) & 1;
          const bool ref = used.Test(first + rel);
          if (alloc && !ref) leaked.push_back(first + rel);
          if (!alloc && ref) unmarked.push_back(first + rel);
        }
      }
      ck.Progress("allocation", s + 1, sb.shard_count);
    }
  }
  if (!leaked.empty()) ck.Problem("blocks allocated but not referenced (leaked)", leaked.size());
  rep->errors += leaked.empty() ? 0 : leaked.size() - 1;
  for (std::uint64_t b : unmarked) ck.Problem("block in use but marked free", b);
  alloc::AllocStats as = vol->allocator()->stats();
  rep->total_blocks = as.total_blocks;
  rep->free_blocks = as.free_blocks;
  rep->used_blocks = as.total_blocks - as.free_blocks;

  if (opt.verify_data) {
    std::vector<store::ChunkLocation> locs;
    {
      ReadView view(vol->meta());
      PERMFS_RETURN_IF_ERROR(cs->ForEach(
          view,
          [](void* p, const store::ChunkLocation& l) {
            static_cast<std::vector<store::ChunkLocation>*>(p)->push_back(l);
            return true;
          },
          &locs));
    }
    for (std::size_t i = 0; i < locs.size(); ++i) {
      Status st = cs->VerifyId(locs[i]);
      if (!st.ok()) ck.Problem(st.message(), locs[i].block);
      if (i % 256 == 0) ck.Progress("data", i, locs.size());
    }
  }

  // ---- Repairs ---------------------------------------------------------------------------
  if (opt.repair && !vol->read_only() && rep->errors > 0) {
    auto run = [&](auto&& fn) -> Status {
      auto t = vol->meta()->Begin();
      if (!t.ok()) return t.status();
      Status st = fn(*t);
      if (st.ok()) return t->Commit();
      t->Abort();
      return st;
    };
    btree::BTree dtree(vol->meta(), vol->allocator(), vol->roots(), kDirTree);
    btree::BTree itree(vol->meta(), vol->allocator(), vol->roots(), kInodeTree);
    btree::BTree ctree(vol->meta(), vol->allocator(), vol->roots(), kChunkTree);
    btree::BTree otree(vol->meta(), vol->allocator(), vol->roots(), kOrphanTree);
    for (auto& [dir, name] : dangling) {
      Status st = run([&](journal::WriteTxn& t) -> Status {
        std::string v;
        const std::string key = DirKey(dir, DirHash(name));
        PERMFS_RETURN_IF_ERROR(dtree.Get(t, Slice(key), &v));
        DirEntry es[8];
        std::size_t n = 0, keep = 0;
        if (!DecodeBucket(reinterpret_cast<const std::uint8_t*>(v.data()), v.size(), es, 8, &n).ok())
          return dtree.Delete(t, Slice(key));
        for (std::size_t i = 0; i < n; ++i)
          if (es[i].name != name) es[keep++] = es[i];
        if (keep == 0) return dtree.Delete(t, Slice(key));
        return dtree.Put(t, Slice(key), Slice(EncodeBucket(es, keep)));
      });
      if (st.ok()) rep->fixed++;
    }
    for (const StrayMap& sm : stray_maps) {
      Status st = run([&](journal::WriteTxn& t) -> Status {
        std::string v;
        const std::string key = ChunkKey(sm.ino, sm.index);
        PERMFS_RETURN_IF_ERROR(ctree.Get(t, Slice(key), &v));
        auto e = ChunkMapEntry::Decode(reinterpret_cast<const std::uint8_t*>(v.data()), v.size(), sb.record_size);
        if (e.ok()) {
          if (ChunkInfo* ci = chunks.Find(ToKey(e->id))) {
            ci->counted--;
            for (RefFix& rf : ref_fixes)
              if (rf.id == ToKey(e->id)) rf.refcount = ci->counted;
            bool listed = false;
            for (RefFix& rf : ref_fixes) listed |= rf.id == ToKey(e->id);
            if (!listed) ref_fixes.push_back({ToKey(e->id), ci->counted});
          }
        }
        return ctree.Delete(t, Slice(key));
      });
      if (st.ok()) rep->fixed++;
    }
    for (const LinkFix& lf : link_fixes) {
      Status st = run([&](journal::WriteTxn& t) -> Status {
        std::string v;
        PERMFS_RETURN_IF_ERROR(itree.Get(t, Slice(InodeKey(lf.ino)), &v));
        PERMFS_ASSIGN_OR_RETURN(InodeRecord rec, InodeRecord::Decode(lf.ino, reinterpret_cast<const std::uint8_t*>(v.data()), v.size()));
        rec.nlink = lf.nlink;
        std::uint8_t buf[InodeRecord::kEncodedSize];
        rec.Encode(buf);
        return itree.Put(t, Slice(InodeKey(lf.ino)), Slice(buf, sizeof buf));
      });
      if (st.ok()) rep->fixed++;
    }
    for (std::uint64_t ino : unreferenced) {
      Status st = run([&](journal::WriteTxn& t) -> Status {
        std::uint8_t orec[9] = {static_cast<std::uint8_t>(OrphanKind::kUnlinked)};
        return otree.Put(t, Slice(OrphanKey(ino)), Slice(orec, sizeof orec));
      });
      if (st.ok()) rep->fixed++;
    }
    for (const RefFix& rf : ref_fixes) {
      Sha256Digest id;
      for (int i = 0; i < 32; ++i) id.bytes[i] = rf.id[i];
      Status st = run([&](journal::WriteTxn& t) -> Status {
        if (rf.refcount > 0) return cs->SetRefcount(t, id, rf.refcount);
        PERMFS_RETURN_IF_ERROR(cs->SetRefcount(t, id, 1));
        return cs->Unref(t, id);
      });
      if (st.ok()) rep->fixed++;
    }
    for (std::size_t i = 0; i < leaked.size();) {
      std::size_t j = i;
      Status st = run([&](journal::WriteTxn& t) -> Status {
        for (; j < leaked.size() && j - i < 512; ++j)
          PERMFS_RETURN_IF_ERROR(vol->allocator()->Free(t, alloc::Extent{leaked[j], 1}));
        return Status();
      });
      if (st.ok()) rep->fixed += j - i;
      else break;
      i = j;
    }
    if (inode_counter != inodes.size() || next_inode <= max_ino) {
      Status st = run([&](journal::WriteTxn& t) -> Status {
        PERMFS_RETURN_IF_ERROR(vol->roots()->SetCounter(t, format::kCounterInodes, inodes.size()));
        if (next_inode <= max_ino)
          PERMFS_RETURN_IF_ERROR(vol->roots()->SetCounter(t, format::kCounterNextInode, max_ino + 1));
        return Status();
      });
      if (st.ok()) rep->fixed += (inode_counter != inodes.size()) + (next_inode <= max_ino);
    }
  }
  Status st = vol->Unmount();
  if (!st.ok()) ck.Problem(st.message());
  return Status();
}

}  // namespace permfs::fs
