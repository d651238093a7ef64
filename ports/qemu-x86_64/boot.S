/* Boot stub of the PermFS reference kernel.
 *
 * QEMU's -kernel loader (multiboot v1) enters _start in 32-bit protected mode, paging off,
 * EAX = 0x2BADB002, EBX = physical address of the multiboot info. We:
 *   1. zero .bss (stack and page tables live there),
 *   2. identity-map the first 4 GiB with 2 MiB pages (PML4 -> 1 PDPT -> 4 PDs),
 *   3. enable PAE, EFER.LME, paging, load a 64-bit GDT and far-jump to 64-bit code,
 *   4. enable SSE (CR0.EM=0, CR0.MP=1, CR4.OSFXSR, CR4.OSXMMEXCPT) and x87,
 *   5. call permfs_qemu_main(magic, info) on the 256 KiB boot stack.
 * The last 1 GiB (3..4 GiB: PCI MMIO, LAPIC, HPET) is mapped uncached (PCD|PWT).
 * The CPU-exception entry stubs (vectors 0..31) are at the end of this file. */

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* page-align modules, give memory info */

.section .multiboot, "a"
.balign 4
.long MB_MAGIC
.long MB_FLAGS
.long -(MB_MAGIC + MB_FLAGS)

.section .bss
.balign 4096
.global boot_pml4
boot_pml4: .skip 4096
boot_pdpt: .skip 4096
boot_pd:   .skip 4096 * 4
.global boot_stack_bottom
boot_stack_bottom: .skip 256 * 1024
.global boot_stack_top
boot_stack_top:
.global exception_stack_bottom
exception_stack_bottom: .skip 32 * 1024
.global exception_stack_top
exception_stack_top:

.section .data
.balign 16
.global boot_gdt
boot_gdt:
  .quad 0                       /* 0x00 null */
  .quad 0x00209A0000000000      /* 0x08 kernel code, 64-bit (L=1, P, DPL0, exec/read) */
  .quad 0x0000920000000000      /* 0x10 kernel data */
  .quad 0, 0                    /* 0x18 TSS (16 bytes), filled in by cpu.cc */
boot_gdt_end:
.global boot_gdt_ptr
boot_gdt_ptr:
  .word boot_gdt_end - boot_gdt - 1
  .quad boot_gdt

.section .boot.text, "ax"
.code32
.global _start
_start:
  cli
  cld
  mov %eax, %esi                /* multiboot magic */
  mov %ebx, %edi                /* multiboot info */

  /* 1. zero .bss */
  mov $__bss_start, %ebx
  mov $__bss_end, %ecx
  sub %ebx, %ecx
  shr $2, %ecx
  push %edi
  mov %ebx, %edi
  xor %eax, %eax
  rep stosl
  pop %edi
  mov $boot_stack_top, %esp

  /* 2. page tables: PML4[0] -> PDPT; PDPT[i] -> PD i (i < 4); PD entries = 2 MiB pages */
  mov $boot_pdpt, %eax
  or $0x3, %eax                 /* present | writable */
  mov %eax, boot_pml4
  xor %ecx, %ecx
1:
  mov %ecx, %eax
  shl $12, %eax
  add $boot_pd, %eax
  or $0x3, %eax
  mov %eax, boot_pdpt(,%ecx,8)
  inc %ecx
  cmp $4, %ecx
  jne 1b
  xor %ecx, %ecx                /* 2048 PD entries cover 4 GiB */
2:
  mov %ecx, %eax
  shl $21, %eax                 /* low 32 bits of the physical address */
  or $0x83, %eax                /* present | writable | page size (2 MiB) */
  cmp $1536, %ecx
  jb 3f
  or $0x18, %eax                /* 3..4 GiB: PWT | PCD (device memory) */
3:
  mov %eax, boot_pd(,%ecx,8)
  mov %ecx, %eax
  shr $11, %eax                 /* high 32 bits: entry / 2048 (always 0 here) */
  mov %eax, boot_pd+4(,%ecx,8)
  inc %ecx
  cmp $2048, %ecx
  jne 2b

  /* 3. PAE, long mode, paging */
  mov %cr4, %eax
  or $(1 << 5), %eax            /* PAE */
  mov %eax, %cr4
  mov $boot_pml4, %eax
  mov %eax, %cr3
  mov $0xC0000080, %ecx         /* EFER */
  rdmsr
  or $(1 << 8), %eax            /* LME */
  wrmsr
  mov %cr0, %eax
  or $0x80000001, %eax          /* PG | PE */
  mov %eax, %cr0
  lgdt boot_gdt_ptr
  ljmp $0x08, $long_mode_entry

.code64
long_mode_entry:
  mov $0x10, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  xor %ax, %ax
  mov %ax, %fs
  mov %ax, %gs
  mov $boot_stack_top, %rsp
  xor %rbp, %rbp                /* terminates frame-pointer backtraces */

  /* 4. x87 + SSE */
  mov %cr0, %rax
  and $~(1 << 2), %rax          /* EM = 0 */
  or $((1 << 1) | (1 << 5)), %rax /* MP = 1, NE = 1 */
  mov %rax, %cr0
  mov %cr4, %rax
  or $((1 << 9) | (1 << 10)), %rax /* OSFXSR | OSXMMEXCPT */
  mov %rax, %cr4
  fninit

  /* 5. C++ */
  mov %esi, %esi                /* zero-extend magic */
  mov %edi, %edi                /* zero-extend info pointer */
  push $0                       /* fake return address: keeps the ABI's 16-byte alignment */
  push $0
  mov %rsi, %rax
  mov %rdi, %rsi
  mov %rax, %rdi
  call permfs_qemu_main
4:
  cli
  hlt
  jmp 4b

/* ---- CPU exception entry stubs ----------------------------------------------------------- */
.macro EXC_NOERR vec
.global exc_stub_\vec
exc_stub_\vec:
  push $0
  push $\vec
  jmp exc_common
.endm
.macro EXC_ERR vec
.global exc_stub_\vec
exc_stub_\vec:
  push $\vec
  jmp exc_common
.endm

.text
exc_common:
  push %rax
  push %rbx
  push %rcx
  push %rdx
  push %rsi
  push %rdi
  push %rbp
  push %r8
  push %r9
  push %r10
  push %r11
  push %r12
  push %r13
  push %r14
  push %r15
  mov %rsp, %rdi
  cld
  call permfs_qemu_exception    /* never returns */
5:
  cli
  hlt
  jmp 5b

EXC_NOERR 0
EXC_NOERR 1
EXC_NOERR 2
EXC_NOERR 3
EXC_NOERR 4
EXC_NOERR 5
EXC_NOERR 6
EXC_NOERR 7
EXC_ERR   8
EXC_NOERR 9
EXC_ERR   10
EXC_ERR   11
EXC_ERR   12
EXC_ERR   13
EXC_ERR   14
EXC_NOERR 15
EXC_NOERR 16
EXC_ERR   17
EXC_NOERR 18
EXC_NOERR 19
EXC_NOERR 20
EXC_ERR   21
EXC_NOERR 22
EXC_NOERR 23
EXC_NOERR 24
EXC_NOERR 25
EXC_NOERR 26
EXC_NOERR 27
EXC_NOERR 28
EXC_ERR   29
EXC_ERR   30
EXC_NOERR 31

.section .rodata
.balign 8
.global exc_stub_table
exc_stub_table:
.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
  .quad exc_stub_\v
.endr

.section .note.GNU-stack, "", @progbits
