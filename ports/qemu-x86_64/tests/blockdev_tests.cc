// virtio-blk driver against the BlockDevice contract (src/block/block_device.h), throughput
// numbers, and a two-boot persistence test (the pattern the engine's journal-recovery test uses).
#include <cstdint>

#include "block/block_device.h"
#include "ktest.h"
#include "port/port.h"
#include "util/bytes.h"
#include "virtio_blk.h"

namespace permfs::qemu {
namespace {

using block::BlockDevice;
using block::Op;
using block::Request;

std::uint64_t Mix(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Block contents for (seed, lba): every 8-byte word distinct, so misplaced blocks are caught.
void Fill(std::uint8_t* p, std::uint32_t bs, std::uint64_t seed, std::uint64_t lba) {
  for (std::uint32_t w = 0; w < bs / 8; ++w) {
    const std::uint64_t v = Mix(seed ^ (lba * 0x100000001B3ull) ^ w);
    for (int i = 0; i < 8; ++i) p[w * 8 + i] = static_cast<std::uint8_t>(v >> (8 * i));
  }
}
bool Check(const std::uint8_t* p, std::uint32_t bs, std::uint64_t seed, std::uint64_t lba) {
  for (std::uint32_t w = 0; w < bs / 8; ++w) {
    const std::uint64_t v = Mix(seed ^ (lba * 0x100000001B3ull) ^ w);
    for (int i = 0; i < 8; ++i)
      if (p[w * 8 + i] != static_cast<std::uint8_t>(v >> (8 * i))) {
        Printf("mismatch: lba %lu word %u\n", lba, w);
        return false;
      }
  }
  return true;
}

struct Buffer {
  explicit Buffer(std::size_t n) : bytes(n), p(static_cast<std::uint8_t*>(port::Allocate(n, 4096))) {}
  ~Buffer() { port::Deallocate(p, bytes, 4096); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  std::size_t bytes;
  std::uint8_t* p;
};

// Keeps up to `qd` requests of `blocks` blocks in flight until `nreq` have completed.
struct Pipeline {
  static constexpr int kMaxQd = 128;
  Request reqs[kMaxQd];
  bool busy[kMaxQd] = {};
  std::uint32_t errors = 0;
  std::uint32_t completed = 0;

  static void Done(Request* r, Status st) {
    auto* self = *static_cast<Pipeline**>(r->context);
    const int idx = static_cast<int>(r - self->reqs);
    self->busy[idx] = false;
    ++self->completed;
    if (!st.ok()) {
      if (self->errors++ == 0)
        Printf("pipeline: request at lba %lu failed: %s (%s)\n", r->lba, st.CodeName(), st.message());
    }
  }
};

// Returns elapsed nanoseconds; data for request i at buf + (i % qd) * blocks * bs.
std::uint64_t RunPipeline(BlockDevice* dev, Op op, std::uint64_t lba0, std::uint32_t blocks,
                          std::uint32_t nreq, int qd, std::uint8_t* buf, std::uint32_t* errors,
                          std::uint64_t lba_span) {
  static Pipeline pl;
  static Pipeline* self_ptr = &pl;
  pl.errors = 0;
  pl.completed = 0;
  const std::uint32_t bs = dev->block_size();
  const std::uint64_t t0 = port::MonotonicNanos();
  std::uint32_t submitted = 0;
  while (pl.completed < nreq) {
    for (int i = 0; i < qd && submitted < nreq; ++i) {
      if (pl.busy[i]) continue;
      Request& r = pl.reqs[i];
      r = Request();
      r.op = op;
      r.lba = lba0 + (static_cast<std::uint64_t>(submitted) * blocks) % lba_span;
      r.count = blocks;
      r.data = buf + static_cast<std::uint64_t>(i) * blocks * bs;
      r.on_complete = &Pipeline::Done;
      r.context = &self_ptr;
      pl.busy[i] = true;
      ++submitted;
      dev->Submit(&r);
    }
    dev->Poll();
  }
  *errors = pl.errors;
  return port::MonotonicNanos() - t0;
}

void Report(const char* what, std::uint64_t bytes, std::uint32_t nreq, std::uint64_t ns) {
  if (ns == 0) ns = 1;
  const std::uint64_t kib_s = bytes * 1000000000ull / ns / 1024;
  const std::uint64_t iops = static_cast<std::uint64_t>(nreq) * 1000000000ull / ns;
  Printf("THROUGHPUT %s: %lu.%02lu MiB/s, %lu IOPS (%u requests, %lu KiB, %lu ms)\n", what,
         kib_s / 1024, (kib_s % 1024) * 100 / 1024, iops, nreq, bytes / 1024, ns / 1000000);
}

struct Flag {
  bool done = false;
  Status st;
};
void FlagDone(Request* r, Status st) {
  auto* f = static_cast<Flag*>(r->context);
  f->st = st;
  f->done = true;
}

}  // namespace

bool TestBlockdev(TestContext& ctx) {
  BlockDevice* dev = ctx.disk;
  auto* vdev = static_cast<VirtioBlk*>(dev);
  const block::Geometry& g = dev->geometry();
  const block::Capabilities& caps = dev->capabilities();
  const std::uint32_t bs = g.block_size;
  const std::uint64_t n = g.block_count;
  const HeapStats heap0 = GetHeapStats();

  // ---- geometry and capabilities ----
  KCHECK(bs == 4096);
  const std::uint64_t want_bytes = ctx.OptionU64("disk_bytes", 0);
  if (want_bytes) KCHECK(n == want_bytes / bs);
  KCHECK(n >= 16384);  // the test layout below needs 64 MiB
  KCHECK(caps.polled);
  KCHECK(caps.volatile_cache);  // QEMU offers VIRTIO_BLK_F_FLUSH
  KCHECK(caps.discard);         // ... and DISCARD / WRITE_ZEROES
  KCHECK(caps.write_zeroes);
  KCHECK(!caps.read_only);
  KCHECK(g.queue_depth > 1);
  KCHECK(g.max_transfer_blocks >= 256);

  std::uint64_t seed;
  port::FillRandom(&seed, sizeof seed);
  Printf("blockdev: seed %lx, %lu blocks, depth %u\n", seed, n, g.queue_depth);

  Buffer wbuf(8u << 20), rbuf(8u << 20);
  KCHECK(wbuf.p && rbuf.p);

  // ---- single blocks across the device, including the first and the last ----
  const std::uint64_t lbas[] = {0, 1, 7, 8, 100, n / 2, n - 2, n - 1};
  for (std::uint64_t lba : lbas) {
    Fill(wbuf.p, bs, seed, lba);
    KCHECK_OK(dev->Write(lba, 1, wbuf.p));
  }
  for (std::uint64_t lba : lbas) {
    FillBytes(rbuf.p, 0xEE, bs);
    KCHECK_OK(dev->Read(lba, 1, rbuf.p));
    KCHECK(Check(rbuf.p, bs, seed, lba));
  }
  Printf("blockdev: single-block patterns ok\n");

  // ---- multi-block, unaligned buffers (segments split at page boundaries) ----
  {
    std::uint8_t* w = wbuf.p + 1;
    std::uint8_t* r = rbuf.p + 3;
    for (std::uint32_t i = 0; i < 64; ++i) Fill(w + i * bs, bs, seed, 1000 + i);
    KCHECK_OK(dev->Write(1000, 64, w));
    KCHECK_OK(dev->Read(1000, 64, r));
    for (std::uint32_t i = 0; i < 64; ++i) KCHECK(Check(r + i * bs, bs, seed, 1000 + i));
    // Reading a middle sub-range returns the right blocks.
    KCHECK_OK(dev->Read(1010, 5, rbuf.p));
    for (std::uint32_t i = 0; i < 5; ++i) KCHECK(Check(rbuf.p + i * bs, bs, seed, 1010 + i));
  }
  // ---- the largest transfer ----
  {
    const std::uint32_t blocks = g.max_transfer_blocks <= 2048 ? g.max_transfer_blocks : 2048;
    for (std::uint32_t i = 0; i < blocks; ++i) Fill(wbuf.p + i * bs, bs, seed, 2048 + i);
    KCHECK_OK(dev->Write(2048, blocks, wbuf.p));
    FillBytes(rbuf.p, 0, static_cast<std::size_t>(blocks) * bs);
    KCHECK_OK(dev->Read(2048, blocks, rbuf.p));
    for (std::uint32_t i = 0; i < blocks; ++i) KCHECK(Check(rbuf.p + i * bs, bs, seed, 2048 + i));
    Printf("blockdev: multi-block and %u-block transfers ok\n", blocks);
  }

  // ---- many requests in flight (more than the queue depth: the driver queues the rest) ----
  {
    constexpr std::uint32_t kReqs = 200;
    static Request reqs[kReqs];
    static Flag flags[kReqs];
    for (std::uint32_t i = 0; i < kReqs; ++i) {
      Fill(wbuf.p + i * bs, bs, seed ^ 0xABCD, 6000 + 3 * i);
      reqs[i] = Request();
      flags[i] = Flag();
      reqs[i].op = Op::kWrite;
      reqs[i].lba = 6000 + 3 * i;
      reqs[i].count = 1;
      reqs[i].data = wbuf.p + i * bs;
      reqs[i].on_complete = &FlagDone;
      reqs[i].context = &flags[i];
    }
    for (auto& r : reqs) dev->Submit(&r);
    const auto mid = vdev->stats();
    KCHECK(mid.in_flight > 1);
    KCHECK(mid.queued > 0);
    std::uint32_t done = 0;
    while (done < kReqs) {
      dev->Poll();
      done = 0;
      for (auto& f : flags) done += f.done ? 1 : 0;
    }
    for (auto& f : flags) KCHECK_OK(f.st);
    // Read them back the same way, in reverse submission order.
    for (std::uint32_t i = 0; i < kReqs; ++i) {
      reqs[i] = Request();
      flags[i] = Flag();
      reqs[i].op = Op::kRead;
      reqs[i].lba = 6000 + 3 * (kReqs - 1 - i);
      reqs[i].count = 1;
      reqs[i].data = rbuf.p + i * bs;
      reqs[i].on_complete = &FlagDone;
      reqs[i].context = &flags[i];
      dev->Submit(&reqs[i]);
    }
    done = 0;
    while (done < kReqs) {
      dev->Poll();
      done = 0;
      for (auto& f : flags) done += f.done ? 1 : 0;
    }
    for (std::uint32_t i = 0; i < kReqs; ++i) {
      KCHECK_OK(flags[i].st);
      KCHECK(Check(rbuf.p + i * bs, bs, seed ^ 0xABCD, 6000 + 3 * (kReqs - 1 - i)));
    }
    Printf("blockdev: %u concurrent requests ok (in flight at once: %u, queued: %u)\n", kReqs,
           mid.in_flight, mid.queued);
  }

  // ---- flush and FUA ----
  KCHECK_OK(dev->Flush());
  {
    const auto before = vdev->stats();
    Fill(wbuf.p, bs, seed ^ 0xF0A, 5000);
    KCHECK_OK(dev->Write(5000, 1, wbuf.p, block::kFua));
    const auto after = vdev->stats();
    KCHECK(after.device_requests == before.device_requests + 2);  // write + flush
    KCHECK_OK(dev->Read(5000, 1, rbuf.p));
    KCHECK(Check(rbuf.p, bs, seed ^ 0xF0A, 5000));
  }

  // ---- write zeroes (must read zeros) and discard (contents unspecified) ----
  KCHECK_OK(dev->WriteZeroes(1000, 64));
  KCHECK_OK(dev->Read(1000, 64, rbuf.p));
  KCHECK(IsAllZero(rbuf.p, 64ull * bs));
  KCHECK_OK(dev->Read(1064, 1, rbuf.p));  // neighbour untouched? (was never written: any value)
  KCHECK_OK(dev->Read(999, 1, rbuf.p));
  KCHECK_OK(dev->Discard(2048, 1024));
  KCHECK_OK(dev->Read(2048, 1024, rbuf.p));
  Printf("blockdev: write-zeroes ok; discarded range reads %s\n",
         IsAllZero(rbuf.p, 1024ull * bs) ? "zeros (hole punched)" : "old data (allowed)");
  // Whole-device discard is split by the driver into the device's max discard size.
  KCHECK_OK(dev->Discard(0, static_cast<std::uint32_t>(n)));

  // ---- refusals: out of range, zero or oversized counts, no buffer, unknown op ----
  {
    auto expect_invalid = [&](Status st) { return st.code() == Code::kInvalidArgument; };
    KCHECK(expect_invalid(dev->Read(n, 1, rbuf.p)));
    KCHECK(expect_invalid(dev->Read(n - 1, 2, rbuf.p)));
    KCHECK(expect_invalid(dev->Write(n, 1, wbuf.p)));
    KCHECK(expect_invalid(dev->Read(~0ull, 1, rbuf.p)));
    KCHECK(expect_invalid(dev->Read(~0ull - 1, 4, rbuf.p)));
    KCHECK(expect_invalid(dev->Read(0, 0, rbuf.p)));
    KCHECK(expect_invalid(dev->Read(0, g.max_transfer_blocks + 1, rbuf.p)));
    KCHECK(expect_invalid(dev->Read(0, 1, nullptr)));
    KCHECK(expect_invalid(dev->Discard(n - 1, 2)));
    KCHECK(expect_invalid(dev->WriteZeroes(n, 1)));
    Request bad;
    bad.op = static_cast<Op>(9);
    bad.lba = 0;
    bad.count = 1;
    bad.data = rbuf.p;
    KCHECK(expect_invalid(dev->Execute(&bad)));
    // The last block itself is fine.
    KCHECK_OK(dev->Read(n - 1, 1, rbuf.p));
    Printf("blockdev: out-of-range and malformed requests refused with InvalidArgument\n");
  }

  // ---- throughput (informational: TCG emulation is noisy) ----
  {
    std::uint32_t errs = 0;
    const std::uint64_t span4k = 4096;  // 16 MiB region
    for (std::uint32_t i = 0; i < 32; ++i) Fill(wbuf.p + i * bs, bs, seed, i);
    std::uint64_t ns = RunPipeline(dev, Op::kWrite, 0, 1, 4096, 32, wbuf.p, &errs, span4k);
    KCHECK(errs == 0);
    Report("write 4KiB qd32", 4096ull * bs, 4096, ns);
    ns = RunPipeline(dev, Op::kRead, 0, 1, 4096, 32, rbuf.p, &errs, span4k);
    KCHECK(errs == 0);
    Report("read 4KiB qd32", 4096ull * bs, 4096, ns);
    ns = RunPipeline(dev, Op::kWrite, 0, 1, 1024, 1, wbuf.p, &errs, span4k);
    KCHECK(errs == 0);
    Report("write 4KiB qd1", 1024ull * bs, 1024, ns);
    ns = RunPipeline(dev, Op::kRead, 0, 1, 1024, 1, rbuf.p, &errs, span4k);
    KCHECK(errs == 0);
    Report("read 4KiB qd1", 1024ull * bs, 1024, ns);
    const std::uint64_t span1m = (n / 256) * 256;
    ns = RunPipeline(dev, Op::kWrite, 0, 256, 128, 4, wbuf.p, &errs, span1m);
    KCHECK(errs == 0);
    Report("write 1MiB qd4", 128ull * 256 * bs, 128, ns);
    ns = RunPipeline(dev, Op::kRead, 0, 256, 128, 4, rbuf.p, &errs, span1m);
    KCHECK(errs == 0);
    Report("read 1MiB qd4", 128ull * 256 * bs, 128, ns);
    const std::uint64_t f0 = port::MonotonicNanos();
    KCHECK_OK(dev->Flush());
    Printf("THROUGHPUT flush after 128 MiB of writes: %lu us\n", (port::MonotonicNanos() - f0) / 1000);
  }

  const auto st = vdev->stats();
  Printf("blockdev: driver stats: submitted=%lu completed=%lu device_requests=%lu notifies=%lu "
         "errors=%lu max_in_flight=%u\n",
         st.submitted, st.completed, st.device_requests, st.notifies, st.errors, st.max_in_flight);
  KCHECK(st.in_flight == 0 && st.queued == 0);
  KCHECK(st.submitted == st.completed);
  KCHECK(st.max_in_flight > 1);
  // No leaks: only the two test buffers are still allocated.
  KCHECK(GetHeapStats().bytes_in_use ==
         heap0.bytes_in_use + HeapBlockSize(wbuf.p) + HeapBlockSize(rbuf.p));
  return true;
}

// ---- two boots on one image ----------------------------------------------------------------
namespace {
constexpr std::uint64_t kPersistStride = 97;
std::uint64_t PersistSeed(TestContext& ctx) { return ctx.OptionU64("seed", 20240601); }
}  // namespace

bool TestBlockdevPersistWrite(TestContext& ctx) {
  BlockDevice* dev = ctx.disk;
  const std::uint32_t bs = dev->block_size();
  const std::uint64_t seed = PersistSeed(ctx);
  Buffer buf(1u << 20);
  std::uint64_t count = 0;
  for (std::uint64_t lba = 3; lba < dev->block_count(); lba += kPersistStride, ++count) {
    Fill(buf.p, bs, seed, lba);
    KCHECK_OK(dev->Write(lba, 1, buf.p));
  }
  // One 1 MiB extent too.
  for (std::uint32_t i = 0; i < 256; ++i) Fill(buf.p + i * bs, bs, seed, 512 + i);
  KCHECK_OK(dev->Write(512, 256, buf.p));
  KCHECK_OK(dev->Flush());
  Printf("persist: wrote %lu scattered blocks + 1 MiB extent with seed %lu, flushed\n", count, seed);
  return true;  // exits without any shutdown: only the flush made the data durable
}

bool TestBlockdevPersistVerify(TestContext& ctx) {
  BlockDevice* dev = ctx.disk;
  const std::uint32_t bs = dev->block_size();
  const std::uint64_t seed = PersistSeed(ctx);
  Buffer buf(1u << 20);
  std::uint64_t count = 0;
  for (std::uint64_t lba = 3; lba < dev->block_count(); lba += kPersistStride, ++count) {
    KCHECK_OK(dev->Read(lba, 1, buf.p));
    KCHECK(Check(buf.p, bs, seed, lba));
  }
  KCHECK_OK(dev->Read(512, 256, buf.p));
  for (std::uint32_t i = 0; i < 256; ++i) KCHECK(Check(buf.p + i * bs, bs, seed, 512 + i));
  Printf("persist: %lu scattered blocks + 1 MiB extent from the previous boot verified\n", count);
  return true;
}

}  // namespace permfs::qemu
