# Adds globaltimer probes to the cluster attention kernel: block 0 of (token 0, kv head 0) records when it
# reaches each phase; dump_attention_probe() prints the mean times over the last 256 launches. For a
# probe build only (build_probe_bench.sh), never committed to the sources.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_common import dump_function, ensure_cstdio, stamp_buffer  # noqa: E402

p = sys.argv[1]
s = open(p).read()
def after(anchor, code, occurrence=1):
    global s
    i = -1
    for _ in range(occurrence):
        i = s.index(anchor, i + 1)
    j = i + len(anchor)
    s = s[:j] + code + s[j:]
probe_defs = stamp_buffer('g_probe', 11) + '''
#define PROBE(i) if (probe_on && threadIdx.x == 0) probe_t[i] = g_probe_timer();
'''
after('namespace cg = cooperative_groups;\n', probe_defs)
# kernel start
after('''  cg::cluster_group cluster = cg::this_cluster();
  const int32_t b = static_cast<int32_t>(cluster.block_rank());''', '''
  const bool probe_on = b == 0 && blockIdx.y == 0 && blockIdx.z == 0;
  unsigned long long probe_t[12] = {0};
  PROBE(0)''')
after('  __syncthreads();  // slots[0], new_from_s\n', '  PROBE(1)\n')
after('  if (trigger_early) pdl_launch_dependents();\n\n  if (K > 0) {', '\n    PROBE(2)')
after('''        cp_async_wait<1>();
      }
      __syncthreads();
''', '      if (k == 0) { PROBE(3) }\n')
after('''            if (h < group) sc[h * kCP + pl] = __fmul_rn(s[h], p.scale);
          }
        }
      }
      __syncthreads();
''', '      if (k == 0) { PROBE(4) }\n')
after('''        cp_async_wait<0>();
      }
      __syncthreads();
''', '      if (k == 0) { PROBE(5) }\n')
after('      __syncthreads();  // the chunk\'s buffers, scores, alpha and partial sums are free\n', '      if (k == 0) { PROBE(6) }\n')
after('  cluster.sync();           // every range\'s (m, l, o) is visible to the cluster\n', '  PROBE(7)\n')
after('''    l_all[tid] = l;
  }
  __syncthreads();
''', '  PROBE(8)\n')
after('  cluster.sync();  // no block leaves while another reads its shared memory\n', '''  PROBE(10)
  if (probe_on && threadIdx.x == 0) {
    const unsigned i = atomicAdd(&g_probe_n, 1u) % 256u;
    for (int q = 0; q < 11; ++q) g_probe_buf[i][q] = probe_t[q];
  }
''')
# before final cluster sync: P9
s = s.replace('  cluster.sync();  // no block leaves while another reads its shared memory\n', '  PROBE(9)\n  cluster.sync();  // no block leaves while another reads its shared memory\n', 1)
s += dump_function('dump_attention_probe', 'detail::', 'g_probe',
                   ['entry', 'setup', 'after pdl_wait', 'K chunk ready', 'scores', 'softmax + V ready', 'values',
                    'cluster.sync 1', 'merge weights', 'outputs', 'cluster.sync 2'],
                   'attention probe, block 0 of (token 0, kv head 0)')
s = ensure_cstdio(s)
open(p, 'w').write(s)
