#include "aurora/loadgen/prometheus.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>

namespace aurora::loadgen {
namespace {

bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':'; }

// Parses `{a="x",b="y"}` starting at text[i] == '{'; returns the index after '}' or npos.
size_t parse_labels(std::string_view text, size_t i, std::vector<std::pair<std::string, std::string>>& out) {
  ++i;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == ',')) ++i;
    if (i < text.size() && text[i] == '}') return i + 1;
    size_t k = i;
    while (k < text.size() && is_name_char(text[k])) ++k;
    if (k == i || k >= text.size() || text[k] != '=') return std::string_view::npos;
    std::string key(text.substr(i, k - i));
    i = k + 1;
    if (i >= text.size() || text[i] != '"') return std::string_view::npos;
    ++i;
    std::string value;
    while (i < text.size() && text[i] != '"') {
      if (text[i] == '\\' && i + 1 < text.size()) {
        ++i;
        value += text[i] == 'n' ? '\n' : text[i];
      } else {
        value += text[i];
      }
      ++i;
    }
    if (i >= text.size()) return std::string_view::npos;
    ++i;  // closing quote
    out.emplace_back(std::move(key), std::move(value));
  }
  return std::string_view::npos;
}

}  // namespace

std::optional<std::string> PromSample::label(std::string_view key) const {
  for (const auto& [k, v] : labels) {
    if (k == key) return v;
  }
  return std::nullopt;
}

std::vector<PromSample> parse_prometheus_text(std::string_view text) {
  std::vector<PromSample> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    size_t i = 0;
    while (i < line.size() && is_name_char(line[i])) ++i;
    if (i == 0) continue;
    PromSample sample;
    sample.name = std::string(line.substr(0, i));
    if (i < line.size() && line[i] == '{') {
      i = parse_labels(line, i, sample.labels);
      if (i == std::string_view::npos) continue;
    }
    while (i < line.size() && line[i] == ' ') ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ') ++j;
    std::string value(line.substr(i, j - i));
    if (value.empty()) continue;
    if (value == "+Inf") {
      sample.value = HUGE_VAL;
    } else if (value == "-Inf") {
      sample.value = -HUGE_VAL;
    } else if (value == "NaN") {
      sample.value = std::nan("");
    } else {
      char* end = nullptr;
      sample.value = std::strtod(value.c_str(), &end);
      if (end != value.c_str() + value.size()) continue;
    }
    out.push_back(std::move(sample));
  }
  return out;
}

std::optional<double> PlanSnapshot::mean_balance() const {
  if (balance_by_layer.empty()) return std::nullopt;
  double sum = 0;
  for (const auto& [layer, v] : balance_by_layer) sum += v;
  return sum / static_cast<double>(balance_by_layer.size());
}

std::optional<double> PlanSnapshot::max_balance() const {
  if (balance_by_layer.empty()) return std::nullopt;
  double m = balance_by_layer.begin()->second;
  for (const auto& [layer, v] : balance_by_layer) m = std::max(m, v);
  return m;
}

PlanSnapshot extract_aurora_gauges(const std::vector<PromSample>& samples, double t_s) {
  PlanSnapshot snap;
  snap.t_s = t_s;
  for (const auto& s : samples) {
    if (!std::isfinite(s.value)) continue;
    if (s.name == "aurora:plan_version") {
      snap.plan_version = s.value;
    } else if (s.name == "aurora:expert_load_balance") {
      auto layer = s.label("layer");
      if (!layer) continue;
      char* end = nullptr;
      const long id = std::strtol(layer->c_str(), &end, 10);
      if (end == layer->c_str() || *end != '\0') continue;
      snap.balance_by_layer[static_cast<int>(id)] = s.value;
    }
  }
  return snap;
}

}  // namespace aurora::loadgen
