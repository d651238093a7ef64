// permfs: the PermFS command-line tool (mkfs, info, fsck and library-level file commands).
#include <stdio.h>
#include <string.h>

#include <exception>
#include <new>
#include <string>
#include <vector>

#include "format/superblock.h"
#include "tools/cli.h"
#include "tools/commands.h"

#ifndef PERMFS_VERSION
#define PERMFS_VERSION "unknown"
#endif

namespace permfs::tools {
namespace {

const Command kCommands[] = {
    {"mkfs", "make a new PermFS volume on an image file or block device", kMkfsUsage, RunMkfs},
    {"info", "show superblock, geometry, usage, journal and chunk-store state", kInfoUsage,
     RunInfo},
    {"fsck", "check (and with --repair, fix) a volume", kFsckUsage, RunFsck},
    {"mount", "mount a volume through FUSE", kMountUsage, RunMount},
    {"umount", "unmount a FUSE-mounted volume", kUmountUsage, RunUmount},
    {"ls", "list a directory inside an image", kLsUsage, RunLs},
    {"cat", "print files inside an image", kCatUsage, RunCat},
    {"cp", "copy files and trees into or out of an image", kCpUsage, RunCp},
    {"mkdir", "create directories inside an image", kMkdirUsage, RunMkdir},
    {"rm", "remove files or trees inside an image", kRmUsage, RunRm},
    {"mv", "rename inside an image", kMvUsage, RunMv},
    {"ln", "make a symbolic or hard link inside an image", kLnUsage, RunLn},
    {"stat", "show an inode inside an image", kStatUsage, RunStat},
    {"df", "show space and inode usage of a volume", kDfUsage, RunDf},
};

void PrintMainUsage(FILE* out) {
  fprintf(out,
          "usage: permfs COMMAND [ARGS...]\n"
          "       permfs COMMAND --help\n"
          "       permfs --version\n"
          "\n"
          "PermFS volume tool. Commands:\n");
  for (const Command& c : kCommands) fprintf(out, "  %-7s %s\n", c.name, c.summary);
  fprintf(out,
          "\n"
          "Sizes accept K, M, G and T suffixes (binary units). File commands address paths\n"
          "inside an image from its root; cp writes the image side as IMAGE:PATH.\n");
}

std::string FirstLine(const char* text) {
  const char* nl = strchr(text, '\n');
  return nl ? std::string(text, nl) : std::string(text);
}

}  // namespace

const Command* Commands(int* count) {
  *count = static_cast<int>(sizeof kCommands / sizeof kCommands[0]);
  return kCommands;
}

int PrintHelp(const char* usage) {
  fputs(usage, stdout);
  return 0;
}

int Main(int argc, char** argv) {
  // Invoked by mount(8) as a mount helper (`mount -t fuse.permfs IMAGE DIR -o OPTS` runs
  // /sbin/mount.fuse.permfs; a symlink to this binary): behave as `permfs mount`.
  {
    const char* base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    if (!strcmp(base, "mount.fuse.permfs") || !strcmp(base, "mount.permfs")) {
      // mount(8) passes: IMAGE DIR [-sfnv] [-o OPTS] [-t TYPE]; -f means "fake" there.
      std::vector<char*> args;
      bool fake = false;
      for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "-f") fake = true;
        else if (a == "-s" || a == "-n" || a == "-v") continue;
        else if (a == "-t" && i + 1 < argc) ++i;
        else args.push_back(argv[i]);
      }
      if (fake) return 0;
      args.push_back(nullptr);
      return RunMount(static_cast<int>(args.size()) - 1, args.data());
    }
  }
  if (argc < 2) {
    PrintMainUsage(stderr);
    return 2;
  }
  const std::string word = argv[1];
  if (word == "--help" || word == "-h" || word == "help") {
    if (word == "help" && argc > 2) {
      for (const Command& c : kCommands)
        if (argv[2] == std::string(c.name)) return PrintHelp(c.usage);
    }
    PrintMainUsage(stdout);
    return 0;
  }
  if (word == "--version" || word == "-V" || word == "version") {
    printf("permfs %s (on-disk format version %u)\n", PERMFS_VERSION, format::kFormatVersion);
    return 0;
  }
  const Command* cmd = nullptr;
  for (const Command& c : kCommands)
    if (word == c.name) cmd = &c;
  if (!cmd) {
    fprintf(stderr, "permfs: unknown command '%s'\n\n", word.c_str());
    PrintMainUsage(stderr);
    return 2;
  }
  try {
    return cmd->run(argc - 2, argv + 2);
  } catch (const UsageError& e) {
    fprintf(stderr, "permfs: %s: %s\n%s\nTry 'permfs %s --help' for more information.\n", cmd->name,
            e.message.c_str(), FirstLine(cmd->usage).c_str(), cmd->name);
    return 2;
  } catch (const Failure& f) {
    fflush(stdout);
    fprintf(stderr, "permfs: %s: %s\n", cmd->name, f.message.c_str());
    return f.exit_code;
  } catch (const std::bad_alloc&) {
    fprintf(stderr, "permfs: %s: out of memory\n", cmd->name);
    return 1;
  } catch (const std::exception& e) {
    fprintf(stderr, "permfs: %s: %s\n", cmd->name, e.what());
    return 1;
  }
}

}  // namespace permfs::tools

int main(int argc, char** argv) {
  int rc = permfs::tools::Main(argc, argv);
  if (fflush(stdout) != 0) {
    perror("permfs: writing output");
    return rc ? rc : 1;
  }
  return rc;
}
