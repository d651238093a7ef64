// The subcommands of the `permfs` tool. Each Run function gets the words after the subcommand
// name, returns the process exit status and throws UsageError / Failure (see cli.h).
#pragma once

namespace permfs::tools {

struct Command {
  const char* name;
  const char* summary;  // one line for `permfs --help`
  const char* usage;    // full text for `permfs <name> --help`; its first line is the synopsis
  int (*run)(int argc, char** argv);
};

// Every subcommand, in the order `permfs --help` lists them.
const Command* Commands(int* count);
// Prints `usage` to stdout for --help.
int PrintHelp(const char* usage);

int RunMkfs(int argc, char** argv);
int RunInfo(int argc, char** argv);
int RunFsck(int argc, char** argv);
int RunLs(int argc, char** argv);
int RunCat(int argc, char** argv);
int RunCp(int argc, char** argv);
int RunMkdir(int argc, char** argv);
int RunRm(int argc, char** argv);
int RunMv(int argc, char** argv);
int RunLn(int argc, char** argv);
int RunStat(int argc, char** argv);
int RunDf(int argc, char** argv);
int RunMount(int argc, char** argv);
int RunUmount(int argc, char** argv);

extern const char kMkfsUsage[];
extern const char kInfoUsage[];
extern const char kFsckUsage[];
extern const char kLsUsage[];
extern const char kCatUsage[];
extern const char kCpUsage[];
extern const char kMkdirUsage[];
extern const char kRmUsage[];
extern const char kMvUsage[];
extern const char kLnUsage[];
extern const char kStatUsage[];
extern const char kDfUsage[];
extern const char kMountUsage[];
extern const char kUmountUsage[];

}  // namespace permfs::tools
