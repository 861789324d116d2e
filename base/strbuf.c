// strbuf.c: growable byte buffer (see strbuf.h).
#include "base/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void strbuf_init(strbuf *sb) { memset(sb, 0, sizeof(*sb)); }

void strbuf_free(strbuf *sb) {
    free(sb->buf);
    strbuf_init(sb);
}

static int strbuf_reserve(strbuf *sb, size_t extra) {
    if (sb->oom) return 0;
    if (extra > ((size_t)-1) / 2 - sb->len) {
        sb->oom = 1;
        return 0;
    }
    size_t need = sb->len + extra + 1;
    if (need <= sb->cap) return 1;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < need) cap *= 2;
    char *nb = realloc(sb->buf, cap);
    if (!nb) {
        sb->oom = 1;
        return 0;
    }
    sb->buf = nb;
    sb->cap = cap;
    return 1;
}

void strbuf_add(strbuf *sb, const char *s, size_t n) {
    if (!strbuf_reserve(sb, n)) return;
    if (n) memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = 0;
}

void strbuf_adds(strbuf *sb, const char *s) { strbuf_add(sb, s, strlen(s)); }

void strbuf_addc(strbuf *sb, char c) { strbuf_add(sb, &c, 1); }

void strbuf_addf(strbuf *sb, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof(tmp)) {
        strbuf_add(sb, tmp, (size_t)n);
        return;
    }
    if (!strbuf_reserve(sb, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

void strbuf_add_cp(strbuf *sb, unsigned cp) {
    char b[4];
    if (cp == 0) {
        b[0] = (char)0xC0;
        b[1] = (char)0x80;
        strbuf_add(sb, b, 2);
    } else if (cp < 0x80) {
        b[0] = (char)cp;
        strbuf_add(sb, b, 1);
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        strbuf_add(sb, b, 2);
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        strbuf_add(sb, b, 3);
    } else {
        if (cp > 0x10FFFF) cp = 0xFFFD;
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        strbuf_add(sb, b, 4);
    }
}

char *strbuf_take(strbuf *sb) {
    if (sb->oom) {
        strbuf_free(sb);
        return NULL;
    }
    if (!sb->buf) {
        char *e = malloc(1);
        if (e) e[0] = 0;
        return e;
    }
    char *r = sb->buf;
    strbuf_init(sb);
    return r;
}

const char *strbuf_find(const char *hay, size_t hlen, const char *needle, size_t nlen) {
    if (nlen == 0) return hay;
    if (!hay || hlen < nlen) return NULL;
    const char *end = hay + (hlen - nlen) + 1;
    const char *p = hay;
    while (p < end) {
        const char *q = memchr(p, needle[0], (size_t)(end - p));
        if (!q) return NULL;
        if (!memcmp(q, needle, nlen)) return q;
        p = q + 1;
    }
    return NULL;
}
