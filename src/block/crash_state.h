// Crash-state generator: enumerates the device images a crash could leave behind, given the image
// when recording began and a trace from RecordingBlockDevice (see block_device.h "Persistence
// model" and RELIABILITY.md §4.1).
//
// Model. A cut point k means trace entries [0, k) completed before the crash. The durable
// boundary B(k) is the largest flush_covers boundary of any flush before k: entries before B(k)
// are durable. After it, FUA entries are durable too; the remaining writes/discards/write-zeroes
// in [B(k), k) form the volatile epoch. Every generated image is
//   base + entries [0, B(k)) + (in trace order) every durable entry after B(k) and some chosen
//   epoch entries,
// with discards modelled as writing zeros. Generators, per selected cut point:
//  - prefix:  every entry before the cut applied (id "cut=K:mode=prefix").
//  - subset:  epochs of <= full_subset_limit writes: all 2^e subsets ("mode=subset:mask=0x..",
//             bit i = i-th epoch entry). Larger epochs: max_subsets_per_cut seeded samples
//             ("mode=sample:n=N:seed=S"), plus every drop-exactly-one ("mode=drop:i=I") and
//             keep-exactly-one ("mode=keep:i=I").
//  - torn:    the last epoch write longer than atomic_write_blocks; epoch entries before it are
//             applied, it is applied per tear unit (bit j = unit j is new), later epoch entries
//             are dropped. All proper masks when it has <= torn_full_limit units
//             ("mode=torn:mask=0x.."), else torn_samples samples ("mode=tornsample:n=N:seed=S").
//             Garbage variants: the same write fully applied except block `blk` (block index
//             within the write) holds seeded random bytes ("mode=garbage:blk=B:seed=S").
// Build(id) rebuilds any state from its id alone (given the same base and trace), for replay.
//
// Cost: the enumerator keeps running "durable" and "everything applied" images, so a state costs
// one image copy plus applying its epoch entries (no O(trace) work per state). Cut points must
// be visited in order, which Next() does.
//
// Thread-safety: none; one enumerator per thread. Build() is const and may run concurrently
// with other Build() calls, but not with Next().
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "block/recording_block_device.h"
#include "util/result.h"
#include "util/status.h"

namespace permfs::block {

enum class CutPoints : std::uint8_t {
  kEveryOp,  // cut 0 and after every non-mark entry (extended over the marks that follow it)
  kMarks,    // right after every mark entry
  kFlushes,  // right before every flush entry, and at the end of the trace (maximal epochs)
};

struct CrashStateOptions {
  std::uint64_t seed = 1;
  bool prefixes = true;
  bool subsets = true;
  bool torn = true;
  CutPoints cut_points = CutPoints::kEveryOp;
  std::uint32_t full_subset_limit = 10;     // epochs up to this size get all 2^e subsets (<= 20)
  std::uint32_t max_subsets_per_cut = 1024; // sampled subsets for larger epochs
  std::uint32_t atomic_write_blocks = 1;    // tear unit, in blocks
  std::uint32_t torn_full_limit = 8;        // writes up to this many units: all proper masks
  std::uint32_t torn_samples = 16;          // sampled masks for larger writes
  std::uint32_t garbage_variants = 8;       // garbage states per cut (one per block, sampled)
};

struct CrashState {
  std::vector<std::uint8_t> image;
  std::uint64_t cut = 0;         // trace entries [0, cut) completed before the crash
  std::uint64_t cut_seq = 0;     // seq of entry cut-1 (0 when cut == 0)
  std::string id;                // e.g. "cut=412:mode=subset:mask=0x1b"
  std::uint64_t durable_prefix = 0;  // entries [0, durable_prefix) are durable (plus FUA ones)
  // Trace index of the last mark all of whose preceding writes are durable at this cut
  // (everything that mark vouches for must be on disk), or -1.
  std::int64_t marks_durable = -1;
  // Trace index of the last mark before the cut, or -1.
  std::int64_t last_mark = -1;
};

class CrashStateEnumerator {
 public:
  // `base`: the device image when recording began (size a multiple of block_size).
  // `trace` must outlive the enumerator.
  CrashStateEnumerator(std::vector<std::uint8_t> base, std::uint32_t block_size,
                       const std::vector<TraceEntry>& trace, CrashStateOptions options);

  // InvalidArgument if the trace does not fit the image (bad sizes, out of range).
  Status status() const noexcept { return status_; }

  // Produces the next state into *out. Returns false when exhausted (or status() is not OK).
  bool Next(CrashState* out);

  // Rebuilds the state named by `id` (as produced by Next()).
  Result<CrashState> Build(const std::string& id) const;

  // The cut points the enumerator visits, in order.
  const std::vector<std::uint64_t>& cut_points() const noexcept { return cuts_; }
  // States produced so far.
  std::uint64_t produced() const noexcept { return produced_; }

 private:
  enum class Mode : std::uint8_t {
    kPrefix, kSubset, kSample, kDrop, kKeep, kTorn, kTornSample, kGarbage
  };
  struct Spec {
    Mode mode = Mode::kPrefix;
    std::uint64_t param = 0;  // mask, sample number, index or block
    std::uint64_t seed = 0;
  };
  struct CutInfo {
    std::uint64_t cut = 0;
    std::uint64_t boundary = 0;
    std::vector<std::uint64_t> post;   // mutating entries in [boundary, cut)
    std::vector<std::uint64_t> epoch;  // the volatile ones among `post`
    std::int64_t torn_target = -1;     // trace index of the torn write, or -1
    std::uint32_t torn_units = 0;
  };

  bool IsMutating(const TraceEntry& e) const;
  bool IsDurableAlone(const TraceEntry& e) const;
  void ApplyEntry(std::vector<std::uint8_t>* image, const TraceEntry& e) const;
  CutInfo ComputeCut(std::uint64_t cut) const;
  // Lists the specs for a cut, in generation order.
  void PlanCut(const CutInfo& ci, std::vector<Spec>* specs) const;
  // Builds the state from `durable` (= base + entries [0, ci.boundary)); `all` (optional) is
  // base + entries [0, ci.cut), used for prefixes.
  Status MakeState(const CutInfo& ci, const Spec& spec, const std::vector<std::uint8_t>& durable,
                   const std::vector<std::uint8_t>* all, CrashState* out) const;
  std::string MakeId(std::uint64_t cut, const Spec& spec) const;

  std::vector<std::uint8_t> base_;
  std::uint32_t block_size_;
  const std::vector<TraceEntry>& trace_;
  CrashStateOptions opt_;
  Status status_;

  std::vector<std::uint64_t> boundary_;   // boundary_[k] = B(k), k in [0, n]
  std::vector<std::int64_t> prev_mark_;   // prev_mark_[k] = last mark index < k, or -1
  std::vector<std::uint64_t> cuts_;

  // Enumeration state.
  std::size_t cut_pos_ = 0;
  bool cut_ready_ = false;
  CutInfo cur_;
  std::vector<Spec> specs_;
  std::size_t spec_pos_ = 0;
  std::vector<std::uint8_t> durable_;     // base + [0, durable_upto_)
  std::uint64_t durable_upto_ = 0;
  std::vector<std::uint8_t> all_;         // base + [0, all_upto_)
  std::uint64_t all_upto_ = 0;
  std::uint64_t produced_ = 0;
};

}  // namespace permfs::block
