#include "comm/tcp_rendezvous.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace aurora::runtime {
namespace {

using Clock = std::chrono::steady_clock;

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string sys_error(const std::string& what) { return what + ": " + std::strerror(errno); }

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Reads or writes exactly `bytes`, waiting at most until the deadline.
Result<void> transfer(int fd, void* data, size_t bytes, bool write, Clock::time_point deadline) {
  auto* p = static_cast<char*>(data);
  size_t done = 0;
  while (done < bytes) {
    pollfd pfd{fd, static_cast<short>(write ? POLLOUT : POLLIN), 0};
    const int ready = ::poll(&pfd, 1, remaining_ms(deadline));
    if (ready == 0) return Error::make(ErrorCode::kDeadlineExceeded, "rendezvous: peer timed out");
    if (ready < 0) {
      if (errno == EINTR) continue;
      return Error::make(ErrorCode::kUnavailable, sys_error("rendezvous: poll"));
    }
    const ssize_t n = write ? ::send(fd, p + done, bytes - done, MSG_NOSIGNAL) : ::recv(fd, p + done, bytes - done, 0);
    if (n == 0) return Error::make(ErrorCode::kUnavailable, "rendezvous: peer closed the connection");
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Error::make(ErrorCode::kUnavailable, sys_error("rendezvous: socket"));
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

Result<sockaddr_in> resolve(const RendezvousOptions& o) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(o.master_addr.c_str(), nullptr, &hints, &res);
  if (rc != 0 || !res) {
    return Error::invalid("AURORA_MASTER_ADDR", "cannot resolve \"" + o.master_addr + "\": " + gai_strerror(rc));
  }
  sockaddr_in addr{};
  std::memcpy(&addr, res->ai_addr, sizeof(addr));
  ::freeaddrinfo(res);
  addr.sin_port = htons(static_cast<uint16_t>(o.master_port));
  return addr;
}

struct Header {
  int32_t rank = 0;
  int32_t local_count = 0;
};

Result<RendezvousResult> serve(const RendezvousOptions& o, const std::vector<std::byte>& blob, int32_t local_count,
                               const sockaddr_in& addr, Clock::time_point deadline) {
  Fd listener(::socket(AF_INET, SOCK_STREAM, 0));
  if (listener.get() < 0) return Error::make(ErrorCode::kUnavailable, sys_error("rendezvous: socket"));
  const int one = 1;
  ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in bind_addr = addr;
  bind_addr.sin_addr.s_addr = htonl(INADDR_ANY);
  if (::bind(listener.get(), reinterpret_cast<const sockaddr*>(&bind_addr), sizeof(bind_addr)) != 0) {
    return Error::make(ErrorCode::kUnavailable, sys_error("rendezvous: bind to port " + std::to_string(o.master_port) +
                                                          " (AURORA_MASTER_PORT)"));
  }
  if (::listen(listener.get(), o.world_size) != 0)
    return Error::make(ErrorCode::kUnavailable, sys_error("rendezvous: listen"));
  RendezvousResult out;
  out.blob = blob;
  out.local_counts.assign(static_cast<size_t>(o.world_size), -1);
  out.local_counts[0] = local_count;
  std::vector<Fd> peers;
  for (int32_t joined = 1; joined < o.world_size; ++joined) {
    pollfd pfd{listener.get(), POLLIN, 0};
    const int ready = ::poll(&pfd, 1, remaining_ms(deadline));
    if (ready <= 0) {
      return Error::make(ErrorCode::kDeadlineExceeded, "rendezvous: only " + std::to_string(joined) + " of " +
                                                           std::to_string(o.world_size) + " ranks joined in time");
    }
    Fd peer(::accept(listener.get(), nullptr, nullptr));
    if (peer.get() < 0) return Error::make(ErrorCode::kUnavailable, sys_error("rendezvous: accept"));
    Header h;
    if (auto r = transfer(peer.get(), &h, sizeof(h), false, deadline); !r) return r.error();
    if (h.rank <= 0 || h.rank >= o.world_size || out.local_counts[static_cast<size_t>(h.rank)] != -1) {
      return Error::invalid("AURORA_RANK", "a peer announced rank " + std::to_string(h.rank) + " (world size " +
                                               std::to_string(o.world_size) + ", each rank once)");
    }
    out.local_counts[static_cast<size_t>(h.rank)] = h.local_count;
    peers.push_back(std::move(peer));
  }
  // Everyone joined: answer each peer with the blob and the table of local counts.
  const int32_t blob_bytes = static_cast<int32_t>(blob.size());
  for (Fd& peer : peers) {
    std::vector<std::byte> msg(sizeof(int32_t) + blob.size() + out.local_counts.size() * sizeof(int32_t));
    std::memcpy(msg.data(), &blob_bytes, sizeof(int32_t));
    std::memcpy(msg.data() + sizeof(int32_t), blob.data(), blob.size());
    std::memcpy(msg.data() + sizeof(int32_t) + blob.size(), out.local_counts.data(),
                out.local_counts.size() * sizeof(int32_t));
    if (auto r = transfer(peer.get(), msg.data(), msg.size(), true, deadline); !r) return r.error();
  }
  return out;
}

Result<RendezvousResult> join(const RendezvousOptions& o, int32_t local_count, const sockaddr_in& addr,
                              Clock::time_point deadline) {
  Fd fd;
  while (true) {
    fd = Fd(::socket(AF_INET, SOCK_STREAM, 0));
    if (fd.get() < 0) return Error::make(ErrorCode::kUnavailable, sys_error("rendezvous: socket"));
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) break;
    if (remaining_ms(deadline) == 0) {
      return Error::make(ErrorCode::kDeadlineExceeded, sys_error("rendezvous: cannot reach rank 0 at " + o.master_addr +
                                                                 ":" + std::to_string(o.master_port)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // rank 0 may not listen yet
  }
  const int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  Header h{o.rank, local_count};
  if (auto r = transfer(fd.get(), &h, sizeof(h), true, deadline); !r) return r.error();
  int32_t blob_bytes = 0;
  if (auto r = transfer(fd.get(), &blob_bytes, sizeof(blob_bytes), false, deadline); !r) return r.error();
  if (blob_bytes < 0 || blob_bytes > (1 << 20)) {
    return Error::make(ErrorCode::kInternal, "rendezvous: bad blob size " + std::to_string(blob_bytes));
  }
  RendezvousResult out;
  out.blob.resize(static_cast<size_t>(blob_bytes));
  if (auto r = transfer(fd.get(), out.blob.data(), out.blob.size(), false, deadline); !r) return r.error();
  out.local_counts.resize(static_cast<size_t>(o.world_size));
  if (auto r = transfer(fd.get(), out.local_counts.data(), out.local_counts.size() * sizeof(int32_t), false, deadline);
      !r) {
    return r.error();
  }
  return out;
}

Result<int64_t> env_int(const char* name, bool required, int64_t fallback, int64_t lo, int64_t hi) {
  const char* v = std::getenv(name);
  if (!v || !*v) {
    if (required) return Error::invalid(name, "must be set");
    return fallback;
  }
  char* end = nullptr;
  errno = 0;
  const long long n = std::strtoll(v, &end, 10);
  if (errno != 0 || *end != '\0' || n < lo || n > hi) {
    return Error::invalid(
        name, "must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got \"" + v + "\"");
  }
  return static_cast<int64_t>(n);
}

}  // namespace

Result<RendezvousOptions> rendezvous_options_from_env() {
  RendezvousOptions o;
  auto world = env_int("AURORA_WORLD_SIZE", true, 1, 1, 4096);
  if (!world) return world.error();
  auto rank = env_int("AURORA_RANK", true, 0, 0, *world - 1);
  if (!rank) return rank.error();
  auto port = env_int("AURORA_MASTER_PORT", false, o.master_port, 1, 65535);
  if (!port) return port.error();
  auto timeout = env_int("AURORA_RENDEZVOUS_TIMEOUT_MS", false, o.timeout_ms, 1, 3600000);
  if (!timeout) return timeout.error();
  o.world_size = static_cast<int32_t>(*world);
  o.rank = static_cast<int32_t>(*rank);
  o.master_port = static_cast<int32_t>(*port);
  o.timeout_ms = static_cast<int32_t>(*timeout);
  if (const char* addr = std::getenv("AURORA_MASTER_ADDR"); addr && *addr) o.master_addr = addr;
  return o;
}

Result<RendezvousResult> rendezvous(const RendezvousOptions& o, const std::vector<std::byte>& blob,
                                    int32_t local_count) {
  if (o.world_size < 1 || o.rank < 0 || o.rank >= o.world_size) {
    return Error::invalid("AURORA_RANK",
                          std::to_string(o.rank) + " is outside [0, " + std::to_string(o.world_size) + ")");
  }
  if (o.world_size == 1) return RendezvousResult{blob, {local_count}};
  auto addr = resolve(o);
  if (!addr) return addr.error();
  const auto deadline = Clock::now() + std::chrono::milliseconds(o.timeout_ms);
  return o.rank == 0 ? serve(o, blob, local_count, *addr, deadline) : join(o, local_count, *addr, deadline);
}

}  // namespace aurora::runtime
