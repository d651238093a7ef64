// FUSE over io_uring for a libfuse 3 low-level session (Linux 6.14+, fuse.enable_uring=Y).
//
// With the classic /dev/fuse transport a request issued on one CPU wakes a daemon thread that
// may run on the other, and its reply wakes the caller back: two cross-CPU wakeups per request,
// which is most of a metadata operation's cost on a small VM. The kernel's io_uring transport
// keeps one request queue per CPU; this class serves each queue with threads pinned to that CPU,
// so a request is answered where it was issued.
//
// libfuse 3.14 cannot speak the ring protocol, but it lets the session's reads and writes be
// replaced (fuse_session_custom_io). The transport uses that seam: through wire_tap's INIT hook
// it adds FUSE_OVER_IO_URING to libfuse's reply to FUSE_INIT; after the reply it
// registers one ring entry per thread. A request that arrives on a ring is rebuilt into the
// classic byte layout and handed to fuse_session_process_buf(), so every operation runs through
// the same libfuse dispatch and the same adapter code as before; the reply libfuse writes is
// routed back into the entry it came from (by its unique id) and committed. FORGET, INTERRUPT
// and notifications keep using /dev/fuse, as the kernel requires.
//
// Lifecycle: Start() after fuse_session_mount() and fuse_daemonize(), before the session loop;
// Stop() after the loop has returned and before fuse_session_unmount()/fuse_session_destroy();
// destroy the object after fuse_session_destroy(). If the kernel cannot do it (parameter off,
// io_uring unavailable, INIT not offering it, registration refused) the session keeps the
// classic path and nothing is lost; Start() says why in *why.
// Thread-safety: Start/Stop/destructor from one thread; the I/O hooks are called by libfuse from
// any thread. One transport per process.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

struct fuse_session;

namespace permfs::fuse {

// Whether the fuse module serves io_uring (/sys/module/fuse/parameters/enable_uring).
bool FuseUringEnabled();
// Turns the module parameter on (needs root). False with *why when it cannot.
bool EnableFuseUring(std::string* why);

class UringTransport {
 public:
  // threads_per_cpu ring threads on every possible CPU (the kernel wants every queue served).
  static std::unique_ptr<UringTransport> Start(fuse_session* se, unsigned threads_per_cpu,
                                               std::string* why);
  ~UringTransport();
  UringTransport(const UringTransport&) = delete;
  UringTransport& operator=(const UringTransport&) = delete;

  // Stops and joins the ring threads (each finishes the request it is serving). Idempotent.
  void Stop();
  unsigned queues() const;
  unsigned threads_per_queue() const;
  // Whether FUSE_INIT negotiated the ring and the entries were registered.
  bool negotiated() const;
  // Requests served over the rings so far.
  std::uint64_t served() const;
  // Why the ring was not used after Start() succeeded (INIT or registration), or empty.
  std::string failure() const;

  struct Impl;

 private:
  explicit UringTransport(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace permfs::fuse
