// render_timeseries_svg: a self-contained SVG chart of a run over time (throughput, TTFT, TPOT,
// requests in flight and, for Aurora targets, the expert-load balance), with plan changes and
// traffic-mix phase boundaries marked by vertical lines.
//
// Pure function; the output needs no scripts, fonts or external files.
#pragma once

#include <string>
#include <vector>

#include "aurora/loadgen/metrics.hpp"
#include "aurora/loadgen/runner.hpp"

namespace aurora::loadgen {

std::string render_timeseries_svg(const RunResult& run, const std::vector<TimeBucket>& series);

}  // namespace aurora::loadgen
