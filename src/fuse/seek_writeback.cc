#define FUSE_USE_VERSION 312

#include "fuse/seek_writeback.h"

#include <fuse_lowlevel.h>

#include <utility>

namespace permfs::fuse {

void SeekWriteback::Start(fuse_session* se) {
  se_ = se;
  thread_ = std::thread([this] { Run(); });
}

void SeekWriteback::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SeekWriteback::OpenedWritable(std::uint64_t ino) {
  std::lock_guard<std::mutex> l(mu_);
  ++writers_[ino];
}

void SeekWriteback::ReleasedWritable(std::uint64_t ino) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = writers_.find(ino);
  if (it == writers_.end()) return;
  if (--it->second == 0) writers_.erase(it);
}

bool SeekWriteback::HasWriters(std::uint64_t ino) const {
  std::lock_guard<std::mutex> l(mu_);
  return writers_.count(ino) != 0;
}

bool SeekWriteback::TryDefer(std::uint64_t ino, std::function<void()> answer,
                             std::size_t limit) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (in_flight_ >= limit) return false;
    ++in_flight_;
    q_.push_back(Item{ino, std::move(answer)});
  }
  cv_.notify_one();
  return true;
}

std::uint64_t SeekWriteback::writebacks() const {
  std::lock_guard<std::mutex> l(mu_);
  return writebacks_;
}

void SeekWriteback::Run() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [this] { return stop_ || !q_.empty(); });
    if (q_.empty()) return;  // stopping and drained
    Item it = std::move(q_.front());
    q_.pop_front();
    const bool stopping = stop_;
    l.unlock();
    // Offset 0, length 0: the whole page cache of the file. Dirty pages are written back (and
    // their WRITEs answered) before the call returns. After the session has ended it fails
    // (ENOTCONN); the answer is then given from what the daemon has, and nobody waits for it.
    if (!stopping) fuse_lowlevel_notify_inval_inode(se_, it.ino, 0, 0);
    it.answer();
    l.lock();
    ++writebacks_;
    --in_flight_;
  }
}

}  // namespace permfs::fuse
