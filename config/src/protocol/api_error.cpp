#include "aurora/config/protocol/api_error.hpp"

#include <boost/json/serialize.hpp>

namespace aurora::protocol {

ApiError ApiError::invalid_request(std::string message, std::string param, std::string code) {
  ApiError e;
  e.status = 400;
  e.message = std::move(message);
  e.param = std::move(param);
  e.code = std::move(code);
  return e;
}

namespace {

// How each ErrorCode reaches an OpenAI-style client: HTTP status, error type and code, whether the
// failing field is named as `param`, and Retry-After for temporary conditions.
struct ErrorMapping {
  ErrorCode code;
  int status;
  const char* type;  // nullptr: ApiError's default ("invalid_request_error")
  const char* api_code;
  bool names_param;
  int retry_after_seconds;
};

constexpr ErrorMapping kMappings[] = {
    {ErrorCode::kInvalidArgument, 400, nullptr, nullptr, true, 0},
    {ErrorCode::kNotFound, 404, "not_found_error", "not_found", false, 0},
    {ErrorCode::kUnsupported, 400, nullptr, "unsupported", true, 0},
    {ErrorCode::kResourceExhausted, 503, "service_unavailable_error", "server_overloaded", false, 1},
    {ErrorCode::kUnavailable, 503, "service_unavailable_error", "service_unavailable", false, 1},
    {ErrorCode::kCancelled, 499, "cancelled", "cancelled", false, 0},
    {ErrorCode::kDeadlineExceeded, 504, "server_error", "timeout", false, 0},
    {ErrorCode::kInternal, 500, "server_error", "internal_error", false, 0},
};

}  // namespace

ApiError ApiError::from(const Error& error) {
  ApiError e;
  e.message = error.message;
  for (const ErrorMapping& m : kMappings) {
    if (m.code != error.code) continue;
    e.status = m.status;
    if (m.type) e.type = m.type;
    if (m.api_code) e.code = m.api_code;
    if (m.names_param) e.param = error.field;
    if (m.retry_after_seconds > 0) e.retry_after_seconds = m.retry_after_seconds;
  }
  return e;
}

ApiError ApiError::not_found(std::string message, std::string code) {
  ApiError e;
  e.status = 404;
  e.message = std::move(message);
  e.type = "not_found_error";
  e.code = std::move(code);
  return e;
}

ApiError ApiError::unauthorized() {
  ApiError e;
  e.status = 401;
  e.message = "missing or invalid API key: send `Authorization: Bearer <key>`";
  e.type = "authentication_error";
  e.code = "invalid_api_key";
  return e;
}

ApiError ApiError::too_large(std::string message) {
  ApiError e;
  e.status = 413;
  e.message = std::move(message);
  e.code = "request_too_large";
  return e;
}

ApiError ApiError::overloaded(std::string message, int status, int retry_after_seconds) {
  ApiError e;
  e.status = status;
  e.message = std::move(message);
  e.type = status == 429 ? "rate_limit_error" : "service_unavailable_error";
  e.code = "server_overloaded";
  e.retry_after_seconds = retry_after_seconds;
  return e;
}

ApiError ApiError::unavailable(std::string message, std::string code, int retry_after_seconds) {
  ApiError e;
  e.status = 503;
  e.message = std::move(message);
  e.type = "service_unavailable_error";
  e.code = std::move(code);
  e.retry_after_seconds = retry_after_seconds;
  return e;
}

ApiError ApiError::internal(std::string message) {
  ApiError e;
  e.status = 500;
  e.message = std::move(message);
  e.type = "server_error";
  e.code = "internal_error";
  return e;
}

boost::json::object error_object(const ApiError& error) {
  boost::json::object o;
  o["message"] = error.message;
  o["type"] = error.type;
  o["param"] = error.param.empty() ? boost::json::value(nullptr) : boost::json::value(error.param);
  o["code"] = error.code.empty() ? boost::json::value(nullptr) : boost::json::value(error.code);
  return o;
}

std::string error_body(const ApiError& error) {
  boost::json::object o;
  o["error"] = error_object(error);
  return boost::json::serialize(o);
}

}  // namespace aurora::protocol
