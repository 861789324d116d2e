// hyper.c: a training run's hyperparameters: the defaults, OpenAI-style JSON in, the
// resolved configuration out (see hyper.h). Moved out of train.c so the server can validate a
// job's hyperparameters without the trainer.
#include "trainer/hyper.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void train_config_defaults(train_config *c, train_method method) {
    memset(c, 0, sizeof(*c));
    c->method = method;
    c->reward = REWARD_BINARY;
    c->schedule = LR_CONSTANT;
    c->weight_decay = 0.01f;
    c->grad_clip = 1.0f;
    c->max_seq_tokens = 768;
    c->n_epochs = 1;
    c->eval_examples = 32;
    c->seed = 42;
    if (method == TRAIN_GRPO) {
        c->batch_size = 4;      // paper: 1024 prompts/step
        c->group_size = 5;      // paper: n = 5
        c->mini_batches = 2;    // paper: 4 (1024 / 256)
        c->lr = 1e-5f;          // paper: 1e-6 for 3B/7B over ~400 steps
        c->kl_coef = 1e-3f;
        c->clip_eps = 0.2f;
        c->temperature = 0.7f;
        c->norm_adv_std = 1;
        c->max_new_tokens = 128;  // paper: 8192
        c->max_steps = 0;
        c->eval_interval = 10;
        c->checkpoint_interval = 10;
    } else {
        c->batch_size = 8;
        c->group_size = 1;
        c->mini_batches = 1;
        c->lr = 5e-5f;
        c->warmup_steps = 2;
        c->max_new_tokens = 128;
        c->eval_interval = 0;
        c->checkpoint_interval = 50;
    }
}

typedef enum { K_INT, K_FLOAT, K_BOOL } key_type;
typedef struct {
    const char *name;
    key_type type;
    size_t off;
    double lo, hi;
} hkey;

#define HK(n, t, f, lo, hi) {n, t, offsetof(train_config, f), lo, hi}
static const hkey HKEYS[] = {
    HK("batch_size", K_INT, batch_size, 1, 256),
    HK("group_size", K_INT, group_size, 1, 64),
    HK("mini_batches", K_INT, mini_batches, 1, 64),
    HK("learning_rate", K_FLOAT, lr, 0, 1),
    HK("warmup_steps", K_INT, warmup_steps, 0, 1e6),
    HK("weight_decay", K_FLOAT, weight_decay, 0, 1),
    HK("grad_clip", K_FLOAT, grad_clip, 0, 1e6),
    HK("kl_coef", K_FLOAT, kl_coef, 0, 10),
    HK("clip_ratio", K_FLOAT, clip_eps, 0, 10),
    HK("temperature", K_FLOAT, temperature, 0, 10),
    HK("normalize_advantage_std", K_BOOL, norm_adv_std, 0, 1),
    HK("max_new_tokens", K_INT, max_new_tokens, 1, 8192),
    HK("max_seq_tokens", K_INT, max_seq_tokens, 16, 32768),
    HK("n_epochs", K_INT, n_epochs, 1, 1000),
    HK("max_steps", K_INT, max_steps, 0, 1e7),
    HK("eval_interval", K_INT, eval_interval, 0, 1e6),
    HK("eval_examples", K_INT, eval_examples, 0, 1e5),
    HK("checkpoint_interval", K_INT, checkpoint_interval, 0, 1e6),
    HK("seed", K_INT, seed, 0, 2147483647),
};
#undef HK

int train_config_from_json(train_config *c, const char *method, const cJSON *hyper, const char *grader,
                           trl_err *e) {
    train_method m;
    if (!strcmp(method, "supervised")) m = TRAIN_SFT;
    else if (!strcmp(method, "reinforcement")) m = TRAIN_GRPO;
    else return trl_errf(e, "method: '%s' is not supervised or reinforcement", method);
    train_config_defaults(c, m);
    if (grader && reward_kind_parse(grader, &c->reward, e)) return TRL_ERR;
    if (hyper && !cJSON_IsObject(hyper) && !cJSON_IsNull(hyper)) return trl_errf(e, "hyperparameters: not an object");
    const cJSON *it;
    cJSON_ArrayForEach(it, hyper) {
        const char *k = it->string;
        if (!strcmp(k, "lr_schedule")) {
            if (cJSON_IsString(it) && !strcmp(it->valuestring, "auto")) continue;
            if (!cJSON_IsString(it)) return trl_errf(e, "hyperparameters.lr_schedule: not a string");
            if (!strcmp(it->valuestring, "constant")) c->schedule = LR_CONSTANT;
            else if (!strcmp(it->valuestring, "linear")) c->schedule = LR_LINEAR;
            else if (!strcmp(it->valuestring, "cosine")) c->schedule = LR_COSINE;
            else return trl_errf(e, "hyperparameters.lr_schedule: constant, linear or cosine");
            continue;
        }
        const hkey *h = NULL;
        for (size_t i = 0; i < sizeof(HKEYS) / sizeof(HKEYS[0]); i++)
            if (!strcmp(HKEYS[i].name, k)) h = &HKEYS[i];
        if (!h && !strcmp(k, "learning_rate_multiplier")) {  // OpenAI's knob: a multiple of the default
            if (cJSON_IsString(it) && !strcmp(it->valuestring, "auto")) continue;
            if (!cJSON_IsNumber(it) || it->valuedouble <= 0 || it->valuedouble > 1000)
                return trl_errf(e, "hyperparameters.learning_rate_multiplier: a number in (0, 1000]");
            c->lr *= (float)it->valuedouble;
            continue;
        }
        if (!h) return trl_errf(e, "hyperparameters.%s: unknown hyperparameter", k);
        if (cJSON_IsString(it) && !strcmp(it->valuestring, "auto")) continue;
        char *dst = (char *)c + h->off;
        if (h->type == K_BOOL) {
            if (!cJSON_IsBool(it)) return trl_errf(e, "hyperparameters.%s: not a boolean", k);
            *(int *)dst = cJSON_IsTrue(it);
            continue;
        }
        if (!cJSON_IsNumber(it)) return trl_errf(e, "hyperparameters.%s: not a number or \"auto\"", k);
        double v = it->valuedouble;
        if (!(v >= h->lo && v <= h->hi)) return trl_errf(e, "hyperparameters.%s: %g outside [%g, %g]", k, v, h->lo, h->hi);
        if (h->type == K_INT) {
            if (v != floor(v)) return trl_errf(e, "hyperparameters.%s: not an integer", k);
            if (!strcmp(k, "seed")) c->seed = (uint64_t)v;
            else *(int *)dst = (int)v;
        } else {
            *(float *)dst = (float)v;
        }
    }
    if (c->max_new_tokens >= c->max_seq_tokens)
        return trl_errf(e, "hyperparameters.max_new_tokens: must be below max_seq_tokens (%d)", c->max_seq_tokens);
    if (c->mini_batches > c->batch_size * c->group_size)
        return trl_errf(e, "hyperparameters.mini_batches: more than the %d samples of a step", c->batch_size * c->group_size);
    return TRL_OK;
}

// A float as the shortest decimal that reads back to it (1e-05, not 9.99999974737875e-06).
static double f2d(float x) {
    char b[32];
    snprintf(b, sizeof(b), "%.7g", (double)x);
    return strtod(b, NULL);
}

cJSON *train_config_to_json(const train_config *c) {
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < sizeof(HKEYS) / sizeof(HKEYS[0]); i++) {
        const char *p = (const char *)c + HKEYS[i].off;
        if (!strcmp(HKEYS[i].name, "seed")) cJSON_AddNumberToObject(o, "seed", (double)c->seed);
        else if (HKEYS[i].type == K_BOOL) cJSON_AddBoolToObject(o, HKEYS[i].name, *(const int *)p);
        else if (HKEYS[i].type == K_INT) cJSON_AddNumberToObject(o, HKEYS[i].name, *(const int *)p);
        else cJSON_AddNumberToObject(o, HKEYS[i].name, f2d(*(const float *)p));
    }
    static const char *sched[] = {"constant", "linear", "cosine"};
    cJSON_AddStringToObject(o, "lr_schedule", sched[c->schedule]);
    cJSON_AddStringToObject(o, "method", c->method == TRAIN_GRPO ? "reinforcement" : "supervised");
    if (c->method == TRAIN_GRPO) cJSON_AddStringToObject(o, "grader", reward_kind_name(c->reward));
    return o;
}
