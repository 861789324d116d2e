// test_checkpoint.c: checkpoints in the Hugging Face layout. Save → load is bit-exact
// (parameters, AdamW moments, state) for a Llama base in GGUF (RoPE-permuted q/k rows) and a
// Qwen2 base (biases); the checkpoint directory loads as a model whose logits are the trained
// parameters' logits; the written tokenizer.json tokenizes exactly like the original (the
// tiny tokenizer, and the default model's when it is present); a second save replaces the
// first atomically; a damaged checkpoint is refused with a message. Parameters that live on a
// (simulated, strict) device load and save through host copies to the same bytes.
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "model/forward.h"
#include "model/model.h"
#include "model/quant.h"
#include "model/tokenizer.h"
#include "tests/support/devsim.h"
#include "tests/support/tiny_model.h"
#include "trainer/checkpoint.h"
#include "trainer/lm.h"

static void fill(lm_params *p, unsigned seed) {
    for (size_t i = 0; i < p->n; i++) p->mem[i] = (float)((int)((i * 2654435761u + seed) % 2001) - 1000) * 1e-4f;
}

static void roundtrip(int arch) {
    char dir[256], gguf[300], ck[300];
    trl_err e = {{0}};
    assert_int_equal(tiny_model_tempdir(dir, sizeof(dir)), 0);
    snprintf(gguf, sizeof(gguf), "%s/base.gguf", dir);
    snprintf(ck, sizeof(ck), "%s/step-3", dir);
    tiny_model_spec s = tiny_model_default(arch);
    assert_int_equal(tiny_model_write_gguf(&s, 0, gguf, &e), TRL_OK);
    model base;
    assert_int_equal(model_load(&base, gguf, &e), TRL_OK);
    const model_config *c = &base.cfg;
    lm_params p, m, v, p2, m2, v2;
    assert_int_equal(lm_params_alloc(&p, c, NULL, &e) || lm_params_alloc(&m, c, NULL, &e) || lm_params_alloc(&v, c, NULL, &e) ||
                         lm_params_alloc(&p2, c, NULL, &e) || lm_params_alloc(&m2, c, NULL, &e) || lm_params_alloc(&v2, c, NULL, &e),
                     TRL_OK);
    assert_int_equal(lm_params_from_model(&p, &base, &e), TRL_OK);
    for (size_t i = 0; i < p.n; i++) p.mem[i] += 1e-3f * (float)(i % 7);  // "trained"
    fill(&m, 1), fill(&v, 2);
    checkpoint_state st = {17, 12345, 99, "{\"method\":\"reinforcement\"}", "{\"reward_mean\":0.5}"};
    assert_int_equal(checkpoint_save(ck, &base, &p, &m, &v, &st, &e), TRL_OK);
    checkpoint_state st2;
    assert_int_equal(checkpoint_load(ck, c, &p2, &m2, &v2, &st2, &e), TRL_OK);
    assert_memory_equal(p.mem, p2.mem, sizeof(float) * p.n);
    assert_memory_equal(m.mem, m2.mem, sizeof(float) * m.n);
    assert_memory_equal(v.mem, v2.mem, sizeof(float) * v.n);
    assert_int_equal(st2.step, 17);
    assert_true(st2.trained_tokens == 12345 && st2.seed == 99);
    assert_non_null(strstr(st2.config_json, "reinforcement"));
    assert_non_null(strstr(st2.metrics_json, "reward_mean"));
    checkpoint_state_free(&st2);

    // Device-resident parameters (tests/support/devsim.h, strict): loaded and saved again,
    // the same bytes as the host's checkpoint.
    devsim_reset(1);
    lm_params p3, m3, v3;
    assert_int_equal(lm_params_alloc(&p3, c, &train_ops_devsim, &e) || lm_params_alloc(&m3, c, &train_ops_devsim, &e) ||
                         lm_params_alloc(&v3, c, &train_ops_devsim, &e),
                     TRL_OK);
    assert_int_equal(checkpoint_load(ck, c, &p3, &m3, &v3, &st2, &e), TRL_OK);
    checkpoint_state_free(&st2);
    char ck2[300];
    snprintf(ck2, sizeof(ck2), "%s/step-4", dir);
    assert_int_equal(checkpoint_save(ck2, &base, &p3, &m3, &v3, &st, &e), TRL_OK);
    lm_params_free(&p3), lm_params_free(&m3), lm_params_free(&v3);
    if (devsim_violation()[0]) fail_msg("%s", devsim_violation());
    assert_int_equal(devsim_live(), 0);
    devsim_reset(0);
    const char *files[] = {"model.safetensors", "optimizer.safetensors"};
    for (int i = 0; i < 2; i++) {
        char a[400], b[400];
        size_t na, nb;
        snprintf(a, sizeof(a), "%s/%s", ck, files[i]), snprintf(b, sizeof(b), "%s/%s", ck2, files[i]);
        char *x = trl_read_file(a, &na, &e), *y = trl_read_file(b, &nb, &e);
        assert_non_null(x), assert_non_null(y);
        assert_int_equal(na, nb);
        assert_memory_equal(x, y, na);
        free(x), free(y);
    }

    // The directory is a model: same logits as the trained parameters (through lm_forward).
    model served;
    assert_int_equal(model_load(&served, ck, &e), TRL_OK);
    assert_int_equal(served.cfg.rope, ROPE_NEOX);
    int32_t ids[64];
    const char *text = "<|im_start|>user\nadd 7 and 8<|im_end|>\n";
    int n = tokenizer_encode(served.tok, text, strlen(text), 1, ids, 64);
    int n0 = tokenizer_encode(base.tok, text, strlen(text), 1, NULL, 0);
    assert_int_equal(n, n0);
    assert_true(n > 2 && n <= 64);
    lm_acts a;
    assert_int_equal(lm_acts_alloc(&a, c, n, NULL, &e), TRL_OK);
    assert_int_equal(lm_forward(&p, &a, c, ids, ids, n, &e), TRL_OK);
    engine en;
    assert_int_equal(engine_init(&en, &served, &ops_ref, 1, 64, 16, &e), TRL_OK);
    float *lg = malloc(sizeof(float) * (size_t)c->n_vocab);
    assert_int_equal(engine_feed(&en, 0, ids, n, lg, &e), TRL_OK);
    // (the engine's KV cache is fp16, relative step 2^-11; measured 2.3e-4 and 2.2e-4 of the
    // largest logit)
    double md = 0, mx = 1e-12;
    for (int i = 0; i < c->n_vocab; i++) {
        md = fmax(md, fabs(lg[i] - a.logits[(size_t)(n - 1) * c->n_vocab + i]));
        mx = fmax(mx, fabs(a.logits[(size_t)(n - 1) * c->n_vocab + i]));
    }
    assert_true(md / mx < 2e-3);
    // Quantized to Q8_0 for serving: every matrix re-encoded, logits within Q8_0 error.
    engine_free(&en);
    assert_int_equal(model_quantize(&served, QTYPE_Q8_0, &e), TRL_OK);
    assert_int_equal(served.layers[0].wq.type, QTYPE_Q8_0);
    assert_int_equal(served.tok_embd.type, QTYPE_Q8_0);
    assert_int_equal(engine_init(&en, &served, &ops_cpu, 1, 64, 16, &e), TRL_OK);
    assert_int_equal(engine_feed(&en, 0, ids, n, lg, &e), TRL_OK);
    double mq = 0, scale = 0;
    for (int i = 0; i < c->n_vocab; i++) {
        double ref = a.logits[(size_t)(n - 1) * c->n_vocab + i];
        mq = fmax(mq, fabs(lg[i] - ref));
        scale = fmax(scale, fabs(ref));
    }
    assert_true(mq > 0 && mq < 0.05 * scale + 1e-3);
    assert_int_equal(model_quantize(&served, QTYPE_Q4_K, &e), TRL_ERR);
    free(lg);
    engine_free(&en);
    lm_acts_free(&a);
    model_free(&served);

    // A second save of the same name replaces the first, leaving no temporary behind.
    st.step = 18;
    p.mem[0] = 42.0f;
    assert_int_equal(checkpoint_save(ck, &base, &p, NULL, NULL, &st, &e), TRL_OK);
    assert_int_equal(checkpoint_load(ck, c, &p2, NULL, NULL, &st2, &e), TRL_OK);
    assert_true(p2.mem[0] == 42.0f && st2.step == 18);
    checkpoint_state_free(&st2);
    char path[400];
    struct stat sb;
    snprintf(path, sizeof(path), "%s.tmp", ck);
    assert_int_not_equal(stat(path, &sb), 0);
    snprintf(path, sizeof(path), "%s.old", ck);
    assert_int_not_equal(stat(path, &sb), 0);
    // no optimizer file this time: asking for the moments is an error that names the file
    assert_int_equal(checkpoint_load(ck, c, &p2, &m2, &v2, &st2, &e), TRL_ERR);
    assert_non_null(strstr(e.msg, "optimizer.safetensors"));

    // A damaged weights file is refused with a message; the leftovers of a crash are cleaned.
    snprintf(path, sizeof(path), "%s/model.safetensors", ck);
    assert_int_equal(truncate(path, 1000), 0);
    assert_int_equal(checkpoint_load(ck, c, &p2, NULL, NULL, &st2, &e), TRL_ERR);
    assert_non_null(strstr(e.msg, "model.safetensors"));
    snprintf(path, sizeof(path), "%s.tmp", ck);
    assert_int_equal(mkdir(path, 0755), 0);  // as a crash mid-save would leave it
    assert_int_equal(checkpoint_save(ck, &base, &p, &m, &v, &st, &e), TRL_OK);
    assert_int_equal(checkpoint_load(ck, c, &p2, &m2, &v2, &st2, &e), TRL_OK);
    checkpoint_state_free(&st2);

    lm_params_free(&p), lm_params_free(&m), lm_params_free(&v);
    lm_params_free(&p2), lm_params_free(&m2), lm_params_free(&v2);
    model_free(&base);
    tiny_model_rmdir(dir);
}

static void test_roundtrip_llama(void **state) {
    (void)state;
    roundtrip(MODEL_ARCH_LLAMA);
}

static void test_roundtrip_qwen2(void **state) {
    (void)state;
    roundtrip(MODEL_ARCH_QWEN2);
}

// The default model's tokenizer written as tokenizer.json gives the same ids as the GGUF's.
static void test_default_tokenizer_json(void **state) {
    (void)state;
    const char *mp = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (access(mp, R_OK)) {
        skip();  // the default model is fetched by `make model`
        return;
    }
    trl_err e = {{0}};
    model m;
    assert_int_equal(model_load(&m, mp, &e), TRL_OK);
    char dir[256], path[300];
    assert_int_equal(tiny_model_tempdir(dir, sizeof(dir)), 0);
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    assert_int_equal(tokenizer_write_json(m.tok, path, &e), TRL_OK);
    tokenizer *t;
    assert_int_equal(tokenizer_init_json(&t, path, &e), TRL_OK);
    assert_int_equal(tokenizer_n_vocab(t), tokenizer_n_vocab(m.tok));
    const char *texts[] = {
        "Hello world", "  leading spaces and\ttabs\n\nnewlines", "numbers 1234567 and 3.14159",
        "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n",
        "<think>call get_weather</think>\n<tool_call>[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]</tool_call>",
        "unicode: café, naïve, 東京, emoji 🙂, Ελληνικά", "code: def f(x):\n    return x ** 2  # square",
        "don't won't I'm you're they'll", "   ", "a\u00a0b"};
    int32_t a[512], b[512];
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        int na = tokenizer_encode(m.tok, texts[i], strlen(texts[i]), 1, a, 512);
        int nb = tokenizer_encode(t, texts[i], strlen(texts[i]), 1, b, 512);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, sizeof(int32_t) * (size_t)na);
    }
    tokenizer_free(t);
    model_free(&m);
    tiny_model_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_llama),
        cmocka_unit_test(test_roundtrip_qwen2),
        cmocka_unit_test(test_default_tokenizer_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
