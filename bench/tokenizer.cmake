# tokenizer_bench: encode and streaming-decode throughput of the tokenizer (issue 3).
aurora_add_bench(tokenizer_bench SOURCES ${CMAKE_CURRENT_LIST_DIR}/tokenizer_bench.cpp LIBS aurora_runtime aurora_config)
target_compile_definitions(tokenizer_bench PRIVATE
  AURORA_TOKENIZER_FIXTURES="${CMAKE_SOURCE_DIR}/tests/fixtures/tokenizers")
