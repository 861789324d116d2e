// backend_host.c: the memory, weight, KV-cache and row ops of backends whose memory is host
// memory (ops_ref and ops_cpu, through OPS_HOST_MEMORY in ops.h): allocation, copies, the
// weight view (the loader's rows and packed copies, read in place), fp16 KV writes and copies,
// row gathers and bias adds. A GPU backend supplies its own versions of each.
#include <stdlib.h>
#include <string.h>

#include "model/ops.h"
#include "model/quant.h"

void *host_alloc(size_t n) {
    size_t r = (n + 63) / 64 * 64;
    void *p = aligned_alloc(64, r ? r : 64);
    if (p) memset(p, 0, r ? r : 64);
    return p;
}

void host_release(void *p) { free(p); }

void host_copy(void *dst, const void *src, size_t n) {
    if (n && dst != src) memcpy(dst, src, n);
}

int host_weights_prepare(const model *m, model *w, trl_err *e) {
    (void)e;
    *w = *m;  // a view: the same pointers, owned by m
    return TRL_OK;
}

void host_weights_release(model *w) { memset(w, 0, sizeof(*w)); }

void host_kv_store(const kv_cache *kv, int layer, const float *k, const float *v, const int32_t *seq,
                   const int32_t *pos, int T) {
    const int NKV = kv->n_head_kv, HS = kv->head_dim;
    for (int t = 0; t < T; t++)
        for (int h = 0; h < NKV; h++) {
            size_t off = kv_offset(kv, layer, seq[t], h, pos[t]), src = ((size_t)t * NKV + (size_t)h) * (size_t)HS;
            quantize_row(QTYPE_F16, k + src, kv->k + off, HS);
            quantize_row(QTYPE_F16, v + src, kv->v + off, HS);
        }
}

void host_kv_copy(const kv_cache *kv, int dst, int src, int n) {
    const size_t run = sizeof(uint16_t) * (size_t)n * (size_t)kv->head_dim;  // one (layer, head): contiguous
    for (int l = 0; l < kv->n_layer; l++)
        for (int h = 0; h < kv->n_head_kv; h++) {
            memcpy(kv->k + kv_offset(kv, l, dst, h, 0), kv->k + kv_offset(kv, l, src, h, 0), run);
            memcpy(kv->v + kv_offset(kv, l, dst, h, 0), kv->v + kv_offset(kv, l, src, h, 0), run);
        }
}

void host_gather(float *out, const float *x, const int32_t *idx, int n, int C) {
    for (int i = 0; i < n; i++)
        if (out + (size_t)i * C != x + (size_t)idx[i] * C)
            memmove(out + (size_t)i * C, x + (size_t)idx[i] * C, sizeof(float) * (size_t)C);
}

void host_add_bias(float *x, const float *b, int T, int N) {
    for (int t = 0; t < T; t++) {
        float *r = x + (size_t)t * N;
#pragma omp simd
        for (int i = 0; i < N; i++) r[i] += b[i];
    }
}
