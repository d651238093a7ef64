// PCI configuration space through the legacy I/O mechanism (ports 0xCF8/0xCFC), bus scan and
// BAR decoding. Enough for QEMU -machine pc; an OS with ECAM/ACPI replaces it.
#pragma once

#include <cstdint>

namespace permfs::qemu::pci {

struct Address {
  std::uint8_t bus, dev, fn;
};

std::uint32_t Read32(Address a, std::uint8_t off) noexcept;
std::uint16_t Read16(Address a, std::uint8_t off) noexcept;
std::uint8_t Read8(Address a, std::uint8_t off) noexcept;
void Write32(Address a, std::uint8_t off, std::uint32_t v) noexcept;
void Write16(Address a, std::uint8_t off, std::uint16_t v) noexcept;

struct Bar {
  bool io = false;          // I/O space BAR (else memory)
  std::uint64_t base = 0;   // port number or physical address
  bool present = false;
};
Bar ReadBar(Address a, int index) noexcept;

// Calls fn(addr, vendor, device) for every function on every bus; stops when fn returns true.
// Returns whether fn returned true.
bool Scan(bool (*fn)(Address a, std::uint16_t vendor, std::uint16_t device, void* arg),
          void* arg) noexcept;

// Sets I/O space, memory space and bus-master enable; clears INTx disable if `intx`.
void EnableDevice(Address a, bool intx) noexcept;

}  // namespace permfs::qemu::pci
