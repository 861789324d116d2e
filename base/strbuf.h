// strbuf.h: a growable NUL-terminated byte buffer used by the data and eval code to build
// JSON text, prompts and messages. Allocation failure is sticky: after one, every call is a
// no-op and strbuf_take returns NULL, so callers check once at the end.
#ifndef TOOLRL_STRBUF_H
#define TOOLRL_STRBUF_H

#include <stddef.h>

typedef struct {
    char *buf;  // NUL-terminated when len > 0 or after strbuf_take; may be NULL when empty
    size_t len;
    size_t cap;
    int oom;  // set once an allocation failed
} strbuf;

void strbuf_init(strbuf *sb);
void strbuf_free(strbuf *sb);
// Appends n bytes (may contain NULs).
void strbuf_add(strbuf *sb, const char *s, size_t n);
void strbuf_adds(strbuf *sb, const char *s);
void strbuf_addc(strbuf *sb, char c);
void strbuf_addf(strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Appends code point cp as UTF-8 (surrogates as 3-byte sequences, 0 as the two bytes C0 80:
// the internal string encoding described in pyjson.h).
void strbuf_add_cp(strbuf *sb, unsigned cp);
// Returns the malloc'd NUL-terminated contents (never NULL unless out of memory) and resets sb.
char *strbuf_take(strbuf *sb);

// memmem() replacement: the first occurrence of needle in hay, or NULL. (Sanitizers check the
// whole haystack on every memmem call, which makes scans of long texts quadratic.)
const char *strbuf_find(const char *hay, size_t hlen, const char *needle, size_t nlen);

#endif
