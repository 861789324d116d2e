// generate.c: the one batched generator: slots, prompt caching, steps, sampling, constraint
// masks, log-probabilities and the stop rules (see generate.h).
#include "model/generate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer.h"
#include "protocol/tags.h"

static void slot_clear_request(gen_slot *s) {
    if (s->has_smp) sampler_free(&s->smp);
    if (s->has_cs) constrain_spec_free(&s->cs);
    for (int i = 0; i < s->n_stop; i++) free(s->stop[i]);
    s->has_smp = s->has_cs = s->n_stop = 0;
    s->max_stop = 0;
}

int generator_init(generator *g, const model *m, const ops *be, int n_slots, int n_ctx, int max_batch, trl_err *e) {
    memset(g, 0, sizeof(*g));
    if (n_slots < 1 || n_ctx < 2) return trl_errf(e, "generator: bad sizes (%d slots, context %d)", n_slots, n_ctx);
    if (max_batch < n_slots) max_batch = n_slots;
    if (engine_init(&g->en, m, be ? be : &ops_cpu, n_slots, n_ctx, max_batch, e)) return TRL_ERR;
    g->m = m;
    g->n_slots = n_slots, g->n_ctx = g->en.kv.n_ctx, g->max_batch = max_batch;
    size_t V = (size_t)m->cfg.n_vocab, S = (size_t)n_slots, B = (size_t)max_batch;
    g->slots = calloc(S, sizeof(gen_slot));
    g->hist = malloc(sizeof(int32_t) * S * (size_t)g->n_ctx);
    g->tok = malloc(sizeof(int32_t) * B);
    g->seq = malloc(sizeof(int32_t) * B);
    g->pos = malloc(sizeof(int32_t) * B);
    g->want = malloc(B);
    g->row_slot = malloc(sizeof(int) * S);
    g->logits = malloc(sizeof(float) * S * V);
    g->lp_row = malloc(sizeof(float) * V);
    if (!g->slots || !g->hist || !g->tok || !g->seq || !g->pos || !g->want || !g->row_slot || !g->logits || !g->lp_row) {
        generator_free(g);
        return trl_errf(e, "generator: out of memory");
    }
    return TRL_OK;
}

void generator_free(generator *g) {
    if (g->en.m) engine_free(&g->en);
    for (int i = 0; g->slots && i < g->n_slots; i++) {
        gen_slot *s = &g->slots[i];
        slot_clear_request(s);
        free(s->prompt), free(s->tokens), free(s->text), free(s->lp);
    }
    if (g->has_voc) constrain_vocab_free(&g->voc);
    free(g->slots), free(g->hist), free(g->tok), free(g->seq), free(g->pos), free(g->want), free(g->row_slot);
    free(g->logits), free(g->lp_row);
    memset(g, 0, sizeof(*g));
}

void generator_forget(generator *g) {
    for (int i = 0; i < g->n_slots; i++)
        if (g->slots[i].state == GEN_FREE || g->slots[i].state == GEN_DONE) engine_seq_reset(&g->en, i);
}

int generator_busy(const generator *g) {
    for (int i = 0; i < g->n_slots; i++)
        if (g->slots[i].state == GEN_PREFILL || g->slots[i].state == GEN_DECODE) return 1;
    return 0;
}

const char *generator_finish_name(gen_finish f) { return f == GEN_LENGTH ? "length" : "stop"; }

// ---- prompt caching -----------------------------------------------------------------------

static int shared_prefix(const int32_t *a, const int32_t *b, int lim) {
    int n = 0;
    while (n < lim && a[n] == b[n]) n++;
    return n;
}

// Leading prompt positions slot i's cache holds (at most n - 1: the last is fed again).
static int cached_prefix(const generator *g, int i, const int32_t *prompt, int n) {
    int lim = g->en.seq_len[i] < n - 1 ? g->en.seq_len[i] : n - 1;
    return shared_prefix(g->hist + (size_t)i * (size_t)g->n_ctx, prompt, lim);
}

// 1 when another slot is prefilling a prompt sharing at least 32 more leading tokens with this
// one than any cache holds now.
static int prefix_in_flight(const generator *g, const int32_t *prompt, int n) {
    int have = 0, pending = 0;
    for (int i = 0; i < g->n_slots; i++) {
        int c = cached_prefix(g, i, prompt, n);
        if (c > have) have = c;
        const gen_slot *o = &g->slots[i];
        if (o->state != GEN_PREFILL) continue;
        int k = shared_prefix(o->prompt, prompt, o->n_prompt < n - 1 ? o->n_prompt : n - 1);
        if (k > pending) pending = k;
    }
    return pending >= have + 32;
}

static int check_params(const generator *g, const gen_params *p, trl_err *e) {
    if (p->n_prompt < 1 || p->n_prompt + 1 > g->n_ctx)
        return trl_errf(e, "generator: a prompt of %d tokens does not fit the context (%d)", p->n_prompt, g->n_ctx);
    if (p->max_tokens < 1) return trl_errf(e, "generator: max_tokens must be at least 1");
    return TRL_OK;
}

int generator_admit(generator *g, const gen_params *p, trl_err *e) {
    if (check_params(g, p, e)) return -3;
    int best = -1, best_n = -1, best_loss = 0;
    for (int i = 0; i < g->n_slots; i++) {
        if (g->slots[i].state != GEN_FREE) continue;
        int n = cached_prefix(g, i, p->prompt, p->n_prompt), loss = g->en.seq_len[i] - n;
        if (best < 0 || loss < best_loss || (loss == best_loss && n > best_n)) best = i, best_n = n, best_loss = loss;
    }
    if (best < 0) return -1;
    if (prefix_in_flight(g, p->prompt, p->n_prompt)) return -2;
    return generator_start(g, best, p, e) ? -3 : best;
}

int generator_start(generator *g, int slot, const gen_params *p, trl_err *e) {
    if (check_params(g, p, e)) return TRL_ERR;
    gen_slot *s = &g->slots[slot];
    if (s->state != GEN_FREE) return trl_errf(e, "generator: slot %d is busy", slot);
    slot_clear_request(s);
    int32_t *prompt = realloc(s->prompt, sizeof(int32_t) * (size_t)p->n_prompt);
    if (!prompt) return trl_errf(e, "generator: out of memory");
    s->prompt = prompt;
    memcpy(s->prompt, p->prompt, sizeof(int32_t) * (size_t)p->n_prompt);
    s->n_prompt = p->n_prompt;
    if (sampler_init(&s->smp, &p->sp, g->m->cfg.n_vocab)) return trl_errf(e, "generator: out of memory");
    s->has_smp = 1;
    for (int i = 0; i < p->n_stop && i < GEN_MAX_STOP; i++) {
        if (!p->stop[i] || !p->stop[i][0]) continue;
        if (!(s->stop[s->n_stop] = strdup(p->stop[i]))) return slot_clear_request(s), trl_errf(e, "out of memory");
        size_t l = strlen(p->stop[i]);
        if (l > s->max_stop) s->max_stop = l;
        s->n_stop++;
    }
    if (p->constraint) {
        if (!g->has_voc) {
            if (constrain_vocab_init(&g->voc, g->m->tok, e)) return slot_clear_request(s), TRL_ERR;
            g->has_voc = 1;
        }
        if (constrain_spec_copy(&s->cs, p->constraint)) return slot_clear_request(s), trl_errf(e, "out of memory");
        constrain_start(&s->cs, &s->cst);
        s->has_cs = 1;
    }
    s->max_tokens = p->max_tokens, s->stop_at_tool_call = p->stop_at_tool_call;
    s->want_lp = p->logprobs;
    s->top_lp = p->top_logprobs < 0 ? 0 : p->top_logprobs > GEN_MAX_TOP ? GEN_MAX_TOP : p->top_logprobs;
    s->n_tokens = s->n_text_tokens = s->n_lp = 0;
    s->len = s->safe = s->utf8_ok = 0;
    if (!s->text && !(s->text = malloc(s->cap = 256))) return slot_clear_request(s), trl_errf(e, "out of memory");
    s->text[0] = 0;
    s->finish = GEN_RUNNING, s->error[0] = 0;
    // Prompt caching: keep what this slot shares; copy a longer prefix from another slot (busy
    // ones too: their first positions no longer change).
    int keep = cached_prefix(g, slot, s->prompt, s->n_prompt), src = slot, src_n = keep;
    for (int i = 0; i < g->n_slots; i++) {
        int n = i == slot ? 0 : cached_prefix(g, i, s->prompt, s->n_prompt);
        if (n > src_n) src = i, src_n = n;
    }
    s->n_copied = 0;
    if (src != slot && engine_seq_copy(&g->en, slot, src, src_n, NULL) == TRL_OK) {
        const size_t ctx = (size_t)g->n_ctx;
        memcpy(g->hist + (size_t)slot * ctx, g->hist + (size_t)src * ctx, sizeof(int32_t) * (size_t)src_n);
        keep = s->n_copied = src_n;
        g->prompt_tokens_copied += src_n;
    }
    engine_seq_truncate(&g->en, slot, keep);
    s->n_fed = s->n_cached = keep;
    s->state = GEN_PREFILL;
    g->prompt_tokens += s->n_prompt;
    g->prompt_tokens_cached += keep;
    return TRL_OK;
}

static void slot_end(gen_slot *s, gen_finish f, const char *error) {
    s->state = GEN_DONE;
    s->finish = f;
    if (error) snprintf(s->error, sizeof(s->error), "%.*s", (int)sizeof(s->error) - 1, error);
    s->safe = s->len;
}

void generator_cancel(generator *g, int slot, const char *reason) {
    gen_slot *s = &g->slots[slot];
    if (s->state == GEN_PREFILL || s->state == GEN_DECODE) slot_end(s, GEN_FAILED, reason);
}

void generator_release(generator *g, int slot) {
    gen_slot *s = &g->slots[slot];
    if (s->state == GEN_PREFILL || s->state == GEN_DECODE) slot_end(s, GEN_FAILED, "released");
    slot_clear_request(s);
    s->state = GEN_FREE;
}

// ---- text and stop rules ------------------------------------------------------------------

// Length of the valid UTF-8 sequence at p (n bytes available): 1..4; 0 if it is incomplete
// (a prefix of a valid sequence running past n); -1 if invalid.
static int utf8_seq(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    if (c < 0x80) return 1;
    int need;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 2;
    else if (c >= 0xe0 && c <= 0xef) need = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4) need = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else return -1;
    for (int k = 1; k < need; k++) {
        if ((size_t)k >= n) return 0;
        unsigned b = p[k];
        if (k == 1 ? (b < lo || b > hi) : (b & 0xc0) != 0x80) return -1;
    }
    return need;
}

// Replaces each invalid byte after utf8_ok with U+FFFD, so text is valid UTF-8 even when a
// model emits stray byte tokens. An incomplete sequence at the end waits for the next token
// unless final. -1 when out of memory.
static int utf8_repair(gen_slot *s, int final) {
    size_t bad = 0;
    for (size_t k = s->utf8_ok; k < s->len;) {
        int m = utf8_seq((const unsigned char *)s->text + k, s->len - k);
        if (m > 0) k += (size_t)m;
        else if (m == 0 && !final) break;
        else bad++, k++;
    }
    if (bad) {
        size_t cap = s->len + 2 * bad + 1;
        char *nt = malloc(cap > s->cap ? cap : s->cap);
        if (!nt) return -1;
        memcpy(nt, s->text, s->utf8_ok);
        size_t o = s->utf8_ok, k = s->utf8_ok;
        while (k < s->len) {
            int m = utf8_seq((const unsigned char *)s->text + k, s->len - k);
            if (m > 0) memcpy(nt + o, s->text + k, (size_t)m), o += (size_t)m, k += (size_t)m;
            else if (m == 0 && !final) {
                memcpy(nt + o, s->text + k, s->len - k), o += s->len - k;
                break;
            } else memcpy(nt + o, "\xef\xbf\xbd", 3), o += 3, k++;
        }
        nt[o] = 0;
        free(s->text);
        s->text = nt;
        s->cap = cap > s->cap ? cap : s->cap;
        s->len = o;
    }
    size_t k = s->utf8_ok;
    while (k < s->len) {
        int m = utf8_seq((const unsigned char *)s->text + k, s->len - k);
        if (m <= 0) break;
        k += (size_t)m;
    }
    s->utf8_ok = k;
    return 0;
}

// Bytes at the end of text that may still become a stop string or finish a UTF-8 character.
static size_t hold_back(const gen_slot *s) {
    size_t hold = 0;
    for (int i = 0; i < s->n_stop; i++) {
        size_t t = strlen(s->stop[i]);
        for (size_t k = t - 1; k > hold; k--)
            if (k <= s->len && !memcmp(s->text + s->len - k, s->stop[i], k)) {
                hold = k;
                break;
            }
    }
    size_t i = s->len, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s->text[i - 1] & 0xc0) == 0x80) i--, back++;
    if (i > 0) {
        unsigned char c = (unsigned char)s->text[i - 1];
        size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        if (need > 1 && back + 1 < need && back + 1 > hold) hold = back + 1;
    }
    return hold;
}

static int push_token(gen_slot *s, int32_t tok) {
    if (s->n_tokens == s->cap_tokens) {
        int cap = s->cap_tokens ? 2 * s->cap_tokens : 256;
        int32_t *nt = realloc(s->tokens, sizeof(int32_t) * (size_t)cap);
        if (!nt) return -1;
        s->tokens = nt, s->cap_tokens = cap;
    }
    s->tokens[s->n_tokens++] = tok;
    return 0;
}

// A sampled token through the stop rules (generate.h).
static void slot_accept(generator *g, int slot, int32_t tok) {
    gen_slot *s = &g->slots[slot];
    const tokenizer *t = g->m->tok;
    if (push_token(s, tok)) return slot_end(s, GEN_FAILED, "out of memory");
    if (tokenizer_is_eog(t, tok)) {  // rule 1
        utf8_repair(s, 1);
        return slot_end(s, GEN_STOP, NULL);
    }
    s->n_text_tokens++;
    g->completion_tokens++;
    char piece[256];
    int n = tokenizer_decode(t, tok, 0, piece, sizeof(piece));
    if (n < 0 || n > (int)sizeof(piece)) n = 0;
    size_t old = s->len;
    if (s->len + (size_t)n + 1 > s->cap) {  // rule 2
        size_t c = s->cap ? s->cap * 2 : 256;
        while (c < s->len + (size_t)n + 1) c *= 2;
        char *nt = realloc(s->text, c);
        if (!nt) return slot_end(s, GEN_FAILED, "out of memory");
        s->text = nt, s->cap = c;
    }
    memcpy(s->text + s->len, piece, (size_t)n);
    s->len += (size_t)n;
    s->text[s->len] = 0;
    if (utf8_repair(s, 0)) return slot_end(s, GEN_FAILED, "out of memory");
    size_t from = old > s->max_stop ? old - s->max_stop : 0, cut = s->len;
    for (int i = 0; i < s->n_stop; i++) {  // rule 3
        char *hit = strstr(s->text + from, s->stop[i]);
        if (hit && (size_t)(hit - s->text) < cut) cut = (size_t)(hit - s->text);
    }
    if (cut < s->len) {
        s->len = cut;
        s->text[cut] = 0;
        if (s->utf8_ok > cut) s->utf8_ok = cut;
        utf8_repair(s, 1);
        return slot_end(s, GEN_STOP, NULL);
    }
    if (s->stop_at_tool_call) {  // rule 4
        size_t tl = TAG_LEN(TAG_TOOL_CALL_END), at = old > tl ? old - tl : 0;
        if (strstr(s->text + at, TAG_TOOL_CALL_END)) {
            utf8_repair(s, 1);
            return slot_end(s, GEN_STOP, NULL);
        }
    }
    if (s->n_text_tokens >= s->max_tokens || g->en.seq_len[slot] + 1 >= g->n_ctx) {  // rule 5
        utf8_repair(s, 1);
        return slot_end(s, GEN_LENGTH, NULL);
    }
    size_t safe = s->len - hold_back(s);
    if (safe > s->safe) s->safe = safe;
    s->next_tok = tok;
    s->state = GEN_DECODE;
}

// The log-sum-exp and top alternatives of a raw logits row, and the sampled token's record.
static void record_logprob(gen_slot *s, const float *row, int V, int32_t tok, float lse) {
    gen_logprob rec = {.tok = tok, .logprob = row[tok] - lse};
    for (int i = 0; i < V; i++) {  // insertion into a short sorted list
        float v = row[i];
        if (rec.n_top == s->top_lp && (rec.n_top == 0 || v <= rec.top_lp[rec.n_top - 1])) continue;
        int k = rec.n_top < s->top_lp ? rec.n_top++ : rec.n_top - 1;
        while (k > 0 && rec.top_lp[k - 1] < v) rec.top_lp[k] = rec.top_lp[k - 1], rec.top_tok[k] = rec.top_tok[k - 1], k--;
        rec.top_lp[k] = v, rec.top_tok[k] = i;
    }
    for (int k = 0; k < rec.n_top; k++) rec.top_lp[k] -= lse;
    if (s->n_lp == s->cap_lp) {
        int cap = s->cap_lp ? 2 * s->cap_lp : 64;
        gen_logprob *nl = realloc(s->lp, sizeof(gen_logprob) * (size_t)cap);
        if (!nl) return;  // the record is dropped, the reply goes on
        s->lp = nl, s->cap_lp = cap;
    }
    s->lp[s->n_lp++] = rec;
}

// ---- the step -----------------------------------------------------------------------------

// Token k of the step: tok at position pos of slot, logits wanted or not; remembered as the
// token behind that cached position.
static void batch_add(generator *g, int k, int32_t tok, int slot, int pos, int want) {
    g->tok[k] = tok, g->seq[k] = slot, g->pos[k] = pos, g->want[k] = (int8_t)want;
    if (pos >= 0 && pos < g->n_ctx) g->hist[(size_t)slot * (size_t)g->n_ctx + (size_t)pos] = tok;
}

int generator_step(generator *g, trl_err *e) {
    int n = 0, rows = 0, budget = g->max_batch, in_step = 0;
    for (int i = 0; i < g->n_slots && n < budget; i++) {
        gen_slot *s = &g->slots[i];
        if (s->state != GEN_DECODE) continue;
        batch_add(g, n++, s->next_tok, i, g->en.seq_len[i], 1);
        g->row_slot[rows++] = i;
        in_step++;
    }
    for (int i = 0; i < g->n_slots && n < budget; i++) {
        gen_slot *s = &g->slots[i];
        if (s->state != GEN_PREFILL) continue;
        int chunk = s->n_prompt - s->n_fed;
        if (chunk > budget - n) chunk = budget - n;
        for (int k = 0; k < chunk; k++) batch_add(g, n++, s->prompt[s->n_fed + k], i, g->en.seq_len[i] + k, 0);
        s->n_fed += chunk;
        in_step++;
        if (s->n_fed == s->n_prompt) {
            g->want[n - 1] = 1;
            g->row_slot[rows++] = i;
        }
    }
    if (n == 0) return 0;
    engine_batch b = {n, g->tok, g->seq, g->pos, g->want};
    g->steps++;
    g->batch_tokens += n;
    g->last_batch = n;
    if (engine_forward(&g->en, &b, g->logits, e)) {
        for (int i = 0; i < g->n_slots; i++) generator_cancel(g, i, e->msg);
        return -1;
    }
    size_t V = (size_t)g->m->cfg.n_vocab;
    for (int k = 0; k < rows; k++) {
        int slot = g->row_slot[k];
        gen_slot *s = &g->slots[slot];
        float *row = g->logits + (size_t)k * V;
        float lse = 0;
        if (s->want_lp) {  // on the model's own distribution, before any mask
            float mx = -INFINITY;
            for (size_t i = 0; i < V; i++) mx = row[i] > mx ? row[i] : mx;
            double sum = 0;
            for (size_t i = 0; i < V; i++) sum += exp((double)(row[i] - mx));
            lse = mx + (float)log(sum);
        }
        float *raw = s->want_lp && s->has_cs ? g->lp_row : row;
        if (raw != row) memcpy(raw, row, sizeof(float) * V);
        if (s->has_cs && constrain_mask(&s->cs, &s->cst, &g->voc, row) == 0) {
            slot_end(s, GEN_FAILED, "no token satisfies the output constraint");
            continue;
        }
        int32_t tok = sampler_sample(&s->smp, row);
        if (s->want_lp) record_logprob(s, raw, (int)V, tok, lse);
        if (s->has_cs && !g->voc.is_eog[tok]) constrain_feed(&s->cs, &s->cst, g->voc.bytes + g->voc.off[tok], g->voc.len[tok]);
        slot_accept(g, slot, tok);
    }
    return in_step;
}

// ---- the constrained decoder's vocabulary (see generate.h) --------------------------------------

int constrain_vocab_init(constrain_vocab *v, const tokenizer *t, trl_err *e) {
    memset(v, 0, sizeof(*v));
    int n = tokenizer_n_vocab(t);
    v->n = n;
    v->off = calloc((size_t)n, sizeof(uint32_t));
    v->len = calloc((size_t)n, sizeof(uint32_t));
    v->is_eog = calloc((size_t)n, 1);
    v->special = calloc((size_t)n, 1);
    size_t cap = (size_t)n * 8, used = 0;
    v->bytes = malloc(cap);
    if (!v->off || !v->len || !v->is_eog || !v->special || !v->bytes) {
        constrain_vocab_free(v);
        return trl_errf(e, "constrain: out of memory");
    }
    for (int i = 0; i < n; i++) {
        v->is_eog[i] = (uint8_t)tokenizer_is_eog(t, i);
        int ty = tokenizer_token_type(t, i);
        v->special[i] = ty == TOKEN_CONTROL || ty == TOKEN_UNUSED || ty == TOKEN_UNKNOWN;
        char buf[256];
        int len = v->special[i] ? 0 : tokenizer_decode(t, i, 0, buf, sizeof(buf));
        if (len < 0 || len > (int)sizeof(buf)) len = 0;
        if (used + (size_t)len > cap) {
            cap = 2 * cap + (size_t)len;
            char *nb = realloc(v->bytes, cap);
            if (!nb) {
                constrain_vocab_free(v);
                return trl_errf(e, "constrain: out of memory");
            }
            v->bytes = nb;
        }
        memcpy(v->bytes + used, buf, (size_t)len);
        v->off[i] = (uint32_t)used;
        v->len[i] = (uint32_t)len;
        used += (size_t)len;
    }
    return TRL_OK;
}
