// safetensors.c: the safetensors reader (mmap + cJSON header, every offset and shape
// checked before use), the atomic writer, and the sharded-checkpoint index.
#include "model/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/strbuf.h"
#include "model/quant.h"

#define MAX_EXACT_DOUBLE 9007199254740992.0  // 2^53: larger JSON numbers are not exact integers

const char *safetensors_dtype_name(uint32_t type) {
    switch (type) {
    case QTYPE_F32: return "F32";
    case QTYPE_F16: return "F16";
    case QTYPE_BF16: return "BF16";
    default: return NULL;
    }
}

static size_t dtype_size(uint32_t type) { return type == QTYPE_F32 ? 4 : 2; }

static int dtype_from_name(const char *s, uint32_t *type) {
    if (strcmp(s, "F32") == 0) *type = QTYPE_F32;
    else if (strcmp(s, "F16") == 0) *type = QTYPE_F16;
    else if (strcmp(s, "BF16") == 0) *type = QTYPE_BF16;
    else return TRL_ERR;
    return TRL_OK;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

// ---- reader ----

void safetensors_close(safetensors_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    if (f->owns_map && f->map) munmap(f->map, f->size);
    free(f->path);
    memset(f, 0, sizeof(*f));
}

// A JSON number that is an exact non-negative integer below 2^53.
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return TRL_ERR;
    double d = v->valuedouble;
    if (!(d >= 0) || d > MAX_EXACT_DOUBLE) return TRL_ERR;
    uint64_t u = (uint64_t)d;
    if ((double)u != d) return TRL_ERR;
    *out = u;
    return TRL_OK;
}

typedef struct {
    uint64_t begin, end;
    int idx;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_name_idx(const void *a, const void *b, void *ctx) {
    const safetensors_tensor *t = ctx;
    return strcmp(t[*(const int *)a].name, t[*(const int *)b].name);
}

static int parse_metadata(safetensors_file *f, const cJSON *meta, trl_err *e) {
    if (!cJSON_IsObject(meta)) return trl_errf(e, "%s: __metadata__ is not an object", f->path);
    int n = cJSON_GetArraySize(meta);
    if (n == 0) return TRL_OK;
    f->meta_keys = calloc((size_t)n, sizeof(char *));
    f->meta_vals = calloc((size_t)n, sizeof(char *));
    if (!f->meta_keys || !f->meta_vals) return trl_errf(e, "%s: out of memory", f->path);
    const cJSON *it;
    cJSON_ArrayForEach(it, meta) {
        if (!cJSON_IsString(it))
            return trl_errf(e, "%s: __metadata__ value \"%.100s\" is not a string", f->path, it->string);
        char *k = dup_str(it->string), *v = dup_str(it->valuestring);
        if (!k || !v) {
            free(k);
            free(v);
            return trl_errf(e, "%s: out of memory", f->path);
        }
        f->meta_keys[f->n_meta] = k;
        f->meta_vals[f->n_meta] = v;
        f->n_meta++;
    }
    return TRL_OK;
}

// Parses one tensor entry of the header into t; b/en get its data offsets.
static int parse_tensor(safetensors_file *f, const cJSON *it, safetensors_tensor *t, size_t buf_size, uint64_t *b,
                        uint64_t *en, trl_err *e) {
    const char *nm = it->string;
    if (!cJSON_IsObject(it)) return trl_errf(e, "%s: tensor \"%.100s\": entry is not an object", f->path, nm);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
    if (!cJSON_IsString(dt)) return trl_errf(e, "%s: tensor \"%.100s\": missing dtype", f->path, nm);
    if (dtype_from_name(dt->valuestring, &t->type) != TRL_OK)
        return trl_errf(e, "%s: tensor \"%.100s\": dtype %.32s is not supported (F32, F16, BF16 only)", f->path, nm,
                        dt->valuestring);
    if (!cJSON_IsArray(sh)) return trl_errf(e, "%s: tensor \"%.100s\": missing shape", f->path, nm);
    int nd = cJSON_GetArraySize(sh);
    if (nd > SAFETENSORS_MAX_DIMS)
        return trl_errf(e, "%s: tensor \"%.100s\": %d dimensions (at most %d)", f->path, nm, nd, SAFETENSORS_MAX_DIMS);
    t->n_dims = nd;
    uint64_t numel = 1;
    int d = 0;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, sh) {
        if (cJSON_IsNumber(dim) && dim->valuedouble < 0)
            return trl_errf(e, "%s: tensor \"%.100s\": dimension %d is negative", f->path, nm, d);
        uint64_t v;
        if (json_uint(dim, &v) != TRL_OK)
            return trl_errf(e, "%s: tensor \"%.100s\": dimension %d is not a valid integer", f->path, nm, d);
        if (__builtin_mul_overflow(numel, v, &numel) || numel > (uint64_t)INT64_MAX)
            return trl_errf(e, "%s: tensor \"%.100s\": shape overflows", f->path, nm);
        t->shape[d++] = (int64_t)v;
    }
    uint64_t nbytes;
    if (__builtin_mul_overflow(numel, (uint64_t)dtype_size(t->type), &nbytes))
        return trl_errf(e, "%s: tensor \"%.100s\": shape overflows", f->path, nm);
    t->numel = (int64_t)numel;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return trl_errf(e, "%s: tensor \"%.100s\": data_offsets must be [begin, end]", f->path, nm);
    if (json_uint(cJSON_GetArrayItem(off, 0), b) != TRL_OK || json_uint(cJSON_GetArrayItem(off, 1), en) != TRL_OK)
        return trl_errf(e, "%s: tensor \"%.100s\": data_offsets are not valid integers", f->path, nm);
    if (*b > *en) return trl_errf(e, "%s: tensor \"%.100s\": data_offsets [%llu, %llu] are reversed", f->path, nm,
                                  (unsigned long long)*b, (unsigned long long)*en);
    if (*en > buf_size)
        return trl_errf(e, "%s: tensor \"%.100s\": data_offsets [%llu, %llu] run past the %zu-byte data buffer",
                        f->path, nm, (unsigned long long)*b, (unsigned long long)*en, buf_size);
    if (*en - *b != nbytes)
        return trl_errf(e, "%s: tensor \"%.100s\": %llu bytes for %llu %s elements (expected %llu)", f->path, nm,
                        (unsigned long long)(*en - *b), (unsigned long long)numel, dt->valuestring,
                        (unsigned long long)nbytes);
    t->nbytes = (size_t)nbytes;
    return TRL_OK;
}

static int parse(safetensors_file *f, const uint8_t *data, size_t size, trl_err *e) {
    if (size < 8) return trl_errf(e, "%s: %zu bytes is too short for a safetensors file", f->path, size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | data[i];
    if (n > SAFETENSORS_MAX_HEADER)
        return trl_errf(e, "%s: header length %llu exceeds the %llu-byte limit", f->path, (unsigned long long)n,
                        SAFETENSORS_MAX_HEADER);
    if (n > size - 8)
        return trl_errf(e, "%s: header length %llu runs past the end of the file (%zu bytes)", f->path,
                        (unsigned long long)n, size);
    const char *hdr = (const char *)data + 8;
    const uint8_t *buf = data + 8 + n;
    size_t buf_size = size - 8 - (size_t)n;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)n, &end, 0);
    if (!root) {
        size_t at = end && end >= hdr ? (size_t)(end - hdr) : 0;
        return trl_errf(e, "%s: header is not valid JSON (near byte %zu)", f->path, at);
    }
    int rc = TRL_ERR;
    span *spans = NULL;
    int *order = NULL;
    for (const char *p = end; p < hdr + n; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            trl_errf(e, "%s: header has bytes after its JSON object", f->path);
            goto done;
        }
    }
    if (!cJSON_IsObject(root)) {
        trl_errf(e, "%s: header is not a JSON object", f->path);
        goto done;
    }
    int cap = cJSON_GetArraySize(root);
    f->tensors = calloc((size_t)(cap > 0 ? cap : 1), sizeof(*f->tensors));
    spans = malloc(sizeof(*spans) * (size_t)(cap > 0 ? cap : 1));
    order = malloc(sizeof(*order) * (size_t)(cap > 0 ? cap : 1));
    if (!f->tensors || !spans || !order) {
        trl_errf(e, "%s: out of memory", f->path);
        goto done;
    }
    int seen_meta = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        if (strcmp(it->string, "__metadata__") == 0) {
            if (seen_meta++) {
                trl_errf(e, "%s: __metadata__ appears twice", f->path);
                goto done;
            }
            if (parse_metadata(f, it, e) != TRL_OK) goto done;
            continue;
        }
        safetensors_tensor *t = &f->tensors[f->n_tensors];
        uint64_t b = 0, en = 0;
        if (parse_tensor(f, it, t, buf_size, &b, &en, e) != TRL_OK) goto done;
        t->name = dup_str(it->string);
        if (!t->name) {
            trl_errf(e, "%s: out of memory", f->path);
            goto done;
        }
        t->data = buf + b;
        spans[f->n_tensors] = (span){b, en, f->n_tensors};
        order[f->n_tensors] = f->n_tensors;
        f->n_tensors++;
    }
    // No name twice.
    qsort_r(order, (size_t)f->n_tensors, sizeof(int), cmp_name_idx, f->tensors);
    for (int i = 1; i < f->n_tensors; i++) {
        if (strcmp(f->tensors[order[i]].name, f->tensors[order[i - 1]].name) == 0) {
            trl_errf(e, "%s: tensor \"%.100s\" appears twice", f->path, f->tensors[order[i]].name);
            goto done;
        }
    }
    // No two tensors share a byte.
    qsort(spans, (size_t)f->n_tensors, sizeof(span), cmp_span);
    uint64_t reach = 0;
    int reach_idx = -1;
    for (int i = 0; i < f->n_tensors; i++) {
        if (spans[i].begin == spans[i].end) continue;  // empty tensors occupy nothing
        if (spans[i].begin < reach) {
            trl_errf(e, "%s: tensor \"%.100s\" overlaps tensor \"%.100s\"", f->path, f->tensors[spans[i].idx].name,
                     f->tensors[reach_idx].name);
            goto done;
        }
        reach = spans[i].end;
        reach_idx = spans[i].idx;
    }
    rc = TRL_OK;
done:
    free(spans);
    free(order);
    cJSON_Delete(root);
    return rc;
}

int safetensors_open_memory(safetensors_file *f, const void *data, size_t size, const char *name, trl_err *e) {
    memset(f, 0, sizeof(*f));
    f->path = dup_str(name ? name : "<memory>");
    if (!f->path) return trl_errf(e, "out of memory");
    f->map = (void *)data;
    f->size = size;
    if (parse(f, data, size, e) != TRL_OK) {
        safetensors_close(f);
        return TRL_ERR;
    }
    return TRL_OK;
}

int safetensors_open(safetensors_file *f, const char *path, trl_err *e) {
    memset(f, 0, sizeof(*f));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return trl_errf(e, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return trl_errf(e, "%s: not a regular file", path);
    }
    if (st.st_size < 8) {
        close(fd);
        return trl_errf(e, "%s: %lld bytes is too short for a safetensors file", path, (long long)st.st_size);
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return trl_errf(e, "%s: mmap failed: %s", path, strerror(errno));
    if (safetensors_open_memory(f, map, size, path, e) != TRL_OK) {
        munmap(map, size);
        return TRL_ERR;
    }
    f->owns_map = 1;
    return TRL_OK;
}

const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *safetensors_meta(const safetensors_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

void *safetensors_take_map(safetensors_file *f, size_t *size) {
    if (!f->owns_map) {
        if (size) *size = 0;
        return NULL;
    }
    void *m = f->map;
    if (size) *size = f->size;
    f->owns_map = 0;
    return m;
}

// ---- writer ----

// A JSON string literal: quotes, backslashes and control bytes escaped; other bytes as is.
static void add_json_string(strbuf *b, const char *s) {
    strbuf_addc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            strbuf_add(b, esc, 2);
        } else if (*p < 0x20) {
            char esc[8];
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            strbuf_add(b, esc, 6);
        } else {
            strbuf_addc(b, (char)*p);
        }
    }
    strbuf_addc(b, '"');
}

typedef struct {
    const safetensors_wtensor *t;
    uint64_t nbytes;
} wentry;

static int cmp_wentry(const void *a, const void *b) {
    const wentry *x = a, *y = b;
    size_t sx = dtype_size(x->t->type), sy = dtype_size(y->t->type);
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->t->name, y->t->name);
}

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return TRL_ERR;
        }
        c += w;
        n -= (size_t)w;
    }
    return TRL_OK;
}

int safetensors_write(const char *path, const safetensors_wtensor *t, int n, const char *const *metadata,
                      trl_err *e) {
    if (n < 0 || (n > 0 && !t)) return trl_errf(e, "%s: bad tensor list", path);
    wentry *w = malloc(sizeof(*w) * (size_t)(n > 0 ? n : 1));
    if (!w) return trl_errf(e, "%s: out of memory", path);
    int rc = TRL_ERR;
    strbuf h;
    strbuf_init(&h);
    char *tmp = NULL;
    int fd = -1;
    for (int i = 0; i < n; i++) {
        const safetensors_wtensor *x = &t[i];
        if (!x->name || !x->name[0] || strcmp(x->name, "__metadata__") == 0) {
            trl_errf(e, "%s: tensor %d has an invalid name", path, i);
            goto done;
        }
        if (!safetensors_dtype_name(x->type)) {
            trl_errf(e, "%s: tensor \"%.100s\": type %u cannot be written (F32, F16, BF16 only)", path, x->name,
                     x->type);
            goto done;
        }
        if (x->n_dims < 0 || x->n_dims > SAFETENSORS_MAX_DIMS || (x->n_dims > 0 && !x->shape)) {
            trl_errf(e, "%s: tensor \"%.100s\": bad dimension count %d", path, x->name, x->n_dims);
            goto done;
        }
        uint64_t numel = 1;
        for (int d = 0; d < x->n_dims; d++) {
            if (x->shape[d] < 0 || __builtin_mul_overflow(numel, (uint64_t)x->shape[d], &numel) ||
                numel > (uint64_t)INT64_MAX) {
                trl_errf(e, "%s: tensor \"%.100s\": bad shape", path, x->name);
                goto done;
            }
        }
        if (__builtin_mul_overflow(numel, (uint64_t)dtype_size(x->type), &w[i].nbytes) ||
            w[i].nbytes > (uint64_t)MAX_EXACT_DOUBLE) {
            trl_errf(e, "%s: tensor \"%.100s\": too large", path, x->name);
            goto done;
        }
        if (w[i].nbytes > 0 && !x->data) {
            trl_errf(e, "%s: tensor \"%.100s\": no data", path, x->name);
            goto done;
        }
        w[i].t = x;
    }
    qsort(w, (size_t)n, sizeof(*w), cmp_wentry);
    for (int i = 1; i < n; i++) {
        if (strcmp(w[i].t->name, w[i - 1].t->name) == 0) {
            trl_errf(e, "%s: tensor \"%.100s\" given twice", path, w[i].t->name);
            goto done;
        }
    }
    // Header.
    strbuf_adds(&h, "{");
    int first = 1;
    if (metadata && metadata[0]) {
        strbuf_adds(&h, "\"__metadata__\":{");
        for (int i = 0; metadata[i]; i += 2) {
            if (!metadata[i + 1]) {
                trl_errf(e, "%s: metadata key \"%.100s\" has no value", path, metadata[i]);
                goto done;
            }
            if (i) strbuf_adds(&h, ",");
            add_json_string(&h, metadata[i]);
            strbuf_adds(&h, ":");
            add_json_string(&h, metadata[i + 1]);
        }
        strbuf_adds(&h, "}");
        first = 0;
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const safetensors_wtensor *x = w[i].t;
        if (!first) strbuf_adds(&h, ",");
        first = 0;
        add_json_string(&h, x->name);
        strbuf_adds(&h, ":{\"dtype\":\"");
        strbuf_adds(&h, safetensors_dtype_name(x->type));
        strbuf_adds(&h, "\",\"shape\":[");
        for (int d = 0; d < x->n_dims; d++) {
            if (d) strbuf_adds(&h, ",");
            strbuf_addf(&h, "%llu", (unsigned long long)x->shape[d]);
        }
        strbuf_adds(&h, "],\"data_offsets\":[");
        strbuf_addf(&h, "%llu", (unsigned long long)off);
        strbuf_adds(&h, ",");
        off += w[i].nbytes;
        strbuf_addf(&h, "%llu", (unsigned long long)off);
        strbuf_adds(&h, "]}");
    }
    strbuf_adds(&h, "}");
    while (!h.oom && h.len % 8 != 0) strbuf_adds(&h, " ");
    if (h.oom) {
        trl_errf(e, "%s: out of memory", path);
        goto done;
    }
    if (h.len > SAFETENSORS_MAX_HEADER) {
        trl_errf(e, "%s: header of %zu bytes is over the limit", path, h.len);
        goto done;
    }
    // Temporary file next to the target, renamed over it once complete.
    size_t pl = strlen(path);
    tmp = malloc(pl + 16);
    if (!tmp) {
        trl_errf(e, "%s: out of memory", path);
        goto done;
    }
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp.XXXXXX", 12);
    fd = mkstemp(tmp);
    if (fd < 0) {
        trl_errf(e, "%s: cannot create a temporary file: %s", path, strerror(errno));
        free(tmp);
        tmp = NULL;
        goto done;
    }
    if (fchmod(fd, 0644) != 0) {
        trl_errf(e, "%s: chmod: %s", tmp, strerror(errno));
        goto done;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    if (write_all(fd, len8, 8) || write_all(fd, h.buf, h.len)) {
        trl_errf(e, "%s: write failed: %s", tmp, strerror(errno));
        goto done;
    }
    for (int i = 0; i < n; i++) {
        if (w[i].nbytes && write_all(fd, w[i].t->data, (size_t)w[i].nbytes)) {
            trl_errf(e, "%s: write failed: %s", tmp, strerror(errno));
            goto done;
        }
    }
    if (fsync(fd) != 0) {
        trl_errf(e, "%s: fsync failed: %s", tmp, strerror(errno));
        goto done;
    }
    int cr = close(fd);
    fd = -1;
    if (cr != 0) {
        trl_errf(e, "%s: close failed: %s", tmp, strerror(errno));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        trl_errf(e, "%s: rename failed: %s", path, strerror(errno));
        goto done;
    }
    free(tmp);
    tmp = NULL;
    // Make the rename itself durable (best effort: some file systems refuse directory fsync).
    char *dir = dup_str(path);
    if (dir) {
        char *slash = strrchr(dir, '/');
        const char *dn = ".";
        if (slash) {
            if (slash == dir) slash[1] = 0;
            else *slash = 0;
            dn = dir;
        }
        int dfd = open(dn, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    rc = TRL_OK;
done:
    if (fd >= 0) close(fd);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    strbuf_free(&h);
    free(w);
    return rc;
}

// ---- sharded checkpoints ----

void safetensors_set_close(safetensors_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n_files; i++) safetensors_close(&s->files[i]);
    free(s->files);
    memset(s, 0, sizeof(*s));
}

const safetensors_tensor *safetensors_set_find(const safetensors_set *s, const char *name) {
    for (int i = 0; i < s->n_files; i++) {
        const safetensors_tensor *t = safetensors_find(&s->files[i], name);
        if (t) return t;
    }
    return NULL;
}

// A shard name must be a plain file name inside the directory.
static int shard_name_ok(const char *s) {
    size_t n = strlen(s);
    return n > 0 && n < 256 && s[0] != '.' && !strchr(s, '/') && !strchr(s, '\\');
}

static int open_index(safetensors_set *s, const char *dir, const char *ipath, trl_err *e) {
    size_t len;
    char *buf = trl_read_file(ipath, &len, e);
    if (!buf) return TRL_ERR;
    cJSON *root = cJSON_ParseWithLength(buf, len);
    free(buf);
    int rc = TRL_ERR;
    char **names = NULL;
    int n_names = 0;
    const cJSON *wm = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(wm)) {
        trl_errf(e, "%s: %s", ipath, root ? "no \"weight_map\" object" : "not valid JSON");
        goto done;
    }
    int cap = cJSON_GetArraySize(wm);
    if (cap == 0) {
        trl_errf(e, "%s: weight_map is empty", ipath);
        goto done;
    }
    names = calloc((size_t)cap, sizeof(char *));
    if (!names) {
        trl_errf(e, "%s: out of memory", ipath);
        goto done;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, wm) {
        if (!cJSON_IsString(it) || !shard_name_ok(it->valuestring)) {
            trl_errf(e, "%s: weight_map entry \"%.100s\" does not name a shard file in the directory", ipath,
                     it->string);
            goto done;
        }
        int k = 0;
        while (k < n_names && strcmp(names[k], it->valuestring) != 0) k++;
        if (k == n_names) names[n_names++] = it->valuestring;
    }
    s->files = calloc((size_t)n_names, sizeof(*s->files));
    if (!s->files) {
        trl_errf(e, "%s: out of memory", ipath);
        goto done;
    }
    for (int k = 0; k < n_names; k++) {
        char *p = trl_path_join(dir, names[k]);
        if (!p) {
            trl_errf(e, "%s: out of memory", ipath);
            goto done;
        }
        int r = safetensors_open(&s->files[k], p, e);
        free(p);
        if (r != TRL_OK) goto done;
        s->n_files++;
    }
    // Every listed tensor is in the shard the index names.
    cJSON_ArrayForEach(it, wm) {
        int k = 0;
        while (strcmp(names[k], it->valuestring) != 0) k++;
        if (!safetensors_find(&s->files[k], it->string)) {
            trl_errf(e, "%s: weight_map puts \"%.100s\" in %.100s, which does not contain it", ipath, it->string,
                     it->valuestring);
            goto done;
        }
    }
    // No tensor in two shards.
    for (int k = 1; k < s->n_files; k++) {
        for (int i = 0; i < s->files[k].n_tensors; i++) {
            for (int j = 0; j < k; j++) {
                if (safetensors_find(&s->files[j], s->files[k].tensors[i].name)) {
                    trl_errf(e, "%s: tensor \"%.100s\" is in both %.100s and %.100s", ipath,
                             s->files[k].tensors[i].name, names[j], names[k]);
                    goto done;
                }
            }
        }
    }
    rc = TRL_OK;
done:
    free(names);
    cJSON_Delete(root);
    return rc;
}

int safetensors_set_open_dir(safetensors_set *s, const char *dir, trl_err *e) {
    memset(s, 0, sizeof(*s));
    char *single = trl_path_join(dir, "model.safetensors");
    char *index = trl_path_join(dir, "model.safetensors.index.json");
    int rc = TRL_ERR;
    struct stat st;
    if (!single || !index) {
        trl_errf(e, "%s: out of memory", dir);
    } else if (stat(single, &st) == 0) {
        s->files = calloc(1, sizeof(*s->files));
        if (!s->files) {
            trl_errf(e, "%s: out of memory", dir);
        } else if (safetensors_open(&s->files[0], single, e) == TRL_OK) {
            s->n_files = 1;
            rc = TRL_OK;
        }
    } else if (stat(index, &st) == 0) {
        rc = open_index(s, dir, index, e);
    } else {
        trl_errf(e, "%s: neither model.safetensors nor model.safetensors.index.json is there", dir);
    }
    free(single);
    free(index);
    if (rc != TRL_OK) safetensors_set_close(s);
    return rc;
}
