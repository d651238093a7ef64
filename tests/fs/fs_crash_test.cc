// Crash-consistency harness for the namespace layer (RELIABILITY.md §4.1), at the BlockDevice
// seam. Workloads of namespace operations on a small file set {A/foo, A/bar, B/foo, dir A,
// dir B} run on a Filesystem over a RecordingBlockDevice(MemBlockDevice 6 MiB, journal 64
// blocks, record size 4 KiB), in lockstep with the POSIX model of fs_model.h (errnos compared).
// After every op the model's whole namespace is hashed and Mark("op <i>") is recorded; after
// every successful Sync, Mark("durable <i>").
//   seq-1: a fixed setup (durable in the base image), then ONE op of the alphabet {create,
//          write overwrite/append/unaligned, truncate, punch, zero range, mkdir, rmdir, link,
//          unlink, rename file/dir with and without overwrite, NOREPLACE, EXCHANGE, setxattr,
//          removexattr, chmod, symlink}, then Sync.
//   seq-2 / seq-3: seeded sequences of 2 or 3 ops from the same alphabet, Sync after each
//          (or, with probability 1/3, not), unlinked files sometimes kept open across ops.
//   mixed: a longer seeded sequence (24 ops, Sync every few) to drive the journal through
//          wrap-around and checkpoints.
//   bigpunch: writes, truncates, punches, zero ranges and unlinks of 0.3-1.8 MiB on a 24 MiB
//          volume, so one op spans several transactions (truncate/unlink rely on the orphan
//          list). Large writes/punches are NOT atomic across a crash (see Atomic()): while one
//          is in flight only fsck/mount/second-mount are checked ("torn as allowed").
// Every crash state of CrashStateEnumerator (flush cut points with prefixes, epoch subsets, torn
// and garbage writes; then every-op cut points) is checked:
//   1. Fsck (repair=false, verify_data=true) on the crash image: no error status, 0 errors;
//   2. Volume::Mount + Filesystem::Open succeed;
//   3. the namespace (contents, sizes, names, modes, link counts, xattrs, '..') hashes to the
//      model after some op j with  last durable op <= j <= last completed op + 1  — nothing
//      synced is lost, nothing half-applied;
//   4. Unmount; a second mount replays 0 transactions and shows the same namespace.
// Prints "<N> crash states checked, <F> failures".
//
// Env: PERMFS_CRASH_STATES = minimum number of states (default 12000);
//      PERMFS_CRASH_BIG    = number of bigpunch workloads (default 4);
//      PERMFS_CRASH_VERBOSE= print each workload's ops and trace shape;
//      PERMFS_CRASH_SEED   = first seed of the seeded workloads (default 1);
//      PERMFS_CRASH_REPRO  = "<workload>:<flushes|everyop>:<state id>" checks one state.
// A failure prints "crash:wl=<workload>:cuts=<flushes|everyop>:<state id>: <what>".
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "block/crash_state.h"
#include "block/mem_block_device.h"
#include "block/recording_block_device.h"
#include "fs/filesystem.h"
#include "fs/fsck.h"
#include "fs_model.h"
#include "util/random.h"
#include "volume/volume.h"
#include "testutil/trace_marks.h"
#include "testutil/volume_fixture.h"

namespace permfs::fs {
namespace {

using testutil::EnvU64;
using testutil::Str;

using model::Expect;
using model::Model;

constexpr std::uint32_t kBs = 4096;
constexpr std::uint64_t kDevBlocks = 1536;  // 6 MiB
constexpr std::uint64_t kJournal = 64;
constexpr std::uint32_t kRs = 4096;
const Credentials kCred{1000, 1000};

volume::MountOptions MountOpts() {
  volume::MountOptions o;
  o.cache_blocks = 256;
  return o;
}

// ---- The op alphabet -----------------------------------------------------------------------

enum class K {
  kCreate, kMkdir, kSymlink, kWrite, kTruncate, kPunch, kZero, kRmdir, kLink, kUnlink, kRename,
  kSetXattr, kRemoveXattr, kChmod
};

struct OpSpec {
  K kind;
  std::string p1, p2;
  std::uint64_t a = 0, b = 0;  // offset/size/length, xattr value length
  std::uint32_t flags = 0;
  std::string Describe() const {
    static const char* const kNames[] = {"create", "mkdir", "symlink", "write", "truncate",
                                         "punch", "zero", "rmdir", "link", "unlink", "rename",
                                         "setxattr", "removexattr", "chmod"};
    std::string s = kNames[static_cast<int>(kind)];
    s += "(" + p1;
    if (!p2.empty()) s += "," + p2;
    if (a || b) s += "," + std::to_string(a) + "," + std::to_string(b);
    if (flags) s += ",f" + std::to_string(flags);
    return s + ")";
  }
};

// The seq-1 alphabet: every op crossed with the interesting members of the file set.
std::vector<OpSpec> Alphabet() {
  std::vector<OpSpec> v;
  auto add = [&](K k, std::string p1, std::string p2 = "", std::uint64_t a = 0,
                 std::uint64_t b = 0, std::uint32_t f = 0) {
    v.push_back(OpSpec{k, std::move(p1), std::move(p2), a, b, f});
  };
  add(K::kCreate, "B/foo");
  add(K::kCreate, "A/foo");  // EEXIST
  add(K::kCreate, "A/baz");
  add(K::kMkdir, "A/C");
  add(K::kMkdir, "B/C");
  add(K::kSymlink, "B/ln");
  add(K::kWrite, "A/foo", "", 0, 4096);           // overwrite one record
  add(K::kWrite, "A/foo", "", 10000, 6000);        // append across records
  add(K::kWrite, "A/foo", "", 1001, 5003);         // unaligned overwrite
  add(K::kWrite, "A/bar", "", 3000, 20000);        // extend a short file over many records
  add(K::kWrite, "A/bar", "", 100000, 100);        // sparse far write
  add(K::kTruncate, "A/foo", "", 5000);            // shrink into a record
  add(K::kTruncate, "A/foo", "", 0);
  add(K::kTruncate, "A/foo", "", 30000);           // grow
  add(K::kTruncate, "A/bar", "", 8192);            // grow to a boundary
  add(K::kPunch, "A/foo", "", 2000, 4000);
  add(K::kPunch, "A/foo", "", 0, 10000);           // whole file (keep size)
  add(K::kZero, "A/foo", "", 9000, 7000);          // zero range extending the size
  add(K::kZero, "A/bar", "", 100, 50);
  add(K::kRmdir, "B");
  add(K::kRmdir, "A");                             // ENOTEMPTY
  add(K::kLink, "A/foo", "B/foo");
  add(K::kLink, "A/bar", "A/bar2");
  add(K::kUnlink, "A/foo");
  add(K::kUnlink, "A/bar");
  add(K::kRename, "A/foo", "B/foo");               // across dirs, no overwrite
  add(K::kRename, "A/foo", "A/bar");               // overwrite
  add(K::kRename, "A/bar", "B/bar");
  add(K::kRename, "A/foo", "A/bar", 0, 0, kRenameNoReplace);  // EEXIST
  add(K::kRename, "A/foo", "A/bar", 0, 0, kRenameExchange);
  add(K::kRename, "B", "A/B");                     // dir into dir
  add(K::kRename, "A", "B");                       // dir over an empty dir
  add(K::kRename, "B", "A");                       // ENOTEMPTY
  add(K::kRename, "A", "B", 0, 0, kRenameExchange);
  add(K::kRename, "A", "A/C");                     // EINVAL (into itself)
  add(K::kSetXattr, "A/foo", "user.y", 0, 3000);
  add(K::kSetXattr, "A/foo", "user.x", 0, 10);     // replace
  add(K::kSetXattr, "A", "user.d", 0, 100);
  add(K::kRemoveXattr, "A/foo", "user.x");
  add(K::kChmod, "A/foo", "", 0600);
  return v;
}

// A random op of the same alphabet shape (for seq-2/3 and mixed workloads).
OpSpec RandomOp(Random& r) {
  static const char* const kFiles[] = {"A/foo", "A/bar", "B/foo", "B/bar", "A/C/foo"};
  static const char* const kDirs[] = {"A", "B", "A/C", "B/C"};
  auto file = [&] { return std::string(kFiles[r.Uniform(5)]); };
  auto dir = [&] { return std::string(kDirs[r.Uniform(4)]); };
  auto any = [&] { return r.OneIn(3) ? dir() : file(); };
  switch (r.Uniform(15)) {
    case 0: return {K::kCreate, file()};
    case 1: return {K::kMkdir, dir()};
    case 2: return {K::kWrite, file(), "", r.Uniform(20000), 1 + r.Uniform(r.OneIn(4) ? 40000 : 6000)};
    case 3: return {K::kWrite, file(), "", r.Uniform(4) * 4096ull, 4096};
    case 4: return {K::kTruncate, file(), "", r.Uniform(30000)};
    case 5: return {K::kPunch, file(), "", r.Uniform(15000), 1 + r.Uniform(12000)};
    case 6: return {K::kZero, file(), "", r.Uniform(15000), 1 + r.Uniform(12000)};
    case 7: return {K::kRmdir, dir()};
    case 8: return {K::kLink, file(), file()};
    case 9: return {K::kUnlink, file()};
    case 10:
    case 11: {
      static const std::uint32_t kFlags[] = {0, 0, kRenameNoReplace, kRenameExchange};
      const bool d = r.OneIn(3);
      return {K::kRename, d ? dir() : file(), d ? dir() : any(), 0, 0, kFlags[r.Uniform(4)]};
    }
    case 12: return {K::kSetXattr, any(), r.OneIn(2) ? "user.x" : "user.y", 0, r.Uniform(r.OneIn(3) ? 5000 : 200)};
    case 13: return {K::kRemoveXattr, any(), r.OneIn(2) ? "user.x" : "user.y"};
    default: return {K::kChmod, any(), "", 0600 + r.Uniform(0200)};
  }
}

// ---- Running ops on the filesystem and the model in lockstep ------------------------------

class Runner {
 public:
  Runner(Filesystem* fs, Model* m, std::uint64_t seed) : fs_(fs), m_(m), rnd_(seed) {}

  // Resolves "X/Y/name" in the model: parent directory inode and last component.
  bool Resolve(const std::string& path, std::uint64_t* parent, std::string* name) {
    std::uint64_t cur = kRootIno;
    std::size_t pos = 0;
    for (;;) {
      const std::size_t slash = path.find('/', pos);
      if (slash == std::string::npos) {
        *parent = cur;
        *name = path.substr(pos);
        return true;
      }
      auto& e = m_->nodes[cur].entries;
      auto it = e.find(path.substr(pos, slash - pos));
      if (it == e.end() || !m_->IsDirIno(it->second)) return false;
      cur = it->second;
      pos = slash + 1;
    }
  }
  std::uint64_t InoOf(const std::string& path) {
    std::uint64_t p;
    std::string n;
    if (!Resolve(path, &p, &n)) return 0;
    auto& e = m_->nodes[p].entries;
    auto it = e.find(n);
    return it == e.end() ? 0 : it->second;
  }

  std::string Data(std::size_t n) {
    std::string s(n, '\0');
    if (!rnd_.OneIn(6)) rnd_.Fill(s.data(), s.size());
    return s;
  }

  bool Check(const Expect& want, const Status& got, const OpSpec& op) {
    if (!want.Accepts(got.ToErrno())) {
      error = op.Describe() + ": errno " + std::to_string(got.ToErrno()) + " (" + Str(got) +
              "), model wants " + std::to_string(want.err);
      return false;
    }
    return true;
  }

  void Orphan(std::uint64_t got, std::uint64_t want, const OpSpec& op) {
    if (got != want) {
      error = op.Describe() + ": orphan " + std::to_string(got) + " != model " + std::to_string(want);
      return;
    }
    if (!want) return;
    if (rnd_.OneIn(2)) {
      Status st = fs_->Reclaim(want);
      if (!st.ok()) error = op.Describe() + ": Reclaim: " + Str(st);
      m_->Reclaim(want);
    } else {
      m_->open_orphans.insert(want);  // kept "open" until CloseOrphans()
    }
  }
  void CloseOrphans() {
    for (std::uint64_t o : std::vector<std::uint64_t>(m_->open_orphans.begin(), m_->open_orphans.end())) {
      Status st = fs_->Reclaim(o);
      if (!st.ok()) error = "Reclaim(" + std::to_string(o) + "): " + Str(st);
      m_->Reclaim(o);
    }
  }

  // Runs one op; returns false (with `error`) on a divergence from the model.
  bool Run(const OpSpec& op) {
    std::uint64_t d = 0, d2 = 0;
    std::string n, n2;
    if (!Resolve(op.p1, &d, &n)) return true;  // parent missing: skipped
    const std::uint64_t ino = InoOf(op.p1);
    auto regular = [&] { return ino && IsRegular(m_->nodes[ino].mode); };
    switch (op.kind) {
      case K::kCreate: {
        Expect w = m_->CheckCreate(d, n, false);
        auto r = fs_->Create(d, n, 0644, 0, kCred);
        if (!Check(w, r.status(), op)) return false;
        if (r.ok()) m_->ApplyCreate(d, n, r->ino, kTypeRegular | 0644, 0, "");
        return true;
      }
      case K::kMkdir: {
        Expect w = m_->CheckCreate(d, n, true);
        auto r = fs_->Mkdir(d, n, 0755, kCred);
        if (!Check(w, r.status(), op)) return false;
        if (r.ok()) m_->ApplyCreate(d, n, r->ino, kTypeDir | 0755, 0, "");
        return true;
      }
      case K::kSymlink: {
        Expect w = m_->CheckCreate(d, n, false);
        const std::string target = "../some/target/" + std::to_string(op.a);
        auto r = fs_->Symlink(d, n, target, kCred);
        if (!Check(w, r.status(), op)) return false;
        if (r.ok()) m_->ApplyCreate(d, n, r->ino, kTypeSymlink | 0777, 0, target);
        return true;
      }
      case K::kWrite: {
        if (!regular()) return true;
        const std::string data = Data(op.b);
        Status st = fs_->Write(ino, op.a, reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
        if (!Check({}, st, op)) return false;
        Model::Write(m_->nodes[ino], op.a, data);
        return true;
      }
      case K::kTruncate: {
        if (!regular()) return true;
        Status st = fs_->Truncate(ino, op.a);
        if (!Check({}, st, op)) return false;
        Model::Truncate(m_->nodes[ino], op.a);
        return true;
      }
      case K::kPunch:
      case K::kZero: {
        if (!regular()) return true;
        const std::uint32_t mode =
            op.kind == K::kPunch ? (kFallocPunchHole | kFallocKeepSize) : kFallocZeroRange;
        Status st = fs_->Fallocate(ino, mode, op.a, op.b);
        if (!Check({}, st, op)) return false;
        Model::Fallocate(m_->nodes[ino], mode, op.a, op.b);
        return true;
      }
      case K::kRmdir: {
        Expect w = m_->CheckRmdir(d, n);
        Status st = fs_->Rmdir(d, n);
        if (!Check(w, st, op)) return false;
        if (st.ok()) m_->ApplyRmdir(d, n);
        return true;
      }
      case K::kLink: {
        if (!ino || !Resolve(op.p2, &d2, &n2)) return true;
        Expect w = m_->CheckLink(ino, d2, n2);
        auto r = fs_->Link(ino, d2, n2);
        if (!Check(w, r.status(), op)) return false;
        if (r.ok()) m_->ApplyLink(ino, d2, n2);
        return true;
      }
      case K::kUnlink: {
        Expect w = m_->CheckUnlink(d, n);
        UnlinkOutcome out;
        Status st = fs_->Unlink(d, n, &out);
        if (!Check(w, st, op)) return false;
        if (st.ok()) Orphan(out.orphan, m_->ApplyUnlink(d, n), op);
        return error.empty();
      }
      case K::kRename: {
        if (!Resolve(op.p2, &d2, &n2)) return true;
        Expect w = m_->CheckRename(d, n, d2, n2, op.flags);
        UnlinkOutcome out;
        Status st = fs_->Rename(d, n, d2, n2, op.flags, &out);
        if (!Check(w, st, op)) return false;
        if (st.ok()) Orphan(out.orphan, m_->ApplyRename(d, n, d2, n2, op.flags), op);
        return error.empty();
      }
      case K::kSetXattr: {
        if (!ino) return true;
        const std::string value = Data(op.b);
        Expect w = Model::CheckSetXattr(m_->nodes[ino], op.p2, value, 0);
        Status st = fs_->SetXattr(ino, op.p2, value, 0);
        if (!Check(w, st, op)) return false;
        if (st.ok()) m_->nodes[ino].xattrs[op.p2] = value;
        return true;
      }
      case K::kRemoveXattr: {
        if (!ino) return true;
        Expect w = m_->nodes[ino].xattrs.count(op.p2) ? Expect{} : Expect{model::kENODATA};
        Status st = fs_->RemoveXattr(ino, op.p2);
        if (!Check(w, st, op)) return false;
        if (st.ok()) m_->nodes[ino].xattrs.erase(op.p2);
        return true;
      }
      case K::kChmod: {
        if (!ino) return true;
        SetAttrRequest req;
        req.mask = kSetMode;
        req.mode = static_cast<std::uint32_t>(op.a);
        Status st = fs_->SetAttr(ino, req).status();
        if (!Check({}, st, op)) return false;
        MNodeMode(ino, req.mode);
        return true;
      }
    }
    return true;
  }
  void MNodeMode(std::uint64_t ino, std::uint32_t mode) {
    auto& n = m_->nodes[ino];
    n.mode = (n.mode & kTypeMask) | mode;
  }

  std::string error;

 private:
  Filesystem* fs_;
  Model* m_;
  Random rnd_;
};

// Setup of every workload (made durable in the base image): dirs A and B, A/foo (10000 bytes,
// three records, xattr user.x) and A/bar (3000 bytes).
std::vector<OpSpec> SetupOps() {
  return {{K::kMkdir, "A"},
          {K::kMkdir, "B"},
          {K::kCreate, "A/foo"},
          {K::kWrite, "A/foo", "", 0, 10000},
          {K::kSetXattr, "A/foo", "user.x", 0, 40},
          {K::kCreate, "A/bar"},
          {K::kWrite, "A/bar", "", 0, 3000}};
}

struct Step {
  OpSpec op;
  bool sync = true;
};

// File data operations over more records than one transaction takes (Write batches a few
// records per transaction on a 64-block journal; punch/zero unmap in batches) are not atomic
// across a crash: like write(2) on any POSIX filesystem, a crash may leave them torn. Their
// crash states must still pass fsck and mount; only the namespace comparison is waived while
// such an op is in flight. Everything else must be all-or-nothing.
bool Atomic(const OpSpec& op) {
  if (op.kind != K::kWrite && op.kind != K::kPunch && op.kind != K::kZero) return true;
  const std::uint64_t first = op.a / kRs, last = (op.a + op.b - 1) / kRs;
  return last - first + 1 <= 6;
}

struct Workload {
  std::string name;
  std::uint64_t seed = 0;
  std::vector<std::uint8_t> base;
  std::vector<block::TraceEntry> trace;
  std::vector<std::uint64_t> hashes;           // hashes[j] = namespace after op j (0 = setup)
  std::vector<std::vector<std::string>> canon;  // the renderings, for failure messages
  std::vector<std::uint64_t> durable_at, done_at;  // per trace index: last durable / done op
  std::vector<bool> atomic;                        // atomic[j]: op j is all-or-nothing
  std::uint64_t ops = 0;
  std::string error;
};

Workload Record(const std::string& name, std::uint64_t seed, const std::vector<Step>& steps) {
  Workload w;
  w.name = name;
  w.seed = seed;
  // Large-file workloads need room for a few MiB of data.
  block::MemBlockDevice mem(name.rfind("big", 0) == 0 ? 4 * kDevBlocks : kDevBlocks, kBs);
  volume::MkfsOptions mo;
  mo.journal_blocks = kJournal;
  mo.record_size = kRs;
  Status st = volume::Volume::Mkfs(&mem, mo);
  if (!st.ok()) {
    w.error = "mkfs: " + Str(st);
    return w;
  }
  Model m;
  {  // Setup, made durable and checkpointed: the base image.
    auto v = volume::Volume::Mount(&mem, MountOpts());
    if (!v.ok()) {
      w.error = "mount: " + Str(v.status());
      return w;
    }
    st = Filesystem::Format(v->get(), {0, 0});
    Filesystem fs(v->get());
    if (st.ok()) st = fs.Open();
    Runner run(&fs, &m, seed ^ 0xabcdef);
    for (const OpSpec& op : SetupOps())
      if (!run.Run(op)) {
        w.error = "setup: " + run.error;
        return w;
      }
    st = (*v)->Unmount();
    if (!st.ok()) {
      w.error = "setup unmount: " + Str(st);
      return w;
    }
  }
  w.base = mem.Snapshot();
  w.canon.push_back(m.Canon());
  w.hashes.push_back(model::HashLines(w.canon.back()));
  w.atomic.push_back(true);
  block::RecordingBlockDevice rec(&mem);
  {
    auto v = volume::Volume::Mount(&rec, MountOpts());
    if (!v.ok()) {
      w.error = "mount: " + Str(v.status());
      return w;
    }
    Filesystem fs(v->get());
    st = fs.Open();
    Runner run(&fs, &m, seed);
    for (std::size_t i = 0; i < steps.size() && st.ok(); ++i) {
      if (!run.Run(steps[i].op)) {
        w.error = "op " + std::to_string(i + 1) + ": " + run.error;
        break;
      }
      w.canon.push_back(m.Canon());
      w.hashes.push_back(model::HashLines(w.canon.back()));
      w.atomic.push_back(Atomic(steps[i].op));
      rec.Mark(("op " + std::to_string(i + 1)).c_str());
      if (steps[i].sync) {
        st = fs.Sync();
        if (!st.ok()) w.error = "sync: " + Str(st);
        rec.Mark(("durable " + std::to_string(i + 1)).c_str());
      }
      // Files kept open are closed after a later op.
      if (!m.open_orphans.empty() && (i + 1 == steps.size() || (i % 2) == 1)) run.CloseOrphans();
      if (!run.error.empty()) w.error = run.error;
      if (!w.error.empty()) break;
    }
    // Self-check before the trace is used: the live filesystem equals the model.
    if (w.error.empty()) {
      Status cs;
      auto got = model::CanonFs(&fs, &cs);
      if (got != w.canon.back())
        w.error = "live filesystem differs from the model:\n" + model::DiffLines(w.canon.back(), got);
    }
    Status us = (*v)->Unmount();
    if (!us.ok() && w.error.empty()) w.error = "unmount: " + Str(us);
  }
  w.ops = w.hashes.size() - 1;
  w.trace = rec.TraceCopy();
  w.durable_at = testutil::LatestMark(w.trace, "durable");
  w.done_at = testutil::LatestMark(w.trace, "op");
  return w;
}

// ---- Checking crash states ---------------------------------------------------------------------

struct Checker {
  std::uint64_t states = 0, failures = 0, torn = 0;
  bool quiet = false;
  std::vector<std::string> failed_ids;

  void Fail(const std::string& id, const std::string& what) {
    ++failures;
    failed_ids.push_back(id);
    if (!quiet && failures <= 8) ADD_FAILURE() << id << ": " << what;
  }

  // Returns the op boundary the state recovered to, or -1.
  std::int64_t CheckOne(const std::string& id, std::vector<std::uint8_t> image, const Workload& w,
                        std::uint64_t lo, std::uint64_t hi) {
    ++states;
    block::MemBlockDevice dev(std::move(image), kBs);
    {  // 1. fsck on the crash image (replays the journal).
      FsckOptions fo;
      fo.verify_data = true;
      FsckReport rep;
      Status st = Fsck(&dev, fo, &rep);
      if (!st.ok() || rep.errors != 0) {
        std::string all;
        for (std::size_t i = 0; i < rep.problems.size() && i < 6; ++i) all += "\n    " + rep.problems[i];
        Fail(id, "fsck: " + (st.ok() ? std::string("ok") : Str(st)) + ", " +
                     std::to_string(rep.errors) + " errors" + all);
        return -1;
      }
    }
    std::int64_t T = -1;
    std::vector<std::string> got;
    {  // 2./3. Mount + Open, compare with the model.
      auto v = volume::Volume::Mount(&dev, MountOpts());
      if (!v.ok()) {
        Fail(id, "mount: " + Str(v.status()));
        return -1;
      }
      Filesystem fs(v->get());
      Status st = fs.Open();
      if (!st.ok()) {
        Fail(id, "Filesystem::Open: " + Str(st));
        return -1;
      }
      Status cs;
      got = model::CanonFs(&fs, &cs);
      const std::uint64_t h = model::HashLines(got);
      for (std::uint64_t j = hi + 1; j-- > lo;)
        if (w.hashes[j] == h) {
          T = static_cast<std::int64_t>(j);
          break;
        }
      bool tearable = false;  // a large data op not yet durable at the cut
      for (std::uint64_t j = lo + 1; j <= hi; ++j) tearable |= !w.atomic[j];
      if (T < 0 && tearable) {
        ++torn;  // a large data op in flight: torn content allowed (see Atomic())
        T = static_cast<std::int64_t>(hi);
      }
      if (T < 0) {
        std::string any = "none";
        for (std::size_t j = 0; j < w.hashes.size(); ++j)
          if (w.hashes[j] == h) any = std::to_string(j);
        Fail(id, "namespace is not the model after any op in [" + std::to_string(lo) + ", " +
                     std::to_string(hi) + "] (matches op " + any + "); diff against op " +
                     std::to_string(hi) + ":\n" + model::DiffLines(w.canon[hi], got) +
                     "diff against op " + std::to_string(lo) + ":\n" +
                     model::DiffLines(w.canon[lo], got));
        return -1;
      }
      st = (*v)->Unmount();
      if (!st.ok()) {
        Fail(id, "unmount: " + Str(st));
        return -1;
      }
    }
    {  // 4. Second mount: nothing to replay, same namespace.
      volume::MountReport mr;
      auto v = volume::Volume::Mount(&dev, MountOpts(), &mr);
      if (!v.ok()) {
        Fail(id, "second mount: " + Str(v.status()));
        return -1;
      }
      if (mr.replayed_transactions != 0)
        Fail(id, "second mount replayed " + std::to_string(mr.replayed_transactions) + " transactions");
      Filesystem fs(v->get());
      Status st = fs.Open();
      Status cs;
      if (!st.ok() || model::CanonFs(&fs, &cs) != got) Fail(id, "second mount changed the namespace");
      (void)(*v)->Unmount();
    }
    return T;
  }

  static block::CrashStateOptions Options(const Workload& w, block::CutPoints cuts) {
    block::CrashStateOptions o;
    o.seed = w.seed + 1;
    o.cut_points = cuts;
    o.prefixes = o.subsets = o.torn = true;
    o.full_subset_limit = 6;
    o.max_subsets_per_cut = 24;
    o.torn_samples = 8;
    o.garbage_variants = 2;
    return o;
  }
  static std::string Prefix(const Workload& w, block::CutPoints cuts) {
    return "crash:wl=" + w.name + ":cuts=" +
           (cuts == block::CutPoints::kFlushes ? "flushes" : "everyop") + ":";
  }
  void Check(const Workload& w, const std::string& prefix, block::CrashState& cs) {
    const std::uint64_t lo =
        cs.marks_durable < 0 ? 0 : w.durable_at[static_cast<std::size_t>(cs.marks_durable)];
    std::uint64_t hi = cs.last_mark < 0 ? 0 : w.done_at[static_cast<std::size_t>(cs.last_mark)];
    if (hi < w.ops) ++hi;  // the op in flight at the cut may have committed
    CheckOne(prefix + cs.id, std::move(cs.image), w, lo, hi);
  }
  void Run(const Workload& w, block::CutPoints cuts, std::uint64_t limit) {
    block::CrashStateEnumerator en(w.base, kBs, w.trace, Options(w, cuts));
    ASSERT_TRUE(en.status().ok()) << Str(en.status());
    const std::string prefix = Prefix(w, cuts);
    block::CrashState cs;
    std::uint64_t n = 0;
    while (n < limit && en.Next(&cs)) {
      ++n;
      Check(w, prefix, cs);
      if (failures > 8 && !quiet) return;
    }
  }
};

// All workloads, in a fixed order: seq-1 over the alphabet, then seeded seq-2, seq-3, mixed.
struct WorkloadSpec {
  std::string name;
  std::uint64_t seed;
  std::vector<Step> steps;
};

WorkloadSpec Seq1(std::size_t i) {
  const std::vector<OpSpec> a = Alphabet();
  return {"seq1/" + std::to_string(i) + "_" + a[i].Describe(), i + 1, {Step{a[i], true}}};
}
WorkloadSpec Seeded(const std::string& kind, std::uint64_t seed) {
  Random r(seed * 1000003 + kind.size());
  const std::size_t n = kind == "seq2" ? 2 : kind == "seq3" ? 3 : 24;
  WorkloadSpec s{kind + "/seed" + std::to_string(seed), seed, {}};
  for (std::size_t i = 0; i < n; ++i) {
    Step st{RandomOp(r), kind == "mixed" ? r.OneIn(4) : !r.OneIn(3)};
    if (i + 1 == n) st.sync = true;
    s.steps.push_back(st);
  }
  return s;
}

// Large-file ops: writes, truncates, punches and unlinks over hundreds of records, so one op
// needs several transactions (and the commit threshold can fall between them).
OpSpec BigOp(Random& r, bool punch) {
  static const char* const kFiles[] = {"A/foo", "A/bar", "B/big"};
  const std::string f = kFiles[r.Uniform(3)];
  std::uint32_t k = r.Uniform(7);
  if (!punch && (k == 3 || k == 4)) k = 0;
  switch (k) {
    case 0: case 1: return {K::kWrite, f, "", r.Uniform(64) * 4096ull + r.Uniform(2) * 77, 300000 + r.Uniform(1500000)};
    case 2: return {K::kTruncate, f, "", r.Uniform(200000)};
    case 3: return {K::kPunch, f, "", r.Uniform(20000), 300000 + r.Uniform(1500000)};
    case 4: return {K::kZero, f, "", r.Uniform(20000), 300000 + r.Uniform(1500000)};
    case 5: return {K::kUnlink, f};
    default: return {K::kCreate, f};
  }
}
// "bigpunch" workloads include large punches and zero ranges; "big" ones leave them out.
WorkloadSpec Big(std::uint64_t seed, bool punch = false) {
  Random r(seed * 31337 + 7);
  WorkloadSpec s{std::string(punch ? "bigpunch" : "big") + "/seed" + std::to_string(seed), seed, {}};
  s.steps.push_back(Step{OpSpec{K::kCreate, "B/big"}, false});
  for (int i = 0; i < 4; ++i) s.steps.push_back(Step{BigOp(r, punch), r.OneIn(3)});
  s.steps.back().sync = true;
  return s;
}

WorkloadSpec SpecByName(const std::string& name) {
  const auto slash = name.find('/');
  const std::string kind = name.substr(0, slash);
  if (kind == "seq1") return Seq1(std::strtoull(name.c_str() + slash + 1, nullptr, 10));
  if (kind == "big" || kind == "bigpunch")
    return Big(std::strtoull(name.c_str() + name.find("seed") + 4, nullptr, 10), kind == "bigpunch");
  return Seeded(kind, std::strtoull(name.c_str() + name.find("seed") + 4, nullptr, 10));
}

TEST(FsCrashTest, EveryCrashStateRecoversToAnOpBoundary) {
  if (const char* repro = std::getenv("PERMFS_CRASH_REPRO"); repro && *repro) {
    // "<workload>:<flushes|everyop>:<state id>"
    std::string r(repro);
    const auto a = r.find(':'), b = r.find(':', a + 1);
    ASSERT_NE(b, std::string::npos) << "bad PERMFS_CRASH_REPRO";
    WorkloadSpec spec = SpecByName(r.substr(0, a));
    Workload w = Record(spec.name, spec.seed, spec.steps);
    ASSERT_TRUE(w.error.empty()) << spec.name << ": " << w.error;
    const block::CutPoints cuts =
        r.substr(a + 1, b - a - 1) == "flushes" ? block::CutPoints::kFlushes : block::CutPoints::kEveryOp;
    block::CrashStateEnumerator en(w.base, kBs, w.trace, Checker::Options(w, cuts));
    auto cs = en.Build(r.substr(b + 1));
    ASSERT_TRUE(cs.ok()) << Str(cs.status());
    Checker c;
    c.Check(w, Checker::Prefix(w, cuts), *cs);
    std::printf("%llu crash states checked, %llu failures (repro)\n",
                static_cast<unsigned long long>(c.states), static_cast<unsigned long long>(c.failures));
    EXPECT_EQ(c.failures, 0u);
    return;
  }
  const std::uint64_t target = EnvU64("PERMFS_CRASH_STATES", 12000);
  const std::uint64_t seed0 = EnvU64("PERMFS_CRASH_SEED", 1);
  const auto t0 = std::chrono::steady_clock::now();
  Checker c;
  std::uint64_t workloads = 0, trace_ops = 0, ops = 0;
  auto run = [&](const WorkloadSpec& spec, std::uint64_t everyop_limit) {
    Workload w = Record(spec.name, spec.seed, spec.steps);
    if (!w.error.empty()) {
      ADD_FAILURE() << "workload " << spec.name << " (seed " << spec.seed << "): " << w.error;
      ++c.failures;
      return;
    }
    ++workloads;
    if (EnvU64("PERMFS_CRASH_VERBOSE", 0)) {
      std::string line = spec.name + ":";
      std::uint64_t writes = 0, flushes = 0;
      for (const block::TraceEntry& e : w.trace) {
        if (e.op == block::TraceOp::kWrite) ++writes;
        if (e.op == block::TraceOp::kFlush) ++flushes;
        if (e.op == block::TraceOp::kMark) {
          line += " [" + std::to_string(writes) + "w/" + std::to_string(flushes) + "f] " + e.mark;
          writes = flushes = 0;
        }
      }
      std::printf("%s\n", line.c_str());
      for (const Step& st : spec.steps) std::printf("   %s%s\n", st.op.Describe().c_str(), st.sync ? " +sync" : "");
    }
    trace_ops += w.trace.size();
    ops += w.ops;
    c.Run(w, block::CutPoints::kFlushes, ~0ull);
    if (c.failures == 0) c.Run(w, block::CutPoints::kEveryOp, everyop_limit);
  };
  const std::size_t alphabet = Alphabet().size();
  for (std::size_t i = 0; i < alphabet && c.failures == 0; ++i) run(Seq1(i), 400);
  for (std::uint64_t s = seed0; c.failures == 0 && s < seed0 + EnvU64("PERMFS_CRASH_BIG", 4); ++s)
    run(Big(s, true), 200);
  const std::uint64_t after_seq1 = c.states;
  for (std::uint64_t s = seed0; c.failures == 0 && c.states < after_seq1 + target / 3; ++s) {
    run(Seeded("seq2", s), 120);
    if (c.failures == 0) run(Seeded("seq3", s), 160);
  }
  for (std::uint64_t s = seed0; c.failures == 0 && c.states < target; ++s) run(Seeded("mixed", s), 600);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%llu crash states checked, %llu failures (%llu workloads, %llu ops, %llu trace "
              "ops, %llu states with a large data op torn as allowed; %.1f s)\n",
              static_cast<unsigned long long>(c.states), static_cast<unsigned long long>(c.failures),
              static_cast<unsigned long long>(workloads), static_cast<unsigned long long>(ops),
              static_cast<unsigned long long>(trace_ops), static_cast<unsigned long long>(c.torn), secs);
  EXPECT_GE(c.states, target);
  EXPECT_EQ(c.failures, 0u);
}

// The checker can fail: a lost durable op, a foreign namespace and a damaged image are flagged.
TEST(FsCrashTest, CheckerDetectsBadStates) {
  WorkloadSpec spec{"selftest", 5, {{OpSpec{K::kWrite, "A/foo", "", 0, 4096}, true},
                                    {OpSpec{K::kUnlink, "A/bar"}, true}}};
  Workload w = Record(spec.name, spec.seed, spec.steps);
  ASSERT_TRUE(w.error.empty()) << w.error;
  ASSERT_EQ(w.ops, 2u);
  block::CrashStateOptions o;
  o.subsets = o.torn = false;
  o.cut_points = block::CutPoints::kMarks;
  block::CrashStateEnumerator en(w.base, kBs, w.trace, o);
  block::CrashState cs, last;
  while (en.Next(&cs)) last = cs;
  ASSERT_FALSE(last.image.empty());
  {
    Checker c;
    EXPECT_EQ(c.CheckOne("final", last.image, w, 2, 2), 2);
    EXPECT_EQ(c.failures, 0u);
  }
  {  // The final state claimed for [0, 1]: a durable op "lost" the other way round.
    Checker c;
    c.quiet = true;
    c.CheckOne("lost", last.image, w, 0, 1);
    EXPECT_EQ(c.failures, 1u);
  }
  {  // The base image (op 0) when op 2 was durable.
    Checker c;
    c.quiet = true;
    c.CheckOne("old", w.base, w, 2, 2);
    EXPECT_EQ(c.failures, 1u);
  }
  {  // A data block of A/foo overwritten: fsck (verify_data) must flag it.
    std::vector<std::uint8_t> img = last.image;
    block::MemBlockDevice dev(img, kBs);
    std::uint64_t blk = 0;
    {
      auto v = volume::Volume::Mount(&dev, MountOpts());
      ASSERT_TRUE(v.ok());
      Filesystem fs(v->get());
      journal::ReadView view((*v)->meta());
      ASSERT_TRUE(fs.chunks()
                      ->ForEach(view,
                                [](void* p, const store::ChunkLocation& l) {
                                  *static_cast<std::uint64_t*>(p) = l.block;
                                  return false;
                                },
                                &blk)
                      .ok());
    }
    ASSERT_NE(blk, 0u);
    img[blk * kBs + 7] ^= 0x40;
    Checker c;
    c.quiet = true;
    c.CheckOne("bitflip", img, w, 0, 2);
    EXPECT_EQ(c.failures, 1u);
  }
}

}  // namespace
}  // namespace permfs::fs
