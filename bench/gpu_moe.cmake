# aurora-gpu-bench: prefill tokens/s and decode ms/step of a MoE config with random bf16 weights on
# one GPU, against the HBM roofline from a copy-bandwidth measurement in the same process.
# bench/hf_moe_reference.py measures transformers on the same configs; bench/gpu_run.sh runs both
# and bench/gpu_report.py prints the table. Built only with CUDA.
if(AURORA_HAS_CUDA)
  aurora_add_bench(aurora-gpu-bench SOURCES gpu_moe_bench.cpp LIBS aurora_runtime aurora_config CUDA::cudart)
  target_include_directories(aurora-gpu-bench PRIVATE ${PROJECT_SOURCE_DIR}/runtime/src ${PROJECT_SOURCE_DIR}/runtime/cuda)
endif()
