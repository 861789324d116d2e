// forward.c: the transformer forward pass (Llama and Qwen2): embedding, then per layer
// RMSNorm → Q/K/V (+bias) → RoPE → KV cache → grouped-query attention → output projection
// → residual → RMSNorm → SwiGLU MLP → residual; final RMSNorm and the vocabulary head for
// the tokens whose logits are asked for. Every op goes through the backend table (ops.h).
#include "model/forward.h"


#include <stdlib.h>
#include <string.h>

static void *xcalloc(size_t n, size_t sz) { return n ? calloc(n, sz) : calloc(1, 1); }

int engine_init(engine *en, const model *m, const ops *be, int n_seq, int n_ctx, int max_batch, trl_err *e) {
    memset(en, 0, sizeof(*en));
    const model_config *c = &m->cfg;
    if (n_seq < 1 || n_ctx < 1 || max_batch < 1) return trl_errf(e, "engine: n_seq, n_ctx and max_batch must be ≥ 1");
    if (n_ctx > c->n_ctx) n_ctx = c->n_ctx;
    if (be->weights_prepare(m, &en->w, e)) return TRL_ERR;
    en->m = m;
    en->be = be;
    en->max_batch = max_batch;
    int kvd = c->n_head_kv * c->head_dim, qd = c->n_head * c->head_dim;
    en->kv = (kv_cache){NULL, NULL, c->n_layer, n_seq, n_ctx, c->n_head_kv, c->head_dim};
    size_t kvn = (size_t)c->n_layer * n_seq * n_ctx * kvd, T = (size_t)max_batch, f = sizeof(float);
    en->kv.k = be->alloc(kvn * sizeof(uint16_t));
    en->kv.v = be->alloc(kvn * sizeof(uint16_t));
    en->x = be->alloc(T * c->n_embd * f);
    en->xn = be->alloc(T * c->n_embd * f);
    en->tmp = be->alloc(T * c->n_embd * f);
    en->q = be->alloc(T * qd * f);
    en->k = be->alloc(T * kvd * f);
    en->v = be->alloc(T * kvd * f);
    en->att = be->alloc(T * qd * f);
    en->gate = be->alloc(T * c->n_ff * f);
    en->up = be->alloc(T * c->n_ff * f);
    // Every position's rotation, once (the same for all layers and steps), computed on the host.
    en->rope_tab = be->alloc((size_t)n_ctx * c->head_dim * f);  // (n_ctx, HS/2, 2)
    float *tab = malloc((size_t)n_ctx * c->head_dim * f);
    if (tab && en->rope_tab) {
        rope_table(tab, n_ctx, c->head_dim, c->rope_theta);
        be->upload(en->rope_tab, tab, (size_t)n_ctx * c->head_dim * f);
    }
    // Scratch: the largest any matmul of this model needs at max_batch rows.
    size_t need = be->matmul_scratch(&en->w.output, max_batch);
    for (int l = 0; l < c->n_layer; l++) {
        const model_layer *L = &en->w.layers[l];
        const model_tensor *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) {
            size_t s = be->matmul_scratch(ws[i], max_batch);
            if (s > need) need = s;
        }
    }
    en->scratch_bytes = need;
    en->scratch = be->alloc(need);
    en->seq_len = xcalloc((size_t)n_seq, sizeof(int));
    en->next_pos = xcalloc((size_t)n_seq, sizeof(int));
    en->b_seq = xcalloc(T, sizeof(int32_t));
    en->b_pos = xcalloc(T, sizeof(int32_t));
    en->b_want = xcalloc(T, 1);
    en->out_idx = xcalloc(T, sizeof(int32_t));
    int dev_ok = 1;
    if (!be->host) {
        en->d_tok = be->alloc(T * sizeof(int32_t));
        en->d_seq = be->alloc(T * sizeof(int32_t));
        en->d_pos = be->alloc(T * sizeof(int32_t));
        en->d_idx = be->alloc(T * sizeof(int32_t));
        en->d_logits = be->alloc(T * (size_t)c->n_vocab * f);
        dev_ok = en->d_tok && en->d_seq && en->d_pos && en->d_idx && en->d_logits;
    }
    int ok = tab && dev_ok && en->next_pos && en->b_seq && en->b_pos && en->b_want && en->out_idx && en->kv.k &&
             en->kv.v && en->seq_len && en->x && en->xn && en->tmp && en->q && en->k && en->v && en->att && en->gate &&
             en->up && en->rope_tab && en->scratch;
    free(tab);
    if (!ok) {
        engine_free(en);
        return trl_errf(e, "engine: out of memory (KV cache %zu MiB)", 2 * kvn * sizeof(uint16_t) >> 20);
    }
    if (be->error && be->error(e)) {  // a failed upload
        engine_free(en);
        return TRL_ERR;
    }
    return TRL_OK;
}

void engine_free(engine *en) {
    if (!en || !en->be) return;
    const ops *be = en->be;
    void *dev[] = {en->kv.k, en->kv.v, en->rope_tab, en->x,     en->xn,    en->tmp,   en->q,     en->k,
                   en->v,    en->att,  en->gate,     en->up,    en->scratch, en->d_tok, en->d_seq, en->d_pos,
                   en->d_idx, en->d_logits};
    for (size_t i = 0; i < sizeof(dev) / sizeof(dev[0]); i++) be->release(dev[i]);
    be->weights_release(&en->w);
    free(en->seq_len);
    free(en->next_pos);
    free(en->b_seq);
    free(en->b_pos);
    free(en->b_want);
    free(en->out_idx);
    memset(en, 0, sizeof(*en));
}

void engine_seq_reset(engine *en, int seq) {
    if (seq >= 0 && seq < en->kv.n_seq) en->seq_len[seq] = 0;
}

void engine_seq_truncate(engine *en, int seq, int n) {
    if (seq >= 0 && seq < en->kv.n_seq && n >= 0 && n < en->seq_len[seq]) en->seq_len[seq] = n;
}

int engine_seq_copy(engine *en, int dst, int src, int n, trl_err *e) {
    const kv_cache *kv = &en->kv;
    if (dst < 0 || dst >= kv->n_seq || src < 0 || src >= kv->n_seq)
        return trl_errf(e, "engine: sequence %d or %d out of range", dst, src);
    if (n < 0 || n > en->seq_len[src])
        return trl_errf(e, "engine: sequence %d holds %d positions, not %d", src, en->seq_len[src], n);
    if (dst == src) {
        engine_seq_truncate(en, dst, n);
        return TRL_OK;
    }
    en->be->kv_copy(kv, dst, src, n);
    en->seq_len[dst] = n;
    return TRL_OK;
}

static int batch_check(engine *en, const engine_batch *b, trl_err *e) {
    if (b->n < 1 || b->n > en->max_batch) return trl_errf(e, "engine: batch of %d tokens (max %d)", b->n, en->max_batch);
    int V = en->m->cfg.n_vocab;
    // Each sequence's positions must continue its cache contiguously.
    int *next = en->next_pos;
    memcpy(next, en->seq_len, sizeof(int) * (size_t)en->kv.n_seq);
    int rc = TRL_OK;
    for (int i = 0; i < b->n && rc == TRL_OK; i++) {
        int s = b->seq[i], p = b->pos[i];
        if (b->tok[i] < 0 || b->tok[i] >= V) rc = trl_errf(e, "engine: token id %d out of range [0, %d)", b->tok[i], V);
        else if (s < 0 || s >= en->kv.n_seq) rc = trl_errf(e, "engine: sequence %d out of range", s);
        else if (p < 0 || p >= en->kv.n_ctx) rc = trl_errf(e, "engine: position %d exceeds the context (%d)", p, en->kv.n_ctx);
        else if (p > next[s]) rc = trl_errf(e, "engine: sequence %d position %d leaves a gap (cache holds %d)", s, p, next[s]);
        else next[s] = p + 1;
    }
    return rc;
}

// The backend's copy of a host array of n int32s: the array itself for host-memory backends.
static const int32_t *to_backend(const engine *en, int32_t *dev, const int32_t *host, int n) {
    if (en->be->host) return host;
    en->be->upload(dev, host, sizeof(int32_t) * (size_t)n);
    return dev;
}

// A device backend's failure during the pass (ops.h: error), TRL_OK for backends that cannot fail.
static int backend_error(const ops *be, trl_err *e) { return be->error ? be->error(e) : TRL_OK; }

int engine_forward(engine *en, const engine_batch *b, float *logits, trl_err *e) {
    if (batch_check(en, b, e)) return TRL_ERR;
    const model *m = &en->w;
    const model_config *c = &m->cfg;
    const ops *be = en->be;
    int T = b->n, C = c->n_embd, NH = c->n_head, NKV = c->n_head_kv, HS = c->head_dim, F = c->n_ff;
    int qd = NH * HS, kvd = NKV * HS;
    float *x = en->x, *xn = en->xn;  // (T, C)
    const int32_t *tok = to_backend(en, en->d_tok, b->tok, T), *seq = to_backend(en, en->d_seq, b->seq, T),
                  *pos = to_backend(en, en->d_pos, b->pos, T);

    be->embed(x, &m->tok_embd, tok, T);
    for (int l = 0; l < c->n_layer; l++) {
        const model_layer *L = &m->layers[l];
        be->rmsnorm(xn, x, L->attn_norm, T, C, c->rms_eps);
        {
            const model_tensor *w[3] = {&L->wq, &L->wk, &L->wv};
            float *y[3] = {en->q, en->k, en->v};  // (T, NH*HS), (T, NKV*HS), (T, NKV*HS)
            be->matmul_n(w, xn, y, 3, T, en->scratch);
        }
        if (L->bq) {
            be->add_bias(en->q, L->bq, T, qd);
            be->add_bias(en->k, L->bk, T, kvd);
            be->add_bias(en->v, L->bv, T, kvd);
        }
        be->rope(en->q, en->k, pos, T, NH, NKV, HS, c->rope_theta, c->rope, en->rope_tab);
        be->kv_store(&en->kv, l, en->k, en->v, seq, pos, T);
        be->attention(en->att, en->q, &en->kv, l, seq, pos, T, NH, NKV, HS);  // (T, NH*HS)
        be->matmul(&L->wo, en->att, en->tmp, T, en->scratch);                  // (T, C)
        be->add(x, en->tmp, (int64_t)T * C);
        be->rmsnorm(xn, x, L->ffn_norm, T, C, c->rms_eps);
        {
            const model_tensor *w[2] = {&L->w_gate, &L->w_up};
            float *y[2] = {en->gate, en->up};  // (T, F) each
            be->matmul_n(w, xn, y, 2, T, en->scratch);
        }
        be->swiglu(en->gate, en->gate, en->up, (int64_t)T * F);
        be->matmul(&L->w_down, en->gate, en->tmp, T, en->scratch);  // (T, C)
        be->add(x, en->tmp, (int64_t)T * C);
    }
    for (int t = 0; t < T; t++)
        if (b->pos[t] + 1 > en->seq_len[b->seq[t]]) en->seq_len[b->seq[t]] = b->pos[t] + 1;
    if (!logits) return backend_error(be, e);
    // Gather the rows whose logits are wanted, then one matmul over the vocabulary.
    int n_out = 0;
    for (int t = 0; t < T; t++)
        if (b->logits_out && b->logits_out[t]) en->out_idx[n_out++] = t;
    if (n_out == 0) return backend_error(be, e);
    be->gather(x, x, to_backend(en, en->d_idx, en->out_idx, n_out), n_out, C);
    be->rmsnorm(xn, x, m->out_norm, n_out, C, c->rms_eps);
    float *out = be->host ? logits : en->d_logits;  // (n_out, V)
    be->matmul(&m->output, xn, out, n_out, en->scratch);
    if (!be->host) be->download(logits, out, sizeof(float) * (size_t)n_out * (size_t)c->n_vocab);
    return backend_error(be, e);
}

int engine_feed(engine *en, int seq, const int32_t *toks, int n, float *logits, trl_err *e) {
    if (seq < 0 || seq >= en->kv.n_seq) return trl_errf(e, "engine: sequence %d out of range", seq);
    int B = en->max_batch;
    for (int i0 = 0; i0 < n; i0 += B) {
        int m = n - i0 < B ? n - i0 : B, start = en->seq_len[seq], last = i0 + m == n;
        for (int i = 0; i < m; i++) {
            en->b_seq[i] = seq;
            en->b_pos[i] = start + i;
            en->b_want[i] = 0;
        }
        en->b_want[m - 1] = (int8_t)(last && logits);
        engine_batch b = {m, toks + i0, en->b_seq, en->b_pos, en->b_want};
        if (engine_forward(en, &b, last ? logits : NULL, e)) return TRL_ERR;
    }
    return TRL_OK;
}
