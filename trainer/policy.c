// policy.c: a model view over lm_params (see policy.h).
#include "trainer/policy.h"

#include <stdlib.h>
#include <string.h>

#include "model/quant.h"

static model_tensor f32_tensor(const float *w, int64_t rows, int64_t cols) {
    return (model_tensor){QTYPE_F32, rows, cols, (size_t)cols * sizeof(float), w, NULL, QTYPE_F32};
}

int policy_view_init(model *view, const lm_params *p, const model *base, trl_err *e) {
    const model_config *c = &base->cfg;
    memset(view, 0, sizeof(*view));
    view->cfg = *c;
    view->tok = base->tok;
    view->chat_template = base->chat_template;
    view->layers = calloc((size_t)c->n_layer, sizeof(model_layer));
    if (!view->layers) return trl_errf(e, "policy: out of memory");
    int64_t C = c->n_embd, F = c->n_ff, QD = (int64_t)c->n_head * c->head_dim, KVD = (int64_t)c->n_head_kv * c->head_dim;
    view->tok_embd = f32_tensor(p->wte, c->n_vocab, C);
    view->output = f32_tensor(p->wout, c->n_vocab, C);
    view->out_norm = p->out_norm;
    for (int l = 0; l < c->n_layer; l++) {
        model_layer *L = &view->layers[l];
        L->attn_norm = p->attn_norm + l * C;
        L->ffn_norm = p->ffn_norm + l * C;
        L->wq = f32_tensor(p->wq + l * QD * C, QD, C);
        L->wk = f32_tensor(p->wk + l * KVD * C, KVD, C);
        L->wv = f32_tensor(p->wv + l * KVD * C, KVD, C);
        L->wo = f32_tensor(p->wo + l * C * QD, C, QD);
        L->w_gate = f32_tensor(p->w_gate + l * F * C, F, C);
        L->w_up = f32_tensor(p->w_up + l * F * C, F, C);
        L->w_down = f32_tensor(p->w_down + l * C * F, C, F);
        if (c->has_qkv_bias) {
            L->bq = p->bq + l * QD;
            L->bk = p->bk + l * KVD;
            L->bv = p->bv + l * KVD;
        }
    }
    return TRL_OK;
}

void policy_view_free(model *view) {
    free(view->layers);
    memset(view, 0, sizeof(*view));
}
