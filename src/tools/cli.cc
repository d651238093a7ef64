#include "tools/cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdlib>

namespace permfs::tools {

namespace {

std::int64_t MonoNanos() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

bool SameIgnoringCase(const char* a, const char* b) { return strcasecmp(a, b) == 0; }

}  // namespace

std::string StatusText(const Status& st) {
  const char* msg = st.message();
  if (st.code() == Code::kCorruption) {
    std::string s = "filesystem corruption detected";
    if (*msg) s += std::string(" (") + msg + ")";
    return s;
  }
  std::string s = strerror(st.ToErrno());
  if (*msg && !SameIgnoringCase(msg, s.c_str())) s += std::string(" (") + msg + ")";
  return s;
}

void Fail(const std::string& what, const Status& st) {
  throw Failure{what.empty() ? StatusText(st) : what + ": " + StatusText(st)};
}

void FailErrno(const std::string& what, int err) {
  throw Failure{what.empty() ? std::string(strerror(err)) : what + ": " + strerror(err)};
}

void FailMsg(const std::string& message) { throw Failure{message}; }

// ---- Arguments -----------------------------------------------------------------------------

Args ParseArgs(int argc, char** argv, const std::vector<OptSpec>& spec) {
  Args a;
  auto by_long = [&](const std::string& n) -> const OptSpec* {
    for (const OptSpec& o : spec)
      if (n == o.name) return &o;
    return nullptr;
  };
  auto by_short = [&](char c) -> const OptSpec* {
    for (const OptSpec& o : spec)
      if (o.short_name == c) return &o;
    return nullptr;
  };
  bool only_pos = false;
  for (int i = 0; i < argc; ++i) {
    std::string w = argv[i];
    if (only_pos || w.size() < 2 || w[0] != '-') {
      a.pos.push_back(w);
      continue;
    }
    if (w == "--") {
      only_pos = true;
      continue;
    }
    if (w == "--help" || w == "-h") {
      a.help = true;
      continue;
    }
    if (w.compare(0, 2, "--") == 0) {
      std::string name = w.substr(2), value;
      bool has_value = false;
      std::size_t eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name.resize(eq);
        has_value = true;
      }
      const OptSpec* o = by_long(name);
      if (!o) throw UsageError{"unknown option '--" + name + "'"};
      if (o->takes_value) {
        if (!has_value) {
          if (i + 1 >= argc) throw UsageError{"option '--" + name + "' needs a value"};
          value = argv[++i];
        }
      } else if (has_value) {
        throw UsageError{"option '--" + name + "' takes no value"};
      }
      a.opts[o->name] = value;
      continue;
    }
    // Short options, possibly combined.
    for (std::size_t j = 1; j < w.size(); ++j) {
      const OptSpec* o = by_short(w[j]);
      if (!o) throw UsageError{std::string("unknown option '-") + w[j] + "'"};
      if (o->takes_value) {
        std::string value = w.substr(j + 1);
        if (value.empty()) {
          if (i + 1 >= argc) throw UsageError{std::string("option '-") + w[j] + "' needs a value"};
          value = argv[++i];
        }
        a.opts[o->name] = value;
        break;
      }
      a.opts[o->name] = "";
    }
  }
  return a;
}

void ExpectPositional(const Args& a, std::size_t min, std::size_t max) {
  if (a.pos.size() < min) throw UsageError{"missing operand"};
  if (a.pos.size() > max) throw UsageError{"extra operand '" + a.pos[max] + "'"};
}

std::uint64_t ParseSize(const std::string& text, const char* what) {
  auto bad = [&]() -> UsageError {
    return UsageError{std::string("invalid ") + what + " '" + text +
                      "' (expected a number with an optional K, M, G or T suffix)"};
  };
  if (text.empty()) throw bad();
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  std::string num = text.substr(0, i);
  std::string suf = text.substr(i);
  if (num.empty() || num.find('.') != num.rfind('.')) throw bad();
  for (char& c : suf) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (suf.size() >= 2 && suf.compare(suf.size() - 2, 2, "IB") == 0)
    suf.resize(suf.size() - 2);
  else if (suf.size() >= 2 && suf.back() == 'B')
    suf.pop_back();
  else if (suf == "B")
    suf.clear();
  unsigned shift = 0;
  if (suf.empty())
    shift = 0;
  else if (suf == "K")
    shift = 10;
  else if (suf == "M")
    shift = 20;
  else if (suf == "G")
    shift = 30;
  else if (suf == "T")
    shift = 40;
  else if (suf == "P")
    shift = 50;
  else
    throw bad();
  if (num.find('.') == std::string::npos) {
    if (num.size() > 19) throw bad();
    unsigned long long v = std::strtoull(num.c_str(), nullptr, 10);
    if (shift && v > (~0ull >> shift)) throw bad();
    return static_cast<std::uint64_t>(v) << shift;
  }
  long double v = std::strtold(num.c_str(), nullptr) * std::pow(2.0L, shift);
  if (!(v >= 0) || v >= 1.8e19L) throw bad();
  return static_cast<std::uint64_t>(std::llround(static_cast<double>(v)));
}

std::uint32_t ParseMode(const std::string& text) {
  if (text.empty() || text.size() > 4) throw UsageError{"invalid mode '" + text + "'"};
  std::uint32_t m = 0;
  for (char c : text) {
    if (c < '0' || c > '7') throw UsageError{"invalid mode '" + text + "' (octal expected)"};
    m = m * 8 + static_cast<std::uint32_t>(c - '0');
  }
  return m;
}

std::string HumanBytes(std::uint64_t b) {
  static const char* const kUnits[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (b < 1024) return std::to_string(b) + (b == 1 ? " byte" : " bytes");
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 6) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  snprintf(buf, sizeof buf, v < 10 ? "%.2f %s" : (v < 100 ? "%.1f %s" : "%.0f %s"), v, kUnits[u]);
  return buf;
}

std::string ShortBytes(std::uint64_t b) {
  static const char kUnits[] = "BKMGTPE";
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 6) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0)
    snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(b));
  else
    snprintf(buf, sizeof buf, v < 10 ? "%.1f%c" : "%.0f%c", v, kUnits[u]);
  return buf;
}

std::string FormatTime(std::int64_t ns) {
  std::int64_t sec = ns / 1000000000;
  std::int64_t frac = ns % 1000000000;
  if (frac < 0) {
    frac += 1000000000;
    --sec;
  }
  time_t t = static_cast<time_t>(sec);
  struct tm tm;
  if (!gmtime_r(&t, &tm)) return std::to_string(ns) + " ns";
  char buf[80];
  char date[48];
  strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm);
  snprintf(buf, sizeof buf, "%s.%09lld +0000", date, static_cast<long long>(frac));
  return buf;
}

std::string UuidString(const std::uint8_t b[16]) {
  char buf[40];
  snprintf(buf, sizeof buf, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
           b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
           b[14], b[15]);
  return buf;
}

std::string ModeString(std::uint32_t mode) {
  std::string s(10, '-');
  switch (mode & 0170000) {
    case 0040000:
      s[0] = 'd';
      break;
    case 0120000:
      s[0] = 'l';
      break;
    case 0020000:
      s[0] = 'c';
      break;
    case 0060000:
      s[0] = 'b';
      break;
    case 0010000:
      s[0] = 'p';
      break;
    case 0140000:
      s[0] = 's';
      break;
    default:
      break;
  }
  static const char kRwx[] = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i)
    if (mode & (1u << (8 - i))) s[1 + i] = kRwx[i];
  if (mode & 04000) s[3] = (mode & 0100) ? 's' : 'S';
  if (mode & 02000) s[6] = (mode & 0010) ? 's' : 'S';
  if (mode & 01000) s[9] = (mode & 0001) ? 't' : 'T';
  return s;
}

// ---- Progress ------------------------------------------------------------------------------

Progress::Progress(const char* label, bool force)
    : label_(label), enabled_(force || isatty(2)), start_ns_(MonoNanos()) {}

Progress::~Progress() { Finish(); }

void Progress::Update(const char* phase, std::uint64_t done, std::uint64_t total) noexcept {
  if (!enabled_) return;
  std::int64_t now = MonoNanos();
  if (now - start_ns_ < 500000000) return;  // quick jobs draw nothing
  int pct = total ? static_cast<int>(done * 100 / total) : 0;
  if (pct > 100) pct = 100;
  bool phase_changed = last_phase_ != (phase ? phase : "");
  if (!phase_changed && pct == last_pct_ && now - last_ns_ < 1000000000) return;
  if (!phase_changed && now - last_ns_ < 100000000 && pct != 100) return;
  last_ns_ = now;
  last_pct_ = pct;
  try {
    last_phase_ = phase ? phase : "";
  } catch (...) {
  }
  char bar[31];
  int fill = pct * 30 / 100;
  for (int i = 0; i < 30; ++i) bar[i] = i < fill ? '#' : ' ';
  bar[30] = 0;
  char line[200];
  int n = snprintf(line, sizeof line, "\r%s: %-18.18s [%s] %3d%%\033[K", label_, phase ? phase : "",
                   bar, pct);
  if (n > 0) {
    ssize_t w = write(2, line, static_cast<std::size_t>(n) < sizeof line ? n : sizeof line - 1);
    (void)w;
  }
  drawn_ = true;
}

void Progress::Finish() noexcept {
  if (drawn_) {
    ssize_t w = write(2, "\n", 1);
    (void)w;
    drawn_ = false;
  }
}

// ---- JSON ------------------------------------------------------------------------------------

std::string Json::Escape(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        o += "\\\"";
        break;
      case '\\':
        o += "\\\\";
        break;
      case '\n':
        o += "\\n";
        break;
      case '\r':
        o += "\\r";
        break;
      case '\t':
        o += "\\t";
        break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          // Non-ASCII bytes are escaped one by one (names are bytes, not necessarily UTF-8).
          char buf[8];
          snprintf(buf, sizeof buf, "\\u%04x", c);
          o += buf;
        } else {
          o += static_cast<char>(c);
        }
    }
  }
  o += '"';
  return o;
}

void Json::Prefix(const char* key) {
  if (!first_.empty()) {
    if (!first_.back()) out_ += ',';
    first_.back() = false;
    out_ += '\n';
    out_.append(first_.size() * 2, ' ');
  }
  if (key) {
    out_ += Escape(key);
    out_ += ": ";
  }
}

Json& Json::Open(const char* key, char bracket) {
  Prefix(key);
  out_ += bracket;
  first_.push_back(true);
  return *this;
}

Json& Json::Close(char bracket) {
  bool empty = first_.back();
  first_.pop_back();
  if (!empty) {
    out_ += '\n';
    out_.append(first_.size() * 2, ' ');
  }
  out_ += bracket;
  if (first_.empty()) out_ += '\n';
  return *this;
}

Json& Json::Str(const char* key, const std::string& v) {
  Prefix(key);
  out_ += Escape(v);
  return *this;
}

Json& Json::Num(const char* key, std::uint64_t v) {
  Prefix(key);
  out_ += std::to_string(v);
  return *this;
}

Json& Json::Int(const char* key, std::int64_t v) {
  Prefix(key);
  out_ += std::to_string(v);
  return *this;
}

Json& Json::Real(const char* key, double v) {
  Prefix(key);
  if (!std::isfinite(v)) {
    out_ += "null";
  } else {
    char buf[40];
    snprintf(buf, sizeof buf, "%.4f", v);
    out_ += buf;
  }
  return *this;
}

Json& Json::Bool(const char* key, bool v) {
  Prefix(key);
  out_ += v ? "true" : "false";
  return *this;
}

Json& Json::Null(const char* key) {
  Prefix(key);
  out_ += "null";
  return *this;
}

}  // namespace permfs::tools
