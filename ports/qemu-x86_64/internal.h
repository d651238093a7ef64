// Declarations shared between the reference kernel's own translation units (not an API).
#pragma once

#include <cstddef>
#include <cstdint>

namespace permfs::qemu {

// Register frame built by exc_common in boot.S (lowest address first).
struct ExceptionFrame {
  std::uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
  std::uint64_t vector, error_code;
  std::uint64_t rip, cs, rflags, rsp, ss;
};

// The one panic path: port::Panic and CPU exceptions both end here. Never allocates.
[[noreturn]] void PanicCommon(const char* file, int line, const char* msg,
                              const ExceptionFrame* frame) noexcept;

// Set at boot from the multiboot command line / compile-time default.
bool PanicPolicyIsHalt() noexcept;

// Mixes boot entropy (RTC time, TSC) into the FillRandom fallback generator.
void RandomInit() noexcept;

}  // namespace permfs::qemu

extern "C" {
extern char boot_stack_bottom[], boot_stack_top[];
extern char exception_stack_bottom[], exception_stack_top[];
}

namespace permfs::qemu {
// The allocator entry points behind port::Allocate and operator new/delete (heap.cc).
// `sized` = false for unsized operator delete (bytes/align unknown).
void* HeapAllocate(std::size_t bytes, std::size_t align) noexcept;
void HeapFree(void* p, std::size_t bytes, std::size_t align, bool sized) noexcept;
}  // namespace permfs::qemu
