# Sourced by the Nsight Compute scripts (gpu_ncu_step.sh, gpu_ncu_kernel.sh), which live in bench/ of
# a carried folder laid out as gpu_run.sh expects: unpacks the binaries and the shared libraries,
# sets the library path, enters the folder ($C) and finds ncu ($NCU).
C="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ -f "$C/bin.tar.xz" ] && tar xJf "$C/bin.tar.xz" -C "$C"
mkdir -p /tmp/aurora-lib && tar xJf "$C/lib/extra-libs.tar.xz" -C /tmp/aurora-lib
export LD_LIBRARY_PATH="/tmp/aurora-lib:/usr/local/cuda/lib64:$C/lib/cupti:${LD_LIBRARY_PATH:-}"
cd "$C"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
