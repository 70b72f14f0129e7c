# aurora_bench_server: the server's CPU cost per streamed token (SSE path against the engine alone)
# and the most concurrent streams one process holds. Runs on the FakeEngine until the real engine
# lands (see docs/benchmarks.md, "## Server (issue 4)").
include(${CMAKE_SOURCE_DIR}/tests/support/fake/fake_engine.cmake)
aurora_add_bench(aurora_bench_server SOURCES ${CMAKE_CURRENT_LIST_DIR}/server_bench.cpp
  LIBS aurora_server aurora_fake_engine)
