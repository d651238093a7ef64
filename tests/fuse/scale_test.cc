// Scale through a real FUSE mount: a 5 GiB sparse file (write at the end, holes read as zeros,
// SEEK_DATA/SEEK_HOLE, tiny allocation) and a directory of 200,000 entries (create, readdir and
// `ls | wc -l`, stat of random names, delete all), with timings printed.
// Environment: PERMFS_SCALE_ENTRIES (default 200000).
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "fuse/fuse_gtest.h"

namespace permfs::fusetest {
namespace {

double Secs(std::uint64_t t0) { return static_cast<double>(NowNs() - t0) / 1e9; }

class Scale : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(MountUp(m_, "")); }
  void TearDown() override { UnmountAndFsck(m_); }
  Mount m_{"8G"};
};

TEST_F(Scale, SparseFileOf5GiB) {
  constexpr off_t kSize = 5ll << 30;
  const std::string f = m_.path("sparse");
  struct statvfs s0;
  ASSERT_EQ(statvfs(m_.mnt().c_str(), &s0), 0);
  int fd = open(f.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  const std::string tail = "the end of a five gibibyte file";
  ASSERT_EQ(pwrite(fd, tail.data(), tail.size(), kSize - static_cast<off_t>(tail.size())),
            static_cast<ssize_t>(tail.size()));
  ASSERT_EQ(pwrite(fd, "middle", 6, kSize / 2), 6);
  ASSERT_EQ(fsync(fd), 0);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, kSize);
  EXPECT_LT(st.st_blocks * 512, 1 << 20) << "du of a sparse file must be small";
  // Holes read as zeros, wherever they are.
  std::vector<char> buf(1 << 20);
  for (off_t off : {off_t{0}, off_t{1} << 30, (off_t{4} << 30) + 12345, kSize / 2 - (1 << 20) - 4096,
                    kSize - (1 << 20) - 4096}) {
    ASSERT_EQ(pread(fd, buf.data(), buf.size(), off), static_cast<ssize_t>(buf.size()));
    EXPECT_EQ(std::count(buf.begin(), buf.end(), '\0'), static_cast<long>(buf.size())) << "at " << off;
  }
  ASSERT_EQ(pread(fd, buf.data(), 100, kSize - static_cast<off_t>(tail.size())),
            static_cast<ssize_t>(tail.size()));
  EXPECT_EQ(std::string(buf.data(), tail.size()), tail);
  ASSERT_EQ(pread(fd, buf.data(), 6, kSize / 2), 6);
  EXPECT_EQ(std::string(buf.data(), 6), "middle");
  EXPECT_EQ(pread(fd, buf.data(), 100, kSize), 0);
  // SEEK_DATA / SEEK_HOLE (data is reported at record granularity at most).
  EXPECT_EQ(lseek(fd, 0, SEEK_HOLE), 0);
  off_t d1 = lseek(fd, 0, SEEK_DATA);
  EXPECT_LE(d1, kSize / 2);
  EXPECT_GE(d1, kSize / 2 - (1 << 20));
  off_t h1 = lseek(fd, kSize / 2, SEEK_HOLE);
  EXPECT_GT(h1, kSize / 2 + 5);
  EXPECT_LE(h1, kSize / 2 + (1 << 20));
  off_t d2 = lseek(fd, h1, SEEK_DATA);
  EXPECT_LE(d2, kSize - static_cast<off_t>(tail.size()));
  EXPECT_GE(d2, kSize - (1 << 20));
  EXPECT_EQ(lseek(fd, d2, SEEK_HOLE), kSize);
  errno = 0;
  EXPECT_EQ(lseek(fd, kSize, SEEK_DATA), -1);
  EXPECT_EQ(errno, ENXIO);
  close(fd);
  struct statvfs s1;
  ASSERT_EQ(statvfs(m_.mnt().c_str(), &s1), 0);
  EXPECT_LT((s0.f_bfree - s1.f_bfree) * s1.f_frsize, 4u << 20) << "space used by a 5 GiB sparse file";
  std::string out;
  ASSERT_EQ(Sh("du -k " + f, &out), 0);
  EXPECT_LT(std::atol(out.c_str()), 1024) << out;
  // After a remount, and shrinking it back to nothing frees everything.
  ASSERT_NO_FATAL_FAILURE(Remount(m_, ""));
  ASSERT_EQ(stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, kSize);
  fd = open(f.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pread(fd, buf.data(), tail.size(), kSize - static_cast<off_t>(tail.size())),
            static_cast<ssize_t>(tail.size()));
  EXPECT_EQ(std::string(buf.data(), tail.size()), tail);
  ASSERT_EQ(ftruncate(fd, 0), 0);
  close(fd);
}

TEST_F(Scale, DirectoryOf200kEntries) {
  const long n = static_cast<long>(std::strtoul(getenv("PERMFS_SCALE_ENTRIES") ? getenv("PERMFS_SCALE_ENTRIES") : "200000", nullptr, 10));
  const std::string dir = m_.path("big");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dfd, 0);
  auto name = [](long i) {
    char b[64];
    snprintf(b, sizeof b, "entry-%07ld-with-a-longer-name", i);
    return std::string(b);
  };
  struct statvfs s0;
  ASSERT_EQ(statvfs(dir.c_str(), &s0), 0);
  std::uint64_t t0 = NowNs();
  for (long i = 0; i < n; ++i) {
    ASSERT_EQ(mknodat(dfd, name(i).c_str(), S_IFREG | 0644, 0), 0) << i << ": " << strerror(errno);
  }
  const double t_create = Secs(t0);
  struct statvfs s1;
  ASSERT_EQ(statvfs(dir.c_str(), &s1), 0);
  // (free inodes are derived from free space, so the count is approximate)
  EXPECT_GT(s0.f_ffree - s1.f_ffree, static_cast<unsigned long>(n) * 9 / 10);

  // readdir: every name exactly once.
  t0 = NowNs();
  DIR* d = opendir(dir.c_str());
  ASSERT_NE(d, nullptr);
  std::vector<char> seen(static_cast<std::size_t>(n), 0);
  long count = 0, dups = 0;
  while (dirent* e = readdir(d)) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    ++count;
    long i = std::strtol(e->d_name + 6, nullptr, 10);
    if (i >= 0 && i < n && name(i) == e->d_name) {
      if (seen[static_cast<std::size_t>(i)]++) ++dups;
    }
  }
  closedir(d);
  const double t_readdir = Secs(t0);
  EXPECT_EQ(count, n);
  EXPECT_EQ(dups, 0);
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), n);
  t0 = NowNs();
  std::string out;
  ASSERT_EQ(Sh("ls " + dir + " | wc -l", &out), 0);
  const double t_ls = Secs(t0);
  EXPECT_EQ(std::atol(out.c_str()), n);

  // stat random names (and some missing ones).
  std::mt19937_64 rng(42);
  t0 = NowNs();
  for (int k = 0; k < 5000; ++k) {
    const long i = static_cast<long>(rng() % static_cast<std::uint64_t>(n));
    struct stat st;
    ASSERT_EQ(fstatat(dfd, name(i).c_str(), &st, 0), 0) << name(i);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    if (k % 10 == 0) {
      errno = 0;
      EXPECT_EQ(fstatat(dfd, name(n + i).c_str(), &st, 0), -1);
      EXPECT_EQ(errno, ENOENT);
    }
  }
  const double t_stat = Secs(t0);

  // Delete everything, then the directory.
  t0 = NowNs();
  for (long i = 0; i < n; ++i) {
    ASSERT_EQ(unlinkat(dfd, name(i).c_str(), 0), 0) << i << ": " << strerror(errno);
  }
  const double t_unlink = Secs(t0);
  close(dfd);
  d = opendir(dir.c_str());
  ASSERT_NE(d, nullptr);
  count = 0;
  while (dirent* e = readdir(d)) count += e->d_name[0] != '.';
  closedir(d);
  EXPECT_EQ(count, 0);
  EXPECT_EQ(rmdir(dir.c_str()), 0) << strerror(errno);
  struct statvfs s2;
  ASSERT_EQ(statvfs(m_.mnt().c_str(), &s2), 0);
  EXPECT_GE(s2.f_ffree, s0.f_ffree) << "inodes not returned after deleting every entry";
  std::printf("200k directory (%ld entries): create %.1f s (%.0f/s), readdir %.2f s, ls|wc %.2f s, "
              "5000 stats %.2f s, unlink %.1f s (%.0f/s)\n",
              n, t_create, static_cast<double>(n) / t_create, t_readdir, t_ls, t_stat, t_unlink,
              static_cast<double>(n) / t_unlink);
}

}  // namespace
}  // namespace permfs::fusetest
