#include "tools/image.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>

#include "hosted/open_device.h"
#include "tools/cli.h"

namespace permfs::tools {

namespace {

constexpr int kMaxSymlinkHops = 40;
constexpr std::uint32_t kDeviceBlock = 4096;

std::deque<std::string> SplitPath(const std::string& p) {
  std::deque<std::string> out;
  std::size_t i = 0;
  while (i <= p.size()) {
    std::size_t j = p.find('/', i);
    if (j == std::string::npos) j = p.size();
    out.push_back(p.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

bool OnlyTrivial(const std::deque<std::string>& comps) {
  for (const std::string& c : comps)
    if (!c.empty() && c != ".") return false;
  return true;
}

}  // namespace

std::string JoinImagePath(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir == "/") return "/" + name;
  if (dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

std::string BaseName(const std::string& path) {
  std::size_t end = path.size();
  while (end > 0 && path[end - 1] == '/') --end;
  std::size_t start = path.rfind('/', end ? end - 1 : 0);
  start = (start == std::string::npos || end == 0) ? 0 : start + 1;
  if (end == 0) return "";
  return path.substr(start, end - start);
}

std::unique_ptr<block::BlockDevice> OpenDevice(const std::string& path, bool writable,
                                               std::uint64_t create_size) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    int err = errno;
    if (err != ENOENT || create_size == 0) FailErrno(path, err);
  } else if (S_ISDIR(st.st_mode)) {
    FailMsg(path + ": is a directory, not an image file or block device");
  } else if (S_ISREG(st.st_mode)) {
    if (st.st_size == 0) throw Failure{path + ": empty file, not a PermFS image", 1, true};
    if (st.st_size % kDeviceBlock != 0)
      throw Failure{path + ": image size " + std::to_string(st.st_size) +
                        " is not a multiple of 4096 bytes (truncated, or not a PermFS image)",
                    1, true};
  } else if (!S_ISBLK(st.st_mode)) {
    FailMsg(path + ": not a regular file or block device");
  }
  hosted::OpenOptions o;
  o.block_size = kDeviceBlock;
  o.read_only = !writable;
  o.exclusive = true;
  o.create_size_bytes = create_size;
  auto dev = hosted::OpenBlockDevice(path, o);
  if (!dev.ok()) {
    if (dev.status().code() == Code::kBusy)
      FailMsg(path + ": image is in use (locked by another process or mount)");
    Fail(path, dev.status());
  }
  return std::move(*dev);
}

Owned<volume::Volume> MountVolume(block::BlockDevice* dev, const std::string& path, bool writable,
                                  volume::MountReport* report) {
  auto sb = volume::ReadSuperblock(dev, nullptr);
  if (!sb.ok()) {
    if (sb.status().IsCorruption())
      FailMsg(path +
              ": no valid PermFS superblock (not a PermFS volume, or every superblock copy "
              "is damaged): " +
              sb.status().message());
    Fail(path + ": cannot read the superblock", sb.status());
  }
  if (sb->incompat & ~format::kIncompatKnown)
    FailMsg(path + ": volume uses incompatible features this version does not know");
  volume::MountOptions mo;
  mo.read_only = !writable;
  auto v = volume::Volume::Mount(dev, mo, report);
  if (!v.ok()) Fail(path + ": cannot mount", v.status());
  if (writable && (*v)->read_only())
    FailMsg(path +
            ": volume can only be mounted read-only (unknown read-only-compatible "
            "features, or a read-only device)");
  return std::move(*v);
}

std::unique_ptr<Image> Image::Open(const std::string& path, bool writable, bool require_root) {
  std::unique_ptr<Image> img(new Image());
  img->path_ = path;
  img->writable_ = writable;
  img->dev_ = OpenDevice(path, writable);
  img->vol_ = MountVolume(img->dev_.get(), path, writable, &img->report_);
  img->fs_ = std::make_unique<fs::Filesystem>(img->vol_.get());
  // The filesystem must have been formatted (root inode present).
  auto root = img->fs_->GetAttr(fs::kRootIno);
  if (require_root && !root.ok()) {
    if (root.status().IsNotFound())
      FailMsg(path + ": the volume has no root directory (mkfs did not finish)");
    Fail(path + ": cannot read the root directory", root.status());
  }
  if (writable) {
    Status st = img->fs_->Open();
    if (!st.ok()) Fail(path + ": cannot open the filesystem", st);
  }
  return img;
}

Image::~Image() {
  // Error path (Close() not called): keep what was committed, quietly.
  fs_.reset();
  if (vol_) vol_->Unmount().IgnoreError();
  vol_.reset();
  dev_.reset();
}

void Image::Close() {
  fs_.reset();
  if (vol_) {
    Status st = vol_->Unmount();
    vol_.reset();
    if (!st.ok()) Fail(path_ + ": unmount", st);
  }
  dev_.reset();
}

fs::Credentials Image::cred() const {
  return fs::Credentials{static_cast<std::uint32_t>(getuid()),
                         static_cast<std::uint32_t>(getgid())};
}

Image::Resolved Image::Resolve(const std::string& ipath, bool follow_last) {
  std::deque<std::string> comps = SplitPath(ipath);
  auto root = fs_->GetAttr(fs::kRootIno);
  if (!root.ok()) Fail(ipath, root.status());
  fs::InodeRecord cur = *root;
  Resolved r;
  r.parent = fs::kRootIno;
  r.exists = true;
  r.inode = cur;
  int hops = 0;
  while (!comps.empty()) {
    std::string c = std::move(comps.front());
    comps.pop_front();
    if (c.empty() || c == ".") {
      if (!fs::IsDir(cur.mode)) Fail(ipath, Status(Code::kNotDirectory, "not a directory"));
      continue;
    }
    if (!fs::IsDir(cur.mode)) Fail(ipath, Status(Code::kNotDirectory, "not a directory"));
    if (c == "..") {
      std::uint64_t up = cur.ino == fs::kRootIno ? fs::kRootIno : cur.parent;
      auto p = fs_->GetAttr(up);
      if (!p.ok()) Fail(ipath, p.status());
      cur = *p;
      r.parent = cur.ino;
      r.name.clear();
      r.exists = true;
      r.inode = cur;
      continue;
    }
    auto l = fs_->Lookup(cur.ino, c);
    if (!l.ok()) {
      if (l.status().IsNotFound() && OnlyTrivial(comps)) {
        r.parent = cur.ino;
        r.name = c;
        r.exists = false;
        r.inode = fs::InodeRecord();
        return r;
      }
      Fail(ipath, l.status());
    }
    if (fs::IsSymlink(l->mode) && (!comps.empty() || follow_last)) {
      if (++hops > kMaxSymlinkHops)
        Fail(ipath, Status(Code::kLoop, "too many levels of symbolic links"));
      std::string target = Readlink(l->ino, ipath);
      if (target.empty()) Fail(ipath, Status(Code::kNotFound, "empty symlink target"));
      std::deque<std::string> t = SplitPath(target);
      comps.insert(comps.begin(), t.begin(), t.end());
      if (target[0] == '/') {
        cur = *root;
        r.parent = fs::kRootIno;
        r.name.clear();
        r.inode = cur;
      }
      continue;
    }
    r.parent = cur.ino;
    r.name = c;
    r.exists = true;
    r.inode = *l;
    cur = *l;
  }
  return r;
}

fs::InodeRecord Image::Stat(const std::string& ipath, bool follow_last) {
  Resolved r = Resolve(ipath, follow_last);
  if (!r.exists) Fail(ipath, Status(Code::kNotFound, "no such file or directory"));
  return r.inode;
}

std::vector<Image::Entry> Image::List(std::uint64_t dir, const std::string& ipath) {
  std::vector<Entry> out;
  Status st = fs_->ReadDir(
      dir, 0,
      [](void* ctx, const fs::DirEntry& e, std::uint64_t) {
        static_cast<std::vector<Entry>*>(ctx)->push_back(Entry{e.name, e.ino, e.type});
        return true;
      },
      &out);
  if (!st.ok()) Fail(ipath, st);
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
  return out;
}

std::string Image::Readlink(std::uint64_t ino, const std::string& ipath) {
  auto t = fs_->Readlink(ino);
  if (!t.ok()) Fail(ipath, t.status());
  return *t;
}

void Image::UnlinkAndReclaim(std::uint64_t parent, const std::string& name,
                             const std::string& ipath) {
  fs::UnlinkOutcome out;
  Status st = fs_->Unlink(parent, name, &out);
  if (!st.ok()) Fail(ipath, st);
  if (out.orphan) {
    st = fs_->Reclaim(out.orphan);
    if (!st.ok()) Fail(ipath + ": reclaiming its space", st);
  }
}

}  // namespace permfs::tools
