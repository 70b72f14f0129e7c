#include "http_framing.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>

#include <boost/asio/ip/address.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>

namespace aurora::server {

using protocol::ApiError;

namespace {

ApiError framing_error(int status, std::string message, std::string code) {
  ApiError e;
  e.status = status;
  e.message = std::move(message);
  e.code = std::move(code);
  return e;
}

std::string_view host_without_port(std::string_view host) {
  if (!host.empty() && host.front() == '[') {  // [::1]:8000
    const size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  const size_t colon = host.rfind(':');
  return colon == std::string_view::npos ? host : host.substr(0, colon);
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// "LocalHost.:8000" -> "localhost": no port, lower case, no trailing dot (an FQDN's root).
std::string normalise_host(std::string_view host) {
  std::string out(host_without_port(host));
  for (auto& c : out) c = lower(c);
  if (out.size() > 1 && out.back() == '.') out.pop_back();
  return out;
}

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (lower(s[i]) != prefix[i]) return false;
  }
  return true;
}

// What an error message may quote of a client's Host: short and printable.
std::string shown(std::string_view text) {
  std::string out(text.substr(0, 128));
  for (auto& c : out) c = (c < 0x20 || c == 0x7f) ? '?' : c;
  return out;
}

bool is_loopback_name(const std::string& host) {
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(host, ec);
  if (!ec) return address.is_loopback();
  return normalise_host(host) == "localhost";
}

}  // namespace

HostPolicy make_host_policy(const std::string& allowed_hosts, const std::string& bind_name,
                            const std::string& bind_address, bool loopback_bind) {
  HostPolicy policy;
  const auto listed = parse_allowed_hosts(allowed_hosts);
  for (const auto& h : listed) policy.any = policy.any || h == "*";
  if (policy.any) return policy;
  if (listed.empty()) {
    if (!loopback_bind) {
      policy.any = true;  // reachable from other machines anyway: the API key is the gate there
      return policy;
    }
    policy.names = {"localhost", "127.0.0.1", "[::1]"};
  } else {
    for (const auto& h : listed) policy.names.push_back(normalise_host(h));
  }
  // The address (and name) the server is bound to always names it: no rebinding page can send
  // an IP literal as its Host. An unspecified bind (0.0.0.0, ::) names nothing.
  for (const auto& own : {bind_name, bind_address}) {
    boost::system::error_code ec;
    const auto address = boost::asio::ip::make_address(own, ec);
    if (!ec && address.is_unspecified()) continue;
    std::string name;
    if (!ec && address.is_v6()) {
      name.push_back('[');
      name.append(address.to_string());
      name.push_back(']');
    } else {
      name = normalise_host(own);
    }
    if (name.empty()) continue;
    if (std::find(policy.names.begin(), policy.names.end(), name) == policy.names.end()) policy.names.push_back(name);
  }
  return policy;
}

HostPolicy host_policy_for(const config::ServerConfig& config) {
  return make_host_policy(config.allowed_hosts, config.host, config.host, is_loopback_name(config.host));
}

bool host_allowed(const HostPolicy& policy, std::string_view host) {
  if (policy.any) return true;
  const std::string name = normalise_host(host);
  if (name.empty()) return false;
  for (const auto& allowed : policy.names) {
    if (name == allowed) return true;
    // ".example.com" allows a.example.com (and example.com itself, as Django does).
    if (allowed.size() > 1 && allowed.front() == '.' &&
        (name == std::string_view(allowed).substr(1) ||
         (name.size() > allowed.size() && name.compare(name.size() - allowed.size(), allowed.size(), allowed) == 0))) {
      return true;
    }
  }
  return false;
}

std::optional<AbsoluteTarget> split_absolute_target(std::string_view target) {
  size_t scheme = 0;
  if (starts_with_nocase(target, "http://")) {
    scheme = 7;
  } else if (starts_with_nocase(target, "https://")) {
    scheme = 8;
  } else {
    return std::nullopt;
  }
  const std::string_view rest = target.substr(scheme);
  const size_t end = rest.find_first_of("/?#");
  AbsoluteTarget out;
  out.authority = std::string(rest.substr(0, end));
  std::string_view tail = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  const size_t fragment = tail.find('#');
  if (fragment != std::string_view::npos) tail = tail.substr(0, fragment);
  // (Appended rather than "/" + string: g++ 12 warns falsely about the latter, -Wrestrict.)
  if (tail.empty() || tail.front() != '/') out.origin_form.push_back('/');
  out.origin_form.append(tail);
  return out;
}

std::optional<ApiError> check_request_header(const http::request_header<>& header, const config::ServerConfig& config,
                                             const HostPolicy& hosts) {
  if (header.find(http::field::transfer_encoding) != header.end()) {
    return framing_error(411, "Transfer-Encoding is not accepted on requests: send the body with Content-Length",
                         "length_required");
  }
  size_t fields = 0;
  size_t host_fields = 0;
  for (const auto& field : header) {
    ++fields;
    if (field.name() == http::field::host) ++host_fields;
  }
  if (fields > static_cast<size_t>(config.max_header_fields)) {
    return framing_error(431, "too many header fields (at most " + std::to_string(config.max_header_fields) + ")",
                         "header_fields_too_large");
  }
  if (host_fields != 1 || header[http::field::host].empty()) {
    return framing_error(400, "exactly one non-empty Host header is required", "bad_host");
  }
  // RFC 9112 3.2.2: with an absolute-form target, its authority names the host (Host is ignored).
  std::string_view host = header[http::field::host];
  std::string authority;
  if (auto absolute = split_absolute_target(header.target())) {
    authority = std::move(absolute->authority);
    if (authority.empty() || authority.find('@') != std::string::npos) {
      return framing_error(400, "absolute-form target without a valid authority: " + shown(header.target()),
                           "bad_request");
    }
    host = authority;
  }
  if (!host_allowed(hosts, host)) {
    return framing_error(421,
                         "Host \"" + shown(host) +
                             "\" is not served here (a DNS-rebinding guard): use localhost or this server's address, "
                             "or start the server with --allowed-hosts naming it",
                         "misdirected_request");
  }
  const auto length = header.find(http::field::content_length);
  if (length != header.end()) {
    // Beast has already refused malformed and conflicting values; compare without overflow.
    const std::string_view v = length->value();
    const std::string limit = std::to_string(config.max_body_bytes);
    if (v.size() > limit.size() || (v.size() == limit.size() && v > limit)) {
      return ApiError::too_large("the request body is larger than " + limit + " bytes");
    }
  }
  return std::nullopt;
}

ApiError error_for_parse_failure(const boost::system::error_code& ec) {
  if (ec == http::error::header_limit) {
    return framing_error(431, "the request header is too large", "header_too_large");
  }
  if (ec == http::error::body_limit) return ApiError::too_large("the request body is too large");
  if (ec == http::error::bad_transfer_encoding) {
    // Content-Length followed by Transfer-Encoding: the parser refuses it before our header check.
    return framing_error(411, "Transfer-Encoding is not accepted on requests: send the body with Content-Length",
                         "length_required");
  }
  return framing_error(400, "malformed HTTP request: " + ec.message(), "bad_request");
}

FramingOutcome frame_request(std::string_view bytes, const config::ServerConfig& config) {
  FramingOutcome out;
  http::request_parser<http::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(config.max_header_bytes));
  parser.body_limit(static_cast<std::uint64_t>(config.max_body_bytes));
  const HostPolicy hosts = host_policy_for(config);
  size_t used = 0;
  // Feeds bytes until `done()`; false (with `out` filled) when they run out or do not parse.
  auto feed = [&](auto done) {
    boost::system::error_code ec;
    while (!done()) {
      const size_t n = parser.put(boost::asio::buffer(bytes.data() + used, bytes.size() - used), ec);
      used += n;
      if (ec == http::error::need_more || (!ec && n == 0)) {
        out.incomplete = true;
        return false;
      }
      if (ec) {
        out.status = error_for_parse_failure(ec).status;
        return false;
      }
    }
    return true;
  };
  // The header alone first, as the session does with async_read_header.
  parser.eager(false);
  if (!feed([&] { return parser.is_header_done(); })) return out;
  if (auto rejected = check_request_header(parser.get().base(), config, hosts)) {
    out.status = rejected->status;
    return out;
  }
  out.method = std::string(parser.get().method_string());
  out.target = std::string(parser.get().target());
  parser.eager(true);
  if (!feed([&] { return parser.is_done(); })) return out;
  out.body_bytes = parser.get().body().size();
  return out;
}

bool is_safe_request_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string generate_request_id() {
  // Unique, not secret: a per-thread generator seeded once, plus a process-wide counter.
  thread_local std::mt19937_64 rng{std::random_device{}() ^
                                   static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count())};
  static std::atomic<uint64_t> counter{0};
  const uint64_t a = rng();
  const uint64_t b = counter.fetch_add(1, std::memory_order_relaxed) ^ rng();
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(32, '0');
  for (int i = 0; i < 16; ++i) {
    out[static_cast<size_t>(i)] = kHex[(a >> (i * 4)) & 0xf];
    out[static_cast<size_t>(16 + i)] = kHex[(b >> (i * 4)) & 0xf];
  }
  return out;
}

bool constant_time_equals(std::string_view a, std::string_view b) {
  // Walk the longer length fully so the time does not reveal where the first difference is.
  const size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (size_t i = 0; i < n; ++i) {
    const auto x = static_cast<unsigned char>(i < a.size() ? a[i] : 0);
    const auto y = static_cast<unsigned char>(i < b.size() ? b[i] : 0);
    diff |= static_cast<unsigned>(x ^ y);
  }
  // Keep the compiler from short-circuiting the loop.
  volatile unsigned sink = diff;
  return sink == 0;
}

bool bearer_matches(std::string_view authorization, std::string_view key) {
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.size() < kScheme.size()) return false;
  // The scheme name is case-insensitive (RFC 9110); the key is not.
  bool scheme_ok = true;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    const char c = authorization[i];
    const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    const char want = (kScheme[i] >= 'A' && kScheme[i] <= 'Z') ? static_cast<char>(kScheme[i] - 'A' + 'a') : kScheme[i];
    scheme_ok = scheme_ok && lower == want;
  }
  const bool key_ok = constant_time_equals(authorization.substr(kScheme.size()), key);
  return scheme_ok && key_ok;
}

std::optional<std::string> percent_decode(std::string_view text) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const int hi = hex(text[i + 1]);
    const int lo = hex(text[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::vector<std::string> parse_allowed_hosts(const std::string& comma_separated) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= comma_separated.size()) {
    size_t end = comma_separated.find(',', start);
    if (end == std::string::npos) end = comma_separated.size();
    std::string item = comma_separated.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.erase(0, 1);
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) out.push_back(item);
    start = end + 1;
  }
  return out;
}

}  // namespace aurora::server
