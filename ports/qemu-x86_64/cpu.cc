// CPU setup: TSS (IST1 = exception stack), IDT for the 32 CPU exceptions (each ends in the panic
// path with vector, error code and RIP), legacy PIC masked (this kernel runs with interrupts
// off and polls its devices), XSAVE/AVX state enabled when the CPU has it.
#include <cstdint>

#include "arch.h"
#include "internal.h"
#include "kernel.h"

extern "C" {
extern std::uint64_t boot_gdt[];
extern const std::uint64_t exc_stub_table[32];
}

namespace permfs::qemu {
namespace {

struct __attribute__((packed)) Tss {
  std::uint32_t reserved0;
  std::uint64_t rsp[3];
  std::uint64_t reserved1;
  std::uint64_t ist[7];
  std::uint64_t reserved2;
  std::uint16_t reserved3;
  std::uint16_t iomap_base;
};

struct __attribute__((packed)) IdtEntry {
  std::uint16_t offset_lo;
  std::uint16_t selector;
  std::uint8_t ist;
  std::uint8_t type_attr;
  std::uint16_t offset_mid;
  std::uint32_t offset_hi;
  std::uint32_t zero;
};

struct __attribute__((packed)) TablePtr {
  std::uint16_t limit;
  std::uint64_t base;
};

alignas(16) Tss g_tss;
alignas(16) IdtEntry g_idt[256];
bool g_has_rdrand = false;

const char* const kExceptionNames[32] = {
    "#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
    "#BR bound range", "#UD invalid opcode", "#NM device not available", "#DF double fault",
    "coprocessor segment overrun", "#TS invalid TSS", "#NP segment not present",
    "#SS stack fault", "#GP general protection", "#PF page fault", "reserved 15",
    "#MF x87 error", "#AC alignment check", "#MC machine check", "#XM SIMD exception",
    "#VE virtualization", "#CP control protection", "reserved 22", "reserved 23",
    "reserved 24", "reserved 25", "reserved 26", "reserved 27", "#HV hypervisor injection",
    "#VC VMM communication", "#SX security", "reserved 31"};

}  // namespace

void CpuInit() noexcept {
  // TSS descriptor at GDT selector 0x18 (two 8-byte slots).
  g_tss.ist[0] = reinterpret_cast<std::uint64_t>(exception_stack_top);
  g_tss.iomap_base = sizeof(Tss);
  const std::uint64_t base = reinterpret_cast<std::uint64_t>(&g_tss);
  const std::uint64_t limit = sizeof(Tss) - 1;
  boot_gdt[3] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (0x89ull << 40) |
                (((limit >> 16) & 0xF) << 48) | (((base >> 24) & 0xFF) << 56);
  boot_gdt[4] = base >> 32;
  asm volatile("ltr %w0" ::"r"(0x18));

  // IDT: every CPU exception on IST1, interrupt gates (IF stays clear).
  for (int v = 0; v < 32; ++v) {
    const std::uint64_t h = exc_stub_table[v];
    IdtEntry& e = g_idt[v];
    e.offset_lo = static_cast<std::uint16_t>(h);
    e.selector = 0x08;
    e.ist = 1;
    e.type_attr = 0x8E;
    e.offset_mid = static_cast<std::uint16_t>(h >> 16);
    e.offset_hi = static_cast<std::uint32_t>(h >> 32);
    e.zero = 0;
  }
  TablePtr idtr{sizeof(g_idt) - 1, reinterpret_cast<std::uint64_t>(&g_idt[0])};
  asm volatile("lidt %0" ::"m"(idtr));

  // Remap the 8259 PICs away from the exception vectors and mask every line.
  arch::Outb(0x20, 0x11);
  arch::Outb(0xA0, 0x11);
  arch::Outb(0x21, 0x20);
  arch::Outb(0xA1, 0x28);
  arch::Outb(0x21, 0x04);
  arch::Outb(0xA1, 0x02);
  arch::Outb(0x21, 0x01);
  arch::Outb(0xA1, 0x01);
  arch::Outb(0x21, 0xFF);
  arch::Outb(0xA1, 0xFF);

  // XSAVE + AVX state, so engine code that picks AVX at run time (cpuid + OSXSAVE) may use it.
  const arch::CpuidRegs l1 = arch::Cpuid(1);
  g_has_rdrand = (l1.ecx >> 30) & 1;
  if ((l1.ecx >> 26) & 1) {  // XSAVE
    arch::WriteCr4(arch::ReadCr4() | (1ull << 18));  // OSXSAVE
    std::uint64_t xcr0 = 0x3;                        // x87 | SSE
    if ((l1.ecx >> 28) & 1) xcr0 |= 0x4;             // AVX
    asm volatile("xsetbv" ::"c"(0), "a"(static_cast<std::uint32_t>(xcr0)),
                 "d"(static_cast<std::uint32_t>(xcr0 >> 32)));
  }
}

bool CpuHasRdrand() noexcept { return g_has_rdrand; }

}  // namespace permfs::qemu

extern "C" [[noreturn]] void permfs_qemu_exception(permfs::qemu::ExceptionFrame* f) {
  using namespace permfs::qemu;
  const char* name = f->vector < 32 ? kExceptionNames[f->vector] : "unknown vector";
  PanicCommon("cpu", static_cast<int>(f->vector), name, f);
}
