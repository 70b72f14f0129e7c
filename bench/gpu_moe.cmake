# aurora-gpu-bench: prefill tokens/s and decode ms/step of a MoE config with random bf16 weights on
# one GPU, against the HBM roofline from a copy-bandwidth measurement in the same process.
# bench/hf_moe_reference.py measures transformers on the same configs; bench/gpu_run.sh runs both
# and bench/gpu_report.py prints the table. --trace: in-graph kernel times through CUPTI
# (kernel_trace.hpp). Built only with CUDA.
if(AURORA_HAS_CUDA)
  # CUPTI ships with the CUDA toolkit; without it --trace says it is unavailable.
  if(TARGET CUDA::cupti)
    aurora_add_bench(aurora-gpu-bench SOURCES gpu_moe_bench.cpp kernel_trace.cpp
                     LIBS aurora_runtime aurora_config CUDA::cudart CUDA::cupti)
    target_compile_definitions(aurora-gpu-bench PRIVATE AURORA_HAS_CUPTI=1)
  else()
    aurora_add_bench(aurora-gpu-bench SOURCES gpu_moe_bench.cpp kernel_trace.cpp
                     LIBS aurora_runtime aurora_config CUDA::cudart)
  endif()
  target_include_directories(aurora-gpu-bench PRIVATE ${PROJECT_SOURCE_DIR}/runtime/src ${PROJECT_SOURCE_DIR}/runtime/cuda)
endif()
