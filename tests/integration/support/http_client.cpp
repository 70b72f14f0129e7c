#include "http_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace aurora::testing {

TcpClient::TcpClient(uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd_);
    throw std::runtime_error("connect to port " + std::to_string(port) + " failed");
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

TcpClient::~TcpClient() {
  if (fd_ >= 0) ::close(fd_);
}

bool TcpClient::send(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool TcpClient::fill(milliseconds timeout) {
  if (closed_) return false;
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  char buf[16384];
  const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
  if (n <= 0) {
    closed_ = true;
    return false;
  }
  buffer_.append(buf, static_cast<size_t>(n));
  return true;
}

bool TcpClient::read_line(std::string& line, milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const size_t end = buffer_.find("\r\n");
    if (end != std::string::npos) {
      line = buffer_.substr(0, end);
      buffer_.erase(0, end + 2);
      return true;
    }
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !fill(left)) return false;
  }
}

HttpResult TcpClient::read_head(milliseconds timeout) {
  HttpResult r;
  std::string line;
  if (!read_line(line, timeout)) return r;
  // Skip interim 1xx responses (100 Continue).
  while (line.rfind("HTTP/1.1 1", 0) == 0) {
    while (read_line(line, timeout) && !line.empty()) {
    }
    if (!read_line(line, timeout)) return r;
  }
  if (line.size() < 12) return r;
  r.status = std::atoi(line.c_str() + 9);
  while (read_line(line, timeout) && !line.empty()) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    r.headers[name] = value;
  }
  chunked_ = r.header("transfer-encoding") == "chunked";
  chunk_left_ = 0;
  chunks_done_ = false;
  return r;
}

HttpResult TcpClient::read_response(milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  HttpResult r = read_head(timeout);
  if (r.status == 0) return r;
  auto left = [&] { return std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now()); };
  if (chunked_) {
    for (;;) {
      std::string size_line;
      if (!read_line(size_line, left())) break;
      const size_t size = std::strtoul(size_line.c_str(), nullptr, 16);
      if (size == 0) {
        read_line(size_line, left());
        break;
      }
      while (buffer_.size() < size + 2 && fill(left())) {
      }
      r.body += buffer_.substr(0, size);
      buffer_.erase(0, std::min(buffer_.size(), size + 2));
    }
    return r;
  }
  const std::string length = r.header("content-length");
  if (!length.empty()) {
    const size_t n = std::strtoul(length.c_str(), nullptr, 10);
    while (buffer_.size() < n && fill(left())) {
    }
    r.body = buffer_.substr(0, n);
    buffer_.erase(0, std::min(n, buffer_.size()));
    return r;
  }
  while (fill(left())) {
  }
  r.body = buffer_;
  buffer_.clear();
  return r;
}

bool TcpClient::decode_body_bytes(milliseconds timeout) {
  if (!chunked_) {
    if (buffer_.empty() && !fill(timeout)) return false;
    sse_.feed(buffer_);
    buffer_.clear();
    return true;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left = [&] { return std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now()); };
  if (chunks_done_) return false;
  if (chunk_left_ == 0) {
    std::string size_line;
    if (!read_line(size_line, left())) return false;
    chunk_left_ = std::strtoul(size_line.c_str(), nullptr, 16);
    if (chunk_left_ == 0) {
      chunks_done_ = true;
      read_line(size_line, left());
      return false;
    }
    chunk_left_ += 2;  // the CRLF after the data
  }
  while (buffer_.empty()) {
    if (left().count() <= 0 || !fill(left())) return false;
  }
  const size_t take = std::min(chunk_left_, buffer_.size());
  std::string data = buffer_.substr(0, take);
  buffer_.erase(0, take);
  chunk_left_ -= take;
  if (chunk_left_ < 2) data.resize(data.size() - std::min(data.size(), 2 - chunk_left_));  // strip CRLF bytes
  sse_.feed(data);
  return true;
}

std::optional<protocol::SseEvent> TcpClient::next_event(milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto e = sse_.next()) return e;
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !decode_body_bytes(left)) {
      if (auto e = sse_.next()) return e;
      return std::nullopt;
    }
  }
}

bool TcpClient::wait_closed(milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!closed_) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    buffer_.clear();
    fill(left);
  }
  return true;
}

void TcpClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void TcpClient::reset() {
  linger l{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  close();
}

void TcpClient::shutdown_write() { ::shutdown(fd_, SHUT_WR); }

std::string make_request(const std::string& method, const std::string& target, const std::string& body,
                         const std::vector<std::string>& extra_headers) {
  std::string r = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (const auto& h : extra_headers) r += h + "\r\n";
  if (!body.empty() || method == "POST") {
    r += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  r += "\r\n" + body;
  return r;
}

HttpResult http(uint16_t port, const std::string& method, const std::string& target, const std::string& body,
                const std::vector<std::string>& extra_headers) {
  TcpClient c(port);
  c.send(make_request(method, target, body, extra_headers));
  return c.read_response();
}

double metric(uint16_t port, const std::string& prefix) {
  const HttpResult r = http(port, "GET", "/metrics");
  double sum = 0;
  size_t pos = 0;
  while (pos < r.body.size()) {
    size_t end = r.body.find('\n', pos);
    if (end == std::string::npos) end = r.body.size();
    const std::string line = r.body.substr(pos, end - pos);
    pos = end + 1;
    if (line.rfind(prefix, 0) != 0) continue;
    const char next = line.size() > prefix.size() ? line[prefix.size()] : ' ';
    if (next != ' ' && next != '{' && next != ',' && next != '}') continue;  // a longer metric name
    sum += std::strtod(line.c_str() + line.rfind(' ') + 1, nullptr);
  }
  return sum;
}

std::string run_command(const std::string& command, int* exit_code) {
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return {};
  std::string out;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  const int status = ::pclose(pipe);
  if (exit_code != nullptr) *exit_code = WEXITSTATUS(status);
  return out;
}

}  // namespace aurora::testing
