// What the FUSE wire carries that libfuse 3.14 does not pass on, picked up around it.
//
// FUSE_HANDLE_KILLPRIV_V2 (protocol 7.33) moves clearing set-user-ID/set-group-ID bits and
// security.capability on write, truncate and chown from the kernel to the server. In exchange
// the kernel marks the superblock SB_NOSEC and stops asking GETXATTR(security.capability) before
// every write(2) once it has seen a file carry neither — a whole round trip per small write.
// libfuse 3.14 neither negotiates the flag nor passes on the per-request "kill" bits
// (FUSE_WRITE_KILL_SUIDGID in WRITE, FATTR_KILL_SUIDGID in SETATTR, FUSE_OPEN_KILL_SUIDGID in
// an O_TRUNC OPEN), so this module reads them off the raw request bytes and patches the INIT
// reply:
//   - SawRequest() gets every request's classic byte layout on the thread that is about to
//     dispatch it (fuse_session_process_buf); KillSuidgid() then answers for that request.
//   - Writev() writes replies; it adds FUSE_HANDLE_KILLPRIV_V2 to libfuse's INIT reply when the
//     kernel offered it, and lets a transport that negotiates more (io_uring) edit that reply
//     too (InitReplyHook), so the INIT exchange is read and patched in one place.
//   - InstallClassicHooks() puts both on a session that reads /dev/fuse itself (the io_uring
//     transport calls them from its own hooks instead).
// What the server must do once the flag is negotiated (PlatformShell's KillPrivileges): on a
// request carrying the kill bit, clear S_ISUID, and S_ISGID when S_IXGRP is set; on every WRITE,
// size change, fallocate and owner change, remove security.capability.
// Thread-safety: SawRequest/KillSuidgid use thread-local state; the INIT bookkeeping is atomic.
// One FUSE session per process.
#pragma once

#include <sys/uio.h>
#include <cstddef>
#include <cstdint>
#include <vector>

struct fuse_session;

namespace permfs::fuse::wire {

void SawRequest(const void* buf, std::size_t len);
bool KillSuidgid();

// Whether FUSE_HANDLE_KILLPRIV_V2 was negotiated (set when the INIT reply is patched).
bool KillPrivV2();

// What the kernel offered in its FUSE_INIT request (fuse_init_in flags and flags2).
struct InitOffer {
  std::uint32_t flags = 0, flags2 = 0;
};

// A transport that adds its own flags to the INIT reply. Install before the session loop, remove
// before the hook object goes away; called on the thread that writes the reply.
class InitReplyHook {
 public:
  // libfuse's INIT reply, header first, before it is written (FUSE_HANDLE_KILLPRIV_V2 already
  // added to a successful one); may change it.
  virtual void EditInitReply(std::vector<unsigned char>* msg, const InitOffer& offer) = 0;
  // What writev() returned for it (err: errno when that was negative).
  virtual void InitReplyWritten(ssize_t result, int err) = 0;

 protected:
  ~InitReplyHook() = default;
};
void SetInitReplyHook(InitReplyHook* hook);

// read(2) of a request from /dev/fuse, seen by SawRequest.
ssize_t Read(int fd, void* buf, std::size_t len);
// writev(2) of a reply, with the INIT reply patched.
ssize_t Writev(int fd, const struct iovec* iov, int count);

// Hooks for a session on the classic /dev/fuse transport. False if libfuse refused them.
bool InstallClassicHooks(fuse_session* se);

}  // namespace permfs::fuse::wire
