#define FUSE_USE_VERSION 312
#include "fuse/shutdown.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstdio>

namespace permfs::fuse {
namespace {

constexpr char kFusectl[] = "/sys/fs/fuse/connections";

int g_stop_fd = -1;  // write end of the Terminator's pipe

void OnStopSignal(int) {
  const int saved = errno;
  const char c = 1;
  if (g_stop_fd >= 0) (void)!write(g_stop_fd, &c, 1);
  errno = saved;
}

void OnPoke(int) {}  // only interrupts the session loop's wait

}  // namespace

bool AbortConnection(unsigned conn, std::string* why) {
  const std::string path = std::string(kFusectl) + "/" + std::to_string(conn) + "/abort";
  if (access(path.c_str(), F_OK) != 0 &&
      mount("fusectl", kFusectl, "fusectl", 0, nullptr) != 0 && errno != EBUSY) {
    *why = std::string("fusectl is not mounted and cannot be: ") + strerror(errno);
    return false;
  }
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, "1", 1) != 1) {
    *why = path + ": " + strerror(errno);
    if (fd >= 0) close(fd);
    return false;
  }
  close(fd);
  return true;
}

Terminator::Terminator() {
  if (pipe2(pipe_, O_CLOEXEC) != 0) return;
  g_stop_fd = pipe_[1];
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    // A signal the daemon was started with ignored stays ignored (nohup; SIGINT of a background
    // job), as libfuse does.
    struct sigaction old;
    if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    sigaction(sig, &sa, nullptr);
    installed_[installed_count_++] = sig;
  }
  sa.sa_handler = OnPoke;  // no SA_RESTART: the loop's wait returns
  sigaction(SIGUSR2, &sa, nullptr);
}

Terminator::~Terminator() {
  LoopEnded();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (int i = 0; i < installed_count_; ++i) sigaction(installed_[i], &sa, nullptr);
  sigaction(SIGUSR2, &sa, nullptr);
  g_stop_fd = -1;
  for (int fd : pipe_)
    if (fd >= 0) close(fd);
}

void Terminator::Start(fuse_session* se, std::function<void()> write_back) {
  if (pipe_[0] < 0) return;
  se_ = se;
  write_back_ = std::move(write_back);
  loop_thread_ = pthread_self();
  thread_ = std::thread([this] { Run(); });
}

void Terminator::LoopEnded() {
  if (loop_ended_.exchange(true) || !thread_.joinable()) return;
  const char c = 0;  // wakes Run() without a signal
  (void)!write(pipe_[1], &c, 1);
  thread_.join();
}

void Terminator::Run() {
  char c = 0;
  while (read(pipe_[0], &c, 1) < 0 && errno == EINTR) {
  }
  if (c == 0 || loop_ended_.load()) return;
  if (write_back_) write_back_();
  fuse_session_exit(se_);
  // The loop thread waits on a semaphore that only a request or a signal wakes; a signal that
  // lands just before the wait is lost, so keep poking until the loop has returned.
  while (!loop_ended_.load()) {
    pthread_kill(loop_thread_, SIGUSR2);
    for (int i = 0; i < 10 && !loop_ended_.load(); ++i) usleep(10000);
  }
}

}  // namespace permfs::fuse
