// ops.h: the compute layer. The forward pass is written once against this small set of
// ops; a backend supplies them. `ops_ref` (ops_ref.c) is the plain fp32 oracle every other
// backend is tested against; `ops_cpu` (backend_cpu.c) is the fast CPU backend (quantized
// AVX2 matmuls, OpenBLAS for F32, OpenMP); the CUDA backend (ops_cuda.h, `make CUDA=1`) fills
// the same table on a GPU.
// Dims: T tokens in a batch, C channels, NH query heads, NKV key/value heads, HS head size.
#ifndef TOOLRL_OPS_H
#define TOOLRL_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

// Where a token's keys/values live: layer-major KV cache of n_seq slots of n_ctx positions,
// stored as fp16 (llama.cpp's default: half the bytes that batched decode reads per step;
// the values are rounded once, to nearest even, when written). Head-major within a slot:
// the keys one (sequence, KV head) attends over are one contiguous run of n_ctx * HS
// values, which the hardware prefetcher streams (a decode step reads every cached key and
// value of every sequence in the batch, mostly from DRAM).
typedef struct {
    uint16_t *k;  // (L, n_seq, NKV, n_ctx, HS) fp16
    uint16_t *v;  // (L, n_seq, NKV, n_ctx, HS) fp16
    int n_layer, n_seq, n_ctx, n_head_kv, head_dim;
} kv_cache;

// Offset of the HS values of KV head h at position p of sequence s in layer l.
static inline size_t kv_offset(const kv_cache *kv, int l, int s, int h, int p) {
    return ((((size_t)l * kv->n_seq + (size_t)s) * kv->n_head_kv + (size_t)h) * kv->n_ctx + (size_t)p) *
           (size_t)kv->head_dim;
}

typedef struct ops {
    const char *name;
    // --- Memory. Every buffer the ops below read or write (activations, the KV cache, matmul
    // scratch, logits, a batch's token/sequence/position arrays) is the backend's memory: host
    // memory for the CPU backends, device memory for a GPU backend. The engine (forward.c)
    // moves data across only through upload and download.
    int host;  // 1: the backend's memory is host memory; the engine then hands host arrays to
               // the ops directly instead of uploading copies
    void *(*alloc)(size_t n);  // n zeroed bytes, 64-byte aligned; NULL when out of memory
    void (*release)(void *p);  // p from alloc, or NULL
    void (*upload)(void *dst, const void *src, size_t n);    // host src → backend dst
    void (*download)(void *dst, const void *src, size_t n);  // backend src → host dst
    // The model's weights as this backend's ops read them: *w becomes a view of m whose weight
    // pointers are backend memory (the CPU backends read the loader's rows and packed copies in
    // place; a GPU backend uploads or dequantizes here). Undone by weights_release.
    int (*weights_prepare)(const model *m, model *w, trl_err *e);
    void (*weights_release)(model *w);
    // Bytes of matmul scratch for T rows through w.
    size_t (*matmul_scratch)(const model_tensor *w, int T);
    // The first failure the calling thread's ops met since the last call (a device backend's
    // failed launch, copy or cuBLAS call, which the void ops below cannot return): TRL_ERR with
    // e filled, and forgotten; TRL_OK when there was none. NULL for backends that cannot fail
    // (the CPU's). The engine asks after each forward pass.
    int (*error)(trl_err *e);
    // --- KV cache and rows.
    // Writes T tokens' keys k and values v (T, NKV*HS) at positions (seq[t], pos[t]) of layer.
    void (*kv_store)(const kv_cache *kv, int layer, const float *k, const float *v, const int32_t *seq,
                     const int32_t *pos, int T);
    // The first n positions of sequence src, every layer and head, copied to sequence dst.
    void (*kv_copy)(const kv_cache *kv, int dst, int src, int n);
    // out (n, C) = rows idx[0..n) of x (T, C); out may be x when idx[i] >= i, increasing.
    void (*gather)(float *out, const float *x, const int32_t *idx, int n, int C);
    // x (T, N) += b (N), on every row.
    void (*add_bias)(float *x, const float *b, int T, int N);
    // --- Compute.
    // y (T, N) = x (T, K) · W^T, W (N, K) in its own type. scratch: ops_matmul_scratch bytes.
    void (*matmul)(const model_tensor *w, const float *x, float *y, int T, void *scratch);
    // y[i] (T, N_i) = x (T, K) · W_i^T for n matrices that share the input (Q, K, V; gate,
    // up): what n matmul calls give, in one pass where the backend can.
    void (*matmul_n)(const model_tensor *const *w, const float *x, float *const *y, int n, int T, void *scratch);
    // out (T, C) = x / rms(x) * w
    void (*rmsnorm)(float *out, const float *x, const float *w, int T, int C, float eps);
    // Rotates each head of q (T, NH*HS) and k (T, NKV*HS) in place by its token's position.
    // table: rope_table's angles for positions 0 .. max(pos), or NULL (computed here).
    void (*rope)(float *q, float *k, const int32_t *pos, int T, int NH, int NKV, int HS, float theta,
                 rope_style style, const float *table);
    // out (n) = silu(gate) * up
    void (*swiglu)(float *out, const float *gate, const float *up, int64_t n);
    // x (n) += y (n)
    void (*add)(float *x, const float *y, int64_t n);
    // Causal attention of each token against its sequence's cache positions [0, pos].
    // q (T, NH*HS), out (T, NH*HS); keys/values already written to the cache for these tokens.
    void (*attention)(float *out, const float *q, const kv_cache *kv, int layer, const int32_t *seq,
                      const int32_t *pos, int T, int NH, int NKV, int HS);
    // out (T, C) = rows ids of the embedding table, dequantized.
    void (*embed)(float *out, const model_tensor *table, const int32_t *ids, int T);
} ops;

extern const ops ops_ref;
extern const ops ops_cpu;

// The host-memory ops both CPU backends share (backend_host.c): their `host` .. `add_bias`
// entries.
void *host_alloc(size_t n);
void host_release(void *p);
void host_copy(void *dst, const void *src, size_t n);
int host_weights_prepare(const model *m, model *w, trl_err *e);
void host_weights_release(model *w);
void host_kv_store(const kv_cache *kv, int layer, const float *k, const float *v, const int32_t *seq,
                   const int32_t *pos, int T);
void host_kv_copy(const kv_cache *kv, int dst, int src, int n);
void host_gather(float *out, const float *x, const int32_t *idx, int n, int C);
void host_add_bias(float *x, const float *b, int T, int N);
#define OPS_HOST_MEMORY                                                                                      \
    .host = 1, .alloc = host_alloc, .release = host_release, .upload = host_copy, .download = host_copy,    \
    .weights_prepare = host_weights_prepare, .weights_release = host_weights_release,                      \
    .matmul_scratch = ops_matmul_scratch, .kv_store = host_kv_store, .kv_copy = host_kv_copy,              \
    .gather = host_gather, .add_bias = host_add_bias

// The rotation of position p: r[2i], r[2i+1] = cos and sin of p · theta^(-2i/HS), i < HS/2,
// computed in double and rounded to float. rope_table: the same for every position p <
// n_pos, at tab + p·HS.
void rope_angles(float *r, int p, int HS, float theta);
void rope_table(float *tab, int n_pos, int HS, float theta);

// Bytes of matmul scratch a backend needs for T rows of K inputs.
size_t ops_matmul_scratch(const model_tensor *w, int T);

// y[i] = e^x[i] as the CPU backend's attention computes its softmax weights (x ≤ 0 there): at
// most 1 ulp from the correctly rounded value for x in [-86, 0], 0 below -86. For the tests.
void ops_cpu_exp(float *y, const float *x, int n);

#endif
