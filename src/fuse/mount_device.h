// Where a mount sits in the kernel: its device number, read from /proc/self/mountinfo. A stat()
// of the mount point would ask the mount's own daemon, which may not be serving yet.
// The device names the mount's backing-device knobs (/sys/class/bdi/MAJOR:MINOR) and its FUSE
// connection (/sys/fs/fuse/connections/N, N being the kernel's dev_t).
// Thread-safety: FindMountDevice is thread-safe.
#pragma once

#include <optional>
#include <string>

namespace permfs::fuse {

struct MountDevice {
  unsigned major = 0;
  unsigned minor = 0;
  std::string BdiName() const { return std::to_string(major) + ":" + std::to_string(minor); }
  unsigned FuseConnection() const { return (major << 20) | minor; }
};

// The newest mount at `mountpoint` (an absolute path with no symlinks: realpath's form).
std::optional<MountDevice> FindMountDevice(const std::string& mountpoint);

}  // namespace permfs::fuse
