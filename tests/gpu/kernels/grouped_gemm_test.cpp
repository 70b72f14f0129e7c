// The tiled grouped GEMM behind launch_grouped_gemv at prefill sizes (> 64 positions per group),
// against cpu::linear (+ silu * up on the CPU): routed experts with uneven counts, the Mixtral-like
// shape, row and k tails, every epilogue, unused group slots, strides, 64-bit weight offsets, and
// outputs that must stay poisoned where no group's position lies; and a position's bits, which must
// not depend on how many positions share its group (every instruction width of the kernel).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>

#include "aurora/kernels/cuda/gemv.hpp"
#include "aurora/kernels/elementwise.hpp"
#include "aurora/kernels/linear.hpp"
#include "aurora/kernels/moe_permute.hpp"
#include "gpu_test_support.hpp"

using namespace aurora;
using namespace aurora::test;
namespace kc = aurora::kernels::cuda;
namespace kcpu = aurora::kernels::cpu;

namespace {

constexpr double kTolMma = 5e-5;  // float32 accumulation in another order (as gemv_test.cpp)
constexpr uint32_t kPoisonF32 = 0xffffffffu;
constexpr uint16_t kPoisonBf16 = 0xffffu;

// The tiled GEMM on or off for one scope (the default again afterwards).
struct TiledGemm {
  explicit TiledGemm(bool on) { kc::set_tiled_gemm(on); }
  ~TiledGemm() { kc::reset_tiled_gemm(); }
  TiledGemm(const TiledGemm&) = delete;
  TiledGemm& operator=(const TiledGemm&) = delete;
};

// The bits of float outputs (NaN poison compares unequal as floats).
std::vector<uint32_t> bits_of(const std::vector<float>& v) {
  std::vector<uint32_t> out(v.size());
  std::memcpy(out.data(), v.data(), v.size() * 4);
  return out;
}

// Elements whose bits differ (all of them if the sizes do): a count, not two printed vectors.
template <class T>
int64_t differing(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return int64_t(std::max(a.size(), b.size()));
  int64_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += a[i] != b[i];
  return n;
}

// Runs fn(i) for i in [0, n) on the host's cores (the references below are billions of MACs).
template <class F>
void parallel_for(int64_t n, const F& fn) {
  const int64_t workers = std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, 32);
  std::vector<std::thread> threads;
  for (int64_t w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      for (int64_t i = w; i < n; i += workers) fn(i);
    });
  }
  for (auto& t : threads) t.join();
}

// The groups of a launch as the kernel reads them from device memory.
struct Groups {
  std::vector<int32_t> offsets;  // [num_groups + 1]
  std::vector<int32_t> active;   // [slots]: group of each slot; -1 past num_active
  int32_t num_active = 0;
};

// Routing of `tokens` tokens to top_k distinct experts each, expert e receiving exactly counts[e]
// of them (sum = tokens * top_k, each <= tokens): tokens in a random order take the top_k experts
// with the most assignments left (always feasible), in a random order of choices. Returns the
// expert of each item (t * top_k + j).
std::vector<int32_t> route_with_counts(int32_t tokens, int32_t top_k, const std::vector<int32_t>& counts,
                                       uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> left = counts, order(static_cast<size_t>(tokens)), ids(size_t(tokens) * top_k);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<int32_t> experts(counts.size());
  for (int32_t t : order) {
    std::iota(experts.begin(), experts.end(), 0);
    std::shuffle(experts.begin(), experts.end(), rng);  // random ties
    std::stable_sort(experts.begin(), experts.end(),
                     [&](int32_t a, int32_t b) { return left[size_t(a)] > left[size_t(b)]; });
    std::vector<int32_t> pick(experts.begin(), experts.begin() + top_k);
    std::shuffle(pick.begin(), pick.end(), rng);
    for (int32_t j = 0; j < top_k; ++j) {
      REQUIRE(left[size_t(pick[size_t(j)])] > 0);
      --left[size_t(pick[size_t(j)])];
      ids[size_t(t) * top_k + j] = pick[size_t(j)];
    }
  }
  return ids;
}

// out[p * n_out + o] = x[row(p)] . W_g[o] for every position p of the groups in the first
// num_active slots (row(p) = x_rows[p] / x_row_div, or p without x_rows); NaN for every other
// position: the outputs the launch must leave alone.
std::vector<float> cpu_grouped_linear(const std::vector<float>& x, int64_t x_stride, const std::vector<int32_t>& x_rows,
                                      int32_t x_row_div, const std::vector<float>& w, int64_t w_stride, int32_t n_out,
                                      int32_t k, const Groups& groups, int32_t num_positions) {
  std::vector<float> out(size_t(num_positions) * n_out, std::nanf(""));
  struct Task {
    int32_t group, begin, count;
  };
  std::vector<Task> tasks;
  constexpr int32_t kRowsPerTask = 16;
  for (int32_t s = 0; s < groups.num_active; ++s) {
    const int32_t g = groups.active[size_t(s)];
    for (int32_t b = groups.offsets[size_t(g)]; b < groups.offsets[size_t(g) + 1]; b += kRowsPerTask) {
      tasks.push_back({g, b, std::min(kRowsPerTask, groups.offsets[size_t(g) + 1] - b)});
    }
  }
  parallel_for(int64_t(tasks.size()), [&](int64_t i) {
    const Task& t = tasks[size_t(i)];
    std::vector<float> rows(size_t(t.count) * k);
    for (int32_t r = 0; r < t.count; ++r) {
      const int32_t p = t.begin + r;
      const int64_t src = x_rows.empty() ? p : x_rows[size_t(p)] / x_row_div;
      std::copy(x.begin() + src * x_stride, x.begin() + src * x_stride + k, rows.begin() + int64_t(r) * k);
    }
    kernels::LinearParams lp;
    lp.x = rows.data();
    lp.weight = w.data() + int64_t(t.group) * w_stride;
    lp.y = out.data() + int64_t(t.begin) * n_out;
    lp.num_rows = t.count;
    lp.in_features = k;
    lp.out_features = n_out;
    kcpu::linear(lp);
  });
  return out;
}

// silu(gate) * up of rows [num_rows, 2 * inter] (NaN rows stay NaN).
std::vector<float> cpu_silu_mul(const std::vector<float>& gate_up, int32_t num_rows, int32_t inter) {
  std::vector<float> act(size_t(num_rows) * inter);
  kcpu::silu_mul(kernels::SiluMulParams{gate_up.data(), act.data(), num_rows, inter, 0});
  return act;
}

// want [positions, n] placed in rows of y_stride (NaN: must stay poisoned, as must the padding).
std::vector<float> strided(const std::vector<float>& want, int32_t positions, int32_t n, int64_t y_stride,
                           int32_t buffer_positions) {
  std::vector<float> out(size_t(buffer_positions) * y_stride, std::nanf(""));
  for (int32_t p = 0; p < positions; ++p) {
    std::copy(want.begin() + int64_t(p) * n, want.begin() + int64_t(p + 1) * n, out.begin() + p * y_stride);
  }
  return out;
}

// Outputs where want is NaN still hold the poison bits; the others match want within tol.
void check_f32(const std::vector<float>& got, const std::vector<float>& want, double tol) {
  REQUIRE(got.size() == want.size());
  int64_t touched = 0, expected = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &got[i], 4);
    if (std::isnan(want[i])) touched += bits != kPoisonF32;
    expected += !std::isnan(want[i]);
  }
  CHECK(expected > 0);
  // Outputs of positions no group covers (and row padding) are left alone; a covered output that
  // kept its NaN makes the error infinite.
  CHECK(touched == 0);
  CHECK(relative_error(got, want) < tol);
}

void check_bf16(const std::vector<uint16_t>& got_bits, const std::vector<float>& want, double tol) {
  REQUIRE(got_bits.size() == want.size());
  int64_t touched = 0;
  std::vector<float> got(got_bits.size());
  for (size_t i = 0; i < want.size(); ++i) {
    got[i] = bf16_to_float(got_bits[i]);
    if (std::isnan(want[i])) touched += got_bits[i] != kPoisonBf16;
  }
  CHECK(touched == 0);
  CHECK(relative_error(got, want) < tol);
}

// One MoE layer's experts on the GPU (SwiGLU gate_up, then the down projection with a bias, stored
// and accumulated) against the CPU, for the given routing and slot list.
struct ExpertLayer {
  int32_t tokens, top_k, experts, hidden, inter, down_out;
  std::vector<int32_t> ids;  // expert of each item
  bool null_slots = false;   // active_groups / num_active null: slot = expert, all slots used
  bool drop_one = false;     // leave the largest non-empty expert with <= 64 rows out of the slots

  void run() const {
    const int32_t items = tokens * top_k;
    std::vector<int32_t> off(static_cast<size_t>(experts) + 1), perm(static_cast<size_t>(items)), pos(perm.size());
    kcpu::permute(kernels::PermuteParams{ids.data(), items, experts, off.data(), perm.data(), pos.data()});
    Groups groups;
    groups.offsets = off;
    int32_t dropped = -1;
    if (null_slots) {
      groups.active.resize(size_t(experts));
      std::iota(groups.active.begin(), groups.active.end(), 0);
    } else {
      for (int32_t e = 0; e < experts; ++e) {
        if (off[size_t(e) + 1] > off[size_t(e)]) groups.active.push_back(e);
      }
      std::mt19937 rng(7);
      std::shuffle(groups.active.begin(), groups.active.end(), rng);  // slots need not follow expert order
      if (drop_one) {
        for (int32_t e : groups.active) {
          const int32_t c = off[size_t(e) + 1] - off[size_t(e)];
          if (c <= 64 && (dropped < 0 || c > off[size_t(dropped) + 1] - off[size_t(dropped)])) dropped = e;
        }
        REQUIRE(dropped >= 0);
        groups.active.erase(std::find(groups.active.begin(), groups.active.end(), dropped));
      }
    }
    groups.num_active = int32_t(groups.active.size());
    const int32_t slots = std::min(items, experts);
    groups.active.resize(size_t(slots), -1);  // unused slots hold garbage the kernel must not read
    INFO(tokens << " tokens, top " << top_k << " of " << experts << " experts, hidden " << hidden << ", inter " << inter
                << ", dropped expert " << dropped);

    const int64_t act_stride = inter + 8, out_stride = down_out + 4;  // padding columns stay poisoned
    const int32_t buffer_positions = items + 3;                       // so do positions past the groups
    auto x = rounded_bf16(random_floats(size_t(tokens) * hidden, 501));
    const int64_t gu_stride = int64_t(2) * inter * hidden, down_stride = int64_t(down_out) * inter;
    auto gate_up = rounded_bf16(random_floats(size_t(experts) * gu_stride, 502, 1.0f / std::sqrt(float(hidden))));
    auto down = rounded_bf16(random_floats(size_t(experts) * down_stride, 503, 1.0f / std::sqrt(float(inter))));
    auto bias = random_floats(size_t(down_out), 504);
    auto act_want = strided(
        cpu_silu_mul(cpu_grouped_linear(x, hidden, perm, top_k, gate_up, gu_stride, 2 * inter, hidden, groups, items),
                     items, inter),
        items, inter, act_stride, buffer_positions);

    auto dx = upload_bf16(x), dgu = upload_bf16(gate_up), ddown = upload_bf16(down);
    DeviceArray<int32_t> doff(off), dperm(perm), dactive(groups.active), dnum(std::vector<int32_t>{groups.num_active});
    DeviceArray<float> dbias(bias);
    // The tiled GEMM, then the GEMV.
    for (bool tiled : {true, false}) {
      INFO((tiled ? "tiled GEMM" : "GEMV (AURORA_EXPERT_GEMM=0)"));
      TiledGemm mode(tiled);
      DeviceArray<uint16_t> act(size_t(buffer_positions) * act_stride);
      kc::GroupedGemvParams g;
      g.x = as_bf16(dx);
      g.x_rows = dperm.get();
      g.x_row_div = top_k;
      g.weight = as_bf16(dgu);
      g.weight_group_stride = gu_stride;
      g.n = inter;
      g.k = hidden;
      g.group_offsets = doff.get();
      g.active_groups = null_slots ? nullptr : dactive.get();
      g.num_active = null_slots ? nullptr : dnum.get();
      g.num_group_slots = slots;
      g.max_positions_per_group = tokens;
      g.max_total_positions = null_slots ? 0 : items;  // both grid bounds: with and without the total
      g.epilogue = kc::GemvEpilogue::kSwiGluBF16;
      g.y_bf16 = as_bf16(act);
      g.y_stride = act_stride;
      CHECK(kc::gemv_uses_tiled_gemm(g) == tiled);
      kc::launch_grouped_gemv(g, nullptr);
      const auto act_bits = act.download();
      check_bf16(act_bits, act_want, kTolBf16Out);
      if (tiled) {  // deterministic: the same bits again
        act.poison();
        kc::launch_grouped_gemv(g, nullptr);
        CHECK(differing(act.download(), act_bits) == 0);
      }

      // The down projection reads the activations the GPU wrote (as the runner does).
      std::vector<float> act_got(act_bits.size());
      for (size_t i = 0; i < act_bits.size(); ++i) act_got[i] = bf16_to_float(act_bits[i]);
      auto out_want = cpu_grouped_linear(act_got, act_stride, {}, 1, down, down_stride, down_out, inter, groups, items);
      for (size_t i = 0; i < out_want.size(); ++i) out_want[i] += bias[i % size_t(down_out)];
      out_want = strided(out_want, items, down_out, out_stride, buffer_positions);
      DeviceArray<float> out(size_t(buffer_positions) * out_stride);
      kc::GroupedGemvParams d = g;
      d.x = as_bf16(act);
      d.x_stride = act_stride;
      d.x_rows = nullptr;
      d.x_row_div = 1;
      d.weight = as_bf16(ddown);
      d.weight_group_stride = down_stride;
      d.n = down_out;
      d.k = inter;
      d.epilogue = kc::GemvEpilogue::kStoreF32;
      d.y_bf16 = nullptr;
      d.y_f32 = out.get();
      d.y_stride = out_stride;
      d.bias = dbias.get();
      d.groups_before_wait = true;  // the runner's down projection: group arrays read before the wait
      kc::launch_grouped_gemv(d, nullptr);
      check_f32(out.download(), out_want, kTolMma);
      d.epilogue = kc::GemvEpilogue::kAccumulateF32;  // y += x W^T + b
      kc::launch_grouped_gemv(d, nullptr);
      for (auto& v : out_want) v *= 2.0f;
      check_f32(out.download(), out_want, kTolMma);
    }
  }
};

std::vector<int32_t> counts_summing_to(std::vector<int32_t> fixed, int32_t num_experts, int32_t total) {
  // The experts after `fixed` share the rest, alternately 20 above and below the mean.
  const int32_t rest = num_experts - int32_t(fixed.size());
  int32_t left = total - std::accumulate(fixed.begin(), fixed.end(), 0);
  std::vector<int32_t> c = fixed;
  for (int32_t i = 0; i < rest; ++i) {
    int32_t v = left / (rest - i);
    if (i + 1 < rest) v += (i % 2 == 0 ? 20 : -20);
    c.push_back(v);
    left -= v;
  }
  return c;
}

}  // namespace

TEST_CASE(
    "tiled GEMM by default above 64 positions per group (routed experts: 16, or 5), never with the RMSNorm prologue",
    "[gpu][gemm]") {
  const char* env = std::getenv("AURORA_EXPERT_GEMM");
  const bool env_on = !(env && env[0] == '0');
  kc::reset_tiled_gemm();
  kc::GroupedGemvParams p;
  p.n = 2048;
  p.k = 2048;
  for (int32_t m : {1, 4, 8, 64}) {
    p.max_positions_per_group = m;
    CHECK_FALSE(kc::gemv_uses_tiled_gemm(p));
  }
  for (int32_t m : {65, 128, 512, 8192}) {
    p.max_positions_per_group = m;
    CHECK(kc::gemv_uses_tiled_gemm(p) == env_on);
  }
  {
    TiledGemm off(false);
    CHECK_FALSE(kc::gemv_uses_tiled_gemm(p));
  }
  {
    TiledGemm on(true);
    CHECK(kc::gemv_uses_tiled_gemm(p));
    // It never splits k, whatever the split-k switch.
    DeviceArray<float> ws{size_t{1} << 20};
    DeviceArray<int32_t> tickets{1024};
    p.split_workspace = ws.get();
    p.split_workspace_floats = int64_t(ws.size());
    p.split_tickets = tickets.get();
    p.split_tickets_count = int32_t(tickets.size());
    kc::set_gemv_split_k(true);
    CHECK(kc::gemv_splits(p) == 1);
    kc::reset_gemv_split_k();
    float norm_weight = 1.0f;
    p.norm_weight = &norm_weight;  // the prologue's launches (<= 4 positions) stay GEMVs
    p.max_positions_per_group = 4;
    CHECK_FALSE(kc::gemv_uses_tiled_gemm(p));
  }
  CHECK(kc::gemv_uses_tiled_gemm([] {
          kc::GroupedGemvParams q;
          q.max_positions_per_group = 65;
          return q;
        }()) == env_on);
  // Routed experts (group offsets set): from 16 positions per group, and from 5 where one expert's
  // matrix holds >= 8M elements (SwiGLU: both halves), e.g. Mixtral's.
  static constexpr int32_t kOffsets[1] = {0};  // only their presence matters on the host
  auto routed = [](int32_t n, int32_t k, bool swiglu, int32_t positions) {
    kc::GroupedGemvParams q;
    q.group_offsets = kOffsets;
    q.n = n;
    q.k = k;
    q.epilogue = swiglu ? kc::GemvEpilogue::kSwiGluBF16 : kc::GemvEpilogue::kStoreF32;
    q.max_positions_per_group = positions;
    return q;
  };
  CHECK(kc::tiled_gemm_min_positions(routed(768, 2048, true, 1)) == kc::kTiledGemmMinRoutedPositions);  // Qwen3
  CHECK(kc::tiled_gemm_min_positions(routed(2048, 768, false, 1)) == kc::kTiledGemmMinRoutedPositions);
  CHECK(kc::tiled_gemm_min_positions(routed(14336, 4096, true, 1)) == kc::kTiledGemmMinLargeExpertPositions);
  CHECK(kc::tiled_gemm_min_positions(routed(4096, 14336, false, 1)) == kc::kTiledGemmMinLargeExpertPositions);
  CHECK(kc::tiled_gemm_min_positions(routed(2048, 2048, true, 1)) == kc::kTiledGemmMinLargeExpertPositions);
  CHECK(kc::tiled_gemm_min_positions(routed(2048, 2048, false, 1)) == kc::kTiledGemmMinRoutedPositions);
  CHECK(kc::tiled_gemm_min_positions(kc::GroupedGemvParams{}) == kc::kTiledGemmMinPositions);  // one matrix
  CHECK_FALSE(kc::gemv_uses_tiled_gemm(routed(768, 2048, true, 15)));
  CHECK(kc::gemv_uses_tiled_gemm(routed(768, 2048, true, 16)) == env_on);
  CHECK_FALSE(kc::gemv_uses_tiled_gemm(routed(14336, 4096, true, 4)));
  CHECK(kc::gemv_uses_tiled_gemm(routed(14336, 4096, true, 5)) == env_on);
}

TEST_CASE("tiled GEMM: 512 tokens x top 8 of 64 experts with uneven counts, SwiGLU then down", "[gpu][gemm]") {
  // Experts 0-3 receive nothing, then 1, 2, 63, 64, 65, 100, 127, 128, 129 (> 128, not a multiple
  // of 64), 200, 300 and 512 (every token: all 8 or 4 position tiles), the rest about 30 or 70. The
  // last tiles of 128 positions hold every width of the kernel's instruction: 1..8, ..., 65..128.
  const int32_t tokens = 512, top_k = 8, experts = 64;
  const auto counts =
      counts_summing_to({0, 0, 0, 0, 1, 2, 63, 64, 65, 100, 127, 128, 129, 200, 300, 512}, experts, tokens * top_k);
  REQUIRE(*std::min_element(counts.begin(), counts.end()) >= 0);
  REQUIRE(*std::max_element(counts.begin(), counts.end()) <= tokens);
  ExpertLayer layer{tokens, top_k, experts, 264, 96, 264, route_with_counts(tokens, top_k, counts, 11)};
  std::vector<int32_t> got(size_t(experts), 0);
  for (int32_t e : layer.ids) ++got[size_t(e)];
  REQUIRE(got == counts);
  SECTION("every non-empty expert in a shuffled slot list") { layer.run(); }
  SECTION("one non-empty expert left out of the slots: its rows stay poisoned") {
    layer.drop_one = true;
    layer.run();
  }
}

TEST_CASE("tiled GEMM: Mixtral-like experts (8 experts, top 2, k 4096)", "[gpu][gemm]") {
  // Slots are the experts themselves (no active list); one expert gets 150 of 160 tokens.
  const int32_t tokens = 160, top_k = 2, experts = 8;
  const std::vector<int32_t> counts = {150, 10, 1, 65, 40, 20, 30, 4};
  ExpertLayer layer{tokens, top_k, experts, 4096, 1000, 2048, route_with_counts(tokens, top_k, counts, 12)};
  layer.null_slots = true;
  layer.run();
}

TEST_CASE("tiled GEMM: one matrix, gathered and strided rows, row and k tails, every epilogue", "[gpu][gemm]") {
  TiledGemm on(true);
  struct Shape {
    int32_t n, k, positions, max_positions;
  };
  // n past a 128-row (64 for SwiGLU) tile, k < 64 and k % 64 == 8, positions fewer than the bound.
  for (const Shape& s : {Shape{300, 72, 200, 200}, Shape{40, 16, 70, 200}, Shape{129, 1032, 65, 65}}) {
    INFO("n " << s.n << " k " << s.k << " positions " << s.positions << " of " << s.max_positions);
    const int32_t src_rows = 2 * s.max_positions + 1, x_row_div = 2;
    const int64_t x_stride = s.k + 8, y_stride = 2 * s.n + 3;
    std::vector<int32_t> rows(size_t(s.max_positions));
    std::mt19937 rng(uint32_t(s.n));
    for (auto& r : rows) r = int32_t(rng() % uint32_t(src_rows * x_row_div));  // row(p) = rows[p] / 2
    auto x = rounded_bf16(random_floats(size_t(src_rows) * x_stride, 601));
    auto w = rounded_bf16(random_floats(size_t(2) * s.n * s.k, 602, 1.0f / std::sqrt(float(s.k))));
    auto bias = random_floats(size_t(2) * s.n, 603);
    Groups one{{0, s.positions}, {0}, 1};
    auto dx = upload_bf16(x), dw = upload_bf16(w);
    DeviceArray<int32_t> drows(rows);
    DeviceArray<float> dbias(bias);
    auto want = cpu_grouped_linear(x, x_stride, rows, x_row_div, w, 0, 2 * s.n, s.k, one, s.max_positions);
    for (size_t i = 0; i < want.size(); ++i) want[i] += bias[i % size_t(2 * s.n)];
    want = strided(want, s.max_positions, 2 * s.n, y_stride, s.max_positions);
    auto act_want =
        strided(cpu_silu_mul(cpu_grouped_linear(x, x_stride, rows, x_row_div, w, 0, 2 * s.n, s.k, one, s.max_positions),
                             s.max_positions, s.n),
                s.max_positions, s.n, y_stride, s.max_positions);
    kc::GroupedGemvParams p;
    p.x = as_bf16(dx);
    p.x_stride = x_stride;
    p.x_rows = drows.get();
    p.x_row_div = x_row_div;
    p.weight = as_bf16(dw);
    p.k = s.k;
    p.num_positions = s.positions;
    p.max_positions_per_group = s.max_positions;
    p.y_stride = y_stride;
    REQUIRE(kc::gemv_uses_tiled_gemm(p));

    // float32 epilogues over all 2n rows, with the bias: store, then accumulate.
    DeviceArray<float> y(size_t(s.max_positions) * y_stride);
    p.n = 2 * s.n;
    p.y_f32 = y.get();
    p.bias = dbias.get();
    kc::launch_grouped_gemv(p, nullptr);
    check_f32(y.download(), want, kTolMma);
    p.epilogue = kc::GemvEpilogue::kAccumulateF32;
    kc::launch_grouped_gemv(p, nullptr);
    auto want_acc = want;  // y += x W^T + b over the stored y
    for (auto& v : want_acc) v *= 2.0f;
    check_f32(y.download(), want_acc, kTolMma);

    // SwiGLU over gate rows [0, n) and up rows [n, 2n).
    DeviceArray<uint16_t> act(size_t(s.max_positions) * y_stride);
    p.n = s.n;
    p.epilogue = kc::GemvEpilogue::kSwiGluBF16;
    p.y_f32 = nullptr;
    p.bias = nullptr;
    p.y_bf16 = as_bf16(act);
    kc::launch_grouped_gemv(p, nullptr);
    check_bf16(act.download(), act_want, kTolBf16Out);
  }
}

TEST_CASE("tiled GEMM: expert matrices more than 2^31 elements apart", "[gpu][gemm]") {
  TiledGemm on(true);
  const int32_t n = 128, k = 128, per_group = 70;
  const int64_t stride = (int64_t{1} << 31) + 64;  // group 1 starts past 4 GiB
  size_t free_bytes = 0, total_bytes = 0;
  AURORA_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  if (free_bytes < size_t(stride + n * k) * 2 + (size_t{1} << 30)) {
    WARN("not enough device memory for 2^31-element expert strides: not run");
    return;
  }
  auto x = rounded_bf16(random_floats(size_t(2) * per_group * k, 701));
  auto w = rounded_bf16(random_floats(size_t(2) * n * k, 702, 1.0f / std::sqrt(float(k))));
  DeviceArray<uint16_t> dw(size_t(stride) + size_t(n) * k);  // poisoned (NaN) between the two matrices
  const auto bits = to_bf16_bits(w);
  for (int64_t g = 0; g < 2; ++g) {
    AURORA_CUDA_CHECK(
        cudaMemcpy(dw.get() + g * stride, bits.data() + g * n * k, size_t(n) * k * 2, cudaMemcpyHostToDevice));
  }
  Groups groups{{0, per_group, 2 * per_group}, {1, 0}, 2};
  auto want = cpu_grouped_linear(x, k, {}, 1, w, int64_t(n) * k, n, k, groups, 2 * per_group);  // compact on the CPU
  auto dx = upload_bf16(x);
  DeviceArray<int32_t> doff(groups.offsets), dactive(groups.active);
  DeviceArray<float> y(want.size());
  kc::GroupedGemvParams p;
  p.x = as_bf16(dx);
  p.weight = as_bf16(dw);
  p.weight_group_stride = stride;
  p.n = n;
  p.k = k;
  p.group_offsets = doff.get();
  p.active_groups = dactive.get();
  p.num_group_slots = 2;
  p.max_positions_per_group = per_group;
  p.y_f32 = y.get();
  REQUIRE(kc::gemv_uses_tiled_gemm(p));
  kc::launch_grouped_gemv(p, nullptr);
  check_f32(y.download(), want, kTolMma);
}

TEST_CASE("tiled GEMM: a position's bits do not depend on how many positions share its group", "[gpu][gemm]") {
  // The same 200 positions and one weight matrix (weight_group_stride 0), cut into groups of
  // different sizes: each group's last tile holds from 1 to 128 positions, so every instruction
  // width of the wgmma instance runs; every cut must give the same bits (batch invariance).
  TiledGemm on(true);
  const int32_t n = 192, k = 320, positions = 200;
  auto x = rounded_bf16(random_floats(size_t(positions) * k, 701));
  auto w = rounded_bf16(random_floats(size_t(2) * n * k, 702, 1.0f / std::sqrt(float(k))));
  auto dx = upload_bf16(x), dw = upload_bf16(w);
  const std::vector<std::vector<int32_t>> cuts = {
      {200}, {128, 72}, {100, 100}, {1, 7, 8, 9, 16, 17, 31, 33, 64, 14}, {65, 3, 2, 130 - 65 - 5, 70}};
  std::vector<uint32_t> first_y;
  std::vector<uint16_t> first_act;
  for (const auto& cut : cuts) {
    REQUIRE(std::accumulate(cut.begin(), cut.end(), 0) == positions);
    std::vector<int32_t> offsets{0};
    for (int32_t c : cut) offsets.push_back(offsets.back() + c);
    std::vector<int32_t> slots(cut.size());
    std::iota(slots.begin(), slots.end(), 0);
    INFO("groups of " << cut.size() << ", the first of " << cut[0]);
    DeviceArray<int32_t> doff(offsets), dslots(slots);
    kc::GroupedGemvParams p;
    p.x = as_bf16(dx);
    p.x_stride = k;
    p.weight = as_bf16(dw);
    p.weight_group_stride = 0;
    p.k = k;
    p.group_offsets = doff.get();
    p.active_groups = dslots.get();
    p.num_group_slots = int32_t(cut.size());
    p.max_positions_per_group = positions;
    p.max_total_positions = positions;
    p.y_stride = 2 * n;
    REQUIRE(kc::gemv_uses_tiled_gemm(p));
    DeviceArray<float> y(size_t(positions) * 2 * n);
    p.n = 2 * n;
    p.y_f32 = y.get();
    kc::launch_grouped_gemv(p, nullptr);
    const auto y_bits = bits_of(y.download());
    DeviceArray<uint16_t> act(size_t(positions) * n);
    p.n = n;
    p.y_stride = n;
    p.epilogue = kc::GemvEpilogue::kSwiGluBF16;
    p.y_f32 = nullptr;
    p.y_bf16 = as_bf16(act);
    kc::launch_grouped_gemv(p, nullptr);
    const auto act_bits = act.download();
    if (first_y.empty()) {
      Groups one{{0, positions}, {0}, 1};
      auto want = cpu_grouped_linear(x, k, {}, 1, w, 0, 2 * n, k, one, positions);
      std::vector<float> got(y_bits.size());
      std::memcpy(got.data(), y_bits.data(), got.size() * 4);
      check_f32(got, want, kTolMma);
      first_y = y_bits;
      first_act = act_bits;
    } else {
      CHECK(differing(y_bits, first_y) == 0);
      CHECK(differing(act_bits, first_act) == 0);
    }
  }
}
