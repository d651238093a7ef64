// RecordingBlockDevice: a pass-through BlockDevice that records every completed mutating op
// (write, FUA write, flush, discard, write-zeroes) plus test marks into an in-memory trace, as
// dm-log-writes does. The trace feeds the crash-state generator (block/crash_state.h).
//
// Contract:
//  - Everything is forwarded to the wrapped device unchanged; geometry and capabilities are the
//    wrapped device's. The wrapped device is not owned and must outlive this object.
//  - An op is appended when it COMPLETES successfully (rule 2 of the persistence model is about
//    completed writes). Failed ops are not recorded. Reads are recorded (without data) only when
//    Options::record_reads is set.
//  - Every entry gets a sequence number, strictly increasing in trace order.
//  - A Flush entry also records `flush_covers_seq`: the next sequence number at the moment the
//    flush was SUBMITTED. Exactly the entries with seq < flush_covers_seq are made durable by it
//    (writes completing while the flush is in flight are not covered).
//  - Mark(label) appends a kMark entry at the current point of the trace.
//  - Serialize()/Deserialize() use a self-describing little-endian format with a CRC-32 trailer,
//    so a failing trace can be written to disk and replayed.
//
// Thread-safety: Submit(), Mark() may be called from many threads at once. trace() returns a
// reference that is only stable while no request is in flight (call it after quiescence);
// Clear() likewise must not race with in-flight requests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "block/block_device.h"
#include "util/result.h"
#include "util/sync.h"

namespace permfs::block {

// Kind of a trace entry. The first five values equal block::Op.
enum class TraceOp : std::uint8_t {
  kRead = 0,
  kWrite = 1,
  kFlush = 2,
  kDiscard = 3,
  kWriteZeroes = 4,
  kMark = 5,
};

struct TraceEntry {
  std::uint64_t seq = 0;
  TraceOp op = TraceOp::kMark;
  std::uint32_t flags = 0;              // Request::flags (kFua)
  std::uint64_t lba = 0;
  std::uint32_t count = 0;
  std::uint64_t flush_covers_seq = 0;   // kFlush only: entries with seq < this are covered
  std::vector<std::uint8_t> data;       // kWrite only: count * block_size bytes
  std::string mark;                     // kMark only
};

// Serialises a trace (entries + block size) into `out` (replacing its contents).
void SerializeTrace(const std::vector<TraceEntry>& trace, std::uint32_t block_size,
                    std::vector<std::uint8_t>* out);
// Parses bytes from SerializeTrace. Corruption on a bad magic, length or CRC.
Status DeserializeTrace(const std::uint8_t* data, std::size_t len,
                        std::vector<TraceEntry>* trace, std::uint32_t* block_size);

class RecordingBlockDevice final : public BlockDevice {
 public:
  struct Options {
    bool record_reads = false;
  };

  explicit RecordingBlockDevice(BlockDevice* inner) : RecordingBlockDevice(inner, Options()) {}
  RecordingBlockDevice(BlockDevice* inner, Options options);
  ~RecordingBlockDevice() override;

  const Geometry& geometry() const noexcept override { return inner_->geometry(); }
  const Capabilities& capabilities() const noexcept override { return inner_->capabilities(); }
  void Submit(Request* req) noexcept override;
  void Poll() noexcept override { inner_->Poll(); }

  // Appends a kMark entry with `label`.
  void Mark(const char* label);

  // The trace so far. Only read it while no request is in flight.
  const std::vector<TraceEntry>& trace() const PERMFS_NO_TSA { return trace_; }
  // Copy of the trace, safe at any time.
  std::vector<TraceEntry> TraceCopy() const;
  // Drops all entries (sequence numbers keep increasing).
  void Clear();

  // Serialises the current trace (with this device's block size).
  std::vector<std::uint8_t> Serialize() const;
  // Parses a serialised trace (see DeserializeTrace).
  static Status Deserialize(const std::uint8_t* data, std::size_t len,
                            std::vector<TraceEntry>* trace, std::uint32_t* block_size) {
    return DeserializeTrace(data, len, trace, block_size);
  }

 private:
  struct Pending;
  static void OnInnerComplete(Request* req, Status st);
  void Record(const Request& req, std::uint64_t covers);

  BlockDevice* const inner_;
  const Options options_;
  mutable Mutex mu_;
  std::uint64_t next_seq_ PERMFS_GUARDED_BY(mu_) = 0;
  std::vector<TraceEntry> trace_ PERMFS_GUARDED_BY(mu_);
};

}  // namespace permfs::block
