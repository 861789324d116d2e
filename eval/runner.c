// runner.c: one evaluation run (see runner.h): examples → Tool-N1 prompts → batched greedy
// generation → the benchmark's checker → per-category tallies and a JSON report.
#include "eval/runner.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/apibank.h"
#include "model/generate.h"
#include "model/tokenizer.h"
#include "protocol/toolcall_parse.h"
#include "protocol/toolprompt.h"
#include "store/store.h"

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
    const acebench_row *ace;   // ACEBench: the row (borrowed from eval_run.ace_files)
    int strict;                // ACEBench special rows: the official string check alone
} eval_item;

struct eval_items {
    eval_item *v;
    int n, cap;
};

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

static const char *shared_dir_of(const eval_opts *o) {
    const char *s = o->shared_dir && *o->shared_dir ? o->shared_dir : getenv("TOOLRL_SHARED");
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

static char *render(const eval_opts *o, const cJSON *functions, const cJSON *messages) {
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
    char *p = toolprompt_render_style((toolprompt_style)o->prompt_style, tools, msgs, k);
    cJSON_Delete(tools);
    free(msgs);
    return p;
}

static const char *const BFCL_ALL[] = {"simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance",
                                       "live_simple", "live_multiple", "live_parallel", "live_parallel_multiple",
                                       "live_irrelevance", "live_relevance"};

int eval_bfcl_category_known(const char *category) {
    for (size_t i = 0; i < sizeof(BFCL_ALL) / sizeof(BFCL_ALL[0]); i++)
        if (!strcmp(category, BFCL_ALL[i])) return 1;
    return 0;
}

static int load_bfcl(const eval_opts *o, const char *cats, int limit, bfcl_dataset **dss, int *n_ds, eval_items *it,
                     trl_err *e) {
    const char *const *all = BFCL_ALL;
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/data/bfcl", shared_dir_of(o));
    char *list = strdup(cats ? cats : "");
    int n_all = (int)(sizeof(BFCL_ALL) / sizeof(BFCL_ALL[0]));
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
            char *p = render(o, en->functions, bfcl_entry_messages(en));
            eval_item x = {strdup(cat), strdup(en->id), p, en->functions, en->ground_truth, NULL, NULL, 0, 0, 0, "", NULL, 0};
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
static int load_apibank(const eval_opts *opt, int limit, cJSON **keep, eval_items *it, trl_err *e) {
    char p1[1024], p2[1024];
    snprintf(p1, sizeof(p1), "%s/data/apibank/hammer/apibank_l1.json", shared_dir_of(opt));
    snprintf(p2, sizeof(p2), "%s/data/apibank/level-1-api.json", shared_dir_of(opt));
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
        char *p = render(opt, cJSON_GetObjectItem(row, "tools"), cJSON_GetObjectItem(row, "query"));
        eval_item x = {strdup("apibank_l1"), strdup(id), p, NULL, NULL,
                       strdup(cJSON_IsString(exp) ? exp->valuestring : ""), NULL, 0, 0, 0, "", NULL, 0};
        if (!p || !x.category || !x.id || !x.expected || items_push(it, x)) return trl_errf(e, "out of memory");
    }
    return TRL_OK;
}

// ACEBench: every row of the chosen files (eval/acebench.c does the prompts and the checking).
static int load_acebench(const eval_opts *o, eval_run *r, eval_items *it, trl_err *e) {
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/data/acebench", shared_dir_of(o));
    char *list = strdup(o->categories ? o->categories : ""), *save = NULL;
    r->ace_files = calloc(15, sizeof(acebench_file));
    if (!list || !r->ace_files) return free(list), trl_errf(e, "out of memory");
    char *tok = o->categories ? strtok_r(list, ",", &save) : NULL;
    int rc = TRL_OK;
    for (int i = 0; rc == TRL_OK && (o->categories ? tok != NULL : i < 15) && r->n_ace < 15; i++) {
        const char *cat = o->categories ? tok : ACEBENCH_CATEGORIES[i];
        acebench_file *f = &r->ace_files[r->n_ace];
        rc = acebench_file_load(dir, cat, o->limit, f, e);
        if (rc) break;
        r->n_ace++;
        for (size_t j = 0; j < f->n && rc == TRL_OK; j++) {
            eval_item x = {strdup(cat), strdup(f->rows[j].id), acebench_row_prompt(&f->rows[j], o->prompt_style), NULL, NULL, NULL,
                           NULL, 0, 0, 0, "", &f->rows[j], 0};
            if (!x.category || !x.id || !x.prompt || items_push(it, x)) rc = trl_errf(e, "out of memory");
        }
        if (o->categories) tok = strtok_r(NULL, ",", &save);
    }
    free(list);
    return rc;
}

static void score(eval_item *x, int prompt_style) {
    toolcall_info info;
    if (x->ace) {
        acebench_verdict v;
        trl_err e = {{0}};
        int rc = acebench_score(x->ace, prompt_style, x->output, &v, &e);
        x->correct = rc == TRL_OK && v.valid;
        x->strict = rc == TRL_OK && v.strict;
        snprintf(x->verdict, sizeof(x->verdict), "%s%s%.400s", rc ? "checker: " : v.error_type,
                 !rc && v.error[0] ? ": " : "", rc ? e.msg : v.error);
        return;
    }
    cJSON *calls = toolcall_parse_reply(prompt_style, x->output, strlen(x->output), &info);
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



// Length of the valid UTF-8 sequence at p (n bytes left), or 0 when the byte starts none.
static int utf8_len(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    if (c < 0x80) return 1;
    int k = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (!k || (size_t)k > n) return 0;
    for (int i = 1; i < k; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    if (c == 0xe0 && p[1] < 0xa0) return 0;   // overlong
    if (c == 0xed && p[1] > 0x9f) return 0;   // surrogate
    if (c == 0xf0 && p[1] < 0x90) return 0;   // overlong
    if (c == 0xf4 && p[1] > 0x8f) return 0;   // above U+10FFFF
    return k;
}

// A copy of s with every byte that is not valid UTF-8 replaced by U+FFFD (a model's reply can
// end inside a character, or a tiny model can write any bytes), so the report is valid JSON.
static char *utf8_clean(const char *s) {
    size_t n = strlen(s), o = 0;
    char *out = malloc(3 * n + 1);
    if (!out) return NULL;
    for (size_t i = 0; i < n;) {
        int k = utf8_len((const unsigned char *)s + i, n - i);
        if (k) {
            memcpy(out + o, s + i, (size_t)k);
            o += (size_t)k, i += (size_t)k;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3, i++;
        }
    }
    out[o] = 0;
    return out;
}

// The journal (eval_opts.journal): one JSON object per line, a header then one per finished
// example. A reply that is not valid UTF-8 is kept byte for byte as "output_hex".
static cJSON *journal_header(const eval_opts *o, int max_new, int n_ctx) {
    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "toolrl_eval_journal", o->suite);
    cJSON_AddStringToObject(h, "key", o->journal_key ? o->journal_key : "");
    cJSON_AddNumberToObject(h, "max_new", max_new);
    cJSON_AddNumberToObject(h, "n_ctx", n_ctx);
    if (o->prompt_style) cJSON_AddStringToObject(h, "prompt", toolprompt_style_name((toolprompt_style)o->prompt_style));
    return h;
}

static int journal_write(FILE *f, const eval_item *x) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "category", x->category);
    cJSON_AddStringToObject(o, "id", x->id);
    size_t n = strlen(x->output), i = 0;
    for (int k; i < n && (k = utf8_len((const unsigned char *)x->output + i, n - i)) > 0;) i += (size_t)k;
    if (i == n) {  // valid UTF-8
        cJSON_AddStringToObject(o, "output", x->output);
    } else {
        char *hex = malloc(2 * n + 1);
        for (size_t i = 0; hex && i < n; i++) snprintf(hex + 2 * i, 3, "%02x", (unsigned char)x->output[i]);
        if (hex) hex[2 * n] = 0;
        cJSON_AddStringToObject(o, "output_hex", hex ? hex : "");
        free(hex);
    }
    cJSON_AddNumberToObject(o, "prompt_tokens", x->n_prompt);
    cJSON_AddNumberToObject(o, "output_tokens", x->n_out);
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    int ok = txt && fprintf(f, "%s\n", txt) > 0 && fflush(f) == 0;
    free(txt);
    return ok ? TRL_OK : TRL_ERR;
}

static char *unhex(const char *h) {
    size_t n = strlen(h) / 2;
    char *s = malloc(n + 1);
    for (size_t i = 0; s && i < n; i++) {
        unsigned v;
        if (sscanf(h + 2 * i, "%2x", &v) != 1) v = '?';
        s[i] = (char)v;
    }
    if (s) s[n] = 0;
    return s;
}

// Reads an existing journal into the items it names (scored at once) and opens it for
// appending; a missing file is created with its header. Returns the count already done, or -1.
static int journal_open(const eval_opts *o, eval_items *it, int max_new, int n_ctx, FILE **out, trl_err *e) {
    cJSON *want = journal_header(o, max_new, n_ctx);
    char *want_txt = cJSON_PrintUnformatted(want);
    cJSON_Delete(want);
    if (!want_txt) return trl_errf(e, "out of memory"), -1;
    int done = 0, lineno = 0, cut = 0;  // cut: the last line has no newline (a write cut short)
    FILE *f = fopen(o->journal, "r");
    if (f) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        while ((len = getline(&line, &cap, f)) > 0) {
            lineno++;
            cut = line[len - 1] != '\n';
            cJSON *j = cJSON_ParseWithLength(line, (size_t)len);
            if (lineno == 1) {
                char *got = j ? cJSON_PrintUnformatted(j) : NULL;
                int same = got && !strcmp(got, want_txt);
                free(got);
                cJSON_Delete(j);
                if (!same) {
                    trl_errf(e, "journal %s was written by another run (want %s)", o->journal, want_txt);
                    done = -1;
                    break;
                }
                continue;
            }
            const cJSON *c = cJSON_GetObjectItem(j, "category"), *id = cJSON_GetObjectItem(j, "id");
            const cJSON *out = cJSON_GetObjectItem(j, "output"), *hex = cJSON_GetObjectItem(j, "output_hex");
            if (!cJSON_IsString(c) || !cJSON_IsString(id) || !(cJSON_IsString(out) || cJSON_IsString(hex))) {
                cJSON_Delete(j);  // a line cut by a kill: its example runs again
                continue;
            }
            for (int i = 0; i < it->n; i++) {
                eval_item *x = &it->v[i];
                if (x->output || strcmp(x->category, c->valuestring) || strcmp(x->id, id->valuestring)) continue;
                x->output = cJSON_IsString(out) ? strdup(out->valuestring) : unhex(hex->valuestring);
                const cJSON *np = cJSON_GetObjectItem(j, "prompt_tokens"), *no = cJSON_GetObjectItem(j, "output_tokens");
                x->n_prompt = cJSON_IsNumber(np) ? np->valueint : 0;
                x->n_out = cJSON_IsNumber(no) ? no->valueint : 0;
                if (x->output) score(x, o->prompt_style), done++;
                break;
            }
            cJSON_Delete(j);
        }
        free(line);
        fclose(f);
    }
    if (done >= 0) {
        f = fopen(o->journal, "a");
        if (!f) {
            trl_errf(e, "cannot open journal %s", o->journal);
            done = -1;
        } else if ((lineno == 0 && fprintf(f, "%s\n", want_txt) < 0) || (cut && fputc('\n', f) == EOF) || fflush(f)) {
            fclose(f);
            trl_errf(e, "cannot write journal %s", o->journal);
            done = -1;
        } else {
            *out = f;
        }
    }
    free(want_txt);
    return done;
}

// Runs every item through the generator (model/generate.h), B at a time, greedy, at most
// max_new tokens each; a finished slot is refilled with the next item at once. Items already
// in the journal are skipped; a prompt longer than the context is scored as no reply.
static int generate_all(const model *m, eval_run *r, const eval_opts *o, trl_err *e) {
    eval_items *it = r->items;
    int B = o->batch > 0 ? o->batch : 8, n_ctx = o->n_ctx > 0 ? o->n_ctx : 4096, max_new = o->max_new > 0 ? o->max_new : 256;
    generator g;
    if (generator_init(&g, m, o->be, B, n_ctx, 512, e)) return TRL_ERR;
    int next_item = 0, done = 0, rc = TRL_OK;
    FILE *jf = NULL;  // the journal, when there is one
    int *item_of = malloc(sizeof(int) * (size_t)B);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n_ctx);
    if (!item_of || !ids) {
        rc = trl_errf(e, "out of memory");
        goto out;
    }
    for (int s = 0; s < B; s++) item_of[s] = -1;
    if (o->journal && (done = journal_open(o, it, max_new, n_ctx, &jf, e)) < 0) {
        rc = TRL_ERR;
        goto out;
    }
    if (o->progress) o->progress(o->ctx, done, it->n);
    while (done < it->n && rc == TRL_OK) {
        if (o->abort && *o->abort) {
            rc = TRL_ABORTED;
            break;
        }
        while (next_item < it->n) {  // fill free slots
            eval_item *x = &it->v[next_item];
            if (x->output) {  // done by an earlier run (the journal)
                next_item++;
                continue;
            }
            int n = tokenizer_encode(m->tok, x->prompt, strlen(x->prompt), 1, ids, n_ctx);
            x->n_prompt = n;
            if (n < 0 || n + 2 > n_ctx) {  // too long for the context: scored as no reply
                x->output = strdup("");
                if (!x->output) rc = trl_errf(e, "out of memory");
                else score(x, o->prompt_style);
                snprintf(x->verdict, sizeof(x->verdict), "prompt of %d tokens exceeds the context (%d)", n, n_ctx);
                x->correct = 0;
                done++, next_item++;
                continue;
            }
            gen_params p = {.prompt = ids,
                            .n_prompt = n,
                            .sp = {.temperature = 0, .top_k = 0, .top_p = 1.0f, .seed = 0},
                            .max_tokens = max_new,
                            // the Tool-N1 parser reads the first <tool_call> block: once it is closed, stop
                            .stop_at_tool_call = o->prompt_style == TOOLPROMPT_TOOLN1};
            int slot = generator_admit(&g, &p, e);
            if (slot == -1 || slot == -2) break;
            if (slot < 0) {
                rc = TRL_ERR;
                break;
            }
            item_of[slot] = next_item++;
        }
        if (rc) break;
        if (generator_step(&g, e) < 0) {
            rc = TRL_ERR;
            break;
        }
        for (int s = 0; s < B; s++) {
            if (item_of[s] < 0 || g.slots[s].state != GEN_DONE) continue;
            eval_item *x = &it->v[item_of[s]];
            x->output = strdup(g.slots[s].text);
            x->n_out = g.slots[s].n_text_tokens;
            if (x->output) score(x, o->prompt_style);
            else rc = trl_errf(e, "out of memory");
            if (x->output && jf && journal_write(jf, x)) rc = trl_errf(e, "cannot write journal %s", o->journal);
            generator_release(&g, s);
            item_of[s] = -1;
            ++done;
            if (o->progress) o->progress(o->ctx, done, it->n);
        }
    }
out:
    if (jf) fclose(jf);
    free(item_of);
    free(ids);
    r->prompt_tokens = g.prompt_tokens, r->prompt_tokens_cached = g.prompt_tokens_cached;
    r->completion_tokens = g.completion_tokens;
    generator_free(&g);
    return rc;
}

static int write_report(const char *path, const char *model_path, const char *suite, const eval_items *it,
                        const bfcl_summary *sum, const acebench_summary *ace, trl_err *e) {
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
    if (ace) cJSON_AddItemToObject(r, "summary", acebench_summary_json(ace));
    for (int i = 0; i < it->n; i++) {
        const eval_item *x = &it->v[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "category", x->category);
        cJSON_AddStringToObject(o, "id", x->id);
        cJSON_AddStringToObject(o, "prompt", x->prompt);
        char *clean = utf8_clean(x->output ? x->output : "");
        cJSON_AddStringToObject(o, "output", clean ? clean : "");
        free(clean);
        cJSON_AddNumberToObject(o, "prompt_tokens", x->n_prompt);
        cJSON_AddNumberToObject(o, "output_tokens", x->n_out);
        cJSON_AddBoolToObject(o, "correct", x->correct);
        if (x->ace && x->ace->kind >= ACE_SPECIAL_INCOMPLETE && x->ace->kind <= ACE_SPECIAL_IRRELEVANT)
            cJSON_AddBoolToObject(o, "strict_correct", x->strict);
        clean = utf8_clean(x->verdict);
        cJSON_AddStringToObject(o, "verdict", clean ? clean : "");
        free(clean);
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


int eval_run_all(eval_run *r, const model *m, const eval_opts *o, trl_err *e) {
    memset(r, 0, sizeof(*r));
    eval_items *it = calloc(1, sizeof(*it));
    if (!it) return trl_errf(e, "out of memory");
    r->items = it;
    r->is_bfcl = !strcmp(o->suite, "bfcl");
    r->is_acebench = !strcmp(o->suite, "acebench");
    if (!r->is_bfcl && !r->is_acebench && strcmp(o->suite, "apibank"))
        return trl_errf(e, "unknown suite '%s' (bfcl, apibank or acebench)", o->suite);
    snprintf(r->suite, sizeof(r->suite), "%s", o->suite);
    int rc = r->is_bfcl       ? load_bfcl(o, o->categories, o->limit, &r->dss, &r->n_ds, it, e)
             : r->is_acebench ? load_acebench(o, r, it, e)
                              : load_apibank(o, o->limit, r->keep, it, e);
    if (rc == TRL_OK) rc = generate_all(m, r, o, e);
    if (rc != TRL_OK) return rc;
    // Per-category tallies, in the order the categories were loaded.
    for (int i = 0; i < it->n; i++) {
        size_t c = 0;
        while (c < r->nres && strcmp(r->res[c].category, it->v[i].category)) c++;
        if (c == r->nres) {
            if (r->nres == EVAL_MAX_CATEGORIES) continue;
            r->res[r->nres++] = (bfcl_category_result){it->v[i].category, 0, 0};
        }
        r->res[c].total++;
        r->res[c].correct += it->v[i].correct;
    }
    if (r->is_bfcl) bfcl_summarize(r->res, r->nres, &r->sum);
    if (r->is_acebench) {  // per file as ACEBench counts (multi-turn: dialogues), and the means
        acebench_outcome *oc = calloc((size_t)(it->n ? it->n : 1), sizeof(*oc));
        if (!oc) return trl_errf(e, "out of memory");
        for (int i = 0; i < it->n; i++) oc[i] = (acebench_outcome){it->v[i].ace, it->v[i].correct, it->v[i].strict};
        acebench_summarize(oc, (size_t)it->n, &r->ace);
        free(oc);
        r->nres = 0;
        for (size_t c = 0; c < r->ace.n; c++)
            r->res[r->nres++] = (bfcl_category_result){r->ace.files[c].category, r->ace.files[c].correct, r->ace.files[c].total};
    }
    return TRL_OK;
}

int eval_run_report(const eval_run *r, const char *path, const char *model_label, trl_err *e) {
    return write_report(path, model_label, r->suite, r->items, r->is_bfcl ? &r->sum : NULL,
                        r->is_acebench ? &r->ace : NULL, e);
}

int eval_run_count(const eval_run *r) { return r->items ? r->items->n : 0; }

void eval_run_free(eval_run *r) {
    eval_items *it = r->items;
    for (int i = 0; it && i < it->n; i++) {
        free(it->v[i].category);
        free(it->v[i].id);
        free(it->v[i].prompt);
        free(it->v[i].expected);
        free(it->v[i].output);
    }
    if (it) free(it->v);
    free(it);
    for (int i = 0; i < r->n_ds; i++) bfcl_dataset_free(&r->dss[i]);
    free(r->dss);
    cJSON_Delete(r->keep[0]);
    cJSON_Delete(r->keep[1]);
    for (int i = 0; i < r->n_ace; i++) acebench_file_free(&r->ace_files[i]);
    free(r->ace_files);
    memset(r, 0, sizeof(*r));
}

int eval_run_store(const eval_run *r, store *s, const char *model_id, const char *report, const char *job_id,
                   trl_err *e) {
    int rc = TRL_OK;
    for (size_t c = 0; c < r->nres && rc == TRL_OK; c++) {
        store_eval_new in = {model_id, r->suite, r->res[c].category,
                             (double)r->res[c].correct / (double)r->res[c].total, r->res[c].total, report, job_id, NULL};
        rc = store_eval_add(s, &in, NULL, e);
    }
    if (r->is_bfcl) {
        const char *names[3] = {"non_live", "live", "overall"};
        double v[3] = {r->sum.non_live, r->sum.live, r->sum.overall};
        for (int k = 0; k < 3 && rc == TRL_OK; k++)
            if (v[k] >= 0) {
                store_eval_new in = {model_id, r->suite, names[k], v[k], 0, report, job_id, NULL};
                rc = store_eval_add(s, &in, NULL, e);
            }
    }
    if (r->is_acebench) {
        const char *names[8];
        double v[8];
        int k = acebench_summary_scores(&r->ace, names, v);
        for (int i = 0; i < k && rc == TRL_OK; i++) {
            store_eval_new in = {model_id, r->suite, names[i], v[i], 0, report, job_id, NULL};
            rc = store_eval_add(s, &in, NULL, e);
        }
    }
    return rc;
}
