// CudaWeights: a MoE decoder's weights in GPU memory, in the layout the CUDA kernels read.
//
// Matrices are bf16, row-major [out, in] as checkpoints store them: q|k|v fused into one [q+2kv, H]
// matrix, each expert's gate|up fused into [2I, H] and all experts of a layer contiguous
// ([E, 2I, H] and [E, H, I]) so that an expert is a pointer offset. Norm weights, biases, the router
// and the shared-expert gate stay float32 (tiny, and routing then matches the float32 reference).
// All tensors live in one allocation (one cudaMalloc, 256-byte aligned tensors).
//
// Two ways in: upload() converts a loaded Model (F32/BF16/F16 checkpoints arrive as float32 host
// tensors) to bf16 on the device through a bounded staging buffer; random() initialises a full
// model of a config directly on the GPU with a counter-based hash (no host copy), with the same
// scales as ModelBuilder::fill_random. Immutable afterwards; shared by the runners of one device.
//
// Expert parallelism: a rank holds only its own experts. `held` lists, per layer, the expert ids
// stored (in storage order: the rank's experts in increasing id, i.e. placement key order); the
// layer's expert tensors then hold held[l].size() experts and slot j is expert held[l][j]. Random
// weights of a held expert are bit-identical to that expert in a full (unsharded) model of the
// same seed, so a model's tokens do not depend on how its experts are spread.
//
// Expert migration (online re-placement, docs/online.md): `slots` (optional) gives a MoE layer
// more expert slots than it holds experts; the tensors are then [slots, 2I, H] and [slots, H, I]
// and slots held[l].size() .. slots[l] - 1 start free (unwritten). The weights stay "const" for
// the kernels, but the expert slots are storage the placement host writes (ExpertSlots says which
// slot is free, receiving or in use; a step reads only slots in use).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "aurora/config/error.hpp"
#include "aurora/config/model_config.hpp"
#include "aurora/kernels/cuda/dtype.hpp"

namespace aurora::runtime {

struct Model;

namespace cuda {

using kernels::cuda::bf16;

struct CudaFfn {
  bf16* gate_up = nullptr;  // [2I, H] (or [E, 2I, H] for routed experts)
  bf16* down = nullptr;     // [H, I]  (or [E, H, I])
  int32_t intermediate = 0;
};

struct CudaLayer {
  float* input_norm = nullptr;
  float* post_attention_norm = nullptr;
  bf16* qkv = nullptr;        // [q_dim + 2 kv_dim, H]
  float* qkv_bias = nullptr;  // [q_dim + 2 kv_dim] or null
  float* q_norm = nullptr;
  float* k_norm = nullptr;
  bf16* o_proj = nullptr;  // [H, q_dim]
  bool is_moe = true;
  float* router = nullptr;              // [E, H]
  CudaFfn experts;                      // all experts
  CudaFfn shared_expert;                // Qwen2-MoE, else empty
  float* shared_expert_gate = nullptr;  // [H]
  CudaFfn dense_mlp;                    // dense layers
};

class CudaWeights {
 public:
  ~CudaWeights();
  CudaWeights(const CudaWeights&) = delete;
  CudaWeights& operator=(const CudaWeights&) = delete;

  // The model's weights converted to bf16 on `device`.
  // `held` (optional, see above): per layer, the experts this device stores; empty = all.
  using HeldExperts = std::vector<std::vector<int32_t>>;
  static Result<std::shared_ptr<const CudaWeights>> upload(const Model& model, int device, const HeldExperts& held = {},
                                                           const std::vector<int32_t>& slots = {});
  // Random weights for `config` generated on `device` (benchmarks: no checkpoint needed).
  static Result<std::shared_ptr<const CudaWeights>> random(const config::ModelConfig& config, uint64_t seed, int device,
                                                           std::string name, const HeldExperts& held = {},
                                                           const std::vector<int32_t>& slots = {});

  const config::ModelConfig& config() const { return config_; }
  const std::string& name() const { return name_; }
  int device() const { return device_; }
  int64_t bytes() const { return bytes_; }
  // Experts stored for `layer`, in storage order (all experts in id order unless sharded).
  const std::vector<int32_t>& held_experts(int32_t layer) const { return held_[static_cast<size_t>(layer)]; }
  // Expert slots of `layer` (>= held_experts(layer).size(); 0 for dense layers).
  int32_t num_slots(int32_t layer) const { return slots_[static_cast<size_t>(layer)]; }

  bf16* embed_tokens = nullptr;  // [V, H]
  bf16* lm_head = nullptr;       // [V, H] (== embed_tokens when tied)
  float* final_norm = nullptr;
  float* inv_freq = nullptr;  // [head_dim / 2]
  std::vector<CudaLayer> layers;

  // Bytes a decode step must read for one layer's attention and dense parts, one routed expert,
  // and the LM head (roofline accounting).
  int64_t attention_bytes(int32_t layer) const;
  int64_t expert_bytes() const;
  int64_t lm_head_bytes() const;

 private:
  CudaWeights() = default;
  void layout();  // assigns every pointer inside one allocation (bytes_ first, then pointers)
  // Validates; empty held = every expert, empty slots = as many as held.
  Result<void> set_held(const HeldExperts& held, const std::vector<int32_t>& slots);
  config::ModelConfig config_;
  std::string name_;
  int device_ = 0;
  void* arena_ = nullptr;
  int64_t bytes_ = 0;
  std::vector<float> host_inv_freq_;
  HeldExperts held_;            // [layer] -> expert ids stored (dense layers: empty)
  std::vector<int32_t> slots_;  // [layer] -> expert slots allocated
};

}  // namespace cuda
}  // namespace aurora::runtime
