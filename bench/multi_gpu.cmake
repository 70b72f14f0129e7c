# aurora-multi-gpu-bench (issue 7): all-to-all ordered vs all-at-once, two colocated models vs
# exclusive, the stream timeline as SVG, the simulator beside every measurement, heterogeneity
# emulated with green contexts and CTA-limited NCCL. Any number of GPUs >= 2. Built only with CUDA.
if(AURORA_HAS_CUDA)
  aurora_add_bench(aurora-multi-gpu-bench
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/multi_gpu/multi_gpu_bench.cpp ${CMAKE_CURRENT_LIST_DIR}/multi_gpu/multi_gpu_colocation.cpp
            ${CMAKE_CURRENT_LIST_DIR}/multi_gpu/bench_support.cpp
    LIBS aurora_runtime aurora_scheduler aurora_config CUDA::cudart ${AURORA_NCCL_LIBRARY})
  target_include_directories(aurora-multi-gpu-bench PRIVATE ${PROJECT_SOURCE_DIR}/runtime/src ${PROJECT_SOURCE_DIR}/runtime/cuda
    ${AURORA_NCCL_INCLUDE})
endif()
