// bfcl_data.c: BFCL dataset files and the Non-live / Live / Overall summary (see bfcl_data.h).
#include "eval/bfcl_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/pyjson.h"

static int path_exists(const char *p) { return access(p, R_OK) == 0; }

// Picks the question file name for a category; fills name (the file's base name).
static int find_file(const char *dir, const char *category, char *name, size_t nsz) {
    const char *alts[3][2] = {{"v4", category}, {"v3", category}, {"v3", NULL}};
    if (!strcmp(category, "simple_python")) alts[2][1] = "simple";
    char path[1024];
    for (int i = 0; i < 3; i++) {
        if (!alts[i][1]) continue;
        snprintf(name, nsz, "BFCL_%s_%s.json", alts[i][0], alts[i][1]);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        if (path_exists(path)) return 1;
    }
    return 0;
}

// Parses a JSONL file into an array of rows (each a cJSON object).
static int load_jsonl(const char *path, cJSON ***rows, size_t *n, trl_err *e) {
    size_t len;
    char *text = trl_read_file(path, &len, e);
    if (!text) return TRL_ERR;
    size_t cap = 0, cnt = 0;
    cJSON **out = NULL;
    size_t pos = 0, line = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        line++;
        size_t a = pos, b = end;
        while (a < b && (text[a] == ' ' || text[a] == '\r' || text[a] == '\t')) a++;
        while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\r' || text[b - 1] == '\t')) b--;
        if (b > a) {
            trl_err pe;
            cJSON *row = pyjson_parse(text + a, b - a, &pe);
            if (!row || !cJSON_IsObject(row)) {
                cJSON_Delete(row);
                trl_errf(e, "%s:%zu: %s", path, line, row ? "not a JSON object" : pe.msg);
                goto fail;
            }
            if (cnt == cap) {
                size_t ncap = cap ? cap * 2 : 256;
                cJSON **nr = realloc(out, ncap * sizeof(*nr));
                if (!nr) {
                    cJSON_Delete(row);
                    trl_errf(e, "%s: out of memory", path);
                    goto fail;
                }
                out = nr;
                cap = ncap;
            }
            out[cnt++] = row;
        }
        pos = end + 1;
    }
    free(text);
    *rows = out;
    *n = cnt;
    return TRL_OK;
fail:
    for (size_t i = 0; i < cnt; i++) cJSON_Delete(out[i]);
    free(out);
    free(text);
    return TRL_ERR;
}

static cJSON *take(cJSON *obj, const char *key) { return cJSON_DetachItemFromObjectCaseSensitive(obj, key); }

int bfcl_dataset_load(const char *dir, const char *category, bfcl_dataset *ds, trl_err *e) {
    memset(ds, 0, sizeof(*ds));
    if (!dir || !category) return trl_errf(e, "bfcl: no directory or category");
    snprintf(ds->category, sizeof(ds->category), "%s", category);
    char name[256], path[1024];
    if (!find_file(dir, category, name, sizeof(name)))
        return trl_errf(e, "bfcl: no question file for category '%s' in %s", category, dir);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    cJSON **q = NULL, **a = NULL;
    size_t nq = 0, na = 0;
    if (load_jsonl(path, &q, &nq, e)) return TRL_ERR;
    snprintf(path, sizeof(path), "%s/possible_answer/%s", dir, name);
    int has_answers = path_exists(path);
    if (has_answers && load_jsonl(path, &a, &na, e)) goto fail;
    if (has_answers && na != nq) {
        trl_errf(e, "bfcl: %s has %zu questions but %zu possible answers", category, nq, na);
        goto fail;
    }
    ds->entries = calloc(nq ? nq : 1, sizeof(bfcl_entry));
    if (!ds->entries) {
        trl_errf(e, "bfcl: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < nq; i++) {
        bfcl_entry *en = &ds->entries[i];
        ds->n = i + 1;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(q[i], "id");
        if (!cJSON_IsString(id)) {
            trl_errf(e, "bfcl: %s row %zu has no string id", category, i + 1);
            goto fail;
        }
        en->id = strdup(id->valuestring);
        en->question = take(q[i], "question");
        en->functions = take(q[i], "function");
        if (!en->id || !cJSON_IsArray(en->question) || !cJSON_IsArray(en->functions)) {
            trl_errf(e, "bfcl: %s row %s lacks question or function lists", category, id->valuestring);
            goto fail;
        }
        if (has_answers) {
            const cJSON *aid = cJSON_GetObjectItemCaseSensitive(a[i], "id");
            if (!cJSON_IsString(aid) || strcmp(aid->valuestring, en->id) != 0) {
                trl_errf(e, "bfcl: %s possible answer %zu does not match question id %s", category, i + 1, en->id);
                goto fail;
            }
            en->ground_truth = take(a[i], "ground_truth");
            if (!cJSON_IsArray(en->ground_truth)) {
                trl_errf(e, "bfcl: %s possible answer %s has no ground_truth list", category, en->id);
                goto fail;
            }
        }
    }
    for (size_t i = 0; i < nq; i++) cJSON_Delete(q[i]);
    for (size_t i = 0; i < na; i++) cJSON_Delete(a[i]);
    free(q);
    free(a);
    return TRL_OK;
fail:
    for (size_t i = 0; i < nq; i++) cJSON_Delete(q[i]);
    for (size_t i = 0; i < na; i++) cJSON_Delete(a[i]);
    free(q);
    free(a);
    bfcl_dataset_free(ds);
    return TRL_ERR;
}

void bfcl_dataset_free(bfcl_dataset *ds) {
    if (!ds) return;
    for (size_t i = 0; i < ds->n; i++) {
        free(ds->entries[i].id);
        cJSON_Delete(ds->entries[i].question);
        cJSON_Delete(ds->entries[i].functions);
        cJSON_Delete(ds->entries[i].ground_truth);
    }
    free(ds->entries);
    memset(ds, 0, sizeof(*ds));
}

const bfcl_entry *bfcl_dataset_find(const bfcl_dataset *ds, const char *id) {
    for (size_t i = 0; i < ds->n; i++)
        if (!strcmp(ds->entries[i].id, id)) return &ds->entries[i];
    return NULL;
}

const cJSON *bfcl_entry_messages(const bfcl_entry *en) {
    return en && cJSON_IsArray(en->question) ? en->question->child : NULL;
}

static double acc(long c, long t) { return t > 0 ? (double)c / (double)t : 0.0; }

void bfcl_summarize(const bfcl_category_result *r, size_t n, bfcl_summary *s) {
    memset(s, 0, sizeof(*s));
    double *cols[] = {&s->simple, &s->multiple, &s->parallel, &s->parallel_multiple,
                      &s->live_simple, &s->live_multiple, &s->live_parallel, &s->live_parallel_multiple};
    for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) *cols[i] = -1;
    static const char *const SIMPLE[] = {"simple_python", "simple", "simple_java", "simple_javascript"};
    static const char *const NONLIVE[] = {"multiple", "parallel", "parallel_multiple"};
    static const char *const LIVE[] = {"live_simple", "live_multiple", "live_parallel", "live_parallel_multiple"};
    double simple_sum = 0;
    long live_c = 0, live_t = 0;
    for (size_t i = 0; i < n; i++) {
        const char *c = r[i].category;
        if (!c || r[i].total <= 0) continue;
        double a = acc(r[i].correct, r[i].total);
        for (size_t k = 0; k < 4; k++)
            if (!strcmp(c, SIMPLE[k])) {
                simple_sum += a;
                s->simple_parts++;
            }
        for (size_t k = 0; k < 3; k++)
            if (!strcmp(c, NONLIVE[k])) *cols[1 + k] = a;
        for (size_t k = 0; k < 4; k++)
            if (!strcmp(c, LIVE[k])) {
                *cols[4 + k] = a;
                live_c += r[i].correct;
                live_t += r[i].total;
            }
    }
    if (s->simple_parts) s->simple = simple_sum / s->simple_parts;
    double nl = 0;
    for (int k = 0; k < 4; k++)
        if (*cols[k] >= 0) {
            nl += *cols[k];
            s->non_live_parts++;
        }
    s->non_live = s->non_live_parts ? nl / s->non_live_parts : -1;
    s->live_total = live_t;
    s->live = live_t ? acc(live_c, live_t) : -1;
    if (s->non_live >= 0 && s->live >= 0)
        s->overall = (s->non_live + s->live) / 2;
    else
        s->overall = s->non_live >= 0 ? s->non_live : s->live;
}
