// pyjson.c: a JSON parser and printer with Python `json` semantics on cJSON trees (see pyjson.h).
#include "base/pyjson.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"

// ---------------------------------------------------------------------------------------------
// Internal string encoding

unsigned pyjson_utf8_next(const char *str, size_t n, size_t *i) {
    const unsigned char *s = (const unsigned char *)str;
    size_t k = *i;
    unsigned c = s[k];
    if (c < 0x80) {
        *i = k + 1;
        return c;
    }
    if (c == 0xC0 && k + 1 < n && s[k + 1] == 0x80) {  // U+0000 stored as C0 80
        *i = k + 2;
        return 0;
    }
    if (c >= 0xC2 && c <= 0xDF && k + 1 < n && (s[k + 1] & 0xC0) == 0x80) {
        *i = k + 2;
        return ((c & 0x1F) << 6) | (s[k + 1] & 0x3F);
    }
    if (c >= 0xE0 && c <= 0xEF && k + 2 < n && (s[k + 1] & 0xC0) == 0x80 && (s[k + 2] & 0xC0) == 0x80) {
        unsigned cp = ((c & 0x0F) << 12) | ((unsigned)(s[k + 1] & 0x3F) << 6) | (s[k + 2] & 0x3F);
        if (cp >= 0x800) {  // surrogates (ED A0..BF) are allowed: they are lone \uD8xx escapes
            *i = k + 3;
            return cp;
        }
    }
    if (c >= 0xF0 && c <= 0xF4 && k + 3 < n && (s[k + 1] & 0xC0) == 0x80 && (s[k + 2] & 0xC0) == 0x80 &&
        (s[k + 3] & 0xC0) == 0x80) {
        unsigned cp = ((c & 0x07) << 18) | ((unsigned)(s[k + 1] & 0x3F) << 12) |
                      ((unsigned)(s[k + 2] & 0x3F) << 6) | (s[k + 3] & 0x3F);
        if (cp >= 0x10000 && cp <= 0x10FFFF) {
            *i = k + 4;
            return cp;
        }
    }
    *i = k + 1;
    return 0xFFFD;
}

size_t pyjson_str_len(const char *s) {
    size_t n = strlen(s), i = 0, count = 0;
    while (i < n) {
        pyjson_utf8_next(s, n, &i);
        count++;
    }
    return count;
}

int pyjson_str_cmp(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b), i = 0, j = 0;
    while (i < na && j < nb) {
        unsigned ca = pyjson_utf8_next(a, na, &i);
        unsigned cb = pyjson_utf8_next(b, nb, &j);
        if (ca != cb) return ca < cb ? -1 : 1;
    }
    if (i < na) return 1;
    if (j < nb) return -1;
    return 0;
}

// Length of a strictly valid UTF-8 sequence at s[0..n) (no surrogates, no overlongs), or 0.
static size_t utf8_valid_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c >= 0xC2 && c <= 0xDF) return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0;
        if (c == 0xED && s[1] >= 0xA0) return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0;
        if (c == 0xF4 && s[1] >= 0x90) return 0;
        return 4;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Numbers

// Scans a JSON number at s[i..n) (Python's NUMBER_RE). Returns the end, or i if there is none.
static size_t scan_number(const char *s, size_t n, size_t i, int *is_float) {
    size_t st = i;
    *is_float = 0;
    if (i < n && s[i] == '-') i++;
    if (i < n && s[i] == '0') {
        i++;
    } else if (i < n && s[i] >= '1' && s[i] <= '9') {
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    } else {
        return st;
    }
    if (i + 1 < n && s[i] == '.' && s[i + 1] >= '0' && s[i + 1] <= '9') {
        i += 2;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        *is_float = 1;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < n && (s[j] == '+' || s[j] == '-')) j++;
        if (j < n && s[j] >= '0' && s[j] <= '9') {
            while (j < n && s[j] >= '0' && s[j] <= '9') j++;
            i = j;
            *is_float = 1;
        }
    }
    return i;
}

static int token_is_special(const char *t) {
    return !strcmp(t, "NaN") || !strcmp(t, "Infinity") || !strcmp(t, "-Infinity");
}

static int token_is_float(const char *t) {
    if (token_is_special(t)) return 1;
    return strpbrk(t, ".eE") != NULL;
}

static int token_is_number(const char *t) {
    if (token_is_special(t)) return 1;
    int f;
    size_t n = strlen(t);
    return n > 0 && scan_number(t, n, 0, &f) == n;
}

static cJSON *raw_number_node(const char *tok) {
    cJSON *v = cJSON_CreateRaw(tok);
    if (!v) return NULL;
    double d = strtod(tok, NULL);
    v->valuedouble = d;
    if (d >= (double)INT_MAX)
        v->valueint = INT_MAX;
    else if (d <= (double)INT_MIN)
        v->valueint = INT_MIN;
    else
        v->valueint = isnan(d) ? 0 : (int)d;
    return v;
}

cJSON *pyjson_number_new(const char *token) {
    if (!token || !token_is_number(token)) return NULL;
    return raw_number_node(token);
}

void pyjson_float_repr(double x, char *out, size_t outsz) {
    if (isnan(x)) {
        snprintf(out, outsz, "NaN");
        return;
    }
    if (isinf(x)) {
        snprintf(out, outsz, x < 0 ? "-Infinity" : "Infinity");
        return;
    }
    // Shortest number of significant digits that reads back as the same double.
    char buf[48];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, x);
        if (strtod(buf, NULL) == x) break;
    }
    // buf is [-]d[.ddd]e[+-]XX
    const char *p = buf;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    char digits[24];
    int nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < 23) digits[nd++] = *p;
    int exp10 = (*p == 'e') ? atoi(p + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    int decpt = exp10 + 1;  // value = 0.DIGITS * 10^decpt
    strbuf sb;
    strbuf_init(&sb);
    if (neg) strbuf_addc(&sb, '-');
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            strbuf_adds(&sb, "0.");
            for (int k = 0; k < -decpt; k++) strbuf_addc(&sb, '0');
            strbuf_add(&sb, digits, (size_t)nd);
        } else if (decpt >= nd) {
            strbuf_add(&sb, digits, (size_t)nd);
            for (int k = nd; k < decpt; k++) strbuf_addc(&sb, '0');
            strbuf_adds(&sb, ".0");
        } else {
            strbuf_add(&sb, digits, (size_t)decpt);
            strbuf_addc(&sb, '.');
            strbuf_add(&sb, digits + decpt, (size_t)(nd - decpt));
        }
    } else {
        strbuf_addc(&sb, digits[0]);
        if (nd > 1) {
            strbuf_addc(&sb, '.');
            strbuf_add(&sb, digits + 1, (size_t)(nd - 1));
        }
        strbuf_addf(&sb, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    }
    if (sb.oom || !sb.buf) {
        snprintf(out, outsz, "%.17g", x);
    } else {
        snprintf(out, outsz, "%s", sb.buf);
    }
    strbuf_free(&sb);
}

cJSON *pyjson_float_new(double x) {
    char buf[64];
    pyjson_float_repr(x, buf, sizeof(buf));
    return raw_number_node(buf);
}

// ---------------------------------------------------------------------------------------------
// Parser

typedef struct {
    const char *s;
    size_t n, i;
    int depth;
    trl_err *e;
} pj_parser;

static cJSON *pj_fail(pj_parser *p, const char *what, size_t at) {
    trl_errf(p->e, "%s: char %zu", what, at);
    return NULL;
}

static void pj_ws(pj_parser *p) {
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->i++;
    }
}

static int hex4(const char *s, size_t n, size_t i, unsigned *out) {
    if (i + 4 > n) return 0;
    unsigned v = 0;
    for (size_t k = 0; k < 4; k++) {
        char c = s[i + k];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return 0;
    }
    *out = v;
    return 1;
}

// Parses the string starting at the opening quote p->s[p->i]; returns malloc'd contents.
static char *pj_string(pj_parser *p) {
    size_t start = p->i;
    const char *s = p->s;
    size_t n = p->n;
    size_t i = p->i + 1;
    strbuf sb;
    strbuf_init(&sb);
    for (;;) {
        if (i >= n) {
            pj_fail(p, "Unterminated string starting at", start);
            strbuf_free(&sb);
            return NULL;
        }
        unsigned char c = (unsigned char)s[i];
        if (c == '"') {
            i++;
            break;
        }
        if (c == '\\') {
            if (i + 1 >= n) {
                pj_fail(p, "Unterminated string starting at", start);
                strbuf_free(&sb);
                return NULL;
            }
            char esc = s[i + 1];
            const char *simple = NULL;
            switch (esc) {
                case '"': simple = "\""; break;
                case '\\': simple = "\\"; break;
                case '/': simple = "/"; break;
                case 'b': simple = "\b"; break;
                case 'f': simple = "\f"; break;
                case 'n': simple = "\n"; break;
                case 'r': simple = "\r"; break;
                case 't': simple = "\t"; break;
                default: break;
            }
            if (simple) {
                strbuf_addc(&sb, simple[0]);
                i += 2;
                continue;
            }
            if (esc != 'u') {
                pj_fail(p, "Invalid \\escape", i);
                strbuf_free(&sb);
                return NULL;
            }
            unsigned cp;
            if (!hex4(s, n, i + 2, &cp)) {
                pj_fail(p, "Invalid \\uXXXX escape", i + 1);
                strbuf_free(&sb);
                return NULL;
            }
            i += 6;
            if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < n && s[i] == '\\' && s[i + 1] == 'u') {
                unsigned lo;
                if (hex4(s, n, i + 2, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                }
            }
            strbuf_add_cp(&sb, cp);
            continue;
        }
        if (c < 0x20) {
            pj_fail(p, "Invalid control character at", i);
            strbuf_free(&sb);
            return NULL;
        }
        if (c < 0x80) {
            size_t j = i + 1;
            while (j < n) {
                unsigned char d = (unsigned char)s[j];
                if (d == '"' || d == '\\' || d < 0x20 || d >= 0x80) break;
                j++;
            }
            strbuf_add(&sb, s + i, j - i);
            i = j;
            continue;
        }
        size_t vl = utf8_valid_len((const unsigned char *)s + i, n - i);
        if (vl) {
            strbuf_add(&sb, s + i, vl);
            i += vl;
        } else {
            strbuf_add_cp(&sb, 0xFFFD);
            i++;
        }
    }
    p->i = i;
    char *r = strbuf_take(&sb);
    if (!r) trl_errf(p->e, "out of memory");
    return r;
}

static cJSON *pj_value(pj_parser *p);

typedef struct {
    cJSON *item;
    size_t index;
} key_ref;

static int key_ref_cmp(const void *a, const void *b) {
    const key_ref *x = a, *y = b;
    int c = strcmp(x->item->string, y->item->string);
    if (c) return c;
    return x->index < y->index ? -1 : (x->index > y->index);
}

// Applies dict semantics to an object with count children: for a repeated key, the last value
// replaces the first (which keeps its position) and the other copies are removed.
static int pj_dedupe(cJSON *obj, size_t count) {
    if (count < 2) return 1;
    key_ref *refs = malloc(count * sizeof(*refs));
    if (!refs) return 0;
    size_t k = 0;
    for (cJSON *c = obj->child; c && k < count; c = c->next, k++) {
        refs[k].item = c;
        refs[k].index = k;
    }
    qsort(refs, k, sizeof(*refs), key_ref_cmp);
    size_t a = 0;
    while (a < k) {
        size_t b = a + 1;
        while (b < k && !strcmp(refs[b].item->string, refs[a].item->string)) b++;
        if (b - a > 1) {
            cJSON *first = refs[a].item, *last = refs[b - 1].item;
            for (size_t m = a + 1; m + 1 < b; m++) cJSON_Delete(cJSON_DetachItemViaPointer(obj, refs[m].item));
            cJSON_DetachItemViaPointer(obj, last);
            cJSON_ReplaceItemViaPointer(obj, first, last);
        }
        a = b;
    }
    free(refs);
    return 1;
}

static cJSON *pj_object(pj_parser *p) {
    size_t start = p->i;
    p->i++;
    if (++p->depth > PYJSON_MAX_DEPTH) return pj_fail(p, "Nesting too deep", start);
    cJSON *obj = cJSON_CreateObject();
    if (!obj) return pj_fail(p, "out of memory", start);
    size_t count = 0;
    pj_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
        p->depth--;
        return obj;
    }
    for (;;) {
        if (p->i >= p->n || p->s[p->i] != '"') {
            pj_fail(p, "Expecting property name enclosed in double quotes", p->i);
            goto fail;
        }
        char *key = pj_string(p);
        if (!key) goto fail;
        pj_ws(p);
        if (p->i >= p->n || p->s[p->i] != ':') {
            free(key);
            pj_fail(p, "Expecting ':' delimiter", p->i);
            goto fail;
        }
        p->i++;
        pj_ws(p);
        cJSON *val = pj_value(p);
        if (!val) {
            free(key);
            goto fail;
        }
        if (!cJSON_AddItemToObject(obj, key, val)) {
            free(key);
            cJSON_Delete(val);
            pj_fail(p, "out of memory", p->i);
            goto fail;
        }
        free(key);
        count++;
        pj_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            pj_ws(p);
            continue;
        }
        if (p->i < p->n && p->s[p->i] == '}') {
            p->i++;
            break;
        }
        pj_fail(p, "Expecting ',' delimiter", p->i);
        goto fail;
    }
    if (!pj_dedupe(obj, count)) {
        pj_fail(p, "out of memory", p->i);
        goto fail;
    }
    p->depth--;
    return obj;
fail:
    cJSON_Delete(obj);
    return NULL;
}

static cJSON *pj_array(pj_parser *p) {
    size_t start = p->i;
    p->i++;
    if (++p->depth > PYJSON_MAX_DEPTH) return pj_fail(p, "Nesting too deep", start);
    cJSON *arr = cJSON_CreateArray();
    if (!arr) return pj_fail(p, "out of memory", start);
    pj_ws(p);
    if (p->i < p->n && p->s[p->i] == ']') {
        p->i++;
        p->depth--;
        return arr;
    }
    cJSON *tail = NULL;
    for (;;) {
        cJSON *val = pj_value(p);
        if (!val) goto fail;
        // Append in O(1) (cJSON_AddItemToArray walks the list in old cJSON versions).
        if (!tail) {
            arr->child = val;
            val->prev = val;
        } else {
            tail->next = val;
            val->prev = tail;
            arr->child->prev = val;
        }
        tail = val;
        pj_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            pj_ws(p);
            continue;
        }
        if (p->i < p->n && p->s[p->i] == ']') {
            p->i++;
            break;
        }
        pj_fail(p, "Expecting ',' delimiter", p->i);
        goto fail;
    }
    p->depth--;
    return arr;
fail:
    cJSON_Delete(arr);
    return NULL;
}

static int pj_match(pj_parser *p, const char *word) {
    size_t l = strlen(word);
    return p->i + l <= p->n && !memcmp(p->s + p->i, word, l);
}

static cJSON *pj_value(pj_parser *p) {
    if (p->i >= p->n) return pj_fail(p, "Expecting value", p->i);
    char c = p->s[p->i];
    cJSON *v = NULL;
    switch (c) {
        case '"': {
            char *str = pj_string(p);
            if (!str) return NULL;
            v = cJSON_CreateString(str);
            free(str);
            if (!v) return pj_fail(p, "out of memory", p->i);
            return v;
        }
        case '{': return pj_object(p);
        case '[': return pj_array(p);
        case 'n':
            if (pj_match(p, "null")) {
                p->i += 4;
                v = cJSON_CreateNull();
            }
            break;
        case 't':
            if (pj_match(p, "true")) {
                p->i += 4;
                v = cJSON_CreateTrue();
            }
            break;
        case 'f':
            if (pj_match(p, "false")) {
                p->i += 5;
                v = cJSON_CreateFalse();
            }
            break;
        case 'N':
            if (pj_match(p, "NaN")) {
                p->i += 3;
                v = raw_number_node("NaN");
            }
            break;
        case 'I':
            if (pj_match(p, "Infinity")) {
                p->i += 8;
                v = raw_number_node("Infinity");
            }
            break;
        default: break;
    }
    if (v) return v;
    if (c == 'n' || c == 't' || c == 'f' || c == 'N' || c == 'I') return pj_fail(p, "Expecting value", p->i);
    if (c == '-' && pj_match(p, "-Infinity")) {
        p->i += 9;
        v = raw_number_node("-Infinity");
        return v ? v : pj_fail(p, "out of memory", p->i);
    }
    int is_float;
    size_t end = scan_number(p->s, p->n, p->i, &is_float);
    if (end == p->i) return pj_fail(p, "Expecting value", p->i);
    size_t tl = end - p->i;
    char small[64];
    char *tok = tl < sizeof(small) ? small : malloc(tl + 1);
    if (!tok) return pj_fail(p, "out of memory", p->i);
    memcpy(tok, p->s + p->i, tl);
    tok[tl] = 0;
    v = raw_number_node(tok);
    if (tok != small) free(tok);
    if (!v) return pj_fail(p, "out of memory", p->i);
    p->i = end;
    return v;
}

cJSON *pyjson_parse(const char *text, size_t len, trl_err *e) {
    if (!text) {
        trl_errf(e, "Expecting value: char 0");
        return NULL;
    }
    pj_parser p = {.s = text, .n = len, .i = 0, .depth = 0, .e = e};
    pj_ws(&p);
    cJSON *v = pj_value(&p);
    if (!v) return NULL;
    pj_ws(&p);
    if (p.i != p.n) {
        cJSON_Delete(v);
        pj_fail(&p, "Extra data", p.i);
        return NULL;
    }
    return v;
}

cJSON *pyjson_parse_next(const char *text, size_t len, size_t *pos, trl_err *e) {
    if (!text || *pos > len) {
        trl_errf(e, "Expecting value: char %zu", *pos);
        return NULL;
    }
    pj_parser p = {.s = text, .n = len, .i = *pos, .depth = 0, .e = e};
    pj_ws(&p);
    cJSON *v = pj_value(&p);
    if (v) *pos = p.i;
    return v;
}

// ---------------------------------------------------------------------------------------------
// Printer

static void dump_string(strbuf *sb, const char *s, int ascii) {
    size_t n = strlen(s), i = 0;
    strbuf_addc(sb, '"');
    while (i < n) {
        unsigned char b = (unsigned char)s[i];
        // Fast path for plain printable ASCII.
        if (b >= 0x20 && b < 0x7F && b != '"' && b != '\\') {
            size_t j = i + 1;
            while (j < n) {
                unsigned char d = (unsigned char)s[j];
                if (d < 0x20 || d >= 0x7F || d == '"' || d == '\\') break;
                j++;
            }
            strbuf_add(sb, s + i, j - i);
            i = j;
            continue;
        }
        unsigned cp = pyjson_utf8_next(s, n, &i);
        switch (cp) {
            case '"': strbuf_adds(sb, "\\\""); continue;
            case '\\': strbuf_adds(sb, "\\\\"); continue;
            case '\n': strbuf_adds(sb, "\\n"); continue;
            case '\r': strbuf_adds(sb, "\\r"); continue;
            case '\t': strbuf_adds(sb, "\\t"); continue;
            case '\b': strbuf_adds(sb, "\\b"); continue;
            case '\f': strbuf_adds(sb, "\\f"); continue;
            default: break;
        }
        if (cp < 0x20) {
            strbuf_addf(sb, "\\u%04x", cp);
        } else if (!ascii) {
            if (cp >= 0xD800 && cp <= 0xDFFF)
                strbuf_addf(sb, "\\u%04x", cp);
            else
                strbuf_add_cp(sb, cp);
        } else if (cp < 0x10000) {
            strbuf_addf(sb, "\\u%04x", cp);
        } else {
            unsigned v = cp - 0x10000;
            strbuf_addf(sb, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
        }
    }
    strbuf_addc(sb, '"');
}

static void dump_number_token(strbuf *sb, const char *tok) {
    if (!token_is_number(tok)) {  // a foreign raw node: print verbatim
        strbuf_adds(sb, tok);
        return;
    }
    if (token_is_float(tok)) {
        char buf[64];
        pyjson_float_repr(strtod(tok, NULL), buf, sizeof(buf));
        strbuf_adds(sb, buf);
        return;
    }
    if (!strcmp(tok, "-0")) {
        strbuf_addc(sb, '0');
        return;
    }
    strbuf_adds(sb, tok);
}

static int native_is_int(double d) { return isfinite(d) && d == floor(d) && fabs(d) < 9.2e18; }

static void dump_native_number(strbuf *sb, double d) {
    if (native_is_int(d)) {
        strbuf_addf(sb, "%.0f", d == 0 ? 0.0 : d);
    } else {
        char buf[64];
        pyjson_float_repr(d, buf, sizeof(buf));
        strbuf_adds(sb, buf);
    }
}

static int child_key_cmp(const void *a, const void *b) {
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return pyjson_str_cmp(x->string ? x->string : "", y->string ? y->string : "");
}

static void dump_value(strbuf *sb, const cJSON *v, unsigned flags) {
    const char *isep = (flags & PYJSON_COMPACT) ? "," : ", ";
    const char *ksep = (flags & PYJSON_COMPACT) ? ":" : ": ";
    int ascii = (flags & PYJSON_ASCII) != 0;
    if (!v || cJSON_IsNull(v)) {
        strbuf_adds(sb, "null");
    } else if (cJSON_IsTrue(v)) {
        strbuf_adds(sb, "true");
    } else if (cJSON_IsFalse(v)) {
        strbuf_adds(sb, "false");
    } else if (cJSON_IsRaw(v)) {
        dump_number_token(sb, v->valuestring ? v->valuestring : "null");
    } else if (cJSON_IsNumber(v)) {
        dump_native_number(sb, v->valuedouble);
    } else if (cJSON_IsString(v)) {
        dump_string(sb, v->valuestring ? v->valuestring : "", ascii);
    } else if (cJSON_IsArray(v)) {
        strbuf_addc(sb, '[');
        int first = 1;
        for (const cJSON *c = v->child; c; c = c->next) {
            if (!first) strbuf_adds(sb, isep);
            first = 0;
            dump_value(sb, c, flags);
        }
        strbuf_addc(sb, ']');
    } else if (cJSON_IsObject(v)) {
        size_t n = 0;
        for (const cJSON *c = v->child; c; c = c->next) n++;
        const cJSON **kids = NULL;
        if (n && (flags & PYJSON_SORT_KEYS)) {
            kids = malloc(n * sizeof(*kids));
            if (!kids) {
                sb->oom = 1;
                return;
            }
            size_t k = 0;
            for (const cJSON *c = v->child; c; c = c->next) kids[k++] = c;
            qsort(kids, n, sizeof(*kids), child_key_cmp);
        }
        strbuf_addc(sb, '{');
        const cJSON *c = v->child;
        for (size_t k = 0; k < n; k++) {
            const cJSON *item = kids ? kids[k] : c;
            if (k) strbuf_adds(sb, isep);
            dump_string(sb, item->string ? item->string : "", ascii);
            strbuf_adds(sb, ksep);
            dump_value(sb, item, flags);
            if (!kids) c = c->next;
        }
        strbuf_addc(sb, '}');
        free(kids);
    } else {
        strbuf_adds(sb, "null");
    }
}

char *pyjson_dump(const cJSON *v, unsigned flags) {
    strbuf sb;
    strbuf_init(&sb);
    dump_value(&sb, v, flags);
    return strbuf_take(&sb);
}

char *pyjson_canonical(const cJSON *v) { return pyjson_dump(v, PYJSON_SORT_KEYS | PYJSON_ASCII); }

cJSON *pyjson_copy(const cJSON *v) { return v ? cJSON_Duplicate(v, 1) : NULL; }

int pyjson_append(cJSON *array, cJSON *item) {
    if (item && cJSON_AddItemToArray(array, item)) return 1;
    cJSON_Delete(item);
    return 0;
}

int pyjson_set(cJSON *object, const char *key, cJSON *item) {
    if (item && cJSON_AddItemToObject(object, key, item)) return 1;
    cJSON_Delete(item);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Python types and equality

pyjson_type pyjson_typeof(const cJSON *v) {
    if (!v) return PYJ_INVALID;
    if (cJSON_IsNull(v)) return PYJ_NONE;
    if (cJSON_IsBool(v)) return PYJ_BOOL;
    if (cJSON_IsRaw(v)) {
        if (!v->valuestring || !token_is_number(v->valuestring)) return PYJ_INVALID;
        return token_is_float(v->valuestring) ? PYJ_FLOAT : PYJ_INT;
    }
    if (cJSON_IsNumber(v)) return native_is_int(v->valuedouble) ? PYJ_INT : PYJ_FLOAT;
    if (cJSON_IsString(v)) return PYJ_STR;
    if (cJSON_IsArray(v)) return PYJ_LIST;
    if (cJSON_IsObject(v)) return PYJ_DICT;
    return PYJ_INVALID;
}

const char *pyjson_type_name(pyjson_type t) {
    switch (t) {
        case PYJ_NONE: return "NoneType";
        case PYJ_BOOL: return "bool";
        case PYJ_INT: return "int";
        case PYJ_FLOAT: return "float";
        case PYJ_STR: return "str";
        case PYJ_LIST: return "list";
        case PYJ_DICT: return "dict";
        default: return "invalid";
    }
}

double pyjson_number(const cJSON *v) {
    if (!v) return 0;
    if (cJSON_IsTrue(v)) return 1;
    if (cJSON_IsFalse(v)) return 0;
    if (cJSON_IsRaw(v) && v->valuestring) return strtod(v->valuestring, NULL);
    if (cJSON_IsNumber(v)) return v->valuedouble;
    return 0;
}

// The exact decimal text of an int-valued node ("-0" normalised to "0"); buf holds at least 400.
static const char *int_text(const cJSON *v, char *buf, size_t bufsz) {
    if (cJSON_IsTrue(v)) return "1";
    if (cJSON_IsFalse(v)) return "0";
    if (cJSON_IsRaw(v)) {
        if (!strcmp(v->valuestring, "-0")) return "0";
        return v->valuestring;
    }
    double d = v->valuedouble;
    snprintf(buf, bufsz, "%.0f", d == 0 ? 0.0 : d);
    return buf;
}

static int number_equal(const cJSON *a, pyjson_type ta, const cJSON *b, pyjson_type tb) {
    int fa = ta == PYJ_FLOAT, fb = tb == PYJ_FLOAT;
    char ba[400], bb[400];
    if (!fa && !fb) return !strcmp(int_text(a, ba, sizeof(ba)), int_text(b, bb, sizeof(bb)));
    if (fa && fb) return pyjson_number(a) == pyjson_number(b);
    const cJSON *f = fa ? a : b, *i = fa ? b : a;
    double d = pyjson_number(f);
    if (!isfinite(d) || d != floor(d)) return 0;
    snprintf(ba, sizeof(ba), "%.0f", d == 0 ? 0.0 : d);
    return !strcmp(ba, int_text(i, bb, sizeof(bb)));
}

static int is_numeric(pyjson_type t) { return t == PYJ_BOOL || t == PYJ_INT || t == PYJ_FLOAT; }

int pyjson_equal(const cJSON *a, const cJSON *b) {
    pyjson_type ta = pyjson_typeof(a), tb = pyjson_typeof(b);
    if (ta == PYJ_INVALID || tb == PYJ_INVALID) return 0;
    if (is_numeric(ta) && is_numeric(tb)) return number_equal(a, ta, b, tb);
    if (ta != tb) return 0;
    switch (ta) {
        case PYJ_NONE: return 1;
        case PYJ_STR: return !strcmp(a->valuestring, b->valuestring);
        case PYJ_LIST: {
            const cJSON *x = a->child, *y = b->child;
            for (; x && y; x = x->next, y = y->next)
                if (!pyjson_equal(x, y)) return 0;
            return !x && !y;
        }
        case PYJ_DICT: {
            if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b)) return 0;
            for (const cJSON *x = a->child; x; x = x->next) {
                const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, x->string);
                if (!y || !pyjson_equal(x, y)) return 0;
            }
            return 1;
        }
        default: return 0;
    }
}
