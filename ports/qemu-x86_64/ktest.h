// Kernel-side test framework: tests are plain functions in a table (test_table.cc), selected by
// the multiboot command line `test=NAME`. main.cc prints `PASS NAME` and exits through
// isa-debug-exit with ExitCode::kPass when the function returns true, `FAIL NAME` and kFail
// otherwise; a panic exits with kPanic. ports/qemu-x86_64/run-test.sh checks both.
#pragma once

#include <cstddef>
#include <cstdint>

#include "block/block_device.h"
#include "kernel.h"

namespace permfs::qemu {

struct TestContext {
  const char* name = nullptr;
  const char* cmdline = nullptr;         // the whole multiboot command line
  block::BlockDevice* disk = nullptr;    // first virtio-blk disk (needs_disk tests), else null
  // Value of `key=value` on the command line, or `def` when absent.
  const char* Option(const char* key, const char* def = nullptr) const noexcept;
  std::uint64_t OptionU64(const char* key, std::uint64_t def) const noexcept;
};

using TestFn = bool (*)(TestContext& ctx);

struct KernelTest {
  const char* name;
  TestFn fn;
  bool needs_disk;
  const char* description;
};

// The table (test_table.cc), terminated by an entry with name == nullptr.
extern const KernelTest kKernelTests[];

}  // namespace permfs::qemu

// Test assertion: logs the failed condition with its location and fails the test.
#define KCHECK(cond)                                                                   \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      ::permfs::qemu::Printf("CHECK failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      return false;                                                                    \
    }                                                                                  \
  } while (0)

// As KCHECK for a Status-returning expression; prints the status.
#define KCHECK_OK(expr)                                                                      \
  do {                                                                                       \
    ::permfs::Status _kst = (expr);                                                          \
    if (!_kst.ok()) {                                                                        \
      ::permfs::qemu::Printf("CHECK_OK failed at %s:%d: %s -> %s (%s)\n", __FILE__, __LINE__, \
                             #expr, _kst.CodeName(), _kst.message());                        \
      return false;                                                                          \
    }                                                                                        \
  } while (0)
