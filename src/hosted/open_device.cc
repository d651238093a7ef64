#include "hosted/open_device.h"

#include <sys/stat.h>

#include "hosted/file_block_device.h"
#include "hosted/uring_block_device.h"

namespace permfs::hosted {

Result<std::unique_ptr<block::BlockDevice>> OpenBlockDevice(const std::string& path,
                                                            const OpenOptions& o) {
  Backend b = o.backend;
  if (b == Backend::kAuto) {
    struct stat st;
    b = (stat(path.c_str(), &st) == 0 && S_ISBLK(st.st_mode)) ? Backend::kUring : Backend::kFile;
  }
  if (b == Backend::kUring) {
    UringOpenOptions uo;
    uo.block_size = o.block_size;
    uo.create_size_bytes = o.create_size_bytes;
    uo.read_only = o.read_only;
    uo.exclusive = o.exclusive;
    uo.queue_depth = o.queue_depth;
    PERMFS_ASSIGN_OR_RETURN(auto dev, UringBlockDevice::Open(path, uo));
    return std::unique_ptr<block::BlockDevice>(std::move(dev));
  }
  FileOpenOptions fo;
  fo.block_size = o.block_size;
  fo.create_size_bytes = o.create_size_bytes;
  fo.read_only = o.read_only;
  fo.exclusive = o.exclusive;
  PERMFS_ASSIGN_OR_RETURN(auto dev, FileBlockDevice::Open(path, fo));
  return std::unique_ptr<block::BlockDevice>(std::move(dev));
}

}  // namespace permfs::hosted
