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
// Debian 12's kernel headers (protocol 7.37) and libfuse 3.14 predate all this, so the ring's
// layouts are spelled out here and checked against the kernel's sizes; the classic structures
// (fuse_in_header, fuse_out_header, fuse_init_out) come from <linux/fuse.h>. Plain data; no
// thread-safety concerns.
#pragma once

#include <linux/fuse.h>

#include <cstddef>
#include <cstdint>

namespace permfs::fuse::uring {

constexpr std::uint32_t kFlags2OverIoUring = 1u << 9;    // FUSE_OVER_IO_URING = 1ULL << 41
constexpr std::uint32_t kCmdRegister = 1;                // FUSE_IO_URING_CMD_REGISTER
constexpr std::uint32_t kCmdCommitAndFetch = 2;          // FUSE_IO_URING_CMD_COMMIT_AND_FETCH
constexpr std::size_t kMinPayload = 8192;                // FUSE_MIN_READ_BUFFER
constexpr std::size_t kDefaultMaxPages = 32;             // without FUSE_MAX_PAGES

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
  unsigned char in_out[kHeaderArea];  // fuse_in_header on arrival, fuse_out_header on reply
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
