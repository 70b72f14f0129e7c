// `aurora version`: build information.
#include <cstdio>

#include "aurora/kernels/device.hpp"
#include "commands.hpp"

namespace aurora::cli {
namespace {

int run_version(int /*argc*/, char** /*argv*/) {
  std::printf("aurora 0.1.0 (cuda backend: %s, cuda devices: %d)\n", kernels::built_with_cuda() ? "built" : "not built",
              kernels::cuda_device_count());
  return kExitOk;
}

const CommandRegistrar kRegistrar{"version", "print the version and the build's backends", &run_version};

}  // namespace
}  // namespace aurora::cli
