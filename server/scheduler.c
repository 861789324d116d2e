// scheduler.c: the continuous-batching loop over one engine (see scheduler.h).
#include "scheduler.h"

#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forward.h"
#include "tokenizer.h"

#define SCHED_MAX_STOP 4

enum { REQ_QUEUED = 0, REQ_PREFILL, REQ_DECODE, REQ_DONE };

struct sched_req {
    int32_t *prompt;
    int n_prompt, max_tokens;
    sampler_params sp;
    char *stop[SCHED_MAX_STOP];
    int n_stop;
    size_t max_stop;
    // shared with the consumer, under mu
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *text;
    size_t len, cap, safe;
    size_t utf8_ok;  // text[0..utf8_ok) is checked, valid UTF-8
    int done;
    const char *finish;
    char error[256];
    int n_completion;
    int refs;
    atomic_int cancelled;
    // scheduler-private
    int state, slot, n_fed;
    int n_cached;        // prompt tokens whose keys/values the slot already held
    int32_t next_tok;
    sampler smp;
    int has_smp;
    int lp_on, lp_top;   // logprobs requested, alternatives
    sched_logprob *lp;   // (n_lp) under mu
    int n_lp, cap_lp;
    constrain_spec cs;   // constrained decoding (has_cs)
    constrain_state cst;
    int has_cs;
    sched_req *next;
};

struct scheduler {
    const model *m;
    scheduler_config cfg;
    engine en;
    pthread_t thread;
    int running;  // the thread was started and not joined yet
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    sched_req *q_head, *q_tail;
    int q_len;
    sched_req **slots;
    int32_t *hist;        // (n_slots, n_ctx) the tokens behind each slot's cached positions
    // step buffers
    int32_t *tok, *seq, *pos;
    int8_t *want;
    float *logits;
    sched_req **row_req;
    constrain_vocab voc;  // token bytes for constrained requests, built on first use
    int has_voc;
    float *lp_row;        // (V) a row's logits before the mask, for logprobs
    scheduler_stats st;
};

static void req_unref(sched_req *r) {
    pthread_mutex_lock(&r->mu);
    int left = --r->refs;
    pthread_mutex_unlock(&r->mu);
    if (left > 0) return;
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    if (r->has_smp) sampler_free(&r->smp);
    if (r->has_cs) constrain_spec_free(&r->cs);
    free(r->lp);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->prompt);
    free(r->text);
    free(r);
}

void sched_req_want_logprobs(sched_req *r, int top) {
    r->lp_on = 1;
    r->lp_top = top < 0 ? 0 : top > SCHED_MAX_TOP ? SCHED_MAX_TOP : top;
}

int sched_req_logprobs(sched_req *r, int from, sched_logprob **out) {
    *out = NULL;
    pthread_mutex_lock(&r->mu);
    int n = r->n_lp - from;
    if (n > 0 && (*out = malloc(sizeof(sched_logprob) * (size_t)n)))
        memcpy(*out, r->lp + from, sizeof(sched_logprob) * (size_t)n);
    pthread_mutex_unlock(&r->mu);
    return *out ? n : 0;
}

// The log-sum-exp and top alternatives of a raw logits row, and the sampled token's record.
static void record_logprob(sched_req *r, const float *row, int V, int32_t tok, float lse) {
    sched_logprob rec = {tok, row[tok] - lse, 0, {0}, {0}};
    for (int i = 0; i < V; i++) {  // insertion into a short sorted list
        float v = row[i];
        if (rec.n_top == r->lp_top && (rec.n_top == 0 || v <= rec.top_lp[rec.n_top - 1])) continue;
        int k = rec.n_top < r->lp_top ? rec.n_top++ : rec.n_top - 1;
        while (k > 0 && rec.top_lp[k - 1] < v) rec.top_lp[k] = rec.top_lp[k - 1], rec.top_tok[k] = rec.top_tok[k - 1], k--;
        rec.top_lp[k] = v, rec.top_tok[k] = i;
    }
    for (int k = 0; k < rec.n_top; k++) rec.top_lp[k] -= lse;
    pthread_mutex_lock(&r->mu);
    if (r->n_lp == r->cap_lp) {
        int cap = r->cap_lp ? 2 * r->cap_lp : 64;
        sched_logprob *nl = realloc(r->lp, sizeof(sched_logprob) * (size_t)cap);
        if (nl) r->lp = nl, r->cap_lp = cap;
    }
    if (r->n_lp < r->cap_lp) r->lp[r->n_lp++] = rec;
    pthread_mutex_unlock(&r->mu);
}

int sched_req_constrain(sched_req *r, const constrain_spec *spec) {
    if (constrain_spec_copy(&r->cs, spec)) return -1;
    constrain_start(&r->cs, &r->cst);
    r->has_cs = 1;
    return 0;
}

sched_req *sched_req_new(const int32_t *prompt, int n_prompt, const sampler_params *sp, int max_tokens,
                         const char *const *stop, int n_stop) {
    sched_req *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    r->prompt = malloc(sizeof(int32_t) * (size_t)(n_prompt > 0 ? n_prompt : 1));
    if (!r->prompt) {
        free(r);
        return NULL;
    }
    memcpy(r->prompt, prompt, sizeof(int32_t) * (size_t)n_prompt);
    r->n_prompt = n_prompt;
    r->sp = *sp;
    r->max_tokens = max_tokens;
    for (int i = 0; i < n_stop && i < SCHED_MAX_STOP; i++) {
        r->stop[i] = strdup(stop[i]);
        if (!r->stop[i]) break;
        r->n_stop = i + 1;
        if (strlen(stop[i]) > r->max_stop) r->max_stop = strlen(stop[i]);
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->refs = 1;
    r->slot = -1;
    return r;
}

void sched_req_release(sched_req *r) {
    if (!r) return;
    atomic_store(&r->cancelled, 1);
    req_unref(r);
}

int sched_req_take(sched_req *r, size_t *seen, char **out, size_t *out_len, int timeout_ms) {
    *out = NULL;
    *out_len = 0;
    pthread_mutex_lock(&r->mu);
    if (r->safe <= *seen && !r->done) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (r->safe <= *seen && !r->done)
            if (pthread_cond_timedwait(&r->cv, &r->mu, &ts)) break;
    }
    int rc = 0;
    if (r->safe > *seen) {
        size_t n = r->safe - *seen;
        *out = malloc(n + 1);
        if (!*out) rc = -1;
        else {
            memcpy(*out, r->text + *seen, n);
            (*out)[n] = 0;
            *out_len = n;
            *seen = r->safe;
        }
    }
    if (rc == 0 && r->done && *seen >= r->safe) rc = 1;
    pthread_mutex_unlock(&r->mu);
    return rc;
}

const char *sched_req_finish_reason(sched_req *r) { return r->finish ? r->finish : "stop"; }
int sched_req_completion_tokens(sched_req *r) { return r->n_completion; }
int sched_req_prompt_tokens(sched_req *r) { return r->n_prompt; }
int sched_req_cached_tokens(sched_req *r) { return r->n_cached; }
const char *sched_req_error(sched_req *r) { return r->error[0] ? r->error : NULL; }

int scheduler_submit(scheduler *s, sched_req *r) {
    pthread_mutex_lock(&s->mu);
    if (s->q_len >= s->cfg.max_queue || s->stop) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    pthread_mutex_lock(&r->mu);
    r->refs++;
    pthread_mutex_unlock(&r->mu);
    r->next = NULL;
    if (s->q_tail) s->q_tail->next = r;
    else s->q_head = r;
    s->q_tail = r;
    s->q_len++;
    atomic_store(&s->st.queue_depth, s->q_len);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

// Ends a request: publishes everything, frees its slot, drops the scheduler's reference.
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

// Replaces each invalid byte after utf8_ok with U+FFFD, so replies are valid UTF-8 JSON even
// when a model emits stray byte tokens. An incomplete sequence at the end waits for the next
// token unless final. Called with r->mu held. -1 when out of memory.
static int utf8_repair(sched_req *r, int final) {
    size_t i = r->utf8_ok, bad = 0;
    for (size_t k = i; k < r->len;) {
        int m = utf8_seq((const unsigned char *)r->text + k, r->len - k);
        if (m > 0) k += (size_t)m;
        else if (m == 0 && !final) break;
        else bad++, k++;
    }
    if (bad) {
        size_t cap = r->len + 2 * bad + 1;
        char *nt = malloc(cap > r->cap ? cap : r->cap);
        if (!nt) return -1;
        memcpy(nt, r->text, i);
        size_t o = i, k = i;
        while (k < r->len) {
            int m = utf8_seq((const unsigned char *)r->text + k, r->len - k);
            if (m > 0) memcpy(nt + o, r->text + k, (size_t)m), o += (size_t)m, k += (size_t)m;
            else if (m == 0 && !final) {
                memcpy(nt + o, r->text + k, r->len - k), o += r->len - k;
                break;
            } else memcpy(nt + o, "\xef\xbf\xbd", 3), o += 3, k++;
        }
        nt[o] = 0;
        free(r->text);
        r->text = nt;
        r->cap = cap > r->cap ? cap : r->cap;
        r->len = o;
    }
    // advance the checked prefix over complete sequences
    size_t k = r->utf8_ok;
    while (k < r->len) {
        int m = utf8_seq((const unsigned char *)r->text + k, r->len - k);
        if (m <= 0) break;
        k += (size_t)m;
    }
    r->utf8_ok = k;
    return 0;
}

static void req_finish(scheduler *s, sched_req *r, const char *reason, const char *error) {
    if (r->slot >= 0) {  // free the slot first, so that stats agree once the consumer sees `done`
        // (its cached positions stay, for the next prompt that starts the same way)
        s->slots[r->slot] = NULL;
        atomic_fetch_sub(&s->st.active, 1);
        r->slot = -1;
    }
    pthread_mutex_lock(&r->mu);
    if (r->text) utf8_repair(r, 1);
    r->finish = reason;
    if (error) snprintf(r->error, sizeof(r->error), "%.*s", (int)sizeof(r->error) - 1, error);  // (cut to fit)
    r->safe = r->len;
    r->done = 1;
    r->state = REQ_DONE;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    req_unref(r);
}

// Bytes at the end of text that may still become a stop string or finish a UTF-8 character.
static size_t hold_back(const sched_req *r) {
    size_t hold = 0;
    for (int i = 0; i < r->n_stop; i++) {
        size_t t = strlen(r->stop[i]);
        for (size_t k = t - 1; k > hold; k--)
            if (k <= r->len && !memcmp(r->text + r->len - k, r->stop[i], k)) {
                hold = k;
                break;
            }
    }
    // an incomplete UTF-8 sequence at the end
    size_t i = r->len, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)r->text[i - 1] & 0xc0) == 0x80) i--, back++;
    if (i > 0) {
        unsigned char c = (unsigned char)r->text[i - 1];
        size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        if (need > 1 && back + 1 < need && back + 1 > hold) hold = back + 1;
    }
    return hold;
}

// A sampled token: append its text, check eog / stop strings / limits.
static void req_accept(scheduler *s, sched_req *r, int32_t tok) {
    const tokenizer *t = s->m->tok;
    if (tokenizer_is_eog(t, tok)) {
        req_finish(s, r, "stop", NULL);
        return;
    }
    r->n_completion++;
    atomic_fetch_add(&s->st.completion_tokens, 1);
    char piece[256];
    int n = tokenizer_decode(t, tok, 0, piece, sizeof(piece));
    if (n < 0 || n > (int)sizeof(piece)) n = 0;
    pthread_mutex_lock(&r->mu);
    size_t old = r->len;
    if (r->len + (size_t)n + 1 > r->cap) {
        size_t c = r->cap ? r->cap * 2 : 1024;
        while (c < r->len + (size_t)n + 1) c *= 2;
        char *nt = realloc(r->text, c);
        if (!nt) {
            pthread_mutex_unlock(&r->mu);
            req_finish(s, r, "stop", "out of memory");
            return;
        }
        r->text = nt;
        r->cap = c;
    }
    memcpy(r->text + r->len, piece, (size_t)n);
    r->len += (size_t)n;
    r->text[r->len] = 0;
    if (utf8_repair(r, 0)) {
        pthread_mutex_unlock(&r->mu);
        req_finish(s, r, "stop", "out of memory");
        return;
    }
    int stopped = 0;
    size_t from = old > r->max_stop ? old - r->max_stop : 0;
    size_t cut = r->len;
    for (int i = 0; i < r->n_stop; i++) {
        char *hit = strstr(r->text + from, r->stop[i]);
        if (hit && (size_t)(hit - r->text) < cut) {
            cut = (size_t)(hit - r->text);
            stopped = 1;
        }
    }
    if (stopped) {
        r->len = cut;
        r->text[cut] = 0;
    } else {
        size_t h = hold_back(r);
        size_t safe = r->len - h;
        if (safe > r->safe) r->safe = safe;
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    if (stopped) req_finish(s, r, "stop", NULL);
    else if (r->n_completion >= r->max_tokens || s->en.seq_len[r->slot] + 1 >= s->cfg.n_ctx)
        req_finish(s, r, "length", NULL);
    else {
        r->next_tok = tok;
        r->state = REQ_DECODE;
    }
}

// How many leading prompt tokens slot i's cache already holds (at most n_prompt - 1: the last
// one is always fed again, for its logits).
static int shared_prefix(const int32_t *a, const int32_t *b, int lim) {
    int n = 0;
    while (n < lim && a[n] == b[n]) n++;
    return n;
}

static int cached_prefix(const scheduler *s, int i, const sched_req *r) {
    int lim = s->en.seq_len[i] < r->n_prompt - 1 ? s->en.seq_len[i] : r->n_prompt - 1;
    return shared_prefix(s->hist + (size_t)i * (size_t)s->en.kv.n_ctx, r->prompt, lim);
}

// 1 when another slot is prefilling a prompt that shares at least 32 more leading tokens with
// r's than any cache holds now: r waits (the queue with it) until those positions exist and is
// then given a copy, instead of computing them a second time beside it (n choices of one
// request, a burst of clients with the same tools).
static int prefix_in_flight(const scheduler *s, const sched_req *r) {
    int have = 0, pending = 0;
    for (int i = 0; i < s->cfg.n_slots; i++) {
        int c = cached_prefix(s, i, r);
        if (c > have) have = c;
        const sched_req *o = s->slots[i];
        if (!o || o->state != REQ_PREFILL || atomic_load(&o->cancelled)) continue;
        int n = shared_prefix(o->prompt, r->prompt, o->n_prompt < r->n_prompt - 1 ? o->n_prompt : r->n_prompt - 1);
        if (n > pending) pending = n;
    }
    return pending >= have + 32;
}

// Moves queued requests into free slots; drops cancelled ones.
static void admit(scheduler *s) {
    for (int i = 0; i < s->cfg.n_slots; i++) {
        sched_req *r = s->slots[i];
        if (r && atomic_load(&r->cancelled)) req_finish(s, r, "stop", "cancelled");
    }
    pthread_mutex_lock(&s->mu);
    while (s->q_head) {
        sched_req *r = s->q_head;
        // Prompt caching: a slot keeps the cached positions it shares with the prompt (their
        // keys and values are what this prompt would compute: every op is per token or
        // causal, and batch-invariant); at least the last prompt token is fed again, for its
        // logits. The request takes the free slot that discards the fewest cached positions
        // (of equals, the one that keeps most), so one client's history is not thrown away for
        // another's first token; a longer prefix elsewhere is copied in below.
        int best = -1, best_n = -1, best_loss = 0;
        for (int i = 0; i < s->cfg.n_slots; i++) {
            if (s->slots[i]) continue;
            int n = cached_prefix(s, i, r), loss = s->en.seq_len[i] - n;
            if (best < 0 || loss < best_loss || (loss == best_loss && n > best_n)) best = i, best_n = n, best_loss = loss;
        }
        if (best < 0) break;  // no free slot
        if (prefix_in_flight(s, r)) break;  // wait a step or two, then copy it
        s->q_head = r->next;
        if (!s->q_head) s->q_tail = NULL;
        s->q_len--;
        if (atomic_load(&r->cancelled)) {
            req_finish(s, r, "stop", "cancelled");
            continue;
        }
        if (sampler_init(&r->smp, &r->sp, s->m->cfg.n_vocab)) {
            req_finish(s, r, "stop", "out of memory");
            continue;
        }
        r->has_smp = 1;
        // A longer prefix in another slot (busy ones too: their first positions no longer
        // change) is copied over: clients sharing one system prompt and tool list compute it
        // once, and a slot's history survives being passed over.
        int src = best, src_n = best_n;
        for (int i = 0; i < s->cfg.n_slots; i++) {
            int n = i == best ? 0 : cached_prefix(s, i, r);
            if (n > src_n) src = i, src_n = n;
        }
        if (src != best && engine_seq_copy(&s->en, best, src, src_n, NULL) == TRL_OK) {
            const size_t ctx = (size_t)s->en.kv.n_ctx;
            memcpy(s->hist + (size_t)best * ctx, s->hist + (size_t)src * ctx, sizeof(int32_t) * (size_t)src_n);
            best_n = src_n;
            atomic_fetch_add(&s->st.prompt_tokens_copied, src_n);
        }
        r->slot = best;
        r->state = REQ_PREFILL;
        r->n_fed = r->n_cached = best_n;
        engine_seq_truncate(&s->en, best, best_n);
        s->slots[best] = r;
        atomic_fetch_add(&s->st.active, 1);
        atomic_fetch_add(&s->st.prompt_tokens, r->n_prompt);
        atomic_fetch_add(&s->st.prompt_tokens_cached, r->n_cached);
    }
    atomic_store(&s->st.queue_depth, s->q_len);
    pthread_mutex_unlock(&s->mu);
}

// Token k of the next engine step: tok at position pos of slot, its logits wanted or not;
// remembered as the token behind that cached position (prompt caching).
static void batch_add(scheduler *s, int k, int32_t tok, int slot, int pos, int want) {
    s->tok[k] = tok, s->seq[k] = slot, s->pos[k] = pos, s->want[k] = (int8_t)want;
    if (pos >= 0 && pos < s->en.kv.n_ctx) s->hist[(size_t)slot * (size_t)s->en.kv.n_ctx + (size_t)pos] = tok;
}

static void step(scheduler *s) {
    int n = 0, rows = 0, budget = s->cfg.max_batch;
    for (int i = 0; i < s->cfg.n_slots && n < budget; i++) {
        sched_req *r = s->slots[i];
        if (!r || r->state != REQ_DECODE) continue;
        batch_add(s, n++, r->next_tok, i, s->en.seq_len[i], 1);
        s->row_req[rows++] = r;
    }
    for (int i = 0; i < s->cfg.n_slots && n < budget; i++) {
        sched_req *r = s->slots[i];
        if (!r || r->state != REQ_PREFILL) continue;
        int chunk = r->n_prompt - r->n_fed;
        if (chunk > budget - n) chunk = budget - n;
        for (int k = 0; k < chunk; k++) batch_add(s, n++, r->prompt[r->n_fed + k], i, s->en.seq_len[i] + k, 0);
        r->n_fed += chunk;
        if (r->n_fed == r->n_prompt) {
            s->want[n - 1] = 1;
            s->row_req[rows++] = r;
        }
    }
    if (n == 0) return;
    engine_batch b = {n, s->tok, s->seq, s->pos, s->want};
    trl_err e = {{0}};
    atomic_fetch_add(&s->st.steps, 1);
    atomic_fetch_add(&s->st.batch_tokens, n);
    atomic_store(&s->st.last_batch, n);
    if (engine_forward(&s->en, &b, s->logits, &e)) {
        fprintf(stderr, "toolrl serve: engine step failed: %s\n", e.msg);
        for (int i = 0; i < s->cfg.n_slots; i++)
            if (s->slots[i]) req_finish(s, s->slots[i], "stop", e.msg);
        return;
    }
    size_t V = (size_t)s->m->cfg.n_vocab;
    for (int k = 0; k < rows; k++) {
        sched_req *r = s->row_req[k];
        float *row = s->logits + (size_t)k * V;
        float lse = 0;
        if (r->lp_on) {  // on the model's own distribution, before any mask
            float mx = -INFINITY;
            for (size_t i = 0; i < V; i++) mx = row[i] > mx ? row[i] : mx;
            double sum = 0;
            for (size_t i = 0; i < V; i++) sum += exp((double)(row[i] - mx));
            lse = mx + (float)log(sum);
        }
        float *raw = r->lp_on && r->has_cs ? s->lp_row : row;
        if (r->lp_on && r->has_cs) memcpy(raw, row, sizeof(float) * V);
        if (r->has_cs) {
            if (!s->has_voc && constrain_vocab_init(&s->voc, s->m->tok, &e) == TRL_OK) s->has_voc = 1;
            if (!s->has_voc || constrain_mask(&r->cs, &r->cst, &s->voc, row) == 0) {
                req_finish(s, r, "stop", s->has_voc ? "no token satisfies the output constraint" : e.msg);
                continue;
            }
        }
        int32_t tok = sampler_sample(&r->smp, row);
        if (r->lp_on) record_logprob(r, raw, (int)V, tok, lse);
        if (r->has_cs && !s->voc.is_eog[tok]) constrain_feed(&r->cs, &r->cst, s->voc.bytes + s->voc.off[tok], s->voc.len[tok]);
        req_accept(s, r, tok);
    }
}

static void *loop(void *arg) {
    scheduler *s = arg;
    if (s->cfg.n_threads > 0) omp_set_num_threads(s->cfg.n_threads);  // per-thread setting in OpenMP
    for (;;) {
        pthread_mutex_lock(&s->mu);
        for (;;) {
            if (s->stop) break;
            int busy = s->q_head != NULL;
            for (int i = 0; i < s->cfg.n_slots && !busy; i++) busy = s->slots[i] != NULL;
            if (busy) break;
            pthread_cond_wait(&s->cv, &s->mu);
        }
        int stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop) break;
        admit(s);
        step(s);
    }
    // shutdown: finish everything still held
    for (int i = 0; i < s->cfg.n_slots; i++)
        if (s->slots[i]) req_finish(s, s->slots[i], "stop", "server shutting down");
    pthread_mutex_lock(&s->mu);
    while (s->q_head) {
        sched_req *r = s->q_head;
        s->q_head = r->next;
        s->q_len--;
        pthread_mutex_unlock(&s->mu);
        req_finish(s, r, "stop", "server shutting down");
        pthread_mutex_lock(&s->mu);
    }
    s->q_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int scheduler_init(scheduler **out, const model *m, const scheduler_config *cfg, trl_err *e) {
    scheduler *s = calloc(1, sizeof(*s));
    if (!s) return trl_errf(e, "out of memory");
    s->m = m;
    s->cfg = *cfg;
    if (s->cfg.n_slots < 1) s->cfg.n_slots = 1;
    if (s->cfg.max_batch < s->cfg.n_slots) s->cfg.max_batch = s->cfg.n_slots;
    if (s->cfg.max_queue < 1) s->cfg.max_queue = 1;
    int ns = s->cfg.n_slots, mb = s->cfg.max_batch;
    if (engine_init(&s->en, m, &ops_cpu, ns, s->cfg.n_ctx, mb, e)) {
        free(s);
        return TRL_ERR;
    }
    s->slots = calloc((size_t)ns, sizeof(*s->slots));
    s->row_req = calloc((size_t)ns, sizeof(*s->row_req));
    s->hist = malloc(sizeof(int32_t) * (size_t)ns * (size_t)s->en.kv.n_ctx);
    s->tok = malloc(sizeof(int32_t) * (size_t)mb);
    s->seq = malloc(sizeof(int32_t) * (size_t)mb);
    s->pos = malloc(sizeof(int32_t) * (size_t)mb);
    s->want = malloc((size_t)mb);
    s->logits = malloc(sizeof(float) * (size_t)ns * (size_t)m->cfg.n_vocab);
    s->lp_row = malloc(sizeof(float) * (size_t)m->cfg.n_vocab);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (!s->slots || !s->row_req || !s->hist || !s->tok || !s->seq || !s->pos || !s->want || !s->logits || !s->lp_row ||
        pthread_create(&s->thread, NULL, loop, s)) {
        scheduler_free(s);
        return trl_errf(e, "out of memory");
    }
    s->running = 1;
    *out = s;
    return TRL_OK;
}

void scheduler_shutdown(scheduler *s) {
    if (!s || !s->running) return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->running = 0;
}

void scheduler_free(scheduler *s) {
    if (!s) return;
    scheduler_shutdown(s);
    engine_free(&s->en);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->slots);
    free(s->row_req);
    free(s->hist);
    free(s->tok);
    free(s->seq);
    free(s->pos);
    free(s->want);
    free(s->logits);
    if (s->has_voc) constrain_vocab_free(&s->voc);
    free(s->lp_row);
    free(s);
}

const scheduler_stats *scheduler_get_stats(const scheduler *s) { return &s->st; }
int scheduler_n_ctx(const scheduler *s) { return s->cfg.n_ctx; }
