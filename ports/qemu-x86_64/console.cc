// Serial console on COM1 (16550 UART at 0x3F8, 115200 8N1, polled) and an allocation-free
// printf used by the port's Log and Panic paths.
#include <cstdarg>
#include <cstddef>
#include <cstdint>

#include "arch.h"
#include "kernel.h"

namespace permfs::qemu {
namespace {

constexpr std::uint16_t kCom1 = 0x3F8;
bool g_serial_ok = false;

void PutRaw(char c) {
  if (!g_serial_ok) return;
  // Wait for the transmit holding register to empty (bounded: never hang the panic path).
  for (int i = 0; i < 100000 && !(arch::Inb(kCom1 + 5) & 0x20); ++i) arch::Pause();
  arch::Outb(kCom1, static_cast<std::uint8_t>(c));
}

struct Out {
  char buf[512];
  std::size_t n = 0;
  void Put(char c) {
    if (n < sizeof buf) buf[n++] = c;
  }
  void Str(const char* s) {
    if (!s) s = "(null)";
    while (*s) Put(*s++);
  }
  void Num(std::uint64_t v, unsigned base, int width, char pad, bool neg) {
    char tmp[24];
    int k = 0;
    do {
      unsigned d = static_cast<unsigned>(v % base);
      tmp[k++] = static_cast<char>(d < 10 ? '0' + d : 'a' + d - 10);
      v /= base;
    } while (v && k < 24);
    int len = k + (neg ? 1 : 0);
    if (neg && pad == '0') Put('-');
    for (; width > len; --width) Put(pad);
    if (neg && pad != '0') Put('-');
    while (k) Put(tmp[--k]);
  }
};

}  // namespace

void SerialInit() noexcept {
  arch::Outb(kCom1 + 1, 0x00);  // no interrupts
  arch::Outb(kCom1 + 3, 0x80);  // DLAB
  arch::Outb(kCom1 + 0, 0x01);  // divisor 1 = 115200 baud
  arch::Outb(kCom1 + 1, 0x00);
  arch::Outb(kCom1 + 3, 0x03);  // 8N1
  arch::Outb(kCom1 + 2, 0xC7);  // FIFO on, cleared, 14-byte threshold
  arch::Outb(kCom1 + 4, 0x03);  // DTR | RTS (no loopback)
  // A UART that reads back 0xFF from the line status register is absent.
  g_serial_ok = arch::Inb(kCom1 + 5) != 0xFF;
}

void SerialWrite(const char* s, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    if (s[i] == '\n') PutRaw('\r');
    PutRaw(s[i]);
  }
}

void Printf(const char* fmt, ...) noexcept {
  Out o;
  va_list ap;
  va_start(ap, fmt);
  for (const char* p = fmt; *p; ++p) {
    if (*p != '%') {
      o.Put(*p);
      continue;
    }
    ++p;
    char pad = ' ';
    int width = 0;
    if (*p == '0') {
      pad = '0';
      ++p;
    }
    while (*p >= '0' && *p <= '9') width = width * 10 + (*p++ - '0');
    int longs = 0;
    bool size_t_arg = false;
    while (*p == 'l') {
      ++longs;
      ++p;
    }
    if (*p == 'z') {
      size_t_arg = true;
      ++p;
    }
    switch (*p) {
      case 'd': {
        std::int64_t v = (longs || size_t_arg) ? va_arg(ap, long) : va_arg(ap, int);
        bool neg = v < 0;
        std::uint64_t u = neg ? static_cast<std::uint64_t>(-(v + 1)) + 1 : static_cast<std::uint64_t>(v);
        o.Num(u, 10, width, pad, neg);
        break;
      }
      case 'u':
      case 'x': {
        std::uint64_t v = (longs || size_t_arg) ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
        o.Num(v, *p == 'x' ? 16 : 10, width, pad, false);
        break;
      }
      case 'p':
        o.Str("0x");
        o.Num(reinterpret_cast<std::uintptr_t>(va_arg(ap, void*)), 16, 0, ' ', false);
        break;
      case 's':
        o.Str(va_arg(ap, const char*));
        break;
      case 'c':
        o.Put(static_cast<char>(va_arg(ap, int)));
        break;
      case '%':
        o.Put('%');
        break;
      case 0:
        --p;
        break;
      default:
        o.Put('%');
        o.Put(*p);
        break;
    }
  }
  va_end(ap);
  SerialWrite(o.buf, o.n);
}

void PanicPrint(const char* s) noexcept {
  std::size_t n = 0;
  while (s[n]) ++n;
  SerialWrite(s, n);
}
void PanicPrintDec(std::uint64_t v) noexcept { Printf("%lu", static_cast<unsigned long>(v)); }
void PanicPrintHex(std::uint64_t v) noexcept { Printf("0x%lx", static_cast<unsigned long>(v)); }

}  // namespace permfs::qemu
