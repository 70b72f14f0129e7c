# Shared by the probe patches: the device-side stamp buffer and the host function that prints it.


def stamp_buffer(prefix, points):
    """Device globals: `prefix`_buf[256][points] (one row per launch, circular) and `prefix`_n."""
    return f'''
__device__ unsigned long long {prefix}_buf[256][{points}];
__device__ unsigned int {prefix}_n;
__device__ __forceinline__ unsigned long long {prefix}_timer() {{
  unsigned long long t;
  asm volatile("mov.u64 %0, %globaltimer;" : "=l"(t));
  return t;
}}
'''


def dump_function(name, symbol_ns, prefix, names, label):
    """A host function `name`() in aurora::kernels::cuda that prints the mean time of each point
    after point 0 over the recorded launches (rows whose first and last points are set)."""
    points = len(names)
    quoted = ", ".join(f'"{n}"' for n in names)
    return f'''
namespace aurora::kernels::cuda {{
void {name}() {{
  unsigned long long h[256][{points}];
  unsigned int n = 0;
  cudaDeviceSynchronize();
  cudaMemcpyFromSymbol(h, {symbol_ns}{prefix}_buf, sizeof(h));
  cudaMemcpyFromSymbol(&n, {symbol_ns}{prefix}_n, sizeof(n));
  const unsigned m = n < 256 ? n : 256;
  double sum[{points}] = {{0}};
  unsigned used = 0;
  for (unsigned i = 0; i < m; ++i) {{
    if (!h[i][0] || !h[i][{points - 1}]) continue;
    ++used;
    for (int q = 1; q < {points}; ++q) sum[q] += h[i][q] ? double(h[i][q] - h[i][0]) : 0.0;
  }}
  const char* names[{points}] = {{{quoted}}};
  std::printf("   {label} (%u launches, us after the block's start):", used);
  for (int q = 1; q < {points}; ++q) std::printf(" %s %.2f;", names[q], used ? sum[q] / used / 1e3 : 0.0);
  std::printf("\\n");
}}
}}  // namespace aurora::kernels::cuda
'''


def ensure_cstdio(s):
    return s if '#include <cstdio>' in s else s.replace('#include <cstdlib>', '#include <cstdio>\n#include <cstdlib>', 1)
