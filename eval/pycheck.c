// pycheck.c: Python semantics shared by the official-checker reproductions (see pycheck.h).
#include "eval/pycheck.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/pyjson.h"

void py_crash_set(py_crash *cs, const char *fmt, ...) {
    if (cs->crashed) return;
    cs->crashed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cs->msg, sizeof(cs->msg), fmt, ap);
    va_end(ap);
}

int py_is_empty_str(const cJSON *v) { return cJSON_IsString(v) && v->valuestring[0] == 0; }

int py_in(const cJSON *container, const cJSON *item, py_crash *cs) {
    pyjson_type it = pyjson_typeof(item);
    if (cJSON_IsObject(container)) {
        if (it == PYJ_LIST || it == PYJ_DICT) return py_crash_set(cs, "unhashable type in a dict lookup"), 0;
        return it == PYJ_STR && cJSON_GetObjectItemCaseSensitive(container, item->valuestring) != NULL;
    }
    if (cJSON_IsArray(container)) {
        for (const cJSON *c = container->child; c; c = c->next)
            if (pyjson_equal(c, item)) return 1;
        return 0;
    }
    if (cJSON_IsString(container)) {
        if (it != PYJ_STR) return py_crash_set(cs, "'in <string>' requires string as left operand"), 0;
        return strstr(container->valuestring, item->valuestring) != NULL;
    }
    py_crash_set(cs, "argument of type '%s' is not iterable", pyjson_type_name(pyjson_typeof(container)));
    return 0;
}

int py_in_str(const cJSON *container, const char *s, py_crash *cs) {
    cJSON k;
    memset(&k, 0, sizeof(k));
    k.type = cJSON_String;
    k.valuestring = (char *)s;
    return py_in(container, &k, cs);
}

cJSON *py_items(const cJSON *v, cJSON *(*map)(const cJSON *item)) {
    if (!cJSON_IsArray(v) && !cJSON_IsString(v)) return NULL;
    cJSON *out = cJSON_CreateArray();
    if (!out) return NULL;
    if (cJSON_IsArray(v)) {
        for (const cJSON *c = v->child; c; c = c->next)
            if (!pyjson_append(out, map ? map(c) : pyjson_copy(c))) goto oom;
        return out;
    }
    const char *s = v->valuestring;
    size_t n = strlen(s), i = 0;
    while (i < n) {
        size_t st = i;
        pyjson_utf8_next(s, n, &i);
        char ch[8] = {0};
        memcpy(ch, s + st, i - st < 7 ? i - st : 7);
        cJSON one;  // the character as a string node, for map
        memset(&one, 0, sizeof(one));
        one.type = cJSON_String;
        one.valuestring = ch;
        if (!pyjson_append(out, map ? map(&one) : cJSON_CreateString(ch))) goto oom;
    }
    return out;
oom:
    cJSON_Delete(out);
    return NULL;
}

long py_len(const cJSON *v, py_crash *cs) {
    if (cJSON_IsArray(v) || cJSON_IsObject(v)) return cJSON_GetArraySize(v);
    if (cJSON_IsString(v)) return (long)pyjson_str_len(v->valuestring);
    py_crash_set(cs, "object of type '%s' has no len()", pyjson_type_name(pyjson_typeof(v)));
    return 0;
}
