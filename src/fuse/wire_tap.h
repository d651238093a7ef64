// What the FUSE wire carries that libfuse 3.14 does not pass on, picked up around it.
//
// FUSE_HANDLE_KILLPRIV_V2 (protocol 7.33) moves clearing set-user-ID/set-group-ID bits and
// security.capability on write, truncate and chown from the kernel to the server. In exchange
// the kernel marks the superblock SB_NOSEC and stops asking GETXATTR(security.capability) before
// every write(2) once it has seen a file carry neither — a whole round trip per small write.
// libfuse 3.14 neither negotiates the flag nor passes on the per-request "kill" bits
// (FUSE_WRITE_KILL_SUIDGID in WRITE, FATTR_KILL_SUIDGID in SETATTR, FUSE_OPEN_KILL_SUIDGID in
// an O_TRUNC OPEN), so this module reads them
// off the raw request bytes and patches the INIT reply:
//   - SawRequest() gets every request's classic byte layout on the thread that is about to
//     dispatch it (fuse_session_process_buf); KillSuidgid() then answers for that request.
//   - IsInitReply()/PatchInitReply() add FUSE_HANDLE_KILLPRIV_V2 to libfuse's INIT reply when
//     the kernel offered it.
//   - InstallClassicHooks() puts both on a session that reads /dev/fuse itself (the io_uring
//     transport calls them from its own hooks instead).
// What the server must do once the flag is negotiated (PlatformShell's KillPrivileges): on
// WRITE and on SETATTR carrying the kill bit, clear S_ISUID, and S_ISGID when S_IXGRP is set; on
// every WRITE, size change and owner change, remove security.capability.
// Thread-safety: SawRequest/KillSuidgid use thread-local state; the INIT bookkeeping is atomic.
// One FUSE session per process.
#pragma once

#include <sys/uio.h>
#include <cstddef>
#include <cstdint>

struct fuse_session;

namespace permfs::fuse::wire {

void SawRequest(const void* buf, std::size_t len);
bool KillSuidgid();

// Whether the out-header's unique is FUSE_INIT's.
bool IsInitReply(std::uint64_t unique);
// Patches the INIT reply body (after the fuse_out_header) in place.
void PatchInitReply(void* body, std::size_t len);
// Whether FUSE_HANDLE_KILLPRIV_V2 was negotiated (set when the patched reply was sent).
bool KillPrivV2();

// writev(2) of a reply, with the INIT reply patched.
ssize_t Writev(int fd, const struct iovec* iov, int count);

// Hooks for a session on the classic /dev/fuse transport. False if libfuse refused them.
bool InstallClassicHooks(fuse_session* se);

}  // namespace permfs::fuse::wire
