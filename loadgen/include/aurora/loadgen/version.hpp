// aurora-loadgen (placeholder until issue 5 lands).
#pragma once
namespace aurora::loadgen {
const char* loadgen_version();
}  // namespace aurora::loadgen
