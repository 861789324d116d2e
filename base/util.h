// util.h: small shared helpers for the engine: the error buffer every loader fills,
// checked allocation, and a monotonic clock. Library code returns error codes, never exits.
#ifndef TOOLRL_UTIL_H
#define TOOLRL_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define TRL_OK 0
#define TRL_ERR (-1)

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

#endif
