// bfcl_checker.c: BFCL's AST checker rules for Python categories (see bfcl_checker.h).
// Written from the behaviour of bfcl-eval's ast_checker.py; where its Python would raise on a
// malformed dataset row we return TRL_ERR, and where it would raise on a malformed model output
// the result is the verdict that exception leads to in the runner.
#include "eval/bfcl_checker.h"

#include <locale.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#include "base/pyjson.h"
#include "base/strbuf.h"
#include "eval/pycheck.h"

// ---------------------------------------------------------------------------------------------
// String standardisation

static locale_t g_utf8_locale;
static pthread_once_t g_locale_once = PTHREAD_ONCE_INIT;

static void locale_init(void) { g_utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0); }

static unsigned py_lower_cp(unsigned cp) {
    if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    pthread_once(&g_locale_once, locale_init);
    if (g_utf8_locale) return (unsigned)towlower_l((wint_t)cp, g_utf8_locale);
    if ((cp >= 0xC0 && cp <= 0xDE && cp != 0xD7)) return cp + 32;  // Latin-1 fallback
    return cp;
}

static int is_letter_cp(unsigned cp) {
    if (cp < 0x80) return (cp | 32) >= 'a' && (cp | 32) <= 'z';
    pthread_once(&g_locale_once, locale_init);
    return g_utf8_locale ? iswalpha_l((wint_t)cp, g_utf8_locale) != 0 : 0;
}

char *bfcl_standardize(const char *s) {
    size_t n = strlen(s), i = 0;
    // First pass: decode and drop the removed ASCII characters.
    unsigned *cps = malloc((n + 1) * sizeof(unsigned));
    if (!cps) return NULL;
    size_t m = 0;
    while (i < n) {
        unsigned cp = pyjson_utf8_next(s, n, &i);
        if (cp < 0x80 && strchr(" ,./-_*^", (int)cp) && cp != 0) continue;
        cps[m++] = cp;
    }
    strbuf sb;
    strbuf_init(&sb);
    for (size_t k = 0; k < m; k++) {
        unsigned cp = cps[k];
        if (cp == 0x130) {  // LATIN CAPITAL LETTER I WITH DOT ABOVE lowercases to two code points
            strbuf_addc(&sb, 'i');
            strbuf_add_cp(&sb, 0x307);
            continue;
        }
        if (cp == 0x3A3) {  // final sigma: after a letter and not before one
            int before = k > 0 && is_letter_cp(cps[k - 1]);
            int after = k + 1 < m && is_letter_cp(cps[k + 1]);
            strbuf_add_cp(&sb, (before && !after) ? 0x3C2 : 0x3C3);
            continue;
        }
        unsigned lo = py_lower_cp(cp);
        if (lo == '\'') lo = '"';
        strbuf_add_cp(&sb, lo);
    }
    free(cps);
    return strbuf_take(&sb);
}

cJSON *bfcl_standardize_value(const cJSON *v) {
    if (!cJSON_IsString(v)) return pyjson_copy(v);
    char *s = bfcl_standardize(v->valuestring);
    cJSON *r = s ? cJSON_CreateString(s) : NULL;
    free(s);
    return r;
}

// ---------------------------------------------------------------------------------------------
// Small Python-semantics helpers

// Makes a list holding what `[x for x in v]` / `v[j] for j in range(len(v))` gives for a list
// or a string (one-character strings), strings standardised. Other types make the original
// crash. Returns a new array or NULL (crash or out of memory).
static cJSON *standardized_items(const cJSON *v, py_crash *cs) {
    cJSON *out = py_items(v, bfcl_standardize_value);
    if (out) return out;
    if (cJSON_IsArray(v) || cJSON_IsString(v))
        py_crash_set(cs, "out of memory");
    else if (cJSON_IsObject(v))
        py_crash_set(cs, "KeyError: 0 (possible answer is a dict where a list was expected)");
    else
        py_crash_set(cs, "object of type '%s' has no len()", pyjson_type_name(pyjson_typeof(v)));
    return NULL;
}

static void verdict_set(bfcl_verdict *v, int valid, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void verdict_set(bfcl_verdict *v, int valid, const char *type, const char *fmt, ...) {
    v->valid = valid;
    snprintf(v->error_type, sizeof(v->error_type), "%s", type ? type : "");
    v->error[0] = 0;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(v->error, sizeof(v->error), fmt, ap);
        va_end(ap);
    }
}

static void verdict_ok(bfcl_verdict *v) {
    v->valid = 1;
    v->error_type[0] = 0;
    v->error[0] = 0;
}

// ---------------------------------------------------------------------------------------------
// Types

typedef enum { T_NONE = -1 } type_sentinel;

static int map_type(const char *desc, pyjson_type *out) {
    static const struct {
        const char *name;
        pyjson_type t;
    } MAP[] = {{"string", PYJ_STR}, {"integer", PYJ_INT}, {"float", PYJ_FLOAT}, {"boolean", PYJ_BOOL},
               {"array", PYJ_LIST}, {"tuple", PYJ_LIST}, {"dict", PYJ_DICT},     {"any", PYJ_STR}};
    for (size_t i = 0; i < sizeof(MAP) / sizeof(MAP[0]); i++)
        if (!strcmp(desc, MAP[i].name)) {
            *out = MAP[i].t;
            return 1;
        }
    return 0;
}

// type() of the first possible answer that is not "", or -1 when there is none.
static int possible_answer_type(const cJSON *pa, py_crash *cs) {
    if (cJSON_IsArray(pa)) {
        for (const cJSON *c = pa->child; c; c = c->next)
            if (!py_is_empty_str(c)) return (int)pyjson_typeof(c);
        return T_NONE;
    }
    if (cJSON_IsString(pa)) return pa->valuestring[0] ? (int)PYJ_STR : T_NONE;  // its characters
    if (cJSON_IsObject(pa)) return pa->child ? (int)PYJ_STR : T_NONE;            // its keys
    py_crash_set(cs, "possible answer of type '%s' is not iterable", pyjson_type_name(pyjson_typeof(pa)));
    return T_NONE;
}

typedef struct {
    int valid;
    int is_variable;
    const char *error_type;
    char error[300];
} type_result;

static type_result type_check(const char *param, const cJSON *value, const cJSON *pa, const char *expected_desc,
                              pyjson_type expected, int nested, py_crash *cs) {
    type_result r = {.valid = 1, .is_variable = 0, .error_type = "type_error:simple", .error = ""};
    int is_variable = 0;
    int pat = possible_answer_type(pa, cs);
    if (pat != T_NONE && pat != (int)expected) is_variable = 1;
    pyjson_type vt = pyjson_typeof(value);
    if (vt == expected) {
        if (nested == T_NONE) {
            r.is_variable = is_variable;
            return r;
        }
        const cJSON *items = cJSON_IsArray(pa) ? pa->child : NULL;
        if (!cJSON_IsArray(pa)) py_crash_set(cs, "possible answer for '%s' is not a list", param);
        for (const cJSON *item = items; item; item = item->next) {
            int flag = 1;
            if (cJSON_IsArray(item)) {
                for (const cJSON *vi = value->child; vi; vi = vi->next) {
                    type_result sub = type_check(param, vi, item, pyjson_type_name((pyjson_type)nested),
                                                 (pyjson_type)nested, T_NONE, cs);
                    if (!sub.valid) {
                        flag = 0;
                        break;
                    }
                }
            }
            if (flag) {
                type_result ok = {.valid = 1, .is_variable = is_variable, .error_type = "", .error = ""};
                return ok;
            }
        }
        r.valid = 0;
        snprintf(r.error, sizeof(r.error), "Nested type checking failed for parameter '%s'. Expected outer type %s with inner type %s.",
                 param, expected_desc, pyjson_type_name((pyjson_type)nested));
        r.error_type = "type_error:nested";
    }
    pat = possible_answer_type(pa, cs);
    if (pat != T_NONE && (int)vt == pat) {
        r.is_variable = 1;
        return r;
    }
    r.valid = 0;
    snprintf(r.error, sizeof(r.error), "Incorrect type for parameter '%s'. Expected type %s, got %s.", param,
             expected_desc, pyjson_type_name(vt));
    r.error_type = "type_error:simple";
    return r;
}

// ---------------------------------------------------------------------------------------------
// Value checkers

static void string_check(const char *param, const cJSON *value, const cJSON *pa, bfcl_verdict *v, py_crash *cs) {
    char *sv = bfcl_standardize(value->valuestring);
    if (!sv) {
        py_crash_set(cs, "out of memory");
        return;
    }
    int found = 0;
    if (cJSON_IsArray(pa)) {
        for (const cJSON *c = pa->child; c && !found; c = c->next) {
            if (!cJSON_IsString(c)) continue;
            char *sp = bfcl_standardize(c->valuestring);
            if (!sp) {
                py_crash_set(cs, "out of memory");
                break;
            }
            found = !strcmp(sp, sv);
            free(sp);
        }
    } else {
        py_crash_set(cs, "possible answer for '%s' is not a list", param);
    }
    free(sv);
    if (!found)
        verdict_set(v, 0, "value_error:string", "Invalid value for parameter '%s': '%s'. Case insensitive.", param,
                    value->valuestring);
    else
        verdict_ok(v);
}

static void list_check(const char *param, const cJSON *value, const cJSON *pa, bfcl_verdict *v, py_crash *cs) {
    cJSON *out = standardized_items(value, cs);
    int found = 0;
    if (out) {
        if (!cJSON_IsArray(pa)) py_crash_set(cs, "possible answer for '%s' is not a list", param);
        for (const cJSON *c = cJSON_IsArray(pa) ? pa->child : NULL; c && !found && !cs->crashed; c = c->next) {
            cJSON *std = standardized_items(c, cs);
            if (!std) break;
            found = pyjson_equal(out, std);
            cJSON_Delete(std);
        }
    }
    cJSON_Delete(out);
    if (!found)
        verdict_set(v, 0, "value_error:list/tuple", "Invalid value for parameter '%s'.", param);
    else
        verdict_ok(v);
}

// dict_checker(param, model_output, possible_answers): possible_answers is a list of dicts.
static void dict_check(const char *param, const cJSON *value, const cJSON *answers, bfcl_verdict *v,
                       py_crash *cs) {
    verdict_set(v, 0, "dict_checker:unclear", "No possible answer for dict parameter '%s'.", param);
    if (!cJSON_IsArray(answers)) {
        py_crash_set(cs, "possible answers for '%s' are not a list", param);
        return;
    }
    for (const cJSON *pa = answers->child; pa && !cs->crashed; pa = pa->next) {
        if (py_is_empty_str(pa)) continue;
        verdict_set(v, 0, "dict_checker:unclear", NULL);
        int flag = 1;
        if (!cJSON_IsObject(value)) {
            py_crash_set(cs, "'%s' object has no attribute 'items'", pyjson_type_name(pyjson_typeof(value)));
            return;
        }
        for (const cJSON *kv = value->child; kv; kv = kv->next) {
            if (!py_in_str(pa, kv->string, cs)) {
                verdict_set(v, 0, "value_error:dict_key", "Unexpected dict key parameter: '%s'.", kv->string);
                flag = 0;
                break;
            }
            if (cs->crashed) return;
            if (!cJSON_IsObject(pa)) {
                py_crash_set(cs, "possible answer for dict '%s' is not a dict", param);
                return;
            }
            const cJSON *allowed = cJSON_GetObjectItemCaseSensitive(pa, kv->string);
            cJSON *sv = bfcl_standardize_value(kv);
            cJSON *sa = standardized_items(allowed, cs);
            int ok = 0;
            if (sv && sa) ok = py_in(sa, sv, cs);
            if (!sv) py_crash_set(cs, "out of memory");
            cJSON_Delete(sv);
            cJSON_Delete(sa);
            if (cs->crashed) return;
            if (!ok) {
                verdict_set(v, 0, "value_error:dict_value", "Invalid value for parameter '%s'.", kv->string);
                flag = 0;
                break;
            }
        }
        if (!cJSON_IsObject(pa)) {
            py_crash_set(cs, "possible answer for dict '%s' is not a dict", param);
            return;
        }
        for (const cJSON *kv = pa->child; kv; kv = kv->next) {
            if (cJSON_GetObjectItemCaseSensitive(value, kv->string)) continue;
            int optional = py_in_str(kv, "", cs);  // "" in the possible answers: may be omitted
            if (cs->crashed) return;
            if (!optional) {
                verdict_set(v, 0, "value_error:dict_key", "Missing dict key parameter: '%s'.", kv->string);
                flag = 0;
                break;
            }
        }
        if (flag) {
            verdict_ok(v);
            return;
        }
    }
}

static void list_dict_check(const char *param, const cJSON *value, const cJSON *answers, bfcl_verdict *v,
                            py_crash *cs) {
    verdict_set(v, 0, "list_dict_checker:unclear", "No possible answer for parameter '%s'.", param);
    if (!cJSON_IsArray(answers)) {
        py_crash_set(cs, "possible answers for '%s' are not a list", param);
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(value);
    for (const cJSON *pa = answers->child; pa && !cs->crashed; pa = pa->next) {
        int flag = 1;
        size_t pl = py_len(pa, cs);
        if (cs->crashed) return;
        if (n != pl) {
            verdict_set(v, 0, "value_error:list_dict_count", "Wrong number of dictionaries in the list.");
            continue;
        }
        size_t idx = 0;
        for (const cJSON *item = value->child; item; item = item->next, idx++) {
            if (!cJSON_IsArray(pa)) {
                py_crash_set(cs, "possible answer for list of dicts '%s' is not a list", param);
                return;
            }
            const cJSON *one = cJSON_GetArrayItem(pa, (int)idx);
            cJSON *wrap = cJSON_CreateArray();
            cJSON *copy = pyjson_copy(one);
            if (!wrap || !copy || !cJSON_AddItemToArray(wrap, copy)) {
                cJSON_Delete(wrap);
                cJSON_Delete(copy);
                py_crash_set(cs, "out of memory");
                return;
            }
            dict_check(param, item, wrap, v, cs);
            cJSON_Delete(wrap);
            if (cs->crashed) return;
            if (!v->valid) {
                flag = 0;
                break;
            }
        }
        if (flag) {
            verdict_ok(v);
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Function-level checkers

static const cJSON *obj_get(const cJSON *o, const char *k) {
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

// simple_function_checker(func_description, model_output {name: params}, possible_answer).
static void simple_check(const cJSON *fdesc, const bfcl_call *call, const cJSON *possible_answer, bfcl_verdict *v,
                         py_crash *cs) {
    if (!cJSON_IsObject(possible_answer) || !possible_answer->child) {
        py_crash_set(cs, "possible answer entry is not a one-key dict");
        return;
    }
    const cJSON *pa = possible_answer->child;  // list(possible_answer.values())[0]
    const cJSON *fname = obj_get(fdesc, "name");
    const cJSON *params = obj_get(fdesc, "parameters");
    const cJSON *details = obj_get(params, "properties");
    const cJSON *required = obj_get(params, "required");
    if (!cJSON_IsString(fname) || !cJSON_IsObject(details) || !required) {
        py_crash_set(cs, "function description lacks name, parameters.properties or parameters.required");
        return;
    }
    if (!cJSON_IsString(call->name) || strcmp(call->name->valuestring, fname->valuestring) != 0) {
        verdict_set(v, 0, "simple_function_checker:wrong_func_name", "Function name '%s' not found in model output.",
                    fname->valuestring);
        return;
    }
    const cJSON *mparams = call->args;
    if (!cJSON_IsArray(required)) {
        py_crash_set(cs, "parameters.required is not a list");
        return;
    }
    for (const cJSON *r = required->child; r; r = r->next) {
        if (!py_in(mparams, r, cs)) {
            if (cs->crashed) return;
            verdict_set(v, 0, "simple_function_checker:missing_required", "Missing required parameter: '%s'.",
                        cJSON_IsString(r) ? r->valuestring : "?");
            return;
        }
    }
    for (const cJSON *kv = mparams->child; kv; kv = kv->next) {
        const char *param = kv->string;
        if (!obj_get(details, param) || !py_in_str(pa, param, cs)) {
            if (cs->crashed) return;
            verdict_set(v, 0, "simple_function_checker:unexpected_param", "Unexpected parameter: '%s'.", param);
            return;
        }
        const cJSON *allowed = obj_get(pa, param);
        if (!allowed) {
            py_crash_set(cs, "possible answer is not a dict");
            return;
        }
        const cJSON *full = obj_get(details, param);
        const cJSON *tdesc = obj_get(full, "type");
        pyjson_type expected;
        if (!cJSON_IsString(tdesc) || !map_type(tdesc->valuestring, &expected)) {
            py_crash_set(cs, "KeyError: unknown parameter type for '%s'", param);
            return;
        }
        int nested = T_NONE;
        if (!strcmp(tdesc->valuestring, "array") || !strcmp(tdesc->valuestring, "tuple")) {
            const cJSON *it = obj_get(obj_get(full, "items"), "type");
            pyjson_type nt;
            if (!cJSON_IsString(it) || !map_type(it->valuestring, &nt)) {
                py_crash_set(cs, "KeyError: items.type of '%s'", param);
                return;
            }
            nested = (int)nt;
        }
        const cJSON *value = kv;
        cJSON *converted = NULL;
        if (!strcmp(tdesc->valuestring, "float") && pyjson_typeof(kv) == PYJ_INT) {
            converted = pyjson_float_new(pyjson_number(kv));  // Python's float(int)
            if (!converted) {
                py_crash_set(cs, "out of memory");
                return;
            }
            value = converted;
        }
        type_result tr = type_check(param, value, allowed, tdesc->valuestring, expected, nested, cs);
        if (cs->crashed) goto done;
        if (!tr.valid) {
            verdict_set(v, 0, tr.error_type, "%s", tr.error);
            goto done;
        }
        if (!tr.is_variable) {
            int handled = 1;
            if (expected == PYJ_DICT)
                dict_check(param, value, allowed, v, cs);
            else if (expected == PYJ_LIST && nested == (int)PYJ_DICT)
                list_dict_check(param, value, allowed, v, cs);
            else if (expected == PYJ_STR)
                string_check(param, value, allowed, v, cs);
            else if (expected == PYJ_LIST)
                list_check(param, value, allowed, v, cs);
            else
                handled = 0;
            if (handled) {
                cJSON_Delete(converted);
                if (cs->crashed || !v->valid) return;
                continue;
            }
        }
        if (!py_in(allowed, value, cs)) {
            if (!cs->crashed) verdict_set(v, 0, "value_error:others", "Invalid value for parameter '%s'.", param);
            goto done;
        }
        cJSON_Delete(converted);
        continue;
    done:
        cJSON_Delete(converted);
        return;
    }
    if (!cJSON_IsObject(pa)) {
        py_crash_set(cs, "possible answer is not a dict");
        return;
    }
    for (const cJSON *kv = pa->child; kv; kv = kv->next) {
        if (obj_get(mparams, kv->string)) continue;
        int optional = py_in_str(kv, "", cs);  // "" in the possible answers: may be omitted
        if (cs->crashed) return;
        if (!optional) {
            verdict_set(v, 0, "simple_function_checker:missing_optional",
                        "Optional parameter '%s' not provided and not marked as optional.", kv->string);
            return;
        }
    }
    verdict_ok(v);
}

static const cJSON *find_description(const cJSON *functions, const char *name) {
    if (!cJSON_IsArray(functions)) return functions;  // a dict: the only function
    for (const cJSON *f = functions->child; f; f = f->next) {
        const cJSON *n = obj_get(f, "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name)) return f;
    }
    return NULL;
}

static const char *expected_name(const cJSON *answer, py_crash *cs) {
    if (!cJSON_IsObject(answer) || !answer->child || !answer->child->string) {
        py_crash_set(cs, "possible answer entry is not a one-key dict");
        return NULL;
    }
    return answer->child->string;
}

static void parallel_check(const cJSON *functions, const bfcl_call *calls, size_t n, const cJSON *answers,
                           bfcl_verdict *v, py_crash *cs) {
    size_t na = (size_t)cJSON_GetArraySize(answers);
    if (n != na) {
        verdict_set(v, 0, "parallel_function_checker_no_order:wrong_count", "Wrong number of functions.");
        return;
    }
    unsigned char *matched = calloc(n ? n : 1, 1);
    if (!matched) {
        py_crash_set(cs, "out of memory");
        return;
    }
    size_t i = 0;
    for (const cJSON *ans = answers->child; ans; ans = ans->next, i++) {
        const char *ename = expected_name(ans, cs);
        if (!ename) break;
        const cJSON *fdesc = find_description(functions, ename);
        if (!fdesc) {
            py_crash_set(cs, "function '%s' of the possible answer is not in the function list", ename);
            break;
        }
        int found = 0;
        for (size_t k = 0; k < n; k++) {
            if (matched[k]) continue;
            simple_check(fdesc, &calls[k], ans, v, cs);
            if (cs->crashed) break;
            if (v->valid) {
                matched[k] = 1;
                found = 1;
                break;
            }
        }
        if (cs->crashed) break;
        if (!found) {
            verdict_set(v, 0, "parallel_function_checker_no_order:cannot_find_match",
                        "Could not find a matching function for index %zu of possible answers.", i);
            free(matched);
            return;
        }
    }
    free(matched);
    if (!cs->crashed) verdict_ok(v);
}

static void multiple_check(const cJSON *functions, const bfcl_call *calls, size_t n, const cJSON *answers,
                           bfcl_verdict *v, py_crash *cs) {
    size_t na = (size_t)cJSON_GetArraySize(answers);
    if (n != na) {
        verdict_set(v, 0, "multiple_function_checker:wrong_count", "Wrong number of functions.");
        return;
    }
    const char *ename = expected_name(answers->child, cs);
    if (!ename) return;
    const cJSON *fdesc = find_description(functions, ename);
    if (!fdesc) {
        py_crash_set(cs, "function '%s' of the possible answer is not in the function list", ename);
        return;
    }
    simple_check(fdesc, &calls[0], answers->child, v, cs);
}

// ---------------------------------------------------------------------------------------------
// Entry points

bfcl_kind bfcl_category_kind(const char *category) {
    if (!category) return BFCL_AST;
    if (strstr(category, "irrelevance")) return BFCL_IRRELEVANCE;
    if (strstr(category, "relevance")) return BFCL_RELEVANCE;
    return BFCL_AST;
}

int bfcl_decode(const cJSON *model_result, bfcl_call **calls, size_t *n, trl_err *e) {
    *calls = NULL;
    *n = 0;
    if (!model_result) return trl_errf(e, "'NoneType' object is not iterable");
    if (cJSON_IsString(model_result)) {
        if (model_result->valuestring[0] == 0) return TRL_OK;  // iterating "" yields nothing
        return trl_errf(e, "string indices must be integers");
    }
    if (cJSON_IsObject(model_result)) {
        if (!model_result->child) return TRL_OK;  // iterating {} yields nothing
        return trl_errf(e, "string indices must be integers");
    }
    if (!cJSON_IsArray(model_result))
        return trl_errf(e, "'%s' object is not iterable", pyjson_type_name(pyjson_typeof(model_result)));
    size_t count = (size_t)cJSON_GetArraySize(model_result);
    if (count == 0) return TRL_OK;
    bfcl_call *out = calloc(count, sizeof(*out));
    if (!out) return trl_errf(e, "out of memory");
    size_t i = 0;
    for (const cJSON *c = model_result->child; c; c = c->next, i++) {
        if (!cJSON_IsObject(c)) {
            free(out);
            if (cJSON_IsArray(c) || cJSON_IsString(c))
                return trl_errf(e, "%s indices must be integers or slices, not str",
                                cJSON_IsArray(c) ? "list" : "string");
            return trl_errf(e, "'%s' object is not subscriptable", pyjson_type_name(pyjson_typeof(c)));
        }
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "name");
        if (!name) {
            free(out);
            return trl_errf(e, "KeyError: 'name'");
        }
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(c, "arguments");
        if (!args) {
            free(out);
            return trl_errf(e, "KeyError: 'arguments'");
        }
        if (cJSON_IsArray(name) || cJSON_IsObject(name)) {
            free(out);
            return trl_errf(e, "unhashable type: '%s'", cJSON_IsArray(name) ? "list" : "dict");
        }
        out[i].name = name;
        out[i].args = args;
    }
    *calls = out;
    *n = count;
    return TRL_OK;
}

// is_function_calling_format_output on the decoded list: every value must be a dict.
static int calls_in_format(const bfcl_call *calls, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!cJSON_IsObject(calls[i].args)) return 0;
    return 1;
}

int bfcl_check(const char *category, const cJSON *functions, const cJSON *ground_truth, const cJSON *model_result,
               bfcl_verdict *v, trl_err *e) {
    memset(v, 0, sizeof(*v));
    if (!category) return trl_errf(e, "bfcl: no category");
    if (strstr(category, "java")) return trl_errf(e, "bfcl: category '%s' is not a Python category", category);
    bfcl_call *calls = NULL;
    size_t n = 0;
    trl_err de;
    int decoded = bfcl_decode(model_result, &calls, &n, &de) == TRL_OK;
    bfcl_kind kind = bfcl_category_kind(category);
    if (kind != BFCL_AST) {
        int has_call = decoded && calls_in_format(calls, n) && n > 0;
        free(calls);
        if (kind == BFCL_IRRELEVANCE) {
            if (has_call)
                verdict_set(v, 0, "irrelevance_error:decoder_success",
                            "Valid syntax. Successfully decode AST when it should not.");
            else
                verdict_ok(v);
        } else {
            if (!has_call)
                verdict_set(v, 0, "relevance_error:decoder_failed",
                            "Invalid syntax. Failed to decode AST when it should have.");
            else
                verdict_ok(v);
        }
        return TRL_OK;
    }
    if (!cJSON_IsArray(functions) || !cJSON_IsArray(ground_truth) || !ground_truth->child) {
        free(calls);
        return trl_errf(e, "bfcl: %s entry needs a function list and a non-empty ground_truth list", category);
    }
    if (!decoded) {
        verdict_set(v, 0, "ast_decoder:decoder_failed", "Invalid syntax. Failed to decode AST. %s", de.msg);
        return TRL_OK;
    }
    if (!calls_in_format(calls, n)) {
        free(calls);
        verdict_set(v, 0, "ast_decoder:decoder_wrong_output_format", "Did not output in the specified format.");
        return TRL_OK;
    }
    py_crash cs = {0};
    if (strstr(category, "parallel")) {
        parallel_check(functions, calls, n, ground_truth, v, &cs);
    } else if (strstr(category, "multiple")) {
        multiple_check(functions, calls, n, ground_truth, v, &cs);
    } else if (n != 1) {
        verdict_set(v, 0, "simple_function_checker:wrong_count", "Wrong number of functions.");
    } else {
        simple_check(functions->child, &calls[0], ground_truth->child, v, &cs);
    }
    free(calls);
    if (cs.crashed) return trl_errf(e, "bfcl: malformed %s entry: %s", category, cs.msg);
    return TRL_OK;
}
