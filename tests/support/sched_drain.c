// sched_drain.c (test support): see sched_drain.h.
#include "tests/support/sched_drain.h"

#include <stdlib.h>
#include <string.h>

char *sched_drain(sched_req *r) {
    char *all = calloc(1, 1);
    size_t len = 0, seen = 0;
    for (int rc = 0; all && rc == 0;) {
        char *chunk = NULL;
        size_t n = 0;
        rc = sched_req_take(r, &seen, &chunk, &n, 1000);
        if (rc < 0) {
            free(all);
            return NULL;
        }
        if (chunk) {
            char *grown = realloc(all, len + n + 1);
            if (grown) memcpy(grown + len, chunk, n), len += n, grown[len] = 0;
            else free(all);
            all = grown;
            free(chunk);
        }
    }
    return all;
}
