// gguf.c: the GGUF v2/v3 reader. Parsing walks a bounds-checked cursor over the mapped
// bytes; nothing is dereferenced before its length has been checked against the file size.
// Tensor checks follow ggml's own loader: ≤ 4 dims, known type, rows a whole number of
// blocks, offsets aligned, data inside the file, no two tensors overlapping.
#include "model/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/quant.h"

#define GGUF_MAGIC "GGUF"
#define GGUF_MAX_STRING (1ull << 30)
#define GGUF_MAX_ARRAY (1ull << 30)
#define GGUF_MAX_TENSOR_NAME 64

typedef struct {
    const uint8_t *p, *end;
    trl_err *e;
} cursor;

static int cur_need(cursor *c, uint64_t n, const char *what) {
    if ((uint64_t)(c->end - c->p) < n)
        return trl_errf(c->e, "gguf: file truncated while reading %s (need %llu bytes at offset, %lld left)",
                        what, (unsigned long long)n, (long long)(c->end - c->p));
    return TRL_OK;
}

static int cur_u32(cursor *c, uint32_t *v, const char *what) {
    if (cur_need(c, 4, what)) return TRL_ERR;
    memcpy(v, c->p, 4);
    c->p += 4;
    return TRL_OK;
}

static int cur_u64(cursor *c, uint64_t *v, const char *what) {
    if (cur_need(c, 8, what)) return TRL_ERR;
    memcpy(v, c->p, 8);
    c->p += 8;
    return TRL_OK;
}

static int cur_str(cursor *c, gguf_str *s, const char *what) {
    uint64_t n;
    if (cur_u64(c, &n, what)) return TRL_ERR;
    if (n > GGUF_MAX_STRING) return trl_errf(c->e, "gguf: %s length %llu is too large", what, (unsigned long long)n);
    if (cur_need(c, n, what)) return TRL_ERR;
    s->ptr = (const char *)c->p;
    s->len = n;
    c->p += n;
    return TRL_OK;
}

static size_t type_scalar_size(gguf_type t) {
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

// Decodes one scalar of type t at p into kv's union (p has been bounds-checked).
static void decode_scalar(gguf_kv *kv, gguf_type t, const uint8_t *p) {
    switch (t) {
    case GGUF_TYPE_UINT8: kv->v.u64 = p[0]; break;
    case GGUF_TYPE_BOOL: kv->v.u64 = p[0]; break;
    case GGUF_TYPE_INT8: kv->v.i64 = (int8_t)p[0]; break;
    case GGUF_TYPE_UINT16: { uint16_t x; memcpy(&x, p, 2); kv->v.u64 = x; break; }
    case GGUF_TYPE_INT16: { int16_t x; memcpy(&x, p, 2); kv->v.i64 = x; break; }
    case GGUF_TYPE_UINT32: { uint32_t x; memcpy(&x, p, 4); kv->v.u64 = x; break; }
    case GGUF_TYPE_INT32: { int32_t x; memcpy(&x, p, 4); kv->v.i64 = x; break; }
    case GGUF_TYPE_FLOAT32: { float x; memcpy(&x, p, 4); kv->v.f64 = x; break; }
    case GGUF_TYPE_UINT64: { uint64_t x; memcpy(&x, p, 8); kv->v.u64 = x; break; }
    case GGUF_TYPE_INT64: { int64_t x; memcpy(&x, p, 8); kv->v.i64 = x; break; }
    case GGUF_TYPE_FLOAT64: { double x; memcpy(&x, p, 8); kv->v.f64 = x; break; }
    default: break;
    }
}

static int read_kv(cursor *c, gguf_kv *kv, uint64_t idx) {
    if (cur_str(c, &kv->key, "metadata key")) return TRL_ERR;
    if (kv->key.len == 0) return trl_errf(c->e, "gguf: metadata key %llu is empty", (unsigned long long)idx);
    uint32_t t;
    if (cur_u32(c, &t, "metadata type")) return TRL_ERR;
    if (t >= GGUF_TYPE_COUNT)
        return trl_errf(c->e, "gguf: key '%.*s' has unknown value type %u", (int)kv->key.len, kv->key.ptr, t);
    kv->type = (gguf_type)t;
    if (kv->type == GGUF_TYPE_STRING) return cur_str(c, &kv->v.str, "metadata string");
    if (kv->type != GGUF_TYPE_ARRAY) {
        size_t sz = type_scalar_size(kv->type);
        if (cur_need(c, sz, "metadata value")) return TRL_ERR;
        decode_scalar(kv, kv->type, c->p);
        if (kv->type == GGUF_TYPE_BOOL && kv->v.u64 > 1)
            return trl_errf(c->e, "gguf: key '%.*s' has invalid bool %llu", (int)kv->key.len, kv->key.ptr,
                            (unsigned long long)kv->v.u64);
        c->p += sz;
        return TRL_OK;
    }
    uint32_t at;
    uint64_t n;
    if (cur_u32(c, &at, "array type") || cur_u64(c, &n, "array length")) return TRL_ERR;
    if (at >= GGUF_TYPE_COUNT || at == GGUF_TYPE_ARRAY)
        return trl_errf(c->e, "gguf: key '%.*s' has invalid array element type %u", (int)kv->key.len, kv->key.ptr, at);
    if (n > GGUF_MAX_ARRAY)
        return trl_errf(c->e, "gguf: key '%.*s' array of %llu elements is too large", (int)kv->key.len, kv->key.ptr,
                        (unsigned long long)n);
    kv->arr_type = (gguf_type)at;
    kv->arr_n = n;
    kv->arr_data = c->p;
    if (at == GGUF_TYPE_STRING) {
        for (uint64_t i = 0; i < n; i++) {
            gguf_str s;
            if (cur_str(c, &s, "array string")) return TRL_ERR;
        }
        return TRL_OK;
    }
    uint64_t bytes = n * type_scalar_size(kv->arr_type);
    if (cur_need(c, bytes, "array data")) return TRL_ERR;
    c->p += bytes;
    return TRL_OK;
}

static int check_tensor(gguf_file *f, gguf_tensor *t, trl_err *e) {
    int nl = (int)t->name.len;
    const char *nm = t->name.ptr;
    if (!qtype_supported(t->type))
        return trl_errf(e, "gguf: tensor '%.*s' has unsupported type %u (%s)", nl, nm, t->type, qtype_name(t->type));
    int64_t bs = qtype_block_size(t->type);
    if (t->ne[0] % bs != 0)
        return trl_errf(e, "gguf: tensor '%.*s' row of %lld elements is not a multiple of the %s block (%lld)", nl, nm,
                        (long long)t->ne[0], qtype_name(t->type), (long long)bs);
    // nbytes = row_bytes · ne1 · ne2 · ne3, with overflow checks.
    uint64_t nb = qtype_row_bytes(t->type, t->ne[0]);
    for (int d = 1; d < 4; d++) {
        if (t->ne[d] != 0 && nb > UINT64_MAX / (uint64_t)t->ne[d])
            return trl_errf(e, "gguf: tensor '%.*s' size overflows", nl, nm);
        nb *= (uint64_t)t->ne[d];
    }
    t->nbytes = nb;
    if (t->offset % f->alignment != 0)
        return trl_errf(e, "gguf: tensor '%.*s' offset %llu is not aligned to %llu", nl, nm,
                        (unsigned long long)t->offset, (unsigned long long)f->alignment);
    uint64_t avail = f->size - f->data_offset;
    if (t->offset > avail || nb > avail - t->offset)
        return trl_errf(e, "gguf: tensor '%.*s' (offset %llu, %llu bytes) lies outside the file (%llu data bytes)", nl,
                        nm, (unsigned long long)t->offset, (unsigned long long)nb, (unsigned long long)avail);
    t->data = (const uint8_t *)f->map + f->data_offset + t->offset;
    return TRL_OK;
}

static int cmp_tensor_offset(const void *a, const void *b) {
    const gguf_tensor *x = *(const gguf_tensor *const *)a, *y = *(const gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int cmp_tensor_name(const void *a, const void *b) {
    const gguf_tensor *x = *(const gguf_tensor *const *)a, *y = *(const gguf_tensor *const *)b;
    size_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
    int r = memcmp(x->name.ptr, y->name.ptr, n);
    return r ? r : (x->name.len > y->name.len) - (x->name.len < y->name.len);
}

static int gguf_parse(gguf_file *f, trl_err *e) {
    cursor c = {(const uint8_t *)f->map, (const uint8_t *)f->map + f->size, e};
    if (cur_need(&c, 4, "magic")) return TRL_ERR;
    if (memcmp(c.p, GGUF_MAGIC, 4) != 0) return trl_errf(e, "gguf: bad magic (not a GGUF file)");
    c.p += 4;
    if (cur_u32(&c, &f->version, "version")) return TRL_ERR;
    if ((f->version & 0xFFFF) == 0) return trl_errf(e, "gguf: big-endian files are not supported");
    if (f->version < 2 || f->version > 3) return trl_errf(e, "gguf: unsupported version %u (need 2 or 3)", f->version);
    if (cur_u64(&c, &f->n_tensors, "tensor count") || cur_u64(&c, &f->n_kv, "metadata count")) return TRL_ERR;
    // Each kv needs ≥ 12 bytes and each tensor info ≥ 24: reject counts the file cannot hold.
    // Real models have a few dozen keys and at most tens of thousands of tensors.
    if (f->n_kv > 65536 || f->n_tensors > 1000000 || f->n_kv > f->size / 12 || f->n_tensors > f->size / 24)
        return trl_errf(e, "gguf: header claims %llu keys and %llu tensors, more than the file can hold",
                        (unsigned long long)f->n_kv, (unsigned long long)f->n_tensors);
    f->kv = calloc(f->n_kv ? f->n_kv : 1, sizeof(gguf_kv));
    f->tensors = calloc(f->n_tensors ? f->n_tensors : 1, sizeof(gguf_tensor));
    if (!f->kv || !f->tensors) return trl_errf(e, "gguf: out of memory");
    for (uint64_t i = 0; i < f->n_kv; i++) {
        if (read_kv(&c, &f->kv[i], i)) return TRL_ERR;
        for (uint64_t j = 0; j < i; j++)
            if (f->kv[j].key.len == f->kv[i].key.len && !memcmp(f->kv[j].key.ptr, f->kv[i].key.ptr, f->kv[i].key.len))
                return trl_errf(e, "gguf: duplicate key '%.*s'", (int)f->kv[i].key.len, f->kv[i].key.ptr);
    }
    f->alignment = 32;
    const gguf_kv *al = gguf_find_kv(f, "general.alignment");
    if (al) {
        if (al->type != GGUF_TYPE_UINT32 || al->v.u64 == 0 || (al->v.u64 & (al->v.u64 - 1)) != 0)
            return trl_errf(e, "gguf: general.alignment must be a power-of-two uint32");
        f->alignment = al->v.u64;
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        if (cur_str(&c, &t->name, "tensor name")) return TRL_ERR;
        if (t->name.len == 0 || t->name.len >= GGUF_MAX_TENSOR_NAME)
            return trl_errf(e, "gguf: tensor %llu has an empty or too long name", (unsigned long long)i);
        if (cur_u32(&c, &t->n_dims, "tensor dims")) return TRL_ERR;
        if (t->n_dims == 0 || t->n_dims > 4)
            return trl_errf(e, "gguf: tensor '%.*s' has %u dimensions", (int)t->name.len, t->name.ptr, t->n_dims);
        for (int d = 0; d < 4; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            uint64_t ne;
            if (cur_u64(&c, &ne, "tensor shape")) return TRL_ERR;
            if (ne > (1ull << 40))
                return trl_errf(e, "gguf: tensor '%.*s' dimension %u is %llu", (int)t->name.len, t->name.ptr, d,
                                (unsigned long long)ne);
            t->ne[d] = (int64_t)ne;
        }
        if (cur_u32(&c, &t->type, "tensor type") || cur_u64(&c, &t->offset, "tensor offset")) return TRL_ERR;
    }
    uint64_t hdr = (uint64_t)(c.p - (const uint8_t *)f->map);
    f->data_offset = (hdr + f->alignment - 1) / f->alignment * f->alignment;
    if (f->n_tensors > 0 && f->data_offset > f->size) return trl_errf(e, "gguf: file truncated before tensor data");
    if (f->data_offset > f->size) f->data_offset = f->size;
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (check_tensor(f, &f->tensors[i], e)) return TRL_ERR;
    // No two tensors may share a name or bytes.
    if (f->n_tensors > 1) {
        gguf_tensor **order = malloc(f->n_tensors * sizeof(*order));
        if (!order) return trl_errf(e, "gguf: out of memory");
        for (uint64_t i = 0; i < f->n_tensors; i++) order[i] = &f->tensors[i];
        qsort(order, f->n_tensors, sizeof(*order), cmp_tensor_name);
        for (uint64_t i = 1; i < f->n_tensors; i++) {
            if (cmp_tensor_name(&order[i - 1], &order[i]) == 0) {
                trl_errf(e, "gguf: duplicate tensor '%.*s'", (int)order[i]->name.len, order[i]->name.ptr);
                free(order);
                return TRL_ERR;
            }
        }
        qsort(order, f->n_tensors, sizeof(*order), cmp_tensor_offset);
        for (uint64_t i = 1; i < f->n_tensors; i++) {
            if (order[i - 1]->offset + order[i - 1]->nbytes > order[i]->offset) {
                trl_errf(e, "gguf: tensors '%.*s' and '%.*s' overlap", (int)order[i - 1]->name.len,
                         order[i - 1]->name.ptr, (int)order[i]->name.len, order[i]->name.ptr);
                free(order);
                return TRL_ERR;
            }
        }
        free(order);
    }
    return TRL_OK;
}

int gguf_open_memory(gguf_file *f, const void *data, size_t size, trl_err *e) {
    memset(f, 0, sizeof(*f));
    f->map = (void *)data;
    f->size = size;
    if (gguf_parse(f, e)) {
        gguf_close(f);
        return TRL_ERR;
    }
    return TRL_OK;
}

int gguf_open(gguf_file *f, const char *path, trl_err *e) {
    memset(f, 0, sizeof(*f));
    int fd = open(path, O_RDONLY);
    if (fd < 0) return trl_errf(e, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return trl_errf(e, "%s: not a regular file", path);
    }
    if (st.st_size < 24) {
        close(fd);
        return trl_errf(e, "%s: too small to be a GGUF file (%lld bytes)", path, (long long)st.st_size);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return trl_errf(e, "%s: mmap: %s", path, strerror(errno));
    f->map = map;
    f->size = (size_t)st.st_size;
    f->owns_map = 1;
    if (gguf_parse(f, e)) {
        char inner[sizeof(e->msg)];
        if (e) {
            memcpy(inner, e->msg, sizeof(inner));
            trl_errf(e, "%s: %s", path, inner);
        }
        gguf_close(f);
        return TRL_ERR;
    }
    return TRL_OK;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    if (f->owns_map && f->map) munmap(f->map, f->size);
    free(f->kv);
    free(f->tensors);
    memset(f, 0, sizeof(*f));
}

int gguf_str_eq(gguf_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && memcmp(s.ptr, c, n) == 0;
}

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key) {
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (gguf_str_eq(f->kv[i].key, key)) return &f->kv[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (gguf_str_eq(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

static int is_unsigned(gguf_type t) {
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_UINT64;
}
static int is_signed(gguf_type t) {
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_INT64;
}

int gguf_get_int(const gguf_file *f, const char *key, int64_t *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return TRL_ERR;
    if (is_unsigned(kv->type)) {
        if (kv->v.u64 > (uint64_t)INT64_MAX) return TRL_ERR;
        *out = (int64_t)kv->v.u64;
        return TRL_OK;
    }
    if (is_signed(kv->type)) {
        *out = kv->v.i64;
        return TRL_OK;
    }
    return TRL_ERR;
}

int gguf_get_float(const gguf_file *f, const char *key, double *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return TRL_ERR;
    if (kv->type == GGUF_TYPE_FLOAT32 || kv->type == GGUF_TYPE_FLOAT64) *out = kv->v.f64;
    else if (is_unsigned(kv->type)) *out = (double)kv->v.u64;
    else if (is_signed(kv->type)) *out = (double)kv->v.i64;
    else return TRL_ERR;
    return TRL_OK;
}

int gguf_get_bool(const gguf_file *f, const char *key, int *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv || kv->type != GGUF_TYPE_BOOL) return TRL_ERR;
    *out = kv->v.u64 != 0;
    return TRL_OK;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv || kv->type != GGUF_TYPE_STRING) return TRL_ERR;
    *out = kv->v.str;
    return TRL_OK;
}

int gguf_arr_str_begin(const gguf_kv *kv, gguf_str_iter *it) {
    memset(it, 0, sizeof(*it));
    if (!kv || kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_STRING) return TRL_ERR;
    it->p = kv->arr_data;
    // The strings were all bounds-checked at parse time; end only guards against misuse.
    it->end = (const uint8_t *)-1;
    it->n = kv->arr_n;
    return TRL_OK;
}

int gguf_arr_str_next(gguf_str_iter *it, gguf_str *out) {
    if (it->i >= it->n) return 0;
    uint64_t n;
    memcpy(&n, it->p, 8);
    out->ptr = (const char *)it->p + 8;
    out->len = n;
    it->p += 8 + n;
    it->i++;
    return 1;
}

int64_t gguf_arr_int(const gguf_kv *kv, uint64_t i) {
    if (!kv || kv->type != GGUF_TYPE_ARRAY || i >= kv->arr_n) return 0;
    size_t sz = type_scalar_size(kv->arr_type);
    if (sz == 0) return 0;
    gguf_kv tmp;
    memset(&tmp, 0, sizeof(tmp));
    decode_scalar(&tmp, kv->arr_type, kv->arr_data + i * sz);
    return is_unsigned(kv->arr_type) || kv->arr_type == GGUF_TYPE_BOOL ? (int64_t)tmp.v.u64 : tmp.v.i64;
}
