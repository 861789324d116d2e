// test_registry.c: the server's model registry on tiny models and a real job store: a
// fine-tuned model is loaded on its first request, a newer checkpoint is swapped in while a
// request still holds the old weights, and the old weights live until that request ends.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "registry.h"
#include "store.h"
#include "tests/support/tiny_model.h"

static void test_swap(void **state) {
    (void)state;
    char dir[256], db[300], base_path[300], v1[300], v2[300];
    trl_err e = {{0}};
    assert_int_equal(tiny_model_tempdir(dir, sizeof(dir)), 0);
    snprintf(db, sizeof(db), "%s/t.db", dir);
    snprintf(base_path, sizeof(base_path), "%s/base.gguf", dir);
    snprintf(v1, sizeof(v1), "%s/step-1", dir);
    snprintf(v2, sizeof(v2), "%s/step-2", dir);
    tiny_model_spec s = tiny_model_default(0);
    assert_int_equal(tiny_model_write_gguf(&s, 0, base_path, &e), TRL_OK);
    mkdir(v1, 0755), mkdir(v2, 0755);
    assert_int_equal(tiny_model_write_hf(&s, v1, &e), TRL_OK);
    s.seed = 99;  // "trained further": other weights
    assert_int_equal(tiny_model_write_hf(&s, v2, &e), TRL_OK);
    store *st;
    assert_int_equal(store_open(&st, db, &e), TRL_OK);
    store_model_new row = {"ft:tiny:x:job1", "fine-tuned", "base.gguf", NULL, v1};
    assert_int_equal(store_model_upsert(st, &row, &e), TRL_OK);

    model base;
    assert_int_equal(model_load(&base, base_path, &e), TRL_OK);
    registry_config cfg = {db, {2, 128, 64, 4, 1}, NULL, 60000, 2};  // watcher idle: refresh by hand
    registry *r;
    assert_int_equal(registry_init(&r, &cfg, &base, "base.gguf", "base", &e), TRL_OK);
    int status = 0;
    served_model *b = registry_acquire(r, "base", &status, &e);  // alias
    assert_ptr_equal(b, registry_base(r));
    registry_release(r, b);
    assert_null(registry_acquire(r, "ft:nope", &status, &e));
    assert_int_equal(status, 404);

    served_model *a = registry_acquire(r, "ft:tiny:x:job1", &status, &e);
    assert_non_null(a);
    assert_string_equal(a->path, v1);
    assert_int_equal(a->generation, 0);
    float w_old = ((const float *)a->m.layers[0].wq.data)[3];
    assert_int_equal(registry_refresh(r, &e), 0);  // nothing newer yet

    row.path = v2;
    assert_int_equal(store_model_upsert(st, &row, &e), TRL_OK);
    assert_int_equal(registry_refresh(r, &e), 1);
    served_model *n = registry_acquire(r, "ft:tiny:x:job1", &status, &e);
    assert_non_null(n);
    assert_ptr_not_equal(n, a);
    assert_string_equal(n->path, v2);
    assert_int_equal(n->generation, 1);
    // the request that held the old weights still reads them, intact
    assert_true(((const float *)a->m.layers[0].wq.data)[3] == w_old);
    assert_true(((const float *)n->m.layers[0].wq.data)[3] != w_old);
    registry_release(r, a);  // last holder: the old weights are freed now (ASan checks)
    registry_release(r, n);
    assert_int_equal(registry_swaps(r), 1);

    // a path that does not load is reported once and the current weights stay
    row.path = "/nonexistent/ckpt";
    assert_int_equal(store_model_upsert(st, &row, &e), TRL_OK);
    assert_int_equal(registry_refresh(r, &e), 0);
    n = registry_acquire(r, "ft:tiny:x:job1", &status, &e);
    assert_string_equal(n->path, v2);
    registry_release(r, n);
    registry_free(r);
    store_close(st);
    tiny_model_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_swap)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
