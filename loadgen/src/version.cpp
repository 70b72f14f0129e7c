#include "aurora/loadgen/version.hpp"
namespace aurora::loadgen {
const char* loadgen_version() { return "0.1"; }
}  // namespace aurora::loadgen
