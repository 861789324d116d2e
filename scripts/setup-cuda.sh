#!/usr/bin/env bash
# setup-cuda.sh [--home]: makes sure the CUDA toolkit that `make CUDA=1` and `make check-cuda`
# build with is here: nvcc, the runtime and cuBLAS (headers and libraries), and g++ (nvcc's
# host compiler, and the compiler of the tests' CUDA emulation). It uses the nvcc on PATH or in
# /usr/local/cuda (this project's machine image has CUDA 13 there); where there is none it
# installs NVIDIA's PyPI wheels of the same versions into var/cuda and lays them out as a
# toolkit (var/cuda/nvidia/cu13, which the Makefile looks for). --home: print the toolkit's
# folder and change nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-runtime==13.0.96
        nvidia-cuda-cccl==13.0.85 nvidia-cublas==13.1.0.3)
PIP_HOME=var/cuda/nvidia/cu13

find_home() {
    local nvcc
    nvcc=$(command -v nvcc 2>/dev/null || true)
    for n in "$nvcc" /usr/local/cuda/bin/nvcc "$PWD/$PIP_HOME/bin/nvcc"; do
        if [ -n "$n" ] && [ -x "$n" ]; then dirname "$(dirname "$n")"; return 0; fi
    done
    return 1
}

if [ "${1:-}" = --home ]; then find_home; exit; fi

if ! command -v g++ >/dev/null; then
    echo "setup-cuda: installing g++"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends g++ >/dev/null
fi

if ! home=$(find_home); then
    echo "setup-cuda: no nvcc; installing the CUDA 13 wheels into var/cuda (${WHEELS[*]})"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target var/cuda "${WHEELS[@]}"
    home=$PWD/$PIP_HOME
    # The wheels carry versioned libraries only, and nvcc.profile looks for targets/<arch>.
    for l in cudart cublas cublasLt; do ln -sf "lib$l.so.13" "$home/lib/lib$l.so"; done
    ln -sfn lib "$home/lib64"
    mkdir -p "$home/targets/x86_64-linux"
    ln -sfn ../../include "$home/targets/x86_64-linux/include"
    ln -sfn ../../lib "$home/targets/x86_64-linux/lib"
fi

missing=()
for f in include/cuda_runtime.h include/cublas_v2.h include/cuda_fp16.h; do
    [ -e "$home/$f" ] || missing+=("$home/$f")
done
ls "$home"/lib*/libcublas.so* >/dev/null 2>&1 || missing+=("$home/lib/libcublas.so")
ls "$home"/lib*/libcudart.so* >/dev/null 2>&1 || missing+=("$home/lib/libcudart.so")
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup-cuda: the toolkit at $home lacks ${missing[*]}" >&2
    exit 1
fi
