// backend_cpu.c: the fast CPU backend. Matmuls go to matmul_cpu.c (quantized weights stay
// quantized: AVX2 integer dots against 8-bit activations) or to OpenBLAS for F32 weights;
// attention is a one-pass online softmax over the KV cache, threaded with OpenMP over
// (token, KV head) with the query heads of a GQA group together (each head's arithmetic as
// alone, so results do not depend on how requests are batched); the elementwise ops are
// threaded over tokens.
#include <math.h>
#include <string.h>

#include "matmul.h"
#include "ops.h"
#include "quant.h"

size_t ops_matmul_scratch(const model_tensor *w, int T) {
    size_t a = matmul_scratch_bytes(w->type, w->n_cols, T);
    size_t b = (size_t)w->n_cols * sizeof(float);  // ops_ref: one dequantized row
    return (a > b ? a : b) + 64;
}

static void cpu_matmul(const model_tensor *w, const float *x, float *y, int T, void *scratch) {
    matmul_forward(w->type, w->data, w->n_rows, w->n_cols, x, y, T, scratch);
}

static void cpu_rmsnorm(float *out, const float *x, const float *w, int T, int C, float eps) {
#pragma omp parallel for schedule(static) if (T > 4)
    for (int t = 0; t < T; t++) {
        const float *xt = x + (int64_t)t * C;
        float ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int c = 0; c < C; c++) ss += xt[c] * xt[c];
        float s = 1.0f / sqrtf(ss / C + eps);
        float *o = out + (int64_t)t * C;
        for (int c = 0; c < C; c++) o[c] = xt[c] * s * w[c];
    }
}

static void cpu_rope(float *q, float *k, const int32_t *pos, int T, int NH, int NKV, int HS, float theta,
                     rope_style style) {
#pragma omp parallel for schedule(static) if (T > 4)
    for (int t = 0; t < T; t++) {
        float cs[256], sn[256];  // HS/2 ≤ 256 (checked by model_config_validate)
        for (int i = 0; i < HS / 2; i++) {
            double ang = pos[t] * pow((double)theta, -2.0 * i / HS);
            cs[i] = (float)cos(ang);
            sn[i] = (float)sin(ang);
        }
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

static void cpu_swiglu(float *out, const float *gate, const float *up, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

static void cpu_add(float *x, const float *y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

#define ATT_CHUNK 128

#define ATT_MAXG 16  // query heads per KV head handled together (GQA group); larger groups split

// Online softmax over chunks of cache positions: no score buffer proportional to n_ctx.
// One (token, KV head) item: the G query heads that share the KV head walk its keys and values
// once (read from memory once, not G times: decode over long contexts is bound by these
// reads), each with its own online softmax, chunk by chunk.
static void attend_group(float *out, const float *q, const float *kb, const float *vb, int kv_dim, int n, int G,
                         int HS, float scale) {
    float acc[ATT_MAXG][512];  // HS ≤ 512 (checked by model_config_validate)
    float sc[ATT_MAXG][ATT_CHUNK];
    float mx[ATT_MAXG], sum[ATT_MAXG];
    for (int g = 0; g < G; g++) {
        mx[g] = -INFINITY, sum[g] = 0;
        for (int i = 0; i < HS; i++) acc[g][i] = 0;
    }
    for (int p0 = 0; p0 < n; p0 += ATT_CHUNK) {
        int m = n - p0 < ATT_CHUNK ? n - p0 : ATT_CHUNK;
        float cmx[ATT_MAXG];
        for (int g = 0; g < G; g++) cmx[g] = -INFINITY;
        for (int j = 0; j < m; j++) {
            const float *kp = kb + (size_t)(p0 + j) * kv_dim;
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
            const float *vp = vb + (size_t)(p0 + j) * kv_dim;
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
    // Items interleave over the threads (static, 1) so that rows of different lengths balance.
#pragma omp parallel for schedule(static, 1) if (T * NKV * nsub > 1)
    for (int it = 0; it < T * NKV * nsub; it++) {
        int t = it / (NKV * nsub), kvh = it / nsub % NKV, h0 = kvh * group + it % nsub * G;
        int g = kvh * group + group - h0 < G ? kvh * group + group - h0 : G;
        size_t base = ((size_t)layer * kv->n_seq + (size_t)seq[t]) * kv->n_ctx * kv->kv_dim + (size_t)kvh * HS;
        attend_group(out + ((size_t)t * NH + h0) * HS, q + ((size_t)t * NH + h0) * HS, kv->k + base, kv->v + base,
                     kv->kv_dim, pos[t] + 1, g, HS, scale);
    }
}

static void cpu_embed(float *out, const model_tensor *table, const int32_t *ids, int T) {
    for (int t = 0; t < T; t++)
        dequantize_row(table->type, (const uint8_t *)table->data + (size_t)ids[t] * table->row_bytes,
                       out + (int64_t)t * table->n_cols, table->n_cols);
}

const ops ops_cpu = {
    .name = "cpu",
    .matmul = cpu_matmul,
    .rmsnorm = cpu_rmsnorm,
    .rope = cpu_rope,
    .swiglu = cpu_swiglu,
    .add = cpu_add,
    .attention = cpu_attention,
    .embed = cpu_embed,
};
