// strset.c: a set of strings with open addressing (see strset.h).
#include "base/strset.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

void strset_init(strset *s) { memset(s, 0, sizeof(*s)); }

void strset_free(strset *s) {
    for (size_t i = 0; i < s->cap; i++) free(s->slot[i]);
    free(s->slot);
    strset_init(s);
}

static size_t find(const strset *s, const char *key) {
    size_t i = (size_t)hash(key) & (s->cap - 1);
    while (s->slot[i] && strcmp(s->slot[i], key)) i = (i + 1) & (s->cap - 1);
    return i;
}

static int grow(strset *s) {
    size_t cap = s->cap ? 2 * s->cap : 1024;
    char **slot = calloc(cap, sizeof(*slot));
    if (!slot) return 0;
    strset old = *s;
    s->slot = slot;
    s->cap = cap;
    for (size_t i = 0; i < old.cap; i++)
        if (old.slot[i]) s->slot[find(s, old.slot[i])] = old.slot[i];
    free(old.slot);
    return 1;
}

int strset_add(strset *s, const char *key) {
    if ((s->n + 1) * 2 > s->cap && !grow(s)) return -1;
    size_t i = find(s, key);
    if (s->slot[i]) return 0;
    if (!(s->slot[i] = strdup(key))) return -1;
    s->n++;
    return 1;
}

int strset_has(const strset *s, const char *key) { return s->cap && s->slot[find(s, key)] != NULL; }
