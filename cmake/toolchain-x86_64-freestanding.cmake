# Toolchain for freestanding x86_64 builds of the PermFS engine core (the reference kernel in
# ports/qemu-x86_64 and anything else that embeds the core without an OS).
#
#   cmake -S ports/qemu-x86_64 -B build/qemu \
#         -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-x86_64-freestanding.cmake
#
# Uses the host GCC (Debian's g++ targets x86_64 already; no cross compiler is needed) with
# everything hosted switched off. Override the compiler with -DPERMFS_FREESTANDING_CXX=... (a
# clang++ works too: -DPERMFS_FREESTANDING_CXX=clang++ -DPERMFS_FREESTANDING_CC=clang).
#
# Code model: the reference kernel runs identity-mapped below 2 GiB, so the default "small"
# model with -fno-pic fits. A higher-half kernel would add -mcmodel=kernel.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(PERMFS_FREESTANDING_CXX "g++" CACHE STRING "C++ compiler for the freestanding build")
set(PERMFS_FREESTANDING_CC "gcc" CACHE STRING "C compiler/assembler driver for the freestanding build")
find_program(_permfs_fs_cxx ${PERMFS_FREESTANDING_CXX} REQUIRED)
find_program(_permfs_fs_cc ${PERMFS_FREESTANDING_CC} REQUIRED)
set(CMAKE_CXX_COMPILER ${_permfs_fs_cxx})
set(CMAKE_C_COMPILER ${_permfs_fs_cc})
set(CMAKE_ASM_COMPILER ${_permfs_fs_cc})

# Do not try to link a hosted test program while probing the compiler.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

# Clang keeps the host triple (x86_64-linux-gnu) so it finds the same libstdc++ headers as GCC;
# -ffreestanding/-nostdlib do the rest. Set PERMFS_FREESTANDING_TARGET for a real cross triple
# (its sysroot must then provide the C++ headers listed in docs/PORTING.md).
set(PERMFS_FREESTANDING_TARGET "" CACHE STRING "Optional --target triple for clang")
set(_permfs_fs_target "")
if(PERMFS_FREESTANDING_TARGET)
  set(_permfs_fs_target "--target=${PERMFS_FREESTANDING_TARGET}")
endif()

# -mno-red-zone: a kernel may take an exception/interrupt on the current stack.
# SSE stays enabled (the boot code sets CR0/CR4 for it); the engine selects SSE4.2 CRC32C at run
# time through cpuid.
set(PERMFS_FREESTANDING_FLAGS
    "${_permfs_fs_target} -ffreestanding -fno-exceptions -fno-rtti -nostdlib -fno-pic -fno-pie \
-mno-red-zone -mcmodel=small -fno-stack-protector -fcf-protection=none \
-fno-asynchronous-unwind-tables -fno-unwind-tables -fno-omit-frame-pointer")
set(CMAKE_CXX_FLAGS_INIT "${PERMFS_FREESTANDING_FLAGS}")
set(CMAKE_C_FLAGS_INIT "${_permfs_fs_target} -ffreestanding -fno-pic -fno-pie -mno-red-zone")
set(CMAKE_ASM_FLAGS_INIT "${_permfs_fs_target} -fno-pic -fno-pie")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-nostdlib -static -Wl,--build-id=none -Wl,-z,max-page-size=0x1000")
# GCC on Debian links PIE by default: the kernel build adds -no-pie for GCC (clang 14 warns on it).
set(CMAKE_POSITION_INDEPENDENT_CODE OFF)

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
