// acebench.c: the ACEBench suite (see acebench.h): files, prompts, the official checker rules
// written in C from the behaviour of ACEBench's eval_main.py / model_eval/checker.py, and the
// tallies. Where the official Python would raise on a malformed row we return TRL_ERR.
#include "eval/acebench.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/pyjson.h"
#include "base/strbuf.h"
#include "data/pycall.h"
#include "eval/apibank.h"
#include "eval/bfcl_checker.h"
#include "eval/pycheck.h"
#include "protocol/toolcall_parse.h"
#include "protocol/toolprompt.h"

const char *const ACEBENCH_CATEGORIES[15] = {
    "normal_atom_bool", "normal_atom_enum", "normal_atom_number", "normal_atom_list",
    "normal_atom_object_short", "normal_atom_object_deep", "normal_single_turn_single_function",
    "normal_single_turn_parallel_function", "normal_multi_turn_user_switch", "normal_multi_turn_user_adjust",
    "normal_similar_api", "normal_preference", "special_incomplete", "special_error_param", "special_irrelevant",
};
const char *const ACEBENCH_AGENT_CATEGORIES[2] = {"agent_multi_turn", "agent_multi_step"};

acebench_kind acebench_category_kind(const char *c) {
    if (!strncmp(c, "normal_multi_turn", 17)) return ACE_MULTI_TURN;
    if (!strcmp(c, "special_incomplete")) return ACE_SPECIAL_INCOMPLETE;
    if (!strcmp(c, "special_error_param")) return ACE_SPECIAL_ERROR_PARAM;
    if (!strcmp(c, "special_irrelevant")) return ACE_SPECIAL_IRRELEVANT;
    if (!strncmp(c, "agent_", 6)) return ACE_AGENT;
    if (!strncmp(c, "normal_", 7)) return ACE_NORMAL;
    return ACE_UNKNOWN;
}

int acebench_category_known(const char *c) {
    for (size_t i = 0; i < 15; i++)
        if (!strcmp(c, ACEBENCH_CATEGORIES[i])) return 1;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Python semantics

static void verdict_set(acebench_verdict *v, int valid, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void verdict_set(acebench_verdict *v, int valid, const char *type, const char *fmt, ...) {
    v->valid = v->strict = valid;
    snprintf(v->error_type, sizeof(v->error_type), "%s", type);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->error, sizeof(v->error), fmt, ap);
    va_end(ap);
}

static const cJSON *obj_get(const cJSON *o, const char *k) {
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

// `list(v)` as Python iterates it: a list's items, a dict's keys, a string's characters (all as
// new nodes in a new array). Other types crash (NULL).
static cJSON *py_iter(const cJSON *v, py_crash *cs) {
    cJSON *out = NULL;
    if (cJSON_IsObject(v)) {
        out = cJSON_CreateArray();
        for (const cJSON *c = out ? v->child : NULL; c; c = c->next)
            cJSON_AddItemToArray(out, cJSON_CreateString(c->string));
    } else if (cJSON_IsArray(v) || cJSON_IsString(v)) {
        out = py_items(v, NULL);
    } else {
        py_crash_set(cs, "'%s' object is not iterable", pyjson_type_name(pyjson_typeof(v)));
        return NULL;
    }
    if (!out) py_crash_set(cs, "out of memory");
    return out;
}

// The official checker turns the strings "true" / "false" into booleans before some checks.
static const cJSON *truthy(const cJSON *v, cJSON *buf) {
    if (!cJSON_IsString(v) || (strcmp(v->valuestring, "true") && strcmp(v->valuestring, "false"))) return v;
    memset(buf, 0, sizeof(*buf));
    buf->type = v->valuestring[0] == 't' ? cJSON_True : cJSON_False;
    return buf;
}

// ---------------------------------------------------------------------------------------------
// Types (checker.py PYTHON_TYPE_MAPPING)

enum { T_NONE = -1, T_ENUMERATE = 100, T_NO_NESTED = 101 };  // besides the pyjson_type values

static int map_type(const cJSON *desc, int *out, py_crash *cs) {
    static const struct {
        const char *name;
        int t;
    } M[] = {{"string", PYJ_STR},     {"integer", PYJ_INT},   {"float", PYJ_FLOAT},      {"boolean", PYJ_BOOL},
             {"array", PYJ_LIST},     {"tuple", PYJ_LIST},    {"dict", PYJ_DICT},        {"any", PYJ_STR},
             {"list", PYJ_LIST},      {"object", PYJ_DICT},   {"objectArray", PYJ_LIST}, {"list(string)", PYJ_LIST},
             {"list(enum)", PYJ_LIST}, {"int", PYJ_INT},      {"enum", T_ENUMERATE},     {"number", PYJ_INT}};
    if (!cJSON_IsString(desc)) {
        pyjson_type t = pyjson_typeof(desc);
        return py_crash_set(cs, t == PYJ_LIST || t == PYJ_DICT ? "unhashable schema type" : "KeyError: schema type"), TRL_ERR;
    }
    for (size_t i = 0; i < sizeof(M) / sizeof(M[0]); i++)
        if (!strcmp(desc->valuestring, M[i].name)) return *out = M[i].t, TRL_OK;
    py_crash_set(cs, "KeyError: unknown schema type '%.60s'", desc->valuestring);
    return TRL_ERR;
}

static int is_nested_desc(const char *d) {
    return !strcmp(d, "array") || !strcmp(d, "tuple") || !strcmp(d, "list(string)") || !strcmp(d, "list(enum)") ||
           !strcmp(d, "object") || !strcmp(d, "objectArray");
}

// type(possible_answer) unless it is "" (an optional parameter): T_NONE.
static int answer_type(const cJSON *pa) { return py_is_empty_str(pa) ? T_NONE : (int)pyjson_typeof(pa); }

typedef struct {
    int valid, is_variable;
} type_result;

// checker.py type_checker.
static type_result type_check(const cJSON *value, const cJSON *pa, int conv, int nested, py_crash *cs) {
    type_result r = {1, 0};
    int pat = answer_type(pa);
    int is_var = pat != T_NONE && pat != conv;
    cJSON buf;
    const cJSON *v = truthy(value, &buf);
    int vt = pyjson_typeof(v);
    if (vt == conv) {
        if (nested == T_NO_NESTED) return r.is_variable = is_var, r;
        cJSON *items = py_iter(pa, cs);
        if (!items) return r.valid = 0, r;
        for (const cJSON *item = items->child; item; item = item->next) {
            int flag = 1;
            if (cJSON_IsArray(item)) {
                cJSON *vals = py_iter(v, cs);
                for (const cJSON *vi = vals ? vals->child : NULL; vi; vi = vi->next)
                    if (!type_check(vi, item, nested, T_NO_NESTED, cs).valid) {
                        flag = 0;
                        break;
                    }
                cJSON_Delete(vals);
            }
            if (flag) {
                cJSON_Delete(items);
                return r.is_variable = is_var, r;
            }
        }
        cJSON_Delete(items);
        r.valid = 0;  // nested type check failed; nothing below makes it valid again
    }
    if (pat != T_NONE && (vt == pat || pyjson_equal(pa, v))) return r.is_variable = 1, r;
    r.valid = 0;
    return r;
}

// ---------------------------------------------------------------------------------------------
// Value checks

// checker.py dict_checker: same key count, every key known, nested dicts recursively, other
// values by str(answer) in str(value) after string standardisation.
static void dict_check(const cJSON *value, const cJSON *pa, acebench_verdict *v, py_crash *cs) {
    if (!cJSON_IsObject(value)) return verdict_set(v, 0, "value_error", "expected a dict");
    if (!cJSON_IsObject(pa)) return py_crash_set(cs, "'%s' object has no attribute 'keys'", pyjson_type_name(pyjson_typeof(pa)));
    if (cJSON_GetArraySize(value) != cJSON_GetArraySize(pa))
        return verdict_set(v, 0, "value_error", "dict has %d keys, expected %d", cJSON_GetArraySize(value),
                           cJSON_GetArraySize(pa));
    for (const cJSON *c = value->child; c; c = c->next) {
        cJSON buf;
        const cJSON *val = truthy(c, &buf);
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(pa, c->string);
        if (!ev) return verdict_set(v, 0, "value_error", "unexpected key '%.80s'", c->string);
        if (cJSON_IsObject(ev)) {
            dict_check(val, ev, v, cs);
            if (!v->valid || cs->crashed) return;
            continue;
        }
        cJSON *sv = bfcl_standardize_value(val), *se = bfcl_standardize_value(ev);
        char *a = sv ? apibank_py_str(sv, 0) : NULL, *b = se ? apibank_py_str(se, 0) : NULL;
        int ok = a && b && strstr(a, b) != NULL;
        if (!a || !b) py_crash_set(cs, "out of memory");
        if (!ok && !cs->crashed) verdict_set(v, 0, "value_error", "key '%.60s': '%.120s' not in '%.120s'", c->string, b, a);
        free(a);
        free(b);
        cJSON_Delete(sv);
        cJSON_Delete(se);
        if (!ok) return;
    }
}

// checker.py list_dict_checker.
static void list_dict_check(const cJSON *value, const cJSON *pa, acebench_verdict *v, py_crash *cs) {
    long n = py_len(value, cs), m = py_len(pa, cs);
    if (cs->crashed) return;
    if (n != m) return verdict_set(v, 0, "value_error:list_dict_count", "%ld items, expected %ld", n, m);
    if (n > 0 && !cJSON_IsArray(pa) && !cJSON_IsString(pa)) return py_crash_set(cs, "KeyError: 0");
    cJSON *items = py_iter(pa, cs);  // a string's items are its characters
    const cJSON *a = items ? items->child : NULL;
    for (const cJSON *c = value->child; c && a && !cs->crashed; c = c->next, a = a->next) {
        dict_check(c, a, v, cs);
        if (!v->valid) break;
    }
    cJSON_Delete(items);
}

// checker.py list_checker: equal after standardising string items.
static void list_check(const cJSON *value, const cJSON *pa, acebench_verdict *v, py_crash *cs) {
    cJSON *sv = cJSON_CreateArray(), *sp = cJSON_CreateArray();
    for (const cJSON *c = value->child; c; c = c->next) cJSON_AddItemToArray(sv, bfcl_standardize_value(c));
    if (!py_is_empty_str(pa)) {  // range(len("")) is empty; any other answer here is a list
        cJSON *items = py_iter(pa, cs);
        for (const cJSON *c = items ? items->child : NULL; c; c = c->next)
            cJSON_AddItemToArray(sp, bfcl_standardize_value(c));
        cJSON_Delete(items);
    }
    if (!cs->crashed && !pyjson_equal(sv, sp)) verdict_set(v, 0, "value_error:list/tuple", "list differs");
    cJSON_Delete(sv);
    cJSON_Delete(sp);
}

// checker.py string_checker (not an agent category): standardised answer in standardised value.
static void string_check(const cJSON *value, const cJSON *pa, acebench_verdict *v, py_crash *cs) {
    if (!cJSON_IsString(pa)) return py_crash_set(cs, "expected string or bytes-like object");
    char *a = bfcl_standardize(value->valuestring), *b = bfcl_standardize(pa->valuestring);
    if (!a || !b)
        py_crash_set(cs, "out of memory");
    else if (!strstr(a, b))
        verdict_set(v, 0, "value_error:string", "'%.150s' is not in '%.150s'", pa->valuestring, value->valuestring);
    free(a);
    free(b);
}

// ---------------------------------------------------------------------------------------------
// One call against one answer (checker.py simple_function_checker)

static void simple_check(const cJSON *fdesc, const char *name, const cJSON *mp, const cJSON *pa,
                         acebench_verdict *v, py_crash *cs) {
    if (!fdesc) return py_crash_set(cs, "'NoneType' object is not subscriptable (no function for the answer)");
    const cJSON *fparams = obj_get(fdesc, "parameters");
    if (!fparams) return py_crash_set(cs, "KeyError: 'parameters'");
    int mp_empty = cJSON_IsObject(mp) && !mp->child;
    int fp_empty = cJSON_IsObject(fparams) && !fparams->child;
    if (mp_empty && fp_empty) return verdict_set(v, 1, "", "%s", "");
    if (mp_empty || fp_empty) return verdict_set(v, 0, "wrong_param", "no arguments, or a function without parameters");
    const cJSON *props = obj_get(fparams, "properties");
    if (!props) return py_crash_set(cs, "KeyError: 'properties'");
    if (pyjson_equal(pa, props)) return verdict_set(v, 1, "", "%s", "");
    if (cJSON_IsObject(pa) && !pa->child) return verdict_set(v, 0, "wrong_param", "empty answer");
    const cJSON *fname = obj_get(fdesc, "name");
    if (!cJSON_IsString(fname)) return py_crash_set(cs, "function name is not a string");
    if (strcmp(fname->valuestring, name))
        return verdict_set(v, 0, "wrong_function_name", "expected %.100s, got %.100s", fname->valuestring, name);
    const cJSON *required = obj_get(fparams, "required");
    if (!required) return py_crash_set(cs, "KeyError: 'required'");
    cJSON *req = py_iter(required, cs);
    for (const cJSON *p = req ? req->child : NULL; p; p = p->next) {
        if (!py_in(mp, p, cs) && !cs->crashed) {
            verdict_set(v, 0, "lack_args", "lack required_params: %.100s", cJSON_IsString(p) ? p->valuestring : "?");
            break;
        }
        if (cs->crashed) break;
    }
    cJSON_Delete(req);
    if (!v->valid || cs->crashed) return;
    for (const cJSON *c = mp->child; c; c = c->next) {
        const char *param = c->string;
        int in_props = py_in_str(props, param, cs), in_pa = in_props ? py_in_str(pa, param, cs) : 0;
        if (cs->crashed) return;
        if (!in_props || !in_pa) return verdict_set(v, 0, "addition_args", "addition params: %.100s", param);
        if (!cJSON_IsObject(props) || !cJSON_IsObject(pa)) return py_crash_set(cs, "indexing a non-dict with '%.60s'", param);
        const cJSON *fd = cJSON_GetObjectItemCaseSensitive(props, param);
        const cJSON *desc = obj_get(fd, "type");
        if (!desc) return py_crash_set(cs, "KeyError: 'type' for parameter %.60s", param);
        int conv, nested = T_NO_NESTED;
        if (map_type(desc, &conv, cs)) return;
        if (is_nested_desc(desc->valuestring)) {
            const cJSON *items = obj_get(fd, "items"), *it = obj_get(items, "type");
            cJSON fallback;
            memset(&fallback, 0, sizeof(fallback));
            fallback.type = cJSON_String;
            if (!it) {
                fallback.valuestring = strstr(desc->valuestring, "string") ? "string"
                                       : strstr(desc->valuestring, "enum") ? "enum"
                                                                            : "dict";
                it = &fallback;
            }
            if (map_type(it, &nested, cs)) return;
        }
        const cJSON *pav = cJSON_GetObjectItemCaseSensitive(pa, param);
        cJSON *fl = NULL;
        const cJSON *value = c;
        if (!strcmp(desc->valuestring, "float") && pyjson_typeof(c) == PYJ_INT)
            value = fl = pyjson_float_new(pyjson_number(c));
        type_result tr = type_check(value, pav, conv, nested, cs);
        if (!tr.valid && !cs->crashed)
            verdict_set(v, 0, "type_error", "wrong type for parameter (%.60s): expected %.30s, got %s", param,
                        desc->valuestring, pyjson_type_name(pyjson_typeof(value)));
        if (tr.valid && !tr.is_variable && !cs->crashed) {
            if (conv == PYJ_DICT) {
                dict_check(value, pav, v, cs);
            } else if (conv == PYJ_LIST && nested == PYJ_DICT) {
                if (!strcmp(desc->valuestring, "objectArray")) {
                    long n = py_len(value, cs), m = py_len(pav, cs);
                    if (!cs->crashed && n != m)
                        verdict_set(v, 0, "value_error:dict_items", "Wrong number of parameters for dictionary.");
                    else if (!cs->crashed && n > 0)  // the official code calls dict_checker with a missing argument
                        py_crash_set(cs, "TypeError: dict_checker() missing 1 required positional argument");
                }
                if (v->valid && !cs->crashed) list_dict_check(value, pav, v, cs);
            } else if (conv == PYJ_STR) {
                string_check(value, pav, v, cs);
            } else if (conv == PYJ_LIST) {
                list_check(value, pav, v, cs);
            }
        }
        cJSON_Delete(fl);
        if (!v->valid || cs->crashed) return;
    }
}

// ---------------------------------------------------------------------------------------------
// A call list against one answer dict (checker.py normal_checker)

typedef struct {
    char *name;    // spaces removed
    cJSON *args;   // a copy, spaces removed from every string
} ace_call;

// The name without a trailing "_<digits>".
static char *strip_suffix(const char *k) {
    size_t n = strlen(k), i = n;
    while (i > 0 && k[i - 1] >= '0' && k[i - 1] <= '9') i--;
    if (i < n && i > 0 && k[i - 1] == '_') n = i - 1;
    char *s = malloc(n + 1);
    if (s) memcpy(s, k, n), s[n] = 0;
    return s;
}

// checker.py find_description: the first function whose name is a substring of the key.
static const cJSON *find_description(const cJSON *functions, const char *key, py_crash *cs) {
    if (!cJSON_IsArray(functions)) return functions;
    for (const cJSON *f = functions->child; f; f = f->next) {
        const cJSON *n = obj_get(f, "name");
        if (!n) return py_crash_set(cs, "KeyError: 'name' in a function"), NULL;
        if (!cJSON_IsString(n)) return py_crash_set(cs, "function name is not a string"), NULL;
        if (strstr(key, n->valuestring)) return f;
    }
    return NULL;
}

static void normal_check(const cJSON *functions, const ace_call *calls, size_t n, const cJSON *answer,
                         acebench_verdict *v, py_crash *cs) {
    verdict_set(v, 1, "", "%s", "");
    long na = py_len(answer, cs);
    if (cs->crashed) return;
    if ((long)n != na) return verdict_set(v, 0, "wrong functions number", "%zu calls, %ld expected", n, na);
    if (!cJSON_IsObject(answer)) return py_crash_set(cs, "'%s' object has no attribute 'items'", pyjson_type_name(pyjson_typeof(answer)));
    size_t m = (size_t)na;
    char **names = calloc(m ? m : 1, sizeof(char *));
    if (!names) return py_crash_set(cs, "out of memory");
    size_t k = 0;
    for (const cJSON *a = answer->child; a; a = a->next) names[k++] = strip_suffix(a->string);
    // Names and counts: every call name must be an answer name and the other way round, and
    // each name must occur as often.
    for (size_t i = 0; i < n && v->valid; i++) {
        size_t ca = 0;
        for (size_t j = 0; j < m; j++) ca += names[j] && !strcmp(names[j], calls[i].name);
        if (!ca) verdict_set(v, 0, "function_mismatch", "extra function detected: %.100s", calls[i].name);
    }
    for (size_t j = 0; j < m && v->valid; j++) {
        int found = 0;
        for (size_t i = 0; i < n && !found; i++) found = names[j] && !strcmp(calls[i].name, names[j]);
        if (!found) verdict_set(v, 0, "function_mismatch", "missing function: %.100s", names[j] ? names[j] : "");
    }
    for (size_t i = 0; i < n && v->valid; i++) {
        size_t co = 0, ca = 0;
        for (size_t j = 0; j < n; j++) co += !strcmp(calls[j].name, calls[i].name);
        for (size_t j = 0; j < m; j++) ca += names[j] && !strcmp(names[j], calls[i].name);
        if (co != ca) verdict_set(v, 0, "function_mismatch", "incorrect count for function %.100s: expected %zu, actual %zu",
                                  calls[i].name, ca, co);
    }
    // Each answer against the calls of its name: the first that passes wins.
    k = 0;
    for (const cJSON *a = answer->child; a && v->valid && !cs->crashed; a = a->next, k++) {
        const cJSON *fdesc = find_description(functions, a->string, cs);
        if (cs->crashed) break;
        for (size_t j = 0; j < n && !cs->crashed; j++) {
            if (names[k] && !strcmp(calls[j].name, names[k])) {
                verdict_set(v, 1, "", "%s", "");
                simple_check(fdesc, calls[j].name, calls[j].args, a, v, cs);
                if (v->valid) break;
            } else {
                verdict_set(v, 0, "simple_function_checker:unclear", "wrong_function");
            }
        }
    }
    for (size_t j = 0; j < m; j++) free(names[j]);
    free(names);
}

// A copy of v with every space (U+0020) removed from its strings and keys: what the official
// pipeline's "".join(output.split()) does to the values of a call written out as Python text.
// A key that becomes a duplicate keeps the later value at the first position (a dict literal).
static cJSON *strip_spaces(const cJSON *v) {
    if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        char *t = malloc(strlen(s) + 1), *o = t;
        if (!t) return NULL;
        for (; *s; s++)
            if (*s != ' ') *o++ = *s;
        *o = 0;
        cJSON *r = cJSON_CreateString(t);
        free(t);
        return r;
    }
    if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
        cJSON *r = cJSON_IsArray(v) ? cJSON_CreateArray() : cJSON_CreateObject();
        for (const cJSON *c = v->child; r && c; c = c->next) {
            cJSON *x = strip_spaces(c);
            if (!x) return cJSON_Delete(r), NULL;
            if (cJSON_IsArray(v)) {
                cJSON_AddItemToArray(r, x);
                continue;
            }
            cJSON tmp = {0};
            tmp.type = cJSON_String;
            tmp.valuestring = c->string;
            cJSON *k = strip_spaces(&tmp);
            if (!k) return cJSON_Delete(x), cJSON_Delete(r), NULL;
            if (cJSON_GetObjectItemCaseSensitive(r, k->valuestring))
                cJSON_ReplaceItemInObjectCaseSensitive(r, k->valuestring, x);
            else
                cJSON_AddItemToObject(r, k->valuestring, x);
            cJSON_Delete(k);
        }
        return r;
    }
    return pyjson_copy(v);
}

static void calls_free(ace_call *c, size_t n) {
    for (size_t i = 0; c && i < n; i++) {
        free(c[i].name);
        cJSON_Delete(c[i].args);
    }
    free(c);
}

// Our calls [{"name", "arguments"}] in the official decoded form. 0 when they are not calls.
static int calls_decode(const cJSON *calls, ace_call **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (!cJSON_IsArray(calls)) return 0;
    size_t m = (size_t)cJSON_GetArraySize(calls), k = 0;
    ace_call *c = calloc(m ? m : 1, sizeof(*c));
    if (!c) return 0;
    for (const cJSON *it = calls->child; it; it = it->next, k++) {
        const cJSON *name = obj_get(it, "name"), *args = obj_get(it, "arguments");
        if (!cJSON_IsString(name) || !cJSON_IsObject(args)) return calls_free(c, k), 0;
        cJSON tmp = {0};
        tmp.type = cJSON_String;
        tmp.valuestring = name->valuestring;
        cJSON *nm = strip_spaces(&tmp);
        c[k].name = nm ? strdup(nm->valuestring) : NULL;
        cJSON_Delete(nm);
        c[k].args = strip_spaces(args);
        // a keyword that appears twice once spaces are gone is a syntax error in Python
        if (!c[k].name || !c[k].args || cJSON_GetArraySize(c[k].args) != cJSON_GetArraySize(args))
            return calls_free(c, k + 1), 0;
    }
    *out = c;
    *n = m;
    return 1;
}

int acebench_check_normal(const cJSON *functions, const cJSON *ground_truth, const cJSON *calls,
                          acebench_verdict *v, trl_err *e) {
    memset(v, 0, sizeof(*v));
    ace_call *cl;
    size_t n;
    if (!calls_decode(calls, &cl, &n)) {
        verdict_set(v, 0, "wrong_output_format", "no call list of {name, arguments} in the reply");
        return TRL_OK;
    }
    py_crash cs = {0};
    acebench_verdict first = *v;
    int have_first = 0, valid = 0;
    if (cJSON_IsArray(ground_truth)) {
        for (const cJSON *alt = ground_truth->child; alt && !valid && !cs.crashed; alt = alt->next) {
            normal_check(functions, cl, n, alt, v, &cs);
            valid = v->valid;
            if (!valid && !have_first) first = *v, have_first = 1;
        }
    } else {
        normal_check(functions, cl, n, ground_truth, v, &cs);
        valid = v->valid;
        if (!valid) first = *v, have_first = 1;
    }
    calls_free(cl, n);
    if (cs.crashed) return trl_errf(e, "ACEBench checker: %s", cs.msg);
    if (valid)
        verdict_set(v, 1, "", "%s", "");
    else if (have_first)
        *v = first;
    else
        verdict_set(v, 0, "", "no ground truth");
    return TRL_OK;
}

// ---------------------------------------------------------------------------------------------
// Special rows (eval_main.py special_eval)

// Iterates the official `for value in values` where values must hold strings.
static int strings_in(const cJSON *values, const char *text, py_crash *cs) {
    cJSON *items = py_iter(values, cs);
    int all = 1;
    for (const cJSON *c = items ? items->child : NULL; c; c = c->next) {
        if (!cJSON_IsString(c)) {
            py_crash_set(cs, "'in <string>' requires string as left operand, not %s", pyjson_type_name(pyjson_typeof(c)));
            break;
        }
        if (!strstr(text, c->valuestring)) all = 0;
    }
    cJSON_Delete(items);
    return all;
}

static int reply_has_call(const char *output, int prompt_style) {
    cJSON *calls = toolcall_parse_reply(prompt_style, output, strlen(output), NULL);
    int has = cJSON_IsArray(calls) && cJSON_GetArraySize(calls) > 0 && toolcall_valid_format(calls);
    cJSON_Delete(calls);
    return has;
}

int acebench_check_special(acebench_kind kind, const cJSON *gt, const char *output, int prompt_style, acebench_verdict *v,
                           trl_err *e) {
    memset(v, 0, sizeof(*v));
    verdict_set(v, 1, "", "%s", "");
    py_crash cs = {0};
    const char *out = output ? output : "";
    if (kind == ACE_SPECIAL_IRRELEVANT) {
        if (!strstr(out, "the limitations of the function"))
            verdict_set(v, 0, "error_detection", "the reply does not say the limitations of the function");
    } else if (kind == ACE_SPECIAL_INCOMPLETE || kind == ACE_SPECIAL_ERROR_PARAM) {
        if (!cJSON_IsObject(gt)) return trl_errf(e, "ACEBench checker: special answer is not a dict");
        const char *phrase = kind == ACE_SPECIAL_INCOMPLETE ? "Missing necessary parameters" : "There is incorrect value";
        for (const cJSON *c = gt->child; c && !cs.crashed; c = c->next) {
            if (!strstr(out, phrase)) {
                verdict_set(v, 0, "error_detection", "the reply does not contain \"%s\"", phrase);
            } else if (kind == ACE_SPECIAL_INCOMPLETE && !strstr(out, c->string)) {
                verdict_set(v, 0, "error_correction", "the reply does not name the function %.100s", c->string);
            } else if (!strings_in(c, out, &cs) && !cs.crashed) {
                verdict_set(v, 0, "error_correction", "the reply does not name every %s",
                            kind == ACE_SPECIAL_INCOMPLETE ? "missing parameter" : "wrong value");
            }
        }
    } else {
        return trl_errf(e, "ACEBench: not a special category");
    }
    if (cs.crashed) return trl_errf(e, "ACEBench checker: %s", cs.msg);
    // The Tool-N1 mapping: no call made (error_param: and every wrong value quoted).
    v->strict = v->valid;
    if (!v->valid && !reply_has_call(out, prompt_style)) {
        int quoted = 1;
        if (kind == ACE_SPECIAL_ERROR_PARAM)
            for (const cJSON *c = gt->child; c; c = c->next) quoted &= strings_in(c, out, &cs);
        if (quoted) v->valid = 1;
    }
    return TRL_OK;
}

// ---------------------------------------------------------------------------------------------
// Files, chat messages and prompts

static cJSON *msg_new(const char *role, const char *content) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role);
    if (content) cJSON_AddStringToObject(m, "content", content);
    return m;
}

// The question "user: …\nsystem: …\n" as chat turns (acebench.h).
static cJSON *question_messages(const char *q) {
    cJSON *msgs = cJSON_CreateArray();
    strbuf cur;
    strbuf_init(&cur);
    const char *role = NULL;
    const char *p = q;
    for (;;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        const char *r = NULL;
        size_t skip = 0;
        if (len >= 5 && !strncmp(p, "user:", 5)) r = "user", skip = 5;
        if (len >= 7 && !strncmp(p, "system:", 7)) r = "assistant", skip = 7;
        if (r || !role) {
            if (role) {
                char *t = strbuf_take(&cur);
                cJSON_AddItemToArray(msgs, msg_new(role, t ? t : ""));
                free(t);
            }
            role = r ? r : "user";
            if (r && skip < len && p[skip] == ' ') skip++;
            strbuf_add(&cur, p + skip, len - skip);
        } else {
            strbuf_addc(&cur, '\n');
            strbuf_add(&cur, p, len);
        }
        if (!nl) break;
        p = nl + 1;
    }
    char *t = strbuf_take(&cur);
    if (role) cJSON_AddItemToArray(msgs, msg_new(role, t ? t : ""));
    free(t);
    // Trailing newlines off; an assistant turn that is a call list becomes a tool call, and the
    // assistant turn right after it the tool's result.
    int after_call = 0;
    for (cJSON *m = msgs->child; m; m = m->next) {
        cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        char *s = c->valuestring;
        size_t n = strlen(s);
        while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r')) s[--n] = 0;
        int is_asst = !strcmp(cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring, "assistant");
        cJSON *calls = is_asst && n >= 2 && s[0] == '[' && s[n - 1] == ']' ? pycall_parse_list(s, n) : NULL;
        if (calls && cJSON_GetArraySize(calls) > 0) {
            cJSON_DeleteItemFromObjectCaseSensitive(m, "content");
            cJSON_AddItemToObject(m, "tool_calls", calls);
            after_call = 1;
            continue;
        }
        cJSON_Delete(calls);
        if (is_asst && after_call) cJSON_ReplaceItemInObjectCaseSensitive(m, "role", cJSON_CreateString("tool"));
        after_call = 0;
    }
    return msgs;
}

// The dialogue number of a multi-turn id "…_<dialogue>_<turn>", or -1.
static long dialogue_of(const char *id) {
    const char *last = strrchr(id, '_');
    if (!last || last == id) return -1;
    const char *p = last - 1;
    while (p > id && *p != '_') p--;
    if (*p != '_') return -1;
    char *end;
    long d = strtol(p + 1, &end, 10);
    return end == last && end > p + 1 ? d : -1;
}

static cJSON *read_jsonl(const char *path, trl_err *e) {
    size_t len;
    char *t = trl_read_file(path, &len, e);
    if (!t) return NULL;
    cJSON *rows = cJSON_CreateArray();
    size_t pos = 0;
    while (rows && pos < len) {
        char *nl = memchr(t + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - t) : len;
        int blank = 1;
        for (size_t i = pos; i < end; i++) blank &= t[i] == ' ' || t[i] == '\r' || t[i] == '\t';
        if (!blank) {
            cJSON *row = pyjson_parse(t + pos, end - pos, e);
            if (!row) {
                cJSON_Delete(rows);
                rows = NULL;
                trl_errf(e, "%s: line at byte %zu is not JSON", path, pos);
                break;
            }
            cJSON_AddItemToArray(rows, row);
        }
        pos = end + 1;
    }
    free(t);
    return rows;
}

static cJSON *row_messages(const cJSON *row, const char *category) {
    const cJSON *q = obj_get(row, "question");
    cJSON *msgs = question_messages(cJSON_IsString(q) ? q->valuestring : "");
    char *sys = NULL;
    if (!strcmp(category, "normal_preference")) {
        const cJSON *pr = obj_get(row, "profile");
        char *p = pr ? apibank_py_str(pr, 0) : NULL;
        strbuf sb;
        strbuf_init(&sb);
        strbuf_adds(&sb, "Character Profile:\n");
        strbuf_adds(&sb, p ? p : "");
        free(p);
        sys = strbuf_take(&sb);
    } else {
        const cJSON *t = obj_get(row, "time");
        if (cJSON_IsString(t) && t->valuestring[0]) sys = strdup(t->valuestring);
    }
    if (sys && msgs) cJSON_InsertItemInArray(msgs, 0, msg_new("system", sys));
    free(sys);
    return msgs;
}

int acebench_file_load(const char *dir, const char *category, int limit, acebench_file *f, trl_err *e) {
    memset(f, 0, sizeof(*f));
    snprintf(f->category, sizeof(f->category), "%s", category);
    f->kind = acebench_category_kind(category);
    if (f->kind == ACE_AGENT) return trl_errf(e, "ACEBench %s is not run: it %s", category, ACEBENCH_NOT_RUN_REASON);
    if (!acebench_category_known(category)) return trl_errf(e, "unknown ACEBench category '%s'", category);
    char qp[1024], ap[1024];
    snprintf(qp, sizeof(qp), "%s/data_en/data_%s.json", dir, category);
    snprintf(ap, sizeof(ap), "%s/possible_answer_en/data_%s.json", dir, category);
    cJSON *qs = read_jsonl(qp, e), *as = qs ? read_jsonl(ap, e) : NULL;
    if (!qs || !as) {
        cJSON_Delete(qs);
        return TRL_ERR;
    }
    int n = cJSON_GetArraySize(qs), rc = TRL_OK;
    if (n != cJSON_GetArraySize(as)) rc = trl_errf(e, "%s: %d questions but %d answers", category, n, cJSON_GetArraySize(as));
    f->rows = calloc((size_t)(n ? n : 1), sizeof(acebench_row));
    if (!f->rows && !rc) rc = trl_errf(e, "out of memory");
    long dialogues = 0, last = -2;
    while (rc == TRL_OK && qs->child) {
        cJSON *q = cJSON_DetachItemViaPointer(qs, qs->child), *a = cJSON_DetachItemViaPointer(as, as->child);
        const cJSON *id = obj_get(q, "id"), *aid = obj_get(a, "id");
        if (!cJSON_IsString(id) || !cJSON_IsString(aid) || strcmp(id->valuestring, aid->valuestring)) {
            cJSON_Delete(q);
            cJSON_Delete(a);
            rc = trl_errf(e, "%s: question and answer ids differ at row %zu", category, f->n);
            break;
        }
        long d = f->kind == ACE_MULTI_TURN ? dialogue_of(id->valuestring) : -1;
        if (d != last || f->kind != ACE_MULTI_TURN) dialogues++, last = d;
        if (limit > 0 && dialogues > limit) {
            cJSON_Delete(q);
            cJSON_Delete(a);
            break;
        }
        acebench_row *r = &f->rows[f->n++];
        r->row = q;
        r->answer = a;
        r->id = strdup(id->valuestring);
        r->category = f->category;
        r->kind = f->kind;
        r->dialogue = d;
        r->functions = obj_get(q, "function");
        r->ground_truth = obj_get(a, "ground_truth");
        r->messages = row_messages(q, category);
        if (!r->id || !r->messages || !cJSON_IsArray(r->functions) || !r->ground_truth)
            rc = trl_errf(e, "%s: row %s is incomplete (or out of memory)", category, id->valuestring);
    }
    cJSON_Delete(qs);
    cJSON_Delete(as);
    if (rc) acebench_file_free(f);
    return rc;
}

void acebench_file_free(acebench_file *f) {
    for (size_t i = 0; f->rows && i < f->n; i++) {
        free(f->rows[i].id);
        cJSON_Delete(f->rows[i].row);
        cJSON_Delete(f->rows[i].answer);
        cJSON_Delete(f->rows[i].messages);
    }
    free(f->rows);
    memset(f, 0, sizeof(*f));
}

char *acebench_row_prompt(const acebench_row *r, int prompt_style) {
    int n = cJSON_GetArraySize(r->messages), k = 0;
    toolprompt_msg *msgs = calloc((size_t)(n ? n : 1), sizeof(*msgs));
    cJSON *tools = cJSON_CreateArray();
    if (!msgs || !tools) {
        free(msgs);
        cJSON_Delete(tools);
        return NULL;
    }
    for (const cJSON *m = r->messages->child; m; m = m->next) {
        const cJSON *c = obj_get(m, "content"), *tc = obj_get(m, "tool_calls");
        msgs[k++] = (toolprompt_msg){obj_get(m, "role")->valuestring, cJSON_IsString(c) ? c->valuestring : NULL, tc};
    }
    for (const cJSON *f = r->functions->child; f; f = f->next) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "type", "function");
        cJSON_AddItemToObject(t, "function", pyjson_copy(f));
        cJSON_AddItemToArray(tools, t);
    }
    char *p = toolprompt_render_style((toolprompt_style)prompt_style, tools, msgs, k);
    cJSON_Delete(tools);
    free(msgs);
    return p;
}

int acebench_score(const acebench_row *r, int prompt_style, const char *output, acebench_verdict *v, trl_err *e) {
    if (r->kind == ACE_NORMAL || r->kind == ACE_MULTI_TURN) {
        cJSON *calls = toolcall_parse_reply(prompt_style, output, strlen(output), NULL);
        int rc = acebench_check_normal(r->functions, r->ground_truth, calls, v, e);
        cJSON_Delete(calls);
        return rc;
    }
    return acebench_check_special(r->kind, r->ground_truth, output, prompt_style, v, e);
}

// ---------------------------------------------------------------------------------------------
// Tallies and means

static int file_index(acebench_summary *s, const acebench_row *r) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->files[i].category, r->category)) return (int)i;
    if (s->n == 15) return -1;
    s->files[s->n] = (acebench_file_result){r->category, r->kind, 0, 0, 0, 0, 0};
    return (int)s->n++;
}

static double mean_of(const acebench_summary *s, const char *const *cats, size_t nc, int *parts) {
    double sum = 0;
    int k = 0;
    for (size_t c = 0; c < nc; c++)
        for (size_t i = 0; i < s->n; i++)
            if (!strcmp(s->files[i].category, cats[c]) && s->files[i].total > 0) {
                sum += (double)s->files[i].correct / (double)s->files[i].total;
                k++;
            }
    if (parts) *parts = k;
    return k ? sum / k : -1;
}

void acebench_summarize(const acebench_outcome *o, size_t n, acebench_summary *s) {
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < n;) {
        int fi = file_index(s, o[i].row);
        if (fi < 0) {
            i++;
            continue;
        }
        acebench_file_result *f = &s->files[fi];
        if (o[i].row->kind == ACE_MULTI_TURN) {  // a dialogue: its consecutive turns
            size_t j = i;
            int all = 1;
            while (j < n && o[j].row->category == o[i].row->category && o[j].row->dialogue == o[i].row->dialogue) {
                all &= o[j].valid != 0;
                f->turns++;
                f->turns_correct += o[j].valid != 0;
                j++;
            }
            f->total++;
            f->correct += all;
            i = j;
            continue;
        }
        f->total++;
        f->correct += o[i].valid != 0;
        f->strict_correct += o[i].strict != 0;
        i++;
    }
    const char *const *C = ACEBENCH_CATEGORIES;
    s->atom = mean_of(s, C, 6, &s->atom_parts);
    s->single_turn = mean_of(s, C + 6, 2, &s->single_turn_parts);
    s->multi_turn = mean_of(s, C + 8, 2, &s->multi_turn_parts);
    s->normal = mean_of(s, C, 12, &s->normal_parts);
    s->special = mean_of(s, C + 12, 3, &s->special_parts);
    s->tooln1 = mean_of(s, C, 8, &s->tooln1_parts);
    double sum = 0;
    int k = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->files[i].kind >= ACE_SPECIAL_INCOMPLETE && s->files[i].kind <= ACE_SPECIAL_IRRELEVANT && s->files[i].total)
            sum += (double)s->files[i].strict_correct / (double)s->files[i].total, k++;
    s->special_strict = k ? sum / k : -1;
}

static void not_run_list(const acebench_summary *s, const char *const *cats, size_t nc, strbuf *sb) {
    for (size_t c = 0; c < nc; c++) {
        int found = 0;
        for (size_t i = 0; i < s->n; i++) found |= !strcmp(s->files[i].category, cats[c]) && s->files[i].total > 0;
        if (!found) strbuf_addf(sb, "%s%s", sb->len ? ", " : "", cats[c]);
    }
}

void acebench_summary_print(FILE *f, const acebench_summary *s) {
    fprintf(f, "%-38s %8s %8s %9s %9s\n", "file", "correct", "total", "accuracy", "strict");
    for (size_t i = 0; i < s->n; i++) {
        const acebench_file_result *r = &s->files[i];
        double acc = r->total ? 100.0 * r->correct / (double)r->total : 0;
        fprintf(f, "%-38s %8ld %8ld %8.2f%%", r->category, r->correct, r->total, acc);
        if (r->kind >= ACE_SPECIAL_INCOMPLETE && r->kind <= ACE_SPECIAL_IRRELEVANT)
            fprintf(f, " %8.2f%%", r->total ? 100.0 * r->strict_correct / (double)r->total : 0);
        if (r->kind == ACE_MULTI_TURN) fprintf(f, "  dialogues; turns %ld/%ld", r->turns_correct, r->turns);
        fprintf(f, "\n");
    }
    fprintf(f, "not run: %s, %s (%s)\n", ACEBENCH_AGENT_CATEGORIES[0], ACEBENCH_AGENT_CATEGORIES[1],
            ACEBENCH_NOT_RUN_REASON);
    strbuf sb;
    strbuf_init(&sb);
    not_run_list(s, ACEBENCH_CATEGORIES, 15, &sb);
    char *missing = strbuf_take(&sb);
    if (missing && *missing) fprintf(f, "not run here: %s\n", missing);
    free(missing);
    struct {
        const char *label;
        double v;
        int parts, of;
    } L[] = {{"Atom (6 files)", s->atom, s->atom_parts, 6},
             {"Single-turn (2 files)", s->single_turn, s->single_turn_parts, 2},
             {"Multi-turn (2 files, dialogues)", s->multi_turn, s->multi_turn_parts, 2},
             {"Normal (mean of the 12 normal files)", s->normal, s->normal_parts, 12},
             {"Special (3 files, Tool-N1 mapping)", s->special, s->special_parts, 3},
             {"Special, official phrases only", s->special_strict, s->special_parts, 3},
             {"Tool-N1 ACEBench (6 atom + 2 single-turn)", s->tooln1, s->tooln1_parts, 8}};
    for (size_t i = 0; i < sizeof(L) / sizeof(L[0]); i++) {
        if (L[i].v < 0) continue;
        fprintf(f, "%-46s %7.2f%%", L[i].label, 100 * L[i].v);
        if (L[i].parts < L[i].of) fprintf(f, "  (%d of %d files)", L[i].parts, L[i].of);
        fprintf(f, "\n");
    }
}

int acebench_summary_scores(const acebench_summary *s, const char *names[8], double values[8]) {
    const char *N[] = {"atom", "single_turn", "multi_turn", "normal", "special", "special_strict", "tooln1"};
    double V[] = {s->atom, s->single_turn, s->multi_turn, s->normal, s->special, s->special_strict, s->tooln1};
    int k = 0;
    for (int i = 0; i < 7; i++)
        if (V[i] >= 0) names[k] = N[i], values[k] = V[i], k++;
    return k;
}

cJSON *acebench_summary_json(const acebench_summary *s) {
    cJSON *o = cJSON_CreateObject(), *files = cJSON_CreateArray();
    if (!o || !files) return cJSON_Delete(o), cJSON_Delete(files), NULL;
    const char *names[8];
    double values[8];
    int k = acebench_summary_scores(s, names, values);
    for (int i = 0; i < k; i++) cJSON_AddNumberToObject(o, names[i], values[i]);
    for (size_t i = 0; i < s->n; i++) {
        const acebench_file_result *r = &s->files[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "category", r->category);
        cJSON_AddNumberToObject(x, "correct", (double)r->correct);
        cJSON_AddNumberToObject(x, "total", (double)r->total);
        if (r->kind >= ACE_SPECIAL_INCOMPLETE && r->kind <= ACE_SPECIAL_IRRELEVANT)
            cJSON_AddNumberToObject(x, "strict_correct", (double)r->strict_correct);
        if (r->kind == ACE_MULTI_TURN) {
            cJSON_AddNumberToObject(x, "turns_correct", (double)r->turns_correct);
            cJSON_AddNumberToObject(x, "turns", (double)r->turns);
        }
        cJSON_AddItemToArray(files, x);
    }
    cJSON_AddItemToObject(o, "files", files);
    cJSON *nr = cJSON_AddArrayToObject(o, "not_run");
    for (int i = 0; i < 2; i++) cJSON_AddItemToArray(nr, cJSON_CreateString(ACEBENCH_AGENT_CATEGORIES[i]));
    cJSON_AddStringToObject(o, "not_run_reason", ACEBENCH_NOT_RUN_REASON);
    return o;
}
