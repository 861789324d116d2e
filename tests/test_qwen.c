// test_qwen.c: Qwen2.5-Coder-0.5B-Instruct (Q4_K_M file: Q5_0, Q8_0, Q4_K, Q6_K, F32 tensors;
// qwen2, untied output), when models/qwen2.5-coder-0.5b.gguf is there (`make model
// MODEL=qwen2.5-coder-0.5b`, 491 MB: CI fetches only the default model, so this skips there).
// Checks: every matrix no kernel reads is converted at load (Q5_0 → Q8_0, Q4_K → Q4_1,
// Q6_K → Q8_0) and kept only as the packed copy, the untied embedding stays in the file;
// resident memory stays under 1 GB; the fast backend's logits agree with the reference
// backend's, which dequantizes the file's own rows (so the conversions and the 8-bit
// activations are all that separate them).
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "model/forward.h"
#include "model/matmul.h"
#include "model/model.h"
#include "model/quant.h"
#include "model/tokenizer.h"

#define MODEL_PATH "models/qwen2.5-coder-0.5b.gguf"
#define RSS_LIMIT_KB (1024L * 1024L)  // 1 GiB
// Measured fast-vs-reference on the prompt below: max |Δlogit| 0.23 (logits span -15..19.5);
// the limit is about twice that.
#define LOGIT_MAX_ABS 0.5

static model g_m;

static int setup(void **state) {
    (void)state;
    trl_err e = {{0}};
    if (model_load(&g_m, MODEL_PATH, &e)) {
        printf("skipped: %s (fetch it with `make model MODEL=qwen2.5-coder-0.5b`, 491 MB; CI does not)\n", e.msg);
        memset(&g_m, 0, sizeof(g_m));
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    model_free(&g_m);
    return 0;
}

#define NEED_MODEL()                                                   \
    do {                                                               \
        if (!g_m.tok) {                                                \
            printf("skipped: " MODEL_PATH " is not there\n");          \
            skip();                                                    \
        }                                                              \
    } while (0)

static long status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, key, n) && line[n] == ':') v = strtol(line + n + 1, NULL, 10);
    fclose(f);
    return v;
}

static void test_converted_at_load(void **state) {
    (void)state;
    NEED_MODEL();
    const model_config *c = &g_m.cfg;
    assert_int_equal(c->arch, MODEL_ARCH_QWEN2);
    assert_int_equal(c->n_layer, 24);
    assert_int_equal(c->n_embd, 896);
    assert_false(c->tied_embeddings);
    // The file's types, per llama.cpp's Q4_K_M mix on 896-wide rows (not a multiple of 256):
    // q/k/o/gate/up and half the v in Q5_0, half the down in Q4_K, half in Q6_K.
    assert_int_equal(g_m.n_converted[QTYPE_Q5_0], 5 * 24 + 12);
    assert_int_equal(g_m.n_converted[QTYPE_Q4_K], 12);
    assert_int_equal(g_m.n_converted[QTYPE_Q6_K], 12);
    if (matmul_packed_bytes(QTYPE_Q8_0, 16, 32) == 0) {
        printf("skipped: this build packs nothing (no AVX2): the converted rows are the weights\n");
        skip();
    }
    const model_layer *L = &g_m.layers[0];
    assert_int_equal(L->wq.type, QTYPE_Q5_0);  // the file's rows, for the trainer and ops_ref
    assert_int_equal(model_tensor_kernel_type(&L->wq), QTYPE_Q8_0);
    assert_non_null(L->wq.packed);
    int k4 = 0, k6 = 0;
    for (int l = 0; l < c->n_layer; l++) {
        const model_tensor *d = &g_m.layers[l].w_down;
        if (d->type == QTYPE_Q4_K) k4++, assert_int_equal(model_tensor_kernel_type(d), QTYPE_Q4_1);
        else if (d->type == QTYPE_Q6_K) k6++, assert_int_equal(model_tensor_kernel_type(d), QTYPE_Q8_0);
        assert_non_null(d->packed);
    }
    assert_int_equal(k4, 12);
    assert_int_equal(k6, 12);
    // The untied embedding: only looked up, so left in the file, in its own type, unpacked.
    assert_int_equal(g_m.tok_embd.type, QTYPE_Q5_0);
    assert_null(g_m.tok_embd.packed);
    assert_int_equal(g_m.output.type, QTYPE_Q8_0);  // already a kernel type: packed as it is
    assert_int_equal(model_tensor_kernel_type(&g_m.output), QTYPE_Q8_0);
}

// Fast backend vs reference backend on one prompt: the last token's logits.
static void test_logits_and_memory(void **state) {
    (void)state;
    NEED_MODEL();
    const char *prompt = "<|im_start|>user\nWrite a Python function is_even(n).<|im_end|>\n<|im_start|>assistant\n";
    int32_t ids[64];
    int n = tokenizer_encode(g_m.tok, prompt, strlen(prompt), 1, ids, 64);
    assert_true(n > 5 && n < 64);
    const int V = g_m.cfg.n_vocab;
    float *fast = malloc(sizeof(float) * (size_t)V), *ref = malloc(sizeof(float) * (size_t)V);
    trl_err e = {{0}};
    engine en;
    assert_int_equal(engine_init(&en, &g_m, &ops_cpu, 1, 128, 64, &e), 0);
    assert_int_equal(engine_feed(&en, 0, ids, n, fast, &e), 0);
    long rss = status_kb("VmRSS"), hwm = status_kb("VmHWM");
    printf("  resident after load and a %d-token prefill: VmRSS %ld kB, VmHWM %ld kB\n", n, rss, hwm);
    engine_free(&en);
    assert_int_equal(engine_init(&en, &g_m, &ops_ref, 1, 128, 64, &e), 0);
    assert_int_equal(engine_feed(&en, 0, ids, n, ref, &e), 0);
    engine_free(&en);
    double max_abs = 0, lo = INFINITY, hi = -INFINITY;
    int af = 0, ar = 0;
    for (int v = 0; v < V; v++) {
        max_abs = fmax(max_abs, fabs((double)fast[v] - ref[v]));
        lo = fmin(lo, ref[v]), hi = fmax(hi, ref[v]);
        if (fast[v] > fast[af]) af = v;
        if (ref[v] > ref[ar]) ar = v;
    }
    char piece[64];
    int np = tokenizer_decode(g_m.tok, ar, 0, piece, (int)sizeof(piece) - 1);
    piece[np > 0 ? np : 0] = 0;
    printf("  fast vs reference: max |dlogit| %.3f (reference logits span %.1f..%.1f); top token %d '%s' (fast %d)\n",
           max_abs, lo, hi, ar, piece, af);
    assert_true(max_abs < LOGIT_MAX_ABS);
    assert_int_equal(af, ar);
    if (rss < 0) {
        printf("  (no /proc/self/status: the memory bound is not checked)\n");
    } else {
        assert_true(rss < RSS_LIMIT_KB);
        assert_true(hwm < RSS_LIMIT_KB + RSS_LIMIT_KB / 4);  // the load's peak: one tensor's buffers more
    }
    free(fast), free(ref);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_converted_at_load),
        cmocka_unit_test(test_logits_and_memory),
    };
    return cmocka_run_group_tests_name("qwen2.5-coder-0.5b", tests, setup, teardown);
}
