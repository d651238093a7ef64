// permfs info: superblock, geometry, usage, feature flags, journal state and chunk-store
// statistics of a volume, as text or JSON. Opens the image read-only (the journal is replayed
// into memory only, so a volume that needs replay is reported, not changed).
#include <stdio.h>
#include <string.h>

#include <string>

#include "format/volume_root.h"
#include "fs/records.h"
#include "journal/meta_store.h"
#include "store/chunk_store.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "tools/image.h"

namespace permfs::tools {

const char kInfoUsage[] =
    "usage: permfs info IMAGE [--json]\n"
    "\n"
    "Shows the superblock, geometry, usage, feature flags, journal state and chunk-store\n"
    "statistics of a PermFS volume. The image is opened read-only; a journal that needs replay\n"
    "is replayed in memory only and reported.\n"
    "\n"
    "options:\n"
    "  --json   print one JSON object\n";

namespace {

struct ChunkTotals {
  std::uint64_t chunks = 0;
  std::uint64_t stored_bytes = 0;   // plaintext bytes of stored chunks
  std::uint64_t block_bytes = 0;    // whole blocks they occupy
  std::uint64_t logical_bytes = 0;  // bytes referenced by files (length x refcount)
  std::uint64_t refs = 0;
  std::uint32_t block_size = 0;
};

struct TreeInfo {
  const char* name;
  std::uint32_t id;
};
constexpr TreeInfo kTrees[] = {
    {"inodes", fs::kInodeTree},
    {"directories", fs::kDirTree},
    {"chunk_maps", fs::kChunkTree},
    {"xattrs", fs::kXattrTree},
    {"chunk_index", store::ChunkStore::kTreeId},
    {"orphans", fs::kOrphanTree},
};

// Feature bits by name where the format names them (docs/FORMAT.md §4.3), else "bitN".
std::string FeatureList(std::uint64_t bits, const char* const* names = nullptr,
                        int named = 0) {
  if (!bits) return "none";
  std::string s;
  for (int i = 0; i < 64; ++i) {
    if (bits & (1ull << i)) {
      if (!s.empty()) s += ",";
      s += i < named ? std::string(names[i]) : "bit" + std::to_string(i);
    }
  }
  return s;
}

constexpr const char* kIncompatNames[] = {"journal_manifest"};

}  // namespace

int RunInfo(int argc, char** argv) {
  Args a = ParseArgs(argc, argv, {{"json", 0, false}});
  if (a.help) return PrintHelp(kInfoUsage);
  ExpectPositional(a, 1, 1);
  const std::string path = a.pos[0];
  const bool json = a.Has("json");

  auto img = Image::Open(path, /*writable=*/false, /*require_root=*/false);
  volume::Volume& vol = img->vol();
  const format::Superblock sb = vol.sb();  // copies: the volume is closed before printing
  const volume::MountReport rep = img->mount_report();
  journal::MetaStoreStats ms = vol.meta()->stats();
  alloc::AllocStats as = vol.allocator()->stats();
  auto sf = img->fs().Statfs();
  if (!sf.ok()) Fail(path + ": statfs", sf.status());

  ChunkTotals ct;
  ct.block_size = sb.block_size;
  format::VolumeRoot root;
  {
    journal::ReadView view(vol.meta());
    auto r = vol.roots()->Load(view);
    if (!r.ok()) Fail(path + ": reading the volume root", r.status());
    root = *r;
    Status st = img->fs().chunks()->ForEach(
        view,
        [](void* ctx, const store::ChunkLocation& loc) {
          auto* t = static_cast<ChunkTotals*>(ctx);
          t->chunks++;
          t->stored_bytes += loc.stored_length;
          t->block_bytes += static_cast<std::uint64_t>(loc.block_count) * t->block_size;
          t->logical_bytes += static_cast<std::uint64_t>(loc.length) * loc.refcount;
          t->refs += loc.refcount;
          return true;
        },
        &ct);
    if (!st.ok()) Fail(path + ": reading the chunk index", st);
  }
  const double dedupe =
      ct.stored_bytes ? static_cast<double>(ct.logical_bytes) / static_cast<double>(ct.stored_bytes)
                      : 1.0;
  const std::string label(sb.label, strnlen(sb.label, sizeof sb.label));
  const std::uint64_t inodes = root.counters[format::kCounterInodes];
  const std::uint64_t used_blocks = sf->total_blocks - sf->free_blocks;
  const bool needs_replay = rep.replayed_transactions > 0;
  img->Close();

  if (json) {
    Json j;
    j.BeginObject();
    j.Str("image", path);
    j.BeginObject("superblock");
    j.Num("format_version", sb.format_version);
    j.Str("uuid", UuidString(sb.uuid.bytes));
    j.Str("label", label);
    j.Int("mkfs_time_ns", sb.mkfs_time_ns);
    j.Str("mkfs_time", FormatTime(sb.mkfs_time_ns));
    j.Num("node_id", sb.node_id);
    j.Num("volume_id", sb.volume_id);
    j.Bool("primary_damaged_used_mirror", rep.used_mirror);
    j.EndObject();
    j.BeginObject("features");
    j.Num("compat", sb.compat);
    j.Num("ro_compat", sb.ro_compat);
    j.Num("incompat", sb.incompat);
    j.EndObject();
    j.BeginObject("geometry");
    j.Num("block_size", sb.block_size);
    j.Num("block_count", sb.block_count);
    j.Num("size_bytes", sb.block_count * sb.block_size);
    j.Num("record_size", sb.record_size);
    j.Num("root_block", sb.root_block);
    j.Num("journal_start", sb.journal_start);
    j.Num("journal_blocks", sb.journal_blocks);
    j.Num("shard_start", sb.shard_start);
    j.Num("shard_blocks", sb.shard_blocks);
    j.Num("shard_count", sb.shard_count);
    j.Num("bitmap_blocks_per_shard", sb.bitmap_blocks_per_shard);
    j.Num("mirror_block", sb.mirror_block());
    j.EndObject();
    j.BeginObject("usage");
    j.Num("total_blocks", sf->total_blocks);
    j.Num("free_blocks", sf->free_blocks);
    j.Num("used_blocks", used_blocks);
    j.Num("shard_blocks_total", as.total_blocks);
    j.Num("pending_free_blocks", as.pending_free_blocks);
    j.Num("inodes", inodes);
    j.Num("next_inode", root.counters[format::kCounterNextInode]);
    j.Num("total_inodes", sf->total_inodes);
    j.Num("free_inodes", sf->free_inodes);
    j.EndObject();
    j.BeginObject("journal");
    j.Num("size_blocks", ms.journal_size);
    j.Num("used_blocks", ms.journal_used);
    j.Bool("needs_replay", needs_replay);
    j.Num("replay_transactions", rep.replayed_transactions);
    j.Num("replay_blocks", rep.replayed_blocks);
    j.EndObject();
    j.BeginObject("chunks");
    j.Num("count", ct.chunks);
    j.Num("references", ct.refs);
    j.Num("stored_bytes", ct.stored_bytes);
    j.Num("allocated_bytes", ct.block_bytes);
    j.Num("logical_bytes", ct.logical_bytes);
    j.Real("dedupe_ratio", dedupe);
    j.EndObject();
    j.BeginObject("trees");
    for (const TreeInfo& t : kTrees) {
      j.BeginObject(t.name);
      j.Num("id", t.id);
      j.Num("entries", root.trees[t.id].entries);
      j.Num("height", root.trees[t.id].height);
      j.EndObject();
    }
    j.EndObject();
    j.EndObject();
    fputs(j.str().c_str(), stdout);
    return 0;
  }

  auto ull = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  printf("PermFS volume %s\n", path.c_str());
  printf("Superblock\n");
  printf("  format version      %u\n", sb.format_version);
  printf("  uuid                %s\n", UuidString(sb.uuid.bytes).c_str());
  printf("  label               %s\n", label.empty() ? "(none)" : label.c_str());
  printf("  created             %s\n", FormatTime(sb.mkfs_time_ns).c_str());
  printf("  node / volume id    %llu / %u\n", ull(sb.node_id), sb.volume_id);
  if (rep.used_mirror)
    printf("  WARNING             primary superblock damaged; read the mirror at block %llu\n",
           ull(rep.mirror_block));
  printf("  features            compat %s, ro_compat %s, incompat %s\n",
         FeatureList(sb.compat).c_str(), FeatureList(sb.ro_compat).c_str(),
         FeatureList(sb.incompat, kIncompatNames, static_cast<int>(sizeof kIncompatNames / sizeof *kIncompatNames)).c_str());
  printf("Geometry\n");
  printf("  size                %s (%llu blocks of %u bytes)\n",
         HumanBytes(sb.block_count * sb.block_size).c_str(), ull(sb.block_count), sb.block_size);
  printf("  record size         %s\n", HumanBytes(sb.record_size).c_str());
  printf("  volume root         block %llu\n", ull(sb.root_block));
  printf("  journal             blocks %llu..%llu (%s)\n", ull(sb.journal_start),
         ull(sb.journal_start + sb.journal_blocks - 1),
         HumanBytes(sb.journal_blocks * sb.block_size).c_str());
  printf("  shards              %u x %llu blocks from block %llu (%u bitmap block%s each)\n",
         sb.shard_count, ull(sb.shard_blocks), ull(sb.shard_start), sb.bitmap_blocks_per_shard,
         sb.bitmap_blocks_per_shard == 1 ? "" : "s");
  printf("  superblock mirrors  blocks 1 and %llu\n", ull(sb.mirror_block()));
  printf("Usage\n");
  printf("  blocks              %llu used, %llu free of %llu (%s free)\n", ull(used_blocks),
         ull(sf->free_blocks), ull(sf->total_blocks),
         HumanBytes(sf->free_blocks * sb.block_size).c_str());
  if (as.pending_free_blocks)
    printf("  pending free        %llu blocks (reusable after the next checkpoint)\n",
           ull(as.pending_free_blocks));
  printf("  inodes              %llu in use, %llu free (next inode %llu)\n", ull(inodes),
         ull(sf->free_inodes), ull(root.counters[format::kCounterNextInode]));
  printf("Journal\n");
  printf("  size                %llu blocks, %llu in use\n", ull(ms.journal_size),
         ull(ms.journal_used));
  if (needs_replay)
    printf(
        "  state               needs replay: %llu committed transaction%s (%llu blocks) not "
        "yet checkpointed\n",
        ull(rep.replayed_transactions), rep.replayed_transactions == 1 ? "" : "s",
        ull(rep.replayed_blocks));
  else
    printf("  state               clean (nothing to replay)\n");
  printf("Chunk store\n");
  printf("  chunks              %llu (%llu references)\n", ull(ct.chunks), ull(ct.refs));
  printf("  stored              %s (%s in blocks)\n", HumanBytes(ct.stored_bytes).c_str(),
         HumanBytes(ct.block_bytes).c_str());
  printf("  referenced          %s (dedupe ratio %.2f)\n", HumanBytes(ct.logical_bytes).c_str(),
         dedupe);
  printf("Trees (entries / height)\n");
  for (const TreeInfo& t : kTrees)
    printf("  %-18s  %llu / %u\n", t.name, ull(root.trees[t.id].entries), root.trees[t.id].height);
  return 0;
}

}  // namespace permfs::tools
