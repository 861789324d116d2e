// mix.c: building the deduplicated training mix with its validation split (see mix.h).
#include "data/mix.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/pyjson.h"
#include "base/strbuf.h"
#include "base/strset.h"
#include "data/example.h"

const mix_source MIX_DEFAULT_SOURCES[] = {
    {"xlam", CONVERT_XLAM, {"xlam/masking_sft_data_example.json"}, 0, 0},
    {"toolace", CONVERT_TOOLACE, {"toolace/sharegpt_func_fixed.json"}, 0, 0},
    {"toolrl", CONVERT_TOOLRL, {"toolrl_rlla/rlla_sft.json"}, 0, 0},
    {"toolrl_rlla4k_test", CONVERT_TOOLRL, {"var/data/sources/toolrl_rlla4k_test.jsonl"}, 1, 1},
    {"seal_tools", CONVERT_SEAL, {"seal_tools/Seal-Tools_Dataset"}, 0, 0},
    {"callnavi", CONVERT_CALLNAVI, {"callnavi/Dataset/Questions"}, 0, 0},
    {"glaive", CONVERT_GLAIVE, {"glaive/data/glaive_toolcall_en_demo.json"}, 0, 0},
    {"glaive_reason", CONVERT_GLAIVE, {"glaive/data/reason_tool_use_demo_50.jsonl"}, 0, 0},
    {"toolalpaca", CONVERT_TOOLALPACA, {"toolalpaca/toolalpaca.json"}, 0, 0},
    {"nestful", CONVERT_NESTFUL, {"nestful/data/non-executable", "nestful/data/executable"}, 0, 0},
    {"sgd", CONVERT_SGD, {"sgd/train"}, 0, 0},
};
const size_t MIX_DEFAULT_N = sizeof(MIX_DEFAULT_SOURCES) / sizeof(MIX_DEFAULT_SOURCES[0]);

const mix_source *mix_default_source(const char *label) {
    for (size_t i = 0; i < MIX_DEFAULT_N; i++)
        if (!strcmp(MIX_DEFAULT_SOURCES[i].label, label)) return &MIX_DEFAULT_SOURCES[i];
    return NULL;
}

typedef struct {
    char *line;  // the example as compact JSON
    char *id;
    int src;
    uint64_t order;  // split hash
} mix_row;

typedef struct {
    mix_report *rep;
    const strset *evalq;
    strset keys, ids;
    mix_row *rows;
    size_t n, cap;
    size_t *plen;  // prompt bytes of each row
    int src;
    double irrelevance_frac;
    unsigned long seed;
} mix_state;

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// Appends the strings of list (n of them, sorted) to sb, separated by 0x1f; frees them.
static void add_sorted(strbuf *sb, char **list, size_t n) {
    qsort(list, n, sizeof(*list), cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (i) strbuf_addc(sb, '\x1f');
        strbuf_adds(sb, list[i]);
        free(list[i]);
    }
}

// The dedup key (see mix.h); NULL when out of memory.
static char *dedup_key(const cJSON *ex) {
    strbuf sb;
    strbuf_init(&sb);
    int oom = 0;
    for (const cJSON *m = get(ex, "messages")->child; m; m = m->next) {
        const cJSON *ro = get(m, "role"), *co = get(m, "content");
        if (strcmp(ro->valuestring, "user") || !cJSON_IsString(co)) continue;
        char *q = evalq_normalise(co->valuestring);
        oom |= !q;
        if (q) strbuf_adds(&sb, q), strbuf_addc(&sb, '\x1f');
        free(q);
    }
    strbuf_addc(&sb, '\x1e');
    const cJSON *tools = get(ex, "tools"), *answer = get(ex, "answer");
    size_t nt = (size_t)cJSON_GetArraySize(tools), na = (size_t)cJSON_GetArraySize(answer), k = 0;
    char **list = calloc((nt > na ? nt : na) + 1, sizeof(char *));
    if (!list) {
        strbuf_free(&sb);
        return NULL;
    }
    for (const cJSON *t = tools->child; t; t = t->next) {
        list[k] = strdup(get(example_tool_function(t), "name")->valuestring);
        oom |= !list[k++];
    }
    add_sorted(&sb, list, k);
    strbuf_addc(&sb, '\x1e');
    k = 0;
    for (const cJSON *c = answer->child; c; c = c->next) {
        list[k] = pyjson_canonical(c);
        oom |= !list[k++];
    }
    if (!oom) add_sorted(&sb, list, k);
    else
        for (size_t i = 0; i < k; i++) free(list[i]);
    free(list);
    char *key = strbuf_take(&sb);
    if (oom) {
        free(key);
        return NULL;
    }
    return key;
}

static uint64_t mix64(uint64_t x) {  // splitmix64's finaliser
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t split_hash(unsigned long seed, const char *id) {
    uint64_t h = 1469598103934665603ull;
    for (const char *p = id; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return mix64(h ^ mix64((uint64_t)seed));
}

// Adds one example to the mix unless its question is an evaluation question or it duplicates
// a row already in; *added says which.
static int mix_add(mix_state *st, const cJSON *ex, int *added_out, trl_err *e) {
    mix_report *rep = st->rep;
    *added_out = 0;
    // The question: the last user message.
    const char *question = NULL;
    for (const cJSON *m = get(ex, "messages")->child; m; m = m->next)
        if (!strcmp(get(m, "role")->valuestring, "user")) question = get(m, "content")->valuestring;
    char *q = evalq_normalise(question ? question : "");
    if (!q) return trl_errf(e, "out of memory");
    int overlap = strset_has(st->evalq, q);
    free(q);
    if (overlap) {
        rep->eval_overlap[st->src]++;
        rep->eval_overlap_total++;
        return TRL_OK;
    }
    char *key = dedup_key(ex);
    int added = key ? strset_add(&st->keys, key) : -1;
    free(key);
    if (added < 0) return trl_errf(e, "out of memory");
    if (!added) {
        rep->duplicates[st->src]++;
        rep->duplicates_total++;
        return TRL_OK;
    }
    const char *id = get(ex, "id")->valuestring;
    int fresh = strset_add(&st->ids, id);
    if (fresh < 0) return trl_errf(e, "out of memory");
    if (!fresh) return trl_errf(e, "two rows have the id %s (a converter bug)", id);
    if (st->n == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 4096;
        mix_row *nr = realloc(st->rows, cap * sizeof(*nr));
        size_t *np = nr ? realloc(st->plen, cap * sizeof(*np)) : NULL;
        if (nr) st->rows = nr;
        if (np) st->plen = np;
        if (!nr || !np) return trl_errf(e, "out of memory");
        st->cap = cap;
    }
    mix_row *r = &st->rows[st->n];
    r->line = pyjson_dump(ex, PYJSON_COMPACT);
    r->id = strdup(id);
    r->src = st->src;
    char *mj = pyjson_dump(get(ex, "messages"), PYJSON_COMPACT), *tj = pyjson_dump(get(ex, "tools"), PYJSON_COMPACT);
    st->plen[st->n] = (mj ? strlen(mj) : 0) + (tj ? strlen(tj) : 0);
    int ok = r->line && r->id && mj && tj;
    free(mj);
    free(tj);
    if (!ok) {
        free(r->line);
        free(r->id);
        return trl_errf(e, "out of memory");
    }
    st->n++;
    rep->kept[st->src]++;
    int nc = cJSON_GetArraySize(get(ex, "answer"));
    rep->calls[nc < MIX_CALL_BINS - 1 ? nc : MIX_CALL_BINS - 1]++;
    *added_out = 1;
    return TRL_OK;
}

// The irrelevance twin of a single-turn row with calls: the same question with every tool its
// answer calls taken out of the list, answer []. NULL when the row does not qualify (context
// turns, no calls, or no tool left) or on out of memory (*oom set).
static cJSON *irrelevance_twin(const cJSON *ex, int *oom) {
    *oom = 0;
    const cJSON *answer = get(ex, "answer"), *m;
    if (cJSON_GetArraySize(answer) == 0) return NULL;
    cJSON_ArrayForEach(m, get(ex, "messages")) {
        const char *role = get(m, "role")->valuestring;
        if (strcmp(role, "user") && strcmp(role, "system")) return NULL;
    }
    cJSON *twin = cJSON_Duplicate(ex, 1);
    if (!twin) return *oom = 1, NULL;
    cJSON *tools = cJSON_GetObjectItemCaseSensitive(twin, "tools");
    for (cJSON *t = tools ? tools->child : NULL, *next; t; t = next) {
        next = t->next;
        const cJSON *fn = get(t, "function");
        const cJSON *name = get(fn ? fn : t, "name");
        const cJSON *c;
        cJSON_ArrayForEach(c, answer) {
            const cJSON *cn = get(c, "name");
            if (cJSON_IsString(name) && cJSON_IsString(cn) && !strcmp(name->valuestring, cn->valuestring)) {
                cJSON_Delete(cJSON_DetachItemViaPointer(tools, t));
                break;
            }
        }
    }
    const cJSON *id = get(twin, "id");
    size_t n = strlen(id->valuestring) + 8;
    char *tid = malloc(n);
    cJSON *empty = cJSON_CreateArray();
    if (!tid || !empty) {
        free(tid), cJSON_Delete(empty), cJSON_Delete(twin);
        return *oom = 1, NULL;
    }
    snprintf(tid, n, "%s-irr", id->valuestring);
    int ok = cJSON_GetArraySize(tools) > 0 && cJSON_ReplaceItemInObjectCaseSensitive(twin, "answer", empty);
    if (!ok) cJSON_Delete(empty);
    ok = ok && cJSON_ReplaceItemInObjectCaseSensitive(twin, "id", cJSON_CreateString(tid));
    free(tid);
    if (!ok) {
        cJSON_Delete(twin);
        return NULL;
    }
    return twin;
}

static int mix_sink(void *ctx, const cJSON *ex, trl_err *e) {
    mix_state *st = ctx;
    st->rep->converted++;
    int added;
    if (mix_add(st, ex, &added, e)) return TRL_ERR;
    // A seeded share of the single-turn rows with calls also enters as its irrelevance twin.
    const char *id = get(ex, "id")->valuestring;
    if (!added || st->irrelevance_frac <= 0 ||
        (double)(split_hash(st->seed ^ 0x1447ul, id) >> 11) * 0x1.0p-53 >= st->irrelevance_frac)
        return TRL_OK;
    int oom;
    cJSON *twin = irrelevance_twin(ex, &oom);
    if (!twin) return oom ? trl_errf(e, "out of memory") : TRL_OK;
    int rc = mix_add(st, twin, &added, e);
    cJSON_Delete(twin);
    if (rc == TRL_OK && added) st->rep->irrelevance_twins[st->src]++, st->rep->irrelevance_twins_total++;
    return rc;
}

static int cmp_order(const void *a, const void *b) {
    const mix_row *x = *(mix_row *const *)a, *y = *(mix_row *const *)b;
    if (x->order != y->order) return x->order < y->order ? -1 : 1;
    return strcmp(x->id, y->id);
}

static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static int write_rows(const char *dir, const char *name, const mix_state *st, const unsigned char *is_val, int want_val,
                      trl_err *e) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return trl_errf(e, "%s: %s", tmp, strerror(errno));
    int ok = 1;
    for (size_t i = 0; ok && i < st->n; i++)
        if (is_val[i] == want_val) ok = fputs(st->rows[i].line, f) >= 0 && fputc('\n', f) != EOF;
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return trl_errf(e, "%s: write failed", path);
    }
    return TRL_OK;
}

int mix_build(const mix_config *cfg, mix_report *rep, trl_err *e) {
    memset(rep, 0, sizeof(*rep));
    if (cfg->n_sources > MIX_MAX_SOURCES) return trl_errf(e, "at most %d sources", MIX_MAX_SOURCES);
    if (!(cfg->val_frac >= 0 && cfg->val_frac < 1)) return trl_errf(e, "--val-frac must be in [0, 1)");
    if (!(cfg->irrelevance_frac >= 0 && cfg->irrelevance_frac <= 1))
        return trl_errf(e, "--irrelevance must be in [0, 1]");
    strset evalq;
    strset_init(&evalq);
    if (evalq_load(cfg->data_dir, &evalq, &rep->evalq, e)) {
        strset_free(&evalq);
        return TRL_ERR;
    }
    rep->eval_questions = (long)evalq.n;
    mix_state st = {.rep = rep, .evalq = &evalq, .irrelevance_frac = cfg->irrelevance_frac, .seed = cfg->seed};
    strset_init(&st.keys);
    strset_init(&st.ids);
    int rc = TRL_OK;
    rep->n_sources = cfg->n_sources;
    for (size_t s = 0; rc == TRL_OK && s < cfg->n_sources; s++) {
        const mix_source *src = &cfg->sources[s];
        rep->label[s] = src->label;
        convert_counts_init(&rep->counts[s]);
        convert_opts o = {.source = src->override ? src->label : NULL};
        st.src = (int)s;
        for (int k = 0; rc == TRL_OK && k < MIX_MAX_PATHS && src->path[k]; k++) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", src->in_repo ? (cfg->repo_dir ? cfg->repo_dir : ".") : cfg->data_dir,
                     src->path[k]);
            rc = convert_path(src->format, path, &o, mix_sink, &st, &rep->counts[s], e);
        }
    }
    unsigned char *is_val = rc == TRL_OK ? calloc(st.n + 1, 1) : NULL;
    mix_row **order = rc == TRL_OK ? calloc(st.n + 1, sizeof(*order)) : NULL;
    if (rc == TRL_OK && (!is_val || !order)) rc = trl_errf(e, "out of memory");
    if (rc == TRL_OK) {
        for (size_t i = 0; i < st.n; i++) {
            st.rows[i].order = split_hash(cfg->seed, st.rows[i].id);
            order[i] = &st.rows[i];
        }
        qsort(order, st.n, sizeof(*order), cmp_order);
        size_t nval = (size_t)llround(cfg->val_frac * (double)st.n);
        for (size_t i = 0; i < nval; i++) is_val[order[i] - st.rows] = 1;
        rep->total = (long)st.n;
        rep->val = (long)nval;
        rep->train = rep->total - rep->val;
        for (size_t i = 0; i < st.n; i++) {
            if (is_val[i])
                rep->val_rows[st.rows[i].src]++;
            else
                rep->train_rows[st.rows[i].src]++;
            size_t b = 0, lim = 1000;
            while (b < MIX_LEN_BINS - 1 && st.plen[i] >= lim) b++, lim *= 2;
            rep->prompt_len[b]++;
        }
        if (st.n) {
            qsort(st.plen, st.n, sizeof(*st.plen), cmp_size);
            rep->prompt_median = (long)st.plen[st.n / 2];
            rep->prompt_p90 = (long)st.plen[(st.n * 9) / 10];
            rep->prompt_max = (long)st.plen[st.n - 1];
        }
        if (cfg->out_dir) {
            rc = trl_mkdirs(cfg->out_dir, e);
            if (rc == TRL_OK) rc = write_rows(cfg->out_dir, "train.jsonl", &st, is_val, 0, e);
            if (rc == TRL_OK) rc = write_rows(cfg->out_dir, "val.jsonl", &st, is_val, 1, e);
        }
    }
    free(is_val);
    free(order);
    for (size_t i = 0; i < st.n; i++) {
        free(st.rows[i].line);
        free(st.rows[i].id);
    }
    free(st.rows);
    free(st.plen);
    strset_free(&st.keys);
    strset_free(&st.ids);
    strset_free(&evalq);
    return rc;
}

void mix_report_print(const mix_report *rep, FILE *f) {
    fprintf(f, "evaluation questions blocklisted: %ld distinct (bfcl %ld, api-bank %ld, acebench %ld; %ld files)\n",
            rep->eval_questions, rep->evalq.bfcl, rep->evalq.apibank, rep->evalq.acebench, rep->evalq.files);
    fprintf(f, "converter counts per source:\n");
    for (size_t s = 0; s < rep->n_sources; s++) {
        const convert_counts *c = &rep->counts[s];
        fprintf(f, "  %-20s", rep->label[s]);
        for (size_t i = 0; i < c->n; i++)
            if (c->value[i]) fprintf(f, " %s=%ld", c->name[i], c->value[i]);
        fprintf(f, "\n");
    }
    fprintf(f, "%-22s %8s %8s %8s %8s %8s %8s %8s\n", "source", "examples", "eval_ovl", "dupes", "irr_twin", "in_mix",
            "train", "val");
    long conv = 0;
    for (size_t s = 0; s < rep->n_sources; s++) {
        long k = convert_count_get(&rep->counts[s], "kept");
        conv += k;
        fprintf(f, "%-22s %8ld %8ld %8ld %8ld %8ld %8ld %8ld\n", rep->label[s], k, rep->eval_overlap[s],
                rep->duplicates[s], rep->irrelevance_twins[s], rep->kept[s], rep->train_rows[s], rep->val_rows[s]);
    }
    fprintf(f, "%-22s %8ld %8ld %8ld %8ld %8ld %8ld %8ld\n", "total", conv, rep->eval_overlap_total,
            rep->duplicates_total, rep->irrelevance_twins_total, rep->total, rep->train, rep->val);
    fprintf(f, "duplicates removed: %ld; rows dropped for an evaluation question: %ld\n", rep->duplicates_total,
            rep->eval_overlap_total);
    fprintf(f, "calls per row:");
    for (int i = 0; i < MIX_CALL_BINS; i++)
        fprintf(f, " %d%s: %ld", i, i == MIX_CALL_BINS - 1 ? "+" : "", rep->calls[i]);
    fprintf(f, "\nirrelevance rows (answer []): %ld (%ld of them twins of rows with calls, their called tools removed)\n",
            rep->calls[0], rep->irrelevance_twins_total);
    fprintf(f, "prompt length (bytes of the compact JSON of messages + tools):");
    long lim = 1000;
    for (int i = 0; i < MIX_LEN_BINS; i++, lim *= 2) {
        if (i < MIX_LEN_BINS - 1)
            fprintf(f, " <%ldk: %ld", lim / 1000, rep->prompt_len[i]);
        else
            fprintf(f, " >=%ldk: %ld", lim / 2000, rep->prompt_len[i]);
    }
    fprintf(f, "\n  median %ld, p90 %ld, max %ld\n", rep->prompt_median, rep->prompt_p90, rep->prompt_max);
}
