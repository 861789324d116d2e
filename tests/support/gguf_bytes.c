// gguf_bytes.c: GGUF files written byte by byte (see gguf_bytes.h).
#include "tests/support/gguf_bytes.h"

#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"

void gguf_bytes_free(gguf_bytes *b) {
    free(b->p);
    memset(b, 0, sizeof(*b));
}

void gguf_bytes_put(gguf_bytes *b, const void *d, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 4096;
        while (ncap < b->n + n) ncap *= 2;
        uint8_t *np = realloc(b->p, ncap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}

void gguf_bytes_u32(gguf_bytes *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    gguf_bytes_put(b, x, 4);
}

void gguf_bytes_u64(gguf_bytes *b, uint64_t v) {
    gguf_bytes_u32(b, (uint32_t)v);
    gguf_bytes_u32(b, (uint32_t)(v >> 32));
}

void gguf_bytes_f32(gguf_bytes *b, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    gguf_bytes_u32(b, u);
}

void gguf_bytes_str(gguf_bytes *b, const char *s) {
    size_t n = strlen(s);
    gguf_bytes_u64(b, n);
    gguf_bytes_put(b, s, n);
}

void gguf_bytes_pad(gguf_bytes *b, size_t align) {
    static const uint8_t zero = 0;
    while (b->n % align && !b->oom) gguf_bytes_put(b, &zero, 1);
}

static void kv_head(gguf_bytes *b, const char *key, uint32_t type) {
    gguf_bytes_str(b, key);
    gguf_bytes_u32(b, type);
    b->n_kv++;
}

void gguf_bytes_kv_str(gguf_bytes *b, const char *key, const char *v) {
    kv_head(b, key, GGUF_TYPE_STRING);
    gguf_bytes_str(b, v);
}

void gguf_bytes_kv_u32(gguf_bytes *b, const char *key, uint32_t v) {
    kv_head(b, key, GGUF_TYPE_UINT32);
    gguf_bytes_u32(b, v);
}

void gguf_bytes_kv_f32(gguf_bytes *b, const char *key, float v) {
    kv_head(b, key, GGUF_TYPE_FLOAT32);
    gguf_bytes_f32(b, v);
}

void gguf_bytes_kv_bool(gguf_bytes *b, const char *key, int v) {
    uint8_t x = (uint8_t)(v != 0);
    kv_head(b, key, GGUF_TYPE_BOOL);
    gguf_bytes_put(b, &x, 1);
}

void gguf_bytes_kv_array(gguf_bytes *b, const char *key, uint32_t item_type, uint64_t n) {
    kv_head(b, key, GGUF_TYPE_ARRAY);
    gguf_bytes_u32(b, item_type);
    gguf_bytes_u64(b, n);
}
