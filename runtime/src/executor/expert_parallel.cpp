// The MoE layer under expert parallelism: route, dispatch (token rows to their experts' ranks),
// compute the local experts, combine (outputs back), weighted sum. Every rank calls this for every
// MoE layer of every step, tokens or not, because the exchanges are collective.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "aurora/config/check.hpp"
#include "executor/rank_state.hpp"

namespace aurora::runtime {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Rank emulation (rank_emulation.hpp): sleep, so that paced ranks burn no CPU.
void pace_until(std::chrono::steady_clock::time_point start, double seconds) {
  if (seconds <= 0) return;
  std::this_thread::sleep_until(
      start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds)));
}

}  // namespace

void ModelExecutor::moe_block(RankState& rs, int32_t layer, int32_t T) {
  const auto& c = model_->config;
  const LayerWeights& L = model_->layers[static_cast<size_t>(layer)];
  const LayerPlacement& lp = placement_.layers[static_cast<size_t>(layer)];
  Stream& s = *rs.stream;
  const int32_t n = options_.num_ranks, r = rs.rank;
  const int32_t H = c.hidden_size, K = c.num_experts_per_tok, E = c.num_experts;
  const int32_t items = T * K;
  const int64_t row_floats = H + 1;  // [expert id | hidden]
  const int64_t dispatch_row_bytes = row_floats * 4, combine_row_bytes = int64_t{H} * 4;
  float* x = ptr_of<float>(rs.x);
  float* h = ptr_of<float>(rs.h);
  int32_t* topk_ids = ptr_of<int32_t>(rs.topk_ids);
  float* topk_weights = ptr_of<float>(rs.topk_weights);
  int32_t* position = ptr_of<int32_t>(rs.position);

  // 1. Route the local tokens.
  if (T > 0) {
    backend_.rms_norm(kernels::RmsNormParams{x, L.post_attention_norm, h, T, H, static_cast<float>(c.rms_norm_eps)}, s);
    kernels::LinearParams router;
    router.x = h;
    router.weight = L.router;
    router.y = ptr_of<float>(rs.router_logits);
    router.num_rows = T;
    router.in_features = H;
    router.out_features = E;
    backend_.linear(router, s);
    const auto norm = c.topk_norm == config::TopKNorm::kRenormalize ? kernels::TopKNormalization::kRenormalize
                                                                    : kernels::TopKNormalization::kNone;
    backend_.topk_routing(
        kernels::TopKRoutingParams{ptr_of<float>(rs.router_logits), topk_ids, topk_weights, T, E, K, norm}, s);
    backend_.synchronize(s);  // the ids are read on the host below (statistics, layout)
  }
  auto& counts = result_.routed_tokens[static_cast<size_t>(layer)];
  int32_t* keys = ptr_of<int32_t>(rs.keys);
  for (int32_t i = 0; i < items; ++i) {
    const int32_t e = topk_ids[i];
    ++counts[static_cast<size_t>(r) * E + e];
    keys[i] = lp.key[static_cast<size_t>(e)];
  }

  // 2. Lay the (token, expert) rows out by destination rank, then expert.
  int32_t* key_offsets = ptr_of<int32_t>(rs.key_offsets);
  int32_t* permuted = ptr_of<int32_t>(rs.permuted);
  backend_.permute(kernels::PermuteParams{keys, items, E, key_offsets, permuted, position}, s);
  for (int32_t d = 0; d < n; ++d) {
    rs.send_rows[static_cast<size_t>(d)] =
        key_offsets[lp.rank_offsets[static_cast<size_t>(d) + 1]] - key_offsets[lp.rank_offsets[static_cast<size_t>(d)]];
  }
  float* send = ptr_of<float>(rs.dispatch_send);
  int32_t* token_of_row = ptr_of<int32_t>(rs.local_keys);  // scratch until step 4
  for (int32_t p = 0; p < items; ++p) token_of_row[p] = permuted[p] / K;
  backend_.gather_rows(kernels::GatherRowsParams{h, token_of_row, send + 1, items, H, 0, row_floats}, s);
  for (int32_t p = 0; p < items; ++p) {
    const int32_t expert = topk_ids[permuted[p]];
    std::memcpy(send + p * row_floats, &expert, 4);
  }

  // 3. Dispatch: agree on the row counts, plan, exchange.
  using SteadyClock = std::chrono::steady_clock;
  RankStepTiming& timing = result_.rank_timing[static_cast<size_t>(r)];
  const LayerOrder& order = orders_[static_cast<size_t>(layer)];
  const bool use_window = order.dispatch != nullptr && order.use_window;
  const bool cost_both = measure_both_ && order.dispatch != nullptr && r == 0;
  LayerExchangeCost cost;
  auto t0 = SteadyClock::now();
  comm_->all_gather(r, rs.send_rows.data(), static_cast<size_t>(n) * 8, rs.all_rows.data(), s);
  const RankEmulation& emu = options_.emulation;
  // Emulated links: one phase latency for the counts; an exchange as long as the network model says
  // its plan takes on links of emu.link_gbps (every rank computes the same value from the same plan).
  if (emu.paces_links()) pace_until(SteadyClock::now(), emu.phase_latency_us * 1e-6);
  auto pace_exchange = [&](const ExchangePlan& plan) {
    if (emu.paces_links()) {
      pace_until(SteadyClock::now(), predict_exchange_seconds(plan, n, emu.link_gbps, emu.phase_latency_us * 1e-6));
    }
  };
  cost.count_seconds = seconds_since(t0);
  double exchange_seconds = cost.count_seconds;
  auto rows_at = [&](int32_t src, int32_t dst) { return rs.all_rows[static_cast<size_t>(src) * n + dst]; };
  rs.send_offsets[0] = rs.recv_offsets[0] = 0;
  for (int32_t o = 0; o < n; ++o) {
    rs.send_offsets[static_cast<size_t>(o) + 1] =
        rs.send_offsets[static_cast<size_t>(o)] + rows_at(r, o) * dispatch_row_bytes;
    rs.recv_offsets[static_cast<size_t>(o) + 1] =
        rs.recv_offsets[static_cast<size_t>(o)] + rows_at(o, r) * dispatch_row_bytes;
  }
  for (int32_t a = 0; a < n; ++a) {
    for (int32_t b = 0; b < n; ++b)
      rs.traffic.bytes[static_cast<size_t>(a) * n + b] = rows_at(a, b) * dispatch_row_bytes;
  }
  // The order: planned now from the counts (live), or the window's template fitted to them. On
  // measuring steps rank 0 also makes the other one and costs both on the same counts.
  auto plan_exchange = [&](const std::shared_ptr<const OrderTemplate>& tmpl,
                           ExchangePlan& fitted) -> const ExchangePlan& {
    auto start = SteadyClock::now();
    const ExchangePlan* chosen = nullptr;
    if (use_window) {
      fit_order(*tmpl, rs.traffic, options_.link_gbps, options_.phase_latency_s, fitted);
      cost.fit_seconds += seconds_since(start);
      chosen = &fitted;
    } else {
      chosen = &rs.planner->plan(rs.traffic);
      cost.plan_seconds += seconds_since(start);
    }
    if (cost_both) {
      start = SteadyClock::now();
      const ExchangePlan* live = chosen;
      if (use_window) {
        if (!rs.probe_planner) rs.probe_planner = make_aurora_planner(n, options_.link_gbps, options_.phase_latency_s);
        live = &rs.probe_planner->plan(rs.traffic);
        cost.plan_seconds += seconds_since(start);
      } else {
        fit_order(*tmpl, rs.traffic, options_.link_gbps, options_.phase_latency_s, fitted);
        cost.fit_seconds += seconds_since(start);
      }
      cost.live_estimated_seconds += predict_exchange_seconds(*live, n, options_.link_gbps, options_.phase_latency_s);
      cost.window_estimated_seconds +=
          predict_exchange_seconds(fitted, n, options_.link_gbps, options_.phase_latency_s);
    }
    return *chosen;
  };
  const ExchangePlan& dispatch_plan = plan_exchange(order.dispatch, rs.fitted_dispatch);
  auto* recv = ptr_of<float>(rs.dispatch_recv);
  t0 = SteadyClock::now();
  comm_->all_to_all_v(r,
                      AllToAllBuffers{reinterpret_cast<const std::byte*>(send), rs.send_offsets.data(),
                                      reinterpret_cast<std::byte*>(recv), rs.recv_offsets.data()},
                      dispatch_plan, s);
  pace_exchange(dispatch_plan);
  cost.measured_seconds += seconds_since(t0);
  const int32_t received = static_cast<int32_t>(rs.recv_offsets[static_cast<size_t>(n)] / dispatch_row_bytes);
  cost.order_source = use_window ? "window" : "live";
  cost.has_both = cost_both;
  cost.dispatch_strategy = dispatch_plan.strategy;
  cost.estimated_seconds = dispatch_plan.estimated_seconds;
  cost.lower_bound_seconds = dispatch_plan.lower_bound_seconds;
  cost.num_phases = static_cast<int32_t>(dispatch_plan.phases.size());

  // 4. Run the local experts on what arrived, grouped by expert.
  const auto& mine = lp.rank_experts[static_cast<size_t>(r)];
  const int32_t num_local = static_cast<int32_t>(mine.size());
  int32_t* local_keys = ptr_of<int32_t>(rs.local_keys);
  for (int32_t j = 0; j < received; ++j) {
    int32_t expert;
    std::memcpy(&expert, recv + j * row_floats, 4);
    AURORA_CHECK_MSG(expert >= 0 && expert < E && lp.owner[static_cast<size_t>(expert)] == r,
                     "rank " << r << " received a row for expert " << expert << " it does not own");
    local_keys[j] = lp.local_index[static_cast<size_t>(expert)];
  }
  int32_t* local_offsets = ptr_of<int32_t>(rs.local_offsets);
  int32_t* local_perm = ptr_of<int32_t>(rs.local_perm);
  int32_t* local_pos = ptr_of<int32_t>(rs.local_pos);
  backend_.permute(kernels::PermuteParams{local_keys, received, num_local, local_offsets, local_perm, local_pos}, s);
  float* expert_in = ptr_of<float>(rs.expert_in);
  float* expert_out = ptr_of<float>(rs.expert_out);
  backend_.gather_rows(kernels::GatherRowsParams{recv + 1, local_perm, expert_in, received, H, row_floats, 0}, s);
  const auto expert_start = SteadyClock::now();
  const auto& layer_weights = expert_weights_[static_cast<size_t>(layer)];
  for (int32_t i = 0; i < num_local; ++i) {
    const int32_t begin = local_offsets[i], end = local_offsets[i + 1];
    if (begin == end) continue;
    const FfnWeights& w = layer_weights[static_cast<size_t>(mine[static_cast<size_t>(i)])];
    kernels::SwiGluFfnParams f;
    f.x = expert_in + int64_t{begin} * H;
    f.w_gate = w.gate;
    f.w_up = w.up;
    f.w_down = w.down;
    f.y = expert_out + int64_t{begin} * H;
    f.num_rows = end - begin;
    f.hidden = H;
    f.intermediate = w.intermediate;
    backend_.swiglu_ffn(f, ptr_of<float>(rs.ffn_workspace), static_cast<int64_t>(rs.ffn_workspace.bytes() / 4), s);
  }
  // Emulated expert compute: this rank's rows at expert_us_per_row / its speed (the real work counts).
  if (emu.paces_experts()) pace_until(expert_start, received * emu.expert_us_per_row * 1e-6 / emu.rank_speed(r));
  timing.expert_seconds += seconds_since(expert_start);
  timing.rows_computed += received;
  // Back to arrival order, so that each source gets its rows in the order it sent them.
  float* combine_send = ptr_of<float>(rs.combine_send);
  backend_.gather_rows(kernels::GatherRowsParams{expert_out, local_pos, combine_send, received, H, 0, 0}, s);

  // 5. Combine: the reverse exchange (what came from rank o goes back to rank o).
  for (int32_t o = 0; o <= n; ++o) {
    rs.combine_send_offsets[static_cast<size_t>(o)] =
        rs.recv_offsets[static_cast<size_t>(o)] / dispatch_row_bytes * combine_row_bytes;
    rs.combine_recv_offsets[static_cast<size_t>(o)] =
        rs.send_offsets[static_cast<size_t>(o)] / dispatch_row_bytes * combine_row_bytes;
  }
  for (int32_t a = 0; a < n; ++a) {
    for (int32_t b = 0; b < n; ++b)
      rs.traffic.bytes[static_cast<size_t>(a) * n + b] = rows_at(b, a) * combine_row_bytes;
  }
  const ExchangePlan& combine_plan = plan_exchange(order.combine, rs.fitted_combine);
  float* combine_recv = ptr_of<float>(rs.combine_recv);
  t0 = SteadyClock::now();
  comm_->all_to_all_v(r,
                      AllToAllBuffers{reinterpret_cast<const std::byte*>(combine_send), rs.combine_send_offsets.data(),
                                      reinterpret_cast<std::byte*>(combine_recv), rs.combine_recv_offsets.data()},
                      combine_plan, s);
  pace_exchange(combine_plan);
  cost.measured_seconds += seconds_since(t0);
  exchange_seconds += cost.measured_seconds;
  timing.exchange_seconds += exchange_seconds;
  rs.count_seconds[static_cast<size_t>(layer)] = cost.count_seconds;
  rs.exchange_seconds[static_cast<size_t>(layer)] = cost.measured_seconds;
  if (r == 0) {
    cost.estimated_seconds += combine_plan.estimated_seconds;
    cost.lower_bound_seconds += combine_plan.lower_bound_seconds;
    cost.num_phases += static_cast<int32_t>(combine_plan.phases.size());
    int64_t bytes = 0;
    for (int32_t a = 0; a < n; ++a) {
      for (int32_t b = 0; b < n; ++b) {
        if (a != b) bytes += rows_at(a, b) * (dispatch_row_bytes + combine_row_bytes);
      }
    }
    cost.bytes = bytes;
    result_.exchange[static_cast<size_t>(layer)] = cost;
  }
  if (T == 0) return;

  // 6. Weighted sum of each token's experts (fixed order), shared expert, residual.
  float* moe_out = ptr_of<float>(rs.moe_out);
  backend_.combine(kernels::CombineParams{combine_recv, position, topk_ids, topk_weights, moe_out, T, K, H, 0}, s);
  if (L.shared_expert.gate) {
    float* shared = ptr_of<float>(rs.tmp);
    kernels::SwiGluFfnParams f;
    f.x = h;
    f.w_gate = L.shared_expert.gate;
    f.w_up = L.shared_expert.up;
    f.w_down = L.shared_expert.down;
    f.y = shared;
    f.num_rows = T;
    f.hidden = H;
    f.intermediate = L.shared_expert.intermediate;
    backend_.swiglu_ffn(f, ptr_of<float>(rs.ffn_workspace), static_cast<int64_t>(rs.ffn_workspace.bytes() / 4), s);
    kernels::LinearParams g;
    g.x = h;
    g.weight = L.shared_expert_gate;
    g.y = ptr_of<float>(rs.gate_logits);
    g.num_rows = T;
    g.in_features = H;
    g.out_features = 1;
    backend_.linear(g, s);
    backend_.sigmoid_gate_add(kernels::SigmoidGateAddParams{moe_out, shared, ptr_of<float>(rs.gate_logits), T, H}, s);
  }
  backend_.add(kernels::AddParams{x, moe_out, int64_t{T} * H}, s);
}

}  // namespace aurora::runtime
