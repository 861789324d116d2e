// test_registry.c: the server's model registry on tiny models and a real job store: a
// fine-tuned model is loaded on its first request, a newer checkpoint is swapped in while a
// request still holds the old weights, and the old weights live until that request ends; a
// request to the base model completes while a checkpoint is loading.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#include "server/registry.h"
#include "store/store.h"
#include "tests/support/tiny_model.h"

// A base GGUF, two checkpoints of one fine-tuned model (step-1, and step-2 with other
// weights) and a store whose models row `id` points at step-1.
typedef struct {
    char dir[256], db[300], base_path[300], v1[300], v2[300];
    store *st;
} swap_fixture;

static void swap_fixture_open(swap_fixture *f, store_model_new *row, const char *id) {
    trl_err e = {{0}};
    assert_int_equal(tiny_model_tempdir(f->dir, sizeof(f->dir)), 0);
    snprintf(f->db, sizeof(f->db), "%s/t.db", f->dir);
    snprintf(f->base_path, sizeof(f->base_path), "%s/base.gguf", f->dir);
    snprintf(f->v1, sizeof(f->v1), "%s/step-1", f->dir);
    snprintf(f->v2, sizeof(f->v2), "%s/step-2", f->dir);
    tiny_model_spec s = tiny_model_default(0);
    assert_int_equal(tiny_model_write_gguf(&s, 0, f->base_path, &e), TRL_OK);
    mkdir(f->v1, 0755), mkdir(f->v2, 0755);
    assert_int_equal(tiny_model_write_hf(&s, f->v1, &e), TRL_OK);
    s.seed = 99;  // "trained further": other weights
    assert_int_equal(tiny_model_write_hf(&s, f->v2, &e), TRL_OK);
    assert_int_equal(store_open(&f->st, f->db, &e), TRL_OK);
    *row = (store_model_new){id, "fine-tuned", "base.gguf", NULL, f->v1, NULL};
    assert_int_equal(store_model_upsert(f->st, row, &e), TRL_OK);
}

static void test_swap(void **state) {
    (void)state;
    swap_fixture f;
    store_model_new row;
    swap_fixture_open(&f, &row, "ft:tiny:x:job1");
    trl_err e = {{0}};
    const char *db = f.db, *base_path = f.base_path, *v1 = f.v1, *v2 = f.v2;
    store *st = f.st;

    model base;
    assert_int_equal(model_load(&base, base_path, &e), TRL_OK);
    registry_config cfg = {.db_path = db,
                           .sched = {.n_slots = 2, .n_ctx = 128, .max_batch = 64, .max_queue = 4, .n_threads = 1},
                           .poll_ms = 60000,  // watcher idle: refresh by hand
                           .max_resident = 2};
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
    tiny_model_rmdir(f.dir);
}


// A load held open by the on_load hook until the main thread says so (or 20 s pass, so that a
// registry that loads under its lock fails the test instead of hanging it).
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered, released;
    atomic_int loading;  // 1 from the hook's start until the load it holds has returned
    registry *r;
    int swaps;
} load_gate;

static void gate_hook(void *ctx, const char *path) {
    (void)path;
    load_gate *g = ctx;
    pthread_mutex_lock(&g->mu);
    g->entered = 1;
    atomic_store(&g->loading, 1);
    pthread_cond_broadcast(&g->cv);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    while (!g->released && pthread_cond_timedwait(&g->cv, &g->mu, &until) == 0) {}
    pthread_mutex_unlock(&g->mu);
}

static void *refresh_thread(void *arg) {
    load_gate *g = arg;
    trl_err e = {{0}};
    g->swaps = registry_refresh(g->r, &e);
    atomic_store(&g->loading, 0);
    return NULL;
}

static void test_base_answers_during_load(void **state) {
    (void)state;
    swap_fixture f;
    store_model_new row;
    swap_fixture_open(&f, &row, "ft:tiny:x:job2");
    trl_err e = {{0}};
    const char *db = f.db, *base_path = f.base_path, *v2 = f.v2;
    store *st = f.st;

    load_gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    model base;
    assert_int_equal(model_load(&base, base_path, &e), TRL_OK);
    registry_config cfg = {.db_path = db,
                           .sched = {.n_slots = 2, .n_ctx = 128, .max_batch = 64, .max_queue = 4, .n_threads = 1},
                           .poll_ms = 60000,
                           .max_resident = 2,
                           .on_load = gate_hook,
                           .on_load_ctx = &g};
    registry *r;
    assert_int_equal(registry_init(&r, &cfg, &base, "base.gguf", "base", &e), TRL_OK);
    g.r = r;
    int status = 0;
    g.released = 1;  // the first load (on first request) passes the gate at once
    served_model *ft = registry_acquire(r, "ft:tiny:x:job2", &status, &e);
    assert_non_null(ft);
    registry_release(r, ft);
    g.released = 0, g.entered = 0;

    row.path = v2;
    assert_int_equal(store_model_upsert(st, &row, &e), TRL_OK);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, refresh_thread, &g), 0);
    pthread_mutex_lock(&g.mu);
    while (!g.entered) pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);

    // The checkpoint is loading now. A request to the base model must get through.
    served_model *b = registry_acquire(r, "base", &status, &e);
    assert_non_null(b);
    int32_t ids[] = {1, 2, 3, 4};
    sampler_params greedy = {0, 0, 1, 1};
    sched_req *q = sched_req_new(ids, 4, &greedy, 6, NULL, 0);
    assert_int_equal(scheduler_submit(b->sched, q), 0);
    size_t seen = 0;
    int rc;
    do {
        char *chunk = NULL;
        size_t n;
        rc = sched_req_take(q, &seen, &chunk, &n, 1000);
        free(chunk);
    } while (rc == 0);
    assert_int_equal(rc, 1);
    assert_null(sched_req_error(q));
    assert_int_equal(sched_req_completion_tokens(q), 6);
    int still_loading = atomic_load(&g.loading);
    sched_req_release(q);
    registry_release(r, b);

    pthread_mutex_lock(&g.mu);
    g.released = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(th, NULL);
    assert_true(still_loading);  // the request finished before the load did
    assert_int_equal(g.swaps, 1);
    ft = registry_acquire(r, "ft:tiny:x:job2", &status, &e);
    assert_string_equal(ft->path, v2);
    registry_release(r, ft);
    registry_free(r);
    store_close(st);
    tiny_model_rmdir(f.dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_swap), cmocka_unit_test(test_base_answers_during_load)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
