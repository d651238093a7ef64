// Test fixture: a fresh volume + Filesystem on a MemBlockDevice, with remount.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "block/mem_block_device.h"
#include "fs/filesystem.h"
#include "fs/fsck.h"
#include "volume/volume.h"

namespace permfs::fs::test {

class FsFixture : public ::testing::Test {
 protected:
  void Make(std::uint64_t blocks = 16384, std::uint32_t record_size = 65536) {
    dev_ = std::make_unique<block::MemBlockDevice>(blocks);
    volume::MkfsOptions mo;
    mo.record_size = record_size;
    ASSERT_TRUE(volume::Volume::Mkfs(dev_.get(), mo).ok());
    Mount(true);
  }
  void Mount(bool format = false) {
    auto v = volume::Volume::Mount(dev_.get(), {});
    ASSERT_TRUE(v.ok()) << v.status().message();
    vol_ = std::move(*v);
    if (format) {
      ASSERT_TRUE(Filesystem::Format(vol_.get(), {0, 0}).ok());
    }
    fs_ = std::make_unique<Filesystem>(vol_.get());
    Status st = fs_->Open();
    ASSERT_TRUE(st.ok()) << st.message();
  }
  void Unmount() {
    fs_.reset();
    if (vol_) {
      ASSERT_TRUE(vol_->Unmount().ok());
    }
    vol_.reset();
  }
  void Remount() {
    Unmount();
    Mount();
  }
  // Unmounts and runs a full fsck (with data verification); expects a clean volume.
  void ExpectClean() {
    Unmount();
    FsckOptions o;
    o.verify_data = true;
    FsckReport r;
    Status st = Fsck(dev_.get(), o, &r);
    ASSERT_TRUE(st.ok()) << st.message();
    std::string all;
    for (const std::string& p : r.problems) all += p + "\n";
    EXPECT_EQ(r.errors, 0u) << all;
  }
  void TearDown() override {
    fs_.reset();
    if (vol_) (void)vol_->Unmount().ok();
    vol_.reset();
    if (dev_ && !::testing::Test::HasFailure()) ExpectClean();
  }
  std::string ReadAll(std::uint64_t ino) {
    auto a = fs_->GetAttr(ino);
    EXPECT_TRUE(a.ok());
    std::string out(a->size, '\0');
    auto n = fs_->Read(ino, 0, out.size(), reinterpret_cast<std::uint8_t*>(out.data()));
    EXPECT_TRUE(n.ok()) << n.status().message();
    out.resize(n.ok() ? *n : 0);
    return out;
  }
  Status WriteStr(std::uint64_t ino, std::uint64_t off, const std::string& s) {
    return fs_->Write(ino, off, reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  }

  std::unique_ptr<block::MemBlockDevice> dev_;
  Owned<volume::Volume> vol_;
  std::unique_ptr<Filesystem> fs_;
  Credentials cred_{1000, 1000};
};

}  // namespace permfs::fs::test
