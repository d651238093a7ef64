// Crash-harness helper: reading the marks a workload left in a recorded trace.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <vector>

#include "block/recording_block_device.h"

namespace permfs::testutil {

// For every trace position i, the number N of the latest mark "<prefix> N" at or before i (0 if
// none), e.g. LatestMark(trace, "durable")[i] = the last operation known durable at write i.
std::vector<std::uint64_t> LatestMark(const std::vector<block::TraceEntry>& trace,
                                      const char* prefix);

}  // namespace permfs::testutil
