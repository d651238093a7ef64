// Data-integrity exerciser through a real FUSE mount: random pwrite/pread (buffered and
// O_DIRECT), ftruncate, fallocate (plain, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE), writes through
// MAP_SHARED mappings, fsync/fdatasync, page-cache eviction and close/reopen on a few files, every
// read checked against an in-memory model. Halfway through it unmounts, remounts (with other
// hot-tier options) and verifies every file; at the end it verifies, unmounts, runs fsck,
// remounts and verifies again.
//
// Environment: PERMFS_EXERCISER_SEED (default: time-based; always printed),
//              PERMFS_EXERCISER_OPS (default 100000).
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "fuse/fuse_gtest.h"

namespace permfs::fusetest {
namespace {

constexpr int kFiles = 4;
constexpr std::uint64_t kMaxSize = 6ull << 20;
constexpr std::size_t kMaxIo = 200 * 1024;
// Phase 1 keeps the hot tier tiny and the idle window short so budget and idle promotions run
// all the time; phase 2 uses the defaults.
constexpr const char* kOpts1 = "hot_tier_mb=2,idle_flush_ms=20";
constexpr const char* kOpts2 = "";

std::uint64_t EnvU64(const char* name, std::uint64_t def) {
  const char* v = getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 0) : def;
}

class Exerciser {
 public:
  Exerciser(Mount* m, std::uint64_t seed) : m_(m), rng_(seed) {
    for (int i = 0; i < kFiles; ++i) model_[i].clear();
  }

  bool OpenAll() {
    for (int i = 0; i < kFiles; ++i) {
      fd_[i] = open(Path(i).c_str(), O_RDWR | O_CREAT, 0644);
      dfd_[i] = open(Path(i).c_str(), O_RDONLY | O_DIRECT);
      if (fd_[i] < 0 || dfd_[i] < 0) {
        ADD_FAILURE() << "open " << Path(i) << ": " << strerror(errno);
        return false;
      }
    }
    return true;
  }
  void CloseAll() {
    for (int i = 0; i < kFiles; ++i) {
      if (fd_[i] >= 0) {
        EXPECT_EQ(close(fd_[i]), 0) << strerror(errno);
      }
      if (dfd_[i] >= 0) close(dfd_[i]);
      fd_[i] = dfd_[i] = -1;
    }
  }

  // Runs n operations; returns false once too many mismatches were seen.
  bool Run(std::uint64_t first, std::uint64_t n) {
    for (std::uint64_t k = 0; k < n; ++k) {
      op_ = first + k;
      if (!Step()) return false;
      if (HasFatalFailure() || mismatches_ >= 5) return false;
    }
    return true;
  }

  bool VerifyAll(const char* when) {
    for (int i = 0; i < kFiles; ++i) {
      std::string got;
      int fd = open(Path(i).c_str(), O_RDONLY);
      if (fd < 0) {
        ADD_FAILURE() << when << ": open " << Path(i) << ": " << strerror(errno);
        return false;
      }
      struct stat st;
      fstat(fd, &st);
      got.resize(model_[i].size() + 4096);
      ssize_t total = 0, r;
      while ((r = pread(fd, got.data() + total, got.size() - static_cast<std::size_t>(total), total)) > 0)
        total += r;
      close(fd);
      got.resize(static_cast<std::size_t>(total));
      if (static_cast<std::uint64_t>(st.st_size) != model_[i].size())
        Mismatch(i, 0, std::string(when) + ": size " + std::to_string(st.st_size) + " != model " +
                           std::to_string(model_[i].size()));
      Compare(i, 0, got, model_[i].size(), when);
    }
    return mismatches_ == 0;
  }

  std::uint64_t mismatches() const { return mismatches_; }
  const std::uint64_t* counts() const { return counts_; }
  static constexpr const char* kNames[] = {"write", "read", "direct-read", "truncate", "punch",
                                           "zero-range", "allocate", "mmap-write", "fsync",
                                           "evict", "reopen"};

 private:
  static bool HasFatalFailure() { return ::testing::Test::HasFatalFailure(); }
  std::string Path(int i) const { return m_->path("ex" + std::to_string(i)); }
  std::uint64_t R(std::uint64_t n) { return n ? rng_() % n : 0; }

  void Log(const std::string& s) {
    recent_.push_back("#" + std::to_string(op_) + " " + s);
    if (recent_.size() > 24) recent_.pop_front();
  }
  void Mismatch(int f, std::uint64_t off, const std::string& what) {
    ++mismatches_;
    std::string hist;
    for (const std::string& s : recent_) hist += "    " + s + "\n";
    ADD_FAILURE() << "MISMATCH at op " << op_ << " file ex" << f << " offset " << off << ": " << what
                  << "\n  recent operations:\n"
                  << hist;
  }
  // got = bytes read at off (expected length want_len from the model).
  void Compare(int f, std::uint64_t off, const std::string& got, std::uint64_t want_len,
               const char* what) {
    const std::string& m = model_[f];
    if (got.size() != want_len) {
      Mismatch(f, off, std::string(what) + ": read " + std::to_string(got.size()) + " bytes, model has " +
                           std::to_string(want_len));
      return;
    }
    if (want_len && memcmp(got.data(), m.data() + off, want_len) != 0) {
      std::size_t i = 0;
      while (got[i] == m[off + i]) ++i;
      char b[160];
      snprintf(b, sizeof b, "%s: first difference at %llu: got 0x%02x want 0x%02x", what,
               static_cast<unsigned long long>(off + i), static_cast<unsigned char>(got[i]),
               static_cast<unsigned char>(m[off + i]));
      Mismatch(f, off + i, b);
    }
  }
  void Fill(std::string* buf, std::size_t n) {
    buf->resize(n);
    // Mostly random bytes; sometimes a run of zeros or a repeated byte (dedup / hole paths).
    const int kind = static_cast<int>(R(10));
    if (kind == 0) {
      std::fill(buf->begin(), buf->end(), '\0');
    } else if (kind == 1) {
      std::fill(buf->begin(), buf->end(), static_cast<char>('a' + R(26)));
    } else {
      for (std::size_t i = 0; i < n; i += 8) {
        std::uint64_t x = rng_();
        memcpy(buf->data() + i, &x, std::min<std::size_t>(8, n - i));
      }
    }
  }
  std::uint64_t RandOff(int f, std::uint64_t slack) {
    const std::uint64_t size = model_[f].size();
    // Favour record boundaries (64 KiB) and the end of the file.
    switch (R(4)) {
      case 0: {
        const std::uint64_t boundary = (R(size + slack) / 65536) * 65536 + 2;
        return std::min<std::uint64_t>(kMaxSize - 1, boundary - R(5));
      }
      case 1: return size ? size - R(std::min<std::uint64_t>(size, 4096)) : 0;
      default: return R(size + slack);
    }
  }

  bool Step() {
    const int f = static_cast<int>(R(kFiles));
    std::string& m = model_[f];
    const std::uint64_t w = R(1000);
    char d[200];
    if (w < 330) {  // write
      std::uint64_t off = std::min<std::uint64_t>(RandOff(f, 256 * 1024), kMaxSize - 1);
      std::size_t len = static_cast<std::size_t>(1 + R(R(4) == 0 ? kMaxIo : 8192));
      if (off + len > kMaxSize) len = static_cast<std::size_t>(kMaxSize - off);
      Fill(&buf_, len);
      snprintf(d, sizeof d, "write ex%d off=%llu len=%zu", f, static_cast<unsigned long long>(off), len);
      Log(d);
      ++counts_[0];
      ssize_t r = pwrite(fd_[f], buf_.data(), len, static_cast<off_t>(off));
      if (r != static_cast<ssize_t>(len)) {
        ADD_FAILURE() << d << ": " << r << " " << strerror(errno);
        return false;
      }
      if (m.size() < off + len) m.resize(off + len, '\0');
      memcpy(m.data() + off, buf_.data(), len);
    } else if (w < 600) {  // buffered read
      std::uint64_t off = RandOff(f, 100000);
      std::size_t len = static_cast<std::size_t>(1 + R(R(4) == 0 ? kMaxIo : 8192));
      snprintf(d, sizeof d, "read ex%d off=%llu len=%zu", f, static_cast<unsigned long long>(off), len);
      Log(d);
      ++counts_[1];
      buf_.assign(len, '\xee');
      ssize_t r = pread(fd_[f], buf_.data(), len, static_cast<off_t>(off));
      if (r < 0) {
        ADD_FAILURE() << d << ": " << strerror(errno);
        return false;
      }
      buf_.resize(static_cast<std::size_t>(r));
      const std::uint64_t want = off >= m.size() ? 0 : std::min<std::uint64_t>(len, m.size() - off);
      Compare(f, off, buf_, want, "read");
    } else if (w < 660) {  // O_DIRECT read (straight to the daemon)
      std::uint64_t off = RandOff(f, 100000);
      std::size_t len = static_cast<std::size_t>(1 + R(kMaxIo));
      snprintf(d, sizeof d, "direct-read ex%d off=%llu len=%zu", f, static_cast<unsigned long long>(off), len);
      Log(d);
      ++counts_[2];
      // (Linux: an O_DIRECT read sees earlier buffered writes made through other descriptors.)
      buf_.assign(len, '\xee');
      ssize_t r = pread(dfd_[f], buf_.data(), len, static_cast<off_t>(off));
      if (r < 0) {
        ADD_FAILURE() << d << ": " << strerror(errno);
        return false;
      }
      buf_.resize(static_cast<std::size_t>(r));
      const std::uint64_t want = off >= m.size() ? 0 : std::min<std::uint64_t>(len, m.size() - off);
      Compare(f, off, buf_, want, "direct-read");
    } else if (w < 700) {  // truncate
      std::uint64_t size = R(3) == 0 ? R(m.size() + 1) : R(kMaxSize);
      if (R(4) == 0) size = (size / 65536) * 65536;
      snprintf(d, sizeof d, "ftruncate ex%d size=%llu", f, static_cast<unsigned long long>(size));
      Log(d);
      ++counts_[3];
      if (ftruncate(fd_[f], static_cast<off_t>(size)) != 0) {
        ADD_FAILURE() << d << ": " << strerror(errno);
        return false;
      }
      m.resize(size, '\0');
    } else if (w < 760) {  // punch hole / zero range / allocate
      const int kind = static_cast<int>(R(3));
      std::uint64_t off = std::min<std::uint64_t>(RandOff(f, 65536), kMaxSize - 1);
      std::uint64_t len = 1 + R(R(3) == 0 ? 1 << 20 : 70000);
      if (off + len > kMaxSize) len = kMaxSize - off;
      if (len == 0) return true;
      bool keep = kind == 0 || R(2) == 0;
      int mode = kind == 0   ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
                 : kind == 1 ? FALLOC_FL_ZERO_RANGE | (keep ? FALLOC_FL_KEEP_SIZE : 0)
                             : (keep ? FALLOC_FL_KEEP_SIZE : 0);
      snprintf(d, sizeof d, "fallocate ex%d mode=0x%x off=%llu len=%llu", f, mode,
               static_cast<unsigned long long>(off), static_cast<unsigned long long>(len));
      Log(d);
      ++counts_[4 + kind];
      if (fallocate(fd_[f], mode, static_cast<off_t>(off), static_cast<off_t>(len)) != 0) {
        ADD_FAILURE() << d << ": " << strerror(errno);
        return false;
      }
      const std::uint64_t end = off + len;
      if (kind != 2) {  // zeroes inside the file
        const std::uint64_t zend = std::min<std::uint64_t>(end, m.size());
        if (off < zend) std::fill(m.begin() + static_cast<long>(off), m.begin() + static_cast<long>(zend), '\0');
      }
      if (!keep && end > m.size()) m.resize(end, '\0');
    } else if (w < 820) {  // write through a shared mapping
      if (m.size() < 4096) return true;
      const std::uint64_t pages = m.size() / 4096;
      const std::uint64_t pg = R(pages);
      const std::uint64_t maplen = std::min<std::uint64_t>((pages - pg) * 4096, 1 + R(128 * 1024));
      const std::uint64_t moff = pg * 4096;
      const std::uint64_t in = R(maplen);
      const std::size_t len = static_cast<std::size_t>(1 + R(maplen - in));
      const bool do_msync = R(2) == 0;
      snprintf(d, sizeof d, "mmap-write ex%d off=%llu len=%zu msync=%d", f,
               static_cast<unsigned long long>(moff + in), len, do_msync);
      Log(d);
      ++counts_[7];
      void* p = mmap(nullptr, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd_[f], static_cast<off_t>(moff));
      if (p == MAP_FAILED) {
        ADD_FAILURE() << d << ": mmap: " << strerror(errno);
        return false;
      }
      Fill(&buf_, len);
      memcpy(static_cast<char*>(p) + in, buf_.data(), len);
      if (do_msync && msync(p, maplen, MS_SYNC) != 0) {
        ADD_FAILURE() << "msync: " << strerror(errno);
      }
      munmap(p, maplen);
      memcpy(m.data() + moff + in, buf_.data(), len);
    } else if (w < 880) {  // fsync / fdatasync
      const bool data = R(2) == 0;
      snprintf(d, sizeof d, "%s ex%d", data ? "fdatasync" : "fsync", f);
      Log(d);
      ++counts_[8];
      if ((data ? fdatasync(fd_[f]) : fsync(fd_[f])) != 0) {
        ADD_FAILURE() << d << ": " << strerror(errno);
        return false;
      }
    } else if (w < 940) {  // write back and drop the page cache: later reads go to the daemon
      snprintf(d, sizeof d, "evict ex%d", f);
      Log(d);
      ++counts_[9];
      if (fdatasync(fd_[f]) != 0) {
        ADD_FAILURE() << "fdatasync: " << strerror(errno);
      }
      posix_fadvise(fd_[f], 0, 0, POSIX_FADV_DONTNEED);
    } else {  // close and reopen (flush + release)
      snprintf(d, sizeof d, "reopen ex%d", f);
      Log(d);
      ++counts_[10];
      if (close(fd_[f]) != 0) {
        ADD_FAILURE() << "close: " << strerror(errno);
      }
      fd_[f] = open(Path(f).c_str(), O_RDWR);
      if (fd_[f] < 0) {
        ADD_FAILURE() << "reopen: " << strerror(errno);
        return false;
      }
    }
    return true;
  }

  Mount* m_;
  std::mt19937_64 rng_;
  std::string model_[kFiles];
  int fd_[kFiles] = {-1, -1, -1, -1};
  int dfd_[kFiles] = {-1, -1, -1, -1};
  std::string buf_;
  std::deque<std::string> recent_;
  std::uint64_t op_ = 0, mismatches_ = 0;
  std::uint64_t counts_[11] = {};
};

TEST(Exerciser, RandomOperationsAgainstModel) {
  const std::uint64_t seed = EnvU64("PERMFS_EXERCISER_SEED", NowNs() ^ static_cast<std::uint64_t>(getpid()));
  const std::uint64_t ops = EnvU64("PERMFS_EXERCISER_OPS", 100000);
  std::printf("exerciser: seed %llu, %llu operations (rerun: PERMFS_EXERCISER_SEED=%llu)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(ops),
              static_cast<unsigned long long>(seed));
  RecordProperty("seed", std::to_string(seed));
  Mount m("4G");
  ASSERT_NO_FATAL_FAILURE(MountUp(m, kOpts1));
  Exerciser ex(&m, seed);
  ASSERT_TRUE(ex.OpenAll());
  const std::uint64_t t0 = NowNs();
  const bool first_ok = ex.Run(0, ops / 2);
  ex.CloseAll();
  if (first_ok) {
    EXPECT_TRUE(ex.VerifyAll("before remount"));
    ASSERT_NO_FATAL_FAILURE(Remount(m, kOpts2));
    EXPECT_TRUE(ex.VerifyAll("after remount"));
    ASSERT_TRUE(ex.OpenAll());
    ex.Run(ops / 2, ops - ops / 2);
    ex.CloseAll();
    EXPECT_TRUE(ex.VerifyAll("at the end"));
  }
  const double secs = static_cast<double>(NowNs() - t0) / 1e9;
  std::printf("exerciser: %.1f s, %llu mismatches; ops:", secs,
              static_cast<unsigned long long>(ex.mismatches()));
  for (int i = 0; i < 11; ++i)
    std::printf(" %s=%llu", Exerciser::kNames[i], static_cast<unsigned long long>(ex.counts()[i]));
  std::printf("\n");
  EXPECT_EQ(ex.mismatches(), 0u) << "seed " << seed;
  UnmountAndFsck(m);
  ASSERT_NO_FATAL_FAILURE(MountUp(m, kOpts2));
  EXPECT_TRUE(ex.VerifyAll("after the final remount"));
  UnmountAndFsck(m);
}

}  // namespace
}  // namespace permfs::fusetest
