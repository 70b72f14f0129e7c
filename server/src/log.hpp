// Private: the server's log lines on stderr. Control characters in messages are escaped, so a
// client-supplied value can never forge a line; secrets (Authorization) are never passed here.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace aurora::server {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

// The minimum level written (from AURORA_LOG_LEVEL=debug|info|warn|error; default info).
LogLevel log_level();
void log_line(LogLevel level, std::string_view message);
inline void log_info(std::string_view message) { log_line(LogLevel::kInfo, message); }
inline void log_warn(std::string_view message) { log_line(LogLevel::kWarn, message); }
inline void log_error(std::string_view message) { log_line(LogLevel::kError, message); }

// Rate-limits one recurring line (accept failing with EMFILE, say): at most one line per interval,
// which reports how many occurrences it stood for. Not thread-safe: one owner (the accept loop).
class LogThrottle {
 public:
  explicit LogThrottle(std::chrono::milliseconds interval) : interval_(interval) {}
  // nullopt: stay quiet; otherwise log now, and the value is how many occurrences were turned down
  // since the last line.
  std::optional<uint64_t> allow(std::chrono::steady_clock::time_point now);

 private:
  std::chrono::milliseconds interval_;
  std::optional<std::chrono::steady_clock::time_point> last_;
  uint64_t suppressed_ = 0;
};

}  // namespace aurora::server
