// libFuzzer target: HTTP request framing (Boost 1.81's parser plus our checks: Transfer-Encoding,
// Host, header size and count, Content-Length against the body limit), exactly as sessions run it.
// Invariants: no exception or sanitizer report; the status is one the framing layer may answer;
// an accepted request never carries a body over the limit.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "http_framing.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const aurora::config::ServerConfig config = [] {
    aurora::config::ServerConfig c;
    c.max_header_bytes = 1024;  // small limits so the fuzzer reaches them
    c.max_header_fields = 16;
    c.max_body_bytes = 512;
    c.allowed_hosts = "localhost,127.0.0.1";
    return c;
  }();
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const auto out = aurora::server::frame_request(bytes, config);
  switch (out.status) {
    case 0:
    case 400:
    case 411:
    case 413:
    case 421:
    case 431: break;
    default: std::abort();
  }
  if (out.status == 0 && !out.incomplete && out.body_bytes > static_cast<size_t>(config.max_body_bytes)) std::abort();
  return 0;
}
