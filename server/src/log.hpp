// Private: the server's log lines on stderr. Control characters in messages are escaped, so a
// client-supplied value can never forge a line; secrets (Authorization) are never passed here.
#pragma once

#include <string_view>

namespace aurora::server {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

// The minimum level written (from AURORA_LOG_LEVEL=debug|info|warn|error; default info).
LogLevel log_level();
void log_line(LogLevel level, std::string_view message);
inline void log_info(std::string_view message) { log_line(LogLevel::kInfo, message); }
inline void log_warn(std::string_view message) { log_line(LogLevel::kWarn, message); }
inline void log_error(std::string_view message) { log_line(LogLevel::kError, message); }

}  // namespace aurora::server
