// Invariant checks. PERMFS_ASSERT is for engine bugs only: it calls port::Panic, which never
// returns. Bad on-disk bytes, device errors and bad arguments are never asserted: they come back
// as a Status. Assertions stay on in release builds (they guard data safety).
#pragma once

#include "port/port.h"

#define PERMFS_ASSERT(cond)                                                     \
  do {                                                                          \
    if (__builtin_expect(!(cond), 0))                                           \
      ::permfs::port::Panic(__FILE__, __LINE__, "assertion failed: " #cond);    \
  } while (0)

#define PERMFS_ASSERT_MSG(cond, msg)                                            \
  do {                                                                          \
    if (__builtin_expect(!(cond), 0)) ::permfs::port::Panic(__FILE__, __LINE__, msg); \
  } while (0)

#define PERMFS_PANIC(msg) ::permfs::port::Panic(__FILE__, __LINE__, msg)
