// test_backend_seam.c: the engine (model/forward.c) reaches a backend's memory only through
// the ops table's seam (ops.h: alloc/release, upload/download, weights_prepare, kv_store,
// kv_copy, gather, add_bias). Through the simulated device (tests/support/devsim.h, strict:
// the device heap is unreadable outside the ops):
// - prefill, several sequences decoding together with logits for some rows only, a sequence
//   given a copy of another's cache, QKV biases (Qwen2): logits bit-equal to ops_cpu's;
// - no op ever sees a host pointer, the engine never touches device memory itself, uploads
//   and downloads happen, and freeing the engine releases every device allocation.
// A GPU backend meets the same seam; this is how its absence of host access is tested here.
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
#include "tests/support/devsim.h"
#include "tests/support/tiny_model.h"

static const int32_t PROMPT[] = {5, 77, 3, 120, 250, 9, 64, 33, 200, 1, 17, 90};
#define NP ((int)(sizeof(PROMPT) / sizeof(PROMPT[0])))

// One script through an engine on backend be; the logits of every step, concatenated.
static float *run_script(const model *m, const ops *be, size_t *n_out) {
    int V = m->cfg.n_vocab;
    engine en;
    trl_err e = {{0}};
    if (engine_init(&en, m, be, 3, 64, 8, &e)) fail_msg("engine_init: %s", e.msg);
    float *out = calloc((size_t)V * 64, sizeof(float));
    size_t k = 0;
    // A prefill longer than max_batch (two chunks) and a shorter one.
    if (engine_feed(&en, 0, PROMPT, NP, out + k, &e)) fail_msg("%s", e.msg);
    k += (size_t)V;
    if (engine_feed(&en, 1, PROMPT + 2, 5, out + k, &e)) fail_msg("%s", e.msg);
    k += (size_t)V;
    // Sequence 2 gets a copy of sequence 0's first 6 positions.
    if (engine_seq_copy(&en, 2, 0, 6, &e)) fail_msg("%s", e.msg);
    // Three sequences decode together; logits of rows 0 and 2 only, then of all three.
    for (int step = 0; step < 3; step++) {
        int32_t tok[3] = {PROMPT[step], PROMPT[(step + 4) % NP], PROMPT[(step + 9) % NP]}, seq[3] = {0, 1, 2};
        int32_t pos[3] = {en.seq_len[0], en.seq_len[1], en.seq_len[2]};
        int8_t want[3] = {1, (int8_t)(step == 2), 1};
        engine_batch b = {3, tok, seq, pos, want};
        if (engine_forward(&en, &b, out + k, &e)) fail_msg("%s", e.msg);
        k += (size_t)V * (step == 2 ? 3 : 2);
    }
    engine_free(&en);
    *n_out = k;
    return out;
}

static void check_arch(int arch, uint32_t wtype) {
    tiny_model_spec s = tiny_model_default(arch);
    char dir[256], path[300];
    trl_err e = {{0}};
    assert_int_equal(tiny_model_tempdir(dir, sizeof(dir)), TRL_OK);
    snprintf(path, sizeof(path), "%s/tiny.gguf", dir);
    if (tiny_model_write_gguf(&s, wtype, path, &e)) fail_msg("%s", e.msg);
    model m;
    if (model_load(&m, path, &e)) fail_msg("%s", e.msg);
    size_t n_cpu, n_dev;
    float *want = run_script(&m, &ops_cpu, &n_cpu);
    devsim_reset(1);
    float *got = run_script(&m, &ops_devsim, &n_dev);
    if (devsim_violation()[0]) fail_msg("%s", devsim_violation());
    assert_int_equal(n_cpu, n_dev);
    assert_memory_equal(want, got, sizeof(float) * n_cpu);
    assert_true(devsim_uploads() > 0);
    assert_int_equal(devsim_downloads(), 5);  // one per call that asked for logits
    assert_int_equal(devsim_live(), 0);       // engine_free released everything it allocated
    devsim_reset(0);
    free(want), free(got);
    model_free(&m);
    tiny_model_rmdir(dir);
}

static void test_llama_through_the_seam(void **state) {
    (void)state;
    check_arch(MODEL_ARCH_LLAMA, QTYPE_Q4_1);
}

static void test_qwen2_bias_through_the_seam(void **state) {
    (void)state;
    check_arch(MODEL_ARCH_QWEN2, QTYPE_Q8_0);
}

// The check itself catches a host pointer handed to an op.
static void test_host_pointer_is_caught(void **state) {
    (void)state;
    devsim_reset(0);
    float *dev = ops_devsim.alloc(64 * sizeof(float)), host[64] = {0};
    ops_devsim.add(dev, host, 64);
    assert_non_null(strstr(devsim_violation(), "add"));
    ops_devsim.release(dev);
    assert_int_equal(devsim_live(), 0);
    devsim_reset(0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_through_the_seam),
        cmocka_unit_test(test_qwen2_bias_through_the_seam),
        cmocka_unit_test(test_host_pointer_is_caught),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
