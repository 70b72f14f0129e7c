// Device discovery: how many CUDA devices this process sees (0 when built without CUDA or
// when no GPU is present). Never throws.
#pragma once

namespace aurora::kernels {

int cuda_device_count();
bool built_with_cuda();

}  // namespace aurora::kernels
