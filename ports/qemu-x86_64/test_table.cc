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
     "mkfs, directories/files/large file as B+tree keys, unmount, remount, verify; throughput"},
    {"engine_recover_write", TestEngineRecoverWrite, true,
     "boot 1 of 2: durable + journal-only transactions, stop without unmount"},
    {"engine_recover_verify", TestEngineRecoverVerify, true,
     "boot 2 of 2: mount replays the journal; every durable transaction present"},
    {"engine_panic", TestEnginePanic, true,
     "deliberate panic during an engine test: the report shows the journal's durable sequence"},

    {nullptr, nullptr, false, nullptr},
};

}  // namespace permfs::qemu
