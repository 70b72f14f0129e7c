// A second, independent implementation of the supported architectures for tests: dense, one
// sequence, no KV cache, double precision, written straight from the transformers modeling code.
// The executor (paged, chunked, expert parallel, float32) must agree with it.
#pragma once

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "model/model.hpp"

namespace aurora::runtime::test {

using Mat = std::vector<double>;  // row-major

inline Mat linear_ref(const Mat& x, int rows, int in, const float* w, const float* b, int out) {
  Mat y(size_t(rows) * out);
  for (int r = 0; r < rows; ++r) {
    for (int o = 0; o < out; ++o) {
      double acc = b ? b[o] : 0.0;
      for (int i = 0; i < in; ++i) acc += x[size_t(r) * in + i] * w[size_t(o) * in + i];
      y[size_t(r) * out + o] = acc;
    }
  }
  return y;
}

inline void rms_norm_ref(Mat& x, int rows, int dim, const float* w, double eps) {
  for (int r = 0; r < rows; ++r) {
    double ss = 0;
    for (int i = 0; i < dim; ++i) ss += x[size_t(r) * dim + i] * x[size_t(r) * dim + i];
    const double inv = 1.0 / std::sqrt(ss / dim + eps);
    for (int i = 0; i < dim; ++i) x[size_t(r) * dim + i] = w[i] * x[size_t(r) * dim + i] * inv;
  }
}

inline Mat ffn_ref(const Mat& h, int rows, int H, const FfnWeights& w) {
  Mat g = linear_ref(h, rows, H, w.gate, nullptr, w.intermediate);
  Mat u = linear_ref(h, rows, H, w.up, nullptr, w.intermediate);
  for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
  return linear_ref(g, rows, w.intermediate, w.down, nullptr, H);
}

// Logits [T, vocab] for every position of `tokens`.
inline Mat reference_logits(const Model& m, const std::vector<int32_t>& tokens) {
  const auto& c = m.config;
  const int T = int(tokens.size()), H = c.hidden_size, hd = c.head_dim;
  const int nq = c.num_heads, nk = c.num_kv_heads, qd = nq * hd, kd = nk * hd;
  Mat x(size_t(T) * H);
  for (int t = 0; t < T; ++t) {
    for (int i = 0; i < H; ++i) x[size_t(t) * H + i] = m.embed_tokens[size_t(tokens[t]) * H + i];
  }
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerWeights& L = m.layers[size_t(l)];
    Mat h = x;
    rms_norm_ref(h, T, H, L.input_norm, c.rms_norm_eps);
    Mat q = linear_ref(h, T, H, L.q_proj, L.q_bias, qd);
    Mat k = linear_ref(h, T, H, L.k_proj, L.k_bias, kd);
    Mat v = linear_ref(h, T, H, L.v_proj, L.v_bias, kd);
    if (c.qk_norm == config::QkNorm::kPerHead) {
      rms_norm_ref(q, T * nq, hd, L.q_norm, c.rms_norm_eps);
      rms_norm_ref(k, T * nk, hd, L.k_norm, c.rms_norm_eps);
    } else if (c.qk_norm == config::QkNorm::kFull) {
      rms_norm_ref(q, T, qd, L.q_norm, c.rms_norm_eps);
      rms_norm_ref(k, T, kd, L.k_norm, c.rms_norm_eps);
    }
    if (c.clip_qkv) {
      for (Mat* mat : {&q, &k, &v}) {
        for (auto& val : *mat) val = std::clamp(val, -*c.clip_qkv, *c.clip_qkv);
      }
    }
    auto rope = [&](Mat& a, int heads) {
      for (int t = 0; t < T; ++t) {
        for (int hh = 0; hh < heads; ++hh) {
          double* p = &a[(size_t(t) * heads + hh) * hd];
          for (int i = 0; i < hd / 2; ++i) {
            const double ang = double(t) * m.inv_freq[size_t(i)];
            const double x1 = p[i], x2 = p[i + hd / 2];
            p[i] = x1 * std::cos(ang) - x2 * std::sin(ang);
            p[i + hd / 2] = x2 * std::cos(ang) + x1 * std::sin(ang);
          }
        }
      }
    };
    rope(q, nq);
    rope(k, nk);
    Mat attn(size_t(T) * qd, 0.0);
    const int window = c.layer_sliding_window[size_t(l)];
    for (int t = 0; t < T; ++t) {
      for (int hh = 0; hh < nq; ++hh) {
        const int kh = hh / (nq / nk);
        const int start = window > 0 ? std::max(0, t - window + 1) : 0;
        std::vector<double> s;
        for (int j = start; j <= t; ++j) {
          double d = 0;
          for (int i = 0; i < hd; ++i) d += q[(size_t(t) * nq + hh) * hd + i] * k[(size_t(j) * nk + kh) * hd + i];
          s.push_back(d / std::sqrt(double(hd)));
        }
        const double mx = *std::max_element(s.begin(), s.end());
        double sum = 0;
        for (auto& e : s) sum += (e = std::exp(e - mx));
        for (int j = start; j <= t; ++j) {
          for (int i = 0; i < hd; ++i) {
            attn[(size_t(t) * nq + hh) * hd + i] += s[size_t(j - start)] / sum * v[(size_t(j) * nk + kh) * hd + i];
          }
        }
      }
    }
    Mat o = linear_ref(attn, T, qd, L.o_proj, nullptr, H);
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    h = x;
    rms_norm_ref(h, T, H, L.post_attention_norm, c.rms_norm_eps);
    Mat out(size_t(T) * H, 0.0);
    if (!L.is_moe) {
      out = ffn_ref(h, T, H, L.dense_mlp);
    } else {
      const int E = c.num_experts, K = c.num_experts_per_tok;
      Mat logits = linear_ref(h, T, H, L.router, nullptr, E);
      for (int t = 0; t < T; ++t) {
        std::vector<double> p(logits.begin() + size_t(t) * E, logits.begin() + size_t(t + 1) * E);
        const double mx = *std::max_element(p.begin(), p.end());
        double sum = 0;
        for (auto& e : p) sum += (e = std::exp(e - mx));
        for (auto& e : p) e /= sum;
        std::vector<int> order(static_cast<size_t>(E));
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[size_t(a)] > p[size_t(b)]; });
        double chosen = 0;
        for (int j = 0; j < K; ++j) chosen += p[size_t(order[size_t(j)])];
        Mat row(h.begin() + size_t(t) * H, h.begin() + size_t(t + 1) * H);
        for (int j = 0; j < K; ++j) {
          const int e = order[size_t(j)];
          double w = p[size_t(e)];
          if (c.topk_norm == config::TopKNorm::kRenormalize) w /= chosen;
          Mat y = ffn_ref(row, 1, H, L.experts[size_t(e)]);
          for (int i = 0; i < H; ++i) out[size_t(t) * H + i] += w * y[size_t(i)];
        }
        if (L.shared_expert.gate) {
          Mat y = ffn_ref(row, 1, H, L.shared_expert);
          double g = 0;
          for (int i = 0; i < H; ++i) g += row[size_t(i)] * L.shared_expert_gate[i];
          g = 1.0 / (1.0 + std::exp(-g));
          for (int i = 0; i < H; ++i) out[size_t(t) * H + i] += g * y[size_t(i)];
        }
      }
    }
    for (size_t i = 0; i < x.size(); ++i) x[i] += out[i];
  }
  rms_norm_ref(x, T, H, m.final_norm, c.rms_norm_eps);
  return linear_ref(x, T, H, m.lm_head, nullptr, c.vocab_size);
}

}  // namespace aurora::runtime::test
