# aurora-online-bench (issue 8): static placement vs online Aurora under aurora-loadgen's shifting
# traffic mix, on CPU ranks (emulated cluster) or GPUs; table, summary JSON and timeline SVG.
aurora_add_bench(aurora-online-bench
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/online/online_bench.cpp ${CMAKE_CURRENT_LIST_DIR}/online/online_report.cpp
          ${CMAKE_CURRENT_LIST_DIR}/online/online_svg.cpp ${CMAKE_CURRENT_LIST_DIR}/online/bench_process.cpp
  LIBS aurora_scheduler aurora_config Boost::headers Boost::json Boost::program_options)
