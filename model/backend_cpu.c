// backend_cpu.c: the fast CPU backend. Matmuls go to matmul_cpu.c (quantized weights stay
// quantized: AVX2 integer dots against 8-bit activations) or to OpenBLAS for F32 weights;
// attention is a one-pass online softmax over the KV cache, threaded with OpenMP over
// (token, KV head) with the query heads of a GQA group together (each head's arithmetic as
// alone, so results do not depend on how requests are batched); the elementwise ops are
// threaded over tokens.
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

#define ATT_CHUNK 128

#define ATT_MAXG 16  // query heads per KV head handled together (GQA group); larger groups split

// Online softmax over chunks of cache positions: no score buffer proportional to n_ctx.
// One (token, KV head) item: the G query heads that share the KV head walk its keys and values
// once (read from memory once, not G times: decode over long contexts is bound by these
// reads), each with its own online softmax, chunk by chunk.
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define ATT_AVX2 1
#include <immintrin.h>

// 8 fp16 cache values as floats.
static inline __m256 ld8h(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p)); }

// glibc's libmvec: expf on 8 lanes (the x86-64 vector ABI name GCC itself calls when it
// vectorizes expf; at most 4 ulp from the correctly rounded result).
__m256 _ZGVdN8v_expf(__m256 x);

// The 8 sums of the lanes of a[0..7], as one vector (lane j: the sum of a[j]'s lanes).
static inline __m256 hsum8x8(const __m256 a[8]) {
    __m256 s01 = _mm256_hadd_ps(a[0], a[1]), s23 = _mm256_hadd_ps(a[2], a[3]);
    __m256 s45 = _mm256_hadd_ps(a[4], a[5]), s67 = _mm256_hadd_ps(a[6], a[7]);
    __m256 s0123 = _mm256_hadd_ps(s01, s23), s4567 = _mm256_hadd_ps(s45, s67);
    // s0123 lanes: low half (0,1,2,3 of the low 128 bits), high half (0,1,2,3 of the high ones)
    __m256 lo = _mm256_permute2f128_ps(s0123, s4567, 0x20), hi = _mm256_permute2f128_ps(s0123, s4567, 0x31);
    return _mm256_add_ps(lo, hi);
}

static inline float hsum8(__m256 v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

#define ATT_GN 3  // query heads that share one fp16 → fp32 conversion of a key or value row

// Ahead of the scores of keys j..j+7: the keys 16 further on and these keys' values (the
// value pass over the sub-block comes next), the cache lines of m rows at most.
static inline void att_prefetch(const uint16_t *kc, const uint16_t *vc, int j, int m, int HS) {
    for (int u = 0; u < 8 * HS; u += 32) {
        if (j + 16 < m) _mm_prefetch((const char *)(kc + (size_t)(j + 16) * HS + u), _MM_HINT_T0);
        _mm_prefetch((const char *)(vc + (size_t)j * HS + u), _MM_HINT_T0);
    }
}

// Scores of the 8 keys j..j+7 of kc (rows of HS) for GN heads (queries at qh, HS apart) into
// sc (rows of ATT_CHUNK, one per head): each key converted once for the GN heads, four keys
// at a time (GN·4 accumulators and 4 keys fit AVX2's 16 registers). Per head and key: the
// same fused multiply-adds in the same order, and the same hsum8x8, as the head alone.
static inline __attribute__((always_inline)) void att_scores8(float *sc, const float *qh, const uint16_t *kc, int j,
                                                              int HS, __m256 vscale, int GN) {
    __m256 d[ATT_GN][8];
    for (int h = 0; h < 8; h += 4) {
        __m256 a[ATT_GN][4];
        for (int g = 0; g < GN; g++)
            for (int u = 0; u < 4; u++) a[g][u] = _mm256_setzero_ps();
        for (int i = 0; i < HS / 8; i++) {
            __m256 k[4];
            for (int u = 0; u < 4; u++) k[u] = ld8h(kc + (size_t)(j + h + u) * HS + 8 * i);
            for (int g = 0; g < GN; g++) {
                __m256 qv = _mm256_loadu_ps(qh + (size_t)g * HS + 8 * i);
                for (int u = 0; u < 4; u++) a[g][u] = _mm256_fmadd_ps(qv, k[u], a[g][u]);
            }
        }
        for (int g = 0; g < GN; g++)
            for (int u = 0; u < 4; u++) d[g][h + u] = a[g][u];
    }
    for (int g = 0; g < GN; g++) _mm256_store_ps(&sc[(size_t)g * ATT_CHUNK + j], _mm256_mul_ps(hsum8x8(d[g]), vscale));
}

// ac[g] lanes 8·i0 .. 8·i0+31 += sum over j in [j0, j1) of sc[g][j] · v_j, for GN heads
// (accumulators HS apart, weights ATT_CHUNK apart): each value row converted once.
static inline __attribute__((always_inline)) void att_values32(float *ac, const float *sc, const uint16_t *vc, int j0,
                                                               int j1, int i0, int HS, int GN) {
    __m256 a[ATT_GN][4];
    for (int g = 0; g < GN; g++)
        for (int k = 0; k < 4; k++) a[g][k] = _mm256_load_ps(ac + (size_t)g * HS + 8 * (i0 + k));
    for (int j = j0; j < j1; j++) {
        __m256 v[4];
        for (int k = 0; k < 4; k++) v[k] = ld8h(vc + (size_t)j * HS + 8 * (i0 + k));
        for (int g = 0; g < GN; g++) {
            __m256 w = _mm256_broadcast_ss(&sc[(size_t)g * ATT_CHUNK + j]);
            for (int k = 0; k < 4; k++) a[g][k] = _mm256_fmadd_ps(w, v[k], a[g][k]);
        }
    }
    for (int g = 0; g < GN; g++)
        for (int k = 0; k < 4; k++) _mm256_store_ps(ac + (size_t)g * HS + 8 * (i0 + k), a[g][k]);
}

// The vector form of attend_group below (HS a multiple of 8) for a tile of nq queries of one
// sequence (query r: G heads at q + r*qs, attending to its first n[r] positions): the same
// online softmax per query, with scores for 8 keys at a time, expf on 8 lanes and the value
// sums in registers. The tile walks the cache chunk by chunk, and within a chunk 32 keys at
// a time, which every query and head of the tile takes while they are in L1 (a long prompt's
// keys are far larger than L2). Each query's arithmetic is exactly that of the query alone
// (the same operations on each value in the same order; only the interleaving differs), so
// results never depend on how queries are tiled or batched.
#define ATT_SUB 32            // keys taken by the whole tile at a time (a multiple of 8)
#define ATT_TILE_FLOATS 8192  // accumulators of a tile: nq * G * HS floats at most
#define ATT_TILE_ROWS 32      // nq * G at most when nq > 1 (score rows of ATT_CHUNK floats)
static void attend_tile_avx2(float *out, const float *q, size_t qs, const uint16_t *kb, const uint16_t *vb, const int *n,
                             int nq, int G, int HS, float scale) {
    enum { NR = ATT_TILE_ROWS > ATT_MAXG ? ATT_TILE_ROWS : ATT_MAXG };
    float acc[ATT_TILE_FLOATS] __attribute__((aligned(32)));  // (nq, G, HS)
    float sc[NR][ATT_CHUNK] __attribute__((aligned(32)));     // (nq * G, chunk) this chunk's weights
    float mx[NR], sum[NR];                                     // (nq * G)
    int nv = HS / 8, nmax = 0;
    for (int r = 0; r < nq; r++) nmax = n[r] > nmax ? n[r] : nmax;
    for (int k = 0; k < nq * G; k++) mx[k] = -INFINITY, sum[k] = 0;
    memset(acc, 0, sizeof(float) * (size_t)(nq * G * HS));
    __m256 vscale = _mm256_set1_ps(scale);
    for (int p0 = 0; p0 < nmax; p0 += ATT_CHUNK) {
        const uint16_t *kc = kb + (size_t)p0 * HS, *vc = vb + (size_t)p0 * HS;
        int mmax = nmax - p0 < ATT_CHUNK ? nmax - p0 : ATT_CHUNK;
        // Scores: keys j of the chunk, 8 at a time (a key past the last block of 8 alone),
        // each block's keys converted from fp16 once for up to ATT_GN heads.
        for (int jb = 0; jb < mmax; jb += ATT_SUB) {
            for (int r = 0; r < nq; r++) {
                int m = n[r] - p0 < ATT_CHUNK ? n[r] - p0 : ATT_CHUNK, je = jb + ATT_SUB < m ? jb + ATT_SUB : m;
                for (int g0 = 0; g0 < G; g0 += ATT_GN) {
                    const float *qh = q + r * qs + (size_t)g0 * HS;
                    float *sc0 = sc[r * G + g0];
                    int gn = G - g0 < ATT_GN ? G - g0 : ATT_GN, j = jb;
                    for (; j + 8 <= je; j += 8) {
                        if (r == 0 && g0 == 0) att_prefetch(kc, vc, j, m, HS);
                        if (gn == 3) att_scores8(sc0, qh, kc, j, HS, vscale, 3);
                        else if (gn == 2) att_scores8(sc0, qh, kc, j, HS, vscale, 2);
                        else att_scores8(sc0, qh, kc, j, HS, vscale, 1);
                    }
                    for (; j < je; j++)
                        for (int g = 0; g < gn; g++) {
                            __m256 d = _mm256_setzero_ps();
                            for (int i = 0; i < nv; i++)
                                d = _mm256_fmadd_ps(_mm256_loadu_ps(qh + (size_t)g * HS + 8 * i),
                                                    ld8h(kc + (size_t)j * HS + 8 * i), d);
                            sc0[(size_t)g * ATT_CHUNK + j] = hsum8(d) * scale;
                        }
                }
            }
        }
        // Softmax: each row's chunk maximum, the rescale of what came before, the weights.
        for (int r = 0; r < nq; r++) {
            if (n[r] <= p0) continue;
            int m = n[r] - p0 < ATT_CHUNK ? n[r] - p0 : ATT_CHUNK, m8 = (m + 7) & ~7;
            for (int g = 0; g < G; g++) {
                float *scg = sc[r * G + g], *ac = acc + (size_t)(r * G + g) * HS, *mxg = &mx[r * G + g];
                for (int j = m; j < m8; j++) scg[j] = -INFINITY;  // lanes past the last key weigh 0
                __m256 vm = _mm256_set1_ps(-INFINITY);
                for (int j = 0; j < m8; j += 8) vm = _mm256_max_ps(vm, _mm256_load_ps(&scg[j]));
                __m128 h = _mm_max_ps(_mm256_castps256_ps128(vm), _mm256_extractf128_ps(vm, 1));
                h = _mm_max_ps(h, _mm_movehl_ps(h, h));
                float cmx = _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
                if (cmx > *mxg) {  // rescale what was accumulated under the old maximum
                    float rs = expf(*mxg - cmx);
                    sum[r * G + g] *= rs;
                    for (int i = 0; i < HS; i++) ac[i] *= rs;
                    *mxg = cmx;
                }
                __m256 vmx = _mm256_set1_ps(*mxg), vs = _mm256_setzero_ps();
                for (int j = 0; j < m8; j += 8) {
                    __m256 w = _ZGVdN8v_expf(_mm256_sub_ps(_mm256_load_ps(&scg[j]), vmx));
                    _mm256_store_ps(&scg[j], w);
                    vs = _mm256_add_ps(vs, w);
                }
                sum[r * G + g] += hsum8(vs);
            }
        }
        // ac += sum_j w_j v_j, 32 lanes of ac at a time in registers for up to ATT_GN heads,
        // each value row converted from fp16 once for them, then 8 lanes at a time (each lane
        // sums over j in order either way).
        for (int jb = 0; jb < mmax; jb += ATT_SUB) {
            for (int r = 0; r < nq; r++) {
                int m = n[r] - p0 < ATT_CHUNK ? n[r] - p0 : ATT_CHUNK, je = jb + ATT_SUB < m ? jb + ATT_SUB : m;
                for (int g0 = 0; g0 < G; g0 += ATT_GN) {
                    const float *sc0 = sc[r * G + g0];
                    float *ac0 = acc + (size_t)(r * G + g0) * HS;
                    int gn = G - g0 < ATT_GN ? G - g0 : ATT_GN, i0 = 0;
                    for (; i0 + 4 <= nv; i0 += 4) {
                        if (gn == 3) att_values32(ac0, sc0, vc, jb, je, i0, HS, 3);
                        else if (gn == 2) att_values32(ac0, sc0, vc, jb, je, i0, HS, 2);
                        else att_values32(ac0, sc0, vc, jb, je, i0, HS, 1);
                    }
                    for (; i0 < nv; i0++)
                        for (int g = 0; g < gn; g++) {
                            float *ac = ac0 + (size_t)g * HS;
                            __m256 a = _mm256_load_ps(ac + 8 * i0);
                            for (int j = jb; j < je; j++)
                                a = _mm256_fmadd_ps(_mm256_broadcast_ss(&sc0[(size_t)g * ATT_CHUNK + j]),
                                                    ld8h(vc + (size_t)j * HS + 8 * i0), a);
                            _mm256_store_ps(ac + 8 * i0, a);
                        }
                }
            }
        }
    }
    for (int r = 0; r < nq; r++)
        for (int g = 0; g < G; g++)
            for (int i = 0; i < HS; i++)
                out[r * qs + (size_t)g * HS + i] = acc[(size_t)(r * G + g) * HS + i] / sum[r * G + g];
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
#ifdef ATT_AVX2
    if (HS % 8 == 0) {
        // Tiles of up to QT consecutive tokens of one sequence; items are (tile, KV head, head
        // subgroup), taken dynamically since causal tiles differ in length.
        enum { QT = 8 };
        int qt = ATT_TILE_FLOATS / (G * HS) < ATT_TILE_ROWS / G ? ATT_TILE_FLOATS / (G * HS) : ATT_TILE_ROWS / G;
        qt = qt < 1 ? 1 : qt > QT ? QT : qt;
        int ntile = 0, start[T > 0 ? T : 1];
        for (int t = 0; t < T; t++)
            if (t == 0 || seq[t] != seq[t - 1] || t - start[ntile - 1] == qt) start[ntile++] = t;
#pragma omp parallel for schedule(dynamic, 1) if (T * NKV * nsub > 1)
        for (int it = 0; it < ntile * NKV * nsub; it++) {
            int tile = it / (NKV * nsub), kvh = it / nsub % NKV, h0 = kvh * group + it % nsub * G;
            int g = kvh * group + group - h0 < G ? kvh * group + group - h0 : G;
            int t0 = start[tile], nq = (tile + 1 < ntile ? start[tile + 1] : T) - t0, n[QT];
            for (int r = 0; r < nq; r++) n[r] = pos[t0 + r] + 1;
            size_t base = kv_offset(kv, layer, seq[t0], kvh, 0);
            attend_tile_avx2(out + ((size_t)t0 * NH + h0) * HS, q + ((size_t)t0 * NH + h0) * HS, (size_t)NH * HS,
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
