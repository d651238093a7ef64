// An opened PermFS image for the tool's file commands: device + mounted Volume + Filesystem,
// and path resolution inside the image.
//
// Open() opens the image (exclusive lock: read-write commands LOCK_EX, read-only ones LOCK_SH),
// mounts the volume (replaying the journal; read-only mounts replay into memory only) and opens
// the filesystem (read-write: finishes interrupted truncations and reclaims orphans). Close()
// commits, checkpoints and flushes, so everything the command did is durable when it returns;
// the destructor does the same on error paths, best effort.
//
// Paths inside the image are resolved from the image root, component by component, with
// Filesystem::Lookup. Symlinks in intermediate components are followed (40 hops at most, then
// ELOOP); an absolute target restarts at the image root; "." and ".." work as usual.
// Thread-safety: single-threaded tool code.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "block/block_device.h"
#include "fs/filesystem.h"
#include "volume/volume.h"

namespace permfs::tools {

class Image {
 public:
  // Throws Failure with a message naming `path`.
  // `require_root`: fail unless the root directory can be read (every file command needs it;
  // info does not, so it can still describe a volume whose inode tree is damaged).
  static std::unique_ptr<Image> Open(const std::string& path, bool writable,
                                     bool require_root = true);
  ~Image();
  Image(const Image&) = delete;
  Image& operator=(const Image&) = delete;

  // Makes everything durable and unmounts. Throws Failure.
  void Close();

  fs::Filesystem& fs() { return *fs_; }
  volume::Volume& vol() { return *vol_; }
  const std::string& path() const { return path_; }
  const volume::MountReport& mount_report() const { return report_; }
  fs::Credentials cred() const;

  struct Resolved {
    std::uint64_t parent = fs::kRootIno;  // directory holding `name`
    std::string name;                     // last component; empty for "/", "." or ".."
    bool exists = false;
    fs::InodeRecord inode;  // valid if exists
  };
  // Resolves `ipath`. With follow_last a symlink in the last component is followed too. A
  // missing last component gives exists=false (its parent must exist). Throws Failure.
  Resolved Resolve(const std::string& ipath, bool follow_last);
  // Resolve that requires the path to exist.
  fs::InodeRecord Stat(const std::string& ipath, bool follow_last);

  struct Entry {
    std::string name;
    std::uint64_t ino;
    std::uint8_t type;
  };
  // Every entry of directory `dir`, sorted by name. Throws Failure naming `ipath`.
  std::vector<Entry> List(std::uint64_t dir, const std::string& ipath);
  // Reads the whole symlink target.
  std::string Readlink(std::uint64_t ino, const std::string& ipath);
  // Unlinks `name` from `parent` and reclaims the inode if that was its last link.
  void UnlinkAndReclaim(std::uint64_t parent, const std::string& name, const std::string& ipath);

 private:
  Image() = default;

  std::string path_;
  bool writable_ = false;
  std::unique_ptr<block::BlockDevice> dev_;
  Owned<volume::Volume> vol_;
  std::unique_ptr<fs::Filesystem> fs_;
  volume::MountReport report_;
};

// Joins an image path and a name ("/a" + "b" -> "/a/b", "/" + "b" -> "/b").
std::string JoinImagePath(const std::string& dir, const std::string& name);
// Last non-empty component of a path ("" for "/").
std::string BaseName(const std::string& path);

// Opens an image or device for the tool: clear messages for a missing path, a directory, an
// empty or truncated file, an image whose size is not a whole number of 4 KiB blocks, and an
// image in use. Throws Failure.
std::unique_ptr<block::BlockDevice> OpenDevice(const std::string& path, bool writable,
                                               std::uint64_t create_size = 0);
// Mounts with a message that says what is wrong with the image. Throws Failure.
Owned<volume::Volume> MountVolume(block::BlockDevice* dev, const std::string& path, bool writable,
                                  volume::MountReport* report);

}  // namespace permfs::tools
