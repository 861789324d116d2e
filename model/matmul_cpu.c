// matmul_cpu.c: the fast CPU linear layer (see matmul.h for the contract and the numerics).
//
// F32 weights: OpenBLAS (sgemv for one row, sgemm otherwise).
// Quantized weights (Q4_0, Q4_1, Q8_0), two AVX2 paths. The model loader gives each matrix
// whose rows come in groups of 16 a packed copy (matmul_pack: per group and block, each
// 4-input dword of the 16 rows side by side, then their fp16 scales) and both paths read
// only that copy; the GGUF rows serve the rest (odd row counts, direct matmul_forward calls).
//  - row path (B ≤ MM_ROW_MAX_B, decode), "weights in lanes": int32 lane r of a vector holds
//    row r's 4 weights of one input group, so each sequence only broadcasts its activation
//    dwords against it: no per-sequence reduction (with VNNI one vpdpbusd per 4-input group
//    and sequence, Q8_0 weights going in as w + 128 and the sum corrected by 128·Σx; 16 rows
//    per vector with AVX-512, 8 with AVX2). Sums are scaled per lane by the rows' fp16 scales
//    and accumulated in block order. Streams the weights once with software prefetch ahead;
//    memory bound at B = 1, compute bound from B ≈ 4, where threads claim their ranges in
//    chunks and help each other at the end. On GGUF rows: 8 rows at a time, each sequence on
//    its own, its 8 product vectors reduced to 8 exact block sums. matmul_forward_n runs
//    several matrices over one input in one OpenMP region.
//  - panel path (larger B, prefill): the activations are quantized once per call into
//    panels of 8 columns, interleaved 4 bytes at a time, so one int32 lane is one column.
//    A tile of 3 weight rows is unpacked to bytes once (per K chunk, from either layout) and
//    reused for every panel: for each 4-input group a row's 4 bytes are broadcast and
//    multiplied against the panel (maddubs), the 8 groups of a block are summed in int16 (Q4:
//    |sum| ≤ 30480), then madd → int32 → float, scaled per lane. Register tile: 3 rows × 16
//    columns (2 panels).
// Both paths accumulate each output in block order with the same float operations as the
// scalar code (row_dot_scalar, the scalar panel kernel), so every build gives the same bits.
// Non-finite activations give unspecified (but well-defined) results.
#include "model/matmul.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "model/quant.h"

#ifdef _OPENMP
#include <omp.h>
#else
static int omp_get_num_threads(void) { return 1; }
static int omp_get_thread_num(void) { return 0; }
static int omp_get_max_threads(void) { return 1; }
static int omp_in_parallel(void) { return 0; }
#endif

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define MM_AVX2 1
#if defined(__AVXVNNI__) || (defined(__AVX512VNNI__) && defined(__AVX512VL__))
// VNNI (vpdpbusd: unsigned bytes · signed bytes, 4 products summed into each int32 lane and
// accumulated, no int16 step), as AVX-VNNI (Alder Lake, Sapphire Rapids) or AVX512-VNNI with
// 256-bit vectors (Ice Lake server, Zen 4). The panel and lanes kernels use it in place of
// maddubs + adds + madd: the integer sums are the same (no int16 saturation happens on
// either path), so the results are bit for bit those of the scalar kernel.
#define MM_VNNI 1
static inline __m256i mm_dpbusd(__m256i acc, __m256i u8, __m256i s8) {
#if defined(__AVXVNNI__)
    return _mm256_dpbusd_avx_epi32(acc, u8, s8);
#else
    return _mm256_dpbusd_epi32(acc, u8, s8);
#endif
}
#endif
#endif

#if defined(MM_VNNI) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
// AVX-512 with VNNI (Ice Lake server, Sapphire Rapids, Zen 4): the lanes kernels take 16
// weight rows per 512-bit vector, half the instructions per multiply-add of the 8-row ones.
#define MM_AVX512 1
#endif

#ifndef MM_ROW_MAX_B
#define MM_ROW_MAX_B 16  // B up to this uses the row path (measured crossover)
#endif
#define MM_PANEL 8      // activation columns per panel
#define MM_TILE 3       // weight rows per panel-path tile
#define MM_NP 2         // panels per register tile (16 columns)
#define MM_KC 64        // blocks per K chunk on the panel path (2048 inputs)
#define MM_PG 16        // panels per panel group (128 columns)
#define MM_ALIGN 64
// Packed weights (matmul_pack), per group of 16 rows and block of 32 inputs: the quant
// vectors g (64 bytes each: dword r = row r's bytes 4g..4g+3), then the 16 fp16 scales at
// MM_PK_*_D, then (Q4_1) the 16 fp16 mins at MM_PK_Q4_M; MM_PK_<type> bytes in all.
#define MM_PK_Q4_D 256  // Q4_0, Q4_1: 4 quant vectors
#define MM_PK_Q4_M (MM_PK_Q4_D + 32)
#define MM_PK_Q8_D 512  // Q8_0: 8 quant vectors
#define MM_PK_Q4_0 (MM_PK_Q4_D + 32)
#define MM_PK_Q4_1 (MM_PK_Q4_M + 32)
#define MM_PK_Q8_0 (MM_PK_Q8_D + 32)
#ifndef MM_PK_AHEAD
#define MM_PK_AHEAD 8192  // prefetch distance in the packed stream (bytes)
#endif

// Quantized activations for the panel path: one block (32 inputs) of 8 columns.
typedef struct {
    float d[MM_PANEL];      // per column: fp16-rounded scale
    float s[MM_PANEL];      // per column: fp16-rounded d·Σq (Q4_1)
    int32_t sum[MM_PANEL];  // per column: Σq (Q4_0)
    int8_t qs[32 * MM_PANEL];  // qs[32*g + 4*c + j] = q of column c, input 4g + j
} mm_panel;  // 352 bytes

_Static_assert(sizeof(mm_panel) % 32 == 0, "mm_panel keeps 32-byte alignment");
_Static_assert(sizeof(matmul_act_block) == 48, "matmul_act_block");

int matmul_has_kernel(uint32_t type) {
    return type == QTYPE_F32 || type == QTYPE_Q4_0 || type == QTYPE_Q4_1 || type == QTYPE_Q8_0;
}

static int is_q(uint32_t type) {
    return type == QTYPE_Q4_0 || type == QTYPE_Q4_1 || type == QTYPE_Q8_0;
}

size_t matmul_scratch_bytes(uint32_t type, int64_t K, int64_t B) {
    if (type == QTYPE_F32) return 0;
    if (!is_q(type)) return sizeof(float) * (size_t)K + MM_ALIGN;  // one dequantized row
    size_t nb = (size_t)(K / 32);
    if (B <= MM_ROW_MAX_B) return (size_t)B * nb * sizeof(matmul_act_block) + MM_ALIGN;
    return (size_t)((B + MM_PANEL - 1) / MM_PANEL) * nb * sizeof(mm_panel) + MM_ALIGN;
}

static void *align_up(void *p) {
    return (void *)(((uintptr_t)p + (MM_ALIGN - 1)) & ~(uintptr_t)(MM_ALIGN - 1));
}

static float fp16_round(float f) {
    return fp16_to_fp32(fp32_to_fp16(f));
}

#ifdef MM_AVX2
static inline int32_t ld32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}
#endif

static float ld_half(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
#ifdef MM_AVX2
    return _cvtsh_ss(h);
#else
    return fp16_to_fp32(h);
#endif
}

// ---------------------------------------------------------------------------------------------
// Activation quantization (one block of 32). The AVX2 and scalar versions give the same bits:
// amax is exact, d = amax/127, q = round-half-even(x · 127/amax), s = d·Σq.

static void act_quant32_scalar(const float *x, int8_t *q, float *d, float *s, int32_t *sum) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    float dd = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int32_t t = 0;
    for (int j = 0; j < 32; j++) {
        float r = nearbyintf(x[j] * id);
        int v = r >= -127.0f && r <= 127.0f ? (int)r : -128;  // out of range only for inf/nan
        q[j] = (int8_t)v;
        t += v;
    }
    *d = fp16_round(dd);
    *s = fp16_round(dd * (float)t);
    *sum = t;
}

#ifdef MM_AVX2
static inline int32_t hsum_i32(__m256i v) {
    __m128i a = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    a = _mm_add_epi32(a, _mm_unpackhi_epi64(a, a));
    a = _mm_add_epi32(a, _mm_shuffle_epi32(a, 0xb1));
    return _mm_cvtsi128_si32(a);
}

// Returns the 32 int8 values in input order.
static inline __m256i act_quant32_avx2(const float *x, float *d, float *s, int32_t *sum) {
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                             _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float amax = _mm_cvtss_f32(m4);
    float dd = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
    __m256 vid = _mm256_set1_ps(id);
    const int rnd = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, vid), rnd));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, vid), rnd));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, vid), rnd));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, vid), rnd));
    int32_t t = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
    *d = fp16_round(dd);
    *s = fp16_round(dd * (float)t);
    *sum = t;
    // packs work per 128-bit lane: dwords come out as inputs 0-3, 8-11, 16-19, 24-27 | 4-7, ...
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}
#endif

void matmul_quantize_act(const float *x, matmul_act_block *out, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        out[b].pad = 0;
#ifdef MM_AVX2
        __m256i q = act_quant32_avx2(x, &out[b].d, &out[b].s, &out[b].sum);
        _mm256_storeu_si256((__m256i *)out[b].qs, q);
#else
        act_quant32_scalar(x, out[b].qs, &out[b].d, &out[b].s, &out[b].sum);
#endif
    }
}

// Block kb of all 8 columns of panel p (columns ≥ B are zeros).
static void act_quant_panel(const float *x, int64_t K, int64_t B, int64_t p, int64_t kb, mm_panel *P) {
    for (int c = 0; c < MM_PANEL; c++) {
        int64_t b = p * MM_PANEL + c;
        if (b >= B) {
            P->d[c] = P->s[c] = 0;
            P->sum[c] = 0;
            for (int g = 0; g < 8; g++) memset(P->qs + 32 * g + 4 * c, 0, 4);
            continue;
        }
        const float *xb = x + b * K + kb * 32;
        int8_t q[32] __attribute__((aligned(32)));
#ifdef MM_AVX2
        _mm256_store_si256((__m256i *)q, act_quant32_avx2(xb, &P->d[c], &P->s[c], &P->sum[c]));
#else
        act_quant32_scalar(xb, q, &P->d[c], &P->s[c], &P->sum[c]);
#endif
        for (int g = 0; g < 8; g++) memcpy(P->qs + 32 * g + 4 * c, q + 4 * g, 4);
    }
}

// ---------------------------------------------------------------------------------------------
// Scalar reference kernel: one weight row · one quantized activation row. Every path's
// numerics are defined by this loop.
//
// Kept scalar: GCC 12 with AVX-VNNI (-march=native on Sapphire Rapids) vectorizes the Q8_0
// signed·signed byte products into vpdpbusd, which multiplies unsigned by signed bytes, and
// gets the sums wrong (tests/test_quant.c caught it).
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-vectorize")))
#endif
static float row_dot_scalar(uint32_t type, const uint8_t *w, int64_t nb, const matmul_act_block *a) {
    float acc = 0;
    for (int64_t kb = 0; kb < nb; kb++) {
        const matmul_act_block *x = a + kb;
        int32_t isum = 0;
        float dw, m = 0;
        if (type == QTYPE_Q8_0) {
            const uint8_t *blk = w + kb * (int64_t)sizeof(block_q8_0);
            dw = ld_half(blk);
            for (int j = 0; j < 32; j++) isum += (int8_t)blk[2 + j] * x->qs[j];
        } else {
            int q41 = type == QTYPE_Q4_1;
            const uint8_t *blk = w + kb * (int64_t)(q41 ? sizeof(block_q4_1) : sizeof(block_q4_0));
            const uint8_t *qs = blk + (q41 ? 4 : 2);
            dw = ld_half(blk);
            if (q41) m = ld_half(blk + 2);
            for (int j = 0; j < 16; j++) isum += (qs[j] & 0xf) * x->qs[j] + (qs[j] >> 4) * x->qs[j + 16];
            if (!q41) isum -= 8 * x->sum;
        }
        acc = fmaf(dw * x->d, (float)isum, acc);
        if (type == QTYPE_Q4_1) acc = fmaf(m, x->s, acc);
    }
    return acc;
}

// ---------------------------------------------------------------------------------------------
// Row path (small B): 8 weight rows per step, one lane per row.

#ifdef MM_AVX2
// Reduces 8 vectors of 8 int32 to one vector whose lane r is the sum of v[r]. Exact.
static inline __m256i reduce8(__m256i v0, __m256i v1, __m256i v2, __m256i v3, __m256i v4, __m256i v5,
                              __m256i v6, __m256i v7) {
    __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(v0, v1), _mm256_hadd_epi32(v2, v3));
    __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(v4, v5), _mm256_hadd_epi32(v6, v7));
    // a = [r0 r1 r2 r3 (inputs 0-3) | r0 r1 r2 r3 (inputs 4-7)], b likewise for rows 4-7
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

// The fp16 pairs at the start of each of 8 blocks (stride rb bytes from p): lo halves and hi halves.
static inline void gather_halves(const uint8_t *p, __m256i idx, __m256 *lo, __m256 *hi) {
    __m256i g = _mm256_i32gather_epi32((const int *)(const void *)p, idx, 1);
    const __m256i split = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,  //
                                           0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
    g = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(g, split), 0xd8);  // [lo 0-7 | hi 0-7]
    *lo = _mm256_cvtph_ps(_mm256_castsi256_si128(g));
    if (hi) *hi = _mm256_cvtph_ps(_mm256_extracti128_si256(g, 1));
}

// 16 bytes of nibbles → 32 bytes 0..15 in input order (low nibbles: inputs 0-15, high: 16-31).
// The bytes are broadcast to both halves (a load, no shuffle) and the upper half shifted by 4.
static inline __m256i q4_unpack(const uint8_t *qs) {
    __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)qs));
    b = _mm256_srlv_epi64(b, _mm256_setr_epi64x(0, 0, 4, 4));
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0f));
}

// Like reduce8 but from the int16 maddubs outputs of Q4 blocks: every int16 is at most
// 2·15·127 = 3810 in magnitude, so three levels of pairwise int16 adds (≤ 30480) are exact;
// the two 128-bit halves are widened to int32 before the last add.
static inline __m256i reduce8_w16(__m256i p0, __m256i p1, __m256i p2, __m256i p3, __m256i p4, __m256i p5,
                                  __m256i p6, __m256i p7) {
    __m256i a = _mm256_hadd_epi16(_mm256_hadd_epi16(p0, p1), _mm256_hadd_epi16(p2, p3));
    __m256i b = _mm256_hadd_epi16(_mm256_hadd_epi16(p4, p5), _mm256_hadd_epi16(p6, p7));
    __m256i c = _mm256_hadd_epi16(a, b);  // [rows 0-7, inputs 0-15 | rows 0-7, inputs 16-31]
    return _mm256_add_epi32(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(c)),
                            _mm256_cvtepi16_epi32(_mm256_extracti128_si256(c, 1)));
}

// Prefetches the bytes the next-but-some group will read at this step (rows are read 8 at a
// time, 8 short streams the hardware prefetcher follows poorly). pf is NULL near the end.
// (__builtin_prefetch with literal hints: through _mm_prefetch in a helper GCC 12 lost the
// constant hint, judged the helper pure and deleted every call.)
static inline __attribute__((always_inline)) void prefetch_span(const uint8_t *pf, size_t len) {
    if (!pf) return;
    for (size_t o = 0; o < len; o += 64) __builtin_prefetch(pf + o, 0, 3);
}

// y8[r] = row (n0 + r) · a, r < 8, for Q4_0 / Q4_1.
// pf: where the same step of a later group reads (or NULL).
static inline __attribute__((always_inline)) void rows8_q4(int q41, const uint8_t *w0, size_t rb, int64_t nb,
                                                            const matmul_act_block *a, float *y8, const uint8_t *pf) {
    const size_t bs = q41 ? sizeof(block_q4_1) : sizeof(block_q4_0);
    const int qo = q41 ? 4 : 2;
    const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)rb));
    __m256 acc = _mm256_setzero_ps();
    for (int64_t kb = 0; kb < nb; kb++) {
        const uint8_t *p = w0 + kb * bs;
        const matmul_act_block *x = a + kb;
        prefetch_span(pf ? pf + kb * 8 * bs : NULL, 8 * bs);
        __m256i xq = _mm256_loadu_si256((const __m256i *)(const void *)x->qs);
#define MM_ROWDOT(r) _mm256_maddubs_epi16(q4_unpack(p + (r) * rb + qo), xq)
        __m256i isum = reduce8_w16(MM_ROWDOT(0), MM_ROWDOT(1), MM_ROWDOT(2), MM_ROWDOT(3), MM_ROWDOT(4),
                                   MM_ROWDOT(5), MM_ROWDOT(6), MM_ROWDOT(7));
#undef MM_ROWDOT
        __m256 dw, mw;
        gather_halves(p, idx, &dw, q41 ? &mw : NULL);
        if (!q41) isum = _mm256_sub_epi32(isum, _mm256_set1_epi32(8 * x->sum));
        acc = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(x->d)), _mm256_cvtepi32_ps(isum), acc);
        if (q41) acc = _mm256_fmadd_ps(mw, _mm256_set1_ps(x->s), acc);
    }
    _mm256_storeu_ps(y8, acc);
}

static void rows8_q4_0(const uint8_t *w0, size_t rb, int64_t nb, const matmul_act_block *a, float *y8,
                       const uint8_t *pf) {
    rows8_q4(0, w0, rb, nb, a, y8, pf);
}

static void rows8_q4_1(const uint8_t *w0, size_t rb, int64_t nb, const matmul_act_block *a, float *y8,
                       const uint8_t *pf) {
    rows8_q4(1, w0, rb, nb, a, y8, pf);
}

// A group of 16 packed rows (matmul_pack) against 2 ≤ B ≤ MM_ROW_MAX_B activation rows,
// "weights in lanes": int32 lane r of W[g] holds row r's 4 weights of inputs 4g..4g+3, so
// every sequence needs only a broadcast of its activation dword g and one maddubs per g,
// summed in int16 (≤ 8·3810 = 30480, exact) and widened once: no per-sequence horizontal
// reduction. The integer sums are rows8_q4's and the float operations per output are the
// same, in the same order: the same bits. This call takes the group's rows 8·half ..
// 8·half+7; pf points into the packed stream (or NULL).
// acc: B vectors (one per sequence), carried across the blocks; y8[b * N] receives row b's 8.
static inline __attribute__((always_inline)) void rows8_q4_lanes(int q41, int half, const uint8_t *w0, int64_t nb,
                                                                  const matmul_act_block *act, int64_t B, float *y8,
                                                                  int64_t N, const uint8_t *pf) {
    const size_t pbs = q41 ? MM_PK_Q4_1 : MM_PK_Q4_0;
    const __m256i m4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    (void)ones;  // unused with VNNI
    __m256 acc[MM_ROW_MAX_B];
    for (int64_t b = 0; b < B; b++) acc[b] = _mm256_setzero_ps();
    for (int64_t kb = 0; kb < nb; kb++) {
        const uint8_t *k = w0 + kb * pbs;
        __m256i d[4];
        __m256 dw, mw = _mm256_setzero_ps();
        prefetch_span(pf ? pf + kb * pbs : NULL, pbs);
        for (int g = 0; g < 4; g++) d[g] = _mm256_loadu_si256((const __m256i *)(const void *)(k + 64 * g + 32 * half));
        dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(k + MM_PK_Q4_D + 16 * half)));
        if (q41) mw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(k + MM_PK_Q4_M + 16 * half)));
        // Low nibbles are inputs 4g..4g+3, high nibbles inputs 16+4g..16+4g+3.
        const __m256i w[8] = {
            _mm256_and_si256(d[0], m4), _mm256_and_si256(d[1], m4), _mm256_and_si256(d[2], m4), _mm256_and_si256(d[3], m4),
            _mm256_and_si256(_mm256_srli_epi16(d[0], 4), m4), _mm256_and_si256(_mm256_srli_epi16(d[1], 4), m4),
            _mm256_and_si256(_mm256_srli_epi16(d[2], 4), m4), _mm256_and_si256(_mm256_srli_epi16(d[3], 4), m4)};
        for (int64_t b = 0; b < B; b++) {
            const matmul_act_block *x = act + b * nb + kb;
            const int32_t *xd = (const int32_t *)(const void *)x->qs;
#ifdef MM_VNNI
            // Two chains of 4 dot-accumulates (halves the dependency latency).
#define MM_G(S, g) S = mm_dpbusd(S, w[g], _mm256_set1_epi32(xd[g]))
            __m256i e = _mm256_setzero_si256(), o = e;
            MM_G(e, 0), MM_G(o, 1), MM_G(e, 2), MM_G(o, 3), MM_G(e, 4), MM_G(o, 5), MM_G(e, 6), MM_G(o, 7);
#undef MM_G
            __m256i isum = _mm256_add_epi32(e, o);
#else
#define MM_G(g) _mm256_maddubs_epi16(w[g], _mm256_set1_epi32(xd[g]))
            __m256i s16 = _mm256_add_epi16(_mm256_add_epi16(_mm256_add_epi16(MM_G(0), MM_G(1)),
                                                            _mm256_add_epi16(MM_G(2), MM_G(3))),
                                           _mm256_add_epi16(_mm256_add_epi16(MM_G(4), MM_G(5)),
                                                            _mm256_add_epi16(MM_G(6), MM_G(7))));
#undef MM_G
            __m256i isum = _mm256_madd_epi16(s16, ones);
#endif
            if (!q41) isum = _mm256_sub_epi32(isum, _mm256_set1_epi32(8 * x->sum));
            acc[b] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(x->d)), _mm256_cvtepi32_ps(isum), acc[b]);
            if (q41) acc[b] = _mm256_fmadd_ps(mw, _mm256_set1_ps(x->s), acc[b]);
        }
    }
    for (int64_t b = 0; b < B; b++) _mm256_storeu_ps(y8 + b * N, acc[b]);
}

// 8 int32 partial sums of 32 signed weight bytes · 32 activations: |w| times x with w's sign
// (|w| ≤ 128, |x| ≤ 127: each int16 pair sum ≤ 32512, exact).
static inline __m256i q8_dot(const uint8_t *w, __m256i xq, __m256i ones) {
    __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)w);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(v, v), _mm256_sign_epi8(xq, v)), ones);
}

// Q8_0: a packed group against 2 ≤ B ≤ MM_ROW_MAX_B activation rows as in rows8_q4_lanes
// (lane r of W[g] = row r's 4 signed weights of inputs 4g..4g+3), kept as |W| with W's sign
// moved onto each broadcast activation dword (maddubs needs one unsigned side; pair sums
// ≤ 2·128·127, exact), one madd per g to int32: the same integer sums as q8_dot, the same
// float operations: the same bits.
static inline __attribute__((always_inline)) void rows8_q8_lanes(int half, const uint8_t *w0, int64_t nb,
                                                                  const matmul_act_block *act, int64_t B, float *y8,
                                                                  int64_t N, const uint8_t *pf) {
    const __m256i ones = _mm256_set1_epi16(1);
    (void)ones;  // unused with VNNI
    __m256 acc[MM_ROW_MAX_B];
    __m256i sw[8];  // W[g] (signs), read from the stack as memory operands
    for (int64_t b = 0; b < B; b++) acc[b] = _mm256_setzero_ps();
    for (int64_t kb = 0; kb < nb; kb++) {
        const uint8_t *k = w0 + kb * MM_PK_Q8_0;
        __m256i aw[8];
        prefetch_span(pf ? pf + kb * MM_PK_Q8_0 : NULL, MM_PK_Q8_0);
        for (int g = 0; g < 8; g++) sw[g] = _mm256_loadu_si256((const __m256i *)(const void *)(k + 64 * g + 32 * half));
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(k + MM_PK_Q8_D + 16 * half)));
#ifdef MM_VNNI
        // Unsigned weights w + 128 (the sign bit flipped): Σ (w+128)·x − 128·Σx = Σ w·x, exact
        // in int32, one vpdpbusd per group and sequence with no per-sequence sign step.
        for (int g = 0; g < 8; g++) aw[g] = _mm256_xor_si256(sw[g], _mm256_set1_epi8((char)0x80));
#else
        for (int g = 0; g < 8; g++) aw[g] = _mm256_sign_epi8(sw[g], sw[g]);
#endif
        for (int64_t b = 0; b < B; b++) {
            const matmul_act_block *x = act + b * nb + kb;
            const int32_t *xd = (const int32_t *)(const void *)x->qs;
#ifdef MM_VNNI
#define MM_G(S, g) S = mm_dpbusd(S, aw[g], _mm256_set1_epi32(xd[g]))
            __m256i e = _mm256_setzero_si256(), o = e;
            MM_G(e, 0), MM_G(o, 1), MM_G(e, 2), MM_G(o, 3), MM_G(e, 4), MM_G(o, 5), MM_G(e, 6), MM_G(o, 7);
#undef MM_G
            __m256i isum = _mm256_sub_epi32(_mm256_add_epi32(e, o), _mm256_set1_epi32(128 * x->sum));
#else
#define MM_G(g) \
    _mm256_madd_epi16(_mm256_maddubs_epi16(aw[g], _mm256_sign_epi8(_mm256_set1_epi32(xd[g]), sw[g])), ones)
            __m256i isum = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(MM_G(0), MM_G(1)),
                                                             _mm256_add_epi32(MM_G(2), MM_G(3))),
                                            _mm256_add_epi32(_mm256_add_epi32(MM_G(4), MM_G(5)),
                                                             _mm256_add_epi32(MM_G(6), MM_G(7))));
#undef MM_G
#endif
            acc[b] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(x->d)), _mm256_cvtepi32_ps(isum), acc[b]);
        }
    }
    for (int64_t b = 0; b < B; b++) _mm256_storeu_ps(y8 + b * N, acc[b]);
}

#ifdef MM_AVX512
// rows8_q4_lanes for all 16 rows of a packed group at once: the same integer sums and the
// same float operations per output, in the same order: the same bits.
static inline __attribute__((always_inline)) void rows16_q4_lanes(int q41, const uint8_t *w0, int64_t nb,
                                                                   const matmul_act_block *act, int64_t B, float *y16,
                                                                   int64_t N, const uint8_t *pf) {
    const size_t pbs = q41 ? MM_PK_Q4_1 : MM_PK_Q4_0;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512 acc[MM_ROW_MAX_B];
    for (int64_t b = 0; b < B; b++) acc[b] = _mm512_setzero_ps();
    for (int64_t kb = 0; kb < nb; kb++) {
        const uint8_t *k = w0 + kb * pbs;
        __m512i d[4];
        __m512 dw, mw = _mm512_setzero_ps();
        prefetch_span(pf ? pf + kb * pbs : NULL, pbs);
        for (int g = 0; g < 4; g++) d[g] = _mm512_loadu_si512((const void *)(k + 64 * g));
        dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(k + MM_PK_Q4_D)));
        if (q41) mw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(k + MM_PK_Q4_M)));
        const __m512i w[8] = {
            _mm512_and_si512(d[0], m4), _mm512_and_si512(d[1], m4), _mm512_and_si512(d[2], m4), _mm512_and_si512(d[3], m4),
            _mm512_and_si512(_mm512_srli_epi16(d[0], 4), m4), _mm512_and_si512(_mm512_srli_epi16(d[1], 4), m4),
            _mm512_and_si512(_mm512_srli_epi16(d[2], 4), m4), _mm512_and_si512(_mm512_srli_epi16(d[3], 4), m4)};
        for (int64_t b = 0; b < B; b++) {
            const matmul_act_block *x = act + b * nb + kb;
            const int32_t *xd = (const int32_t *)(const void *)x->qs;
#define MM_G(S, g) S = _mm512_dpbusd_epi32(S, w[g], _mm512_set1_epi32(xd[g]))
            __m512i e = _mm512_setzero_si512(), o = e;
            MM_G(e, 0), MM_G(o, 1), MM_G(e, 2), MM_G(o, 3), MM_G(e, 4), MM_G(o, 5), MM_G(e, 6), MM_G(o, 7);
#undef MM_G
            __m512i isum = _mm512_add_epi32(e, o);
            if (!q41) isum = _mm512_sub_epi32(isum, _mm512_set1_epi32(8 * x->sum));
            acc[b] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(x->d)), _mm512_cvtepi32_ps(isum), acc[b]);
            if (q41) acc[b] = _mm512_fmadd_ps(mw, _mm512_set1_ps(x->s), acc[b]);
        }
    }
    for (int64_t b = 0; b < B; b++) _mm512_storeu_ps(y16 + b * N, acc[b]);
}

// rows8_q8_lanes (its VNNI form: w + 128, minus 128·Σx) for all 16 rows at once: the same bits.
static inline __attribute__((always_inline)) void rows16_q8_lanes(const uint8_t *w0, int64_t nb,
                                                                   const matmul_act_block *act, int64_t B, float *y16,
                                                                   int64_t N, const uint8_t *pf) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    __m512 acc[MM_ROW_MAX_B];
    for (int64_t b = 0; b < B; b++) acc[b] = _mm512_setzero_ps();
    for (int64_t kb = 0; kb < nb; kb++) {
        const uint8_t *k = w0 + kb * MM_PK_Q8_0;
        __m512i w[8];
        prefetch_span(pf ? pf + kb * MM_PK_Q8_0 : NULL, MM_PK_Q8_0);
        for (int g = 0; g < 8; g++) w[g] = _mm512_loadu_si512((const void *)(k + 64 * g));
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(k + MM_PK_Q8_D)));
        for (int g = 0; g < 8; g++) w[g] = _mm512_xor_si512(w[g], flip);
        for (int64_t b = 0; b < B; b++) {
            const matmul_act_block *x = act + b * nb + kb;
            const int32_t *xd = (const int32_t *)(const void *)x->qs;
#define MM_G(S, g) S = _mm512_dpbusd_epi32(S, w[g], _mm512_set1_epi32(xd[g]))
            __m512i e = _mm512_setzero_si512(), o = e;
            MM_G(e, 0), MM_G(o, 1), MM_G(e, 2), MM_G(o, 3), MM_G(e, 4), MM_G(o, 5), MM_G(e, 6), MM_G(o, 7);
#undef MM_G
            __m512i isum = _mm512_sub_epi32(_mm512_add_epi32(e, o), _mm512_set1_epi32(128 * x->sum));
            acc[b] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(x->d)), _mm512_cvtepi32_ps(isum), acc[b]);
        }
    }
    for (int64_t b = 0; b < B; b++) _mm512_storeu_ps(y16 + b * N, acc[b]);
}
#endif

static void rows8_q8(const uint8_t *w0, size_t rb, int64_t nb, const matmul_act_block *a, float *y8,
                     const uint8_t *pf) {
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)rb));
    __m256 acc = _mm256_setzero_ps();
    for (int64_t kb = 0; kb < nb; kb++) {
        const uint8_t *p = w0 + kb * (int64_t)sizeof(block_q8_0);
        const matmul_act_block *x = a + kb;
        prefetch_span(pf ? pf + kb * 8 * (int64_t)sizeof(block_q8_0) : NULL, 8 * sizeof(block_q8_0));
        __m256i xq = _mm256_loadu_si256((const __m256i *)(const void *)x->qs);
#define MM_ROWDOT(r) q8_dot(p + (r) * rb + 2, xq, ones)
        __m256i isum = reduce8(MM_ROWDOT(0), MM_ROWDOT(1), MM_ROWDOT(2), MM_ROWDOT(3), MM_ROWDOT(4), MM_ROWDOT(5),
                               MM_ROWDOT(6), MM_ROWDOT(7));
#undef MM_ROWDOT
        __m256 dw;
        gather_halves(p, idx, &dw, NULL);
        acc = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(x->d)), _mm256_cvtepi32_ps(isum), acc);
    }
    _mm256_storeu_ps(y8, acc);
}
#endif

// Work sharing for the compute-bound lanes path (packed weights, B ≥ 2): each thread starts
// on its own contiguous range of groups and claims it a chunk at a time from its counter; a
// thread done with its range claims chunks from the others' counters. Balanced threads
// stream their ranges as a static split does; a thread that loses its core for a while (the
// server's HTTP threads and clients share it) is helped instead of waited for at the barrier.
#define MM_STEAL_MAX 16   // threads (more: a static split)
#define MM_STEAL_CHUNK 2  // groups of 16 rows per claim
typedef struct {
    int64_t next, end;
    char pad[48];
} mm_counter;  // one cache line each

// Sets thread tid's counter to its range of ng groups (before the team's barrier).
static void steal_init(mm_counter *c, int64_t ng, int tid, int nth) {
    c[tid].next = ng * tid / nth;
    c[tid].end = ng * (tid + 1) / nth;
}

#ifdef MM_AVX2
// The next chunk [*g0, *g1) for thread tid: its own first, then the others'. 0 when none left.
static int steal_claim(mm_counter *c, int tid, int nth, int64_t chunk, int64_t *g0, int64_t *g1) {
    for (int k = 0; k < nth; k++) {
        mm_counter *u = &c[(tid + k) % nth];
        int64_t g = __atomic_fetch_add(&u->next, chunk, __ATOMIC_RELAXED);
        if (g < u->end) {
            *g0 = g;
            *g1 = g + chunk < u->end ? g + chunk : u->end;
            return 1;
        }
    }
    return 0;
}
#endif

// One thread's share (thread tid of nth) of y (B, N) = act · W^T on the GGUF rows, for a
// matrix without a packed copy (N not a multiple of 16, or a direct matmul_forward call): a
// contiguous range of the groups of 8 rows, each sequence on its own (rows8_*), a last short
// group scalar. act: B rows of nb quantized blocks.
static void rows_part(uint32_t type, const uint8_t *W, int64_t N, int64_t nb, const matmul_act_block *act, float *y,
                      int64_t B, int tid, int nth) {
    const size_t rb = qtype_row_bytes(type, nb * 32);
    const int64_t ng = (N + 7) / 8;  // groups of 8 rows; a last short group goes scalar
    // Contiguous ranges of groups per thread (as a static schedule would give), so that
    // each thread streams one region and can prefetch its start.
    int64_t g0 = ng * tid / nth, g1 = ng * (tid + 1) / nth;
#ifdef MM_AVX2
    // Prefetch distance: about 12 KiB, in whole groups; the first groups are prefetched
    // up front.
    const int64_t ahead = (int64_t)(12288 / (8 * rb)) + 1;
    const int64_t full = N / 8;  // groups with 8 rows
    {
        const uint8_t *p0 = W + (size_t)g0 * 8 * rb;
        int64_t ge = g0 + ahead < full ? g0 + ahead : full;
        if (ge > g0) prefetch_span(p0, (size_t)(ge - g0) * 8 * rb);
    }
#endif
    for (int64_t g = g0; g < g1; g++) {
        for (int64_t b = 0; b < B; b++) {
            float *yb = y + b * N;
            const matmul_act_block *a = act + b * nb;
#ifdef MM_AVX2
            if (g < full) {
                const uint8_t *w0 = W + (size_t)(g * 8) * rb;
                const uint8_t *pf = b == 0 && g + ahead < full ? w0 + (size_t)ahead * 8 * rb : NULL;
                if (type == QTYPE_Q8_0) rows8_q8(w0, rb, nb, a, yb + g * 8, pf);
                else if (type == QTYPE_Q4_1) rows8_q4_1(w0, rb, nb, a, yb + g * 8, pf);
                else rows8_q4_0(w0, rb, nb, a, yb + g * 8, pf);
                continue;
            }
#endif
            for (int64_t n = g * 8; n < N && n < g * 8 + 8; n++)
                yb[n] = row_dot_scalar(type, W + (size_t)n * rb, nb, a);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Packed weights for the row path: the layout the lanes kernels compute on, made once at
// load (matmul_pack) so that a decode step does no transposes and no gathers. Per group of
// 16 rows and per block kb, in row order within each vector: the block's quant dwords g
// (dword r of vector g = row r's 4 bytes 4g..4g+3), then the 16 fp16 scales, then (Q4_1)
// the 16 fp16 mins. Groups are block-major, so each thread streams one contiguous run.

static size_t pack_block_bytes(uint32_t type) {
    return type == QTYPE_Q4_0 ? MM_PK_Q4_0 : type == QTYPE_Q4_1 ? MM_PK_Q4_1 : type == QTYPE_Q8_0 ? MM_PK_Q8_0 : 0;
}

size_t matmul_packed_bytes(uint32_t type, int64_t N, int64_t K) {
#ifdef MM_AVX2
    if (!is_q(type) || N <= 0 || N % 16 != 0 || K <= 0 || K % 32 != 0) return 0;
    return (size_t)(N / 16) * (size_t)(K / 32) * pack_block_bytes(type);
#else
    (void)type, (void)N, (void)K;
    return 0;  // the scalar build has no lanes kernels
#endif
}

void matmul_pack(uint32_t type, const void *W, int64_t N, int64_t K, void *out) {
    const int64_t nb = K / 32;
    const size_t rb = qtype_row_bytes(type, K), bs = rb / (size_t)nb, pb = pack_block_bytes(type);
    const int nq = type == QTYPE_Q8_0 ? 32 : 16, qo = type == QTYPE_Q4_1 ? 4 : 2;  // quant bytes, offset
    for (int64_t g = 0; g < N / 16; g++)
        for (int64_t kb = 0; kb < nb; kb++) {
            uint8_t *o = (uint8_t *)out + ((size_t)g * (size_t)nb + (size_t)kb) * pb;
            for (int r = 0; r < 16; r++) {
                const uint8_t *blk = (const uint8_t *)W + (size_t)(g * 16 + r) * rb + (size_t)kb * bs;
                for (int d = 0; d < nq / 4; d++) memcpy(o + 64 * d + 4 * r, blk + qo + 4 * d, 4);
                memcpy(o + (nq == 32 ? MM_PK_Q8_D : MM_PK_Q4_D) + 2 * r, blk, 2);  // d
                if (type == QTYPE_Q4_1) memcpy(o + MM_PK_Q4_M + 2 * r, blk + 2, 2);  // m
            }
        }
}

#ifdef MM_AVX2
// rows_part on packed weights P: thread tid's contiguous range of the N/16 groups, claimed
// two groups at a time, then the others' (as rows_part does). The same kernels, so the same
// bits as on the GGUF rows.
static void rows_part_packed(uint32_t type, const uint8_t *P, int64_t N, int64_t nb, const matmul_act_block *act,
                             float *y, int64_t B, int tid, int nth, mm_counter *steal) {
    const size_t gb = (size_t)nb * pack_block_bytes(type);  // bytes of one group
    const int64_t ng = N / 16;
    const uint8_t *end = P + (size_t)ng * gb;
    int64_t g0 = ng * tid / nth, g1 = ng * (tid + 1) / nth, r0 = g0, r1 = g1;
    {
        size_t n = (size_t)(g1 - g0) * gb;
        prefetch_span(P + (size_t)g0 * gb, n < MM_PK_AHEAD ? n : MM_PK_AHEAD);
    }
    if (steal && !steal_claim(steal, tid, nth, MM_STEAL_CHUNK, &g0, &g1)) return;
    for (;;) {
        for (int64_t g = g0; g < g1; g++) {
            const uint8_t *G = P + (size_t)g * gb, *pf = G + MM_PK_AHEAD + gb <= end ? G + MM_PK_AHEAD : NULL;
            float *yg = y + g * 16;
#ifdef MM_AVX512
            if (type == QTYPE_Q8_0) rows16_q8_lanes(G, nb, act, B, yg, N, pf);
            else if (type == QTYPE_Q4_1) rows16_q4_lanes(1, G, nb, act, B, yg, N, pf);
            else rows16_q4_lanes(0, G, nb, act, B, yg, N, pf);
#else
            for (int h = 0; h < 2; h++) {
                const uint8_t *pfh = h == 0 ? pf : NULL;
                if (type == QTYPE_Q8_0) rows8_q8_lanes(h, G, nb, act, B, yg + 8 * h, N, pfh);
                else if (type == QTYPE_Q4_1) rows8_q4_lanes(1, h, G, nb, act, B, yg + 8 * h, N, pfh);
                else rows8_q4_lanes(0, h, G, nb, act, B, yg + 8 * h, N, pfh);
            }
#endif
        }
        if (!steal || !steal_claim(steal, tid, nth, MM_STEAL_CHUNK, &g0, &g1)) return;
        if (g0 < r0 || g0 >= r1) prefetch_span(P + (size_t)g0 * gb, (size_t)(g1 - g0) * gb);  // another's chunk
    }
}
#endif

// The activation rows x (B, K) quantized by the threads of the team together (blocks split
// evenly), then a barrier.
static void rows_quantize(const float *x, int64_t B, int64_t nb, matmul_act_block *act) {
    int nth = omp_get_num_threads(), tid = omp_get_thread_num();
    for (int64_t i = B * nb * tid / nth; i < B * nb * (tid + 1) / nth; i++) matmul_quantize_act(x + i * 32, act + i, 32);
#pragma omp barrier
}

// The row path for n matrices over one input x (B, K): one OpenMP region that quantizes x
// once (act: B·K/32 blocks of scratch) and runs the matrices back to back.
static void rows_run(const matmul_job *jobs, int n, int64_t K, const float *x, int64_t B, matmul_act_block *act) {
    const int64_t nb = K / 32;
    int64_t work = 0;
    for (int i = 0; i < n; i++) work += jobs[i].N * K * B;
    (void)work;
    mm_counter steal[8][MM_STEAL_MAX];  // (8 KiB)
#pragma omp parallel if (work >= (1 << 16))  // small products: not worth waking threads
    {
        int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        int use = B >= 2 && n <= 8 && nth <= MM_STEAL_MAX;
        for (int i = 0; i < n && use; i++)
            if (jobs[i].P) steal_init(steal[i], jobs[i].N / 16, tid, nth);
        rows_quantize(x, B, nb, act);  // (ends with a barrier)
        for (int i = 0; i < n; i++) {
            if (jobs[i].N <= 0) continue;
#ifdef MM_AVX2
            if (jobs[i].P) {
                rows_part_packed(jobs[i].type, jobs[i].P, jobs[i].N, nb, act, jobs[i].y, B, tid, nth, use ? steal[i] : NULL);
                continue;
            }
#endif
            rows_part(jobs[i].type, jobs[i].W, jobs[i].N, nb, act, jobs[i].y, B, tid, nth);
        }
    }
}

static void forward_panels(uint32_t type, const uint8_t *W, const uint8_t *P, int64_t N, int64_t K, const float *x,
                           float *y, int64_t B, mm_panel *pan);

void matmul_forward_n(const matmul_job *jobs, int n, int64_t K, const float *x, int64_t B, void *scratch) {
    int rows = B >= 1 && B <= MM_ROW_MAX_B && K > 0 && K % 32 == 0;
    for (int i = 0; i < n && rows; i++) rows = is_q(jobs[i].type);
    if (!rows) {  // one at a time; a packed matrix is read from its copy only, on either path
        for (int i = 0; i < n; i++) {
            const matmul_job *j = &jobs[i];
            if (!j->P || !is_q(j->type) || K % 32 != 0 || j->N <= 0 || B <= 0)
                matmul_forward(j->type, j->W, j->N, K, x, j->y, B, scratch);
            else if (B <= MM_ROW_MAX_B) rows_run(j, 1, K, x, B, align_up(scratch));
            else forward_panels(j->type, j->W, j->P, j->N, K, x, j->y, B, align_up(scratch));
        }
        return;
    }
    rows_run(jobs, n, K, x, B, align_up(scratch));
}

// ---------------------------------------------------------------------------------------------
// Panel path (larger B).

// One tile: up to MM_TILE weight rows, unpacked for a chunk of blocks, block-major so the
// rows' bytes of one block sit together (no same-bank strides between the rows). Q4 rows hold
// unsigned nibbles 0..15, Q8_0 rows the signed bytes, both in input order.
typedef struct {
    uint8_t q[MM_KC][MM_TILE][32] __attribute__((aligned(32)));
    float d[MM_KC][MM_TILE];
    float m[MM_KC][MM_TILE];
} mm_tile;

// W's rows [n0, n0 + MM_TILE) for blocks [kb0, kb0 + nkb), from the GGUF rows or, given P
// (matmul_pack's copy of W), from there: row n's quant dwords of block kb sit 64 bytes apart
// in its group's block, its scales after them.
static void tile_unpack(uint32_t type, const uint8_t *W, const uint8_t *P, size_t rb, int64_t N, int64_t n0,
                        int64_t kb0, int64_t nkb, mm_tile *t) {
    const int q41 = type == QTYPE_Q4_1, q8 = type == QTYPE_Q8_0;
    const size_t bs = q8 ? sizeof(block_q8_0) : q41 ? sizeof(block_q4_1) : sizeof(block_q4_0);
    const int64_t nb = (int64_t)(rb / bs);
    for (int r = 0; r < MM_TILE; r++) {
        int64_t n = n0 + r < N ? n0 + r : N - 1;  // a short last tile repeats its last row
        for (int64_t i = 0; i < nkb; i++) {
            const int64_t kb = kb0 + i;
            uint8_t qbuf[32] __attribute__((aligned(32)));
            const uint8_t *qs;
            if (P) {
                const uint8_t *o = P + ((size_t)(n / 16) * (size_t)nb + (size_t)kb) * pack_block_bytes(type);
                const int rr = (int)(n % 16);
#ifdef MM_AVX2
                // Dwords into registers (stored bytes read back as one vector would stall
                // store forwarding, a tenth of the prefill time).
                __m128i lo = _mm_setr_epi32(ld32(o + 4 * rr), ld32(o + 64 + 4 * rr), ld32(o + 128 + 4 * rr),
                                            ld32(o + 192 + 4 * rr));
                if (q8) {
                    __m128i hi = _mm_setr_epi32(ld32(o + 256 + 4 * rr), ld32(o + 320 + 4 * rr),
                                                ld32(o + 384 + 4 * rr), ld32(o + 448 + 4 * rr));
                    _mm256_store_si256((__m256i *)(void *)qbuf, _mm256_set_m128i(hi, lo));
                } else {
                    _mm_store_si128((__m128i *)(void *)qbuf, lo);
                }
#else
                for (int d = 0; d < (q8 ? 8 : 4); d++) memcpy(qbuf + 4 * d, o + 64 * d + 4 * rr, 4);
#endif
                qs = qbuf;
                t->d[i][r] = ld_half(o + (q8 ? MM_PK_Q8_D : MM_PK_Q4_D) + 2 * rr);
                t->m[i][r] = q41 ? ld_half(o + MM_PK_Q4_M + 2 * rr) : 0.0f;
            } else {
                const uint8_t *blk = W + (size_t)n * rb + (size_t)kb * bs;
                qs = blk + (q8 ? 2 : q41 ? 4 : 2);
                t->d[i][r] = ld_half(blk);
                t->m[i][r] = q41 ? ld_half(blk + 2) : 0.0f;
            }
            uint8_t *o = t->q[i][r];  // Q4: nibbles 0..15, Q8_0: the signed bytes, in input order
            if (q8) {
                memcpy(o, qs, 32);
                continue;
            }
#ifdef MM_AVX2
            _mm256_store_si256((__m256i *)(void *)o, q4_unpack(qs));
#else
            for (int j = 0; j < 16; j++) {
                o[j] = qs[j] & 0xf;
                o[j + 16] = qs[j] >> 4;
            }
#endif
        }
    }
}

#ifdef MM_AVX2
// Keeps a value in a register at this point: without it GCC reassociates the int16 add
// chains, computes all the products first and spills them, or reloads x once per row.
#define MM_KEEP(v) __asm__("" : "+x"(v))

static inline __m256i bcast4(const uint8_t *p) { return _mm256_set1_epi32(ld32(p)); }

// acc[j][r] (lanes = the 8 columns of panel j) += tile row r · panels P0, P1, blocks [0, nkb).
// Register tile: 3 rows × 16 columns; per 4-input group 2 panel loads and 3 broadcasts feed
// 6 maddubs. two = 0: P0 only (a last odd panel).
static inline __attribute__((always_inline)) void panel_kernel_t(uint32_t type, int two, const mm_tile *t,
                                                                  const mm_panel *P0, const mm_panel *P1,
                                                                  int64_t nkb, __m256 acc[MM_NP][MM_TILE]) {
#ifndef MM_VNNI
    const __m256i ones = _mm256_set1_epi16(1);
#endif
    __m256 a00 = acc[0][0], a01 = acc[0][1], a02 = acc[0][2];
    __m256 a10 = acc[1][0], a11 = acc[1][1], a12 = acc[1][2];
    for (int64_t i = 0; i < nkb; i++, P0++, P1 += two) {
        const uint8_t *w0 = t->q[i][0], *w1 = t->q[i][1], *w2 = t->q[i][2];
        __m256i s00, s01, s02, s10, s11, s12;
        if (type == QTYPE_Q8_0) {
            // Signed weights: |w| · (x with w's sign), exact in int16 per pair, widened per group.
            s00 = s01 = s02 = s10 = s11 = s12 = _mm256_setzero_si256();
            for (int g = 0; g < 8; g++) {
                __m256i x0 = _mm256_load_si256((const __m256i *)(const void *)(P0->qs + 32 * g));
                __m256i x1 = two ? _mm256_load_si256((const __m256i *)(const void *)(P1->qs + 32 * g)) : x0;
                MM_KEEP(x0);
                MM_KEEP(x1);
#ifdef MM_VNNI
#define MM_Q8G(S0, S1, W)                                                                                   \
    do {                                                                                                    \
        __m256i wb_ = bcast4((W) + 4 * g), aw_ = _mm256_sign_epi8(wb_, wb_);                                \
        S0 = mm_dpbusd(S0, aw_, _mm256_sign_epi8(x0, wb_));                                    \
        if (two) S1 = mm_dpbusd(S1, aw_, _mm256_sign_epi8(x1, wb_));                            \
    } while (0)
#else
#define MM_Q8G(S0, S1, W)                                                                                   \
    do {                                                                                                    \
        __m256i wb_ = bcast4((W) + 4 * g), aw_ = _mm256_sign_epi8(wb_, wb_);                                \
        S0 = _mm256_add_epi32(S0, _mm256_madd_epi16(_mm256_maddubs_epi16(aw_, _mm256_sign_epi8(x0, wb_)), ones)); \
        if (two)                                                                                            \
            S1 = _mm256_add_epi32(S1, _mm256_madd_epi16(_mm256_maddubs_epi16(aw_, _mm256_sign_epi8(x1, wb_)), ones)); \
    } while (0)
#endif
                MM_Q8G(s00, s10, w0);
                MM_Q8G(s01, s11, w1);
                MM_Q8G(s02, s12, w2);
#undef MM_Q8G
                MM_KEEP(s00);
                MM_KEEP(s01);
                MM_KEEP(s02);
                if (two) {
                    MM_KEEP(s10);
                    MM_KEEP(s11);
                    MM_KEEP(s12);
                }
            }
        } else {
#ifdef MM_VNNI
            s00 = s01 = s02 = s10 = s11 = s12 = _mm256_setzero_si256();
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++) {
                __m256i x0 = _mm256_load_si256((const __m256i *)(const void *)(P0->qs + 32 * g));
                __m256i x1 = two ? _mm256_load_si256((const __m256i *)(const void *)(P1->qs + 32 * g)) : x0;
                MM_KEEP(x0);
                MM_KEEP(x1);
                __m256i b0 = bcast4(w0 + 4 * g), b1 = bcast4(w1 + 4 * g), b2 = bcast4(w2 + 4 * g);
                s00 = mm_dpbusd(s00, b0, x0);
                s01 = mm_dpbusd(s01, b1, x0);
                s02 = mm_dpbusd(s02, b2, x0);
                if (two) {
                    s10 = mm_dpbusd(s10, b0, x1);
                    s11 = mm_dpbusd(s11, b1, x1);
                    s12 = mm_dpbusd(s12, b2, x1);
                }
            }
#else
            __m256i p00, p01, p02, p10 = _mm256_setzero_si256(), p11 = p10, p12 = p10;
            {
                __m256i x0 = _mm256_load_si256((const __m256i *)(const void *)P0->qs);
                __m256i b0 = bcast4(w0), b1 = bcast4(w1), b2 = bcast4(w2);
                p00 = _mm256_maddubs_epi16(b0, x0);
                p01 = _mm256_maddubs_epi16(b1, x0);
                p02 = _mm256_maddubs_epi16(b2, x0);
                if (two) {
                    __m256i x1 = _mm256_load_si256((const __m256i *)(const void *)P1->qs);
                    p10 = _mm256_maddubs_epi16(b0, x1);
                    p11 = _mm256_maddubs_epi16(b1, x1);
                    p12 = _mm256_maddubs_epi16(b2, x1);
                }
            }
#pragma GCC unroll 8
            for (int g = 1; g < 8; g++) {
                __m256i x0 = _mm256_load_si256((const __m256i *)(const void *)(P0->qs + 32 * g));
                __m256i x1 = two ? _mm256_load_si256((const __m256i *)(const void *)(P1->qs + 32 * g)) : x0;
                MM_KEEP(x0);  // one load each, not one per row
                MM_KEEP(x1);
                __m256i b0 = bcast4(w0 + 4 * g);
                p00 = _mm256_add_epi16(p00, _mm256_maddubs_epi16(b0, x0));
                if (two) p10 = _mm256_add_epi16(p10, _mm256_maddubs_epi16(b0, x1));
                __m256i b1 = bcast4(w1 + 4 * g);
                p01 = _mm256_add_epi16(p01, _mm256_maddubs_epi16(b1, x0));
                if (two) p11 = _mm256_add_epi16(p11, _mm256_maddubs_epi16(b1, x1));
                __m256i b2 = bcast4(w2 + 4 * g);
                p02 = _mm256_add_epi16(p02, _mm256_maddubs_epi16(b2, x0));
                if (two) p12 = _mm256_add_epi16(p12, _mm256_maddubs_epi16(b2, x1));
                MM_KEEP(p00);
                MM_KEEP(p01);
                MM_KEEP(p02);
                if (two) {
                    MM_KEEP(p10);
                    MM_KEEP(p11);
                    MM_KEEP(p12);
                }
            }
            s00 = _mm256_madd_epi16(p00, ones), s01 = _mm256_madd_epi16(p01, ones), s02 = _mm256_madd_epi16(p02, ones);
            s10 = _mm256_madd_epi16(p10, ones), s11 = _mm256_madd_epi16(p11, ones), s12 = _mm256_madd_epi16(p12, ones);
#endif
            if (type == QTYPE_Q4_0) {
                __m256i c0 = _mm256_slli_epi32(_mm256_load_si256((const __m256i *)(const void *)P0->sum), 3);
                __m256i c1 = two ? _mm256_slli_epi32(_mm256_load_si256((const __m256i *)(const void *)P1->sum), 3) : c0;
                s00 = _mm256_sub_epi32(s00, c0), s01 = _mm256_sub_epi32(s01, c0), s02 = _mm256_sub_epi32(s02, c0);
                s10 = _mm256_sub_epi32(s10, c1), s11 = _mm256_sub_epi32(s11, c1), s12 = _mm256_sub_epi32(s12, c1);
            }
        }
        const __m256 dx0 = _mm256_load_ps(P0->d), dx1 = two ? _mm256_load_ps(P1->d) : dx0;
        const __m256 d0 = _mm256_set1_ps(t->d[i][0]), d1 = _mm256_set1_ps(t->d[i][1]), d2 = _mm256_set1_ps(t->d[i][2]);
        a00 = _mm256_fmadd_ps(_mm256_mul_ps(d0, dx0), _mm256_cvtepi32_ps(s00), a00);
        a01 = _mm256_fmadd_ps(_mm256_mul_ps(d1, dx0), _mm256_cvtepi32_ps(s01), a01);
        a02 = _mm256_fmadd_ps(_mm256_mul_ps(d2, dx0), _mm256_cvtepi32_ps(s02), a02);
        if (two) {
            a10 = _mm256_fmadd_ps(_mm256_mul_ps(d0, dx1), _mm256_cvtepi32_ps(s10), a10);
            a11 = _mm256_fmadd_ps(_mm256_mul_ps(d1, dx1), _mm256_cvtepi32_ps(s11), a11);
            a12 = _mm256_fmadd_ps(_mm256_mul_ps(d2, dx1), _mm256_cvtepi32_ps(s12), a12);
        }
        if (type == QTYPE_Q4_1) {
            const __m256 sx0 = _mm256_load_ps(P0->s), sx1 = two ? _mm256_load_ps(P1->s) : sx0;
            const __m256 m0 = _mm256_set1_ps(t->m[i][0]), m1 = _mm256_set1_ps(t->m[i][1]), m2 = _mm256_set1_ps(t->m[i][2]);
            a00 = _mm256_fmadd_ps(m0, sx0, a00), a01 = _mm256_fmadd_ps(m1, sx0, a01), a02 = _mm256_fmadd_ps(m2, sx0, a02);
            if (two)
                a10 = _mm256_fmadd_ps(m0, sx1, a10), a11 = _mm256_fmadd_ps(m1, sx1, a11), a12 = _mm256_fmadd_ps(m2, sx1, a12);
        }
    }
    acc[0][0] = a00, acc[0][1] = a01, acc[0][2] = a02;
    acc[1][0] = a10, acc[1][1] = a11, acc[1][2] = a12;
}

typedef __m256 mm_acc[MM_NP][MM_TILE];
#define MM_KERNEL(NAME, TYPE, TWO)                                                                         \
    static void NAME(const mm_tile *t, const mm_panel *P0, const mm_panel *P1, int64_t nkb, mm_acc acc) { \
        panel_kernel_t(TYPE, TWO, t, P0, P1, nkb, acc);                                                  \
    }
MM_KERNEL(panel2_q4_0, QTYPE_Q4_0, 1)
MM_KERNEL(panel2_q4_1, QTYPE_Q4_1, 1)
MM_KERNEL(panel2_q8_0, QTYPE_Q8_0, 1)
MM_KERNEL(panel1_q4_0, QTYPE_Q4_0, 0)
MM_KERNEL(panel1_q4_1, QTYPE_Q4_1, 0)
MM_KERNEL(panel1_q8_0, QTYPE_Q8_0, 0)
#undef MM_KERNEL
// P1 == NULL: one panel.
static void panel_kernel(uint32_t type, const mm_tile *t, const mm_panel *P0, const mm_panel *P1, int64_t nkb,
                         mm_acc acc) {
    if (P1) {
        if (type == QTYPE_Q4_1) panel2_q4_1(t, P0, P1, nkb, acc);
        else if (type == QTYPE_Q4_0) panel2_q4_0(t, P0, P1, nkb, acc);
        else panel2_q8_0(t, P0, P1, nkb, acc);
    } else {
        if (type == QTYPE_Q4_1) panel1_q4_1(t, P0, P0, nkb, acc);
        else if (type == QTYPE_Q4_0) panel1_q4_0(t, P0, P0, nkb, acc);
        else panel1_q8_0(t, P0, P0, nkb, acc);
    }
}
#else
// Scalar: the same operations lane by lane (P1 == NULL: one panel).
typedef float mm_acc[MM_NP][MM_TILE][MM_PANEL];
static void panel_kernel(uint32_t type, const mm_tile *t, const mm_panel *P0, const mm_panel *P1, int64_t nkb,
                         mm_acc acc) {
    for (int64_t i = 0; i < nkb; i++) {
        for (int j = 0; j < (P1 ? MM_NP : 1); j++) {
            const mm_panel *P = (j ? P1 : P0) + i;
            for (int r = 0; r < MM_TILE; r++) {
                const uint8_t *w = t->q[i][r];
                for (int c = 0; c < MM_PANEL; c++) {
                    int32_t isum = 0;
                    for (int g = 0; g < 8; g++)
                        for (int k = 0; k < 4; k++) {
                            int wv = type == QTYPE_Q8_0 ? (int8_t)w[4 * g + k] : w[4 * g + k];
                            isum += wv * P->qs[32 * g + 4 * c + k];
                        }
                    if (type == QTYPE_Q4_0) isum -= 8 * P->sum[c];
                    float *a = &acc[j][r][c];
                    *a = fmaf(t->d[i][r] * P->d[c], (float)isum, *a);
                    if (type == QTYPE_Q4_1) *a = fmaf(t->m[i][r], P->s[c], *a);
                }
            }
        }
    }
}
#endif

// P: W's packed copy (matmul_pack) or NULL; the tiles are unpacked from it when given.
static void forward_panels(uint32_t type, const uint8_t *W, const uint8_t *P, int64_t N, int64_t K, const float *x,
                           float *y, int64_t B, mm_panel *pan) {
    const int64_t nb = K / 32, np = (B + MM_PANEL - 1) / MM_PANEL;
    const size_t rb = qtype_row_bytes(type, K);
    const int64_t ntile = (N + MM_TILE - 1) / MM_TILE;
    const int par = N * K * B >= (1 << 16);  // small products: not worth waking threads
    (void)par;
#pragma omp parallel if (par)
    {
#pragma omp for schedule(static)
        for (int64_t i = 0; i < np * nb; i++) act_quant_panel(x, K, B, i / nb, i % nb, pan + i);
        // (implicit barrier: every panel is ready)
        for (int64_t pg = 0; pg < np; pg += MM_PG) {
            const int64_t pend = pg + MM_PG < np ? pg + MM_PG : np;
            // Static schedule: each thread gets the same tiles in every panel group; groups
            // write disjoint columns, so no barrier is needed between them.
#pragma omp for schedule(static) nowait
            for (int64_t ti = 0; ti < ntile; ti++) {
                const int64_t n0 = ti * MM_TILE;
                mm_tile t;
                mm_acc acc[MM_PG / MM_NP];
                for (int64_t kb0 = 0; kb0 < nb; kb0 += MM_KC) {
                    const int64_t nkb = nb - kb0 < MM_KC ? nb - kb0 : MM_KC;
                    tile_unpack(type, W, P, rb, N, n0, kb0, nkb, &t);
                    for (int64_t p = pg; p < pend; p += MM_NP) {
                        mm_acc *a = &acc[(p - pg) / MM_NP];
                        if (kb0 == 0) memset(a, 0, sizeof(*a));
                        panel_kernel(type, &t, pan + p * nb + kb0, p + 1 < pend ? pan + (p + 1) * nb + kb0 : NULL, nkb,
                                     *a);
                    }
                }
                for (int64_t p = pg; p < pend; p++) {
                    float o[MM_TILE][MM_PANEL];
                    const int j = (int)((p - pg) % MM_NP);
#ifdef MM_AVX2
                    for (int r = 0; r < MM_TILE; r++) _mm256_storeu_ps(o[r], acc[(p - pg) / MM_NP][j][r]);
#else
                    memcpy(o, acc[(p - pg) / MM_NP][j], sizeof(o));
#endif
                    for (int c = 0; c < MM_PANEL && p * MM_PANEL + c < B; c++) {
                        float *yr = y + (p * MM_PANEL + c) * N + n0;
                        for (int r = 0; r < MM_TILE && n0 + r < N; r++) yr[r] = o[r][c];
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// F32: OpenBLAS, one thread per call, threaded here with OpenMP over column slices of the
// output. One thread pool (OpenMP's) instead of two: with OpenBLAS's own pthreads, every
// switch between our OpenMP ops and a BLAS call handed the cores from one pool to the other
// (sched_yield spinning, wake-up IPIs; a quarter of the training time in the kernel on this
// VM, `perf record` of build/bench_train).

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_one_thread(void) { openblas_set_num_threads(1); }

void matmul_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc) {
    pthread_once(&blas_once, blas_one_thread);
    const enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
    int nth = omp_get_max_threads();
    if (nth < 2 || N < 64 || (int64_t)M * N * K < (1 << 20) || omp_in_parallel()) {
        cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#pragma omp parallel num_threads(nth)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        int n0 = (int)((int64_t)N * t / n) & ~15, n1 = t == n - 1 ? N : (int)((int64_t)N * (t + 1) / n) & ~15;
        if (n1 > n0)  // columns [n0, n1) of C need columns [n0, n1) of op(B)
            cblas_sgemm(CblasRowMajor, ta, tb, M, n1 - n0, K, alpha, A, lda, trans_b ? B + (int64_t)n0 * ldb : B + n0,
                        ldb, beta, C + n0, ldc);
    }
}

void matmul_forward(uint32_t type, const void *W, int64_t N, int64_t K, const float *x, float *y, int64_t B,
                    void *scratch) {
    if (N <= 0 || B <= 0) return;
    if (type == QTYPE_F32) {
        if (B == 1) {
            pthread_once(&blas_once, blas_one_thread);
            const float *w = W;
#pragma omp parallel if (N * K >= (1 << 16) && !omp_in_parallel())
            {
                int t = omp_get_thread_num(), n = omp_get_num_threads();
                int64_t n0 = N * t / n, n1 = N * (t + 1) / n;
                if (n1 > n0)
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)(n1 - n0), (int)K, 1.0f, w + n0 * K, (int)K, x, 1,
                                0.0f, y + n0, 1);
            }
        } else {
            matmul_sgemm(0, 1, (int)B, (int)N, (int)K, 1.0f, x, (int)K, W, (int)K, 0.0f, y, (int)N);
        }
        return;
    }
    if (is_q(type)) {
        if (K % 32 != 0) {  // not a valid row of blocks (the loader never passes one)
            for (int64_t i = 0; i < N * B; i++) y[i] = NAN;
            return;
        }
        if (B <= MM_ROW_MAX_B) {
            const matmul_job job = {type, W, N, y, NULL};
            rows_run(&job, 1, K, x, B, align_up(scratch));
        }
        else forward_panels(type, W, NULL, N, K, x, y, B, align_up(scratch));
        return;
    }
    // No kernel: one dequantized row at a time.
    size_t rb = qtype_row_bytes(type, K);
    if (rb == 0) return;
    float *row = align_up(scratch);  // (K)
    for (int64_t n = 0; n < N; n++) {
        dequantize_row(type, (const uint8_t *)W + (size_t)n * rb, row, K);
        for (int64_t b = 0; b < B; b++) {
            const float *xb = x + b * K;
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += (double)row[k] * xb[k];
            y[b * N + n] = (float)s;
        }
    }
}

void matmul_forward_ref(uint32_t type, const void *W, int64_t N, int64_t K, const float *x, float *y, int64_t B) {
    size_t rb = qtype_row_bytes(type, K);
    float *row = malloc(sizeof(float) * (size_t)(K > 0 ? K : 1));
    for (int64_t n = 0; n < N; n++) {
        if (row && rb) dequantize_row(type, (const uint8_t *)W + (size_t)n * rb, row, K);
        for (int64_t b = 0; b < B; b++) {
            double s = 0;
            if (row && rb)
                for (int64_t k = 0; k < K; k++) s += (double)row[k] * x[b * K + k];
            else
                s = NAN;
            y[b * N + n] = (float)s;
        }
    }
    free(row);
}

void matmul_forward_qref(uint32_t type, const void *W, int64_t N, int64_t K, const float *x, float *y, int64_t B) {
    if (!is_q(type) || K % 32 != 0) {
        matmul_forward_ref(type, W, N, K, x, y, B);
        return;
    }
    int64_t nb = K / 32;
    size_t rb = qtype_row_bytes(type, K);
    matmul_act_block *a = malloc(sizeof(matmul_act_block) * (size_t)(nb * B > 0 ? nb * B : 1));
    if (!a) {
        for (int64_t i = 0; i < N * B; i++) y[i] = NAN;
        return;
    }
    for (int64_t b = 0; b < B; b++)
        for (int64_t kb = 0; kb < nb; kb++) {
            matmul_act_block *o = a + b * nb + kb;
            o->pad = 0;
            act_quant32_scalar(x + b * K + kb * 32, o->qs, &o->d, &o->s, &o->sum);
        }
    for (int64_t b = 0; b < B; b++)
        for (int64_t n = 0; n < N; n++) y[b * N + n] = row_dot_scalar(type, (const uint8_t *)W + (size_t)n * rb, nb, a + b * nb);
    free(a);
}
