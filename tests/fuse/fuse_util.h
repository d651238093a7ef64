// Helpers for the FUSE integration tests: every test binary gets the `permfs` binary as its
// first argument (--permfs=PATH), makes its own image in a temporary directory, mounts it with
// `permfs mount IMAGE DIR -f` in a child process, waits until DIR is a FUSE mount, and always
// unmounts (fusermount3 -u) and runs `permfs fsck IMAGE` (expecting exit 0) at the end.
// main() (fuse_main.cc) exits with 77 — CTest SKIP_RETURN_CODE — when /dev/fuse is missing.
// Environment: PERMFS_FUSE_MOUNT_OPTS adds mount options to every mount (the io_uring variants
// use `uring`); PERMFS_FUSE_EXPECT_URING=1 makes Stop() fail unless the daemon served requests
// over io_uring.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace permfs::fusetest {

// Path of the permfs binary (from --permfs=PATH).
const std::string& PermfsBin();

// Runs argv (argv[0] looked up in PATH); stdout+stderr go to *out if given. Returns the exit
// status (128+signal if killed, -1 if it could not run).
int Run(const std::vector<std::string>& argv, std::string* out = nullptr);
// Runs `sh -c cmd`.
int Sh(const std::string& cmd, std::string* out = nullptr);

// Runs fn in a forked child with the given credentials (supplementary groups cleared) and
// returns fn's return value (or 128+signal, or 255 if the credentials could not be set).
int AsUser(std::uint32_t uid, std::uint32_t gid, const std::function<int()>& fn);

// True if `path` is the root of a FUSE mount.
bool IsFuseMount(const std::string& path);

std::uint64_t NowNs();

// /sys/module/fuse/parameters/enable_uring ("Y"/"N"), or "" if the kernel has no such thing.
std::string ReadFuseUringParam();
void WriteFuseUringParam(const std::string& value);

class Mount {
 public:
  // Makes a temporary directory holding `img` (mkfs --size image_size) and `mnt`.
  explicit Mount(const std::string& image_size = "8G", const std::string& mkfs_extra = "");
  ~Mount();  // unmounts if mounted (lazily if it must) and removes the temporary directory
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;

  bool made() const { return made_; }
  const std::string& dir() const { return dir_; }
  const std::string& image() const { return image_; }
  const std::string& mnt() const { return mnt_; }
  std::string path(const std::string& rel) const { return mnt_ + "/" + rel; }
  pid_t daemon() const { return pid_; }
  bool mounted() const { return pid_ > 0; }

  // Starts `permfs mount IMAGE MNT -f -o opts` (opts may be empty) and waits until mounted.
  // Returns false (with the daemon's log in *why) if it did not come up in time.
  bool Start(const std::string& opts, std::string* why);
  // fusermount3 -u (retrying while busy), then waits for the daemon. Returns false with a
  // reason if the unmount failed or the daemon exited non-zero.
  bool Stop(std::string* why);
  // kill -9 the daemon, then detach the dead mount (fusermount3 -u, lazily if needed).
  void Kill9();
  void KillDaemon();  // kill -9 only (the dead mount stays until Detach)
  void Detach();      // fusermount3 -u, or -uz if something still holds it
  // `permfs fsck IMAGE`; returns its exit status and its output in *out.
  int Fsck(std::string* out);
  // The daemon's log so far.
  std::string Log() const;

 private:
  std::string dir_, image_, mnt_, log_;
  pid_t pid_ = -1;
  bool made_ = false;
};

}  // namespace permfs::fusetest
