# Every AURORA_* option, in one place.
option(AURORA_BUILD_TESTS "Build the tests" ON)
option(AURORA_WARNINGS_AS_ERRORS "Treat warnings as errors" OFF)
set(AURORA_CUDA "AUTO" CACHE STRING "Build the CUDA backend: ON, OFF or AUTO (when nvcc is found)")
set_property(CACHE AURORA_CUDA PROPERTY STRINGS ON OFF AUTO)
set(AURORA_SANITIZE "" CACHE STRING "Sanitizers: empty, 'address,undefined' or 'thread'")
option(AURORA_FUZZ "Build libFuzzer targets (needs clang)" OFF)

if(AURORA_SANITIZE)
  add_compile_options(-fsanitize=${AURORA_SANITIZE} -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${AURORA_SANITIZE})
  if(AURORA_SANITIZE MATCHES "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # g++ warns that TSan does not model std::atomic_thread_fence, which Boost.Asio's handler
    # recycling uses; TSan still sees the atomics around it. Not an error in our code.
    add_compile_options(-Wno-tsan)
  endif()
endif()
