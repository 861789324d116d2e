// bench.c: `toolrl bench`: prefill and decode tokens/s of the engine on one model, printed
// as one JSON line in the same shape as bench/peer_llamacpp.py so bench/run.sh can compare.
// Prefill: one forward over P prompt tokens into an empty cache (best of R). Decode: after
// that prompt, N tokens generated one at a time at positions P..P+N-1, greedy (best of R),
// the same protocol as bench/peer_llamacpp.py. --batch B (B > 1) decodes B sequences
// together, one token each per forward pass, as the server's continuous batching does:
// decode_tps is then the aggregate (B·N tokens / seconds) and step_ms the time per pass.
// --device cuda:N runs it on the GPU (each pass ends with its logits downloaded: synchronous).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "model/forward.h"
#include "model/model.h"
#include "model/sampler.h"
#include "model/tokenizer.h"

static const cli_option BENCH_OPTIONS[] = {
    CLI_OPTION_MODEL,
    {.name = "--prompt-tokens", .arg = "P", .def = "128", .help = "prompt length of the prefill"},
    {.name = "--gen-tokens", .arg = "N", .def = "128", .help = "tokens decoded after the prompt"},
    CLI_OPTION_THREADS,
    CLI_OPTION_DEVICE,
    {.name = "--reps", .arg = "R", .def = "3", .help = "repetitions after one warm-up; the best counts"},
    {.name = "--batch", .arg = "B", .def = "1",
     .help = "sequences decoded together, 1 to 256; decode_tps is then their sum"},
    {0}};

static int cli_bench(const cli_args *a) {
    int P = (int)cli_get_int(a, "--prompt-tokens");
    int N = (int)cli_get_int(a, "--gen-tokens");
    int R = (int)cli_get_int(a, "--reps");
    int threads = (int)cli_get_int(a, "--threads");
    int B = (int)cli_get_int(a, "--batch");
    if (P < 1 || N < 1 || R < 1 || B < 1 || B > 256) {
        fprintf(stderr, "toolrl bench: counts must be ≥ 1 (--batch at most 256)\n");
        return 2;
    }
    cli_set_threads(threads);
    device dev;
    if (cli_device_open(a, &dev)) return 2;
    model m;
    if (cli_model_load(a, &m)) return 1;
    trl_err e = {{0}};
    // Deterministic prompt: an English paragraph repeated until P tokens.
    const char *para = "The quick brown fox jumps over the lazy dog while the committee reviews the budget for "
                       "next year, and a function call returns the weather in Paris as JSON. ";
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)(P + 64));
    int n = 0;
    while (toks && n < P) {
        int32_t buf[64];
        int k = tokenizer_encode(m.tok, para, strlen(para), 0, buf, 64);
        for (int i = 0; i < k && n < P; i++) toks[n++] = buf[i];
    }
    engine en;
    if (!toks || engine_init(&en, &m, dev.be, B, P + N + 8, P > 512 ? P : 512, &e)) {
        fprintf(stderr, "toolrl bench: %s\n", toks ? e.msg : "out of memory");
        free(toks);
        model_free(&m);
        return 1;
    }
    const int V = m.cfg.n_vocab;
    float *logits = malloc(sizeof(float) * (size_t)V * (size_t)B);       // (B, V)
    int32_t *btok = malloc(sizeof(int32_t) * (size_t)B * 2);             // (B) tokens, (B) seqs
    int32_t *bpos = malloc(sizeof(int32_t) * (size_t)B);                 // (B)
    int8_t *bwant = malloc((size_t)B);                                   // (B)
    double best_pp = 1e30, best_tg = 1e30;
    int rc = 0;
    if (!btok || !bpos || !bwant) {
        free(logits);
        logits = NULL;
    }
    for (int r = 0; r < R + 1 && logits && !rc; r++) {  // r = 0 warms up
        for (int s = 0; s < B; s++) engine_seq_reset(&en, s);
        double t0 = trl_now();
        if (engine_feed(&en, 0, toks, P, logits, &e)) rc = 1;
        double t1 = trl_now();
        if (r > 0 && t1 - t0 < best_pp) best_pp = t1 - t0;
        for (int s = 1; s < B && !rc; s++)  // the other sequences: same prompt, untimed
            if (engine_feed(&en, s, toks, P, logits + (size_t)s * V, &e)) rc = 1;
        double t2 = trl_now();
        for (int i = 0; i < N && !rc; i++) {
            for (int s = 0; s < B; s++) {
                btok[s] = sampler_argmax(logits + (size_t)s * V, V);
                btok[B + s] = s;
                bpos[s] = P + i;
                bwant[s] = 1;
            }
            engine_batch b = {B, btok, btok + B, bpos, bwant};
            if (engine_forward(&en, &b, logits, &e)) rc = 1;
        }
        double t3 = trl_now();
        if (r > 0 && t3 - t2 < best_tg) best_tg = t3 - t2;
    }
    if (rc || !logits) {
        fprintf(stderr, "toolrl bench: %s\n", logits ? e.msg : "out of memory");
    } else {
        printf("{\"engine\":\"toolrl\",\"device\":\"%s\",\"threads\":%d,\"prompt_tokens\":%d,\"prefill_tps\":%.2f,"
               "\"gen_tokens\":%d,\"decode_tps\":%.2f",
               dev.name, threads, P, P / best_pp, N, (double)B * N / best_tg);
        if (B > 1) printf(",\"batch\":%d,\"step_ms\":%.3f", B, 1e3 * best_tg / N);
        printf("}\n");
    }
    free(logits);
    free(btok);
    free(bpos);
    free(bwant);
    engine_free(&en);
    free(toks);
    model_free(&m);
    return rc;
}

const cli_command CLI_BENCH = {.name = "bench",
                               .summary = "Prefill and decode tokens/s of the engine on a model, as one JSON line.",
                               .usage = "--model PATH [options]",
                               .options = BENCH_OPTIONS,
                               .run = cli_bench};
