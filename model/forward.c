// forward.c: the transformer forward pass (Llama and Qwen2): embedding, then per layer
// RMSNorm → Q/K/V (+bias) → RoPE → KV cache → grouped-query attention → output projection
// → residual → RMSNorm → SwiGLU MLP → residual; final RMSNorm and the vocabulary head for
// the tokens whose logits are asked for. Every op goes through the backend table (ops.h).
#include "model/forward.h"

#include "model/quant.h"

#include <stdlib.h>
#include <string.h>

static void *xcalloc(size_t n, size_t sz) { return n ? calloc(n, sz) : calloc(1, 1); }

int engine_init(engine *en, const model *m, const ops *be, int n_seq, int n_ctx, int max_batch, trl_err *e) {
    memset(en, 0, sizeof(*en));
    const model_config *c = &m->cfg;
    if (n_seq < 1 || n_ctx < 1 || max_batch < 1) return trl_errf(e, "engine: n_seq, n_ctx and max_batch must be ≥ 1");
    if (n_ctx > c->n_ctx) n_ctx = c->n_ctx;
    en->m = m;
    en->be = be;
    en->max_batch = max_batch;
    int kvd = c->n_head_kv * c->head_dim, qd = c->n_head * c->head_dim;
    en->kv = (kv_cache){NULL, NULL, c->n_layer, n_seq, n_ctx, c->n_head_kv, c->head_dim};
    size_t kvn = (size_t)c->n_layer * n_seq * n_ctx * kvd;
    en->kv.k = xcalloc(kvn, sizeof(uint16_t));
    en->kv.v = xcalloc(kvn, sizeof(uint16_t));
    en->seq_len = xcalloc((size_t)n_seq, sizeof(int));
    size_t T = (size_t)max_batch;
    en->x = xcalloc(T * c->n_embd, sizeof(float));
    en->xn = xcalloc(T * c->n_embd, sizeof(float));
    en->tmp = xcalloc(T * c->n_embd, sizeof(float));
    en->q = xcalloc(T * qd, sizeof(float));
    en->k = xcalloc(T * kvd, sizeof(float));
    en->v = xcalloc(T * kvd, sizeof(float));
    en->att = xcalloc(T * qd, sizeof(float));
    en->gate = xcalloc(T * c->n_ff, sizeof(float));
    en->up = xcalloc(T * c->n_ff, sizeof(float));
    // Every position's rotation, once (the same for all layers and steps).
    en->rope_tab = xcalloc((size_t)n_ctx * c->head_dim, sizeof(float));  // (n_ctx, HS/2, 2)
    if (en->rope_tab) rope_table(en->rope_tab, n_ctx, c->head_dim, c->rope_theta);
    // Scratch: the largest any matmul of this model needs at max_batch rows.
    size_t need = ops_matmul_scratch(&m->output, max_batch);
    for (int l = 0; l < c->n_layer; l++) {
        const model_layer *L = &m->layers[l];
        const model_tensor *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) {
            size_t s = ops_matmul_scratch(ws[i], max_batch);
            if (s > need) need = s;
        }
    }
    en->scratch_bytes = need;
    en->scratch = aligned_alloc(64, (need + 63) / 64 * 64);
    en->next_pos = xcalloc((size_t)n_seq, sizeof(int));
    en->b_seq = xcalloc(T, sizeof(int32_t));
    en->b_pos = xcalloc(T, sizeof(int32_t));
    en->b_want = xcalloc(T, 1);
    if (!en->next_pos || !en->b_seq || !en->b_pos || !en->b_want || !en->kv.k || !en->kv.v || !en->seq_len || !en->x || !en->xn || !en->tmp || !en->q || !en->k || !en->v ||
        !en->att || !en->gate || !en->up || !en->rope_tab || !en->scratch) {
        engine_free(en);
        return trl_errf(e, "engine: out of memory (KV cache %zu MiB)", 2 * kvn * sizeof(uint16_t) >> 20);
    }
    return TRL_OK;
}

void engine_free(engine *en) {
    if (!en) return;
    free(en->kv.k);
    free(en->kv.v);
    free(en->rope_tab);
    free(en->seq_len);
    free(en->x);
    free(en->xn);
    free(en->tmp);
    free(en->q);
    free(en->k);
    free(en->v);
    free(en->att);
    free(en->gate);
    free(en->up);
    free(en->scratch);
    free(en->next_pos);
    free(en->b_seq);
    free(en->b_pos);
    free(en->b_want);
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
    const size_t run = sizeof(uint16_t) * (size_t)n * (size_t)kv->head_dim;  // one (layer, head): contiguous
    for (int l = 0; l < kv->n_layer; l++)
        for (int h = 0; h < kv->n_head_kv; h++) {
            memcpy(kv->k + kv_offset(kv, l, dst, h, 0), kv->k + kv_offset(kv, l, src, h, 0), run);
            memcpy(kv->v + kv_offset(kv, l, dst, h, 0), kv->v + kv_offset(kv, l, src, h, 0), run);
        }
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

int engine_forward(engine *en, const engine_batch *b, float *logits, trl_err *e) {
    if (batch_check(en, b, e)) return TRL_ERR;
    const model *m = en->m;
    const model_config *c = &m->cfg;
    const ops *be = en->be;
    int T = b->n, C = c->n_embd, NH = c->n_head, NKV = c->n_head_kv, HS = c->head_dim, F = c->n_ff;
    int qd = NH * HS, kvd = NKV * HS;
    float *x = en->x, *xn = en->xn;  // (T, C)

    be->embed(x, &m->tok_embd, b->tok, T);
    for (int l = 0; l < c->n_layer; l++) {
        const model_layer *L = &m->layers[l];
        be->rmsnorm(xn, x, L->attn_norm, T, C, c->rms_eps);
        {
            const model_tensor *w[3] = {&L->wq, &L->wk, &L->wv};
            float *y[3] = {en->q, en->k, en->v};  // (T, NH*HS), (T, NKV*HS), (T, NKV*HS)
            be->matmul_n(w, xn, y, 3, T, en->scratch);
        }
        if (L->bq) {
            for (int t = 0; t < T; t++) {
                be->add(en->q + (size_t)t * qd, L->bq, qd);
                be->add(en->k + (size_t)t * kvd, L->bk, kvd);
                be->add(en->v + (size_t)t * kvd, L->bv, kvd);
            }
        }
        be->rope(en->q, en->k, b->pos, T, NH, NKV, HS, c->rope_theta, c->rope, en->rope_tab);
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < NKV; h++) {
                size_t off = kv_offset(&en->kv, l, b->seq[t], h, b->pos[t]);
                quantize_row(QTYPE_F16, en->k + (size_t)t * kvd + (size_t)h * HS, en->kv.k + off, HS);
                quantize_row(QTYPE_F16, en->v + (size_t)t * kvd + (size_t)h * HS, en->kv.v + off, HS);
            }
        }
        be->attention(en->att, en->q, &en->kv, l, b->seq, b->pos, T, NH, NKV, HS);  // (T, NH*HS)
        be->matmul(&L->wo, en->att, en->tmp, T, en->scratch);                         // (T, C)
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
    if (!logits) return TRL_OK;
    // Gather the rows whose logits are wanted, then one matmul over the vocabulary.
    int n_out = 0;
    for (int t = 0; t < T; t++) {
        if (!b->logits_out || !b->logits_out[t]) continue;
        if (n_out != t) memcpy(x + (size_t)n_out * C, x + (size_t)t * C, sizeof(float) * C);
        n_out++;
    }
    if (n_out == 0) return TRL_OK;
    be->rmsnorm(xn, x, m->out_norm, n_out, C, c->rms_eps);
    be->matmul(&m->output, xn, logits, n_out, en->scratch);  // (n_out, V)
    return TRL_OK;
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
