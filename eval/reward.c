// reward.c: Tool-N1's rule-based tool-call reward and its ablation variants (see reward.h).
#include "eval/reward.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pyjson.h"
#include "base/strbuf.h"
#include "protocol/tags.h"
#include "protocol/toolcall_parse.h"

static const struct {
    const char *name;
    const char *alias;
    reward_kind kind;
} KINDS[] = {
    {"binary", "qwen", REWARD_BINARY},
    {"no_think", "qwen_wo_reason", REWARD_NO_THINK},
    {"partial", "qwen_partial_reason", REWARD_PARTIAL},
    {"partial_funcname", "qwen_partial_reason_funcname", REWARD_PARTIAL_FUNCNAME},
    {"lexico", "qwen_lexico", REWARD_LEXICO},
    {"llama", "llama", REWARD_LLAMA},
};

int reward_kind_parse(const char *name, reward_kind *out, trl_err *e) {
    if (!name) return trl_errf(e, "reward: no variant name");
    for (size_t i = 0; i < sizeof(KINDS) / sizeof(KINDS[0]); i++) {
        if (!strcmp(name, KINDS[i].name) || !strcmp(name, KINDS[i].alias)) {
            *out = KINDS[i].kind;
            return TRL_OK;
        }
    }
    return trl_errf(e, "reward: unknown variant '%s' (binary, no_think, partial, partial_funcname, lexico, llama)",
                    name);
}

const char *reward_kind_name(reward_kind k) {
    for (size_t i = 0; i < sizeof(KINDS) / sizeof(KINDS[0]); i++)
        if (KINDS[i].kind == k) return KINDS[i].name;
    return "unknown";
}

// Length as Python's len() sees the value: list items, or string characters.
static size_t py_len(const cJSON *v) {
    if (cJSON_IsArray(v)) return (size_t)cJSON_GetArraySize(v);
    if (cJSON_IsString(v)) return pyjson_str_len(v->valuestring);
    return 0;
}

// validate_format, extended to what Python does for the non-list results it can meet.
static int valid_format_py(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring[0] == 0;  // iterating chars: only "" passes
    return toolcall_valid_format(v);
}

// A hashable name as a Counter key (Python: 1 == 1.0 == True); NULL if unhashable.
static char *name_key(const cJSON *name) {
    pyjson_type t = pyjson_typeof(name);
    if (t == PYJ_LIST || t == PYJ_DICT || t == PYJ_INVALID) return NULL;
    if (t == PYJ_STR || t == PYJ_NONE) return pyjson_canonical(name);
    double d = pyjson_number(name);
    char buf[400];
    if (t != PYJ_FLOAT || (isfinite(d) && d == floor(d))) {
        if (t == PYJ_INT && cJSON_IsRaw(name)) return strdup(strcmp(name->valuestring, "-0") ? name->valuestring : "0");
        snprintf(buf, sizeof(buf), "%.0f", d == 0 ? 0.0 : d);
    } else {
        pyjson_float_repr(d, buf, sizeof(buf));
    }
    return strdup(buf);
}

static int str_ptr_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void free_keys(char **k, size_t n) {
    if (!k) return;
    for (size_t i = 0; i < n; i++) free(k[i]);
    free(k);
}

// Builds sorted keys for a list of calls: names only, or name + canonical arguments.
// Returns 0 on an unhashable name (or out of memory: treated the same, as no match).
static int build_keys(const cJSON *list, size_t n, int with_args, char ***out) {
    char **keys = calloc(n ? n : 1, sizeof(char *));
    if (!keys) return 0;
    size_t i = 0;
    for (const cJSON *c = list->child; c && i < n; c = c->next, i++) {
        char *nk = name_key(cJSON_GetObjectItemCaseSensitive(c, "name"));
        if (!nk) goto fail;
        if (!with_args) {
            keys[i] = nk;
            continue;
        }
        char *ak = pyjson_canonical(cJSON_GetObjectItemCaseSensitive(c, "arguments"));
        if (!ak) {
            free(nk);
            goto fail;
        }
        size_t ln = strlen(nk), la = strlen(ak);
        keys[i] = malloc(ln + la + 2);
        if (!keys[i]) {
            free(nk);
            free(ak);
            goto fail;
        }
        memcpy(keys[i], nk, ln);
        keys[i][ln] = '\n';
        memcpy(keys[i] + ln + 1, ak, la + 1);
        free(nk);
        free(ak);
    }
    qsort(keys, n, sizeof(char *), str_ptr_cmp);
    *out = keys;
    return 1;
fail:
    free_keys(keys, n);
    return 0;
}

static int same_multiset(const cJSON *a, const cJSON *b, size_t n, int with_args, int *ok) {
    char **ka = NULL, **kb = NULL;
    *ok = build_keys(a, n, with_args, &ka) && build_keys(b, n, with_args, &kb);
    int eq = 0;
    if (*ok) {
        eq = 1;
        for (size_t i = 0; i < n && eq; i++) eq = !strcmp(ka[i], kb[i]);
    }
    free_keys(ka, n);
    free_keys(kb, n);
    return eq;
}

int reward_compare_calls(const cJSON *pred, const cJSON *gold) {
    size_t np = py_len(pred), ng = py_len(gold);
    if (np == 0 || ng == 0) return np == ng ? 2 : 0;
    if (!cJSON_IsArray(pred) || !cJSON_IsArray(gold)) return 0;
    if (np != ng) return 0;  // multisets of different sizes differ, for calls and names alike
    int ok;
    if (same_multiset(pred, gold, np, 1, &ok)) return 2;
    if (!ok) return 0;
    return same_multiset(pred, gold, np, 0, &ok) ? 1 : 0;
}

cJSON *reward_gold_parse(const char *ground_truth, size_t len, trl_err *e) {
    trl_err sub;
    cJSON *g = pyjson_parse(ground_truth, len, &sub);
    if (!g) {
        trl_errf(e, "reward: ground truth is not JSON (%s)", sub.msg);
        return NULL;
    }
    if (cJSON_IsString(g)) {
        const char *s = g->valuestring;
        cJSON *h = pyjson_parse(s, strlen(s), &sub);
        cJSON_Delete(g);
        if (!h) {
            trl_errf(e, "reward: double-encoded ground truth is not JSON (%s)", sub.msg);
            return NULL;
        }
        g = h;
    }
    if (!toolcall_valid_format(g)) {
        cJSON_Delete(g);
        trl_errf(e, "reward: ground truth must be a list of {\"name\", \"arguments\"} objects");
        return NULL;
    }
    return g;
}

static int has_think_tags(const char *s, size_t n) {
    return strbuf_find(s, n, TAG_THINK, TAG_LEN(TAG_THINK)) != NULL && strbuf_find(s, n, TAG_THINK_END, TAG_LEN(TAG_THINK_END)) != NULL;
}

static double score_llama(const char *completion, size_t len, const cJSON *gold, reward_detail *d) {
    toolcall_info info;
    // The second decode is not guarded in the llama variant: a failure raises. Both end at 0.
    cJSON *res = toolcall_parse(completion, len, TOOLCALL_MARKER_LLAMA, TOOLCALL_REDECODE | TOOLCALL_WRAP_DICT, &info);
    d->found_block = info.found_block;
    d->has_think = has_think_tags(info.scope, info.scope_len);
    d->parsed = res != NULL;
    double score = 0;
    if (!info.found_block) {
        cJSON *empty = cJSON_CreateArray();
        d->format_ok = 1;
        d->match = empty ? reward_compare_calls(empty, gold) : 0;
        cJSON_Delete(empty);
        score = d->match == 2 ? 1.0 : 0.0;
    } else if (d->has_think && res) {
        d->format_ok = valid_format_py(res);
        if (d->format_ok) d->match = reward_compare_calls(res, gold);
        score = d->match == 2 ? 1.0 : 0.0;
    }
    cJSON_Delete(res);
    return score;
}

int reward_score(reward_kind k, const char *completion, size_t len, const cJSON *gold, double *score,
                 reward_detail *detail, trl_err *e) {
    reward_detail dummy;
    if (!detail) detail = &dummy;
    memset(detail, 0, sizeof(*detail));
    *score = 0;
    if (!toolcall_valid_format(gold)) return trl_errf(e, "reward: gold must be a list of {\"name\", \"arguments\"} objects");
    if (!completion) {
        completion = "";
        len = 0;
    }
    if (k == REWARD_LLAMA) {
        *score = score_llama(completion, len, gold, detail);
        return TRL_OK;
    }
    toolcall_info info;
    cJSON *res = toolcall_parse_training(completion, len, &info);
    detail->found_block = info.found_block;
    detail->has_think = has_think_tags(info.scope, info.scope_len);
    detail->parsed = res != NULL;
    if (res) {
        detail->format_ok = valid_format_py(res);
        if (detail->format_ok) detail->match = reward_compare_calls(res, gold);
    }
    cJSON_Delete(res);
    const reward_detail *d = detail;
    switch (k) {
        case REWARD_BINARY:
            *score = (d->parsed && d->has_think && d->format_ok && d->match == 2) ? 1.0 : 0.0;
            break;
        case REWARD_NO_THINK: *score = (d->parsed && d->format_ok && d->match == 2) ? 1.0 : 0.0; break;
        case REWARD_PARTIAL:
        case REWARD_PARTIAL_FUNCNAME: {
            double total = d->has_think ? 0.2 : 0.0;
            if (d->parsed && d->format_ok) {
                if (d->match == 2)
                    total += 0.8;
                else if (d->match == 1 && k == REWARD_PARTIAL_FUNCNAME)
                    total += 0.2;
            }
            *score = total;
            break;
        }
        case REWARD_LEXICO:
            if (!d->parsed)
                *score = 0;
            else if (d->format_ok && d->match == 2)
                *score = d->has_think ? 1.2 : 1.0;
            else
                *score = d->has_think ? -0.2 : 0.0;
            break;
        default: return trl_errf(e, "reward: unknown variant %d", (int)k);
    }
    return TRL_OK;
}

int reward_score_text(reward_kind k, const char *completion, size_t len, const char *ground_truth, double *score,
                      reward_detail *detail, trl_err *e) {
    *score = 0;
    if (!ground_truth) return trl_errf(e, "reward: no ground truth");
    cJSON *gold = reward_gold_parse(ground_truth, strlen(ground_truth), e);
    if (!gold) return TRL_ERR;
    int rc = reward_score(k, completion, len, gold, score, detail, e);
    cJSON_Delete(gold);
    return rc;
}
