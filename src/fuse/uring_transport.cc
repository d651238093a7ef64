#define FUSE_USE_VERSION 312

#include "fuse/uring_transport.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "fuse/uring_protocol.h"
#include "fuse/wire_tap.h"

namespace permfs::fuse {

using uring::CmdReq;
using uring::ReqHeader;

namespace {

constexpr std::uint64_t kEntryTag = 1;  // user_data of an entry's REGISTER / COMMIT_AND_FETCH
constexpr std::uint64_t kStopTag = 2;   // user_data of the stop eventfd read
// Payload buffer per entry: the kernel wants at least max(8 KiB, max_write, max_pages pages);
// the adapter negotiates 1 MiB writes and 256 pages. INIT refuses the ring if that grows.
constexpr std::size_t kPayloadCap = std::size_t{1} << 20;
// The payload starts this far into its buffer, so the in-header and the opcode's argument can be
// put right in front of it to rebuild the classic request layout without moving the payload.
constexpr std::size_t kLead = 4096;
static_assert(kLead >= sizeof(fuse_in_header) + uring::kOpArea);
constexpr int kRegisterAttempts = 2000;  // x 1 ms while the kernel says EAGAIN (INIT in flight)
constexpr int kMaxRearms = 1000;         // fresh entries after refused commits, per worker

std::string Errno(const char* what, int err) { return std::string(what) + ": " + strerror(err); }

// Number of possible CPUs: the kernel keeps one queue per possible CPU and serves requests only
// once every queue has an entry. glibc (2.35+) counts them from /sys/devices/system/cpu/possible.
unsigned PossibleCpus() {
  const int n = get_nprocs_conf();
  return n > 0 ? static_cast<unsigned>(n) : 1;
}

}  // namespace

bool FuseUringEnabled() {
  FILE* f = std::fopen("/sys/module/fuse/parameters/enable_uring", "r");
  if (!f) return false;
  int c = std::fgetc(f);
  std::fclose(f);
  return c == 'Y' || c == '1';
}

bool EnableFuseUring(std::string* why) {
  FILE* f = std::fopen("/sys/module/fuse/parameters/enable_uring", "w");
  if (!f) {
    *why = errno == ENOENT ? "this kernel has no FUSE over io_uring (needs Linux 6.14+)"
                           : Errno("/sys/module/fuse/parameters/enable_uring", errno);
    return false;
  }
  bool ok = std::fputs("Y", f) >= 0;
  ok = std::fclose(f) == 0 && ok;
  if (!ok || !FuseUringEnabled()) {
    *why = "cannot set /sys/module/fuse/parameters/enable_uring";
    return false;
  }
  return true;
}

namespace {
struct Worker;
}

struct UringTransport::Impl final : wire::InitReplyHook {
  fuse_session* se = nullptr;
  int fd = -1;       // the session's /dev/fuse descriptor
  int stop_fd = -1;  // eventfd (semaphore): one count stops one worker
  unsigned nq = 0, tpq = 0;
  std::vector<std::unique_ptr<Worker>> workers;  // fixed once Start() returns

  std::mutex mu;
  std::condition_variable cv;
  enum class Phase { kWaitInit, kRegister, kAbort } phase = Phase::kWaitInit;
  unsigned reported = 0;
  std::string setup_error;  // first worker that could not set up its ring
  std::string failure;      // why the ring is not in use, after Start()
  bool stopped = false;

  // Unpinned threads that run WRITE requests (see Worker::Serve).
  std::mutex pool_mu;
  std::condition_variable pool_cv;
  std::vector<Worker*> pool_queue;
  bool pool_stop = false;
  std::vector<std::thread> pool;

  // The INIT reply's edit, for InitReplyWritten (both run on the thread writing the reply).
  bool init_patched = false;
  std::string init_why;
  std::atomic<bool> negotiated{false};
  std::atomic<std::uint64_t> served{0};

  void Report(const std::string& err) {
    std::lock_guard<std::mutex> l(mu);
    if (!err.empty() && setup_error.empty()) setup_error = err;
    ++reported;
    cv.notify_all();
  }
  // Blocks a worker until INIT decided; true: register the entry.
  bool WaitForRegister() {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [this] { return phase != Phase::kWaitInit; });
    return phase == Phase::kRegister;
  }
  void SetPhase(Phase p, const std::string& why) {
    std::lock_guard<std::mutex> l(mu);
    if (phase == Phase::kWaitInit) phase = p;
    if (!why.empty() && failure.empty()) failure = why;
    cv.notify_all();
  }
  void Fail(const std::string& why) {
    std::lock_guard<std::mutex> l(mu);
    if (failure.empty()) failure = why;
  }
  void EditInitReply(std::vector<unsigned char>* msg, const wire::InitOffer& offer) override;
  void InitReplyWritten(ssize_t result, int err) override;
  Worker* Find(std::uint64_t unique);
  void Offload(Worker* w);
  void RunPool();
  void Stop();
};

namespace {

std::atomic<UringTransport::Impl*> g_active{nullptr};
thread_local Worker* tls_worker = nullptr;

// One ring, one registered entry, one thread pinned to the entry's CPU. One entry per thread:
// an entry is on the kernel's available list only while its thread is waiting for it, so a
// request never lands behind one that is being served.
struct Worker {
  UringTransport::Impl* t = nullptr;
  unsigned qid = 0;
  io_uring ring{};
  bool have_ring = false;
  ReqHeader* hdr = nullptr;
  unsigned char* buf = nullptr;      // kLead + kPayloadCap
  unsigned char* payload = nullptr;  // buf + kLead
  struct iovec iov[2] = {};
  std::uint64_t stop_value = 0;
  fuse_buf request{};  // the rebuilt request, for an offloaded dispatch
  std::atomic<std::uint64_t> unique{0};  // the request being served; 0: none
  std::mutex mu;
  std::condition_variable cv;
  bool replied = false;
  std::thread th;

  ~Worker() {
    if (have_ring) io_uring_queue_exit(&ring);
    free(hdr);
    free(buf);
  }

  std::string Setup() {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(qid, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);  // best effort (offline CPU)
    io_uring_params p{};
    // Single issuer + deferred task work: the kernel's completion work runs when this thread
    // waits for it, with no signalling IPI.
    p.flags = IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int rc = io_uring_queue_init_params(4, &ring, &p);
    if (rc == -EINVAL) {
      p = io_uring_params{};
      p.flags = IORING_SETUP_SQE128;
      rc = io_uring_queue_init_params(4, &ring, &p);
    }
    if (rc < 0) return Errno("io_uring_queue_init", -rc);
    have_ring = true;
    hdr = static_cast<ReqHeader*>(aligned_alloc(64, (sizeof(ReqHeader) + 63) / 64 * 64));
    buf = static_cast<unsigned char*>(aligned_alloc(4096, kLead + kPayloadCap));
    if (!hdr || !buf) return "out of memory for the ring buffers";
    memset(hdr, 0, sizeof *hdr);
    payload = buf + kLead;
    iov[0] = {hdr, sizeof *hdr};
    iov[1] = {payload, kPayloadCap};
    return std::string();
  }

  io_uring_sqe* CmdSqe(std::uint32_t op, std::uint64_t commit_id) {
    // Never null: at most two SQEs are outstanding. With SQE128 each slot is two io_uring_sqe
    // long and the command area runs into the second half; the empty asm hides the slot's
    // provenance from GCC, which would otherwise bound it by liburing's 64-byte struct.
    unsigned char* slot = reinterpret_cast<unsigned char*>(io_uring_get_sqe(&ring));
    asm("" : "+r"(slot));
    memset(slot, 0, 2 * sizeof(io_uring_sqe));
    auto* sqe = reinterpret_cast<io_uring_sqe*>(slot);
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = t->fd;
    sqe->cmd_op = op;
    sqe->user_data = kEntryTag;
    CmdReq req{};
    req.commit_id = commit_id;
    req.qid = static_cast<std::uint16_t>(qid);
    memcpy(slot + offsetof(io_uring_sqe, cmd), &req, sizeof req);
    return sqe;
  }
  void PostRegister() {
    io_uring_sqe* sqe = CmdSqe(uring::kCmdRegister, 0);
    sqe->addr = reinterpret_cast<std::uintptr_t>(iov);
    sqe->len = 2;
  }
  void PostCommit(std::uint64_t commit_id) { CmdSqe(uring::kCmdCommitAndFetch, commit_id); }
  void PostStopWait() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    io_uring_prep_read(sqe, t->stop_fd, &stop_value, sizeof stop_value, 0);
    sqe->user_data = kStopTag;
  }

  void Run() {
    t->Report(Setup());
    if (!t->WaitForRegister()) return;
    PostRegister();
    PostStopWait();
    bool registered = false;
    int attempts = 0, rearms = 0;
    for (;;) {
      int rc = io_uring_submit_and_wait(&ring, 1);
      if (rc < 0 && rc != -EINTR) {
        t->Fail(Errno("io_uring_submit_and_wait", -rc));
        return;
      }
      io_uring_cqe* cqe = nullptr;
      while (io_uring_peek_cqe(&ring, &cqe) == 0) {
        const std::uint64_t tag = cqe->user_data;
        const int res = cqe->res;
        io_uring_cqe_seen(&ring, cqe);
        if (tag == kStopTag) return;
        if (res == -EAGAIN && !registered && ++attempts < kRegisterAttempts) {
          usleep(1000);  // the kernel has not finished processing the INIT reply
          PostRegister();
          continue;
        }
        if (res < 0) {
          // ENOTCONN/ECONNABORTED/ECANCELED: the filesystem is going away.
          if (res == -ENOTCONN || res == -ECONNABORTED || res == -ECANCELED) return;
          t->Fail(Errno(registered ? "FUSE_IO_URING_CMD_COMMIT_AND_FETCH"
                                   : "FUSE_IO_URING_CMD_REGISTER",
                        -res));
          // A refused registration has put the connection back on /dev/fuse. A refused commit
          // (the request was gone) leaves the kernel's entry unusable: register a fresh one so
          // this CPU's queue keeps being served.
          if (!registered || ++rearms > kMaxRearms) return;
          PostRegister();
          continue;
        }
        registered = true;
        Serve();
      }
    }
  }

  void SetReply(std::uint64_t unique, int error) {
    fuse_out_header oh{static_cast<std::uint32_t>(sizeof(fuse_out_header)), error, unique};
    memcpy(hdr->in_out, &oh, sizeof oh);
    hdr->ent.payload_sz = 0;
  }

  // The entry holds a request: rebuild the classic layout, let libfuse dispatch it, commit the
  // reply it wrote (routed here by Reply()) and fetch the next request.
  void Serve() {
    fuse_in_header in;
    memcpy(&in, hdr->in_out, sizeof in);
    const std::uint64_t commit_id = hdr->ent.commit_id;
    const std::size_t psz = hdr->ent.payload_sz;
    const std::size_t args = in.len >= sizeof in ? in.len - sizeof in : 0;
    if (in.len < sizeof in || psz > kPayloadCap || args < psz || args - psz > uring::kOpArea) {
      SetReply(in.unique, -EIO);  // a request this code cannot rebuild: refuse, stay alive
      PostCommit(commit_id);
      return;
    }
    const std::size_t op = args - psz;
    unsigned char* start = payload - sizeof in - op;
    memcpy(start, &in, sizeof in);
    memcpy(start + sizeof in, hdr->op_in, op);
    {
      std::lock_guard<std::mutex> l(mu);
      replied = false;
    }
    unique.store(in.unique, std::memory_order_release);
    memset(&request, 0, sizeof request);
    request.size = in.len;
    request.mem = start;
    if (in.opcode == FUSE_WRITE) {
      // Writes come from the kernel's writeback threads and nobody waits on the CPU that sent
      // them: copying them into the hot tier on this (pinned) CPU would compete with the
      // application there while the other CPUs idle. Any CPU may run them.
      t->Offload(this);
    } else {
      tls_worker = this;
      wire::SawRequest(request.mem, request.size);
      fuse_session_process_buf(t->se, &request);
      tls_worker = nullptr;
    }
    if (in.opcode == FUSE_FORGET || in.opcode == FUSE_BATCH_FORGET) {
      SetReply(in.unique, 0);  // never sent over a ring; libfuse does not answer them
    } else {
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [this] { return replied; });
    }
    unique.store(0, std::memory_order_release);
    t->served.fetch_add(1, std::memory_order_relaxed);
    PostCommit(commit_id);
  }

  // libfuse's reply to this entry's request: header into the header area, body into the
  // payload. May run on any thread (a reply given later than the dispatch).
  ssize_t Reply(const struct iovec* v, int count) {
    std::size_t total = 0;
    bool overlaps = false;
    const unsigned char* lo = buf;
    const unsigned char* hi = buf + kLead + kPayloadCap;
    for (int i = 0; i < count; ++i) {
      total += v[i].iov_len;
      const auto* b = static_cast<const unsigned char*>(v[i].iov_base);
      if (i > 0 && v[i].iov_len && b < hi && b + v[i].iov_len > lo) overlaps = true;
    }
    fuse_out_header oh;
    memcpy(&oh, v[0].iov_base, sizeof oh);
    std::size_t body = total - sizeof oh;
    std::lock_guard<std::mutex> l(mu);
    if (body > kPayloadCap) {
      oh.error = -EIO;  // cannot happen with the negotiated sizes
      body = 0;
    } else {
      std::vector<unsigned char> tmp;
      unsigned char* out = payload;
      if (overlaps) {
        tmp.resize(body);
        out = tmp.data();
      }
      std::size_t skip = sizeof oh, at = 0;
      for (int i = 0; i < count; ++i) {
        const auto* b = static_cast<const unsigned char*>(v[i].iov_base);
        std::size_t n = v[i].iov_len;
        const std::size_t s = std::min(skip, n);
        skip -= s;
        if (n > s) memcpy(out + at, b + s, n - s), at += n - s;
      }
      if (overlaps) memcpy(payload, tmp.data(), body);
    }
    oh.len = static_cast<std::uint32_t>(sizeof oh + body);
    memcpy(hdr->in_out, &oh, sizeof oh);
    hdr->ent.payload_sz = static_cast<std::uint32_t>(body);
    replied = true;
    cv.notify_one();
    return static_cast<ssize_t>(total);
  }
};

ssize_t HookRead(int fd, void* buf, size_t len, void*) { return wire::Read(fd, buf, len); }

ssize_t HookWritev(int fd, struct iovec* iov, int count, void*) {
  UringTransport::Impl* t = g_active.load(std::memory_order_acquire);
  if (t && count > 0 && iov[0].iov_len >= sizeof(fuse_out_header)) {
    fuse_out_header oh;
    memcpy(&oh, iov[0].iov_base, sizeof oh);
    if (oh.unique != 0) {
      if (Worker* w = t->Find(oh.unique)) return w->Reply(iov, count);
    }
  }
  return wire::Writev(fd, iov, count);
}

}  // namespace

// libfuse's INIT reply: FUSE_OVER_IO_URING is added when the kernel offered it and the
// negotiated sizes fit the ring's buffers. From then on the kernel holds requests until every
// queue has an entry, so the workers register right after the reply is written.
void UringTransport::Impl::EditInitReply(std::vector<unsigned char>* msg,
                                         const wire::InitOffer& offer) {
  init_patched = false;
  fuse_out_header oh;
  memcpy(&oh, msg->data(), sizeof oh);
  fuse_init_out io{};
  if (!(offer.flags2 & uring::kFlags2OverIoUring)) {
    init_why = "the kernel did not offer FUSE_OVER_IO_URING in FUSE_INIT";
    return;
  }
  if (oh.error != 0 || msg->size() < sizeof oh + offsetof(fuse_init_out, flags2) + sizeof io.flags2) {
    init_why = "FUSE_INIT failed or predates protocol 7.36";
    return;
  }
  const std::size_t n = std::min(msg->size() - sizeof oh, sizeof io);
  memcpy(&io, msg->data() + sizeof oh, n);
  const std::size_t pages = (io.flags & FUSE_MAX_PAGES) ? io.max_pages : uring::kDefaultMaxPages;
  const std::size_t need = std::max({uring::kMinPayload, std::size_t{io.max_write}, pages * 4096});
  if (need > kPayloadCap) {
    init_why = "the negotiated request size exceeds the ring buffers";
    return;
  }
  io.flags |= FUSE_INIT_EXT;
  io.flags2 |= uring::kFlags2OverIoUring;
  memcpy(msg->data() + sizeof oh, &io, n);
  init_patched = true;
}

void UringTransport::Impl::InitReplyWritten(ssize_t result, int err) {
  if (init_patched && result >= 0) {
    negotiated.store(true);
    SetPhase(Phase::kRegister, "");
  } else {
    SetPhase(Phase::kAbort, init_patched ? Errno("writing the FUSE_INIT reply", err) : init_why);
  }
}

Worker* UringTransport::Impl::Find(std::uint64_t u) {
  if (tls_worker && tls_worker->unique.load(std::memory_order_relaxed) == u) return tls_worker;
  for (auto& w : workers)
    if (w->unique.load(std::memory_order_acquire) == u) return w.get();
  return nullptr;
}

void UringTransport::Impl::Offload(Worker* w) {
  {
    std::lock_guard<std::mutex> l(pool_mu);
    pool_queue.push_back(w);
  }
  pool_cv.notify_one();
}

void UringTransport::Impl::RunPool() {
  std::unique_lock<std::mutex> l(pool_mu);
  for (;;) {
    pool_cv.wait(l, [this] { return pool_stop || !pool_queue.empty(); });
    if (pool_queue.empty()) return;
    Worker* w = pool_queue.front();
    pool_queue.erase(pool_queue.begin());
    l.unlock();
    wire::SawRequest(w->request.mem, w->request.size);
    fuse_session_process_buf(se, &w->request);  // the reply finds w by its unique id
    l.lock();
  }
}

void UringTransport::Impl::Stop() {
  {
    std::lock_guard<std::mutex> l(mu);
    if (stopped) return;
    stopped = true;
    if (phase == Phase::kWaitInit) phase = Phase::kAbort;
    cv.notify_all();
  }
  if (stop_fd >= 0) {
    const std::uint64_t n = workers.size();
    if (::write(stop_fd, &n, sizeof n) != static_cast<ssize_t>(sizeof n))
      std::perror("permfs mount: stopping the io_uring threads");
  }
  for (auto& w : workers)
    if (w->th.joinable()) w->th.join();
  {
    std::lock_guard<std::mutex> l(pool_mu);
    pool_stop = true;
  }
  pool_cv.notify_all();
  for (std::thread& th : pool)
    if (th.joinable()) th.join();
}

UringTransport::UringTransport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

UringTransport::~UringTransport() {
  impl_->Stop();
  Impl* self = impl_.get();
  if (g_active.compare_exchange_strong(self, nullptr)) wire::SetInitReplyHook(nullptr);
  impl_->workers.clear();  // rings closed, buffers freed: the connection is gone by now
  if (impl_->stop_fd >= 0) ::close(impl_->stop_fd);
}

std::unique_ptr<UringTransport> UringTransport::Start(fuse_session* se, unsigned threads_per_cpu,
                                                      std::string* why) {
  if (!FuseUringEnabled()) {
    *why = "the fuse module's enable_uring parameter is off";
    return nullptr;
  }
  if (g_active.load() != nullptr) {
    *why = "another session of this process already uses io_uring";
    return nullptr;
  }
  auto impl = std::make_unique<Impl>();
  impl->se = se;
  impl->fd = fuse_session_fd(se);
  impl->nq = PossibleCpus();
  impl->tpq = std::clamp(threads_per_cpu, 1u, 16u);
  impl->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_SEMAPHORE);
  if (impl->stop_fd < 0) {
    *why = Errno("eventfd", errno);
    return nullptr;
  }
  std::unique_ptr<UringTransport> tr(new UringTransport(std::move(impl)));
  Impl* t = tr->impl_.get();
  for (unsigned q = 0; q < t->nq; ++q) {
    for (unsigned i = 0; i < t->tpq; ++i) {
      auto w = std::make_unique<Worker>();
      w->t = t;
      w->qid = q;
      t->workers.push_back(std::move(w));
    }
  }
  for (unsigned i = 0; i < 2 * t->nq; ++i) t->pool.emplace_back([t] { t->RunPool(); });
  for (auto& w : t->workers) {
    Worker* wp = w.get();
    wp->th = std::thread([wp] { wp->Run(); });
  }
  std::string setup_error;
  {
    std::unique_lock<std::mutex> l(t->mu);
    t->cv.wait(l, [t] { return t->reported == t->workers.size(); });
    setup_error = t->setup_error;
  }
  if (!setup_error.empty()) {
    *why = setup_error;
    return nullptr;  // the destructor stops the waiting workers
  }
  fuse_custom_io io;
  memset(&io, 0, sizeof io);
  io.read = HookRead;
  io.writev = HookWritev;
  g_active.store(t, std::memory_order_release);
  wire::SetInitReplyHook(t);
  if (fuse_session_custom_io(se, &io, t->fd) != 0) {
    *why = "fuse_session_custom_io failed";
    return nullptr;
  }
  return tr;
}

void UringTransport::Stop() { impl_->Stop(); }
unsigned UringTransport::queues() const { return impl_->nq; }
unsigned UringTransport::threads_per_queue() const { return impl_->tpq; }
bool UringTransport::negotiated() const { return impl_->negotiated.load(); }
std::uint64_t UringTransport::served() const { return impl_->served.load(); }
std::string UringTransport::failure() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->failure;
}

}  // namespace permfs::fuse
