// gguf_bytes.h (test support): GGUF files written byte by byte, for the tiny model and for the
// tests that build (and corrupt) files field by field: a growing little-endian buffer with the
// GGUF encodings of numbers, strings, padding and key/value entries. Running out of memory is
// sticky: oom is set and later writes do nothing, so callers check once at the end.
#ifndef TOOLRL_GGUF_BYTES_H
#define TOOLRL_GGUF_BYTES_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *p;
    size_t n, cap;
    int oom;
    int n_kv;  // key/value entries written by the gguf_bytes_kv_* calls
} gguf_bytes;

void gguf_bytes_free(gguf_bytes *b);
void gguf_bytes_put(gguf_bytes *b, const void *d, size_t n);
void gguf_bytes_u32(gguf_bytes *b, uint32_t v);
void gguf_bytes_u64(gguf_bytes *b, uint64_t v);
void gguf_bytes_f32(gguf_bytes *b, float v);
void gguf_bytes_str(gguf_bytes *b, const char *s);  // u64 length, then the bytes
void gguf_bytes_pad(gguf_bytes *b, size_t align);   // zeros up to a multiple of align

// One key/value entry: the key, its GGUF type, the value.
void gguf_bytes_kv_str(gguf_bytes *b, const char *key, const char *v);
void gguf_bytes_kv_u32(gguf_bytes *b, const char *key, uint32_t v);
void gguf_bytes_kv_f32(gguf_bytes *b, const char *key, float v);
void gguf_bytes_kv_bool(gguf_bytes *b, const char *key, int v);
// The head of an array entry of n items of type item_type; the caller writes the items.
void gguf_bytes_kv_array(gguf_bytes *b, const char *key, uint32_t item_type, uint64_t n);

#endif
