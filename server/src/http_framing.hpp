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

// Which hosts the server answers for: the `Host` header, or the authority of an absolute-form
// target (RFC 9112 3.2.2), checked against it; outside it a request gets 421. This is the defence
// against DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 can reach a
// loopback server, but its requests still say `Host: evil.example`.
struct HostPolicy {
  bool any = false;                // no check
  std::vector<std::string> names;  // lower case, no port, IPv6 in brackets; ".example.com" = its subdomains
};

// The policy for `allowed_hosts` (config) on a server bound to `bind_address`:
//   ""   a loopback bind answers only localhost, 127.0.0.1, [::1] and the bind address (any port);
//        any other bind answers any host (set --allowed-hosts to restrict it);
//   "*"  any host;
//   list those names (comma-separated, ports ignored) plus the bind address itself.
// `bind_name` is the configured --host text (a name such as "myhost.local" is accepted as well).
HostPolicy make_host_policy(const std::string& allowed_hosts, const std::string& bind_name,
                            const std::string& bind_address, bool loopback_bind);
// The same from the configuration alone (the --host text decides loopback): for frame_request and
// the fuzz target, and the server until start() has resolved its address.
HostPolicy host_policy_for(const config::ServerConfig& config);
// `host` is a Host header value or an authority ("name:port", "[v6]:port"); case-insensitive.
bool host_allowed(const HostPolicy& policy, std::string_view host);

// The origin-form ("/path?query") of an absolute-form target ("http://host:port/path?query"), and
// its authority; nullopt for any other target.
struct AbsoluteTarget {
  std::string authority;
  std::string origin_form;
};
std::optional<AbsoluteTarget> split_absolute_target(std::string_view target);

// Checks a parsed request header: Transfer-Encoding (411), Host (400), field count (431), the host
// (Host, or an absolute-form target's authority) against `hosts` (421), Content-Length over the
// body limit (413). nullopt = acceptable.
std::optional<protocol::ApiError> check_request_header(const http::request_header<>& header,
                                                       const config::ServerConfig& config, const HostPolicy& hosts);

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
