# aurora_fake_engine: the deterministic FakeEngine and FakeTokenizer, shared by the server tests
# (tests/integration) and the server benchmark (bench/server.cmake). Included from both; defined once.
if(NOT TARGET aurora_fake_engine)
  add_library(aurora_fake_engine STATIC ${CMAKE_CURRENT_LIST_DIR}/fake_engine.cpp
                                        ${CMAKE_CURRENT_LIST_DIR}/fake_tokenizer.cpp)
  target_include_directories(aurora_fake_engine PUBLIC ${CMAKE_CURRENT_LIST_DIR})
  target_link_libraries(aurora_fake_engine PUBLIC aurora_runtime Threads::Threads)
  aurora_set_warnings(aurora_fake_engine)
endif()
