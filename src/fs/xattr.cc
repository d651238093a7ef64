// Extended attributes of Filesystem. A value is stored as part 0 (name and total length) plus
// data pieces 1..N under keys ino(BE64) hash64(name)(BE64) part(u8) in the xattr tree.
#include "fs/filesystem.h"
#include "fs/txn_runner.h"
#include "util/coding.h"

namespace permfs::fs {

using btree::Slice;
using journal::BlockReader;
using journal::ReadView;
using journal::WriteTxn;

namespace {

constexpr std::size_t kMaxXattrValue = 65536;
constexpr std::size_t kPiece = 700;

Status CheckXattrName(const std::string& name) {
  if (name.empty()) return Status::InvalidArgument("empty xattr name");
  if (name.size() > kMaxNameLen) return Status(Code::kRange, "xattr name too long");
  static const char* const kPrefixes[] = {"user.", "trusted.", "security.", "system."};
  for (const char* p : kPrefixes) {
    std::string pre(p);
    if (name.size() > pre.size() && name.compare(0, pre.size(), pre) == 0) {
      if (pre == "system." && name != "system.posix_acl_access" &&
          name != "system.posix_acl_default")
        return Status::NotSupported("unsupported system xattr");
      return Status();
    }
  }
  return Status::NotSupported("unsupported xattr namespace");
}

// Reads part 0; NoData if absent or (on a 64-bit hash collision) another name.
Status ReadHead(btree::BTree& tree, BlockReader& r, std::uint64_t ino, const std::string& name,
                std::uint32_t* total) {
  std::string v;
  Status st = tree.Get(r, Slice(XattrKey(ino, NameHash64(name), 0)), &v);
  if (st.IsNotFound()) return Status(Code::kNoData, "no such attribute");
  PERMFS_RETURN_IF_ERROR(st);
  Reader rd(reinterpret_cast<const std::uint8_t*>(v.data()), v.size());
  std::uint16_t nl = rd.U16();
  const std::uint8_t* n = rd.Take(nl);
  std::uint32_t len = rd.U32();
  if (!rd.ok() || n == nullptr || len > kMaxXattrValue)
    return Status::Corruption("xattr record malformed");
  if (std::string(reinterpret_cast<const char*>(n), nl) != name)
    return Status(Code::kNoData, "no such attribute");
  *total = len;
  return Status();
}

}  // namespace

Result<std::string> Filesystem::GetXattr(std::uint64_t ino, const std::string& name) noexcept {
  PERMFS_RETURN_IF_ERROR(CheckXattrName(name));
  ReadView view(vol_->meta());
  PERMFS_RETURN_IF_ERROR(LoadInode(view, ino).status());
  std::uint32_t total = 0;
  PERMFS_RETURN_IF_ERROR(ReadHead(xattrs_, view, ino, name, &total));
  std::string out;
  const std::uint64_t h = NameHash64(name);
  PERMFS_RETURN_IF_ERROR(xattrs_.Scan(
      view, Slice(XattrKey(ino, h, 1)), Slice(XattrKey(ino, h + 1, 0)),
      [](void* ctx, const Slice&, const Slice& v) {
        static_cast<std::string*>(ctx)->append(reinterpret_cast<const char*>(v.data), v.size);
        return true;
      },
      &out));
  if (out.size() != total) return Status::Corruption("xattr value length mismatch");
  return out;
}

Status Filesystem::SetXattr(std::uint64_t ino, const std::string& name, const std::string& value,
                            std::uint32_t flags, InodeRecord* after) noexcept {
  PERMFS_RETURN_IF_ERROR(CheckXattrName(name));
  if (value.size() > kMaxXattrValue) return Status(Code::kTooBig, "xattr value too large");
  if ((flags & kXattrCreate) && (flags & kXattrReplace))
    return Status::InvalidArgument("XATTR_CREATE with XATTR_REPLACE");
  const std::uint64_t h = NameHash64(name);
  return RunTxn([&](WriteTxn& t) -> Status {
    PERMFS_ASSIGN_OR_RETURN(InodeRecord in, LoadInode(t, ino));
    std::uint32_t old_total = 0;
    Status head = ReadHead(xattrs_, t, ino, name, &old_total);
    const bool exists = head.ok();
    if (!exists && head.code() != Code::kNoData) return head;
    if (!exists) {
      // A different name with the same 64-bit hash occupies the slot.
      std::string v;
      if (xattrs_.Get(t, Slice(XattrKey(ino, h, 0)), &v).ok())
        return Status::NoSpace("xattr hash slot taken");
    }
    if (exists && (flags & kXattrCreate)) return Status::Exists("attribute exists");
    if (!exists && (flags & kXattrReplace)) return Status(Code::kNoData, "no such attribute");
    if (exists) {
      const std::size_t old_parts = (old_total + kPiece - 1) / kPiece;
      for (std::size_t p = 1; p <= old_parts; ++p)
        PERMFS_RETURN_IF_ERROR(xattrs_.Delete(t, Slice(XattrKey(ino, h, static_cast<std::uint8_t>(p)))));
    }
    std::string head_rec(2 + name.size() + 4, '\0');
    auto* hp = reinterpret_cast<std::uint8_t*>(head_rec.data());
    EncodeLE16(hp, static_cast<std::uint16_t>(name.size()));
    CopyBytes(hp + 2, name.data(), name.size());
    EncodeLE32(hp + 2 + name.size(), static_cast<std::uint32_t>(value.size()));
    PERMFS_RETURN_IF_ERROR(xattrs_.Put(t, Slice(XattrKey(ino, h, 0)), Slice(head_rec)));
    for (std::size_t off = 0, p = 1; off < value.size(); off += kPiece, ++p) {
      std::string piece = value.substr(off, kPiece);
      PERMFS_RETURN_IF_ERROR(
          xattrs_.Put(t, Slice(XattrKey(ino, h, static_cast<std::uint8_t>(p))), Slice(piece)));
    }
    in.ctime_ns = port::WallClockNanos();
    if (after) *after = in;
    return StoreInode(t, in);
  });
}

Result<std::vector<std::string>> Filesystem::ListXattr(std::uint64_t ino) noexcept {
  ReadView view(vol_->meta());
  PERMFS_RETURN_IF_ERROR(LoadInode(view, ino).status());
  struct Ctx {
    std::vector<std::string> names;
    Status st;
  } c;
  PERMFS_RETURN_IF_ERROR(xattrs_.Scan(
      view, Slice(XattrKey(ino, 0, 0)), Slice(XattrKey(ino + 1, 0, 0)),
      [](void* p, const Slice& k, const Slice& v) {
        auto* c = static_cast<Ctx*>(p);
        if (k.size != 17 || k.data[16] != 0) return true;
        Reader rd(v.data, v.size);
        std::uint16_t nl = rd.U16();
        const std::uint8_t* n = rd.Take(nl);
        if (!rd.ok() || !n) {
          c->st = Status::Corruption("xattr record malformed");
          return false;
        }
        c->names.emplace_back(reinterpret_cast<const char*>(n), nl);
        return true;
      },
      &c));
  PERMFS_RETURN_IF_ERROR(c.st);
  return c.names;
}

Status Filesystem::RemoveXattr(std::uint64_t ino, const std::string& name,
                               InodeRecord* after) noexcept {
  PERMFS_RETURN_IF_ERROR(CheckXattrName(name));
  const std::uint64_t h = NameHash64(name);
  return RunFreeingTxn([&](WriteTxn& t) -> Status {
    PERMFS_ASSIGN_OR_RETURN(InodeRecord in, LoadInode(t, ino));
    std::uint32_t total = 0;
    PERMFS_RETURN_IF_ERROR(ReadHead(xattrs_, t, ino, name, &total));
    const std::size_t parts = (total + kPiece - 1) / kPiece;
    for (std::size_t p = 0; p <= parts; ++p)
      PERMFS_RETURN_IF_ERROR(xattrs_.Delete(t, Slice(XattrKey(ino, h, static_cast<std::uint8_t>(p)))));
    in.ctime_ns = port::WallClockNanos();
    if (after) *after = in;
    return StoreInode(t, in);
  });
}

}  // namespace permfs::fs
