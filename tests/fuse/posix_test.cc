// POSIX behaviour, errnos and permission rules through a real FUSE mount (-o allow_other).
// One mount for the suite; each test works in its own directory. Run as root; permission tests
// fork children that drop to uid/gid 65534 (nobody) or 1000.
#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fuse/fuse_gtest.h"

namespace permfs::fusetest {
namespace {

constexpr const char* kOpts = "allow_other";
constexpr std::uint32_t kNobody = 65534;

#define EXPECT_ERRNO(expr, err)                                                     \
  do {                                                                              \
    errno = 0;                                                                      \
    long _r = static_cast<long>(expr);                                              \
    int _e = errno;                                                                 \
    EXPECT_EQ(_r, -1) << #expr;                                                     \
    EXPECT_EQ(_e, err) << #expr << ": got " << strerrorname_np(_e) << ", expected " \
                       << strerrorname_np(err);                                     \
  } while (0)

#define EXPECT_OK(expr)                                                          \
  do {                                                                           \
    errno = 0;                                                                   \
    long _r = static_cast<long>(expr);                                           \
    EXPECT_GE(_r, 0) << #expr << ": " << strerrorname_np(errno) << " " << errno; \
  } while (0)

// In a forked child: 0 if expr succeeded, else errno.
#define CHILD_ERRNO(expr) ((expr) < 0 ? errno : 0)

Mount* g_mount = nullptr;

class Posix : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_mount = new Mount("8G");
    std::string why;
    if (!g_mount->made() || !g_mount->Start(kOpts, &why)) {
      std::fprintf(stderr, "mount failed: %s\n", why.c_str());
      delete g_mount;
      g_mount = nullptr;
    }
  }
  static void TearDownTestSuite() {
    if (!g_mount) return;
    UnmountAndFsck(*g_mount);
    delete g_mount;
    g_mount = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(g_mount, nullptr) << "the suite's mount failed";
    ASSERT_TRUE(g_mount->mounted());
    d_ = g_mount->path(::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_EQ(mkdir(d_.c_str(), 0755), 0) << strerror(errno);
  }
  std::string P(const std::string& rel) const { return d_ + "/" + rel; }
  void WriteFile(const std::string& rel, const std::string& data, mode_t mode = 0644) {
    int fd = open(P(rel).c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode);
    ASSERT_GE(fd, 0) << rel << ": " << strerror(errno);
    ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    ASSERT_EQ(close(fd), 0);
  }
  std::string ReadFile(const std::string& rel) {
    std::string out;
    int fd = open(P(rel).c_str(), O_RDONLY);
    if (fd < 0) return "<open failed: " + std::string(strerror(errno)) + ">";
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    close(fd);
    return out;
  }
  struct stat Stat(const std::string& rel) {
    struct stat st;
    memset(&st, 0, sizeof st);
    EXPECT_EQ(lstat(P(rel).c_str(), &st), 0) << rel << ": " << strerror(errno);
    return st;
  }
  void DoRemount() { ASSERT_NO_FATAL_FAILURE(Remount(*g_mount, kOpts)); }
  std::string d_;
};

std::string Pattern(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::uint32_t x = seed * 2654435761u + 12345;
  for (std::size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

// ---- open flags ----------------------------------------------------------------------------

TEST_F(Posix, OpenCreateExclusive) {
  int fd = open(P("f").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  close(fd);
  EXPECT_ERRNO(open(P("f").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600), EEXIST);
  ASSERT_EQ(symlink("nowhere", P("dangling").c_str()), 0);
  EXPECT_ERRNO(open(P("dangling").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600), EEXIST);
  ASSERT_EQ(mkdir(P("dir").c_str(), 0755), 0);
  EXPECT_ERRNO(open(P("dir").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600), EEXIST);
  // O_CREAT without O_EXCL opens the existing file and keeps its content.
  WriteFile("g", "keep");
  fd = open(P("g").c_str(), O_CREAT | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  close(fd);
  EXPECT_EQ(ReadFile("g"), "keep");
  EXPECT_EQ(Stat("f").st_mode & 07777, 0600u);
}

TEST_F(Posix, OpenTruncate) {
  WriteFile("f", Pattern(200000, 1));
  struct stat before = Stat("f");
  usleep(20000);
  int fd = open(P("f").c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 0);
  ASSERT_EQ(write(fd, "xy", 2), 2);
  close(fd);
  EXPECT_EQ(ReadFile("f"), "xy");
  struct stat after = Stat("f");
  EXPECT_TRUE(after.st_mtim.tv_sec > before.st_mtim.tv_sec ||
              (after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
               after.st_mtim.tv_nsec > before.st_mtim.tv_nsec));
  // O_TRUNC with O_RDWR.
  WriteFile("g", "abc");
  fd = open(P("g").c_str(), O_RDWR | O_TRUNC);
  ASSERT_GE(fd, 0);
  close(fd);
  EXPECT_EQ(Stat("g").st_size, 0);
  // The old contents are gone from the volume, not only from the kernel's cache: extending the
  // file again must read zeros where they were, and a remount must see the new size.
  WriteFile("h", Pattern(200000, 2));
  fd = open(P("h").c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "z", 1, 1 << 20), 1);
  close(fd);
  const std::string want_h = std::string(1 << 20, '\0') + "z";
  EXPECT_TRUE(ReadFile("h") == want_h) << "old contents came back after O_TRUNC";
  DoRemount();
  EXPECT_EQ(ReadFile("f"), "xy");
  EXPECT_EQ(Stat("g").st_size, 0);
  EXPECT_TRUE(ReadFile("h") == want_h) << "old contents came back after O_TRUNC and a remount";
}

TEST_F(Posix, AppendFromTwoProcesses) {
  constexpr int kRecs = 1500, kLen = 100;
  WriteFile("log", "");
  auto appender = [&](char tag) {
    int fd = open(P("log").c_str(), O_WRONLY | O_APPEND);
    if (fd < 0) return 1;
    for (int i = 0; i < kRecs; ++i) {
      char rec[kLen];
      memset(rec, tag, sizeof rec);
      snprintf(rec, 20, "%c%08d", tag, i);
      rec[9] = tag;
      rec[kLen - 1] = '\n';
      if (write(fd, rec, kLen) != kLen) return 2;
    }
    return close(fd) == 0 ? 0 : 3;
  };
  std::fflush(nullptr);
  pid_t a = fork();
  if (a == 0) _exit(appender('A'));
  pid_t b = fork();
  if (b == 0) _exit(appender('B'));
  int sa = 0, sb = 0;
  waitpid(a, &sa, 0);
  waitpid(b, &sb, 0);
  ASSERT_TRUE(WIFEXITED(sa) && WEXITSTATUS(sa) == 0);
  ASSERT_TRUE(WIFEXITED(sb) && WEXITSTATUS(sb) == 0);
  std::string all = ReadFile("log");
  ASSERT_EQ(all.size(), static_cast<std::size_t>(2 * kRecs * kLen));
  int next[2] = {0, 0};
  for (std::size_t off = 0; off < all.size(); off += kLen) {
    char tag = all[off];
    ASSERT_TRUE(tag == 'A' || tag == 'B') << "garbage at " << off;
    int i = atoi(all.substr(off + 1, 8).c_str());
    ASSERT_EQ(i, next[tag - 'A']) << "record order/loss for " << tag << " at " << off;
    next[tag - 'A']++;
    for (int k = 10; k < kLen - 1; ++k) ASSERT_EQ(all[off + k], tag) << "torn record at " << off;
  }
  EXPECT_EQ(next[0], kRecs);
  EXPECT_EQ(next[1], kRecs);
  // O_APPEND ignores the offset of pwrite? (Linux: pwrite on O_APPEND appends.)
  int fd = open(P("log").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "Z", 1, 0), 1);
  close(fd);
  all = ReadFile("log");
  EXPECT_EQ(all.back(), 'Z');
  EXPECT_EQ(all[0] == 'A' || all[0] == 'B', true);
}

TEST_F(Posix, DirectIo) {
  constexpr std::size_t kLen = 1 << 20;
  void* buf = nullptr;
  ASSERT_EQ(posix_memalign(&buf, 4096, kLen), 0);
  std::unique_ptr<void, decltype(&free)> hold(buf, &free);
  std::string pat = Pattern(kLen, 7);
  memcpy(buf, pat.data(), kLen);
  int fd = open(P("d").c_str(), O_CREAT | O_RDWR | O_DIRECT, 0644);
  ASSERT_GE(fd, 0) << strerror(errno);
  ASSERT_EQ(pwrite(fd, buf, kLen, 0), static_cast<ssize_t>(kLen));
  ASSERT_EQ(pwrite(fd, buf, 4096, 8 << 20), 4096);
  memset(buf, 0, kLen);
  ASSERT_EQ(pread(fd, buf, kLen, 0), static_cast<ssize_t>(kLen));
  EXPECT_EQ(memcmp(buf, pat.data(), kLen), 0);
  ASSERT_EQ(pread(fd, buf, 8192, 8 << 20), 4096);  // short at EOF
  EXPECT_EQ(memcmp(buf, pat.data(), 4096), 0);
  close(fd);
  std::string all = ReadFile("d");  // buffered read sees the direct writes
  ASSERT_EQ(all.size(), (8u << 20) + 4096);
  EXPECT_EQ(all.compare(0, kLen, pat), 0);
  EXPECT_EQ(all.compare(8u << 20, 4096, pat.substr(0, 4096)), 0);
  EXPECT_EQ(all.find_first_not_of('\0', kLen), 8u << 20);
  // Buffered writes still in the page cache of another descriptor (no close, no fsync) are
  // seen by an O_DIRECT read, and an O_DIRECT write by a later buffered read.
  int bfd = open(P("c").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(bfd, 0);
  ASSERT_EQ(pwrite(bfd, pat.data(), 131072, 0), 131072);
  int dfd = open(P("c").c_str(), O_RDWR | O_DIRECT);
  ASSERT_GE(dfd, 0);
  memset(buf, 0, kLen);
  ASSERT_EQ(pread(dfd, buf, kLen, 0), 131072);
  EXPECT_EQ(memcmp(buf, pat.data(), 131072), 0);
  memset(buf, 'Z', 4096);
  ASSERT_EQ(pwrite(dfd, buf, 4096, 4096), 4096);
  char z[2] = {0, 0};
  ASSERT_EQ(pread(bfd, z, 2, 8191), 2);
  EXPECT_EQ(z[0], 'Z');
  EXPECT_EQ(z[1], pat[8192]);
  close(dfd);
  close(bfd);
  // Buffered write, then a direct read sees it.
  WriteFile("b", pat);
  fd = open(P("b").c_str(), O_RDONLY | O_DIRECT);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pread(fd, buf, kLen, 0), static_cast<ssize_t>(kLen));
  EXPECT_EQ(memcmp(buf, pat.data(), kLen), 0);
  close(fd);
}

// ---- errnos ---------------------------------------------------------------------------------

TEST_F(Posix, Errnos) {
  WriteFile("file", "x");
  ASSERT_EQ(mkdir(P("dir").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("dir/sub").c_str(), 0755), 0);
  WriteFile("dir/sub/f", "y");
  struct stat st;
  EXPECT_ERRNO(stat(P("missing").c_str(), &st), ENOENT);
  EXPECT_ERRNO(open(P("missing").c_str(), O_RDONLY), ENOENT);
  EXPECT_ERRNO(open(P("nodir/x").c_str(), O_CREAT | O_WRONLY, 0644), ENOENT);
  EXPECT_ERRNO(unlink(P("missing").c_str()), ENOENT);
  EXPECT_ERRNO(rename(P("missing").c_str(), P("x").c_str()), ENOENT);
  EXPECT_ERRNO(stat(P("file/x").c_str(), &st), ENOTDIR);
  EXPECT_ERRNO(mkdir(P("file/x").c_str(), 0755), ENOTDIR);
  EXPECT_ERRNO(rmdir(P("file").c_str()), ENOTDIR);
  EXPECT_ERRNO(open(P("file").c_str(), O_RDONLY | O_DIRECTORY), ENOTDIR);
  EXPECT_ERRNO(open(P("dir").c_str(), O_WRONLY), EISDIR);
  EXPECT_ERRNO(unlink(P("dir").c_str()), EISDIR);
  EXPECT_ERRNO(rmdir(P("dir").c_str()), ENOTEMPTY);
  EXPECT_ERRNO(mkdir(P("dir").c_str(), 0755), EEXIST);
  EXPECT_ERRNO(mkdir(P("file").c_str(), 0755), EEXIST);
  EXPECT_ERRNO(link(P("file").c_str(), P("dir").c_str()), EEXIST);
  EXPECT_ERRNO(symlink("t", P("file").c_str()), EEXIST);
  EXPECT_ERRNO(mknod(P("file").c_str(), S_IFIFO | 0644, 0), EEXIST);
  EXPECT_ERRNO(link(P("dir").c_str(), P("dirlink").c_str()), EPERM);
  // Rename type mismatches and directory loops.
  ASSERT_EQ(mkdir(P("empty").c_str(), 0755), 0);
  EXPECT_ERRNO(rename(P("file").c_str(), P("empty").c_str()), EISDIR);
  EXPECT_ERRNO(rename(P("empty").c_str(), P("file").c_str()), ENOTDIR);
  EXPECT_ERRNO(rename(P("empty").c_str(), P("dir").c_str()), ENOTEMPTY);
  EXPECT_ERRNO(rename(P("dir").c_str(), P("dir/sub/inside").c_str()), EINVAL);
  EXPECT_ERRNO(rename(P("dir").c_str(), P("dir/inside").c_str()), EINVAL);
  EXPECT_ERRNO(rmdir(P("dir/.").c_str()), EINVAL);
  // Names: 255 bytes fine, 256 bytes ENAMETOOLONG for every call that takes a name.
  const std::string n255(255, 'a'), n256(256, 'b');
  int fd = open(P(n255).c_str(), O_CREAT | O_WRONLY, 0644);
  EXPECT_GE(fd, 0) << strerror(errno);
  if (fd >= 0) close(fd);
  EXPECT_EQ(Stat(n255).st_size, 0);
  EXPECT_ERRNO(open(P(n256).c_str(), O_CREAT | O_WRONLY, 0644), ENAMETOOLONG);
  EXPECT_ERRNO(stat(P(n256).c_str(), &st), ENAMETOOLONG);
  EXPECT_ERRNO(mkdir(P(n256).c_str(), 0755), ENAMETOOLONG);
  EXPECT_ERRNO(symlink("t", P(n256).c_str()), ENAMETOOLONG);
  EXPECT_ERRNO(link(P("file").c_str(), P(n256).c_str()), ENAMETOOLONG);
  EXPECT_ERRNO(rename(P("file").c_str(), P(n256).c_str()), ENAMETOOLONG);
  EXPECT_ERRNO(mknod(P(n256).c_str(), S_IFIFO | 0644, 0), ENAMETOOLONG);
  EXPECT_ERRNO(unlink(P(n256).c_str()), ENAMETOOLONG);
  // Multi-byte name of 255 bytes (85 three-byte characters).
  std::string utf;
  for (int i = 0; i < 85; ++i) utf += "\xe2\x82\xac";
  fd = open(P(utf).c_str(), O_CREAT | O_WRONLY, 0644);
  EXPECT_GE(fd, 0) << strerror(errno);
  if (fd >= 0) close(fd);
  EXPECT_ERRNO(open(P(utf + "x").c_str(), O_CREAT | O_WRONLY, 0644), ENAMETOOLONG);
  // Reading a directory, writing a FIFO-less path etc.
  fd = open(P("dir").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  char c;
  EXPECT_ERRNO(read(fd, &c, 1), EISDIR);
  close(fd);
  EXPECT_ERRNO(truncate(P("dir").c_str(), 0), EISDIR);
  EXPECT_ERRNO(truncate(P("file").c_str(), -1), EINVAL);
}

TEST_F(Posix, RenameFlags) {
  WriteFile("a", "AAA");
  WriteFile("b", "BBBB");
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  WriteFile("d/in", "inside");
  const ino_t ia = Stat("a").st_ino, ib = Stat("b").st_ino, id = Stat("d").st_ino;
  auto r2 = [&](const std::string& from, const std::string& to, unsigned flags) {
    return syscall(SYS_renameat2, AT_FDCWD, P(from).c_str(), AT_FDCWD, P(to).c_str(), flags);
  };
  EXPECT_ERRNO(r2("a", "b", RENAME_NOREPLACE), EEXIST);
  EXPECT_EQ(ReadFile("a"), "AAA");
  EXPECT_EQ(ReadFile("b"), "BBBB");
  EXPECT_OK(r2("a", "c", RENAME_NOREPLACE));
  EXPECT_EQ(ReadFile("c"), "AAA");
  EXPECT_ERRNO(access(P("a").c_str(), F_OK), ENOENT);
  EXPECT_OK(r2("c", "b", RENAME_EXCHANGE));
  EXPECT_EQ(ReadFile("c"), "BBBB");
  EXPECT_EQ(ReadFile("b"), "AAA");
  EXPECT_EQ(Stat("b").st_ino, ia);
  EXPECT_EQ(Stat("c").st_ino, ib);
  // Exchange a file with a directory (types may differ).
  EXPECT_OK(r2("b", "d", RENAME_EXCHANGE));
  EXPECT_TRUE(S_ISDIR(Stat("b").st_mode));
  EXPECT_EQ(Stat("b").st_ino, id);
  EXPECT_EQ(ReadFile("b/in"), "inside");
  EXPECT_EQ(ReadFile("d"), "AAA");
  EXPECT_ERRNO(r2("d", "nothere", RENAME_EXCHANGE), ENOENT);
  EXPECT_ERRNO(r2("d", "b", RENAME_EXCHANGE | RENAME_NOREPLACE), EINVAL);
  // Rename onto itself and onto another link of the same inode: no-ops.
  EXPECT_OK(rename(P("d").c_str(), P("d").c_str()));
  EXPECT_EQ(ReadFile("d"), "AAA");
  ASSERT_EQ(link(P("d").c_str(), P("d2").c_str()), 0);
  EXPECT_OK(rename(P("d").c_str(), P("d2").c_str()));
  EXPECT_EQ(ReadFile("d"), "AAA");
  EXPECT_EQ(ReadFile("d2"), "AAA");
  EXPECT_EQ(Stat("d").st_nlink, 2u);
  // Plain rename replaces a file atomically; the old target's inode is gone.
  WriteFile("x", "new");
  WriteFile("y", "old");
  EXPECT_OK(rename(P("x").c_str(), P("y").c_str()));
  EXPECT_EQ(ReadFile("y"), "new");
  // Rename a directory onto an empty directory; across directories; parent nlinks.
  ASSERT_EQ(mkdir(P("e1").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("e2").c_str(), 0755), 0);
  const nlink_t before = Stat(".").st_nlink;
  EXPECT_OK(rename(P("e1").c_str(), P("e2").c_str()));
  EXPECT_EQ(Stat(".").st_nlink, before - 1);
  EXPECT_OK(rename(P("e2").c_str(), P("b/e2").c_str()));
  EXPECT_EQ(Stat(".").st_nlink, before - 2);
  EXPECT_EQ(Stat("b").st_nlink, 3u);
  // ".." of the moved directory points at its new parent.
  struct stat pp, bb;
  ASSERT_EQ(stat(P("b/e2/..").c_str(), &pp), 0);
  ASSERT_EQ(stat(P("b").c_str(), &bb), 0);
  EXPECT_EQ(pp.st_ino, bb.st_ino);
}

TEST_F(Posix, HardLinksSymlinksFifo) {
  WriteFile("f", "data");
  ASSERT_EQ(link(P("f").c_str(), P("g").c_str()), 0);
  ASSERT_EQ(mkdir(P("sub").c_str(), 0755), 0);
  ASSERT_EQ(link(P("f").c_str(), P("sub/h").c_str()), 0);
  EXPECT_EQ(Stat("f").st_nlink, 3u);
  EXPECT_EQ(Stat("f").st_ino, Stat("sub/h").st_ino);
  WriteFile("g", "changed via g");
  EXPECT_EQ(ReadFile("sub/h"), "changed via g");
  ASSERT_EQ(unlink(P("f").c_str()), 0);
  EXPECT_EQ(Stat("g").st_nlink, 2u);
  ASSERT_EQ(unlink(P("g").c_str()), 0);
  EXPECT_EQ(Stat("sub/h").st_nlink, 1u);
  EXPECT_EQ(ReadFile("sub/h"), "changed via g");
  // Directory link counts: 2 + subdirectories.
  EXPECT_EQ(Stat("sub").st_nlink, 2u);
  ASSERT_EQ(mkdir(P("sub/a").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("sub/b").c_str(), 0755), 0);
  EXPECT_EQ(Stat("sub").st_nlink, 4u);
  ASSERT_EQ(rmdir(P("sub/a").c_str()), 0);
  EXPECT_EQ(Stat("sub").st_nlink, 3u);
  // Symlinks.
  ASSERT_EQ(symlink("sub/h", P("s").c_str()), 0);
  std::string longt(4000, 'L');
  ASSERT_EQ(symlink(longt.c_str(), P("long").c_str()), 0);
  char buf[8192];
  ssize_t n = readlink(P("s").c_str(), buf, sizeof buf);
  ASSERT_EQ(n, 5);
  EXPECT_EQ(std::string(buf, 5), "sub/h");
  EXPECT_EQ(Stat("s").st_size, 5);
  EXPECT_TRUE(S_ISLNK(Stat("s").st_mode));
  EXPECT_EQ(ReadFile("s"), "changed via g");
  n = readlink(P("long").c_str(), buf, sizeof buf);
  ASSERT_EQ(n, 4000);
  EXPECT_EQ(std::string(buf, 4000), longt);
  EXPECT_ERRNO(readlink(P("sub/h").c_str(), buf, sizeof buf), EINVAL);
  ASSERT_EQ(symlink("loop2", P("loop1").c_str()), 0);
  ASSERT_EQ(symlink("loop1", P("loop2").c_str()), 0);
  EXPECT_ERRNO(open(P("loop1").c_str(), O_RDONLY), ELOOP);
  EXPECT_ERRNO(open(P("s").c_str(), O_RDONLY | O_NOFOLLOW), ELOOP);
  // FIFO.
  ASSERT_EQ(mkfifo(P("fifo").c_str(), 0644), 0);
  EXPECT_TRUE(S_ISFIFO(Stat("fifo").st_mode));
  int fd = open(P("fifo").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "pipe!", 5), 5);
  ASSERT_EQ(read(fd, buf, sizeof buf), 5);
  EXPECT_EQ(std::string(buf, 5), "pipe!");
  close(fd);
  EXPECT_EQ(Stat("fifo").st_size, 0);
  // Character device node (root may make one).
  ASSERT_EQ(mknod(P("null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  struct stat cs = Stat("null");
  EXPECT_TRUE(S_ISCHR(cs.st_mode));
  EXPECT_EQ(cs.st_rdev, makedev(1, 3));
  // Persist across a remount.
  DoRemount();
  EXPECT_EQ(Stat("sub/h").st_nlink, 1u);
  EXPECT_EQ(Stat("sub").st_nlink, 3u);
  n = readlink(P("long").c_str(), buf, sizeof buf);
  EXPECT_EQ(n, 4000);
  EXPECT_EQ(Stat("null").st_rdev, makedev(1, 3));
  EXPECT_TRUE(S_ISFIFO(Stat("fifo").st_mode));
}

TEST_F(Posix, ChmodChownUtimens) {
  WriteFile("f", "x");
  ASSERT_EQ(chmod(P("f").c_str(), 04751), 0);
  EXPECT_EQ(Stat("f").st_mode & 07777, 04751u);
  ASSERT_EQ(chown(P("f").c_str(), 1234, 5678), 0);
  EXPECT_EQ(Stat("f").st_uid, 1234u);
  EXPECT_EQ(Stat("f").st_gid, 5678u);
  // chown by root of a setuid executable clears setuid (Linux, for regular files).
  EXPECT_EQ(Stat("f").st_mode & 06000, 0u);
  ASSERT_EQ(lchown(P("f").c_str(), static_cast<uid_t>(-1), 42), 0);
  EXPECT_EQ(Stat("f").st_uid, 1234u);
  EXPECT_EQ(Stat("f").st_gid, 42u);
  ASSERT_EQ(symlink("f", P("l").c_str()), 0);
  ASSERT_EQ(lchown(P("l").c_str(), 7, 8), 0);
  EXPECT_EQ(Stat("l").st_uid, 7u);
  EXPECT_EQ(Stat("f").st_uid, 1234u);

  struct Case {
    std::int64_t sec;
    long nsec;
  } cases[] = {{1700000000, 123456789}, {-1000000000, 1}, {-1, 999999999},
               {4102444800, 999999999} /* 2100 */};
  int i = 0;
  for (const Case& c : cases) {
    std::string name = "t" + std::to_string(i++);
    WriteFile(name, "t");
    timespec ts[2] = {{static_cast<time_t>(c.sec), c.nsec}, {static_cast<time_t>(c.sec + 7), c.nsec / 2}};
    ASSERT_EQ(utimensat(AT_FDCWD, P(name).c_str(), ts, 0), 0) << strerror(errno);
    struct stat st = Stat(name);
    EXPECT_EQ(st.st_atim.tv_sec, c.sec) << name;
    EXPECT_EQ(st.st_atim.tv_nsec, c.nsec) << name;
    EXPECT_EQ(st.st_mtim.tv_sec, c.sec + 7) << name;
    EXPECT_EQ(st.st_mtim.tv_nsec, c.nsec / 2) << name;
  }
  // UTIME_NOW and UTIME_OMIT.
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
  ASSERT_EQ(utimensat(AT_FDCWD, P("t0").c_str(), ts, 0), 0);
  struct stat st = Stat("t0");
  EXPECT_EQ(st.st_atim.tv_sec, 1700000000);
  EXPECT_LE(std::abs(st.st_mtim.tv_sec - now.tv_sec), 5);
  EXPECT_GE(st.st_ctim.tv_sec, now.tv_sec - 5);
  ASSERT_EQ(utimensat(AT_FDCWD, P("t0").c_str(), nullptr, 0), 0);
  st = Stat("t0");
  EXPECT_LE(std::abs(st.st_atim.tv_sec - now.tv_sec), 5);
  // Symlink times (AT_SYMLINK_NOFOLLOW).
  timespec lts[2] = {{1000, 1}, {2000, 2}};
  ASSERT_EQ(utimensat(AT_FDCWD, P("l").c_str(), lts, AT_SYMLINK_NOFOLLOW), 0);
  EXPECT_EQ(Stat("l").st_mtim.tv_sec, 2000);
  // Times set right after a write are not overwritten by the later promotion of that write.
  int fd = open(P("w").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "abc", 3), 3);
  timespec wts[2] = {{500, 0}, {600, 0}};
  ASSERT_EQ(futimens(fd, wts), 0);
  close(fd);
  EXPECT_EQ(Stat("w").st_mtim.tv_sec, 600);
  WriteFile("t9999", "t");
  timespec far[2] = {{253402300799, 5}, {253402300799, 5}};  // 9999-12-31
  ASSERT_EQ(utimensat(AT_FDCWD, P("t9999").c_str(), far, 0), 0);
  DoRemount();
  EXPECT_EQ(Stat("w").st_mtim.tv_sec, 600);
  EXPECT_EQ(Stat("t1").st_atim.tv_sec, -1000000000);
  EXPECT_EQ(Stat("t1").st_atim.tv_nsec, 1);
  EXPECT_EQ(Stat("t2").st_mtim.tv_sec, 6);
  EXPECT_EQ(Stat("t3").st_atim.tv_sec, 4102444800);
  EXPECT_EQ(Stat("t3").st_atim.tv_nsec, 999999999);
  // Beyond the 64-bit-nanosecond range (2262): clamped to the latest representable time, never
  // wrapped into the past (the kernel shows its own cached copy until the inode is reloaded).
  EXPECT_EQ(Stat("t9999").st_mtim.tv_sec, 9223372036);
  EXPECT_EQ(Stat("t9999").st_mtim.tv_nsec, 854775807);
  EXPECT_EQ(Stat("f").st_gid, 42u);
  EXPECT_EQ(Stat("f").st_mode & 07777, 0751u);
}

TEST_F(Posix, TruncateAndFtruncate) {
  std::string pat = Pattern(300000, 3);
  WriteFile("f", pat);
  ASSERT_EQ(truncate(P("f").c_str(), 1000), 0);
  EXPECT_EQ(Stat("f").st_size, 1000);
  ASSERT_EQ(truncate(P("f").c_str(), 200000), 0);
  std::string got = ReadFile("f");
  ASSERT_EQ(got.size(), 200000u);
  EXPECT_EQ(got.compare(0, 1000, pat, 0, 1000), 0);
  EXPECT_EQ(got.find_first_not_of('\0', 1000), std::string::npos) << "stale bytes after re-extend";
  // ftruncate on an open file with unflushed writes.
  int fd = open(P("g").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, pat.data(), pat.size(), 0), static_cast<ssize_t>(pat.size()));
  ASSERT_EQ(ftruncate(fd, 70000), 0);
  ASSERT_EQ(pwrite(fd, "Q", 1, 150000), 1);
  char buf[4];
  ASSERT_EQ(pread(fd, buf, 4, 69998), 4);
  EXPECT_EQ(buf[0], pat[69998]);
  EXPECT_EQ(buf[1], pat[69999]);
  EXPECT_EQ(buf[2], 0);
  EXPECT_EQ(buf[3], 0);
  ASSERT_EQ(ftruncate(fd, 0), 0);
  ASSERT_EQ(ftruncate(fd, 65537), 0);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 65537);
  close(fd);
  got = ReadFile("g");
  EXPECT_EQ(got, std::string(65537, '\0'));
  DoRemount();
  got = ReadFile("g");
  EXPECT_EQ(got, std::string(65537, '\0'));
  got = ReadFile("f");
  ASSERT_EQ(got.size(), 200000u);
  EXPECT_EQ(got.find_first_not_of('\0', 1000), std::string::npos);
}

TEST_F(Posix, FallocateModes) {
  const std::size_t kLen = 512 * 1024;
  std::string pat = Pattern(kLen, 5);
  for (int dirty = 0; dirty < 2; ++dirty) {
    SCOPED_TRACE(dirty ? "writes still in the hot tier" : "writes flushed");
    std::string name = "f" + std::to_string(dirty);
    int fd = open(P(name).c_str(), O_CREAT | O_RDWR, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, pat.data(), kLen, 0), static_cast<ssize_t>(kLen));
    if (!dirty) {
      ASSERT_EQ(fsync(fd), 0);
    }
    std::string model = pat;
    // Punch a hole spanning record boundaries (unaligned).
    ASSERT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 10000, 150000), 0)
        << strerror(errno);
    std::fill(model.begin() + 10000, model.begin() + 160000, '\0');
    // Zero a range.
    ASSERT_EQ(pwrite(fd, "dirty", 5, 300000), 5);
    model.replace(300000, 5, "dirty");
    ASSERT_EQ(fallocate(fd, FALLOC_FL_ZERO_RANGE, 299990, 70000), 0) << strerror(errno);
    std::fill(model.begin() + 299990, model.begin() + 369990, '\0');
    // KEEP_SIZE beyond EOF keeps the size; plain mode extends it.
    ASSERT_EQ(fallocate(fd, FALLOC_FL_KEEP_SIZE, kLen, 1 << 20), 0) << strerror(errno);
    struct stat st;
    ASSERT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, static_cast<off_t>(kLen));
    ASSERT_EQ(fallocate(fd, 0, kLen, 100000), 0) << strerror(errno);
    ASSERT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, static_cast<off_t>(kLen + 100000));
    model.resize(kLen + 100000, '\0');
    // ZERO_RANGE past EOF extends unless KEEP_SIZE.
    ASSERT_EQ(fallocate(fd, FALLOC_FL_ZERO_RANGE, kLen + 100000, 1000), 0);
    model.resize(kLen + 101000, '\0');
    EXPECT_ERRNO(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 10), EOPNOTSUPP);
    std::string got(model.size() + 10, 'X');
    ASSERT_EQ(pread(fd, got.data(), got.size(), 0), static_cast<ssize_t>(model.size()));
    got.resize(model.size());
    EXPECT_TRUE(got == model) << "first difference at "
                              << std::mismatch(got.begin(), got.end(), model.begin()).first - got.begin();
    close(fd);
    EXPECT_TRUE(ReadFile(name) == model);
  }
  DoRemount();
  for (int dirty = 0; dirty < 2; ++dirty) {
    std::string got = ReadFile("f" + std::to_string(dirty));
    ASSERT_EQ(got.size(), kLen + 101000);
    EXPECT_EQ(got.find_first_not_of('\0', 10000), 160000u);
  }
}

TEST_F(Posix, SeekDataHole) {
  const std::string rec(65536, 'r');
  int fd = open(P("f").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, rec.data(), rec.size(), 0), 65536);
  ASSERT_EQ(pwrite(fd, rec.data(), rec.size(), 1 << 20), 65536);
  ASSERT_EQ(ftruncate(fd, 4 << 20), 0);
  EXPECT_EQ(lseek(fd, 0, SEEK_DATA), 0);
  EXPECT_EQ(lseek(fd, 0, SEEK_HOLE), 65536);
  EXPECT_EQ(lseek(fd, 70000, SEEK_DATA), 1 << 20);
  EXPECT_EQ(lseek(fd, (1 << 20) + 100, SEEK_DATA), (1 << 20) + 100);
  EXPECT_EQ(lseek(fd, (1 << 20) + 100, SEEK_HOLE), (1 << 20) + 65536);
  EXPECT_ERRNO(lseek(fd, (1 << 20) + 65536, SEEK_DATA), ENXIO);
  EXPECT_EQ(lseek(fd, (3 << 20), SEEK_HOLE), 3 << 20);
  EXPECT_ERRNO(lseek(fd, 4 << 20, SEEK_DATA), ENXIO);
  EXPECT_ERRNO(lseek(fd, 5 << 20, SEEK_HOLE), ENXIO);
  // Sizes not a multiple of the record size: the implicit hole at EOF.
  ASSERT_EQ(ftruncate(fd, 1000), 0);
  EXPECT_EQ(lseek(fd, 0, SEEK_HOLE), 1000);
  close(fd);
  // A fully dense file: the only hole is EOF.
  WriteFile("dense", std::string(200000, 'd'));
  fd = open(P("dense").c_str(), O_RDONLY);
  EXPECT_EQ(lseek(fd, 0, SEEK_HOLE), 200000);
  EXPECT_EQ(lseek(fd, 199999, SEEK_DATA), 199999);
  close(fd);
}

// With the writeback cache, data just written may still be only in the kernel's page cache,
// and the kernel sends LSEEK without writing it back: the data/hole map must include it anyway
// (a sparse-aware copy of a file being written would otherwise skip data).
TEST_F(Posix, SeekDataHoleSeesUnflushedWrites) {
  const std::string rec(65536, 'r');
  int fd = open(P("f").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, rec.data(), 4096, 1 << 20), 4096);
  EXPECT_EQ(lseek(fd, 0, SEEK_DATA), 1 << 20);
  EXPECT_EQ(lseek(fd, 0, SEEK_HOLE), 0);
  EXPECT_EQ(lseek(fd, 1 << 20, SEEK_HOLE), (1 << 20) + 4096);
  EXPECT_ERRNO(lseek(fd, (1 << 20) + 4096, SEEK_DATA), ENXIO);
  ASSERT_EQ(pwrite(fd, rec.data(), rec.size(), 0), 65536);
  EXPECT_EQ(lseek(fd, 0, SEEK_DATA), 0);
  EXPECT_EQ(lseek(fd, 0, SEEK_HOLE), 65536);
  // Dirtied through a shared mapping after its descriptor was closed (the mapping keeps the
  // writable handle), asked through another, read-only descriptor.
  constexpr std::size_t kLen = (1 << 20) + 4096;
  void* p = mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED) << strerror(errno);
  ASSERT_EQ(close(fd), 0);
  memcpy(static_cast<char*>(p) + (512 << 10), "MAPPED", 6);
  int rd = open(P("f").c_str(), O_RDONLY);
  ASSERT_GE(rd, 0);
  EXPECT_EQ(lseek(rd, 70000, SEEK_DATA), 512 << 10);
  EXPECT_EQ(lseek(rd, 512 << 10, SEEK_HOLE), (512 << 10) + 65536);
  ASSERT_EQ(munmap(p, kLen), 0);
  // Every write is there once the writers are gone.
  char got[6];
  ASSERT_EQ(pread(rd, got, 6, 512 << 10), 6);
  EXPECT_EQ(memcmp(got, "MAPPED", 6), 0);
  EXPECT_EQ(lseek(rd, 0, SEEK_HOLE), 65536);
  close(rd);
}

// The write-back before such an answer is served by the session's own threads: with a single
// session thread it must still complete (the answer comes from another thread). Over io_uring
// with one worker per queue the kernel's generic lseek answers instead; the figures below are
// the same either way.
TEST(PosixOwnMount, SeekWritebackWithOneSessionThread) {
  Mount m("1G");
  ASSERT_TRUE(m.made());
  std::string why;
  ASSERT_TRUE(m.Start("threads=1", &why)) << why;
  int fd = open(m.path("f").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0) << strerror(errno);
  const std::string block(4096, 'b');
  for (off_t i = 0; i < 40; ++i) {
    const off_t at = i * (128 << 10);
    ASSERT_EQ(pwrite(fd, block.data(), block.size(), at), 4096);
    EXPECT_EQ(lseek(fd, at, SEEK_DATA), at);
    EXPECT_EQ(lseek(fd, at, SEEK_HOLE), at + 4096);  // EOF: the implicit hole
    EXPECT_EQ(lseek(fd, 0, SEEK_DATA), 0);
  }
  ASSERT_EQ(close(fd), 0);
  UnmountAndFsck(m);
}

TEST_F(Posix, Xattrs) {
  WriteFile("f", "x");
  const std::string f = P("f");
  ASSERT_EQ(setxattr(f.c_str(), "user.small", "v1", 2, 0), 0) << strerror(errno);
  char buf[70000];
  EXPECT_EQ(getxattr(f.c_str(), "user.small", nullptr, 0), 2);
  EXPECT_EQ(getxattr(f.c_str(), "user.small", buf, sizeof buf), 2);
  EXPECT_EQ(std::string(buf, 2), "v1");
  EXPECT_ERRNO(getxattr(f.c_str(), "user.small", buf, 1), ERANGE);
  EXPECT_ERRNO(getxattr(f.c_str(), "user.none", buf, sizeof buf), ENODATA);
  EXPECT_ERRNO(setxattr(f.c_str(), "user.small", "v2", 2, XATTR_CREATE), EEXIST);
  EXPECT_ERRNO(setxattr(f.c_str(), "user.none", "v2", 2, XATTR_REPLACE), ENODATA);
  EXPECT_ERRNO(removexattr(f.c_str(), "user.none"), ENODATA);
  ASSERT_EQ(setxattr(f.c_str(), "user.small", "v22", 3, XATTR_REPLACE), 0);
  ASSERT_EQ(setxattr(f.c_str(), "user.empty", "", 0, 0), 0);
  EXPECT_EQ(getxattr(f.c_str(), "user.empty", buf, sizeof buf), 0);
  const std::string big = Pattern(65536, 9);
  ASSERT_EQ(setxattr(f.c_str(), "user.big", big.data(), big.size(), 0), 0) << strerror(errno);
  EXPECT_EQ(getxattr(f.c_str(), "user.big", buf, sizeof buf), 65536);
  EXPECT_EQ(memcmp(buf, big.data(), 65536), 0);
  EXPECT_ERRNO(setxattr(f.c_str(), "user.huge", buf, 65537, 0), E2BIG);
  const std::string longname = "user." + std::string(250, 'n');
  ASSERT_EQ(setxattr(f.c_str(), longname.c_str(), "L", 1, 0), 0) << strerror(errno);
  EXPECT_ERRNO(setxattr(f.c_str(), ("user." + std::string(251, 'n')).c_str(), "L", 1, 0), ERANGE);
  ssize_t n = listxattr(f.c_str(), nullptr, 0);
  ASSERT_GT(n, 0);
  std::string list(static_cast<std::size_t>(n), '\0');
  ASSERT_EQ(listxattr(f.c_str(), list.data(), list.size()), n);
  EXPECT_ERRNO(listxattr(f.c_str(), buf, 3), ERANGE);
  for (const char* want : {"user.small", "user.empty", "user.big"})
    EXPECT_NE(list.find(std::string(want) + '\0'), std::string::npos) << want;
  ASSERT_EQ(removexattr(f.c_str(), "user.small"), 0);
  EXPECT_ERRNO(getxattr(f.c_str(), "user.small", buf, sizeof buf), ENODATA);
  // On a directory and (via l*xattr) not on a symlink in the user namespace.
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  ASSERT_EQ(setxattr(P("d").c_str(), "user.dir", "dv", 2, 0), 0);
  ASSERT_EQ(symlink("f", P("l").c_str()), 0);
  EXPECT_ERRNO(lsetxattr(P("l").c_str(), "user.x", "1", 1, 0), EPERM);
  // trusted.* by root; security.* round trip.
  ASSERT_EQ(setxattr(f.c_str(), "trusted.t", "tv", 2, 0), 0) << strerror(errno);
  DoRemount();
  EXPECT_EQ(getxattr(f.c_str(), "user.big", buf, sizeof buf), 65536);
  EXPECT_EQ(memcmp(buf, big.data(), 65536), 0);
  EXPECT_EQ(getxattr(f.c_str(), "user.small", buf, sizeof buf), -1);
  EXPECT_EQ(getxattr(P("d").c_str(), "user.dir", buf, sizeof buf), 2);
  EXPECT_EQ(getxattr(f.c_str(), "trusted.t", buf, sizeof buf), 2);
}

// copy_file_range(2): a copy whose offsets line up with the records shares the chunks (the
// volume's free space barely moves); any other copy is byte-exact too; both files stay
// independent afterwards and survive a remount. Overlap within one file is EINVAL.
TEST_F(Posix, CopyFileRangeSharesChunks) {
  constexpr std::size_t kBig = 32u << 20;
  const std::string data = Pattern(kBig + 12345, 21);
  WriteFile("src", data);
  sync();  // (the write-back of the source is not what is measured)
  struct statvfs before;
  ASSERT_EQ(statvfs(d_.c_str(), &before), 0);
  int in = open(P("src").c_str(), O_RDONLY);
  int out = open(P("dst").c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(in, 0);
  ASSERT_GE(out, 0);
  std::size_t copied = 0;
  while (copied < data.size()) {
    ssize_t n = copy_file_range(in, nullptr, out, nullptr, data.size() - copied, 0);
    ASSERT_GT(n, 0) << strerror(errno);
    copied += static_cast<std::size_t>(n);
  }
  EXPECT_EQ(copy_file_range(in, nullptr, out, nullptr, 100, 0), 0);  // at the source's end
  ASSERT_EQ(fsync(out), 0);
  struct statvfs after;
  ASSERT_EQ(statvfs(d_.c_str(), &after), 0);
  const double used_mib =
      static_cast<double>(before.f_bfree - after.f_bfree) * after.f_frsize / (1 << 20);
  EXPECT_LT(used_mib, 2.0) << "a shared 32 MiB copy used " << used_mib << " MiB";
  EXPECT_TRUE(ReadFile("dst") == data);
  EXPECT_GE(Stat("dst").st_blocks * 512, static_cast<long long>(kBig));
  // Misaligned offsets: copied byte by byte, into the middle of an existing file.
  WriteFile("mid", std::string(300000, 'm'));
  int mid = open(P("mid").c_str(), O_RDWR);
  ASSERT_GE(mid, 0);
  loff_t oi = 777, oo = 1001;
  ASSERT_EQ(copy_file_range(in, &oi, mid, &oo, 200000, 0), 200000) << strerror(errno);
  std::string want(300000, 'm');
  want.replace(1001, 200000, data.substr(777, 200000));
  EXPECT_TRUE(ReadFile("mid") == want);
  // Within one file: overlapping ranges are refused, disjoint ones copy.
  oi = 0;
  oo = 4096;
  EXPECT_ERRNO(copy_file_range(mid, &oi, mid, &oo, 65536, 0), EINVAL);
  oi = 0;
  oo = 200000;
  ASSERT_EQ(copy_file_range(mid, &oi, mid, &oo, 65536, 0), 65536);
  want.replace(200000, 65536, want.substr(0, 65536));
  EXPECT_TRUE(ReadFile("mid") == want);
  // The copy is independent: overwriting the source leaves it alone.
  ASSERT_EQ(close(in), 0);
  ASSERT_EQ(close(out), 0);
  ASSERT_EQ(close(mid), 0);
  std::string changed = data;
  changed.replace(65536, 5, "XXXXX");
  int w = open(P("src").c_str(), O_WRONLY);
  ASSERT_EQ(pwrite(w, "XXXXX", 5, 65536), 5);
  ASSERT_EQ(close(w), 0);
  DoRemount();
  EXPECT_TRUE(ReadFile("dst") == data);
  EXPECT_TRUE(ReadFile("src") == changed);
  EXPECT_TRUE(ReadFile("mid") == want);
}

// security.selinux is refused with EOPNOTSUPP (so ls -l stops asking per file) unless the mount
// has -o selinux_xattr; other security.* names are stored. A label stored under the option
// survives a mount without it, hidden, and is back on the next mount with it.
TEST_F(Posix, SelinuxLabelUnsupportedUnlessAskedFor) {
  WriteFile("f", "x");
  const std::string f = P("f");
  char buf[64];
  EXPECT_ERRNO(getxattr(f.c_str(), "security.selinux", buf, sizeof buf), EOPNOTSUPP);
  EXPECT_ERRNO(lgetxattr(f.c_str(), "security.selinux", nullptr, 0), EOPNOTSUPP);
  EXPECT_ERRNO(setxattr(f.c_str(), "security.selinux", "l", 1, 0), EOPNOTSUPP);
  EXPECT_ERRNO(removexattr(f.c_str(), "security.selinux"), EOPNOTSUPP);
  ASSERT_EQ(setxattr(f.c_str(), "security.other", "sv", 2, 0), 0) << strerror(errno);
  EXPECT_EQ(getxattr(f.c_str(), "security.other", buf, sizeof buf), 2);
  EXPECT_ERRNO(getxattr(f.c_str(), "security.selinuxx", buf, sizeof buf), ENODATA);
  // ls -l reports no label (and no error) for the file.
  std::string out;
  ASSERT_EQ(Sh("ls -lZ " + f, &out), 0) << out;
  EXPECT_NE(out.find(" ? "), std::string::npos) << out;

  const std::string label = "system_u:object_r:fusefs_t:s0";
  ASSERT_NO_FATAL_FAILURE(Remount(*g_mount, std::string(kOpts) + ",selinux_xattr"));
  ASSERT_EQ(setxattr(f.c_str(), "security.selinux", label.c_str(), label.size(), 0), 0)
      << strerror(errno);
  EXPECT_EQ(getxattr(f.c_str(), "security.selinux", buf, sizeof buf),
            static_cast<ssize_t>(label.size()));
  auto listed = [&](const char* name) {
    char list[512];
    ssize_t n = listxattr(f.c_str(), list, sizeof list);
    EXPECT_GT(n, 0) << strerror(errno);
    return n > 0 && std::string(list, static_cast<std::size_t>(n)).find(std::string(name) + '\0') !=
                        std::string::npos;
  };
  EXPECT_TRUE(listed("security.selinux"));
  DoRemount();
  EXPECT_ERRNO(getxattr(f.c_str(), "security.selinux", buf, sizeof buf), EOPNOTSUPP);
  EXPECT_FALSE(listed("security.selinux"));
  EXPECT_TRUE(listed("security.other"));
  ASSERT_NO_FATAL_FAILURE(Remount(*g_mount, std::string(kOpts) + ",selinux_xattr"));
  ASSERT_EQ(getxattr(f.c_str(), "security.selinux", buf, sizeof buf),
            static_cast<ssize_t>(label.size()));
  EXPECT_EQ(std::string(buf, label.size()), label);
  ASSERT_EQ(removexattr(f.c_str(), "security.selinux"), 0) << strerror(errno);
  DoRemount();
}

TEST_F(Posix, AclsEnforcedByKernel) {
  WriteFile("f", "secret");
  ASSERT_EQ(chmod(P("f").c_str(), 0600), 0);
  std::string out;
  ASSERT_EQ(Sh("setfacl -m u:65534:r " + P("f"), &out), 0) << out;
  ASSERT_EQ(Sh("getfacl -pn " + P("f"), &out), 0) << out;
  EXPECT_NE(out.find("user:65534:r--"), std::string::npos) << out;
  const std::string f = P("f");
  // setfacl's mask becomes the mode's group bits (the kernel checks ACLs only when they are set).
  EXPECT_EQ(Stat("f").st_mode & 0777, 0640u);
  EXPECT_EQ(AsUser(kNobody, kNobody, [&] { return CHILD_ERRNO(open(f.c_str(), O_RDONLY)); }), 0);
  EXPECT_EQ(AsUser(kNobody, kNobody, [&] { return CHILD_ERRNO(open(f.c_str(), O_WRONLY)); }), EACCES);
  EXPECT_EQ(AsUser(1000, 1000, [&] { return CHILD_ERRNO(open(f.c_str(), O_RDONLY)); }), EACCES);
  // Default ACLs are inherited by new entries.
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  ASSERT_EQ(Sh("setfacl -d -m u:1000:rwx " + P("d"), &out), 0) << out;
  WriteFile("d/child", "c");
  ASSERT_EQ(Sh("getfacl -pn " + P("d/child"), &out), 0) << out;
  EXPECT_NE(out.find("user:1000:rwx"), std::string::npos) << out;
  // An owner outside the file's group who sets an access ACL loses S_ISGID (Linux's
  // posix_acl_update_mode); root keeps it.
  WriteFile("g", "g");
  ASSERT_EQ(chown(P("g").c_str(), 1000, 1001), 0);
  ASSERT_EQ(chmod(P("g").c_str(), 02775), 0);
  const std::string g = P("g");
  EXPECT_EQ(AsUser(1000, 1000, [&] {
    return Sh("setfacl -m u:65534:r " + g, nullptr) == 0 ? 0 : 1;
  }), 0);
  EXPECT_EQ(Stat("g").st_mode & 07777, 0775u);
  ASSERT_EQ(chmod(P("g").c_str(), 02775), 0);
  ASSERT_EQ(Sh("setfacl -m u:65534:rw " + g, &out), 0) << out;
  EXPECT_EQ(Stat("g").st_mode & 07777, 02775u);
}

TEST_F(Posix, Statfs) {
  struct statvfs s;
  ASSERT_EQ(statvfs(d_.c_str(), &s), 0);
  EXPECT_GT(s.f_bsize, 0u);
  EXPECT_GT(s.f_blocks, 1000u);
  EXPECT_LE(s.f_bfree, s.f_blocks);
  EXPECT_LE(s.f_bavail, s.f_bfree);
  EXPECT_GT(s.f_bfree, s.f_blocks / 2);
  EXPECT_GT(s.f_files, 0u);
  EXPECT_LE(s.f_ffree, s.f_files);
  EXPECT_EQ(s.f_namemax, 255u);
  const std::uint64_t total = static_cast<std::uint64_t>(s.f_blocks) * s.f_frsize;
  EXPECT_GT(total, 7ull << 30);
  EXPECT_LE(total, 8ull << 30);
}

std::uint64_t FreeBytes(const std::string& p) {
  struct statvfs s;
  if (statvfs(p.c_str(), &s) != 0) return 0;
  return static_cast<std::uint64_t>(s.f_bfree) * s.f_frsize;
}

TEST_F(Posix, UnlinkOpenFile) {
  constexpr std::size_t kLen = 64 << 20;
  const std::string all = Pattern(kLen, 11);  // unique records: nothing deduplicates
  sync();
  const std::uint64_t free0 = FreeBytes(d_);
  int fd = open(P("f").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  for (std::size_t off = 0; off < kLen; off += 1 << 20)
    ASSERT_EQ(pwrite(fd, all.data() + off, 1 << 20, static_cast<off_t>(off)), 1 << 20);
  ASSERT_EQ(fsync(fd), 0);
  const std::uint64_t free1 = FreeBytes(d_);
  EXPECT_LT(free1 + (kLen / 2), free0) << "64 MiB written but free space barely moved";
  ASSERT_EQ(unlink(P("f").c_str()), 0);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_nlink, 0u);
  EXPECT_ERRNO(access(P("f").c_str(), F_OK), ENOENT);
  // Data stays readable and writable through the descriptor.
  std::string got(1 << 20, '\0');
  ASSERT_EQ(pread(fd, got.data(), got.size(), 5 << 20), static_cast<ssize_t>(got.size()));
  EXPECT_TRUE(got == all.substr(5 << 20, 1 << 20));
  ASSERT_EQ(pwrite(fd, "after", 5, kLen), 5);
  char b5[5];
  ASSERT_EQ(pread(fd, b5, 5, kLen), 5);
  EXPECT_EQ(std::string(b5, 5), "after");
  ASSERT_EQ(fsync(fd), 0);
  // A new file with the same name is a different inode.
  WriteFile("f", "new");
  EXPECT_NE(Stat("f").st_ino, st.st_ino);
  ASSERT_EQ(close(fd), 0);
  // Space returns once the last descriptor is closed (release is asynchronous: poll).
  std::uint64_t free2 = 0;
  for (int i = 0; i < 100; ++i) {
    sync();
    free2 = FreeBytes(d_);
    if (free2 + (kLen / 8) > free0) break;
    usleep(100000);
  }
  EXPECT_GT(free2 + (kLen / 8), free0) << "free before " << free0 << " after close " << free2;
  EXPECT_EQ(ReadFile("f"), "new");
}

TEST_F(Posix, MmapSharedWritable) {
  constexpr std::size_t kLen = 3 << 20;
  std::string pat = Pattern(kLen, 13);
  int fd = open(P("m").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, kLen), 0);
  void* p = mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED) << strerror(errno);
  memcpy(p, pat.data(), kLen);
  ASSERT_EQ(msync(p, kLen, MS_SYNC), 0);
  // A second write through the mapping after msync, left to munmap/close.
  memcpy(static_cast<char*>(p) + 4096, "LATE", 4);
  pat.replace(4096, 4, "LATE");
  ASSERT_EQ(munmap(p, kLen), 0);
  ASSERT_EQ(close(fd), 0);
  EXPECT_TRUE(ReadFile("m") == pat);
  // Reading through a mapping sees data written with write().
  fd = open(P("m").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "WRIT", 4, 8192), 4);
  pat.replace(8192, 4, "WRIT");
  p = mmap(nullptr, kLen, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  EXPECT_EQ(memcmp(static_cast<char*>(p) + 8192, "WRIT", 4), 0);
  munmap(p, kLen);
  close(fd);
  DoRemount();
  EXPECT_TRUE(ReadFile("m") == pat);
}

// ---- Locks ----------------------------------------------------------------------------------

TEST_F(Posix, PosixOfdAndFlockLocks) {
  WriteFile("f", std::string(1000, 'x'));
  const std::string f = P("f");
  int fd = open(f.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 100;
  fl.l_len = 50;
  ASSERT_EQ(fcntl(fd, F_SETLK, &fl), 0) << strerror(errno);
  const pid_t me = getpid();
  // Another process: the conflicting range is refused and F_GETLK names us.
  int rc = AsUser(0, 0, [&] {
    int cfd = open(f.c_str(), O_RDWR);
    if (cfd < 0) return 10;
    struct flock c;
    memset(&c, 0, sizeof c);
    c.l_type = F_RDLCK;
    c.l_whence = SEEK_SET;
    c.l_start = 120;
    c.l_len = 1;
    if (fcntl(cfd, F_SETLK, &c) == 0 || (errno != EAGAIN && errno != EACCES)) return 11;
    if (fcntl(cfd, F_GETLK, &c) != 0) return 12;
    if (c.l_type != F_WRLCK || c.l_pid != me || c.l_start != 100 || c.l_len != 50) return 13;
    c.l_type = F_WRLCK;
    c.l_start = 150;  // adjacent, not overlapping
    c.l_len = 10;
    if (fcntl(cfd, F_SETLK, &c) != 0) return 14;
    return 0;
  });
  EXPECT_EQ(rc, 0);
  // POSIX locks are per process: a second descriptor in this process does not conflict,
  // and closing ANY descriptor of the file drops the process's locks.
  int fd2 = open(f.c_str(), O_RDWR);
  ASSERT_GE(fd2, 0);
  struct flock g = fl;
  ASSERT_EQ(fcntl(fd2, F_SETLK, &g), 0);
  close(fd2);
  rc = AsUser(0, 0, [&] {
    int cfd = open(f.c_str(), O_RDWR);
    struct flock c;
    memset(&c, 0, sizeof c);
    c.l_type = F_WRLCK;
    c.l_whence = SEEK_SET;
    c.l_start = 100;
    c.l_len = 50;
    return fcntl(cfd, F_SETLK, &c) == 0 ? 0 : 20;
  });
  EXPECT_EQ(rc, 0) << "closing a second fd must release the process's POSIX locks";
  close(fd);

  // OFD locks: per open file description, so two opens in one process conflict.
  int a = open(f.c_str(), O_RDWR), b = open(f.c_str(), O_RDWR);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  struct flock o;
  memset(&o, 0, sizeof o);
  o.l_type = F_WRLCK;
  o.l_whence = SEEK_SET;
  o.l_start = 0;
  o.l_len = 10;
  ASSERT_EQ(fcntl(a, F_OFD_SETLK, &o), 0) << strerror(errno);
  struct flock o2 = o;
  EXPECT_ERRNO(fcntl(b, F_OFD_SETLK, &o2), EAGAIN);
  o2 = o;
  ASSERT_EQ(fcntl(b, F_OFD_GETLK, &o2), 0);
  EXPECT_EQ(o2.l_type, F_WRLCK);
  EXPECT_EQ(o2.l_pid, -1);
  o.l_type = F_UNLCK;
  ASSERT_EQ(fcntl(a, F_OFD_SETLK, &o), 0);
  o2 = o;
  o2.l_type = F_WRLCK;
  EXPECT_EQ(fcntl(b, F_OFD_SETLK, &o2), 0);
  close(a);
  close(b);

  // flock: per open file description as well; inherited across fork.
  a = open(f.c_str(), O_RDWR);
  b = open(f.c_str(), O_RDWR);
  ASSERT_EQ(flock(a, LOCK_EX | LOCK_NB), 0);
  EXPECT_ERRNO(flock(b, LOCK_SH | LOCK_NB), EWOULDBLOCK);
  rc = AsUser(0, 0, [&] {
    // The child shares `a`'s description: it holds the lock too (conversion succeeds).
    if (flock(a, LOCK_EX | LOCK_NB) != 0) return 30;
    int c = open(f.c_str(), O_RDWR);
    if (flock(c, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK) return 31;
    return 0;
  });
  EXPECT_EQ(rc, 0);
  ASSERT_EQ(flock(a, LOCK_UN), 0);
  EXPECT_EQ(flock(b, LOCK_SH | LOCK_NB), 0);
  close(a);
  close(b);
  // F_SETLKW blocks until the holder releases.
  fd = open(f.c_str(), O_RDWR);
  memset(&fl, 0, sizeof fl);
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  ASSERT_EQ(fcntl(fd, F_SETLK, &fl), 0);
  std::fflush(nullptr);
  pid_t child = fork();
  if (child == 0) {
    int cfd = open(f.c_str(), O_RDWR);
    struct flock c;
    memset(&c, 0, sizeof c);
    c.l_type = F_WRLCK;
    c.l_whence = SEEK_SET;
    std::uint64_t t0 = NowNs();
    if (fcntl(cfd, F_SETLKW, &c) != 0) _exit(40);
    _exit(NowNs() - t0 >= 200000000ull ? 0 : 41);
  }
  usleep(400000);
  close(fd);  // releases
  int ws = 0;
  waitpid(child, &ws, 0);
  EXPECT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0) << ws;
}

// ---- Permissions as a non-root user -----------------------------------------------------------

TEST_F(Posix, SearchPermissionOnEveryComponent) {
  ASSERT_EQ(mkdir(P("a").c_str(), 0700), 0);
  ASSERT_EQ(mkdir(P("a/b").c_str(), 0755), 0);
  WriteFile("a/b/f", "hello");
  const std::string f = P("a/b/f");
  auto try_open = [&] {
    return AsUser(kNobody, kNobody, [&] { return CHILD_ERRNO(open(f.c_str(), O_RDONLY)); });
  };
  EXPECT_EQ(try_open(), EACCES);
  ASSERT_EQ(chmod(P("a").c_str(), 0711), 0);  // search but not read
  EXPECT_EQ(try_open(), 0);
  EXPECT_EQ(AsUser(kNobody, kNobody, [&] {
              DIR* d = opendir(P("a").c_str());
              return d ? (closedir(d), 0) : errno;
            }),
            EACCES);
  ASSERT_EQ(chmod(P("a/b").c_str(), 0700), 0);
  EXPECT_EQ(try_open(), EACCES);
  ASSERT_EQ(chmod(P("a/b").c_str(), 0755), 0);
  ASSERT_EQ(chmod(P("a").c_str(), 0755), 0);
  // Group permission through gid.
  ASSERT_EQ(chown(P("a").c_str(), 0, 4242), 0);
  ASSERT_EQ(chmod(P("a").c_str(), 0710), 0);
  EXPECT_EQ(try_open(), EACCES);
  EXPECT_EQ(AsUser(kNobody, 4242, [&] { return CHILD_ERRNO(open(f.c_str(), O_RDONLY)); }), 0);
  // Creating in a directory without write permission.
  EXPECT_EQ(AsUser(kNobody, kNobody,
                   [&] { return CHILD_ERRNO(open(P("a/b/new").c_str(), O_CREAT | O_WRONLY, 0644)); }),
            EACCES);
  // Files made by a user are owned by that user.
  ASSERT_EQ(mkdir(P("open").c_str(), 0777), 0);
  ASSERT_EQ(chmod(P("open").c_str(), 0777), 0);
  EXPECT_EQ(AsUser(1000, 1001, [&] {
              int fd = open(P("open/mine").c_str(), O_CREAT | O_WRONLY, 0640);
              if (fd < 0) return errno;
              close(fd);
              return CHILD_ERRNO(mkdir(P("open/mydir").c_str(), 0750));
            }),
            0);
  EXPECT_EQ(Stat("open/mine").st_uid, 1000u);
  EXPECT_EQ(Stat("open/mine").st_gid, 1001u);
  EXPECT_EQ(Stat("open/mydir").st_uid, 1000u);
  EXPECT_EQ(Stat("open/mine").st_mode & 07777, 0640u & ~0u);
  // setgid directory: new entries inherit the group; subdirectories inherit the bit.
  ASSERT_EQ(mkdir(P("sgid").c_str(), 0777), 0);
  ASSERT_EQ(chown(P("sgid").c_str(), 0, 777), 0);
  ASSERT_EQ(chmod(P("sgid").c_str(), 02777), 0);
  EXPECT_EQ(AsUser(1000, 1001, [&] {
              int fd = open(P("sgid/f").c_str(), O_CREAT | O_WRONLY, 0644);
              if (fd < 0) return errno;
              close(fd);
              return CHILD_ERRNO(mkdir(P("sgid/d").c_str(), 0755));
            }),
            0);
  EXPECT_EQ(Stat("sgid/f").st_gid, 777u);
  EXPECT_EQ(Stat("sgid/d").st_gid, 777u);
  EXPECT_NE(Stat("sgid/d").st_mode & S_ISGID, 0u);
}

TEST_F(Posix, StickyDirectory) {
  ASSERT_EQ(mkdir(P("tmp").c_str(), 0777), 0);
  ASSERT_EQ(chmod(P("tmp").c_str(), 01777), 0);
  WriteFile("tmp/theirs", "t");
  ASSERT_EQ(chown(P("tmp/theirs").c_str(), 1000, 1000), 0);
  ASSERT_EQ(chmod(P("tmp/theirs").c_str(), 0666), 0);
  const std::string theirs = P("tmp/theirs"), mine = P("tmp/mine");
  EXPECT_EQ(AsUser(kNobody, kNobody, [&] { return CHILD_ERRNO(unlink(theirs.c_str())); }), EPERM);
  EXPECT_EQ(AsUser(kNobody, kNobody,
                   [&] { return CHILD_ERRNO(rename(theirs.c_str(), P("tmp/stolen").c_str())); }),
            EPERM);
  EXPECT_EQ(AsUser(kNobody, kNobody, [&] {
              int fd = open(mine.c_str(), O_CREAT | O_WRONLY, 0644);
              if (fd < 0) return errno;
              close(fd);
              // Cannot replace someone else's file by renaming onto it either.
              return CHILD_ERRNO(rename(mine.c_str(), theirs.c_str()));
            }),
            EPERM);
  EXPECT_EQ(AsUser(kNobody, kNobody, [&] { return CHILD_ERRNO(unlink(mine.c_str())); }), 0);
  EXPECT_EQ(AsUser(1000, 1000, [&] { return CHILD_ERRNO(unlink(theirs.c_str())); }), 0);
  // The directory owner may delete anything in it.
  WriteFile("tmp/x", "x");
  ASSERT_EQ(chown(P("tmp/x").c_str(), 1000, 1000), 0);
  ASSERT_EQ(chown(P("tmp").c_str(), kNobody, kNobody), 0);
  EXPECT_EQ(AsUser(kNobody, kNobody, [&] { return CHILD_ERRNO(unlink(P("tmp/x").c_str())); }), 0);
}

TEST_F(Posix, WriteByNonOwnerClearsSetuidSetgid) {
  for (const char* how : {"write", "truncate"}) {
    SCOPED_TRACE(how);
    WriteFile("f", "0123456789");
    ASSERT_EQ(chown(P("f").c_str(), 1000, 1000), 0);
    ASSERT_EQ(chmod(P("f").c_str(), 06777), 0);
    ASSERT_EQ(Stat("f").st_mode & 07777, 06777u);
    const std::string f = P("f");
    const bool trunc = std::string(how) == "truncate";
    int rc = AsUser(kNobody, kNobody, [&] {
      if (trunc) return CHILD_ERRNO(truncate(f.c_str(), 3));
      int fd = open(f.c_str(), O_WRONLY);
      if (fd < 0) return errno;
      if (pwrite(fd, "ab", 2, 4) != 2) return errno;
      return CHILD_ERRNO(close(fd));
    });
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(Stat("f").st_mode & 07777, 0777u) << "mode after " << how << ": " << std::oct
                                                << (Stat("f").st_mode & 07777);
    ASSERT_EQ(unlink(P("f").c_str()), 0);
  }
  // setgid without group-exec is mandatory-locking style and is kept; owner writes keep bits.
  WriteFile("g", "x");
  ASSERT_EQ(chown(P("g").c_str(), kNobody, kNobody), 0);
  ASSERT_EQ(chmod(P("g").c_str(), 04755), 0);
  EXPECT_EQ(AsUser(kNobody, kNobody, [&] {
              int fd = open(P("g").c_str(), O_WRONLY);
              if (fd < 0) return errno;
              if (write(fd, "y", 1) != 1) return errno;
              return CHILD_ERRNO(close(fd));
            }),
            0);
  // Linux clears setuid on any unprivileged write, owner included.
  EXPECT_EQ(Stat("g").st_mode & 07777, 0755u);
}

// The set-user/group-ID and file-capability clearing Linux does on write, truncate, fallocate
// and chown, case by case. With FUSE_HANDLE_KILLPRIV_V2 negotiated the daemon does it, not the kernel, so
// each rule is checked here against what the VFS does on a local filesystem
// (setattr_should_drop_suidgid, chown_common): writer without CAP_FSETID -> setuid goes, setgid
// goes if group-executable or the writer is outside the file's group; root writer -> kept;
// chown -> setuid goes, setgid goes if group-executable.
TEST_F(Posix, PrivilegeClearingMatchesLinux) {
  enum class Op { kWrite, kTruncate, kOpenTrunc, kDirectWrite, kFallocate, kChown, kChgrp };
  struct Actor {
    const char* name;
    std::uint32_t uid, gid;  // the file is root:root
  };
  const Actor root{"root", 0, 0}, outsider{"nobody", kNobody, kNobody}, member{"nobody:root", kNobody, 0};
  auto run = [&](const Actor& who, Op op, const std::string& f) {
    auto body = [&]() -> int {
      switch (op) {
        case Op::kTruncate:
          return CHILD_ERRNO(truncate(f.c_str(), 3));
        case Op::kOpenTrunc: {
          int fd = open(f.c_str(), O_WRONLY | O_TRUNC);
          if (fd < 0) return errno;
          return CHILD_ERRNO(close(fd));
        }
        case Op::kFallocate: {
          int fd = open(f.c_str(), O_WRONLY);
          if (fd < 0) return errno;
          if (fallocate(fd, 0, 0, 65536) != 0) return errno;
          return CHILD_ERRNO(close(fd));
        }
        case Op::kChown:
          return CHILD_ERRNO(chown(f.c_str(), 1000, static_cast<gid_t>(-1)));
        case Op::kChgrp:
          return CHILD_ERRNO(chown(f.c_str(), static_cast<uid_t>(-1), 1000));
        case Op::kWrite:
        case Op::kDirectWrite: {
          const bool direct = op == Op::kDirectWrite;
          int fd = open(f.c_str(), O_WRONLY | (direct ? O_DIRECT : 0));
          if (fd < 0) return errno;
          void* buf = nullptr;
          if (posix_memalign(&buf, 4096, 4096) != 0) return ENOMEM;
          memset(buf, 'w', 4096);
          const ssize_t w = pwrite(fd, buf, direct ? 4096 : 2, 0);
          free(buf);
          if (w < 0) return errno;
          return CHILD_ERRNO(close(fd));
        }
      }
      return EINVAL;
    };
    return who.uid == 0 ? body() : AsUser(who.uid, who.gid, body);
  };
  auto expect = [](const Actor& who, Op op, unsigned mode) {
    const bool gx = (mode & 010) != 0;
    if (op == Op::kChown || op == Op::kChgrp) return mode & ~(04000u | (gx ? 02000u : 0u));
    if (who.uid == 0) return mode;
    const bool in_group = who.gid == 0;
    return mode & ~(04000u | (gx || !in_group ? 02000u : 0u));
  };
  const struct {
    Op op;
    const char* name;
  } ops[] = {{Op::kWrite, "write"},         {Op::kTruncate, "truncate"},
             {Op::kOpenTrunc, "O_TRUNC open"}, {Op::kDirectWrite, "O_DIRECT write"},
             {Op::kFallocate, "fallocate"},   {Op::kChown, "chown"},
             {Op::kChgrp, "chgrp"}};
  int n = 0;
  for (unsigned mode : {04777u, 02777u, 02767u, 06777u, 04766u, 06767u, 0777u}) {
    for (const auto& o : ops) {
      for (const Actor* who : {&root, &outsider, &member}) {
        if ((o.op == Op::kChown || o.op == Op::kChgrp) && who->uid != 0) continue;
        const std::string rel = "k" + std::to_string(n++);
        WriteFile(rel, std::string(8192, 'x'));
        ASSERT_EQ(chmod(P(rel).c_str(), mode), 0);
        SCOPED_TRACE(std::string(o.name) + " by " + who->name + ", mode " + std::to_string(mode));
        ASSERT_EQ(run(*who, o.op, P(rel)), 0);
        EXPECT_EQ(Stat(rel).st_mode & 07777, expect(*who, o.op, mode))
            << "got " << std::oct << (Stat(rel).st_mode & 07777);
      }
    }
  }
  // security.capability goes on every write, truncate, fallocate and owner change, whoever makes it, also
  // when it was set after the file had been written (the kernel stops checking once it has seen
  // a file without it).
  const std::string cap = {'\x01', '\x00', '\x00', '\x02', '\x00', '\x20', '\x00', '\x00', '\x00', '\x00',
                           '\x00', '\x00', '\x00', '\x00', '\x00', '\x00', '\x00', '\x00', '\x00', '\x00'};
  for (const auto& o : ops) {
    for (bool late : {false, true}) {
      const std::string rel = std::string("cap") + (late ? "late" : "") + std::to_string(n++);
      WriteFile(rel, "x");
      ASSERT_EQ(chmod(P(rel).c_str(), 0777), 0);
      if (late) {
        ASSERT_EQ(run(root, Op::kWrite, P(rel)), 0);
      }
      ASSERT_EQ(setxattr(P(rel).c_str(), "security.capability", cap.data(), cap.size(), 0), 0)
          << strerror(errno);
      char got[64];
      ASSERT_EQ(getxattr(P(rel).c_str(), "security.capability", got, sizeof got),
                static_cast<ssize_t>(cap.size()));
      SCOPED_TRACE(std::string(o.name) + (late ? " after an earlier write" : ""));
      ASSERT_EQ(run(root, o.op, P(rel)), 0);
      EXPECT_EQ(getxattr(P(rel).c_str(), "security.capability", got, sizeof got), -1);
      EXPECT_EQ(errno, ENODATA);
    }
  }
}

// st_blocks follows the data once it is on the volume: at the first promotion of a file and,
// for a file rewritten again and again (the daemon then merges the notices for up to a second),
// shortly after. Polled: the notice travels asynchronously.
// chown(f, -1, -1) changes no owner, yet Linux clears S_ISUID, and S_ISGID with group execute,
// of a non-directory, as for any chown (pjdfstest chown/00.t checks this).
TEST_F(Posix, ChownWithoutOwnersClearsSetIdBits) {
  WriteFile("x", "x", 0755);
  ASSERT_EQ(chmod(P("x").c_str(), 06755), 0);
  ASSERT_EQ(chown(P("x").c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(-1)), 0);
  EXPECT_EQ(Stat("x").st_mode & 07777, 0755u);
  ASSERT_EQ(chmod(P("x").c_str(), 02745), 0);  // set-group-ID without group execute stays
  ASSERT_EQ(chown(P("x").c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(-1)), 0);
  EXPECT_EQ(Stat("x").st_mode & 07777, 02745u);
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  ASSERT_EQ(chmod(P("d").c_str(), 02775), 0);  // directories keep theirs
  ASSERT_EQ(chown(P("d").c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(-1)), 0);
  EXPECT_EQ(Stat("d").st_mode & 07777, 02775u);
  // Clearing them is a mode change: someone else's file with a bit to clear is EPERM.
  ASSERT_EQ(chmod(P("x").c_str(), 06777), 0);
  const std::string x = P("x");
  EXPECT_EQ(AsUser(1000, 1000, [&] {
    return CHILD_ERRNO(chown(x.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(-1)));
  }), EPERM);
  EXPECT_EQ(Stat("x").st_mode & 07777, 06777u);
  ASSERT_EQ(chmod(P("x").c_str(), 0777), 0);
  EXPECT_EQ(AsUser(1000, 1000, [&] {
    return CHILD_ERRNO(chown(x.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(-1)));
  }), 0);
  // The same for a FIFO, whose times the kernel does not keep: that chown arrives with no
  // attribute at all. Set-group-ID without group execute goes for a caller outside the group.
  ASSERT_EQ(mkfifo(P("p").c_str(), 0644), 0);
  ASSERT_EQ(chmod(P("p").c_str(), 02745), 0);
  const std::string p = P("p");
  EXPECT_EQ(AsUser(1000, 1000, [&] {
    return CHILD_ERRNO(lchown(p.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(-1)));
  }), EPERM);
  ASSERT_EQ(lchown(P("p").c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(-1)), 0);
  EXPECT_EQ(Stat("p").st_mode & 07777, 02745u);  // root is in no need of the group
  ASSERT_EQ(chmod(P("p").c_str(), 04755), 0);
  ASSERT_EQ(lchown(P("p").c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(-1)), 0);
  EXPECT_EQ(Stat("p").st_mode & 07777, 0755u);
  // A time change alone is not a chown.
  ASSERT_EQ(chmod(P("x").c_str(), 06755), 0);
  const struct timespec omit[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
  ASSERT_EQ(utimensat(AT_FDCWD, P("x").c_str(), omit, 0), 0);
  const struct timespec some[2] = {{1000, 0}, {2000, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, P("x").c_str(), some, 0), 0);
  EXPECT_EQ(Stat("x").st_mode & 07777, 06755u);
}

TEST_F(Posix, BlocksFollowFsyncedData) {
  auto blocks_reach = [&](const std::string& rel, blkcnt_t want) {
    for (int i = 0; i < 100; ++i) {
      if (Stat(rel).st_blocks >= want) return true;
      usleep(50000);
    }
    return false;
  };
  int fd = open(P("b").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  const std::string block(65536, 'b');
  ASSERT_EQ(pwrite(fd, block.data(), block.size(), 0), 65536);
  ASSERT_EQ(fsync(fd), 0);
  EXPECT_TRUE(blocks_reach("b", 128)) << Stat("b").st_blocks;
  for (int i = 1; i < 8; ++i) {
    std::string other(65536, static_cast<char>('c' + i));
    ASSERT_EQ(pwrite(fd, other.data(), other.size(), static_cast<off_t>(i) * 65536), 65536);
    ASSERT_EQ(fsync(fd), 0);
    (void)Stat("b");  // the kernel caches what it sees now; the next promotion must undo that
  }
  EXPECT_TRUE(blocks_reach("b", 8 * 128)) << Stat("b").st_blocks;
  ASSERT_EQ(close(fd), 0);
}

TEST_F(Posix, UtimensatPermissionRules) {
  WriteFile("rw", "x");
  ASSERT_EQ(chmod(P("rw").c_str(), 0666), 0);  // root-owned, world-writable
  WriteFile("ro", "x");
  ASSERT_EQ(chmod(P("ro").c_str(), 0644), 0);
  WriteFile("own", "x");
  ASSERT_EQ(chown(P("own").c_str(), kNobody, kNobody), 0);
  ASSERT_EQ(chmod(P("own").c_str(), 0444), 0);
  auto as_nobody = [&](const std::string& rel, bool explicit_times) {
    const std::string p = P(rel);
    return AsUser(kNobody, kNobody, [&] {
      timespec ts[2] = {{100, 0}, {200, 0}};
      return CHILD_ERRNO(utimensat(AT_FDCWD, p.c_str(), explicit_times ? ts : nullptr, 0));
    });
  };
  EXPECT_EQ(as_nobody("rw", false), 0) << "UTIME_NOW with write access";
  EXPECT_EQ(as_nobody("rw", true), EPERM) << "explicit times by a non-owner";
  EXPECT_EQ(as_nobody("ro", false), EACCES) << "UTIME_NOW without write access";
  EXPECT_EQ(as_nobody("ro", true), EPERM);
  EXPECT_EQ(as_nobody("own", true), 0) << "the owner may set explicit times";
  EXPECT_EQ(as_nobody("own", false), 0) << "the owner may touch without write access";
  EXPECT_EQ(Stat("ro").st_mtim.tv_sec == 200, false);
  // {UTIME_OMIT, UTIME_NOW} by a non-owner is EPERM on Linux (only NULL or both UTIME_NOW count
  // as "touch"); both UTIME_NOW with write access is allowed.
  EXPECT_EQ(AsUser(kNobody, kNobody, [&] {
              timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
              return CHILD_ERRNO(utimensat(AT_FDCWD, P("rw").c_str(), ts, 0));
            }),
            EPERM);
  EXPECT_EQ(AsUser(kNobody, kNobody, [&] {
              timespec ts[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
              return CHILD_ERRNO(utimensat(AT_FDCWD, P("rw").c_str(), ts, 0));
            }),
            0);
  // chmod/chown by a non-owner.
  EXPECT_EQ(AsUser(kNobody, kNobody, [&] { return CHILD_ERRNO(chmod(P("rw").c_str(), 0777)); }), EPERM);
  EXPECT_EQ(AsUser(kNobody, kNobody, [&] { return CHILD_ERRNO(chown(P("own").c_str(), 0, 0)); }), EPERM);
}

}  // namespace
}  // namespace permfs::fusetest
