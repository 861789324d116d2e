// matmul.h: the linear layer on the CPU: y (B, N) = x (B, K) · W^T with W stored as N rows
// of K elements in its own type. Quantized weights (Q4_0, Q4_1, Q8_0) stay quantized: the
// activations are quantized to 8 bits per block of 32 the way llama.cpp does it (scale
// amax/127 rounded to fp16, values rounded half to even, s = d·Σq rounded to fp16) and
// multiplied with AVX2 integer dot products; F32 weights go to OpenBLAS.
//
// Numerics of the quantized kernels, for every output (b, n), blocks kb in order:
//   acc = fma(dw·dx, (float)isum, acc)      isum = Σ q_w·q_x over the block (exact integer;
//                                           Q4_0 uses q_w − 8, Q4_1 the unsigned nibble)
//   acc = fma(m_w, s_x, acc)                Q4_1 only
// The AVX2 kernels, the scalar fallback and matmul_forward_qref all compute exactly this,
// so they agree bit for bit.
#ifndef TOOLRL_MATMUL_H
#define TOOLRL_MATMUL_H

#include <stddef.h>
#include <stdint.h>

// 1 for the types with a fast kernel: F32, Q4_0, Q4_1, Q8_0.
int matmul_has_kernel(uint32_t type);
// Bytes of scratch matmul_forward needs for B rows of K inputs (includes 64 bytes of slack
// for alignment, so any pointer will do).
size_t matmul_scratch_bytes(uint32_t type, int64_t K, int64_t B);
// y (B, N) = x (B, K) · W^T, W = N rows of K elements in `type`. OpenMP over the rows of W;
// no allocation (temporaries live in scratch). Types without a kernel are dequantized one
// row at a time into scratch (slow, single-threaded; the model loader avoids that).
// C (M×N, ldc) = alpha·op(A)·op(B) + beta·C, row-major (op: transpose when trans_*), by
// OpenBLAS on one thread per call, threaded with OpenMP over column slices of C. The first
// call sets OpenBLAS to one thread for the whole process (every F32 matmul goes through here
// or through matmul_forward, which does the same).
void matmul_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc);
void matmul_forward(uint32_t type, const void *W, int64_t N, int64_t K, const float *x, float *y, int64_t B,
                    void *scratch);
// One input x (B, K) through n weight matrices (Q, K and V; gate and up): y_i (B, N_i) =
// x · W_i^T. Where every W_i is Q4_0, Q4_1 or Q8_0 and B ≤ 16 (decode) this is one OpenMP
// region that quantizes x once and runs the matrices back to back without a barrier between
// them; otherwise n matmul_forward calls. The same bits as n matmul_forward calls either way.
// scratch: the largest matmul_scratch_bytes(W_i's type, K, B).
typedef struct {
    uint32_t type;
    const void *W;  // (N, K) in type
    int64_t N;
    float *y;       // (B, N)
    const void *P;  // W packed by matmul_pack, or NULL; when given, W itself is never read
} matmul_job;
void matmul_forward_n(const matmul_job *jobs, int n, int64_t K, const float *x, int64_t B, void *scratch);
// The kernels' own weight layout: W (N, K) rearranged once (at load) so the decode kernels
// read each block of 16 rows with plain loads (no transposes, no gathers), one contiguous
// stream per thread, and the prefill kernel unpacks its tiles from it. Without a copy the
// row path runs 2 ≤ B ≤ 16 one sequence at a time (same bits, slower). matmul_packed_bytes
// is 0 where there is none (not Q4_0, Q4_1 or Q8_0, N not a multiple of 16, or a build
// without AVX2); otherwise out must hold that many bytes. Same bits as the GGUF rows.
size_t matmul_packed_bytes(uint32_t type, int64_t N, int64_t K);
void matmul_pack(uint32_t type, const void *W, int64_t N, int64_t K, void *out);
// The oracle: each row dequantized with dequantize_row, dotted with x in double.
void matmul_forward_ref(uint32_t type, const void *W, int64_t N, int64_t K, const float *x, float *y, int64_t B);
// The exact-numerics oracle: plain scalar C that quantizes the activations and accumulates
// exactly as described above (F32 and types without a kernel: same as matmul_forward_ref).
// matmul_forward must equal it bit for bit for Q4_0, Q4_1 and Q8_0.
void matmul_forward_qref(uint32_t type, const void *W, int64_t N, int64_t K, const float *x, float *y, int64_t B);

// One quantized activation block: d (fp16-rounded amax/127), s = d·Σq (fp16-rounded), Σq.
typedef struct {
    float d, s;
    int32_t sum, pad;
    int8_t qs[32];
} matmul_act_block;  // 48 bytes
// The activation quantizer the kernels use (AVX2 when built with it): n floats (n a
// multiple of 32) → n/32 blocks. Identical output to the scalar version in every build.
void matmul_quantize_act(const float *x, matmul_act_block *out, int64_t n);

#endif
