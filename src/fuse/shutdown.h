// How a mounted daemon stops on SIGTERM/SIGINT/SIGHUP without losing what the kernel caches and
// without hanging on the kernel.
//
// With the writeback cache the kernel holds written pages the daemon has not seen yet. libfuse's
// own handler ends the session loop at once: those pages can then never be written (their WRITEs
// find nobody serving them), and a thread of ours that is inside a kernel call waiting for such a
// write-back (a cache invalidation that writes dirty pages back first) never returns, so the
// process cannot exit and the mount's users hang in the kernel with it.
//   - Terminator turns the signals into a stop request handled on its own thread: first syncfs()
//     on the mount and a write-back of every file open for writing, served by the still-running
//     loop, so the kernel's dirty pages reach the daemon (and the volume, at its clean unmount);
//     then it ends the session loop. That drain waits at most a bound: a wedged kernel
//     connection does not keep SIGTERM from working.
//   - AbortConnection() (of MountDevice::FuseConnection()) is the backstop: once the loop has ended, a thread still
//     blocked in the kernel on a request nobody will serve is released by aborting the FUSE
//     connection (/sys/fs/fuse/connections/N/abort), which fails those requests.
// A stop signal that the daemon inherited as ignored (nohup, SIGINT of a background job) stays
// ignored. Thread-safety: one Terminator per process (it owns the signal handlers); its methods are called
// from the thread that runs the session loop. The free functions are thread-safe.
#pragma once

#include <pthread.h>

#include <atomic>
#include <functional>
#include <memory>
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
  // alone) and before any thread is started, so that every thread inherits the mask.
  Terminator();
  ~Terminator();
  Terminator(const Terminator&) = delete;
  Terminator& operator=(const Terminator&) = delete;

  // Starts the stop thread for session `se` mounted at `mountpoint` (absolute). The thread that
  // calls this must be the one that then runs the session loop. `write_back` runs on a stop
  // request after the syncfs, with no lock held, while the loop still serves: it has the kernel
  // write back, and waits for, the dirty pages syncfs does not wait for (FUSE answers syncfs
  // once the WRITEs are queued, not served).
  void Start(fuse_session* se, const std::string& mountpoint, std::function<void()> write_back);
  // The session loop has returned (for any reason): stops the thread.
  void LoopEnded();
  // Whether a signal asked for the stop.
  bool signalled() const { return signalled_.load(); }
  // Whether the syncfs of a stop request is still inside the kernel (after LoopEnded: it never
  // returns unless the connection is aborted).
  bool drain_pending() const;
  // Waits until that syncfs and write-back have returned (they use the session and the shell:
  // call before either goes; after AbortConnection if drain_pending()).
  void WaitForDrain() const;

 private:
  void Run();
  void DrainKernelCache();

  struct DrainState;
  std::shared_ptr<DrainState> drain_;  // set by the stop thread before it exits
  int pipe_[2] = {-1, -1};
  int installed_[3] = {};  // the stop signals whose handler is ours
  int installed_count_ = 0;
  fuse_session* se_ = nullptr;
  std::string mountpoint_;
  std::function<void()> write_back_;
  pthread_t loop_thread_{};
  std::thread thread_;
  std::atomic<bool> loop_ended_{false};
  std::atomic<bool> signalled_{false};
};

}  // namespace permfs::fuse
