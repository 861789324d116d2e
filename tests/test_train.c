// test_train.c: the training loop. GRPO's advantages and per-token gradients against the
// formulas of tool-n1.md §4 and against finite differences; the data order; and whole runs
// on a tiny random model: SFT memorises a reply until greedy decoding of the trained weights
// (the engine reading them through the policy view) earns the reward, and GRPO then keeps it;
// from a policy SFT left undecided between two arguments, GRPO alone raises the reward.
// The same SFT and GRPO steps through the simulated device (tests/support/devsim.h, strict:
// host code cannot touch device memory) give the CPU's metrics and weights bit for bit.
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/model.h"
#include "model/quant.h"
#include "tests/support/devsim.h"
#include "tests/support/tiny_model.h"
#include "trainer/grpo.h"
#include "trainer/rollout.h"
#include "trainer/task.h"
#include "trainer/train.h"

static void test_advantages_worked_example(void **state) {
    (void)state;
    // tool-n1.md §4: n = 5, binary rewards, k successes
    const double want_pos[] = {0, 1.789, 1.095, 0.730, 0.447}, want_neg[] = {0, -0.447, -0.730, -1.095, -1.789};
    for (int k = 1; k <= 4; k++) {
        double r[5];
        float a[5];
        for (int i = 0; i < 5; i++) r[i] = i < k;
        grpo_advantages(r, 5, 1, a);
        assert_true(fabs(a[0] - want_pos[k]) < 1e-3);
        assert_true(fabs(a[4] - want_neg[k]) < 1e-3);
    }
    double same[5] = {1, 1, 1, 1, 1}, one[1] = {0.5};
    float a[5];
    grpo_advantages(same, 5, 1, a);
    for (int i = 0; i < 5; i++) assert_true(a[i] == 0.0f);
    grpo_advantages(one, 1, 1, a);  // group of one: mean 0, std 1
    assert_true(a[0] == 0.5f);
    double r2[4] = {1, 0, 0, 0};
    grpo_advantages(r2, 4, 0, a);  // Dr. GRPO: no std division
    assert_true(fabs(a[0] - 0.75) < 1e-6 && fabs(a[1] + 0.25) < 1e-6);
}

// The loss of one token as grpo.h defines it, in double, for finite differences.
static double token_loss(double logp, double old, double ref, double adv, double eps, double beta) {
    double ratio = exp(logp - old), rc = fmin(fmax(ratio, 1 - eps), 1 + eps);
    double pg = fmax(-adv * ratio, -adv * rc);
    double d = ref - logp, k3 = exp(d) - d - 1;
    k3 = fmin(fmax(k3, -10), 10);
    return pg + beta * k3;
}

static void test_token_grads_finite_differences(void **state) {
    (void)state;
    grpo_loss_params p = {0.2f, 0.05f};
    // ratios inside and outside the clip range, both signs of A, a KL big enough to clamp
    const float lp[] = {-1.0f, -1.0f, -2.0f, -0.5f, -3.0f, -1.2f, -0.1f, -15.0f};
    const float old[] = {-1.05f, -1.5f, -1.7f, -0.5f, -2.0f, -1.3f, -0.4f, -15.0f};
    const float ref[] = {-1.1f, -0.9f, -2.5f, -0.6f, -3.3f, -1.0f, -0.2f, -1.0f};
    const float adv[] = {1.0f, 1.0f, -1.0f, 0.7f, -1.5f, -0.5f, 2.0f, 0.3f};
    int n = 8;
    for (int i = 0; i < n; i++) {
        float d;
        grpo_stats st = {0};
        grpo_token_grads(&lp[i], &old[i], &ref[i], adv[i], 1, 0.5f, &p, &d, &st);
        double h = 1e-4;
        double num = (token_loss(lp[i] + h, old[i], ref[i], adv[i], 0.2, 0.05) -
                      token_loss(lp[i] - h, old[i], ref[i], adv[i], 0.2, 0.05)) / (2 * h);
        assert_true(fabs(d - 0.5 * num) < 1e-3);
        assert_true(fabs(st.loss - token_loss(lp[i], old[i], ref[i], adv[i], 0.2, 0.05)) < 1e-6);
        assert_int_equal(st.n, 1);
    }
    // clip accounting: ρ = e^0.5 > 1.2 with A > 0 is clipped (zero gradient from the surrogate)
    float l = -1.0f, o = -1.5f, d;
    grpo_loss_params nokl = {0.2f, 0.0f};
    grpo_stats st = {0};
    grpo_token_grads(&l, &o, NULL, 1.0f, 1, 1.0f, &nokl, &d, &st);
    assert_true(st.clipped == 1 && d == 0.0f);
    // on-policy (ρ = 1) the gradient is −A, the policy-gradient estimator
    memset(&st, 0, sizeof(st));
    grpo_token_grads(&l, &l, NULL, 0.8f, 1, 1.0f, &nokl, &d, &st);
    assert_true(fabs(d + 0.8f) < 1e-6 && st.clipped == 0);
}

static void test_task_order(void **state) {
    (void)state;
    int a[50], b[50], c[50], seen[50] = {0};
    task_order(a, 50, 7, 0);
    task_order(b, 50, 7, 0);
    task_order(c, 50, 7, 1);
    assert_memory_equal(a, b, sizeof(a));
    assert_true(memcmp(a, c, sizeof(a)) != 0);
    for (int i = 0; i < 50; i++) seen[a[i]]++;
    for (int i = 0; i < 50; i++) assert_int_equal(seen[i], 1);
}

// ---- whole runs on a tiny model --------------------------------------------------------------

static const char *TOOLS =
    "[{\"type\": \"function\", \"function\": {\"name\": \"add\", \"description\": \"Add.\", \"parameters\": "
    "{\"type\": \"dict\", \"properties\": {\"a\": {\"type\": \"integer\"}}, \"required\": [\"a\"]}}}]";

typedef struct {
    char dir[256];
    char model_path[300];
    char data_path[300];
    model m;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof(*f));
    trl_err e = {{0}};
    if (tiny_model_tempdir(f->dir, sizeof(f->dir))) return -1;
    tiny_model_spec s = tiny_model_default(0);
    s.n_ctx = 4096;
    snprintf(f->model_path, sizeof(f->model_path), "%s/tiny.gguf", f->dir);
    if (tiny_model_write_gguf(&s, 0 /* F32 */, f->model_path, &e)) return fprintf(stderr, "%s\n", e.msg), -1;
    if (model_load(&f->m, f->model_path, &e)) return fprintf(stderr, "%s\n", e.msg), -1;
    snprintf(f->data_path, sizeof(f->data_path), "%s/train.jsonl", f->dir);
    FILE *o = fopen(f->data_path, "w");
    // six copies of one example: two held out, four trained on; every one has the same answer
    for (int i = 0; i < 6; i++)
        fprintf(o,
                "{\"id\": \"t%d\", \"source\": \"test\", \"messages\": [{\"role\": \"user\", \"content\": \"add 7\"}], "
                "\"tools\": %s, \"answer\": [{\"name\": \"add\", \"arguments\": {\"a\": 7}}]}\n",
                i, TOOLS);
    fclose(o);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    model_free(&f->m);
    tiny_model_rmdir(f->dir);
    free(f);
    return 0;
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItem(o, k);
    assert_non_null(v);
    return v->valuedouble;
}

static void test_sft_then_grpo_tiny(void **state) {
    fixture *f = *state;
    trl_err e = {{0}};
    task_set ts;
    assert_int_equal(task_set_load(&ts, f->data_path, &f->m, 3000, &e), TRL_OK);
    assert_int_equal(ts.n, 6);
    train_config c;
    cJSON *h = cJSON_Parse("{\"batch_size\": 2, \"learning_rate\": 0.005, \"max_steps\": 30, \"eval_examples\": 2,"
                           " \"max_seq_tokens\": 3000, \"warmup_steps\": 0, \"weight_decay\": 0}");
    assert_int_equal(train_config_from_json(&c, "supervised", h, NULL, &e), TRL_OK);
    cJSON_Delete(h);
    trainer t;
    assert_int_equal(trainer_init(&t, &c, &f->m, &ts, NULL, &e), TRL_OK);
    assert_int_equal(t.n_held, 1);  // at most a fifth of 6
    cJSON *mx = cJSON_CreateObject();
    assert_int_equal(trainer_eval(&t, mx, &e), TRL_OK);
    assert_true(num(mx, "eval_exact_match") == 0.0);  // random weights do not call tools
    cJSON_Delete(mx);
    double first = 0, last = 0;
    while (!trainer_done(&t)) {
        mx = cJSON_CreateObject();
        assert_int_equal(trainer_step(&t, mx, &e), TRL_OK);
        if (t.step == 1) first = num(mx, "loss");
        last = num(mx, "loss");
        cJSON_Delete(mx);
    }
    assert_true(last < 0.05 * first);
    // the engine, reading the trained fp32 weights, now writes the reply: reward 1
    mx = cJSON_CreateObject();
    assert_int_equal(trainer_eval(&t, mx, &e), TRL_OK);
    assert_true(num(mx, "eval_exact_match") == 1.0);
    assert_true(num(mx, "eval_format_valid") == 1.0);
    cJSON_Delete(mx);
    // GRPO from the trained weights: a step samples, scores and updates; rewards stay high
    lm_params keep = t.p;
    t.p = (lm_params){0};
    trainer_free(&t);
    h = cJSON_Parse("{\"batch_size\": 2, \"group_size\": 3, \"mini_batches\": 2, \"max_steps\": 2,"
                    " \"max_new_tokens\": 160, \"eval_examples\": 2, \"max_seq_tokens\": 3000, \"kl_coef\": 0.01, \"temperature\": 0.3}");
    assert_int_equal(train_config_from_json(&c, "reinforcement", h, "binary", &e), TRL_OK);
    cJSON_Delete(h);
    assert_int_equal(trainer_init(&t, &c, &f->m, &ts, NULL, &e), TRL_OK);
    memcpy(t.p.mem, keep.mem, sizeof(float) * keep.n);
    memcpy(t.ref.mem, keep.mem, sizeof(float) * keep.n);
    lm_params_free(&keep);
    float w0 = t.p.wq[5];
    mx = cJSON_CreateObject();
    assert_int_equal(trainer_step(&t, mx, &e), TRL_OK);
    double rm = num(mx, "reward_mean");
    assert_true(rm > 0.5 && rm <= 1.0);
    assert_true(num(mx, "format_valid") >= rm);
    assert_true(num(mx, "kl") >= 0 && num(mx, "kl") < 1e-3);  // first update: policy == reference
    assert_true(num(mx, "zero_std_frac") >= 0 && num(mx, "zero_std_frac") <= 1);
    assert_true(num(mx, "response_len") > 10);
    assert_true(num(mx, "entropy") >= 0);
    cJSON_Delete(mx);
    mx = cJSON_CreateObject();
    assert_int_equal(trainer_step(&t, mx, &e), TRL_OK);
    cJSON_Delete(mx);
    assert_true(trainer_done(&t));
    (void)w0;
    trainer_free(&t);
    task_set_free(&ts);
}

// GRPO alone raises the reward. SFT first teaches the tiny model a reply whose argument it sees
// both ways (half the SFT rows answer "add 7" with a = 7, half with a = 8), so its samples are
// right about half the time; GRPO steps with the binary reward against a = 7 then make the
// sampled replies right far more often: the learning signal is real, not only the plumbing.
static void write_rows(const char *path, int n, const int *values) {
    FILE *o = fopen(path, "w");
    assert_non_null(o);
    for (int i = 0; i < n; i++)
        fprintf(o,
                "{\"id\": \"g%d\", \"source\": \"test\", \"messages\": [{\"role\": \"user\", \"content\": \"add 7\"}], "
                "\"tools\": %s, \"answer\": [{\"name\": \"add\", \"arguments\": {\"a\": %d}}]}\n",
                i, TOOLS, values[i]);
    fclose(o);
}

// GRPO steps from the given weights on the "a = 7" rows: the mean reward of the samples of
// the first step and of the last three.
static void grpo_reward_trend(fixture *f, const char *rl_path, const lm_params *init, const char *lr, int steps,
                              double *step1, double *last) {
    trl_err e = {{0}};
    task_set ts;
    assert_int_equal(task_set_load(&ts, rl_path, &f->m, 3000, &e), TRL_OK);
    char js[512];
    snprintf(js, sizeof(js),
             "{\"batch_size\": 2, \"group_size\": 8, \"mini_batches\": 1, \"max_steps\": %d, \"learning_rate\": %s,"
             " \"max_new_tokens\": 160, \"eval_examples\": 0, \"max_seq_tokens\": 3000, \"kl_coef\": 0,"
             " \"temperature\": 0.3, \"warmup_steps\": 0, \"weight_decay\": 0}",
             steps, lr);
    train_config c;
    cJSON *h = cJSON_Parse(js);
    assert_int_equal(train_config_from_json(&c, "reinforcement", h, "binary", &e), TRL_OK);
    cJSON_Delete(h);
    trainer t;
    assert_int_equal(trainer_init(&t, &c, &f->m, &ts, NULL, &e), TRL_OK);
    assert_int_equal(trainer_set_params(&t, init, &e), TRL_OK);
    *last = 0;
    for (int k = 0; !trainer_done(&t); k++) {
        cJSON *mx = cJSON_CreateObject();
        assert_int_equal(trainer_step(&t, mx, &e), TRL_OK);
        double r = num(mx, "reward_mean");
        if (k == 0) *step1 = r;
        if (k >= steps - 3) *last += r / 3;
        cJSON_Delete(mx);
    }
    trainer_free(&t);
    task_set_free(&ts);
}

static void test_grpo_raises_reward(void **state) {
    fixture *f = *state;
    trl_err e = {{0}};
    char sft_path[400], rl_path[400];
    snprintf(sft_path, sizeof(sft_path), "%s/sft_mixed.jsonl", f->dir);
    snprintf(rl_path, sizeof(rl_path), "%s/rl.jsonl", f->dir);
    const int mixed[8] = {7, 8, 7, 8, 7, 8, 7, 8}, sevens[8] = {7, 7, 7, 7, 7, 7, 7, 7};
    write_rows(sft_path, 8, mixed);
    write_rows(rl_path, 8, sevens);
    task_set ts;
    assert_int_equal(task_set_load(&ts, sft_path, &f->m, 3000, &e), TRL_OK);
    train_config c;
    cJSON *h = cJSON_Parse("{\"batch_size\": 2, \"learning_rate\": 0.005, \"max_steps\": 30, \"eval_examples\": 0,"
                           " \"max_seq_tokens\": 3000, \"warmup_steps\": 0, \"weight_decay\": 0}");
    assert_int_equal(train_config_from_json(&c, "supervised", h, NULL, &e), TRL_OK);
    cJSON_Delete(h);
    trainer t;
    assert_int_equal(trainer_init(&t, &c, &f->m, &ts, NULL, &e), TRL_OK);
    while (!trainer_done(&t)) {
        cJSON *mx = cJSON_CreateObject();
        assert_int_equal(trainer_step(&t, mx, &e), TRL_OK);
        cJSON_Delete(mx);
    }
    lm_params sft;
    trainer_take_params(&t, &sft);
    trainer_free(&t);
    task_set_free(&ts);
    // Step 1 samples from the SFT weights (nothing updated yet): about half right. Ten steps on,
    // nearly every sample is right.
    double before = -1, last = 0;
    grpo_reward_trend(f, rl_path, &sft, "3e-4", 10, &before, &last);
    lm_params_free(&sft);
    assert_true(before > 0.3 && before < 0.8);  // SFT left the argument undecided
    assert_true(last >= 0.9);
    assert_true(last >= before + 0.2);
}

// GRPO computes the reference and old log-probs on the packs its update uses: with the
// weights held still (learning rate 0), KL is exactly 0 and every ratio exactly 1 over both
// mini-batches, not just close (a prompt's samples split across the two parts).
static void test_grpo_logp_consistent(void **state) {
    fixture *f = *state;
    trl_err e = {{0}};
    // prompts of ~1,800 tokens: past OpenBLAS's K blocking in the attention's P·V, where packs
    // of other sizes would sum in other groupings
    char path[320];
    snprintf(path, sizeof(path), "%s/long.jsonl", f->dir);
    FILE *o = fopen(path, "w");
    for (int i = 0; i < 4; i++) {
        fprintf(o, "{\"id\": \"l%d\", \"source\": \"test\", \"messages\": [{\"role\": \"user\", \"content\": \"", i);
        for (int k = 0; k < 100; k++) fprintf(o, "add %d and ", k + i);
        fprintf(o, "7\"}], \"tools\": %s, \"answer\": [{\"name\": \"add\", \"arguments\": {\"a\": 7}}]}\n", TOOLS);
    }
    fclose(o);
    task_set ts;
    if (task_set_load(&ts, path, &f->m, 3000, &e)) fail_msg("%s", e.msg);
    assert_int_equal(ts.n, 4);
    print_message("prompt %d tokens\n", ts.v[0].n_prompt);
    assert_true(ts.v[0].n_prompt > 1000);
    train_config c;
    cJSON *h = cJSON_Parse("{\"batch_size\": 2, \"group_size\": 3, \"mini_batches\": 2, \"max_steps\": 1,"
                           " \"max_new_tokens\": 12, \"eval_examples\": 1, \"max_seq_tokens\": 3000,"
                           " \"kl_coef\": 0.01, \"learning_rate\": 0, \"temperature\": 0.9}");
    assert_int_equal(train_config_from_json(&c, "reinforcement", h, "binary", &e), TRL_OK);
    cJSON_Delete(h);
    trainer t;
    assert_int_equal(trainer_init(&t, &c, &f->m, &ts, NULL, &e), TRL_OK);
    cJSON *mx = cJSON_CreateObject();
    assert_int_equal(trainer_step(&t, mx, &e), TRL_OK);
    assert_true(num(mx, "response_len") > 1);
    assert_true(num(mx, "kl") == 0.0);
    assert_true(num(mx, "ratio_mean") == 1.0);
    cJSON_Delete(mx);
    trainer_free(&t);
    task_set_free(&ts);
}

// Σ of the tempered log-probs of the last n tokens, and its gradient, against central
// differences on a few weights of the tiny model.
static double tempered_sum(lm_params *p, lm_acts *a, const model_config *c, const int32_t *tok, int T, int n,
                           float tau) {
    trl_err e = {{0}};
    assert_int_equal(lm_forward(p, a, c, tok, tok + 1, T, &e), TRL_OK);
    lm_acts_temperature(a, T - n, n, tau);
    double s = 0;
    for (int i = T - n; i < T; i++) s += a->logp[i];
    return s;
}

static void test_temperature_gradient(void **state) {
    fixture *f = *state;
    const model_config *c = &f->m.cfg;
    trl_err e = {{0}};
    lm_params p, g;
    lm_acts a;
    assert_int_equal(lm_params_alloc(&p, c, NULL, &e), TRL_OK);
    assert_int_equal(lm_params_from_model(&p, &f->m, &e), TRL_OK);
    assert_int_equal(lm_params_alloc(&g, c, NULL, &e), TRL_OK);
    assert_int_equal(lm_acts_alloc(&a, c, 16, NULL, &e), TRL_OK);
    int32_t tok[17];
    for (int i = 0; i < 17; i++) tok[i] = (int32_t)((i * 37 + 11) % c->n_vocab);
    int T = 16, n = 5;
    float tau = 0.7f;
    double base = tempered_sum(&p, &a, c, tok, T, n, tau);
    float dlogp[16] = {0};
    for (int i = T - n; i < T; i++) dlogp[i] = 1.0f / tau;
    assert_int_equal(lm_backward(&p, &g, &a, c, tok, tok + 1, dlogp, T, &e), TRL_OK);
    // plain log-probs differ from tempered ones (the rescale did something)
    double plain = 0;
    assert_int_equal(lm_forward(&p, &a, c, tok, tok + 1, T, &e), TRL_OK);
    for (int i = T - n; i < T; i++) plain += a.logp[i];
    assert_true(fabs(plain - base) > 1e-3);
    float *ws[] = {p.wout + 7, p.wq + 100, p.w_down + 33, p.out_norm + 2};
    float *gs[] = {g.wout + 7, g.wq + 100, g.w_down + 33, g.out_norm + 2};
    for (int k = 0; k < 4; k++) {
        float keep = *ws[k], h = 1e-2f;
        *ws[k] = keep + h;
        double up = tempered_sum(&p, &a, c, tok, T, n, tau);
        *ws[k] = keep - h;
        double dn = tempered_sum(&p, &a, c, tok, T, n, tau);
        *ws[k] = keep;
        double num = (up - dn) / (2.0 * h);
        assert_true(fabs(num - *gs[k]) <= 2e-3 + 2e-2 * fabs(num));
    }
    lm_acts_free(&a);
    lm_params_free(&p);
    lm_params_free(&g);
}

// lm_forward_packed: a shared prefix and three segments in one call give each segment's
// log-probs as lm_forward of prefix + segment does, and its backward the sum of theirs (the
// layout a GRPO group uses: each segment starts with the prompt's last token; the prefix's
// own targets are not scored).
static void test_packed_equals_separate(void **state) {
    fixture *f = *state;
    const model_config *c = &f->m.cfg;
    trl_err e = {{0}};
    lm_params p, gp, gs;
    lm_acts a;
    assert_int_equal(lm_params_alloc(&p, c, NULL, &e), TRL_OK);
    assert_int_equal(lm_params_from_model(&p, &f->m, &e), TRL_OK);
    assert_int_equal(lm_params_alloc(&gp, c, NULL, &e), TRL_OK);
    assert_int_equal(lm_params_alloc(&gs, c, NULL, &e), TRL_OK);
    assert_int_equal(lm_acts_alloc(&a, c, 64, NULL, &e), TRL_OK);
    enum { NS = 6, G = 3 };
    const int len[G] = {5, 2, 7};
    int32_t seg[G][8], pre[NS];
    for (int i = 0; i < NS; i++) pre[i] = (int32_t)((i * 37 + 11) % c->n_vocab);
    for (int i = 0; i < G; i++)
        for (int j = 0; j <= len[i]; j++) seg[i][j] = j == 0 ? 99 : (int32_t)((i * 53 + j * 17 + 5) % c->n_vocab);
    // packed: tokens pre, seg0[0..len), seg1[...], seg2[...]; targets: each token's successor
    // in its own sequence (the prefix's last one: the segments' common first token, 99)
    int32_t tok[64], tgt[64];
    int T = 0;
    for (int i = 0; i < NS; i++, T++) tok[T] = pre[i], tgt[T] = i + 1 < NS ? pre[i + 1] : 99;
    for (int i = 0; i < G; i++)
        for (int j = 0; j < len[i]; j++, T++) tok[T] = seg[i][j], tgt[T] = seg[i][j + 1];
    lm_layout lay = {NS, G, len};
    assert_int_equal(lm_forward_packed(&p, &a, c, tok, tgt, T, &lay, &e), TRL_OK);
    float lp[64], dlogp[64] = {0};
    memcpy(lp, a.logp, sizeof(float) * (size_t)T);
    for (int t = NS; t < T; t++) dlogp[t] = 0.1f * (float)(t % 5) - 0.2f;
    assert_int_equal(lm_backward(&p, &gp, &a, c, tok, tgt, dlogp, T, &e), TRL_OK);
    // separately: prefix + segment i, the same targets; dlogp on the segment's tokens only
    for (int i = 0, off = NS; i < G; off += len[i], i++) {
        int32_t st[64], sg[64];
        float sd[64] = {0};
        int n = 0;
        for (int k = 0; k < NS; k++, n++) st[n] = tok[k], sg[n] = tgt[k];
        for (int j = 0; j < len[i]; j++, n++) st[n] = tok[off + j], sg[n] = tgt[off + j], sd[n] = dlogp[off + j];
        assert_int_equal(lm_forward(&p, &a, c, st, sg, n, &e), TRL_OK);
        for (int k = 0; k < NS; k++) assert_true(lp[k] == 0.0f);  // the prefix is not scored
        for (int j = 0; j < len[i]; j++)
            if (fabsf(a.logp[NS + j] - lp[off + j]) > 1e-4f)
                fail_msg("segment %d token %d: %.6f separate, %.6f packed", i, j, a.logp[NS + j], lp[off + j]);
        assert_int_equal(lm_backward(&p, &gs, &a, c, st, sg, sd, n, &e), TRL_OK);
    }
    double num = 0, den = 1e-12;
    for (size_t i = 0; i < gp.n; i++) num = fmax(num, fabs((double)gp.mem[i] - gs.mem[i])), den = fmax(den, fabs(gs.mem[i]));
    assert_true(num / den < 1e-4);
    assert_true(den > 1e-3);  // the gradients are not all zero
    // a layout that does not add up is refused
    lm_layout bad = {NS, G - 1, len};
    assert_int_equal(lm_forward_packed(&p, &a, c, tok, tgt, T, &bad, &e), TRL_ERR);
    lm_acts_free(&a);
    lm_params_free(&p), lm_params_free(&gp), lm_params_free(&gs);
}

static void test_config_errors(void **state) {
    (void)state;
    train_config c;
    trl_err e = {{0}};
    const char *bad[] = {"{\"batch_size\": \"x\"}", "{\"batch_size\": 0}", "{\"learning_rate\": -1}",
                         "{\"nope\": 1}", "{\"batch_size\": 2.5}", "{\"normalize_advantage_std\": 1}",
                         "{\"max_new_tokens\": 900, \"max_seq_tokens\": 800}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cJSON *h = cJSON_Parse(bad[i]);
        assert_int_equal(train_config_from_json(&c, "reinforcement", h, NULL, &e), TRL_ERR);
        assert_non_null(strstr(e.msg, "hyperparameters."));
        cJSON_Delete(h);
    }
    assert_int_equal(train_config_from_json(&c, "dpo", NULL, NULL, &e), TRL_ERR);
    assert_int_equal(train_config_from_json(&c, "reinforcement", NULL, "nonsense", &e), TRL_ERR);
    cJSON *h = cJSON_Parse("{\"batch_size\": \"auto\", \"learning_rate_multiplier\": 2, \"group_size\": 8}");
    assert_int_equal(train_config_from_json(&c, "reinforcement", h, "partial", &e), TRL_OK);
    cJSON_Delete(h);
    assert_int_equal(c.group_size, 8);
    assert_int_equal(c.batch_size, 4);
    assert_true(fabsf(c.lr - 2e-5f) < 1e-9f);
    assert_int_equal(c.reward, REWARD_PARTIAL);
}

// rollout_run prefills each prompt once and copies its cache to the prompt's other samples:
// every sample is still exactly the rollout it would be on its own (sample k seeded seed + k).
// Q8_0 weights, whose kernels give each sequence the same bits at any batch size.
static void test_rollout_groups(void **state) {
    (void)state;
    char dir[256], path[300];
    trl_err e = {{0}};
    assert_int_equal(tiny_model_tempdir(dir, sizeof(dir)), TRL_OK);
    snprintf(path, sizeof(path), "%s/q8.gguf", dir);
    tiny_model_spec spec = tiny_model_default(0);
    model m;
    if (tiny_model_write_gguf(&spec, QTYPE_Q8_0, path, &e) || model_load(&m, path, &e)) fail_msg("%s", e.msg);
    const int32_t p0[] = {5, 77, 3, 120, 250, 9, 64}, p1[] = {33, 200, 1, 17};
    const int32_t *prompts[] = {p0, p1};
    const int n_prompt[] = {7, 4};
    rollout all, one;
    assert_int_equal(rollout_init(&all, &m, NULL, 6, 64, 12, &e), TRL_OK);
    assert_int_equal(rollout_init(&one, &m, NULL, 1, 64, 12, &e), TRL_OK);
    assert_int_equal(rollout_run(&all, prompts, n_prompt, 2, 3, 0.9f, 1234, &e), TRL_OK);
    int differ = 0;
    for (int s = 0; s < 6; s++) {
        assert_int_equal(rollout_run(&one, &prompts[s / 3], &n_prompt[s / 3], 1, 1, 0.9f, 1234 + (uint64_t)s, &e), TRL_OK);
        assert_int_equal(all.out[s].n_tok, one.out[0].n_tok);
        assert_memory_equal(all.out[s].tok, one.out[0].tok, sizeof(int32_t) * (size_t)one.out[0].n_tok);
        assert_string_equal(all.out[s].text, one.out[0].text);
        if (s % 3 && memcmp(all.out[s].tok, all.out[s - s % 3].tok, sizeof(int32_t) * 2)) differ = 1;
    }
    assert_true(differ);  // the samples of a prompt are not copies of each other
    rollout_free(&all), rollout_free(&one);
    model_free(&m);
    tiny_model_rmdir(dir);
}

// Removes a step's wall-clock metrics (the rest must agree bit for bit).
static void drop_timers(cJSON *mx) {
    const char *timers[] = {"time_rollout", "time_reference", "time_update", "step_time", "tokens_per_s"};
    for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) cJSON_DeleteItemFromObject(mx, timers[i]);
}

// Runs SFT steps then one GRPO step (rollouts, reference, two mini-batches) on backend be;
// returns the step metrics as one JSON array and the final weights (host copy) in *w.
static cJSON *steps_on(fixture *f, const train_ops *be, float **w, size_t *n) {
    trl_err e = {{0}};
    task_set ts;
    assert_int_equal(task_set_load(&ts, f->data_path, &f->m, 3000, &e), TRL_OK);
    cJSON *all = cJSON_CreateArray();
    train_config c;
    cJSON *h = cJSON_Parse("{\"batch_size\": 2, \"learning_rate\": 0.005, \"max_steps\": 2, \"eval_examples\": 2,"
                           " \"max_seq_tokens\": 3000, \"warmup_steps\": 0, \"grad_clip\": 0.5}");
    assert_int_equal(train_config_from_json(&c, "supervised", h, NULL, &e), TRL_OK);
    cJSON_Delete(h);
    trainer t;
    if (trainer_init(&t, &c, &f->m, &ts, be, &e)) fail_msg("%s", e.msg);
    while (!trainer_done(&t)) {
        cJSON *mx = cJSON_CreateObject();
        if (trainer_step(&t, mx, &e)) fail_msg("%s", e.msg);
        drop_timers(mx);
        cJSON_AddItemToArray(all, mx);
    }
    float *sft = malloc(sizeof(float) * t.p.n);
    be->mem->download(sft, t.p.mem, sizeof(float) * t.p.n);
    trainer_free(&t);
    h = cJSON_Parse("{\"batch_size\": 2, \"group_size\": 3, \"mini_batches\": 2, \"max_steps\": 1,"
                    " \"max_new_tokens\": 24, \"eval_examples\": 2, \"max_seq_tokens\": 3000, \"kl_coef\": 0.01,"
                    " \"temperature\": 0.7}");
    assert_int_equal(train_config_from_json(&c, "reinforcement", h, "binary", &e), TRL_OK);
    cJSON_Delete(h);
    if (trainer_init(&t, &c, &f->m, &ts, be, &e)) fail_msg("%s", e.msg);
    be->mem->upload(t.p.mem, sft, sizeof(float) * t.p.n);
    free(sft);
    cJSON *mx = cJSON_CreateObject();
    if (trainer_step(&t, mx, &e)) fail_msg("%s", e.msg);
    if (trainer_eval(&t, mx, &e)) fail_msg("%s", e.msg);
    drop_timers(mx);
    cJSON_AddItemToArray(all, mx);
    *n = t.p.n;
    *w = malloc(sizeof(float) * t.p.n);
    be->mem->download(*w, t.p.mem, sizeof(float) * t.p.n);
    trainer_free(&t);
    task_set_free(&ts);
    return all;
}

static void test_train_through_devsim(void **state) {
    fixture *f = *state;
    float *w_cpu, *w_dev;
    size_t n_cpu, n_dev;
    cJSON *cpu = steps_on(f, &train_ops_cpu, &w_cpu, &n_cpu);
    devsim_reset(1);
    cJSON *dev = steps_on(f, &train_ops_devsim, &w_dev, &n_dev);
    if (devsim_violation()[0]) fail_msg("%s", devsim_violation());
    assert_int_equal(devsim_live(), 0);  // every device allocation released
    assert_true(devsim_uploads() > 0 && devsim_downloads() > 0);
    devsim_reset(0);
    char *a = cJSON_PrintUnformatted(cpu), *b = cJSON_PrintUnformatted(dev);
    assert_string_equal(a, b);  // losses, grad norms, rewards, KL, entropy, evaluation
    assert_non_null(strstr(a, "\"reward_mean\""));
    assert_int_equal(n_cpu, n_dev);
    assert_memory_equal(w_cpu, w_dev, sizeof(float) * n_cpu);
    free(a), free(b), free(w_cpu), free(w_dev);
    cJSON_Delete(cpu), cJSON_Delete(dev);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_advantages_worked_example),
        cmocka_unit_test(test_token_grads_finite_differences),
        cmocka_unit_test(test_task_order),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_rollout_groups),
        cmocka_unit_test_setup_teardown(test_temperature_gradient, setup, teardown),
        cmocka_unit_test_setup_teardown(test_packed_equals_separate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grpo_logp_consistent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sft_then_grpo_tiny, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grpo_raises_reward, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_through_devsim, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
