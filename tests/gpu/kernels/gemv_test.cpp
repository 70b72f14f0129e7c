// Matrix products on the GPU against cpu::linear on the same bf16-rounded operands: the tensor-core
// grouped GEMV (dense and routed experts, every epilogue), the float32 linear and cuBLASLt.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>

#include "aurora/kernels/cuda/gemm.hpp"
#include "aurora/kernels/cuda/gemv.hpp"
#include "aurora/kernels/elementwise.hpp"
#include "aurora/kernels/linear.hpp"
#include "aurora/kernels/moe_permute.hpp"
#include "aurora/kernels/rms_norm.hpp"
#include "gpu_test_support.hpp"

using namespace aurora;
using namespace aurora::test;
namespace kc = aurora::kernels::cuda;
namespace kcpu = aurora::kernels::cpu;

namespace {
constexpr double kTolMma = 5e-5;  // float32 accumulation, another order

std::vector<float> cpu_linear(const std::vector<float>& x, const std::vector<float>& w, int32_t rows, int32_t n,
                              int32_t k, const float* bias = nullptr) {
  std::vector<float> y(size_t(rows) * n);
  kernels::LinearParams p;
  p.x = x.data();
  p.weight = w.data();
  p.bias = bias;
  p.y = y.data();
  p.num_rows = rows;
  p.in_features = k;
  p.out_features = n;
  kcpu::linear(p);
  return y;
}

// One dense matrix w [n, k] on the first `rows` rows of x, float32 out (the store epilogue).
kc::GroupedGemvParams dense_gemv(const DeviceArray<uint16_t>& x, const DeviceArray<uint16_t>& w, int32_t n, int32_t k,
                                 int32_t rows, float* y) {
  kc::GroupedGemvParams p;
  p.x = as_bf16(x);
  p.weight = as_bf16(w);
  p.n = n;
  p.k = k;
  p.num_positions = rows;
  p.max_positions_per_group = rows;
  p.y_f32 = y;
  return p;
}
}  // namespace

TEST_CASE("grouped GEMV, one dense matrix, matches cpu::linear", "[gpu][gemv]") {
  struct Shape {
    int32_t n, k;
  };
  for (const Shape& s : {Shape{40, 72}, Shape{256, 4096}, Shape{300, 16}, Shape{8, 2048}}) {
    for (int32_t rows : {1, 3, 8, 9, 16, 33, 64, 100}) {
      INFO("n " << s.n << " k " << s.k << " rows " << rows);
      auto x = rounded_bf16(random_floats(size_t(rows) * s.k, 90 + rows));
      auto w = rounded_bf16(random_floats(size_t(s.n) * s.k, 91, 1.0f / std::sqrt(float(s.k))));
      auto bias = random_floats(size_t(s.n), 92);
      auto want = cpu_linear(x, w, rows, s.n, s.k, bias.data());
      auto dx = upload_bf16(x), dw = upload_bf16(w);
      DeviceArray<float> dbias(bias), y(want.size());
      kc::GroupedGemvParams p = dense_gemv(dx, dw, s.n, s.k, rows, y.get());
      p.bias = dbias.get();
      kc::launch_grouped_gemv(p, nullptr);
      CHECK(relative_error(y.download(), want) < kTolMma);
      // Accumulate: y += x W^T + b once more.
      p.epilogue = kc::GemvEpilogue::kAccumulateF32;
      kc::launch_grouped_gemv(p, nullptr);
      auto twice = want;
      for (auto& v : twice) v *= 2.0f;
      CHECK(relative_error(y.download(), twice) < kTolMma);
    }
  }
}

// Split-k scratch as the runner passes it; with `every` (the default), split k for every launch (off
// by default beyond dense launches of <= 4 positions) while it lives, else the default rule.
struct SplitScratch {
  DeviceArray<float> ws{size_t{1} << 22};
  DeviceArray<int32_t> tickets{8192};
  explicit SplitScratch(bool every = true) {
    tickets.zero();
    if (every) {
      kc::set_gemv_split_k(true);
    } else {
      kc::reset_gemv_split_k();
    }
  }
  ~SplitScratch() { kc::reset_gemv_split_k(); }
  SplitScratch(const SplitScratch&) = delete;
  SplitScratch& operator=(const SplitScratch&) = delete;
  void attach(kc::GroupedGemvParams& p) const {
    p.split_workspace = ws.get();
    p.split_workspace_floats = int64_t(ws.size());
    p.split_tickets = tickets.get();
    p.split_tickets_count = int32_t(tickets.size());
  }
  bool tickets_reset() const {
    for (int32_t t : tickets.download()) {
      if (t != 0) return false;
    }
    return true;
  }
};

TEST_CASE("grouped GEMV with split k matches cpu::linear and resets its tickets", "[gpu][gemv]") {
  SplitScratch scratch;
  struct Shape {
    int32_t n, k;
  };
  int32_t split_launches = 0;
  for (const Shape& s : {Shape{256, 4096}, Shape{2048, 2048}, Shape{6144, 4096}, Shape{40, 1032}, Shape{300, 16}}) {
    for (int32_t rows : {1, 3, 8, 16, 64}) {
      INFO("n " << s.n << " k " << s.k << " rows " << rows);
      auto x = rounded_bf16(random_floats(size_t(rows) * s.k, 190 + rows));
      auto w = rounded_bf16(random_floats(size_t(s.n) * s.k, 191, 1.0f / std::sqrt(float(s.k))));
      auto bias = random_floats(size_t(s.n), 192);
      auto want = cpu_linear(x, w, rows, s.n, s.k, bias.data());
      auto dx = upload_bf16(x), dw = upload_bf16(w);
      DeviceArray<float> dbias(bias), y(want.size());
      kc::GroupedGemvParams p = dense_gemv(dx, dw, s.n, s.k, rows, y.get());
      p.bias = dbias.get();
      scratch.attach(p);
      split_launches += kc::gemv_splits(p) > 1;
      kc::launch_grouped_gemv(p, nullptr);
      CHECK(relative_error(y.download(), want) < kTolMma);
      p.epilogue = kc::GemvEpilogue::kAccumulateF32;
      kc::launch_grouped_gemv(p, nullptr);
      for (auto& v : want) v *= 2.0f;
      CHECK(relative_error(y.download(), want) < kTolMma);
      CHECK(scratch.tickets_reset());
    }
  }
  CHECK(split_launches >= 5);  // the small-n, large-k shapes do split
}

TEST_CASE("by default dense launches of <= 4 positions split k with the same bits at 1..4 positions", "[gpu][gemv]") {
  // The decode o_proj of OLMoE-1B-7B (2048 x 2048) and Qwen3-30B-A3B (2048 x 4096).
  const bool default_rule = std::getenv("AURORA_GEMV_SPLITK") == nullptr;
  const SplitScratch scratch(false);
  for (int32_t k : {2048, 4096}) {
    const int32_t n = 2048;
    INFO("n " << n << " k " << k);
    auto x = rounded_bf16(random_floats(size_t(16) * k, 300));
    auto w = rounded_bf16(random_floats(size_t(n) * k, 301, 1.0f / std::sqrt(float(k))));
    auto dx = upload_bf16(x), dw = upload_bf16(w);
    std::vector<float> first_rows;  // rows 0 .. 3 as computed in the launch of 4 positions
    int32_t splits_at_1 = 0;
    for (int32_t rows : {4, 3, 2, 1, 8, 16}) {
      INFO("rows " << rows);
      DeviceArray<float> y(size_t(rows) * n);
      y.poison();
      kc::GroupedGemvParams p = dense_gemv(dx, dw, n, k, rows, y.get());
      scratch.attach(p);
      const int32_t splits = kc::gemv_splits(p);
      kc::launch_grouped_gemv(p, nullptr);
      const auto got = y.download();
      CHECK(relative_error(got, cpu_linear(std::vector<float>(x.begin(), x.begin() + int64_t(rows) * k), w, rows, n,
                                           k)) < kTolMma);
      if (rows == 4) first_rows = got;
      if (rows <= 4) {
        // Every row has the bits it has in the launch of 4 positions.
        CHECK(std::equal(got.begin(), got.end(), first_rows.begin()));
        if (rows == 1) splits_at_1 = splits;
      }
      if (default_rule) CHECK((rows <= 4 ? splits > 1 : splits == 1));
    }
    if (default_rule) CHECK(splits_at_1 > 1);
    CHECK(scratch.tickets_reset());
  }
}

TEST_CASE("split k in one block gives the bits of split k over blocks", "[gpu][gemv]") {
  // The decode o_proj of Mixtral-8x7B (4096 x 4096: 2 splits), OLMoE-1B-7B (2048 x 2048) and
  // Qwen3-30B-A3B (2048 x 4096): 4 splits; both epilogues; the outputs poisoned before each launch.
  struct Reset {
    ~Reset() { kc::reset_gemv_split_in_block(); }
  } reset;
  const SplitScratch scratch;
  struct Shape {
    int32_t n, k;
  };
  for (const Shape& s : {Shape{4096, 4096}, Shape{2048, 2048}, Shape{2048, 4096}}) {
    auto x = rounded_bf16(random_floats(size_t(4) * s.k, 310));
    auto w = rounded_bf16(random_floats(size_t(s.n) * s.k, 311, 1.0f / std::sqrt(float(s.k))));
    const auto resid = random_floats(size_t(4) * s.n, 312);
    auto dx = upload_bf16(x), dw = upload_bf16(w);
    for (int32_t rows : {1, 4}) {
      for (auto epilogue : {kc::GemvEpilogue::kStoreF32, kc::GemvEpilogue::kAccumulateF32}) {
        INFO("n " << s.n << " k " << s.k << " rows " << rows << " accumulate "
                  << (epilogue == kc::GemvEpilogue::kAccumulateF32));
        DeviceArray<float> y(size_t(rows) * s.n);
        kc::GroupedGemvParams p = dense_gemv(dx, dw, s.n, s.k, rows, y.get());
        p.epilogue = epilogue;
        scratch.attach(p);
        REQUIRE(kc::gemv_splits(p) > 1);
        std::vector<float> got[2];
        for (int in_block = 0; in_block < 2; ++in_block) {
          kc::set_gemv_split_in_block(in_block == 1);
          if (epilogue == kc::GemvEpilogue::kAccumulateF32) {
            y.upload(std::vector<float>(resid.begin(), resid.begin() + int64_t(rows) * s.n));
          } else {
            y.poison();
          }
          kc::launch_grouped_gemv(p, nullptr);
          got[in_block] = y.download();
        }
        CHECK(std::memcmp(got[0].data(), got[1].data(), got[0].size() * sizeof(float)) == 0);
        auto want = cpu_linear(std::vector<float>(x.begin(), x.begin() + int64_t(rows) * s.k), w, rows, s.n, s.k);
        if (epilogue == kc::GemvEpilogue::kAccumulateF32) {
          for (size_t i = 0; i < want.size(); ++i) want[i] += resid[i];
        }
        CHECK(relative_error(got[1], want) < kTolMma);
      }
    }
  }
  CHECK(scratch.tickets_reset());
}

TEST_CASE("grouped GEMV with the RMSNorm prologue matches rms_norm + linear", "[gpu][gemv]") {
  SplitScratch scratch;
  struct Shape {
    int32_t n, k;
  };
  for (const Shape& s : {Shape{6144, 4096}, Shape{5120, 2048}, Shape{40, 72}, Shape{300, 1032}}) {
    for (int32_t rows : {1, 2, 4}) {
      for (bool split : {false, true}) {
        INFO("n " << s.n << " k " << s.k << " rows " << rows << " split " << split);
        auto x = random_floats(size_t(rows) * s.k, 290 + rows, 2.0f);
        auto nw = random_floats(size_t(s.k), 291, 0.2f, 1.0f);
        auto w = rounded_bf16(random_floats(size_t(s.n) * s.k, 292, 1.0f / std::sqrt(float(s.k))));
        std::vector<float> h(x.size());
        kcpu::rms_norm(kernels::RmsNormParams{x.data(), nw.data(), h.data(), rows, s.k, 1e-5f});
        auto want = cpu_linear(rounded_bf16(h), w, rows, s.n, s.k);
        auto dw = upload_bf16(w);
        DeviceArray<float> dx(x), dnw(nw), y(want.size());
        kc::GroupedGemvParams p;
        p.norm_x = dx.get();
        p.norm_weight = dnw.get();
        p.norm_eps = 1e-5f;
        p.weight = as_bf16(dw);
        p.n = s.n;
        p.k = s.k;
        p.num_positions = rows;
        p.max_positions_per_group = rows;
        p.y_f32 = y.get();
        if (split) scratch.attach(p);
        kc::launch_grouped_gemv(p, nullptr);
        // A row's inverse RMS may differ from the CPU's in the last bit (another summation order),
        // which can move a normalised element to the neighbouring bf16 value.
        CHECK(relative_error(y.download(), want) < 2e-4);
      }
    }
  }
  CHECK(scratch.tickets_reset());
  // Row gather (the LM head reads the logits rows of the residual): position p normalises row rows[p].
  const int32_t n = 300, k = 1032, rows = 3, src_rows = 7;
  const std::vector<int32_t> pick = {5, 0, 3};
  auto x = random_floats(size_t(src_rows) * k, 295, 2.0f);
  auto nw = random_floats(size_t(k), 296, 0.2f, 1.0f);
  auto w = rounded_bf16(random_floats(size_t(n) * k, 297, 1.0f / std::sqrt(float(k))));
  std::vector<float> picked(size_t(rows) * k), h(picked.size());
  for (int32_t r = 0; r < rows; ++r) {
    std::copy(x.begin() + int64_t(pick[size_t(r)]) * k, x.begin() + int64_t(pick[size_t(r)] + 1) * k,
              picked.begin() + int64_t(r) * k);
  }
  kcpu::rms_norm(kernels::RmsNormParams{picked.data(), nw.data(), h.data(), rows, k, 1e-5f});
  auto want = cpu_linear(rounded_bf16(h), w, rows, n, k);
  auto dw = upload_bf16(w);
  DeviceArray<float> dx(x), dnw(nw), y(want.size());
  DeviceArray<int32_t> dpick(pick);
  kc::GroupedGemvParams p;
  p.norm_x = dx.get();
  p.norm_weight = dnw.get();
  p.norm_eps = 1e-5f;
  p.x_rows = dpick.get();
  p.weight = as_bf16(dw);
  p.n = n;
  p.k = k;
  p.num_positions = rows;
  p.max_positions_per_group = rows;
  p.y_f32 = y.get();
  scratch.attach(p);
  kc::launch_grouped_gemv(p, nullptr);
  CHECK(relative_error(y.download(), want) < 2e-4);
}

// A decode step's routing: top_k distinct random experts per token, permuted (cpu::permute), the
// active experts in id order padded to min(items, experts) slots.
struct Routing {
  int32_t items = 0, slots = 0, num_active = 0;
  std::vector<int32_t> ids, off, perm, pos, active, active_padded;
  Routing(int32_t tokens, int32_t experts, int32_t top_k, uint32_t seed) : items(tokens * top_k) {
    std::mt19937 rng{seed};
    ids.resize(size_t(items));
    for (int32_t t = 0; t < tokens; ++t) {
      for (int32_t j = 0; j < top_k; ++j) {
        int32_t e;
        bool dup;
        do {
          e = int32_t(rng() % uint32_t(experts));
          dup = false;
          for (int32_t i = 0; i < j; ++i) dup = dup || ids[size_t(t * top_k + i)] == e;
        } while (dup);
        ids[size_t(t * top_k + j)] = e;
      }
    }
    off.resize(size_t(experts) + 1);
    perm.resize(size_t(items));
    pos.resize(size_t(items));
    kcpu::permute(kernels::PermuteParams{ids.data(), items, experts, off.data(), perm.data(), pos.data()});
    for (int32_t e = 0; e < experts; ++e) {
      if (off[size_t(e) + 1] > off[size_t(e)]) active.push_back(e);
    }
    slots = std::min(items, experts);
    active_padded = active;
    active_padded.resize(size_t(slots), -1);
    num_active = int32_t(active.size());
  }
};

// The routed experts' gate_up launch of a Routing over x (SwiGLU into act).
kc::GroupedGemvParams routed_gate_up(const Routing& r, int32_t tokens, int32_t top_k, int32_t hidden, int32_t inter,
                                     const bf16* x, const bf16* weights, const DeviceArray<int32_t>& off,
                                     const DeviceArray<int32_t>& perm, const DeviceArray<int32_t>& active,
                                     const DeviceArray<int32_t>& num_active, DeviceArray<uint16_t>& act) {
  kc::GroupedGemvParams g;
  g.x = x;
  g.x_rows = perm.get();
  g.x_row_div = top_k;
  g.weight = weights;
  g.weight_group_stride = int64_t(2) * inter * hidden;
  g.n = inter;
  g.k = hidden;
  g.group_offsets = off.get();
  g.active_groups = active.get();
  g.num_active = num_active.get();
  g.num_group_slots = r.slots;
  g.max_positions_per_group = tokens;
  g.epilogue = kc::GemvEpilogue::kSwiGluBF16;
  g.y_bf16 = as_bf16(act);
  return g;
}

// The routed experts' down launch after gate_up g (act: g's output), float32 into out, its group
// arrays read before the wait (as the runner's).
kc::GroupedGemvParams routed_down(const kc::GroupedGemvParams& g, const DeviceArray<uint16_t>& act,
                                  const DeviceArray<uint16_t>& weights, int32_t hidden, int32_t inter, float* out) {
  kc::GroupedGemvParams d = g;
  d.x = as_bf16(act);
  d.x_rows = nullptr;
  d.x_row_div = 1;
  d.weight = as_bf16(weights);
  d.weight_group_stride = int64_t(hidden) * inter;
  d.n = hidden;
  d.k = inter;
  d.epilogue = kc::GemvEpilogue::kStoreF32;
  d.y_bf16 = nullptr;
  d.y_f32 = out;
  d.groups_before_wait = true;
  return d;
}

// The MoE combine of the down outputs into the residual x.
kc::MoeCombineCudaParams combine_params(float* out, const int32_t* positions, const int32_t* ids, const float* weights,
                                        float* x, int32_t tokens, int32_t top_k, int32_t hidden) {
  kc::MoeCombineCudaParams mc;
  mc.expert_out = out;
  mc.item_position = positions;
  mc.topk_ids = ids;
  mc.topk_weights = weights;
  mc.x = x;
  mc.num_tokens = tokens;
  mc.top_k = top_k;
  mc.hidden = hidden;
  return mc;
}

TEST_CASE("grouped GEMV over routed experts reads each expert's rows and fuses SwiGLU", "[gpu][gemv]") {
  struct Case {
    int32_t tokens, experts, top_k, hidden, inter;
  };
  for (const Case& c :
       {Case{1, 8, 2, 512, 1792}, Case{5, 8, 2, 256, 128}, Case{64, 128, 8, 256, 96}, Case{20, 64, 8, 64, 16}}) {
    INFO(c.tokens << " tokens, " << c.experts << " experts, hidden " << c.hidden << ", inter " << c.inter);
    const Routing r(c.tokens, c.experts, c.top_k, static_cast<uint32_t>(100 + c.tokens));
    const int32_t items = r.items, slots = r.slots, num_active = r.num_active;
    const auto &ids = r.ids, &off = r.off, &perm = r.perm, &active_padded = r.active_padded;

    auto x = rounded_bf16(random_floats(size_t(c.tokens) * c.hidden, 101));
    auto gate_up =
        rounded_bf16(random_floats(size_t(c.experts) * 2 * c.inter * c.hidden, 102, 1.0f / std::sqrt(float(c.hidden))));
    auto down =
        rounded_bf16(random_floats(size_t(c.experts) * c.hidden * c.inter, 103, 1.0f / std::sqrt(float(c.inter))));
    // CPU: per position, the expert's SwiGLU on its token row (twins: linear + silu_mul + linear).
    std::vector<float> act_want(size_t(items) * c.inter), out_want(size_t(items) * c.hidden);
    for (int32_t p = 0; p < items; ++p) {
      const int32_t item = perm[size_t(p)], t = item / c.top_k, e = ids[size_t(item)];
      std::vector<float> xt(x.begin() + int64_t(t) * c.hidden, x.begin() + int64_t(t + 1) * c.hidden);
      std::vector<float> we(gate_up.begin() + int64_t(e) * 2 * c.inter * c.hidden,
                            gate_up.begin() + int64_t(e + 1) * 2 * c.inter * c.hidden);
      auto gu = cpu_linear(xt, we, 1, 2 * c.inter, c.hidden);
      std::vector<float> act(static_cast<size_t>(c.inter));
      kcpu::silu_mul(kernels::SiluMulParams{gu.data(), act.data(), 1, c.inter, 0});
      std::copy(act.begin(), act.end(), act_want.begin() + int64_t(p) * c.inter);
    }
    // The down projection consumes the bf16 activations the GPU wrote; compare it separately.
    auto dx = upload_bf16(x), dgu = upload_bf16(gate_up), ddown = upload_bf16(down);
    DeviceArray<int32_t> doff(off), dperm(perm), dactive(active_padded), dnum(std::vector<int32_t>{num_active});
    for (bool split : {false, true}) {
      INFO("split " << split);
      SplitScratch scratch;
      DeviceArray<uint16_t> act(act_want.size());
      kc::GroupedGemvParams g = routed_gate_up(r, c.tokens, c.top_k, c.hidden, c.inter, as_bf16(dx), as_bf16(dgu), doff,
                                               dperm, dactive, dnum, act);
      if (split) scratch.attach(g);
      kc::launch_grouped_gemv(g, nullptr);
      auto act_got = download_bf16(act);
      CHECK(relative_error(act_got, act_want) < kTolBf16Out);

      for (int32_t p = 0; p < items; ++p) {
        const int32_t e = ids[size_t(perm[size_t(p)])];
        std::vector<float> a(act_got.begin() + int64_t(p) * c.inter, act_got.begin() + int64_t(p + 1) * c.inter);
        std::vector<float> wd(down.begin() + int64_t(e) * c.hidden * c.inter,
                              down.begin() + int64_t(e + 1) * c.hidden * c.inter);
        auto o = cpu_linear(a, wd, 1, c.hidden, c.inter);
        std::copy(o.begin(), o.end(), out_want.begin() + int64_t(p) * c.hidden);
      }
      DeviceArray<float> out(out_want.size());
      kc::GroupedGemvParams d;
      if (split) scratch.attach(d);
      d.x = as_bf16(act);
      d.weight = as_bf16(ddown);
      d.weight_group_stride = int64_t(c.hidden) * c.inter;
      d.n = c.hidden;
      d.k = c.inter;
      d.group_offsets = doff.get();
      d.active_groups = dactive.get();
      d.num_active = dnum.get();
      d.num_group_slots = slots;
      d.max_positions_per_group = c.tokens;
      d.y_f32 = out.get();
      d.groups_before_wait = split;  // the runner's down projection: group arrays read before the wait
      kc::launch_grouped_gemv(d, nullptr);
      CHECK(relative_error(out.download(), out_want) < kTolMma);
      if (split) {
        CHECK((c.tokens > 1 || kc::gemv_splits(g) > 1));  // one token: the experts' gate_up splits k
        CHECK(scratch.tickets_reset());
      }
    }
  }
}

TEST_CASE("the fused expert FFN gives the separate launches' bits, with and without the combine", "[gpu][gemv]") {
  // Decode shapes: Mixtral-like (2 of 8, long down k), OLMoE/Qwen3-like (8 of many, hidden 2048),
  // and small ones (hidden not a multiple of 16: a partial last row tile); 1..4 tokens (the runner
  // fuses steps of <= 4). The combine runs in the fused launch or after it (launch_moe_combine).
  struct Case {
    int32_t tokens, experts, top_k, hidden, inter;
  };
  for (const Case& c : {Case{1, 8, 2, 4096, 2048}, Case{1, 16, 8, 2048, 768}, Case{4, 16, 8, 2048, 1024},
                        Case{3, 12, 4, 256, 96}, Case{2, 8, 2, 72, 40}, Case{1, 8, 2, 256, 8448}}) {
    INFO(c.tokens << " tokens, " << c.experts << " experts, top " << c.top_k << ", hidden " << c.hidden << ", inter "
                  << c.inter);
    const Routing r(c.tokens, c.experts, c.top_k, static_cast<uint32_t>(300 + c.tokens));
    auto dx = upload_bf16(rounded_bf16(random_floats(size_t(c.tokens) * c.hidden, 301)));
    auto dgu = upload_bf16(rounded_bf16(
        random_floats(size_t(c.experts) * 2 * c.inter * c.hidden, 302, 1.0f / std::sqrt(float(c.hidden)))));
    auto ddown = upload_bf16(
        rounded_bf16(random_floats(size_t(c.experts) * c.hidden * c.inter, 303, 1.0f / std::sqrt(float(c.inter)))));
    DeviceArray<int32_t> doff(r.off), dperm(r.perm), dactive(r.active_padded), dnum(std::vector<int32_t>{r.num_active});
    DeviceArray<uint16_t> act(size_t(r.items) * c.inter);
    DeviceArray<float> out(size_t(r.items) * c.hidden);
    const kc::GroupedGemvParams g = routed_gate_up(r, c.tokens, c.top_k, c.hidden, c.inter, as_bf16(dx), as_bf16(dgu),
                                                   doff, dperm, dactive, dnum, act);
    const kc::GroupedGemvParams d = routed_down(g, act, ddown, c.hidden, c.inter, out.get());
    act.poison();
    out.poison();
    // The combine's inputs: the routing's weights and positions, and a residual.
    DeviceArray<int32_t> dids(r.ids), dpos(r.pos);
    DeviceArray<float> dw(random_floats(size_t(r.items), 304));
    const auto x0 = random_floats(size_t(c.tokens) * c.hidden, 305);
    DeviceArray<float> resid(x0);
    const kc::MoeCombineCudaParams mc =
        combine_params(out.get(), dpos.get(), dids.get(), dw.get(), resid.get(), c.tokens, c.top_k, c.hidden);
    kc::launch_grouped_gemv(g, nullptr);
    kc::launch_grouped_gemv(d, nullptr);
    const auto act_want = act.download();
    const auto out_want = out.download();
    CHECK(std::all_of(out_want.begin(), out_want.end(), [](float v) { return std::isfinite(v); }));
    kc::launch_moe_combine(mc, nullptr);
    const auto x_want = resid.download();
    CHECK(relative_error(x_want, x0) > 1e-3);  // the combine changed the residual
    const int32_t gu_tiles = (c.inter + 15) / 16, dn_tiles = (c.hidden + 15) / 16;
    DeviceArray<int32_t> counters(size_t(kc::expert_ffn_counters(r.slots, c.hidden)));
    for (int rep = 0; rep < 4; ++rep) {  // the items run in another order every time
      const bool combine = rep % 2 == 1;
      INFO("repetition " << rep << (combine ? ", with the combine" : ""));
      act.poison();
      out.poison();
      resid.upload(x0);
      counters.zero();
      kc::launch_expert_ffn(kc::ExpertFfnCudaParams{g, d, counters.get(), combine ? mc : kc::MoeCombineCudaParams{}},
                            nullptr);
      const auto act_got = act.download();
      const auto out_got = out.download();
      const auto x_got = resid.download();
      CHECK(std::memcmp(act_got.data(), act_want.data(), act_got.size() * sizeof(uint16_t)) == 0);
      CHECK(std::memcmp(out_got.data(), out_want.data(), out_got.size() * sizeof(float)) == 0);
      const auto& x_expect = combine ? x_want : x0;  // without the combine, the residual is untouched
      CHECK(std::memcmp(x_got.data(), x_expect.data(), x_got.size() * sizeof(float)) == 0);
      // Every gate_up tile of every slot was counted once, and every active slot's down tile of each
      // row tile with the combine; the queue ran past its last item.
      const auto left = counters.download();
      for (int32_t slot = 0; slot < r.slots; ++slot) CHECK(left[size_t(1 + slot)] == gu_tiles);
      for (int32_t tile = 0; tile < dn_tiles; ++tile) {
        CHECK(left[size_t(1 + r.slots + tile)] == (combine ? r.num_active : 0));
      }
      CHECK(left[0] > r.slots * (gu_tiles + dn_tiles));
    }
  }
}

TEST_CASE("the self-routed gate_up and fused FFN choose the router's experts and give the routed launches' bits",
          "[gpu][gemv]") {
  // The router (ticket kernel with the fused norm, counting itself in logits_ready), then the
  // experts' gate_up: from the router's group arrays, and routing for itself from the logits with
  // those arrays poisoned (it must not read them). Ties: router rows repeated, so that many logits
  // are equal and the lower id must win in both.
  // The last case's grid (5000 blocks) is more than one wave: the launch reads the router's arrays
  // (the fused FFN, one wave of blocks taking items, routes for itself at any size).
  struct Case {
    int32_t tokens, experts, top_k, hidden, inter;
    bool ties, one_wave;
  };
  for (const Case& c :
       {Case{1, 8, 2, 2048, 512, false, true}, Case{1, 128, 8, 256, 96, false, true},
        Case{4, 64, 8, 256, 96, false, true}, Case{3, 256, 8, 128, 64, true, true}, Case{2, 16, 4, 128, 40, true, true},
        Case{4, 8, 2, 64, 32, true, true}, Case{1, 8, 2, 64, 40000, false, false}}) {
    INFO(c.tokens << " tokens, " << c.experts << " experts, top " << c.top_k << ", inter " << c.inter
                  << (c.ties ? ", tied logits" : ""));
    const int32_t items = c.tokens * c.top_k, slots = std::min(items, c.experts);
    auto router = random_floats(size_t(c.experts) * c.hidden, 401, 1.0f / std::sqrt(float(c.hidden)));
    if (c.ties) {  // expert e's row is expert (e % 3)'s
      for (int32_t e = 3; e < c.experts; ++e) {
        std::copy_n(router.begin() + int64_t(e % 3) * c.hidden, c.hidden, router.begin() + int64_t(e) * c.hidden);
      }
    }
    DeviceArray<float> dx(random_floats(size_t(c.tokens) * c.hidden, 402, 2.0f)), drouter(router),
        dnw(random_floats(size_t(c.hidden), 403, 0.2f, 1.0f)), dlogits(size_t(c.tokens) * c.experts), dw(items);
    DeviceArray<uint16_t> h16(size_t(c.tokens) * c.hidden), act(size_t(items) * c.inter);
    DeviceArray<int32_t> dids(items), doff(size_t(c.experts) + 1), dperm(items), dpos(items), dactive(slots), dnum(1),
        ticket(size_t(kc::route_ticket_count(c.tokens))), ready(1);
    auto dgu = upload_bf16(rounded_bf16(
        random_floats(size_t(c.experts) * 2 * c.inter * c.hidden, 404, 1.0f / std::sqrt(float(c.hidden)))));
    kc::RouteCudaParams rp;
    rp.x = dx.get();
    rp.router = drouter.get();
    rp.logits = dlogits.get();
    rp.topk_ids = dids.get();
    rp.topk_weights = dw.get();
    rp.expert_offsets = doff.get();
    rp.permuted_item = dperm.get();
    rp.item_position = dpos.get();
    rp.active_experts = dactive.get();
    rp.num_active = dnum.get();
    rp.ticket = ticket.get();
    rp.num_tokens = c.tokens;
    rp.hidden = c.hidden;
    rp.num_experts = c.experts;
    rp.top_k = c.top_k;
    rp.norm_weight = dnw.get();
    rp.norm_out_bf16 = as_bf16(h16);
    rp.logits_ready = ready.get();
    ticket.zero();
    ready.zero();
    kc::launch_route(rp, nullptr);
    CHECK(ready.download()[0] == c.experts);  // every router block counted itself
    const auto ids = dids.download();
    kc::GroupedGemvParams g;
    g.x = as_bf16(h16);
    g.x_rows = dperm.get();
    g.x_row_div = c.top_k;
    g.weight = as_bf16(dgu);
    g.weight_group_stride = int64_t(2) * c.inter * c.hidden;
    g.n = c.inter;
    g.k = c.hidden;
    g.group_offsets = doff.get();
    g.active_groups = dactive.get();
    g.num_active = dnum.get();
    g.num_group_slots = slots;
    g.max_positions_per_group = c.tokens;
    g.epilogue = kc::GemvEpilogue::kSwiGluBF16;
    g.y_bf16 = as_bf16(act);
    act.poison();
    kc::launch_grouped_gemv(g, nullptr);
    const auto want = act.download();
    kc::GroupedGemvParams self = g;
    self.self_route = {dlogits.get(), ready.get(), c.tokens, c.experts, c.top_k};
    const int64_t launches0 = kc::gemv_self_routed_launches();
    if (c.one_wave) {  // after the router: its permutation poisoned
      doff.poison();
      dperm.poison();
      dactive.poison();
      dnum.poison();
      act.poison();
      kc::launch_grouped_gemv(self, nullptr);
      const auto got = act.download();
      CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(uint16_t)) == 0);
    }
    {  // as the runner launches them: the gate_up may start while the router's last block routes
      ready.zero();
      act.poison();
      kc::launch_route(rp, nullptr);
      kc::launch_grouped_gemv(self, nullptr);
      const auto got = act.download();
      CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(uint16_t)) == 0);
      CHECK(dids.download() == ids);
      CHECK(ready.download()[0] == c.experts);
    }
    {  // the fused expert FFN routing for itself: both projections from its table, the combine (which
       // reads the router's choices and positions) after the router completed
      auto ddown = upload_bf16(
          rounded_bf16(random_floats(size_t(c.experts) * c.hidden * c.inter, 405, 1.0f / std::sqrt(float(c.inter)))));
      const auto x0 = random_floats(size_t(c.tokens) * c.hidden, 406);
      DeviceArray<float> out(size_t(items) * c.hidden), resid(x0);
      DeviceArray<int32_t> counters(size_t(kc::expert_ffn_counters(slots, c.hidden)));
      const kc::GroupedGemvParams d = routed_down(g, act, ddown, c.hidden, c.inter, out.get());
      const kc::MoeCombineCudaParams mc =
          combine_params(out.get(), dpos.get(), dids.get(), dw.get(), resid.get(), c.tokens, c.top_k, c.hidden);
      kc::launch_grouped_gemv(g, nullptr);  // the router's arrays are whole again (the launch above)
      kc::launch_grouped_gemv(d, nullptr);
      const auto out_want = out.download();
      kc::launch_moe_combine(mc, nullptr);
      const auto x_want = resid.download();
      ready.zero();
      counters.zero();
      act.poison();
      out.poison();
      resid.upload(x0);
      kc::launch_route(rp, nullptr);
      kc::launch_expert_ffn(kc::ExpertFfnCudaParams{self, d, counters.get(), mc}, nullptr);
      const auto act_got = act.download();
      const auto out_got = out.download();
      const auto x_got = resid.download();
      CHECK(std::memcmp(act_got.data(), want.data(), act_got.size() * sizeof(uint16_t)) == 0);
      CHECK(std::memcmp(out_got.data(), out_want.data(), out_got.size() * sizeof(float)) == 0);
      CHECK(std::memcmp(x_got.data(), x_want.data(), x_got.size() * sizeof(float)) == 0);
    }
    CHECK(kc::gemv_self_routed_launches() - launches0 == (c.one_wave ? 3 : 1));
    if (c.ties && c.experts / 3 > c.top_k) {  // the tie-break was exercised: a chosen expert has an unchosen twin
      bool tie = false;
      for (int32_t t = 0; t < c.tokens; ++t) {
        for (int32_t j = 0; j < c.top_k; ++j) {
          const int32_t e = ids[size_t(t * c.top_k + j)];
          bool unchosen_twin = false;
          for (int32_t o = e % 3; o < c.experts; o += 3) {
            unchosen_twin = unchosen_twin || std::find(ids.begin() + t * c.top_k, ids.begin() + (t + 1) * c.top_k, o) ==
                                                 ids.begin() + (t + 1) * c.top_k;
          }
          tie = tie || unchosen_twin;
        }
      }
      CHECK(tie);
    }
  }
}

TEST_CASE("the self-routed gate_up and the counting router refuse what they cannot do", "[gpu][gemv]") {
  DeviceArray<uint16_t> x(64), w(64), act(64);
  DeviceArray<int32_t> arr(64), ready(1);
  DeviceArray<float> logits(64);
  kc::GroupedGemvParams g;
  g.x = as_bf16(x);
  g.x_rows = arr.get();
  g.x_row_div = 2;
  g.weight = as_bf16(w);
  g.n = 8;
  g.k = 8;
  g.group_offsets = arr.get();
  g.active_groups = arr.get();
  g.num_active = arr.get();
  g.num_group_slots = 2;
  g.max_positions_per_group = 1;
  g.epilogue = kc::GemvEpilogue::kSwiGluBF16;
  g.y_bf16 = as_bf16(act);
  g.self_route = {logits.get(), nullptr, 1, 8, 2};
  CHECK_THROWS_WITH(kc::launch_grouped_gemv(g, nullptr), Catch::Contains("self_route.ready must be set"));
  g.self_route.ready = ready.get();
  g.self_route.num_tokens = 5;
  CHECK_THROWS_WITH(kc::launch_grouped_gemv(g, nullptr),
                    Catch::Contains("self_route.num_tokens must be 1..4") && Catch::Contains("got 5"));
  g.self_route.num_tokens = 1;
  g.self_route.num_experts = 300;
  CHECK_THROWS_WITH(kc::launch_grouped_gemv(g, nullptr),
                    Catch::Contains("self_route.num_experts must be 1..256") && Catch::Contains("got 300"));
  g.self_route.num_experts = 8;
  g.num_group_slots = 3;
  CHECK_THROWS_WITH(kc::launch_grouped_gemv(g, nullptr), Catch::Contains("got 3 slots for 1 tokens"));
  kc::RouteCudaParams rp;
  rp.num_tokens = 5;
  rp.num_experts = 8;
  rp.top_k = 2;
  rp.hidden = 8;
  rp.logits_ready = ready.get();
  CHECK_THROWS_WITH(kc::launch_route(rp, nullptr),
                    Catch::Contains("logits_ready needs at most 4 tokens, got num_tokens 5"));
}

TEST_CASE("the fused expert FFN refuses a combine it cannot do", "[gpu][gemv]") {
  kc::ExpertFfnCudaParams p;
  p.gate_up.epilogue = kc::GemvEpilogue::kSwiGluBF16;
  DeviceArray<uint16_t> act(64);
  DeviceArray<float> out(64), x(64), shared(64);
  DeviceArray<int32_t> off(3), counters(8);
  p.gate_up.y_bf16 = as_bf16(act);
  p.gate_up.group_offsets = off.get();
  p.gate_up.num_group_slots = 1;
  p.gate_up.max_positions_per_group = 1;
  p.gate_up.n = 8;
  p.gate_up.k = 8;
  p.down = p.gate_up;
  p.down.epilogue = kc::GemvEpilogue::kStoreF32;
  p.down.y_bf16 = nullptr;
  p.down.y_f32 = out.get();
  p.down.x = as_bf16(act);
  p.counters = counters.get();
  p.combine.expert_out = out.get();
  p.combine.item_position = off.get();
  p.combine.topk_ids = off.get();
  p.combine.topk_weights = x.get();
  p.combine.x = x.get();
  p.combine.num_tokens = 1;
  p.combine.top_k = 1;
  p.combine.hidden = 8;
  p.combine.shared_out = shared.get();
  CHECK_THROWS_WITH(kc::launch_expert_ffn(p, nullptr), Catch::Contains("no shared expert"));
  p.combine.shared_out = nullptr;
  p.combine.hidden = 16;
  CHECK_THROWS_WITH(kc::launch_expert_ffn(p, nullptr), Catch::Contains("the combine reads the down outputs"));
}

TEST_CASE("linear_f32 matches cpu::linear", "[gpu][gemv]") {
  for (int32_t rows : {1, 5, 130}) {
    const int32_t n = 67, k = 200;
    auto x = random_floats(size_t(rows) * k, 110), w = random_floats(size_t(n) * k, 111), b = random_floats(n, 112);
    auto want = cpu_linear(x, w, rows, n, k, b.data());
    DeviceArray<float> dx(x), dw(w), db(b), y(want.size());
    kernels::LinearParams p;
    p.x = dx.get();
    p.weight = dw.get();
    p.bias = db.get();
    p.y = y.get();
    p.num_rows = rows;
    p.in_features = k;
    p.out_features = n;
    kc::launch_linear_f32(p, nullptr);
    CHECK(relative_error(y.download(), want) < kTolF32);
  }
}

TEST_CASE("cuBLASLt bf16 GEMM matches cpu::linear", "[gpu][gemm]") {
  DeviceArray<unsigned char> workspace(32 << 20);
  kc::CublasLtRunner runner(workspace.get(), workspace.size());
  struct Shape {
    int32_t m, n, k;
  };
  for (const Shape& s : {Shape{1, 64, 64}, Shape{17, 96, 64}, Shape{300, 1024, 512}, Shape{512, 48, 16}}) {
    INFO("m " << s.m << " n " << s.n << " k " << s.k);
    auto x = rounded_bf16(random_floats(size_t(s.m) * s.k, 120));
    auto w = rounded_bf16(random_floats(size_t(s.n) * s.k, 121, 1.0f / std::sqrt(float(s.k))));
    auto want = cpu_linear(x, w, s.m, s.n, s.k);
    auto dx = upload_bf16(x), dw = upload_bf16(w);
    DeviceArray<float> y(want.size());
    kc::GemmParams p;
    p.x = as_bf16(dx);
    p.w = as_bf16(dw);
    p.y = y.get();
    p.m = s.m;
    p.n = s.n;
    p.k = s.k;
    runner.gemm(p, nullptr);
    CHECK(relative_error(y.download(), want) < kTolMma);
    p.accumulate = true;
    runner.gemm(p, nullptr);
    for (auto& v : want) v *= 2.0f;
    CHECK(relative_error(y.download(), want) < kTolMma);
  }
}

TEST_CASE("prefetching GEMV instances give the other instances' bits", "[gpu][gemv]") {
  // Routed experts at decode sizes (<= 8 positions per group: NB = 1; 12: NB = 2), long and odd k,
  // both epilogues, empty and unused group slots, and a dense launch with the RMSNorm prologue: the
  // prefetching instances (set_gemv_prefetch_min_k) must reproduce the other instances' outputs bit
  // for bit, and match cpu::linear.
  kc::set_gemv_split_k(false);
  const int32_t experts = 4, n = 1000;
  for (int32_t k : {4096, 1032}) {
    for (const std::vector<int32_t>& off :
         {std::vector<int32_t>{0, 1, 1, 5, 8}, std::vector<int32_t>{0, 1, 1, 13, 20}}) {
      const int32_t positions = off.back(), max_per_group = off == std::vector<int32_t>{0, 1, 1, 5, 8} ? 4 : 12;
      INFO("k " << k << ", positions " << positions << ", at most " << max_per_group << " per group");
      auto x = rounded_bf16(random_floats(size_t(positions) * k, 400));
      auto w = rounded_bf16(random_floats(size_t(experts) * 2 * n * k, 401, 1.0f / std::sqrt(float(k))));
      auto dx = upload_bf16(x), dw = upload_bf16(w);
      DeviceArray<int32_t> doff(off), dactive(std::vector<int32_t>{0, 2, 3, -1}), dnum(std::vector<int32_t>{3});
      for (auto epilogue : {kc::GemvEpilogue::kStoreF32, kc::GemvEpilogue::kSwiGluBF16}) {
        const bool swiglu = epilogue == kc::GemvEpilogue::kSwiGluBF16;
        INFO("epilogue " << (swiglu ? "SwiGLU" : "store"));
        std::vector<std::vector<float>> results;
        for (int32_t min_k : {0, 1}) {
          kc::set_gemv_prefetch_min_k(min_k);
          DeviceArray<float> y(size_t(positions) * n);
          DeviceArray<uint16_t> y16(size_t(positions) * n);
          y.poison();
          y16.poison();
          kc::GroupedGemvParams p;
          p.x = as_bf16(dx);
          p.weight = as_bf16(dw);
          p.weight_group_stride = int64_t{2} * n * k;
          p.n = swiglu ? n : 2 * n;
          p.k = k;
          p.group_offsets = doff.get();
          p.active_groups = dactive.get();
          p.num_active = dnum.get();
          p.num_group_slots = 4;
          p.max_positions_per_group = max_per_group;
          p.epilogue = epilogue;
          p.y_f32 = swiglu ? nullptr : y.get();
          p.y_bf16 = swiglu ? as_bf16(y16) : nullptr;
          p.y_stride = n;  // store: the first n of 2n rows
          if (!swiglu) p.n = n;
          kc::launch_grouped_gemv(p, nullptr);
          results.push_back(swiglu ? download_bf16(y16) : y.download());
        }
        CHECK(results[0] == results[1]);
        // Against the CPU: each position's group matrix on its own row.
        std::vector<float> want(size_t(positions) * n);
        for (int32_t e = 0; e < experts; ++e) {
          for (int32_t q = off[size_t(e)]; q < off[size_t(e) + 1]; ++q) {
            const std::vector<float> xr(x.begin() + int64_t(q) * k, x.begin() + int64_t(q + 1) * k);
            const std::vector<float> we(w.begin() + int64_t(e) * 2 * n * k, w.begin() + int64_t(e + 1) * 2 * n * k);
            const auto full = cpu_linear(xr, we, 1, 2 * n, k);
            for (int32_t i = 0; i < n; ++i) {
              const float g = full[size_t(i)], u = full[size_t(n + i)];
              want[size_t(q) * n + size_t(i)] = swiglu ? g / (1.0f + std::exp(-g)) * u : g;
            }
          }
        }
        CHECK(relative_error(results[1], want) < (swiglu ? kTolBf16Out : kTolMma));
      }
    }
  }
  // A dense launch with the RMSNorm prologue (decode qkv / lm_head), 1..4 positions.
  {
    const int32_t k = 4096;
    auto resid = random_floats(size_t(4) * k, 410, 2.0f);
    auto norm_w = random_floats(size_t(k), 411, 0.2f, 1.0f);
    auto w = rounded_bf16(random_floats(size_t(n) * k, 412, 1.0f / std::sqrt(float(k))));
    DeviceArray<float> dresid(resid), dnorm(norm_w);
    auto dw = upload_bf16(w);
    for (int32_t rows = 1; rows <= kc::kGemvNormMaxPositions; ++rows) {
      INFO("RMSNorm prologue, " << rows << " positions");
      std::vector<std::vector<float>> results;
      for (int32_t min_k : {0, 1}) {
        kc::set_gemv_prefetch_min_k(min_k);
        DeviceArray<float> y(size_t(rows) * n);
        y.poison();
        kc::GroupedGemvParams p;
        p.weight = as_bf16(dw);
        p.n = n;
        p.k = k;
        p.num_positions = rows;
        p.max_positions_per_group = rows;
        p.norm_x = dresid.get();
        p.norm_weight = dnorm.get();
        p.norm_eps = 1e-6f;
        p.y_f32 = y.get();
        kc::launch_grouped_gemv(p, nullptr);
        results.push_back(y.download());
      }
      CHECK(results[0] == results[1]);
      std::vector<float> normed(size_t(rows) * k);
      kcpu::rms_norm(kernels::RmsNormParams{resid.data(), norm_w.data(), normed.data(), rows, k, 1e-6f});
      CHECK(relative_error(results[1], cpu_linear(rounded_bf16(normed), w, rows, n, k)) < 1e-2);
    }
  }
  kc::reset_gemv_prefetch();
  kc::reset_gemv_split_k();
}
