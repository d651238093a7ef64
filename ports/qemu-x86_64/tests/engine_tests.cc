// Engine tests below the namespace: the engine core's real code (Volume, MetaStore/journal,
// Allocator, BTree) on the virtio-blk disk — mkfs, a key/value workload, unmount/remount and
// read-back, journal recovery across two boots, the journal's state in the panic report, and
// B+tree throughput. The same flow through the POSIX namespace (fs::Filesystem) is in
// fs_tests.cc; these tests pin the layers underneath it on their own.
//
// Keyspaces are test trees (tree ids 8..11, unassigned in format v1, docs/FORMAT.md §5):
//   kDirTree   "d/NNNN"            -> 16-byte directory record
//   kFileTree  "d/NNNN/file"       -> the file's bytes (one entry, up to max_entry_payload)
//   kBigTree   "big/NNNNNN"        -> piece NNNNNN of a multi-entry large file
//              (its size, piece size and SHA-256 are in kDirTree under "f/big.bin")
// All contents are pseudo-random bytes derived from a seed (`seed=` on the command line), so a
// second boot can regenerate exactly what the first one wrote. Every verification scans each
// tree in key order against a model built in the same order (no missing, extra or altered
// entry), looks a sample of keys up with Get, and runs BTree::Check (fsck of the tree).
#include <cstdint>
#include <string>
#include <vector>

#include "btree/btree.h"
#include "engine_common.h"
#include "format/journal_blocks.h"
#include "journal/meta_store.h"
#include "ktest.h"
#include "port/port.h"
#include "util/coding.h"
#include "util/crc32c.h"
#include "util/sha256.h"
#include "volume/volume.h"

namespace permfs::qemu {
using namespace ktest;
namespace {

using btree::BTree;
using btree::Slice;

constexpr std::uint32_t kDirTree = 8;
constexpr std::uint32_t kFileTree = 9;
constexpr std::uint32_t kBigTree = 10;
constexpr std::uint32_t kBenchTree = 11;

// ---- the model: every (tree, key, value) expected, in scan order (tree id, then key) --------
struct KV {
  std::uint32_t tree;
  std::string key;
  std::string value;
};
using Model = std::vector<KV>;

bool ModelSorted(const Model& m) {
  for (std::size_t i = 1; i < m.size(); ++i) {
    if (m[i - 1].tree > m[i].tree) return false;
    if (m[i - 1].tree == m[i].tree && btree::Compare(Slice(m[i - 1].key), Slice(m[i].key)) >= 0)
      return false;
  }
  return true;
}

Sha256Digest ModelDigest(const Model& m) {
  Sha256Portable h;
  for (const KV& kv : m) {
    const std::string hdr = U64s({kv.tree, kv.key.size(), kv.value.size()});
    h.Update(hdr.data(), hdr.size());
    h.Update(kv.key.data(), kv.key.size());
    h.Update(kv.value.data(), kv.value.size());
  }
  return h.Finish();
}

// Scans every tree of `trees` and compares with `m` entry by entry; Get on a sample; Check.
struct ScanCursor {
  const Model* m;
  std::size_t pos;
  std::uint32_t tree;
  std::uint64_t seen;
  bool bad;
};

bool ScanCompare(void* ctx, const Slice& k, const Slice& v) {
  auto* c = static_cast<ScanCursor*>(ctx);
  ++c->seen;
  const Model& m = *c->m;
  if (c->pos >= m.size() || m[c->pos].tree != c->tree) {
    std::string ks(reinterpret_cast<const char*>(k.data), k.size);
    Printf("verify: tree %u has an unexpected extra key '%s'\n", c->tree, ks.c_str());
    c->bad = true;
    return false;
  }
  const KV& e = m[c->pos];
  if (btree::Compare(k, Slice(e.key)) != 0) {
    std::string ks(reinterpret_cast<const char*>(k.data), k.size);
    Printf("verify: tree %u: found key '%s' where '%s' was expected\n", c->tree, ks.c_str(),
           e.key.c_str());
    c->bad = true;
    return false;
  }
  if (v.size != e.value.size() || btree::Compare(v, Slice(e.value)) != 0) {
    Printf("verify: tree %u key '%s': value differs (%zu bytes, expected %zu)\n", c->tree,
           e.key.c_str(), v.size, e.value.size());
    c->bad = true;
    return false;
  }
  ++c->pos;
  return true;
}

bool VerifyVolume(volume::Volume* v, const Model& m, const std::uint32_t* trees, int ntrees,
                  const char* when) {
  KCHECK(ModelSorted(m));
  journal::ReadView view(v->meta());
  ScanCursor c{&m, 0, 0, 0, false};
  std::uint64_t nodes = 0, leaves = 0, max_height = 0;
  for (int t = 0; t < ntrees; ++t) {
    BTree tree(v->meta(), v->allocator(), v->roots(), trees[t]);
    c.tree = trees[t];
    c.seen = 0;
    KCHECK_OK(tree.Scan(view, Slice(), Slice(), &ScanCompare, &c));
    KCHECK(!c.bad);
    if (c.pos < m.size() && m[c.pos].tree == trees[t]) {
      Printf("verify: tree %u is missing key '%s'\n", trees[t], m[c.pos].key.c_str());
      return false;
    }
    btree::TreeCheckStats st;
    KCHECK_OK(tree.Check(view, &st, nullptr, nullptr));
    KCHECK(st.entries == c.seen);
    auto count = tree.Count(view);
    KCHECK_RESULT(count);
    KCHECK(*count == c.seen);
    nodes += st.nodes;
    leaves += st.leaves;
    if (st.height > max_height) max_height = st.height;
  }
  KCHECK(c.pos == m.size());
  // Point lookups on a sample, through the other read path (Descend by key).
  std::string got;
  for (std::size_t i = 0; i < m.size(); i += 7) {
    BTree tree(v->meta(), v->allocator(), v->roots(), m[i].tree);
    KCHECK_OK(tree.Get(view, Slice(m[i].key), &got));
    KCHECK(got == m[i].value);
  }
  Printf("ENGINE verify (%s): %zu entries in %d trees match byte for byte; Check ok "
         "(%lu nodes, %lu leaves, max height %lu)\n",
         when, m.size(), ntrees, nodes, leaves, max_height);
  return true;
}

// Applies Put to `tree` in its own WriteTxn-less helper (the caller owns the handle).
bool Put(journal::WriteTxn& t, volume::Volume* v, std::uint32_t tree, const std::string& k,
         const std::string& val) {
  BTree bt(v->meta(), v->allocator(), v->roots(), tree);
  Status st = bt.Put(t, Slice(k), Slice(val));
  if (!st.ok()) {
    Printf("put tree %u key '%s' (%zu bytes): %s (%s)\n", tree, k.c_str(), val.size(),
           st.CodeName(), st.message());
    return false;
  }
  return true;
}

bool Del(journal::WriteTxn& t, volume::Volume* v, std::uint32_t tree, const std::string& k) {
  BTree bt(v->meta(), v->allocator(), v->roots(), tree);
  Status st = bt.Delete(t, Slice(k));
  if (!st.ok()) {
    Printf("delete tree %u key '%s': %s (%s)\n", tree, k.c_str(), st.CodeName(), st.message());
    return false;
  }
  return true;
}

// =============================================================================================
// qemu_engine_roundtrip
// =============================================================================================
constexpr std::uint32_t kDirs = 200;
constexpr std::uint64_t kBigBytes = 300 * 1024 + 123;  // not a multiple of the piece size

struct Roundtrip {
  std::uint64_t seed;
  std::size_t maxp;  // BTree::max_entry_payload()

  std::string DirKey(std::uint32_t i) const { return NumKey("d/", i, 4); }
  std::string FileKey(std::uint32_t i) const { return NumKey("d/", i, 4, "/file"); }
  static bool Deleted(std::uint32_t i) { return i % 17 == 3; }
  static std::uint32_t Version(std::uint32_t i) { return i % 5 == 0 ? 1 : 0; }
  std::string DirValue(std::uint32_t i) const { return U64s({i, Mix(seed ^ (0xD1ull << 32) ^ i)}); }
  // File i, version ver: every 50th file is exactly the largest entry the tree accepts.
  std::string FileValue(std::uint32_t i, std::uint32_t ver) const {
    const std::size_t room = maxp - FileKey(i).size();
    const std::uint64_t stream = seed ^ (static_cast<std::uint64_t>(ver + 1) << 40) ^ (i * 7919ull);
    const std::size_t len = (i % 50 == 7) ? room : 1 + Mix(stream) % room;
    return Bytes(stream, len);
  }
  std::size_t PieceSize() const { return maxp - 10; }  // key "big/NNNNNN" is 10 bytes
  std::uint64_t Pieces() const { return (kBigBytes + PieceSize() - 1) / PieceSize(); }
  std::string BigContent() const { return Bytes(seed ^ 0xB16F11Eull, kBigBytes); }
  std::string BigMeta(const std::string& content) const {
    const Sha256Digest d = Sha256PortableOneShot(content.data(), content.size());
    std::string s = U64s({kBigBytes, PieceSize(), Pieces()});
    s.append(reinterpret_cast<const char*>(d.bytes), 32);
    return s;
  }

  Model Final() const {
    Model m;
    const std::string big = BigContent();
    for (std::uint32_t i = 0; i < kDirs; ++i) m.push_back(KV{kDirTree, DirKey(i), DirValue(i)});
    m.push_back(KV{kDirTree, "f/big.bin", BigMeta(big)});
    for (std::uint32_t i = 0; i < kDirs; ++i)
      if (!Deleted(i)) m.push_back(KV{kFileTree, FileKey(i), FileValue(i, Version(i))});
    for (std::uint64_t p = 0; p < Pieces(); ++p) {
      const std::size_t off = p * PieceSize();
      const std::size_t n = kBigBytes - off < PieceSize() ? kBigBytes - off : PieceSize();
      m.push_back(KV{kBigTree, NumKey("big/", p, 6), big.substr(off, n)});
    }
    return m;
  }
};

constexpr std::uint32_t kRoundtripTrees[] = {kDirTree, kFileTree, kBigTree};

// Reassembles the big file from its pieces (a Scan over kBigTree) and checks its SHA-256.
bool VerifyBigFile(volume::Volume* v, const Roundtrip& w) {
  journal::ReadView view(v->meta());
  BTree dirs(v->meta(), v->allocator(), v->roots(), kDirTree);
  std::string meta;
  KCHECK_OK(dirs.Get(view, Slice(std::string("f/big.bin")), &meta));
  KCHECK(meta.size() == 24 + 32);
  std::uint64_t size = 0;
  for (int i = 7; i >= 0; --i) size = (size << 8) | static_cast<std::uint8_t>(meta[i]);
  std::string content;
  content.reserve(size);
  BTree big(v->meta(), v->allocator(), v->roots(), kBigTree);
  KCHECK_OK(big.Scan(view, Slice(), Slice(),
                     [](void* ctx, const Slice&, const Slice& val) {
                       static_cast<std::string*>(ctx)->append(
                           reinterpret_cast<const char*>(val.data), val.size);
                       return true;
                     },
                     &content));
  KCHECK(content.size() == size);
  const Sha256Digest d = Sha256PortableOneShot(content.data(), content.size());
  KCHECK(__builtin_memcmp(d.bytes, meta.data() + 24, 32) == 0);
  KCHECK(content == w.BigContent());
  Printf("ENGINE big file: %lu bytes in %lu pieces reassembled, SHA-256 matches\n", size,
         w.Pieces());
  return true;
}

// B+tree throughput: `n` puts of random 16-byte keys with 100-byte values, one WriteTxn per put
// (as one file-system operation would be), Sync every 100 puts; then cached point lookups.
bool EngineThroughput(volume::Volume* v, std::uint64_t seed, std::uint32_t n) {
  BTree tree(v->meta(), v->allocator(), v->roots(), kBenchTree);
  const journal::MetaStoreStats s0 = v->meta()->stats();
  const std::uint64_t t0 = NowNs();
  std::uint64_t sync_ns = 0;
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::string k = U64s({Mix(seed ^ i), i});
    const std::string val = Bytes(seed ^ (0xBE4Cull << 32) ^ i, 100);
    auto t = v->meta()->Begin();
    KCHECK_RESULT(t);
    KCHECK_OK(tree.Put(*t, Slice(k), Slice(val)));
    KCHECK_OK(t->Commit());
    if (i % 100 == 99) {
      const std::uint64_t s = NowNs();
      KCHECK_OK(v->meta()->Sync());
      sync_ns += NowNs() - s;
      Note(v, "throughput");
    }
  }
  const std::uint64_t s = NowNs();
  KCHECK_OK(v->meta()->Sync());
  sync_ns += NowNs() - s;
  const std::uint64_t put_ns = NowNs() - t0;
  const journal::MetaStoreStats s1 = v->meta()->stats();
  const std::uint64_t commits = s1.commits - s0.commits;
  const std::uint64_t blocks = s1.committed_blocks - s0.committed_blocks;
  Printf("THROUGHPUT engine btree put (1 txn/put, Sync every 100, random 16 B keys, 100 B "
         "values): %lu puts/s (%u puts in %lu ms, of which Sync %lu ms; %lu commits, "
         "%lu journaled blocks, %lu checkpoints)\n",
         n * std::uint64_t{1000000000} / (put_ns ? put_ns : 1), n, Ms(put_ns), Ms(sync_ns), commits, blocks,
         s1.checkpoints - s0.checkpoints);
  if (commits)
    Printf("THROUGHPUT engine commit (Sync of 100 puts): %lu us per commit, %lu blocks per "
           "commit\n",
           sync_ns / 1000 / commits, blocks / commits);
  // Lookups (cache-resident).
  {
    journal::ReadView view(v->meta());
    std::string got;
    const std::uint64_t g0 = NowNs();
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::string k = U64s({Mix(seed ^ i), i});
      KCHECK_OK(tree.Get(view, Slice(k), &got));
      KCHECK(got.size() == 100);
    }
    const std::uint64_t g_ns = NowNs() - g0;
    Printf("THROUGHPUT engine btree get (cached): %lu gets/s (%u gets in %lu ms)\n",
           n * std::uint64_t{1000000000} / (g_ns ? g_ns : 1), n, Ms(g_ns));
    btree::TreeCheckStats st;
    KCHECK_OK(tree.Check(view, &st, nullptr, nullptr));
    KCHECK(st.entries == n);
  }
  return true;
}

}  // namespace

bool TestEngineRoundtrip(TestContext& ctx) {
  block::BlockDevice* dev = ctx.disk;
  ReporterScope rs(ctx.name);
  KCHECK(rs.ok());
  Roundtrip w{ctx.OptionU64("seed", 20240607), 0};

  // ---- mkfs ----
  std::uint64_t t0 = NowNs();
  volume::MkfsOptions mo;
  mo.label = "qemu-roundtrip";
  KCHECK_OK(volume::Volume::Mkfs(dev, mo));
  const std::uint64_t mkfs_ns = NowNs() - t0;
  KCHECK(volume::HasPermfsSuperblock(dev));

  Model model;
  {
    volume::MountReport rep;
    std::uint64_t mount_ns;
    auto vr = MountReporting(dev, &rep, &mount_ns);
    KCHECK_RESULT(vr);
    volume::Volume* v = vr->get();
    PrintLayout(v->sb());
    Note(v, "mounted");
    KCHECK(rep.replayed_transactions == 0);  // fresh volume: nothing to replay
    {
      BTree probe(v->meta(), v->allocator(), v->roots(), kFileTree);
      w.maxp = probe.max_entry_payload();
    }
    Printf("ENGINE mkfs %lu ms; max_entry_payload %zu bytes; seed %lu\n", Ms(mkfs_ns), w.maxp,
           w.seed);
    model = w.Final();

    // ---- directories and files (version 0 of every file), 10 directories per transaction ----
    const std::uint64_t w0 = NowNs();
    for (std::uint32_t i = 0; i < kDirs; i += 10) {
      auto t = v->meta()->Begin();
      KCHECK_RESULT(t);
      for (std::uint32_t j = i; j < i + 10; ++j) {
        KCHECK(Put(*t, v, kDirTree, w.DirKey(j), w.DirValue(j)));
        KCHECK(Put(*t, v, kFileTree, w.FileKey(j), w.FileValue(j, 0)));
      }
      KCHECK_OK(t->Commit());
      if (i % 50 == 40) {
        KCHECK_OK(v->meta()->Sync());
        Note(v, "files");
      }
    }
    KCHECK_OK(v->meta()->Sync());
    Note(v, "files");

    // ---- the large file: pieces, 16 per transaction, plus its meta entry ----
    const std::string big = w.BigContent();
    for (std::uint64_t p = 0; p < w.Pieces(); p += 16) {
      auto t = v->meta()->Begin();
      KCHECK_RESULT(t);
      for (std::uint64_t q = p; q < p + 16 && q < w.Pieces(); ++q) {
        const std::size_t off = q * w.PieceSize();
        const std::size_t n = kBigBytes - off < w.PieceSize() ? kBigBytes - off : w.PieceSize();
        KCHECK(Put(*t, v, kBigTree, NumKey("big/", q, 6), big.substr(off, n)));
      }
      if (p + 16 >= w.Pieces()) KCHECK(Put(*t, v, kDirTree, "f/big.bin", w.BigMeta(big)));
      KCHECK_OK(t->Commit());
    }
    KCHECK_OK(v->meta()->Sync());
    Note(v, "big file");

    // ---- rewrite some files (new length and bytes), delete others ----
    {
      auto t = v->meta()->Begin();
      KCHECK_RESULT(t);
      for (std::uint32_t i = 0; i < kDirs; ++i) {
        if (Roundtrip::Version(i) == 1) KCHECK(Put(*t, v, kFileTree, w.FileKey(i), w.FileValue(i, 1)));
        if (Roundtrip::Deleted(i)) KCHECK(Del(*t, v, kFileTree, w.FileKey(i)));
      }
      // Deleting a missing key is NotFound and leaves the tree unchanged.
      BTree files(v->meta(), v->allocator(), v->roots(), kFileTree);
      KCHECK(files.Delete(*t, Slice(std::string("d/9999/file"))).IsNotFound());
      KCHECK_OK(t->Commit());
    }
    KCHECK_OK(v->meta()->Sync());
    Note(v, "rewrite");
    const std::uint64_t write_ns = NowNs() - w0;
    {
      const journal::MetaStoreStats s = v->meta()->stats();
      Printf("ENGINE workload written in %lu ms: %zu entries, %lu commits, %lu journaled blocks, "
             "%lu checkpoints, durable_seq %lu\n",
             Ms(write_ns), model.size(), s.commits, s.committed_blocks, s.checkpoints,
             s.durable_seq);
    }
    KCHECK(VerifyVolume(v, model, kRoundtripTrees, 3, "before unmount"));
    KCHECK(VerifyBigFile(v, w));

    t0 = NowNs();
    KCHECK_OK(v->Unmount());
    Printf("ENGINE unmount (commit + checkpoint): %lu ms\n", Ms(NowNs() - t0));
    Note(v, "unmounted");
  }

  // ---- remount: a cleanly unmounted volume replays nothing; everything reads back ----
  {
    volume::MountReport rep;
    std::uint64_t mount_ns;
    auto vr = MountReporting(dev, &rep, &mount_ns);
    KCHECK_RESULT(vr);
    volume::Volume* v = vr->get();
    Note(v, "remounted");
    KCHECK(rep.replayed_transactions == 0);
    KCHECK(!rep.used_mirror);
    Printf("THROUGHPUT engine mount (clean, 64 MiB volume): %lu ms\n", Ms(mount_ns));
    KCHECK(VerifyVolume(v, model, kRoundtripTrees, 3, "after remount"));
    KCHECK(VerifyBigFile(v, w));
    const std::uint32_t n = static_cast<std::uint32_t>(ctx.OptionU64("bench_puts", 20000));
    KCHECK(EngineThroughput(v, w.seed, n));
    KCHECK_OK(v->Unmount());
  }
  // ---- and once more after the throughput run: the workload is untouched, trees still check ----
  {
    volume::MountReport rep;
    std::uint64_t mount_ns;
    auto vr = MountReporting(dev, &rep, &mount_ns);
    KCHECK_RESULT(vr);
    volume::Volume* v = vr->get();
    KCHECK(rep.replayed_transactions == 0);
    KCHECK(VerifyVolume(v, model, kRoundtripTrees, 3, "third mount"));
    KCHECK_OK(v->Unmount());
  }
  PrintDigest("roundtrip state", ModelDigest(model));
  return true;
}

// =============================================================================================
// qemu_engine_recover_write / qemu_engine_recover_verify
// =============================================================================================
namespace {

// Phase A: kTxnA transactions, each adds 10 files "a/NNNN"; Sync each; then a checkpoint
//          (A is home). Phase B: kTxnB transactions, each adds 5 files "b/NNNN", rewrites
//          a/(2t) and a/(2t+1), deletes a/(100+t); Sync each -> durable in the journal only.
// Every transaction also sets kDirTree "last-txn" to its number. Phase C: one transaction
// committed to the running transaction but never Synced — not durable, must be absent.
constexpr std::uint32_t kTxnA = 20;
constexpr std::uint32_t kTxnB = 24;
constexpr std::uint64_t kRecoverJournalBlocks = 2048;
constexpr std::uint32_t kRecoverTrees[] = {kDirTree, kFileTree};

struct Recover {
  std::uint64_t seed;
  std::size_t maxp;

  std::string AKey(std::uint32_t i) const { return NumKey("a/", i, 4); }
  std::string BKey(std::uint32_t i) const { return NumKey("b/", i, 4); }
  std::string CKey(std::uint32_t i) const { return NumKey("c/", i, 4); }
  std::string Value(char space, std::uint32_t i, std::uint32_t ver) const {
    const std::uint64_t stream = seed ^ (static_cast<std::uint64_t>(space) << 56) ^
                                 (static_cast<std::uint64_t>(ver) << 40) ^ (i * 104729ull);
    return Bytes(stream, 1 + Mix(stream) % (maxp - 6));
  }
  static std::string TxnValue(std::uint32_t txn) { return U64s({txn, 0x7478ull}); }
  // A file of phase A after phase B: deleted, version 1 (rewritten), or version 0.
  static bool ADeleted(std::uint32_t i) { return i >= 100 && i < 100 + kTxnB; }
  static std::uint32_t AVersion(std::uint32_t i) { return i < 2 * kTxnB ? 1 : 0; }

  Model Durable() const {
    Model m;
    m.push_back(KV{kDirTree, "last-txn", TxnValue(kTxnA + kTxnB)});
    for (std::uint32_t i = 0; i < kTxnA * 10; ++i)
      if (!ADeleted(i)) m.push_back(KV{kFileTree, AKey(i), Value('a', i, AVersion(i))});
    for (std::uint32_t i = 0; i < kTxnB * 5; ++i)
      m.push_back(KV{kFileTree, BKey(i), Value('b', i, 0)});
    return m;
  }
};

std::size_t MaxPayload(volume::Volume* v) {
  BTree probe(v->meta(), v->allocator(), v->roots(), kFileTree);
  return probe.max_entry_payload();
}

// Simulates a transaction torn by the stop: at the log head (read from the on-disk journal
// header, docs/FORMAT.md §6) writes a descriptor for the next sequence and its data block — a
// copy of the volume root with counter kTornCounter set, CRC-correct — but no commit record.
// Replay must ignore it (boot 2 checks the counter is still 0).
constexpr std::size_t kTornCounter = 15;
constexpr std::uint64_t kTornValue = 0x70524E;

// With `with_commit` (command line torn_commit=1, a manual self-check of this test) the commit
// record is written too, so the transaction is complete and boot 2 must fail: it replays 25.
bool WriteTornTransaction(volume::Volume* v, std::uint64_t journal_used, std::uint64_t seq,
                          bool with_commit) {
  const format::Superblock& sb = v->sb();
  const std::uint32_t bs = sb.block_size;
  const std::uint64_t log_blocks = sb.journal_blocks - 2;
  std::vector<std::uint8_t> blk(bs), desc(bs, 0), data(bs);
  // The newer valid header slot gives the tail; head = tail + used.
  bool have = false;
  format::JournalHeader hdr;
  for (std::uint64_t slot = 0; slot < 2; ++slot) {
    KCHECK_OK(v->io()->Read(sb.journal_start + slot, 1, blk.data()));
    format::Expect e{format::BlockType::kJournalHeader, sb.journal_start + slot, &sb.uuid};
    if (!format::VerifyMetaBlock(blk.data(), bs, e).ok()) continue;
    auto h = format::JournalHeader::DecodePayload(blk.data(), bs);
    if (!h.ok() || (h->write_count & 1) != slot) continue;
    if (!have || h->write_count > hdr.write_count) hdr = *h;
    have = true;
  }
  KCHECK(have);
  const std::uint64_t head = (hdr.tail_offset + journal_used) % log_blocks;
  KCHECK(head + 3 < log_blocks);  // keep the two blocks contiguous (no wrap) for simplicity
  // Data block: the volume root as home has it, one counter changed, resealed.
  KCHECK_OK(v->io()->Read(sb.root_block, 1, data.data()));
  EncodeLE64(data.data() + format::kMetaHeaderSize + 8 * kTornCounter, kTornValue);
  format::SetMetaGeneration(data.data(), seq);
  format::SealMetaBlock(data.data(), bs);
  format::MetaHeader mh;
  mh.type = format::BlockType::kJournalDescriptor;
  mh.blockno = sb.journal_start + 2 + head;
  mh.owner = seq;
  mh.generation = seq;
  mh.uuid = sb.uuid;
  format::EncodeMetaHeader(mh, desc.data());
  format::DescriptorEntry entry;
  entry.home_block = sb.root_block;
  entry.crc = Crc32c(data.data(), bs);
  format::EncodeDescriptor(desc.data(), bs, format::DescriptorPayload{0, 1}, &entry);
  format::SealMetaBlock(desc.data(), bs);
  KCHECK_OK(v->io()->Write(sb.journal_start + 2 + head, 1, desc.data()));
  KCHECK_OK(v->io()->Write(sb.journal_start + 3 + head, 1, data.data()));
  if (with_commit) {
    std::vector<std::uint8_t> commit(bs, 0);
    mh.type = format::BlockType::kJournalCommit;
    mh.blockno = sb.journal_start + 4 + head;
    format::EncodeMetaHeader(mh, commit.data());
    std::uint8_t le[4];
    EncodeLE32(le, DecodeLE32(desc.data() + 8));  // chained CRC over the descriptors' CRCs
    format::CommitPayload cp;
    cp.descriptors = 1;
    cp.data_blocks = 1;
    cp.chained_crc = Crc32c(le, 4);
    format::EncodeCommit(commit.data(), bs, cp);
    format::SealMetaBlock(commit.data(), bs);
    KCHECK_OK(v->io()->Write(sb.journal_start + 4 + head, 1, commit.data()));
    Printf("ENGINE boot 1: torn_commit=1: commit record written too (boot 2 must now fail)\n");
  }
  KCHECK_OK(v->io()->Flush());
  Printf("ENGINE boot 1: torn transaction %lu (descriptor + data, no commit record) written at "
         "log offset %lu (tail %lu, write_count %lu)\n",
         seq, head, hdr.tail_offset, hdr.write_count);
  return true;
}

}  // namespace

bool TestEngineRecoverWrite(TestContext& ctx) {
  block::BlockDevice* dev = ctx.disk;
  ReporterScope rs(ctx.name);
  KCHECK(rs.ok());
  volume::MkfsOptions mo;
  mo.label = "qemu-recover";
  mo.journal_blocks = kRecoverJournalBlocks;  // room for all of phase B without a checkpoint
  KCHECK_OK(volume::Volume::Mkfs(dev, mo));
  volume::MountReport rep;
  std::uint64_t mount_ns;
  auto vr = MountReporting(dev, &rep, &mount_ns);
  KCHECK_RESULT(vr);
  // Boot 1 stops without unmounting: the Volume is deliberately leaked below (no destructor,
  // no checkpoint), exactly as if the machine stopped.
  volume::Volume* v = vr->release();
  PrintLayout(v->sb());
  Recover w{ctx.OptionU64("seed", 20240608), MaxPayload(v)};
  BTree dirs(v->meta(), v->allocator(), v->roots(), kDirTree);
  BTree files(v->meta(), v->allocator(), v->roots(), kFileTree);
  std::uint32_t txn = 0;

  // ---- phase A: durable and checkpointed home ----
  for (std::uint32_t t = 0; t < kTxnA; ++t) {
    auto h = v->meta()->Begin();
    KCHECK_RESULT(h);
    for (std::uint32_t j = 0; j < 10; ++j)
      KCHECK_OK(files.Put(*h, Slice(w.AKey(t * 10 + j)), Slice(w.Value('a', t * 10 + j, 0))));
    KCHECK_OK(dirs.Put(*h, Slice(std::string("last-txn")), Slice(Recover::TxnValue(++txn))));
    KCHECK_OK(h->Commit());
    KCHECK_OK(v->meta()->Sync());
    Note(v, "A");
  }
  KCHECK_OK(v->meta()->SyncAndCheckpoint());
  Note(v, "A checkpointed");
  const journal::MetaStoreStats sa = v->meta()->stats();
  KCHECK(sa.journal_used == 0);

  // ---- phase B: durable (Sync) but only in the journal ----
  for (std::uint32_t t = 0; t < kTxnB; ++t) {
    auto h = v->meta()->Begin();
    KCHECK_RESULT(h);
    for (std::uint32_t j = 0; j < 5; ++j)
      KCHECK_OK(files.Put(*h, Slice(w.BKey(t * 5 + j)), Slice(w.Value('b', t * 5 + j, 0))));
    KCHECK_OK(files.Put(*h, Slice(w.AKey(2 * t)), Slice(w.Value('a', 2 * t, 1))));
    KCHECK_OK(files.Put(*h, Slice(w.AKey(2 * t + 1)), Slice(w.Value('a', 2 * t + 1, 1))));
    KCHECK_OK(files.Delete(*h, Slice(w.AKey(100 + t))));
    KCHECK_OK(dirs.Put(*h, Slice(std::string("last-txn")), Slice(Recover::TxnValue(++txn))));
    KCHECK_OK(h->Commit());
    KCHECK_OK(v->meta()->Sync());
    Note(v, "B");
  }
  const journal::MetaStoreStats sb = v->meta()->stats();
  // The recovery test needs phase B to be in the journal only: no checkpoint since phase A.
  KCHECK(sb.checkpoints == sa.checkpoints);
  KCHECK(sb.commits - sa.commits == kTxnB);
  KCHECK(sb.journal_used > 0);
  Printf("ENGINE boot 1: phase A %u transactions checkpointed; phase B %u transactions durable "
         "in the journal only (%lu of %lu log blocks used); durable_seq %lu\n",
         kTxnA, kTxnB, sb.journal_used, sb.journal_size, sb.durable_seq);

  const Model durable = w.Durable();
  KCHECK(VerifyVolume(v, durable, kRecoverTrees, 2, "boot 1, durable state"));
  PrintDigest("durable state", ModelDigest(durable));
  KCHECK(WriteTornTransaction(v, sb.journal_used, sb.durable_seq + 1,
                              ctx.OptionU64("torn_commit", 0) != 0));

  // ---- phase C: committed into the running transaction, never Synced: not durable ----
  {
    auto h = v->meta()->Begin();
    KCHECK_RESULT(h);
    for (std::uint32_t j = 0; j < 20; ++j)
      KCHECK_OK(files.Put(*h, Slice(w.CKey(j)), Slice(w.Value('c', j, 0))));
    KCHECK_OK(files.Put(*h, Slice(w.AKey(60)), Slice(w.Value('a', 60, 9))));
    KCHECK_OK(dirs.Put(*h, Slice(std::string("last-txn")), Slice(Recover::TxnValue(++txn))));
    KCHECK_OK(h->Commit());
  }
  const journal::MetaStoreStats sc = v->meta()->stats();
  KCHECK(sc.durable_seq == sb.durable_seq);  // nothing more reached the journal
  Printf("ENGINE boot 1: phase C (1 transaction, %lu dirty blocks) left uncommitted to the "
         "journal; stopping WITHOUT unmount at durable_seq %lu\n",
         v->meta()->running_dirty_blocks(), sc.durable_seq);
  return true;  // the kernel exits here: no Unmount, no checkpoint, no destructor
}

bool TestEngineRecoverVerify(TestContext& ctx) {
  block::BlockDevice* dev = ctx.disk;
  ReporterScope rs(ctx.name);
  KCHECK(rs.ok());
  KCHECK(volume::HasPermfsSuperblock(dev));
  Recover w{ctx.OptionU64("seed", 20240608), 0};
  Model durable;
  {
    volume::MountReport rep;
    std::uint64_t mount_ns;
    auto vr = MountReporting(dev, &rep, &mount_ns);
    KCHECK_RESULT(vr);
    volume::Volume* v = vr->get();
    Note(v, "replayed");
    PrintLayout(v->sb());
    KCHECK(v->sb().journal_blocks == kRecoverJournalBlocks);
    // Boot 1 left exactly phase B in the journal.
    KCHECK(rep.replayed_transactions > 0);
    KCHECK(rep.replayed_transactions == kTxnB);
    KCHECK(rep.replayed_blocks >= kTxnB);
    Printf("THROUGHPUT engine mount+replay: %lu ms for %lu transactions (%lu blocks)\n",
           Ms(mount_ns), rep.replayed_transactions, rep.replayed_blocks);
    w.maxp = MaxPayload(v);
    durable = w.Durable();
    // Every durable transaction is there (A from home, B replayed), the non-durable phase C is
    // not (no c/ key, a/0060 at its phase-A version, last-txn = the last Synced transaction).
    KCHECK(VerifyVolume(v, durable, kRecoverTrees, 2, "boot 2, after replay"));
    PrintDigest("durable state", ModelDigest(durable));
    const journal::MetaStoreStats s = v->meta()->stats();
    Printf("ENGINE boot 2: durable_seq %lu after replay (journal used %lu)\n", s.durable_seq,
           s.journal_used);
    KCHECK(s.journal_used == 0);  // replay wrote everything home and moved the tail
    {
      journal::ReadView view(v->meta());
      auto torn = v->roots()->GetCounter(view, kTornCounter);
      KCHECK_RESULT(torn);
      KCHECK(*torn == 0);  // the torn transaction (no commit record) was not applied
    }
    Printf("ENGINE boot 2: the torn transaction at the log head was ignored\n");

    // The recovered volume is writable: one more transaction, then a clean unmount.
    BTree files(v->meta(), v->allocator(), v->roots(), kFileTree);
    auto h = v->meta()->Begin();
    KCHECK_RESULT(h);
    KCHECK_OK(files.Put(*h, Slice(std::string("z/after-recovery")), Slice(w.Value('z', 0, 0))));
    KCHECK_OK(h->Commit());
    KCHECK_OK(v->meta()->Sync());
    Note(v, "after recovery");
    KCHECK_OK(v->Unmount());
  }
  durable.push_back(KV{kFileTree, "z/after-recovery", w.Value('z', 0, 0)});
  {
    volume::MountReport rep;
    std::uint64_t mount_ns;
    auto vr = MountReporting(dev, &rep, &mount_ns);
    KCHECK_RESULT(vr);
    KCHECK(rep.replayed_transactions == 0);
    KCHECK(VerifyVolume(vr->get(), durable, kRecoverTrees, 2, "boot 2, remount"));
    KCHECK_OK((*vr)->Unmount());
  }
  return true;
}

// =============================================================================================
// qemu_engine_panic: a panic while an engine test runs reports the journal's state.
// =============================================================================================
bool TestEnginePanic(TestContext& ctx) {
  block::BlockDevice* dev = ctx.disk;
  ReporterScope rs(ctx.name);
  KCHECK(rs.ok());
  KCHECK_OK(volume::Volume::Mkfs(dev, volume::MkfsOptions{}));
  volume::MountReport rep;
  std::uint64_t mount_ns;
  auto vr = MountReporting(dev, &rep, &mount_ns);
  KCHECK_RESULT(vr);
  volume::Volume* v = vr->get();
  BTree files(v->meta(), v->allocator(), v->roots(), kFileTree);
  for (std::uint32_t t = 0; t < 5; ++t) {
    auto h = v->meta()->Begin();
    KCHECK_RESULT(h);
    KCHECK_OK(files.Put(*h, Slice(NumKey("p/", t, 4)), Slice(std::string(100, 'p'))));
    KCHECK_OK(h->Commit());
    KCHECK_OK(v->meta()->Sync());
    Note(v, "committed");
  }
  Printf("ENGINE panic test: durable_seq %lu before the panic\n", v->meta()->durable_seq());
  port::Panic(__FILE__, __LINE__, "deliberate panic during an engine test");
}

}  // namespace permfs::qemu
