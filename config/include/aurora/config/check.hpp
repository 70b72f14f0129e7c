// AURORA_CHECK: invariant checks for bugs (not for bad input). Throws aurora::InternalError with file:line.
//
// Expected failures (bad config, invalid request, overload) are returned as values (see error.hpp);
// a failed AURORA_CHECK means the program itself is wrong.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace aurora {

class InternalError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

namespace detail {
[[noreturn]] inline void check_failed(const char* expr, const char* file, int line, const std::string& msg) {
  std::ostringstream out;
  out << file << ':' << line << ": check failed: " << expr;
  if (!msg.empty()) out << " (" << msg << ')';
  throw InternalError(out.str());
}
}  // namespace detail

}  // namespace aurora

#define AURORA_CHECK(cond)                                                      \
  do {                                                                          \
    if (!(cond)) ::aurora::detail::check_failed(#cond, __FILE__, __LINE__, {}); \
  } while (0)

#define AURORA_CHECK_MSG(cond, msg)                                                       \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::ostringstream aurora_check_msg_;                                               \
      aurora_check_msg_ << msg;                                                           \
      ::aurora::detail::check_failed(#cond, __FILE__, __LINE__, aurora_check_msg_.str()); \
    }                                                                                     \
  } while (0)
