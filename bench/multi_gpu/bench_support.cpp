#include "bench_support.hpp"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

namespace aurora::bench {

using runtime::LogitsMode;
using runtime::SequenceChunk;
using runtime::StepBatch;

std::string fmt(double v, int prec) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(prec);
  s << v;
  return s.str();
}

std::string pct(double predicted, double measured) {
  if (!(measured > 0)) return "-";
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(0);
  s << std::showpos << 100.0 * (predicted - measured) / measured << "%";
  return s.str();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

SequenceSet::SequenceSet(int32_t num_seqs, int32_t prompt_len, int32_t ranks, int32_t blocks_per_seq, int32_t vocab,
                         uint32_t seed) {
  std::mt19937 rng(seed);
  for (int32_t i = 0; i < num_seqs; ++i) {
    std::vector<int32_t> prompt(static_cast<size_t>(prompt_len));
    for (auto& t : prompt) t = 2 + static_cast<int32_t>(rng() % static_cast<uint32_t>(std::max(3, vocab - 2)));
    tokens_.push_back(std::move(prompt));
    const int32_t local = i / ranks;
    std::vector<int32_t> blocks(static_cast<size_t>(blocks_per_seq));
    for (int32_t b = 0; b < blocks_per_seq; ++b) blocks[static_cast<size_t>(b)] = local * blocks_per_seq + b;
    blocks_.push_back(std::move(blocks));
    rank_.push_back(i % ranks);
  }
  rows_.assign(static_cast<size_t>(num_seqs), kernels::SamplingRow{});  // greedy
}

std::vector<StepBatch> SequenceSet::prefill_batches(int32_t max_tokens) {
  std::vector<StepBatch> out;
  StepBatch cur;
  int32_t used = 0;
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const int32_t len = static_cast<int32_t>(tokens_[i].size());
    if (used + len > max_tokens && !cur.chunks.empty()) {
      out.push_back(std::move(cur));
      cur = StepBatch{};
      used = 0;
    }
    SequenceChunk c;
    c.rank = rank_[i];
    c.tokens = tokens_[i].data();
    c.num_tokens = len;
    c.start_position = 0;
    c.block_table = blocks_[i].data();
    c.num_blocks = static_cast<int32_t>(blocks_[i].size());
    c.logits = LogitsMode::kLast;
    c.logits_row = cur.num_logits_rows++;
    cur.chunks.push_back(c);
    used += len;
  }
  if (!cur.chunks.empty()) out.push_back(std::move(cur));
  return out;
}

const StepBatch& SequenceSet::decode_batch() {
  decode_.chunks.clear();
  decode_.num_logits_rows = 0;
  for (size_t i = 0; i < tokens_.size(); ++i) {
    SequenceChunk c;
    c.rank = rank_[i];
    const int32_t pos = static_cast<int32_t>(tokens_[i].size()) - 1;
    c.tokens = tokens_[i].data() + pos;
    c.num_tokens = 1;
    c.start_position = pos;
    c.block_table = blocks_[i].data();
    c.num_blocks = static_cast<int32_t>(blocks_[i].size());
    c.logits = LogitsMode::kLast;
    c.logits_row = decode_.num_logits_rows++;
    decode_.chunks.push_back(c);
  }
  return decode_;
}

void SequenceSet::accept(const StepBatch& batch, const std::vector<int32_t>& tokens) {
  for (const SequenceChunk& c : batch.chunks) {
    // Chunks point into tokens_: find the sequence by its block table.
    for (size_t i = 0; i < tokens_.size(); ++i) {
      if (blocks_[i].data() == c.block_table) {
        tokens_[i].push_back(tokens[static_cast<size_t>(c.logits_row)]);
        break;
      }
    }
  }
}

double utilisation(const std::vector<Span>& spans, int32_t num_gpus, double wall_ms) {
  if (wall_ms <= 0.0 || num_gpus <= 0) return 0.0;
  double total = 0.0;
  for (int32_t g = 0; g < num_gpus; ++g) {
    std::vector<std::pair<float, float>> iv;
    for (const Span& s : spans) {
      if (s.gpu == g && !s.s.comm && s.s.end_ms > s.s.start_ms) iv.emplace_back(s.s.start_ms, s.s.end_ms);
    }
    std::sort(iv.begin(), iv.end());
    double busy = 0.0, cur_a = -1.0, cur_b = -1.0;
    for (auto [a, b] : iv) {
      if (a > cur_b) {
        if (cur_b > cur_a) busy += cur_b - cur_a;
        cur_a = a;
        cur_b = b;
      } else {
        cur_b = std::max<double>(cur_b, b);
      }
    }
    if (cur_b > cur_a) busy += cur_b - cur_a;
    total += std::min(1.0, busy / wall_ms);
  }
  return total / num_gpus;
}

namespace {

double span_ms(const Span& s) { return double(s.s.end_ms) - double(s.s.start_ms); }

// Max over GPUs of the duration of the model's compute segment `label` for `layer`.
double max_segment_s(const std::vector<Span>& spans, int32_t model, const char* label, int32_t layer, int32_t num_gpus,
                     int32_t only_gpu = -1) {
  double worst = 0.0;
  for (int32_t g = 0; g < num_gpus; ++g) {
    if (only_gpu >= 0 && g != only_gpu) continue;
    double sum = 0.0;
    for (const Span& s : spans) {
      if (s.model == model && s.gpu == g && !s.s.comm && s.s.layer == layer && std::strcmp(s.s.label, label) == 0) {
        sum += span_ms(s);
      }
    }
    worst = std::max(worst, sum);
  }
  return worst * 1e-3;
}

}  // namespace

sched::ModelDeployment deployment_of(const runtime::ExpertPlacement& placement) {
  std::vector<std::vector<int32_t>> owners;
  for (const auto& lp : placement.layers) owners.push_back(lp.owner);
  return sched::Deployment::single(owners);
}

sched::ModelStats model_stats_from_step(const config::ModelConfig& c, const std::vector<Span>& spans, int32_t model,
                                        const runtime::StepResult& result, int32_t n,
                                        const runtime::ExpertPlacement& placement, int32_t only_gpu) {
  sched::ModelStats ms;
  ms.name = "model" + std::to_string(model);
  ms.shard_home = sched::ShardHome::kOnGpu;
  ms.expert_memory_bytes = int64_t{3} * c.hidden_size * c.moe_intermediate_size * 2;
  const int64_t row_bytes = int64_t{c.hidden_size} * 2;  // bf16 dispatch rows
  const int32_t E = c.num_experts;
  for (int32_t l = 0; l < c.num_layers; ++l) {
    sched::LayerStats ls;
    ls.num_shards = n;
    if (!c.layer_is_moe[static_cast<size_t>(l)]) {
      ms.layers.push_back(ls);
      continue;
    }
    ls.num_experts = E;
    ls.traffic.assign(static_cast<size_t>(n) * E, 0);
    const auto& counts = result.routed_tokens[static_cast<size_t>(l)];
    std::vector<int64_t> work(static_cast<size_t>(n), 0);
    for (int32_t s = 0; s < n; ++s) {
      for (int32_t e = 0; e < E; ++e) {
        const int64_t bytes = counts[static_cast<size_t>(s) * E + e] * row_bytes;
        ls.traffic[static_cast<size_t>(s) * E + e] = bytes;
        work[static_cast<size_t>(placement.layers[static_cast<size_t>(l)].owner[static_cast<size_t>(e)])] += bytes;
      }
    }
    ls.gate_s = l == 0 ? max_segment_s(spans, model, "gate", 0, n, only_gpu)
                       : max_segment_s(spans, model, "aggregate+gate", l - 1, n, only_gpu);
    ls.aggregate_s = l + 1 == c.num_layers ? max_segment_s(spans, model, "aggregate+head", l, n, only_gpu) : 0.0;
    const double experts_s = max_segment_s(spans, model, "experts", l, n, only_gpu);
    const int64_t heaviest = std::max<int64_t>(
        1, only_gpu >= 0 ? work[static_cast<size_t>(only_gpu)] : *std::max_element(work.begin(), work.end()));
    ls.expert_s_per_byte = experts_s / static_cast<double>(heaviest);
    ms.layers.push_back(std::move(ls));
  }
  return ms;
}

double measured_exchange_overhead_s(const std::vector<Span>& spans, double bytes_per_s, int64_t typical_bytes) {
  std::vector<double> v;
  for (const Span& s : spans) {
    if (s.s.comm) v.push_back(span_ms(s) * 1e-3 - static_cast<double>(typical_bytes) / bytes_per_s);
  }
  return std::max(0.0, median(v));
}

void write_timeline_svg(const std::string& path, const std::vector<std::pair<std::string, std::vector<Span>>>& panels,
                        int32_t num_gpus, const std::vector<std::string>& model_names) {
  const double width = 1400, left = 150, lane_h = 16, gap = 4;
  const int lanes = num_gpus * 4;  // per GPU: model 0 compute, model 1 compute, model 0 comm, model 1 comm
  double max_ms = 0.0;
  for (const auto& p : panels) {
    for (const Span& s : p.second) max_ms = std::max<double>(max_ms, s.s.end_ms);
  }
  max_ms = std::max(max_ms, 1e-3);
  const double scale = (width - left - 20) / max_ms;
  const double panel_h = 40 + lanes * (lane_h + gap);
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\""
    << panel_h * double(panels.size()) + 30
    << "\" font-family=\"monospace\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  const char* fill[2][2] = {{"#1f77b4", "#aec7e8"}, {"#ff7f0e", "#ffbb78"}};
  for (size_t p = 0; p < panels.size(); ++p) {
    const double y0 = double(p) * panel_h + 20;
    o << "<text x=\"4\" y=\"" << y0 << "\" font-weight=\"bold\">" << panels[p].first << "</text>\n";
    for (int g = 0; g < num_gpus; ++g) {
      for (int k = 0; k < 4; ++k) {
        const int m = k % 2;
        const bool comm = k >= 2;
        const double y = y0 + 10 + (g * 4 + k) * (lane_h + gap);
        o << "<text x=\"4\" y=\"" << y + 12 << "\">GPU" << g << " "
          << (m < int(model_names.size()) ? model_names[size_t(m)] : "?") << (comm ? " comm" : " compute")
          << "</text>\n";
        for (const Span& s : panels[p].second) {
          if (s.gpu != g || s.model != m || s.s.comm != comm) continue;
          o << "<rect x=\"" << left + s.s.start_ms * scale << "\" y=\"" << y << "\" width=\""
            << std::max(0.5, (s.s.end_ms - s.s.start_ms) * scale) << "\" height=\"" << lane_h << "\" fill=\""
            << fill[m % 2][comm ? 1 : 0] << "\" stroke=\"#333\" stroke-width=\"0.3\"><title>" << s.s.label << " L"
            << s.s.layer << " " << s.s.start_ms << "-" << s.s.end_ms << " ms</title></rect>\n";
        }
      }
    }
  }
  const double yb = panel_h * double(panels.size()) + 15;
  for (int t = 0; t <= 10; ++t) {
    const double x = left + max_ms * t / 10 * scale;
    o << "<text x=\"" << x << "\" y=\"" << yb << "\">" << max_ms * t / 10 << " ms</text>\n";
  }
  o << "</svg>\n";
  std::ofstream(path) << o.str();
}

}  // namespace aurora::bench
