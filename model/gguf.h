// gguf.h: a read-only GGUF v2/v3 reader. The file is mmap'd; every offset, size and count
// is checked against the file's length before use, so a truncated or lying file is
// rejected with a message instead of being read out of bounds.
#ifndef TOOLRL_GGUF_H
#define TOOLRL_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

typedef enum {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} gguf_type;

// A string inside the mapped file: not NUL-terminated.
typedef struct {
    const char *ptr;
    uint64_t len;
} gguf_str;

// One metadata key/value. Scalars are decoded; arrays point into the file.
typedef struct {
    gguf_str key;
    gguf_type type;
    union {
        uint64_t u64;  // any unsigned integer type, and BOOL
        int64_t i64;   // any signed integer type
        double f64;    // FLOAT32 and FLOAT64
        gguf_str str;  // STRING
    } v;
    // ARRAY only: element type, element count, and the first element's position.
    gguf_type arr_type;
    uint64_t arr_n;
    const uint8_t *arr_data;
} gguf_kv;

typedef struct {
    gguf_str name;
    uint32_t n_dims;
    int64_t ne[4];       // ne[0] is the contiguous dimension; missing dims are 1
    uint32_t type;       // ggml type id (see quant.h)
    uint64_t offset;     // relative to the data section
    uint64_t nbytes;
    const void *data;    // inside the mapping
} gguf_tensor;

typedef struct {
    void *map;           // the whole file, read-only
    size_t size;
    int owns_map;        // 1 when gguf_open mmap'd it
    uint32_t version;
    uint64_t n_kv;
    gguf_kv *kv;         // (n_kv)
    uint64_t n_tensors;
    gguf_tensor *tensors;  // (n_tensors)
    uint64_t alignment;
    uint64_t data_offset;
} gguf_file;

// Opens and validates a file. On failure returns TRL_ERR, fills e and leaves f empty.
int gguf_open(gguf_file *f, const char *path, trl_err *e);
// Parses an in-memory image (not copied; must outlive f). Used by tests and fuzzing.
int gguf_open_memory(gguf_file *f, const void *data, size_t size, trl_err *e);
void gguf_close(gguf_file *f);

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

// Typed getters: return TRL_OK and set *out, or TRL_ERR if missing or of a non-matching kind.
// Integer getters accept any integer type whose value fits.
int gguf_get_int(const gguf_file *f, const char *key, int64_t *out);
int gguf_get_float(const gguf_file *f, const char *key, double *out);
int gguf_get_bool(const gguf_file *f, const char *key, int *out);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);

// Array access. gguf_arr_str walks to element i of a string array (O(i); callers iterate
// with gguf_arr_str_iter instead when reading all of them).
typedef struct {
    const uint8_t *p, *end;
    uint64_t i, n;
} gguf_str_iter;
int gguf_arr_str_begin(const gguf_kv *kv, gguf_str_iter *it);
int gguf_arr_str_next(gguf_str_iter *it, gguf_str *out);  // 1 while an element was read
// Integer element i of an integer array (any width), 0 if out of range.
int64_t gguf_arr_int(const gguf_kv *kv, uint64_t i);

int gguf_str_eq(gguf_str s, const char *c);

#endif
