#include "pci.h"

#include "arch.h"

namespace permfs::qemu::pci {
namespace {
constexpr std::uint16_t kConfigAddress = 0xCF8;
constexpr std::uint16_t kConfigData = 0xCFC;

void Select(Address a, std::uint8_t off) {
  arch::Outl(kConfigAddress, 0x80000000u | (static_cast<std::uint32_t>(a.bus) << 16) |
                                 (static_cast<std::uint32_t>(a.dev) << 11) |
                                 (static_cast<std::uint32_t>(a.fn) << 8) | (off & 0xFC));
}
}  // namespace

std::uint32_t Read32(Address a, std::uint8_t off) noexcept {
  Select(a, off);
  return arch::Inl(kConfigData);
}
std::uint16_t Read16(Address a, std::uint8_t off) noexcept {
  return static_cast<std::uint16_t>(Read32(a, off) >> ((off & 2) * 8));
}
std::uint8_t Read8(Address a, std::uint8_t off) noexcept {
  return static_cast<std::uint8_t>(Read32(a, off) >> ((off & 3) * 8));
}
void Write32(Address a, std::uint8_t off, std::uint32_t v) noexcept {
  Select(a, off);
  arch::Outl(kConfigData, v);
}
void Write16(Address a, std::uint8_t off, std::uint16_t v) noexcept {
  Select(a, off);
  arch::Outw(static_cast<std::uint16_t>(kConfigData + (off & 2)), v);
}

Bar ReadBar(Address a, int index) noexcept {
  Bar b;
  const std::uint8_t off = static_cast<std::uint8_t>(0x10 + 4 * index);
  const std::uint32_t v = Read32(a, off);
  if (v == 0) return b;
  b.present = true;
  if (v & 1) {
    b.io = true;
    b.base = v & ~0x3u;
  } else {
    b.base = v & ~0xFu;
    if (((v >> 1) & 3) == 2 && index < 5)
      b.base |= static_cast<std::uint64_t>(Read32(a, static_cast<std::uint8_t>(off + 4))) << 32;
  }
  return b;
}

bool Scan(bool (*fn)(Address a, std::uint16_t vendor, std::uint16_t device, void* arg),
          void* arg) noexcept {
  for (unsigned bus = 0; bus < 256; ++bus) {
    for (std::uint8_t dev = 0; dev < 32; ++dev) {
      Address a{static_cast<std::uint8_t>(bus), dev, 0};
      std::uint32_t id = Read32(a, 0);
      if ((id & 0xFFFF) == 0xFFFF) continue;
      const bool multi = Read8(a, 0x0E) & 0x80;
      for (std::uint8_t fn_no = 0; fn_no < (multi ? 8 : 1); ++fn_no) {
        a.fn = fn_no;
        id = Read32(a, 0);
        if ((id & 0xFFFF) == 0xFFFF) continue;
        if (fn(a, static_cast<std::uint16_t>(id), static_cast<std::uint16_t>(id >> 16), arg))
          return true;
      }
    }
  }
  return false;
}

void EnableDevice(Address a, bool intx) noexcept {
  std::uint16_t cmd = Read16(a, 0x04);
  cmd |= 0x7;  // I/O space, memory space, bus master
  if (intx) cmd &= static_cast<std::uint16_t>(~(1u << 10));
  else cmd |= 1u << 10;  // INTx disable: this driver polls
  Write16(a, 0x04, cmd);
}

}  // namespace permfs::qemu::pci
