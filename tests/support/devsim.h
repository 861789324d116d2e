// devsim.h: a simulated device for testing the backend seams (model/ops.h, trainer/ops_train.h)
// without a GPU. ops_devsim and train_ops_devsim run the CPU kernels, but their memory is a
// heap of its own (page-aligned mappings, apart from the host's) and:
// - every op checks that each pointer it is handed lies in that heap (the first violation is
//   kept: devsim_violation);
// - in strict mode the heap is unreadable (PROT_NONE) except while an op, an upload or a
//   download runs, so host code that reads or writes device memory directly crashes (the
//   test fails) as it would on a GPU;
// - weights_prepare copies a model's weights into the heap (pointers already in it are used in
//   place, as a GPU backend uses device-resident weights), weights_release frees the copies.
// What it does not simulate: asynchronous execution, separate address spaces (a host pointer
// in a kernel is caught by the check, not by the hardware), device arithmetic.
#ifndef TOOLRL_TESTS_DEVSIM_H
#define TOOLRL_TESTS_DEVSIM_H

#include "model/ops.h"
#include "trainer/ops_train.h"

extern const ops ops_devsim;
extern const train_ops train_ops_devsim;

// Forgets the violation and the counters; strict: 1 protects the heap between operations.
void devsim_reset(int strict);
const char *devsim_violation(void);  // "" when none
int devsim_live(void);               // allocations not yet released
int devsim_uploads(void);
int devsim_downloads(void);
// 1 when p lies in the heap.
int devsim_owns(const void *p);

#endif
