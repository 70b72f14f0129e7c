// main() for GPU test executables: skips (exit AURORA_SKIP_CODE, mapped by CTest to "skipped")
// when no CUDA device is present, unless AURORA_REQUIRE_GPU=1, where a missing device fails.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "aurora/kernels/device.hpp"

int main(int argc, char** argv) {
  const char* require = std::getenv("AURORA_REQUIRE_GPU");
  bool required = require != nullptr && std::strcmp(require, "1") == 0;
  if (aurora::kernels::cuda_device_count() == 0) {
    if (required) {
      std::fprintf(stderr, "AURORA_REQUIRE_GPU=1 but no CUDA device is visible (built with CUDA: %s)\n",
                   aurora::kernels::built_with_cuda() ? "yes" : "no");
      return 1;
    }
    std::fprintf(stderr, "no CUDA device: skipping\n");
    return AURORA_SKIP_CODE;
  }
  return Catch::Session().run(argc, argv);
}
