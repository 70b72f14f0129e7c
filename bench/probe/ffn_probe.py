# Adds globaltimer probes to the fused expert FFN kernel (expert_ffn_kernel, expert_ffn.cu): every
# item's start and end, every block's entry, release from its wait (for the router, or, self-routed,
# for the logits and its own routing) and exit. The
# buffers keep the last launch; dump_ffn_probe() prints its timeline: when the gate_up and down items
# ran, the bytes streamed per 5 us bin, and the tail. For a probe build only (build_probe_bench.sh),
# never committed to the sources.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_common import ensure_cstdio  # noqa: E402

p = sys.argv[1]
s = open(p).read()
defs = '''
__device__ unsigned long long g_fprobe_item[8192][3];   // start, end, block
__device__ unsigned long long g_fprobe_block[2048][4];  // entry, after the wait, exit, SM
__device__ long long g_fprobe_meta[6];                 // grid, items, gate_up items, gate_up / down bytes per item
__device__ __forceinline__ unsigned long long g_fprobe_timer() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %globaltimer;" : "=l"(t));
  return t;
}
'''
anchor = 'namespace aurora::kernels::cuda {\nnamespace {\n'
assert anchor in s
s = s.replace(anchor, anchor + defs, 1)
old = '''  if (table) {
    self_route_table(p.gate_up.self_route, route_s);
  } else {
    detail::pdl_wait();
  }
'''
assert old in s
s = s.replace(old, '''  const unsigned long long t_entry = g_fprobe_timer();
  if (table) {
    self_route_table(p.gate_up.self_route, route_s);
  } else {
    detail::pdl_wait();
  }
  const unsigned long long t_wait = g_fprobe_timer();
  unsigned long long t_item = 0;
''', 1)
old = '''    if (threadIdx.x == 0) next_item = atomicAdd(p.counters, 1);
    if (item < f.gu_items) {'''
assert old in s
s = s.replace(old, '''    if (threadIdx.x == 0) next_item = atomicAdd(p.counters, 1);
    if (threadIdx.x == 0) t_item = g_fprobe_timer();
    if (item < f.gu_items) {''', 1)
old = '''    __syncthreads();
    item = next_item;
  }
  if (table) detail::pdl_wait();  // (self-routed: the router completes before the dependents launch)
  detail::pdl_launch_dependents();
}'''
assert old in s
s = s.replace(old, '''    __syncthreads();
    if (threadIdx.x == 0 && item < 8192) {
      g_fprobe_item[item][0] = t_item;
      g_fprobe_item[item][1] = g_fprobe_timer();
      g_fprobe_item[item][2] = blockIdx.x;
    }
    item = next_item;
  }
  if (table) detail::pdl_wait();  // (self-routed: the router completes before the dependents launch)
  detail::pdl_launch_dependents();
  if (threadIdx.x == 0 && blockIdx.x < 2048) {
    unsigned smid;
    asm volatile("mov.u32 %0, %smid;" : "=r"(smid));
    g_fprobe_block[blockIdx.x][0] = t_entry;
    g_fprobe_block[blockIdx.x][1] = t_wait;
    g_fprobe_block[blockIdx.x][2] = g_fprobe_timer();
    g_fprobe_block[blockIdx.x][3] = smid;
    if (blockIdx.x == 0) {
      g_fprobe_meta[0] = gridDim.x;
      g_fprobe_meta[1] = f.total;
      g_fprobe_meta[2] = f.gu_items;
      g_fprobe_meta[3] = 2LL * kTileRows * p.gate_up.k * 2;
      g_fprobe_meta[4] = 1LL * kTileRows * p.down.k * 2;
    }
  }
}''', 1)
s += '''
namespace aurora::kernels::cuda {
void dump_ffn_probe() {
  static unsigned long long it[8192][3], bl[2048][4];
  long long meta[6];
  cudaDeviceSynchronize();
  cudaMemcpyFromSymbol(it, g_fprobe_item, sizeof(it));
  cudaMemcpyFromSymbol(bl, g_fprobe_block, sizeof(bl));
  cudaMemcpyFromSymbol(meta, g_fprobe_meta, sizeof(meta));
  const long long grid = meta[0], total = meta[1], gu = meta[2];
  if (grid <= 0 || total <= 0 || total > 8192 || grid > 2048) {
    std::printf("   ffn probe: no launch recorded\\n");
    return;
  }
  unsigned long long t0 = ~0ull, w0 = ~0ull, w1 = 0, x1 = 0, gu_end = 0, dn_first = ~0ull, end = 0;
  for (long long b = 0; b < grid; ++b) {
    t0 = std::min(t0, bl[b][0]);
    w0 = std::min(w0, bl[b][1]);
    w1 = std::max(w1, bl[b][1]);
    x1 = std::max(x1, bl[b][2]);
  }
  double gu_sum = 0, dn_sum = 0;
  for (long long i = 0; i < total; ++i) {
    end = std::max(end, it[i][1]);
    if (i < gu) {
      gu_end = std::max(gu_end, it[i][1]);
      gu_sum += double(it[i][1] - it[i][0]);
    } else {
      dn_first = std::min(dn_first, it[i][0]);
      dn_sum += double(it[i][1] - it[i][0]);
    }
  }
  auto us = [&](unsigned long long t) { return (double(t) - double(w0)) / 1e3; };
  const double bytes = double(gu) * meta[3] + double(total - gu) * meta[4];
  std::printf("   ffn probe (last launch, us after the first block's release): grid %lld, items %lld (%lld gate_up);"
              " entries %.2f, releases %.2f..%.2f, first down start %.2f, gate_up done %.2f, last item %.2f,"
              " last exit %.2f; %.1f MB, %.0f GB/s over the kernel; mean item us gate_up %.2f, down %.2f\\n",
              grid, total, gu, us(t0), 0.0, us(w1), us(dn_first), us(gu_end), us(end), us(x1), bytes / 1e6,
              bytes / (double(end - w0)), gu_sum / 1e3 / gu, total > gu ? dn_sum / 1e3 / (total - gu) : 0.0);
  const double bin = 5000.0;
  const int nb = int((end - w0) / bin) + 1;
  std::printf("   ffn probe timeline (5 us bins: GB/s, items running):");
  for (int b = 0; b < nb && b < 80; ++b) {
    const double lo = double(w0) + b * bin, hi = lo + bin;
    double by = 0;
    int running = 0;
    for (long long i = 0; i < total; ++i) {
      const double s0 = double(it[i][0]), s1 = double(it[i][1]);
      const double ov = std::min(hi, s1) - std::max(lo, s0);
      if (ov <= 0 || s1 <= s0) continue;
      by += (i < gu ? meta[3] : meta[4]) * ov / (s1 - s0);
      running += (s0 <= (lo + hi) / 2 && s1 > (lo + hi) / 2);
    }
    std::printf(" %.0f/%d", by / bin, running);
  }
  std::printf("\\n");
}
}  // namespace aurora::kernels::cuda
'''
s = ensure_cstdio(s)
if '#include <cstdio>' not in s:
    s = s.replace('#include <algorithm>', '#include <algorithm>\n#include <cstdio>', 1)
open(p, 'w').write(s)
