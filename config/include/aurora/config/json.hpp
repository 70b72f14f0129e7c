// Reading JSON with field paths in every error (simdjson DOM underneath), and writing JSON
// (Boost.JSON underneath).
//
// JsonDocument owns the parsed tree; JsonValue is a cheap view that remembers its path, so that
// `doc.root()["gpus"][3]["bandwidth_gbps"].positive_double()` fails with
// `gpus[3].bandwidth_gbps: must be > 0, got -5`. Errors are thrown as ErrorException and turned
// into Result values at each parser's public boundary (capture_errors).
// Not thread-safe: one document per thread.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include "aurora/config/error.hpp"

namespace simdjson::dom {
class element;
}

namespace aurora::config {

class JsonValue;

// An owned, parsed JSON document.
class JsonDocument {
 public:
  // Parses text; a syntax error becomes an Error naming `what` (for example the file name).
  static Result<JsonDocument> parse(std::string_view text, std::string what = "json");
  static Result<JsonDocument> parse_file(const std::string& path);

  JsonDocument(JsonDocument&&) noexcept;
  JsonDocument& operator=(JsonDocument&&) noexcept;
  ~JsonDocument();

  JsonValue root() const;

 private:
  struct Impl;
  explicit JsonDocument(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A view into a JsonDocument that knows its own field path. Valid while the document lives.
class JsonValue {
 public:
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };

  Kind kind() const;
  bool is_null() const { return kind() == Kind::kNull; }
  bool is_object() const { return kind() == Kind::kObject; }
  bool is_array() const { return kind() == Kind::kArray; }
  bool is_string() const { return kind() == Kind::kString; }
  bool is_number() const { return kind() == Kind::kNumber; }
  bool is_bool() const { return kind() == Kind::kBool; }

  const std::string& path() const { return path_; }

  // Object access. operator[] requires the key; find() returns nullopt when absent or null.
  JsonValue operator[](std::string_view key) const;
  std::optional<JsonValue> find(std::string_view key) const;
  std::vector<std::pair<std::string, JsonValue>> members() const;
  // Fails on the first key not in `allowed` (catches typos in configs).
  void reject_unknown_keys(std::initializer_list<std::string_view> allowed) const;

  // Array access.
  std::vector<JsonValue> items() const;
  JsonValue operator[](size_t index) const;
  size_t size() const;

  // Scalars; each fails with the path and the offending value when the type or range is wrong.
  std::string as_string() const;
  bool as_bool() const;
  double as_double() const;
  int64_t as_int() const;              // integral numbers only
  double positive_double() const;      // > 0
  double non_negative_double() const;  // >= 0
  int64_t int_in(int64_t lo, int64_t hi) const;
  double double_in(double lo, double hi) const;

  // Compact JSON text of this value (for error messages: "got ...").
  std::string raw() const;

  [[noreturn]] void fail(const std::string& what) const;

 private:
  friend class JsonDocument;
  JsonValue(std::shared_ptr<const void> keepalive, const simdjson::dom::element& element, std::string path);
  simdjson::dom::element el() const;

  std::shared_ptr<const void> keepalive_;  // the document's parser, which owns the tape
  // A simdjson::dom::element (a tape reference: two words), stored opaquely so that this header
  // does not pull in simdjson.h.
  alignas(8) unsigned char element_[16] = {};
  std::string path_;
};

// Writing. Boost.JSON values are the output representation everywhere.
std::string to_json_text(const boost::json::value& value);
std::string to_json_text_pretty(const boost::json::value& value);
// Writes text to path atomically enough for our needs (write + rename).
Result<void> write_text_file(const std::string& path, std::string_view text);
Result<std::string> read_text_file(const std::string& path);

}  // namespace aurora::config
