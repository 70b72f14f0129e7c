// The CUDA runner's device buffers and pinned host mirrors (private to runtime/cuda/cuda_runner*.cpp).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "aurora/kernels/cuda/cuda_check.hpp"
#include "aurora/kernels/sampling.hpp"
#include "cuda_runner.hpp"

namespace aurora::runtime::cuda {

inline constexpr int32_t kAttentionTokensPerLaunch = 128;  // decode-kernel attention launches (workspace bound)

// Every device buffer of the runner, and the pinned host mirrors of the per-step inputs/outputs.
struct CudaModelRunner::Buffers {
  std::vector<void*> owned;
  template <class T>
  T* alloc(int64_t count, int64_t& total) {
    void* p = nullptr;
    const size_t bytes = static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(T);
    AURORA_CUDA_CHECK(cudaMalloc(&p, bytes));
    AURORA_CUDA_CHECK(cudaMemset(p, 0, bytes));
    owned.push_back(p);
    total += static_cast<int64_t>(bytes);
    return static_cast<T*>(p);
  }

  // Per-step inputs: one block of int32 words, mirrored in pinned memory, copied with one memcpy.
  int32_t* in_dev = nullptr;
  int32_t* in_host = nullptr;
  int64_t in_words = 0;
  int64_t off_ids = 0, off_pos = 0, off_seq = 0, off_slots = 0, off_rows = 0, off_count = 0, off_tiles = 0,
          off_tables = 0, off_sampling = 0;
  int32_t* ids() const { return in_dev + off_ids; }
  int32_t* pos() const { return in_dev + off_pos; }
  int32_t* seq() const { return in_dev + off_seq; }
  int32_t* slots() const { return in_dev + off_slots; }
  int32_t* rows() const { return in_dev + off_rows; }
  int32_t* count() const { return in_dev + off_count; }
  int32_t* tiles() const { return in_dev + off_tiles; }  // prefill attention tiles [n][2]
  int32_t* tables() const { return in_dev + off_tables; }
  kernels::SamplingRow* sampling() const { return reinterpret_cast<kernels::SamplingRow*>(in_dev + off_sampling); }

  float* x = nullptr;
  float* h = nullptr;
  bf16* h16 = nullptr;
  float* qkv = nullptr;
  float* q = nullptr;
  bf16* attn16 = nullptr;
  float* router_logits = nullptr;
  int32_t* topk_ids = nullptr;
  float* topk_weights = nullptr;
  int32_t* offsets = nullptr;
  int32_t* permuted = nullptr;
  int32_t* position = nullptr;
  int32_t* active = nullptr;
  int32_t* num_active = nullptr;
  int32_t* ticket = nullptr;
  float* split_ws = nullptr;
  int32_t* split_tickets = nullptr;
  int64_t* expert_tokens = nullptr;  // [layers, experts], then the fused expert FFN's counters:
  int32_t* ffn_counters = nullptr;   // [layers, ffn_counter_stride] (zeroed with expert_tokens per step)
  int64_t ffn_counter_stride = 0;
  int64_t count_words = 0;  // int64 words of both, zeroed at each step's start
  bf16* act16 = nullptr;
  float* expert_out = nullptr;
  float* shared_out = nullptr;
  float* shared_gate = nullptr;
  bf16* expert_in16 = nullptr;
  float* gate_up = nullptr;
  float* logits = nullptr;
  int32_t* tokens = nullptr;
  void* attn_ws = nullptr;
  size_t attn_ws_bytes = 0;
  void* gemm_ws = nullptr;
  std::vector<bf16*> k_cache, v_cache;
  void* kv_arena = nullptr;

  // Pinned outputs.
  float* host_logits = nullptr;
  int32_t* host_tokens = nullptr;
  int64_t* host_counts = nullptr;
  int32_t* host_offsets = nullptr;

  ~Buffers() {
    for (void* p : owned) cudaFree(p);
    if (kv_arena) cudaFree(kv_arena);
    for (void* p : {static_cast<void*>(in_host), static_cast<void*>(host_logits), static_cast<void*>(host_tokens),
                    static_cast<void*>(host_counts), static_cast<void*>(host_offsets)}) {
      if (p) cudaFreeHost(p);
    }
  }
};

}  // namespace aurora::runtime::cuda
