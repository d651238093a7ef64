#include "hosted/log_sink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <atomic>

namespace permfs::hosted {
namespace {

int InitialLevel() {
  const char* e = getenv("PERMFS_LOG_LEVEL");
  if (!e) return static_cast<int>(port::LogLevel::kWarn);
  if (!strcmp(e, "debug")) return 0;
  if (!strcmp(e, "info")) return 1;
  if (!strcmp(e, "warn")) return 2;
  return 3;
}

std::atomic<int> g_min_level{InitialLevel()};

}  // namespace

void SetLogLevel(port::LogLevel min_level) noexcept {
  g_min_level.store(static_cast<int>(min_level), std::memory_order_relaxed);
}

void EmitLog(port::LogLevel level, const char* msg, std::size_t len) noexcept {
  if (static_cast<int>(level) < g_min_level.load(std::memory_order_relaxed)) return;
  static const char* const kNames[] = {"debug", "info", "warn", "error"};
  char buf[384];
  int n = snprintf(buf, sizeof buf, "permfs %s: %.*s\n", kNames[static_cast<int>(level) & 3],
                   static_cast<int>(len), msg);
  if (n > 0) {
    ssize_t w = write(2, buf, static_cast<std::size_t>(n) < sizeof buf ? n : sizeof buf - 1);
    (void)w;
  }
}

}  // namespace permfs::hosted
