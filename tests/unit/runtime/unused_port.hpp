// A TCP port nobody listens on right now, for tests that start a rendezvous. The kernel hands out an
// unused port for port 0. A port derived from the pid (what the tests did before) can be an
// ephemeral port another test's connection holds: in CI at 18:51 UTC the bind failed, and the
// "missing rank" case got kUnavailable instead of kDeadlineExceeded.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>

namespace aurora::runtime::test {

inline int32_t unused_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  const bool bound = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
  socklen_t len = sizeof(addr);
  const bool named = bound && ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  REQUIRE(named);
  return ntohs(addr.sin_port);
}

}  // namespace aurora::runtime::test
