# Planner benchmark (issue 2): planning time per all-to-all for n = 8, 16, 64; transmission-order and
# deployment comparison tables; heuristic / exhaustive optimum ratio. Results: docs/benchmarks.md.
aurora_add_bench(planner_bench SOURCES ${CMAKE_CURRENT_LIST_DIR}/planner_bench.cpp LIBS aurora_scheduler)
target_include_directories(planner_bench PRIVATE ${CMAKE_SOURCE_DIR}/tests/unit/scheduler)
