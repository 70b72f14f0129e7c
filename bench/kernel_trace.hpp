// In-graph kernel times through CUPTI's activity API (Nsight Systems is not on the GPU machine):
// aurora-gpu-bench --trace records every kernel of the decode steps it times, graph replays
// included (CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL does not serialise kernels, so programmatic
// dependent launches still overlap), and prints per kernel (name and grid) its calls per step, mean
// duration and time per step, and per step the wall time (first start to last end), the summed
// kernel time and the idle gaps (no kernel running).
#pragma once

#include <cstdint>

namespace aurora::bench {

// Starts recording (false, with a message, when CUPTI cannot).
bool kernel_trace_start();
// Stops, and prints the summary of the last `steps` graph replays (kernels of one cudaGraphLaunch).
void kernel_trace_report(int32_t steps);

}  // namespace aurora::bench
