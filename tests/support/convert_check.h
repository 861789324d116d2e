// convert_check.h (test support, header only: it uses cmocka's asserts, so include it after
// <cmocka.h>): what the data tests share: where the shared datasets are, skipping when they are
// missing, a sink that validates and keeps every converted example, and count helpers.
#ifndef TOOLRL_CONVERT_CHECK_H
#define TOOLRL_CONVERT_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/pyjson.h"
#include "data/convert.h"
#include "data/example.h"

static inline const char *shared_dir(void) {
    const char *d = getenv("TOOLRL_SHARED");
    return d && *d ? d : "../shared";
}

// out = $TOOLRL_SHARED/data/rel; 1 when it is readable.
static inline int shared_file(char *out, size_t n, const char *rel) {
    snprintf(out, n, "%s/data/%s", shared_dir(), rel);
    return access(out, R_OK) == 0;
}

#define NEED_SHARED(path, rel)                                                \
    do {                                                                      \
        if (!shared_file(path, sizeof(path), rel)) {                          \
            printf("skipped: %s not found (set TOOLRL_SHARED)\n", path);      \
            skip();                                                           \
        }                                                                     \
    } while (0)

typedef struct {
    int n;
    int invalid;
    char first_ids[8][128];
    cJSON *kept;  // a copy of every example, when not NULL
} collect;

// A convert_sink: every example must validate as a training line; counts and keeps it.
static inline int collect_sink(void *ctx, const cJSON *ex, trl_err *e) {
    (void)e;
    collect *c = ctx;
    char *line = pyjson_dump(ex, PYJSON_COMPACT);
    assert_non_null(line);
    trl_err ve;
    if (example_validate_line(line, strlen(line), &ve)) {
        fprintf(stderr, "invalid output: %s\n", ve.msg);
        c->invalid++;
    }
    free(line);
    if (c->n < 8)
        snprintf(c->first_ids[c->n], sizeof(c->first_ids[0]), "%s",
                 cJSON_GetObjectItemCaseSensitive(ex, "id")->valuestring);
    if (c->kept) cJSON_AddItemToArray(c->kept, pyjson_copy(ex));
    c->n++;
    return TRL_OK;
}

static inline const cJSON *find_example(const cJSON *all, const char *id) {
    for (const cJSON *x = all->child; x; x = x->next)
        if (!strcmp(cJSON_GetObjectItemCaseSensitive(x, "id")->valuestring, id)) return x;
    return NULL;
}

static inline void print_counts(const char *what, const convert_counts *c) {
    printf("%s:", what);
    for (size_t i = 0; i < c->n; i++)
        if (c->value[i]) printf(" %s=%ld", c->name[i], c->value[i]);
    printf("\n");
}

// Rows removed by filters (not notes).
static inline long filtered(const convert_counts *c) {
    long t = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->kind[i] == CONVERT_FILTER) t += c->value[i];
    return t;
}

#endif
