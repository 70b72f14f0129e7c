// Fitting max_connections to the open-file limit, and the accept loop's log throttle.
#include "fd_limit.hpp"

#include <sys/resource.h>

#include <catch2/catch.hpp>

#include "log.hpp"

using namespace aurora::server;

TEST_CASE("the connection cap fits the open-file limit", "[fds]") {
  FdLimit limit;
  limit.open_now = 10;
  limit.soft = limit.hard = 1'048'576;
  auto roomy = fit_connections(limit, 1024, 16);
  REQUIRE(roomy);
  CHECK(roomy->max_connections == 1024);
  CHECK(roomy->warning.empty());
  limit.soft = limit.hard = 10 + 1024 + 16 + kSpareFds;  // exactly enough
  CHECK(fit_connections(limit, 1024, 16)->warning.empty());
  // `ulimit -n 1024`, the usual default: the cap shrinks to what fits, with a warning naming both.
  limit.soft = limit.hard = 1024;
  auto lowered = fit_connections(limit, 1024, 16);
  REQUIRE(lowered);
  CHECK(lowered->max_connections == 1024 - 10 - 16 - kSpareFds);
  CHECK(lowered->warning.find("lowered from 1024 to 934") != std::string::npos);
  CHECK(lowered->warning.find("ulimit -n 1114") != std::string::npos);
  // Not even one connection: refuse to start.
  limit.soft = limit.hard = 64;
  auto refused = fit_connections(limit, 1024, 16);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message.find("leaves no descriptor for a connection") != std::string::npos);
  CHECK(refused.error().message.find("soft 64") != std::string::npos);
}

TEST_CASE("a short soft limit is raised to the hard limit", "[fds]") {
  rlimit saved{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
  if (saved.rlim_max == RLIM_INFINITY || saved.rlim_max < 512) {
    WARN("hard RLIMIT_NOFILE is " << saved.rlim_max << ": nothing to raise here");
    return;
  }
  rlimit low = saved;
  low.rlim_cur = 256;
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
  const FdLimit enough = raise_open_file_limit(100);  // fits: left alone
  CHECK(enough.soft == 256);
  CHECK(enough.open_now >= 3);  // stdin, stdout, stderr at least
  const FdLimit raised = raise_open_file_limit(1000);
  CHECK(raised.soft_was == 256);
  CHECK(raised.soft == static_cast<int64_t>(saved.rlim_max));
  rlimit now{};
  ::getrlimit(RLIMIT_NOFILE, &now);
  CHECK(now.rlim_cur == saved.rlim_max);
  ::setrlimit(RLIMIT_NOFILE, &saved);
}

TEST_CASE("a recurring log line is throttled and counts what it stood for", "[log]") {
  using std::chrono::milliseconds;
  LogThrottle throttle(milliseconds(5000));
  const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  CHECK(throttle.allow(t0) == std::optional<uint64_t>(0));
  for (int i = 1; i <= 80; ++i) CHECK_FALSE(throttle.allow(t0 + milliseconds(50 * i)));  // 4 s of EMFILE
  CHECK(throttle.allow(t0 + milliseconds(5000)) == std::optional<uint64_t>(80));
  CHECK_FALSE(throttle.allow(t0 + milliseconds(5001)));
  CHECK(throttle.allow(t0 + milliseconds(60'000)) == std::optional<uint64_t>(1));
}
