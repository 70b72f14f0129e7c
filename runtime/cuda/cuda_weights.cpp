#include "cuda_weights.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "aurora/kernels/cuda/cuda_check.hpp"
#include "aurora/kernels/cuda/elementwise.hpp"
#include "model/model.hpp"

namespace aurora::runtime::cuda {

namespace kc = kernels::cuda;

namespace {

constexpr int64_t kAlign = 256;

// Visits every tensor of the layout in a fixed order; `take` returns its address (or null while
// counting). Shared by layout() and by the two fillers so that they cannot disagree.
struct TensorSpec {
  void* ptr;
  kc::DType dtype;
  int64_t count;
};

}  // namespace

CudaWeights::~CudaWeights() {
  if (arena_) {
    cudaSetDevice(device_);
    cudaFree(arena_);
  }
}

void CudaWeights::layout() {
  const auto& c = config_;
  const int64_t H = c.hidden_size, V = c.vocab_size, E = c.num_experts;
  const int64_t q_dim = int64_t{c.num_heads} * c.head_dim, kv_dim = int64_t{c.num_kv_heads} * c.head_dim;
  char* base = static_cast<char*>(arena_);
  int64_t offset = 0;
  auto take = [&](int64_t bytes) -> void* {
    void* p = base ? base + offset : nullptr;
    offset += (bytes + kAlign - 1) / kAlign * kAlign;
    return p;
  };
  auto bf = [&](int64_t n) { return static_cast<bf16*>(take(n * 2)); };
  auto f32 = [&](int64_t n) { return static_cast<float*>(take(n * 4)); };
  embed_tokens = bf(V * H);
  lm_head = c.tie_word_embeddings ? embed_tokens : bf(V * H);
  final_norm = f32(H);
  inv_freq = f32(c.head_dim / 2);
  layers.assign(static_cast<size_t>(c.num_layers), CudaLayer{});
  for (int32_t l = 0; l < c.num_layers; ++l) {
    CudaLayer& L = layers[static_cast<size_t>(l)];
    L.input_norm = f32(H);
    L.post_attention_norm = f32(H);
    L.qkv = bf((q_dim + 2 * kv_dim) * H);
    if (c.qkv_bias) L.qkv_bias = f32(q_dim + 2 * kv_dim);
    if (c.qk_norm == config::QkNorm::kPerHead) {
      L.q_norm = f32(c.head_dim);
      L.k_norm = f32(c.head_dim);
    } else if (c.qk_norm == config::QkNorm::kFull) {
      L.q_norm = f32(q_dim);
      L.k_norm = f32(kv_dim);
    }
    L.o_proj = bf(H * q_dim);
    L.is_moe = c.layer_is_moe[static_cast<size_t>(l)];
    if (!L.is_moe) {
      const int64_t I = c.dense_intermediate_size;
      L.dense_mlp = CudaFfn{bf(2 * I * H), bf(H * I), c.dense_intermediate_size};
      continue;
    }
    const int64_t I = c.moe_intermediate_size;
    const int64_t slots = slots_[static_cast<size_t>(l)];
    L.router = f32(E * H);
    L.experts = CudaFfn{bf(slots * 2 * I * H), bf(slots * H * I), c.moe_intermediate_size};
    if (c.shared_expert_intermediate_size > 0) {
      const int64_t S = c.shared_expert_intermediate_size;
      L.shared_expert = CudaFfn{bf(2 * S * H), bf(H * S), c.shared_expert_intermediate_size};
      L.shared_expert_gate = f32(H);
    }
  }
  bytes_ = offset;
}

int64_t CudaWeights::attention_bytes(int32_t layer) const {
  const auto& c = config_;
  const int64_t H = c.hidden_size, q_dim = int64_t{c.num_heads} * c.head_dim,
                kv_dim = int64_t{c.num_kv_heads} * c.head_dim;
  int64_t b = 2 * ((q_dim + 2 * kv_dim) * H + H * q_dim);
  const CudaLayer& L = layers[static_cast<size_t>(layer)];
  if (!L.is_moe) b += 2 * 3 * H * int64_t{c.dense_intermediate_size};
  if (L.is_moe) b += 4 * int64_t{c.num_experts} * H;
  if (L.shared_expert.gate_up) b += 2 * 3 * H * int64_t{c.shared_expert_intermediate_size} + 4 * H;
  return b;
}

int64_t CudaWeights::expert_bytes() const {
  return 2 * 3 * int64_t{config_.hidden_size} * config_.moe_intermediate_size;
}

int64_t CudaWeights::lm_head_bytes() const { return 2 * int64_t{config_.vocab_size} * config_.hidden_size; }

Result<void> CudaWeights::set_held(const HeldExperts& held, const std::vector<int32_t>& slots) {
  const auto& c = config_;
  held_.assign(static_cast<size_t>(c.num_layers), {});
  slots_.assign(static_cast<size_t>(c.num_layers), 0);
  if (!slots.empty() && slots.size() != static_cast<size_t>(c.num_layers)) {
    return Error::invalid("expert_slots", "must have one count per layer (" + std::to_string(c.num_layers) + "), got " +
                                              std::to_string(slots.size()));
  }
  auto finish = [&]() -> Result<void> {
    for (int32_t l = 0; l < c.num_layers; ++l) {
      const auto& h = held_[static_cast<size_t>(l)];
      const int32_t want = slots.empty() ? static_cast<int32_t>(h.size()) : slots[static_cast<size_t>(l)];
      if (!c.layer_is_moe[static_cast<size_t>(l)]) continue;
      if (want < static_cast<int32_t>(h.size()) || want > c.num_experts) {
        return Error::invalid("expert_slots[" + std::to_string(l) + "]",
                              "must be between the experts held (" + std::to_string(h.size()) +
                                  ") and the experts of a layer (" + std::to_string(c.num_experts) + "), got " +
                                  std::to_string(want));
      }
      slots_[static_cast<size_t>(l)] = want;
    }
    return {};
  };
  for (int32_t l = 0; l < c.num_layers; ++l) {
    if (!c.layer_is_moe[static_cast<size_t>(l)]) continue;
    auto& h = held_[static_cast<size_t>(l)];
    if (held.empty()) {
      h.resize(static_cast<size_t>(c.num_experts));
      for (int32_t e = 0; e < c.num_experts; ++e) h[static_cast<size_t>(e)] = e;
      continue;
    }
    if (held.size() != static_cast<size_t>(c.num_layers)) {
      return Error::invalid("held_experts", "must have one list per layer (" + std::to_string(c.num_layers) +
                                                "), got " + std::to_string(held.size()));
    }
    h = held[static_cast<size_t>(l)];
    for (size_t j = 0; j < h.size(); ++j) {
      if (h[j] < 0 || h[j] >= c.num_experts || (j > 0 && h[j] <= h[j - 1])) {
        return Error::invalid("held_experts[" + std::to_string(l) + "]",
                              "must be increasing expert ids below " + std::to_string(c.num_experts));
      }
    }
  }
  return finish();
}

namespace {

// The random fill hashes (seed * C + index): a slice starting at `offset` of a tensor with `seed`
// is the tensor of seed' = seed + offset * C^-1 (C is odd, hence invertible mod 2^64).
constexpr uint64_t kFillMultiplier = 0x9e3779b97f4a7c15ull;  // launch_random_fill's C
constexpr uint64_t inverse_mod_2_64(uint64_t a) {
  uint64_t x = a;  // Newton: each step doubles the correct low bits (a * a == 1 mod 8 for odd a)
  for (int i = 0; i < 6; ++i) x *= 2 - a * x;
  return x;
}
static_assert(kFillMultiplier * inverse_mod_2_64(kFillMultiplier) == 1, "");
constexpr uint64_t slice_seed(uint64_t seed, int64_t offset) {
  return seed + static_cast<uint64_t>(offset) * inverse_mod_2_64(kFillMultiplier);
}

Result<void*> allocate_arena(int device, int64_t bytes) {
  AURORA_CUDA_CHECK(cudaSetDevice(device));
  size_t free_bytes = 0, total_bytes = 0;
  AURORA_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  if (static_cast<size_t>(bytes) > free_bytes) {
    return Error::make(ErrorCode::kResourceExhausted, "cuda:" + std::to_string(device) +
                                                          ": the model's bf16 weights need " +
                                                          std::to_string(bytes >> 20) + " MiB, only " +
                                                          std::to_string(free_bytes >> 20) + " MiB are free");
  }
  void* p = nullptr;
  AURORA_CUDA_CHECK(cudaMalloc(&p, static_cast<size_t>(bytes)));
  return p;
}

std::vector<float> inv_freq_of(const config::ModelConfig& c) {
  Model m;
  m.config = c;
  compute_inv_freq(m);
  return m.inv_freq;
}

}  // namespace

Result<std::shared_ptr<const CudaWeights>> CudaWeights::random(const config::ModelConfig& config, uint64_t seed,
                                                               int device, std::string name, const HeldExperts& held,
                                                               const std::vector<int32_t>& slots) {
  auto valid = config::validate_model_config(config, name);
  if (!valid) return valid.error();
  return capture_errors([&]() -> std::shared_ptr<const CudaWeights> {
    std::shared_ptr<CudaWeights> w(new CudaWeights());
    w->config_ = config;
    w->name_ = std::move(name);
    w->device_ = device;
    if (auto ok = w->set_held(held, slots); !ok) throw_error(ok.error());
    w->layout();
    auto arena = allocate_arena(device, w->bytes_);
    if (!arena) throw_error(arena.error());
    w->arena_ = *arena;
    w->layout();
    const auto& c = config;
    const int64_t H = c.hidden_size, V = c.vocab_size, E = c.num_experts;
    const int64_t q_dim = int64_t{c.num_heads} * c.head_dim, kv_dim = int64_t{c.num_kv_heads} * c.head_dim;
    const float in_scale = 1.0f / std::sqrt(float(H));
    uint64_t tensor = 0;
    auto fill = [&](void* p, kc::DType t, int64_t n, float stddev, float mean) {
      kc::launch_random_fill(p, t, n, seed * 0x100000001b3ull + (++tensor), stddev, mean, nullptr);
    };
    const auto B = kc::DType::kBF16, F = kc::DType::kF32;
    fill(w->embed_tokens, B, V * H, 1.0f, 0.0f);
    if (!c.tie_word_embeddings) fill(w->lm_head, B, V * H, in_scale, 0.0f);
    fill(w->final_norm, F, H, 0.1f, 1.0f);
    auto ffn = [&](const CudaFfn& f, int64_t experts) {
      const int64_t I = f.intermediate;
      fill(f.gate_up, B, experts * 2 * I * H, in_scale, 0.0f);
      fill(f.down, B, experts * H * I, 0.5f / std::sqrt(float(I)), 0.0f);
    };
    for (int32_t l = 0; l < c.num_layers; ++l) {
      const CudaLayer& L = w->layers[static_cast<size_t>(l)];
      fill(L.input_norm, F, H, 0.1f, 1.0f);
      fill(L.post_attention_norm, F, H, 0.1f, 1.0f);
      fill(L.qkv, B, (q_dim + 2 * kv_dim) * H, in_scale, 0.0f);
      if (L.qkv_bias) fill(L.qkv_bias, F, q_dim + 2 * kv_dim, 0.1f, 0.0f);
      if (L.q_norm) {
        const int64_t qn = c.qk_norm == config::QkNorm::kFull ? q_dim : c.head_dim;
        const int64_t kn = c.qk_norm == config::QkNorm::kFull ? kv_dim : c.head_dim;
        fill(L.q_norm, F, qn, 0.1f, 1.0f);
        fill(L.k_norm, F, kn, 0.1f, 1.0f);
      }
      fill(L.o_proj, B, H * q_dim, 0.5f / std::sqrt(float(q_dim)), 0.0f);
      if (!L.is_moe) {
        ffn(L.dense_mlp, 1);
        continue;
      }
      fill(L.router, F, E * H, 2.0f * in_scale, 0.0f);
      {
        // Routed experts: the slices of the full [E, 2I, H] / [E, H, I] tensors this device holds.
        const int64_t I = L.experts.intermediate;
        const uint64_t gate_up_seed = seed * 0x100000001b3ull + (++tensor);
        const uint64_t down_seed = seed * 0x100000001b3ull + (++tensor);
        const auto& mine = w->held_[static_cast<size_t>(l)];
        for (size_t j = 0; j < mine.size(); ++j) {
          const int64_t e = mine[j];
          kc::launch_random_fill(L.experts.gate_up + static_cast<int64_t>(j) * 2 * I * H, B, 2 * I * H,
                                 slice_seed(gate_up_seed, e * 2 * I * H), in_scale, 0.0f, nullptr);
          kc::launch_random_fill(L.experts.down + static_cast<int64_t>(j) * H * I, B, H * I,
                                 slice_seed(down_seed, e * H * I), 0.5f / std::sqrt(float(I)), 0.0f, nullptr);
        }
      }
      if (L.shared_expert.gate_up) {
        ffn(L.shared_expert, 1);
        fill(L.shared_expert_gate, F, H, in_scale, 0.0f);
      }
    }
    w->host_inv_freq_ = inv_freq_of(c);
    AURORA_CUDA_CHECK(
        cudaMemcpy(w->inv_freq, w->host_inv_freq_.data(), w->host_inv_freq_.size() * 4, cudaMemcpyHostToDevice));
    AURORA_CUDA_CHECK(cudaDeviceSynchronize());
    return w;
  });
}

Result<std::shared_ptr<const CudaWeights>> CudaWeights::upload(const Model& model, int device, const HeldExperts& held,
                                                               const std::vector<int32_t>& slots) {
  return capture_errors([&]() -> std::shared_ptr<const CudaWeights> {
    std::shared_ptr<CudaWeights> w(new CudaWeights());
    w->config_ = model.config;
    w->name_ = model.name;
    w->device_ = device;
    if (auto ok = w->set_held(held, slots); !ok) throw_error(ok.error());
    w->layout();
    auto arena = allocate_arena(device, w->bytes_);
    if (!arena) throw_error(arena.error());
    w->arena_ = *arena;
    w->layout();
    const auto& c = model.config;
    const int64_t H = c.hidden_size, V = c.vocab_size;
    const int64_t q_dim = int64_t{c.num_heads} * c.head_dim, kv_dim = int64_t{c.num_kv_heads} * c.head_dim;
    // Float32 host tensors go through a bounded device staging buffer; bf16 ones are converted there.
    const int64_t staging_floats = int64_t{32} << 20;
    float* staging = nullptr;
    AURORA_CUDA_CHECK(cudaMalloc(&staging, static_cast<size_t>(staging_floats) * 4));
    auto put = [&](void* dst, kc::DType t, const float* src, int64_t n) {
      AURORA_CHECK_MSG(src != nullptr, "missing host tensor");
      if (t == kc::DType::kF32) {
        AURORA_CUDA_CHECK(cudaMemcpy(dst, src, static_cast<size_t>(n) * 4, cudaMemcpyHostToDevice));
        return;
      }
      for (int64_t first = 0; first < n; first += staging_floats) {
        const int64_t count = std::min(staging_floats, n - first);
        AURORA_CUDA_CHECK(cudaMemcpy(staging, src + first, static_cast<size_t>(count) * 4, cudaMemcpyHostToDevice));
        kc::launch_f32_to_bf16(staging, static_cast<bf16*>(dst) + first, count, nullptr);
        AURORA_CUDA_CHECK(cudaDeviceSynchronize());
      }
    };
    const auto B = kc::DType::kBF16, F = kc::DType::kF32;
    try {
      put(w->embed_tokens, B, model.embed_tokens, V * H);
      if (!c.tie_word_embeddings) put(w->lm_head, B, model.lm_head, V * H);
      put(w->final_norm, F, model.final_norm, H);
      auto ffn = [&](bf16* gate_up, bf16* down, const FfnWeights& f) {
        const int64_t I = f.intermediate;
        put(gate_up, B, f.gate, I * H);
        put(gate_up + I * H, B, f.up, I * H);
        put(down, B, f.down, H * I);
      };
      for (int32_t l = 0; l < c.num_layers; ++l) {
        const CudaLayer& L = w->layers[static_cast<size_t>(l)];
        const LayerWeights& M = model.layers[static_cast<size_t>(l)];
        put(L.input_norm, F, M.input_norm, H);
        put(L.post_attention_norm, F, M.post_attention_norm, H);
        put(L.qkv, B, M.q_proj, q_dim * H);
        put(L.qkv + q_dim * H, B, M.k_proj, kv_dim * H);
        put(L.qkv + (q_dim + kv_dim) * H, B, M.v_proj, kv_dim * H);
        if (L.qkv_bias) {
          put(L.qkv_bias, F, M.q_bias, q_dim);
          put(L.qkv_bias + q_dim, F, M.k_bias, kv_dim);
          put(L.qkv_bias + q_dim + kv_dim, F, M.v_bias, kv_dim);
        }
        if (L.q_norm) {
          const int64_t qn = c.qk_norm == config::QkNorm::kFull ? q_dim : c.head_dim;
          const int64_t kn = c.qk_norm == config::QkNorm::kFull ? kv_dim : c.head_dim;
          put(L.q_norm, F, M.q_norm, qn);
          put(L.k_norm, F, M.k_norm, kn);
        }
        put(L.o_proj, B, M.o_proj, H * q_dim);
        if (!L.is_moe) {
          ffn(L.dense_mlp.gate_up, L.dense_mlp.down, M.dense_mlp);
          continue;
        }
        put(L.router, F, M.router, int64_t{c.num_experts} * H);
        const int64_t I = c.moe_intermediate_size;
        const auto& mine = w->held_[static_cast<size_t>(l)];
        for (size_t j = 0; j < mine.size(); ++j) {
          const int64_t slot = static_cast<int64_t>(j);
          ffn(L.experts.gate_up + slot * 2 * I * H, L.experts.down + slot * H * I,
              M.experts[static_cast<size_t>(mine[j])]);
        }
        if (L.shared_expert.gate_up) {
          ffn(L.shared_expert.gate_up, L.shared_expert.down, M.shared_expert);
          put(L.shared_expert_gate, F, M.shared_expert_gate, H);
        }
      }
      w->host_inv_freq_ = model.inv_freq;
      put(w->inv_freq, F, w->host_inv_freq_.data(), int64_t(w->host_inv_freq_.size()));
    } catch (...) {
      cudaFree(staging);
      throw;
    }
    AURORA_CUDA_CHECK(cudaFree(staging));
    return w;
  });
}

}  // namespace aurora::runtime::cuda
