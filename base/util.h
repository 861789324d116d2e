// util.h: small shared helpers for the whole project: the one set of status codes, the error
// buffer every failing call fills, and a monotonic clock. Library code returns these codes,
// never exits.
#ifndef TOOLRL_UTIL_H
#define TOOLRL_UTIL_H

#include <stddef.h>
#include <stdint.h>

// The status codes every library function of the project returns (one set, so a code means
// the same thing wherever it comes from).
enum {
    TRL_OK = 0,
    TRL_ERR = -1,        // a failure; the trl_err says why
    TRL_NOT_FOUND = 1,   // no such id (store lookups; store_job_claim: no queued job)
    TRL_CONFLICT = 2,    // the id exists already, or the object's state forbids the call
    TRL_ABORTED = 3,     // stopped because the caller's abort flag was set (evaluation, training)
    TRL_LEASE_LOST = 4,  // a worker no longer holds its job's lease: it must stop working on it
};

// An error message filled by a failing call; callers own it (usually on the stack).
typedef struct {
    char msg[512];
} trl_err;

// Formats the message into e (if e is not NULL) and returns TRL_ERR.
int trl_errf(trl_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Seconds from a monotonic clock.
double trl_now(void);

// Reads a whole file into a NUL-terminated malloc'd buffer; *len gets its size (without the NUL).
// Returns NULL (and fills e) on failure.
char *trl_read_file(const char *path, size_t *len, trl_err *e);
// "dir/name", malloc'd; NULL when out of memory.
char *trl_path_join(const char *dir, const char *name);
// Creates a folder and every missing folder above it (mode 0755, as mkdir -p); one that
// exists already is fine. TRL_ERR with "path: reason" otherwise.
int trl_mkdirs(const char *path, trl_err *e);

// 1 when the NUL-terminated strings given and secret are equal, else 0, in a time that depends on
// the lengths only, never on where they differ (for API keys: a timing attack learns nothing of
// how much of a guess was right).
int trl_secret_equal(const char *given, const char *secret);

#endif
