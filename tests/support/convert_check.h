// convert_check.h (test support, header only: it uses cmocka's asserts, so include it after
// <cmocka.h>): what the data tests share: the shared datasets (shared_data.h), a sink that
// validates and keeps every converted example, and count helpers
// (expect_counts checks many counters in one line).
#ifndef TOOLRL_CONVERT_CHECK_H
#define TOOLRL_CONVERT_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/pyjson.h"
#include "data/convert.h"
#include "data/example.h"
#include "tests/support/shared_data.h"

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

static inline void print_counts(const char *what, const convert_counts *c) {
    printf("%s:", what);
    for (size_t i = 0; i < c->n; i++)
        if (c->value[i]) printf(" %s=%ld", c->name[i], c->value[i]);
    printf("\n");
}

static inline void collect_start(collect *col, convert_counts *c) {
    convert_counts_init(c);
    memset(col, 0, sizeof(*col));
    col->kept = cJSON_CreateArray();
}

// After a conversion into col: it succeeded, every example validated and reached the sink.
static inline void collect_check(int rc, const char *what, const trl_err *e, const collect *col,
                                 const convert_counts *c) {
    if (rc) fprintf(stderr, "%s: %s\n", what, e->msg);
    assert_int_equal(rc, TRL_OK);
    assert_int_equal(col->invalid, 0);
    assert_int_equal(convert_count_get(c, "kept"), col->n);
    assert_int_equal(convert_count_get(c, "invalid_example"), 0);
}

// Converts a file or a folder (convert_path) into col (the caller deletes col->kept), checks it
// (collect_check) and prints the counts.
static inline void collect_path(convert_format f, const char *path, const convert_opts *o, collect *col,
                                convert_counts *c) {
    collect_start(col, c);
    trl_err e;
    collect_check(convert_path(f, path, o, collect_sink, col, c, &e), path, &e, col, c);
    print_counts(path, c);
}

// The same for a text, with the side file given as JSON text (or NULL); the caller prints.
static inline void collect_text(convert_format f, const char *text, const char *side, collect *col,
                                convert_counts *c) {
    cJSON *sj = side ? pyjson_parse(side, strlen(side), NULL) : NULL;
    if (side) assert_non_null(sj);
    convert_opts o = {.side = sj};
    collect_start(col, c);
    trl_err e;
    collect_check(convert_text(f, text, strlen(text), &o, collect_sink, col, c, &e), "text", &e, col, c);
    cJSON_Delete(sj);
}

static inline const cJSON *find_example(const cJSON *all, const char *id) {
    for (const cJSON *x = all->child; x; x = x->next)
        if (!strcmp(cJSON_GetObjectItemCaseSensitive(x, "id")->valuestring, id)) return x;
    return NULL;
}

// Checks counters against "name=value name=value ...", naming every one that differs.
static inline void expect_counts(const convert_counts *c, const char *spec) {
    char buf[1024], *save = NULL;
    snprintf(buf, sizeof(buf), "%s", spec);
    int bad = 0;
    for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(t, '=');
        assert_non_null(eq);
        *eq = 0;
        long want = strtol(eq + 1, NULL, 10), got = convert_count_get(c, t);
        if (got != want) fprintf(stderr, "count %s: %ld, want %ld\n", t, got, want), bad++;
    }
    assert_int_equal(bad, 0);
}

// Rows removed by filters (not notes).
static inline long filtered(const convert_counts *c) {
    long t = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->kind[i] == CONVERT_FILTER) t += c->value[i];
    return t;
}

#endif
