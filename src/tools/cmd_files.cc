// File commands that use the filesystem library directly (no FUSE): ls, cat, cp, mkdir, rm,
// mv, ln, stat, df. Each opens the image, does its work and unmounts, so its changes are durable
// when it exits.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "fs/filesystem.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "tools/image.h"

namespace permfs::tools {

const char kLsUsage[] =
    "usage: permfs ls IMAGE [PATH...] [-l] [-R]\n"
    "\n"
    "Lists directories inside a PermFS image (default: the root).\n"
    "\n"
    "options:\n"
    "  -l, --long        long format: mode, links, owner, size, modification time\n"
    "  -R, --recursive   list subdirectories recursively\n";

const char kCatUsage[] =
    "usage: permfs cat IMAGE PATH...\n"
    "\n"
    "Writes the contents of files inside a PermFS image to standard output.\n";

const char kCpUsage[] =
    "usage: permfs cp [-r] SRC... DST\n"
    "\n"
    "Copies files between the host and a PermFS image. Exactly one side is written as\n"
    "IMAGE:PATH (PATH inside the image, from its root):\n"
    "  permfs cp [-r] HOST_PATH... IMAGE:PATH     copy into the image\n"
    "  permfs cp [-r] IMAGE:PATH... HOST_PATH     copy out of the image\n"
    "If DST is an existing directory, the sources are copied into it. Mode, modification time\n"
    "and symlinks are preserved; hard links inside one copy stay hard links; holes (all-zero\n"
    "records) stay holes. Files are owned by the caller.\n"
    "\n"
    "options:\n"
    "  -r, -R, --recursive   copy directories recursively (symlinks are copied as symlinks)\n"
    "  -v, --verbose         print each path copied\n";

const char kMkdirUsage[] =
    "usage: permfs mkdir IMAGE PATH... [-p] [-m MODE]\n"
    "\n"
    "Creates directories inside a PermFS image.\n"
    "\n"
    "options:\n"
    "  -p, --parents   create missing parents; no error if the directory exists\n"
    "  -m, --mode MODE permission bits, octal (default 0755)\n";

const char kRmUsage[] =
    "usage: permfs rm IMAGE PATH... [-r] [-f]\n"
    "\n"
    "Removes files (and with -r, directory trees) inside a PermFS image. Space is reclaimed\n"
    "immediately.\n"
    "\n"
    "options:\n"
    "  -r, -R, --recursive   remove directories and their contents\n"
    "  -f, --force           ignore missing paths\n";

const char kMvUsage[] =
    "usage: permfs mv IMAGE SRC DST\n"
    "\n"
    "Renames SRC to DST inside a PermFS image (atomically). If DST is an existing directory,\n"
    "SRC is moved into it. An existing DST file is replaced.\n";

const char kLnUsage[] =
    "usage: permfs ln [-s] [-f] IMAGE TARGET PATH\n"
    "\n"
    "Creates a link inside a PermFS image: with -s a symbolic link PATH -> TARGET (TARGET is\n"
    "stored as given), without -s a hard link PATH to the existing file TARGET. If PATH is an\n"
    "existing directory the link is made inside it.\n"
    "\n"
    "options:\n"
    "  -s, --symbolic   make a symbolic link\n"
    "  -f, --force      replace an existing PATH\n";

const char kStatUsage[] =
    "usage: permfs stat IMAGE PATH... [-L]\n"
    "\n"
    "Shows the inode of files inside a PermFS image.\n"
    "\n"
    "options:\n"
    "  -L, --dereference   follow a symlink in the last component\n";

const char kDfUsage[] =
    "usage: permfs df IMAGE\n"
    "\n"
    "Shows the size, used and available space and inodes of a PermFS volume.\n";

namespace {

constexpr std::size_t kIoBuffer = 4u << 20;  // a multiple of every record size (<= 1 MiB)

struct timespec ToTimespec(std::int64_t ns) {
  struct timespec ts;
  std::int64_t s = ns / 1000000000, f = ns % 1000000000;
  if (f < 0) {
    f += 1000000000;
    --s;
  }
  ts.tv_sec = static_cast<time_t>(s);
  ts.tv_nsec = static_cast<long>(f);
  return ts;
}

std::int64_t ToNanos(const struct timespec& ts) {
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

bool AllZero(const std::uint8_t* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (p[i]) return false;
  return true;
}

Status StatusFor(Code c, const char* msg) { return Status(c, msg); }

void Check(const Status& st, const std::string& what) {
  if (!st.ok()) Fail(what, st);
}

template <typename T>
T Check(Result<T> r, const std::string& what) {
  if (!r.ok()) Fail(what, r.status());
  return std::move(*r);
}

std::string ShortTime(std::int64_t ns) {
  time_t t = static_cast<time_t>(ns / 1000000000);
  struct tm tm;
  char buf[32];
  if (!localtime_r(&t, &tm)) return "?";
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
  return buf;
}

// ---- ls ------------------------------------------------------------------------------------

struct LsOptions {
  bool long_format = false;
  bool recursive = false;
};

void PrintLong(Image& img, const fs::InodeRecord& in, const std::string& name,
               const std::string& ipath) {
  std::string size;
  if ((in.mode & fs::kTypeMask) == fs::kTypeChar || (in.mode & fs::kTypeMask) == fs::kTypeBlock)
    size = std::to_string(major(in.rdev)) + ", " + std::to_string(minor(in.rdev));
  else
    size = std::to_string(in.size);
  std::string line = ModeString(in.mode) + " " + std::to_string(in.nlink) + " " +
                     std::to_string(in.uid) + " " + std::to_string(in.gid);
  printf("%s %10s %s %s", line.c_str(), size.c_str(), ShortTime(in.mtime_ns).c_str(), name.c_str());
  if (fs::IsSymlink(in.mode)) printf(" -> %s", img.Readlink(in.ino, ipath).c_str());
  printf("\n");
}

void ListDir(Image& img, const fs::InodeRecord& dir, const std::string& ipath, const LsOptions& o,
             bool header) {
  if (header) printf("%s:\n", ipath.c_str());
  std::vector<Image::Entry> entries = img.List(dir.ino, ipath);
  std::vector<std::pair<std::string, fs::InodeRecord>> subdirs;
  for (const Image::Entry& e : entries) {
    const std::string child = JoinImagePath(ipath, e.name);
    if (o.long_format || o.recursive) {
      fs::InodeRecord in = Check(img.fs().GetAttr(e.ino), child);
      if (o.long_format)
        PrintLong(img, in, e.name, child);
      else
        printf("%s\n", e.name.c_str());
      if (o.recursive && fs::IsDir(in.mode)) subdirs.emplace_back(child, in);
    } else {
      printf("%s\n", e.name.c_str());
    }
  }
  for (auto& [child, in] : subdirs) {
    printf("\n");
    ListDir(img, in, child, o, true);
  }
}

// ---- cp ------------------------------------------------------------------------------------

// "IMAGE:PATH" -> true when IMAGE (the text before the first ':') names an existing regular
// file or block device.
bool SplitImageSpec(const std::string& arg, std::string* image, std::string* ipath) {
  std::size_t c = arg.find(':');
  if (c == std::string::npos || c == 0) return false;
  std::string prefix = arg.substr(0, c);
  struct stat st;
  if (stat(prefix.c_str(), &st) != 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) return false;
  *image = prefix;
  *ipath = arg.substr(c + 1);
  if (ipath->empty()) *ipath = "/";
  return true;
}

struct CopyContext {
  Image* img;
  bool recursive;
  bool verbose;
  std::vector<std::uint8_t> buf;
  // Hard links: host (dev, ino) -> image inode, and image inode -> host path.
  std::map<std::pair<dev_t, ino_t>, std::uint64_t> in_links;
  std::map<std::uint64_t, std::string> out_links;
  std::uint64_t files = 0, bytes = 0;
};

std::vector<std::string> HostDirEntries(const std::string& path) {
  DIR* d = opendir(path.c_str());
  if (!d) FailErrno(path, errno);
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* e = readdir(d)) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    names.emplace_back(e->d_name);
  }
  int err = errno;
  closedir(d);
  if (err) FailErrno(path, err);
  std::sort(names.begin(), names.end());
  return names;
}

void SetTimesAndMode(CopyContext& c, std::uint64_t ino, const struct stat& st, bool mode,
                     const std::string& ipath) {
  fs::SetAttrRequest req;
  req.mask = fs::kSetAtime | fs::kSetMtime | (mode ? std::uint32_t{fs::kSetMode} : 0u);
  req.mode = st.st_mode & 07777;
  req.atime_ns = ToNanos(st.st_atim);
  req.mtime_ns = ToNanos(st.st_mtim);
  Check(c.img->fs().SetAttr(ino, req), ipath);
}

// Removes a non-directory at parent/name so something else can take its place.
void ReplaceNonDir(CopyContext& c, std::uint64_t parent, const std::string& name,
                   const std::string& ipath) {
  auto ex = c.img->fs().Lookup(parent, name);
  if (!ex.ok()) {
    if (ex.status().IsNotFound()) return;
    Fail(ipath, ex.status());
  }
  if (fs::IsDir(ex->mode)) Fail(ipath, StatusFor(Code::kIsDirectory, "is a directory"));
  c.img->UnlinkAndReclaim(parent, name, ipath);
}

void WriteFileData(CopyContext& c, const std::string& host, std::uint64_t ino,
                   const std::string& ipath) {
  int fd = open(host.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) FailErrno(host, errno);
  const std::size_t rs = c.img->fs().record_size();
  std::uint64_t off = 0;
  try {
    for (;;) {
      std::size_t n = 0;
      while (n < c.buf.size()) {
        ssize_t r = read(fd, c.buf.data() + n, c.buf.size() - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) FailErrno(host, errno);
        if (r == 0) break;
        n += static_cast<std::size_t>(r);
      }
      if (n == 0) break;
      // Write the runs of records that are not all zero; all-zero records stay holes.
      std::size_t i = 0;
      while (i < n) {
        std::size_t len = std::min(rs, n - i);
        if (AllZero(c.buf.data() + i, len)) {
          i += len;
          continue;
        }
        std::size_t j = i + len;
        while (j < n) {
          std::size_t l2 = std::min(rs, n - j);
          if (AllZero(c.buf.data() + j, l2)) break;
          j += l2;
        }
        Check(c.img->fs().Write(ino, off + i, c.buf.data() + i, j - i), ipath);
        i = j;
      }
      off += n;
      if (n < c.buf.size()) break;
    }
  } catch (...) {
    close(fd);
    throw;
  }
  close(fd);
  auto a = Check(c.img->fs().GetAttr(ino), ipath);
  if (a.size != off) Check(c.img->fs().Truncate(ino, off), ipath);
  c.bytes += off;
}

void CopyIn(CopyContext& c, const std::string& host, std::uint64_t parent, const std::string& name,
            const std::string& ipath, bool top);

void CopyDirContentsIn(CopyContext& c, const std::string& host, std::uint64_t dir_ino,
                       const std::string& ipath) {
  for (const std::string& n : HostDirEntries(host))
    CopyIn(c, host + "/" + n, dir_ino, n, JoinImagePath(ipath, n), false);
}

void CopyIn(CopyContext& c, const std::string& host, std::uint64_t parent, const std::string& name,
            const std::string& ipath, bool top) {
  fs::Filesystem& f = c.img->fs();
  const fs::Credentials cred = c.img->cred();
  struct stat st;
  // Command-line sources are followed without -r (as cp does); everything else is not.
  int rc = (top && !c.recursive) ? stat(host.c_str(), &st) : lstat(host.c_str(), &st);
  if (rc != 0) FailErrno(host, errno);
  if (c.verbose) printf("%s -> %s\n", host.c_str(), ipath.c_str());
  if (S_ISDIR(st.st_mode)) {
    if (!c.recursive) FailMsg(host + ": is a directory (use -r)");
    std::uint64_t dir_ino;
    auto ex = f.Lookup(parent, name);
    if (ex.ok()) {
      if (!fs::IsDir(ex->mode))
        Fail(ipath, StatusFor(Code::kExists, "exists and is not a directory"));
      dir_ino = ex->ino;
    } else if (ex.status().IsNotFound()) {
      dir_ino = Check(f.Mkdir(parent, name, (st.st_mode & 07777) | 0700, cred), ipath).ino;
    } else {
      Fail(ipath, ex.status());
    }
    CopyDirContentsIn(c, host, dir_ino, ipath);
    SetTimesAndMode(c, dir_ino, st, true, ipath);
    return;
  }
  if (S_ISREG(st.st_mode)) {
    auto key = std::make_pair(st.st_dev, st.st_ino);
    if (st.st_nlink > 1) {
      auto it = c.in_links.find(key);
      if (it != c.in_links.end()) {
        ReplaceNonDir(c, parent, name, ipath);
        Check(f.Link(it->second, parent, name), ipath);
        return;
      }
    }
    auto ex = f.Lookup(parent, name);
    if (ex.ok() && !fs::IsRegular(ex->mode))
      ReplaceNonDir(c, parent, name, ipath);
    else if (!ex.ok() && !ex.status().IsNotFound())
      Fail(ipath, ex.status());
    fs::InodeRecord in = Check(
        f.Create(parent, name, fs::kTypeRegular | (st.st_mode & 07777), 0, cred, false), ipath);
    if (in.size) Check(f.Truncate(in.ino, 0), ipath);
    WriteFileData(c, host, in.ino, ipath);
    SetTimesAndMode(c, in.ino, st, true, ipath);
    if (st.st_nlink > 1) c.in_links[key] = in.ino;
    c.files++;
    return;
  }
  if (S_ISLNK(st.st_mode)) {
    std::string target(static_cast<std::size_t>(st.st_size) + 256, '\0');
    ssize_t n = readlink(host.c_str(), target.data(), target.size());
    if (n < 0) FailErrno(host, errno);
    target.resize(static_cast<std::size_t>(n));
    ReplaceNonDir(c, parent, name, ipath);
    fs::InodeRecord in = Check(f.Symlink(parent, name, target, cred), ipath);
    SetTimesAndMode(c, in.ino, st, false, ipath);
    c.files++;
    return;
  }
  // FIFO, socket, character or block device: an inode with the same type and rdev.
  ReplaceNonDir(c, parent, name, ipath);
  fs::InodeRecord in =
      Check(f.Create(parent, name, (st.st_mode & fs::kTypeMask) | (st.st_mode & 07777),
                     static_cast<std::uint64_t>(st.st_rdev), cred, true),
            ipath);
  SetTimesAndMode(c, in.ino, st, true, ipath);
  c.files++;
}

void SetHostTimes(const std::string& host, const fs::InodeRecord& in, bool nofollow) {
  struct timespec ts[2] = {ToTimespec(in.atime_ns), ToTimespec(in.mtime_ns)};
  if (utimensat(AT_FDCWD, host.c_str(), ts, nofollow ? AT_SYMLINK_NOFOLLOW : 0) != 0)
    FailErrno(host, errno);
}

void RemoveHostNonDir(const std::string& host) {
  struct stat st;
  if (lstat(host.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) FailMsg(host + ": is a directory");
    if (unlink(host.c_str()) != 0) FailErrno(host, errno);
  }
}

void CopyOut(CopyContext& c, const fs::InodeRecord& in, const std::string& ipath,
             const std::string& host);

void CopyDirContentsOut(CopyContext& c, std::uint64_t dir_ino, const std::string& ipath,
                        const std::string& host) {
  for (const Image::Entry& e : c.img->List(dir_ino, ipath)) {
    const std::string child = JoinImagePath(ipath, e.name);
    fs::InodeRecord in = Check(c.img->fs().GetAttr(e.ino), child);
    CopyOut(c, in, child, host + "/" + e.name);
  }
}

void CopyOut(CopyContext& c, const fs::InodeRecord& in, const std::string& ipath,
             const std::string& host) {
  fs::Filesystem& f = c.img->fs();
  if (c.verbose) printf("%s -> %s\n", ipath.c_str(), host.c_str());
  const std::uint32_t type = in.mode & fs::kTypeMask;
  if (type == fs::kTypeDir) {
    if (!c.recursive) Fail(ipath, StatusFor(Code::kIsDirectory, "use -r"));
    if (mkdir(host.c_str(), 0700) != 0) {
      int err = errno;
      struct stat st;
      if (err != EEXIST || stat(host.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        FailErrno(host, err);
    }
    CopyDirContentsOut(c, in.ino, ipath, host);
    if (chmod(host.c_str(), in.mode & 07777) != 0) FailErrno(host, errno);
    SetHostTimes(host, in, false);
    return;
  }
  if (type == fs::kTypeRegular) {
    if (in.nlink > 1) {
      auto it = c.out_links.find(in.ino);
      if (it != c.out_links.end()) {
        RemoveHostNonDir(host);
        if (link(it->second.c_str(), host.c_str()) != 0) FailErrno(host, errno);
        return;
      }
    }
    int fd = open(host.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) FailErrno(host, errno);
    const std::size_t rs = f.record_size();
    std::uint64_t off = 0;
    try {
      while (off < in.size) {
        std::size_t want =
            static_cast<std::size_t>(std::min<std::uint64_t>(c.buf.size(), in.size - off));
        std::size_t n = Check(f.Read(in.ino, off, want, c.buf.data()), ipath);
        if (n == 0) break;
        for (std::size_t i = 0; i < n;) {
          std::size_t len = std::min(rs, n - i);
          if (!AllZero(c.buf.data() + i, len)) {
            std::size_t done = 0;
            while (done < len) {
              ssize_t w = pwrite(fd, c.buf.data() + i + done, len - done,
                                 static_cast<off_t>(off + i + done));
              if (w < 0 && errno == EINTR) continue;
              if (w < 0) FailErrno(host, errno);
              done += static_cast<std::size_t>(w);
            }
          }
          i += len;
        }
        off += n;
      }
      if (ftruncate(fd, static_cast<off_t>(off)) != 0) FailErrno(host, errno);
      if (fchmod(fd, in.mode & 07777) != 0) FailErrno(host, errno);
      struct timespec ts[2] = {ToTimespec(in.atime_ns), ToTimespec(in.mtime_ns)};
      if (futimens(fd, ts) != 0) FailErrno(host, errno);
    } catch (...) {
      close(fd);
      throw;
    }
    if (close(fd) != 0) FailErrno(host, errno);
    if (in.nlink > 1) c.out_links[in.ino] = host;
    c.files++;
    c.bytes += off;
    return;
  }
  if (type == fs::kTypeSymlink) {
    std::string target = c.img->Readlink(in.ino, ipath);
    RemoveHostNonDir(host);
    if (symlink(target.c_str(), host.c_str()) != 0) FailErrno(host, errno);
    SetHostTimes(host, in, true);
    c.files++;
    return;
  }
  RemoveHostNonDir(host);
  int rc = type == fs::kTypeFifo ? mkfifo(host.c_str(), in.mode & 07777)
                                 : mknod(host.c_str(), in.mode & (fs::kTypeMask | 07777),
                                         static_cast<dev_t>(in.rdev));
  if (rc != 0) FailErrno(host, errno);
  SetHostTimes(host, in, true);
  c.files++;
}

bool IsDirFollowing(Image& img, const std::string& ipath, fs::InodeRecord* out) {
  try {
    Image::Resolved r = img.Resolve(ipath, true);
    if (r.exists && fs::IsDir(r.inode.mode)) {
      *out = r.inode;
      return true;
    }
  } catch (const Failure&) {
  }
  return false;
}

void RemoveTree(Image& img, std::uint64_t dir, const std::string& ipath) {
  for (const Image::Entry& e : img.List(dir, ipath)) {
    const std::string child = JoinImagePath(ipath, e.name);
    if (e.type == fs::DirentType(fs::kTypeDir)) {
      RemoveTree(img, e.ino, child);
      Check(img.fs().Rmdir(dir, e.name), child);
    } else {
      img.UnlinkAndReclaim(dir, e.name, child);
    }
  }
}

}  // namespace

// ---- Commands --------------------------------------------------------------------------------

int RunLs(int argc, char** argv) {
  Args a = ParseArgs(argc, argv, {{"long", 'l', false}, {"recursive", 'R', false}});
  if (a.help) return PrintHelp(kLsUsage);
  ExpectPositional(a, 1, ~std::size_t{0});
  LsOptions o;
  o.long_format = a.Has("long");
  o.recursive = a.Has("recursive");
  auto img = Image::Open(a.pos[0], false);
  std::vector<std::string> paths(a.pos.begin() + 1, a.pos.end());
  if (paths.empty()) paths.push_back("/");
  bool first = true;
  for (const std::string& p : paths) {
    Image::Resolved r = img->Resolve(p, !o.long_format);
    if (!r.exists) Fail(p, StatusFor(Code::kNotFound, "no such file or directory"));
    if (!first) printf("\n");
    first = false;
    if (fs::IsDir(r.inode.mode)) {
      ListDir(*img, r.inode, p, o, paths.size() > 1 || o.recursive);
    } else if (o.long_format) {
      PrintLong(*img, r.inode, p, p);
    } else {
      printf("%s\n", p.c_str());
    }
  }
  img->Close();
  return 0;
}

int RunCat(int argc, char** argv) {
  Args a = ParseArgs(argc, argv, {});
  if (a.help) return PrintHelp(kCatUsage);
  ExpectPositional(a, 2, ~std::size_t{0});
  auto img = Image::Open(a.pos[0], false);
  std::vector<std::uint8_t> buf(kIoBuffer);
  for (std::size_t i = 1; i < a.pos.size(); ++i) {
    const std::string& p = a.pos[i];
    fs::InodeRecord in = img->Stat(p, true);
    if (fs::IsDir(in.mode)) Fail(p, StatusFor(Code::kIsDirectory, "is a directory"));
    if (!fs::IsRegular(in.mode)) FailMsg(p + ": not a regular file");
    std::uint64_t off = 0;
    while (off < in.size) {
      std::size_t want =
          static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), in.size - off));
      std::size_t n = Check(img->fs().Read(in.ino, off, want, buf.data()), p);
      if (n == 0) break;
      std::size_t done = 0;
      while (done < n) {
        ssize_t w = write(1, buf.data() + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) FailErrno("standard output", errno);
        done += static_cast<std::size_t>(w);
      }
      off += n;
    }
  }
  img->Close();
  return 0;
}

int RunCp(int argc, char** argv) {
  Args a = ParseArgs(argc, argv,
                     {{"recursive", 'r', false}, {"R", 'R', false}, {"verbose", 'v', false}});
  if (a.help) return PrintHelp(kCpUsage);
  ExpectPositional(a, 2, ~std::size_t{0});
  const std::string dst = a.pos.back();
  std::vector<std::string> srcs(a.pos.begin(), a.pos.end() - 1);
  std::string dst_image, dst_ipath;
  const bool dst_in_image = SplitImageSpec(dst, &dst_image, &dst_ipath);
  std::string src_image;
  std::vector<std::string> src_ipaths;
  std::size_t image_srcs = 0;
  for (const std::string& s : srcs) {
    std::string im, ip;
    if (SplitImageSpec(s, &im, &ip)) {
      if (image_srcs && im != src_image)
        throw UsageError{"all IMAGE:PATH sources must name the same image"};
      src_image = im;
      src_ipaths.push_back(ip);
      ++image_srcs;
    }
  }
  if (dst_in_image == (image_srcs != 0) || (image_srcs && image_srcs != srcs.size()))
    throw UsageError{
        "exactly one side of the copy must be IMAGE:PATH (IMAGE an existing image file)"};

  CopyContext c;
  c.recursive = a.Has("recursive") || a.Has("R");
  c.verbose = a.Has("verbose");
  c.buf.resize(kIoBuffer);

  if (dst_in_image) {
    auto img = Image::Open(dst_image, true);
    c.img = img.get();
    Image::Resolved r = img->Resolve(dst_ipath, true);
    const bool into_dir = r.exists && fs::IsDir(r.inode.mode);
    if (srcs.size() > 1 && !into_dir)
      Fail(dst_ipath, StatusFor(Code::kNotDirectory, "not a directory"));
    for (const std::string& s : srcs) {
      std::string name = BaseName(s);
      if (into_dir) {
        if (name.empty() || name == "." || name == "..") {
          struct stat st;
          if (stat(s.c_str(), &st) != 0) FailErrno(s, errno);
          if (!S_ISDIR(st.st_mode)) FailMsg(s + ": not a directory");
          if (!c.recursive) FailMsg(s + ": is a directory (use -r)");
          CopyDirContentsIn(c, s, r.inode.ino, dst_ipath);
        } else {
          CopyIn(c, s, r.inode.ino, name, JoinImagePath(dst_ipath, name), true);
        }
      } else {
        if (r.name.empty())
          Fail(dst_ipath, StatusFor(Code::kInvalidArgument, "invalid destination"));
        if (!r.exists) {
          // The parent must be a directory that exists (Resolve checked it).
        }
        CopyIn(c, s, r.parent, r.name, dst_ipath, true);
      }
    }
    img->Close();
    return 0;
  }

  auto img = Image::Open(src_image, false);
  c.img = img.get();
  struct stat dst_st;
  const bool dst_is_dir = stat(dst.c_str(), &dst_st) == 0 && S_ISDIR(dst_st.st_mode);
  if (srcs.size() > 1 && !dst_is_dir) FailMsg(dst + ": not a directory");
  for (const std::string& ip : src_ipaths) {
    fs::InodeRecord in = img->Stat(ip, !c.recursive);
    std::string name = BaseName(ip);
    if (dst_is_dir) {
      if (name.empty() || name == "." || name == ".." || (in.ino == fs::kRootIno)) {
        if (!fs::IsDir(in.mode)) FailMsg(ip + ": not a directory");
        if (!c.recursive) Fail(ip, StatusFor(Code::kIsDirectory, "use -r"));
        CopyDirContentsOut(c, in.ino, ip, dst);
        SetHostTimes(dst, in, false);
      } else {
        CopyOut(c, in, ip, dst + "/" + name);
      }
    } else {
      CopyOut(c, in, ip, dst);
    }
  }
  img->Close();
  return 0;
}

int RunMkdir(int argc, char** argv) {
  Args a = ParseArgs(argc, argv, {{"parents", 'p', false}, {"mode", 'm', true}});
  if (a.help) return PrintHelp(kMkdirUsage);
  ExpectPositional(a, 2, ~std::size_t{0});
  const std::uint32_t mode = a.Has("mode") ? ParseMode(*a.Get("mode")) : 0755;
  auto img = Image::Open(a.pos[0], true);
  for (std::size_t i = 1; i < a.pos.size(); ++i) {
    const std::string& p = a.pos[i];
    if (a.Has("parents")) {
      std::string prefix;
      std::size_t pos = 0;
      while (pos <= p.size()) {
        std::size_t next = p.find('/', pos);
        if (next == std::string::npos) next = p.size();
        prefix = p.substr(0, next);
        pos = next + 1;
        if (prefix.empty() || BaseName(prefix).empty()) continue;
        Image::Resolved r = img->Resolve(prefix, true);
        if (r.exists) {
          if (!fs::IsDir(r.inode.mode))
            Fail(prefix, StatusFor(Code::kNotDirectory, "not a directory"));
          continue;
        }
        Check(img->fs().Mkdir(r.parent, r.name, pos > p.size() ? mode : 0755, img->cred()), prefix);
      }
      continue;
    }
    Image::Resolved r = img->Resolve(p, false);
    if (r.exists || r.name.empty()) Fail(p, StatusFor(Code::kExists, "file exists"));
    Check(img->fs().Mkdir(r.parent, r.name, mode, img->cred()), p);
  }
  img->Close();
  return 0;
}

int RunRm(int argc, char** argv) {
  Args a =
      ParseArgs(argc, argv, {{"recursive", 'r', false}, {"R", 'R', false}, {"force", 'f', false}});
  if (a.help) return PrintHelp(kRmUsage);
  ExpectPositional(a, 2, ~std::size_t{0});
  const bool recursive = a.Has("recursive") || a.Has("R");
  auto img = Image::Open(a.pos[0], true);
  for (std::size_t i = 1; i < a.pos.size(); ++i) {
    const std::string& p = a.pos[i];
    Image::Resolved r;
    try {
      r = img->Resolve(p, false);
    } catch (const Failure&) {
      if (a.Has("force")) continue;
      throw;
    }
    if (!r.exists) {
      if (a.Has("force")) continue;
      Fail(p, StatusFor(Code::kNotFound, "no such file or directory"));
    }
    if (r.name.empty()) FailMsg(p + ": refusing to remove '/', '.' or '..'");
    if (fs::IsDir(r.inode.mode)) {
      if (!recursive) Fail(p, StatusFor(Code::kIsDirectory, "use -r"));
      RemoveTree(*img, r.inode.ino, p);
      Check(img->fs().Rmdir(r.parent, r.name), p);
    } else {
      img->UnlinkAndReclaim(r.parent, r.name, p);
    }
  }
  img->Close();
  return 0;
}

int RunMv(int argc, char** argv) {
  Args a = ParseArgs(argc, argv, {});
  if (a.help) return PrintHelp(kMvUsage);
  ExpectPositional(a, 3, 3);
  const std::string& src = a.pos[1];
  const std::string& dst = a.pos[2];
  auto img = Image::Open(a.pos[0], true);
  Image::Resolved s = img->Resolve(src, false);
  if (!s.exists) Fail(src, StatusFor(Code::kNotFound, "no such file or directory"));
  if (s.name.empty()) FailMsg(src + ": cannot move '/', '.' or '..'");
  std::uint64_t new_parent;
  std::string new_name;
  fs::InodeRecord dir;
  if (IsDirFollowing(*img, dst, &dir) && !(fs::IsDir(s.inode.mode) && dir.ino == s.inode.ino)) {
    new_parent = dir.ino;
    new_name = s.name;
  } else {
    Image::Resolved d = img->Resolve(dst, false);
    if (d.name.empty()) Fail(dst, StatusFor(Code::kInvalidArgument, "invalid destination"));
    new_parent = d.parent;
    new_name = d.name;
  }
  fs::UnlinkOutcome out;
  Check(img->fs().Rename(s.parent, s.name, new_parent, new_name, 0, &out), src);
  if (out.orphan) Check(img->fs().Reclaim(out.orphan), dst + ": reclaiming the replaced file");
  img->Close();
  return 0;
}

int RunLn(int argc, char** argv) {
  Args a = ParseArgs(argc, argv, {{"symbolic", 's', false}, {"force", 'f', false}});
  if (a.help) return PrintHelp(kLnUsage);
  ExpectPositional(a, 3, 3);
  const std::string& target = a.pos[1];
  const std::string& path = a.pos[2];
  const bool symbolic = a.Has("symbolic");
  auto img = Image::Open(a.pos[0], true);
  fs::InodeRecord target_inode;
  if (!symbolic) {
    target_inode = img->Stat(target, false);
    if (fs::IsDir(target_inode.mode))
      Fail(target, StatusFor(Code::kPermission, "hard link not allowed for directory"));
  }
  std::uint64_t parent;
  std::string name;
  std::string where = path;
  fs::InodeRecord dir;
  if (IsDirFollowing(*img, path, &dir)) {
    parent = dir.ino;
    name = BaseName(target);
    where = JoinImagePath(path, name);
    if (name.empty() || name == "." || name == "..")
      Fail(path, StatusFor(Code::kExists, "file exists"));
  } else {
    Image::Resolved d = img->Resolve(path, false);
    if (d.name.empty()) Fail(path, StatusFor(Code::kExists, "file exists"));
    parent = d.parent;
    name = d.name;
  }
  auto ex = img->fs().Lookup(parent, name);
  if (ex.ok()) {
    if (!a.Has("force") || fs::IsDir(ex->mode))
      Fail(where, StatusFor(Code::kExists, "file exists"));
    img->UnlinkAndReclaim(parent, name, where);
  } else if (!ex.status().IsNotFound()) {
    Fail(where, ex.status());
  }
  if (symbolic)
    Check(img->fs().Symlink(parent, name, target, img->cred()), where);
  else
    Check(img->fs().Link(target_inode.ino, parent, name), where);
  img->Close();
  return 0;
}

int RunStat(int argc, char** argv) {
  Args a = ParseArgs(argc, argv, {{"dereference", 'L', false}});
  if (a.help) return PrintHelp(kStatUsage);
  ExpectPositional(a, 2, ~std::size_t{0});
  auto img = Image::Open(a.pos[0], false);
  auto ull = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  for (std::size_t i = 1; i < a.pos.size(); ++i) {
    const std::string& p = a.pos[i];
    fs::InodeRecord in = img->Stat(p, a.Has("dereference"));
    const char* type = "unknown";
    switch (in.mode & fs::kTypeMask) {
      case fs::kTypeRegular:
        type = in.size ? "regular file" : "regular empty file";
        break;
      case fs::kTypeDir:
        type = "directory";
        break;
      case fs::kTypeSymlink:
        type = "symbolic link";
        break;
      case fs::kTypeFifo:
        type = "fifo";
        break;
      case fs::kTypeSocket:
        type = "socket";
        break;
      case fs::kTypeChar:
        type = "character special file";
        break;
      case fs::kTypeBlock:
        type = "block special file";
        break;
      default:
        break;
    }
    printf("  File: %s", p.c_str());
    if (fs::IsSymlink(in.mode)) printf(" -> %s", img->Readlink(in.ino, p).c_str());
    printf("\n");
    printf("  Size: %-12llu Data bytes: %-12llu %s\n", ull(in.size), ull(in.data_bytes), type);
    printf(" Inode: %-12llu Links: %-6u Generation: %llu", ull(in.ino), in.nlink,
           ull(in.generation));
    if (fs::IsDir(in.mode)) printf("  Parent: %llu", ull(in.parent));
    if ((in.mode & fs::kTypeMask) == fs::kTypeChar || (in.mode & fs::kTypeMask) == fs::kTypeBlock)
      printf("  Device: %u,%u", major(in.rdev), minor(in.rdev));
    printf("\n");
    printf("Access: (%04o/%s)  Uid: %u  Gid: %u\n", in.mode & 07777, ModeString(in.mode).c_str(),
           in.uid, in.gid);
    printf("Access: %s\n", FormatTime(in.atime_ns).c_str());
    printf("Modify: %s\n", FormatTime(in.mtime_ns).c_str());
    printf("Change: %s\n", FormatTime(in.ctime_ns).c_str());
    printf(" Birth: %s\n", FormatTime(in.btime_ns).c_str());
  }
  img->Close();
  return 0;
}

int RunDf(int argc, char** argv) {
  Args a = ParseArgs(argc, argv, {});
  if (a.help) return PrintHelp(kDfUsage);
  ExpectPositional(a, 1, 1);
  auto img = Image::Open(a.pos[0], false);
  fs::StatfsInfo s = Check(img->fs().Statfs(), a.pos[0]);
  img->Close();
  const std::uint64_t bs = s.block_size;
  const std::uint64_t used = s.total_blocks - s.free_blocks;
  const std::uint64_t iused = s.total_inodes - s.free_inodes;
  const unsigned pct =
      s.total_blocks ? static_cast<unsigned>((used * 100 + s.total_blocks - 1) / s.total_blocks)
                     : 0;
  const int w = static_cast<int>(std::max<std::size_t>(10, a.pos[0].size()));
  printf("%-*s %8s %8s %8s %4s %10s %12s\n", w, "Image", "Size", "Used", "Avail", "Use%", "IUsed",
         "IFree");
  printf("%-*s %8s %8s %8s %3u%% %10llu %12llu\n", w, a.pos[0].c_str(),
         ShortBytes(s.total_blocks * bs).c_str(), ShortBytes(used * bs).c_str(),
         ShortBytes(s.available_blocks * bs).c_str(), pct, static_cast<unsigned long long>(iused),
         static_cast<unsigned long long>(s.free_inodes));
  printf("(%llu blocks of %llu bytes: %llu used, %llu free)\n",
         static_cast<unsigned long long>(s.total_blocks), static_cast<unsigned long long>(bs),
         static_cast<unsigned long long>(used), static_cast<unsigned long long>(s.free_blocks));
  return 0;
}

}  // namespace permfs::tools
