# Makes aurora-gpu-bench print the attention and router probes after each batch's decode steps (probe
# build only).
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace('using Clock = std::chrono::steady_clock;',
              'using Clock = std::chrono::steady_clock;\n'
              'namespace aurora::kernels::cuda { void dump_attention_probe(); void dump_route_probe(); void dump_ffn_probe(); }', 1)
s = s.replace('    if (tracing) bench::kernel_trace_report(a.steps);',
              '    if (tracing) bench::kernel_trace_report(a.steps);\n'
              '    aurora::kernels::cuda::dump_attention_probe();\n'
              '    aurora::kernels::cuda::dump_route_probe();\n'
              '    aurora::kernels::cuda::dump_ffn_probe();', 1)
open(p, 'w').write(s)
