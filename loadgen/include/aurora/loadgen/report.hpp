// Reporting a run: the summary table (vLLM's layout) and the result JSON (vLLM's field names plus
// failures by reason, the per-second time series and Aurora's plan gauges).
//
// Pure functions of a RunResult and its Summary.
#pragma once

#include <string>
#include <vector>

#include <boost/json/object.hpp>

#include "aurora/loadgen/metrics.hpp"
#include "aurora/loadgen/runner.hpp"

namespace aurora::loadgen {

std::string format_summary_table(const RunResult& run, const Summary& summary);

boost::json::object make_result_json(const RunResult& run, const Summary& summary,
                                     const std::vector<TimeBucket>& series);

}  // namespace aurora::loadgen
