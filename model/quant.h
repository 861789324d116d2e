// quant.h: ggml tensor types, their block layouts, and conversions.
// The plain-C dequantizers here are the reference every fast kernel is tested against.
#ifndef TOOLRL_QUANT_H
#define TOOLRL_QUANT_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    QTYPE_F32 = 0,
    QTYPE_F16 = 1,
    QTYPE_Q4_0 = 2,
    QTYPE_Q4_1 = 3,
    QTYPE_Q5_0 = 6,
    QTYPE_Q5_1 = 7,
    QTYPE_Q8_0 = 8,
    QTYPE_Q8_1 = 9,
    QTYPE_Q2_K = 10,
    QTYPE_Q3_K = 11,
    QTYPE_Q4_K = 12,
    QTYPE_Q5_K = 13,
    QTYPE_Q6_K = 14,
    QTYPE_Q8_K = 15,
    QTYPE_BF16 = 30,
} qtype;

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256

typedef struct { uint16_t d; uint8_t qs[QK4_0 / 2]; } block_q4_0;             // 18 bytes
typedef struct { uint16_t d, m; uint8_t qs[QK4_1 / 2]; } block_q4_1;          // 20 bytes
// Q5_0 / Q5_1: the low 4 bits of element j (j < 16) in the low nibble of qs[j], of element
// j + 16 in its high nibble (as Q4_0); the 5th bit of element j is bit j of qh read as a
// little-endian u32. Q5_0: y = d·(q − 16); Q5_1: y = d·q + m.
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; } block_q5_0;          // 22 bytes
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; } block_q5_1;       // 24 bytes
typedef struct { uint16_t d; int8_t qs[QK8_0]; } block_q8_0;                  // 34 bytes
typedef struct { float d, s; int8_t qs[QK8_1]; } block_q8_1f;                 // activations (ours)
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[QK_K / 2]; } block_q4_k;  // 144
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; } block_q5_k;  // 176
typedef struct { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; } block_q6_k;  // 210

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);

// 1 if the type is known to this engine (can be dequantized).
int qtype_supported(uint32_t type);
const char *qtype_name(uint32_t type);
int qtype_block_size(uint32_t type);      // elements per block
size_t qtype_block_bytes(uint32_t type);  // bytes per block
// Bytes of a row of n elements; 0 if n is not a multiple of the block size or type unknown.
size_t qtype_row_bytes(uint32_t type, int64_t n);

// Reference dequantization of n elements (n a multiple of the block size).
void dequantize_row(uint32_t type, const void *src, float *dst, int64_t n);

// 1 if quantize_row can write the type (F32, F16, BF16, Q8_0, Q4_0, Q4_1).
int qtype_can_quantize(uint32_t type);
// Reference quantization of n floats into one row of qtype_row_bytes(type, n) bytes, with
// the round-to-nearest rules of ggml's reference quantizers (Q8_0: d = amax/127; Q4_0:
// d = signed max / -8; Q4_1: d = (max-min)/15, m = min). Returns 0, or -1 if the type is
// not one quantize_row can write or n is not a multiple of its block size.
int quantize_row(uint32_t type, const float *src, void *dst, int64_t n);

// Compact conversion at load, for types the fast kernels do not read: each row becomes a row
// of quant_convert_target(type) with the same number of elements, block for block:
//   Q5_0 → Q8_0  exact (same d, q − 16 as int8): dequantizes to the same floats.
//   Q4_K → Q4_1  each 32-element sub-block becomes one Q4_1 block with d = fp16(d·sc),
//                m = fp16(−dmin·m), the same nibbles; the only change is the fp16 rounding of
//                the two products: |error| ≤ 2^-11·(15·|d·sc| + |dmin·m|) (+ 16·2^-25 where a
//                product falls below fp16's normal range, 2^-14).
//   Q5_1, Q5_K, Q6_K → Q8_0  re-quantized from the reference dequantization (quantize_row):
//                |error| ≤ (0.5 + 127·2^-11)·amax/127 per block of 32, amax its largest |value|
//                (+ 127·2^-25 where the scale amax/127 is an fp16 subnormal, below 2^-14).
// QTYPE_F32 (0) where a type has no conversion (F32, F16, BF16, the types kernels read).
uint32_t quant_convert_target(uint32_t type);
// One row of n elements (n a multiple of the source block size). tmp: n floats of scratch
// (used by the re-quantizing conversions). Returns 0, or -1 if the type has no conversion, n
// does not fit, or a value does not fit the target's fp16 scales (non-finite or too large):
// the caller then keeps the weights another way (F32).
int quant_convert_row(uint32_t type, const void *src, void *dst, int64_t n, float *tmp);

#endif
