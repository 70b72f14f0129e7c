#include "fd_limit.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

namespace aurora::server {

namespace {

int64_t count_open_fds() {
  std::error_code ec;
  int64_t n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  // The iterator holds one descriptor of its own while it lists them.
  return ec ? 0 : std::max<int64_t>(0, n - 1);
}

int64_t as_count(rlim_t v) {
  return v == RLIM_INFINITY ? INT64_MAX : static_cast<int64_t>(std::min<rlim_t>(v, INT64_MAX));
}

}  // namespace

FdLimit raise_open_file_limit(int64_t needed) {
  FdLimit out;
  out.open_now = count_open_fds();
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    out.soft = out.hard = out.soft_was = INT64_MAX;  // unknown: assume no limit, as before
    return out;
  }
  out.soft_was = as_count(rl.rlim_cur);
  out.hard = as_count(rl.rlim_max);
  if (out.soft_was < out.open_now + needed && rl.rlim_cur != rl.rlim_max) {
    // Raise to the hard limit (as Go and vLLM do), so that the engine's later files fit too; an
    // infinite hard limit is not a valid soft one for NOFILE, so that case asks for `needed`.
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max == RLIM_INFINITY ? static_cast<rlim_t>(out.open_now + needed) : rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  out.soft = as_count(rl.rlim_cur);
  return out;
}

Result<ConnectionBudget> fit_connections(const FdLimit& limit, int32_t max_connections, int32_t reserved_connections) {
  ConnectionBudget budget;
  budget.max_connections = max_connections;
  const int64_t overhead = limit.open_now + reserved_connections + kSpareFds;
  if (limit.soft >= overhead + max_connections) return budget;
  const int64_t fits = limit.soft - overhead;
  const std::string numbers = std::to_string(limit.open_now) + " open at start-up, " +
                              std::to_string(reserved_connections) + " reserved for probes (/health, /metrics), " +
                              std::to_string(kSpareFds) + " spare";
  const std::string raise = "raise it (ulimit -n " + std::to_string(overhead + max_connections) + ", or " +
                            "LimitNOFILE= under systemd, --ulimit nofile= under docker)";
  if (fits < 1) {
    return Error::invalid("max_connections", "the open-file limit (RLIMIT_NOFILE soft " + std::to_string(limit.soft) +
                                                 ", hard " + std::to_string(limit.hard) +
                                                 ") leaves no descriptor for a connection (" + numbers + "): " + raise);
  }
  budget.max_connections = static_cast<int32_t>(fits);
  budget.warning = "max_connections lowered from " + std::to_string(max_connections) + " to " + std::to_string(fits) +
                   ": the open-file limit is " + std::to_string(limit.soft) + " (hard " + std::to_string(limit.hard) +
                   "; " + numbers + "); " + raise + " to serve " + std::to_string(max_connections);
  return budget;
}

}  // namespace aurora::server
