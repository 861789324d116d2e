// matmul.h: the linear layer on the CPU: y (T, N) = x (T, K) · W^T with W stored as N rows
// of K elements in its own type. Quantized weights stay quantized: the activations are
// quantized to 8 bits per block of 32 (as llama.cpp does) and multiplied with integer
// AVX2 dot products; F32 weights go to OpenBLAS.
#ifndef TOOLRL_MATMUL_H
#define TOOLRL_MATMUL_H

#include <stddef.h>
#include <stdint.h>

// 1 for the types with a fast kernel: F32, Q4_0, Q4_1, Q8_0.
int matmul_has_kernel(uint32_t type);
// Bytes of scratch matmul_forward needs for T rows of K inputs.
size_t matmul_scratch_bytes(uint32_t type, int64_t K, int64_t T);
// y (T, N) = x (T, K) · W^T. Threads: OpenMP over the rows of W. No allocation.
void matmul_forward(uint32_t type, const void *W, int64_t N, int64_t K, const float *x, float *y, int64_t T,
                    void *scratch);
// The activation quantizer used by matmul_forward, exposed for tests: n floats → n/32
// blocks of {d, s = d·Σq, q[32]} with d and s rounded to fp16 as llama.cpp stores them.
typedef struct {
    float d, s;
    int8_t qs[32];
} matmul_q8_block;
void matmul_quantize_q8(const float *x, matmul_q8_block *out, int64_t n);

#endif
