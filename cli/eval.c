// eval.c: `toolrl eval`: runs a model over BFCL or API-Bank level-1 with the same Tool-N1
// prompt (model/toolprompt.c) and output parser (eval/toolcall_parse.c) as the server and
// the trainer, scores every reply with the benchmark's checker, prints a table and writes a
// JSON report with every prompt, raw output and verdict.
// Generation is batched: up to --batch sequences decode together in one forward pass, and a
// finished sequence's slot is refilled with the next example at once.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apibank.h"
#include "bfcl_checker.h"
#include "bfcl_data.h"
#include "cli.h"
#include "forward.h"
#include "model.h"
#include "sampler.h"
#include "tokenizer.h"
#include "toolcall_parse.h"
#include "quant.h"
#include "store.h"
#include "toolprompt.h"

// One example: its prompt, and what the checker needs to score a reply.
typedef struct {
    char *category;
    char *id;
    char *prompt;
    const cJSON *functions;    // BFCL: the entry's function list (borrowed)
    const cJSON *truth;        // BFCL: possible answers; API-Bank: unused
    char *expected;            // API-Bank: "API-Request: [...]"
    char *output;              // the model's reply
    int n_prompt, n_out;
    int correct;
    char verdict[600];
} eval_item;

typedef struct {
    eval_item *v;
    int n, cap;
} eval_items;

static int items_push(eval_items *it, eval_item x) {
    if (it->n == it->cap) {
        int nc = it->cap ? 2 * it->cap : 256;
        eval_item *nv = realloc(it->v, sizeof(eval_item) * (size_t)nc);
        if (!nv) return TRL_ERR;
        it->v = nv;
        it->cap = nc;
    }
    it->v[it->n++] = x;
    return TRL_OK;
}

static const char *shared_dir(void) {
    const char *s = getenv("TOOLRL_SHARED");
    return s && *s ? s : "../shared";
}

// Wraps BFCL/Hammer function schemas as {"type":"function","function":f} tool entries.
static cJSON *tools_of(const cJSON *functions) {
    cJSON *tools = cJSON_CreateArray();
    const cJSON *f;
    cJSON_ArrayForEach(f, functions) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "type", "function");
        cJSON_AddItemToObject(t, "function", cJSON_Duplicate(f, 1));
        cJSON_AddItemToArray(tools, t);
    }
    return tools;
}

static char *render(const cJSON *functions, const cJSON *messages) {
    int n = cJSON_GetArraySize(messages), k = 0;
    toolprompt_msg *msgs = calloc((size_t)(n ? n : 1), sizeof(*msgs));
    if (!msgs) return NULL;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages) {
        const cJSON *r = cJSON_GetObjectItem(m, "role"), *c = cJSON_GetObjectItem(m, "content");
        if (!cJSON_IsString(r) || !cJSON_IsString(c)) continue;
        const char *role = r->valuestring;
        if (!strcmp(role, "agent")) role = "assistant";  // API-Bank (Hammer) dialogue roles
        msgs[k++] = (toolprompt_msg){role, c->valuestring, NULL};
    }
    cJSON *tools = tools_of(functions);
    char *p = toolprompt_render(tools, msgs, k);
    cJSON_Delete(tools);
    free(msgs);
    return p;
}

static int load_bfcl(const char *cats, int limit, bfcl_dataset **dss, int *n_ds, eval_items *it, trl_err *e) {
    static const char *all[] = {"simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance",
                                "live_simple", "live_multiple", "live_parallel", "live_parallel_multiple",
                                "live_irrelevance", "live_relevance"};
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/data/bfcl", shared_dir());
    char *list = strdup(cats ? cats : "");
    int n_all = (int)(sizeof(all) / sizeof(all[0]));
    *dss = calloc((size_t)n_all + 16, sizeof(bfcl_dataset));
    if (!list || !*dss) return trl_errf(e, "out of memory");
    *n_ds = 0;
    char *save = NULL, *tok = cats ? strtok_r(list, ",", &save) : NULL;
    for (int i = 0; cats ? tok != NULL : i < n_all; i++) {
        const char *cat = cats ? tok : all[i];
        if (*n_ds >= n_all + 16) break;
        bfcl_dataset *ds = &(*dss)[*n_ds];
        if (bfcl_dataset_load(dir, cat, ds, e)) {
            free(list);
            return TRL_ERR;
        }
        (*n_ds)++;
        for (size_t j = 0; j < ds->n && (limit <= 0 || (int)j < limit); j++) {
            const bfcl_entry *en = &ds->entries[j];
            char *p = render(en->functions, bfcl_entry_messages(en));
            eval_item x = {strdup(cat), strdup(en->id), p, en->functions, en->ground_truth, NULL, NULL, 0, 0, 0, ""};
            if (!p || !x.category || !x.id || items_push(it, x)) {
                free(list);
                return trl_errf(e, "out of memory");
            }
        }
        if (cats) tok = strtok_r(NULL, ",", &save);
    }
    free(list);
    return TRL_OK;
}

// API-Bank level-1: the Hammer-format copy gives the dialogue and tools as JSON; the original
// file gives expected_output (same rows, same order; see the data's PROVENANCE.md).
static int load_apibank(int limit, cJSON **keep, eval_items *it, trl_err *e) {
    char p1[1024], p2[1024];
    snprintf(p1, sizeof(p1), "%s/data/apibank/hammer/apibank_l1.json", shared_dir());
    snprintf(p2, sizeof(p2), "%s/data/apibank/level-1-api.json", shared_dir());
    char *t1 = trl_read_file(p1, NULL, e), *t2 = t1 ? trl_read_file(p2, NULL, e) : NULL;
    cJSON *h = t1 ? cJSON_Parse(t1) : NULL, *o = t2 ? cJSON_Parse(t2) : NULL;
    free(t1);
    free(t2);
    if (!h || !o || cJSON_GetArraySize(h) != cJSON_GetArraySize(o)) {
        cJSON_Delete(h);
        cJSON_Delete(o);
        return e && e->msg[0] ? TRL_ERR : trl_errf(e, "API-Bank files unreadable or of different lengths");
    }
    keep[0] = h;
    keep[1] = o;
    int n = cJSON_GetArraySize(h);
    for (int i = 0; i < n && (limit <= 0 || i < limit); i++) {
        const cJSON *row = cJSON_GetArrayItem(h, i), *orig = cJSON_GetArrayItem(o, i);
        const cJSON *exp = cJSON_GetObjectItem(orig, "expected_output");
        char id[64];
        snprintf(id, sizeof(id), "apibank_l1_%d", i);
        char *p = render(cJSON_GetObjectItem(row, "tools"), cJSON_GetObjectItem(row, "query"));
        eval_item x = {strdup("apibank_l1"), strdup(id), p, NULL, NULL,
                       strdup(cJSON_IsString(exp) ? exp->valuestring : ""), NULL, 0, 0, 0, ""};
        if (!p || !x.category || !x.id || !x.expected || items_push(it, x)) return trl_errf(e, "out of memory");
    }
    return TRL_OK;
}

static void score(eval_item *x) {
    toolcall_info info;
    cJSON *calls = toolcall_parse_bfcl(x->output, strlen(x->output), &info);
    trl_err e = {{0}};
    if (x->expected) {  // API-Bank: the first call must match
        const cJSON *c = cJSON_IsArray(calls) ? cJSON_GetArrayItem(calls, 0) : NULL;
        const cJSON *name = cJSON_GetObjectItem(c, "name"), *args = cJSON_GetObjectItem(c, "arguments");
        int r = apibank_match(x->expected, cJSON_IsString(name) ? name->valuestring : NULL, args, &e);
        x->correct = r == 1;
        snprintf(x->verdict, sizeof(x->verdict), "%s", r == 1 ? "" : r == 0 ? "call does not match" : e.msg);
    } else {
        bfcl_verdict v;
        memset(&v, 0, sizeof(v));
        if (bfcl_check(x->category, x->functions, x->truth, calls, &v, &e)) {
            x->correct = 0;
            snprintf(x->verdict, sizeof(x->verdict), "checker: %.400s", e.msg);
        } else {
            x->correct = v.valid;
            snprintf(x->verdict, sizeof(x->verdict), "%s%s%s", v.error_type, v.error[0] ? ": " : "", v.error);
        }
    }
    cJSON_Delete(calls);
}

// Generation state of one slot of the batch.
typedef struct {
    int item;       // index into items, -1 when free
    char *out;      // reply so far
    size_t len, cap;
    int n_gen;
    int32_t next;   // token to feed next
} slot;

static int out_append(slot *s, const char *p, int n) {
    if (s->len + (size_t)n + 1 > s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 1024;
        while (nc < s->len + (size_t)n + 1) nc *= 2;
        char *np = realloc(s->out, nc);
        if (!np) return TRL_ERR;
        s->out = np;
        s->cap = nc;
    }
    memcpy(s->out + s->len, p, (size_t)n);
    s->len += (size_t)n;
    s->out[s->len] = 0;
    return TRL_OK;
}

static void progress(int done, int total, double t0) {
    int w = 30, k = total ? done * w / total : w;
    double dt = trl_now() - t0;
    fprintf(stderr, "\r[%.*s%*s] %d/%d  %.2f ex/s ", k, "##############################", w - k, "", done, total,
            dt > 0 ? done / dt : 0.0);
    fflush(stderr);
}

// Runs every item through the engine, B at a time, greedy, at most max_new tokens each.
static int generate_all(const model *m, eval_items *it, int B, int n_ctx, int max_new, trl_err *e) {
    engine en;
    if (engine_init(&en, m, &ops_cpu, B, n_ctx, 512, e)) return TRL_ERR;
    int V = m->cfg.n_vocab, next_item = 0, done = 0, rc = TRL_OK;
    slot *sl = calloc((size_t)B, sizeof(slot));
    float *logits = malloc(sizeof(float) * (size_t)V * (size_t)B);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n_ctx), *tok = malloc(sizeof(int32_t) * (size_t)B),
            *seq = malloc(sizeof(int32_t) * (size_t)B), *pos = malloc(sizeof(int32_t) * (size_t)B);
    int8_t *want = malloc((size_t)B);
    int *who = malloc(sizeof(int) * (size_t)B);
    if (!sl || !logits || !ids || !tok || !seq || !pos || !want || !who) {
        rc = trl_errf(e, "out of memory");
        goto out;
    }
    for (int s = 0; s < B; s++) sl[s].item = -1;
    double t0 = trl_now();
    progress(0, it->n, t0);
    while (done < it->n && rc == TRL_OK) {
        // Refill free slots: prefill the prompt, take its first token greedily.
        for (int s = 0; s < B && next_item < it->n; s++) {
            if (sl[s].item >= 0) continue;
            eval_item *x = &it->v[next_item];
            int n = tokenizer_encode(m->tok, x->prompt, strlen(x->prompt), 1, ids, n_ctx);
            x->n_prompt = n;
            sl[s].len = 0;
            sl[s].n_gen = 0;
            if (out_append(&sl[s], "", 0)) return trl_errf(e, "out of memory");
            if (n < 0 || n + 2 > n_ctx) {  // too long for the context: scored as no reply
                x->output = strdup("");
                score(x);
                snprintf(x->verdict, sizeof(x->verdict), "prompt of %d tokens exceeds the context (%d)", n, n_ctx);
                x->correct = 0;
                done++, next_item++, s--;
                continue;
            }
            engine_seq_reset(&en, s);
            if (engine_feed(&en, s, ids, n, logits, e)) {
                rc = TRL_ERR;
                break;
            }
            sl[s].item = next_item++;
            sl[s].next = sampler_argmax(logits, V);
        }
        if (rc) break;
        // Append each slot's pending token; finish slots at end-of-generation or limits.
        int nb = 0;
        for (int s = 0; s < B; s++) {
            if (sl[s].item < 0) continue;
            eval_item *x = &it->v[sl[s].item];
            int32_t t = sl[s].next;
            int fin = tokenizer_is_eog(m->tok, t) || sl[s].n_gen >= max_new || en.seq_len[s] + 1 >= n_ctx;
            if (!fin) {
                char piece[256];
                int len = tokenizer_decode(m->tok, t, 0, piece, sizeof(piece));
                if (len > 0 && len <= (int)sizeof(piece) && out_append(&sl[s], piece, len)) rc = trl_errf(e, "oom");
                sl[s].n_gen++;
                // The parser reads the first <tool_call> block: once it is closed, stop.
                if (strstr(sl[s].out, "</tool_call>")) fin = 1;
            }
            if (fin) {
                x->output = strdup(sl[s].out);
                x->n_out = sl[s].n_gen;
                if (x->output) score(x);
                sl[s].item = -1;
                progress(++done, it->n, t0);
                continue;
            }
            tok[nb] = t, seq[nb] = s, pos[nb] = en.seq_len[s], want[nb] = 1, who[nb] = s;
            nb++;
        }
        if (nb == 0 || rc) continue;
        engine_batch b = {nb, tok, seq, pos, want};
        if (engine_forward(&en, &b, logits, e)) {
            rc = TRL_ERR;
            break;
        }
        for (int i = 0; i < nb; i++) sl[who[i]].next = sampler_argmax(logits + (size_t)i * V, V);
    }
    fprintf(stderr, "\n");
out:
    for (int s = 0; sl && s < B; s++) free(sl[s].out);
    free(sl);
    free(logits);
    free(ids);
    free(tok);
    free(seq);
    free(pos);
    free(want);
    free(who);
    engine_free(&en);
    return rc;
}

static int write_report(const char *path, const char *model_path, const char *suite, const eval_items *it,
                        const bfcl_summary *sum, trl_err *e) {
    cJSON *r = cJSON_CreateObject(), *rows = cJSON_CreateArray();
    cJSON_AddStringToObject(r, "model", model_path);
    cJSON_AddStringToObject(r, "suite", suite);
    cJSON_AddStringToObject(r, "decoding", "greedy");
    if (sum) {
        cJSON *s = cJSON_AddObjectToObject(r, "summary");
        cJSON_AddNumberToObject(s, "non_live", sum->non_live);
        cJSON_AddNumberToObject(s, "live", sum->live);
        cJSON_AddNumberToObject(s, "overall", sum->overall);
    }
    for (int i = 0; i < it->n; i++) {
        const eval_item *x = &it->v[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "category", x->category);
        cJSON_AddStringToObject(o, "id", x->id);
        cJSON_AddStringToObject(o, "prompt", x->prompt);
        cJSON_AddStringToObject(o, "output", x->output ? x->output : "");
        cJSON_AddNumberToObject(o, "prompt_tokens", x->n_prompt);
        cJSON_AddNumberToObject(o, "output_tokens", x->n_out);
        cJSON_AddBoolToObject(o, "correct", x->correct);
        cJSON_AddStringToObject(o, "verdict", x->verdict);
        cJSON_AddItemToArray(rows, o);
    }
    cJSON_AddItemToObject(r, "rows", rows);
    char *txt = cJSON_Print(r);
    cJSON_Delete(r);
    FILE *f = txt ? fopen(path, "w") : NULL;
    int ok = f && fputs(txt, f) >= 0;
    if (f && fclose(f) != 0) ok = 0;
    free(txt);
    return ok ? TRL_OK : trl_errf(e, "cannot write %s", path);
}

// Records every category's score (and the summary lines) in the job store's eval_results,
// under the model's name, so the dashboard and GET /v1/evals show them.
static int store_results(const char *db, const char *model_id, const char *suite, const bfcl_category_result *res,
                         size_t nres, const bfcl_summary *sum, const char *report, trl_err *e) {
    store *s;
    if (store_open(&s, db, e)) return TRL_ERR;
    int rc = TRL_OK;
    for (size_t c = 0; c < nres && rc == TRL_OK; c++) {
        store_eval_new in = {model_id, suite, res[c].category, (double)res[c].correct / (double)res[c].total,
                             res[c].total, report};
        rc = store_eval_add(s, &in, NULL, e);
    }
    if (sum) {
        const char *names[3] = {"non_live", "live", "overall"};
        double v[3] = {sum->non_live, sum->live, sum->overall};
        for (int k = 0; k < 3 && rc == TRL_OK; k++)
            if (v[k] >= 0) {
                store_eval_new in = {model_id, suite, names[k], v[k], 0, report};
                rc = store_eval_add(s, &in, NULL, e);
            }
    }
    store_close(s);
    return rc;
}

int cli_eval(int argc, char **argv) {
    static const char *const known[] = {"--model", "--suite", "--categories", "--limit", "--report", "--batch",
                                        "--max-tokens", "--ctx", "--threads", "--db", "--model-id", "--quantize", NULL};
    cli_check_opts(argc, argv, known);
    const char *model_path = cli_opt(argc, argv, "--model", NULL), *suite = cli_opt(argc, argv, "--suite", "bfcl");
    const char *report = cli_opt(argc, argv, "--report", NULL);
    int limit = (int)cli_opt_int(argc, argv, "--limit", 0), B = (int)cli_opt_int(argc, argv, "--batch", 8);
    int max_new = (int)cli_opt_int(argc, argv, "--max-tokens", 256), n_ctx = (int)cli_opt_int(argc, argv, "--ctx", 4096);
    if (!model_path || (strcmp(suite, "bfcl") && strcmp(suite, "apibank")) || B < 1 || max_new < 1 || n_ctx < 64) {
        fprintf(stderr, "usage: toolrl eval --model M --suite bfcl|apibank [--categories a,b] [--limit N]\n"
                        "                   [--report FILE.json] [--batch B] [--max-tokens N] [--ctx N]\n");
        return 2;
    }
    cli_set_threads((int)cli_opt_int(argc, argv, "--threads", 2));
    model m;
    trl_err e = {{0}};
    if (model_load(&m, model_path, &e)) {
        fprintf(stderr, "toolrl eval: %s\n", e.msg);
        return 1;
    }
    const char *qn = cli_opt(argc, argv, "--quantize", NULL);
    if (qn) {
        uint32_t qt = !strcmp(qn, "q8_0") ? QTYPE_Q8_0 : !strcmp(qn, "q4_0") ? QTYPE_Q4_0 : !strcmp(qn, "q4_1") ? QTYPE_Q4_1 : QTYPE_F32;
        if (qt == QTYPE_F32 || model_quantize(&m, qt, &e)) {
            fprintf(stderr, "toolrl eval: --quantize %s: %s\n", qn, qt == QTYPE_F32 ? "use q8_0, q4_0 or q4_1" : e.msg);
            model_free(&m);
            return 2;
        }
    }
    eval_items it = {0};
    bfcl_dataset *dss = NULL;
    int n_ds = 0, rc = 0;
    cJSON *keep[2] = {NULL, NULL};
    int lrc = !strcmp(suite, "bfcl") ? load_bfcl(cli_opt(argc, argv, "--categories", NULL), limit, &dss, &n_ds, &it, &e)
                                     : load_apibank(limit, keep, &it, &e);
    if (lrc || generate_all(&m, &it, B, n_ctx, max_new, &e)) {
        fprintf(stderr, "toolrl eval: %s\n", e.msg);
        rc = 1;
        goto done;
    }
    // Per-category table, in the order the categories were loaded.
    bfcl_category_result res[64];
    size_t nres = 0;
    for (int i = 0; i < it.n; i++) {
        size_t c = 0;
        while (c < nres && strcmp(res[c].category, it.v[i].category)) c++;
        if (c == nres) {
            if (nres == 64) continue;
            res[nres++] = (bfcl_category_result){it.v[i].category, 0, 0};
        }
        res[c].total++;
        res[c].correct += it.v[i].correct;
    }
    printf("%-26s %8s %8s %9s\n", "category", "correct", "total", "accuracy");
    for (size_t c = 0; c < nres; c++)
        printf("%-26s %8ld %8ld %8.2f%%\n", res[c].category, res[c].correct, res[c].total,
               100.0 * res[c].correct / (double)res[c].total);
    bfcl_summary sum;
    int is_bfcl = !strcmp(suite, "bfcl");
    if (is_bfcl) {
        bfcl_summarize(res, nres, &sum);
        if (sum.non_live >= 0) printf("%-26s %26.2f%%\n", "Non-live (AST)", 100 * sum.non_live);
        if (sum.live >= 0) printf("%-26s %26.2f%%\n", "Live (AST, weighted)", 100 * sum.live);
        if (sum.overall >= 0) printf("%-26s %26.2f%%\n", "Overall", 100 * sum.overall);
    }
    if (report && write_report(report, model_path, suite, &it, is_bfcl ? &sum : NULL, &e)) {
        fprintf(stderr, "toolrl eval: %s\n", e.msg);
        rc = 1;
    }
    const char *db = cli_opt(argc, argv, "--db", NULL);
    if (!rc && db) {
        const char *base = strrchr(model_path, '/');
        const char *mid = cli_opt(argc, argv, "--model-id", base && base[1] ? base + 1 : model_path);
        if (store_results(db, mid, suite, res, nres, is_bfcl ? &sum : NULL, report, &e)) {
            fprintf(stderr, "toolrl eval: %s\n", e.msg);
            rc = 1;
        } else {
            fprintf(stderr, "toolrl eval: results stored in %s as model %s\n", db, mid);
        }
    }
done:
    for (int i = 0; i < it.n; i++) {
        free(it.v[i].category);
        free(it.v[i].id);
        free(it.v[i].prompt);
        free(it.v[i].expected);
        free(it.v[i].output);
    }
    free(it.v);
    for (int i = 0; i < n_ds; i++) bfcl_dataset_free(&dss[i]);
    free(dss);
    cJSON_Delete(keep[0]);
    cJSON_Delete(keep[1]);
    model_free(&m);
    return rc;
}
