// Command-line flag values: numbers, integers and comma-separated lists with a range, parsed
// strictly (the whole text, finite values). Errors name the flag and the value as given:
// `--replan-min-gain: must be in [0, 1], got 1.5`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "aurora/config/error.hpp"

namespace aurora::runtime {

Result<double> parse_flag_number(const std::string& flag, const std::string& value, double lo, double hi);
Result<int32_t> parse_flag_int(const std::string& flag, const std::string& value, int32_t lo, int32_t hi);
// "1,1,0.5,0.5": every item in [lo, hi]; `what` describes the expected form in the error.
Result<std::vector<double>> parse_flag_list(const std::string& flag, const std::string& value, double lo, double hi,
                                            const std::string& what);
std::string format_flag_number(double v);  // shortest readable form (%g)

}  // namespace aurora::runtime
