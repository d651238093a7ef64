// Contract tests run against every BlockDevice backend: RAM, file, io_uring on a file (O_DIRECT)
// and io_uring on a real loop device.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "block/mem_block_device.h"
#include "hosted/file_block_device.h"
#include "hosted/open_device.h"
#include "hosted/uring_block_device.h"

namespace permfs::block {
namespace {

using hosted::FileBlockDevice;
using hosted::UringBlockDevice;

constexpr std::uint32_t kBs = 4096;
constexpr std::uint64_t kBlocks = 1024;  // 4 MiB

std::string TempPath(const char* tag) {
  char buf[256];
  snprintf(buf, sizeof(buf), "/tmp/permfs-blocktest-%s-%d-XXXXXX", tag, getpid());
  int fd = mkstemp(buf);
  if (fd >= 0) {
    close(fd);
    unlink(buf);
  }
  return buf;
}

std::string Run(const std::string& cmd, int* status) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) {
    *status = -1;
    return out;
  }
  char buf[256];
  while (fgets(buf, sizeof(buf), f)) out += buf;
  *status = pclose(f);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

// A real loop device over a temp image; empty path() if unavailable.
class LoopDevice {
 public:
  explicit LoopDevice(std::uint64_t bytes) {
    if (geteuid() != 0) {
      why_ = "not root";
      return;
    }
    if (access("/dev/loop-control", F_OK) != 0) {
      why_ = "/dev/loop-control missing";
      return;
    }
    image_ = TempPath("loopimg");
    int fd = open(image_.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      why_ = "cannot create loop image";
      if (fd >= 0) close(fd);
      return;
    }
    close(fd);
    int st = 0;
    std::string dev = Run("losetup --find --show " + image_ + " 2>/dev/null", &st);
    if (st != 0 || dev.rfind("/dev/", 0) != 0) {
      why_ = "losetup failed (no free loop device?)";
      return;
    }
    dev_ = dev;
  }
  ~LoopDevice() {
    int st = 0;
    if (!dev_.empty()) Run("losetup -d " + dev_, &st);
    if (!image_.empty()) unlink(image_.c_str());
  }
  const std::string& path() const { return dev_; }
  const std::string& why() const { return why_; }

 private:
  std::string image_, dev_, why_;
};

enum class Backend { kMem, kFile, kUringFile, kUringLoop };

struct Env {
  std::unique_ptr<BlockDevice> dev;
  std::string path;
  std::unique_ptr<LoopDevice> loop;
};

class DeviceContract : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    switch (GetParam()) {
      case Backend::kMem:
        env_.dev = std::make_unique<MemBlockDevice>(kBlocks, kBs);
        break;
      case Backend::kFile: {
        env_.path = TempPath("file");
        auto r = FileBlockDevice::Open(env_.path, {.block_size = kBs,
                                                   .create_size_bytes = kBlocks * kBs});
        ASSERT_TRUE(r.ok()) << r.status().message();
        env_.dev = std::move(r).value();
        break;
      }
      case Backend::kUringFile: {
        env_.path = TempPath("uring");
        auto r = UringBlockDevice::Open(env_.path, {.block_size = kBs,
                                                    .create_size_bytes = kBlocks * kBs,
                                                    .queue_depth = 8});
        ASSERT_TRUE(r.ok()) << r.status().message();
        env_.dev = std::move(r).value();
        break;
      }
      case Backend::kUringLoop: {
        env_.loop = std::make_unique<LoopDevice>(kBlocks * kBs);
        if (env_.loop->path().empty())
          GTEST_SKIP() << "no loop device: " << env_.loop->why();
        auto r = hosted::OpenBlockDevice(env_.loop->path(), {.block_size = kBs});
        ASSERT_TRUE(r.ok()) << r.status().message();
        EXPECT_EQ(r.value()->geometry().queue_depth, 64u);  // kAuto chose io_uring
        env_.dev = std::move(r).value();
        break;
      }
    }
  }
  void TearDown() override {
    env_.dev.reset();
    if (!env_.path.empty()) unlink(env_.path.c_str());
    env_.loop.reset();
  }
  BlockDevice* dev() { return env_.dev.get(); }

  Env env_;
};

std::vector<std::uint8_t> Pattern(std::uint32_t blocks, std::uint32_t salt) {
  std::vector<std::uint8_t> v(static_cast<std::size_t>(blocks) * kBs);
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<std::uint8_t>((i * 131 + salt * 7 + i / kBs) & 0xff);
  return v;
}

TEST_P(DeviceContract, Geometry) {
  EXPECT_EQ(dev()->block_size(), kBs);
  EXPECT_EQ(dev()->block_count(), kBlocks);
  EXPECT_GE(dev()->geometry().max_transfer_blocks, 256u);
}

TEST_P(DeviceContract, ReadWriteRoundTrip) {
  for (std::uint32_t n : {1u, 3u, 17u, 256u}) {
    auto w = Pattern(n, n);
    const std::uint64_t lba = (n * 37) % (kBlocks - n);
    ASSERT_TRUE(dev()->Write(lba, n, w.data()).ok());
    std::vector<std::uint8_t> r(w.size());
    ASSERT_TRUE(dev()->Read(lba, n, r.data()).ok());
    EXPECT_EQ(r, w) << n;
  }
  // Unaligned buffers (io_uring bounces them).
  auto w = Pattern(5, 99);
  std::vector<std::uint8_t> wbuf(w.size() + 1), rbuf(w.size() + 1);
  std::memcpy(wbuf.data() + 1, w.data(), w.size());
  ASSERT_TRUE(dev()->Write(kBlocks - 5, 5, wbuf.data() + 1).ok());
  ASSERT_TRUE(dev()->Read(kBlocks - 5, 5, rbuf.data() + 1).ok());
  EXPECT_EQ(0, std::memcmp(rbuf.data() + 1, w.data(), w.size()));
}

TEST_P(DeviceContract, BadRequestsAreRefused) {
  std::vector<std::uint8_t> buf(2 * kBs);
  EXPECT_EQ(dev()->Read(kBlocks, 1, buf.data()).code(), Code::kInvalidArgument);
  EXPECT_EQ(dev()->Write(kBlocks - 1, 2, buf.data()).code(), Code::kInvalidArgument);
  EXPECT_EQ(dev()->Read(0, 0, buf.data()).code(), Code::kInvalidArgument);
  EXPECT_EQ(dev()->Read(0, 1, nullptr).code(), Code::kInvalidArgument);
  EXPECT_EQ(dev()->Discard(kBlocks, 1).code(), Code::kInvalidArgument);
  EXPECT_EQ(dev()->WriteZeroes(~0ull, 2).code(), Code::kInvalidArgument);
  const std::uint32_t too_big = dev()->geometry().max_transfer_blocks + 1;
  std::vector<std::uint8_t> big(static_cast<std::size_t>(too_big) * kBs);
  EXPECT_EQ(dev()->Read(0, too_big, big.data()).code(), Code::kInvalidArgument);
}

struct AsyncCounter {
  std::atomic<int> done{0};
  std::atomic<int> failed{0};
};

void CountCompletion(Request* req, Status st) {
  auto* c = static_cast<AsyncCounter*>(req->context);
  if (!st.ok()) c->failed.fetch_add(1);
  c->done.fetch_add(1);
}

TEST_P(DeviceContract, ConcurrentSubmissionsWithCallbacks) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 64;
  AsyncCounter counter;
  std::vector<std::vector<std::uint8_t>> bufs(kThreads * kPerThread);
  std::vector<Request> reqs(kThreads * kPerThread);
  std::vector<std::thread> th;
  for (int t = 0; t < kThreads; ++t) {
    th.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int k = t * kPerThread + i;
        bufs[k] = Pattern(2, static_cast<std::uint32_t>(k));
        Request& r = reqs[k];
        r.op = Op::kWrite;
        r.lba = static_cast<std::uint64_t>(k) * 2;
        r.count = 2;
        r.data = bufs[k].data();
        r.on_complete = &CountCompletion;
        r.context = &counter;
        dev()->Submit(&r);
      }
    });
  }
  for (auto& x : th) x.join();
  while (counter.done.load() < kThreads * kPerThread) std::this_thread::yield();
  EXPECT_EQ(counter.failed.load(), 0);
  ASSERT_TRUE(dev()->Flush().ok());
  for (int k = 0; k < kThreads * kPerThread; ++k) {
    std::vector<std::uint8_t> r(2 * kBs);
    ASSERT_TRUE(dev()->Read(static_cast<std::uint64_t>(k) * 2, 2, r.data()).ok());
    ASSERT_EQ(r, bufs[k]) << k;
  }
}

TEST_P(DeviceContract, FlushAfterWritesAndFua) {
  // A flush submitted after completed writes succeeds, and data is intact afterwards.
  auto a = Pattern(4, 1);
  ASSERT_TRUE(dev()->Write(10, 4, a.data()).ok());
  ASSERT_TRUE(dev()->Flush().ok());
  auto b = Pattern(3, 2);
  ASSERT_TRUE(dev()->Write(20, 3, b.data(), kFua).ok());
  std::vector<std::uint8_t> r(a.size());
  ASSERT_TRUE(dev()->Read(10, 4, r.data()).ok());
  EXPECT_EQ(r, a);
  r.resize(b.size());
  ASSERT_TRUE(dev()->Read(20, 3, r.data()).ok());
  EXPECT_EQ(r, b);
  // Interleaved async writes and flushes all complete OK.
  AsyncCounter counter;
  std::vector<Request> reqs(40);
  auto c = Pattern(1, 3);
  for (int i = 0; i < 40; ++i) {
    Request& q = reqs[i];
    q.op = i % 5 == 4 ? Op::kFlush : Op::kWrite;
    q.lba = 100 + static_cast<std::uint64_t>(i);
    q.count = q.op == Op::kFlush ? 0 : 1;
    q.data = c.data();
    q.on_complete = &CountCompletion;
    q.context = &counter;
    dev()->Submit(&q);
  }
  while (counter.done.load() < 40) std::this_thread::yield();
  EXPECT_EQ(counter.failed.load(), 0);
}

TEST_P(DeviceContract, DiscardAndWriteZeroes) {
  auto a = Pattern(8, 5);
  ASSERT_TRUE(dev()->Write(200, 8, a.data()).ok());
  ASSERT_TRUE(dev()->WriteZeroes(201, 2).ok());
  std::vector<std::uint8_t> r(a.size());
  ASSERT_TRUE(dev()->Read(200, 8, r.data()).ok());
  EXPECT_EQ(0, std::memcmp(r.data(), a.data(), kBs));
  for (std::size_t i = kBs; i < 3 * kBs; ++i) ASSERT_EQ(r[i], 0) << i;
  EXPECT_EQ(0, std::memcmp(r.data() + 3 * kBs, a.data() + 3 * kBs, 5 * kBs));

  ASSERT_TRUE(dev()->Discard(204, 3).ok());
  ASSERT_TRUE(dev()->Read(200, 8, r.data()).ok());
  for (int b = 4; b < 7; ++b) {
    bool zero = true;
    for (std::size_t i = 0; i < kBs; ++i) zero &= r[b * kBs + i] == 0;
    bool old = std::memcmp(r.data() + b * kBs, a.data() + b * kBs, kBs) == 0;
    EXPECT_TRUE(zero || old) << "discarded block " << b << " holds neither zeros nor old data";
  }
  EXPECT_EQ(0, std::memcmp(r.data() + 7 * kBs, a.data() + 7 * kBs, kBs));
}

INSTANTIATE_TEST_SUITE_P(Backends, DeviceContract,
                         ::testing::Values(Backend::kMem, Backend::kFile, Backend::kUringFile,
                                           Backend::kUringLoop),
                         [](const ::testing::TestParamInfo<Backend>& i) {
                           switch (i.param) {
                             case Backend::kMem: return std::string("Mem");
                             case Backend::kFile: return std::string("File");
                             case Backend::kUringFile: return std::string("UringFile");
                             default: return std::string("UringLoop");
                           }
                         });

}  // namespace
}  // namespace permfs::block
