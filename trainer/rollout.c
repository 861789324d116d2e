// rollout.c: batched sampling of completions (see rollout.h).
#include "rollout.h"

#include <stdlib.h>
#include <string.h>

#include "sampler.h"
#include "strbuf.h"
#include "tokenizer.h"

int rollout_init(rollout *r, const model *m, int max_seqs, int n_ctx, int max_new, trl_err *e) {
    memset(r, 0, sizeof(*r));
    if (max_seqs < 1 || max_new < 1 || n_ctx <= max_new) return trl_errf(e, "rollout: bad sizes");
    int max_batch = 512 > max_seqs ? 512 : max_seqs;
    if (engine_init(&r->en, m, &ops_cpu, max_seqs, n_ctx, max_batch, e)) return TRL_ERR;
    r->max_seqs = max_seqs, r->n_ctx = n_ctx, r->max_new = max_new;
    size_t V = (size_t)m->cfg.n_vocab, S = (size_t)max_seqs;
    r->logits = malloc(sizeof(float) * V * S);
    r->tok = malloc(sizeof(int32_t) * S);
    r->seq = malloc(sizeof(int32_t) * S);
    r->pos = malloc(sizeof(int32_t) * S);
    r->want = malloc(S);
    r->who = malloc(sizeof(int) * S);
    r->out = calloc(S, sizeof(rollout_seq));
    if (!r->logits || !r->tok || !r->seq || !r->pos || !r->want || !r->who || !r->out) {
        rollout_free(r);
        return trl_errf(e, "rollout: out of memory");
    }
    for (int i = 0; i < max_seqs; i++) {
        r->out[i].tok = malloc(sizeof(int32_t) * (size_t)max_new);
        if (!r->out[i].tok) {
            rollout_free(r);
            return trl_errf(e, "rollout: out of memory");
        }
    }
    return TRL_OK;
}

void rollout_free(rollout *r) {
    if (r->en.m) engine_free(&r->en);
    for (int i = 0; r->out && i < r->max_seqs; i++) {
        free(r->out[i].tok);
        free(r->out[i].text);
    }
    free(r->out);
    free(r->logits);
    free(r->tok);
    free(r->seq);
    free(r->pos);
    free(r->want);
    free(r->who);
    memset(r, 0, sizeof(*r));
}

int rollout_run(rollout *r, const int32_t *const *prompts, const int *n_prompt, int n_prompts, int n_samples,
                float temperature, uint64_t seed, trl_err *e) {
    const model *m = r->en.m;
    int V = m->cfg.n_vocab, S = n_prompts * n_samples, rc = TRL_OK;
    if (n_prompts < 1 || n_samples < 1 || S > r->max_seqs)
        return trl_errf(e, "rollout: %d x %d sequences (room for %d)", n_prompts, n_samples, r->max_seqs);
    for (int i = 0; i < n_prompts; i++)
        if (n_prompt[i] < 1 || n_prompt[i] >= r->n_ctx - 1)
            return trl_errf(e, "rollout: prompt %d has %d tokens (context %d)", i, n_prompt[i], r->n_ctx);
    sampler *smp = calloc((size_t)S, sizeof(sampler));
    strbuf *txt = calloc((size_t)S, sizeof(strbuf));
    if (!smp || !txt) {
        free(smp), free(txt);
        return trl_errf(e, "rollout: out of memory");
    }
    for (int s = 0; s < S; s++) {
        sampler_params sp = {temperature, 0, 1.0f, seed + (uint64_t)s};
        if (sampler_init(&smp[s], &sp, V)) rc = trl_errf(e, "rollout: out of memory");
        strbuf_init(&txt[s]);
        rollout_seq *o = &r->out[s];
        free(o->text);
        o->text = NULL, o->n_tok = 0, o->finished = 0;
    }
    // Prefill: each prompt once, into its first sample's sequence; the others get a copy of
    // that cache (what their own prefill would write, bit for bit). Every sample draws its
    // first token from the prompt's last logits with its own sampler.
    int32_t *next = malloc(sizeof(int32_t) * (size_t)S);
    int *live = malloc(sizeof(int) * (size_t)S);
    if (!next || !live) rc = trl_errf(e, "rollout: out of memory");
    for (int p = 0; p < n_prompts && rc == TRL_OK; p++) {
        int s0 = p * n_samples;
        engine_seq_reset(&r->en, s0);
        if (engine_feed(&r->en, s0, prompts[p], n_prompt[p], r->logits, e)) rc = TRL_ERR;
        for (int s = s0; s < s0 + n_samples && rc == TRL_OK; s++) {
            if (s > s0 && engine_seq_copy(&r->en, s, s0, n_prompt[p], e)) rc = TRL_ERR;
            else next[s] = sampler_sample(&smp[s], r->logits), live[s] = 1;
        }
    }
    while (rc == TRL_OK) {
        if (r->abort && *r->abort) {
            rc = trl_errf(e, "rollout: aborted");
            break;
        }
        int nb = 0;
        for (int s = 0; s < S; s++) {
            if (!live[s]) continue;
            rollout_seq *o = &r->out[s];
            int32_t t = next[s];
            o->tok[o->n_tok++] = t;
            if (tokenizer_is_eog(m->tok, t)) {
                o->finished = 1, live[s] = 0;
                continue;
            }
            char piece[256];
            int len = tokenizer_decode(m->tok, t, 0, piece, sizeof(piece));
            if (len > 0 && len <= (int)sizeof(piece)) strbuf_add(&txt[s], piece, (size_t)len);
            if (txt[s].len >= 12 && strbuf_find(txt[s].buf + txt[s].len - (txt[s].len < 24 ? txt[s].len : 24),
                                                 txt[s].len < 24 ? txt[s].len : 24, "</tool_call>", 12)) {
                o->finished = 1, live[s] = 0;
                continue;
            }
            if (o->n_tok >= r->max_new || r->en.seq_len[s] + 1 >= r->n_ctx) {
                live[s] = 0;
                continue;
            }
            r->tok[nb] = t, r->seq[nb] = s, r->pos[nb] = r->en.seq_len[s], r->want[nb] = 1, r->who[nb] = s;
            nb++;
        }
        if (nb == 0) break;
        engine_batch b = {nb, r->tok, r->seq, r->pos, r->want};
        if (engine_forward(&r->en, &b, r->logits, e)) {
            rc = TRL_ERR;
            break;
        }
        for (int i = 0; i < nb; i++) next[r->who[i]] = sampler_sample(&smp[r->who[i]], r->logits + (size_t)i * V);
    }
    for (int s = 0; s < S; s++) {
        if (rc == TRL_OK) {
            strbuf_add(&txt[s], "", 0);
            r->out[s].text = strbuf_take(&txt[s]);
            if (!r->out[s].text) r->out[s].text = strdup("");
            if (!r->out[s].text) rc = trl_errf(e, "rollout: out of memory");
        }
        strbuf_free(&txt[s]);
        sampler_free(&smp[s]);
    }
    free(next), free(live), free(smp), free(txt);
    return rc;
}
