// ops_ref.c: the plain fp32 reference of every op: simple loops, no threads, no SIMD.
// It defines what each op computes; faster backends are tested against it (tests/test_ops.c).
#include <math.h>
#include <string.h>

#include "model/ops.h"
#include "model/quant.h"

// scratch: one dequantized weight row of K floats.
static void ref_matmul(const model_tensor *w, const float *x, float *y, int T, void *scratch) {
    float *row = scratch;  // (K) one dequantized weight row
    for (int64_t n = 0; n < w->n_rows; n++) {
        dequantize_row(w->type, (const uint8_t *)w->data + n * w->row_bytes, row, w->n_cols);
        for (int t = 0; t < T; t++) {
            const float *xt = x + (int64_t)t * w->n_cols;
            double acc = 0;
            for (int64_t k = 0; k < w->n_cols; k++) acc += (double)row[k] * xt[k];
            y[(int64_t)t * w->n_rows + n] = (float)acc;
        }
    }
}

static void ref_matmul_n(const model_tensor *const *w, const float *x, float *const *y, int n, int T, void *scratch) {
    for (int i = 0; i < n; i++) ref_matmul(w[i], x, y[i], T, scratch);
}

static void ref_rmsnorm(float *out, const float *x, const float *w, int T, int C, float eps) {
    for (int t = 0; t < T; t++) {
        const float *xt = x + (int64_t)t * C;
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)xt[c] * xt[c];
        float s = (float)(1.0 / sqrt(ss / C + eps));
        for (int c = 0; c < C; c++) out[(int64_t)t * C + c] = xt[c] * s * w[c];
    }
}

void rope_angles(float *r, int p, int HS, float theta) {
    for (int i = 0; i < HS / 2; i++) {
        double ang = p * pow((double)theta, -2.0 * i / HS);
        r[2 * i] = (float)cos(ang);
        r[2 * i + 1] = (float)sin(ang);
    }
}

void rope_table(float *tab, int n_pos, int HS, float theta) {
    for (int p = 0; p < n_pos; p++) rope_angles(tab + (size_t)p * HS, p, HS, theta);
}

// The oracle computes every angle itself (the table is what it checks).
static void ref_rope(float *q, float *k, const int32_t *pos, int T, int NH, int NKV, int HS, float theta,
                     rope_style style, const float *table) {
    (void)table;
    for (int t = 0; t < T; t++) {
        for (int h = 0; h < NH + NKV; h++) {
            float *v = h < NH ? q + ((int64_t)t * NH + h) * HS : k + ((int64_t)t * NKV + (h - NH)) * HS;
            for (int i = 0; i < HS / 2; i++) {
                double freq = pow((double)theta, -2.0 * i / HS);
                double ang = pos[t] * freq;
                float c = (float)cos(ang), s = (float)sin(ang);
                int a = style == ROPE_NORM ? 2 * i : i;
                int b = style == ROPE_NORM ? 2 * i + 1 : i + HS / 2;
                float x0 = v[a], x1 = v[b];
                v[a] = x0 * c - x1 * s;
                v[b] = x0 * s + x1 * c;
            }
        }
    }
}

static void ref_swiglu(float *out, const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

static void ref_add(float *x, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

static void ref_attention(float *out, const float *q, const kv_cache *kv, int layer, const int32_t *seq,
                          const int32_t *pos, int T, int NH, int NKV, int HS) {
    int group = NH / NKV;
    float scale = 1.0f / sqrtf((float)HS);
    for (int t = 0; t < T; t++) {
        double sc[pos[t] + 1];  // (pos+1) scores; n_ctx is bounded by the cache
        for (int h = 0; h < NH; h++) {
            const float *qh = q + ((int64_t)t * NH + h) * HS;
            int kvh = h / group;
            const uint16_t *kh = kv->k + kv_offset(kv, layer, seq[t], kvh, 0);  // (n_ctx, HS)
            const uint16_t *vh = kv->v + kv_offset(kv, layer, seq[t], kvh, 0);  // (n_ctx, HS)
            double mx = -INFINITY, sum = 0;
            for (int p = 0; p <= pos[t]; p++) {
                const uint16_t *kp = kh + (size_t)p * HS;
                double d = 0;
                for (int i = 0; i < HS; i++) d += (double)qh[i] * fp16_to_fp32(kp[i]);
                sc[p] = d * scale;
                if (sc[p] > mx) mx = sc[p];
            }
            for (int p = 0; p <= pos[t]; p++) sum += (sc[p] = exp(sc[p] - mx));
            float *oh = out + ((int64_t)t * NH + h) * HS;
            for (int i = 0; i < HS; i++) {
                double acc = 0;
                for (int p = 0; p <= pos[t]; p++)
                    acc += sc[p] * fp16_to_fp32(vh[(size_t)p * HS + i]);
                oh[i] = (float)(acc / sum);
            }
        }
    }
}

static void ref_embed(float *out, const model_tensor *table, const int32_t *ids, int T) {
    for (int t = 0; t < T; t++)
        dequantize_row(table->type, (const uint8_t *)table->data + (size_t)ids[t] * table->row_bytes,
                       out + (int64_t)t * table->n_cols, table->n_cols);
}

const ops ops_ref = {
    .name = "ref",
    OPS_HOST_MEMORY,
    .matmul = ref_matmul,
    .matmul_n = ref_matmul_n,
    .rmsnorm = ref_rmsnorm,
    .rope = ref_rope,
    .swiglu = ref_swiglu,
    .add = ref_add,
    .attention = ref_attention,
    .embed = ref_embed,
};
