// quant.c: ggml tensor types: fp16/bf16 conversions, type tables, the plain-C reference
// dequantizers (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K), the reference
// quantizers (F32, F16, BF16, Q8_0, Q4_0, Q4_1) used by tests and model writers, and the
// at-load conversions of the types no kernel reads into ones they do (quant_convert_row).
// Everything here is scalar and portable (but F16 rows, converted 8 at a time with F16C where
// built with it: the KV cache is F16); fast kernels live in matmul_cpu.c.
#include "model/quant.h"

#ifdef __F16C__
#include <immintrin.h>
#endif
#include <float.h>
#include <math.h>
#include <string.h>

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

float fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13));  // inf, nan (payload kept)
    if (exp != 0) return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
    if (man == 0) return bits_f32(sign);  // ±0
    // Subnormal: man · 2^-24. Shift the leading one up to bit 10 and adjust the exponent.
    uint32_t e = 113;
    while (!(man & 0x400u)) {
        man <<= 1;
        e--;
    }
    return bits_f32(sign | (e << 23) | ((man & 0x3ffu) << 13));
}

uint16_t fp32_to_fp16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((x >> 13) & 0x3ffu));  // nan, kept quiet
    if (x >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // ≥ 65520 rounds to inf (ties to even)
    if (x < 0x38800000u) {
        // Below the smallest normal half (2^-14): adding 0.5 puts the value's 2^-24 multiples in
        // the low mantissa bits, rounded to nearest even by the FPU.
        float a = bits_f32(x) + 0.5f;
        return (uint16_t)(sign | (uint16_t)(f32_bits(a) - 0x3f000000u));
    }
    // Normal: rebias the exponent, round the 13 dropped bits to nearest even (a carry into the
    // exponent is the right answer, up to inf).
    uint32_t odd = (x >> 13) & 1u;
    x += 0xc8000000u + 0xfffu + odd;  // (15 - 127) << 23, plus the rounding bias
    return (uint16_t)(sign | (uint16_t)(x >> 13));
}

float bf16_to_fp32(uint16_t h) {
    return bits_f32((uint32_t)h << 16);
}

uint16_t fp32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);  // nan, kept quiet
    x += 0x7fffu + ((x >> 16) & 1u);  // round to nearest even (overflow goes to inf)
    return (uint16_t)(x >> 16);
}

// ---------------------------------------------------------------------------------------------
// Type tables.

int qtype_supported(uint32_t type) {
    switch (type) {
    case QTYPE_F32: case QTYPE_F16: case QTYPE_BF16: case QTYPE_Q8_0: case QTYPE_Q4_0:
    case QTYPE_Q4_1: case QTYPE_Q5_0: case QTYPE_Q5_1: case QTYPE_Q4_K: case QTYPE_Q5_K:
    case QTYPE_Q6_K: return 1;
    default: return 0;
    }
}

int qtype_can_quantize(uint32_t type) {
    switch (type) {
    case QTYPE_F32: case QTYPE_F16: case QTYPE_BF16: case QTYPE_Q8_0: case QTYPE_Q4_0:
    case QTYPE_Q4_1: return 1;
    default: return 0;
    }
}

const char *qtype_name(uint32_t type) {
    switch (type) {
    case QTYPE_F32: return "F32";
    case QTYPE_F16: return "F16";
    case QTYPE_Q4_0: return "Q4_0";
    case QTYPE_Q4_1: return "Q4_1";
    case QTYPE_Q5_0: return "Q5_0";
    case QTYPE_Q5_1: return "Q5_1";
    case QTYPE_Q8_0: return "Q8_0";
    case QTYPE_Q8_1: return "Q8_1";
    case QTYPE_Q2_K: return "Q2_K";
    case QTYPE_Q3_K: return "Q3_K";
    case QTYPE_Q4_K: return "Q4_K";
    case QTYPE_Q5_K: return "Q5_K";
    case QTYPE_Q6_K: return "Q6_K";
    case QTYPE_Q8_K: return "Q8_K";
    case QTYPE_BF16: return "BF16";
    default: return "unknown";
    }
}

int qtype_block_size(uint32_t type) {
    switch (type) {
    case QTYPE_F32: case QTYPE_F16: case QTYPE_BF16: return 1;
    case QTYPE_Q8_0: case QTYPE_Q4_0: case QTYPE_Q4_1: case QTYPE_Q5_0: case QTYPE_Q5_1: return 32;
    case QTYPE_Q4_K: case QTYPE_Q5_K: case QTYPE_Q6_K: return QK_K;
    default: return 0;
    }
}

size_t qtype_block_bytes(uint32_t type) {
    switch (type) {
    case QTYPE_F32: return 4;
    case QTYPE_F16: case QTYPE_BF16: return 2;
    case QTYPE_Q8_0: return sizeof(block_q8_0);
    case QTYPE_Q4_0: return sizeof(block_q4_0);
    case QTYPE_Q4_1: return sizeof(block_q4_1);
    case QTYPE_Q5_0: return sizeof(block_q5_0);
    case QTYPE_Q5_1: return sizeof(block_q5_1);
    case QTYPE_Q4_K: return sizeof(block_q4_k);
    case QTYPE_Q5_K: return sizeof(block_q5_k);
    case QTYPE_Q6_K: return sizeof(block_q6_k);
    default: return 0;
    }
}

size_t qtype_row_bytes(uint32_t type, int64_t n) {
    int bs = qtype_block_size(type);
    if (bs == 0 || n < 0 || n % bs != 0) return 0;
    return (size_t)(n / bs) * qtype_block_bytes(type);
}

// The layouts above must match the file format byte for byte.
_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0");
_Static_assert(sizeof(block_q4_1) == 20, "block_q4_1");
_Static_assert(sizeof(block_q5_0) == 22, "block_q5_0");
_Static_assert(sizeof(block_q5_1) == 24, "block_q5_1");
_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0");
_Static_assert(sizeof(block_q4_k) == 144, "block_q4_k");
_Static_assert(sizeof(block_q5_k) == 176, "block_q5_k");
_Static_assert(sizeof(block_q6_k) == 210, "block_q6_k");

// ---------------------------------------------------------------------------------------------
// Dequantization. Blocks are read with memcpy: rows inside a mapped file need not be aligned.

static void dq_q8_0(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(block_q8_0), y += 32) {
        block_q8_0 b;
        memcpy(&b, src, sizeof(b));
        float d = fp16_to_fp32(b.d);
        for (int j = 0; j < 32; j++) y[j] = d * (float)b.qs[j];
    }
}

static void dq_q4_0(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(block_q4_0), y += 32) {
        block_q4_0 b;
        memcpy(&b, src, sizeof(b));
        float d = fp16_to_fp32(b.d);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)((b.qs[j] & 0xf) - 8);
            y[j + 16] = d * (float)((b.qs[j] >> 4) - 8);
        }
    }
}

static void dq_q4_1(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(block_q4_1), y += 32) {
        block_q4_1 b;
        memcpy(&b, src, sizeof(b));
        float d = fp16_to_fp32(b.d), m = fp16_to_fp32(b.m);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)(b.qs[j] & 0xf) + m;
            y[j + 16] = d * (float)(b.qs[j] >> 4) + m;
        }
    }
}

// The 5-bit values of a Q5_0 / Q5_1 block, unsigned (0..31), in element order.
static void q5_values(const uint8_t qh4[4], const uint8_t qs[16], int q[32]) {
    uint32_t qh = (uint32_t)qh4[0] | (uint32_t)qh4[1] << 8 | (uint32_t)qh4[2] << 16 | (uint32_t)qh4[3] << 24;
    for (int j = 0; j < 16; j++) {
        q[j] = (qs[j] & 0xf) | (int)((qh >> j) & 1u) << 4;
        q[j + 16] = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1u) << 4;
    }
}

static void dq_q5_0(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(block_q5_0), y += 32) {
        block_q5_0 b;
        memcpy(&b, src, sizeof(b));
        float d = fp16_to_fp32(b.d);
        int q[32];
        q5_values(b.qh, b.qs, q);
        for (int j = 0; j < 32; j++) y[j] = d * (float)(q[j] - 16);
    }
}

static void dq_q5_1(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(block_q5_1), y += 32) {
        block_q5_1 b;
        memcpy(&b, src, sizeof(b));
        float d = fp16_to_fp32(b.d), m = fp16_to_fp32(b.m);
        int q[32];
        q5_values(b.qh, b.qs, q);
        for (int j = 0; j < 32; j++) y[j] = d * (float)q[j] + m;
    }
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block.
static void k_scale_min(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

static void dq_q4_k(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(block_q4_k), y += QK_K) {
        block_q4_k b;
        memcpy(&b, src, sizeof(b));
        float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
        for (int c = 0; c < 4; c++) {
            int sc0, m0, sc1, m1;
            k_scale_min(b.scales, 2 * c, &sc0, &m0);
            k_scale_min(b.scales, 2 * c + 1, &sc1, &m1);
            float d0 = d * (float)sc0, mm0 = dmin * (float)m0, d1 = d * (float)sc1, mm1 = dmin * (float)m1;
            const uint8_t *q = b.qs + 32 * c;
            for (int l = 0; l < 32; l++) {
                y[64 * c + l] = d0 * (float)(q[l] & 0xf) - mm0;
                y[64 * c + 32 + l] = d1 * (float)(q[l] >> 4) - mm1;
            }
        }
    }
}

static void dq_q5_k(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(block_q5_k), y += QK_K) {
        block_q5_k b;
        memcpy(&b, src, sizeof(b));
        float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
        for (int c = 0; c < 4; c++) {
            int sc0, m0, sc1, m1;
            k_scale_min(b.scales, 2 * c, &sc0, &m0);
            k_scale_min(b.scales, 2 * c + 1, &sc1, &m1);
            float d0 = d * (float)sc0, mm0 = dmin * (float)m0, d1 = d * (float)sc1, mm1 = dmin * (float)m1;
            const uint8_t *q = b.qs + 32 * c;
            uint8_t u1 = (uint8_t)(1u << (2 * c)), u2 = (uint8_t)(2u << (2 * c));
            for (int l = 0; l < 32; l++) {
                int lo = (q[l] & 0xf) + ((b.qh[l] & u1) ? 16 : 0);
                int hi = (q[l] >> 4) + ((b.qh[l] & u2) ? 16 : 0);
                y[64 * c + l] = d0 * (float)lo - mm0;
                y[64 * c + 32 + l] = d1 * (float)hi - mm1;
            }
        }
    }
}

static void dq_q6_k(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(block_q6_k), y += QK_K) {
        block_q6_k b;
        memcpy(&b, src, sizeof(b));
        float d = fp16_to_fp32(b.d);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b.ql + 64 * h, *qh = b.qh + 32 * h;
            const int8_t *sc = b.scales + 8 * h;
            float *yy = y + 128 * h;
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                yy[l] = d * (float)sc[is] * (float)q1;
                yy[l + 32] = d * (float)sc[is + 2] * (float)q2;
                yy[l + 64] = d * (float)sc[is + 4] * (float)q3;
                yy[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

void dequantize_row(uint32_t type, const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    int bs = qtype_block_size(type);
    if (bs == 0 || n <= 0 || n % bs != 0) return;
    switch (type) {
    case QTYPE_F32: memcpy(dst, src, sizeof(float) * (size_t)n); break;
    case QTYPE_F16: {
        int64_t i = 0;
#ifdef __F16C__  // 8 at a time (the KV cache's reads in the scalar attention): the same values
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(s + 2 * i))));
#endif
        for (; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = fp16_to_fp32(h);
        }
        break;
    }
    case QTYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = bf16_to_fp32(h);
        }
        break;
    case QTYPE_Q8_0: dq_q8_0(s, dst, n / 32); break;
    case QTYPE_Q4_0: dq_q4_0(s, dst, n / 32); break;
    case QTYPE_Q4_1: dq_q4_1(s, dst, n / 32); break;
    case QTYPE_Q5_0: dq_q5_0(s, dst, n / 32); break;
    case QTYPE_Q5_1: dq_q5_1(s, dst, n / 32); break;
    case QTYPE_Q4_K: dq_q4_k(s, dst, n / QK_K); break;
    case QTYPE_Q5_K: dq_q5_k(s, dst, n / QK_K); break;
    case QTYPE_Q6_K: dq_q6_k(s, dst, n / QK_K); break;
    default: break;
    }
}

// ---------------------------------------------------------------------------------------------
// Reference quantizers (ggml's rounding rules, stated as facts: Q8_0 rounds half away from zero;
// Q4_0 / Q4_1 truncate value + 0.5 after the offset, clamped to 15).

static void q_q8_0(const float *x, uint8_t *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32, dst += sizeof(block_q8_0)) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        block_q8_0 b;
        b.d = fp32_to_fp16(d);
        for (int j = 0; j < 32; j++) b.qs[j] = (int8_t)roundf(x[j] * id);
        memcpy(dst, &b, sizeof(b));
    }
}

static void q_q4_0(const float *x, uint8_t *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32, dst += sizeof(block_q4_0)) {
        float amax = 0, max = 0;  // max: the signed value of largest magnitude
        for (int j = 0; j < 32; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        block_q4_0 b;
        b.d = fp32_to_fp16(d);
        for (int j = 0; j < 16; j++) {
            int q0 = (int)(x[j] * id + 8.5f), q1 = (int)(x[j + 16] * id + 8.5f);
            q0 = q0 < 0 ? 0 : q0 > 15 ? 15 : q0;
            q1 = q1 < 0 ? 0 : q1 > 15 ? 15 : q1;
            b.qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
        memcpy(dst, &b, sizeof(b));
    }
}

static void q_q4_1(const float *x, uint8_t *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32, dst += sizeof(block_q4_1)) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < 32; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        float d = (max - min) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        block_q4_1 b;
        b.d = fp32_to_fp16(d);
        b.m = fp32_to_fp16(min);
        for (int j = 0; j < 16; j++) {
            int q0 = (int)((x[j] - min) * id + 0.5f), q1 = (int)((x[j + 16] - min) * id + 0.5f);
            q0 = q0 < 0 ? 0 : q0 > 15 ? 15 : q0;
            q1 = q1 < 0 ? 0 : q1 > 15 ? 15 : q1;
            b.qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
        memcpy(dst, &b, sizeof(b));
    }
}

int quantize_row(uint32_t type, const float *src, void *dst, int64_t n) {
    uint8_t *d = dst;
    if (!qtype_can_quantize(type) || n < 0 || n % qtype_block_size(type) != 0) return -1;
    switch (type) {
    case QTYPE_F32: memcpy(dst, src, sizeof(float) * (size_t)n); break;
    case QTYPE_F16: {
        int64_t i = 0;
#ifdef __F16C__  // 8 at a time (the KV cache's writes): round to nearest even, as fp32_to_fp16
        for (; i + 8 <= n; i += 8)
            _mm_storeu_si128((__m128i *)(void *)(d + 2 * i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
#endif
        for (; i < n; i++) {
            uint16_t h = fp32_to_fp16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        break;
    }
    case QTYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = fp32_to_bf16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        break;
    case QTYPE_Q8_0: q_q8_0(src, d, n / 32); break;
    case QTYPE_Q4_0: q_q4_0(src, d, n / 32); break;
    case QTYPE_Q4_1: q_q4_1(src, d, n / 32); break;
    default: return -1;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Conversions at load (quant.h: quant_convert_target, with the error of each).

uint32_t quant_convert_target(uint32_t type) {
    switch (type) {
    case QTYPE_Q5_0: case QTYPE_Q5_1: case QTYPE_Q5_K: case QTYPE_Q6_K: return QTYPE_Q8_0;
    case QTYPE_Q4_K: return QTYPE_Q4_1;
    default: return QTYPE_F32;
    }
}

#define FP16_MAX 65504.0f

// Q5_0 → Q8_0: the same scale, the signed 5-bit values as bytes.
static void cv_q5_0(const uint8_t *src, uint8_t *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(block_q5_0), dst += sizeof(block_q8_0)) {
        block_q5_0 b;
        memcpy(&b, src, sizeof(b));
        int q[32];
        q5_values(b.qh, b.qs, q);
        block_q8_0 o;
        o.d = b.d;
        for (int j = 0; j < 32; j++) o.qs[j] = (int8_t)(q[j] - 16);
        memcpy(dst, &o, sizeof(o));
    }
}

// Q4_K → Q4_1: one Q4_1 block per 32-element sub-block. Sub-block 2c holds the low nibbles
// of qs[32c .. 32c+31], sub-block 2c+1 their high nibbles; a Q4_1 block keeps element j in
// the low nibble of byte j%16 for j < 16, the high nibble for j ≥ 16.
static int cv_q4_k(const uint8_t *src, uint8_t *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(block_q4_k)) {
        block_q4_k b;
        memcpy(&b, src, sizeof(b));
        float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
        for (int s = 0; s < 8; s++, dst += sizeof(block_q4_1)) {
            int sc, mn;
            k_scale_min(b.scales, s, &sc, &mn);
            float ds = d * (float)sc, ms = -dmin * (float)mn;  // exact: 11-bit × 6-bit products
            if (!(fabsf(ds) <= FP16_MAX) || !(fabsf(ms) <= FP16_MAX)) return -1;
            const uint8_t *q = b.qs + 32 * (s / 2);
            const int shift = 4 * (s % 2);
            block_q4_1 o;
            o.d = fp32_to_fp16(ds);
            o.m = fp32_to_fp16(ms);
            for (int j = 0; j < 16; j++)
                o.qs[j] = (uint8_t)(((q[j] >> shift) & 0xf) | (((q[j + 16] >> shift) & 0xf) << 4));
            memcpy(dst, &o, sizeof(o));
        }
    }
    return 0;
}

int quant_convert_row(uint32_t type, const void *src, void *dst, int64_t n, float *tmp) {
    int bs = qtype_block_size(type);
    uint32_t to = quant_convert_target(type);
    if (to == QTYPE_F32 || bs == 0 || n <= 0 || n % bs != 0) return -1;
    switch (type) {
    case QTYPE_Q5_0: cv_q5_0(src, dst, n / 32); return 0;
    case QTYPE_Q4_K: return cv_q4_k(src, dst, n / QK_K);
    default: break;
    }
    // Re-quantized to Q8_0: its scale amax/127 must be a finite fp16.
    dequantize_row(type, src, tmp, n);
    for (int64_t i = 0; i < n; i++)
        if (!(fabsf(tmp[i]) <= FP16_MAX * 127.0f)) return -1;
    return quantize_row(QTYPE_Q8_0, tmp, dst, n);
}
