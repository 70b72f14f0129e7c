// The small built-in text from which the embedded model's byte statistics come: documents of
// English prose, source code and numbers (the three kinds of traffic its router tells apart).
#pragma once

#include <string_view>
#include <vector>

namespace aurora::runtime {

const std::vector<std::string_view>& embedded_corpus();

}  // namespace aurora::runtime
