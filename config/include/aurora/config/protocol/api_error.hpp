// ApiError: an error as an OpenAI-compatible client sees it: an HTTP status plus the body
// {"error":{"message","type","param","code"}}.
//
// `param` names the offending request field ("messages[2].content"), `code` is a stable string id
// where one applies ("context_length_exceeded", "model_not_found", "server_overloaded"), and both
// are null in JSON when empty. Value type; thread-compatible.
#pragma once

#include <string>

#include <boost/json/object.hpp>

#include "aurora/config/error.hpp"

namespace aurora::protocol {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;            // "" = null
  std::string code;             // "" = null
  int retry_after_seconds = 0;  // > 0: send `Retry-After` (429/503)

  static ApiError invalid_request(std::string message, std::string param = {}, std::string code = {});
  static ApiError from(const Error& error);  // kInvalidArgument -> 400 with param = error.field, ...
  static ApiError not_found(std::string message, std::string code = "not_found");
  static ApiError unauthorized();
  static ApiError too_large(std::string message);
  static ApiError overloaded(std::string message, int status, int retry_after_seconds);
  static ApiError unavailable(std::string message, std::string code, int retry_after_seconds);
  static ApiError internal(std::string message);
};

// {"message":..,"type":..,"param":..,"code":..}
boost::json::object error_object(const ApiError& error);
// {"error":{...}} as compact JSON text: the body of an error response and of an in-stream error event.
std::string error_body(const ApiError& error);

}  // namespace aurora::protocol
