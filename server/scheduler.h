// scheduler.h: continuous batching for the server. One thread owns a generator (model/generate.h:
// slots, prompt caching, sampling, constraints, stop rules); requests wait in a bounded queue
// until a slot is free. Each step is one engine_forward holding one decode token for every
// generating sequence plus prompt chunks of the sequences still in prefill. Generated text is
// handed to the request's consumer (an HTTP thread) as it becomes final.
#ifndef TOOLRL_SCHEDULER_H
#define TOOLRL_SCHEDULER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/util.h"
#include "model/generate.h"
#include "model/model.h"
#include "model/sampler.h"

typedef struct scheduler scheduler;
typedef struct sched_req sched_req;

typedef struct {
    int n_slots;     // sequences decoded together
    int n_ctx;       // context per sequence
    int max_batch;   // tokens per engine step
    int max_queue;   // waiting requests before submit refuses
    int n_threads;   // OpenMP threads of the engine thread (0 = the OpenMP default)
    const ops *be;   // the backend (model/device.h); NULL: ops_cpu
} scheduler_config;

typedef struct {
    atomic_long queue_depth, active, steps, batch_tokens, prompt_tokens, completion_tokens;
    atomic_long prompt_tokens_cached;  // of prompt_tokens: positions a slot already held
    atomic_long prompt_tokens_copied;  // of those: positions copied from another slot's cache
    atomic_long last_batch;
} scheduler_stats;

int scheduler_init(scheduler **out, const model *m, const scheduler_config *cfg, trl_err *e);
// Stops the loop: every running or waiting request ends at once with an error, and later
// submits are refused. The scheduler stays valid until scheduler_free (which also stops it).
void scheduler_shutdown(scheduler *s);
void scheduler_free(scheduler *s);
const scheduler_stats *scheduler_get_stats(const scheduler *s);
int scheduler_n_ctx(const scheduler *s);

// A generation request. prompt is copied; stop strings are copied (at most 4).
sched_req *sched_req_new(const int32_t *prompt, int n_prompt, const sampler_params *sp, int max_tokens,
                         const char *const *stop, int n_stop);
// Constrains r's output to spec's grammar (protocol/constrain.h), before scheduler_submit.
// spec is copied. Returns -1 when out of memory.
#include "protocol/constrain.h"
int sched_req_constrain(sched_req *r, const constrain_spec *spec);

// Log-probabilities of generated tokens: the model's log-softmax at temperature 1, before
// any constraint mask, with the top alternatives.
#define SCHED_MAX_TOP GEN_MAX_TOP
typedef gen_logprob sched_logprob;
void sched_req_want_logprobs(sched_req *r, int top);  // before scheduler_submit
// Copies records [from, …) made so far into a malloc'd array (*out; NULL when none); returns
// their count.
int sched_req_logprobs(sched_req *r, int from, sched_logprob **out);
// Queues r; returns 0, or -1 when the queue is full (r stays the caller's).
int scheduler_submit(scheduler *s, sched_req *r);
// Waits up to timeout_ms for new text. *out gets the new bytes (malloc'd, may be NULL when
// none), *seen advances. Returns 1 once finished and everything was taken, 0 otherwise,
// -1 when out of memory.
int sched_req_take(sched_req *r, size_t *seen, char **out, size_t *out_len, int timeout_ms);
// After the end: "stop" or "length", the token count, an error message or NULL.
const char *sched_req_finish_reason(sched_req *r);
int sched_req_completion_tokens(sched_req *r);
int sched_req_prompt_tokens(sched_req *r);
// Of those, the leading tokens whose keys and values a slot still held from an earlier
// request (prompt caching: not computed again).
int sched_req_cached_tokens(sched_req *r);
const char *sched_req_error(sched_req *r);
// The consumer gives the request up (cancels it if it still runs); frees it when the scheduler
// is done with it too.
void sched_req_release(sched_req *r);

#endif
