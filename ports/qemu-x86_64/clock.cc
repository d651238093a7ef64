// Time for the port contract: MonotonicNanos from the TSC calibrated against PIT channel 2 at
// boot; WallClockNanos = CMOS RTC read at boot + monotonic time since.
//
// Why TSC + PIT: the TSC is one instruction to read (cheap under TCG and on hardware), and the
// PIT exists on every PC and on QEMU -machine pc; an OS with an HPET or invariant-TSC frequency
// from CPUID leaf 0x15 plugs that in here instead. The conversion is a 64x64->128 multiply by
// (1e9 << 32) / tsc_hz, so no division runs per call.
#include <atomic>
#include <cstdint>

#include "arch.h"
#include "internal.h"
#include "kernel.h"
#include "port/port.h"

namespace permfs::qemu {
namespace {

std::uint64_t g_tsc0 = 0;
std::uint64_t g_tsc_hz = 0;
std::uint64_t g_mult = 0;  // ns per tick << 32
std::atomic<std::uint64_t> g_last_ns{0};
std::int64_t g_boot_wall_s = 0;

std::uint64_t CalibrateTsc() {
  constexpr std::uint32_t kPitHz = 1193182;
  constexpr std::uint32_t kMs = 50;
  constexpr std::uint32_t kCount = kPitHz * kMs / 1000;  // < 65536
  std::uint8_t gate = arch::Inb(0x61);
  arch::Outb(0x61, static_cast<std::uint8_t>((gate & ~0x02) | 0x01));  // speaker off, gate on
  arch::Outb(0x43, 0xB0);  // channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count)
  arch::Outb(0x42, kCount & 0xFF);
  arch::Outb(0x42, static_cast<std::uint8_t>(kCount >> 8));
  gate = arch::Inb(0x61);
  arch::Outb(0x61, static_cast<std::uint8_t>(gate & ~0x01));  // restart the count
  arch::Outb(0x61, static_cast<std::uint8_t>(gate | 0x01));
  const std::uint64_t t0 = arch::Rdtsc();
  std::uint64_t spins = 0;
  while (!(arch::Inb(0x61) & 0x20)) {  // OUT2 goes high at terminal count
    if (++spins > 200000000ull) return 0;
  }
  const std::uint64_t t1 = arch::Rdtsc();
  return (t1 - t0) * 1000 / kMs;
}

std::uint8_t Cmos(std::uint8_t reg) {
  arch::Outb(0x70, reg);  // NMI stays enabled (bit 7 clear)
  return arch::Inb(0x71);
}

struct RtcTime {
  std::uint8_t s, m, h, day, mon, year, century;
  bool operator==(const RtcTime&) const = default;
};

RtcTime ReadRtcOnce() {
  for (int i = 0; i < 1000000 && (Cmos(0x0A) & 0x80); ++i) arch::Pause();  // update in progress
  return {Cmos(0x00), Cmos(0x02), Cmos(0x04), Cmos(0x07), Cmos(0x08), Cmos(0x09), Cmos(0x32)};
}

std::int64_t DaysFromCivil(std::int64_t y, unsigned m, unsigned d) {  // H. Hinnant's algorithm
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

std::int64_t ReadRtcUnixSeconds() {
  RtcTime a = ReadRtcOnce(), b;
  for (int i = 0; i < 10; ++i) {
    b = ReadRtcOnce();
    if (a == b) break;
    a = b;
  }
  const std::uint8_t regb = Cmos(0x0B);
  const bool binary = regb & 0x04;
  const bool h24 = regb & 0x02;
  auto bcd = [&](std::uint8_t v) -> unsigned {
    return binary ? v : static_cast<unsigned>((v & 0x0F) + (v >> 4) * 10);
  };
  const bool pm = a.h & 0x80;
  unsigned hour = bcd(a.h & 0x7F);
  if (!h24) hour = (hour % 12) + (pm ? 12 : 0);
  unsigned century = a.century ? bcd(a.century) : 20;
  if (century < 19 || century > 30) century = 20;
  const std::int64_t year = century * 100 + bcd(a.year);
  const std::int64_t days = DaysFromCivil(year, bcd(a.mon), bcd(a.day));
  return days * 86400 + hour * 3600 + bcd(a.m) * 60 + bcd(a.s);
}

}  // namespace

void ClockInit() noexcept {
  g_tsc_hz = CalibrateTsc();
  if (g_tsc_hz < 1000000) {
    Printf("clock: PIT calibration failed, assuming a 1 GHz TSC\n");
    g_tsc_hz = 1000000000ull;
  }
  g_mult = static_cast<std::uint64_t>((static_cast<unsigned __int128>(1000000000ull) << 32) / g_tsc_hz);
  g_tsc0 = arch::Rdtsc();
  g_boot_wall_s = ReadRtcUnixSeconds();
}

std::uint64_t TscHz() noexcept { return g_tsc_hz; }
std::int64_t BootWallClockSeconds() noexcept { return g_boot_wall_s; }

}  // namespace permfs::qemu

namespace permfs::port {

std::uint64_t MonotonicNanos() noexcept {
  using namespace qemu;
  if (g_mult == 0) return 0;  // before ClockInit
  const std::uint64_t delta = arch::Rdtsc() - g_tsc0;
  const std::uint64_t ns =
      static_cast<std::uint64_t>((static_cast<unsigned __int128>(delta) * g_mult) >> 32);
  // Never go backwards, even if the TSC of another CPU lags (SMP ports).
  std::uint64_t last = g_last_ns.load(std::memory_order_relaxed);
  while (ns > last && !g_last_ns.compare_exchange_weak(last, ns, std::memory_order_relaxed)) {
  }
  return ns > last ? ns : last;
}

std::int64_t WallClockNanos() noexcept {
  return qemu::g_boot_wall_s * 1000000000ll + static_cast<std::int64_t>(MonotonicNanos());
}

}  // namespace permfs::port
