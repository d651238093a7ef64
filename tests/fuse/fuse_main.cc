// main() of every FUSE integration test binary: `BINARY --permfs=PATH [gtest flags]`.
// Exits 77 (CTest SKIP_RETURN_CODE) with the reason on stdout if /dev/fuse is missing, or if
// PERMFS_FUSE_EXPECT_URING is set (the io_uring variants) and the kernel has no FUSE over io_uring.
// Those variants turn fuse.enable_uring on through `-o uring`; main() puts it back as it was.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "fuse/fuse_gtest.h"
#include "fuse/fuse_util.h"

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
  std::string saved_uring = permfs::fusetest::ReadFuseUringParam();
  if (getenv("PERMFS_FUSE_EXPECT_URING") && saved_uring.empty()) {
    std::printf("SKIP: this kernel has no FUSE over io_uring (Linux 6.14+, CONFIG_FUSE_IO_URING)\n");
    return 77;
  }
  int rc = RUN_ALL_TESTS();
  if (!saved_uring.empty()) permfs::fusetest::WriteFuseUringParam(saved_uring);
  return rc;
}
