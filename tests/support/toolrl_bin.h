// toolrl_bin.h: where the toolrl binary is for a test that runs it: a test binary lives in
// BUILD/tests/, the command in BUILD/toolrl.
#ifndef TOOLRL_TESTS_TOOLRL_BIN_H
#define TOOLRL_TESTS_TOOLRL_BIN_H

#include <stdio.h>
#include <string.h>

// out (cap bytes) = BUILD/toolrl for the test binary argv0 (BUILD/tests/test_x).
static inline void toolrl_bin_path(const char *argv0, char *out, size_t cap) {
    snprintf(out, cap, "%s", argv0);
    char *slash = strrchr(out, '/');
    if (slash) *slash = 0;
    slash = strrchr(out, '/');
    if (slash) *slash = 0;
    else snprintf(out, cap, ".");
    strncat(out, "/toolrl", cap - strlen(out) - 1);
}

#endif
