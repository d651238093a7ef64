// SeekWriteback: SEEK_DATA / SEEK_HOLE answers that include the data the kernel still holds.
//
// With the writeback cache the kernel keeps written pages for a while before it sends them as
// WRITE requests, and FUSE_LSEEK does not write them back first. A file written through a
// descriptor that is still open can therefore hold data (and a size) the daemon has not seen:
// answering from the daemon's view alone says "hole" or ENXIO over data that write(2) already
// accepted, and a sparse-aware copy of the file (cp, tar --sparse) would lose it.
//
// Pages are dirtied only through a writable handle (write(2), or a shared writable mapping,
// which keeps its handle until munmap), and the kernel writes them back before it sends the
// RELEASE of that handle. So a file with no writable handle open has nothing pending, and its
// answer is the daemon's. For a file with one open, the answer waits for a write-back:
//   - the request is handed to this class's worker thread and the session thread returns at
//     once (a reply may come from any thread);
//   - the worker asks the kernel to invalidate the file's page cache, which writes every dirty
//     page back first, as WRITE requests that the session's threads serve, and returns when
//     they are answered;
//   - the worker then calls the answer function, which asks the shell and replies.
// Over a ring transport the worker that received the LSEEK waits for its reply, and the WRITEs
// of the write-back go to the ring queue of the CPU the worker thread of this class runs on, so
// they need a free ring worker there. With fewer write-backs in flight than workers per queue
// one is always free (nothing else a worker serves waits for the kernel), so the adapter passes
// that bound to TryDefer(); above it, it answers ENOSYS and the kernel falls back to its generic
// lseek (every byte up to its own size is data: no holes reported, never a wrong answer) for the
// rest of the mount.
//
// Thread-safety: every method may be called from any thread. Start() before the first Defer(),
// Stop() after the session loop has ended (it answers what is still queued).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>

struct fuse_session;

namespace permfs::fuse {

class SeekWriteback {
 public:
  // Marks a fuse_file_info::fh as a writable handle (the adapter keeps no other handle state).
  static constexpr std::uint64_t kWritableHandle = 1;

  SeekWriteback() = default;
  ~SeekWriteback() { Stop(); }
  SeekWriteback(const SeekWriteback&) = delete;
  SeekWriteback& operator=(const SeekWriteback&) = delete;

  void Start(fuse_session* se);
  void Stop();

  void OpenedWritable(std::uint64_t ino);
  void ReleasedWritable(std::uint64_t ino);
  bool HasWriters(std::uint64_t ino) const;

  // Writes back ino's dirty pages on the worker thread, then calls answer() there; false (and
  // nothing done) when `limit` write-backs are already queued or running.
  bool TryDefer(std::uint64_t ino, std::function<void()> answer, std::size_t limit);

  // Write-backs done so far (for tests and diagnostics).
  std::uint64_t writebacks() const;

 private:
  struct Item {
    std::uint64_t ino;
    std::function<void()> answer;
  };
  void Run();

  fuse_session* se_ = nullptr;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> q_;
  bool stop_ = false;
  std::uint64_t writebacks_ = 0;
  std::size_t in_flight_ = 0;  // queued or running
  std::unordered_map<std::uint64_t, std::uint32_t> writers_;  // ino -> writable handles
};

}  // namespace permfs::fuse
