// matmul_cpu.c: the fast CPU linear layer (see matmul.h). Quantized weights: activations are
// quantized once per call to 8-bit blocks, then each block of 32 weights is unpacked once
// and multiplied against up to 4 activation rows (a 1×4 register tile) with AVX2
// maddubs/madd integer dot products; a scalar path gives the same results without AVX2.
// The block arithmetic follows llama.cpp's (scales rounded to fp16, round-half-even
// activation rounding) so the two engines agree closely.
#include "matmul.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "quant.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define MATMUL_AVX2 1
#endif

int matmul_has_kernel(uint32_t t) {
    return t == QTYPE_F32 || t == QTYPE_Q4_0 || t == QTYPE_Q4_1 || t == QTYPE_Q8_0;
}

size_t matmul_scratch_bytes(uint32_t type, int64_t K, int64_t T) {
    if (type == QTYPE_F32) return 0;
    return (size_t)T * (size_t)(K / 32) * sizeof(matmul_q8_block);
}

static float fp16_round(float f) { return fp16_to_fp32(fp32_to_fp16(f)); }

void matmul_quantize_q8(const float *x, matmul_q8_block *out, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            int q = (int)nearbyintf(x[j] * id);  // round half to even, as the AVX2 quantizer
            out[b].qs[j] = (int8_t)q;
            sum += q;
        }
        out[b].d = fp16_round(d);
        out[b].s = fp16_round(d * (float)sum);
    }
}

// ---- one weight row · up to 4 activation rows ----------------------------------------
// w: one row (nb blocks); a[t]: quantized activation rows; out[t] = dot.

#ifdef MATMUL_AVX2
static inline __m256i unpack_nibbles(const uint8_t *qs) {
    __m128i b = _mm_loadu_si128((const __m128i *)qs);
    __m128i lo = _mm_and_si128(b, _mm_set1_epi8(0xF));
    __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0xF));
    return _mm256_set_m128i(hi, lo);  // element j < 16: low nibble j; j ≥ 16: high nibble j-16
}

// Σ u8(x)·s8(y) over 32 pairs, as 8 int32 lanes in float.
static inline __m256 dot_us(__m256i x, __m256i y) {
    __m256i p = _mm256_maddubs_epi16(x, y);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

// Σ s8(x)·s8(y): maddubs needs an unsigned left operand, so move x's sign onto y.
static inline __m256 dot_ss(__m256i x, __m256i y) {
    return dot_us(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

static void row_q4_1(const block_q4_1 *w, int nb, const matmul_q8_block *const *a, int nt, float *out) {
#ifdef MATMUL_AVX2
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    float summ[4] = {0, 0, 0, 0};
    for (int b = 0; b < nb; b++) {
        __m256i qx = unpack_nibbles(w[b].qs);
        float dw = fp16_to_fp32(w[b].d), mw = fp16_to_fp32(w[b].m);
        for (int t = 0; t < nt; t++) {
            const matmul_q8_block *y = &a[t][b];
            __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * y->d), dot_us(qx, qy), acc[t]);
            summ[t] += mw * y->s;
        }
    }
    for (int t = 0; t < nt; t++) out[t] = hsum(acc[t]) + summ[t];
#else
    for (int t = 0; t < nt; t++) {
        float s = 0;
        for (int b = 0; b < nb; b++) {
            const matmul_q8_block *y = &a[t][b];
            int dot = 0;
            for (int j = 0; j < 16; j++) dot += (w[b].qs[j] & 0xF) * y->qs[j] + (w[b].qs[j] >> 4) * y->qs[j + 16];
            s += fp16_to_fp32(w[b].d) * y->d * (float)dot + fp16_to_fp32(w[b].m) * y->s;
        }
        out[t] = s;
    }
#endif
}

static void row_q4_0(const block_q4_0 *w, int nb, const matmul_q8_block *const *a, int nt, float *out) {
#ifdef MATMUL_AVX2
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int b = 0; b < nb; b++) {
        __m256i qx = _mm256_sub_epi8(unpack_nibbles(w[b].qs), _mm256_set1_epi8(8));
        float dw = fp16_to_fp32(w[b].d);
        for (int t = 0; t < nt; t++) {
            const matmul_q8_block *y = &a[t][b];
            __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * y->d), dot_ss(qx, qy), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) out[t] = hsum(acc[t]);
#else
    for (int t = 0; t < nt; t++) {
        float s = 0;
        for (int b = 0; b < nb; b++) {
            const matmul_q8_block *y = &a[t][b];
            int dot = 0;
            for (int j = 0; j < 16; j++)
                dot += ((w[b].qs[j] & 0xF) - 8) * y->qs[j] + ((w[b].qs[j] >> 4) - 8) * y->qs[j + 16];
            s += fp16_to_fp32(w[b].d) * y->d * (float)dot;
        }
        out[t] = s;
    }
#endif
}

static void row_q8_0(const block_q8_0 *w, int nb, const matmul_q8_block *const *a, int nt, float *out) {
#ifdef MATMUL_AVX2
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int b = 0; b < nb; b++) {
        __m256i qx = _mm256_loadu_si256((const __m256i *)w[b].qs);
        float dw = fp16_to_fp32(w[b].d);
        for (int t = 0; t < nt; t++) {
            const matmul_q8_block *y = &a[t][b];
            __m256i qy = _mm256_loadu_si256((const __m256i *)y->qs);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * y->d), dot_ss(qx, qy), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) out[t] = hsum(acc[t]);
#else
    for (int t = 0; t < nt; t++) {
        float s = 0;
        for (int b = 0; b < nb; b++) {
            const matmul_q8_block *y = &a[t][b];
            int dot = 0;
            for (int j = 0; j < 32; j++) dot += w[b].qs[j] * y->qs[j];
            s += fp16_to_fp32(w[b].d) * y->d * (float)dot;
        }
        out[t] = s;
    }
#endif
}

// Rows of W per task: enough to amortise scheduling, small enough to balance 2+ threads.
#define ROW_CHUNK 16

void matmul_forward(uint32_t type, const void *W, int64_t N, int64_t K, const float *x, float *y, int64_t T,
                    void *scratch) {
    if (type == QTYPE_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)N, (int)K, 1.0f, x, (int)K, W, (int)K, 0.0f,
                    y, (int)N);
        return;
    }
    int nb = (int)(K / 32);
    matmul_q8_block *q = scratch;  // (T, nb)
#pragma omp parallel for schedule(static) if (T > 1)
    for (int64_t t = 0; t < T; t++) matmul_quantize_q8(x + t * K, q + t * nb, K);
    size_t rb = qtype_row_bytes(type, K);
    int64_t n_chunks = (N + ROW_CHUNK - 1) / ROW_CHUNK;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < n_chunks; c++) {
        int64_t r1 = (c + 1) * ROW_CHUNK < N ? (c + 1) * ROW_CHUNK : N;
        for (int64_t t0 = 0; t0 < T; t0 += 4) {
            int nt = T - t0 < 4 ? (int)(T - t0) : 4;
            const matmul_q8_block *a[4];
            for (int i = 0; i < nt; i++) a[i] = q + (t0 + i) * nb;
            for (int64_t r = c * ROW_CHUNK; r < r1; r++) {
                const void *wr = (const uint8_t *)W + (size_t)r * rb;
                float out[4];
                if (type == QTYPE_Q4_1) row_q4_1(wr, nb, a, nt, out);
                else if (type == QTYPE_Q4_0) row_q4_0(wr, nb, a, nt, out);
                else row_q8_0(wr, nb, a, nt, out);
                for (int i = 0; i < nt; i++) y[(t0 + i) * N + r] = out[i];
            }
        }
    }
}
