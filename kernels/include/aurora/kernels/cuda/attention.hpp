// Paged attention on the GPU, for decode and prefill tokens alike (twin: cpu::paged_attention).
//
// Each token's context is cut into partitions; one block per (partition, kv head, token) computes
// the scores of the kv head's query group against its keys, a local softmax and the weighted sum
// of values. A token with one partition writes its output directly; otherwise the partitions leave
// (max, sum, partial output) in the workspace and the last block to finish (an atomic ticket per
// token and kv head) merges them, so one launch does the whole attention and the grid shape
// depends only on the batch shape (CUDA-graph friendly). Softmax and accumulation in float32.
// bf16 caches, by default: launches of <= kClusterAttentionAutoTokens tokens the cluster kernel
// below (or the tensor-core kernel: set_small_decode_attention);
// larger ones (head_dim 64 or 128, <= 16 query heads per kv head) the tensor-core decode kernel
// (attention_decode.cu: a block per (token, kv head, range of 512 keys; a last range of <= 128
// keys joins the one before), the group's query heads as the mma's rows, keys streamed 16 at a
// time through a three-stage ring per warp, online softmax, the four warps merged in order, the
// ranges by the last block; AURORA_DECODE_MMA_ATTENTION=0 turns it off); otherwise (or with
// partition_size 64 or 128) partitions of 128 positions (one per thread; 64 if partition_size asks),
// the partition's K and V rows copied into shared memory with one round of 16-byte asynchronous
// copies, scores with one thread per position, values with each thread on 8 dims of a slice of the
// positions. With AURORA_CLUSTER_ATTENTION=1 (or cluster_blocks > 0): thread-block clusters per
// (token, kv head) (attention_cluster.cu): the context cut into at most 16 equal ranges of >= 32
// positions (a function of the position alone), each staged through shared memory, merged through
// distributed shared memory without workspace or ticket; a device without clusters falls back. float32 caches:
// partitions of kAttentionPartition positions, read directly. Every kernel gives a row the same bits whatever the batch
// and grid.
//
// Workspace: attention_workspace_bytes(); zero it once after allocation (the tickets reset
// themselves). Also: launch_write_kv_cache, the float32 twin of cpu::write_kv_cache.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "aurora/kernels/attention.hpp"
#include "aurora/kernels/cuda/dtype.hpp"
#include "aurora/kernels/cuda/norm_rope.hpp"

namespace aurora::kernels::cuda {

constexpr int32_t kAttentionPartition = 64;  // positions per block
constexpr int32_t kAttentionMaxHeadDim = 256;
constexpr int32_t kAttentionMaxGroup = 16;  // query heads per kv head

struct PagedAttentionCudaParams {
  const float* q = nullptr;  // [num_tokens, num_q_heads, head_dim]
  void* out = nullptr;       // [num_tokens, num_q_heads, head_dim]
  DType out_dtype = DType::kBF16;
  const void* k_cache = nullptr;  // [num_blocks, block_size, num_kv_heads, head_dim]
  const void* v_cache = nullptr;
  DType kv_dtype = DType::kBF16;
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq]
  const int32_t* token_seq = nullptr;     // [num_tokens]
  const int32_t* token_pos = nullptr;     // [num_tokens]
  int32_t num_tokens = 0;
  int32_t num_q_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t block_size = 0;
  int32_t max_blocks_per_seq = 0;
  int32_t sliding_window = 0;
  int32_t max_context = 0;  // upper bound of any token's attended positions (sizes the grid)
  // Optional host bound on token_pos + 1 over this launch's tokens (0 = max_context): sizes the
  // partitioned kernel's grid, whose blocks past a token's context exit at once, and the cluster
  // kernel's shared-memory staging. A server's max_context (16384) at a 512-token context would
  // launch 32x the blocks that work, and stage 64-row double buffers where one 36-row buffer does.
  int32_t positions_bound = 0;
  float scale = 1.0f;
  int32_t partition_size = 0;      // bf16 caches: 0 = default kernel; 64 or 128: the partitioned kernel
  int32_t cluster_blocks = 0;      // > 0: the cluster kernel with that many blocks per (token, kv head)
                                   // (1..16, tests); -1: the cluster kernel, clusters sized by the grid;
                                   // 0: the default kernel (cluster_attention_for(num_tokens))
  bool decode_mma = false;         // bf16 caches: the tensor-core decode kernel whatever the batch (tests)
  int32_t decode_mma_range = 0;    // its keys per block: 0 = by launch size (64 for <= 4 tokens, else
                                   // 512); else a multiple of 64 (tests)
  int32_t decode_mma_cluster = 0;  // its ranges as one cluster of this many blocks per (token, kv
                                   // head): 0 = by launch (set_small_decode_attention), 4, 8 or 16 =
                                   // that size whatever the batch, -1 = no clusters (tests)
  // Decode steps (one token per sequence, the prologue's tokens = these tokens): the qkv prologue
  // folded into the cluster kernel (each block forms its query heads, the block holding the token's
  // position writes its K/V row), one launch less per layer; q_out is not written. Where the cluster
  // kernel does not run, launch_paged_attention launches the prologue first. Same bits either way.
  bool fused_prologue = false;
  QkvPrologueParams prologue;
};
// The default bf16-cache attention kernel: the cluster kernel for launches of at most this many
// tokens (AURORA_CLUSTER_ATTENTION=1: always, =0: never), else the partitioned one.
inline constexpr int32_t kClusterAttentionAutoTokens = 4;
// Launches of <= kClusterAttentionAutoTokens tokens take the tensor-core decode kernel instead:
// where each kv head has a group of query heads, its ranges as one thread-block cluster of 16, 8 or
// 4 blocks per (token, kv head) (the largest size whose clusters fill at most one block per
// multiprocessor; merged through distributed shared memory; none fitting: the cluster kernel), and
// where each kv head has one query head, ranges merged by the last block. Tests: 1 = every such
// launch, with clusters where they fit, 2 = every such launch without clusters, 0 = none, -1 = back
// to the default (AURORA_DECODE_MMA_SMALL=0|1 sets it at start). Graphs keep the kernels they were
// captured with.
void set_small_decode_attention(int mode);
// Whether launch_paged_attention folds the prologue into a default launch of `num_tokens` bf16-cache
// tokens (the cluster kernel chosen, AURORA_FUSED_PROLOGUE=1, the warp prologue in use).
bool attention_folds_prologue(int32_t num_tokens);
// Whether the cluster kernel takes this head shape (query heads per kv head x head_dim / 8 <= 256:
// its value phase holds at most two such items per thread); other shapes (e.g. 16 query heads of
// 256 dims per kv head) always run the partitioned kernel.
bool cluster_attention_supports(int32_t head_dim, int32_t group);

// Prefill attention on tensor cores (flash attention; attention_prefill.cu): one launch over tiles
// of up to kPrefillTileTokens consecutive positions of one sequence each. `tiles` is a device array
// [num_tiles][2] = {first token, token count}, the token indices into p.q / p.out / p.token_seq /
// p.token_pos; a tile's tokens must hold consecutive positions of one sequence (a prefill chunk cut
// in tiles), and their K/V rows must be in the cache. Tokens outside the tiles are not written.
// Queries are rounded to bf16 for the tensor cores (so rows differ from the other kernels' in the
// last bits); float32 softmax and sums. Needs no workspace. bf16 caches, head_dim 64 or 128.
inline constexpr int32_t kPrefillTileTokens = 64;
bool prefill_attention_supports(const PagedAttentionCudaParams& p);
// Whether callers use it for prefill chunks: on unless AURORA_FLASH_ATTENTION=0 (read once).
bool prefill_attention_enabled();
void launch_prefill_attention(const PagedAttentionCudaParams& p, const int32_t* tiles, int32_t num_tiles,
                              cudaStream_t stream);

size_t attention_workspace_bytes(int32_t num_tokens, int32_t num_q_heads, int32_t num_kv_heads, int32_t head_dim,
                                 int32_t max_context);
void launch_paged_attention(const PagedAttentionCudaParams& p, void* workspace, size_t workspace_bytes,
                            cudaStream_t stream);

void launch_write_kv_cache(const KvCacheWriteParams& p, cudaStream_t stream);

}  // namespace aurora::kernels::cuda
