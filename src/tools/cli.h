// Shared plumbing of the `permfs` command-line tool: argument parsing, size parsing, error
// reporting, a progress bar and a small JSON writer.
//
// Error model: a subcommand throws UsageError for bad arguments (main prints it with the
// command's usage and exits 2) and Failure for everything else (main prints
// "permfs: <cmd>: <message>" and exits with Failure::exit_code, 1 by default).
// Thread-safety: single-threaded tool code; Progress::Update may be called from an engine
// callback but never concurrently.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "util/status.h"

namespace permfs::tools {

struct UsageError {
  std::string message;
};

struct Failure {
  std::string message;
  int exit_code = 1;
  bool image_damaged = false;  // the image itself is unusable (fsck reports that as exit 4)
};

// "No such file or directory", or for codes whose errno text says little, the engine's message
// too: "filesystem corruption detected (bad superblock checksum)".
std::string StatusText(const Status& st);
[[noreturn]] void Fail(const std::string& what, const Status& st);
[[noreturn]] void FailErrno(const std::string& what, int err);
[[noreturn]] void FailMsg(const std::string& message);

// ---- Arguments ---------------------------------------------------------------------------------
struct OptSpec {
  const char* name;  // long name without dashes ("size"); the key in Args::opts
  char short_name;   // 0 if none
  bool takes_value;
};

struct Args {
  std::map<std::string, std::string> opts;  // long name -> value ("" for flags)
  std::vector<std::string> pos;
  bool help = false;

  bool Has(const std::string& name) const { return opts.count(name) != 0; }
  std::optional<std::string> Get(const std::string& name) const {
    auto it = opts.find(name);
    if (it == opts.end()) return std::nullopt;
    return it->second;
  }
};

// Parses argv[0..argc) (the words after the subcommand). Options may appear anywhere; "--" ends
// them; short flags combine ("-lR"); "--name=value", "--name value", "-xVALUE" and "-x VALUE".
// --help/-h set Args::help. Throws UsageError.
Args ParseArgs(int argc, char** argv, const std::vector<OptSpec>& spec);
// Throws UsageError unless min <= positional count <= max.
void ExpectPositional(const Args& a, std::size_t min, std::size_t max);

// "4096", "64K", "10G", "1.5M" (binary units, optional trailing B/iB). Throws UsageError.
std::uint64_t ParseSize(const std::string& text, const char* what);
std::uint32_t ParseMode(const std::string& text);

std::string HumanBytes(std::uint64_t bytes);  // "1.5 GiB"
std::string ShortBytes(std::uint64_t bytes);  // "1.5G" (df style)
std::string FormatTime(std::int64_t ns);      // "2024-05-01 12:34:56.123456789 +0000"
std::string UuidString(const std::uint8_t bytes[16]);
std::string ModeString(std::uint32_t mode);  // "drwxr-xr-x"

// ---- Progress bar --------------------------------------------------------------------------
// Draws "\r<label>: <phase> [#####     ]  45%" on stderr, but only when enabled (stderr is a
// terminal, or forced) and only once the work has run for more than half a second.
class Progress {
 public:
  Progress(const char* label, bool force);
  ~Progress();
  void Update(const char* phase, std::uint64_t done, std::uint64_t total) noexcept;
  void Finish() noexcept;  // ends the line if anything was drawn

 private:
  const char* label_;
  bool enabled_;
  bool drawn_ = false;
  std::int64_t start_ns_;
  std::int64_t last_ns_ = 0;
  int last_pct_ = -1;
  std::string last_phase_;
};

// ---- JSON ------------------------------------------------------------------------------------
// Streaming writer with pretty printing. Keys are written only inside objects.
class Json {
 public:
  Json& BeginObject(const char* key = nullptr) { return Open(key, '{'); }
  Json& EndObject() { return Close('}'); }
  Json& BeginArray(const char* key = nullptr) { return Open(key, '['); }
  Json& EndArray() { return Close(']'); }
  Json& Str(const char* key, const std::string& v);
  Json& Num(const char* key, std::uint64_t v);
  Json& Int(const char* key, std::int64_t v);
  Json& Real(const char* key, double v);
  Json& Bool(const char* key, bool v);
  Json& Null(const char* key);
  const std::string& str() const { return out_; }

  static std::string Escape(const std::string& s);

 private:
  void Prefix(const char* key);
  Json& Open(const char* key, char bracket);
  Json& Close(char bracket);  // a newline ends the top-level value
  std::string out_;
  std::vector<bool> first_;  // per open container: nothing written yet
};

}  // namespace permfs::tools
