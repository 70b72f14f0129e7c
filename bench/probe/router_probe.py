# Adds globaltimer probes to route_kernel: the block that routes (the last of its group) records its
# phases; dump_route_probe() prints the mean times over the last 256 launches. For a probe build only
# (build_probe_bench.sh), never committed to the sources.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_common import dump_function, ensure_cstdio, stamp_buffer  # noqa: E402

p = sys.argv[1]
s = open(p).read()
defs = stamp_buffer('g_rprobe', 7)
s = s.replace('namespace cg = cooperative_groups;\n', 'namespace cg = cooperative_groups;\n' + defs, 1)
# signature: add probe array pointer param to route_group_then_permute
s = s.replace('''__device__ void route_group_then_permute(const RouteCudaParams& p, int32_t t0, int32_t group_tokens,
                                         float (*probs)[kMaxRoutedExperts], int32_t* small_keys, int32_t& is_last) {''',
'''__device__ void route_group_then_permute(const RouteCudaParams& p, int32_t t0, int32_t group_tokens,
                                         float (*probs)[kMaxRoutedExperts], int32_t* small_keys, int32_t& is_last,
                                         unsigned long long* pt = nullptr) {''', 1)
s = s.replace('''  __syncthreads();
  if (!is_last) return;
  __threadfence();
  const bool renormalize''', '''  __syncthreads();
  if (!is_last) return;
  __threadfence();
  if (pt && threadIdx.x == 0) pt[4] = g_rprobe_timer();
  const bool renormalize''', 1)
s = s.replace('''  int32_t* counts = reinterpret_cast<int32_t*>(probs);  // probs are no longer needed''', '''  if (pt && threadIdx.x == 0) pt[5] = g_rprobe_timer();
  int32_t* counts = reinterpret_cast<int32_t*>(probs);  // probs are no longer needed''', 1)
s = s.replace('''  if (small) {
    permute_small(small_keys, p.num_tokens * p.top_k, p.num_experts, out, counts);
  } else {''', '''  if (small) {
    permute_small(small_keys, p.num_tokens * p.top_k, p.num_experts, out, counts);
    __syncthreads();
    if (pt && threadIdx.x == 0) {
      pt[6] = g_rprobe_timer();
      const unsigned i = atomicAdd(&g_rprobe_n, 1u) % 256u;
      for (int q = 0; q < 7; ++q) g_rprobe_buf[i][q] = pt[q];
    }
  } else {''', 1)
# in route_kernel
i = s.index('__global__ void __launch_bounds__(kThreads) route_kernel(RouteCudaParams p) {')
j = s.index('  const int32_t e = blockIdx.x;', i)
s = s[:j] + '  __shared__ unsigned long long pt[8];\n  if (threadIdx.x == 0) pt[0] = g_rprobe_timer();\n' + s[j:]
k = s.index('  detail::pdl_wait();', j)
s = s[:k] + '  detail::pdl_wait();\n  if (threadIdx.x == 0) pt[1] = g_rprobe_timer();' + s[k + len('  detail::pdl_wait();'):]
k = s.index('    route_inv_rms(p, t0, inv_rms, scratch);', k)
s = s[:k] + '    route_inv_rms(p, t0, inv_rms, scratch);\n    if (threadIdx.x == 0) pt[2] = g_rprobe_timer();' + s[k + len('    route_inv_rms(p, t0, inv_rms, scratch);'):]
k = s.index('  route_group_then_permute(p, t0, kRouteTokens, probs, small_keys, is_last);', k)
s = s[:k] + '  if (threadIdx.x == 0) pt[3] = g_rprobe_timer();\n  route_group_then_permute(p, t0, kRouteTokens, probs, small_keys, is_last, pt);' + s[k + len('  route_group_then_permute(p, t0, kRouteTokens, probs, small_keys, is_last);'):]
s += dump_function('dump_route_probe', '', 'g_rprobe',
                   ['entry', 'after pdl_wait', 'inv_rms', 'logit written', 'ticket (last)', 'route_token', 'permute'],
                   'router probe, the routing block')
s = ensure_cstdio(s)
open(p, 'w').write(s)
