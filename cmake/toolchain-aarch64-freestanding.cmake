# Toolchain for freestanding aarch64 builds of the PermFS engine core (build-only today: there is
# no aarch64 reference kernel; ports/aarch64-check/check-freestanding.sh, CTest
# freestanding_aarch64, compiles and archives every core source with these flags).
#
#   cmake -S <your-kernel> -B build/a64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64-freestanding.cmake
#
# Debian: apt-get install g++-aarch64-linux-gnu (its libstdc++ headers serve the header-only
# parts of <vector>/<string>/<atomic> the core uses). Override with -DPERMFS_FREESTANDING_CXX=...
#
# Flags, beyond the x86_64 toolchain's:
#   -mgeneral-regs-only   no FP/SIMD registers in kernel code (the core uses no floating point;
#                         the check proves it), so the OS need not save FP state around it;
#   -mstrict-align        no unaligned accesses (safe before the MMU/caches are on; the core's
#                         on-disk decoding uses byte loads or memcpy anyway);
#   -mno-outline-atomics  inline LSE/LL-SC atomics instead of libgcc's __aarch64_* helpers, which
#                         need getauxval() to pick an implementation at run time.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(PERMFS_FREESTANDING_CXX "aarch64-linux-gnu-g++" CACHE STRING "C++ compiler for the freestanding build")
set(PERMFS_FREESTANDING_CC "aarch64-linux-gnu-gcc" CACHE STRING "C compiler/assembler driver")
find_program(_permfs_fs_cxx ${PERMFS_FREESTANDING_CXX} REQUIRED)
find_program(_permfs_fs_cc ${PERMFS_FREESTANDING_CC} REQUIRED)
set(CMAKE_CXX_COMPILER ${_permfs_fs_cxx})
set(CMAKE_C_COMPILER ${_permfs_fs_cc})
set(CMAKE_ASM_COMPILER ${_permfs_fs_cc})
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(PERMFS_FREESTANDING_FLAGS
    "-ffreestanding -fno-exceptions -fno-rtti -nostdlib -fno-pic -fno-pie -mgeneral-regs-only \
-mstrict-align -mno-outline-atomics -fno-stack-protector -fno-asynchronous-unwind-tables \
-fno-unwind-tables -fno-omit-frame-pointer")
set(CMAKE_CXX_FLAGS_INIT "${PERMFS_FREESTANDING_FLAGS}")
set(CMAKE_C_FLAGS_INIT "-ffreestanding -fno-pic -fno-pie -mgeneral-regs-only -mstrict-align")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-nostdlib -static -Wl,--build-id=none")
set(CMAKE_POSITION_INDEPENDENT_CODE OFF)

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
