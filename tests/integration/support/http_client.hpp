// A small blocking HTTP/1.1 client over raw POSIX sockets for the integration tests: it can send
// any bytes (malformed requests), read one response (Content-Length, chunked or until close),
// follow an SSE stream event by event, and end a connection with FIN or RST.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aurora/config/protocol/sse.hpp"

namespace aurora::testing {

using std::chrono::milliseconds;

struct HttpResult {
  int status = 0;                              // 0 = no response (timeout or the connection closed first)
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class TcpClient {
 public:
  explicit TcpClient(uint16_t port);
  ~TcpClient();
  TcpClient(const TcpClient&) = delete;
  TcpClient& operator=(const TcpClient&) = delete;

  bool send(std::string_view bytes);
  // Reads one response. Streaming bodies: see next_event().
  HttpResult read_response(milliseconds timeout = milliseconds(5000));
  // Reads the status line and headers of a response whose body is then read with next_event().
  HttpResult read_head(milliseconds timeout = milliseconds(5000));
  // The next SSE event of a chunked or raw event stream (nullopt on timeout or close).
  std::optional<protocol::SseEvent> next_event(milliseconds timeout = milliseconds(5000));
  size_t keepalive_comments() const { return sse_.comments(); }
  // True when the peer closes (EOF or reset) within the timeout; reads and drops anything before.
  bool wait_closed(milliseconds timeout);
  void close();           // FIN
  void reset();           // RST (SO_LINGER 0)
  void shutdown_write();  // half-close
  int fd() const { return fd_; }

 private:
  bool fill(milliseconds timeout);  // reads more bytes into buffer_; false on timeout/close
  bool read_line(std::string& line, milliseconds timeout);
  bool decode_body_bytes(milliseconds timeout);

  int fd_ = -1;
  std::string buffer_;
  bool closed_ = false;
  bool chunked_ = false;
  size_t chunk_left_ = 0;
  bool chunks_done_ = false;
  protocol::SseParser sse_;
};

std::string make_request(const std::string& method, const std::string& target, const std::string& body = "",
                         const std::vector<std::string>& extra_headers = {});
// One request on a fresh connection.
HttpResult http(uint16_t port, const std::string& method, const std::string& target, const std::string& body = "",
                const std::vector<std::string>& extra_headers = {});
// The sum of a Prometheus metric's samples whose line starts with `prefix` (name plus labels so far).
double metric(uint16_t port, const std::string& prefix);
// Runs a shell command and returns its stdout.
std::string run_command(const std::string& command, int* exit_code = nullptr);

}  // namespace aurora::testing
