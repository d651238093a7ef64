// GoogleTest glue for the FUSE integration tests (see fuse_util.h).
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "fuse/fuse_util.h"

namespace permfs::fusetest {

// Makes and mounts; use as ASSERT_NO_FATAL_FAILURE(MountUp(m, "allow_other")).
inline void MountUp(Mount& m, const std::string& opts) {
  ASSERT_TRUE(m.made()) << "mkfs failed";
  std::string why;
  ASSERT_TRUE(m.Start(opts, &why)) << why;
}

// Unmounts cleanly (daemon exit 0) and expects `permfs fsck` exit 0.
inline void UnmountAndFsck(Mount& m) {
  std::string why;
  EXPECT_TRUE(m.Stop(&why)) << why;
  std::string out;
  EXPECT_EQ(m.Fsck(&out), 0) << out;
}

// Remounts with the same options (clean unmount in between).
inline void Remount(Mount& m, const std::string& opts) {
  std::string why;
  ASSERT_TRUE(m.Stop(&why)) << why;
  ASSERT_TRUE(m.Start(opts, &why)) << why;
}

}  // namespace permfs::fusetest
