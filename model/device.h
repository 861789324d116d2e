// device.h: the compute device the engine runs on, chosen by name: "cpu" (ops_cpu), or "cuda"
// / "cuda:N" (the CUDA backend, ops_cuda.h) where this build has it and the device is there.
// A CUDA device that cannot be had is not an error: the CPU runs instead and `note` says why,
// for the caller to print (a binary built without CUDA, a machine without a GPU or driver).
#ifndef TOOLRL_DEVICE_H
#define TOOLRL_DEVICE_H

#include "base/util.h"
#include "model/ops.h"

typedef struct {
    const ops *be;   // the backend engines run on
    char name[32];   // what runs: "cpu" or "cuda:N"
    char info[320];  // the GPU, e.g. "NVIDIA H100 80GB HBM3 (sm_90, 79 GiB)"; "" for the cpu
    char note[640];  // why the device asked for is not the one used; "" when it is
} device;

// Fills d for spec (NULL or "" means "cpu"). TRL_ERR only for a spec that names no device.
int device_open(device *d, const char *spec, trl_err *e);

#endif
