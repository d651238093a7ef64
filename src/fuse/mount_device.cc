#include "fuse/mount_device.h"

#include <cstdio>
#include <fstream>
#include <sstream>

namespace permfs::fuse {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>(((s[i + 1] - '0') << 6) | ((s[i + 2] - '0') << 3) | (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

std::optional<MountDevice> FindMountDevice(const std::string& mountpoint) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  std::optional<MountDevice> found;
  while (std::getline(in, line)) {
    // id parent major:minor root mountpoint options ... - fstype source superopts
    std::istringstream fields(line);
    std::string id, parent, devno, root, point;
    if (!(fields >> id >> parent >> devno >> root >> point)) continue;
    if (Unescape(point) != mountpoint) continue;
    MountDevice d;
    if (std::sscanf(devno.c_str(), "%u:%u", &d.major, &d.minor) == 2) found = d;  // the last: on top
  }
  return found;
}

}  // namespace permfs::fuse
