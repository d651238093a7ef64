// main() of every FUSE integration test binary: `BINARY --permfs=PATH [gtest flags]`.
// Exits 77 (CTest SKIP_RETURN_CODE) with the reason on stdout if /dev/fuse is missing.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "fuse/fuse_gtest.h"

namespace permfs::fusetest {
void SetPermfsBin(const std::string& p);
}

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--permfs=", 9) == 0) permfs::fusetest::SetPermfsBin(argv[i] + 9);
  }
  if (access("/dev/fuse", F_OK) != 0) {
    std::printf("SKIP: /dev/fuse is missing; the FUSE integration tests need it\n");
    return 77;
  }
  int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    std::printf("FAIL: /dev/fuse exists but cannot be opened: %s (run as root)\n",
                std::strerror(errno));
    return 1;
  }
  close(fd);
  return RUN_ALL_TESTS();
}
