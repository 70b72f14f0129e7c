// Expert parallelism in the CUDA runner: the per-layer exchange (regroup by key, count
// all-gather, planned dispatch, local experts, planned combine), the colocated compute turns, and
// the timeline events. See cuda_runner.hpp and docs/multi_gpu.md.
#include <algorithm>
#include <chrono>

#include "aurora/config/check.hpp"
#include "aurora/kernels/cuda/cuda_check.hpp"
#include "aurora/kernels/cuda/elementwise.hpp"
#include "aurora/kernels/cuda/gemv.hpp"
#include "aurora/kernels/cuda/moe_exchange.hpp"
#include "cuda_ep_state.hpp"
#include "executor/compute_turns.hpp"
#include "nccl_communicator.hpp"

namespace aurora::runtime::cuda {

namespace kc = kernels::cuda;

CudaModelRunner::EpState::~EpState() {
  cudaSetDevice(device);
  for (cudaEvent_t e : {ev_routed, ev_counts, ev_dispatched, ev_experts, ev_combined, ev_segment}) {
    if (e) cudaEventDestroy(e);
  }
  for (cudaEvent_t e : timing) cudaEventDestroy(e);
  if (comm) cudaStreamDestroy(comm);
  for (void* p : owned) cudaFree(p);
  if (host_all_offsets) cudaFreeHost(host_all_offsets);
  if (host_layout) cudaFreeHost(host_layout);
}

CudaModelRunner::Timeline::~Timeline() {
  cudaSetDevice(device);
  for (cudaEvent_t e : events) cudaEventDestroy(e);
}

Result<void> CudaModelRunner::enable_expert_parallel(ExpertParallelConfig config) {
  const auto& c = weights_->config();
  if (!config.comm || !config.placement || !config.planner) {
    return Error::invalid("expert_parallel", "needs a communicator, a placement and a planner");
  }
  const ExpertPlacement& pl = *config.placement;
  const int32_t n = config.comm->num_ranks();
  if (config.rank < 0 || config.rank >= n) {
    return Error::invalid("expert_parallel.rank",
                          std::to_string(config.rank) + " is outside [0, " + std::to_string(n) + ")");
  }
  if (pl.num_ranks != n || pl.num_experts != c.num_experts || static_cast<int32_t>(pl.layers.size()) != c.num_layers) {
    return Error::invalid("expert_parallel.placement",
                          "placement of " + std::to_string(pl.num_experts) + " experts on " +
                              std::to_string(pl.num_ranks) + " ranks does not fit the model (" +
                              std::to_string(c.num_experts) + " experts, " + std::to_string(n) + " ranks)");
  }
  for (int32_t l = 0; l < c.num_layers; ++l) {
    if (!c.layer_is_moe[static_cast<size_t>(l)]) continue;
    if (weights_->held_experts(l) != pl.layers[static_cast<size_t>(l)].rank_experts[static_cast<size_t>(config.rank)]) {
      return Error::invalid("expert_parallel.placement.layers[" + std::to_string(l) + "]",
                            "rank " + std::to_string(config.rank) + "'s weights hold other experts than its placement");
    }
  }
  return capture_errors([&] {
    AURORA_CUDA_CHECK(cudaSetDevice(weights_->device()));
    auto st = std::make_unique<EpState>();
    st->device = weights_->device();
    st->n = n;
    st->E = c.num_experts;
    st->K = c.num_experts_per_tok;
    st->H = c.hidden_size;
    st->I = c.moe_intermediate_size;
    const int64_t max_items = int64_t{options_.max_tokens_per_step} * st->K;
    st->max_recv = max_items * n;
    auto alloc = [&](size_t bytes) {
      void* p = nullptr;
      AURORA_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(bytes, 16)));
      st->owned.push_back(p);
      return p;
    };
    const size_t E = static_cast<size_t>(st->E), layers = static_cast<size_t>(c.num_layers);
    std::vector<int32_t> key_of(layers * E), expert_of(layers * E);
    for (size_t l = 0; l < layers; ++l) {
      for (size_t e = 0; e < E; ++e) {
        const auto& lp = pl.layers[l];
        const int32_t k = lp.key.empty() ? static_cast<int32_t>(e) : lp.key[e];
        key_of[l * E + e] = k;
        expert_of[l * E + static_cast<size_t>(k)] = static_cast<int32_t>(e);
      }
    }
    st->key_of_expert = static_cast<int32_t*>(alloc(key_of.size() * 4));
    st->expert_of_key = static_cast<int32_t*>(alloc(expert_of.size() * 4));
    AURORA_CUDA_CHECK(cudaMemcpy(st->key_of_expert, key_of.data(), key_of.size() * 4, cudaMemcpyHostToDevice));
    AURORA_CUDA_CHECK(cudaMemcpy(st->expert_of_key, expert_of.data(), expert_of.size() * 4, cudaMemcpyHostToDevice));
    const size_t H = static_cast<size_t>(st->H), I = static_cast<size_t>(st->I), R = static_cast<size_t>(st->max_recv);
    st->key_offsets = static_cast<int32_t*>(alloc((E + 1) * 4));
    st->key_permuted = static_cast<int32_t*>(alloc(static_cast<size_t>(max_items) * 4));
    st->all_offsets = static_cast<int32_t*>(alloc(static_cast<size_t>(n) * (E + 1) * 4));
    st->send16 = static_cast<bf16*>(alloc(static_cast<size_t>(max_items) * H * 2));
    st->recv16 = static_cast<bf16*>(alloc(R * H * 2));
    st->act16 = static_cast<bf16*>(alloc(R * I * 2));
    st->out = static_cast<float*>(alloc(R * H * 4));
    st->combine_send = static_cast<float*>(alloc(R * H * 4));
    const size_t layout_words = 2 * E + 2 + 2 * R;
    st->layout = static_cast<int32_t*>(alloc(layout_words * 4));
    AURORA_CUDA_CHECK(cudaMallocHost(&st->host_all_offsets, static_cast<size_t>(n) * (E + 1) * 4));
    AURORA_CUDA_CHECK(cudaMallocHost(&st->host_layout, layout_words * 4));
    for (cudaEvent_t* e :
         {&st->ev_routed, &st->ev_counts, &st->ev_dispatched, &st->ev_experts, &st->ev_combined, &st->ev_segment}) {
      AURORA_CUDA_CHECK(cudaEventCreateWithFlags(e, cudaEventDisableTiming));
    }
    AURORA_CUDA_CHECK(cudaStreamCreateWithFlags(&st->comm, cudaStreamNonBlocking));
    st->send_off.assign(static_cast<size_t>(n) + 1, 0);
    st->recv_off.assign(static_cast<size_t>(n) + 1, 0);
    st->csend_off.assign(static_cast<size_t>(n) + 1, 0);
    st->crecv_off.assign(static_cast<size_t>(n) + 1, 0);
    st->traffic.num_ranks = n;
    st->traffic.bytes.assign(static_cast<size_t>(n) * n, 0);
    st->key_of_slot.resize(layers);
    for (size_t l = 0; l < layers; ++l) {
      if (!c.layer_is_moe[l]) continue;
      const int32_t held = static_cast<int32_t>(weights_->held_experts(static_cast<int32_t>(l)).size());
      auto& ks = st->key_of_slot[l];
      ks.assign(static_cast<size_t>(weights_->num_slots(static_cast<int32_t>(l))), -1);
      for (int32_t j = 0; j < held; ++j) ks[static_cast<size_t>(j)] = j;  // slot j holds the j-th key
    }
    st->orders.resize(layers);
    st->timing.resize(layers * EpState::kTimingEvents);
    for (cudaEvent_t& e : st->timing) AURORA_CUDA_CHECK(cudaEventCreate(&e));
    st->rows_computed.assign(layers, 0);
    st->timed.assign(layers, false);
    st->cfg = std::move(config);
    ep_ = std::move(st);
    // Every exchange is planned on the host from the step's counts: no graph replay.
    options_.use_cuda_graphs = false;
  });
}

void CudaModelRunner::set_expert_placement(std::shared_ptr<const ExpertPlacement> placement,
                                           const std::vector<std::vector<int32_t>>& slot_of_key) {
  AURORA_CHECK_MSG(ep_ != nullptr, "set_expert_placement needs expert parallelism");
  EpState& ep = *ep_;
  const auto& c = weights_->config();
  const ExpertPlacement& pl = *placement;
  AURORA_CHECK(pl.num_ranks == ep.n && pl.num_experts == ep.E &&
               static_cast<int32_t>(pl.layers.size()) == c.num_layers);
  AURORA_CHECK(slot_of_key.size() == static_cast<size_t>(c.num_layers));
  const size_t E = static_cast<size_t>(ep.E), layers = static_cast<size_t>(c.num_layers);
  std::vector<int32_t> key_of(layers * E), expert_of(layers * E);
  std::vector<std::vector<int32_t>> key_of_slot(layers);
  for (size_t l = 0; l < layers; ++l) {
    const LayerPlacement& lp = pl.layers[l];
    for (size_t e = 0; e < E; ++e) {
      const int32_t k = lp.key.empty() ? static_cast<int32_t>(e) : lp.key[e];
      key_of[l * E + e] = k;
      expert_of[l * E + static_cast<size_t>(k)] = static_cast<int32_t>(e);
    }
    if (!c.layer_is_moe[l]) continue;
    const int32_t num_local =
        lp.rank_offsets[static_cast<size_t>(ep.cfg.rank) + 1] - lp.rank_offsets[static_cast<size_t>(ep.cfg.rank)];
    AURORA_CHECK_MSG(static_cast<int32_t>(slot_of_key[l].size()) == num_local,
                     "layer " << l << ": " << slot_of_key[l].size() << " slots for " << num_local << " experts");
    auto& ks = key_of_slot[l];
    ks.assign(static_cast<size_t>(weights_->num_slots(static_cast<int32_t>(l))), -1);
    for (int32_t j = 0; j < num_local; ++j) {
      const int32_t slot = slot_of_key[l][static_cast<size_t>(j)];
      AURORA_CHECK_MSG(slot >= 0 && static_cast<size_t>(slot) < ks.size() && ks[static_cast<size_t>(slot)] < 0,
                       "layer " << l << ": bad or shared slot " << slot);
      ks[static_cast<size_t>(slot)] = j;
    }
  }
  AURORA_CUDA_CHECK(cudaSetDevice(weights_->device()));
  // The previous step may still read the key maps on the device: let it finish (between steps).
  AURORA_CUDA_CHECK(cudaStreamSynchronize(stream_));
  AURORA_CUDA_CHECK(cudaStreamSynchronize(ep.comm));
  AURORA_CUDA_CHECK(cudaMemcpy(ep.key_of_expert, key_of.data(), key_of.size() * 4, cudaMemcpyHostToDevice));
  AURORA_CUDA_CHECK(cudaMemcpy(ep.expert_of_key, expert_of.data(), expert_of.size() * 4, cudaMemcpyHostToDevice));
  for (size_t l = 0; l < layers; ++l) {
    if (key_of_slot[l] != ep.key_of_slot[l] || !(pl.layers[l].owner == ep.cfg.placement->layers[l].owner)) {
      ep.orders[l] = EpState::LayerOrder{};  // a template made for the old owners no longer fits
    }
  }
  ep.key_of_slot = std::move(key_of_slot);
  ep.cfg.placement = std::move(placement);
}

const ExpertPlacement& CudaModelRunner::expert_placement() const {
  AURORA_CHECK(ep_ != nullptr);
  return *ep_->cfg.placement;
}

void CudaModelRunner::set_order_templates(int32_t layer, std::shared_ptr<const OrderTemplate> dispatch,
                                          std::shared_ptr<const OrderTemplate> combine, bool use_window) {
  AURORA_CHECK(ep_ != nullptr && layer >= 0 && static_cast<size_t>(layer) < ep_->orders.size());
  AURORA_CHECK_MSG((dispatch == nullptr) == (combine == nullptr), "dispatch and combine templates go together");
  ep_->orders[static_cast<size_t>(layer)] = EpState::LayerOrder{std::move(dispatch), std::move(combine), use_window};
}

void CudaModelRunner::measure_order_sources(bool on) {
  if (ep_) ep_->measure_both = on;
}

RankStepTiming CudaModelRunner::last_rank_timing(std::vector<double>& exchange_seconds_per_layer) const {
  RankStepTiming t;
  exchange_seconds_per_layer.assign(ep_ ? ep_->timed.size() : 0, 0.0);
  if (!ep_) return t;
  const EpState& ep = *ep_;
  auto elapsed = [&](int32_t l, int32_t a, int32_t b) -> double {
    float ms = 0.0f;
    const cudaEvent_t* ev = ep.timing.data() + static_cast<size_t>(l) * EpState::kTimingEvents;
    const cudaError_t st = cudaEventElapsedTime(&ms, ev[a], ev[b]);
    if (st != cudaSuccess) {  // not complete (or never recorded): no measurement, not an error
      (void)cudaGetLastError();
      return 0.0;
    }
    return static_cast<double>(ms) * 1e-3;
  };
  AURORA_CUDA_CHECK(cudaSetDevice(ep.device));
  for (size_t l = 0; l < ep.timed.size(); ++l) {
    if (!ep.timed[l]) continue;
    const int32_t li = static_cast<int32_t>(l);
    const double exchange = elapsed(li, 0, 1) + elapsed(li, 4, 5);
    exchange_seconds_per_layer[l] = exchange;
    t.exchange_seconds += exchange;
    t.expert_seconds += elapsed(li, 2, 3);
    t.rows_computed += ep.rows_computed[l];
  }
  return t;
}

void CudaModelRunner::set_uses_turns(bool uses_turns) {
  if (ep_) ep_->use_turns = uses_turns && ep_->cfg.turns != nullptr;
}

void CudaModelRunner::enable_timeline(bool on) {
  if (!on) {
    timeline_.reset();
    return;
  }
  if (!timeline_) {
    timeline_ = std::make_unique<Timeline>();
    timeline_->device = weights_->device();
  }
}

int32_t CudaModelRunner::timeline_begin(const char* label, int32_t layer, bool comm, cudaStream_t stream) {
  if (!timeline_) return -1;
  Timeline& t = *timeline_;
  if (t.used == static_cast<int32_t>(t.events.size())) {
    cudaEvent_t e = nullptr;
    AURORA_CUDA_CHECK(cudaEventCreate(&e));
    t.events.push_back(e);
  }
  const int32_t e = t.used++;
  AURORA_CUDA_CHECK(cudaEventRecord(t.events[static_cast<size_t>(e)], stream));
  t.spans.push_back(Timeline::Span{label, layer, comm, e, -1});
  return static_cast<int32_t>(t.spans.size()) - 1;
}

void CudaModelRunner::timeline_end(int32_t span, cudaStream_t stream) {
  if (!timeline_ || span < 0) return;
  Timeline& t = *timeline_;
  if (t.used == static_cast<int32_t>(t.events.size())) {
    cudaEvent_t e = nullptr;
    AURORA_CUDA_CHECK(cudaEventCreate(&e));
    t.events.push_back(e);
  }
  const int32_t e = t.used++;
  AURORA_CUDA_CHECK(cudaEventRecord(t.events[static_cast<size_t>(e)], stream));
  t.spans[static_cast<size_t>(span)].end_event = e;
}

std::vector<TimelineSpan> CudaModelRunner::collect_timeline(cudaEvent_t reference) const {
  std::vector<TimelineSpan> out;
  if (!timeline_) return out;
  AURORA_CUDA_CHECK(cudaSetDevice(weights_->device()));
  for (const auto& s : timeline_->spans) {
    if (s.end_event < 0) continue;
    float a = 0.0f, b = 0.0f;
    AURORA_CUDA_CHECK(cudaEventSynchronize(timeline_->events[static_cast<size_t>(s.end_event)]));
    AURORA_CUDA_CHECK(cudaEventElapsedTime(&a, reference, timeline_->events[static_cast<size_t>(s.start_event)]));
    AURORA_CUDA_CHECK(cudaEventElapsedTime(&b, reference, timeline_->events[static_cast<size_t>(s.end_event)]));
    out.push_back(TimelineSpan{s.label, s.layer, s.comm, a, b});
  }
  return out;
}

void CudaModelRunner::segment_begin(const char* label, int32_t layer, cudaEvent_t wait_event) {
  if (ep_ && ep_->use_turns) {
    // Our turn: the other model's last segment on this GPU must end before ours starts.
    const void* previous = ep_->cfg.turns->acquire(ep_->cfg.turn_index);
    if (previous) AURORA_CUDA_CHECK(cudaStreamWaitEvent(stream_, *static_cast<const cudaEvent_t*>(previous), 0));
  }
  if (wait_event) AURORA_CUDA_CHECK(cudaStreamWaitEvent(stream_, wait_event, 0));
  open_segment_ = timeline_begin(label, layer, false, stream_);
}

void CudaModelRunner::segment_end() {
  timeline_end(open_segment_, stream_);
  open_segment_ = -1;
  if (ep_ && ep_->use_turns) {
    AURORA_CUDA_CHECK(cudaEventRecord(ep_->ev_segment, stream_));
    ep_->cfg.turns->release(ep_->cfg.turn_index, &ep_->ev_segment);
  }
}

void CudaModelRunner::step_begin_hooks() {
  if (timeline_) {
    timeline_->used = 0;
    timeline_->spans.clear();
  }
  segment_begin(ep_ ? "gate" : "step", 0, nullptr);
}

void CudaModelRunner::step_end_hooks() {
  timeline_end(open_segment_, stream_);
  open_segment_ = -1;
  if (ep_ && ep_->use_turns) {
    AURORA_CUDA_CHECK(cudaEventRecord(ep_->ev_segment, stream_));
    ep_->cfg.turns->leave(ep_->cfg.turn_index, &ep_->ev_segment);
  }
}

void CudaModelRunner::ep_idle_step() {
  const auto& c = weights_->config();
  step_begin_hooks();
  for (int32_t l = 0; l < c.num_layers; ++l) {
    if (c.layer_is_moe[static_cast<size_t>(l)]) ep_moe_layer(l, 0);
  }
  step_end_hooks();
}

void CudaModelRunner::ep_moe_layer(int32_t l, int32_t T) {
  EpState& ep = *ep_;
  const EpBuffers b = ep_buffers();
  const auto& c = weights_->config();
  const CudaLayer& L = weights_->layers[static_cast<size_t>(l)];
  const LayerPlacement& lp = ep.cfg.placement->layers[static_cast<size_t>(l)];
  const int32_t n = ep.n, r = ep.cfg.rank, E = ep.E, K = ep.K, H = ep.H, I = ep.I;
  const int32_t items = T * K;
  cudaStream_t s = stream_, cs = ep.comm;
  NcclCommunicator& comm = *ep.cfg.comm;

  // 1. The items in key order (experts rank by rank), their rows gathered for the dispatch.
  if (T > 0) {
    kc::launch_regroup_by_key(kernels::RegroupByKeyParams{b.offsets, b.permuted, ep.key_of_expert + int64_t{l} * E,
                                                          ep.expert_of_key + int64_t{l} * E, E, items, ep.key_offsets,
                                                          ep.key_permuted, b.position},
                              s);
    kc::launch_gather_rows_bf16(kc::GatherRowsBf16Params{b.h16, H, ep.key_permuted, K, ep.send16, items, H}, s);
  } else {
    AURORA_CUDA_CHECK(cudaMemsetAsync(ep.key_offsets, 0, static_cast<size_t>(E + 1) * 4, s));
  }
  AURORA_CUDA_CHECK(cudaEventRecord(ep.ev_routed, s));
  segment_end();

  // 2. Everyone's per-key counts: every rank derives the same traffic matrix and plan from them.
  AURORA_CUDA_CHECK(cudaStreamWaitEvent(cs, ep.ev_routed, 0));
  const int32_t dispatch_span = timeline_begin("dispatch", l, true, cs);
  cudaEvent_t* tev = ep.timing.data() + static_cast<size_t>(l) * EpState::kTimingEvents;
  ep.timed[static_cast<size_t>(l)] = true;
  AURORA_CUDA_CHECK(cudaEventRecord(tev[0], cs));
  using SteadyClock = std::chrono::steady_clock;
  auto seconds_since = [](SteadyClock::time_point t) {
    return std::chrono::duration<double>(SteadyClock::now() - t).count();
  };
  const auto count_start = SteadyClock::now();
  comm.all_gather(r, ep.key_offsets, static_cast<size_t>(E + 1) * 4, ep.all_offsets, cs);
  AURORA_CUDA_CHECK(cudaMemcpyAsync(ep.host_all_offsets, ep.all_offsets, static_cast<size_t>(n) * (E + 1) * 4,
                                    cudaMemcpyDeviceToHost, cs));
  AURORA_CUDA_CHECK(cudaEventRecord(ep.ev_counts, cs));
  AURORA_CUDA_CHECK(cudaEventSynchronize(ep.ev_counts));  // no compute turn is held here
  const double count_seconds = seconds_since(count_start);
  const int32_t* off = ep.host_all_offsets;
  auto key_off = [&](int32_t src, int32_t k) { return int64_t{off[static_cast<size_t>(src) * (E + 1) + k]}; };
  auto ro = [&](int32_t rank) { return lp.rank_offsets[static_cast<size_t>(rank)]; };
  auto rows = [&](int32_t src, int32_t dst) { return key_off(src, ro(dst + 1)) - key_off(src, ro(dst)); };
  const int64_t drow = int64_t{H} * 2, crow = int64_t{H} * 4;
  int64_t total_items = 0;
  for (int32_t src = 0; src < n; ++src) total_items += key_off(src, E);
  for (int32_t d = 0; d <= n; ++d) ep.send_off[static_cast<size_t>(d)] = key_off(r, ro(d)) * drow;
  ep.recv_off[0] = 0;
  for (int32_t src = 0; src < n; ++src) {
    ep.recv_off[static_cast<size_t>(src) + 1] = ep.recv_off[static_cast<size_t>(src)] + rows(src, r) * drow;
  }
  for (int32_t a = 0; a < n; ++a) {
    for (int32_t d = 0; d < n; ++d) ep.traffic.bytes[static_cast<size_t>(a) * n + d] = rows(a, d) * drow;
  }
  LayerExchangeCost cost;
  cost.count_seconds = count_seconds;
  int64_t bytes = 0;
  for (int32_t a = 0; a < n; ++a) {
    for (int32_t d = 0; d < n; ++d) bytes += a == d ? 0 : rows(a, d) * (drow + crow);
  }
  cost.bytes = bytes;
  // The order: planned now from the counts (live), or the window's template fitted to them (the
  // same on every rank: a deterministic function of template and counts). On measuring steps rank
  // 0 also makes the other one and predicts both on the same counts.
  const EpState::LayerOrder& order = ep.orders[static_cast<size_t>(l)];
  const bool use_window = order.dispatch != nullptr && order.use_window;
  const bool cost_both = ep.measure_both && order.dispatch != nullptr && r == 0;
  cost.order_source = use_window ? "window" : "live";
  cost.has_both = cost_both;
  auto plan_exchange = [&](const std::shared_ptr<const OrderTemplate>& tmpl,
                           ExchangePlan& fitted) -> const ExchangePlan& {
    auto start = SteadyClock::now();
    const ExchangePlan* chosen = nullptr;
    if (use_window) {
      fit_order(*tmpl, ep.traffic, ep.cfg.link_gbps, ep.cfg.phase_latency_s, fitted);
      cost.fit_seconds += seconds_since(start);
      chosen = &fitted;
    } else {
      chosen = &ep.cfg.planner->plan(ep.traffic);
      cost.plan_seconds += seconds_since(start);
    }
    if (cost_both) {
      start = SteadyClock::now();
      const ExchangePlan* live = chosen;
      if (use_window) {
        if (!ep.probe_planner) ep.probe_planner = make_aurora_planner(n, ep.cfg.link_gbps, ep.cfg.phase_latency_s);
        live = &ep.probe_planner->plan(ep.traffic);
        cost.plan_seconds += seconds_since(start);
      } else {
        fit_order(*tmpl, ep.traffic, ep.cfg.link_gbps, ep.cfg.phase_latency_s, fitted);
        cost.fit_seconds += seconds_since(start);
      }
      cost.live_estimated_seconds += predict_exchange_seconds(*live, n, ep.cfg.link_gbps, ep.cfg.phase_latency_s);
      cost.window_estimated_seconds += predict_exchange_seconds(fitted, n, ep.cfg.link_gbps, ep.cfg.phase_latency_s);
    }
    return *chosen;
  };
  {
    const ExchangePlan& plan = plan_exchange(order.dispatch, ep.fitted_dispatch);
    cost.dispatch_strategy = plan.strategy;
    cost.estimated_seconds = plan.estimated_seconds;
    cost.lower_bound_seconds = plan.lower_bound_seconds;
    cost.num_phases = static_cast<int32_t>(plan.phases.size());
    comm.all_to_all_v(r,
                      AllToAllBuffers{reinterpret_cast<const std::byte*>(ep.send16), ep.send_off.data(),
                                      reinterpret_cast<std::byte*>(ep.recv16), ep.recv_off.data()},
                      plan, cs);
  }
  timeline_end(dispatch_span, cs);
  AURORA_CUDA_CHECK(cudaEventRecord(tev[1], cs));
  AURORA_CUDA_CHECK(cudaEventRecord(ep.ev_dispatched, cs));

  // 3. What arrived, grouped by local expert (then source rank): host layout, one copy.
  const int32_t first_key = ro(r), num_local = ro(r + 1) - first_key;
  const int64_t received = ep.recv_off[static_cast<size_t>(n)] / drow;
  AURORA_CHECK_MSG(received <= ep.max_recv,
                   "rank " << r << " receives " << received << " rows, buffers hold " << ep.max_recv);
  int32_t* h_off = ep.host_layout;
  int32_t* h_active = h_off + (E + 1);
  int32_t* h_rows = h_off + 2 * E + 2;
  int32_t* h_inv = h_rows + received;
  h_off[0] = 0;
  int32_t num_active = 0, max_group = 0;
  int32_t q = 0;
  // Groups are weight slots: slot g computes local key key_of_slot[g] (-1: free or receiving).
  const auto& key_of_slot = ep.key_of_slot[static_cast<size_t>(l)];
  const int32_t num_groups = static_cast<int32_t>(key_of_slot.size());
  AURORA_CHECK(num_groups <= E);
  for (int32_t g = 0; g < num_groups; ++g) {
    const int32_t j = key_of_slot[static_cast<size_t>(g)];
    AURORA_CHECK(j < num_local);
    for (int32_t src = 0; src < n && j >= 0; ++src) {
      const int64_t count = key_off(src, first_key + j + 1) - key_off(src, first_key + j);
      const int64_t base =
          ep.recv_off[static_cast<size_t>(src)] / drow + (key_off(src, first_key + j) - key_off(src, first_key));
      for (int64_t i = 0; i < count; ++i) {
        h_rows[q] = static_cast<int32_t>(base + i);
        h_inv[base + i] = q;
        ++q;
      }
    }
    h_off[g + 1] = q;
    const int32_t group = h_off[g + 1] - h_off[g];
    if (group > 0) h_active[num_active++] = g;
    max_group = std::max(max_group, group);
  }
  ep.rows_computed[static_cast<size_t>(l)] = received;
  AURORA_CHECK_MSG(q == received, "rank " << r << ": " << q << " rows grouped, " << received << " received");
  AURORA_CUDA_CHECK(cudaMemcpyAsync(ep.layout, ep.host_layout, static_cast<size_t>(2 * E + 2 + 2 * received) * 4,
                                    cudaMemcpyHostToDevice, s));
  const int32_t* d_rows = ep.layout + 2 * E + 2;
  const int32_t* d_inv = d_rows + received;

  // 4. This rank's experts on what arrived (compute turn), outputs back in arrival order.
  segment_begin("experts", l, ep.ev_dispatched);
  AURORA_CUDA_CHECK(cudaEventRecord(tev[2], s));
  const int64_t gu_stride = int64_t{2} * I * H, down_stride = int64_t{H} * I;
  // As the 1-GPU path (routed_experts): steps of more than kGemvMaxTokens tokens (all ranks) run
  // the tiled grouped GEMM (or cuBLASLt per expert by expert_cublaslt()); the same kernel on both
  // sides, so the same bits (1 and N GPUs give the same tokens).
  const bool prefill_sized = total_items / std::max(1, K) > kGemvMaxTokens;
  const bool use_gemm = prefill_sized && expert_cublaslt();
  if (received > 0) {
    if (!use_gemm) {
      kc::GroupedGemvParams g;
      g.x = ep.recv16;
      g.x_rows = d_rows;
      g.x_row_div = 1;
      g.weight = L.experts.gate_up;
      g.weight_group_stride = gu_stride;
      g.n = I;
      g.k = H;
      g.group_offsets = ep.layout;
      g.active_groups = ep.layout + (E + 1);
      g.num_active = nullptr;
      g.num_group_slots = num_active;
      g.max_total_positions = static_cast<int32_t>(received);
      g.epilogue = kc::GemvEpilogue::kSwiGluBF16;
      g.y_bf16 = ep.act16;
      // The tiled GEMM exactly when the 1-GPU path takes it (its bound is the step's tokens),
      // whatever this rank's largest group.
      const int32_t step_tokens = static_cast<int32_t>(total_items / std::max(1, K));
      auto bound = [&](const kc::GroupedGemvParams& launch) {
        const int32_t least = kc::tiled_gemm_min_positions(launch);
        return step_tokens >= least ? std::max(max_group, least) : max_group;
      };
      g.max_positions_per_group = bound(g);
      kc::launch_grouped_gemv(g, s);
      kc::GroupedGemvParams d = g;
      d.x = ep.act16;
      d.x_rows = nullptr;
      d.weight = L.experts.down;
      d.weight_group_stride = down_stride;
      d.n = H;
      d.k = I;
      d.epilogue = kc::GemvEpilogue::kStoreF32;
      d.y_bf16 = nullptr;
      d.y_f32 = ep.out;
      d.max_positions_per_group = bound(d);
      kc::launch_grouped_gemv(d, s);
    } else {
      const int32_t chunk = options_.max_tokens_per_step;
      for (int32_t a = 0; a < num_active; ++a) {
        const int32_t j = h_active[a];
        const int32_t begin = h_off[j], count = h_off[j + 1] - h_off[j];
        for (int32_t first = 0; first < count; first += chunk) {
          const int32_t m = std::min(chunk, count - first);
          const int64_t row0 = int64_t{begin} + first;
          kc::launch_gather_rows_bf16(kc::GatherRowsBf16Params{ep.recv16, H, d_rows + row0, 1, b.expert_in16, m, H}, s);
          kc::GemmParams gu;
          gu.x = b.expert_in16;
          gu.w = L.experts.gate_up + j * gu_stride;
          gu.y = b.gate_up;
          gu.m = m;
          gu.n = 2 * I;
          gu.k = H;
          gemm_->gemm(gu, s);
          kc::launch_silu_mul(kc::SiluMulCudaParams{b.gate_up, 0, nullptr, ep.act16 + row0 * I, m, I, 0}, s);
          kc::GemmParams dn;
          dn.x = ep.act16 + row0 * I;
          dn.w = L.experts.down + j * down_stride;
          dn.y = ep.out + row0 * H;
          dn.m = m;
          dn.n = H;
          dn.k = I;
          gemm_->gemm(dn, s);
        }
      }
    }
    kc::launch_gather_rows(
        kernels::GatherRowsParams{ep.out, d_inv, ep.combine_send, static_cast<int32_t>(received), H, 0, 0}, s);
  }
  AURORA_CUDA_CHECK(cudaEventRecord(tev[3], s));
  AURORA_CUDA_CHECK(cudaEventRecord(ep.ev_experts, s));
  segment_end();

  // 5. Combine: each output row goes back to its token's rank, into the key-ordered slots that
  // item_position (rewritten by the regroup) points at.
  AURORA_CUDA_CHECK(cudaStreamWaitEvent(cs, ep.ev_experts, 0));
  AURORA_CUDA_CHECK(cudaEventRecord(tev[4], cs));
  for (int32_t o = 0; o <= n; ++o) {
    ep.csend_off[static_cast<size_t>(o)] = ep.recv_off[static_cast<size_t>(o)] / drow * crow;
    ep.crecv_off[static_cast<size_t>(o)] = ep.send_off[static_cast<size_t>(o)] / drow * crow;
  }
  for (int32_t a = 0; a < n; ++a) {
    for (int32_t d = 0; d < n; ++d) ep.traffic.bytes[static_cast<size_t>(a) * n + d] = rows(d, a) * crow;
  }
  const int32_t combine_span = timeline_begin("combine", l, true, cs);
  {
    const ExchangePlan& plan = plan_exchange(order.combine, ep.fitted_combine);
    cost.estimated_seconds += plan.estimated_seconds;
    cost.lower_bound_seconds += plan.lower_bound_seconds;
    cost.num_phases += static_cast<int32_t>(plan.phases.size());
    comm.all_to_all_v(r,
                      AllToAllBuffers{reinterpret_cast<const std::byte*>(ep.combine_send), ep.csend_off.data(),
                                      reinterpret_cast<std::byte*>(b.expert_out), ep.crecv_off.data()},
                      plan, cs);
  }
  timeline_end(combine_span, cs);
  AURORA_CUDA_CHECK(cudaEventRecord(tev[5], cs));
  AURORA_CUDA_CHECK(cudaEventRecord(ep.ev_combined, cs));
  result_.exchange[static_cast<size_t>(l)] = cost;

  // 6. Aggregation (and the next layer's attention and router) once the outputs are back.
  segment_begin(l + 1 < c.num_layers ? "aggregate+gate" : "aggregate+head", l, ep.ev_combined);
}

}  // namespace aurora::runtime::cuda
