// Private: HTTP/1.1 request framing rules on top of Beast's parser, kept free of sockets so that
// the unit tests and the libFuzzer target (server/fuzz/fuzz_http_request.cpp) drive exactly what
// the sessions run.
//
// Boost 1.81's parser is lax (anchors-reliability.md §1.3): it accepts request Transfer-Encoding
// with Content-Length, unbounded chunk extensions and trailers, and a trailer value over 64 KiB
// throws. We therefore read the header first and refuse any request Transfer-Encoding (411) before
// a body byte is read, require Host, and bound header size, field count and Content-Length.
// Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/system/error_code.hpp>

#include "aurora/config/protocol/api_error.hpp"
#include "aurora/config/server_config.hpp"

namespace aurora::server {

namespace http = boost::beast::http;

// Checks a parsed request header: Transfer-Encoding (411), Host (400; 421 outside allowed_hosts),
// field count (431), Content-Length over the body limit (413). nullopt = acceptable.
std::optional<protocol::ApiError> check_request_header(const http::request_header<>& header,
                                                       const config::ServerConfig& config,
                                                       const std::vector<std::string>& allowed_hosts);

// The status for a Beast parse error: header_limit 431, body_limit 413, anything else 400.
protocol::ApiError error_for_parse_failure(const boost::system::error_code& ec);

// What the framing layer decides about a byte string holding one request (fuzz target, tests).
struct FramingOutcome {
  int status = 0;           // 0 = a complete, acceptable request; otherwise the error status
  bool incomplete = false;  // the bytes end before the request does
  std::string method;
  std::string target;
  size_t body_bytes = 0;
};
FramingOutcome frame_request(std::string_view bytes, const config::ServerConfig& config);

// `X-Request-Id`: echoed when at most 64 characters of [A-Za-z0-9._-], otherwise replaced.
bool is_safe_request_id(std::string_view id);
std::string generate_request_id();

// Constant-time comparison (time depends only on the lengths, which are not secret enough to hide).
bool constant_time_equals(std::string_view a, std::string_view b);
// `Authorization: Bearer <key>`, compared in constant time and case-sensitively.
bool bearer_matches(std::string_view authorization, std::string_view key);

// RFC 3986 percent-decoding of a path segment ("org%2Fmodel" -> "org/model"); nullopt when a '%' is
// not followed by two hex digits. '+' stays '+' (it means space only in form bodies).
std::optional<std::string> percent_decode(std::string_view text);

std::vector<std::string> parse_allowed_hosts(const std::string& comma_separated);

}  // namespace aurora::server
