// x86_64 instruction wrappers used by the reference kernel (port I/O, cpuid, TSC, barriers).
#pragma once

#include <cstdint>

namespace permfs::qemu::arch {

inline void Outb(std::uint16_t port, std::uint8_t v) { asm volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
inline void Outw(std::uint16_t port, std::uint16_t v) { asm volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
inline void Outl(std::uint16_t port, std::uint32_t v) { asm volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
inline std::uint8_t Inb(std::uint16_t port) {
  std::uint8_t v;
  asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
inline std::uint16_t Inw(std::uint16_t port) {
  std::uint16_t v;
  asm volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
inline std::uint32_t Inl(std::uint16_t port) {
  std::uint32_t v;
  asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

inline std::uint64_t Rdtsc() {
  std::uint32_t lo, hi;
  asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return (static_cast<std::uint64_t>(hi) << 32) | lo;
}

struct CpuidRegs {
  std::uint32_t eax, ebx, ecx, edx;
};
inline CpuidRegs Cpuid(std::uint32_t leaf, std::uint32_t sub = 0) {
  CpuidRegs r;
  asm volatile("cpuid" : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx) : "a"(leaf), "c"(sub));
  return r;
}

inline void Pause() { asm volatile("pause" ::: "memory"); }
inline void Cli() { asm volatile("cli" ::: "memory"); }
inline void Hlt() { asm volatile("hlt" ::: "memory"); }
// Full barrier for device-visible memory (descriptor rings are ordinary write-back RAM).
inline void Mb() { asm volatile("mfence" ::: "memory"); }
inline void CompilerBarrier() { asm volatile("" ::: "memory"); }

inline std::uint64_t ReadCr2() {
  std::uint64_t v;
  asm volatile("mov %%cr2, %0" : "=r"(v));
  return v;
}
inline std::uint64_t ReadCr3() {
  std::uint64_t v;
  asm volatile("mov %%cr3, %0" : "=r"(v));
  return v;
}
inline std::uint64_t ReadCr4() {
  std::uint64_t v;
  asm volatile("mov %%cr4, %0" : "=r"(v));
  return v;
}
inline void WriteCr4(std::uint64_t v) { asm volatile("mov %0, %%cr4" ::"r"(v) : "memory"); }

}  // namespace permfs::qemu::arch
