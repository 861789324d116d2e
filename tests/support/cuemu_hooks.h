// cuemu_hooks.h: the test hooks of the CUDA emulation (cuemu.h, cuemu.cpp), callable from C.
#ifndef TOOLRL_TESTS_CUEMU_HOOKS_H
#define TOOLRL_TESTS_CUEMU_HOOKS_H

#ifdef __cplusplus
extern "C" {
#endif

// The emulated device count: 1 by default; 0 makes cudaGetDeviceCount answer
// cudaErrorNoDevice, as the CUDA runtime does on a machine without a GPU or driver.
void cuemu_set_device_count(int n);
// cudaMalloc'd buffers not yet freed.
int cuemu_live_allocations(void);
// Kernel launches run so far.
long cuemu_launches(void);

#ifdef __cplusplus
}
#endif

#endif
