#include "aurora/config/json.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <simdjson.h>
#include <boost/json/serialize.hpp>

namespace aurora::config {

static_assert(sizeof(simdjson::dom::element) <= 16, "JsonValue::element_ is too small");
static_assert(std::is_trivially_copyable_v<simdjson::dom::element>);

struct JsonDocument::Impl {
  std::shared_ptr<simdjson::dom::parser> parser = std::make_shared<simdjson::dom::parser>();
  simdjson::dom::element root;
};

JsonDocument::JsonDocument(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JsonDocument::JsonDocument(JsonDocument&&) noexcept = default;
JsonDocument& JsonDocument::operator=(JsonDocument&&) noexcept = default;
JsonDocument::~JsonDocument() = default;

Result<JsonDocument> JsonDocument::parse(std::string_view text, std::string what) {
  auto impl = std::make_unique<Impl>();
  simdjson::padded_string padded(text);
  auto result = impl->parser->parse(padded);
  if (result.error()) {
    return Error::invalid(std::move(what), std::string("invalid JSON: ") + simdjson::error_message(result.error()));
  }
  impl->root = result.value_unsafe();
  return JsonDocument(std::move(impl));
}

Result<JsonDocument> JsonDocument::parse_file(const std::string& path) {
  auto text = read_text_file(path);
  if (!text) return text.error();
  return parse(*text, path);
}

JsonValue JsonDocument::root() const { return JsonValue(impl_->parser, impl_->root, ""); }

JsonValue::JsonValue(std::shared_ptr<const void> keepalive, const simdjson::dom::element& element, std::string path)
    : keepalive_(std::move(keepalive)), path_(std::move(path)) {
  std::memcpy(element_, &element, sizeof(element));
}

simdjson::dom::element JsonValue::el() const {
  simdjson::dom::element e;
  std::memcpy(&e, element_, sizeof(e));
  return e;
}

JsonValue::Kind JsonValue::kind() const {
  switch (el().type()) {
    case simdjson::dom::element_type::ARRAY: return Kind::kArray;
    case simdjson::dom::element_type::OBJECT: return Kind::kObject;
    case simdjson::dom::element_type::INT64:
    case simdjson::dom::element_type::UINT64:
    case simdjson::dom::element_type::DOUBLE: return Kind::kNumber;
    case simdjson::dom::element_type::STRING: return Kind::kString;
    case simdjson::dom::element_type::BOOL: return Kind::kBool;
    case simdjson::dom::element_type::NULL_VALUE: return Kind::kNull;
  }
  return Kind::kNull;
}

namespace {
std::string child_path(const std::string& parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  std::string p = parent;
  p += '.';
  p += key;
  return p;
}
const char* kind_name(JsonValue::Kind k) {
  switch (k) {
    case JsonValue::Kind::kNull: return "null";
    case JsonValue::Kind::kBool: return "a boolean";
    case JsonValue::Kind::kNumber: return "a number";
    case JsonValue::Kind::kString: return "a string";
    case JsonValue::Kind::kArray: return "an array";
    case JsonValue::Kind::kObject: return "an object";
  }
  return "?";
}
std::string format_number(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}
}  // namespace

void JsonValue::fail(const std::string& what) const { throw_invalid(path_.empty() ? "(root)" : path_, what); }

std::string JsonValue::raw() const {
  std::string text = simdjson::minify(el());
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

JsonValue JsonValue::operator[](std::string_view key) const {
  if (!is_object()) fail(std::string("must be an object, got ") + raw());
  auto child = el().get_object().value_unsafe()[key];
  if (child.error()) throw_invalid(child_path(path_, key), "is required");
  return JsonValue(keepalive_, child.value_unsafe(), child_path(path_, key));
}

std::optional<JsonValue> JsonValue::find(std::string_view key) const {
  if (!is_object()) fail(std::string("must be an object, got ") + raw());
  auto child = el().get_object().value_unsafe()[key];
  if (child.error()) return std::nullopt;
  JsonValue v(keepalive_, child.value_unsafe(), child_path(path_, key));
  if (v.is_null()) return std::nullopt;
  return v;
}

std::vector<std::pair<std::string, JsonValue>> JsonValue::members() const {
  if (!is_object()) fail(std::string("must be an object, got ") + raw());
  std::vector<std::pair<std::string, JsonValue>> out;
  const simdjson::dom::object object = el().get_object().value_unsafe();
  for (auto field : object) {
    std::string key(field.key);
    out.emplace_back(key, JsonValue(keepalive_, field.value, child_path(path_, key)));
  }
  return out;
}

void JsonValue::reject_unknown_keys(std::initializer_list<std::string_view> allowed) const {
  if (!is_object()) fail(std::string("must be an object, got ") + raw());
  const simdjson::dom::object object = el().get_object().value_unsafe();
  for (auto field : object) {
    bool known = false;
    for (auto a : allowed) known = known || a == field.key;
    if (!known) throw_invalid(child_path(path_, field.key), "unknown field");
  }
}

std::vector<JsonValue> JsonValue::items() const {
  if (!is_array()) fail(std::string("must be an array, got ") + raw());
  std::vector<JsonValue> out;
  size_t i = 0;
  const simdjson::dom::array array = el().get_array().value_unsafe();
  for (auto item : array) {
    out.push_back(JsonValue(keepalive_, item, path_ + "[" + std::to_string(i++) + "]"));
  }
  return out;
}

JsonValue JsonValue::operator[](size_t index) const {
  if (!is_array()) fail(std::string("must be an array, got ") + raw());
  auto child = el().get_array().value_unsafe().at(index);
  if (child.error()) fail("index " + std::to_string(index) + " out of range (size " + std::to_string(size()) + ")");
  return JsonValue(keepalive_, child.value_unsafe(), path_ + "[" + std::to_string(index) + "]");
}

size_t JsonValue::size() const {
  if (is_array()) return el().get_array().value_unsafe().size();
  if (is_object()) return el().get_object().value_unsafe().size();
  fail(std::string("must be an array or an object, got ") + raw());
}

std::string JsonValue::as_string() const {
  if (!is_string()) fail(std::string("must be a string, got ") + kind_name(kind()) + " " + raw());
  return std::string(el().get_string().value_unsafe());
}

bool JsonValue::as_bool() const {
  if (!is_bool()) fail(std::string("must be a boolean, got ") + raw());
  return el().get_bool().value_unsafe();
}

double JsonValue::as_double() const {
  if (!is_number()) fail(std::string("must be a number, got ") + kind_name(kind()) + " " + raw());
  double v = el().get_double().value_unsafe();
  if (!std::isfinite(v)) fail("must be finite, got " + raw());
  return v;
}

int64_t JsonValue::as_int() const {
  if (!is_number()) fail(std::string("must be an integer, got ") + kind_name(kind()) + " " + raw());
  auto e = el();
  if (e.is_int64()) return e.get_int64().value_unsafe();
  if (e.is_uint64()) fail("must be an integer that fits in 64 bits, got " + raw());
  double d = e.get_double().value_unsafe();
  if (d != std::floor(d) || std::fabs(d) > 9.0e15) fail("must be an integer, got " + raw());
  return static_cast<int64_t>(d);
}

double JsonValue::positive_double() const {
  double v = as_double();
  if (!(v > 0)) fail("must be > 0, got " + format_number(v));
  return v;
}

double JsonValue::non_negative_double() const {
  double v = as_double();
  if (v < 0) fail("must be >= 0, got " + format_number(v));
  return v;
}

int64_t JsonValue::int_in(int64_t lo, int64_t hi) const {
  int64_t v = as_int();
  if (v < lo || v > hi) {
    fail("must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(v));
  }
  return v;
}

double JsonValue::double_in(double lo, double hi) const {
  double v = as_double();
  if (v < lo || v > hi)
    fail("must be in [" + format_number(lo) + ", " + format_number(hi) + "], got " + format_number(v));
  return v;
}

std::string to_json_text(const boost::json::value& value) { return boost::json::serialize(value); }

namespace {
void pretty(std::ostream& out, const boost::json::value& v, int indent) {
  std::string pad(static_cast<size_t>(indent) * 2, ' ');
  if (v.is_object()) {
    const auto& obj = v.get_object();
    if (obj.empty()) {
      out << "{}";
      return;
    }
    out << "{\n";
    size_t i = 0;
    for (const auto& kv : obj) {
      out << pad << "  " << boost::json::serialize(boost::json::value(kv.key())) << ": ";
      pretty(out, kv.value(), indent + 1);
      out << (++i < obj.size() ? ",\n" : "\n");
    }
    out << pad << "}";
  } else if (v.is_array()) {
    const auto& arr = v.get_array();
    bool scalars = true;
    for (const auto& e : arr) scalars = scalars && !e.is_object() && !e.is_array();
    if (scalars) {
      out << boost::json::serialize(v);
      return;
    }  // numeric rows stay on one line
    out << "[\n";
    for (size_t i = 0; i < arr.size(); ++i) {
      out << pad << "  ";
      pretty(out, arr[i], indent + 1);
      out << (i + 1 < arr.size() ? ",\n" : "\n");
    }
    out << pad << "]";
  } else {
    out << boost::json::serialize(v);
  }
}
}  // namespace

std::string to_json_text_pretty(const boost::json::value& value) {
  std::ostringstream out;
  pretty(out, value, 0);
  out << '\n';
  return out.str();
}

Result<void> write_text_file(const std::string& path, std::string_view text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return Error::make(ErrorCode::kNotFound, path + ": cannot open for writing");
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    if (!out) return Error::make(ErrorCode::kInternal, path + ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Error::make(ErrorCode::kInternal, path + ": rename failed: " + ec.message());
  return {};
}

Result<std::string> read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::make(ErrorCode::kNotFound, path + ": cannot open");
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

}  // namespace aurora::config
