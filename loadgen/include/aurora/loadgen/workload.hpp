// Workloads: what each request asks. Random prompts with length distributions, the built-in
// synthetic chat dataset, JSONL/ShareGPT prompt files, and traffic mixes that shift over time.
//
// Contract: Workload::next(t_s) returns the request for the next arrival, scheduled at t_s seconds
// into the run (the mix phase is chosen by t_s). Given the same config, seed and sequence of t_s
// it returns the same requests. Not thread-safe. Accepted file shapes are listed in docs/loadgen.md
// and in parse_prompt_line() below.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aurora/config/error.hpp"
#include "aurora/loadgen/rng.hpp"
#include "aurora/loadgen/text_kinds.hpp"

namespace aurora::loadgen {

struct ChatMessage {
  std::string role;
  std::string content;
};

struct RequestSpec {
  std::vector<ChatMessage> messages;  // the chat form (always set)
  std::string prompt;                 // the completions form; empty: contents joined by blank lines
  int64_t input_tokens_estimate = 0;  // tokenizer-free; replaced by usage.prompt_tokens when sent
  int64_t max_tokens = 0;             // 0: leave the output length to the server
  std::string kind;                   // "prose", "code", "digits" or a label from the file
};

// A length drawn uniformly from [floor(mean * (1 - r)), floor(mean * (1 + r))], at least 1
// (vLLM's --random-range-ratio).
struct LengthRange {
  int64_t mean = 0;
  double range_ratio = 0;
  int64_t sample(Rng& rng) const;
};

// Phases of prompt-kind weights over time: "prose=0.8,code=0.2@60s; prose=0.2,code=0.8@60s".
// Each phase lasts its duration (the last one may omit it and lasts forever; if all have one,
// the last keeps going after its end). Weights are normalised per phase.
class TrafficMix {
 public:
  struct Phase {
    double duration_s = 0;                               // kInfinity for open-ended
    std::vector<std::pair<PromptKind, double>> weights;  // normalised to sum 1
  };
  static Result<TrafficMix> parse(std::string_view text, const std::string& field = "--traffic-mix");
  static TrafficMix single(PromptKind kind);
  static TrafficMix uniform();

  const std::vector<Phase>& phases() const { return phases_; }
  size_t phase_index_at(double t_s) const;
  PromptKind pick(double t_s, Rng& rng) const;
  std::string describe() const;

 private:
  std::vector<Phase> phases_;
};

struct WorkloadConfig {
  std::string dataset_name = "random";  // random | synthetic-chat | jsonl | sharegpt
  std::string dataset_path;             // for jsonl / sharegpt
  LengthRange input{1024, 0.0};
  LengthRange output{128, 0.0};
  std::optional<int64_t> file_output_len;  // replaces the lengths found in a file
  std::string traffic_mix;                 // empty: prose for random, uniform for synthetic-chat
  uint64_t seed = 0;
  // Server tokens per estimated token, per PromptKind (from POST /tokenize; 1 = uncalibrated).
  // Synthetic prompts are sized so that the server's tokenizer sees the requested input length.
  std::array<double, kNumPromptKinds> tokens_per_estimate{1.0, 1.0, 1.0};
};

class Workload {
 public:
  virtual ~Workload() = default;
  static Result<std::unique_ptr<Workload>> create(const WorkloadConfig& config);

  virtual RequestSpec next(double t_s) = 0;
  virtual std::string describe() const = 0;
  // The mix, when the dataset has one (for phase markers in the report).
  virtual const TrafficMix* mix() const { return nullptr; }
};

// One entry of a prompt file. Accepted shapes (one JSON object per line, or a JSON array of them):
//   {"prompt": "..."}                                    completions-style
//   {"messages": [{"role": "user", "content": "..."}]}   OpenAI chat (content may be text parts)
//   {"conversations": [{"from": "human", "value": "..."}, {"from": "gpt", "value": "..."}]}
//                                                        ShareGPT ("conversation" also accepted;
//                                                        "role"/"content" keys too)
// plus optional "max_tokens" / "max_completion_tokens" / "output_len" (int) and "kind" (label).
// ShareGPT entries send the turns up to the first human turn; the reply after it sets max_tokens
// (estimated tokens) unless the entry gives one. Returns nullopt for an entry with nothing to ask
// (no human turn); throws nothing: errors name `where` and the field.
Result<std::optional<RequestSpec>> parse_prompt_entry(std::string_view json, const std::string& where);
Result<std::vector<RequestSpec>> load_prompt_file(const std::string& path, int64_t* num_skipped = nullptr);

}  // namespace aurora::loadgen
