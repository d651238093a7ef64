#include "testutil/trace_marks.h"

#include <cstdlib>
#include <cstring>

namespace permfs::testutil {

std::vector<std::uint64_t> LatestMark(const std::vector<block::TraceEntry>& trace,
                                      const char* prefix) {
  std::vector<std::uint64_t> at(trace.size());
  const std::size_t plen = std::strlen(prefix);
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < trace.size(); ++i) {
    const block::TraceEntry& e = trace[i];
    if (e.op == block::TraceOp::kMark && e.mark.compare(0, plen, prefix) == 0 &&
        e.mark.size() > plen && e.mark[plen] == ' ')
      n = std::strtoull(e.mark.c_str() + plen + 1, nullptr, 10);
    at[i] = n;
  }
  return at;
}

}  // namespace permfs::testutil
