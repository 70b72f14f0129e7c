#include <cmath>
#include <filesystem>

#include "checkpoint/checkpoint.hpp"
#include "model/model.hpp"

namespace aurora::runtime {

namespace fs = std::filesystem;

std::vector<int32_t> Model::eos_token_ids() const {
  if (!generation.eos_token_ids.empty()) return generation.eos_token_ids;
  return config.eos_token_ids;
}

void compute_inv_freq(Model& model) {
  const auto& c = model.config;
  model.inv_freq.resize(static_cast<size_t>(c.head_dim / 2));
  for (int32_t i = 0; i < c.head_dim / 2; ++i) {
    // transformers: 1 / base ** (arange(0, dim, 2).float() / dim), in float32.
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(c.head_dim);
    float inv = 1.0f / static_cast<float>(std::pow(c.rope.theta, static_cast<double>(exponent)));
    if (c.rope.type == "linear") inv /= static_cast<float>(c.rope.factor);
    model.inv_freq[static_cast<size_t>(i)] = inv;
  }
}

namespace {

class WeightBinder {
 public:
  WeightBinder(Checkpoint& ckpt, const config::ModelConfig& c) : ckpt_(ckpt), c_(c) {}

  const float* get(const std::string& name, std::vector<int64_t> shape) {
    auto r = ckpt_.tensor_f32(name, shape);
    if (!r) throw_error(r.error());
    return *r;
  }
  bool has(const std::string& name) const { return ckpt_.contains(name); }

  FfnWeights ffn(const std::string& prefix, int32_t intermediate, const char* gate, const char* up, const char* down) {
    const int64_t h = c_.hidden_size, i = intermediate;
    FfnWeights w;
    w.gate = get(prefix + gate + ".weight", {i, h});
    w.up = get(prefix + up + ".weight", {i, h});
    w.down = get(prefix + down + ".weight", {h, i});
    w.intermediate = intermediate;
    return w;
  }

  // Routed experts, in the Hub layout (one module per expert) or in transformers 5.x's fused
  // layout (experts.gate_up_proj [E, 2I, H], experts.down_proj [E, H, I]).
  std::vector<FfnWeights> experts(const std::string& moe_prefix, bool mixtral_names) {
    const int64_t e_count = c_.num_experts, h = c_.hidden_size, i = c_.moe_intermediate_size;
    std::vector<FfnWeights> out(static_cast<size_t>(e_count));
    if (has(moe_prefix + "experts.gate_up_proj")) {
      const float* gate_up = get(moe_prefix + "experts.gate_up_proj", {e_count, 2 * i, h});
      const float* down = get(moe_prefix + "experts.down_proj", {e_count, h, i});
      for (int64_t e = 0; e < e_count; ++e) {
        auto& w = out[static_cast<size_t>(e)];
        w.gate = gate_up + e * 2 * i * h;
        w.up = w.gate + i * h;
        w.down = down + e * h * i;
        w.intermediate = c_.moe_intermediate_size;
      }
      return out;
    }
    for (int64_t e = 0; e < e_count; ++e) {
      const std::string p = moe_prefix + "experts." + std::to_string(e) + ".";
      out[static_cast<size_t>(e)] = mixtral_names
                                        ? ffn(p, c_.moe_intermediate_size, "w1", "w3", "w2")
                                        : ffn(p, c_.moe_intermediate_size, "gate_proj", "up_proj", "down_proj");
    }
    return out;
  }

 private:
  Checkpoint& ckpt_;
  const config::ModelConfig& c_;
};

void bind_weights(Model& m, Checkpoint& ckpt) {
  const auto& c = m.config;
  WeightBinder b(ckpt, c);
  const int64_t h = c.hidden_size, v = c.vocab_size, hd = c.head_dim;
  const int64_t q_dim = int64_t{c.num_heads} * hd, kv_dim = int64_t{c.num_kv_heads} * hd;
  m.embed_tokens = b.get("model.embed_tokens.weight", {v, h});
  m.final_norm = b.get("model.norm.weight", {h});
  m.lm_head = c.tie_word_embeddings ? m.embed_tokens : b.get("lm_head.weight", {v, h});
  m.layers.resize(static_cast<size_t>(c.num_layers));
  for (int32_t l = 0; l < c.num_layers; ++l) {
    auto& L = m.layers[static_cast<size_t>(l)];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    L.input_norm = b.get(p + "input_layernorm.weight", {h});
    L.post_attention_norm = b.get(p + "post_attention_layernorm.weight", {h});
    const std::string a = p + "self_attn.";
    L.q_proj = b.get(a + "q_proj.weight", {q_dim, h});
    L.k_proj = b.get(a + "k_proj.weight", {kv_dim, h});
    L.v_proj = b.get(a + "v_proj.weight", {kv_dim, h});
    L.o_proj = b.get(a + "o_proj.weight", {h, q_dim});
    if (c.qkv_bias) {
      L.q_bias = b.get(a + "q_proj.bias", {q_dim});
      L.k_bias = b.get(a + "k_proj.bias", {kv_dim});
      L.v_bias = b.get(a + "v_proj.bias", {kv_dim});
    }
    if (c.qk_norm == config::QkNorm::kPerHead) {
      L.q_norm = b.get(a + "q_norm.weight", {hd});
      L.k_norm = b.get(a + "k_norm.weight", {hd});
    } else if (c.qk_norm == config::QkNorm::kFull) {
      L.q_norm = b.get(a + "q_norm.weight", {q_dim});
      L.k_norm = b.get(a + "k_norm.weight", {kv_dim});
    }
    L.is_moe = c.layer_is_moe[static_cast<size_t>(l)];
    if (!L.is_moe) {
      L.dense_mlp = b.ffn(p + "mlp.", c.dense_intermediate_size, "gate_proj", "up_proj", "down_proj");
      continue;
    }
    const int64_t e = c.num_experts;
    if (c.architecture == config::ModelArchitecture::kMixtral) {
      // Hub checkpoints say block_sparse_moe; transformers 5.x's own layout says mlp. Look for the
      // router and the experts under either name.
      const std::string hub = p + "block_sparse_moe.", v5 = p + "mlp.";
      L.router = b.get((b.has(hub + "gate.weight") ? hub : v5) + "gate.weight", {e, h});
      const bool hub_experts = b.has(hub + "experts.0.w1.weight") || b.has(hub + "experts.gate_up_proj");
      L.experts = b.experts(hub_experts ? hub : v5, /*mixtral_names=*/true);
    } else {
      const std::string moe = p + "mlp.";
      L.router = b.get(moe + "gate.weight", {e, h});
      L.experts = b.experts(moe, /*mixtral_names=*/false);
      if (c.shared_expert_intermediate_size > 0) {
        L.shared_expert =
            b.ffn(moe + "shared_expert.", c.shared_expert_intermediate_size, "gate_proj", "up_proj", "down_proj");
        L.shared_expert_gate = b.get(moe + "shared_expert_gate.weight", {1, h});
      }
    }
  }
}

}  // namespace

Result<std::shared_ptr<const Model>> load_model(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Error::make(ErrorCode::kNotFound, dir + ": model directory not found");
  auto model = std::make_shared<Model>();
  auto config = config::load_model_config((fs::path(dir) / "config.json").string());
  if (!config) return config.error();
  model->config = std::move(*config);
  const fs::path gen_path = fs::path(dir) / "generation_config.json";
  if (fs::exists(gen_path, ec)) {
    auto gen = config::load_generation_config(gen_path.string());
    if (!gen) return gen.error();
    model->generation = std::move(*gen);
    for (int32_t id : model->generation.eos_token_ids) {
      if (id < 0 || id >= model->config.vocab_size) {
        return Error::invalid(
            gen_path.string() + ": eos_token_id",
            "must be < vocab_size (" + std::to_string(model->config.vocab_size) + "), got " + std::to_string(id));
      }
    }
  }
  auto ckpt = Checkpoint::open(dir);
  if (!ckpt) return ckpt.error();
  model->checkpoint = std::shared_ptr<Checkpoint>(std::move(*ckpt));
  auto bound = capture_errors([&] { bind_weights(*model, *model->checkpoint); });
  if (!bound) return bound.error();
  compute_inv_freq(*model);
  std::string name = fs::path(dir).lexically_normal().filename().string();
  if (name.empty()) name = fs::path(dir).lexically_normal().parent_path().filename().string();
  model->name = name.empty() ? "model" : name;
  return std::shared_ptr<const Model>(std::move(model));
}

}  // namespace aurora::runtime
