// task.c: loading training examples into prompt / target token arrays (see task.h).
#include "trainer/task.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pyjson.h"
#include "base/strbuf.h"
#include "data/example.h"
#include "model/tokenizer.h"
#include "protocol/tags.h"
#include "protocol/toolprompt.h"

char *task_sft_reply(const char *gold_json) {
    cJSON *gold = pyjson_parse(gold_json, strlen(gold_json), NULL);  // keeps 1.0 apart from 1
    if (!gold) return NULL;
    strbuf sb;
    strbuf_init(&sb);
    int n = cJSON_GetArraySize(gold);
    if (n == 0) {
        strbuf_adds(&sb, TAG_THINK "None of the given functions fits this request." TAG_THINK_END "\n");
    } else {
        strbuf_adds(&sb, TAG_THINK "The request is answered by calling ");
        int k = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, gold) {
            const cJSON *name = cJSON_GetObjectItem(c, "name");
            if (k++) strbuf_adds(&sb, k == n ? " and " : ", ");
            strbuf_adds(&sb, cJSON_IsString(name) ? name->valuestring : "?");
        }
        strbuf_adds(&sb, " with the values given in it." TAG_THINK_END "\n");
    }
    char *calls = pyjson_dump(gold, PYJSON_ASCII);
    strbuf_adds(&sb, TAG_TOOL_CALL);
    strbuf_adds(&sb, calls ? calls : "[]");
    strbuf_adds(&sb, TAG_TOOL_CALL_END);
    free(calls);
    cJSON_Delete(gold);
    return strbuf_take(&sb);
}

// The example's conversation as toolprompt messages (pointers into ex).
static char *render_prompt(const example *ex) {
    int n = cJSON_GetArraySize(ex->messages), k = 0;
    toolprompt_msg *msgs = calloc((size_t)(n ? n : 1), sizeof(*msgs));
    if (!msgs) return NULL;
    const cJSON *m;
    cJSON_ArrayForEach(m, ex->messages) {
        const cJSON *r = cJSON_GetObjectItem(m, "role"), *c = cJSON_GetObjectItem(m, "content");
        const cJSON *calls = cJSON_GetObjectItem(m, "tool_calls");
        msgs[k++] = (toolprompt_msg){r->valuestring, cJSON_IsString(c) ? c->valuestring : NULL,
                                     cJSON_IsArray(calls) ? calls : NULL};
    }
    char *p = toolprompt_render(ex->tools, msgs, k);
    free(msgs);
    return p;
}

static int tokenize(const model *m, const char *text, int32_t **out, int max, trl_err *e) {
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(max + 1));
    if (!ids) return trl_errf(e, "task: out of memory"), -2;
    int n = tokenizer_encode(m->tok, text, strlen(text), 1, ids, max + 1);
    if (n < 0 || n > max) {
        free(ids);
        return -1;  // too long
    }
    *out = ids;
    return n;
}

static void task_free(task *t) {
    free(t->id);
    free(t->prompt);
    free(t->target);
    free(t->gold);
}

int task_set_load(task_set *ts, const char *path, const model *m, int max_tokens, trl_err *e) {
    memset(ts, 0, sizeof(*ts));
    FILE *f = fopen(path, "rb");
    if (!f) return trl_errf(e, "task: cannot open %s", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int cap_v = 0, rc = TRL_OK;
    int32_t eot = tokenizer_find(m->tok, TAG_IM_END);
    if (eot < 0) eot = tokenizer_eos(m->tok);
    while ((len = getline(&line, &cap, f)) > 0) {
        ts->n_lines++;
        if (len == 1 && line[0] == '\n') continue;
        example ex;
        trl_err le = {{0}};
        if (example_parse_at(line, (size_t)len, ts->n_lines, &ex, &le)) {  // an OpenAI-shaped row gets id line-N
            if (!ts->n_invalid++)
                snprintf(ts->first_error, sizeof(ts->first_error), "line %d: %.200s", ts->n_lines, le.msg);
            continue;
        }
        task t = {0};
        char *prompt = render_prompt(&ex);
        t.gold = example_answer_json(&ex);
        char *reply = t.gold ? task_sft_reply(t.gold) : NULL;
        t.id = strdup(ex.id);
        example_free(&ex);
        if (!prompt || !reply || !t.id) {
            free(prompt), free(reply), task_free(&t);
            rc = trl_errf(e, "task: out of memory");
            break;
        }
        t.n_prompt = tokenize(m, prompt, &t.prompt, max_tokens, e);
        if (t.n_prompt >= 0) t.n_target = tokenize(m, reply, &t.target, max_tokens - t.n_prompt, e);
        free(prompt), free(reply);
        if (t.n_prompt == -2 || t.n_target == -2) {
            task_free(&t);
            rc = TRL_ERR;
            break;
        }
        if (t.n_prompt < 0 || t.n_target < 0 || t.n_prompt + t.n_target + 1 > max_tokens || eot < 0) {
            ts->n_too_long++;
            task_free(&t);
            continue;
        }
        t.target[t.n_target++] = eot;  // room: tokenize allocated max + 1
        if (ts->n == cap_v) {
            cap_v = cap_v ? 2 * cap_v : 256;
            task *v = realloc(ts->v, sizeof(task) * (size_t)cap_v);
            if (!v) {
                task_free(&t);
                rc = trl_errf(e, "task: out of memory");
                break;
            }
            ts->v = v;
        }
        ts->v[ts->n++] = t;
    }
    free(line);
    fclose(f);
    if (rc == TRL_OK && ts->n == 0)
        rc = trl_errf(e, "task: no usable example in %s (%d lines, %d invalid%s%s, %d too long for %d tokens)", path,
                      ts->n_lines, ts->n_invalid, ts->n_invalid ? ": " : "", ts->first_error, ts->n_too_long,
                      max_tokens);
    if (rc) task_set_free(ts);
    return rc;
}

void task_set_free(task_set *ts) {
    for (int i = 0; i < ts->n; i++) task_free(&ts->v[i]);
    free(ts->v);
    memset(ts, 0, sizeof(*ts));
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void task_order(int *order, int n, uint64_t seed, int epoch) {
    uint64_t st = seed * 0x100000001B3ull + (uint64_t)epoch;
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(splitmix64(&st) % (uint64_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}
