// Crash tests through a real FUSE mount: a workload (fsync'd record writes whose completion is
// logged in a file outside the mount, plus un-fsync'd overwrites, churn files, atomic
// rename-over-replace, creates and unlinks) runs while the test kill -9s the mount daemon at a
// random moment. Then: fusermount3 -u, `permfs fsck` must exit 0 (even rounds: fsck replays the
// journal; odd rounds: the mount replays it and fsck runs after a clean unmount), remount, and
//   - every fsync'd record holds that version or a later one that was written (never older),
//   - every record of every file is one whole version (header and payload agree) or a hole:
//     never mixed old/new content inside one record (= one chunk, 64 KiB),
//   - the atomically replaced file is one complete version, at least the last renamed one.
// Environment: PERMFS_CRASH_ROUNDS (default 20), PERMFS_CRASH_SEED (default time-based).
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "fuse/fuse_gtest.h"

namespace permfs::fusetest {
namespace {

constexpr std::size_t kRec = 64 * 1024;  // the image's record (chunk) size
constexpr int kDurable = 4, kChurn = 3, kRecsPerFile = 48;
constexpr std::uint64_t kMagic = 0x5045524d46534352ull;  // "PERMFSCR"

std::uint64_t EnvU64(const char* name, std::uint64_t def) {
  const char* v = getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 0) : def;
}

std::uint64_t Mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

// A record: header {magic, file, idx, version} then a payload derived from the header.
void MakeRecord(std::uint32_t file, std::uint32_t idx, std::uint64_t version, char* out) {
  std::uint64_t h[4] = {kMagic, file, idx, version};
  memcpy(out, h, sizeof h);
  std::uint64_t x = Mix(version * 1000003 + file * 131 + idx);
  for (std::size_t i = sizeof h; i < kRec; i += 8) {
    x = Mix(x + i);
    memcpy(out + i, &x, 8);
  }
}

enum class RecState { kHole, kValid, kBad };
// Validates a record read back; *file/*idx/*version are set for a valid one.
RecState CheckRecord(const char* r, std::uint32_t want_file, std::uint32_t want_idx,
                     std::uint64_t* version, std::string* why) {
  bool zero = true;
  for (std::size_t i = 0; i < kRec && zero; ++i) zero = r[i] == 0;
  if (zero) return RecState::kHole;
  std::uint64_t h[4];
  memcpy(h, r, sizeof h);
  if (h[0] != kMagic || h[1] != want_file || h[2] != want_idx) {
    *why = "bad header (magic/file/idx " + std::to_string(h[0] == kMagic) + "/" +
           std::to_string(h[1]) + "/" + std::to_string(h[2]) + ")";
    return RecState::kBad;
  }
  static thread_local std::vector<char> want(kRec);
  MakeRecord(want_file, want_idx, h[3], want.data());
  if (memcmp(r, want.data(), kRec) != 0) {
    std::size_t i = 0;
    while (r[i] == want[i]) ++i;
    *why = "version " + std::to_string(h[3]) + " payload differs from byte " + std::to_string(i) +
           " (mixed content inside one record)";
    return RecState::kBad;
  }
  *version = h[3];
  return RecState::kValid;
}

// ---- The workload (a forked child; never uses gtest) -----------------------------------------

class Workload {
 public:
  Workload(const std::string& dir, const std::string& log, std::uint64_t round, std::uint64_t seed)
      : dir_(dir), rng_(seed), ver_(round << 32) {
    log_ = open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
  }
  // Runs until an operation fails (the daemon died).
  int Run() {
    if (log_ < 0) return 2;
    std::vector<char> rec(kRec);
    for (;;) {
      const std::uint64_t w = rng_() % 100;
      if (w < 35) {  // fsync'd batch on a durable file
        const std::uint32_t f = static_cast<std::uint32_t>(rng_() % kDurable);
        int fd = open(Name("d", f).c_str(), O_RDWR | O_CREAT, 0644);
        if (fd < 0) return 0;
        std::vector<std::pair<std::uint32_t, std::uint64_t>> done;
        const int n = 1 + static_cast<int>(rng_() % 4);
        for (int k = 0; k < n; ++k) {
          const std::uint32_t idx = static_cast<std::uint32_t>(rng_() % kRecsPerFile);
          const std::uint64_t v = ++ver_;
          Log("I " + std::to_string(f) + " " + std::to_string(idx) + " " + std::to_string(v));
          MakeRecord(f, idx, v, rec.data());
          if (pwrite(fd, rec.data(), kRec, static_cast<off_t>(idx) * kRec) != static_cast<ssize_t>(kRec)) return 0;
          done.push_back({idx, v});
        }
        if ((rng_() % 2 ? fsync(fd) : fdatasync(fd)) != 0) return 0;
        for (auto& [idx, v] : done)
          Log("D " + std::to_string(f) + " " + std::to_string(idx) + " " + std::to_string(v));
        close(fd);
      } else if (w < 55) {  // un-fsync'd overwrite of durable files
        const std::uint32_t f = static_cast<std::uint32_t>(rng_() % kDurable);
        int fd = open(Name("d", f).c_str(), O_RDWR | O_CREAT, 0644);
        if (fd < 0) return 0;
        const std::uint32_t idx = static_cast<std::uint32_t>(rng_() % kRecsPerFile);
        const std::uint64_t v = ++ver_;
        Log("I " + std::to_string(f) + " " + std::to_string(idx) + " " + std::to_string(v));
        MakeRecord(f, idx, v, rec.data());
        if (pwrite(fd, rec.data(), kRec, static_cast<off_t>(idx) * kRec) != static_cast<ssize_t>(kRec)) return 0;
        close(fd);
      } else if (w < 80) {  // churn files: writes, truncates, never fsync'd
        const std::uint32_t f = static_cast<std::uint32_t>(rng_() % kChurn);
        const std::uint32_t file_id = 100 + f;
        int fd = open(Name("c", f).c_str(), O_RDWR | O_CREAT, 0644);
        if (fd < 0) return 0;
        if (rng_() % 8 == 0) {
          if (ftruncate(fd, static_cast<off_t>((rng_() % kRecsPerFile) * kRec)) != 0) return 0;
        } else {
          for (int k = 0; k < 8; ++k) {
            const std::uint32_t idx = static_cast<std::uint32_t>(rng_() % kRecsPerFile);
            MakeRecord(file_id, idx, ++ver_, rec.data());
            if (pwrite(fd, rec.data(), kRec, static_cast<off_t>(idx) * kRec) != static_cast<ssize_t>(kRec))
              return 0;
          }
        }
        close(fd);
      } else if (w < 90) {  // atomic replace: write tmp, fsync, rename over, log
        const std::uint64_t v = ++ver_;
        const std::string tmp = dir_ + "/atomic.tmp";
        int fd = open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) return 0;
        for (std::uint32_t idx = 0; idx < 2; ++idx) {
          MakeRecord(200, idx, v, rec.data());
          if (pwrite(fd, rec.data(), kRec, static_cast<off_t>(idx) * kRec) != static_cast<ssize_t>(kRec)) return 0;
        }
        if (fsync(fd) != 0) return 0;
        close(fd);
        if (rename(tmp.c_str(), (dir_ + "/atomic").c_str()) != 0) return 0;
        int dfd = open(dir_.c_str(), O_RDONLY | O_DIRECTORY);
        if (dfd < 0 || fsync(dfd) != 0) return 0;
        close(dfd);
        Log("A " + std::to_string(v));
      } else {  // namespace churn: create, link, rename, unlink
        const std::string a = dir_ + "/n" + std::to_string(rng_() % 20);
        const std::string b = dir_ + "/n" + std::to_string(rng_() % 20);
        switch (rng_() % 4) {
          case 0: {
            int fd = open(a.c_str(), O_WRONLY | O_CREAT, 0644);
            if (fd < 0) return 0;
            if (write(fd, a.data(), a.size()) < 0) return 0;
            close(fd);
            break;
          }
          case 1:
            if (rename(a.c_str(), b.c_str()) != 0 && errno != ENOENT) return 0;
            break;
          case 2:
            if (link(a.c_str(), b.c_str()) != 0 && errno != ENOENT && errno != EEXIST) return 0;
            break;
          default:
            if (unlink(a.c_str()) != 0 && errno != ENOENT) return 0;
        }
      }
    }
  }

 private:
  std::string Name(const char* kind, std::uint32_t f) { return dir_ + "/" + kind + std::to_string(f); }
  void Log(const std::string& line) {
    std::string l = line + "\n";
    if (write(log_, l.data(), l.size()) != static_cast<ssize_t>(l.size())) _exit(3);
  }
  std::string dir_;
  std::mt19937_64 rng_;
  std::uint64_t ver_;
  int log_ = -1;
};

// ---- Verification ------------------------------------------------------------------------

struct Model {
  // (file, idx) -> version range allowed after a crash: [durable, latest written].
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint64_t> durable, latest;
  std::uint64_t atomic = 0;
  void Load(const std::string& path) {
    std::ifstream in(path);
    std::string kind;
    while (in >> kind) {
      if (kind == "A") {
        std::uint64_t v;
        in >> v;
        atomic = std::max(atomic, v);
        continue;
      }
      std::uint32_t f, idx;
      std::uint64_t v;
      in >> f >> idx >> v;
      auto& slot = (kind == "D" ? durable : latest)[{f, idx}];
      slot = std::max(slot, v);
    }
  }
};

std::string ReadAll(const std::string& path, bool* ok) {
  std::string out;
  int fd = open(path.c_str(), O_RDONLY);
  *ok = fd >= 0;
  if (fd < 0) return out;
  char buf[1 << 16];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  if (n < 0) *ok = false;
  close(fd);
  return out;
}

void Verify(const std::string& dir, const Model& m, std::uint64_t round, std::uint64_t* checked) {
  for (std::uint32_t f = 0; f < kDurable; ++f) {
    bool ok;
    const std::string data = ReadAll(dir + "/d" + std::to_string(f), &ok);
    bool any_durable = false;
    for (std::uint32_t idx = 0; idx < kRecsPerFile; ++idx) any_durable |= m.durable.count({f, idx}) > 0;
    if (!ok) {
      EXPECT_FALSE(any_durable) << "round " << round << ": d" << f << " is missing";
      continue;
    }
    for (std::uint32_t idx = 0; idx < kRecsPerFile; ++idx) {
      auto d = m.durable.find({f, idx});
      const std::uint64_t want_min = d == m.durable.end() ? 0 : d->second;
      auto l = m.latest.find({f, idx});
      const std::uint64_t want_max = l == m.latest.end() ? 0 : l->second;
      if ((idx + 1) * kRec > data.size()) {
        EXPECT_EQ(want_min, 0u) << "round " << round << ": d" << f << " record " << idx
                                << " (fsync'd version " << want_min << ") is past EOF "
                                << data.size();
        continue;
      }
      std::uint64_t v = 0;
      std::string why;
      RecState s = CheckRecord(data.data() + idx * kRec, f, idx, &v, &why);
      ++*checked;
      EXPECT_NE(s, RecState::kBad) << "round " << round << ": d" << f << " record " << idx << ": " << why;
      if (s == RecState::kHole) {
        EXPECT_EQ(want_min, 0u) << "round " << round << ": d" << f << " record " << idx
                                << ": fsync'd version " << want_min << " lost (hole)";
      } else if (s == RecState::kValid) {
        EXPECT_GE(v, want_min) << "round " << round << ": d" << f << " record " << idx
                               << " went back to an older version than the fsync'd one";
        EXPECT_LE(v, want_max) << "round " << round << ": d" << f << " record " << idx
                               << " has a version that was never written";
      }
    }
  }
  for (std::uint32_t f = 0; f < kChurn; ++f) {
    bool ok;
    const std::string data = ReadAll(dir + "/c" + std::to_string(f), &ok);
    if (!ok) continue;
    for (std::uint32_t idx = 0; (idx + 1) * kRec <= data.size(); ++idx) {
      std::uint64_t v;
      std::string why;
      ++*checked;
      EXPECT_NE(CheckRecord(data.data() + idx * kRec, 100 + f, idx, &v, &why), RecState::kBad)
          << "round " << round << ": churn file c" << f << " record " << idx << ": " << why;
    }
    EXPECT_EQ(data.size() % kRec, 0u) << "churn file c" << f << " size " << data.size();
  }
  bool ok;
  const std::string atomic = ReadAll(dir + "/atomic", &ok);
  if (m.atomic) {
    ASSERT_TRUE(ok) << "round " << round << ": atomic file missing after a logged rename";
    ASSERT_EQ(atomic.size(), 2 * kRec) << "round " << round << ": atomic file size";
    std::uint64_t v0 = 0, v1 = 0;
    std::string why;
    EXPECT_EQ(CheckRecord(atomic.data(), 200, 0, &v0, &why), RecState::kValid) << why;
    EXPECT_EQ(CheckRecord(atomic.data() + kRec, 200, 1, &v1, &why), RecState::kValid) << why;
    EXPECT_EQ(v0, v1) << "round " << round << ": atomic file mixes two versions";
    EXPECT_GE(v0, m.atomic) << "round " << round << ": atomic file older than the last rename";
  }
}

TEST(Crash, KillDaemonDuringWorkload) {
  const std::uint64_t rounds = EnvU64("PERMFS_CRASH_ROUNDS", 20);
  const std::uint64_t seed = EnvU64("PERMFS_CRASH_SEED", NowNs() ^ static_cast<std::uint64_t>(getpid()));
  std::printf("crash: seed %llu, %llu rounds (rerun: PERMFS_CRASH_SEED=%llu)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(rounds),
              static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  Mount m("2G");
  const std::string log = m.dir() + "/workload.log";
  const std::string dir = m.path("crash");
  ASSERT_NO_FATAL_FAILURE(MountUp(m, ""));
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  std::uint64_t checked = 0;
  const std::uint64_t t0 = NowNs();
  for (std::uint64_t round = 1; round <= rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::uint64_t wseed = rng();
    std::fflush(nullptr);
    pid_t w = fork();
    ASSERT_GE(w, 0);
    if (w == 0) {
      Workload wl(dir, log, round, wseed);
      _exit(wl.Run());
    }
    // Let it run 0.1..1.6 s (sometimes long enough for idle promotion and the 5 s commit).
    const std::uint64_t delay_ms = 100 + rng() % 1500 + (rng() % 5 == 0 ? 4500 : 0);
    usleep(static_cast<useconds_t>(delay_ms * 1000));
    m.KillDaemon();
    kill(w, SIGKILL);
    int ws = 0;
    waitpid(w, &ws, 0);
    m.Detach();
    EXPECT_FALSE(WIFEXITED(ws) && WEXITSTATUS(ws) > 1) << "workload failed to start: " << ws;
    ASSERT_FALSE(IsFuseMount(m.mnt())) << "mount still present after kill -9 + fusermount3 -u";
    std::string out;
    if (round % 2 == 0) {
      EXPECT_EQ(m.Fsck(&out), 0) << "fsck right after the crash:\n" << out;
    }
    std::string why;
    ASSERT_TRUE(m.Start("", &why)) << "remount after the crash: " << why;
    Model model;
    model.Load(log);
    Verify(dir, model, round, &checked);
    if (round % 2 == 1) {
      ASSERT_TRUE(m.Stop(&why)) << why;
      EXPECT_EQ(m.Fsck(&out), 0) << "fsck after the replaying mount:\n" << out;
      ASSERT_TRUE(m.Start("", &why)) << why;
    }
    if (HasFailure()) break;
  }
  std::printf("crash: %llu rounds in %.1f s, %llu records checked\n",
              static_cast<unsigned long long>(rounds), static_cast<double>(NowNs() - t0) / 1e9,
              static_cast<unsigned long long>(checked));
  UnmountAndFsck(m);
}

}  // namespace
}  // namespace permfs::fusetest
