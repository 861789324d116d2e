// convert.c: the conversion driver shared by all formats: reading records, refusing evaluation
// sets, counting, emitting validated examples (or counting a dropped sample), and the pieces
// every converter uses: reading calls, tools and messages, the first-step rule (see convert.h).
#include "data/convert.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/pyjson.h"
#include "data/example.h"

static const struct {
    const char *name;
    convert_count_kind kind;
} STANDARD[] = {
    {"rows", CONVERT_TOTAL},
    {"samples", CONVERT_TOTAL},
    {"kept", CONVERT_TOTAL},
    {"malformed_row", CONVERT_FILTER},
    {"no_tools", CONVERT_FILTER},
    {"unparseable_call", CONVERT_FILTER},
    {"empty_call", CONVERT_FILTER},
    {"unknown_tool", CONVERT_FILTER},
    {"ambiguous_name", CONVERT_FILTER},
    {"dependent_only", CONVERT_FILTER},
    {"wildcard_value", CONVERT_FILTER},
    {"no_call_dropped", CONVERT_FILTER},
    {"invalid_example", CONVERT_FILTER},
    {"no_call_kept", CONVERT_NOTE},
};

void convert_counts_init(convert_counts *c) {
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < sizeof(STANDARD) / sizeof(STANDARD[0]); i++) {
        c->name[i] = STANDARD[i].name;
        c->kind[i] = STANDARD[i].kind;
        c->n++;
    }
}

void convert_count(convert_counts *c, const char *name, long by) {
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->name[i], name)) {
            c->value[i] += by;
            return;
        }
    if (c->n < CONVERT_MAX_COUNTS) {
        c->name[c->n] = name;
        c->kind[c->n] = CONVERT_NOTE;
        c->value[c->n] = by;
        c->n++;
    }
}

long convert_count_get(const convert_counts *c, const char *name) {
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->name[i], name)) return c->value[i];
    return 0;
}

static const char *const FORMAT_NAMES[CONVERT_N_FORMATS] = {"xlam", "toolace",  "toolrl",     "openai",  "seal",
                                                             "callnavi", "glaive", "toolalpaca", "nestful", "sgd"};

const char *convert_format_list(void) {
    return "xlam, toolace, toolrl, openai, seal, callnavi, glaive, toolalpaca, nestful, sgd";
}

int convert_format_parse(const char *name, convert_format *f, trl_err *e) {
    for (int i = 0; i < CONVERT_N_FORMATS; i++)
        if (name && !strcmp(name, FORMAT_NAMES[i])) {
            *f = (convert_format)i;
            return TRL_OK;
        }
    return trl_errf(e, "unknown format '%s' (%s)", name ? name : "", convert_format_list());
}

const char *convert_format_name(convert_format f) { return (unsigned)f < CONVERT_N_FORMATS ? FORMAT_NAMES[f] : "?"; }

int convert_needs_side(convert_format f) {
    return f == CONVERT_SEAL || f == CONVERT_CALLNAVI || f == CONVERT_NESTFUL || f == CONVERT_SGD;
}

// Splits path into its folder (with the final '/', or "") and its file name.
static void split_path(const char *path, char *dir, size_t dsz, const char **base) {
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash + 1 - path) : 0;
    if (dl >= dsz) dl = dsz - 1;
    memcpy(dir, path, dl);
    dir[dl] = 0;
    *base = slash ? slash + 1 : path;
}

int convert_side_path(convert_format f, const char *input, char *out, size_t outsz, trl_err *e) {
    char dir[1024];
    const char *base;
    split_path(input, dir, sizeof(dir), &base);
    size_t bl = strlen(base);
    int n = -1;
    switch (f) {
        case CONVERT_SEAL:  // <dir>/<split>.jsonl -> <dir>/dataset_for_finetune/<split>.json
            if (bl > 6 && !strcmp(base + bl - 6, ".jsonl"))
                n = snprintf(out, outsz, "%sdataset_for_finetune/%.*s.json", dir, (int)(bl - 6), base);
            break;
        case CONVERT_CALLNAVI:  // <root>/Questions/<domain>.json -> <root>/APISchema/<domain>.json
            n = snprintf(out, outsz, "%s../APISchema/%s", dir, base);
            break;
        case CONVERT_NESTFUL:  // <dir>/<name>-data.json -> <dir>/<name>-spec.json
            if (bl > 10 && !strcmp(base + bl - 10, "-data.json"))
                n = snprintf(out, outsz, "%s%.*s-spec.json", dir, (int)(bl - 10), base);
            break;
        case CONVERT_SGD: n = snprintf(out, outsz, "%sschema.json", dir); break;
        default: return trl_errf(e, "format %s has no side file", convert_format_name(f));
    }
    if (n < 0 || (size_t)n >= outsz)
        return trl_errf(e, "%s: cannot tell where its tool file is (give --tools FILE)", input);
    return TRL_OK;
}

int convert_refuse_path(const char *path, trl_err *e) {
    if (!path) return TRL_OK;
    static const char *const EVAL[] = {"bfcl",        "apibank",     "api-bank", "api_bank",       "level-1-api",
                                       "level-2-api", "level-3",     "acebench", "possible_answer"};
    char low[1024];
    size_t n = strlen(path);
    if (n >= sizeof(low)) n = sizeof(low) - 1;
    for (size_t i = 0; i < n; i++) low[i] = (char)tolower((unsigned char)path[i]);
    low[n] = 0;
    for (size_t i = 0; i < sizeof(EVAL) / sizeof(EVAL[0]); i++)
        if (strstr(low, EVAL[i]))
            return trl_errf(e, "%s looks like an evaluation set (%s): it must never become training data", path, EVAL[i]);
    return TRL_OK;
}

// CallNavi's ground truth {"API": [names], "parameters": [objects]} (a training set): the only
// ground_truth that is not refused.
static int callnavi_truth(const cJSON *gt) {
    if (!cJSON_IsObject(gt) || cJSON_GetArraySize(gt) != 2) return 0;
    return cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(gt, "API")) &&
           cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(gt, "parameters"));
}

int convert_refuse_record(const cJSON *rec, trl_err *e) {
    if (!cJSON_IsObject(rec)) return TRL_OK;
    const cJSON *gt = cJSON_GetObjectItemCaseSensitive(rec, "ground_truth");
    if ((cJSON_GetObjectItemCaseSensitive(rec, "question") && cJSON_GetObjectItemCaseSensitive(rec, "function")) ||
        (gt && !callnavi_truth(gt)))
        return trl_errf(e, "the input has BFCL or ACEBench rows (question/function/ground_truth): evaluation data is "
                           "refused");
    if (cJSON_GetObjectItemCaseSensitive(rec, "expected_output"))
        return trl_errf(e, "the input has API-Bank rows (expected_output): evaluation data is refused");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(rec, "query");
    if (cJSON_IsArray(q) && cJSON_GetObjectItemCaseSensitive(rec, "answers"))
        return trl_errf(e, "the input has a dialogue-shaped query with answers (Hammer's API-Bank twin): evaluation "
                           "data is refused");
    return TRL_OK;
}

int convert_emit(convert_run *r, cJSON *ex, trl_err *e) {
    if (!ex) return trl_errf(e, "out of memory");
    if (r->opts && r->opts->source && r->opts->source[0]) {
        cJSON *s = cJSON_CreateString(r->opts->source);
        if (!s || !cJSON_ReplaceItemInObjectCaseSensitive(ex, "source", s)) {
            cJSON_Delete(s);
            cJSON_Delete(ex);
            return trl_errf(e, "out of memory");
        }
    }
    const cJSON *answer = cJSON_GetObjectItemCaseSensitive(ex, "answer");
    int no_call = cJSON_IsArray(answer) && cJSON_GetArraySize(answer) == 0;
    if (no_call && r->opts && r->opts->drop_no_call) {
        convert_count(r->counts, "no_call_dropped", 1);
        cJSON_Delete(ex);
        return TRL_OK;
    }
    trl_err ve;
    if (example_validate(ex, &ve)) {
        convert_count(r->counts, "invalid_example", 1);
        if (!r->counts->first_invalid[0]) memcpy(r->counts->first_invalid, ve.msg, sizeof(ve.msg));
        cJSON_Delete(ex);
        return TRL_OK;
    }
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(ex, "tools");
    for (const cJSON *t = tools->child; t; t = t->next) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(example_tool_function(t), "name");
        int dup = 0;
        for (const cJSON *u = t->next; u && !dup; u = u->next) {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(example_tool_function(u), "name");
            dup = !strcmp(n->valuestring, m->valuestring);
        }
        if (dup) {
            convert_count(r->counts, "samples_with_repeated_tool_names", 1);
            break;
        }
    }
    int rc = r->sink ? r->sink(r->sink_ctx, ex, e) : TRL_OK;
    cJSON_Delete(ex);
    if (rc) return TRL_ERR;
    if (no_call) convert_count(r->counts, "no_call_kept", 1);
    convert_count(r->counts, "kept", 1);
    return TRL_OK;
}

int convert_emit_sample(convert_run *r, const char *drop, const char *id, const char *source, cJSON *msgs,
                        cJSON *tools, cJSON *answer, trl_err *e) {
    if (drop || !msgs || !tools || !answer) {
        cJSON_Delete(msgs);
        cJSON_Delete(tools);
        cJSON_Delete(answer);
        if (!drop) return trl_errf(e, "out of memory");
        convert_count(r->counts, drop, 1);
        return TRL_OK;
    }
    return convert_emit(r, example_build(id, source, msgs, tools, answer), e);
}

cJSON *convert_wrap_tools(const cJSON *v) {
    cJSON *parsed = NULL;
    if (cJSON_IsString(v)) {
        parsed = pyjson_parse(v->valuestring, strlen(v->valuestring), NULL);
        v = parsed;
    }
    cJSON *out = NULL;
    if (!cJSON_IsArray(v)) goto done;
    out = cJSON_CreateArray();
    if (!out) goto done;
    for (const cJSON *t = v->child; t; t = t->next) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");
        const cJSON *fn = t;
        // Already wrapped ({"type": "function", "function": {...}})?
        const cJSON *inner = cJSON_GetObjectItemCaseSensitive(t, "function");
        if (!n && cJSON_IsObject(inner)) {
            fn = inner;
            n = cJSON_GetObjectItemCaseSensitive(inner, "name");
        }
        if (!cJSON_IsObject(fn) || !cJSON_IsString(n) || !n->valuestring[0]) {
            cJSON_Delete(out);
            out = NULL;
            goto done;
        }
        if (!pyjson_append(out, example_wrap_tool(pyjson_copy(fn)))) {
            cJSON_Delete(out);
            out = NULL;
            goto done;
        }
    }
done:
    cJSON_Delete(parsed);
    return out;
}

static cJSON *read_one_call(const cJSON *c, const char *args_key) {
    if (!cJSON_IsObject(c)) return NULL;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(c, "name");
    if (!cJSON_IsString(n) || !n->valuestring[0]) return NULL;
    const cJSON *a = args_key ? cJSON_GetObjectItemCaseSensitive(c, args_key) : NULL;
    if (!a) a = cJSON_GetObjectItemCaseSensitive(c, "arguments");
    if (!a) a = cJSON_GetObjectItemCaseSensitive(c, "parameters");
    cJSON *args = NULL;
    if (cJSON_IsString(a)) {
        args = pyjson_parse(a->valuestring, strlen(a->valuestring), NULL);
    } else if (a) {
        args = pyjson_copy(a);
    }
    if (!cJSON_IsObject(args)) {
        cJSON_Delete(args);
        return NULL;
    }
    return example_make_call(n->valuestring, args);
}

cJSON *convert_read_calls(const cJSON *v, const char *args_key) {
    cJSON *parsed = NULL;
    if (cJSON_IsString(v)) {
        parsed = pyjson_parse(v->valuestring, strlen(v->valuestring), NULL);
        v = parsed;
    }
    cJSON *out = cJSON_CreateArray();
    if (!out || !v) goto fail;
    if (cJSON_IsObject(v)) {
        if (!pyjson_append(out, read_one_call(v, args_key))) goto fail;
    } else if (cJSON_IsArray(v)) {
        for (const cJSON *it = v->child; it; it = it->next) {
            if (!pyjson_append(out, read_one_call(it, args_key))) goto fail;
        }
    } else {
        goto fail;
    }
    cJSON_Delete(parsed);
    return out;
fail:
    cJSON_Delete(out);
    cJSON_Delete(parsed);
    return NULL;
}

cJSON *convert_read_call(const cJSON *v, const char *args_key) {
    cJSON *list = convert_read_calls(v, args_key);
    cJSON *call = cJSON_GetArraySize(list) == 1 ? cJSON_DetachItemFromArray(list, 0) : NULL;
    cJSON_Delete(list);
    return call;
}

int convert_unknown_names(const cJSON *answer, const cJSON *tools, const char **bad) {
    int n = 0;
    if (bad) *bad = NULL;
    for (const cJSON *c = cJSON_IsArray(answer) ? answer->child : NULL; c; c = c->next) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(c, "name");
        const char *s = cJSON_IsString(nm) ? nm->valuestring : NULL;
        if (!s || !example_has_tool(tools, s)) {
            if (bad && !*bad) *bad = s ? s : "";
            n++;
        }
    }
    return n;
}

int convert_any_string(const cJSON *v, int (*pred)(const char *s)) {
    if (!v) return 0;
    if (cJSON_IsString(v)) return pred(v->valuestring);
    for (const cJSON *c = (cJSON_IsArray(v) || cJSON_IsObject(v)) ? v->child : NULL; c; c = c->next)
        if (convert_any_string(c, pred)) return 1;
    return 0;
}

int convert_add_first_step(cJSON *answer, const char *name, const cJSON *args, int (*uses_output)(const char *s),
                           int *cut) {
    if (convert_any_string(args, uses_output)) {
        (*cut)++;
        return 1;
    }
    return pyjson_append(answer, example_make_call(name, pyjson_copy(args)));
}

cJSON *convert_user_messages(const char *text) {
    cJSON *msgs = cJSON_CreateArray();
    cJSON *m = example_make_message("user", text);
    if (!msgs || !m || !cJSON_AddItemToArray(msgs, m)) {
        cJSON_Delete(msgs);
        cJSON_Delete(m);
        return NULL;
    }
    return msgs;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

char *convert_dup_trimmed(const char *a, const char *b) {
    while (a < b && is_ws(*a)) a++;
    while (b > a && is_ws(b[-1])) b--;
    char *r = malloc((size_t)(b - a) + 1);
    if (!r) return NULL;
    memcpy(r, a, (size_t)(b - a));
    r[b - a] = 0;
    return r;
}

typedef int (*record_fn)(convert_run *r, const cJSON *rec, size_t index, trl_err *e);

static record_fn record_fn_for(convert_format f) {
    switch (f) {
        case CONVERT_XLAM: return convert_xlam_record;
        case CONVERT_TOOLACE: return convert_toolace_record;
        case CONVERT_TOOLRL: return convert_toolrl_record;
        case CONVERT_OPENAI: return convert_openai_record;
        case CONVERT_SEAL: return convert_seal_record;
        case CONVERT_CALLNAVI: return convert_callnavi_record;
        case CONVERT_GLAIVE: return convert_glaive_record;
        case CONVERT_TOOLALPACA: return convert_toolalpaca_record;
        case CONVERT_NESTFUL: return convert_nestful_record;
        case CONVERT_SGD: return convert_sgd_record;
        default: return NULL;
    }
}

static int handle_record(convert_run *r, record_fn fn, cJSON *rec, size_t index, trl_err *e) {
    convert_count(r->counts, "rows", 1);
    if (convert_refuse_record(rec, e)) {
        cJSON_Delete(rec);
        return TRL_ERR;
    }
    int rc = fn(r, rec, index, e);
    cJSON_Delete(rec);
    return rc;
}

static int convert_text_named(convert_format f, const char *text, size_t len, const convert_opts *o, const char *stem,
                              convert_sink sink, void *ctx, convert_counts *c, trl_err *e) {
    static const convert_opts defaults = {0};
    convert_run run = {.opts = o ? o : &defaults, .sink = sink, .sink_ctx = ctx, .counts = c, .stem = stem ? stem : ""};
    run.side = run.opts->side;
    record_fn fn = record_fn_for(f);
    if (!fn) return trl_errf(e, "unknown format %d", (int)f);
    size_t pos = 0;
    while (pos < len && is_ws(text[pos])) pos++;
    if (pos < len && text[pos] == '[') {  // a JSON array, read item by item
        pos++;
        size_t index = 0;
        for (;;) {
            while (pos < len && is_ws(text[pos])) pos++;
            if (pos < len && text[pos] == ']' && index == 0) {
                pos++;
                break;
            }
            trl_err pe;
            cJSON *rec = pyjson_parse_next(text, len, &pos, &pe);
            if (!rec) return trl_errf(e, "input is not a valid JSON array (item %zu: %s)", index, pe.msg);
            if (handle_record(&run, fn, rec, index++, e)) return TRL_ERR;
            while (pos < len && is_ws(text[pos])) pos++;
            if (pos < len && text[pos] == ',') {
                pos++;
                continue;
            }
            if (pos < len && text[pos] == ']') {
                pos++;
                break;
            }
            return trl_errf(e, "input is not a valid JSON array (after item %zu)", index - 1);
        }
        while (pos < len && is_ws(text[pos])) pos++;
        if (pos != len) return trl_errf(e, "input has data after its JSON array");
        return TRL_OK;
    }
    // JSONL: one record per non-blank line; a line that is not JSON is a malformed row.
    size_t index = 0;
    pos = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t a = pos, b = end;
        while (a < b && is_ws(text[a])) a++;
        while (b > a && is_ws(text[b - 1])) b--;
        pos = end + 1;
        if (a == b) continue;
        cJSON *rec = pyjson_parse(text + a, b - a, NULL);
        if (!rec) {
            convert_count(c, "rows", 1);
            convert_count(c, "malformed_row", 1);
            index++;
            continue;
        }
        if (handle_record(&run, fn, rec, index++, e)) return TRL_ERR;
    }
    return TRL_OK;
}

// TRL_ERR if the first record of text (an array's first item or the first line) is refused.
static int first_record_refused(const char *text, size_t len, trl_err *e) {
    size_t pos = 0;
    while (pos < len && is_ws(text[pos])) pos++;
    if (pos < len && text[pos] == '[') pos++;
    cJSON *rec = pyjson_parse_next(text, len, &pos, NULL);
    int rc = convert_refuse_record(rec, e);
    cJSON_Delete(rec);
    return rc;
}

int convert_text(convert_format f, const char *text, size_t len, const convert_opts *o, convert_sink sink, void *ctx,
                 convert_counts *c, trl_err *e) {
    return convert_text_named(f, text, len, o, NULL, sink, ctx, c, e);
}

int convert_file(convert_format f, const char *path, const convert_opts *o, convert_sink sink, void *ctx,
                 convert_counts *c, trl_err *e) {
    if (convert_refuse_path(path, e)) return TRL_ERR;
    // The stem names the file in ids: "dialogues_001.json" -> "dialogues_001".
    char stem[256];
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(stem, sizeof(stem), "%s", base);
    char *dot = strchr(stem, '.');
    if (dot) *dot = 0;
    size_t len;
    char *text = trl_read_file(path, &len, e);
    if (!text) return TRL_ERR;
    // An evaluation set under another name is refused before its side file is looked for.
    if (first_record_refused(text, len, e)) {
        free(text);
        return TRL_ERR;
    }
    convert_opts opts = {0};
    if (o) opts = *o;
    cJSON *side = NULL;
    if (convert_needs_side(f) && !opts.side) {
        char sp[2048];
        const char *sidep = opts.side_path;
        if (!sidep) {
            if (convert_side_path(f, path, sp, sizeof(sp), e)) {
                free(text);
                return TRL_ERR;
            }
            sidep = sp;
        }
        size_t sl;
        char *st = convert_refuse_path(sidep, e) ? NULL : trl_read_file(sidep, &sl, e);
        if (!st) {
            free(text);
            return TRL_ERR;
        }
        trl_err pe;
        side = pyjson_parse(st, sl, &pe);
        free(st);
        if (!side) {
            free(text);
            return trl_errf(e, "%s: not JSON (%s)", sidep, pe.msg);
        }
        opts.side = side;
    }
    int rc = convert_text_named(f, text, len, &opts, stem, sink, ctx, c, e);
    free(text);
    cJSON_Delete(side);
    return rc;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

// Is name an input file of format f (inside a folder given as --in)?
static int is_input_name(convert_format f, const char *name) {
    if (name[0] == '.') return 0;
    switch (f) {
        case CONVERT_SEAL: return ends_with(name, ".jsonl") && strcmp(name, "tool.jsonl") && strcmp(name, "field.jsonl");
        case CONVERT_CALLNAVI: return ends_with(name, ".json");
        case CONVERT_NESTFUL: return ends_with(name, "-data.json");
        case CONVERT_SGD: return !strncmp(name, "dialogues_", 10) && ends_with(name, ".json");
        default: return ends_with(name, ".json") || ends_with(name, ".jsonl");
    }
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int convert_path(convert_format f, const char *path, const convert_opts *o, convert_sink sink, void *ctx,
                 convert_counts *c, trl_err *e) {
    struct stat st;
    if (convert_refuse_path(path, e)) return TRL_ERR;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return convert_file(f, path, o, sink, ctx, c, e);
    DIR *d = opendir(path);
    if (!d) return trl_errf(e, "%s: cannot open the folder", path);
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = TRL_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!is_input_name(f, de->d_name)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof(*names));
            if (!nn) {
                rc = trl_errf(e, "out of memory");
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(de->d_name))) {
            rc = trl_errf(e, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == TRL_OK && n == 0) rc = trl_errf(e, "%s: no %s input files in the folder", path, convert_format_name(f));
    if (rc == TRL_OK) qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; rc == TRL_OK && i < n; i++) {
        char fp[4096];
        snprintf(fp, sizeof(fp), "%s/%s", path, names[i]);
        rc = convert_file(f, fp, o, sink, ctx, c, e);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}
