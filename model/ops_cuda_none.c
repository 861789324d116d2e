// ops_cuda_none.c: ops_cuda.h in builds without CUDA (the default `make`): there is no CUDA
// backend, and asking for one says how to get it. `make CUDA=1` links model/ops_cuda.cu instead.
#include <stddef.h>

#include "model/ops_cuda.h"

const ops *ops_cuda_open(int index, trl_err *e) {
    (void)index;
    trl_errf(e, "this toolrl was built without CUDA; make CUDA=1 builds it with");
    return NULL;
}

const char *ops_cuda_device_name(void) { return ""; }
