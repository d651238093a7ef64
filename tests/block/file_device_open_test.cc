// Opening images: creation, sparseness, size checks, read-only, exclusive locking, backend choice.
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "hosted/file_block_device.h"
#include "hosted/open_device.h"
#include "hosted/uring_block_device.h"

namespace permfs::hosted {
namespace {

class OpenTest : public ::testing::Test {
 protected:
  OpenTest() {
    char buf[128];
    snprintf(buf, sizeof(buf), "/tmp/permfs-opentest-%d-%p", getpid(), static_cast<void*>(this));
    path_ = buf;
  }
  ~OpenTest() override { unlink(path_.c_str()); }
  std::string path_;
};

TEST_F(OpenTest, MissingWithoutCreateIsNotFound) {
  auto r = FileBlockDevice::Open(path_, {});
  EXPECT_EQ(r.status().code(), Code::kNotFound);
}

TEST_F(OpenTest, CreatesSparseImage) {
  constexpr std::uint64_t kSize = 256ull << 20;
  auto r = FileBlockDevice::Open(path_, {.create_size_bytes = kSize});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r.value()->block_count(), kSize / 4096);
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), kSize);
  EXPECT_LT(st.st_blocks * 512, 1 << 20);  // sparse
  std::vector<std::uint8_t> z(4096, 1);
  ASSERT_TRUE(r.value()->Read(1000, 1, z.data()).ok());
  for (auto b : z) ASSERT_EQ(b, 0);
}

TEST_F(OpenTest, SizeAndBlockSizeChecks) {
  int fd = open(path_.c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 4096 * 10 + 512), 0);
  close(fd);
  EXPECT_EQ(FileBlockDevice::Open(path_, {}).status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(FileBlockDevice::Open(path_, {.block_size = 512}).ok());
  EXPECT_EQ(FileBlockDevice::Open(path_, {.block_size = 1000}).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(FileBlockDevice::Open(path_, {.block_size = 256}).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(FileBlockDevice::Open("/dev/null", {}).status().code(), Code::kInvalidArgument);
}

TEST_F(OpenTest, ReadOnlyRefusesWrites) {
  ASSERT_TRUE(FileBlockDevice::Open(path_, {.create_size_bytes = 1 << 20}).ok());
  auto r = FileBlockDevice::Open(path_, {.read_only = true});
  ASSERT_TRUE(r.ok());
  std::vector<std::uint8_t> b(4096);
  EXPECT_EQ(r.value()->Write(0, 1, b.data()).code(), Code::kReadOnly);
  EXPECT_EQ(r.value()->Discard(0, 1).code(), Code::kReadOnly);
  EXPECT_TRUE(r.value()->Read(0, 1, b.data()).ok());
  EXPECT_TRUE(r.value()->capabilities().read_only);
}

TEST_F(OpenTest, ExclusiveOpen) {
  auto a = FileBlockDevice::Open(path_, {.create_size_bytes = 1 << 20});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(FileBlockDevice::Open(path_, {}).status().code(), Code::kBusy);
  EXPECT_EQ(FileBlockDevice::Open(path_, {.read_only = true}).status().code(), Code::kBusy);
  EXPECT_EQ(UringBlockDevice::Open(path_, {}).status().code(), Code::kBusy);
  EXPECT_TRUE(FileBlockDevice::Open(path_, {.exclusive = false}).ok());
  a = Status::Busy("closed");  // drops the device and its lock
  auto b = FileBlockDevice::Open(path_, {});
  EXPECT_TRUE(b.ok());
}

TEST_F(OpenTest, OpenBlockDevicePicksFileForRegularFiles) {
  auto r = OpenBlockDevice(path_, {.create_size_bytes = 1 << 20});
  ASSERT_TRUE(r.ok()) << r.status().message();
  // Core is built without RTTI: tell the backends apart by geometry (file: synchronous, depth 1).
  EXPECT_EQ(r.value()->geometry().queue_depth, 1u);
  r = Status::Busy("closed");
  auto u = OpenBlockDevice(path_, {.backend = Backend::kUring});
  ASSERT_TRUE(u.ok()) << u.status().message();
  EXPECT_EQ(u.value()->geometry().queue_depth, 64u);
  EXPECT_EQ(u.value()->block_count(), 256u);
}

TEST_F(OpenTest, UringUsesDirectIoOnExt4Tmp) {
  auto u = UringBlockDevice::Open(path_, {.create_size_bytes = 1 << 20});
  ASSERT_TRUE(u.ok()) << u.status().message();
  // /tmp is usually ext4/xfs/tmpfs, all of which accept O_DIRECT on recent kernels.
  EXPECT_TRUE(u.value()->direct_io());
  EXPECT_EQ(u.value()->geometry().buffer_alignment, 4096u);
  EXPECT_FALSE(u.value()->is_block_device());
}

TEST_F(OpenTest, UringRejectsBadQueueDepth) {
  EXPECT_EQ(UringBlockDevice::Open(path_, {.create_size_bytes = 1 << 20, .queue_depth = 0})
                .status()
                .code(),
            Code::kInvalidArgument);
}

}  // namespace
}  // namespace permfs::hosted
