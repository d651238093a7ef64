// How a mounted daemon stops on SIGTERM/SIGINT/SIGHUP without losing what the kernel caches and
// without hanging on the kernel.
//
// With the writeback cache the kernel holds written pages the daemon has not seen yet. libfuse's
// own handler ends the session loop at once: those pages can then never be written (their WRITEs
// find nobody serving them), and a thread of ours that is inside a kernel call waiting for such a
// write-back (a cache invalidation that writes dirty pages back first) never returns, so the
// process cannot exit and the mount's users hang in the kernel with it.
//   - Terminator turns the signals into a stop request handled on its own thread: it first runs
//     the mount's write-back (the kernel writes back the pages of every file open for writing,
//     served by the still-running loop, so they reach the daemon and the volume at its clean
//     unmount), then ends the session loop.
//   - AbortConnection() (of MountDevice::FuseConnection()) is the backstop: once the loop has
//     ended, a thread still blocked in the kernel on a request nobody will serve is released by
//     aborting the FUSE connection (/sys/fs/fuse/connections/N/abort), which fails those
//     requests.
// A stop signal that the daemon inherited as ignored (nohup, SIGINT of a background job) stays
// ignored. A daemon that cannot serve the write-back's WRITEs (deadlocked) does not stop on a
// signal; aborting its connection does.
// Thread-safety: one Terminator per process (it owns the signal handlers); its methods are called
// from the thread that runs the session loop. AbortConnection is thread-safe.
#pragma once

#include <pthread.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>

struct fuse_session;

namespace permfs::fuse {

// Aborts FUSE connection `conn` (mounting fusectl at /sys/fs/fuse/connections if needed and
// allowed). False, with the reason in *why, if it could not.
bool AbortConnection(unsigned conn, std::string* why);

class Terminator {
 public:
  // Installs the handlers; call before fuse_set_signal_handlers (which then leaves these signals
  // alone).
  Terminator();
  ~Terminator();
  Terminator(const Terminator&) = delete;
  Terminator& operator=(const Terminator&) = delete;

  // Starts the stop thread for session `se`. The thread that calls this must be the one that
  // then runs the session loop. `write_back` runs on a stop request, with no lock held, while
  // the loop still serves; it returns once the kernel's dirty pages are written back.
  void Start(fuse_session* se, std::function<void()> write_back);
  // The session loop has returned (for any reason): stops the thread.
  void LoopEnded();

 private:
  void Run();

  int pipe_[2] = {-1, -1};
  int installed_[3] = {};  // the stop signals whose handler is ours
  int installed_count_ = 0;
  fuse_session* se_ = nullptr;
  std::function<void()> write_back_;
  pthread_t loop_thread_{};
  std::thread thread_;
  std::atomic<bool> loop_ended_{false};
};

}  // namespace permfs::fuse
