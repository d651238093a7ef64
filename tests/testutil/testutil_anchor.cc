// Keeps permfs_testutil non-empty.
namespace permfs::testutil { int anchor = 0; }
