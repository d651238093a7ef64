#include "util/result.h"
#include "util/status.h"

#include <gtest/gtest.h>

namespace permfs {
namespace {

TEST(StatusTest, OkIsZeroErrno) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToErrno(), 0);
}

TEST(StatusTest, DistinctCodesForCorruptionIoAndNoSpace) {
  EXPECT_EQ(Status::Corruption("x").ToErrno(), 117);  // EUCLEAN
  EXPECT_EQ(Status::IOError("x").ToErrno(), 5);       // EIO
  EXPECT_EQ(Status::NoSpace().ToErrno(), 28);         // ENOSPC
  EXPECT_FALSE(Status::Corruption("x") == Status::IOError("x"));
}

TEST(StatusTest, ErrnoRoundTrip) {
  for (int e : {1, 2, 5, 9, 12, 13, 16, 17, 18, 20, 21, 22, 27, 28, 30, 31, 34, 36, 39, 40, 61,
                95, 117}) {
    EXPECT_EQ(StatusFromErrno(e, "m").ToErrno(), e) << e;
  }
  EXPECT_EQ(StatusFromErrno(9999, "m").code(), Code::kIOError);
}

Result<int> Half(int v) {
  if (v % 2) return Status::InvalidArgument("odd");
  return v / 2;
}

Status UseHalf(int v, int* out) {
  PERMFS_ASSIGN_OR_RETURN(int h, Half(v));
  *out = h;
  return Status();
}

TEST(ResultTest, ValueAndError) {
  int out = 0;
  EXPECT_TRUE(UseHalf(8, &out).ok());
  EXPECT_EQ(out, 4);
  Status s = UseHalf(7, &out);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_STREQ(s.message(), "odd");
}

TEST(ResultTest, MoveOnlyValues) {
  Result<std::vector<int>> r(std::vector<int>{1, 2, 3});
  ASSERT_TRUE(r.ok());
  std::vector<int> v = std::move(r).value();
  EXPECT_EQ(v.size(), 3u);
}

}  // namespace
}  // namespace permfs
