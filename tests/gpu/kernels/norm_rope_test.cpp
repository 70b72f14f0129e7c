// RMSNorm, RoPE and the fused attention prologue against the CPU twins.
#include <catch2/catch.hpp>

#include "aurora/kernels/attention.hpp"
#include "aurora/kernels/cuda/norm_rope.hpp"
#include "aurora/kernels/elementwise.hpp"
#include "aurora/kernels/rms_norm.hpp"
#include "aurora/kernels/rope.hpp"
#include "gpu_test_support.hpp"

using namespace aurora;
using namespace aurora::test;
namespace kc = aurora::kernels::cuda;
namespace kcpu = aurora::kernels::cpu;

namespace {
std::vector<float> inv_freq(int32_t head_dim, double theta) {
  std::vector<float> f(size_t(head_dim / 2));
  for (int32_t i = 0; i < head_dim / 2; ++i) {
    f[size_t(i)] = 1.0f / float(std::pow(theta, double(float(2 * i) / float(head_dim))));
  }
  return f;
}
}  // namespace

TEST_CASE("rms_norm matches the CPU twin (float32, bf16 copy, row gather)", "[gpu][norm]") {
  for (int32_t dim : {64, 2048, 4096, 100}) {
    INFO("dim " << dim);
    const int32_t rows = 9;
    auto x = random_floats(size_t(rows) * dim, 10 + dim, 2.0f);
    auto w = random_floats(size_t(dim), 11, 0.2f, 1.0f);
    std::vector<float> want(x.size());
    kcpu::rms_norm(kernels::RmsNormParams{x.data(), w.data(), want.data(), rows, dim, 1e-5f});
    DeviceArray<float> dx(x), dw(w), y(x.size());
    kc::launch_rms_norm(kernels::RmsNormParams{dx.get(), dw.get(), y.get(), rows, dim, 1e-5f}, nullptr);
    CHECK(relative_error(y.download(), want) < kTolF32);
    // Gathered rows, float32 and bf16 outputs.
    std::vector<int32_t> pick = {8, 0, 4};
    std::vector<float> want_pick;
    for (int32_t r : pick) want_pick.insert(want_pick.end(), want.begin() + r * dim, want.begin() + (r + 1) * dim);
    DeviceArray<int32_t> dpick(pick);
    DeviceArray<float> yp(want_pick.size());
    DeviceArray<uint16_t> yp16(want_pick.size());
    kc::RmsNormCudaParams p;
    p.x = dx.get();
    p.rows = dpick.get();
    p.weight = dw.get();
    p.y = yp.get();
    p.y_bf16 = as_bf16(yp16);
    p.num_rows = 3;
    p.dim = dim;
    p.eps = 1e-5f;
    kc::launch_rms_norm(p, nullptr);
    CHECK(relative_error(yp.download(), want_pick) < kTolF32);
    CHECK(relative_error(download_bf16(yp16), want_pick) < kTolBf16Out);
  }
}

TEST_CASE("rope matches the CPU twin", "[gpu][rope]") {
  const int32_t tokens = 6, hq = 4, hkv = 2, hd = 24;
  auto q = random_floats(size_t(tokens) * hq * hd, 20), k = random_floats(size_t(tokens) * hkv * hd, 21);
  std::vector<int32_t> pos = {0, 1, 7, 100, 4095, 33};
  auto freq = inv_freq(hd, 1e6);
  auto wq = q, wk = k;
  kcpu::rope(kernels::RopeParams{wq.data(), wk.data(), pos.data(), freq.data(), tokens, hq, hkv, hd});
  DeviceArray<float> dq(q), dk(k), dfreq(freq);
  DeviceArray<int32_t> dpos(pos);
  kc::launch_rope(kernels::RopeParams{dq.get(), dk.get(), dpos.get(), dfreq.get(), tokens, hq, hkv, hd}, nullptr);
  CHECK(relative_error(dq.download(), wq) < 1e-5);
  CHECK(relative_error(dk.download(), wk) < 1e-5);
}

TEST_CASE("the attention prologue matches bias, q/k norm, clamp, rope and the cache write", "[gpu][rope]") {
  struct Case {
    kc::QkNormMode norm;
    bool bias;
    float clip;
    int32_t hq, hkv, hd;
  };
  for (const Case& c :
       {Case{kc::QkNormMode::kNone, true, 0.0f, 4, 2, 16}, Case{kc::QkNormMode::kPerHead, false, 0.0f, 4, 2, 24},
        Case{kc::QkNormMode::kFull, false, 2.0f, 4, 4, 16}, Case{kc::QkNormMode::kPerHead, false, 0.0f, 32, 4, 128},
        Case{kc::QkNormMode::kNone, false, 0.0f, 32, 8, 128}}) {
    // 5 tokens: a block per (token, head); 12: a block per token.
    for (int32_t tokens : {5, 12}) {
      INFO("norm " << int(c.norm) << " heads " << c.hq << "/" << c.hkv << " head_dim " << c.hd << " tokens " << tokens);
      const int32_t q_dim = c.hq * c.hd, kv_dim = c.hkv * c.hd, width = q_dim + 2 * kv_dim;
      const int32_t num_slots = 64;
      auto qkv = random_floats(size_t(tokens) * width, 30, 1.5f);
      auto bias = random_floats(size_t(width), 31, 0.3f);
      const int32_t qn = c.norm == kc::QkNormMode::kFull ? q_dim : c.hd,
                    kn = c.norm == kc::QkNormMode::kFull ? kv_dim : c.hd;
      auto q_norm = random_floats(size_t(qn), 32, 0.1f, 1.0f), k_norm = random_floats(size_t(kn), 33, 0.1f, 1.0f);
      std::vector<int32_t> pos = {3, 4, 5, 6, 300, 7, 8, 9, 1000, 2, 40, 41};
      std::vector<int32_t> slots = {10, 11, 63, 0, 20, 21, 22, 23, 30, 31, 32, 33};
      pos.resize(size_t(tokens));
      slots.resize(size_t(tokens));
      auto freq = inv_freq(c.hd, 10000.0);
      // CPU: the executor's sequence of twins.
      std::vector<float> q(size_t(tokens) * q_dim), k(size_t(tokens) * kv_dim), v(size_t(tokens) * kv_dim);
      for (int32_t t = 0; t < tokens; ++t) {
        for (int32_t i = 0; i < width; ++i) {
          float x = qkv[size_t(t) * width + i] + (c.bias ? bias[size_t(i)] : 0.0f);
          if (i < q_dim)
            q[size_t(t) * q_dim + i] = x;
          else if (i < q_dim + kv_dim)
            k[size_t(t) * kv_dim + i - q_dim] = x;
          else
            v[size_t(t) * kv_dim + i - q_dim - kv_dim] = x;
        }
      }
      if (c.norm == kc::QkNormMode::kPerHead) {
        kcpu::rms_norm(kernels::RmsNormParams{q.data(), q_norm.data(), q.data(), tokens * c.hq, c.hd, 1e-6f});
        kcpu::rms_norm(kernels::RmsNormParams{k.data(), k_norm.data(), k.data(), tokens * c.hkv, c.hd, 1e-6f});
      } else if (c.norm == kc::QkNormMode::kFull) {
        kcpu::rms_norm(kernels::RmsNormParams{q.data(), q_norm.data(), q.data(), tokens, q_dim, 1e-6f});
        kcpu::rms_norm(kernels::RmsNormParams{k.data(), k_norm.data(), k.data(), tokens, kv_dim, 1e-6f});
      }
      if (c.clip > 0) {
        for (auto* vec : {&q, &k, &v}) kcpu::clamp(kernels::ClampParams{vec->data(), int64_t(vec->size()), c.clip});
      }
      kcpu::rope(kernels::RopeParams{q.data(), k.data(), pos.data(), freq.data(), tokens, c.hq, c.hkv, c.hd});
      std::vector<float> kc_want(size_t(num_slots) * kv_dim, 0.0f), vc_want(kc_want.size(), 0.0f);
      kcpu::write_kv_cache(kernels::KvCacheWriteParams{k.data(), v.data(), kc_want.data(), vc_want.data(), slots.data(),
                                                       tokens, c.hkv, c.hd});
      for (auto dtype : {kc::DType::kF32, kc::DType::kBF16}) {
        DeviceArray<float> dqkv(qkv), dbias(bias), dqn(q_norm), dkn(k_norm), dfreq(freq), qout(q.size());
        DeviceArray<int32_t> dpos(pos), dslots(slots);
        DeviceArray<float> kcache(kc_want.size()), vcache(kc_want.size());
        DeviceArray<uint16_t> kcache16(kc_want.size()), vcache16(kc_want.size());
        kcache.zero();
        vcache.zero();
        kcache16.zero();
        vcache16.zero();
        kc::QkvPrologueParams p;
        p.qkv = dqkv.get();
        p.bias = c.bias ? dbias.get() : nullptr;
        p.qk_norm = c.norm;
        p.q_norm = dqn.get();
        p.k_norm = dkn.get();
        p.clip = c.clip;
        p.positions = dpos.get();
        p.inv_freq = dfreq.get();
        p.q_out = qout.get();
        const bool f32 = dtype == kc::DType::kF32;
        p.k_cache = f32 ? static_cast<void*>(kcache.get()) : static_cast<void*>(kcache16.get());
        p.v_cache = f32 ? static_cast<void*>(vcache.get()) : static_cast<void*>(vcache16.get());
        p.kv_dtype = dtype;
        p.slot_mapping = dslots.get();
        p.num_tokens = tokens;
        p.num_q_heads = c.hq;
        p.num_kv_heads = c.hkv;
        p.head_dim = c.hd;
        p.eps = 1e-6f;
        kc::launch_qkv_prologue(p, nullptr);
        CHECK(relative_error(qout.download(), q) < 1e-5);
        if (f32) {
          CHECK(relative_error(kcache.download(), kc_want) < 1e-5);
          CHECK(relative_error(vcache.download(), vc_want) < 1e-5);
        } else {
          CHECK(relative_error(download_bf16(kcache16), kc_want) < kTolBf16Out);
          CHECK(relative_error(download_bf16(vcache16), vc_want) < kTolBf16Out);
        }
      }
    }
  }
}
