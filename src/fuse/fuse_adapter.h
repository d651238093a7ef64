// The FUSE adapter: PermFS mounted on Linux through the libfuse3 low-level API.
//
// Every FUSE request maps onto one PlatformShell call (src/shell/platform_shell.h) and ends in
// exactly one fuse_reply_*; errors go out as the Status's errno. Node ids are inode numbers
// (FUSE_ROOT_ID == 1 == PermFS's root), generations come from the inode record, lookup counts are
// kept by the shell (lookup/create/mkdir/... add one, forget drops them). Permission checks are
// the kernel's (default_permissions); ACLs are stored as system.posix_acl_* xattrs and enforced
// by the kernel (FUSE_CAP_POSIX_ACL). File locks (fcntl and flock) are handled by the kernel's
// local lock manager, which gives correct POSIX/OFD/BSD ownership semantics on one mount.
//
// MountMain() is `permfs mount IMAGE MOUNTPOINT [-o OPTIONS] [-f|--foreground]`:
//   options: ro, rw, sync, noatime, relatime, atime, allow_other, hot_tier_mb=N,
//            idle_flush_ms=N, writeback_cache / no_writeback_cache, threads=N, plus any option
//            libfuse understands (fsname=, subtype=, max_read=, ...).
// It replays the journal, refuses a damaged image with a message naming `permfs fsck`, runs a
// multi-threaded session loop plus a 1-second tick thread (idle promotion, journal commit) and,
// on SIGTERM/SIGINT/fusermount3 -u, promotes everything, checkpoints and unmounts cleanly so the
// next mount replays nothing.
// Thread-safety: the session threads call the shell concurrently; the shell is thread-safe.
#pragma once

namespace permfs::fuse {

int MountMain(int argc, char** argv);
int UmountMain(int argc, char** argv);

}  // namespace permfs::fuse
