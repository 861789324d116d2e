// bench_train.c: training throughput of the fp32 trainer on a model file: forward + backward
// (lm_forward / lm_backward, cross-entropy on every position) over B sequences of T tokens,
// then one AdamW step, best of R repetitions after a warm-up. Reports tokens/s, the achieved
// GFLOP/s (6 · N_matmul · tokens for the weight matmuls + the attention's 6 · L · T² · C per
// sequence, forward + backward) and the peak resident memory, as one JSON line.
//
//   build/bench_train --model models/SmolLM2-135M-Instruct.Q4_1.gguf [--batch 4] [--tokens 256]
//                     [--reps 3] [--threads 2]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cblas.h>

#include "base/util.h"
#include "model/model.h"
#include "trainer/adamw.h"
#include "trainer/lm.h"

void cli_set_threads(int n);
void cli_runtime_setup(char **argv);

static const char *opt(int argc, char **argv, const char *name, const char *def) {
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) return argv[i + 1];
    return def;
}

int main(int argc, char **argv) {
    cli_runtime_setup(argv);  // OpenBLAS kernels and OpenMP spinning for this host (cli/opts.c)
    const char *path = opt(argc, argv, "--model", "models/SmolLM2-135M-Instruct.Q4_1.gguf");
    int B = atoi(opt(argc, argv, "--batch", "4")), T = atoi(opt(argc, argv, "--tokens", "256"));
    int R = atoi(opt(argc, argv, "--reps", "3")), threads = atoi(opt(argc, argv, "--threads", "2"));
    if (B < 1 || T < 2 || R < 1) return fprintf(stderr, "bench_train: bad sizes\n"), 2;
    cli_set_threads(threads);
    trl_err e = {{0}};
    model m;
    if (model_load(&m, path, &e)) return fprintf(stderr, "bench_train: %s\n", e.msg), 1;
    const model_config *c = &m.cfg;
    lm_params p, g, mo, vo;
    lm_acts a;
    if (lm_params_alloc(&p, c, NULL, &e) || lm_params_from_model(&p, &m, &e) || lm_params_alloc(&g, c, NULL, &e) ||
        lm_params_alloc(&mo, c, NULL, &e) || lm_params_alloc(&vo, c, NULL, &e) || lm_acts_alloc(&a, c, T, NULL, &e))
        return fprintf(stderr, "bench_train: %s\n", e.msg), 1;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(T + 1));
    float *dlogp = malloc(sizeof(float) * (size_t)T);
    uint64_t st = 12345;
    double best = 1e30, best_opt = 1e30;
    for (int rep = 0; rep <= R; rep++) {  // rep 0 warms up
        double t0 = trl_now();
        for (int b = 0; b < B; b++) {
            for (int i = 0; i <= T; i++) {
                st = st * 6364136223846793005ull + 1442695040888963407ull;
                tok[i] = (int32_t)((st >> 33) % (uint64_t)c->n_vocab);
            }
            for (int i = 0; i < T; i++) dlogp[i] = -1.0f / (float)(B * T);
            if (lm_forward(&p, &a, c, tok, tok + 1, T, &e) || lm_backward(&p, &g, &a, c, tok, tok + 1, dlogp, T, &e))
                return fprintf(stderr, "bench_train: %s\n", e.msg), 1;
        }
        double t1 = trl_now();
        adamw_params ap = {0.9f, 0.999f, 1e-8f, 0.0f};
        adamw_update(p.mem, g.mem, mo.mem, vo.mem, (int64_t)p.n, 0.0f, &ap, rep + 1);  // lr 0: weights unchanged
        memset(g.mem, 0, sizeof(float) * g.n);
        double t2 = trl_now();
        if (rep > 0 && t1 - t0 < best) best = t1 - t0;
        if (rep > 0 && t2 - t1 < best_opt) best_opt = t2 - t1;
    }
    // Weight-matmul parameters: every projection and the vocabulary head (the embedding lookup is not a matmul).
    double C = c->n_embd, F = c->n_ff, QD = (double)c->n_head * c->head_dim, KVD = (double)c->n_head_kv * c->head_dim;
    double n_mat = c->n_layer * (C * QD * 2 + C * KVD * 2 + 3 * C * F) + (double)c->n_vocab * C;
    double tokens = (double)B * T;
    double flops = 6.0 * n_mat * tokens + 6.0 * c->n_layer * (double)T * T * QD * B;  // attention: QK and AV, fwd + bwd
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"engine\":\"toolrl\",\"batch\":%d,\"tokens\":%d,\"threads\":%d,\"fwd_bwd_s\":%.3f,\"tokens_per_s\":%.1f,"
           "\"gflops\":%.1f,\"adamw_s\":%.3f,\"peak_rss_mb\":%.0f,\"blas_core\":\"%s\"}\n",
           B, T, threads, best, tokens / best, flops / best / 1e9, best_opt, ru.ru_maxrss / 1024.0,
           openblas_get_corename());
    free(tok), free(dlogp);
    lm_acts_free(&a);
    lm_params_free(&p), lm_params_free(&g), lm_params_free(&mo), lm_params_free(&vo);
    model_free(&m);
    return 0;
}
