// Causal attention over a paged KV cache, for prefill chunks and decode steps alike, with GQA and
// an optional sliding window; and the kernel that writes new keys and values into their slots.
//
// Cache layout (one layer): [num_blocks, block_size, num_kv_heads, head_dim] for K and for V.
// A token at position p of sequence s attends to positions [max(0, p - window + 1), p] of s, read
// through s's block table; its own K/V must already be written (write_kv_cache first).
// Scores are (q . k) * scale, softmax in float32, then the weighted sum of V: eager attention as
// transformers computes it. Contract: tokens are independent (batch invariant); no allocation:
// the caller passes a workspace of attention_workspace_floats() floats.
#pragma once

#include <cstdint>

namespace aurora::kernels {

struct KvCacheWriteParams {
  const float* k = nullptr;  // [num_tokens, num_kv_heads, head_dim]
  const float* v = nullptr;  // [num_tokens, num_kv_heads, head_dim]
  float* k_cache = nullptr;  // [num_blocks, block_size, num_kv_heads, head_dim]
  float* v_cache = nullptr;
  const int32_t* slot_mapping = nullptr;  // [num_tokens]: block * block_size + offset
  int32_t num_tokens = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
};

struct PagedAttentionParams {
  const float* q = nullptr;        // [num_tokens, num_q_heads, head_dim]
  float* out = nullptr;            // [num_tokens, num_q_heads, head_dim]
  const float* k_cache = nullptr;  // [num_blocks, block_size, num_kv_heads, head_dim]
  const float* v_cache = nullptr;
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq]
  const int32_t* token_seq = nullptr;     // [num_tokens]: row of block_tables
  const int32_t* token_pos = nullptr;     // [num_tokens]: absolute position
  int32_t num_tokens = 0;
  int32_t num_q_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t block_size = 0;
  int32_t max_blocks_per_seq = 0;
  int32_t sliding_window = 0;  // 0 = full causal attention
  float scale = 1.0f;
};

namespace cpu {
void write_kv_cache(const KvCacheWriteParams& params);
// Workspace: one score per attended position (max_context floats).
inline int64_t attention_workspace_floats(int32_t max_context) { return max_context; }
void paged_attention(const PagedAttentionParams& params, float* workspace, int64_t workspace_floats);
}  // namespace cpu

}  // namespace aurora::kernels
