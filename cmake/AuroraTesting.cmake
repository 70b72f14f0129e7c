# Test helpers. GPU tests exit with kAuroraSkipCode when no device is present; CTest maps that
# to "skipped", unless AURORA_REQUIRE_GPU=1, in which case the test itself fails (see
# tests/support/gpu_main.cpp).
set(AURORA_SKIP_CODE 77)

# aurora_add_test(NAME name SOURCES ... LIBS ... [LABELS ...] [GPU])
function(aurora_add_test)
  cmake_parse_arguments(T "GPU" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  if(T_GPU)
    target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} aurora_gpu_test_main)
  else()
    target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} aurora_test_main)
  endif()
  aurora_set_warnings(${T_NAME})
  add_test(NAME ${T_NAME} COMMAND ${T_NAME})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set(labels ${T_LABELS})
  if(T_GPU)
    list(APPEND labels gpu)
    set_tests_properties(${T_NAME} PROPERTIES SKIP_RETURN_CODE ${AURORA_SKIP_CODE})
  else()
    list(APPEND labels cpu)
  endif()
  set_tests_properties(${T_NAME} PROPERTIES LABELS "${labels}" TIMEOUT ${T_TIMEOUT}
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
endfunction()
