// permfs mkfs: make a new PermFS volume on an image file (created sparse if needed) or a
// block device, then format the filesystem root.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "fs/filesystem.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "tools/image.h"
#include "volume/volume.h"

namespace permfs::tools {

const char kMkfsUsage[] =
    "usage: permfs mkfs IMAGE_OR_DEVICE [--size SIZE] [options]\n"
    "\n"
    "Makes a new PermFS volume. A missing IMAGE is created as a sparse file of --size bytes;\n"
    "an existing file keeps its size unless --size is given (then it is resized). Refuses to\n"
    "overwrite an existing PermFS volume or any other data in the first 64 KiB unless --force.\n"
    "\n"
    "options:\n"
    "  --size SIZE          size of a new image (K, M, G, T suffixes; e.g. 10G)\n"
    "  --block-size SIZE    filesystem block size, 4096..65536, power of two (default 4096)\n"
    "  --record-size SIZE   file data record (chunk) size, 4K..1M, power of two (default 64K)\n"
    "  --journal-size SIZE  journal size (default: 1/64 of the volume, 64..16384 blocks)\n"
    "  --label LABEL        volume label, at most 63 bytes\n"
    "  -f, --force          overwrite whatever the image or device holds\n"
    "  --progress           show a progress bar even when stderr is not a terminal\n"
    "  -q, --quiet          print nothing on success\n";

namespace {

bool PowerOfTwo(std::uint64_t v) { return v && !(v & (v - 1)); }

// Describes recognisable data in the first bytes of a device, or "" if they are all zero.
std::string DescribeContent(const std::uint8_t* b, std::size_t n) {
  auto has = [&](std::size_t off, const char* sig, std::size_t len) {
    return off + len <= n && std::memcmp(b + off, sig, len) == 0;
  };
  if (has(0, "XFSB", 4)) return "an XFS filesystem";
  if (n > 0x439 && b[0x438] == 0x53 && b[0x439] == 0xEF) return "an ext2/ext3/ext4 filesystem";
  if (has(0, "LUKS\xba\xbe", 6)) return "a LUKS encrypted volume";
  if (has(4086, "SWAPSPACE2", 10) || has(4086, "SWAP-SPACE", 10)) return "Linux swap space";
  if (has(0, "hsqs", 4)) return "a squashfs image";
  if (has(32769, "CD001", 5)) return "an ISO 9660 image";
  if (has(512, "EFI PART", 8)) return "a GPT partition table";
  if (n >= 512 && b[510] == 0x55 && b[511] == 0xAA) return "a boot sector or MBR partition table";
  for (std::size_t i = 0; i < n; ++i) {
    if (b[i] != 0) {
      char buf[96];
      snprintf(buf, sizeof buf, "non-zero data (first non-zero byte at offset %zu)", i);
      return buf;
    }
  }
  return "";
}

// Refuses (throws) if `path` holds a PermFS volume or any non-zero byte in its first 64 KiB.
void CheckOverwrite(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) FailErrno(path, errno);
  std::vector<std::uint8_t> buf(65536, 0);
  std::size_t got = 0;
  while (got < buf.size()) {
    ssize_t r = pread(fd, buf.data() + got, buf.size() - got, static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int err = errno;
      close(fd);
      FailErrno(path + ": reading", err);
    }
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  close(fd);
  struct stat st;
  bool sized = stat(path.c_str(), &st) == 0 && (S_ISBLK(st.st_mode) || st.st_size % 4096 == 0);
  if (got >= 8192 && sized) {
    auto dev = OpenDevice(path, /*writable=*/false);
    volume::MountReport rep;
    auto sb = volume::ReadSuperblock(dev.get(), &rep);
    if (sb.ok()) {
      std::string label(sb->label, strnlen(sb->label, sizeof sb->label));
      FailMsg(path + ": already holds a PermFS volume (uuid " + UuidString(sb->uuid.bytes) +
              (label.empty() ? "" : ", label '" + label + "'") + ", " +
              HumanBytes(sb->block_count * sb->block_size) + "); use --force to overwrite it");
    }
  }
  std::string what = DescribeContent(buf.data(), got);
  if (!what.empty())
    FailMsg(path + ": the first 64 KiB hold " + what +
            "; refusing to overwrite (use --force to overwrite it)");
}

void MkfsProgress(void* ctx, std::uint64_t done, std::uint64_t total) {
  static_cast<Progress*>(ctx)->Update("writing bitmaps", done, total);
}

// Removes an image file this command created if mkfs does not finish.
struct CreatedFileGuard {
  std::string path;
  bool armed = false;
  ~CreatedFileGuard() {
    if (armed) unlink(path.c_str());
  }
};

}  // namespace

int RunMkfs(int argc, char** argv) {
  Args a = ParseArgs(argc, argv,
                     {{"size", 's', true},
                      {"block-size", 'b', true},
                      {"record-size", 'r', true},
                      {"journal-size", 'j', true},
                      {"label", 'L', true},
                      {"force", 'f', false},
                      {"progress", 0, false},
                      {"quiet", 'q', false}});
  if (a.help) return PrintHelp(kMkfsUsage);
  ExpectPositional(a, 1, 1);
  const std::string path = a.pos[0];

  std::uint64_t bs = a.Has("block-size") ? ParseSize(*a.Get("block-size"), "block size") : 4096;
  if (!PowerOfTwo(bs) || bs < 4096 || bs > 65536)
    throw UsageError{"block size must be a power of two from 4096 to 65536"};
  std::uint64_t rs = a.Has("record-size") ? ParseSize(*a.Get("record-size"), "record size") : 65536;
  if (!PowerOfTwo(rs) || rs < 4096 || rs > (1u << 20))
    throw UsageError{"record size must be a power of two from 4K to 1M"};
  std::uint64_t journal_blocks = 0;
  if (a.Has("journal-size")) {
    std::uint64_t j = ParseSize(*a.Get("journal-size"), "journal size");
    if (j == 0 || j % bs)
      throw UsageError{"journal size must be a non-zero multiple of the block size"};
    journal_blocks = j / bs;
  }
  std::string label = a.Get("label").value_or("");
  if (label.size() > 63) throw UsageError{"label longer than 63 bytes"};
  if (label.find('\0') != std::string::npos) throw UsageError{"label contains a NUL byte"};
  const bool force = a.Has("force");
  const bool quiet = a.Has("quiet");

  struct stat st;
  bool exists = stat(path.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) FailErrno(path, errno);
  std::uint64_t size = 0;
  bool resize = false;
  if (exists) {
    if (S_ISDIR(st.st_mode)) FailMsg(path + ": is a directory");
    if (S_ISBLK(st.st_mode)) {
      if (a.Has("size")) throw UsageError{"--size cannot be used with a block device"};
    } else if (!S_ISREG(st.st_mode)) {
      FailMsg(path + ": not a regular file or block device");
    } else if (a.Has("size")) {
      size = ParseSize(*a.Get("size"), "size");
      resize = size != static_cast<std::uint64_t>(st.st_size);
    } else {
      size = static_cast<std::uint64_t>(st.st_size);
      if (size == 0) throw UsageError{path + " is empty; give --size"};
    }
  } else {
    if (!a.Has("size")) throw UsageError{path + " does not exist; give --size to create it"};
    size = ParseSize(*a.Get("size"), "size");
  }
  if (size && size % bs)
    throw UsageError{"size " + std::to_string(size) + " is not a multiple of the block size " +
                     std::to_string(bs)};
  if (size && size < 128 * bs) throw UsageError{"size too small: need at least 128 blocks"};

  if (exists && !force) CheckOverwrite(path);
  if (resize && truncate(path.c_str(), static_cast<off_t>(size)) != 0)
    FailErrno(path + ": resizing", errno);

  CreatedFileGuard guard{path, !exists};
  auto dev = OpenDevice(path, /*writable=*/true, exists ? 0 : size);

  volume::MkfsOptions mo;
  mo.block_size = static_cast<std::uint32_t>(bs);
  mo.record_size = static_cast<std::uint32_t>(rs);
  mo.journal_blocks = journal_blocks;
  mo.label = label.c_str();
  Progress progress("mkfs", a.Has("progress"));
  mo.progress = MkfsProgress;
  mo.progress_ctx = &progress;
  Status s = volume::Volume::Mkfs(dev.get(), mo);
  progress.Finish();
  if (!s.ok()) Fail(path, s);

  volume::MountReport rep;
  Owned<volume::Volume> vol = MountVolume(dev.get(), path, /*writable=*/true, &rep);
  s = fs::Filesystem::Format(
      vol.get(),
      fs::Credentials{static_cast<std::uint32_t>(getuid()), static_cast<std::uint32_t>(getgid())},
      0755);
  if (!s.ok()) Fail(path + ": creating the root directory", s);
  const format::Superblock sb = vol->sb();
  s = vol->Unmount();
  if (!s.ok()) Fail(path + ": unmount", s);
  vol.reset();
  dev.reset();
  guard.armed = false;

  if (!quiet) {
    printf("Created a PermFS volume on %s\n", path.c_str());
    printf("  size          %s (%llu blocks of %u bytes)\n",
           HumanBytes(sb.block_count * sb.block_size).c_str(),
           static_cast<unsigned long long>(sb.block_count), sb.block_size);
    printf("  record size   %s\n", HumanBytes(sb.record_size).c_str());
    printf("  journal       %s (%llu blocks)\n",
           HumanBytes(sb.journal_blocks * sb.block_size).c_str(),
           static_cast<unsigned long long>(sb.journal_blocks));
    printf("  shards        %u of %llu blocks\n", sb.shard_count,
           static_cast<unsigned long long>(sb.shard_blocks));
    printf("  uuid          %s\n", UuidString(sb.uuid.bytes).c_str());
    if (!label.empty()) printf("  label         %s\n", label.c_str());
  }
  return 0;
}

}  // namespace permfs::tools
