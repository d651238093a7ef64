// Where hosted builds send engine log lines: stderr by default, with a minimum level that tools
// and tests can change (PERMFS_LOG_LEVEL=debug|info|warn|error in the environment, or SetLogLevel).
// Thread-safety: safe from any thread.
#pragma once

#include <cstddef>

#include "port/port.h"

namespace permfs::hosted {

void SetLogLevel(port::LogLevel min_level) noexcept;
void EmitLog(port::LogLevel level, const char* msg, std::size_t len) noexcept;

}  // namespace permfs::hosted
