// pycheck.h: the bits of Python's semantics that the official checkers (BFCL's, ACEBench's)
// lean on, shared by the C checkers that reproduce them: a place where Python would raise (the
// row then counts as malformed, as the official code's try/except makes it), `x in container`
// and len() on JSON values.
#ifndef TOOLRL_PYCHECK_H
#define TOOLRL_PYCHECK_H

#include <cjson/cJSON.h>

typedef struct {
    int crashed;     // Python would have raised
    char msg[256];   // the first such error
} py_crash;

// Records the first error (later ones are ignored).
void py_crash_set(py_crash *cs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// 1 for the empty string "" (the official answers' "may be omitted" marker).
int py_is_empty_str(const cJSON *v);
// `item in container`: a dict's keys, a list's items (Python's ==), a substring; raises for an
// unhashable key or a non-iterable container.
int py_in(const cJSON *container, const cJSON *item, py_crash *cs);
int py_in_str(const cJSON *container, const char *s, py_crash *cs);  // `s in container`, s a str
// len(v); raises for numbers, booleans and None.
long py_len(const cJSON *v, py_crash *cs);
// What `for x in v` gives for a list (its items) or a string (its characters, as one-character
// strings), each a new node made by map (a copy when map is NULL), in a new array. NULL for any
// other type (the caller raises as the code it reproduces does) and when out of memory.
cJSON *py_items(const cJSON *v, cJSON *(*map)(const cJSON *item));

#endif
