// test_smollm2.c: the default model (SmolLM2-135M-Instruct Q4_1) against llama.cpp.
// The reference (tests/fixtures/logits_smollm2.{json,bin}, made by
// tests/ref/make_logit_fixture.py with the PyPI llama-cpp-python) holds, for 4 prompts, the
// prompt ids, llama.cpp's full next-token logits, and its 32-token greedy continuation.
// We check: our tokenizer gives the same ids; our logits are within the measured tolerance
// and pick the same top token; the top-20 ranks agree; greedy decoding agrees with
// llama.cpp's at every step that is not a near-tie (see the tolerances below).
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "model/forward.h"
#include "model/matmul.h"
#include "model/model.h"
#include "model/sampler.h"
#include "model/tokenizer.h"

#define MODEL_PATH "models/SmolLM2-135M-Instruct.Q4_1.gguf"
#define FIX_JSON "tests/fixtures/logits_smollm2.json"
#define FIX_BIN "tests/fixtures/logits_smollm2.bin"

// Tolerances, measured (tests/fixtures/logits_smollm2.json, "noise_floor", "float64_check",
// "tolerance_suggestion"; reference: llama.cpp with an F16 KV cache, as ours): llama.cpp's own
// logits move by up to 1.09 when only its batch split, KV type or attention kernel changes,
// and an exact float64 forward pass over the same weights is 1.07 away from it (1.85 over the
// greedy steps). Our engine, which quantizes activations to 8 bits as llama.cpp does,
// measures 0.90 on these prompts. Limits: about 2x the engine's figure, under llama.cpp's
// suggestion (2.2).
#define LOGIT_MAX_ABS 1.7
#define KL_MAX 0.04
// A greedy step whose top-two gap in llama.cpp is below this is a near-tie: inside the noise
// floor above, either token is a faithful answer, and llama.cpp itself flips such steps
// between its own kernels.
#define ARGMAX_MARGIN 0.5

static model g_m;
static cJSON *g_fix;
static float *g_ref;  // (n_prompts, V)

static int setup(void **state) {
    (void)state;
    trl_err e = {{0}};
    if (model_load(&g_m, MODEL_PATH, &e)) {
        printf("skipped: default model not available (%s); run `make model`\n", e.msg);
        return 0;
    }
    size_t n = 0;
    char *js = trl_read_file(FIX_JSON, &n, &e);
    if (!js) return -1;
    g_fix = cJSON_Parse(js);
    free(js);
    size_t nb = 0;
    g_ref = (float *)trl_read_file(FIX_BIN, &nb, &e);
    return g_fix && g_ref ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    model_free(&g_m);
    cJSON_Delete(g_fix);
    free(g_ref);
    return 0;
}

#define NEED_MODEL()                                  \
    do {                                              \
        if (!g_m.tok) {                               \
            printf("skipped: default model missing\n"); \
            skip();                                   \
        }                                             \
    } while (0)

static int ids_of(const cJSON *arr, int32_t *out, int cap) {
    int n = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) if (n < cap) out[n++] = (int32_t)x->valueint;
    return n;
}

static void test_prompt_ids_match(void **state) {
    (void)state;
    NEED_MODEL();
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(g_fix, "prompts")) {
        const char *text = cJSON_GetObjectItem(p, "text")->valuestring;
        int32_t want[4096], got[4096];
        int nw = ids_of(cJSON_GetObjectItem(p, "ids"), want, 4096);
        int ng = tokenizer_encode(g_m.tok, text, strlen(text), 1, got, 4096);
        assert_int_equal(ng, nw);
        for (int i = 0; i < nw; i++)
            if (got[i] != want[i]) fail_msg("prompt '%s' token %d: %d vs llama.cpp %d", cJSON_GetObjectItem(p, "name")->valuestring, i, got[i], want[i]);
    }
}

static void test_logits_match(void **state) {
    (void)state;
    NEED_MODEL();
    int V = g_m.cfg.n_vocab, i = 0;
    float *lg = malloc(sizeof(float) * (size_t)V);
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(g_fix, "prompts")) {
        int32_t ids[4096];
        int n = ids_of(cJSON_GetObjectItem(p, "ids"), ids, 4096);
        engine en;
        trl_err e = {{0}};
        assert_int_equal(engine_init(&en, &g_m, &ops_cpu, 1, n + 8, 512, &e), TRL_OK);
        assert_int_equal(engine_feed(&en, 0, ids, n, lg, &e), TRL_OK);
        const float *ref = g_ref + (size_t)i * V;
        double md = 0, mr = -INFINITY, mo = -INFINITY, zr = 0, zo = 0, kl = 0;
        for (int v = 0; v < V; v++) {
            md = fmax(md, fabs((double)lg[v] - ref[v]));
            mr = fmax(mr, ref[v]), mo = fmax(mo, lg[v]);
        }
        for (int v = 0; v < V; v++) zr += exp(ref[v] - mr), zo += exp(lg[v] - mo);
        for (int v = 0; v < V; v++) {  // KL(llama.cpp || ours)
            double lp = ref[v] - mr - log(zr), lq = lg[v] - mo - log(zo);
            kl += exp(lp) * (lp - lq);
        }
        printf("  %-6s %4d tokens: max |logit - llama.cpp| = %.4f, KL = %.5f, top-1 %s\n",
               cJSON_GetObjectItem(p, "name")->valuestring, n, md, kl,
               sampler_argmax(lg, V) == sampler_argmax(ref, V) ? "same" : "DIFFERENT");
        assert_true(md <= LOGIT_MAX_ABS);
        assert_true(kl <= KL_MAX);
        assert_int_equal(sampler_argmax(lg, V), sampler_argmax(ref, V));
        // llama.cpp's top-20 tokens are (nearly all) in our top-20: ranks inside it can swap
        // where neighbouring logits are closer than the tolerance.
        const cJSON *t;
        int overlap = 0;
        cJSON_ArrayForEach(t, cJSON_GetObjectItem(p, "top20")) {
            int id = cJSON_GetArrayItem(t, 0)->valueint, better = 0;
            for (int v = 0; v < V; v++) better += lg[v] > lg[id];
            overlap += better < 20;
        }
        printf("         top-20 overlap %d/20\n", overlap);
        assert_true(overlap >= 16);
        engine_free(&en);
        i++;
    }
    free(lg);
}

static int margins_of(const cJSON *arr, double *out, int cap) {
    int n = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) if (n < cap) out[n++] = x->valuedouble;
    return n;
}

// One prompt of the fixture fed to a fresh engine: llama.cpp's greedy continuation (want, nw
// tokens) with its top-2 logit margins, and the logits of the first token to generate in lg.
typedef struct {
    int32_t want[64];
    double margin[64];
    int nw;
    engine en;
} greedy_case;

static void greedy_start(greedy_case *g, const cJSON *p, float *lg) {
    int32_t ids[4096];
    int n = ids_of(cJSON_GetObjectItem(p, "ids"), ids, 4096);
    g->nw = ids_of(cJSON_GetObjectItem(p, "greedy_ids"), g->want, 64);
    assert_int_equal(margins_of(cJSON_GetObjectItem(p, "greedy_margin"), g->margin, 64), g->nw);
    trl_err e = {{0}};
    assert_int_equal(engine_init(&g->en, &g_m, &ops_cpu, 1, n + g->nw + 8, 512, &e), TRL_OK);
    assert_int_equal(engine_feed(&g->en, 0, ids, n, lg, &e), TRL_OK);
}

// Teacher-forced: feed the prompt and llama.cpp's greedy tokens; at every step that is not
// a near-tie our argmax must be llama.cpp's token.
static void test_greedy_teacher_forced(void **state) {
    (void)state;
    NEED_MODEL();
    int V = g_m.cfg.n_vocab;
    float *lg = malloc(sizeof(float) * (size_t)V);
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(g_fix, "prompts")) {
        greedy_case g;
        greedy_start(&g, p, lg);
        trl_err e = {{0}};
        int same = 0, checked = 0;
        for (int k = 0; k < g.nw; k++) {
            int32_t tok = sampler_argmax(lg, V);
            same += tok == g.want[k];
            if (g.margin[k] >= ARGMAX_MARGIN) {
                checked++;
                if (tok != g.want[k])
                    fail_msg("prompt '%s' step %d: %d vs llama.cpp %d (llama.cpp margin %.2f)",
                             cJSON_GetObjectItem(p, "name")->valuestring, k, tok, g.want[k], g.margin[k]);
            }
            assert_int_equal(engine_feed(&g.en, 0, &g.want[k], 1, lg, &e), TRL_OK);
        }
        printf("  %-6s teacher-forced argmax equal at %d/%d steps (all %d non-tie steps)\n",
               cJSON_GetObjectItem(p, "name")->valuestring, same, g.nw, checked);
        engine_free(&g.en);
    }
    free(lg);
}

// Free-running: our own 32-token greedy continuation. It must equal llama.cpp's token for
// token up to the first near-tie step; the count of identical tokens is printed.
static void test_greedy_free_running(void **state) {
    (void)state;
    NEED_MODEL();
    int V = g_m.cfg.n_vocab;
    float *lg = malloc(sizeof(float) * (size_t)V);
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(g_fix, "prompts")) {
        greedy_case g;
        greedy_start(&g, p, lg);
        trl_err e = {{0}};
        int k = 0;
        for (; k < g.nw; k++) {
            int32_t tok = sampler_argmax(lg, V);
            if (tok != g.want[k]) {
                if (g.margin[k] >= ARGMAX_MARGIN)
                    fail_msg("prompt '%s' step %d: %d vs llama.cpp %d (margin %.2f)",
                             cJSON_GetObjectItem(p, "name")->valuestring, k, tok, g.want[k], g.margin[k]);
                break;
            }
            assert_int_equal(engine_feed(&g.en, 0, &tok, 1, lg, &e), TRL_OK);
        }
        if (k == g.nw) printf("  %-6s greedy 32/32 tokens identical to llama.cpp\n", cJSON_GetObjectItem(p, "name")->valuestring);
        else printf("  %-6s greedy identical for %d/32 tokens, then a near-tie (llama.cpp margin %.2f)\n",
                    cJSON_GetObjectItem(p, "name")->valuestring, k, g.margin[k]);
        engine_free(&g.en);
    }
    free(lg);
}

// One resident copy of the weights: once the loader has packed the quantized matrices, the
// GGUF mapping keeps only what is still read (metadata, vocabulary, norms, the odd embedding
// row), not the file's 100 MB of matrix rows. Reads the mapping's Rss from /proc/self/smaps.
static void test_file_pages_handed_back(void **state) {
    (void)state;
    NEED_MODEL();
    if (matmul_packed_bytes(g_m.layers[0].wq.type, g_m.layers[0].wq.n_rows, g_m.layers[0].wq.n_cols) == 0) {
        printf("skipped: this build packs nothing (no AVX2), so the file rows stay in use\n");
        skip();
    }
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) {
        printf("skipped: no /proc/self/smaps\n");
        skip();
    }
    char line[512];
    long size_kb = -1, rss_kb = -1;
    int in_map = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        char c;
        if (sscanf(line, "%lx-%lx%c", &lo, &hi, &c) == 3 && c == ' ') {  // a mapping's header line
            in_map = strstr(line, MODEL_PATH + 7) != NULL;                   // "SmolLM2-….gguf"
            continue;
        }
        if (!in_map) continue;
        if (!strncmp(line, "Size:", 5)) size_kb = strtol(line + 5, NULL, 10);
        if (!strncmp(line, "Rss:", 4)) rss_kb = strtol(line + 4, NULL, 10);
    }
    fclose(f);
    assert_true(size_kb > 50000);  // the mapping was found: the whole file (~100 MB)
    printf("  GGUF mapping: %ld kB, resident %ld kB\n", size_kb, rss_kb);
    assert_true(rss_kb >= 0 && rss_kb < size_kb / 5);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_pages_handed_back),
        cmocka_unit_test(test_prompt_ids_match),
        cmocka_unit_test(test_logits_match),
        cmocka_unit_test(test_greedy_teacher_forced),
        cmocka_unit_test(test_greedy_free_running),
    };
    return cmocka_run_group_tests_name("smollm2", tests, setup, teardown);
}
