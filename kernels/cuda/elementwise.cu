// Small GPU ops: embedding, add, sigmoid gate, clamp, silu * up, gathers, conversions, random init.
#include "aurora/kernels/cuda/elementwise.hpp"

#include <algorithm>

#include "aurora/kernels/kernel_check.hpp"
#include "device_utils.cuh"

namespace aurora::kernels::cuda {
namespace {

constexpr int kThreads = 256;

int grid_for(int64_t n) {
  return std::max(1, static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535 * 8)));
}

__global__ void embedding_kernel(const int32_t* ids, const void* table, DType table_dtype, float* out, int32_t hidden,
                                 int32_t vocab) {
  const int32_t t = blockIdx.x;
  const int32_t id = ids[t];
  float* row = out + int64_t{t} * hidden;
  const bool valid = id >= 0 && id < vocab;
  for (int32_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    row[i] = valid ? detail::load_as_float(table, table_dtype, int64_t{id} * hidden + i) : 0.0f;
  }
}

__global__ void add_kernel(float* y, const float* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    y[i] += x[i];
}

__global__ void sigmoid_gate_add_kernel(float* y, const float* x, const float* gate, int32_t dim) {
  const int32_t r = blockIdx.x;
  const float g = 1.0f / (1.0f + expf(-gate[r]));
  for (int32_t i = threadIdx.x; i < dim; i += blockDim.x) y[int64_t{r} * dim + i] += g * x[int64_t{r} * dim + i];
}

__global__ void clamp_kernel(float* x, int64_t n, float limit) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    x[i] = fminf(fmaxf(x[i], -limit), limit);
  }
}

__global__ void gather_rows_kernel(const float* src, const int32_t* rows, float* dst, int32_t row_floats,
                                   int64_t src_stride, int64_t dst_stride) {
  const int32_t r = blockIdx.x;
  const float* s = src + int64_t{rows[r]} * src_stride;
  float* d = dst + int64_t{r} * dst_stride;
  for (int32_t i = threadIdx.x; i < row_floats; i += blockDim.x) d[i] = s[i];
}

__global__ void gather_rows_bf16_kernel(GatherRowsBf16Params p) {
  const int32_t r = blockIdx.x;
  const uint4* s = reinterpret_cast<const uint4*>(p.src + int64_t{p.rows[r] / p.row_div} * p.src_stride);
  uint4* d = reinterpret_cast<uint4*>(p.dst + int64_t{r} * p.row_elems);
  for (int32_t i = threadIdx.x; i < p.row_elems / 8; i += blockDim.x) d[i] = s[i];
}

__global__ void silu_mul_kernel(const float* gate_up, int64_t stride, float* out_f32, bf16* out_bf16, int32_t inter,
                                int64_t out_stride) {
  const int32_t r = blockIdx.x;
  const float* g = gate_up + int64_t{r} * stride;
  for (int32_t i = threadIdx.x; i < inter; i += blockDim.x) {
    const float v = detail::silu(g[i]) * g[inter + i];
    if (out_f32) out_f32[int64_t{r} * out_stride + i] = v;
    if (out_bf16) out_bf16[int64_t{r} * out_stride + i] = __float2bfloat16(v);
  }
}

__global__ void f32_to_bf16_kernel(const float* src, bf16* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    dst[i] = __float2bfloat16(src[i]);
  }
}

__global__ void bf16_to_f32_kernel(const bf16* src, float* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    dst[i] = __bfloat162float(src[i]);
  }
}

__device__ __forceinline__ uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

__global__ void random_fill_kernel(void* dst, DType dtype, int64_t n, uint64_t seed, float stddev, float mean) {
  const float half_width = 1.7320508f * stddev;  // U(-a, a) has variance a^2 / 3
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const uint64_t h = mix64(seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(i) + 0x632be59bd9b4e019ull);
    const float u = static_cast<float>(h >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    detail::store_from_float(dst, dtype, i, mean + half_width * (2.0f * u - 1.0f));
  }
}

}  // namespace

void launch_embedding(const EmbeddingCudaParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return;
  embedding_kernel<<<p.num_tokens, 256, 0, stream>>>(p.ids, p.table, p.table_dtype, p.out, p.hidden, p.vocab_size);
  AURORA_CUDA_LAUNCH_CHECK();
}

void launch_embedding(const EmbeddingParams& p, cudaStream_t stream) {
  launch_embedding(EmbeddingCudaParams{p.ids, p.table, DType::kF32, p.out, p.num_tokens, p.hidden, p.vocab_size},
                   stream);
}

void launch_add(const AddParams& p, cudaStream_t stream) {
  if (p.num_elements == 0) return;
  add_kernel<<<grid_for(p.num_elements), kThreads, 0, stream>>>(p.y, p.x, p.num_elements);
  AURORA_CUDA_LAUNCH_CHECK();
}

void launch_sigmoid_gate_add(const SigmoidGateAddParams& p, cudaStream_t stream) {
  if (p.num_rows == 0) return;
  sigmoid_gate_add_kernel<<<p.num_rows, kThreads, 0, stream>>>(p.y, p.x, p.gate, p.dim);
  AURORA_CUDA_LAUNCH_CHECK();
}

void launch_clamp(const ClampParams& p, cudaStream_t stream) {
  if (p.num_elements == 0) return;
  clamp_kernel<<<grid_for(p.num_elements), kThreads, 0, stream>>>(p.x, p.num_elements, p.limit);
  AURORA_CUDA_LAUNCH_CHECK();
}

void launch_gather_rows(const GatherRowsParams& p, cudaStream_t stream) {
  if (p.num_rows == 0) return;
  gather_rows_kernel<<<p.num_rows, kThreads, 0, stream>>>(p.src, p.rows, p.dst, p.row_floats,
                                                          p.src_stride ? p.src_stride : p.row_floats,
                                                          p.dst_stride ? p.dst_stride : p.row_floats);
  AURORA_CUDA_LAUNCH_CHECK();
}

void launch_gather_rows_bf16(const GatherRowsBf16Params& p, cudaStream_t stream) {
  if (p.num_rows == 0) return;
  AURORA_KERNEL_CHECK(p.row_elems % 8 == 0 && p.src_stride % 8 == 0, "bf16 gather needs 16-byte rows");
  gather_rows_bf16_kernel<<<p.num_rows, 128, 0, stream>>>(p);
  AURORA_CUDA_LAUNCH_CHECK();
}

void launch_silu_mul(const SiluMulCudaParams& p, cudaStream_t stream) {
  if (p.num_rows == 0) return;
  AURORA_KERNEL_CHECK(p.out_f32 || p.out_bf16, "silu_mul needs an output");
  silu_mul_kernel<<<p.num_rows, kThreads, 0, stream>>>(
      p.gate_up, p.gate_up_stride ? p.gate_up_stride : int64_t{2} * p.intermediate, p.out_f32, p.out_bf16,
      p.intermediate, p.out_stride ? p.out_stride : p.intermediate);
  AURORA_CUDA_LAUNCH_CHECK();
}

void launch_f32_to_bf16(const float* src, bf16* dst, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  f32_to_bf16_kernel<<<grid_for(n), kThreads, 0, stream>>>(src, dst, n);
  AURORA_CUDA_LAUNCH_CHECK();
}

void launch_bf16_to_f32(const bf16* src, float* dst, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  bf16_to_f32_kernel<<<grid_for(n), kThreads, 0, stream>>>(src, dst, n);
  AURORA_CUDA_LAUNCH_CHECK();
}

void launch_random_fill(void* dst, DType dtype, int64_t n, uint64_t seed, float stddev, float mean,
                        cudaStream_t stream) {
  if (n == 0) return;
  random_fill_kernel<<<std::min(grid_for(n), 132 * 16), kThreads, 0, stream>>>(dst, dtype, n, seed, stddev, mean);
  AURORA_CUDA_LAUNCH_CHECK();
}

}  // namespace aurora::kernels::cuda
