// Small random-weight models of each supported architecture, for executor and engine tests.
#pragma once

#include <string>

#include "model/model_builder.hpp"

namespace aurora::runtime::test {

inline config::ModelConfig small_config(config::ModelArchitecture arch) {
  config::ModelConfig c;
  c.architecture = arch;
  c.vocab_size = 61;
  c.hidden_size = 32;
  c.num_layers = 3;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.max_position_embeddings = 512;
  c.rms_norm_eps = 1e-6;
  c.rope.theta = 10000.0;
  c.num_experts = 8;
  c.num_experts_per_tok = 2;
  c.moe_intermediate_size = 16;
  c.layer_is_moe.assign(3, true);
  c.layer_sliding_window.assign(3, 0);
  c.eos_token_ids = {1};
  switch (arch) {
    case config::ModelArchitecture::kMixtral:
      c.model_type = "mixtral";
      c.topk_norm = config::TopKNorm::kRenormalize;
      c.layer_sliding_window.assign(3, 7);  // exercise the window
      break;
    case config::ModelArchitecture::kQwen2Moe:
      c.model_type = "qwen2_moe";
      c.qkv_bias = true;
      c.topk_norm = config::TopKNorm::kNone;
      c.shared_expert_intermediate_size = 24;
      c.layer_is_moe = {true, false, true};
      c.dense_intermediate_size = 40;
      break;
    case config::ModelArchitecture::kQwen3Moe:
      c.model_type = "qwen3_moe";
      c.head_dim = 12;  // heads * head_dim != hidden
      c.qk_norm = config::QkNorm::kPerHead;
      c.topk_norm = config::TopKNorm::kRenormalize;
      c.num_experts_per_tok = 3;
      break;
    case config::ModelArchitecture::kOlmoe:
    case config::ModelArchitecture::kEmbedded:
      c.model_type = "olmoe";
      c.architecture = config::ModelArchitecture::kOlmoe;
      c.num_kv_heads = 4;
      c.qk_norm = config::QkNorm::kFull;
      c.clip_qkv = 3.0;
      c.topk_norm = config::TopKNorm::kNone;
      break;
  }
  return c;
}

inline std::shared_ptr<const Model> small_model(config::ModelArchitecture arch, uint64_t seed = 7) {
  return make_random_model(small_config(arch), seed, std::string(config::architecture_name(arch))).value();
}

}  // namespace aurora::runtime::test
