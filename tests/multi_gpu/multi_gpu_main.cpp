// main() for the multi-GPU tests: needs two CUDA devices. With fewer it exits AURORA_SKIP_CODE
// (CTest: skipped) unless AURORA_REQUIRE_GPU=1, where it fails. Started with
// AURORA_MG_CHILD=1 it is one process of the two-process rendezvous test instead (see
// multi_gpu_test.cpp).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "aurora/kernels/device.hpp"

int run_rendezvous_child();  // multi_gpu_test.cpp

int main(int argc, char** argv) {
  ::setenv("NCCL_NVLS_ENABLE", "0", 0);  // never NVLink multicast on shared machines
  if (const char* child = std::getenv("AURORA_MG_CHILD"); child && std::strcmp(child, "1") == 0) {
    return run_rendezvous_child();
  }
  const char* require = std::getenv("AURORA_REQUIRE_GPU");
  const bool required = require != nullptr && std::strcmp(require, "1") == 0;
  const int devices = aurora::kernels::cuda_device_count();
  if (devices < 2) {
    if (required) {
      std::fprintf(stderr, "AURORA_REQUIRE_GPU=1 but the multi-GPU tests need 2 CUDA devices, %d visible\n", devices);
      return 1;
    }
    std::fprintf(stderr, "%d CUDA device(s): the multi-GPU tests need 2; skipping\n", devices);
    return AURORA_SKIP_CODE;
  }
  return Catch::Session().run(argc, argv);
}
