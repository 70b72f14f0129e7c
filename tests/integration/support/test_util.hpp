// Helpers shared by the server integration tests: JSON access, whole-stream collection, and a
// polling wait for conditions that the server reaches asynchronously.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "http_client.hpp"
#include "server_process.hpp"

namespace aurora::testing {

inline boost::json::value parse_json(const std::string& text) { return boost::json::parse(text); }

// The body of a chat request with one user message plus `extra` top-level fields (",\"k\":v").
inline std::string chat_body(const std::string& content, const std::string& extra = "") {
  return R"({"messages":[{"role":"user","content":")" + content + R"("}])" + extra + "}";
}

struct CollectedStream {
  HttpResult head;
  std::vector<std::string> data;  // every `data:` payload, [DONE] included
  size_t comments = 0;
  bool done() const { return !data.empty() && data.back() == "[DONE]"; }
};

inline CollectedStream collect_stream(uint16_t port, const std::string& path, const std::string& body,
                                      milliseconds timeout = milliseconds(10000),
                                      const std::vector<std::string>& headers = {}) {
  TcpClient c(port);
  c.send(make_request("POST", path, body, headers));
  CollectedStream s;
  s.head = c.read_head(timeout);
  if (s.head.status != 200) {
    return s;
  }
  while (auto e = c.next_event(timeout)) {
    s.data.push_back(e->data);
    if (e->data == "[DONE]") break;
  }
  s.comments = c.keepalive_comments();
  return s;
}

// Polls `condition` until it holds or the timeout passes.
inline bool eventually(const std::function<bool()>& condition, milliseconds timeout = milliseconds(3000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return condition();
}

// Engine work in flight, as /metrics reports it.
inline double engine_busy(uint16_t port) {
  return metric(port, "aurora:num_requests_running") + metric(port, "aurora:num_requests_waiting") +
         metric(port, "aurora:kv_cache_blocks_used");
}

}  // namespace aurora::testing
