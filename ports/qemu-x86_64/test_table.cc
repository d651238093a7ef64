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

// Engine tests (tests/engine_tests.cc): the engine core's real code on the virtio-blk disk.
bool TestEngineRoundtrip(TestContext& ctx);     // mkfs -> workload -> unmount -> remount -> verify
bool TestEngineRecoverWrite(TestContext& ctx);  // boot 1: commit, stop without unmount
bool TestEngineRecoverVerify(TestContext& ctx); // boot 2: replay on mount and verify
bool TestEnginePanic(TestContext& ctx);         // panic report carries the journal state

// Filesystem tests (tests/fs_tests.cc): the POSIX namespace layer (fs::Filesystem) end to end.
bool TestFsRoundtrip(TestContext& ctx);      // mkfs+Format -> tree/files/links/xattrs -> remount -> verify -> fsck
bool TestFsRecoverWrite(TestContext& ctx);   // boot 1: synced + journal-only changes, stop without unmount
bool TestFsRecoverVerify(TestContext& ctx);  // boot 2: replay, orphan reclaimed, verify, fsck
bool TestFsPanic(TestContext& ctx);          // panic report with a mounted filesystem

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

    {"engine_roundtrip", TestEngineRoundtrip, true,
     "B+tree level: mkfs, key/value workload in test trees, unmount, remount, verify; throughput"},
    {"engine_recover_write", TestEngineRecoverWrite, true,
     "boot 1 of 2: durable + journal-only transactions, stop without unmount"},
    {"engine_recover_verify", TestEngineRecoverVerify, true,
     "boot 2 of 2: mount replays the journal; every durable transaction present"},
    {"engine_panic", TestEnginePanic, true,
     "deliberate panic during an engine test: the report shows the journal's durable sequence"},

    {"fs_roundtrip", TestFsRoundtrip, true,
     "mkfs + Format, directories, files 0 B..1 MiB, sparse, symlinks, hard links, xattrs, rename, "
     "unlink, truncate; unmount, remount, verify every byte and attribute; fsck; throughput"},
    {"fs_recover_write", TestFsRecoverWrite, true,
     "boot 1 of 2: fs changes synced + checkpointed, more synced to the journal only, an orphan, "
     "an unsynced tail; stop without unmount"},
    {"fs_recover_verify", TestFsRecoverVerify, true,
     "boot 2 of 2: mount replays, Open reclaims the orphan, durable state exact, fsck clean"},
    {"fs_panic", TestFsPanic, true,
     "deliberate panic with a filesystem mounted and an I/O in flight: allocator, journal, fs, "
     "virtio state in the report"},

    {nullptr, nullptr, false, nullptr},
};

}  // namespace permfs::qemu
