// backend_cpu.c: the fast CPU backend. Matmuls go to matmul_cpu.c (quantized weights stay
// quantized: AVX2 integer dots against 8-bit activations) or to OpenBLAS for F32 weights;
// attention is a one-pass online softmax over the KV cache (AVX-512 or AVX2, the same bits from
// either), threaded with OpenMP over tiles of consecutive tokens × the query heads of a GQA
// group (each row's arithmetic as alone, so results do not depend on how requests are
// batched); the elementwise ops are threaded over tokens.
#include <math.h>
#include <string.h>

#include "model/matmul.h"
#include "model/ops.h"
#include "model/quant.h"

size_t ops_matmul_scratch(const model_tensor *w, int T) {
    size_t a = matmul_scratch_bytes(model_tensor_kernel_type(w), w->n_cols, T);
    size_t b = (size_t)w->n_cols * sizeof(float);  // ops_ref: one dequantized row
    return (a > b ? a : b) + 64;
}

// The kernels' view of a weight: its packed copy where it has one (whose type differs from
// the rows' where they were converted at load; the rows are then not passed), else its rows.
static matmul_job weight_job(const model_tensor *w, float *y) {
    if (w->packed) return (matmul_job){w->packed_type, NULL, w->n_rows, y, w->packed};
    return (matmul_job){w->type, w->data, w->n_rows, y, NULL};
}

static void cpu_matmul(const model_tensor *w, const float *x, float *y, int T, void *scratch) {
    const matmul_job job = weight_job(w, y);
    matmul_forward_n(&job, 1, w->n_cols, x, T, scratch);
}

static void cpu_matmul_n(const model_tensor *const *w, const float *x, float *const *y, int n, int T,
                         void *scratch) {
    matmul_job jobs[8];
    int same = n <= 8;
    for (int i = 0; i < n && same; i++) {
        jobs[i] = weight_job(w[i], y[i]);
        same = w[i]->n_cols == w[0]->n_cols;
    }
    if (same) matmul_forward_n(jobs, n, w[0]->n_cols, x, T, scratch);
    else
        for (int i = 0; i < n; i++) cpu_matmul(w[i], x, y[i], T, scratch);
}

static void cpu_rmsnorm(float *out, const float *x, const float *w, int T, int C, float eps) {
#pragma omp parallel for schedule(static) if (T > 4)
    for (int t = 0; t < T; t++) {
        const float *xt = x + (int64_t)t * C;
        // llama.cpp's arithmetic, step for step: float squares summed in double in input
        // order, the mean narrowed to float, the scale in float (an ulp here moves a value
        // across an 8-bit rounding step in the next matmul). In order, so the same bits in
        // every build, whatever vector width the compiler would have picked.
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)(xt[c] * xt[c]);
        float mean = (float)(ss / C), s = 1.0f / sqrtf(mean + eps);
        float *o = out + (int64_t)t * C;
        for (int c = 0; c < C; c++) o[c] = xt[c] * s * w[c];
    }
}

static void cpu_rope(float *q, float *k, const int32_t *pos, int T, int NH, int NKV, int HS, float theta,
                     rope_style style, const float *table) {
#pragma omp parallel for schedule(static) if (T > 4)
    for (int t = 0; t < T; t++) {
        float cs[256], sn[256], own[512];  // HS ≤ 512 (checked by model_config_validate)
        const float *r = table ? table + (size_t)pos[t] * HS : own;  // (HS/2) pairs: cos, sin
        if (!table) rope_angles(own, pos[t], HS, theta);
        for (int i = 0; i < HS / 2; i++) cs[i] = r[2 * i], sn[i] = r[2 * i + 1];
        for (int h = 0; h < NH + NKV; h++) {
            float *v = h < NH ? q + ((int64_t)t * NH + h) * HS : k + ((int64_t)t * NKV + (h - NH)) * HS;
            if (style == ROPE_NORM) {
                for (int i = 0; i < HS / 2; i++) {
                    float x0 = v[2 * i], x1 = v[2 * i + 1];
                    v[2 * i] = x0 * cs[i] - x1 * sn[i];
                    v[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
                }
            } else {
                int half = HS / 2;
                for (int i = 0; i < half; i++) {
                    float x0 = v[i], x1 = v[i + half];
                    v[i] = x0 * cs[i] - x1 * sn[i];
                    v[i + half] = x0 * sn[i] + x1 * cs[i];
                }
            }
        }
    }
}

// SwiGLU with glibc's own expf (not libmvec's 8-lane one, ≤ 4 ulp away, which moved the
// logits enough to flip two of the four 32-token greedy continuations checked against
// llama.cpp, tests/test_smollm2.c), vectorized: glibc's algorithm for expf (the FMA build
// its ifunc picks on any CPU with AVX2 and FMA) step for step on 4 double lanes, a 32-entry
// table of 2^(i/32) made at start-up. On every float below 88 in magnitude it returns
// glibc's bits (checked once over all 2,237,661,184 of them; test_ops sweeps 3.7 million and
// the special cases on every run); lanes at or past 88, and NaNs, go to expf itself.
// Threaded from 4096 values on (a batch of 3 SmolLM2 tokens).
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

static uint64_t expf_tab[32];  // bits of 2^(i/32), minus i << 47

__attribute__((constructor)) static void expf_tab_init(void) {
    for (int i = 0; i < 32; i++) {
        double v = (double)exp2l((long double)i / 32);
        uint64_t b;
        memcpy(&b, &v, sizeof(b));
        expf_tab[i] = b - ((uint64_t)i << 47);
    }
}

// exp(x) for 4 floats |x| < 88: x·32/ln2 = k + r (k rounded to nearest by the 1.5·2^52
// shift), exp(x) = 2^(k/32) · (c0·r³ + c1·r² + c2·r + 1).
static inline __m128 expf4_glibc(__m128 x) {
    const __m256d shift = _mm256_set1_pd(0x1.8p+52), one = _mm256_set1_pd(1.0);
    const __m256d c0 = _mm256_set1_pd(0x1.c6af84b912394p-5 / 32 / 32 / 32);
    const __m256d c1 = _mm256_set1_pd(0x1.ebfce50fac4f3p-3 / 32 / 32), c2 = _mm256_set1_pd(0x1.62e42ff0c52d6p-1 / 32);
    __m256d z = _mm256_mul_pd(_mm256_set1_pd(0x1.71547652b82fep+0 * 32), _mm256_cvtps_pd(x));
    __m256d kd = _mm256_add_pd(z, shift);
    __m256i ki = _mm256_castpd_si256(kd);
    __m256d r = _mm256_sub_pd(z, _mm256_sub_pd(kd, shift));
    __m256i t = _mm256_i64gather_epi64((const long long *)expf_tab, _mm256_and_si256(ki, _mm256_set1_epi64x(31)), 8);
    __m256d sc = _mm256_castsi256_pd(_mm256_add_epi64(t, _mm256_slli_epi64(ki, 47)));
    __m256d p = _mm256_fmadd_pd(c0, r, c1), y = _mm256_fmadd_pd(c2, r, one);
    y = _mm256_fmadd_pd(p, _mm256_mul_pd(r, r), y);
    return _mm256_cvtpd_ps(_mm256_mul_pd(y, sc));
}
#define SWIGLU_VEC 1
#endif

static void cpu_swiglu(float *out, const float *gate, const float *up, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= 4096)
    for (int64_t i0 = 0; i0 < n; i0 += 1024) {
        int64_t i = i0, e = i0 + 1024 < n ? i0 + 1024 : n;
#ifdef SWIGLU_VEC
        const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)), big = _mm256_set1_ps(88.0f);
        for (; i + 8 <= e; i += 8) {
            __m256 g = _mm256_loadu_ps(gate + i), ng = _mm256_xor_ps(g, _mm256_set1_ps(-0.0f));
            // |x| ≥ 88 or NaN (the unordered compare is true for NaN): glibc's special cases
            if (_mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(ng, abs_mask), big, _CMP_NLT_UQ))) break;
            __m256 ex = _mm256_set_m128(expf4_glibc(_mm256_extractf128_ps(ng, 1)), expf4_glibc(_mm256_castps256_ps128(ng)));
            __m256 v = _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), ex)), _mm256_loadu_ps(up + i));
            _mm256_storeu_ps(out + i, v);
        }
#endif
        for (; i < e; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
    }
}

static void cpu_add(float *x, const float *y, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= 4096)
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

#define ATT_CHUNK 128  // cache positions per online-softmax step (their maximum is taken together)

#define ATT_MAXG 16  // query heads per KV head handled together (GQA group); larger groups split

// The vector attention: AVX-512 (16 lanes) where the build has it, else AVX2 (8 lanes), one
// source for both. An item is a tile of nq consecutive tokens of one sequence and the G query
// heads of one KV head: R = nq·G rows, each a query with its own causal length. The tile walks
// the cache in chunks of ATT_CHUNK positions; each block of ATT_KB keys is converted from fp16
// once for all R rows (keys transposed, so that a score is a column of a small matrix product
// and needs no horizontal sum), and so are the values. The arithmetic of one row is fixed
// whatever the tile, the batch or the vector width (results do not depend on how requests are
// batched, and an AVX2 build gives the AVX-512 build's bits):
//   score_j  = (q·k_j as one chain of fused multiply-adds over i = 0..HS-1) · scale
//   chunk    : cmx = its largest score; if cmx > mx: rs = att_exp(mx − cmx), sum ·= rs,
//              acc ·= rs, mx = cmx; w_j = att_exp(score_j − mx);
//              sum += the chunk's w summed as 16 partial sums (lane l: j ≡ l mod 16, in
//              order), then lanes l + l+8, l + l+4, l + l+2, l + l+1
//   acc_c   += w_j · v_jc, one chain of fused multiply-adds over j in order
//   out_c    = acc_c / sum
// Keys past a row's length weigh 0: they add +0 to the sums, which changes no bits (the
// partial sums and acc lanes are never −0 while they grow; acc lanes could only reach −0 by
// underflow in a rescale, and the output is then ±0 either way).
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
#define ATT_W 16
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define ATT_W 8
#endif

#ifdef ATT_W
#include <immintrin.h>

#define ATT_KB 32             // keys converted together (the columns of a block of scores)
#define ATT_ROWS 48           // rows (tokens × heads) of a tile at most
#define ATT_TILE_FLOATS 8192  // each of a tile's buffers, in floats: R·HSP, HS·ATT_KB, ATT_KB·HSP
#define ATT_HS_MAX (ATT_TILE_FLOATS / ATT_KB)  // 256: larger heads take attend_group

#if ATT_W == 16
typedef __m512 attv;
#define ATT_SC_RB 12  // score kernel: rows × (ATT_SC_NU vectors of keys) accumulators
#define ATT_SC_NU 2
#define ATT_PV_RB 6   // value kernel: rows × (ATT_PV_NV vectors of head lanes) accumulators
#define ATT_PV_NV 4
static inline attv attv_zero(void) { return _mm512_setzero_ps(); }
static inline attv attv_set(float x) { return _mm512_set1_ps(x); }
static inline attv attv_load(const float *p) { return _mm512_load_ps(p); }
static inline void attv_store(float *p, attv v) { _mm512_store_ps(p, v); }
static inline attv attv_fma(attv a, attv b, attv c) { return _mm512_fmadd_ps(a, b, c); }
static inline attv attv_mul(attv a, attv b) { return _mm512_mul_ps(a, b); }
static inline attv attv_add(attv a, attv b) { return _mm512_add_ps(a, b); }
static inline attv attv_sub(attv a, attv b) { return _mm512_sub_ps(a, b); }
static inline attv attv_max(attv a, attv b) { return _mm512_max_ps(a, b); }
// 16 fp16 values at p as floats; attv_half: the first n ≤ 16, the other lanes 0.
static inline attv attv_h(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)p)); }
static inline attv attv_half(const uint16_t *p, int n) {
    return n == 16 ? attv_h(p) : _mm512_cvtph_ps(_mm256_maskz_loadu_epi16((__mmask16)((1u << n) - 1), p));
}
// bits(p) + (bits(kf) << 23), lanes where x ≥ lo; 0 elsewhere (and where x is NaN).
static inline attv attv_exp_finish(attv p, attv kf, attv x, float lo) {
    __m512i e = _mm512_slli_epi32(_mm512_castps_si512(kf), 23);
    attv y = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(p), e));
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, attv_set(lo), _CMP_GE_OQ), y);
}
static inline float attv_first(attv v) { return _mm512_cvtss_f32(v); }
// The 16 partial sums as 8: lanes l + l+8.
static inline __m256 att_fold16(attv s) {
    return _mm256_add_ps(_mm512_castps512_ps256(s), _mm512_extractf32x8_ps(s, 1));
}
#else
typedef __m256 attv;
#define ATT_SC_RB 6
#define ATT_SC_NU 2
#define ATT_PV_RB 6
#define ATT_PV_NV 2
static inline attv attv_zero(void) { return _mm256_setzero_ps(); }
static inline attv attv_set(float x) { return _mm256_set1_ps(x); }
static inline attv attv_load(const float *p) { return _mm256_load_ps(p); }
static inline void attv_store(float *p, attv v) { _mm256_store_ps(p, v); }
static inline attv attv_fma(attv a, attv b, attv c) { return _mm256_fmadd_ps(a, b, c); }
static inline attv attv_mul(attv a, attv b) { return _mm256_mul_ps(a, b); }
static inline attv attv_add(attv a, attv b) { return _mm256_add_ps(a, b); }
static inline attv attv_sub(attv a, attv b) { return _mm256_sub_ps(a, b); }
static inline attv attv_max(attv a, attv b) { return _mm256_max_ps(a, b); }
static inline attv attv_h(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p)); }
static inline attv attv_half(const uint16_t *p, int n) {
    (void)n;  // always 8 here (HS is a multiple of 8)
    return attv_h(p);
}
static inline attv attv_exp_finish(attv p, attv kf, attv x, float lo) {
    __m256i e = _mm256_slli_epi32(_mm256_castps_si256(kf), 23);
    attv y = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), e));
    return _mm256_and_ps(y, _mm256_cmp_ps(x, attv_set(lo), _CMP_GE_OQ));
}
static inline float attv_first(attv v) { return _mm256_cvtss_f32(v); }
#endif
#define ATT_PV_COLS (ATT_PV_NV * ATT_W)  // head lanes per value-kernel call; HSP is a multiple

// e^x on every lane, for the softmax's x ≤ 0: x = n·ln2 + r with n = round(x/ln2) (the
// 1.5·2^23 shift) and |r| ≤ ln2/2 (ln2 in two parts, the first exact in n·ln2_hi), e^r by its
// Taylor polynomial of degree 7 (truncation below 5.3e-9 relative), 2^n added to the exponent
// bits. At most 1 ulp from the correctly rounded e^x for every float x in [-86, 0] (checked
// over all of them once; test_ops sweeps a sample); x < -86, -inf and NaN give 0 (e^-86 <
// 4.5e-38, against a softmax sum ≥ 1). Lane by lane, so every vector width gives these bits.
static inline attv att_exp(attv x) {
    const attv shift = attv_set(0x1.8p23f);
    attv kf = attv_fma(x, attv_set(0x1.715476p+0f), shift);  // n + 1.5·2^23
    attv n = attv_sub(kf, shift);
    attv r = attv_fma(n, attv_set(-0x1.62e400p-1f), x);  // ln2_hi: 16 significant bits
    r = attv_fma(n, attv_set(-0x1.7f7d1cp-20f), r);      // ln2_lo = ln2 − ln2_hi
    attv p = attv_set(1.0f / 5040);
    p = attv_fma(p, r, attv_set(1.0f / 720));
    p = attv_fma(p, r, attv_set(1.0f / 120));
    p = attv_fma(p, r, attv_set(1.0f / 24));
    p = attv_fma(p, r, attv_set(1.0f / 6));
    p = attv_fma(p, r, attv_set(0.5f));
    p = attv_fma(p, r, attv_set(1.0f));
    p = attv_fma(p, r, attv_set(1.0f));
    return attv_exp_finish(p, kf, x, -86.0f);
}

static inline float att_exp1(float x) { return attv_first(att_exp(attv_set(x))); }

void ops_cpu_exp(float *y, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] = att_exp1(x[i]);
}

// 8 lanes summed: l + l+4, then l + l+2, then l + l+1.
static inline float att_hsum8(__m256 v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

// w[0..n) (n a multiple of 16) summed in the canonical order above.
static inline float att_sum16(const float *w, int n) {
#if ATT_W == 16
    attv s = attv_zero();
    for (int j = 0; j < n; j += 16) s = attv_add(s, attv_load(w + j));
    return att_hsum8(att_fold16(s));
#else
    attv s0 = attv_zero(), s1 = attv_zero();
    for (int j = 0; j < n; j += 16) s0 = attv_add(s0, attv_load(w + j)), s1 = attv_add(s1, attv_load(w + j + 8));
    return att_hsum8(attv_add(s0, s1));
#endif
}

// Two runs of memory to bring into L1 while a block of keys is converted (the next block's
// keys, this block's values): a decode step streams the cache from DRAM, and the hardware
// prefetcher stops at 4 KiB pages (a block of 32 keys at HS = 64). Spread over the block's
// transposes, so that the core keeps converting while the lines arrive.
typedef struct {
    const char *p[2];
    size_t bytes[2];
} att_ahead;

// Prefetches bytes [b0, b1) of the two runs taken one after the other, a 64-byte line at a time.
static inline void att_ahead_lines(const att_ahead *f, size_t b0, size_t b1) {
    for (size_t b = b0 & ~(size_t)63; b < b1; b += 64)
        if (b < f->bytes[0]) _mm_prefetch(f->p[0] + b, _MM_HINT_T0);
        else if (b - f->bytes[0] < f->bytes[1]) _mm_prefetch(f->p[1] + (b - f->bytes[0]), _MM_HINT_T0);
}

// The keys k (kn rows of HS fp16, kn ≤ ATT_KB) as floats, transposed: kt (HS, ATT_KB), lanes
// kn.. zero. Blocks of W keys × W head lanes, transposed in registers; f's lines prefetched
// along the way.
static void att_keys_load(float *kt, const uint16_t *k, int kn, int HS, const att_ahead *f) {
    size_t total = f->bytes[0] + f->bytes[1];
    int nsub = (HS + ATT_W - 1) / ATT_W * (ATT_KB / ATT_W), sub = 0;
#if ATT_W == 16
    for (int d0 = 0; d0 < HS; d0 += 16) {
        int nd = HS - d0 < 16 ? HS - d0 : 16;
        for (int j0 = 0; j0 < ATT_KB; j0 += 16, sub++) {
            att_ahead_lines(f, total * sub / nsub, total * (sub + 1) / nsub);
            __m512 a[16], b[16];
            if (nd == 16 && j0 + 16 <= kn)
                for (int u = 0; u < 16; u++) a[u] = attv_h(k + (size_t)(j0 + u) * HS + d0);
            else
                for (int u = 0; u < 16; u++)
                    a[u] = j0 + u < kn ? attv_half(k + (size_t)(j0 + u) * HS + d0, nd) : attv_zero();
            for (int u = 0; u < 16; u += 2)  // per 128-bit lane: (a0 b0 a1 b1), (a2 b2 a3 b3)
                b[u] = _mm512_unpacklo_ps(a[u], a[u + 1]), b[u + 1] = _mm512_unpackhi_ps(a[u], a[u + 1]);
            for (int u = 0; u < 16; u += 4) {  // a[u + e]: rows u..u+3 at lane 4L + e of lane L
                a[u] = _mm512_shuffle_ps(b[u], b[u + 2], 0x44), a[u + 1] = _mm512_shuffle_ps(b[u], b[u + 2], 0xee);
                a[u + 2] = _mm512_shuffle_ps(b[u + 1], b[u + 3], 0x44);
                a[u + 3] = _mm512_shuffle_ps(b[u + 1], b[u + 3], 0xee);
            }
            for (int e = 0; e < 4; e++) {  // the 4×4 transpose of 128-bit lanes
                __m512 v0 = _mm512_shuffle_f32x4(a[e], a[4 + e], 0x44), v1 = _mm512_shuffle_f32x4(a[e], a[4 + e], 0xee);
                __m512 v2 = _mm512_shuffle_f32x4(a[8 + e], a[12 + e], 0x44);
                __m512 v3 = _mm512_shuffle_f32x4(a[8 + e], a[12 + e], 0xee);
                b[e] = _mm512_shuffle_f32x4(v0, v2, 0x88), b[4 + e] = _mm512_shuffle_f32x4(v0, v2, 0xdd);
                b[8 + e] = _mm512_shuffle_f32x4(v1, v3, 0x88), b[12 + e] = _mm512_shuffle_f32x4(v1, v3, 0xdd);
            }
            for (int d = 0; d < nd; d++) attv_store(kt + (size_t)(d0 + d) * ATT_KB + j0, b[d]);
        }
    }
#else
    for (int d0 = 0; d0 < HS; d0 += 8)
        for (int j0 = 0; j0 < ATT_KB; j0 += 8, sub++) {
            att_ahead_lines(f, total * sub / nsub, total * (sub + 1) / nsub);
            __m256 a[8], b[8];
            if (j0 + 8 <= kn)
                for (int u = 0; u < 8; u++) a[u] = attv_h(k + (size_t)(j0 + u) * HS + d0);
            else
                for (int u = 0; u < 8; u++) a[u] = j0 + u < kn ? attv_h(k + (size_t)(j0 + u) * HS + d0) : attv_zero();
            for (int u = 0; u < 8; u += 2)
                b[u] = _mm256_unpacklo_ps(a[u], a[u + 1]), b[u + 1] = _mm256_unpackhi_ps(a[u], a[u + 1]);
            for (int u = 0; u < 8; u += 4) {
                a[u] = _mm256_shuffle_ps(b[u], b[u + 2], 0x44), a[u + 1] = _mm256_shuffle_ps(b[u], b[u + 2], 0xee);
                a[u + 2] = _mm256_shuffle_ps(b[u + 1], b[u + 3], 0x44);
                a[u + 3] = _mm256_shuffle_ps(b[u + 1], b[u + 3], 0xee);
            }
            for (int e = 0; e < 4; e++)
                b[e] = _mm256_permute2f128_ps(a[e], a[4 + e], 0x20), b[4 + e] = _mm256_permute2f128_ps(a[e], a[4 + e], 0x31);
            for (int d = 0; d < 8; d++) attv_store(kt + (size_t)(d0 + d) * ATT_KB + j0, b[d]);
        }
#endif
}

// The values v (kn rows of HS fp16) as floats: vf (kn, HSP), lanes HS.. zero.
static void att_values_load(float *vf, const uint16_t *v, int kn, int HS, int HSP) {
    for (int j = 0; j < kn; j++)
        for (int c = 0; c < HSP; c += ATT_W)
            attv_store(vf + (size_t)j * HSP + c,
                       c < HS ? attv_half(v + (size_t)j * HS + c, HS - c < ATT_W ? HS - c : ATT_W) : attv_zero());
}

// Scores of NR rows against ATT_SC_NU·W keys: sc (NR rows ATT_CHUNK apart) = (qt's columns ·
// kt's) · scale. qt (HS, R): the rows' queries transposed (NR columns from qt); kt (HS,
// ATT_KB): the keys, from column kt.
static inline __attribute__((always_inline)) void att_scores_rows(float *sc, const float *qt, int R, const float *kt,
                                                                  int HS, attv vscale, int NR) {
    attv a[ATT_SC_RB][ATT_SC_NU];
    for (int r = 0; r < NR; r++)
        for (int u = 0; u < ATT_SC_NU; u++) a[r][u] = attv_zero();
    for (int i = 0; i < HS; i++) {
        const float *qi = qt + (size_t)i * R;
        attv k[ATT_SC_NU];
        for (int u = 0; u < ATT_SC_NU; u++) k[u] = attv_load(kt + (size_t)i * ATT_KB + u * ATT_W);
        for (int r = 0; r < NR; r++) {
            attv b = attv_set(qi[r]);
            for (int u = 0; u < ATT_SC_NU; u++) a[r][u] = attv_fma(b, k[u], a[r][u]);
        }
    }
    for (int r = 0; r < NR; r++)
        for (int u = 0; u < ATT_SC_NU; u++) attv_store(sc + (size_t)r * ATT_CHUNK + u * ATT_W, attv_mul(a[r][u], vscale));
}

static void att_scores_block(float *sc, const float *qt, int R, const float *kt, int HS, attv vscale, int nr) {
    switch (nr) {
#define ATT_SC_CASE(n) \
    case n: att_scores_rows(sc, qt, R, kt, HS, vscale, n); break;
        ATT_SC_CASE(1) ATT_SC_CASE(2) ATT_SC_CASE(3) ATT_SC_CASE(4) ATT_SC_CASE(5) ATT_SC_CASE(6)
#if ATT_SC_RB > 6
        ATT_SC_CASE(7) ATT_SC_CASE(8) ATT_SC_CASE(9) ATT_SC_CASE(10) ATT_SC_CASE(11) ATT_SC_CASE(12)
#endif
#undef ATT_SC_CASE
    }
}

// acc (NR rows HSP apart, ATT_PV_COLS lanes from acc) += Σ_{j<kn} w_rj · v_j (the same lanes),
// w: NR rows ATT_CHUNK apart; v_j: row j of vf (floats) or, where vf is NULL, of vh (fp16,
// converted here: a tile of one row block converts each value once either way), vs apart.
static inline __attribute__((always_inline)) void att_values_rows(float *acc, int HSP, const float *w, const float *vf,
                                                                  const uint16_t *vh, int vs, int kn, int NR) {
    attv a[ATT_PV_RB][ATT_PV_NV];
    for (int r = 0; r < NR; r++)
        for (int u = 0; u < ATT_PV_NV; u++) a[r][u] = attv_load(acc + (size_t)r * HSP + u * ATT_W);
    for (int j = 0; j < kn; j++) {
        attv v[ATT_PV_NV];
        for (int u = 0; u < ATT_PV_NV; u++)
            v[u] = vf ? attv_load(vf + (size_t)j * vs + u * ATT_W) : attv_h(vh + (size_t)j * vs + u * ATT_W);
        for (int r = 0; r < NR; r++) {
            attv b = attv_set(w[(size_t)r * ATT_CHUNK + j]);
            for (int u = 0; u < ATT_PV_NV; u++) a[r][u] = attv_fma(b, v[u], a[r][u]);
        }
    }
    for (int r = 0; r < NR; r++)
        for (int u = 0; u < ATT_PV_NV; u++) attv_store(acc + (size_t)r * HSP + u * ATT_W, a[r][u]);
}

static void att_values_block(float *acc, int HSP, const float *w, const float *vf, const uint16_t *vh, int vs, int kn,
                             int nr) {
#define ATT_PV_CASE(n, f, h) \
    case n: att_values_rows(acc, HSP, w, f, h, vs, kn, n); break;
#define ATT_PV_CASES(f, h)                                                                                    \
    ATT_PV_CASE(1, f, h) ATT_PV_CASE(2, f, h) ATT_PV_CASE(3, f, h) ATT_PV_CASE(4, f, h) ATT_PV_CASE(5, f, h) \
    ATT_PV_CASE(6, f, h)
    if (vf) switch (nr) { ATT_PV_CASES(vf, NULL) }
    else switch (nr) { ATT_PV_CASES(NULL, vh) }
#undef ATT_PV_CASES
#undef ATT_PV_CASE
}

// The softmax step of one row over a chunk: sc (its scores, mp of them, a multiple of 16; the
// first m real) becomes the weights; mx, sum and acc (HSP lanes) are updated as above.
static void att_softmax_row(float *sc, int m, int mp, float *mx, float *sum, float *acc, int HSP) {
    for (int j = m; j < mp; j++) sc[j] = -INFINITY;
    attv vm = attv_set(-INFINITY);
    for (int j = 0; j < mp; j += ATT_W) vm = attv_max(vm, attv_load(sc + j));
    float cmx = -INFINITY, lanes[ATT_W] __attribute__((aligned(64)));
    attv_store(lanes, vm);
    for (int l = 0; l < ATT_W; l++) cmx = lanes[l] > cmx ? lanes[l] : cmx;
    if (cmx > *mx) {  // rescale what was accumulated under the old maximum
        float rs = att_exp1(*mx - cmx);
        *sum *= rs;
        attv vrs = attv_set(rs);
        for (int c = 0; c < HSP; c += ATT_W) attv_store(acc + c, attv_mul(attv_load(acc + c), vrs));
        *mx = cmx;
    }
    attv vmx = attv_set(*mx);
    for (int j = 0; j < mp; j += ATT_W) attv_store(sc + j, att_exp(attv_sub(attv_load(sc + j), vmx)));
    *sum += att_sum16(sc, mp);
}

// One item: rows ρ = r·G + g (token r of the tile, head g) with queries at q + r·qs + g·HS and
// outputs at the same place in out; token r attends to the first n[r] cache positions of kb
// and vb ((n_ctx, HS) fp16 each).
static void att_tile(float *out, const float *q, size_t qs, const uint16_t *kb, const uint16_t *vb, const int *n,
                     int nq, int G, int HS, float scale) {
    enum { ALIGN = 64 };
    float qt[ATT_TILE_FLOATS] __attribute__((aligned(ALIGN)));   // (HS, R) queries, transposed
    float acc[ATT_TILE_FLOATS] __attribute__((aligned(ALIGN)));  // (R, HSP) weighted sums of values
    float kt[ATT_TILE_FLOATS] __attribute__((aligned(ALIGN)));   // (HS, ATT_KB) a block's keys
    float vf[ATT_TILE_FLOATS] __attribute__((aligned(ALIGN)));   // (ATT_KB, HSP) a block's values
    float sc[ATT_ROWS][ATT_CHUNK] __attribute__((aligned(ALIGN)));  // (R, chunk) scores, then weights
    float mx[ATT_ROWS], sum[ATT_ROWS];
    int len[ATT_ROWS];  // (R) each row's positions in this chunk
    int R = nq * G, HSP = (HS + ATT_PV_COLS - 1) / ATT_PV_COLS * ATT_PV_COLS, nmax = 0;
    int direct = R <= ATT_PV_RB && HSP == HS;  // one row block: values read from the cache as they are used
    for (int r = 0; r < nq; r++) nmax = n[r] > nmax ? n[r] : nmax;
    for (int p = 0; p < R; p++) {
        const float *qp = q + (size_t)(p / G) * qs + (size_t)(p % G) * HS;
        for (int i = 0; i < HS; i++) qt[(size_t)i * R + p] = qp[i];
        mx[p] = -INFINITY, sum[p] = 0;
    }
    memset(acc, 0, sizeof(float) * (size_t)R * HSP);
    attv vscale = attv_set(scale);
    for (int p0 = 0; p0 < nmax; p0 += ATT_CHUNK) {
        int mmax = nmax - p0 < ATT_CHUNK ? nmax - p0 : ATT_CHUNK, mp = (mmax + 15) & ~15;
        for (int p = 0; p < R; p++) {
            int m = n[p / G] - p0;
            len[p] = m < 0 ? 0 : m > ATT_CHUNK ? ATT_CHUNK : m;
        }
        // Scores, a block of ATT_KB keys at a time (row blocks whose rows all end before it skip it).
        for (int jb = 0; jb < mmax; jb += ATT_KB) {
            int kn = mmax - jb < ATT_KB ? mmax - jb : ATT_KB, next = nmax - (p0 + jb + kn);
            size_t row = (size_t)HS * sizeof(uint16_t);
            att_ahead f = {{(const char *)(kb + (size_t)(p0 + jb + kn) * HS), (const char *)(vb + (size_t)(p0 + jb) * HS)},
                           {(size_t)(next < ATT_KB ? next : ATT_KB) * row, (size_t)kn * row}};
            att_keys_load(kt, kb + (size_t)(p0 + jb) * HS, kn, HS, &f);
            for (int p = 0; p < R; p += ATT_SC_RB) {
                int nr = R - p < ATT_SC_RB ? R - p : ATT_SC_RB, live = 0;
                for (int u = 0; u < nr; u++) live |= len[p + u] > jb;
                if (!live) continue;
                for (int j = 0; j < ATT_KB; j += ATT_SC_NU * ATT_W)
                    att_scores_block(&sc[p][jb + j], qt + p, R, kt + j, HS, vscale, nr);
            }
        }
        for (int p = 0; p < R; p++) {
            if (len[p] == 0)  // this row ended before the chunk: weights 0
                memset(sc[p], 0, sizeof(float) * (size_t)mp);
            else att_softmax_row(sc[p], len[p], mp, &mx[p], &sum[p], acc + (size_t)p * HSP, HSP);
        }
        // acc += w · v, a block of ATT_KB values at a time.
        for (int jb = 0; jb < mmax; jb += ATT_KB) {
            int kn = mmax - jb < ATT_KB ? mmax - jb : ATT_KB;
            const uint16_t *vh = vb + (size_t)(p0 + jb) * HS;
            if (!direct) att_values_load(vf, vh, kn, HS, HSP);
            for (int p = 0; p < R; p += ATT_PV_RB) {
                int nr = R - p < ATT_PV_RB ? R - p : ATT_PV_RB, live = 0;
                for (int u = 0; u < nr; u++) live |= len[p + u] > jb;
                if (!live) continue;
                for (int c = 0; c < HSP; c += ATT_PV_COLS)
                    att_values_block(acc + (size_t)p * HSP + c, HSP, &sc[p][jb], direct ? NULL : vf + c, vh + c,
                                     direct ? HS : HSP, kn, nr);
            }
        }
    }
    for (int p = 0; p < R; p++) {
        float *o = out + (size_t)(p / G) * qs + (size_t)(p % G) * HS;
        for (int i = 0; i < HS; i++) o[i] = acc[(size_t)p * HSP + i] / sum[p];
    }
}
#endif

#ifndef ATT_W
void ops_cpu_exp(float *y, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] = x[i] >= -86.0f ? expf(x[i]) : 0;
}
#endif

static void attend_group(float *out, const float *q, const uint16_t *kb, const uint16_t *vb, int n, int G, int HS,
                         float scale) {
    float acc[ATT_MAXG][512];  // HS ≤ 512 (checked by model_config_validate)
    float sc[ATT_MAXG][ATT_CHUNK];
    float mx[ATT_MAXG], sum[ATT_MAXG];
    float kv32[512];  // one key or value row, converted from fp16
    for (int g = 0; g < G; g++) {
        mx[g] = -INFINITY, sum[g] = 0;
        for (int i = 0; i < HS; i++) acc[g][i] = 0;
    }
    for (int p0 = 0; p0 < n; p0 += ATT_CHUNK) {
        int m = n - p0 < ATT_CHUNK ? n - p0 : ATT_CHUNK;
        float cmx[ATT_MAXG];
        for (int g = 0; g < G; g++) cmx[g] = -INFINITY;
        for (int j = 0; j < m; j++) {
            const float *kp = kv32;
            dequantize_row(QTYPE_F16, kb + (size_t)(p0 + j) * HS, kv32, HS);
            for (int g = 0; g < G; g++) {
                const float *qh = q + (size_t)g * HS;
                float d = 0;
#pragma omp simd reduction(+ : d)
                for (int i = 0; i < HS; i++) d += qh[i] * kp[i];
                sc[g][j] = d * scale;
                if (sc[g][j] > cmx[g]) cmx[g] = sc[g][j];
            }
        }
        for (int g = 0; g < G; g++) {
            if (cmx[g] > mx[g]) {  // rescale what was accumulated under the old maximum
                float r = expf(mx[g] - cmx[g]);
                sum[g] *= r;
#pragma omp simd
                for (int i = 0; i < HS; i++) acc[g][i] *= r;
                mx[g] = cmx[g];
            }
            for (int j = 0; j < m; j++) sc[g][j] = expf(sc[g][j] - mx[g]);
        }
        for (int j = 0; j < m; j++) {
            const float *vp = kv32;
            dequantize_row(QTYPE_F16, vb + (size_t)(p0 + j) * HS, kv32, HS);
            for (int g = 0; g < G; g++) {
                float w = sc[g][j], *a = acc[g];
                sum[g] += w;
#pragma omp simd
                for (int i = 0; i < HS; i++) a[i] += w * vp[i];
            }
        }
    }
    for (int g = 0; g < G; g++)
        for (int i = 0; i < HS; i++) out[(size_t)g * HS + i] = acc[g][i] / sum[g];
}
static void cpu_attention(float *out, const float *q, const kv_cache *kv, int layer, const int32_t *seq,
                          const int32_t *pos, int T, int NH, int NKV, int HS) {
    int group = NH / NKV, G = group < ATT_MAXG ? group : ATT_MAXG, nsub = (group + G - 1) / G;
    float scale = 1.0f / sqrtf((float)HS);
#ifdef ATT_W
    if (HS % 8 == 0 && HS <= ATT_HS_MAX) {
        // Tiles of up to qt consecutive tokens of one sequence; items are (tile, KV head, head
        // subgroup), taken dynamically since causal tiles differ in length.
        int hsp = (HS + ATT_PV_COLS - 1) / ATT_PV_COLS * ATT_PV_COLS;
        int qt = ATT_TILE_FLOATS / (G * hsp) < ATT_ROWS / G ? ATT_TILE_FLOATS / (G * hsp) : ATT_ROWS / G;
        qt = qt < 1 ? 1 : qt;
        int ntile = 0, start[T > 0 ? T : 1];
        for (int t = 0; t < T; t++)
            if (t == 0 || seq[t] != seq[t - 1] || t - start[ntile - 1] == qt) start[ntile++] = t;
#pragma omp parallel for schedule(dynamic, 1) if (T * NKV * nsub > 1)
        for (int it = 0; it < ntile * NKV * nsub; it++) {
            int tile = it / (NKV * nsub), kvh = it / nsub % NKV, h0 = kvh * group + it % nsub * G;
            int g = kvh * group + group - h0 < G ? kvh * group + group - h0 : G;
            int t0 = start[tile], nq = (tile + 1 < ntile ? start[tile + 1] : T) - t0, n[ATT_ROWS];
            for (int r = 0; r < nq; r++) n[r] = pos[t0 + r] + 1;
            size_t base = kv_offset(kv, layer, seq[t0], kvh, 0);
            att_tile(out + ((size_t)t0 * NH + h0) * HS, q + ((size_t)t0 * NH + h0) * HS, (size_t)NH * HS,
                     kv->k + base, kv->v + base, n, nq, g, HS, scale);
        }
        return;
    }
#endif
    // Items interleave over the threads (static, 1) so that rows of different lengths balance.
#pragma omp parallel for schedule(static, 1) if (T * NKV * nsub > 1)
    for (int it = 0; it < T * NKV * nsub; it++) {
        int t = it / (NKV * nsub), kvh = it / nsub % NKV, h0 = kvh * group + it % nsub * G;
        int g = kvh * group + group - h0 < G ? kvh * group + group - h0 : G;
        size_t base = kv_offset(kv, layer, seq[t], kvh, 0);
        attend_group(out + ((size_t)t * NH + h0) * HS, q + ((size_t)t * NH + h0) * HS, kv->k + base, kv->v + base,
                     pos[t] + 1, g, HS, scale);
    }
}

static void cpu_embed(float *out, const model_tensor *table, const int32_t *ids, int T) {
    for (int t = 0; t < T; t++)
        dequantize_row(table->type, (const uint8_t *)table->data + (size_t)ids[t] * table->row_bytes,
                       out + (int64_t)t * table->n_cols, table->n_cols);
}

const ops ops_cpu = {
    .name = "cpu",
    OPS_HOST_MEMORY,
    .matmul = cpu_matmul,
    .matmul_n = cpu_matmul_n,
    .rmsnorm = cpu_rmsnorm,
    .rope = cpu_rope,
    .swiglu = cpu_swiglu,
    .add = cpu_add,
    .attention = cpu_attention,
    .embed = cpu_embed,
};
