// BlockDevice: the contract between the engine and any storage it runs on (a RAM image, an image
// file, a raw device through io_uring, a virtio disk in a kernel, a remote node).
//
// Geometry. The device is an array of `block_count` logical blocks of `block_size` bytes
// (a power of two, 512..65536). Requests address whole logical blocks.
//
// Submission. Submit() takes an asynchronous Request; the device calls `on_complete` exactly once
// per submitted request, possibly before Submit() returns and possibly from another thread.
// A malformed request (out of range, bad size, unsupported op) completes with InvalidArgument;
// a device failure completes with IOError; a read-only device refuses writes with ReadOnly.
// Up to `queue_depth` requests may be in flight; more are accepted and queued by the device.
// A device whose capabilities say `polled` only makes progress when Poll() is called.
// The synchronous helpers (Read, Write, Flush, ...) submit one request and wait for it.
//
// Persistence model (exactly what the crash harness simulates; see docs/FORMAT.md §Persistence):
//  1. A completed write sits in a volatile cache and is NOT durable until a later Flush
//     completes (when capabilities().volatile_cache is true).
//  2. A Flush makes every write that completed before the Flush was submitted durable.
//  3. A write submitted with kFua is durable when it completes.
//  4. Writes in flight at the same time have no order among themselves.
//  5. A write larger than `atomic_write_blocks` may tear: after a crash each logical block of it
//     holds either its old or its new contents (blocks of up to atomic_write_blocks never tear).
//  6. Discard makes the range's contents unspecified (zeros or old data); WriteZeroes makes it
//     read as zeros; both follow the same durability rules as writes.
//
// Thread-safety: Submit(), Poll() and the synchronous helpers may be called from many threads at
// once. geometry() and capabilities() are immutable after construction.
#pragma once

#include <cstddef>
#include <cstdint>

#include "util/status.h"

namespace permfs::block {

struct Geometry {
  std::uint32_t block_size = 4096;           // logical block size in bytes
  std::uint32_t physical_block_size = 4096;  // the device's internal write unit
  std::uint64_t block_count = 0;             // number of logical blocks
  std::uint32_t atomic_write_blocks = 1;     // writes of at most this many blocks never tear
  std::uint32_t max_transfer_blocks = 256;   // largest read/write in one request
  std::uint32_t buffer_alignment = 1;        // data buffers aligned to this avoid a bounce copy
  std::uint32_t queue_depth = 1;             // requests the device works on concurrently
};

struct Capabilities {
  bool volatile_cache = true;  // writes need a Flush to become durable
  bool fua = false;            // kFua writes are supported natively (emulated with a flush if not)
  bool discard = false;        // Discard supported (otherwise it completes OK and does nothing)
  bool write_zeroes = false;   // WriteZeroes supported natively (otherwise emulated with writes)
  bool read_only = false;
  bool polled = false;         // completions are only delivered from Poll()
};

enum class Op : std::uint8_t { kRead = 0, kWrite = 1, kFlush = 2, kDiscard = 3, kWriteZeroes = 4 };

inline constexpr std::uint32_t kFua = 1u << 0;  // Request::flags: durable on completion

struct Request;
using CompletionFn = void (*)(Request* req, Status status);

struct Request {
  Op op = Op::kRead;
  std::uint32_t flags = 0;
  std::uint64_t lba = 0;          // first logical block
  std::uint32_t count = 0;        // logical blocks (0 for Flush)
  std::uint8_t* data = nullptr;   // count * block_size bytes for kRead / kWrite, else unused
  CompletionFn on_complete = nullptr;
  void* context = nullptr;        // owned by the submitter
  void* device_private = nullptr; // scratch for the device; submitters leave it alone
};

class BlockDevice {
 public:
  virtual ~BlockDevice();

  virtual const Geometry& geometry() const noexcept = 0;
  virtual const Capabilities& capabilities() const noexcept = 0;

  // Starts `req`. `req` (and its data) must stay valid until on_complete runs.
  virtual void Submit(Request* req) noexcept = 0;

  // Delivers completions on polled devices; a no-op on interrupt/thread-driven devices.
  virtual void Poll() noexcept {}

  // Synchronous helpers: submit one request and wait for its completion.
  Status Read(std::uint64_t lba, std::uint32_t count, void* buf) noexcept;
  Status Write(std::uint64_t lba, std::uint32_t count, const void* buf,
               std::uint32_t flags = 0) noexcept;
  Status Flush() noexcept;
  Status Discard(std::uint64_t lba, std::uint32_t count) noexcept;
  Status WriteZeroes(std::uint64_t lba, std::uint32_t count) noexcept;
  // Submits `req` (whose on_complete must be null) and waits for it.
  Status Execute(Request* req) noexcept;

  std::uint32_t block_size() const noexcept { return geometry().block_size; }
  std::uint64_t block_count() const noexcept { return geometry().block_count; }
  std::uint64_t size_bytes() const noexcept {
    return geometry().block_count * geometry().block_size;
  }

 protected:
  // For backends: validates lba/count/op against geometry and capabilities. Returns OK or
  // InvalidArgument / ReadOnly; backends complete the request with that status if not OK.
  Status CheckRequest(const Request& req) const noexcept;
};

}  // namespace permfs::block
