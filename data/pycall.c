// pycall.c: Python-style call lists and literals to JSON (see pycall.h).
#include "data/pycall.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pyjson.h"
#include "base/strbuf.h"
#include "data/example.h"

#define PYCALL_MAX_DEPTH 64

typedef struct {
    const char *s;
    size_t n, i;
    int depth;
} lit_parser;

static void lp_ws(lit_parser *p) {
    while (p->i < p->n && isspace((unsigned char)p->s[p->i])) p->i++;
}

static cJSON *lp_value(lit_parser *p);

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// One string literal (with optional r/u/b prefixes) appended to sb. Returns 0 if not one.
static int lp_string_piece(lit_parser *p, strbuf *sb) {
    size_t i = p->i;
    int raw = 0;
    while (i < p->n && strchr("rRuUbB", p->s[i]) && p->s[i]) {
        if (p->s[i] == 'r' || p->s[i] == 'R') raw = 1;
        i++;
        if (i - p->i > 2) return 0;
    }
    if (i >= p->n || (p->s[i] != '\'' && p->s[i] != '"')) return 0;
    char q = p->s[i];
    int triple = i + 2 < p->n && p->s[i + 1] == q && p->s[i + 2] == q;
    i += triple ? 3 : 1;
    for (;;) {
        if (i >= p->n) return 0;
        char c = p->s[i];
        if (c == q && (!triple || (i + 2 < p->n && p->s[i + 1] == q && p->s[i + 2] == q))) {
            i += triple ? 3 : 1;
            break;
        }
        if (c == '\n' && !triple) return 0;
        if (c == '\\' && i + 1 < p->n) {
            char d = p->s[i + 1];
            if (raw) {
                strbuf_addc(sb, c);
                strbuf_addc(sb, d);
                i += 2;
                continue;
            }
            i += 2;
            switch (d) {
                case '\n': break;
                case '\\': strbuf_addc(sb, '\\'); break;
                case '\'': strbuf_addc(sb, '\''); break;
                case '"': strbuf_addc(sb, '"'); break;
                case 'a': strbuf_addc(sb, '\a'); break;
                case 'b': strbuf_addc(sb, '\b'); break;
                case 'f': strbuf_addc(sb, '\f'); break;
                case 'n': strbuf_addc(sb, '\n'); break;
                case 'r': strbuf_addc(sb, '\r'); break;
                case 't': strbuf_addc(sb, '\t'); break;
                case 'v': strbuf_addc(sb, '\v'); break;
                case 'x':
                case 'u':
                case 'U': {
                    int digits = d == 'x' ? 2 : d == 'u' ? 4 : 8;
                    unsigned cp = 0;
                    for (int k = 0; k < digits; k++) {
                        if (i >= p->n || hexval(p->s[i]) < 0) return 0;
                        cp = cp * 16 + (unsigned)hexval(p->s[i++]);
                    }
                    if (cp > 0x10FFFF) return 0;
                    strbuf_add_cp(sb, cp);
                    break;
                }
                default:
                    if (d >= '0' && d <= '7') {
                        unsigned cp = (unsigned)(d - '0');
                        for (int k = 0; k < 2 && i < p->n && p->s[i] >= '0' && p->s[i] <= '7'; k++)
                            cp = cp * 8 + (unsigned)(p->s[i++] - '0');
                        strbuf_add_cp(sb, cp);
                    } else {  // unknown escapes keep the backslash
                        strbuf_addc(sb, '\\');
                        strbuf_addc(sb, d);
                    }
            }
            continue;
        }
        strbuf_addc(sb, c);
        i++;
    }
    p->i = i;
    return 1;
}

static cJSON *lp_string(lit_parser *p) {
    strbuf sb;
    strbuf_init(&sb);
    if (!lp_string_piece(p, &sb)) {
        strbuf_free(&sb);
        return NULL;
    }
    for (;;) {  // adjacent literals concatenate
        size_t save = p->i;
        lp_ws(p);
        if (!lp_string_piece(p, &sb)) {
            p->i = save;
            break;
        }
    }
    char *s = strbuf_take(&sb);
    cJSON *v = s ? cJSON_CreateString(s) : NULL;
    free(s);
    return v;
}

static cJSON *lp_number(lit_parser *p) {
    size_t i = p->i;
    int neg = 0;
    while (i < p->n && (p->s[i] == '-' || p->s[i] == '+')) {
        if (p->s[i] == '-') neg = !neg;
        i++;
        while (i < p->n && isspace((unsigned char)p->s[i])) i++;
    }
    char buf[128];
    size_t k = 0;
    int is_float = 0, digits = 0;
    if (i + 1 < p->n && p->s[i] == '0' && (p->s[i + 1] == 'x' || p->s[i + 1] == 'X')) {
        i += 2;
        unsigned long long v = 0;
        int nd = 0;
        while (i < p->n && (hexval(p->s[i]) >= 0 || p->s[i] == '_')) {
            if (p->s[i] != '_') {
                v = v * 16 + (unsigned)hexval(p->s[i]);
                nd++;
            }
            i++;
        }
        if (!nd || nd > 15) return NULL;
        p->i = i;
        char t[40];
        snprintf(t, sizeof(t), "%s%llu", (neg && v) ? "-" : "", v);
        return pyjson_number_new(t);
    }
    while (i < p->n && k + 2 < sizeof(buf)) {
        char c = p->s[i];
        if (isdigit((unsigned char)c)) {
            buf[k++] = c;
            digits++;
        } else if (c == '_' && digits) {
        } else if (c == '.' && !is_float) {
            buf[k++] = c;
            is_float = 1;
        } else if ((c == 'e' || c == 'E') && digits) {
            buf[k++] = c;
            is_float = 1;
            if (i + 1 < p->n && (p->s[i + 1] == '+' || p->s[i + 1] == '-')) buf[k++] = p->s[++i];
        } else {
            break;
        }
        i++;
    }
    buf[k] = 0;
    if (!digits) return NULL;
    if (i < p->n && (isalpha((unsigned char)p->s[i]) || p->s[i] == '_')) return NULL;
    p->i = i;
    if (is_float) {
        char *end;
        double d = strtod(buf, &end);
        if (*end) return NULL;
        return pyjson_float_new(neg ? -d : d);
    }
    const char *t = buf;
    while (t[0] == '0' && t[1]) t++;
    if (buf[0] == '0' && buf[1]) {  // Python rejects leading zeros in non-zero ints
        for (const char *q = buf; *q; q++)
            if (*q != '0') return NULL;
    }
    char out[132];
    snprintf(out, sizeof(out), "%s%s", (neg && strcmp(t, "0")) ? "-" : "", t);
    return pyjson_number_new(out);
}

// A dict key as json.dumps writes non-string keys.
static char *key_text(const cJSON *k) {
    switch (pyjson_typeof(k)) {
        case PYJ_STR: return strdup(k->valuestring);
        case PYJ_NONE: return strdup("null");
        case PYJ_BOOL: return strdup(cJSON_IsTrue(k) ? "true" : "false");
        case PYJ_INT:
        case PYJ_FLOAT: return pyjson_dump(k, 0);
        default: return NULL;  // unhashable
    }
}

static cJSON *lp_container(lit_parser *p, char open) {
    char close = open == '[' ? ']' : open == '(' ? ')' : '}';
    if (++p->depth > PYCALL_MAX_DEPTH) return NULL;
    p->i++;
    int is_dict = -1;  // for '{': unknown until the first item
    cJSON *out = open == '{' ? NULL : cJSON_CreateArray();
    cJSON *dict = NULL, *set = NULL;
    size_t items = 0;
    int trailing_comma = 0;
    for (;;) {
        lp_ws(p);
        if (p->i < p->n && p->s[p->i] == close) {
            p->i++;
            break;
        }
        cJSON *v = lp_value(p);
        if (!v) goto fail;
        lp_ws(p);
        if (open == '{') {
            int colon = p->i < p->n && p->s[p->i] == ':';
            if (is_dict < 0) {
                is_dict = colon;
                if (is_dict)
                    dict = cJSON_CreateObject();
                else
                    set = cJSON_CreateArray();
                if (!dict && !set) {
                    cJSON_Delete(v);
                    goto fail;
                }
            }
            if (is_dict != colon) {
                cJSON_Delete(v);
                goto fail;
            }
            if (is_dict) {
                p->i++;
                lp_ws(p);
                cJSON *val = lp_value(p);
                char *k = key_text(v);
                cJSON_Delete(v);
                if (!val || !k) {
                    free(k);
                    cJSON_Delete(val);
                    goto fail;
                }
                int added = cJSON_GetObjectItemCaseSensitive(dict, k) ? cJSON_ReplaceItemInObjectCaseSensitive(dict, k, val)
                                                                      : cJSON_AddItemToObject(dict, k, val);
                free(k);
                if (!added) {
                    cJSON_Delete(val);
                    goto fail;
                }
            } else if (!cJSON_AddItemToArray(set, v)) {
                cJSON_Delete(v);
                goto fail;
            }
        } else if (!cJSON_AddItemToArray(out, v)) {
            cJSON_Delete(v);
            goto fail;
        }
        items++;
        lp_ws(p);
        trailing_comma = 0;
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            trailing_comma = 1;
            continue;
        }
        lp_ws(p);
        if (p->i < p->n && p->s[p->i] == close) {
            p->i++;
            break;
        }
        goto fail;
    }
    // "(x)" without a comma is just x in parentheses.
    if (open == '(' && items == 1 && !trailing_comma) {
        cJSON *only = cJSON_DetachItemFromArray(out, 0);
        cJSON_Delete(out);
        p->depth--;
        return only;
    }
    p->depth--;
    if (open == '{') return is_dict == 0 ? set : (dict ? dict : cJSON_CreateObject());
    return out;
fail:
    cJSON_Delete(out);
    cJSON_Delete(dict);
    cJSON_Delete(set);
    return NULL;
}

static int lp_word(lit_parser *p, const char *w) {
    size_t l = strlen(w);
    if (p->i + l > p->n || memcmp(p->s + p->i, w, l) != 0) return 0;
    if (p->i + l < p->n && (isalnum((unsigned char)p->s[p->i + l]) || p->s[p->i + l] == '_')) return 0;
    p->i += l;
    return 1;
}

static cJSON *lp_value(lit_parser *p) {
    lp_ws(p);
    if (p->i >= p->n) return NULL;
    char c = p->s[p->i];
    if (c == '[' || c == '(' || c == '{') return lp_container(p, c);
    if (c == '\'' || c == '"' || ((c == 'r' || c == 'R' || c == 'u' || c == 'U' || c == 'b' || c == 'B') &&
                                  p->i + 1 < p->n && strchr("'\"rRuUbB", p->s[p->i + 1]) && p->s[p->i + 1])) {
        cJSON *s = lp_string(p);
        if (s) return s;
    }
    if (lp_word(p, "True")) return cJSON_CreateTrue();
    if (lp_word(p, "False")) return cJSON_CreateFalse();
    if (lp_word(p, "None")) return cJSON_CreateNull();
    if (c == '-' || c == '+' || c == '.' || isdigit((unsigned char)c)) return lp_number(p);
    return NULL;
}

cJSON *pycall_literal(const char *text, size_t len) {
    lit_parser p = {.s = text, .n = len, .i = 0, .depth = 0};
    cJSON *v = lp_value(&p);
    if (!v) return NULL;
    lp_ws(&p);
    if (p.i != p.n) {
        cJSON_Delete(v);
        return NULL;
    }
    return v;
}

// ---------------------------------------------------------------------------------------------
// Call lists

static int name_char(char c) { return isalnum((unsigned char)c) || (c && strchr("._?|-/ \t", c)); }

// Finds the ')' matching the '(' at s[open]; quotes are skipped (with backslash escapes).
static size_t match_paren(const char *s, size_t n, size_t open) {
    int depth = 0;
    char quote = 0;
    for (size_t i = open; i < n; i++) {
        char c = s[i];
        if (quote) {
            if (c == '\\') {
                i++;
            } else if (c == quote) {
                quote = 0;
            }
            continue;
        }
        if (c == '\'' || c == '"') {
            quote = c;
        } else if (c == '(' || c == '[' || c == '{') {
            depth++;
        } else if (c == ')' || c == ']' || c == '}') {
            depth--;
            if (depth == 0) return c == ')' ? i : (size_t)-1;
            if (depth < 0) return (size_t)-1;
        }
    }
    return (size_t)-1;
}

static void trim(const char **s, size_t *n) {
    while (*n && isspace((unsigned char)**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && isspace((unsigned char)(*s)[*n - 1])) (*n)--;
}

// Python's str.strip('\'"').
static char *strip_quotes(const char *s, size_t n) {
    while (n && (*s == '\'' || *s == '"')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == '\'' || s[n - 1] == '"')) n--;
    char *r = malloc(n + 1);
    if (!r) return NULL;
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

// Splits an argument list at top-level commas and fills args.
static int parse_args(const char *s, size_t n, cJSON *args) {
    size_t start = 0;
    int depth = 0;
    char quote = 0;
    for (size_t i = 0; i <= n; i++) {
        char c = i < n ? s[i] : ',';
        if (quote) {
            if (c == '\\' && i + 1 < n) {
                i++;
            } else if (c == quote) {
                quote = 0;
            }
            if (i < n) continue;
            c = ',';  // an unterminated quote ends at the end of the list
        }
        if (c == '\'' || c == '"') {
            quote = c;
            continue;
        }
        if (c == '(' || c == '[' || c == '{') depth++;
        if (c == ')' || c == ']' || c == '}') depth--;
        if (c != ',' || (depth != 0 && i < n)) continue;
        const char *item = s + start;
        size_t il = i - start;
        start = i + 1;
        trim(&item, &il);
        const char *eq = memchr(item, '=', il);
        if (!eq) continue;
        const char *k = item, *v = eq + 1;
        size_t kl = (size_t)(eq - item), vl = il - kl - 1;
        trim(&k, &kl);
        trim(&v, &vl);
        char *key = malloc(kl + 1);
        if (!key) return 0;
        memcpy(key, k, kl);
        key[kl] = 0;
        cJSON *val = pycall_literal(v, vl);
        if (!val) {
            char *raw = strip_quotes(v, vl);
            val = raw ? cJSON_CreateString(raw) : NULL;
            free(raw);
        }
        if (!val) {
            free(key);
            return 0;
        }
        int added = cJSON_GetObjectItemCaseSensitive(args, key) ? cJSON_ReplaceItemInObjectCaseSensitive(args, key, val)
                                                               : cJSON_AddItemToObject(args, key, val);
        free(key);
        if (!added) {
            cJSON_Delete(val);
            return 0;
        }
    }
    return 1;
}

cJSON *pycall_parse_list(const char *text, size_t len) {
    const char *s = text;
    size_t n = len;
    if (!s) return NULL;
    trim(&s, &n);
    if (n < 2 || s[0] != '[' || s[n - 1] != ']') return NULL;
    s++;
    n -= 2;
    cJSON *out = cJSON_CreateArray();
    if (!out) return NULL;
    size_t i = 0;
    for (;;) {
        while (i < n && isspace((unsigned char)s[i])) i++;
        size_t ns = i;
        while (i < n && name_char(s[i]) && s[i] != '(') i++;
        if (i >= n || s[i] != '(' || i == ns) goto fail;
        const char *name = s + ns;
        size_t nl = i - ns;
        trim(&name, &nl);
        if (!nl) goto fail;
        size_t close = match_paren(s, n, i);
        if (close == (size_t)-1) goto fail;
        cJSON *args = cJSON_CreateObject();
        char *nm = malloc(nl + 1);
        if (!args || !nm || !parse_args(s + i + 1, close - i - 1, args)) {
            cJSON_Delete(args);
            free(nm);
            goto fail;
        }
        memcpy(nm, name, nl);
        nm[nl] = 0;
        cJSON *call = example_make_call(nm, args);
        free(nm);
        if (!call || !cJSON_AddItemToArray(out, call)) {
            cJSON_Delete(call);
            goto fail;
        }
        i = close + 1;
        while (i < n && isspace((unsigned char)s[i])) i++;
        if (i >= n) break;
        if (s[i] != ',') goto fail;
        i++;
    }
    if (!out->child) goto fail;
    return out;
fail:
    cJSON_Delete(out);
    return NULL;
}
