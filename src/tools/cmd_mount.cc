// permfs mount / permfs umount: thin wrappers over the FUSE adapter (src/fuse/fuse_adapter.h).
#include <string>
#include <vector>

#include "fuse/fuse_adapter.h"
#include "tools/commands.h"

namespace permfs::tools {

const char kMountUsage[] =
    "usage: permfs mount IMAGE MOUNTPOINT [-o OPTIONS] [-f|--foreground] [-d]\n"
    "\n"
    "Mounts a PermFS volume through FUSE. The journal is replayed first; a damaged volume is\n"
    "refused with a message that names `permfs fsck`. Without -f the daemon detaches once the\n"
    "mount is up. SIGTERM (or SIGINT, SIGHUP), `permfs umount MOUNTPOINT` or `fusermount3 -u\n"
    "MOUNTPOINT` unmount cleanly: everything written is made durable (also what the kernel still\n"
    "caches for descriptors left open) and the next mount replays nothing.\n"
    "\n"
    "Options (-o, comma separated):\n"
    "  ro / rw              read-only or read-write (default rw)\n"
    "  sync                 every write is promoted and committed before it returns\n"
    "  noatime, relatime    accepted; atime is never updated on read (noatime semantics)\n"
    "  allow_other          let other users access the mount (needs user_allow_other or root)\n"
    "  hot_tier_mb=N        memory budget for unpromoted writes (default 256)\n"
    "  idle_flush_ms=N      promote data idle this long (default 5000)\n"
    "  no_writeback_cache   disable the kernel writeback cache (default on)\n"
    "  threads=N            FUSE worker threads (default 8)\n"
    "  other options are passed to libfuse (fsname=, max_read=, ...)\n"
    "  -f, --foreground     stay in the foreground;  -d  debug (implies -f)\n";

const char kUmountUsage[] =
    "usage: permfs umount MOUNTPOINT\n"
    "\n"
    "Unmounts a PermFS FUSE mount (fusermount3 -u); the daemon then makes everything durable.\n";

namespace {
int WithProgramName(int argc, char** argv, int (*fn)(int, char**), const char* name) {
  std::vector<std::string> args = {std::string("permfs ") + name};
  for (int i = 0; i < argc; ++i) args.emplace_back(argv[i]);
  std::vector<char*> ptrs;
  for (std::string& s : args) ptrs.push_back(s.data());
  ptrs.push_back(nullptr);
  return fn(static_cast<int>(args.size()), ptrs.data());
}
bool WantsHelp(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") return true;
  }
  return false;
}
}  // namespace

int RunMount(int argc, char** argv) {
  if (WantsHelp(argc, argv)) return PrintHelp(kMountUsage);
  return WithProgramName(argc, argv, &fuse::MountMain, "mount");
}

int RunUmount(int argc, char** argv) {
  if (WantsHelp(argc, argv)) return PrintHelp(kUmountUsage);
  return WithProgramName(argc, argv, &fuse::UmountMain, "umount");
}

}  // namespace permfs::tools
