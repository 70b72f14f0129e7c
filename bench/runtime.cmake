# aurora_runtime_bench: CPU decode throughput of the engine (embedded model and an OLMoE-shaped
# model with random weights) at batch 1 and 16. Results: docs/benchmarks.md, "CPU runtime".
aurora_add_bench(aurora_runtime_bench SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/runtime_bench.cpp LIBS aurora_runtime)
target_include_directories(aurora_runtime_bench PRIVATE ${PROJECT_SOURCE_DIR}/runtime/src)
