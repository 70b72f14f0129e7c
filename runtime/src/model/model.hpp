// Model: a loaded MoE decoder as the executors see it: the validated config, float32 weight
// pointers for every layer and expert, the RoPE frequencies, and whatever owns the memory
// (a memory-mapped checkpoint, or buffers generated in process).
//
// Immutable after construction and shared (std::shared_ptr<const Model>) by every rank and every
// engine thread; the weight pointers stay valid as long as the Model lives.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "aurora/config/model_config.hpp"

namespace aurora::runtime {

class Checkpoint;

// One SwiGLU block: gate and up are [intermediate, hidden], down is [hidden, intermediate].
struct FfnWeights {
  const float* gate = nullptr;
  const float* up = nullptr;
  const float* down = nullptr;
  int32_t intermediate = 0;
};

struct LayerWeights {
  const float* input_norm = nullptr;           // [hidden]
  const float* post_attention_norm = nullptr;  // [hidden]
  const float* q_proj = nullptr;               // [heads * head_dim, hidden]
  const float* k_proj = nullptr;               // [kv_heads * head_dim, hidden]
  const float* v_proj = nullptr;               // [kv_heads * head_dim, hidden]
  const float* o_proj = nullptr;               // [hidden, heads * head_dim]
  const float* q_bias = nullptr;               // qkv_bias only
  const float* k_bias = nullptr;
  const float* v_bias = nullptr;
  const float* q_norm = nullptr;  // [head_dim] (per head) or [heads * head_dim] (full)
  const float* k_norm = nullptr;
  bool is_moe = true;
  const float* router = nullptr;              // [num_experts, hidden]
  std::vector<FfnWeights> experts;            // [num_experts]
  FfnWeights shared_expert;                   // Qwen2-MoE, else empty
  const float* shared_expert_gate = nullptr;  // [1, hidden]
  FfnWeights dense_mlp;                       // dense layers only
};

struct Model {
  std::string name;  // served name
  config::ModelConfig config;
  config::GenerationDefaults generation;
  const float* embed_tokens = nullptr;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  const float* final_norm = nullptr;  // [hidden]
  const float* lm_head = nullptr;     // [vocab, hidden] (the embedding when tied)
  std::vector<float> inv_freq;        // [head_dim / 2], RoPE scaling folded in

  // Storage. Exactly one of these usually holds the weights.
  std::shared_ptr<Checkpoint> checkpoint;
  std::vector<std::vector<float>> owned;

  // EOS ids: generation_config.json's, else config.json's.
  std::vector<int32_t> eos_token_ids() const;
};

// Fills inv_freq from config.rope (theta, linear scaling) as transformers computes it.
void compute_inv_freq(Model& model);

// Loads config.json, generation_config.json (optional) and the safetensors weights of a Hugging
// Face model directory. Errors name the file, the tensor or the field.
Result<std::shared_ptr<const Model>> load_model(const std::string& dir);

}  // namespace aurora::runtime
