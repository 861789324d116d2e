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
#include "tests/support/engine_script.h"
#include "tests/support/tiny_model.h"

// The engine script (tests/support/engine_script.h); a failure fails the test.
static float *run_script(const model *m, const ops *be, size_t *n_out) {
    trl_err e = {{0}};
    float *out = engine_script_run(m, be, n_out, &e);
    if (!out) fail_msg("engine script: %s", e.msg);
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
