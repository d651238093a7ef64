// permfs fsck: whole-volume consistency check (fs::Fsck), with e2fsck exit codes.
#include <errno.h>
#include <stdio.h>

#include <string>

#include "fs/fsck.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "tools/image.h"

namespace permfs::tools {

const char kFsckUsage[] =
    "usage: permfs fsck IMAGE [--repair|-y] [-n] [--verify-data] [--json]\n"
    "\n"
    "Checks a PermFS volume: every B+tree node and checksum, the journal, allocation bitmaps\n"
    "against what is referenced, link counts against directory entries, chunk reference\n"
    "counts against chunk maps, and orphans. Without options it replays a committed journal\n"
    "(as a mount would) and reports problems without fixing them.\n"
    "\n"
    "options:\n"
    "  -y, --repair     fix what can be fixed safely (leaked space, wrong counts, orphans,\n"
    "                   dangling entries)\n"
    "  -n, --no-write   open read-only and do not even replay the journal\n"
    "  --verify-data    also read every data chunk and check its SHA-256 against its id\n"
    "  --json           print the report as one JSON object\n"
    "  --progress       show a progress bar even when stderr is not a terminal\n"
    "\n"
    "exit status (as e2fsck): 0 clean, 1 errors corrected, 4 errors left uncorrected,\n"
    "8 operational error (bad arguments exit 2)\n";

namespace {

void FsckProgress(void* ctx, const char* phase, std::uint64_t done, std::uint64_t total) {
  static_cast<Progress*>(ctx)->Update(phase, done, total);
}

}  // namespace

int RunFsck(int argc, char** argv) {
  Args a = ParseArgs(argc, argv,
                     {{"repair", 'y', false},
                      {"no-write", 'n', false},
                      {"verify-data", 0, false},
                      {"json", 0, false},
                      {"progress", 0, false}});
  if (a.help) return PrintHelp(kFsckUsage);
  ExpectPositional(a, 1, 1);
  if (a.Has("repair") && a.Has("no-write")) throw UsageError{"--repair and -n exclude each other"};
  const std::string path = a.pos[0];
  const bool json = a.Has("json");

  fs::FsckOptions opt;
  opt.repair = a.Has("repair");
  opt.read_only = a.Has("no-write");
  opt.verify_data = a.Has("verify-data");
  Progress progress("fsck", a.Has("progress"));
  opt.progress = FsckProgress;
  opt.progress_ctx = &progress;

  fs::FsckReport rep;
  Status st;
  int code = fs::kFsckOperational;
  try {
    auto dev = OpenDevice(path, /*writable=*/!opt.read_only);
    st = fs::Fsck(dev.get(), opt, &rep);
    progress.Finish();
    code = fs::FsckExitCode(st, rep);
  } catch (const Failure& f) {
    // Could not open the image: an operational error, unless the image itself is damaged
    // (an empty or truncated file), which is an uncorrected error like any other damage.
    progress.Finish();
    throw Failure{f.message, f.image_damaged ? fs::kFsckUncorrected : fs::kFsckOperational};
  }

  const char* verdict = code == fs::kFsckClean         ? "clean"
                        : code == fs::kFsckCorrected   ? "errors corrected"
                        : code == fs::kFsckUncorrected ? "errors left uncorrected"
                                                       : "check could not run";
  if (json) {
    Json j;
    j.BeginObject();
    j.Str("image", path);
    j.Int("exit_code", code);
    j.Str("result", verdict);
    if (!st.ok())
      j.Str("error", StatusText(st));
    else
      j.Null("error");
    j.Bool("repair", opt.repair);
    j.Num("errors", rep.errors);
    j.Num("fixed", rep.fixed);
    j.BeginArray("problems");
    for (const std::string& p : rep.problems) j.Str(nullptr, p);
    j.EndArray();
    j.Num("replayed_transactions", rep.replayed_transactions);
    j.Bool("used_superblock_mirror", rep.used_superblock_mirror);
    j.BeginObject("counts");
    j.Num("inodes", rep.inodes);
    j.Num("directories", rep.directories);
    j.Num("regular_files", rep.regular_files);
    j.Num("symlinks", rep.symlinks);
    j.Num("special_files", rep.special_files);
    j.Num("orphans", rep.orphans);
    j.Num("chunks", rep.chunks);
    j.Num("chunk_refs", rep.chunk_refs);
    j.Num("chunk_bytes", rep.chunk_bytes);
    j.Num("logical_bytes", rep.logical_bytes);
    j.Num("tree_nodes", rep.tree_nodes);
    j.Num("total_blocks", rep.total_blocks);
    j.Num("used_blocks", rep.used_blocks);
    j.Num("free_blocks", rep.free_blocks);
    j.EndObject();
    j.EndObject();
    fputs(j.str().c_str(), stdout);
    return code;
  }

  auto ull = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  for (const std::string& p : rep.problems) printf("%s: %s\n", path.c_str(), p.c_str());
  if (rep.errors > rep.problems.size())
    printf("%s: ... and %llu more problems not listed\n", path.c_str(),
           ull(rep.errors - rep.problems.size()));
  if (!st.ok()) {
    // The check could not run to the end (a volume too damaged to mount, or an I/O error).
    if (rep.problems.empty())
      fprintf(stderr, "permfs: fsck: %s: %s\n", path.c_str(), StatusText(st).c_str());
    printf("%s: %s: the check stopped: %s\n", path.c_str(), verdict, StatusText(st).c_str());
    return code;
  }
  if (rep.used_superblock_mirror)
    printf("%s: the primary superblock was damaged; the mirror was used\n", path.c_str());
  if (rep.replayed_transactions)
    printf("%s: journal: %llu committed transaction%s replayed\n", path.c_str(),
           ull(rep.replayed_transactions), rep.replayed_transactions == 1 ? "" : "s");
  printf(
      "%s: %s: %llu inodes (%llu directories, %llu files, %llu symlinks, %llu other), "
      "%llu chunks (%s stored, %s referenced), %llu/%llu blocks used\n",
      path.c_str(), verdict, ull(rep.inodes), ull(rep.directories), ull(rep.regular_files),
      ull(rep.symlinks), ull(rep.special_files), ull(rep.chunks),
      HumanBytes(rep.chunk_bytes).c_str(), HumanBytes(rep.logical_bytes).c_str(),
      ull(rep.used_blocks), ull(rep.total_blocks));
  if (rep.errors || rep.fixed)
    printf("%s: %llu problem%s found, %llu fixed%s\n", path.c_str(), ull(rep.errors),
           rep.errors == 1 ? "" : "s", ull(rep.fixed),
           (!opt.repair && rep.errors) ? " (run with --repair to fix what can be fixed)" : "");
  return code;
}

}  // namespace permfs::tools
