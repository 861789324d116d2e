// backend_cpu.c: the fast CPU backend. Matmuls go to matmul_cpu.c (quantized weights stay
// quantized: AVX2 integer dots against 8-bit activations) or to OpenBLAS for F32 weights;
// attention is a one-pass online-softmax over the KV cache, threaded with OpenMP over
// (token, head); the elementwise ops are threaded over tokens.
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

// Online softmax over chunks of cache positions: no score buffer proportional to n_ctx.
static void cpu_attention(float *out, const float *q, const kv_cache *kv, int layer, const int32_t *seq,
                          const int32_t *pos, int T, int NH, int NKV, int HS) {
    int group = NH / NKV;
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for schedule(dynamic, 1) if (T * NH > 1)
    for (int th = 0; th < T * NH; th++) {
        int t = th / NH, h = th % NH, kvh = h / group;
        size_t base = ((size_t)layer * kv->n_seq + (size_t)seq[t]) * kv->n_ctx * kv->kv_dim + (size_t)kvh * HS;
        const float *qh = q + (int64_t)th * HS;
        float acc[512];  // HS ≤ 512 (checked by model_config_validate)
        float sc[ATT_CHUNK];
        for (int i = 0; i < HS; i++) acc[i] = 0;
        float mx = -INFINITY, sum = 0;
        int n = pos[t] + 1;
        for (int p0 = 0; p0 < n; p0 += ATT_CHUNK) {
            int m = n - p0 < ATT_CHUNK ? n - p0 : ATT_CHUNK;
            float cmx = -INFINITY;
            for (int j = 0; j < m; j++) {
                const float *kp = kv->k + base + (size_t)(p0 + j) * kv->kv_dim;
                float d = 0;
#pragma omp simd reduction(+ : d)
                for (int i = 0; i < HS; i++) d += qh[i] * kp[i];
                sc[j] = d * scale;
                if (sc[j] > cmx) cmx = sc[j];
            }
            if (cmx > mx) {  // rescale what was accumulated under the old maximum
                float r = expf(mx - cmx);
                sum *= r;
                for (int i = 0; i < HS; i++) acc[i] *= r;
                mx = cmx;
            }
            for (int j = 0; j < m; j++) {
                float w = expf(sc[j] - mx);
                sum += w;
                const float *vp = kv->v + base + (size_t)(p0 + j) * kv->kv_dim;
                for (int i = 0; i < HS; i++) acc[i] += w * vp[i];
            }
        }
        float *oh = out + (int64_t)th * HS;
        for (int i = 0; i < HS; i++) oh[i] = acc[i] / sum;
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
