// AURORA_KERNEL_CHECK: precondition checks inside CPU kernels (kernels/ does not depend on config/).
// A failed check is a bug in the caller: it throws std::logic_error with file:line, never aborts.
#pragma once

#include <sstream>
#include <stdexcept>

#define AURORA_KERNEL_CHECK(cond, msg)                                                                         \
  do {                                                                                                         \
    if (!(cond)) {                                                                                             \
      std::ostringstream aurora_kernel_msg_;                                                                   \
      aurora_kernel_msg_ << __FILE__ << ':' << __LINE__ << ": kernel check failed: " #cond " (" << msg << ')'; \
      throw std::logic_error(aurora_kernel_msg_.str());                                                        \
    }                                                                                                          \
  } while (0)
