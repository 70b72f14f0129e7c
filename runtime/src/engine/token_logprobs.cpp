#include "engine/token_logprobs.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "aurora/config/check.hpp"

namespace aurora::runtime {

namespace {

float finite_or_min(float x) { return std::isnan(x) ? -std::numeric_limits<float>::infinity() : x; }

// Higher logit first; equal logits: lower id first (a strict weak order, so the order is total).
bool more_likely(const TokenLogprob& a, const TokenLogprob& b) {
  return a.logprob > b.logprob || (a.logprob == b.logprob && a.token_id < b.token_id);
}

}  // namespace

GeneratedLogprobs compute_token_logprobs(const float* logits, int32_t vocab_size, int32_t token, int32_t num_top) {
  AURORA_CHECK(logits != nullptr && vocab_size > 0 && token >= 0 && token < vocab_size);
  const auto V = static_cast<size_t>(vocab_size);
  float max_logit = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < V; ++i) max_logit = std::max(max_logit, finite_or_min(logits[i]));
  double log_z = -std::numeric_limits<double>::infinity();
  if (std::isfinite(max_logit)) {
    double sum = 0.0;
    for (size_t i = 0; i < V; ++i) sum += std::exp(static_cast<double>(finite_or_min(logits[i])) - max_logit);
    log_z = static_cast<double>(max_logit) + std::log(sum);
  } else if (max_logit > 0) {
    log_z = std::numeric_limits<double>::infinity();  // +inf logits: every finite token is impossible
  }
  auto logprob_of = [&](size_t i) -> float {
    const float x = finite_or_min(logits[i]);
    if (!std::isfinite(log_z) || std::isinf(x)) {
      // Degenerate rows: +inf tokens share the mass (log 1 here, as one of them), the rest get -inf.
      return (std::isinf(x) && x > 0) ? 0.0f : -std::numeric_limits<float>::infinity();
    }
    return static_cast<float>(static_cast<double>(x) - log_z);
  };

  GeneratedLogprobs out;
  out.sampled = TokenLogprob{token, logprob_of(static_cast<size_t>(token))};
  const size_t k = std::min(V, static_cast<size_t>(std::max(num_top, 0)));
  if (k == 0) return out;
  // Select by logit (the order of the logprobs), keeping a min-heap of the best k seen.
  std::vector<TokenLogprob> best;
  best.reserve(k);
  for (size_t i = 0; i < V; ++i) {
    const TokenLogprob c{static_cast<int32_t>(i), finite_or_min(logits[i])};
    if (best.size() < k) {
      best.push_back(c);
      std::push_heap(best.begin(), best.end(), more_likely);
    } else if (more_likely(c, best.front())) {
      std::pop_heap(best.begin(), best.end(), more_likely);
      best.back() = c;
      std::push_heap(best.begin(), best.end(), more_likely);
    }
  }
  std::sort(best.begin(), best.end(), more_likely);
  for (auto& t : best) t.logprob = logprob_of(static_cast<size_t>(t.token_id));
  out.top = std::move(best);
  return out;
}

}  // namespace aurora::runtime
