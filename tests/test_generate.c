// test_generate.c: the one generator (model/generate.h) behind its three callers. For the same
// prompt, seed and weights, the evaluator (eval/runner.c), the server's scheduler
// (server/scheduler.c) and GRPO rollouts (trainer/rollout.c) give the same text: greedy on
// real BFCL prompts through all three, and sampled (temperature 0.9, seeds s, s+1, s+2)
// through the scheduler and a rollout group. Then the stop rules on the generator itself.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/pyjson.h"
#include "eval/runner.h"
#include "model/generate.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "server/scheduler.h"
#include "tests/support/sched_drain.h"
#include "tests/support/shared_data.h"
#include "tests/support/tiny_model.h"
#include "trainer/rollout.h"

typedef tiny_model_fixture fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof(*f));
    if (!f || tiny_model_fixture_open(f, 4096)) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    tiny_model_fixture_close(*state);
    free(*state);
    return 0;
}

static int32_t *encode(const model *m, const char *text, int *n) {
    int need = tokenizer_encode(m->tok, text, strlen(text), 1, NULL, 0);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(need + 1));
    assert_non_null(ids);
    *n = tokenizer_encode(m->tok, text, strlen(text), 1, ids, need + 1);
    return ids;
}

// The whole reply of one scheduler request.
static char *sched_text(scheduler *s, const int32_t *ids, int n, sampler_params sp, int max_tokens) {
    sched_req *q = sched_req_new(ids, n, &sp, max_tokens, NULL, 0);
    assert_int_equal(scheduler_submit(s, q), 0);
    char *all = sched_drain(q);
    assert_non_null(all);
    assert_null(sched_req_error(q));
    sched_req_release(q);
    return all;
}

static void test_three_callers_agree_greedy(void **state) {
    fx *f = *state;
    char probe[512];
    NEED_SHARED(probe, "bfcl/BFCL_v4_simple_python.json");
    const int max_new = 12;
    trl_err e = {{0}};
    eval_opts o = {.suite = "bfcl", .categories = "simple_python,irrelevance", .limit = 2, .batch = 3,
                   .max_new = max_new, .n_ctx = 4096};
    eval_run r;
    assert_int_equal(eval_run_all(&r, &f->m, &o, &e), TRL_OK);
    char path[320];
    snprintf(path, sizeof(path), "%s/report.json", f->dir);
    assert_int_equal(eval_run_report(&r, path, "tiny", &e), TRL_OK);
    eval_run_free(&r);
    size_t len = 0;
    char *txt = trl_read_file(path, &len, &e);
    assert_non_null(txt);
    cJSON *rep = pyjson_parse(txt, len, &e);
    free(txt);
    assert_non_null(rep);
    const cJSON *rows = cJSON_GetObjectItem(rep, "rows");
    assert_true(cJSON_GetArraySize(rows) == 4);

    scheduler *s;
    scheduler_config sc = {.n_slots = 2, .n_ctx = 4096, .max_batch = 64, .max_queue = 8, .n_threads = 1};
    assert_int_equal(scheduler_init(&s, &f->m, &sc, &e), TRL_OK);
    rollout ro;
    assert_int_equal(rollout_init(&ro, &f->m, NULL, 2, 4096, max_new, &e), TRL_OK);
    const cJSON *row;
    int compared = 0;
    cJSON_ArrayForEach(row, rows) {
        const char *prompt = cJSON_GetObjectItem(row, "prompt")->valuestring;
        const char *want = cJSON_GetObjectItem(row, "output")->valuestring;
        int n;
        int32_t *ids = encode(&f->m, prompt, &n);
        char *a = sched_text(s, ids, n, (sampler_params){.temperature = 0, .top_p = 1}, max_new);
        const int32_t *pp[1] = {ids};
        assert_int_equal(rollout_run(&ro, pp, &n, 1, 1, 0.0f, 1, &e), TRL_OK);
        assert_string_equal(a, want);
        assert_string_equal(ro.out[0].text, want);
        assert_true(strlen(want) > 0);
        free(a);
        free(ids);
        compared++;
    }
    assert_int_equal(compared, 4);
    rollout_free(&ro);
    scheduler_free(s);
    cJSON_Delete(rep);
}

static void test_sampled_scheduler_equals_rollout(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    const int max_new = 16, G = 3;
    int n;
    int32_t *ids = encode(&f->m, "the quick brown fox jumps over the lazy dog and then some more words", &n);
    rollout ro;
    assert_int_equal(rollout_init(&ro, &f->m, NULL, G, 256, max_new, &e), TRL_OK);
    const int32_t *pp[1] = {ids};
    assert_int_equal(rollout_run(&ro, pp, &n, 1, G, 0.9f, 7, &e), TRL_OK);
    scheduler *s;
    scheduler_config sc = {.n_slots = 1, .n_ctx = 256, .max_batch = 32, .max_queue = 4, .n_threads = 1};
    assert_int_equal(scheduler_init(&s, &f->m, &sc, &e), TRL_OK);
    int differ = 0;
    for (int k = 0; k < G; k++) {
        char *a = sched_text(s, ids, n, (sampler_params){.temperature = 0.9f, .top_p = 1, .seed = 7 + (uint64_t)k}, max_new);
        assert_string_equal(a, ro.out[k].text);
        differ += k > 0 && strcmp(ro.out[k].text, ro.out[0].text) != 0;
        free(a);
    }
    assert_true(differ > 0);  // the seeds matter: samples of one group are not all the same
    scheduler_free(s);
    rollout_free(&ro);
    free(ids);
}

// Stop rules on the generator: max_tokens -> "length" with that many tokens; a stop string
// cuts the text before it; the Tool-N1 rule ends right after "</tool_call>".
static void test_stop_rules(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    generator g;
    assert_int_equal(generator_init(&g, &f->m, NULL, 2, 256, 64, &e), TRL_OK);
    int n;
    int32_t *ids = encode(&f->m, "hello there, a prompt", &n);
    gen_params p = {.prompt = ids, .n_prompt = n, .sp = {.temperature = 0, .top_p = 1}, .max_tokens = 10};
    assert_int_equal(generator_admit(&g, &p, &e), 0);
    while (generator_busy(&g)) assert_true(generator_step(&g, &e) >= 0);
    const gen_slot *s0 = &g.slots[0];
    assert_int_equal(s0->finish, GEN_LENGTH);
    assert_int_equal(s0->n_text_tokens, 10);
    assert_true(s0->safe == s0->len);
    char *full = strdup(s0->text);
    generator_release(&g, 0);
    assert_true(strlen(full) >= 4);
    // a stop string: the first 3 bytes of the greedy reply's second half
    char stop[8];
    size_t at = strlen(full) / 2;
    snprintf(stop, sizeof(stop), "%.3s", full + at);
    const char *stops[1] = {stop};
    p.stop = stops, p.n_stop = 1;
    int slot = generator_admit(&g, &p, &e);
    assert_true(slot >= 0);
    assert_int_equal(g.slots[slot].n_cached, n - 1);  // the prompt's positions were kept
    while (generator_busy(&g)) assert_true(generator_step(&g, &e) >= 0);
    assert_int_equal(g.slots[slot].finish, GEN_STOP);
    const char *hit = strstr(full, stop);
    assert_int_equal(g.slots[slot].len, (size_t)(hit - full));
    assert_memory_equal(g.slots[slot].text, full, g.slots[slot].len);
    generator_release(&g, slot);
    free(full);
    free(ids);
    generator_free(&g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_three_callers_agree_greedy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sampled_scheduler_equals_rollout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_rules, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
