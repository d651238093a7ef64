#include "util/status.h"

namespace permfs {
namespace {

struct CodeInfo {
  Code code;
  int err;
  const char* name;
};

// Linux errno numbering; a port for another OS maps these at its adapter.
constexpr CodeInfo kCodes[] = {
    {Code::kOk, 0, "OK"},
    {Code::kNotFound, 2, "NotFound"},
    {Code::kExists, 17, "Exists"},
    {Code::kCorruption, 117, "Corruption"},
    {Code::kIOError, 5, "IOError"},
    {Code::kNoSpace, 28, "NoSpace"},
    {Code::kInvalidArgument, 22, "InvalidArgument"},
    {Code::kNotSupported, 95, "NotSupported"},
    {Code::kBusy, 16, "Busy"},
    {Code::kReadOnly, 30, "ReadOnly"},
    {Code::kNameTooLong, 36, "NameTooLong"},
    {Code::kNotDirectory, 20, "NotDirectory"},
    {Code::kIsDirectory, 21, "IsDirectory"},
    {Code::kNotEmpty, 39, "NotEmpty"},
    {Code::kLoop, 40, "Loop"},
    {Code::kTooManyLinks, 31, "TooManyLinks"},
    {Code::kFileTooBig, 27, "FileTooBig"},
    {Code::kCrossDevice, 18, "CrossDevice"},
    {Code::kPermission, 1, "Permission"},
    {Code::kAccess, 13, "Access"},
    {Code::kRange, 34, "Range"},
    {Code::kNoData, 61, "NoData"},
    {Code::kStale, 116, "Stale"},
    {Code::kAgain, 11, "Again"},
    {Code::kTimedOut, 110, "TimedOut"},
    {Code::kNoMemory, 12, "NoMemory"},
    {Code::kOverflow, 75, "Overflow"},
    {Code::kBadHandle, 9, "BadHandle"},
    {Code::kInterrupted, 4, "Interrupted"},
    {Code::kNotConnected, 107, "NotConnected"},
    {Code::kProtocol, 71, "Protocol"},
    {Code::kNoDevice, 6, "NoDevice"},
    {Code::kTextBusy, 26, "TextBusy"},
    {Code::kTooBig, 7, "TooBig"},
};

}  // namespace

int Status::ToErrno() const noexcept {
  for (const auto& c : kCodes)
    if (c.code == code_) return c.err;
  return 5;
}

const char* Status::CodeName() const noexcept {
  for (const auto& c : kCodes)
    if (c.code == code_) return c.name;
  return "Unknown";
}

Status StatusFromErrno(int err, const char* msg) noexcept {
  if (err == 0) return Status();
  if (err == 61) return Status(Code::kNoData, msg);
  if (err == 39 || err == 66) return Status(Code::kNotEmpty, msg);
  for (const auto& c : kCodes)
    if (c.err == err) return Status(c.code, msg);
  return Status(Code::kIOError, msg);
}

}  // namespace permfs
