// CudaModelRunner's private state for expert parallelism and timeline recording, shared by
// cuda_runner.cpp (owner) and cuda_expert_parallel.cpp (the per-layer exchange). Private.
#pragma once

#include <cuda_runtime.h>

#include <memory>
#include <vector>

#include "aurora/runtime/exchange_plan.hpp"
#include "comm/order_template.hpp"
#include "cuda_runner.hpp"
#include "executor/expert_placement.hpp"

namespace aurora::runtime::cuda {

struct CudaModelRunner::EpState {
  ExpertParallelConfig cfg;
  int device = 0;
  int32_t n = 1;  // ranks
  int32_t E = 0, K = 0, H = 0, I = 0;
  int64_t max_recv = 0;  // rows this rank can receive in one exchange
  bool use_turns = false;
  cudaStream_t comm = nullptr;
  cudaEvent_t ev_routed = nullptr, ev_counts = nullptr, ev_dispatched = nullptr, ev_experts = nullptr,
              ev_combined = nullptr, ev_segment = nullptr;

  // Device buffers.
  int32_t* key_of_expert = nullptr;  // [layers, E]
  int32_t* expert_of_key = nullptr;  // [layers, E]
  int32_t* key_offsets = nullptr;    // [E + 1]
  int32_t* key_permuted = nullptr;   // [max items]
  int32_t* all_offsets = nullptr;    // [n, E + 1]
  bf16* send16 = nullptr;            // [max items, H]   dispatch rows, key order
  bf16* recv16 = nullptr;            // [max_recv, H]    arrival order
  bf16* act16 = nullptr;             // [max_recv, I]    grouped order
  float* out = nullptr;              // [max_recv, H]    grouped order
  float* combine_send = nullptr;     // [max_recv, H]    arrival order
  int32_t* layout = nullptr;         // [2E + 2 + 2 max_recv]: local offsets | active | (unused) | rows | inverse

  // Pinned host mirrors.
  int32_t* host_all_offsets = nullptr;
  int32_t* host_layout = nullptr;

  // Host-side exchange description (reused).
  std::vector<int64_t> send_off, recv_off, csend_off, crecv_off;
  TrafficMatrix traffic;

  // Expert slots (online re-placement): per layer, the local key (this rank's j-th expert in key
  // order) computed from each weight slot, or -1 (free or receiving). Groups of the expert GEMV and
  // GEMMs are slots, so a migrated expert is read where its copy was written.
  std::vector<std::vector<int32_t>> key_of_slot;  // [layer][slot]

  // Window order templates (online): per layer, and whether steps use them.
  struct LayerOrder {
    std::shared_ptr<const OrderTemplate> dispatch, combine;
    bool use_window = false;
  };
  std::vector<LayerOrder> orders;  // [layer]
  bool measure_both = false;
  ExchangePlan fitted_dispatch, fitted_combine;
  std::unique_ptr<ExchangePlanner> probe_planner;  // live plans on measuring steps with the window order

  // Per-rank timings: per layer, timing events (dispatch begin/end on the communication stream,
  // experts begin/end on the compute stream, combine begin/end), read after the step (no sync).
  static constexpr int32_t kTimingEvents = 6;
  std::vector<cudaEvent_t> timing;     // [layer * kTimingEvents + i]
  std::vector<int64_t> rows_computed;  // [layer]: rows this rank's experts processed
  std::vector<bool> timed;             // [layer]: recorded in the last step

  std::vector<void*> owned;
  ~EpState();
};

struct CudaModelRunner::Timeline {
  struct Span {
    const char* label;
    int32_t layer;
    bool comm;
    int32_t start_event;
    int32_t end_event;
  };
  int device = 0;
  std::vector<cudaEvent_t> events;  // pool, reused every step
  int32_t used = 0;
  std::vector<Span> spans;
  ~Timeline();
};

}  // namespace aurora::runtime::cuda
