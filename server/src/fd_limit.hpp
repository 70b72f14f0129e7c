// Private: fitting the connection cap to the process's open-file limit (RLIMIT_NOFILE) at start-up.
//
// Every connection holds one file descriptor. With the default cap of 1024 and a soft limit of
// 1024 (a common default), the accept loop would hit EMFILE before the cap and /health would stop
// being answered. So start() raises the soft limit toward the hard one when it is short, and if
// the limit still cannot hold max_connections + reserved_connections + kSpareFds (model files,
// device handles, the engine's own sockets), lowers the cap with a warning naming both numbers, as
// nginx warns for worker_connections above the limit, or refuses to start when not even one
// connection fits. Functions are thread-compatible; raise_open_file_limit changes process state.
#pragma once

#include <cstdint>
#include <string>

#include "aurora/config/error.hpp"

namespace aurora::server {

// Descriptors kept free beyond the connections (reliability anchors F8: "keep 64 fds spare").
inline constexpr int64_t kSpareFds = 64;

struct FdLimit {
  int64_t soft = 0;  // after any raise
  int64_t hard = 0;
  int64_t soft_was = 0;  // before start() raised it
  int64_t open_now = 0;  // descriptors already open at start-up
};

// Reads the limit and the open descriptors; raises the soft limit to the hard one when it cannot
// hold those plus `needed` (the descriptors the server plans to hold). A failed raise leaves the
// limit as it was.
FdLimit raise_open_file_limit(int64_t needed);

struct ConnectionBudget {
  int32_t max_connections = 0;  // the effective cap
  std::string warning;          // non-empty when the cap was lowered
};

// The cap that fits `limit`: the configured one when open_now + max + reserve + kSpareFds fits,
// else what does fit (with a warning), else an error (kInvalidArgument naming the numbers).
Result<ConnectionBudget> fit_connections(const FdLimit& limit, int32_t max_connections, int32_t reserved_connections);

}  // namespace aurora::server
