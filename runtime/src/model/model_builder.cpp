#include "model/model_builder.hpp"

#include <cmath>

namespace aurora::runtime {

ModelBuilder::ModelBuilder(config::ModelConfig config, uint64_t seed, std::string name)
    : model_(std::make_shared<Model>()), rng_(seed) {
  model_->config = std::move(config);
  model_->name = std::move(name);
  model_->layers.resize(static_cast<size_t>(std::max(0, model_->config.num_layers)));
}

float* ModelBuilder::zeros(size_t n) {
  model_->owned.emplace_back(n, 0.0f);
  return model_->owned.back().data();
}

float* ModelBuilder::constant(size_t n, float value) {
  model_->owned.emplace_back(n, value);
  return model_->owned.back().data();
}

float* ModelBuilder::normal(size_t n, float stddev, float mean) {
  float* p = zeros(n);
  for (size_t i = 0; i < n; ++i) p[i] = mean + stddev * rng_.normal();
  return p;
}

FfnWeights ModelBuilder::random_ffn(int32_t intermediate, float down_scale) {
  const auto& c = model_->config;
  const size_t h = static_cast<size_t>(c.hidden_size), i = static_cast<size_t>(intermediate);
  FfnWeights w;
  w.gate = normal(i * h, 1.0f / std::sqrt(float(h)));
  w.up = normal(i * h, 1.0f / std::sqrt(float(h)));
  w.down = normal(h * i, down_scale / std::sqrt(float(i)));
  w.intermediate = intermediate;
  return w;
}

void ModelBuilder::fill_random() {
  const auto& c = model_->config;
  const size_t h = static_cast<size_t>(c.hidden_size), v = static_cast<size_t>(c.vocab_size);
  const size_t q_dim = size_t(c.num_heads) * c.head_dim, kv_dim = size_t(c.num_kv_heads) * c.head_dim;
  const float in_scale = 1.0f / std::sqrt(float(h));
  model_->embed_tokens = normal(v * h, 1.0f);
  model_->final_norm = normal(h, 0.1f, 1.0f);
  model_->lm_head = c.tie_word_embeddings ? model_->embed_tokens : normal(v * h, in_scale);
  for (int32_t l = 0; l < c.num_layers; ++l) {
    auto& L = model_->layers[static_cast<size_t>(l)];
    L.input_norm = normal(h, 0.1f, 1.0f);
    L.post_attention_norm = normal(h, 0.1f, 1.0f);
    L.q_proj = normal(q_dim * h, in_scale);
    L.k_proj = normal(kv_dim * h, in_scale);
    L.v_proj = normal(kv_dim * h, in_scale);
    L.o_proj = normal(h * q_dim, 0.5f / std::sqrt(float(q_dim)));
    if (c.qkv_bias) {
      L.q_bias = normal(q_dim, 0.1f);
      L.k_bias = normal(kv_dim, 0.1f);
      L.v_bias = normal(kv_dim, 0.1f);
    }
    if (c.qk_norm == config::QkNorm::kPerHead) {
      L.q_norm = normal(size_t(c.head_dim), 0.1f, 1.0f);
      L.k_norm = normal(size_t(c.head_dim), 0.1f, 1.0f);
    } else if (c.qk_norm == config::QkNorm::kFull) {
      L.q_norm = normal(q_dim, 0.1f, 1.0f);
      L.k_norm = normal(kv_dim, 0.1f, 1.0f);
    }
    L.is_moe = c.layer_is_moe[static_cast<size_t>(l)];
    if (!L.is_moe) {
      L.dense_mlp = random_ffn(c.dense_intermediate_size, 0.5f);
      continue;
    }
    L.router = normal(size_t(c.num_experts) * h, 2.0f * in_scale);
    L.experts.clear();
    for (int32_t e = 0; e < c.num_experts; ++e) L.experts.push_back(random_ffn(c.moe_intermediate_size, 0.5f));
    if (c.shared_expert_intermediate_size > 0) {
      L.shared_expert = random_ffn(c.shared_expert_intermediate_size, 0.5f);
      L.shared_expert_gate = normal(h, in_scale);
    }
  }
}

Result<std::shared_ptr<const Model>> ModelBuilder::finish() {
  auto valid = config::validate_model_config(model_->config, model_->name);
  if (!valid) return valid.error();
  compute_inv_freq(*model_);
  std::shared_ptr<const Model> out = std::move(model_);
  return out;
}

Result<std::shared_ptr<const Model>> make_random_model(const config::ModelConfig& config, uint64_t seed,
                                                       const std::string& name) {
  auto valid = config::validate_model_config(config, name);
  if (!valid) return valid.error();
  ModelBuilder builder(config, seed, name);
  builder.fill_random();
  return builder.finish();
}

}  // namespace aurora::runtime
