// shared_data.h (test support, header only: it uses cmocka's asserts and skip(), so include it
// after <cmocka.h>): where the tests find what they read but do not own: the shared datasets
// ($TOOLRL_SHARED, else ../shared), skipping a test when they are missing, and the committed
// JSONL fixtures (tests/fixtures/*.jsonl) read row by row.
#ifndef TOOLRL_SHARED_DATA_H
#define TOOLRL_SHARED_DATA_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/pyjson.h"
#include "base/util.h"

static inline const char *shared_dir(void) {
    const char *d = getenv("TOOLRL_SHARED");
    return d && *d ? d : "../shared";
}

// out = $TOOLRL_SHARED/data/rel; 1 when it is readable.
static inline int shared_file(char *out, size_t n, const char *rel) {
    snprintf(out, n, "%s/data/%s", shared_dir(), rel);
    return access(out, R_OK) == 0;
}

// Skips the test (with a line saying why) unless $TOOLRL_SHARED/data/rel is there; path gets it.
#define NEED_SHARED(path, rel)                                                \
    do {                                                                      \
        if (!shared_file(path, sizeof(path), rel)) {                          \
            printf("skipped: %s not found (set TOOLRL_SHARED)\n", path);      \
            skip();                                                           \
        }                                                                     \
    } while (0)

// A committed fixture, whole (the caller frees it); skips the test when it cannot be read (the
// tests run from the repository root).
static inline char *fixture_read(const char *path, size_t *len) {
    trl_err e;
    char *text = trl_read_file(path, len, &e);
    if (!text) {
        printf("skipped: %s (run from the repository root)\n", e.msg);
        skip();
    }
    return text;
}

// The next row of a JSONL text from *pos on (blank lines skipped), parsed; NULL at the end. A
// line that is not JSON fails the test.
static inline cJSON *fixture_next_row(const char *text, size_t len, size_t *pos) {
    while (*pos < len) {
        const char *nl = memchr(text + *pos, '\n', len - *pos);
        size_t start = *pos, end = nl ? (size_t)(nl - text) : len;
        *pos = end + 1;
        if (end == start) continue;
        cJSON *row = pyjson_parse(text + start, end - start, NULL);
        assert_non_null(row);
        return row;
    }
    return NULL;
}

#endif
