// strset.h: a set of strings (open addressing, FNV-1a hashes), for deduplication keys and the
// evaluation-question blocklist of the training mix.
#ifndef TOOLRL_STRSET_H
#define TOOLRL_STRSET_H

#include <stddef.h>

typedef struct {
    char **slot;  // NULL = empty
    size_t cap;   // a power of two (0 before the first add)
    size_t n;
} strset;

void strset_init(strset *s);
void strset_free(strset *s);
// Adds a copy of key. Returns 1 if added, 0 if it was there already, -1 when out of memory.
int strset_add(strset *s, const char *key);
int strset_has(const strset *s, const char *key);

#endif
