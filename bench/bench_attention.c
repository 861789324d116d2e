// bench_attention.c: times the CPU backend's attention (ops_cpu.attention) alone on the
// shapes of evaluation: a prefill of P tokens of one sequence (P = 1024, 1536) and a batched
// decode step of 8 sequences, each one token at position P − 1, for SmolLM2-135M (9 query
// heads, 3 KV heads of 64), Qwen2.5-0.5B (14, 2 × 64) and Qwen2.5-1.5B (12, 2 × 128). The KV
// cache holds every layer of the model (random fp16), and calls cycle through the layers, so
// a decode step streams its keys and values from memory as the engine's does. Reports the
// fastest call, GFLOP/s (4·HS per query head and cache position: the scores and the weighted
// sum) and the whole model's attention time per forward pass (n_layer calls).
// Usage: bench_attention [threads (default 1)] [seconds per measurement (default 1)] [case:
// a substring of the names printed, e.g. "smollm2 prefill 1024" (default: all)]
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "model/ops.h"
#include "model/quant.h"

typedef struct {
    const char *name;
    int n_layer, NH, NKV, HS;
} attn_shape;

static const attn_shape shapes[] = {
    {"smollm2", 30, 9, 3, 64},
    {"qwen0.5b", 24, 14, 2, 64},
    {"qwen1.5b", 28, 12, 2, 128},
};

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

// One case: T tokens (seq, pos) against a cache of n_seq slots of n_ctx positions.
static void bench_case(const char *name, const attn_shape *s, int T, const int32_t *seq, const int32_t *pos,
                       int n_seq, int n_ctx, double secs) {
    size_t kvn = (size_t)s->n_layer * n_seq * s->NKV * n_ctx * s->HS;
    kv_cache kv = {host_alloc(kvn * 2), host_alloc(kvn * 2), s->n_layer, n_seq, n_ctx, s->NKV, s->HS};
    size_t qn = (size_t)T * s->NH * s->HS;
    float *q = host_alloc(qn * sizeof(float)), *out = host_alloc(qn * sizeof(float));  // (T, NH*HS) each
    if (!kv.k || !kv.v || !q || !out) {
        fprintf(stderr, "%s: out of memory\n", name);
        exit(1);
    }
    for (size_t i = 0; i < kvn; i++) kv.k[i] = fp32_to_fp16(frand()), kv.v[i] = fp32_to_fp16(frand());
    for (size_t i = 0; i < qn; i++) q[i] = 2 * frand();
    double flop = 0, best = 1e30;
    for (int t = 0; t < T; t++) flop += 4.0 * s->HS * s->NH * (pos[t] + 1);
    ops_cpu.attention(out, q, &kv, 0, seq, pos, T, s->NH, s->NKV, s->HS);  // warm-up
    double end = trl_now() + secs;
    int l = 0, calls = 0;
    do {
        double t0 = trl_now();
        ops_cpu.attention(out, q, &kv, l, seq, pos, T, s->NH, s->NKV, s->HS);
        double t = trl_now() - t0;
        best = t < best ? t : best;
        l = (l + 1) % s->n_layer, calls++;
    } while (trl_now() < end || calls < s->n_layer);
    printf("%-28s %9.3f ms/call %7.1f GFLOP/s  %8.1f ms per forward (%d layers)\n", name, best * 1e3,
           flop / best * 1e-9, best * 1e3 * s->n_layer, s->n_layer);
    fflush(stdout);
    host_release(kv.k), host_release(kv.v), host_release(q), host_release(out);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    double secs = argc > 2 ? atof(argv[2]) : 1.0;
    const char *only = argc > 3 ? argv[3] : "";
    omp_set_num_threads(threads > 0 ? threads : 1);
    enum { B = 8 };
    static const int lens[] = {1024, 1536};
    printf("attention, %d thread(s), fastest call of %.1f s each\n", threads, secs);
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
            int P = lens[k];
            char name[64];
            int32_t *seq = malloc(sizeof(int32_t) * P), *pos = malloc(sizeof(int32_t) * P);
            snprintf(name, sizeof(name), "%s prefill %d", shapes[i].name, P);
            for (int t = 0; t < P; t++) seq[t] = 0, pos[t] = t;
            if (strstr(name, only)) bench_case(name, &shapes[i], P, seq, pos, 1, P, secs);
            snprintf(name, sizeof(name), "%s decode %dx%d", shapes[i].name, B, P);
            for (int b = 0; b < B; b++) seq[b] = b, pos[b] = P - 1;
            if (strstr(name, only)) bench_case(name, &shapes[i], B, seq, pos, B, P, secs);
            free(seq), free(pos);
        }
    return 0;
}
