#include <cuda_runtime.h>

#include "aurora/kernels/device.hpp"

namespace aurora::kernels {

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no driver / no device" error
    return 0;
  }
  return count;
}

}  // namespace aurora::kernels
