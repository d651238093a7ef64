#include "fuse/fuse_util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace permfs::fusetest {

namespace {
std::string g_permfs = "permfs";
constexpr long kFuseSuperMagic = 0x65735546;

int StatusOf(int ws) {
  if (WIFEXITED(ws)) return WEXITSTATUS(ws);
  if (WIFSIGNALED(ws)) return 128 + WTERMSIG(ws);
  return -1;
}

// Waits for pid up to timeout_ms; returns the exit status or -2 on timeout.
int WaitFor(pid_t pid, int timeout_ms) {
  for (int waited = 0;; waited += 10) {
    int ws = 0;
    pid_t r = waitpid(pid, &ws, WNOHANG);
    if (r == pid) return StatusOf(ws);
    if (r < 0) return -1;
    if (waited >= timeout_ms) return -2;
    usleep(10000);
  }
}
}  // namespace

void SetPermfsBin(const std::string& p) { g_permfs = p; }
const std::string& PermfsBin() { return g_permfs; }

std::uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

int Run(const std::vector<std::string>& argv, std::string* out) {
  int p[2] = {-1, -1};
  if (out && pipe2(p, O_CLOEXEC) != 0) return -1;
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (out) {
      dup2(p[1], 1);
      dup2(p[1], 2);
    }
    std::vector<char*> a;
    for (const std::string& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execvp(a[0], a.data());
    _exit(127);
  }
  if (out) {
    close(p[1]);
    out->clear();
    char buf[4096];
    ssize_t n;
    while ((n = read(p[0], buf, sizeof buf)) > 0) out->append(buf, static_cast<std::size_t>(n));
    close(p[0]);
  }
  int ws = 0;
  if (waitpid(pid, &ws, 0) != pid) return -1;
  return StatusOf(ws);
}

int Sh(const std::string& cmd, std::string* out) { return Run({"/bin/sh", "-c", cmd}, out); }

int AsUser(std::uint32_t uid, std::uint32_t gid, const std::function<int()>& fn) {
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setresgid(gid, gid, gid) != 0 ||
        setresuid(uid, uid, uid) != 0)
      _exit(255);
    int rc = fn();
    std::fflush(nullptr);
    _exit(rc & 0xff);
  }
  int ws = 0;
  if (waitpid(pid, &ws, 0) != pid) return -1;
  return StatusOf(ws);
}

bool IsFuseMount(const std::string& path) {
  struct statfs sf;
  if (statfs(path.c_str(), &sf) != 0) return errno == ENOTCONN;  // a FUSE mount whose daemon died
  if (sf.f_type != kFuseSuperMagic) return false;
  // The directory itself must be the mount root (not a FUSE mount somewhere above).
  struct stat a, b;
  if (stat(path.c_str(), &a) != 0 || stat((path + "/..").c_str(), &b) != 0) return false;
  return a.st_dev != b.st_dev;
}

Mount::Mount(const std::string& image_size, const std::string& mkfs_extra) {
  const char* tmp = getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/permfs-fuse.XXXXXX";
  std::vector<char> t(templ.begin(), templ.end());
  t.push_back('\0');
  if (!mkdtemp(t.data())) return;
  dir_ = t.data();
  chmod(dir_.c_str(), 0755);  // other users (permission tests) must reach the mount point
  image_ = dir_ + "/img";
  mnt_ = dir_ + "/mnt";
  log_ = dir_ + "/mount.log";
  mkdir(mnt_.c_str(), 0755);
  std::string out;
  int rc = Sh(PermfsBin() + " mkfs " + image_ + " --size " + image_size + " -q " + mkfs_extra, &out);
  if (rc != 0) {
    std::fprintf(stderr, "mkfs failed (%d): %s\n", rc, out.c_str());
    return;
  }
  made_ = true;
}

Mount::~Mount() {
  if (pid_ > 0) {
    std::string why;
    if (!Stop(&why)) {
      std::fprintf(stderr, "cleanup unmount: %s\n", why.c_str());
      Run({"fusermount3", "-uz", mnt_}, nullptr);
      if (pid_ > 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
      }
    }
  }
  if (!dir_.empty() && !getenv("PERMFS_FUSE_KEEP")) {
    if (!IsFuseMount(mnt_)) Run({"rm", "-rf", dir_}, nullptr);
  }
}

std::string Mount::Log() const {
  std::ifstream f(log_);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string ReadFuseUringParam() {
  std::ifstream f("/sys/module/fuse/parameters/enable_uring");
  std::string v;
  if (!(f >> v)) return "";
  return v;
}

void WriteFuseUringParam(const std::string& value) {
  std::ofstream f("/sys/module/fuse/parameters/enable_uring");
  f << value;
}

namespace {
// Mount options from PERMFS_FUSE_MOUNT_OPTS appended to a test's own.
std::string WithExtraOpts(const std::string& opts) {
  const char* extra = getenv("PERMFS_FUSE_MOUNT_OPTS");
  if (!extra || !*extra) return opts;
  return opts.empty() ? std::string(extra) : opts + "," + extra;
}

// With PERMFS_FUSE_EXPECT_URING: the daemon's exit report must show requests served over a ring.
bool ServedOverUring(const std::string& log, std::string* why) {
  if (!getenv("PERMFS_FUSE_EXPECT_URING")) return true;
  const std::string key = "served ";
  std::size_t at = log.rfind(key);
  if (at == std::string::npos || log.find("over io_uring", at) == std::string::npos ||
      log.find("io_uring not used") != std::string::npos ||
      std::strtoull(log.c_str() + at + key.size(), nullptr, 10) == 0) {
    *why = "expected requests served over io_uring: " + log;
    return false;
  }
  return true;
}
}  // namespace

bool Mount::Start(const std::string& test_opts, std::string* why) {
  const std::string opts = WithExtraOpts(test_opts);
  if (pid_ > 0) {
    *why = "already mounted";
    return false;
  }
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    *why = "fork failed";
    return false;
  }
  if (pid == 0) {
    int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) dup2(nul, 0);
    std::vector<std::string> args = {PermfsBin(), "mount", image_, mnt_, "-f"};
    if (!opts.empty()) args.push_back("-o"), args.push_back(opts);
    std::vector<char*> a;
    for (std::string& s : args) a.push_back(s.data());
    a.push_back(nullptr);
    execv(a[0], a.data());
    _exit(127);
  }
  pid_ = pid;
  for (int i = 0; i < 1000; ++i) {  // 10 s
    if (IsFuseMount(mnt_)) return true;
    int ws = 0;
    if (waitpid(pid_, &ws, WNOHANG) == pid_) {
      pid_ = -1;
      *why = "permfs mount exited with " + std::to_string(StatusOf(ws)) + ": " + Log();
      return false;
    }
    usleep(10000);
  }
  *why = "mount did not appear within 10 s: " + Log();
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
  Run({"fusermount3", "-uz", mnt_}, nullptr);
  return false;
}

bool Mount::Stop(std::string* why) {
  if (pid_ <= 0) return true;
  std::string out;
  int rc = -1;
  for (int i = 0; i < 100; ++i) {  // retry while busy (a child may still hold a file open)
    rc = Run({"fusermount3", "-u", mnt_}, &out);
    if (rc == 0 || !IsFuseMount(mnt_)) break;
    usleep(50000);
  }
  if (rc != 0 && IsFuseMount(mnt_)) {
    *why = "fusermount3 -u failed: " + out;
    return false;
  }
  int st = WaitFor(pid_, 120000);
  if (st == -2) {
    *why = "daemon did not exit within 120 s after unmount";
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return false;
  }
  pid_ = -1;
  if (st != 0) {
    *why = "permfs mount exited with " + std::to_string(st) + ": " + Log();
    return false;
  }
  return ServedOverUring(Log(), why);
}

void Mount::KillDaemon() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void Mount::Detach() {
  std::string out;
  if (Run({"fusermount3", "-u", mnt_}, &out) != 0) Run({"fusermount3", "-uz", mnt_}, &out);
}

void Mount::Kill9() {
  KillDaemon();
  Detach();
}

int Mount::Fsck(std::string* out) { return Run({PermfsBin(), "fsck", image_}, out); }

}  // namespace permfs::fusetest
