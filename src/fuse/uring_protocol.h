// The FUSE kernel protocol pieces that the io_uring transport reads and writes itself.
//
// Linux 6.14 added FUSE over io_uring (include/uapi/linux/fuse.h, protocol 7.42): the daemon
// registers ring entries with IORING_OP_URING_CMD on the /dev/fuse descriptor; each entry is a
// header buffer (ReqHeader) and a payload buffer. A request arrives as the completion of the
// entry's command: the fuse_in_header in ReqHeader::in_out, the opcode's fixed argument (the
// request's first in-argument, possibly empty) in op_in, every further argument back to back in
// the payload, and EntInOut::payload_sz saying how many payload bytes there are. The reply goes
// the same way back: fuse_out_header in in_out, the whole reply body in the payload,
// payload_sz its length, then FUSE_IO_URING_CMD_COMMIT_AND_FETCH with the request's commit id,
// which also re-arms the entry for the next request.
// Debian 12's kernel headers and libfuse 3.14 predate all this, so the layouts are spelled out
// here and checked against the kernel's sizes. Plain data; no thread-safety concerns.
#pragma once

#include <cstddef>
#include <cstdint>

namespace permfs::fuse::uring {

constexpr std::uint32_t kOpInit = 26;                    // FUSE_INIT
constexpr std::uint32_t kOpWrite = 16;                   // FUSE_WRITE
constexpr std::uint32_t kOpForget = 2;                   // FUSE_FORGET (no reply)
constexpr std::uint32_t kOpBatchForget = 42;             // FUSE_BATCH_FORGET (no reply)
constexpr std::uint32_t kInitExt = 1u << 30;             // FUSE_INIT_EXT: flags2 is meaningful
constexpr std::uint32_t kInitMaxPages = 1u << 22;        // FUSE_MAX_PAGES: max_pages is set
constexpr std::uint32_t kFlags2OverIoUring = 1u << 9;    // FUSE_OVER_IO_URING = 1ULL << 41
constexpr std::uint32_t kCmdRegister = 1;                // FUSE_IO_URING_CMD_REGISTER
constexpr std::uint32_t kCmdCommitAndFetch = 2;          // FUSE_IO_URING_CMD_COMMIT_AND_FETCH
constexpr std::size_t kMinPayload = 8192;                // FUSE_MIN_READ_BUFFER
constexpr std::size_t kDefaultMaxPages = 32;             // without FUSE_MAX_PAGES

struct InHeader {  // struct fuse_in_header
  std::uint32_t len;  // header + every argument, payload included
  std::uint32_t opcode;
  std::uint64_t unique;
  std::uint64_t nodeid;
  std::uint32_t uid, gid, pid;
  std::uint16_t total_extlen;
  std::uint16_t padding;
};
static_assert(sizeof(InHeader) == 40);

struct OutHeader {  // struct fuse_out_header
  std::uint32_t len;
  std::int32_t error;  // 0 or -errno
  std::uint64_t unique;
};
static_assert(sizeof(OutHeader) == 16);

struct InitIn {  // struct fuse_init_in (7.36+)
  std::uint32_t major, minor, max_readahead, flags, flags2;
  std::uint32_t unused[11];
};
static_assert(sizeof(InitIn) == 64);

struct InitOut {  // struct fuse_init_out (7.36+)
  std::uint32_t major, minor, max_readahead, flags;
  std::uint16_t max_background, congestion_threshold;
  std::uint32_t max_write, time_gran;
  std::uint16_t max_pages, map_alignment;
  std::uint32_t flags2;
  std::uint32_t unused[7];
};
static_assert(sizeof(InitOut) == 64);
static_assert(offsetof(InitOut, flags) == 12 && offsetof(InitOut, flags2) == 32);

struct EntInOut {  // struct fuse_uring_ent_in_out
  std::uint64_t flags;
  std::uint64_t commit_id;   // to quote in COMMIT_AND_FETCH
  std::uint32_t payload_sz;  // bytes used in the payload buffer (request or reply)
  std::uint32_t padding;
  std::uint64_t reserved;
};
static_assert(sizeof(EntInOut) == 32);

constexpr std::size_t kHeaderArea = 128;  // FUSE_URING_IN_OUT_HEADER_SZ
constexpr std::size_t kOpArea = 128;      // FUSE_URING_OP_IN_OUT_SZ

struct ReqHeader {  // struct fuse_uring_req_header
  unsigned char in_out[kHeaderArea];  // InHeader on arrival, OutHeader on reply
  unsigned char op_in[kOpArea];       // the opcode's fixed argument
  EntInOut ent;
};
static_assert(sizeof(ReqHeader) == 288);

struct CmdReq {  // struct fuse_uring_cmd_req, in the SQE's 80-byte command area
  std::uint64_t flags;
  std::uint64_t commit_id;
  std::uint16_t qid;  // the queue = the CPU whose requests this entry serves
  std::uint8_t padding[6];
};
static_assert(sizeof(CmdReq) == 24);

}  // namespace permfs::fuse::uring
