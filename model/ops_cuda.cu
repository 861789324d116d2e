// ops_cuda.cu: the CUDA inference backend: ops.h's table on one NVIDIA GPU (ops_cuda.h).
// - Memory: cudaMalloc'd, zeroed at allocation; upload/download are synchronous cudaMemcpy on
//   the default stream, which also orders every launch and cuBLAS call (no streams yet).
// - Weights: weights_prepare dequantizes every matrix once on the host with quant.c's
//   reference dequantize_row (the file's rows, whatever their type: the values ops_ref reads)
//   and uploads fp32; a tied output shares the embedding's copy. fp32 rather than bf16: twice
//   the memory and decode bandwidth, but the matmuls then compute ops_ref's function up to
//   summation order (a bf16 copy with an fp32-accumulating cublasGemmEx is the next step).
// - Matmul: cublasSgemm, fp32 in and out, fp32 accumulation, CUBLAS_DEFAULT_MATH (no TF32).
// - Kernels (below): one block per row for RMSNorm; one thread per element for RoPE (ops_ref's
//   pairings and angles), SwiGLU, add, bias, KV stores (fp16, round to nearest even) and
//   copies, embedding rows; one thread per column for the logits-row gather (in place);
//   attention one block per (query head, token) with an online softmax over chunks of 128
//   cached positions (a simple kernel, not yet flash-style).
// - Errors: the ops return nothing, so the first failed launch, copy or cuBLAS call of a host
//   thread is kept and returned by ops_cuda.error (the engine asks after each forward pass).
// - Threads: any host thread may call the ops (the device is made current on each on first
//   use); one cuBLAS handle, made by ops_cuda_open, serves them all behind a mutex.
// The kernels are also compiled by g++ against tests/support/cuemu.h and run on the CPU by
// tests/test_ops_cuda.c; the only text that differs is LAUNCH and the headers.
#ifndef TOOLRL_CUEMU
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#define LAUNCH(kernel, grid, block) kernel<<<(grid), (block)>>>
#endif

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "model/ops.h"
#include "model/ops_cuda.h"
#include "model/quant.h"
}

// ---------------------------------------------------------------------------- state

// The device, and one cuBLAS handle for every thread, its calls serialised by blas_mu (they
// only enqueue work on the default stream; a handle per thread would leak with the threads).
static struct {
    int open, index;
    char name[320];
    cublasHandle_t blas;
    pthread_mutex_t blas_mu;
} g_dev = {0, -1, "", NULL, PTHREAD_MUTEX_INITIALIZER};

static thread_local struct {
    int ready;      // cudaSetDevice done on this thread (the current device is per host thread)
    char err[400];  // the first failure since ops_cuda.error last read it
} tl;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
    if (tl.err[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl.err, sizeof(tl.err), fmt, ap);
    va_end(ap);
}

#define CU_CHECK(call)                                                                   \
    do {                                                                                 \
        cudaError_t rc_ = (call);                                                        \
        if (rc_ != cudaSuccess) fail("cuda: %s: %s", #call, cudaGetErrorString(rc_));    \
    } while (0)

// After a launch: a bad configuration or a failure of an earlier kernel shows here.
static void launched(const char *kernel) {
    cudaError_t rc = cudaGetLastError();
    if (rc != cudaSuccess) fail("cuda: %s: %s", kernel, cudaGetErrorString(rc));
}

// Makes the device current on the calling thread (once). 0, or -1 after fail().
static int enter(void) {
    if (tl.ready) return 0;
    if (!g_dev.open) {
        fail("cuda: the backend was used before ops_cuda_open");
        return -1;
    }
    cudaError_t rc = cudaSetDevice(g_dev.index);
    if (rc != cudaSuccess) {
        fail("cuda: cudaSetDevice(%d): %s", g_dev.index, cudaGetErrorString(rc));
        return -1;
    }
    tl.ready = 1;
    return 0;
}

static const ops *cuda_table(void);  // the table, at the end of the file

extern "C" const ops *ops_cuda_open(int index, trl_err *e) {
    if (g_dev.open) {
        if (index == g_dev.index) return cuda_table();
        trl_errf(e, "cuda: device %d is open already (one device per process)", g_dev.index);
        return NULL;
    }
    int n = 0;
    cudaError_t rc = cudaGetDeviceCount(&n);
    if (rc != cudaSuccess) {
        trl_errf(e, "no CUDA device: %s", cudaGetErrorString(rc));
        return NULL;
    }
    if (index < 0 || index >= n) {
        trl_errf(e, "no CUDA device %d (%d present)", index, n);
        return NULL;
    }
    cudaDeviceProp p;
    rc = cudaGetDeviceProperties(&p, index);
    if (rc == cudaSuccess) rc = cudaSetDevice(index);
    if (rc != cudaSuccess) {
        trl_errf(e, "cuda device %d: %s", index, cudaGetErrorString(rc));
        return NULL;
    }
    if (cublasCreate(&g_dev.blas) != CUBLAS_STATUS_SUCCESS) {
        trl_errf(e, "cuda device %d: cublasCreate failed", index);
        return NULL;
    }
    cublasSetMathMode(g_dev.blas, CUBLAS_DEFAULT_MATH);  // fp32 throughout: no TF32
    snprintf(g_dev.name, sizeof(g_dev.name), "%.255s (sm_%d%d, %zu GiB)", p.name, p.major, p.minor,
             (size_t)(p.totalGlobalMem >> 30));
    g_dev.index = index;
    g_dev.open = 1;
    return cuda_table();
}

extern "C" const char *ops_cuda_device_name(void) { return g_dev.name; }

static int cuda_error(trl_err *e) {
    if (!tl.err[0]) return TRL_OK;
    trl_errf(e, "%s", tl.err);
    tl.err[0] = 0;
    return TRL_ERR;
}

// ---------------------------------------------------------------------------- memory

static void *cuda_alloc(size_t n) {
    if (enter()) return NULL;
    void *p = NULL;
    size_t r = (n + 255) / 256 * 256;  // 256-byte granules; 0 bytes still gets a pointer
    if (cudaMalloc(&p, r ? r : 256) != cudaSuccess) {
        cudaGetLastError();  // out of memory is the caller's NULL, not a sticky error
        return NULL;
    }
    if (cudaMemset(p, 0, r ? r : 256) != cudaSuccess) {
        cudaFree(p);
        return NULL;
    }
    return p;
}

static void cuda_release(void *p) {
    if (p) CU_CHECK(cudaFree(p));
}

static void cuda_upload(void *dst, const void *src, size_t n) {
    if (n && !enter()) CU_CHECK(cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice));
}

static void cuda_download(void *dst, const void *src, size_t n) {
    if (n && !enter()) CU_CHECK(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost));
}

// ---------------------------------------------------------------------------- weights

// Host staging for the dequantized weights, in floats (16 MiB; the emulated test build sets a
// few thousand, so that its small matrices go up in several chunks).
#ifndef OPS_CUDA_STAGE_FLOATS
#define OPS_CUDA_STAGE_FLOATS ((size_t)1 << 22)
#endif

// The device copy of a weight as fp32, recorded in w->owned; NULL (with fail()) when out of memory.
static float *weight_upload(model *w, const float *src, size_t n) {
    float *d = (float *)cuda_alloc(n * sizeof(float));
    if (!d) return NULL;
    w->owned[w->n_owned++] = d;
    cuda_upload(d, src, n * sizeof(float));
    return d;
}

// t's rows dequantized to fp32 on the device, a chunk of rows at a time through host staging;
// t becomes an F32 view of the copy. -1 when out of memory.
static int tensor_upload(model *w, model_tensor *t, float *stage, size_t stage_floats) {
    const int64_t K = t->n_cols, N = t->n_rows;
    float *d = (float *)cuda_alloc((size_t)N * (size_t)K * sizeof(float));  // (N, K)
    if (!d) return -1;
    w->owned[w->n_owned++] = d;
    int64_t rows = (int64_t)(stage_floats / (size_t)K);
    for (int64_t r0 = 0; r0 < N; r0 += rows) {
        int64_t nr = N - r0 < rows ? N - r0 : rows;
        for (int64_t r = 0; r < nr; r++)
            dequantize_row(t->type, (const uint8_t *)t->data + (size_t)(r0 + r) * t->row_bytes, stage + r * K, K);
        cuda_upload(d + r0 * K, stage, (size_t)(nr * K) * sizeof(float));
    }
    t->type = QTYPE_F32;
    t->packed_type = QTYPE_F32;
    t->row_bytes = (size_t)K * sizeof(float);
    t->data = d;
    t->packed = NULL;
    return 0;
}

static void cuda_weights_release(model *w) {
    for (int i = 0; i < w->n_owned; i++) cuda_release(w->owned[i]);
    free(w->owned);
    free(w->layers);
    memset(w, 0, sizeof(*w));
}

static int cuda_weights_prepare(const model *m, model *w, trl_err *e) {
    const model_config *c = &m->cfg;
    *w = *m;  // configuration and tokenizer shared; every weight pointer replaced below
    w->gguf = NULL, w->maps = NULL, w->map_sizes = NULL, w->n_maps = 0;
    w->layers = (model_layer *)calloc((size_t)c->n_layer, sizeof(model_layer));  // host bookkeeping
    w->cap_owned = c->n_layer * 16 + 8;
    w->owned = (void **)calloc((size_t)w->cap_owned, sizeof(void *));
    w->n_owned = 0;
    int64_t widest = m->tok_embd.n_cols > c->n_ff ? m->tok_embd.n_cols : c->n_ff;
    size_t stage_floats = OPS_CUDA_STAGE_FLOATS;  // at least one row
    if ((size_t)widest > stage_floats) stage_floats = (size_t)widest;
    float *stage = (float *)malloc(stage_floats * sizeof(float));
    if (!w->layers || !w->owned || !stage) {
        free(stage);
        cuda_weights_release(w);
        return trl_errf(e, "cuda: out of host memory preparing the weights");
    }
    size_t C = (size_t)c->n_embd, qd = (size_t)c->n_head * c->head_dim, kvd = (size_t)c->n_head_kv * c->head_dim;
    int bad = tensor_upload(w, &w->tok_embd, stage, stage_floats);
    if (m->output.data == m->tok_embd.data) w->output = w->tok_embd;
    else bad |= tensor_upload(w, &w->output, stage, stage_floats);
    bad |= !(w->out_norm = weight_upload(w, m->out_norm, C));
    for (int l = 0; l < c->n_layer && !bad; l++) {
        model_layer *L = &w->layers[l];
        const model_layer *S = &m->layers[l];
        *L = *S;
        model_tensor *ts[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) bad |= tensor_upload(w, ts[i], stage, stage_floats);
        bad |= !(L->attn_norm = weight_upload(w, S->attn_norm, C));
        bad |= !(L->ffn_norm = weight_upload(w, S->ffn_norm, C));
        if (S->bq) {
            bad |= !(L->bq = weight_upload(w, S->bq, qd));
            bad |= !(L->bk = weight_upload(w, S->bk, kvd));
            bad |= !(L->bv = weight_upload(w, S->bv, kvd));
        }
    }
    free(stage);
    trl_err ce;
    if (cuda_error(&ce)) bad = 1;
    else snprintf(ce.msg, sizeof(ce.msg), "out of device memory");
    if (bad) {
        cuda_weights_release(w);
        return trl_errf(e, "cuda: weights: %s", ce.msg);
    }
    return TRL_OK;
}

static size_t cuda_matmul_scratch(const model_tensor *w, int T) {
    (void)w, (void)T;
    return 0;  // cuBLAS needs none of ours
}

// ---------------------------------------------------------------------------- kernels

#define THREADS 256      // elementwise kernels
#define ATT_THREADS 128  // attention: positions per chunk; each thread owns up to 2 dims
#define ATT_MAX_HS (2 * ATT_THREADS)

static unsigned blocks_for(int64_t n) { return (unsigned)((n + THREADS - 1) / THREADS); }

// Offset of the HS values of KV head h at position p of sequence s in layer l (ops.h's kv_offset).
static __device__ __forceinline__ size_t kv_off(int n_seq, int NKV, int n_ctx, int HS, int l, int s, int h, int p) {
    return ((((size_t)l * n_seq + (size_t)s) * NKV + (size_t)h) * n_ctx + (size_t)p) * (size_t)HS;
}

static __device__ __forceinline__ float half_to_float(uint16_t h) { return __half2float(__ushort_as_half(h)); }
static __device__ __forceinline__ uint16_t float_to_half(float f) { return __half_as_ushort(__float2half_rn(f)); }

static __device__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// The sum (max) over the block, returned to every thread; blockDim.x a multiple of 32, ≤ 1024,
// called by every thread of the block.
static __device__ float block_sum(float v) {
    __shared__ float part[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    v = warp_sum(v);
    __syncthreads();  // a previous call's readers are done with part (back-to-back calls)
    if (lane == 0) part[warp] = v;
    __syncthreads();
    return warp_sum(lane < nw ? part[lane] : 0.0f);
}

static __device__ float block_max(float v) {
    __shared__ float part[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) part[warp] = v;
    __syncthreads();
    return warp_max(lane < nw ? part[lane] : -INFINITY);
}

// out (T, C) = x / rms(x) * w: block t normalises row t (out may be x).
__global__ void rmsnorm_kernel(float *out, const float *x, const float *w, int C, float eps) {
    const float *xt = x + (int64_t)blockIdx.x * C;  // (C)
    float *ot = out + (int64_t)blockIdx.x * C;      // (C)
    float ss = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) ss += xt[c] * xt[c];
    ss = block_sum(ss);
    float s = 1.0f / sqrtf(ss / (float)C + eps);
    for (int c = threadIdx.x; c < C; c += blockDim.x) ot[c] = xt[c] * s * w[c];
}

// One thread per rotated pair (t, head, i) of q (T, NH*HS) and k (T, NKV*HS). ops_ref's
// convention: NORM rotates (2i, 2i+1), NEOX (i, i + HS/2), by pos·theta^(-2i/HS); angles from
// table (T positions' rope_table rows) or, without one, computed in double as ops_ref does.
__global__ void rope_kernel(float *q, float *k, const int32_t *pos, int T, int NH, int NKV, int HS, float theta,
                            int neox, const float *table) {
    int64_t id = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int half = HS / 2;
    if (id >= (int64_t)T * (NH + NKV) * half) return;
    int i = (int)(id % half), h = (int)(id / half % (NH + NKV)), t = (int)(id / half / (NH + NKV));
    float *v = h < NH ? q + ((int64_t)t * NH + h) * HS : k + ((int64_t)t * NKV + (h - NH)) * HS;  // (HS)
    float c, s;
    if (table) {
        c = table[(size_t)pos[t] * HS + 2 * i];
        s = table[(size_t)pos[t] * HS + 2 * i + 1];
    } else {
        double ang = pos[t] * pow((double)theta, -2.0 * i / HS);
        c = (float)cos(ang);
        s = (float)sin(ang);
    }
    int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
    float x0 = v[a], x1 = v[b];
    v[a] = x0 * c - x1 * s;
    v[b] = x0 * s + x1 * c;
}

__global__ void swiglu_kernel(float *out, const float *gate, const float *up, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

__global__ void add_kernel(float *x, const float *y, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += y[i];
}

// x (T, N) += b (N)
__global__ void add_bias_kernel(float *x, const float *b, int64_t n, int N) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += b[i % N];
}

// One thread per value of k, v (T, NKV*HS): written as fp16 at (seq[t], pos[t]) of the layer.
__global__ void kv_store_kernel(uint16_t *kc, uint16_t *vc, const float *k, const float *v, const int32_t *seq,
                                const int32_t *pos, int T, int n_seq, int NKV, int n_ctx, int HS, int layer) {
    int64_t id = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (id >= (int64_t)T * NKV * HS) return;
    int i = (int)(id % HS), h = (int)(id / HS % NKV), t = (int)(id / HS / NKV);
    size_t dst = kv_off(n_seq, NKV, n_ctx, HS, layer, seq[t], h, pos[t]) + (size_t)i;
    kc[dst] = float_to_half(k[id]);
    vc[dst] = float_to_half(v[id]);
}

// The first n positions of sequence src copied to dst, every layer and head: one thread per value.
__global__ void kv_copy_kernel(uint16_t *kc, uint16_t *vc, int dst, int src, int n, int L, int n_seq, int NKV,
                               int n_ctx, int HS) {
    int64_t id = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, run = (int64_t)n * HS;
    if (id >= (int64_t)L * NKV * run) return;
    int64_t j = id % run;
    int h = (int)(id / run % NKV), l = (int)(id / run / NKV);
    size_t a = kv_off(n_seq, NKV, n_ctx, HS, l, dst, h, 0) + (size_t)j, b = kv_off(n_seq, NKV, n_ctx, HS, l, src, h, 0) + (size_t)j;
    kc[a] = kc[b];
    vc[a] = vc[b];
}

// out (n, C) = rows idx of x (T, C): one thread per column, rows in order. In place (out == x)
// is safe: idx[i] >= i and increasing, so row i is never the source of an earlier row and
// its own source is read before any later row writes there, and a column is one thread's.
__global__ void gather_kernel(float *out, const float *x, const int32_t *idx, int n, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    for (int i = 0; i < n; i++) out[(int64_t)i * C + c] = x[(int64_t)idx[i] * C + c];
}

// out (T, C) = rows ids of the fp32 table (V, C): block t copies row ids[t].
__global__ void embed_kernel(float *out, const float *table, const int32_t *ids, int C) {
    const float *src = table + (int64_t)ids[blockIdx.x] * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) out[(int64_t)blockIdx.x * C + c] = src[c];
}

// Causal attention: block (h, t) computes query head h of token t against positions
// [0, pos[t]] of its sequence's cache (KV head h / (NH/NKV)). Positions go ATT_THREADS at a
// time: each thread scores one (fp32 dot of the query with the fp16 key), then the chunk's
// max and sum update the running softmax (m, l) and each thread rescales and extends the
// output dims it owns (tid, tid + ATT_THREADS) with the chunk's weighted values.
__global__ void attention_kernel(float *out, const float *q, const uint16_t *kc, const uint16_t *vc,
                                 const int32_t *seq, const int32_t *pos, int NH, int NKV, int HS, int n_seq,
                                 int n_ctx, int layer, float scale) {
    __shared__ float qs[ATT_MAX_HS];    // the query head
    __shared__ float wts[ATT_THREADS];  // the chunk's unnormalised probabilities
    int h = blockIdx.x, t = blockIdx.y, tid = threadIdx.x, P = pos[t] + 1;
    const float *qh = q + ((int64_t)t * NH + h) * HS;  // (HS)
    size_t base = kv_off(n_seq, NKV, n_ctx, HS, layer, seq[t], h / (NH / NKV), 0);
    const uint16_t *kh = kc + base, *vh = vc + base;  // (n_ctx, HS)
    for (int i = tid; i < HS; i += blockDim.x) qs[i] = qh[i];
    __syncthreads();
    float m = -INFINITY, l = 0.0f, acc0 = 0.0f, acc1 = 0.0f;
    for (int p0 = 0; p0 < P; p0 += ATT_THREADS) {
        int p = p0 + tid, n = P - p0 < ATT_THREADS ? P - p0 : ATT_THREADS;
        float sc = -INFINITY;
        if (p < P) {
            const uint16_t *kp = kh + (size_t)p * HS;
            float d = 0.0f;
            for (int i = 0; i < HS; i++) d += qs[i] * half_to_float(kp[i]);
            sc = d * scale;
        }
        float mn = fmaxf(m, block_max(sc));
        float e = p < P ? expf(sc - mn) : 0.0f;
        float corr = expf(m - mn);  // 0 on the first chunk (m = -inf)
        l = l * corr + block_sum(e);
        wts[tid] = e;  // block_sum's barriers: the previous chunk's readers are done
        __syncthreads();
        if (tid < HS) {
            float a = 0.0f;
            for (int j = 0; j < n; j++) a += wts[j] * half_to_float(vh[(size_t)(p0 + j) * HS + tid]);
            acc0 = acc0 * corr + a;
        }
        if (tid + ATT_THREADS < HS) {
            float a = 0.0f;
            for (int j = 0; j < n; j++) a += wts[j] * half_to_float(vh[(size_t)(p0 + j) * HS + tid + ATT_THREADS]);
            acc1 = acc1 * corr + a;
        }
        m = mn;
    }
    float *oh = out + ((int64_t)t * NH + h) * HS;  // (HS)
    if (tid < HS) oh[tid] = acc0 / l;
    if (tid + ATT_THREADS < HS) oh[tid + ATT_THREADS] = acc1 / l;
}

// ---------------------------------------------------------------------------- ops

static void cuda_kv_store(const kv_cache *kv, int layer, const float *k, const float *v, const int32_t *seq,
                          const int32_t *pos, int T) {
    int64_t n = (int64_t)T * kv->n_head_kv * kv->head_dim;
    if (enter() || n == 0) return;
    LAUNCH(kv_store_kernel, blocks_for(n), THREADS)(kv->k, kv->v, k, v, seq, pos, T, kv->n_seq, kv->n_head_kv, kv->n_ctx,
                                                  kv->head_dim, layer);
    launched("kv_store_kernel");
}

static void cuda_kv_copy(const kv_cache *kv, int dst, int src, int n) {
    int64_t total = (int64_t)kv->n_layer * kv->n_head_kv * n * kv->head_dim;
    if (enter() || total == 0 || dst == src) return;
    LAUNCH(kv_copy_kernel, blocks_for(total), THREADS)(kv->k, kv->v, dst, src, n, kv->n_layer, kv->n_seq,
                                                     kv->n_head_kv, kv->n_ctx, kv->head_dim);
    launched("kv_copy_kernel");
}

static void cuda_gather(float *out, const float *x, const int32_t *idx, int n, int C) {
    if (enter() || n == 0) return;
    LAUNCH(gather_kernel, blocks_for(C), THREADS)(out, x, idx, n, C);
    launched("gather_kernel");
}

static void cuda_add_bias(float *x, const float *b, int T, int N) {
    int64_t n = (int64_t)T * N;
    if (enter() || n == 0) return;
    LAUNCH(add_bias_kernel, blocks_for(n), THREADS)(x, b, n, N);
    launched("add_bias_kernel");
}

// y (T, N) = x (T, K) · W^T. Row-major y^T is column-major (N, T): y^T = W · x^T, with W
// (N, K) row-major read as column-major (K, N), transposed.
static void cuda_matmul(const model_tensor *w, const float *x, float *y, int T, void *scratch) {
    (void)scratch;
    if (enter() || T == 0) return;
    if (w->type != QTYPE_F32) {
        fail("cuda: matmul of a %s matrix (weights must come from ops_cuda.weights_prepare)", qtype_name(w->type));
        return;
    }
    const float one = 1.0f, zero = 0.0f;
    int N = (int)w->n_rows, K = (int)w->n_cols;
    pthread_mutex_lock(&g_dev.blas_mu);
    cublasStatus_t st = cublasSgemm(g_dev.blas, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &one, (const float *)w->data, K, x,
                                    K, &zero, y, N);
    pthread_mutex_unlock(&g_dev.blas_mu);
    if (st != CUBLAS_STATUS_SUCCESS) fail("cuda: cublasSgemm (%d x %d x %d): status %d", N, T, K, (int)st);
}

static void cuda_matmul_n(const model_tensor *const *w, const float *x, float *const *y, int n, int T, void *scratch) {
    for (int i = 0; i < n; i++) cuda_matmul(w[i], x, y[i], T, scratch);
}

static void cuda_rmsnorm(float *out, const float *x, const float *w, int T, int C, float eps) {
    if (enter() || T == 0) return;
    LAUNCH(rmsnorm_kernel, T, THREADS)(out, x, w, C, eps);
    launched("rmsnorm_kernel");
}

static void cuda_rope(float *q, float *k, const int32_t *pos, int T, int NH, int NKV, int HS, float theta,
                      rope_style style, const float *table) {
    int64_t n = (int64_t)T * (NH + NKV) * (HS / 2);
    if (enter() || n == 0) return;
    LAUNCH(rope_kernel, blocks_for(n), THREADS)(q, k, pos, T, NH, NKV, HS, theta, style == ROPE_NEOX ? 1 : 0, table);
    launched("rope_kernel");
}

static void cuda_swiglu(float *out, const float *gate, const float *up, int64_t n) {
    if (enter() || n == 0) return;
    LAUNCH(swiglu_kernel, blocks_for(n), THREADS)(out, gate, up, n);
    launched("swiglu_kernel");
}

static void cuda_add(float *x, const float *y, int64_t n) {
    if (enter() || n == 0) return;
    LAUNCH(add_kernel, blocks_for(n), THREADS)(x, y, n);
    launched("add_kernel");
}

static void cuda_attention(float *out, const float *q, const kv_cache *kv, int layer, const int32_t *seq,
                           const int32_t *pos, int T, int NH, int NKV, int HS) {
    if (enter() || T == 0) return;
    if (HS > ATT_MAX_HS || NKV < 1 || NH % NKV) {
        fail("cuda: attention with head size %d, %d heads over %d KV heads (at most %d, a whole group each)", HS, NH,
             NKV, ATT_MAX_HS);
        return;
    }
    LAUNCH(attention_kernel, dim3((unsigned)NH, (unsigned)T), ATT_THREADS)(out, q, kv->k, kv->v, seq, pos, NH, NKV, HS,
                                                                          kv->n_seq, kv->n_ctx, layer,
                                                                          1.0f / sqrtf((float)HS));
    launched("attention_kernel");
}

static void cuda_embed(float *out, const model_tensor *table, const int32_t *ids, int T) {
    if (enter() || T == 0) return;
    if (table->type != QTYPE_F32) {
        fail("cuda: embedding table of type %s (weights must come from ops_cuda.weights_prepare)",
             qtype_name(table->type));
        return;
    }
    LAUNCH(embed_kernel, T, THREADS)(out, (const float *)table->data, ids, (int)table->n_cols);
    launched("embed_kernel");
}

static const ops cuda_ops = {
    .name = "cuda",
    .host = 0,
    .alloc = cuda_alloc,
    .release = cuda_release,
    .upload = cuda_upload,
    .download = cuda_download,
    .weights_prepare = cuda_weights_prepare,
    .weights_release = cuda_weights_release,
    .matmul_scratch = cuda_matmul_scratch,
    .error = cuda_error,
    .kv_store = cuda_kv_store,
    .kv_copy = cuda_kv_copy,
    .gather = cuda_gather,
    .add_bias = cuda_add_bias,
    .matmul = cuda_matmul,
    .matmul_n = cuda_matmul_n,
    .rmsnorm = cuda_rmsnorm,
    .rope = cuda_rope,
    .swiglu = cuda_swiglu,
    .add = cuda_add,
    .attention = cuda_attention,
    .embed = cuda_embed,
};

static const ops *cuda_table(void) { return &cuda_ops; }
