// MoE routing, permutation and combine on the GPU against the CPU twins.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <set>

#include "aurora/kernels/cuda/moe.hpp"
#include "aurora/kernels/elementwise.hpp"
#include "aurora/kernels/linear.hpp"
#include "aurora/kernels/moe_permute.hpp"
#include "aurora/kernels/moe_routing.hpp"
#include "aurora/kernels/rms_norm.hpp"
#include "gpu_test_support.hpp"

using namespace aurora;
using namespace aurora::test;
namespace kc = aurora::kernels::cuda;
namespace kcpu = aurora::kernels::cpu;
using kernels::TopKNormalization;

TEST_CASE("top-k routing matches the CPU twin", "[gpu][moe]") {
  struct Case {
    int32_t experts, top_k;
    TopKNormalization norm;
  };
  // Up to 256 experts the routing warp keeps the logits in registers, above in shared memory (300,
  // 1000); tied logits (quantised to halves) must pick the lower ids, as the CPU twin does.
  for (const Case& c : {Case{8, 2, TopKNormalization::kRenormalize}, Case{64, 8, TopKNormalization::kNone},
                        Case{128, 8, TopKNormalization::kRenormalize}, Case{60, 4, TopKNormalization::kNone},
                        Case{256, 8, TopKNormalization::kRenormalize}, Case{300, 8, TopKNormalization::kNone},
                        Case{1000, 16, TopKNormalization::kRenormalize}}) {
    for (bool ties : {false, true}) {
      INFO(c.experts << " experts, top " << c.top_k << (ties ? ", tied logits" : ""));
      const int32_t tokens = 37;
      auto logits = random_floats(size_t(tokens) * c.experts, 60 + c.experts, 2.0f);
      if (ties) {
        for (auto& v : logits) v = std::round(v * 2.0f) / 2.0f;
      }
      std::vector<int32_t> ids(size_t(tokens) * c.top_k);
      std::vector<float> w(ids.size());
      kcpu::topk_routing(
          kernels::TopKRoutingParams{logits.data(), ids.data(), w.data(), tokens, c.experts, c.top_k, c.norm});
      DeviceArray<float> dl(logits), dw(w.size());
      DeviceArray<int32_t> did(ids.size());
      kc::launch_topk_routing(
          kernels::TopKRoutingParams{dl.get(), did.get(), dw.get(), tokens, c.experts, c.top_k, c.norm}, nullptr);
      CHECK(did.download() == ids);
      CHECK(relative_error(dw.download(), w) < 1e-5);
    }
  }
}

TEST_CASE("permute matches the CPU twin (stable counting sort)", "[gpu][moe]") {
  for (int32_t keys : {8, 128, 1000}) {
    const int32_t items = 517;
    std::mt19937 rng{static_cast<uint32_t>(keys)};
    std::vector<int32_t> k(items);
    for (auto& x : k) x = int32_t(rng() % uint32_t(keys));
    std::vector<int32_t> off(size_t(keys) + 1), perm(items), pos(items);
    kcpu::permute(kernels::PermuteParams{k.data(), items, keys, off.data(), perm.data(), pos.data()});
    DeviceArray<int32_t> dk(k), doff(off.size()), dperm(perm.size()), dpos(pos.size());
    kc::launch_permute(kernels::PermuteParams{dk.get(), items, keys, doff.get(), dperm.get(), dpos.get()}, nullptr);
    CHECK(doff.download() == off);
    CHECK(dperm.download() == perm);
    CHECK(dpos.download() == pos);
  }
}

TEST_CASE("the fused router matches linear + top-k + permute on the CPU", "[gpu][moe]") {
  struct Case {
    int32_t tokens, hidden, experts, top_k;
    TopKNormalization norm;
  };
  for (const Case& c :
       {Case{1, 4096, 8, 2, TopKNormalization::kRenormalize}, Case{16, 2048, 128, 8, TopKNormalization::kRenormalize},
        Case{64, 2048, 64, 8, TopKNormalization::kNone}, Case{300, 64, 8, 2, TopKNormalization::kNone},
        Case{1, 2048, 128, 8, TopKNormalization::kRenormalize}, Case{3, 2048, 64, 8, TopKNormalization::kNone},
        // Two groups of 4 tokens whose 64 items take the small permutation (keys from global memory),
        // and a prefill of 512 tokens shaped like Qwen3-30B-A3B (128 groups routed in parallel).
        Case{8, 2048, 64, 8, TopKNormalization::kNone}, Case{512, 2048, 128, 8, TopKNormalization::kRenormalize}}) {
    for (bool fused_norm : {false, true}) {
      INFO(c.tokens << " tokens, " << c.experts << " experts, fused norm " << fused_norm);
      const int32_t items = c.tokens * c.top_k;
      auto residual = random_floats(size_t(c.tokens) * c.hidden, 70, 3.0f);
      auto norm_w = random_floats(size_t(c.hidden), 72, 0.2f, 1.0f);
      std::vector<float> x = residual;
      if (fused_norm)
        kcpu::rms_norm(kernels::RmsNormParams{residual.data(), norm_w.data(), x.data(), c.tokens, c.hidden, 1e-6f});
      auto router = random_floats(size_t(c.experts) * c.hidden, 71, 1.0f / std::sqrt(float(c.hidden)));
      std::vector<float> logits(size_t(c.tokens) * c.experts), w(items);
      kernels::LinearParams lp;
      lp.x = x.data();
      lp.weight = router.data();
      lp.y = logits.data();
      lp.num_rows = c.tokens;
      lp.in_features = c.hidden;
      lp.out_features = c.experts;
      kcpu::linear(lp);
      std::vector<int32_t> ids(items), off(size_t(c.experts) + 1), perm(items), pos(items);
      kcpu::topk_routing(
          kernels::TopKRoutingParams{logits.data(), ids.data(), w.data(), c.tokens, c.experts, c.top_k, c.norm});
      kcpu::permute(kernels::PermuteParams{ids.data(), items, c.experts, off.data(), perm.data(), pos.data()});
      std::vector<int32_t> active;
      std::vector<int64_t> counts(static_cast<size_t>(c.experts));
      for (int32_t e = 0; e < c.experts; ++e) {
        counts[size_t(e)] = 2 * (off[size_t(e) + 1] - off[size_t(e)]);
        if (off[size_t(e) + 1] > off[size_t(e)]) active.push_back(e);
      }

      DeviceArray<float> dx(fused_norm ? residual : x), drouter(router), dlogits(logits.size()), dw(items);
      DeviceArray<float> dnw(norm_w), dnorm(x.size());
      DeviceArray<uint16_t> dnorm16(x.size());
      DeviceArray<int32_t> dids(items), doff(off.size()), dperm(items), dpos(items), dactive(size_t(c.experts)),
          dnum(1), ticket(size_t(kc::route_ticket_count(c.tokens)));
      DeviceArray<int64_t> dcounts(static_cast<size_t>(c.experts));
      dcounts.zero();
      ticket.zero();
      kc::RouteCudaParams p;
      p.x = dx.get();
      p.router = drouter.get();
      p.logits = dlogits.get();
      p.topk_ids = dids.get();
      p.topk_weights = dw.get();
      p.expert_offsets = doff.get();
      p.permuted_item = dperm.get();
      p.item_position = dpos.get();
      p.active_experts = dactive.get();
      p.num_active = dnum.get();
      p.expert_tokens = dcounts.get();
      p.ticket = ticket.get();
      p.num_tokens = c.tokens;
      p.hidden = c.hidden;
      p.num_experts = c.experts;
      p.top_k = c.top_k;
      p.normalization = c.norm;
      if (fused_norm) {
        p.norm_weight = dnw.get();
        p.eps = 1e-6f;
        p.norm_out = dnorm.get();
        p.norm_out_bf16 = as_bf16(dnorm16);
      }
      kc::launch_route(p, nullptr);
      // Twice: the tickets reset, the counts accumulate, and every output is written again.
      dids.poison();
      dw.poison();
      doff.poison();
      dperm.poison();
      dpos.poison();
      kc::launch_route(p, nullptr);
      CHECK(relative_error(dlogits.download(), logits) < 1e-5);
      CHECK(dids.download() == ids);
      CHECK(relative_error(dw.download(), w) < 1e-5);
      CHECK(doff.download() == off);
      CHECK(dperm.download() == perm);
      CHECK(dpos.download() == pos);
      CHECK(dnum.download()[0] == int32_t(active.size()));
      auto got_active = dactive.download();
      got_active.resize(active.size());
      CHECK(got_active == active);
      CHECK(dcounts.download() == counts);
      CHECK(ticket.download() == std::vector<int32_t>(size_t(kc::route_ticket_count(c.tokens)), 0));
      if (fused_norm) {
        CHECK(relative_error(dnorm.download(), x) < kTolF32);
        CHECK(relative_error(download_bf16(dnorm16), x) < kTolBf16Out);
      }
      // Bit-identical whatever the kernel and the batch: <= 4 tokens run as a cluster (allow_cluster)
      // or with the ticket kernel; a token alone (cluster) gives the row it got in a larger batch.
      const auto got_logits = dlogits.download(), got_w = dw.download(), got_norm = dnorm.download();
      const auto got_ids = dids.download();
      if (c.tokens <= 4) {
        for (bool cluster : {true, false}) {  // forced cluster kernel, then the ticket kernel
          INFO("cluster kernel " << cluster);
          p.force_cluster = cluster;
          p.allow_cluster = cluster;
          dlogits.poison();
          kc::launch_route(p, nullptr);
          CHECK(dlogits.download() == got_logits);
          CHECK(dids.download() == got_ids);
          CHECK(dw.download() == got_w);
          CHECK(dperm.download() == perm);
          if (fused_norm) CHECK(dnorm.download() == got_norm);
        }
        p.force_cluster = false;
        p.allow_cluster = true;
      } else {
        for (int32_t t = 0; t < 3; ++t) {
          INFO("token " << t << " alone");
          kc::RouteCudaParams one = p;
          one.num_tokens = 1;
          one.force_cluster = true;  // one token: the cluster kernel (ticket kernel in the batch)
          one.x = dx.get() + int64_t{t} * c.hidden;
          one.expert_tokens = nullptr;
          if (fused_norm) {
            one.norm_out = dnorm.get() + int64_t{t} * c.hidden;
            one.norm_out_bf16 = nullptr;
          }
          dlogits.poison();
          kc::launch_route(one, nullptr);
          const auto l1 = dlogits.download();
          CHECK(std::equal(l1.begin(), l1.begin() + c.experts, got_logits.begin() + int64_t{t} * c.experts));
          const auto i1 = dids.download();
          const auto w1 = dw.download();
          CHECK(std::equal(i1.begin(), i1.begin() + c.top_k, got_ids.begin() + int64_t{t} * c.top_k));
          CHECK(std::equal(w1.begin(), w1.begin() + c.top_k, got_w.begin() + int64_t{t} * c.top_k));
          if (fused_norm) {
            const auto n1 = dnorm.download();
            CHECK(std::equal(n1.begin() + int64_t{t} * c.hidden, n1.begin() + int64_t{t + 1} * c.hidden,
                             got_norm.begin() + int64_t{t} * c.hidden));
          }
        }
      }
    }
  }
}

TEST_CASE("combine and the fused MoE epilogue match the CPU twins", "[gpu][moe]") {
  const int32_t tokens = 11, top_k = 4, experts = 16, hidden = 320;
  const int32_t items = tokens * top_k;
  std::mt19937 rng(80);
  std::vector<int32_t> ids(items);
  for (int32_t t = 0; t < tokens; ++t) {
    std::set<int32_t> used;
    for (int32_t j = 0; j < top_k; ++j) {
      int32_t e;
      do e = int32_t(rng() % experts);
      while (used.count(e));
      used.insert(e);
      ids[size_t(t * top_k + j)] = e;
    }
  }
  auto w = random_floats(items, 81, 0.3f);
  std::vector<int32_t> off(experts + 1), perm(items), pos(items);
  kcpu::permute(kernels::PermuteParams{ids.data(), items, experts, off.data(), perm.data(), pos.data()});
  auto expert_out = random_floats(size_t(items) * hidden, 82);
  auto x = random_floats(size_t(tokens) * hidden, 83);
  auto shared = random_floats(size_t(tokens) * hidden, 84);
  auto gate = random_floats(tokens, 85);
  auto norm_w = random_floats(hidden, 86, 0.1f, 1.0f);
  std::vector<float> moe(size_t(tokens) * hidden);
  kcpu::combine(kernels::CombineParams{expert_out.data(), pos.data(), ids.data(), w.data(), moe.data(), tokens, top_k,
                                       hidden, 0});
  DeviceArray<float> dout(expert_out), dw(w), dmoe(moe.size());
  DeviceArray<int32_t> dids(ids), dpos(pos);
  kc::launch_combine(
      kernels::CombineParams{dout.get(), dpos.get(), dids.get(), dw.get(), dmoe.get(), tokens, top_k, hidden, 0},
      nullptr);
  CHECK(relative_error(dmoe.download(), moe) < kTolF32);

  kcpu::sigmoid_gate_add(kernels::SigmoidGateAddParams{moe.data(), shared.data(), gate.data(), tokens, hidden});
  auto x_want = x;
  kcpu::add(kernels::AddParams{x_want.data(), moe.data(), int64_t(x.size())});
  std::vector<float> norm_want(x.size());
  kcpu::rms_norm(kernels::RmsNormParams{x_want.data(), norm_w.data(), norm_want.data(), tokens, hidden, 1e-6f});
  DeviceArray<float> dx(x), dshared(shared), dgate(gate), dnw(norm_w), dnorm(x.size());
  DeviceArray<uint16_t> dnorm16(x.size());
  kc::MoeCombineCudaParams p;
  p.expert_out = dout.get();
  p.item_position = dpos.get();
  p.topk_ids = dids.get();
  p.topk_weights = dw.get();
  p.shared_out = dshared.get();
  p.shared_gate = dgate.get();
  p.x = dx.get();
  p.norm_weight = dnw.get();
  p.eps = 1e-6f;
  p.norm_out = dnorm.get();
  p.norm_out_bf16 = as_bf16(dnorm16);
  p.num_tokens = tokens;
  p.top_k = top_k;
  p.hidden = hidden;
  kc::launch_moe_combine(p, nullptr);
  CHECK(relative_error(dx.download(), x_want) < kTolF32);
  {
    // Without the norm: the combine spread over blocks of row slices, with and without a shared expert.
    DeviceArray<float> dx2(x);
    kc::MoeCombineCudaParams q = p;
    q.x = dx2.get();
    q.norm_weight = nullptr;
    q.norm_out = nullptr;
    q.norm_out_bf16 = nullptr;
    kc::launch_moe_combine(q, nullptr);
    CHECK(relative_error(dx2.download(), x_want) < kTolF32);
    std::vector<float> plain(size_t(tokens) * hidden);
    kcpu::combine(kernels::CombineParams{expert_out.data(), pos.data(), ids.data(), w.data(), plain.data(), tokens,
                                         top_k, hidden, 0});
    auto x_plain = x;
    kcpu::add(kernels::AddParams{x_plain.data(), plain.data(), int64_t(x.size())});
    DeviceArray<float> dx3(x);
    q.x = dx3.get();
    q.shared_out = nullptr;
    q.shared_gate = nullptr;
    kc::launch_moe_combine(q, nullptr);
    CHECK(relative_error(dx3.download(), x_plain) < kTolF32);
  }
  CHECK(relative_error(dnorm.download(), norm_want) < kTolF32);
  CHECK(relative_error(download_bf16(dnorm16), norm_want) < kTolBf16Out);
}
