// pyjson.h: JSON text <-> cJSON trees with the semantics of Python's `json` module, which is what
// Tool-N1's reward, BFCL and the data pipelines run on. What cJSON alone would get wrong:
//   * Numbers: cJSON keeps only a double, so 1, 1.0 and 1e0 would be indistinguishable, but
//     Python's json.loads makes 1 an int and 1.0 / 1e0 floats, and json.dumps prints them as "1"
//     and "1.0". pyjson_parse stores every number as a cJSON_Raw node whose valuestring is the
//     exact token text (valuedouble/valueint are filled too). A token with a fraction or an
//     exponent (or NaN/Infinity) is a Python float, any other is a Python int. pyjson_dump
//     prints ints from the token (arbitrary size, "-0" -> "0") and floats as Python's repr()
//     of the nearest double (shortest round-trip digits; "1.0", "1e-05", "1e+16", "Infinity").
//     cJSON_Print of such a tree also prints the original token text, so round trips are exact.
//     Plain cJSON_Number nodes made by other code are accepted everywhere: integral values count
//     as ints, others as floats.
//   * Strictness: like json.loads, raw control characters inside strings, trailing commas,
//     leading zeros, "1." and trailing data are errors; NaN, Infinity and -Infinity are accepted.
//   * Duplicate object keys: the last value wins, kept at the first key's position (dict).
//   * Strings are stored as UTF-8 with two extensions so that every Python str survives:
//     U+0000 is stored as the bytes C0 80 (cJSON strings are NUL-terminated) and lone surrogates
//     from \uD800-style escapes as their 3-byte forms. Invalid UTF-8 in the input text is replaced
//     by U+FFFD (what a Python tokenizer's decode(errors="replace") would have produced).
// Nesting deeper than PYJSON_MAX_DEPTH is an error (Python raises RecursionError near 1000).
#ifndef TOOLRL_PYJSON_H
#define TOOLRL_PYJSON_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "base/util.h"

#define PYJSON_MAX_DEPTH 512

// Parses text[0..len) as json.loads would (surrounding spaces, tabs, CR and LF are allowed).
// Returns a new tree (free with cJSON_Delete), or NULL with a message like Python's in e.
cJSON *pyjson_parse(const char *text, size_t len, trl_err *e);
// Parses one value starting at text[*pos] (leading whitespace skipped) and moves *pos just past
// it, leaving what follows unread: for reading a stream of values or a big array item by item.
cJSON *pyjson_parse_next(const char *text, size_t len, size_t *pos, trl_err *e);

// json.dumps options. The default (0) is json.dumps(v): ", " and ": " separators, keys in
// insertion order, non-ASCII written as UTF-8. PYJSON_ASCII escapes everything outside
// printable ASCII as \uXXXX (Python's ensure_ascii=True, its default).
enum {
    PYJSON_SORT_KEYS = 1,  // sort_keys=True (by code point)
    PYJSON_ASCII = 2,      // ensure_ascii=True
    PYJSON_COMPACT = 4,    // separators=(",", ":")
};
// Returns malloc'd text, or NULL when out of memory.
char *pyjson_dump(const cJSON *v, unsigned flags);
// The key Tool-N1's reward compares: json.dumps(v, sort_keys=True) with Python's defaults.
char *pyjson_canonical(const cJSON *v);

// The Python type a JSON value becomes.
typedef enum { PYJ_NONE, PYJ_BOOL, PYJ_INT, PYJ_FLOAT, PYJ_STR, PYJ_LIST, PYJ_DICT, PYJ_INVALID } pyjson_type;
pyjson_type pyjson_typeof(const cJSON *v);
const char *pyjson_type_name(pyjson_type t);  // "int", "str", "NoneType", ...
// Python's a == b for JSON-derived values: True == 1 == 1.0, 1 != "1", NaN != NaN, lists
// element-wise, dicts by key set and values.
int pyjson_equal(const cJSON *a, const cJSON *b);
// The numeric value of a number or bool node (0 for others).
double pyjson_number(const cJSON *v);
// New number node (cJSON_Raw) holding token text, which must be a valid JSON number or
// NaN/Infinity/-Infinity. Returns NULL if it is not, or when out of memory.
cJSON *pyjson_number_new(const char *token);
// New float node holding Python's float(x) (used for BFCL's int -> float conversion).
cJSON *pyjson_float_new(double x);
// Python's repr() of a float into out (at least 32 bytes); NaN/inf as json.dumps writes them.
void pyjson_float_repr(double x, char *out, size_t outsz);
// Deep copy that keeps the number tokens (cJSON_Duplicate does too; this is a checked wrapper).
cJSON *pyjson_copy(const cJSON *v);
// Adds item (taken) to an array, or to an object under key. 0, with item freed, when item is
// NULL (a failed allocation or copy) or cannot be added: callers check once.
int pyjson_append(cJSON *array, cJSON *item);
int pyjson_set(cJSON *object, const char *key, cJSON *item);

// Decodes one code point of the internal string encoding at s[*i] (len n), advancing *i.
// Invalid bytes decode as U+FFFD (one byte consumed).
unsigned pyjson_utf8_next(const char *s, size_t n, size_t *i);
// len() of a Python str stored in the internal encoding.
size_t pyjson_str_len(const char *s);
// Compares two strings by code point, like Python's < on str. Returns <0, 0, >0.
int pyjson_str_cmp(const char *a, const char *b);

#endif
