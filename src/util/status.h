// Status: the error value every fallible PermFS call returns.
//
// A Status is a small value (code + static message): copying it never allocates, so it is safe on
// error paths, in a kernel and while panicking. Codes map one-to-one onto POSIX errno values
// (Linux numbering, see ToErrno()). Corruption (bytes on the device are wrong), IOError (the
// device failed) and NoSpace (the device is full) are distinct codes, so callers can tell
// "the disk said no" from "the data is damaged" from "there is no room".
//
// Messages must be string literals or other storage that outlives the Status.
// Thread-safety: a Status is an immutable value; share it freely.
#pragma once

#include <cstdint>

namespace permfs {

enum class Code : std::uint8_t {
  kOk = 0,
  kNotFound,         // ENOENT
  kExists,           // EEXIST
  kCorruption,       // EUCLEAN: on-disk bytes failed validation (checksum, bounds, identity)
  kIOError,          // EIO: the device reported an error
  kNoSpace,          // ENOSPC
  kInvalidArgument,  // EINVAL
  kNotSupported,     // EOPNOTSUPP
  kBusy,             // EBUSY
  kReadOnly,         // EROFS: volume is read-only or went read-only after a write error
  kNameTooLong,      // ENAMETOOLONG
  kNotDirectory,     // ENOTDIR
  kIsDirectory,      // EISDIR
  kNotEmpty,         // ENOTEMPTY
  kLoop,             // ELOOP
  kTooManyLinks,     // EMLINK
  kFileTooBig,       // EFBIG
  kCrossDevice,      // EXDEV
  kPermission,       // EPERM
  kAccess,           // EACCES
  kRange,            // ERANGE
  kNoData,           // ENODATA (missing xattr)
  kStale,            // ESTALE (stale handle / fencing token)
  kAgain,            // EAGAIN
  kTimedOut,         // ETIMEDOUT
  kNoMemory,         // ENOMEM
  kOverflow,         // EOVERFLOW
  kBadHandle,        // EBADF
  kInterrupted,      // EINTR
  kNotConnected,     // ENOTCONN
  kProtocol,         // EPROTO: a network peer sent a malformed message
  kNoDevice,         // ENXIO: address resolves to no device this process owns
  kTextBusy,         // ETXTBSY
  kTooBig,           // E2BIG (xattr value too large)
  kNoAttr = kNoData,
};

class [[nodiscard]] Status {
 public:
  constexpr Status() noexcept = default;
  constexpr Status(Code code, const char* msg) noexcept : code_(code), msg_(msg) {}

  static constexpr Status Ok() noexcept { return Status(); }
  static constexpr Status NotFound(const char* m = "not found") { return {Code::kNotFound, m}; }
  static constexpr Status Exists(const char* m = "already exists") { return {Code::kExists, m}; }
  static constexpr Status Corruption(const char* m) { return {Code::kCorruption, m}; }
  static constexpr Status IOError(const char* m) { return {Code::kIOError, m}; }
  static constexpr Status NoSpace(const char* m = "no space left") { return {Code::kNoSpace, m}; }
  static constexpr Status InvalidArgument(const char* m) { return {Code::kInvalidArgument, m}; }
  static constexpr Status NotSupported(const char* m) { return {Code::kNotSupported, m}; }
  static constexpr Status Busy(const char* m) { return {Code::kBusy, m}; }
  static constexpr Status ReadOnly(const char* m = "read-only") { return {Code::kReadOnly, m}; }
  static constexpr Status NoMemory(const char* m = "out of memory") { return {Code::kNoMemory, m}; }

  constexpr bool ok() const noexcept { return code_ == Code::kOk; }
  constexpr Code code() const noexcept { return code_; }
  constexpr const char* message() const noexcept { return msg_ ? msg_ : ""; }

  constexpr bool IsNotFound() const noexcept { return code_ == Code::kNotFound; }
  constexpr bool IsCorruption() const noexcept { return code_ == Code::kCorruption; }
  constexpr bool IsIOError() const noexcept { return code_ == Code::kIOError; }
  constexpr bool IsNoSpace() const noexcept { return code_ == Code::kNoSpace; }

  // Positive Linux errno value for this status (0 for OK).
  int ToErrno() const noexcept;
  // Short name of the code, e.g. "Corruption".
  const char* CodeName() const noexcept;

  // Explicitly discards a status the caller has decided it cannot act on.
  constexpr void IgnoreError() const noexcept {}

  friend constexpr bool operator==(const Status& a, const Status& b) noexcept {
    return a.code_ == b.code_;
  }

 private:
  Code code_ = Code::kOk;
  const char* msg_ = nullptr;
};

// Builds a status from a positive Linux errno (the inverse of ToErrno for the codes above).
Status StatusFromErrno(int err, const char* msg) noexcept;

}  // namespace permfs

// Returns early from the enclosing function if `expr` yields a non-OK Status.
#define PERMFS_RETURN_IF_ERROR(expr)             \
  do {                                           \
    ::permfs::Status _permfs_st = (expr);        \
    if (!_permfs_st.ok()) return _permfs_st;     \
  } while (0)
