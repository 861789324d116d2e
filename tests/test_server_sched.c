// test_server_sched.c: the continuous-batching scheduler on a tiny random model: many requests
// over few slots with chunked prefill all finish with their limits honoured, identical greedy
// requests batched together give identical text, stop strings cut the text, a full queue
// refuses, and cancelled requests free their slots.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "model/model.h"
#include "model/quant.h"
#include "model/tokenizer.h"
#include "server/scheduler.h"
#include "tests/support/sched_drain.h"
#include "tests/support/tiny_model.h"

static model g_model;
static char g_dir[256];

static int setup(void **state) {
    (void)state;
    tiny_model_spec s = tiny_model_default(MODEL_ARCH_LLAMA);
    trl_err e = {{0}};
    char path[300];
    if (tiny_model_tempdir(g_dir, sizeof(g_dir))) return -1;
    snprintf(path, sizeof(path), "%s/tiny.gguf", g_dir);
    if (tiny_model_write_gguf(&s, QTYPE_F32, path, &e) || model_load(&g_model, path, &e)) {
        fprintf(stderr, "setup: %s\n", e.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    model_free(&g_model);
    return 0;
}

static int32_t *encode(const char *text, int *n) {
    int need = tokenizer_encode(g_model.tok, text, strlen(text), 1, NULL, 0);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)need);
    assert_non_null(ids);
    *n = tokenizer_encode(g_model.tok, text, strlen(text), 1, ids, need);
    return ids;
}

static char *drain(sched_req *r) {
    char *t = sched_drain(r);
    assert_non_null(t);
    return t;
}

static void test_many_requests_few_slots(void **state) {
    (void)state;
    scheduler *s;
    trl_err e = {{0}};
    scheduler_config cfg = {3, 128, 8, 16, 0, NULL};  // 3 slots, prefill in chunks of at most 8 tokens
    assert_int_equal(scheduler_init(&s, &g_model, &cfg, &e), TRL_OK);
    const char *prompts[] = {"hello world, this is a prompt", "abc", "the quick brown fox jumps over", "x y z",
                             "hello world, this is a prompt", "some more words here"};
    enum { N = 6 };
    sched_req *r[N];
    sampler_params greedy = {0, 0, 1, 1};
    for (int i = 0; i < N; i++) {
        int n;
        int32_t *ids = encode(prompts[i], &n);
        r[i] = sched_req_new(ids, n, &greedy, 5 + i, NULL, 0);
        free(ids);
        assert_non_null(r[i]);
        assert_int_equal(scheduler_submit(s, r[i]), 0);
    }
    char *text[N];
    for (int i = 0; i < N; i++) {
        text[i] = drain(r[i]);
        assert_null(sched_req_error(r[i]));
        int got = sched_req_completion_tokens(r[i]);
        const char *fr = sched_req_finish_reason(r[i]);
        if (!strcmp(fr, "length")) assert_int_equal(got, 5 + i);
        else assert_true(got < 5 + i);
    }
    // the same prompt, greedy: the same text up to the shorter limit
    assert_int_equal(strncmp(text[0], text[4], strlen(text[0])), 0);
    const scheduler_stats *st = scheduler_get_stats(s);
    assert_true(atomic_load(&st->steps) > 0);
    assert_int_equal(atomic_load(&st->active), 0);
    for (int i = 0; i < N; i++) {
        free(text[i]);
        sched_req_release(r[i]);
    }
    scheduler_free(s);
}

static void test_stop_string(void **state) {
    (void)state;
    scheduler *s;
    trl_err e = {{0}};
    scheduler_config cfg = {2, 128, 64, 4, 0, NULL};
    assert_int_equal(scheduler_init(&s, &g_model, &cfg, &e), TRL_OK);
    int n;
    int32_t *ids = encode("hello there", &n);
    sampler_params greedy = {0, 0, 1, 1};
    sched_req *a = sched_req_new(ids, n, &greedy, 20, NULL, 0);
    assert_int_equal(scheduler_submit(s, a), 0);
    char *full = drain(a);
    if (strlen(full) >= 4) {  // stop at the text's 3rd..4th bytes
        char stop[3] = {full[2], full[3], 0};
        const char *stops[] = {stop};
        sched_req *b = sched_req_new(ids, n, &greedy, 20, stops, 1);
        assert_int_equal(scheduler_submit(s, b), 0);
        char *cut = drain(b);
        assert_string_equal(sched_req_finish_reason(b), "stop");
        assert_null(strstr(cut, stop));
        assert_int_equal(strncmp(cut, full, strlen(cut)), 0);
        free(cut);
        sched_req_release(b);
    }
    free(full);
    free(ids);
    sched_req_release(a);
    scheduler_free(s);
}

static void test_queue_full_and_cancel(void **state) {
    (void)state;
    scheduler *s;
    trl_err e = {{0}};
    scheduler_config cfg = {1, 128, 16, 2, 0, NULL};
    assert_int_equal(scheduler_init(&s, &g_model, &cfg, &e), TRL_OK);
    int n;
    int32_t *ids = encode("a long enough prompt", &n);
    sampler_params sp = {1.0f, 0, 1, 7};
    enum { N = 8 };
    sched_req *r[N];
    int accepted = 0, refused = 0;
    for (int i = 0; i < N; i++) {
        r[i] = sched_req_new(ids, n, &sp, 100, NULL, 0);
        if (scheduler_submit(s, r[i]) == 0) accepted++;
        else refused++;
    }
    assert_true(refused >= 1);
    assert_true(accepted >= 2);
    for (int i = 0; i < N; i++) sched_req_release(r[i]);  // cancels whatever runs or waits
    const scheduler_stats *st = scheduler_get_stats(s);
    for (int k = 0; k < 1000 && (atomic_load(&st->active) || atomic_load(&st->queue_depth)); k++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(atomic_load(&st->active), 0);
    assert_int_equal(atomic_load(&st->queue_depth), 0);
    free(ids);
    scheduler_free(s);
}

// Runs one request to the end on s; returns its text (malloc'd) and its cached-token count.
static char *run_one(scheduler *s, const int32_t *ids, int n, const sampler_params *sp, int max_tokens, int *cached) {
    sched_req *r = sched_req_new(ids, n, sp, max_tokens, NULL, 0);
    assert_non_null(r);
    assert_int_equal(scheduler_submit(s, r), 0);
    char *text = drain(r);
    assert_null(sched_req_error(r));
    *cached = sched_req_cached_tokens(r);
    sched_req_release(r);
    return text;
}

// The tiny model with Q8_0 weights (batch-invariant kernels), written to g_dir/name and
// loaded; n_ctx 0 keeps the spec's.
static void load_tiny_q8(model *m, const char *name, int n_ctx) {
    tiny_model_spec spec = tiny_model_default(MODEL_ARCH_LLAMA);
    if (n_ctx) spec.n_ctx = n_ctx;
    trl_err e = {{0}};
    char path[300];
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    assert_int_equal(tiny_model_write_gguf(&spec, QTYPE_Q8_0, path, &e), TRL_OK);
    assert_int_equal(model_load(m, path, &e), TRL_OK);
    assert_int_equal(m->layers[0].wq.type, QTYPE_Q8_0);
}

// Prompt caching: a slot keeps the longest prefix its cached tokens share with the next
// prompt, and what comes out is exactly what a fresh scheduler gives (quantized weights,
// whose kernels are batch-invariant: the suffix alone goes through other matmul paths than
// the whole prompt does). The same prompt again reuses all but its last token; a longer one
// its whole start; an unrelated one nothing past the first tokens they share.
static void test_prompt_cache(void **state) {
    (void)state;
    trl_err e = {{0}};
    model mq;
    load_tiny_q8(&mq, "tiny-q8.gguf", 0);
    scheduler_config cfg = {1, 128, 16, 8, 0, NULL};  // one slot: every request lands in it
    scheduler *s;
    assert_int_equal(scheduler_init(&s, &mq, &cfg, &e), TRL_OK);
    int np, nx, nu;
    int32_t *p = encode("the quick brown fox jumps over the lazy dog and keeps on running far away", &np);
    int32_t *x = encode(" then it rests by a river", &nx);
    int32_t *u = encode("zzz qqq", &nu);
    int32_t *px = malloc(sizeof(int32_t) * (size_t)(np + nx));
    memcpy(px, p, sizeof(int32_t) * (size_t)np);
    memcpy(px + np, x, sizeof(int32_t) * (size_t)nx);
    sampler_params greedy = {0, 0, 1, 1}, warm = {0.9f, 0, 1, 1234};
    struct {
        const int32_t *ids;
        int n;
        const sampler_params *sp;
    } runs[] = {{p, np, &greedy}, {p, np, &greedy}, {px, np + nx, &warm}, {u, nu, &greedy}, {p, np, &warm}};
    int cached[5];
    for (int i = 0; i < 5; i++) {
        char *got = run_one(s, runs[i].ids, runs[i].n, runs[i].sp, 12, &cached[i]);
        scheduler *fresh;
        assert_int_equal(scheduler_init(&fresh, &mq, &cfg, &e), TRL_OK);
        int c0;
        char *want = run_one(fresh, runs[i].ids, runs[i].n, runs[i].sp, 12, &c0);
        assert_int_equal(c0, 0);
        assert_string_equal(got, want);
        free(got), free(want);
        scheduler_free(fresh);
    }
    assert_int_equal(cached[0], 0);
    assert_int_equal(cached[1], np - 1);
    assert_true(cached[2] >= np && cached[2] <= np + nx - 1);
    int shared = 0;  // the leading tokens the unrelated prompt has in common with p (a BOS)
    while (shared < nu && shared < np && u[shared] == p[shared]) shared++;
    assert_true(shared < nu - 1);
    assert_int_equal(cached[3], shared);
    assert_int_equal(cached[4], shared);
    const scheduler_stats *st = scheduler_get_stats(s);
    long sum = 0;
    for (int i = 0; i < 5; i++) sum += cached[i];
    assert_int_equal(atomic_load(&st->prompt_tokens_cached), sum);
    scheduler_free(s);
    free(p), free(x), free(u), free(px);
    model_free(&mq);
}

// A prompt whose start another slot holds, that slot busy decoding, gets a copy of those
// positions (engine_seq_copy) instead of computing them, and what comes out is exactly what a
// fresh scheduler gives. A free slot's history is not discarded while an emptier one is free.
// A prompt another slot is prefilling right now waits for those positions and copies them.
static void test_prompt_copy(void **state) {
    (void)state;
    trl_err e = {{0}};
    model mq;
    load_tiny_q8(&mq, "tiny-q8-long.gguf", 1024);
    scheduler_config cfg = {2, 1024, 16, 8, 0, NULL};
    int np, nx;
    int32_t *p = encode("the quick brown fox jumps over the lazy dog and keeps on running far away", &np);
    int32_t *x = encode(" then it rests by a river", &nx);
    int32_t *px = malloc(sizeof(int32_t) * (size_t)(np + nx));
    memcpy(px, p, sizeof(int32_t) * (size_t)np);
    memcpy(px + np, x, sizeof(int32_t) * (size_t)nx);
    sampler_params greedy = {0, 0, 1, 1};
    scheduler *s;
    // What p gives on its own, and that px runs long (to its token limit, no end-of-turn):
    // px's slot stays busy while p is admitted below.
    assert_int_equal(scheduler_init(&s, &mq, &cfg, &e), TRL_OK);
    int c0;
    char *want = run_one(s, p, np, &greedy, 12, &c0);
    scheduler_free(s);
    assert_int_equal(scheduler_init(&s, &mq, &cfg, &e), TRL_OK);
    sched_req *lr = sched_req_new(px, np + nx, &greedy, 600, NULL, 0);
    assert_int_equal(scheduler_submit(s, lr), 0);
    free(drain(lr));
    assert_string_equal(sched_req_finish_reason(lr), "length");
    sched_req_release(lr);
    scheduler_free(s);

    assert_int_equal(scheduler_init(&s, &mq, &cfg, &e), TRL_OK);
    lr = sched_req_new(px, np + nx, &greedy, 600, NULL, 0);
    assert_int_equal(scheduler_submit(s, lr), 0);
    size_t seen = 0, n;
    char *chunk = NULL;
    while (!chunk) assert_int_equal(sched_req_take(lr, &seen, &chunk, &n, 1000), 0);  // decoding now
    free(chunk);
    int cached;
    char *got = run_one(s, p, np, &greedy, 12, &cached);
    assert_int_equal(sched_req_take(lr, &seen, &chunk, &n, 0), 0);  // still running: p took the other slot
    free(chunk);
    assert_int_equal(cached, np - 1);
    assert_int_equal(atomic_load(&scheduler_get_stats(s)->prompt_tokens_copied), np - 1);
    assert_string_equal(got, want);
    sched_req_release(lr);
    scheduler_free(s);

    // Two free slots: an unrelated prompt takes the empty one rather than the one holding p,
    // so p comes back to all but its last token cached.
    assert_int_equal(scheduler_init(&s, &mq, &cfg, &e), TRL_OK);
    int nu, c1, c2, c3;
    int32_t *u = encode("zzz qqq", &nu);
    free(run_one(s, p, np, &greedy, 12, &c1));
    free(run_one(s, u, nu, &greedy, 12, &c2));
    char *again = run_one(s, p, np, &greedy, 12, &c3);
    assert_int_equal(c1, 0);
    assert_int_equal(c3, np - 1);
    assert_string_equal(again, want);
    free(again), free(u);
    scheduler_free(s);

    // The same prompt twice at once (as n choices are): the second waits for the first's
    // prefill (up to 31 positions short of it) and copies it.
    assert_int_equal(scheduler_init(&s, &mq, &cfg, &e), TRL_OK);
    sched_req *a = sched_req_new(p, np, &greedy, 12, NULL, 0), *b = sched_req_new(p, np, &greedy, 12, NULL, 0);
    assert_int_equal(scheduler_submit(s, a), 0);
    assert_int_equal(scheduler_submit(s, b), 0);
    char *ta = drain(a), *tb = drain(b);
    assert_string_equal(ta, want);
    assert_string_equal(tb, want);
    assert_int_equal(sched_req_cached_tokens(a), 0);
    assert_true(sched_req_cached_tokens(b) >= np - 32);
    assert_int_equal(atomic_load(&scheduler_get_stats(s)->prompt_tokens_copied), sched_req_cached_tokens(b));
    free(ta), free(tb);
    sched_req_release(a), sched_req_release(b);
    scheduler_free(s);
    free(got), free(want), free(p), free(x), free(px);
    model_free(&mq);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_requests_few_slots),
        cmocka_unit_test(test_stop_string),
        cmocka_unit_test(test_queue_full_and_cancel),
        cmocka_unit_test(test_prompt_cache),
        cmocka_unit_test(test_prompt_copy),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
