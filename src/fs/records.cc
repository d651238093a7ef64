#include "fs/records.h"

#include "util/bytes.h"
#include "util/coding.h"

namespace permfs::fs {

void InodeRecord::Encode(std::uint8_t out[kEncodedSize]) const noexcept {
  Writer w(out, kEncodedSize);
  w.U32(mode);
  w.U32(uid);
  w.U32(gid);
  w.U32(nlink);
  w.U64(size);
  w.I64(atime_ns);
  w.I64(mtime_ns);
  w.I64(ctime_ns);
  w.I64(btime_ns);
  w.U64(generation);
  w.U64(flags);
  w.U64(rdev);
  w.U64(parent);
  w.U64(data_bytes);
  w.Zeros(w.remaining());
}

Result<InodeRecord> InodeRecord::Decode(std::uint64_t ino, const std::uint8_t* in,
                                        std::size_t len) noexcept {
  if (len != kEncodedSize) return Status::Corruption("inode record: wrong size");
  Reader r(in, len);
  InodeRecord i;
  i.ino = ino;
  i.mode = r.U32();
  i.uid = r.U32();
  i.gid = r.U32();
  i.nlink = r.U32();
  i.size = r.U64();
  i.atime_ns = r.I64();
  i.mtime_ns = r.I64();
  i.ctime_ns = r.I64();
  i.btime_ns = r.I64();
  i.generation = r.U64();
  i.flags = r.U64();
  i.rdev = r.U64();
  i.parent = r.U64();
  i.data_bytes = r.U64();
  if (!r.ok()) return Status::Corruption("inode record: truncated");
  switch (i.mode & kTypeMask) {
    case kTypeSocket: case kTypeSymlink: case kTypeRegular: case kTypeBlock:
    case kTypeDir: case kTypeChar: case kTypeFifo:
      break;
    default:
      return Status::Corruption("inode record: bad file type");
  }
  if (i.size > (1ull << 62)) return Status::Corruption("inode record: absurd size");
  return i;
}

void ChunkMapEntry::Encode(std::uint8_t out[kEncodedSize]) const noexcept {
  CopyBytes(out, id.bytes, 32);
  EncodeLE32(out + 32, length);
  EncodeLE32(out + 36, flags);
}

Result<ChunkMapEntry> ChunkMapEntry::Decode(const std::uint8_t* in, std::size_t len,
                                            std::uint32_t record_size) noexcept {
  if (len != kEncodedSize) return Status::Corruption("chunk map entry: wrong size");
  ChunkMapEntry e;
  CopyBytes(e.id.bytes, in, 32);
  e.length = DecodeLE32(in + 32);
  e.flags = DecodeLE32(in + 36);
  if (e.length == 0 || e.length > record_size)
    return Status::Corruption("chunk map entry: bad length");
  return e;
}

std::uint64_t NameHash64(const std::string& name) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull ^ 0x5045524d46530001ull;  // "PERMFS" seed
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

static std::string Key2(std::uint64_t a, std::uint64_t b) {
  std::string k(16, '\0');
  EncodeBE64(reinterpret_cast<std::uint8_t*>(k.data()), a);
  EncodeBE64(reinterpret_cast<std::uint8_t*>(k.data()) + 8, b);
  return k;
}

std::string InodeKey(std::uint64_t ino) {
  std::string k(8, '\0');
  EncodeBE64(reinterpret_cast<std::uint8_t*>(k.data()), ino);
  return k;
}
std::string SymlinkKey(std::uint64_t ino) { return InodeKey(ino) + std::string(1, '\x01'); }
std::string DirKey(std::uint64_t dir, std::uint64_t hash) { return Key2(dir, hash); }
std::string ChunkKey(std::uint64_t ino, std::uint64_t record) { return Key2(ino, record); }
std::string XattrKey(std::uint64_t ino, std::uint64_t hash, std::uint8_t part) {
  return Key2(ino, hash) + std::string(1, static_cast<char>(part));
}
std::string OrphanKey(std::uint64_t ino) { return InodeKey(ino); }
std::uint64_t KeyU64(const std::uint8_t* p) { return DecodeBE64(p); }

std::string EncodeBucket(const DirEntry* entries, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint8_t hdr[11];
    hdr[0] = entries[i].type;
    EncodeLE64(hdr + 1, entries[i].ino);
    EncodeLE16(hdr + 9, static_cast<std::uint16_t>(entries[i].name.size()));
    out.append(reinterpret_cast<const char*>(hdr), sizeof hdr);
    out.append(entries[i].name);
  }
  return out;
}

Status DecodeBucket(const std::uint8_t* p, std::size_t len, DirEntry* out, std::size_t cap,
                    std::size_t* n) noexcept {
  Reader r(p, len);
  std::size_t count = 0;
  while (r.remaining() > 0) {
    if (count == cap) return Status::Corruption("directory bucket: too many entries");
    DirEntry& e = out[count];
    e.type = r.U8();
    e.ino = r.U64();
    std::uint16_t nl = r.U16();
    const std::uint8_t* name = r.Take(nl);
    if (!r.ok() || name == nullptr || nl == 0 || nl > kMaxNameLen || e.ino == 0)
      return Status::Corruption("directory bucket: malformed entry");
    e.name.assign(reinterpret_cast<const char*>(name), nl);
    ++count;
  }
  if (count == 0) return Status::Corruption("directory bucket: empty");
  *n = count;
  return Status();
}

}  // namespace permfs::fs
