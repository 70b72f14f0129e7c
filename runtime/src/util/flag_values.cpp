#include "util/flag_values.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace aurora::runtime {

std::string format_flag_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

Result<double> parse_flag_number(const std::string& flag, const std::string& value, double lo, double hi) {
  char* end = nullptr;
  const double v = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0' || !std::isfinite(v)) {
    return Error::invalid(flag, "must be a number, got '" + value + "'");
  }
  if (v < lo || v > hi) {
    return Error::invalid(flag,
                          "must be in [" + format_flag_number(lo) + ", " + format_flag_number(hi) + "], got " + value);
  }
  return v;
}

Result<int32_t> parse_flag_int(const std::string& flag, const std::string& value, int32_t lo, int32_t hi) {
  int32_t v = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size()) {
    return Error::invalid(flag, "must be an integer, got '" + value + "'");
  }
  if (v < lo || v > hi) {
    return Error::invalid(flag, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + value);
  }
  return v;
}

Result<std::vector<double>> parse_flag_list(const std::string& flag, const std::string& value, double lo, double hi,
                                            const std::string& what) {
  std::vector<double> out;
  size_t start = 0;
  while (start <= value.size()) {
    const size_t comma = value.find(',', start);
    const std::string piece = value.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    auto v = parse_flag_number(flag, piece, lo, hi);
    if (!v) {
      return Error::invalid(flag, "must be " + what + " (each in [" + format_flag_number(lo) + ", " +
                                      format_flag_number(hi) + "]), got '" + value + "'");
    }
    out.push_back(*v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace aurora::runtime
