// lm.c: the trainable transformer's forward and backward over the ops of ops_train.c
// (see lm.h). The forward is model/forward.c's computation for one sequence, in fp32.
#include "trainer/lm.h"

#include <stdlib.h>
#include <string.h>

#include "model/quant.h"
#include "trainer/ops_train.h"

// Walks the tensors in buffer order: with mem == NULL only counts.
static size_t params_layout(lm_params *p, const model_config *c, float *mem) {
    size_t L = (size_t)c->n_layer, C = (size_t)c->n_embd, V = (size_t)c->n_vocab, F = (size_t)c->n_ff;
    size_t QD = (size_t)c->n_head * c->head_dim, KVD = (size_t)c->n_head_kv * c->head_dim;
    size_t off = 0;
#define TAKE(field, count)                          \
    do {                                            \
        if (mem) p->field = mem + off;              \
        off += (count);                             \
    } while (0)
    TAKE(wte, V * C);
    TAKE(attn_norm, L * C);
    TAKE(wq, L * QD * C);
    TAKE(wk, L * KVD * C);
    TAKE(wv, L * KVD * C);
    if (c->has_qkv_bias) {
        TAKE(bq, L * QD);
        TAKE(bk, L * KVD);
        TAKE(bv, L * KVD);
    }
    TAKE(wo, L * C * QD);
    TAKE(ffn_norm, L * C);
    TAKE(w_gate, L * F * C);
    TAKE(w_up, L * F * C);
    TAKE(w_down, L * C * F);
    TAKE(out_norm, C);
    if (!c->tied_embeddings) TAKE(wout, V * C);
#undef TAKE
    if (mem && c->tied_embeddings) p->wout = p->wte;
    return off;
}

size_t lm_params_count(const model_config *c) {
    lm_params p;
    return params_layout(&p, c, NULL);
}

static const train_ops *be_or_cpu(const train_ops *be) { return be ? be : &train_ops_cpu; }

int lm_params_alloc(lm_params *p, const model_config *c, const train_ops *be, trl_err *e) {
    memset(p, 0, sizeof(*p));
    if (model_config_validate(c, e)) return TRL_ERR;
    be = be_or_cpu(be);
    size_t n = lm_params_count(c);
    float *mem = be->mem->alloc(n * sizeof(float));
    if (!mem) return trl_errf(e, "lm: out of memory for %zu parameters", n);
    params_layout(p, c, mem);
    p->mem = mem;
    p->n = n;
    p->be = be;
    return TRL_OK;
}

void lm_params_free(lm_params *p) {
    if (!p) return;
    if (p->be) p->be->mem->release(p->mem);
    memset(p, 0, sizeof(*p));
}

int lm_params_host_begin(const lm_params *p, const model_config *c, int read, lm_params *h, trl_err *e) {
    if (!p->be || p->be->mem->host) {
        *h = *p;
        return TRL_OK;
    }
    if (lm_params_alloc(h, c, &train_ops_cpu, e)) return TRL_ERR;
    if (read) p->be->mem->download(h->mem, p->mem, sizeof(float) * p->n);
    return TRL_OK;
}

void lm_params_host_end(const lm_params *p, lm_params *h) {
    if (h->mem != p->mem) lm_params_free(h);
    memset(h, 0, sizeof(*h));
}

void lm_params_host_commit(lm_params *p, lm_params *h) {
    if (h->mem && h->mem != p->mem) p->be->mem->upload(p->mem, h->mem, sizeof(float) * p->n);
    lm_params_host_end(p, h);
}

// dst (rows, cols) in the backend's memory = t dequantized (through a host copy unless the
// backend's memory is the host's).
static int copy_tensor(const train_ops *be, float *dst, const model_tensor *t, int64_t rows, int64_t cols,
                       const char *name, trl_err *e) {
    if (t->n_rows != rows || t->n_cols != cols || !t->data)
        return trl_errf(e, "lm: tensor %s is %lldx%lld, expected %lldx%lld", name, (long long)t->n_rows,
                        (long long)t->n_cols, (long long)rows, (long long)cols);
    float *h = be->mem->host ? dst : malloc(sizeof(float) * (size_t)(rows * cols));
    if (!h) return trl_errf(e, "lm: out of memory for tensor %s", name);
    for (int64_t r = 0; r < rows; r++)
        dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * t->row_bytes, h + r * cols, cols);
    if (h != dst) {
        be->mem->upload(dst, h, sizeof(float) * (size_t)(rows * cols));
        free(h);
    }
    return TRL_OK;
}

int lm_params_from_model(lm_params *p, const model *m, trl_err *e) {
    const model_config *c = &m->cfg;
    int C = c->n_embd, F = c->n_ff, QD = c->n_head * c->head_dim, KVD = c->n_head_kv * c->head_dim;
    if (!p->mem || p->n != lm_params_count(c)) return trl_errf(e, "lm: parameters not allocated for this model");
    const train_ops *be = p->be;
    void (*up)(void *, const void *, size_t) = be->mem->upload;
    if (copy_tensor(be, p->wte, &m->tok_embd, c->n_vocab, C, "token_embd", e)) return TRL_ERR;
    if (!c->tied_embeddings && copy_tensor(be, p->wout, &m->output, c->n_vocab, C, "output", e)) return TRL_ERR;
    up(p->out_norm, m->out_norm, sizeof(float) * (size_t)C);
    for (int l = 0; l < c->n_layer; l++) {
        const model_layer *L = &m->layers[l];
        up(p->attn_norm + (size_t)l * C, L->attn_norm, sizeof(float) * (size_t)C);
        up(p->ffn_norm + (size_t)l * C, L->ffn_norm, sizeof(float) * (size_t)C);
        if (copy_tensor(be, p->wq + (size_t)l * QD * C, &L->wq, QD, C, "wq", e) ||
            copy_tensor(be, p->wk + (size_t)l * KVD * C, &L->wk, KVD, C, "wk", e) ||
            copy_tensor(be, p->wv + (size_t)l * KVD * C, &L->wv, KVD, C, "wv", e) ||
            copy_tensor(be, p->wo + (size_t)l * C * QD, &L->wo, C, QD, "wo", e) ||
            copy_tensor(be, p->w_gate + (size_t)l * F * C, &L->w_gate, F, C, "w_gate", e) ||
            copy_tensor(be, p->w_up + (size_t)l * F * C, &L->w_up, F, C, "w_up", e) ||
            copy_tensor(be, p->w_down + (size_t)l * C * F, &L->w_down, C, F, "w_down", e))
            return TRL_ERR;
        if (c->has_qkv_bias) {
            if (!L->bq || !L->bk || !L->bv) return trl_errf(e, "lm: layer %d lacks its q/k/v biases", l);
            up(p->bq + (size_t)l * QD, L->bq, sizeof(float) * (size_t)QD);
            up(p->bk + (size_t)l * KVD, L->bk, sizeof(float) * (size_t)KVD);
            up(p->bv + (size_t)l * KVD, L->bv, sizeof(float) * (size_t)KVD);
        }
    }
    return TRL_OK;
}

// ---------------------------------------------------------------------------- activations

int lm_acts_alloc(lm_acts *a, const model_config *c, int max_T, const train_ops *be, trl_err *e) {
    memset(a, 0, sizeof(*a));
    if (model_config_validate(c, e)) return TRL_ERR;
    if (max_T < 1) return trl_errf(e, "lm: max_T must be ≥ 1");
    be = be_or_cpu(be);
    a->be = be;
    size_t T = (size_t)max_T, L = (size_t)c->n_layer, C = (size_t)c->n_embd, V = (size_t)c->n_vocab;
    size_t F = (size_t)c->n_ff, NH = (size_t)c->n_head, QD = NH * c->head_dim, KVD = (size_t)c->n_head_kv * c->head_dim;
    size_t sizes[] = {
        (L + 1) * T * C, L * T * C, L * T, L * T * QD, L * T * KVD, L * T * KVD, L * T * QD, L * T * NH, L * T * C,
        L * T * C,       L * T,     L * T * F, L * T * F, L * T * F, T * C, T, T * V, T, T,
        T * C,           T * C,     T * C, T * QD, T * KVD, T * KVD, T * QD, T * F, T * F, T * F,
        be->attention_work_floats(max_T), 2 * T,
    };
    float **ptrs[] = {
        &a->x,     &a->xn1,  &a->rstd1, &a->q,      &a->k,       &a->v,    &a->att, &a->lse,  &a->x_mid, &a->xn2,
        &a->rstd2, &a->gate, &a->up,    &a->h,      &a->xf,      &a->rstdf, &a->logits, &a->lse_out, &a->logp,
        &a->dres,  &a->dxn,  &a->dtmp,  &a->dq,     &a->dk,      &a->dv,   &a->datt, &a->dh,   &a->dgate, &a->dup,
        &a->attw,  &a->stats,
    };
    size_t n = 0, k = sizeof(sizes) / sizeof(sizes[0]);
    for (size_t i = 0; i < k; i++) n += sizes[i];
    a->mem = be->mem->alloc(n * sizeof(float));
    a->pos = calloc(T, sizeof(int32_t));
    a->seg = calloc(T, sizeof(int32_t));
    int dev_ok = 1;
    if (be->mem->host) {
        a->d_pos = a->pos, a->d_seg = a->seg;
    } else {
        a->d_pos = be->mem->alloc(T * sizeof(int32_t));
        a->d_seg = be->mem->alloc(T * sizeof(int32_t));
        a->d_tok = be->mem->alloc(T * sizeof(int32_t));
        a->d_tgt = be->mem->alloc(T * sizeof(int32_t));
        a->d_dlogp = be->mem->alloc(T * sizeof(float));
        dev_ok = a->d_pos && a->d_seg && a->d_tok && a->d_tgt && a->d_dlogp;
    }
    if (!a->mem || !a->pos || !a->seg || !dev_ok) {
        lm_acts_free(a);
        return trl_errf(e, "lm: out of memory for activations of %d tokens", max_T);
    }
    size_t off = 0;
    for (size_t i = 0; i < k; i++) {
        *ptrs[i] = a->mem + off;
        off += sizes[i];
    }
    for (int t = 0; t < max_T; t++) a->pos[t] = t;
    if (!be->mem->host) be->mem->upload(a->d_pos, a->pos, T * sizeof(int32_t));
    a->max_T = max_T;
    a->V = c->n_vocab;
    return TRL_OK;
}

void lm_acts_free(lm_acts *a) {
    if (!a) return;
    if (a->be) {
        const ops *m = a->be->mem;
        m->release(a->mem);
        if (!m->host) {
            m->release(a->d_pos), m->release(a->d_seg), m->release(a->d_tok), m->release(a->d_tgt);
            m->release(a->d_dlogp);
        }
    }
    free(a->pos);
    free(a->seg);
    memset(a, 0, sizeof(*a));
}

void lm_acts_logp(const lm_acts *a, float *dst, int r0, int n) {
    if (n > 0) a->be->mem->download(dst, a->logp + r0, sizeof(float) * (size_t)n);
}

void lm_acts_head_stats(const lm_acts *a, int r0, int n, float *entropy, float *hit) {
    if (n <= 0) return;
    float *ent = a->stats, *h = a->stats + a->max_T;
    a->be->head_stats(a->logits, a->lse_out, a->tgt, r0, n, a->V, ent, h);
    if (entropy) a->be->mem->download(entropy, ent, sizeof(float) * (size_t)n);
    if (hit) a->be->mem->download(hit, h, sizeof(float) * (size_t)n);
}

void lm_acts_temperature(lm_acts *a, int r0, int n, float tau) {
    a->be->logprob_temperature(a->logits, a->lse_out, a->logp, a->tgt, r0, n, a->V, tau);
}

// ---------------------------------------------------------------------------- forward / backward

static int check_ids(const lm_acts *a, const model_config *c, const int32_t *tokens, const int32_t *targets, int T,
                     trl_err *e) {
    if (T < 1 || T > a->max_T) return trl_errf(e, "lm: %d tokens (activations hold %d)", T, a->max_T);
    for (int t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= c->n_vocab || targets[t] < 0 || targets[t] >= c->n_vocab)
            return trl_errf(e, "lm: token id out of range [0, %d) at %d", c->n_vocab, t);
    return TRL_OK;
}

// Lays out positions and segments for a forward of T tokens (lay NULL: one sequence).
static int set_layout(lm_acts *a, const lm_layout *lay, int T, trl_err *e) {
    if (!lay) {
        if (a->packed) {
            for (int t = 0; t < a->max_T; t++) a->pos[t] = t;
            if (!a->be->mem->host) a->be->mem->upload(a->d_pos, a->pos, sizeof(int32_t) * (size_t)a->max_T);
        }
        a->packed = 0;
        return TRL_OK;
    }
    long n = lay->n_shared;
    int ok = lay->n_shared >= 0 && lay->n_seg >= 1;
    for (int i = 0; ok && i < lay->n_seg; i++) ok = lay->seg_len[i] >= 1, n += lay->seg_len[i];
    if (!ok || n != T)
        return trl_errf(e, "lm: layout of %d shared tokens and %d segments does not add up to %d", lay->n_shared,
                        lay->n_seg, T);
    int t = 0;
    for (; t < lay->n_shared; t++) a->pos[t] = t, a->seg[t] = 0;
    for (int i = 0; i < lay->n_seg; i++)
        for (int j = 0, start = t; j < lay->seg_len[i]; j++, t++) a->pos[t] = lay->n_shared + j, a->seg[t] = start;
    a->packed = 1;
    a->n_shared = lay->n_shared;
    if (!a->be->mem->host) {
        a->be->mem->upload(a->d_pos, a->pos, sizeof(int32_t) * (size_t)T);
        a->be->mem->upload(a->d_seg, a->seg, sizeof(int32_t) * (size_t)T);
    }
    return TRL_OK;
}

// The backend's copy of n host values (the host array itself for host-memory backends).
static const void *to_backend(const lm_acts *a, void *dev, const void *host, size_t bytes) {
    if (a->be->mem->host) return host;
    a->be->mem->upload(dev, host, bytes);
    return dev;
}

int lm_forward(const lm_params *p, lm_acts *a, const model_config *c, const int32_t *tokens, const int32_t *targets,
               int T, trl_err *e) {
    return lm_forward_packed(p, a, c, tokens, targets, T, NULL, e);
}

int lm_forward_packed(const lm_params *p, lm_acts *a, const model_config *c, const int32_t *tokens,
                      const int32_t *targets, int T, const lm_layout *lay, trl_err *e) {
    if (p->be != a->be) return trl_errf(e, "lm: parameters and activations on different backends");
    if (check_ids(a, c, tokens, targets, T, e) || set_layout(a, lay, T, e)) return TRL_ERR;
    const train_ops *be = a->be;
    const att_mask mask = {a->d_seg, a->n_shared}, *mk = a->packed ? &mask : NULL;
    const size_t ib = sizeof(int32_t) * (size_t)T;
    tokens = to_backend(a, a->d_tok, tokens, ib);
    a->tgt = targets = to_backend(a, a->d_tgt, targets, ib);
    int C = c->n_embd, F = c->n_ff, NH = c->n_head, NKV = c->n_head_kv, HS = c->head_dim, V = c->n_vocab;
    int QD = NH * HS, KVD = NKV * HS;
    size_t TC = (size_t)T * C;
    be->embedding_forward(a->x, p->wte, tokens, T, C);
    for (int l = 0; l < c->n_layer; l++) {
        float *x = a->x + l * TC, *xn1 = a->xn1 + l * TC, *x_mid = a->x_mid + l * TC, *xn2 = a->xn2 + l * TC;
        float *q = a->q + (size_t)l * T * QD, *k = a->k + (size_t)l * T * KVD, *v = a->v + (size_t)l * T * KVD;
        float *att = a->att + (size_t)l * T * QD, *lse = a->lse + (size_t)l * T * NH;
        float *gate = a->gate + (size_t)l * T * F, *up = a->up + (size_t)l * T * F, *h = a->h + (size_t)l * T * F;
        int bias = c->has_qkv_bias;
        be->rmsnorm_forward(xn1, a->rstd1 + (size_t)l * T, x, p->attn_norm + (size_t)l * C, T, C, c->rms_eps);
        be->linear_forward(q, xn1, p->wq + (size_t)l * QD * C, bias ? p->bq + (size_t)l * QD : NULL, T, C, QD);
        be->linear_forward(k, xn1, p->wk + (size_t)l * KVD * C, bias ? p->bk + (size_t)l * KVD : NULL, T, C, KVD);
        be->linear_forward(v, xn1, p->wv + (size_t)l * KVD * C, bias ? p->bv + (size_t)l * KVD : NULL, T, C, KVD);
        be->rope_forward(q, k, a->d_pos, T, NH, NKV, HS, c->rope_theta, c->rope);
        be->attention_forward(att, lse, q, k, v, T, NH, NKV, HS, mk, a->attw);
        be->linear_forward(a->dtmp, att, p->wo + (size_t)l * C * QD, NULL, T, QD, C);
        be->residual_forward(x_mid, x, a->dtmp, (int64_t)TC);
        be->rmsnorm_forward(xn2, a->rstd2 + (size_t)l * T, x_mid, p->ffn_norm + (size_t)l * C, T, C, c->rms_eps);
        be->linear_forward(gate, xn2, p->w_gate + (size_t)l * F * C, NULL, T, C, F);
        be->linear_forward(up, xn2, p->w_up + (size_t)l * F * C, NULL, T, C, F);
        be->swiglu_forward(h, gate, up, (int64_t)T * F);
        be->linear_forward(a->dtmp, h, p->w_down + (size_t)l * C * F, NULL, T, F, C);
        be->residual_forward(x + TC, x_mid, a->dtmp, (int64_t)TC);
    }
    be->rmsnorm_forward(a->xf, a->rstdf, a->x + (size_t)c->n_layer * TC, p->out_norm, T, C, c->rms_eps);
    // The head (a third of a token's work in a 135M model) only where a log-prob is used: a
    // pack's shared prefix is never scored (its logp are left 0).
    const int h0 = a->packed ? a->n_shared : 0;
    if (h0) be->zero(a->logp, h0);
    be->logprob_forward(a->logits + (size_t)h0 * V, a->lse_out + h0, a->logp + h0, a->xf + (size_t)h0 * C, p->wout,
                    targets + h0, T - h0, C, V);
    return TRL_OK;
}

int lm_backward(const lm_params *p, lm_params *g, lm_acts *a, const model_config *c, const int32_t *tokens,
                const int32_t *targets, const float *dlogp, int T, trl_err *e) {
    if (p->be != a->be || g->be != a->be) return trl_errf(e, "lm: parameters and activations on different backends");
    if (check_ids(a, c, tokens, targets, T, e)) return TRL_ERR;
    const train_ops *be = a->be;
    const att_mask mask = {a->d_seg, a->n_shared}, *mk = a->packed ? &mask : NULL;
    const size_t ib = sizeof(int32_t) * (size_t)T;
    tokens = to_backend(a, a->d_tok, tokens, ib);
    targets = to_backend(a, a->d_tgt, targets, ib);
    dlogp = to_backend(a, a->d_dlogp, dlogp, sizeof(float) * (size_t)T);
    int C = c->n_embd, F = c->n_ff, NH = c->n_head, NKV = c->n_head_kv, HS = c->head_dim, V = c->n_vocab;
    int QD = NH * HS, KVD = NKV * HS, bias = c->has_qkv_bias;
    size_t TC = (size_t)T * C, TF = (size_t)T * F, TQ = (size_t)T * QD, TK = (size_t)T * KVD;
    // head: dlogp → dxf (in dxn) → dres = ∂/∂x[L]
    be->zero(a->dxn, (int64_t)TC);
    const int h0 = a->packed ? a->n_shared : 0;  // (the forward's head range; dlogp before it unused)
    be->logprob_backward(a->dxn + (size_t)h0 * C, g->wout, a->logits + (size_t)h0 * V, a->lse_out + h0, a->xf + (size_t)h0 * C,
                     p->wout, targets + h0, dlogp + h0, T - h0, C, V);
    be->zero(a->dres, (int64_t)TC);
    be->rmsnorm_backward(a->dres, g->out_norm, a->dxn, a->x + (size_t)c->n_layer * TC, p->out_norm, a->rstdf, T, C);
    for (int l = c->n_layer - 1; l >= 0; l--) {
        const float *x = a->x + l * TC, *xn1 = a->xn1 + l * TC, *x_mid = a->x_mid + l * TC, *xn2 = a->xn2 + l * TC;
        const float *q = a->q + l * TQ, *k = a->k + l * TK, *v = a->v + l * TK, *att = a->att + l * TQ;
        const float *lse = a->lse + (size_t)l * T * NH;
        const float *gate = a->gate + l * TF, *up = a->up + l * TF, *h = a->h + l * TF;
        // MLP: x[l+1] = x_mid + down(silu(gate(xn2)) · up(xn2)); dres flows on to x_mid unchanged
        be->zero(a->dh, (int64_t)TF);
        be->linear_backward(a->dh, g->w_down + (size_t)l * C * F, NULL, a->dres, h, p->w_down + (size_t)l * C * F, T, F, C);
        be->zero(a->dgate, (int64_t)TF);
        be->zero(a->dup, (int64_t)TF);
        be->swiglu_backward(a->dgate, a->dup, a->dh, gate, up, (int64_t)TF);
        be->zero(a->dxn, (int64_t)TC);
        be->linear_backward(a->dxn, g->w_gate + (size_t)l * F * C, NULL, a->dgate, xn2, p->w_gate + (size_t)l * F * C, T,
                        C, F);
        be->linear_backward(a->dxn, g->w_up + (size_t)l * F * C, NULL, a->dup, xn2, p->w_up + (size_t)l * F * C, T, C, F);
        be->rmsnorm_backward(a->dres, g->ffn_norm + (size_t)l * C, a->dxn, x_mid, p->ffn_norm + (size_t)l * C,
                         a->rstd2 + (size_t)l * T, T, C);
        // attention: x_mid = x + wo(attention(rope(q), rope(k), v)); dres flows on to x
        be->zero(a->datt, (int64_t)TQ);
        be->linear_backward(a->datt, g->wo + (size_t)l * C * QD, NULL, a->dres, att, p->wo + (size_t)l * C * QD, T, QD, C);
        be->zero(a->dq, (int64_t)TQ);
        be->zero(a->dk, (int64_t)TK);
        be->zero(a->dv, (int64_t)TK);
        be->attention_backward(a->dq, a->dk, a->dv, a->datt, q, k, v, att, lse, T, NH, NKV, HS, mk, a->attw);
        be->rope_backward(a->dq, a->dk, a->d_pos, T, NH, NKV, HS, c->rope_theta, c->rope);
        be->zero(a->dxn, (int64_t)TC);
        be->linear_backward(a->dxn, g->wq + (size_t)l * QD * C, bias ? g->bq + (size_t)l * QD : NULL, a->dq, xn1,
                        p->wq + (size_t)l * QD * C, T, C, QD);
        be->linear_backward(a->dxn, g->wk + (size_t)l * KVD * C, bias ? g->bk + (size_t)l * KVD : NULL, a->dk, xn1,
                        p->wk + (size_t)l * KVD * C, T, C, KVD);
        be->linear_backward(a->dxn, g->wv + (size_t)l * KVD * C, bias ? g->bv + (size_t)l * KVD : NULL, a->dv, xn1,
                        p->wv + (size_t)l * KVD * C, T, C, KVD);
        be->rmsnorm_backward(a->dres, g->attn_norm + (size_t)l * C, a->dxn, x, p->attn_norm + (size_t)l * C,
                         a->rstd1 + (size_t)l * T, T, C);
    }
    be->embedding_backward(g->wte, a->dres, tokens, T, C);
    return TRL_OK;
}
