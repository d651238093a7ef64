// Multi-threaded stress through a real FUSE mount with checksums: 8 threads, each writing and
// reading back checksummed blocks in its own files (against its own model), while all of them
// create, fill, rename-over, link, unlink and read self-checking files in one shared directory
// (every file a reader can open must be complete and intact). At the end every file is verified,
// the volume is unmounted, fsck'd, remounted and verified again.
// Environment: PERMFS_STRESS_SECONDS (default 30), PERMFS_STRESS_SEED.
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fuse/fuse_gtest.h"

namespace permfs::fusetest {
namespace {

constexpr int kThreads = 8, kOwnFiles = 3, kBlocks = 96;
constexpr std::size_t kBlock = 16 * 1024;

std::uint64_t EnvU64(const char* name, std::uint64_t def) {
  const char* v = getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 0) : def;
}

std::uint64_t Fnv(const char* p, std::size_t n) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ static_cast<std::uint8_t>(p[i])) * 1099511628211ull;
  return h;
}

// Block: {thread, file, idx, seq, checksum of the rest} + payload.
void MakeBlock(std::uint64_t t, std::uint64_t f, std::uint64_t idx, std::uint64_t seq, char* out,
               std::mt19937_64& rng) {
  std::uint64_t h[4] = {t, f, idx, seq};
  memcpy(out, h, sizeof h);
  for (std::size_t i = 40; i < kBlock; i += 8) {
    std::uint64_t x = rng();
    memcpy(out + i, &x, 8);
  }
  std::uint64_t c = Fnv(out + 40, kBlock - 40) ^ Fnv(out, 32);
  memcpy(out + 32, &c, 8);
}
bool BlockOk(const char* b, std::uint64_t t, std::uint64_t f, std::uint64_t idx, std::uint64_t seq) {
  std::uint64_t h[5];
  memcpy(h, b, sizeof h);
  return h[0] == t && h[1] == f && h[2] == idx && h[3] == seq && h[4] == (Fnv(b + 40, kBlock - 40) ^ Fnv(b, 32));
}

// Shared-directory file: {magic, length, checksum} + payload of `length` bytes.
std::string MakeShared(std::mt19937_64& rng) {
  const std::size_t len = 1 + rng() % 200000;
  std::string s(24 + len, '\0');
  for (std::size_t i = 24; i < s.size(); ++i) s[i] = static_cast<char>(rng() >> 56);
  std::uint64_t h[3] = {0x5348415245444649ull, len, Fnv(s.data() + 24, len)};
  memcpy(s.data(), h, sizeof h);
  return s;
}
bool SharedOk(const std::string& s, std::string* why) {
  if (s.size() < 24) {
    *why = "short file (" + std::to_string(s.size()) + " bytes)";
    return false;
  }
  std::uint64_t h[3];
  memcpy(h, s.data(), sizeof h);
  if (h[0] != 0x5348415245444649ull || h[1] != s.size() - 24) {
    *why = "bad header or length " + std::to_string(s.size());
    return false;
  }
  if (h[2] != Fnv(s.data() + 24, s.size() - 24)) {
    *why = "checksum mismatch";
    return false;
  }
  return true;
}

bool ReadFile(const std::string& path, std::string* out, int* err) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    *err = errno;
    return false;
  }
  out->clear();
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out->append(buf, static_cast<std::size_t>(n));
  *err = n < 0 ? errno : 0;
  close(fd);
  return n == 0;
}

struct Shared {
  std::string mnt;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> errors{0}, ops{0}, shared_reads{0};
  std::mutex mu;
  std::vector<std::string> messages;
  void Error(const std::string& m) {
    if (errors.fetch_add(1) < 20) {
      std::lock_guard<std::mutex> l(mu);
      messages.push_back(m);
    }
  }
};

class Worker {
 public:
  Worker(Shared* s, int t, std::uint64_t seed) : s_(s), t_(t), rng_(seed) {
    seq_.assign(kOwnFiles, std::vector<std::uint64_t>(kBlocks, 0));
  }
  std::string Own(int f) const { return s_->mnt + "/own-" + std::to_string(t_) + "-" + std::to_string(f); }

  void Run() {
    std::vector<int> fds(kOwnFiles);
    for (int f = 0; f < kOwnFiles; ++f) {
      fds[f] = open(Own(f).c_str(), O_RDWR | O_CREAT, 0644);
      if (fds[f] < 0) return s_->Error("open own: " + std::string(strerror(errno)));
    }
    std::vector<char> b(kBlock);
    std::string data;
    while (!s_->stop.load(std::memory_order_relaxed)) {
      s_->ops.fetch_add(1, std::memory_order_relaxed);
      const std::uint64_t w = rng_() % 100;
      const int f = static_cast<int>(rng_() % kOwnFiles);
      const std::uint64_t idx = rng_() % kBlocks;
      if (w < 30) {  // own write
        const std::uint64_t seq = ++counter_;
        MakeBlock(static_cast<std::uint64_t>(t_), static_cast<std::uint64_t>(f), idx, seq, b.data(), rng_);
        if (pwrite(fds[f], b.data(), kBlock, static_cast<off_t>(idx * kBlock)) != static_cast<ssize_t>(kBlock))
          s_->Error("pwrite own: " + std::string(strerror(errno)));
        seq_[f][idx] = seq;
      } else if (w < 55) {  // own read
        ssize_t r = pread(fds[f], b.data(), kBlock, static_cast<off_t>(idx * kBlock));
        const std::uint64_t seq = seq_[f][idx];
        if (seq == 0) continue;
        if (r != static_cast<ssize_t>(kBlock) ||
            !BlockOk(b.data(), static_cast<std::uint64_t>(t_), static_cast<std::uint64_t>(f), idx, seq))
          s_->Error("thread " + std::to_string(t_) + " file " + std::to_string(f) + " block " +
                    std::to_string(idx) + ": checksum/sequence mismatch (read " + std::to_string(r) + ")");
      } else if (w < 58) {
        if (fsync(fds[f]) != 0) s_->Error("fsync: " + std::string(strerror(errno)));
      } else if (w < 75) {  // publish a complete file into the shared directory
        const std::string tmp = s_->mnt + "/shared/.tmp-" + std::to_string(t_);
        const std::string dst = s_->mnt + "/shared/s" + std::to_string(rng_() % 64);
        data = MakeShared(rng_);
        int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size()) || close(fd) != 0) {
          s_->Error("write tmp: " + std::string(strerror(errno)));
          continue;
        }
        if (rename(tmp.c_str(), dst.c_str()) != 0) s_->Error("rename: " + std::string(strerror(errno)));
      } else if (w < 90) {  // read a shared file (may vanish; must never be partial)
        const std::string p = s_->mnt + "/shared/s" + std::to_string(rng_() % 64);
        int err = 0;
        if (!ReadFile(p, &data, &err)) {
          if (err != ENOENT) s_->Error("read shared " + p + ": " + strerror(err));
          continue;
        }
        std::string why;
        if (!SharedOk(data, &why)) s_->Error("shared file " + p + ": " + why);
        s_->shared_reads.fetch_add(1, std::memory_order_relaxed);
      } else if (w < 94) {  // unlink / link / rename among shared names
        const std::string a = s_->mnt + "/shared/s" + std::to_string(rng_() % 64);
        const std::string c = s_->mnt + "/shared/s" + std::to_string(rng_() % 64);
        int r = 0;
        switch (rng_() % 3) {
          case 0: r = unlink(a.c_str()); break;
          case 1: r = link(a.c_str(), c.c_str()); break;
          default: r = rename(a.c_str(), c.c_str()); break;
        }
        if (r != 0 && errno != ENOENT && errno != EEXIST) s_->Error("namespace op: " + std::string(strerror(errno)));
      } else if (w < 97) {  // subdirectories appear and disappear
        const std::string d = s_->mnt + "/shared/d" + std::to_string(rng_() % 8);
        if (mkdir(d.c_str(), 0755) != 0 && errno != EEXIST) s_->Error("mkdir: " + std::string(strerror(errno)));
        const std::string a = s_->mnt + "/shared/s" + std::to_string(rng_() % 64);
        if (rename(a.c_str(), (d + "/moved").c_str()) != 0 && errno != ENOENT)
          s_->Error("rename into dir: " + std::string(strerror(errno)));
        if (rmdir(d.c_str()) != 0 && errno != ENOTEMPTY && errno != ENOENT)
          s_->Error("rmdir: " + std::string(strerror(errno)));
        if (rng_() % 2 && unlink((d + "/moved").c_str()) != 0 && errno != ENOENT)
          s_->Error("unlink moved: " + std::string(strerror(errno)));
      } else {  // readdir of the shared directory
        DIR* dir = opendir((s_->mnt + "/shared").c_str());
        if (!dir) {
          s_->Error("opendir: " + std::string(strerror(errno)));
          continue;
        }
        while (readdir(dir)) {
        }
        closedir(dir);
      }
    }
    for (int f = 0; f < kOwnFiles; ++f) close(fds[f]);
  }

  // Verifies this worker's files (after the run or a remount).
  void Verify() {
    std::vector<char> b(kBlock);
    for (int f = 0; f < kOwnFiles; ++f) {
      int fd = open(Own(f).c_str(), O_RDONLY);
      if (fd < 0) {
        s_->Error("verify open: " + std::string(strerror(errno)));
        continue;
      }
      for (std::uint64_t idx = 0; idx < kBlocks; ++idx) {
        if (!seq_[f][idx]) continue;
        ssize_t r = pread(fd, b.data(), kBlock, static_cast<off_t>(idx * kBlock));
        if (r != static_cast<ssize_t>(kBlock) ||
            !BlockOk(b.data(), static_cast<std::uint64_t>(t_), static_cast<std::uint64_t>(f), idx, seq_[f][idx]))
          s_->Error("verify: thread " + std::to_string(t_) + " file " + std::to_string(f) + " block " +
                    std::to_string(idx) + " mismatch");
      }
      close(fd);
    }
  }

 private:
  Shared* s_;
  int t_;
  std::mt19937_64 rng_;
  std::uint64_t counter_ = 0;
  std::vector<std::vector<std::uint64_t>> seq_;
};

void VerifyShared(Shared* s) {
  DIR* d = opendir((s->mnt + "/shared").c_str());
  ASSERT_NE(d, nullptr);
  std::vector<std::string> names;
  while (dirent* e = readdir(d))
    if (e->d_name[0] == 's' || e->d_name[0] == 'd') names.push_back(e->d_name);
  closedir(d);
  for (const std::string& n : names) {
    std::string p = s->mnt + "/shared/" + n;
    if (n[0] == 'd') p += "/moved";
    std::string data, why;
    int err = 0;
    if (!ReadFile(p, &data, &err)) {
      if (n[0] == 's' || err != ENOENT) ADD_FAILURE() << p << ": " << strerror(err);
      continue;
    }
    EXPECT_TRUE(SharedOk(data, &why)) << p << ": " << why;
  }
}

TEST(Stress, ThreadsWithChecksums) {
  const std::uint64_t seconds = EnvU64("PERMFS_STRESS_SECONDS", 30);
  const std::uint64_t seed = EnvU64("PERMFS_STRESS_SEED", NowNs());
  std::printf("stress: %d threads, %llu s, seed %llu\n", kThreads,
              static_cast<unsigned long long>(seconds), static_cast<unsigned long long>(seed));
  Mount m("4G");
  // A small hot tier and idle window so promotion runs concurrently with everything else.
  const std::string opts = "hot_tier_mb=16,idle_flush_ms=200";
  ASSERT_NO_FATAL_FAILURE(MountUp(m, opts));
  Shared s;
  s.mnt = m.mnt();
  ASSERT_EQ(mkdir((s.mnt + "/shared").c_str(), 0755), 0);
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < kThreads; ++t) workers.push_back(std::make_unique<Worker>(&s, t, seed + static_cast<std::uint64_t>(t)));
  std::vector<std::thread> threads;
  const std::uint64_t t0 = NowNs();
  for (auto& w : workers) threads.emplace_back([&w] { w->Run(); });
  while (NowNs() - t0 < seconds * 1000000000ull && s.errors.load() == 0) usleep(100000);
  s.stop.store(true);
  for (auto& t : threads) t.join();
  std::printf("stress: %llu operations in %.1f s, %llu complete shared-file reads, %llu errors\n",
              static_cast<unsigned long long>(s.ops.load()), static_cast<double>(NowNs() - t0) / 1e9,
              static_cast<unsigned long long>(s.shared_reads.load()),
              static_cast<unsigned long long>(s.errors.load()));
  for (auto& w : workers) w->Verify();
  VerifyShared(&s);
  ASSERT_NO_FATAL_FAILURE(Remount(m, opts));
  for (auto& w : workers) w->Verify();
  VerifyShared(&s);
  for (const std::string& msg : s.messages) ADD_FAILURE() << msg;
  EXPECT_EQ(s.errors.load(), 0u);
  EXPECT_GT(s.shared_reads.load(), 100u);
  UnmountAndFsck(m);
}

}  // namespace
}  // namespace permfs::fusetest
