// ModelBuilder: makes a Model whose weights live in process memory: random weights for any valid
// config (benchmarks, tests), or hand-designed ones (the embedded model). Deterministic per seed.
#pragma once

#include <memory>
#include <string>

#include "model/model.hpp"
#include "util/rng.hpp"

namespace aurora::runtime {

class ModelBuilder {
 public:
  ModelBuilder(config::ModelConfig config, uint64_t seed, std::string name);

  float* zeros(size_t n);
  float* constant(size_t n, float value);
  float* normal(size_t n, float stddev, float mean = 0.0f);
  Rng& rng() { return rng_; }
  Model& model() { return *model_; }

  // Gives every tensor random values: projections N(0, 1/sqrt(fan_in)), norms near 1.
  void fill_random();
  // Validates the config, computes the RoPE table; the builder is empty afterwards.
  Result<std::shared_ptr<const Model>> finish();

 private:
  FfnWeights random_ffn(int32_t intermediate, float down_scale);
  std::shared_ptr<Model> model_;
  Rng rng_;
};

// A model of `config`'s shape with random weights (no checkpoint needed).
Result<std::shared_ptr<const Model>> make_random_model(const config::ModelConfig& config, uint64_t seed,
                                                       const std::string& name);

}  // namespace aurora::runtime
