// forward.h: the engine: a model, a backend, a KV cache of several sequences, and the
// batched forward pass. One call runs any mix of tokens: a prompt's prefill, or one new
// token for each of several sequences decoding together.
#ifndef TOOLRL_FORWARD_H
#define TOOLRL_FORWARD_H

#include "model/model.h"
#include "model/ops.h"

// Every buffer below but the host-side bookkeeping (seq_len, next_pos, b_*, out_idx) is the
// backend's memory (ops.h: be->alloc), written only by the backend's ops and by uploads.
typedef struct {
    const model *m;  // the host model: configuration, tokenizer
    const ops *be;
    model w;         // the weights as the backend reads them (be->weights_prepare)
    kv_cache kv;
    int max_batch;   // most tokens one engine_forward call may carry
    int *seq_len;    // (n_seq) positions filled per sequence
    // activations, sized for max_batch tokens, allocated once
    float *x;        // (T, C) residual stream
    float *xn;       // (T, C) normed
    float *q;        // (T, NH*HS)
    float *k;        // (T, NKV*HS)
    float *v;        // (T, NKV*HS)
    float *att;      // (T, NH*HS)
    float *gate;     // (T, F)
    float *up;       // (T, F)
    float *tmp;      // (T, C)
    float *rope_tab; // (n_ctx, HS/2, 2) rope_table: cos, sin of every position's angles
    void *scratch;   // matmul scratch
    size_t scratch_bytes;
    int *next_pos;   // (n_seq) batch validation scratch
    int32_t *b_seq, *b_pos;  // (max_batch) engine_feed's batch arrays
    int8_t *b_want;          // (max_batch)
    int32_t *out_idx;        // (max_batch) host: the rows whose logits are asked for
    // Backends without host memory only: the batch's arrays and the logits rows, uploaded
    // and downloaded each call.
    int32_t *d_tok, *d_seq, *d_pos, *d_idx;  // (max_batch)
    float *d_logits;                         // (max_batch, V)
} engine;

// A batch: n tokens, each belonging to sequence seq[i] at position pos[i]. Tokens of one
// sequence must be in increasing position order, and position p of a sequence may only be
// given once positions [0, p) are in its cache (earlier in this batch or an earlier call).
// logits_out[i] != 0 asks for the logits of token i.
typedef struct {
    int n;
    const int32_t *tok;
    const int32_t *seq;
    const int32_t *pos;
    const int8_t *logits_out;
} engine_batch;

int engine_init(engine *en, const model *m, const ops *be, int n_seq, int n_ctx, int max_batch, trl_err *e);
void engine_free(engine *en);

// Runs the batch. Logits of the requested tokens are written in batch order to
// logits (n_requested, V). Returns TRL_ERR (and changes nothing) on a malformed batch, and
// TRL_ERR when the backend reports a failure (ops.h: error; the cache is then suspect).
int engine_forward(engine *en, const engine_batch *b, float *logits, trl_err *e);

// Forgets a sequence's cache (its slot may be reused from position 0).
void engine_seq_reset(engine *en, int seq);
// Keeps only the first n positions of a sequence (e.g. to reuse a shared prompt prefix).
void engine_seq_truncate(engine *en, int seq, int n);
// Makes dst hold the first n positions of src (dst's own cache is replaced): the same bits a
// prefill of those tokens into dst would write, so n samples of one prompt prefill it once.
int engine_seq_copy(engine *en, int dst, int src, int n, trl_err *e);

// Convenience: feeds n tokens of one sequence starting at its current length, in chunks of
// max_batch, and writes the last token's logits (V) if logits is not NULL.
int engine_feed(engine *en, int seq, const int32_t *toks, int n, float *logits, trl_err *e);

#endif
