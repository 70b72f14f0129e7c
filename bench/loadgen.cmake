# The load generator's stub server (also the fake server of its tests) and its overhead benchmark.
add_library(aurora_loadgen_stub STATIC ${CMAKE_CURRENT_LIST_DIR}/loadgen/stub_server.cpp)
target_include_directories(aurora_loadgen_stub PUBLIC ${CMAKE_CURRENT_LIST_DIR}/loadgen)
target_link_libraries(aurora_loadgen_stub PUBLIC Boost::headers Boost::json Threads::Threads)
aurora_set_warnings(aurora_loadgen_stub)

# A standalone stub: streams fixed chunks at a chosen pace (and fake Aurora gauges on /metrics).
aurora_add_bench(aurora-loadgen-stub-server SOURCES loadgen/stub_server_main.cpp
                 LIBS aurora_loadgen_stub Boost::program_options)
# "The generator is not the bottleneck": loadgen's own CPU time while it drives the stub.
aurora_add_bench(loadgen_overhead_bench SOURCES loadgen/overhead_bench.cpp LIBS aurora_loadgen aurora_loadgen_stub)
