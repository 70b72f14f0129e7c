#include "aurora/kernels/device.hpp"

namespace aurora::kernels {

bool built_with_cuda() { return AURORA_KERNELS_HAVE_CUDA != 0; }

#if !AURORA_KERNELS_HAVE_CUDA
int cuda_device_count() { return 0; }
#endif

}  // namespace aurora::kernels
