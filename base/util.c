// util.c: error formatting, clock, whole-file reads, path helpers and the constant-time secret
// comparison.
#define _POSIX_C_SOURCE 200809L
#include "base/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int trl_errf(trl_err *e, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
    }
    return TRL_ERR;
}

double trl_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *trl_read_file(const char *path, size_t *len, trl_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        trl_errf(e, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            size_t ncap = cap ? cap * 2 : 65536 * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(f);
                trl_errf(e, "%s: out of memory", path);
                return NULL;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        trl_errf(e, "%s: read error", path);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

char *trl_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

int trl_mkdirs(const char *path, trl_err *e) {
    char p[4096];
    if (snprintf(p, sizeof(p), "%s", path) >= (int)sizeof(p)) return trl_errf(e, "%.200s...: path too long", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST) return trl_errf(e, "%s: %s", p, strerror(errno));
            *s = '/';
        }
    if (mkdir(p, 0755) != 0 && errno != EEXIST) return trl_errf(e, "%s: %s", p, strerror(errno));
    return TRL_OK;
}

int trl_secret_equal(const char *given, const char *secret) {
    size_t ng = strlen(given), ns = strlen(secret);
    // Every byte of the secret is looked at, whatever the guess; a guess shorter than the
    // secret is compared as if padded with NULs (which no secret byte is) and fails.
    volatile unsigned char diff = ng != ns;
    for (size_t i = 0; i < ns; i++) {
        unsigned char g = i < ng ? (unsigned char)given[i] : 0;
        diff |= (unsigned char)(g ^ (unsigned char)secret[i]);
    }
    return diff == 0;
}
