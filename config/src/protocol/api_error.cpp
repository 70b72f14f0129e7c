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

ApiError ApiError::from(const Error& error) {
  ApiError e;
  e.message = error.message;
  switch (error.code) {
    case ErrorCode::kInvalidArgument:
      e.status = 400;
      e.param = error.field;
      break;
    case ErrorCode::kNotFound:
      e.status = 404;
      e.type = "not_found_error";
      e.code = "not_found";
      break;
    case ErrorCode::kUnsupported:
      e.status = 400;
      e.param = error.field;
      e.code = "unsupported";
      break;
    case ErrorCode::kResourceExhausted:
      e.status = 503;
      e.type = "service_unavailable_error";
      e.code = "server_overloaded";
      e.retry_after_seconds = 1;
      break;
    case ErrorCode::kUnavailable:
      e.status = 503;
      e.type = "service_unavailable_error";
      e.code = "service_unavailable";
      e.retry_after_seconds = 1;
      break;
    case ErrorCode::kCancelled:
      e.status = 499;
      e.type = "cancelled";
      e.code = "cancelled";
      break;
    case ErrorCode::kDeadlineExceeded:
      e.status = 504;
      e.type = "server_error";
      e.code = "timeout";
      break;
    case ErrorCode::kInternal:
      e.status = 500;
      e.type = "server_error";
      e.code = "internal_error";
      break;
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
