// The kernel test table: `-append "test=NAME"` runs the entry called NAME.
// ports/qemu-x86_64/run-test.sh boots a kernel with one test; tests/qemu/CMakeLists.txt
// registers them with CTest.
#include "ktest.h"

namespace permfs::qemu {

// Port and driver tests (tests/port_tests.cc, tests/blockdev_tests.cc).
bool TestRuntime(TestContext& ctx);
bool TestPanic(TestContext& ctx);
bool TestFault(TestContext& ctx);
bool TestBlockdev(TestContext& ctx);
bool TestBlockdevPersistWrite(TestContext& ctx);
bool TestBlockdevPersistVerify(TestContext& ctx);

// ==== ENGINE TESTS: declarations =========================================================
// When the filesystem layers land, declare engine tests here, e.g.
//   bool TestEngineMkfsRemount(TestContext& ctx);   // mkfs -> write -> unmount -> remount -> read
//   bool TestEngineJournalBoot1(TestContext& ctx);  // commit transactions, stop without unmount
//   bool TestEngineJournalBoot2(TestContext& ctx);  // replay on mount and verify
// and put them in ports/qemu-x86_64/tests/engine_tests.cc (globbed by the kernel build).
// ===========================================================================================

const KernelTest kKernelTests[] = {
    {"runtime", TestRuntime, false,
     "C++ runtime and port: allocator, operator new/delete, std::vector/string, locks, clock, random"},
    {"panic", TestPanic, true,
     "deliberate port::Panic with an allocation live and a virtio request in flight"},
    {"fault", TestFault, false, "CPU exception (page fault) reaches the panic path"},
    {"blockdev", TestBlockdev, true,
     "virtio-blk BlockDevice contract + throughput (4 KiB and 1 MiB requests)"},
    {"blockdev_persist_write", TestBlockdevPersistWrite, true,
     "boot 1 of 2: write a seeded pattern, flush, stop without cleanup"},
    {"blockdev_persist_verify", TestBlockdevPersistVerify, true,
     "boot 2 of 2: the pattern written by boot 1 is on the disk"},

    // ==== ENGINE TESTS: table entries (lead: add mkfs/remount/journal-recovery tests here) ====
    // {"engine_mkfs_remount", TestEngineMkfsRemount, true, "mkfs, write, remount, read back"},
    // {"engine_journal_boot1", TestEngineJournalBoot1, true, "journal recovery, boot 1"},
    // {"engine_journal_boot2", TestEngineJournalBoot2, true, "journal recovery, boot 2"},
    // ===========================================================================================

    {nullptr, nullptr, false, nullptr},
};

}  // namespace permfs::qemu
