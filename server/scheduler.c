// scheduler.c: the server's continuous batching: a bounded queue of requests, one thread that
// admits them into the generator's slots (model/generate.h) and steps it, and the hand-over of
// each request's text and log-probabilities to its consumer (an HTTP thread) as they grow.
#include "server/scheduler.h"

#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/generate.h"

#define SCHED_MAX_STOP 4

struct sched_req {
    int32_t *prompt;
    int n_prompt, max_tokens;
    sampler_params sp;
    char *stop[SCHED_MAX_STOP];
    int n_stop;
    constrain_spec cs;  // constrained decoding (has_cs), handed to the generator at admission
    int has_cs;
    int lp_on, lp_top;  // logprobs requested, alternatives
    // shared with the consumer, under mu: what the generator has made final so far
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *text;
    size_t len, cap;
    int done;
    const char *finish;
    char error[256];
    int n_completion;
    int n_cached;        // prompt tokens whose keys/values a slot already held
    sched_logprob *lp;   // (n_lp)
    int n_lp, cap_lp;
    int refs;
    atomic_int cancelled;
    // scheduler-private
    int slot;
    sched_req *next;
};

struct scheduler {
    const model *m;
    scheduler_config cfg;
    generator gen;
    sched_req **slot_req;  // (n_slots) the request each generator slot runs, or NULL
    pthread_t thread;
    int running;  // the thread was started and not joined yet
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    sched_req *q_head, *q_tail;
    int q_len;
    scheduler_stats st;
};

static void req_unref(sched_req *r) {
    pthread_mutex_lock(&r->mu);
    int left = --r->refs;
    pthread_mutex_unlock(&r->mu);
    if (left > 0) return;
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
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

int sched_req_constrain(sched_req *r, const constrain_spec *spec) {
    if (constrain_spec_copy(&r->cs, spec)) return -1;
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
    if (r->len <= *seen && !r->done) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (r->len <= *seen && !r->done)
            if (pthread_cond_timedwait(&r->cv, &r->mu, &ts)) break;
    }
    int rc = 0;
    if (r->len > *seen) {
        size_t n = r->len - *seen;
        *out = malloc(n + 1);
        if (!*out) rc = -1;
        else {
            memcpy(*out, r->text + *seen, n);
            (*out)[n] = 0;
            *out_len = n;
            *seen = r->len;
        }
    }
    if (rc == 0 && r->done && *seen >= r->len) rc = 1;
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

// Ends a request that holds no slot: publishes the end, drops the scheduler's reference.
static void req_finish(sched_req *r, const char *reason, const char *error) {
    pthread_mutex_lock(&r->mu);
    r->finish = reason;
    if (error) snprintf(r->error, sizeof(r->error), "%.*s", (int)sizeof(r->error) - 1, error);  // (cut to fit)
    r->done = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    req_unref(r);
}

// Hands what slot i's generator state made final to its request; at the end of the reply the
// request is finished and the slot freed (its cached positions stay, for the next prompt that
// starts the same way).
static void publish(scheduler *s, int i) {
    sched_req *r = s->slot_req[i];
    const gen_slot *g = &s->gen.slots[i];
    int ended = g->state == GEN_DONE;
    if (ended) {  // free the slot first, so that stats agree once the consumer sees `done`
        s->slot_req[i] = NULL;
        atomic_fetch_sub(&s->st.active, 1);
    }
    pthread_mutex_lock(&r->mu);
    int changed = 0;
    if (g->safe > r->len) {
        size_t n = g->safe - r->len;
        if (r->len + n + 1 > r->cap) {
            size_t c = r->cap ? r->cap * 2 : 1024;
            while (c < r->len + n + 1) c *= 2;
            char *nt = realloc(r->text, c);
            if (nt) r->text = nt, r->cap = c;
        }
        if (r->len + n + 1 <= r->cap) {
            memcpy(r->text + r->len, g->text + r->len, n);
            r->len += n;
            r->text[r->len] = 0;
            changed = 1;
        } else if (!ended) {
            snprintf(r->error, sizeof(r->error), "out of memory");
            generator_cancel(&s->gen, i, "out of memory");
        }
    }
    if (r->lp_on && g->n_lp > r->n_lp) {
        if (g->n_lp > r->cap_lp) {
            sched_logprob *nl = realloc(r->lp, sizeof(sched_logprob) * (size_t)g->n_lp);
            if (nl) r->lp = nl, r->cap_lp = g->n_lp;
        }
        int n = (g->n_lp <= r->cap_lp ? g->n_lp : r->cap_lp) - r->n_lp;
        if (n > 0) memcpy(r->lp + r->n_lp, g->lp + r->n_lp, sizeof(sched_logprob) * (size_t)n), r->n_lp += n;
    }
    atomic_fetch_add(&s->st.completion_tokens, g->n_text_tokens - r->n_completion);
    r->n_completion = g->n_text_tokens;
    if (ended) {
        r->finish = generator_finish_name(g->finish);
        if (g->finish == GEN_FAILED && !r->error[0]) snprintf(r->error, sizeof(r->error), "%s", g->error);
        r->done = 1;
        changed = 1;
    }
    if (changed) pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (ended) {
        generator_release(&s->gen, i);
        req_unref(r);
    }
}

// Moves queued requests into free slots (generator_admit picks the slot and reuses cached
// prompt positions); ends cancelled ones.
static void admit(scheduler *s) {
    for (int i = 0; i < s->cfg.n_slots; i++) {
        sched_req *r = s->slot_req[i];
        if (r && atomic_load(&r->cancelled)) {
            generator_cancel(&s->gen, i, "cancelled");
            publish(s, i);
        }
    }
    pthread_mutex_lock(&s->mu);
    while (s->q_head) {
        sched_req *r = s->q_head;
        if (!atomic_load(&r->cancelled)) {
            gen_params p = {.prompt = r->prompt,
                            .n_prompt = r->n_prompt,
                            .sp = r->sp,
                            .max_tokens = r->max_tokens,
                            .stop = (const char *const *)r->stop,
                            .n_stop = r->n_stop,
                            .constraint = r->has_cs ? &r->cs : NULL,
                            .logprobs = r->lp_on,
                            .top_logprobs = r->lp_top};
            trl_err e = {{0}};
            long copied = s->gen.prompt_tokens_copied;
            int slot = generator_admit(&s->gen, &p, &e);
            if (slot == -1 || slot == -2) break;  // no free slot, or wait a step to copy a prefix
            s->q_head = r->next;
            if (!s->q_head) s->q_tail = NULL;
            s->q_len--;
            if (slot < 0) {
                req_finish(r, "stop", e.msg);
                continue;
            }
            r->slot = slot;
            r->n_cached = s->gen.slots[slot].n_cached;
            s->slot_req[slot] = r;
            atomic_fetch_add(&s->st.active, 1);
            atomic_fetch_add(&s->st.prompt_tokens, r->n_prompt);
            atomic_fetch_add(&s->st.prompt_tokens_cached, r->n_cached);
            atomic_fetch_add(&s->st.prompt_tokens_copied, s->gen.prompt_tokens_copied - copied);
            continue;
        }
        s->q_head = r->next;
        if (!s->q_head) s->q_tail = NULL;
        s->q_len--;
        req_finish(r, "stop", "cancelled");
    }
    atomic_store(&s->st.queue_depth, s->q_len);
    pthread_mutex_unlock(&s->mu);
}

static void step(scheduler *s) {
    trl_err e = {{0}};
    int n = generator_step(&s->gen, &e);
    if (n < 0) fprintf(stderr, "toolrl serve: engine step failed: %s\n", e.msg);
    if (n == 0) return;
    atomic_store(&s->st.steps, s->gen.steps);
    atomic_store(&s->st.batch_tokens, s->gen.batch_tokens);
    atomic_store(&s->st.last_batch, s->gen.last_batch);
    for (int i = 0; i < s->cfg.n_slots; i++)
        if (s->slot_req[i]) publish(s, i);
}

static void *loop(void *arg) {
    scheduler *s = arg;
    if (s->cfg.n_threads > 0) omp_set_num_threads(s->cfg.n_threads);  // per-thread setting in OpenMP
    for (;;) {
        pthread_mutex_lock(&s->mu);
        for (;;) {
            if (s->stop) break;
            int busy = s->q_head != NULL;
            for (int i = 0; i < s->cfg.n_slots && !busy; i++) busy = s->slot_req[i] != NULL;
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
        if (s->slot_req[i]) {
            generator_cancel(&s->gen, i, "server shutting down");
            publish(s, i);
        }
    pthread_mutex_lock(&s->mu);
    while (s->q_head) {
        sched_req *r = s->q_head;
        s->q_head = r->next;
        s->q_len--;
        pthread_mutex_unlock(&s->mu);
        req_finish(r, "stop", "server shutting down");
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
    if (generator_init(&s->gen, m, s->cfg.be, s->cfg.n_slots, s->cfg.n_ctx, s->cfg.max_batch, e)) {
        free(s);
        return TRL_ERR;
    }
    s->slot_req = calloc((size_t)s->cfg.n_slots, sizeof(*s->slot_req));
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (!s->slot_req || pthread_create(&s->thread, NULL, loop, s)) {
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
    generator_free(&s->gen);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->slot_req);
    free(s);
}

const scheduler_stats *scheduler_get_stats(const scheduler *s) { return &s->st; }
int scheduler_n_ctx(const scheduler *s) { return s->cfg.n_ctx; }
