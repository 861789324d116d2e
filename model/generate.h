// generate.h: the one batched generator. Every caller that makes a model write text drives it:
// the server's scheduler (server/scheduler.c keeps the queue and the thread), the evaluator
// (eval/runner.c), GRPO rollouts (trainer/rollout.c) and `toolrl generate`.
//
// A generator holds n_slots sequences over one engine. generator_step feeds, in one engine
// call of at most max_batch tokens, every decoding slot's pending token and then prefill
// chunks of starting slots; for each slot whose logits came back it records log-probabilities
// (on the model's own distribution), applies the slot's constraint mask, samples with the
// slot's sampler and applies the stop rules, in this order:
//   1. an end-of-generation token: finish GEN_STOP (the token is in tokens[], not in text);
//   2. the token's text is appended (invalid UTF-8 bytes become U+FFFD);
//   3. a caller stop string in the text: the text is cut before it, GEN_STOP;
//   4. stop_at_tool_call and the text now holds "</tool_call>": GEN_STOP (the Tool-N1 reply
//      is read up to its first closed block; what follows is never scored);
//   5. max_tokens text tokens, or a full context: GEN_LENGTH.
// text[0..safe) never changes again (a possible stop-string prefix or an unfinished UTF-8
// character is held back), so it can be streamed as it grows.
//
// Prompt caching: a slot keeps the leading positions its cache shares with a new prompt, and
// a longer prefix held by another slot is copied in (engine_seq_copy: the same bits a prefill
// would write). The last prompt token is always fed again, for its logits. generator_admit
// chooses the free slot that discards the fewest cached positions, and asks a prompt to wait
// while another slot is prefilling a prefix of at least 32 more tokens it could then copy
// (n samples of one prompt, clients sharing one tool list prefill it once).
#ifndef TOOLRL_GENERATE_H
#define TOOLRL_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "model/forward.h"
#include "model/sampler.h"
#include "model/tokenizer.h"
#include "protocol/constrain.h"

#define GEN_MAX_STOP 4
#define GEN_MAX_TOP 20

typedef enum { GEN_FREE = 0, GEN_PREFILL, GEN_DECODE, GEN_DONE } gen_state;
typedef enum { GEN_RUNNING = 0, GEN_STOP, GEN_LENGTH, GEN_FAILED } gen_finish;

// One generated token's log-probability at temperature 1, before any mask, with the top
// alternatives.
typedef struct {
    int32_t tok;
    float logprob;
    int n_top;
    int32_t top_tok[GEN_MAX_TOP];
    float top_lp[GEN_MAX_TOP];
} gen_logprob;

typedef struct {
    const int32_t *prompt;  // copied by generator_admit / generator_start
    int n_prompt;
    sampler_params sp;
    int max_tokens;              // text tokens at most (>= 1)
    int stop_at_tool_call;       // rule 4
    const char *const *stop;     // rule 3, copied; at most GEN_MAX_STOP
    int n_stop;
    const constrain_spec *constraint;  // copied, or NULL
    int logprobs;                // record a gen_logprob per token
    int top_logprobs;            // with this many alternatives (0..GEN_MAX_TOP)
} gen_params;

typedef struct {
    gen_state state;
    gen_finish finish;
    char error[256];       // GEN_FAILED: why
    int32_t *prompt;       // (n_prompt) a copy
    int n_prompt, n_fed;
    int n_cached;          // leading prompt positions reused (kept or copied), not computed
    int n_copied;          // of those, the ones copied from another slot
    int32_t *tokens;       // (n_tokens) sampled ids, an end-of-generation one included
    int n_tokens, cap_tokens;
    int n_text_tokens;     // tokens that added text (all but an end-of-generation one)
    char *text;            // NUL-terminated
    size_t len, cap, safe, utf8_ok;
    gen_logprob *lp;       // (n_lp) with gen_params.logprobs
    int n_lp, cap_lp;
    // settings of the running request
    int max_tokens, stop_at_tool_call, want_lp, top_lp;
    char *stop[GEN_MAX_STOP];
    int n_stop;
    size_t max_stop;
    int32_t next_tok;
    sampler smp;
    int has_smp;
    constrain_spec cs;
    constrain_state cst;
    int has_cs;
} gen_slot;

typedef struct {
    const model *m;
    engine en;
    int n_slots, n_ctx, max_batch;
    gen_slot *slots;      // (n_slots)
    int32_t *hist;        // (n_slots, n_ctx) the token behind each cached position
    int32_t *tok, *seq, *pos;  // (max_batch) step buffers
    int8_t *want;
    int *row_slot;        // (n_slots) which slot each logits row belongs to
    float *logits;        // (n_slots, V)
    float *lp_row;        // (V) a row before its mask, for log-probs of constrained slots
    constrain_vocab voc;  // token bytes, built on the first constrained slot
    int has_voc;
    // counters since init
    long steps, batch_tokens, last_batch, prompt_tokens, prompt_tokens_cached, prompt_tokens_copied,
        completion_tokens;
} generator;

// be: the backend (NULL: ops_cpu; `toolrl generate --ref` passes ops_ref).
int generator_init(generator *g, const model *m, const ops *be, int n_slots, int n_ctx, int max_batch, trl_err *e);
void generator_free(generator *g);

// Starts p in a free slot chosen as described above. Returns the slot, -1 when no slot is
// free, -2 when p should wait for a prefix another slot is prefilling, or -3 with e set (out
// of memory, a prompt that does not fit: n_prompt < 1 or n_prompt + 1 > n_ctx).
int generator_admit(generator *g, const gen_params *p, trl_err *e);
// Starts p in this free slot (same prompt caching). TRL_OK or TRL_ERR.
int generator_start(generator *g, int slot, const gen_params *p, trl_err *e);
// One engine step for every running slot. Returns the number of slots that were in it (0: no
// slot is running), or -1 with e set when the engine failed (every running slot then ends
// GEN_FAILED with that message).
int generator_step(generator *g, trl_err *e);
// Ends a running slot now (GEN_FAILED with reason, e.g. "cancelled").
void generator_cancel(generator *g, int slot, const char *reason);
// Frees a finished slot for the next request (its cache stays, for prompt caching).
void generator_release(generator *g, int slot);
// Forgets every free slot's cached positions (call it when the weights changed: a cache made
// with other weights must not be reused).
void generator_forget(generator *g);
// 1 when some slot is prefilling or decoding.
int generator_busy(const generator *g);
// "stop", "length" (GEN_FAILED reads as "stop").
const char *generator_finish_name(gen_finish f);

// Every token's bytes for the constrained decoder (protocol/constrain.h's constrain_vocab):
// end-of-generation tokens flagged, control tokens excluded. It lives here, not in protocol/,
// because the protocol sits below the model and knows no tokenizer. Free with
// constrain_vocab_free.
int constrain_vocab_init(constrain_vocab *v, const tokenizer *t, trl_err *e);

#endif
