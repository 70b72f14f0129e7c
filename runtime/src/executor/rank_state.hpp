// ModelExecutor::RankState: the buffers and step metadata of one expert-parallel rank, shared by
// the executor's translation units (attention in model_executor.cpp, MoE in expert_parallel.cpp).
// Private to the executor.
#pragma once

#include <vector>

#include "executor/model_executor.hpp"

namespace aurora::runtime {

template <class T>
T* ptr_of(const DeviceBuffer& b) {
  return b.as<T>();
}

// Everything one rank needs during a step, allocated once.
struct ModelExecutor::RankState {
  int32_t rank = 0;
  std::unique_ptr<Stream> stream;
  std::unique_ptr<ExchangePlanner> planner;
  std::vector<DeviceBuffer> k_cache, v_cache;  // [layer]

  // Host-side staging of the step's token metadata (copied to the backend's memory).
  std::vector<int32_t> h_ids, h_pos, h_seq, h_slots, h_tables;
  DeviceBuffer ids, pos, seq, slots, tables;
  int32_t num_tokens = 0;

  // Activations [max_tokens, ...].
  DeviceBuffer x, h, q, k, v, attn, tmp, moe_out, router_logits, gate_logits;
  DeviceBuffer topk_ids, topk_weights, keys, key_offsets, permuted, position;
  DeviceBuffer ffn_workspace, attn_workspace;

  // Expert-parallel exchange [max_tokens * top_k rows].
  DeviceBuffer dispatch_send, dispatch_recv, expert_in, expert_out, combine_send, combine_recv;
  DeviceBuffer local_keys, local_offsets, local_perm, local_pos;
  std::vector<int64_t> send_rows, all_rows;                                                     // [N], [N * N]
  std::vector<int64_t> send_offsets, recv_offsets, combine_send_offsets, combine_recv_offsets;  // [N + 1]
  TrafficMatrix traffic;
  // Window orders fitted to this step's counts, and the live plan when both are costed.
  ExchangePlan fitted_dispatch, fitted_combine;
  std::unique_ptr<ExchangePlanner> probe_planner;  // rank 0: costs the live order when the window runs
  // This step's wall time per layer in the count exchange and in the two exchanges (waits included).
  std::vector<double> count_seconds, exchange_seconds;
};

}  // namespace aurora::runtime
