// How decode launches overlap their predecessors (programmatic dependent launch, sm_90).
#pragma once

namespace aurora::kernels::cuda {

// Early launches at decode steps of <= 4 positions, beyond the small launches that always may
// start early (device_utils.cuh, pdl_mode): each pairs a primary that lets its dependents launch
// before its end (right after its own wait, or when its blocks take their last items) with a large
// dependent launched with programmatic dependent launch, whose blocks take the slots the primary
// frees and load their first weights (constants) before they wait for it. Every kernel waits before
// it reads what its predecessor writes, so the results are the same bits either way.
enum EarlyLaunch : int {
  kEarlyOProj = 1,      // the cluster attention triggers after its wait; o_proj (dense, accumulating,
                        // <= 4 positions) launches early
  kEarlyQkv = 2,        // the fused expert FFN's blocks trigger at their last items; the qkv GEMV with its
                        // RMSNorm prologue (the next layer's, or the LM head) launches early
  kEarlyFfn = 4,        // the fused expert FFN launches early (the router triggers before it routes)
  kEarlyAttention = 8,  // the qkv prologue triggers after its wait (the attention launches early anyway)
  kEarlyCombine = 16,   // the MoE combine triggers after its wait (before the qkv GEMV, kEarlyQkv)
  kEarlyAll = 31,
};
// The bits in use: kEarlyAll by default; AURORA_EARLY=N sets them (0: none, the launches before
// 2026-11-29); none where programmatic dependent launch is off or limited to small grids
// (AURORA_PDL=0 or 3, AURORA_SAFE_KERNELS=1). H200, 2026-11-29, batch 1, all vs none: Mixtral-8x7B
// 7.86 vs 8.01 ms, Qwen3-30B-A3B 3.71 vs 3.97, OLMoE-1B-7B 1.34 vs 1.42 (docs/cuda.md, round 7).
int early_launches();
void set_early_launches(int bits);  // tests; captured graphs keep the launches they were captured with
void reset_early_launches();        // back to the environment's (or the default) bits

}  // namespace aurora::kernels::cuda
