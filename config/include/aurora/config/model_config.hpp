// ModelConfig: the shape of a mixture-of-experts decoder, parsed and validated from a Hugging Face
// config.json (both the older `rope_theta` + `rope_scaling` form and the newer `rope_parameters`
// form), plus generation_config.json defaults.
//
// Contract: parse_model_config() either returns a config whose every field is consistent (heads
// divide, per-layer vectors sized num_layers, ...) or an Error naming the file, the field path and
// the offending value. Plain value types; no I/O besides the load_* helpers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aurora/config/error.hpp"

namespace aurora::config {

// The architectures Aurora runs, exactly as Hugging Face transformers 5.x defines them.
enum class ModelArchitecture {
  kMixtral,   // MixtralForCausalLM: top-k softmax, always renormalised; no q/k norm
  kQwen2Moe,  // Qwen2MoeForCausalLM: shared expert with sigmoid gate, qkv bias, dense layers
  kQwen3Moe,  // Qwen3MoeForCausalLM: per-head q/k RMSNorm, explicit head_dim
  kOlmoe,     // OlmoeForCausalLM: q/k RMSNorm over the full projections, optional clip_qkv
  kEmbedded,  // Aurora's built-in tiny model (no checkpoint); Mixtral-like math
};

const char* architecture_name(ModelArchitecture arch);  // "MixtralForCausalLM", ...
std::string supported_architectures();                  // for error messages

// How attention normalises q and k before RoPE.
enum class QkNorm {
  kNone,
  kPerHead,  // RMSNorm over head_dim, one weight of size head_dim (Qwen3)
  kFull,     // RMSNorm over the whole projection, weight of size heads*head_dim (OLMoE)
};

// How the top-k routing weights are normalised after softmax over all experts.
enum class TopKNorm {
  kNone,         // weights are the softmax probabilities of the chosen experts
  kRenormalize,  // divided by their sum (Mixtral always; others when norm_topk_prob)
};

struct RopeConfig {
  std::string type = "default";  // "default" or "linear"
  double theta = 10000.0;
  double factor = 1.0;  // linear scaling: positions are divided by factor
};

struct ModelConfig {
  ModelArchitecture architecture = ModelArchitecture::kMixtral;
  std::string model_type;  // "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "aurora_embedded"

  int32_t vocab_size = 0;
  int32_t hidden_size = 0;
  int32_t num_layers = 0;
  int32_t num_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  RopeConfig rope;

  bool qkv_bias = false;  // q/k/v projections carry a bias (o_proj never does)
  QkNorm qk_norm = QkNorm::kNone;
  std::optional<double> clip_qkv;  // OLMoE: clamp q, k and v to [-clip, clip]

  int32_t num_experts = 0;
  int32_t num_experts_per_tok = 0;
  int32_t moe_intermediate_size = 0;            // per routed expert
  int32_t dense_intermediate_size = 0;          // dense MLP layers (Qwen2/3 mlp_only_layers), 0 = none
  int32_t shared_expert_intermediate_size = 0;  // Qwen2-MoE shared expert, 0 = none
  TopKNorm topk_norm = TopKNorm::kRenormalize;

  bool tie_word_embeddings = false;
  std::vector<bool> layer_is_moe;             // [num_layers]; false = dense MLP layer
  std::vector<int32_t> layer_sliding_window;  // [num_layers]; 0 = full attention

  std::optional<int32_t> bos_token_id;
  std::vector<int32_t> eos_token_ids;
  std::string torch_dtype;  // informational ("bfloat16", ...)

  int32_t num_moe_layers() const;
  // Bytes of one hidden vector in float32: the unit that dispatch/combine moves per expert choice.
  int64_t token_bytes() const { return int64_t{hidden_size} * 4; }
};

// Sampling defaults and stop ids from generation_config.json (all optional).
struct GenerationDefaults {
  std::vector<int32_t> eos_token_ids;
  std::optional<int32_t> bos_token_id;
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<int32_t> top_k;
  std::optional<bool> do_sample;
};

// Parses config.json text. `source` names the file in error messages ("/m/config.json").
Result<ModelConfig> parse_model_config(std::string_view json_text, const std::string& source = "config.json");
Result<ModelConfig> load_model_config(const std::string& path);

// Checks cross-field consistency (also used for configs built in code, e.g. the embedded model).
Result<void> validate_model_config(const ModelConfig& config, const std::string& source = "config");

Result<GenerationDefaults> parse_generation_config(std::string_view json_text,
                                                   const std::string& source = "generation_config.json");
Result<GenerationDefaults> load_generation_config(const std::string& path);

}  // namespace aurora::config
