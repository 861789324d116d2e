// model.c: loading a model from GGUF (metadata → config, tensors → weights), the checks
// shared with the Hugging Face loader (model_hf.c), and freeing. A file that lies about
// its shapes is rejected here with the tensor's name, before any forward pass runs.
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/gguf.h"
#include "model/matmul.h"
#include "model/quant.h"
#include "model/tokenizer.h"

int model_own(model *m, void *p) {
    if (m->n_owned == m->cap_owned) {
        int ncap = m->cap_owned ? 2 * m->cap_owned : 64;
        void **np = realloc(m->owned, sizeof(void *) * (size_t)ncap);
        if (!np) return TRL_ERR;
        m->owned = np;
        m->cap_owned = ncap;
    }
    m->owned[m->n_owned++] = p;
    return TRL_OK;
}

// Once a matrix is packed (or converted) the kernels read only the copy (decode and prefill
// alike); its GGUF rows stay mapped for the few readers left (an embedding lookup touches one
// row, the trainer dequantizes once), so their pages are handed back to the page cache:
// resident memory holds one copy of the weights, not two. Only pages wholly inside the rows,
// and only in the file's own read-only mapping (never an owned buffer, where this would zero it).
static void drop_file_range(const model *m, const void *data, size_t bytes) {
    const gguf_file *g = m->gguf;
    if (!g || !g->owns_map) return;
    const uintptr_t base = (uintptr_t)g->map, lo = (uintptr_t)data;
    const uintptr_t hi = lo + bytes, page = (uintptr_t)sysconf(_SC_PAGESIZE);
    if (lo < base || hi > base + g->size) return;
    const uintptr_t a = (lo + page - 1) & ~(page - 1), b = hi & ~(page - 1);
    if (b > a) (void)madvise((void *)a, b - a, MADV_DONTNEED);  // advice: nothing is lost if refused
}

static void drop_file_pages(const model *m, const model_tensor *t) {
    drop_file_range(m, t->data, t->row_bytes * (size_t)t->n_rows);
}

// The kernels' copy of a quantized matrix (matmul_pack), where they have a layout for it.
static int pack_tensor(model *m, model_tensor *t, const char *name, trl_err *e) {
    size_t n = matmul_packed_bytes(t->type, t->n_rows, t->n_cols);
    if (n == 0) return TRL_OK;
    void *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
    if (!p || model_own(m, p)) {
        free(p);
        return trl_errf(e, "tensor %s: out of memory", name);
    }
    matmul_pack(t->type, t->data, t->n_rows, t->n_cols, p);
    t->packed = p;
    t->packed_type = t->type;
    drop_file_pages(m, t);
    return TRL_OK;
}

// A matrix of a type no kernel reads, converted once into quant_convert_target(type)
// (quant.h). Where the kernels can pack the result, the packed copy is all that is kept of it
// (the rows stay the file's, in their own type); otherwise the converted rows replace the
// file's. *done = 0 (nothing changed) where the type has no conversion or a row's values do
// not fit it. The two buffers are made once per matrix, at load.
static int convert_tensor(model *m, model_tensor *t, uint32_t type, int64_t n_rows, int64_t n_cols, const void *data,
                          const char *name, int *done, trl_err *e) {
    *done = 0;
    const uint32_t to = quant_convert_target(type);
    const size_t rb = qtype_row_bytes(type, n_cols), trb = qtype_row_bytes(to, n_cols);
    if (to == QTYPE_F32 || trb == 0 || !matmul_has_kernel(to)) return TRL_OK;
    uint8_t *q = malloc(trb * (size_t)n_rows);
    float *tmp = malloc(sizeof(float) * (size_t)n_cols);
    if (!q || !tmp) {
        free(q);
        free(tmp);
        return trl_errf(e, "tensor %s: out of memory", name);
    }
    int ok = 1;
    for (int64_t r = 0; r < n_rows && ok; r++)
        ok = quant_convert_row(type, (const uint8_t *)data + (size_t)r * rb, q + (size_t)r * trb, n_cols, tmp) == 0;
    free(tmp);
    if (!ok) {
        free(q);
        return TRL_OK;
    }
    model_tensor c = {to, n_rows, n_cols, trb, q, NULL, to};
    if (matmul_packed_bytes(to, n_rows, n_cols) > 0) {
        if (pack_tensor(m, &c, name, e)) {
            free(q);
            return TRL_ERR;
        }
        free(q);
        *t = (model_tensor){type, n_rows, n_cols, rb, data, c.packed, to};
        m->converted_bytes += matmul_packed_bytes(to, n_rows, n_cols);
    } else {
        if (model_own(m, q)) {
            free(q);
            return trl_errf(e, "tensor %s: out of memory", name);
        }
        *t = c;
        m->converted_bytes += trb * (size_t)n_rows;
    }
    drop_file_range(m, data, rb * (size_t)n_rows);  // read once here; the copy serves from now on
    if (type < sizeof(m->n_converted) / sizeof(m->n_converted[0])) m->n_converted[type]++;
    *done = 1;
    return TRL_OK;
}

int model_tensor_adopt(model *m, model_tensor *t, uint32_t type, int64_t n_rows, int64_t n_cols, const void *data,
                       const char *name, trl_err *e) {
    if (!qtype_supported(type)) return trl_errf(e, "tensor %s: unsupported type %u (%s)", name, type, qtype_name(type));
    size_t rb = qtype_row_bytes(type, n_cols);
    if (rb == 0) return trl_errf(e, "tensor %s: %lld columns do not fit %s blocks", name, (long long)n_cols, qtype_name(type));
    if (matmul_has_kernel(type)) {
        *t = (model_tensor){type, n_rows, n_cols, rb, data, NULL, type};
        return pack_tensor(m, t, name, e);
    }
    int done;
    if (convert_tensor(m, t, type, n_rows, n_cols, data, name, &done, e)) return TRL_ERR;
    if (done) return TRL_OK;
    // Neither a kernel nor a conversion for this type: dequantize once into an owned F32 copy.
    float *f = malloc(sizeof(float) * (size_t)n_rows * (size_t)n_cols);
    if (!f || model_own(m, f)) {
        free(f);
        return trl_errf(e, "tensor %s: out of memory", name);
    }
    for (int64_t r = 0; r < n_rows; r++)
        dequantize_row(type, (const uint8_t *)data + (size_t)r * rb, f + (size_t)r * n_cols, n_cols);
    *t = (model_tensor){QTYPE_F32, n_rows, n_cols, sizeof(float) * (size_t)n_cols, f, NULL, QTYPE_F32};
    return TRL_OK;
}

// One F32 weight re-encoded in `type` into an owned buffer (the F32 data stays where it was).
static int quantize_tensor(model *m, model_tensor *t, uint32_t type, trl_err *e) {
    if (t->type != QTYPE_F32) return TRL_OK;
    size_t rb = qtype_row_bytes(type, t->n_cols);
    if (rb == 0) return TRL_OK;  // columns do not fit the blocks: keep F32
    uint8_t *q = malloc(rb * (size_t)t->n_rows);
    if (!q || model_own(m, q)) {
        free(q);
        return trl_errf(e, "quantize: out of memory");
    }
    for (int64_t r = 0; r < t->n_rows; r++)
        quantize_row(type, (const float *)t->data + (size_t)r * (size_t)t->n_cols, q + (size_t)r * rb, t->n_cols);
    *t = (model_tensor){type, t->n_rows, t->n_cols, rb, q, NULL, type};
    return pack_tensor(m, t, "(quantized)", e);
}

int model_quantize(model *m, uint32_t type, trl_err *e) {
    if (type == QTYPE_F32) return TRL_OK;
    if (!qtype_can_quantize(type) || !matmul_has_kernel(type))
        return trl_errf(e, "quantize: %s is not a type the engine can run from quantized weights", qtype_name(type));
    int tied = m->output.data == m->tok_embd.data;
    if (quantize_tensor(m, &m->tok_embd, type, e)) return TRL_ERR;
    if (tied) m->output = m->tok_embd;
    else if (quantize_tensor(m, &m->output, type, e)) return TRL_ERR;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        model_layer *L = &m->layers[l];
        model_tensor *ts[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int k = 0; k < 7; k++)
            if (quantize_tensor(m, ts[k], type, e)) return TRL_ERR;
    }
    return TRL_OK;
}

int model_vector_adopt(model *m, const float **out, uint32_t type, int64_t n, const void *data, const char *name,
                       trl_err *e) {
    if (type == QTYPE_F32) {
        *out = data;
        return TRL_OK;
    }
    if (type != QTYPE_F16 && type != QTYPE_BF16)
        return trl_errf(e, "tensor %s: 1-D weights must be F32, F16 or BF16 (got %s)", name, qtype_name(type));
    float *f = malloc(sizeof(float) * (size_t)n);
    if (!f || model_own(m, f)) {
        free(f);
        return trl_errf(e, "tensor %s: out of memory", name);
    }
    dequantize_row(type, data, f, n);
    *out = f;
    return TRL_OK;
}

int model_config_validate(const model_config *c, trl_err *e) {
    if (c->n_vocab < 1 || c->n_embd < 1 || c->n_layer < 1 || c->n_head < 1 || c->n_head_kv < 1 || c->head_dim < 2 ||
        c->n_ff < 1 || c->n_ctx < 1)
        return trl_errf(e, "model config: every dimension must be positive (vocab %d, embd %d, layers %d, heads %d, "
                           "kv heads %d, head dim %d, ff %d, ctx %d)",
                        c->n_vocab, c->n_embd, c->n_layer, c->n_head, c->n_head_kv, c->head_dim, c->n_ff, c->n_ctx);
    if (c->n_head % c->n_head_kv != 0)
        return trl_errf(e, "model config: %d heads are not a multiple of %d kv heads", c->n_head, c->n_head_kv);
    if (c->head_dim % 2 != 0 || c->head_dim > 512) return trl_errf(e, "model config: head dim %d unsupported", c->head_dim);
    if (!(c->rope_theta > 0) || !(c->rms_eps > 0)) return trl_errf(e, "model config: rope theta and rms eps must be > 0");
    if (c->n_embd > (1 << 16) || c->n_ff > (1 << 18) || c->n_layer > 1024 || c->n_vocab > (1 << 22))
        return trl_errf(e, "model config: dimensions too large");
    return TRL_OK;
}

// --- GGUF -------------------------------------------------------------------------------

static int meta_int(const gguf_file *g, const char *arch, const char *suffix, int64_t *out, int required, trl_err *e) {
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", arch, suffix);
    if (gguf_get_int(g, key, out) == TRL_OK) {
        if (*out < 0 || *out > INT32_MAX) return trl_errf(e, "gguf: %s = %lld is out of range", key, (long long)*out);
        return TRL_OK;
    }
    if (required) return trl_errf(e, "gguf: missing integer metadata %s", key);
    return TRL_OK;
}

// Finds a tensor and checks its type-independent shape: ne0 = cols, ne1 = rows.
static const gguf_tensor *want(const gguf_file *g, const char *name, int64_t cols, int64_t rows, int required,
                               trl_err *e, int *err) {
    const gguf_tensor *t = gguf_find_tensor(g, name);
    if (!t) {
        if (required) *err = trl_errf(e, "gguf: missing tensor %s", name);
        return NULL;
    }
    if (t->ne[0] != cols || t->ne[1] != rows || t->ne[2] != 1 || t->ne[3] != 1) {
        *err = trl_errf(e, "gguf: tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]", name,
                        (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                        (long long)cols, (long long)rows);
        return NULL;
    }
    return t;
}

static int load_mat(model *m, const gguf_file *g, model_tensor *dst, const char *name, int64_t cols, int64_t rows,
                    trl_err *e) {
    int err = 0;
    const gguf_tensor *t = want(g, name, cols, rows, 1, e, &err);
    if (!t) return TRL_ERR;
    return model_tensor_adopt(m, dst, t->type, rows, cols, t->data, name, e);
}

// A matrix kept as the file's rows, in its own type, for row lookups only (no kernel reads it).
static int adopt_rows(model_tensor *dst, const gguf_tensor *t, int64_t rows, int64_t cols, const char *name,
                      trl_err *e) {
    if (!qtype_supported(t->type)) return trl_errf(e, "tensor %s: unsupported type %u (%s)", name, t->type, qtype_name(t->type));
    size_t rb = qtype_row_bytes(t->type, cols);
    if (rb == 0) return trl_errf(e, "tensor %s: %lld columns do not fit %s blocks", name, (long long)cols, qtype_name(t->type));
    *dst = (model_tensor){t->type, rows, cols, rb, t->data, NULL, t->type};
    return TRL_OK;
}

static int load_vec(model *m, const gguf_file *g, const float **dst, const char *name, int64_t n, int required,
                    trl_err *e) {
    int err = 0;
    const gguf_tensor *t = want(g, name, n, 1, required, e, &err);
    if (!t) {
        *dst = NULL;
        return required || err ? TRL_ERR : TRL_OK;
    }
    return model_vector_adopt(m, dst, t->type, n, t->data, name, e);
}

// One line on stderr when matrices were converted at load (quant_convert_target).
static void note_conversions(const model *m, const char *path) {
    char buf[256];
    size_t n = 0;
    for (uint32_t ty = 0; ty < sizeof(m->n_converted) / sizeof(m->n_converted[0]); ty++)
        if (m->n_converted[ty] && n < sizeof(buf))
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%d %s->%s", n ? ", " : "", m->n_converted[ty],
                                  qtype_name(ty), qtype_name(quant_convert_target(ty)));
    if (n)
        fprintf(stderr, "model: %s: converted at load for the CPU kernels: %s (%.1f MiB)\n", path, buf,
                (double)m->converted_bytes / (1 << 20));
}

int model_load_gguf(model *m, const char *path, trl_err *e) {
    memset(m, 0, sizeof(*m));
    gguf_file *g = calloc(1, sizeof(*g));
    if (!g) return trl_errf(e, "out of memory");
    if (gguf_open(g, path, e)) {
        free(g);
        return TRL_ERR;
    }
    m->gguf = g;
    model_config *c = &m->cfg;
    gguf_str archs;
    char arch[32];
    if (gguf_get_str(g, "general.architecture", &archs)) {
        trl_errf(e, "%s: missing general.architecture", path);
        goto fail;
    }
    if (gguf_str_eq(archs, "llama")) c->arch = MODEL_ARCH_LLAMA, c->rope = ROPE_NORM;
    else if (gguf_str_eq(archs, "qwen2")) c->arch = MODEL_ARCH_QWEN2, c->rope = ROPE_NEOX;
    else {
        trl_errf(e, "%s: architecture '%.*s' is not supported (llama, qwen2)", path, (int)(archs.len > 64 ? 64 : archs.len),
                 archs.ptr);
        goto fail;
    }
    snprintf(arch, sizeof(arch), "%.*s", (int)archs.len, archs.ptr);
    int64_t v;
    if (meta_int(g, arch, "embedding_length", &v, 1, e)) goto fail;
    c->n_embd = (int)v;
    if (meta_int(g, arch, "block_count", &v, 1, e)) goto fail;
    c->n_layer = (int)v;
    if (meta_int(g, arch, "feed_forward_length", &v, 1, e)) goto fail;
    c->n_ff = (int)v;
    if (meta_int(g, arch, "attention.head_count", &v, 1, e)) goto fail;
    c->n_head = (int)v;
    v = c->n_head;
    if (meta_int(g, arch, "attention.head_count_kv", &v, 0, e)) goto fail;
    c->n_head_kv = (int)v;
    v = 2048;
    if (meta_int(g, arch, "context_length", &v, 0, e)) goto fail;
    c->n_ctx = (int)v;
    v = c->n_head ? c->n_embd / c->n_head : 0;
    if (meta_int(g, arch, "attention.key_length", &v, 0, e)) goto fail;
    c->head_dim = (int)v;
    double d = 10000.0;
    char key[128];
    snprintf(key, sizeof(key), "%s.rope.freq_base", arch);
    gguf_get_float(g, key, &d);
    c->rope_theta = (float)d;
    d = 1e-5;
    snprintf(key, sizeof(key), "%s.attention.layer_norm_rms_epsilon", arch);
    gguf_get_float(g, key, &d);
    c->rms_eps = (float)d;
    int err = 0;
    const gguf_tensor *te = gguf_find_tensor(g, "token_embd.weight");
    if (!te) {
        trl_errf(e, "%s: missing tensor token_embd.weight", path);
        goto fail;
    }
    c->n_vocab = (int)te->ne[1];
    c->has_qkv_bias = c->arch == MODEL_ARCH_QWEN2;
    if (model_config_validate(c, e)) goto fail;
    int C = c->n_embd, QD = c->n_head * c->head_dim, KVD = c->n_head_kv * c->head_dim, F = c->n_ff;
    const gguf_tensor *to = want(g, "output.weight", C, c->n_vocab, 0, e, &err);
    if (err) goto fail;
    c->tied_embeddings = to == NULL;
    if (to) {
        // Untied: the embedding is only looked up, a row at a time, from the file's rows.
        if (!want(g, "token_embd.weight", C, c->n_vocab, 1, e, &err) ||
            adopt_rows(&m->tok_embd, te, c->n_vocab, C, "token_embd.weight", e) ||
            model_tensor_adopt(m, &m->output, to->type, c->n_vocab, C, to->data, "output.weight", e))
            goto fail;
    } else {
        if (load_mat(m, g, &m->tok_embd, "token_embd.weight", C, c->n_vocab, e)) goto fail;
        m->output = m->tok_embd;
    }
    if (load_vec(m, g, &m->out_norm, "output_norm.weight", C, 1, e)) goto fail;
    m->layers = calloc((size_t)c->n_layer, sizeof(model_layer));
    if (!m->layers) {
        trl_errf(e, "out of memory");
        goto fail;
    }
    for (int l = 0; l < c->n_layer; l++) {
        model_layer *L = &m->layers[l];
        char n[96];
#define NAME(s) (snprintf(n, sizeof(n), "blk.%d.%s", l, s), n)
        if (load_vec(m, g, &L->attn_norm, NAME("attn_norm.weight"), C, 1, e) ||
            load_mat(m, g, &L->wq, NAME("attn_q.weight"), C, QD, e) ||
            load_mat(m, g, &L->wk, NAME("attn_k.weight"), C, KVD, e) ||
            load_mat(m, g, &L->wv, NAME("attn_v.weight"), C, KVD, e) ||
            load_mat(m, g, &L->wo, NAME("attn_output.weight"), QD, C, e) ||
            load_vec(m, g, &L->ffn_norm, NAME("ffn_norm.weight"), C, 1, e) ||
            load_mat(m, g, &L->w_gate, NAME("ffn_gate.weight"), C, F, e) ||
            load_mat(m, g, &L->w_up, NAME("ffn_up.weight"), C, F, e) ||
            load_mat(m, g, &L->w_down, NAME("ffn_down.weight"), F, C, e))
            goto fail;
        if (c->has_qkv_bias) {
            if (load_vec(m, g, &L->bq, NAME("attn_q.bias"), QD, 1, e) ||
                load_vec(m, g, &L->bk, NAME("attn_k.bias"), KVD, 1, e) ||
                load_vec(m, g, &L->bv, NAME("attn_v.bias"), KVD, 1, e))
                goto fail;
        }
#undef NAME
    }
    if (tokenizer_init_gguf(&m->tok, g, e)) goto fail;
    if (tokenizer_n_vocab(m->tok) > c->n_vocab) {
        trl_errf(e, "%s: tokenizer has %d tokens but the embedding only %d rows", path, tokenizer_n_vocab(m->tok),
                 c->n_vocab);
        goto fail;
    }
    note_conversions(m, path);
    gguf_str tmpl;
    if (gguf_get_str(g, "tokenizer.chat_template", &tmpl) == TRL_OK) {
        m->chat_template = malloc(tmpl.len + 1);
        if (m->chat_template) {
            memcpy(m->chat_template, tmpl.ptr, tmpl.len);
            m->chat_template[tmpl.len] = 0;
        }
    }
    return TRL_OK;
fail:
    model_free(m);
    return TRL_ERR;
}

// Added tokens the model never learnt, read as plain text from then on (tokenizer_set_plain).
// An added (USER_DEFINED) token is untrained when its embedding row, dequantized, is the row
// of a token no text ever gives (the first UNUSED token, else the first padding row past the
// tokenizer's ids), the row an initialiser left, within quantization noise: squared distance
// at most 1e-3 of the row's squared norm (Qwen2.5-Coder's two tags: 0 to 3.6e-5; a trained
// added token such as <|im_start|>: 0.17; two ordinary ones: 3.1 and 5.5). Qwen2.5-Coder-0.5B's GGUF has <tool_call>
// and </tool_call> so. Read as the special ids they put an embedding the model cannot read
// into every Tool-N1 prompt and ask for a reply tag it cannot write; read as text they are
// pieces (`<`, `tool`, `_call`, `>`) it knows. Returns how many.
static int plain_untrained_tokens(model *m, const char *path) {
    const model_tensor *E = &m->tok_embd;
    const tokenizer *t = m->tok;
    int nt = tokenizer_n_vocab(t), n = 0;
    int32_t ref = -1;
    for (int32_t id = 0; id < nt && ref < 0; id++)
        if (tokenizer_token_type(t, id) == TOKEN_UNUSED) ref = id;
    if (ref < 0 && E->n_rows > nt) ref = nt;
    if (ref < 0 || !E->data || E->n_cols <= 0) return 0;
    float *x = malloc(sizeof(float) * 2 * (size_t)E->n_cols), *y = x + E->n_cols;
    if (!x) return 0;
    const unsigned char *rows = E->data;
    dequantize_row(E->type, rows + (size_t)ref * E->row_bytes, y, E->n_cols);
    double ny = 0;
    for (int64_t j = 0; j < E->n_cols; j++) ny += (double)y[j] * y[j];
    char names[512];
    size_t len = 0;
    names[0] = 0;
    for (int32_t id = 0; id < nt; id++) {
        if (tokenizer_token_type(t, id) != TOKEN_USER_DEFINED) continue;
        dequantize_row(E->type, rows + (size_t)id * E->row_bytes, x, E->n_cols);
        double d = 0;
        for (int64_t j = 0; j < E->n_cols; j++) d += ((double)x[j] - y[j]) * ((double)x[j] - y[j]);
        if (d > 1e-3 * ny || tokenizer_set_plain(m->tok, id) != TRL_OK) continue;
        char piece[64];
        int k = tokenizer_decode(t, id, 1, piece, (int)sizeof(piece) - 1);
        if (k < 0 || k >= (int)sizeof(piece)) k = 0;
        piece[k] = 0;
        if (len < sizeof(names) - 80) len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s", n ? " " : "", piece);
        n++;
    }
    free(x);
    if (n)
        fprintf(stderr, "model: %s: %d added token%s never trained (embedding rows equal to unused token %d's), read as "
                        "plain text: %s\n", path, n, n == 1 ? "" : "s", (int)ref, names);
    return n;
}

int model_load(model *m, const char *path, trl_err *e) {
    struct stat st;
    if (stat(path, &st) != 0) {
        memset(m, 0, sizeof(*m));
        return trl_errf(e, "%s: no such file or directory", path);
    }
    int rc = S_ISDIR(st.st_mode) ? model_load_hf_dir(m, path, e) : model_load_gguf(m, path, e);
    if (rc == TRL_OK) plain_untrained_tokens(m, path);
    return rc;
}

void model_free(model *m) {
    if (!m) return;
    tokenizer_free(m->tok);
    free(m->layers);
    free(m->chat_template);
    if (m->gguf) {
        gguf_close(m->gguf);
        free(m->gguf);
    }
    for (int i = 0; i < m->n_maps; i++)
        if (m->maps[i]) munmap(m->maps[i], m->map_sizes[i]);
    free(m->maps);
    free(m->map_sizes);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    memset(m, 0, sizeof(*m));
}
