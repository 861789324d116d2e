// apibank.c: API-Bank level-1 request parsing, call rendering and matching (see apibank.h).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "eval/apibank.h"

#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pyjson.h"
#include "base/strbuf.h"

static pcre2_code *g_call_re, *g_param_re;
static pthread_once_t g_re_once = PTHREAD_ONCE_INIT;

static pcre2_code *compile(const char *pat) {
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (!cc) return NULL;
    pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF,
                                   &err, &off, cc);
    pcre2_compile_context_free(cc);
    return re;
}

static void re_init(void) {
    g_call_re = compile("\\[(\\w+)\\((.*)\\)\\]");
    g_param_re = compile("(\\w+)\\s*=\\s*['\"](.+?)['\"]|(\\w+)\\s*=\\s*(\\[.*\\])|(\\w+)\\s*=\\s*(\\w+)");
}

void apibank_call_free(apibank_call *c) {
    if (!c) return;
    free(c->name);
    for (size_t i = 0; i < c->nparams; i++) {
        free(c->keys[i]);
        free(c->values[i]);
    }
    free(c->keys);
    free(c->values);
    memset(c, 0, sizeof(*c));
}

static char *dup_span(const char *s, PCRE2_SIZE a, PCRE2_SIZE b) {
    char *r = malloc(b - a + 1);
    if (!r) return NULL;
    memcpy(r, s + a, b - a);
    r[b - a] = 0;
    return r;
}

static int set_param(apibank_call *c, char *key, char *val) {
    for (size_t i = 0; i < c->nparams; i++) {
        if (!strcmp(c->keys[i], key)) {
            free(key);
            free(c->values[i]);
            c->values[i] = val;
            return 1;
        }
    }
    char **nk = realloc(c->keys, (c->nparams + 1) * sizeof(char *));
    if (!nk) return 0;
    c->keys = nk;
    char **nv = realloc(c->values, (c->nparams + 1) * sizeof(char *));
    if (!nv) return 0;
    c->values = nv;
    c->keys[c->nparams] = key;
    c->values[c->nparams] = val;
    c->nparams++;
    return 1;
}

int apibank_parse_request(const char *text, apibank_call *c, trl_err *e) {
    memset(c, 0, sizeof(*c));
    if (!text) return trl_errf(e, "apibank: no text");
    pthread_once(&g_re_once, re_init);
    if (!g_call_re || !g_param_re) return trl_errf(e, "apibank: regex compilation failed");
    size_t len = strlen(text);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(g_param_re, NULL);
    if (!md) return trl_errf(e, "apibank: out of memory");
    int rc = pcre2_match(g_call_re, (PCRE2_SPTR)text, len, 0, 0, md, NULL);
    if (rc < 0) {
        pcre2_match_data_free(md);
        return trl_errf(e, "apibank: no [ApiName(...)] call in '%.80s'", text);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    c->name = dup_span(text, ov[2], ov[3]);
    char *params = dup_span(text, ov[4], ov[5]);
    if (!c->name || !params) {
        free(params);
        pcre2_match_data_free(md);
        apibank_call_free(c);
        return trl_errf(e, "apibank: out of memory");
    }
    size_t plen = strlen(params), pos = 0;
    while (pos <= plen) {
        rc = pcre2_match(g_param_re, (PCRE2_SPTR)params, plen, pos, 0, md, NULL);
        if (rc < 0) break;
        ov = pcre2_get_ovector_pointer(md);
        int k = -1;
        for (int g = 1; g <= 5; g += 2)
            if (rc > g && ov[2 * g] != PCRE2_UNSET) {
                k = g;
                break;
            }
        if (k > 0) {
            char *key = dup_span(params, ov[2 * k], ov[2 * k + 1]);
            char *val = dup_span(params, ov[2 * k + 2], ov[2 * k + 3]);
            if (!key || !val || !set_param(c, key, val)) {
                free(key);
                free(val);
                free(params);
                pcre2_match_data_free(md);
                apibank_call_free(c);
                return trl_errf(e, "apibank: out of memory");
            }
        }
        pos = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
    }
    free(params);
    pcre2_match_data_free(md);
    return TRL_OK;
}

// Python's repr() of a str (quote choice and escapes as CPython does; every code point at or
// above U+00A0 is treated as printable).
static void py_repr_str(strbuf *sb, const char *s) {
    int has_sq = strchr(s, '\'') != NULL, has_dq = strchr(s, '"') != NULL;
    char q = (has_sq && !has_dq) ? '"' : '\'';
    strbuf_addc(sb, q);
    size_t n = strlen(s), i = 0;
    while (i < n) {
        unsigned cp = pyjson_utf8_next(s, n, &i);
        if (cp == (unsigned)q || cp == '\\') {
            strbuf_addc(sb, '\\');
            strbuf_addc(sb, (char)cp);
        } else if (cp == '\t') {
            strbuf_adds(sb, "\\t");
        } else if (cp == '\n') {
            strbuf_adds(sb, "\\n");
        } else if (cp == '\r') {
            strbuf_adds(sb, "\\r");
        } else if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0)) {
            strbuf_addf(sb, "\\x%02x", cp);
        } else if (cp >= 0xD800 && cp <= 0xDFFF) {
            strbuf_addf(sb, "\\u%04x", cp);
        } else {
            strbuf_add_cp(sb, cp);
        }
    }
    strbuf_addc(sb, q);
}

static void py_str_value(strbuf *sb, const cJSON *v, int repr);

static void py_number(strbuf *sb, const cJSON *v) {
    // json.dumps and Python's str() agree on ints and floats (but not NaN/inf).
    char *t = pyjson_dump(v, 0);
    if (!t) {
        sb->oom = 1;
        return;
    }
    if (!strcmp(t, "NaN"))
        strbuf_adds(sb, "nan");
    else if (!strcmp(t, "Infinity"))
        strbuf_adds(sb, "inf");
    else if (!strcmp(t, "-Infinity"))
        strbuf_adds(sb, "-inf");
    else
        strbuf_adds(sb, t);
    free(t);
}

// str(v) (repr = 0) or repr(v) (repr = 1) of a JSON value as Python prints it.
static void py_str_value(strbuf *sb, const cJSON *v, int repr) {
    switch (pyjson_typeof(v)) {
        case PYJ_NONE: strbuf_adds(sb, "None"); break;
        case PYJ_BOOL: strbuf_adds(sb, cJSON_IsTrue(v) ? "True" : "False"); break;
        case PYJ_INT:
        case PYJ_FLOAT: py_number(sb, v); break;
        case PYJ_STR:
            if (repr)
                py_repr_str(sb, v->valuestring);
            else
                strbuf_adds(sb, v->valuestring);
            break;
        case PYJ_LIST:
            strbuf_addc(sb, '[');
            for (const cJSON *c = v->child; c; c = c->next) {
                py_str_value(sb, c, 1);
                if (c->next) strbuf_adds(sb, ", ");
            }
            strbuf_addc(sb, ']');
            break;
        case PYJ_DICT:
            strbuf_addc(sb, '{');
            for (const cJSON *c = v->child; c; c = c->next) {
                py_repr_str(sb, c->string ? c->string : "");
                strbuf_adds(sb, ": ");
                py_str_value(sb, c, 1);
                if (c->next) strbuf_adds(sb, ", ");
            }
            strbuf_addc(sb, '}');
            break;
        default: strbuf_adds(sb, "None"); break;
    }
}

char *apibank_py_str(const cJSON *v, int repr) {
    strbuf sb;
    strbuf_init(&sb);
    py_str_value(&sb, v, repr);
    return strbuf_take(&sb);
}

char *apibank_render_call(const char *name, const cJSON *args) {
    strbuf sb;
    strbuf_init(&sb);
    strbuf_addc(&sb, '[');
    strbuf_adds(&sb, name ? name : "");
    strbuf_addc(&sb, '(');
    if (cJSON_IsObject(args)) {
        for (const cJSON *c = args->child; c; c = c->next) {
            strbuf_adds(&sb, c->string ? c->string : "");
            strbuf_adds(&sb, "='");
            py_str_value(&sb, c, 0);
            strbuf_addc(&sb, '\'');
            if (c->next) strbuf_adds(&sb, ", ");
        }
    }
    strbuf_adds(&sb, ")]");
    return strbuf_take(&sb);
}

static int calls_equal(const apibank_call *a, const apibank_call *b) {
    if (strcmp(a->name, b->name) || a->nparams != b->nparams) return 0;
    for (size_t i = 0; i < a->nparams; i++) {
        size_t j = 0;
        while (j < b->nparams && strcmp(a->keys[i], b->keys[j])) j++;
        if (j == b->nparams || strcmp(a->values[i], b->values[j])) return 0;
    }
    return 1;
}

int apibank_match_text(const char *expected_output, const char *reply, trl_err *e) {
    apibank_call want, got;
    if (apibank_parse_request(expected_output, &want, e)) return -1;
    trl_err ignore;
    if (!reply || apibank_parse_request(reply, &got, &ignore)) {
        apibank_call_free(&want);
        return 0;
    }
    int m = calls_equal(&want, &got);
    apibank_call_free(&want);
    apibank_call_free(&got);
    return m;
}

int apibank_match(const char *expected_output, const char *name, const cJSON *args, trl_err *e) {
    apibank_call want;
    if (apibank_parse_request(expected_output, &want, e)) return -1;
    apibank_call_free(&want);
    if (!name || !cJSON_IsObject(args)) return 0;
    char *text = apibank_render_call(name, args);
    if (!text) return trl_errf(e, "apibank: out of memory"), -1;
    int m = apibank_match_text(expected_output, text, e);
    free(text);
    return m;
}

void apibank_dataset_free(apibank_dataset *ds) {
    if (!ds) return;
    for (size_t i = 0; i < ds->n; i++) {
        apibank_row *r = &ds->rows[i];
        free(r->file);
        free(r->instruction);
        free(r->input);
        free(r->expected_output);
        cJSON_Delete(r->messages);
        cJSON_Delete(r->tools);
        cJSON_Delete(r->answer);
    }
    free(ds->rows);
    memset(ds, 0, sizeof(*ds));
}

static cJSON *load_json_file(const char *path, trl_err *e) {
    size_t len;
    char *text = trl_read_file(path, &len, e);
    if (!text) return NULL;
    trl_err pe;
    cJSON *v = pyjson_parse(text, len, &pe);
    free(text);
    if (!v) trl_errf(e, "%s: %s", path, pe.msg);
    return v;
}

static char *str_field(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

// Hammer's query turns {role: user|agent, content} as chat messages.
static cJSON *query_messages(const cJSON *query) {
    cJSON *msgs = cJSON_CreateArray();
    if (!msgs) return NULL;
    for (const cJSON *q = cJSON_IsArray(query) ? query->child : NULL; q; q = q->next) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(q, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(q, "content");
        if (!cJSON_IsString(role) || !cJSON_IsString(content)) goto fail;
        const char *r = !strcmp(role->valuestring, "agent") ? "assistant" : role->valuestring;
        cJSON *m = cJSON_CreateObject();
        if (!m || !cJSON_AddItemToArray(msgs, m) || !cJSON_AddStringToObject(m, "role", r) ||
            !cJSON_AddStringToObject(m, "content", content->valuestring))
            goto fail;
    }
    return msgs;
fail:
    cJSON_Delete(msgs);
    return NULL;
}

int apibank_dataset_load(const char *dir, apibank_dataset *ds, trl_err *e) {
    memset(ds, 0, sizeof(*ds));
    char path[1024];
    snprintf(path, sizeof(path), "%s/level-1-api.json", dir);
    cJSON *raw = load_json_file(path, e);
    if (!raw) return TRL_ERR;
    snprintf(path, sizeof(path), "%s/hammer/apibank_l1.json", dir);
    cJSON *ham = load_json_file(path, e);
    if (!ham) {
        cJSON_Delete(raw);
        return TRL_ERR;
    }
    int rc = TRL_ERR;
    if (!cJSON_IsArray(raw) || !cJSON_IsArray(ham) || cJSON_GetArraySize(raw) != cJSON_GetArraySize(ham)) {
        trl_errf(e, "apibank: level-1-api.json and hammer/apibank_l1.json must be lists of the same length");
        goto done;
    }
    size_t n = (size_t)cJSON_GetArraySize(raw);
    ds->rows = calloc(n ? n : 1, sizeof(apibank_row));
    if (!ds->rows) {
        trl_errf(e, "apibank: out of memory");
        goto done;
    }
    const cJSON *a = raw->child, *h = ham->child;
    for (size_t i = 0; i < n; i++, a = a->next, h = h->next) {
        apibank_row *r = &ds->rows[i];
        ds->n = i + 1;
        r->file = str_field(a, "file");
        r->instruction = str_field(a, "instruction");
        r->input = str_field(a, "input");
        r->expected_output = str_field(a, "expected_output");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        r->id = cJSON_IsNumber(id) || cJSON_IsRaw(id) ? (long)pyjson_number(id) : -1;
        r->messages = query_messages(cJSON_GetObjectItemCaseSensitive(h, "query"));
        r->tools = pyjson_copy(cJSON_GetObjectItemCaseSensitive(h, "tools"));
        r->answer = pyjson_copy(cJSON_GetObjectItemCaseSensitive(h, "answers"));
        if (!r->file || !r->instruction || !r->input || !r->expected_output || !r->messages ||
            !cJSON_IsArray(r->tools) || !cJSON_IsArray(r->answer) || cJSON_GetArraySize(r->answer) < 1) {
            trl_errf(e, "apibank: row %zu is incomplete", i);
            goto done;
        }
        apibank_call want;
        trl_err pe;
        if (apibank_parse_request(r->expected_output, &want, &pe)) {
            trl_errf(e, "apibank: row %zu: %s", i, pe.msg);
            goto done;
        }
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(r->answer->child, "name");
        int same = cJSON_IsString(nm) && !strcmp(nm->valuestring, want.name);
        apibank_call_free(&want);
        if (!same) {
            trl_errf(e, "apibank: row %zu: the Hammer twin calls a different API than expected_output", i);
            goto done;
        }
    }
    rc = TRL_OK;
done:
    cJSON_Delete(raw);
    cJSON_Delete(ham);
    if (rc) apibank_dataset_free(ds);
    return rc;
}
