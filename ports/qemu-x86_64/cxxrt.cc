// The C and C++ runtime a freestanding C++20 kernel needs without libc/libstdc++:
//  - memcpy/memmove/memset/memcmp/strlen (the compiler emits calls to them even freestanding),
//  - global operator new/delete in every form, on top of the kernel allocator (heap.cc),
//  - the libstdc++ "throw" entry points used by <vector>/<string>/<optional> etc. (they panic:
//    the engine is built without exceptions, so reaching one is an engine bug),
//  - __cxa_pure_virtual, __cxa_atexit/__dso_handle (static destructors never run: the kernel
//    never returns), __cxa_guard_* (function-local statics), __stack_chk_fail, abort,
//  - explicit instantiation of std::basic_string<char>: libstdc++ declares it `extern template`
//    (its members live in libstdc++.so), so a kernel must instantiate it itself.
// Static constructors (.init_array) are run by main.cc.
#include <cstddef>
#include <cstdint>
#include <new>
#include <string>

#include "internal.h"
#include "kernel.h"

using permfs::qemu::PanicCommon;

extern "C" {

void* memcpy(void* dst, const void* src, std::size_t n) {
  void* ret = dst;
  asm volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
  return ret;
}

void* memmove(void* dst, const void* src, std::size_t n) {
  auto* d = static_cast<unsigned char*>(dst);
  auto* s = static_cast<const unsigned char*>(src);
  if (d == s || n == 0) return dst;
  if (d < s || d >= s + n) return memcpy(dst, src, n);
  // Overlapping, destination above source: copy backwards.
  d += n - 1;
  s += n - 1;
  asm volatile("std\n\trep movsb\n\tcld" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
  return dst;
}

void* memset(void* dst, int c, std::size_t n) {
  void* ret = dst;
  asm volatile("rep stosb" : "+D"(dst), "+c"(n) : "a"(c) : "memory");
  return ret;
}

int memcmp(const void* a, const void* b, std::size_t n) {
  auto* x = static_cast<const unsigned char*>(a);
  auto* y = static_cast<const unsigned char*>(b);
  for (std::size_t i = 0; i < n; ++i) {
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return 0;
}

void* memchr(const void* p, int c, std::size_t n) {
  auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i)
    if (b[i] == static_cast<unsigned char>(c)) return const_cast<unsigned char*>(b + i);
  return nullptr;
}

int bcmp(const void* a, const void* b, std::size_t n) { return memcmp(a, b, n); }

std::size_t strlen(const char* s) {
  std::size_t n = 0;
  while (s[n]) ++n;
  return n;
}

int strcmp(const char* a, const char* b) {
  while (*a && *a == *b) ++a, ++b;
  return static_cast<unsigned char>(*a) - static_cast<unsigned char>(*b);
}

__attribute__((noreturn)) void abort() { PanicCommon("libc", 0, "abort() called", nullptr); }

__attribute__((noreturn)) void __cxa_pure_virtual() {
  PanicCommon("c++abi", 0, "pure virtual function called", nullptr);
}

void* __dso_handle = nullptr;
// The kernel never returns from main, so static destructors are never registered to run.
int __cxa_atexit(void (*)(void*), void*, void*) { return 0; }

// Function-local statics. One CPU, no preemption: a guard is "in progress" only if its
// initialiser recursed into itself, which is a bug.
int __cxa_guard_acquire(std::uint64_t* g) {
  auto* b = reinterpret_cast<volatile std::uint8_t*>(g);
  if (b[0]) return 0;
  if (b[1]) PanicCommon("c++abi", 0, "recursive initialisation of a function-local static", nullptr);
  b[1] = 1;
  return 1;
}
void __cxa_guard_release(std::uint64_t* g) {
  auto* b = reinterpret_cast<volatile std::uint8_t*>(g);
  b[1] = 0;
  b[0] = 1;
}
void __cxa_guard_abort(std::uint64_t* g) { reinterpret_cast<volatile std::uint8_t*>(g)[1] = 0; }

std::uintptr_t __stack_chk_guard = 0x595e9fbd94fda766ull;
__attribute__((noreturn)) void __stack_chk_fail() { PanicCommon("stack", 0, "stack smashing detected", nullptr); }

}  // extern "C"

namespace std {
const nothrow_t nothrow{};
}  // namespace std

// ---- libstdc++ throw entry points (declared in <bits/functexcept.h>) -------------------------
namespace std {
__attribute__((noreturn)) void __throw_bad_alloc() { PanicCommon("libstdc++", 0, "std::bad_alloc", nullptr); }
__attribute__((noreturn)) void __throw_bad_array_new_length() {
  PanicCommon("libstdc++", 0, "std::bad_array_new_length", nullptr);
}
__attribute__((noreturn)) void __throw_bad_cast() { PanicCommon("libstdc++", 0, "std::bad_cast", nullptr); }
__attribute__((noreturn)) void __throw_bad_typeid() { PanicCommon("libstdc++", 0, "std::bad_typeid", nullptr); }
__attribute__((noreturn)) void __throw_logic_error(const char* m) { PanicCommon("libstdc++", 0, m, nullptr); }
__attribute__((noreturn)) void __throw_domain_error(const char* m) { PanicCommon("libstdc++", 0, m, nullptr); }
__attribute__((noreturn)) void __throw_invalid_argument(const char* m) { PanicCommon("libstdc++", 0, m, nullptr); }
__attribute__((noreturn)) void __throw_length_error(const char* m) { PanicCommon("libstdc++", 0, m, nullptr); }
__attribute__((noreturn)) void __throw_out_of_range(const char* m) { PanicCommon("libstdc++", 0, m, nullptr); }
__attribute__((noreturn)) void __throw_out_of_range_fmt(const char* m, ...) {
  PanicCommon("libstdc++", 0, m, nullptr);
}
__attribute__((noreturn)) void __throw_runtime_error(const char* m) { PanicCommon("libstdc++", 0, m, nullptr); }
__attribute__((noreturn)) void __throw_range_error(const char* m) { PanicCommon("libstdc++", 0, m, nullptr); }
__attribute__((noreturn)) void __throw_overflow_error(const char* m) { PanicCommon("libstdc++", 0, m, nullptr); }
__attribute__((noreturn)) void __throw_underflow_error(const char* m) { PanicCommon("libstdc++", 0, m, nullptr); }
__attribute__((noreturn)) void __throw_bad_function_call() {
  PanicCommon("libstdc++", 0, "std::bad_function_call", nullptr);
}
__attribute__((noreturn)) void __throw_bad_optional_access() {
  PanicCommon("libstdc++", 0, "std::bad_optional_access", nullptr);
}
__attribute__((noreturn)) void __throw_bad_variant_access(const char* m) {
  PanicCommon("libstdc++", 0, m, nullptr);
}
__attribute__((noreturn)) void __throw_system_error(int) { PanicCommon("libstdc++", 0, "std::system_error", nullptr); }
__attribute__((noreturn)) void __glibcxx_assert_fail(const char* file, int line, const char*, const char* cond) noexcept {
  PanicCommon(file, line, cond, nullptr);
}
__attribute__((noreturn)) void terminate() noexcept { PanicCommon("libstdc++", 0, "std::terminate", nullptr); }

// libstdc++ declares these extern; the kernel provides the instantiation (see top of file).
template class basic_string<char>;
}  // namespace std

// ---- operator new / delete ------------------------------------------------------------------
// Throwing forms cannot throw (no exceptions): running out of memory there is a panic. Engine
// code uses port::Allocate or nothrow new and handles nullptr as Status::NoMemory.
namespace {
constexpr std::size_t kDefaultAlign = __STDCPP_DEFAULT_NEW_ALIGNMENT__;
void* NewOrPanic(std::size_t n, std::size_t align) {
  void* p = permfs::qemu::HeapAllocate(n, align);
  if (!p) PanicCommon("operator new", 0, "out of memory", nullptr);
  return p;
}
}  // namespace

void* operator new(std::size_t n) { return NewOrPanic(n, kDefaultAlign); }
void* operator new[](std::size_t n) { return NewOrPanic(n, kDefaultAlign); }
void* operator new(std::size_t n, std::align_val_t a) {
  return NewOrPanic(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return NewOrPanic(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return permfs::qemu::HeapAllocate(n, kDefaultAlign);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return permfs::qemu::HeapAllocate(n, kDefaultAlign);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return permfs::qemu::HeapAllocate(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return permfs::qemu::HeapAllocate(n, static_cast<std::size_t>(a));
}

void operator delete(void* p) noexcept { permfs::qemu::HeapFree(p, 0, 0, false); }
void operator delete[](void* p) noexcept { permfs::qemu::HeapFree(p, 0, 0, false); }
void operator delete(void* p, std::size_t n) noexcept {
  permfs::qemu::HeapFree(p, n, kDefaultAlign, true);
}
// Array sized delete may see a size that includes a cookie; free unsized to stay exact.
void operator delete[](void* p, std::size_t) noexcept { permfs::qemu::HeapFree(p, 0, 0, false); }
void operator delete(void* p, std::align_val_t a) noexcept {
  permfs::qemu::HeapFree(p, 0, static_cast<std::size_t>(a), false);
}
void operator delete[](void* p, std::align_val_t a) noexcept {
  permfs::qemu::HeapFree(p, 0, static_cast<std::size_t>(a), false);
}
void operator delete(void* p, std::size_t n, std::align_val_t a) noexcept {
  permfs::qemu::HeapFree(p, n, static_cast<std::size_t>(a), true);
}
void operator delete[](void* p, std::size_t, std::align_val_t a) noexcept {
  permfs::qemu::HeapFree(p, 0, static_cast<std::size_t>(a), false);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  permfs::qemu::HeapFree(p, 0, 0, false);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  permfs::qemu::HeapFree(p, 0, 0, false);
}
void operator delete(void* p, std::align_val_t a, const std::nothrow_t&) noexcept {
  permfs::qemu::HeapFree(p, 0, static_cast<std::size_t>(a), false);
}
void operator delete[](void* p, std::align_val_t a, const std::nothrow_t&) noexcept {
  permfs::qemu::HeapFree(p, 0, static_cast<std::size_t>(a), false);
}
