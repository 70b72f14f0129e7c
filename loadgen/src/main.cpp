#include <cstdio>

#include "aurora/loadgen/version.hpp"

int main() {
  std::printf("aurora-loadgen %s: not implemented yet\n", aurora::loadgen::loadgen_version());
  return 2;
}
