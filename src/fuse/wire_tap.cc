#define FUSE_USE_VERSION 312
#include "fuse/wire_tap.h"

#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <string.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <vector>

namespace permfs::fuse::wire {
namespace {

std::atomic<bool> g_init_seen{false};
std::atomic<std::uint64_t> g_init_unique{0};
std::atomic<std::uint32_t> g_offer_flags{0}, g_offer_flags2{0};
std::atomic<bool> g_killpriv_v2{false};
std::atomic<InitReplyHook*> g_init_hook{nullptr};
thread_local bool tls_kill_suidgid = false;

template <typename T>
bool ReadArg(const unsigned char* p, std::size_t len, T* out) {
  if (len < sizeof(fuse_in_header) + sizeof(T)) return false;
  memcpy(out, p + sizeof(fuse_in_header), sizeof(T));
  return true;
}

ssize_t ClassicRead(int fd, void* buf, size_t len, void*) { return Read(fd, buf, len); }

ssize_t ClassicWritev(int fd, struct iovec* iov, int count, void*) { return Writev(fd, iov, count); }

}  // namespace

ssize_t Read(int fd, void* buf, std::size_t len) {
  const ssize_t r = ::read(fd, buf, len);
  if (r > 0) SawRequest(buf, static_cast<std::size_t>(r));
  return r;
}

ssize_t Writev(int fd, const struct iovec* iov, int count) {
  fuse_out_header oh;
  if (count <= 0 || iov[0].iov_len < sizeof oh) return ::writev(fd, iov, count);
  memcpy(&oh, iov[0].iov_base, sizeof oh);
  if (oh.unique == 0 || oh.unique != g_init_unique.load()) return ::writev(fd, iov, count);
  std::vector<unsigned char> msg;
  for (int i = 0; i < count; ++i) {
    const auto* b = static_cast<const unsigned char*>(iov[i].iov_base);
    msg.insert(msg.end(), b, b + iov[i].iov_len);
  }
  const InitOffer offer{g_offer_flags.load(), g_offer_flags2.load()};
  constexpr std::size_t kFlagsAt = sizeof oh + offsetof(fuse_init_out, flags);
  if (oh.error == 0 && (offer.flags & FUSE_HANDLE_KILLPRIV_V2) && msg.size() >= kFlagsAt + 4) {
    std::uint32_t flags;
    memcpy(&flags, msg.data() + kFlagsAt, sizeof flags);
    flags |= FUSE_HANDLE_KILLPRIV_V2;
    memcpy(msg.data() + kFlagsAt, &flags, sizeof flags);
    g_killpriv_v2.store(true);
  }
  InitReplyHook* hook = g_init_hook.load();
  if (hook) hook->EditInitReply(&msg, offer);
  struct iovec one = {msg.data(), msg.size()};
  const ssize_t r = ::writev(fd, &one, 1);
  const int err = errno;
  if (hook) hook->InitReplyWritten(r, err);
  errno = err;
  return r;
}

void SetInitReplyHook(InitReplyHook* hook) { g_init_hook.store(hook); }

void SawRequest(const void* buf, std::size_t len) {
  tls_kill_suidgid = false;
  const auto* p = static_cast<const unsigned char*>(buf);
  fuse_in_header in;
  if (len < sizeof in) return;
  memcpy(&in, p, sizeof in);
  switch (in.opcode) {
    case FUSE_WRITE: {
      fuse_write_in w;
      if (ReadArg(p, len, &w)) tls_kill_suidgid = (w.write_flags & FUSE_WRITE_KILL_SUIDGID) != 0;
      break;
    }
    case FUSE_SETATTR: {
      fuse_setattr_in s;
      if (ReadArg(p, len, &s)) tls_kill_suidgid = (s.valid & FATTR_KILL_SUIDGID) != 0;
      break;
    }
    case FUSE_OPEN: {
      fuse_open_in o;
      if (ReadArg(p, len, &o)) tls_kill_suidgid = (o.open_flags & FUSE_OPEN_KILL_SUIDGID) != 0;
      break;
    }
    case FUSE_INIT: {
      if (g_init_seen.exchange(true)) break;
      fuse_init_in ii{};  // flags2 only from 7.36 kernels: a shorter request leaves it zero
      memcpy(&ii, p + sizeof in, std::min(len - sizeof in, sizeof ii));
      g_offer_flags.store(ii.flags);
      g_offer_flags2.store((ii.flags & FUSE_INIT_EXT) ? ii.flags2 : 0);
      g_init_unique.store(in.unique);
      break;
    }
    default:
      break;
  }
}

bool KillSuidgid() { return tls_kill_suidgid; }

bool KillPrivV2() { return g_killpriv_v2.load(); }

bool InstallClassicHooks(fuse_session* se) {
  fuse_custom_io io;
  memset(&io, 0, sizeof io);
  io.read = ClassicRead;
  io.writev = ClassicWritev;
  return fuse_session_custom_io(se, &io, fuse_session_fd(se)) == 0;
}

}  // namespace permfs::fuse::wire
