// test_forward.c: the forward pass on tiny random models the suite writes itself.
// - GGUF (Q/K rows permuted, NORM RoPE) and HF safetensors (NEOX RoPE) of the same weights
//   give the same logits, for Llama and for Qwen2 (QKV bias);
// - the fast CPU backend matches the fp32 reference backend;
// - one batched prefill equals feeding the prompt token by token (KV cache correctness);
// - several sequences decoding in one batch equal each sequence decoded alone;
// - a sequence given a copy of another's cache continues as if prefilled itself;
// - malformed batches are refused.
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
#include "model/model.h"
#include "model/quant.h"
#include "tests/support/tiny_model.h"

static double max_rel(const float *a, const float *b, size_t n) {
    double md = 0, mb = 1e-12;
    for (size_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mb = fmax(mb, fabs((double)b[i]));
    }
    return md / mb;
}

static const int32_t PROMPT[] = {5, 77, 3, 120, 250, 9, 64, 33, 200, 1, 17, 90};
#define NP ((int)(sizeof(PROMPT) / sizeof(PROMPT[0])))

// Logits (NP, V) of the prompt fed token by token through a fresh engine.
static float *logits_stepwise(const model *m, const ops *be) {
    engine en;
    trl_err e = {{0}};
    assert_int_equal(engine_init(&en, m, be, 1, 64, 16, &e), TRL_OK);
    int V = m->cfg.n_vocab;
    float *out = malloc(sizeof(float) * (size_t)NP * V);
    for (int i = 0; i < NP; i++) assert_int_equal(engine_feed(&en, 0, &PROMPT[i], 1, out + (size_t)i * V, &e), TRL_OK);
    engine_free(&en);
    return out;
}

static void load_pair(int arch, uint32_t wtype, model *g, model *h, char *dir) {
    tiny_model_spec s = tiny_model_default(arch);
    trl_err e = {{0}};
    assert_int_equal(tiny_model_tempdir(dir, 256), TRL_OK);
    char gp[300];
    snprintf(gp, sizeof(gp), "%s/tiny.gguf", dir);
    if (tiny_model_write_gguf(&s, wtype, gp, &e) || tiny_model_write_hf(&s, dir, &e)) fail_msg("%s", e.msg);
    if (model_load(g, gp, &e)) fail_msg("gguf: %s", e.msg);
    if (model_load(h, dir, &e)) fail_msg("hf: %s", e.msg);
}

static void test_gguf_equals_hf(void **state) {
    (void)state;
    for (int arch = 0; arch <= 1; arch++) {
        model g, h;
        char dir[256];
        load_pair(arch, QTYPE_F32, &g, &h, dir);
        assert_int_equal(g.cfg.rope, arch == MODEL_ARCH_LLAMA ? ROPE_NORM : ROPE_NEOX);
        assert_int_equal(h.cfg.rope, ROPE_NEOX);
        assert_int_equal(g.cfg.has_qkv_bias, arch == MODEL_ARCH_QWEN2);
        float *a = logits_stepwise(&g, &ops_ref), *b = logits_stepwise(&h, &ops_ref);
        double err = max_rel(a, b, (size_t)NP * g.cfg.n_vocab);
        if (err > 1e-5) fail_msg("arch %d: GGUF vs HF logits differ by %.3g", arch, err);
        free(a), free(b);
        model_free(&g), model_free(&h);
        tiny_model_rmdir(dir);
    }
}

static void test_cpu_matches_ref(void **state) {
    (void)state;
    uint32_t types[] = {QTYPE_F32, QTYPE_F16, QTYPE_Q8_0, QTYPE_Q4_1};
    double tol[] = {1e-4, 1e-4, 3e-2, 3e-2};  // quantized kernels round activations to 8 bits
    for (int i = 0; i < 4; i++) {
        model g, h;
        char dir[256];
        load_pair(MODEL_ARCH_LLAMA, types[i], &g, &h, dir);
        float *a = logits_stepwise(&g, &ops_ref), *b = logits_stepwise(&g, &ops_cpu);
        double err = max_rel(b, a, (size_t)NP * g.cfg.n_vocab);
        if (err > tol[i]) fail_msg("%s: cpu vs ref %.3g > %.3g", qtype_name(types[i]), err, tol[i]);
        free(a), free(b);
        model_free(&g), model_free(&h);
        tiny_model_rmdir(dir);
    }
}

static void test_prefill_equals_stepwise(void **state) {
    (void)state;
    model g, h;
    char dir[256];
    load_pair(MODEL_ARCH_QWEN2, QTYPE_F32, &g, &h, dir);
    int V = g.cfg.n_vocab;
    float *step = logits_stepwise(&h, &ops_cpu);
    engine en;
    trl_err e = {{0}};
    assert_int_equal(engine_init(&en, &h, &ops_cpu, 1, 64, 16, &e), TRL_OK);
    int32_t seq[NP], pos[NP];
    int8_t want[NP];
    for (int i = 0; i < NP; i++) seq[i] = 0, pos[i] = i, want[i] = 1;
    engine_batch b = {NP, PROMPT, seq, pos, want};
    float *all = malloc(sizeof(float) * (size_t)NP * V);
    assert_int_equal(engine_forward(&en, &b, all, &e), TRL_OK);
    assert_true(max_rel(all, step, (size_t)NP * V) < 1e-4);
    // engine_feed in chunks smaller than the prompt gives the last row too
    engine_seq_reset(&en, 0);
    engine_free(&en);
    assert_int_equal(engine_init(&en, &h, &ops_cpu, 1, 64, 5, &e), TRL_OK);
    float *last = malloc(sizeof(float) * (size_t)V);
    assert_int_equal(engine_feed(&en, 0, PROMPT, NP, last, &e), TRL_OK);
    assert_true(max_rel(last, step + (size_t)(NP - 1) * V, (size_t)V) < 1e-4);
    // truncating and re-feeding the tail reproduces it
    engine_seq_truncate(&en, 0, 4);
    assert_int_equal(engine_feed(&en, 0, PROMPT + 4, NP - 4, last, &e), TRL_OK);
    assert_true(max_rel(last, step + (size_t)(NP - 1) * V, (size_t)V) < 1e-4);
    free(all), free(last), free(step);
    engine_free(&en);
    model_free(&g), model_free(&h);
    tiny_model_rmdir(dir);
}

static void test_multi_sequence_batch(void **state) {
    (void)state;
    model g, h;
    char dir[256];
    load_pair(MODEL_ARCH_LLAMA, QTYPE_Q4_1, &g, &h, dir);
    int V = g.cfg.n_vocab;
    float *step = logits_stepwise(&g, &ops_cpu);
    // Three sequences holding the prompt at different offsets, advanced together.
    engine en;
    trl_err e = {{0}};
    assert_int_equal(engine_init(&en, &g, &ops_cpu, 3, 64, 8, &e), TRL_OK);
    int start[3] = {0, 3, 7};
    float *tmp = malloc(sizeof(float) * (size_t)V);
    for (int s = 0; s < 3; s++)
        if (start[s]) assert_int_equal(engine_feed(&en, s, PROMPT, start[s], tmp, &e), TRL_OK);
    float *out = malloc(sizeof(float) * 3 * (size_t)V);
    for (int i = 0; i + 7 < NP; i++) {
        int32_t tok[3], seq[3], pos[3];
        int8_t want[3] = {1, 1, 1};
        for (int s = 0; s < 3; s++) tok[s] = PROMPT[start[s] + i], seq[s] = s, pos[s] = start[s] + i;
        engine_batch b = {3, tok, seq, pos, want};
        assert_int_equal(engine_forward(&en, &b, out, &e), TRL_OK);
        for (int s = 0; s < 3; s++) {
            double err = max_rel(out + (size_t)s * V, step + (size_t)(start[s] + i) * V, (size_t)V);
            if (err > 1e-4) fail_msg("seq %d step %d: %.3g", s, i, err);
        }
    }
    free(tmp), free(out), free(step);
    engine_free(&en);
    model_free(&g), model_free(&h);
    tiny_model_rmdir(dir);
}

// engine_seq_copy: a sequence given a copy of another's first n positions (over a longer
// cache of its own) continues exactly as if it had been prefilled with those tokens itself.
static void test_seq_copy(void **state) {
    (void)state;
    model g, h;
    char dir[256];
    load_pair(MODEL_ARCH_LLAMA, QTYPE_Q4_1, &g, &h, dir);
    int V = g.cfg.n_vocab;
    engine en, fresh;
    trl_err e = {{0}};
    assert_int_equal(engine_init(&en, &g, &ops_cpu, 3, 64, 8, &e), TRL_OK);
    assert_int_equal(engine_init(&fresh, &g, &ops_cpu, 1, 64, 8, &e), TRL_OK);
    float *tmp = malloc(sizeof(float) * (size_t)V), *out = malloc(sizeof(float) * 3 * (size_t)V);
    int32_t other[10];
    for (int i = 0; i < 10; i++) other[i] = PROMPT[NP - 1 - i];
    assert_int_equal(engine_feed(&en, 2, other, 10, tmp, &e), TRL_OK);   // to be overwritten
    assert_int_equal(engine_feed(&en, 0, PROMPT, 7, tmp, &e), TRL_OK);
    assert_int_equal(engine_seq_copy(&en, 1, 0, 7, &e), TRL_OK);
    assert_int_equal(engine_seq_copy(&en, 2, 0, 5, &e), TRL_OK);          // a prefix
    assert_int_equal(en.seq_len[1], 7);
    assert_int_equal(en.seq_len[2], 5);
    int32_t tok[3] = {PROMPT[7], PROMPT[7], PROMPT[5]}, seq[3] = {0, 1, 2}, pos[3] = {7, 7, 5};
    int8_t want[3] = {1, 1, 1};
    engine_batch b = {3, tok, seq, pos, want};
    assert_int_equal(engine_forward(&en, &b, out, &e), TRL_OK);
    assert_memory_equal(out, out + V, sizeof(float) * (size_t)V);
    assert_int_equal(engine_feed(&fresh, 0, PROMPT, 6, tmp, &e), TRL_OK);
    assert_memory_equal(out + 2 * (size_t)V, tmp, sizeof(float) * (size_t)V);
    // Bad requests change nothing.
    assert_int_equal(engine_seq_copy(&en, 1, 2, 7, &e), TRL_ERR);  // sequence 2 holds 6
    assert_non_null(strstr(e.msg, "holds 6"));
    assert_int_equal(engine_seq_copy(&en, 3, 0, 1, &e), TRL_ERR);
    assert_int_equal(engine_seq_copy(&en, 0, -1, 1, &e), TRL_ERR);
    assert_int_equal(en.seq_len[1], 8);
    free(tmp), free(out);
    engine_free(&en), engine_free(&fresh);
    model_free(&g), model_free(&h);
    tiny_model_rmdir(dir);
}

static void test_bad_batches_refused(void **state) {
    (void)state;
    model g, h;
    char dir[256];
    load_pair(MODEL_ARCH_LLAMA, QTYPE_F32, &g, &h, dir);
    engine en;
    trl_err e = {{0}};
    assert_int_equal(engine_init(&en, &g, &ops_cpu, 2, 16, 4, &e), TRL_OK);
    int32_t tok[] = {1, 2}, seq[] = {0, 0}, pos[] = {0, 2};
    engine_batch b = {2, tok, seq, pos, NULL};
    assert_int_equal(engine_forward(&en, &b, NULL, &e), TRL_ERR);  // gap at position 1
    assert_non_null(strstr(e.msg, "gap"));
    int32_t badtok[] = {1 << 20};
    engine_batch b2 = {1, badtok, seq, pos, NULL};
    assert_int_equal(engine_forward(&en, &b2, NULL, &e), TRL_ERR);
    int32_t s9[] = {9};
    engine_batch b3 = {1, tok, s9, pos, NULL};
    assert_int_equal(engine_forward(&en, &b3, NULL, &e), TRL_ERR);
    int32_t far[] = {16};
    engine_batch b4 = {1, tok, seq, far, NULL};
    assert_int_equal(engine_forward(&en, &b4, NULL, &e), TRL_ERR);
    int32_t many[5] = {0};
    engine_batch b5 = {5, many, many, many, NULL};
    assert_int_equal(engine_forward(&en, &b5, NULL, &e), TRL_ERR);  // over max_batch
    engine_free(&en);
    model_free(&g), model_free(&h);
    tiny_model_rmdir(dir);
}

// A model file cut short anywhere is refused with a message, never read past its end.
static void test_truncated_gguf_refused(void **state) {
    (void)state;
    tiny_model_spec s = tiny_model_default(MODEL_ARCH_LLAMA);
    char dir[256], path[300], cut[300];
    trl_err e = {{0}};
    assert_int_equal(tiny_model_tempdir(dir, sizeof(dir)), TRL_OK);
    snprintf(path, sizeof(path), "%s/tiny.gguf", dir);
    snprintf(cut, sizeof(cut), "%s/cut.gguf", dir);
    assert_int_equal(tiny_model_write_gguf(&s, QTYPE_Q4_1, path, &e), TRL_OK);
    size_t n = 0;
    char *bytes = trl_read_file(path, &n, &e);
    assert_non_null(bytes);
    size_t sizes[] = {0, 3, 4, 20, 100, n / 4, n / 2, n - 64, n - 1};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        FILE *f = fopen(cut, "wb");
        assert_non_null(f);
        fwrite(bytes, 1, sizes[i], f);
        fclose(f);
        model m;
        e.msg[0] = 0;
        if (model_load(&m, cut, &e) == TRL_OK) fail_msg("a file cut at %zu of %zu bytes loaded", sizes[i], n);
        assert_true(strlen(e.msg) > 0);
    }
    model m;
    assert_int_equal(model_load(&m, path, &e), TRL_OK);  // the whole file still loads
    model_free(&m);
    free(bytes);
    tiny_model_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gguf_equals_hf),        cmocka_unit_test(test_cpu_matches_ref),
        cmocka_unit_test(test_prefill_equals_stepwise), cmocka_unit_test(test_multi_sequence_batch),
        cmocka_unit_test(test_seq_copy),              cmocka_unit_test(test_bad_batches_refused),
        cmocka_unit_test(test_truncated_gguf_refused),
    };
    return cmocka_run_group_tests_name("forward", tests, NULL, NULL);
}
