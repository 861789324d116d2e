// ops_cuda.h: the CUDA inference backend (model/ops_cuda.cu, in builds made with
// `make CUDA=1`; other builds link model/ops_cuda_none.c): ops.h's table on one NVIDIA GPU. Weights are dequantized once at load
// to fp32 in device memory; matmuls are cuBLAS SGEMMs (fp32 inputs, fp32 accumulation, no
// TF32); the other ops are the kernels in ops_cuda.cu. Tests run the same source on the CPU
// through an emulation of CUDA (tests/support/cuemu.h).
#ifndef TOOLRL_OPS_CUDA_H
#define TOOLRL_OPS_CUDA_H

#include "base/util.h"
#include "model/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

// The backend on device `index`, for the whole process (the first call picks the device; a
// later call with another index fails). NULL with the reason in e (no driver, no device, no
// such index, or a build without CUDA: model/ops_cuda_none.c) when there is none: callers
// then use the CPU.
const ops *ops_cuda_open(int index, trl_err *e);
// The opened device, e.g. "NVIDIA H100 80GB HBM3 (sm_90, 79 GiB)"; "" before ops_cuda_open.
const char *ops_cuda_device_name(void);

#ifdef __cplusplus
}
#endif

#endif
