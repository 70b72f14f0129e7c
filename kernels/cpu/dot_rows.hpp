// dot_rows: the one dot-product routine of the CPU kernels (private to kernels/cpu), inline so that
// attention and norms get it without a call. Eight partial sums per row in a fixed order, reduced
// by a fixed tree: a row's result depends only on the row, never on how many rows are processed
// together (batch invariance). Compiled with -ffp-contract=off (no FMA contraction).
#pragma once

#include <cstdint>
#include <cstring>

namespace aurora::kernels::cpu::detail {

// Eight partial sums per row, kept as two 4-lane vectors (lanes 0-3 and 4-7): lane-wise + and *
// are IEEE single operations, so they round exactly as eight scalar accumulators would.
typedef float Lanes4 __attribute__((vector_size(16)));

inline Lanes4 load4(const float* p) {
  Lanes4 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// R rows against one weight row. Each row keeps its own 8 partial sums and reduces them exactly as
// dot() does, so a row's result does not depend on R (batch invariance).
template <int R>
inline void dot_rows(const float* const* x, const float* w, int32_t n, float* out) {
  Lanes4 lo[R], hi[R];
  for (int r = 0; r < R; ++r) lo[r] = hi[r] = Lanes4{};
  int32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const Lanes4 w_lo = load4(w + i), w_hi = load4(w + i + 4);
    for (int r = 0; r < R; ++r) {
      lo[r] += load4(x[r] + i) * w_lo;
      hi[r] += load4(x[r] + i + 4) * w_hi;
    }
  }
  for (int r = 0; r < R; ++r) {
    float tail = 0.0f;
    for (int32_t k = i; k < n; ++k) tail += x[r][k] * w[k];
    const Lanes4 a = lo[r], b = hi[r];
    out[r] = ((a[0] + b[0]) + (a[1] + b[1])) + ((a[2] + b[2]) + (a[3] + b[3])) + tail;
  }
}

inline float dot_one(const float* a, const float* b, int32_t n) {
  float out = 0.0f;
  const float* rows[1] = {a};
  dot_rows<1>(rows, b, n, &out);
  return out;
}

}  // namespace aurora::kernels::cpu::detail
