// constrain.h: constrained decoding. A byte-level recognizer of the text a request must
// produce, and the per-step token mask it implies: a token is allowed when every one of its
// bytes keeps the recognizer alive, end-of-turn only when the text is complete. The sampler
// then picks among allowed tokens only, so the output is well-formed by construction.
//
// Grammars:
//   CONSTRAIN_TOOL_CALL   <think>R</think> ws <tool_call> ws [ CALL (, CALL)* ] ws </tool_call>
//                         CALL = { "name" : "N" , "arguments" : OBJ } (whitespace allowed between
//                         JSON tokens), N one of the allowed names, OBJ any JSON object; R free
//                         text of at most think_budget bytes (then "</think>" is forced);
//                         max_calls > 0 caps the list (parallel_tool_calls: false gives 1).
//                         A JSON string may hold at most CONSTRAIN_MAX_STRING bytes before its
//                         closing quote is forced, and past a byte budget an object may only
//                         close (strings end, numbers end, no new members, null for a pending
//                         value, no whitespace), so a rambling model still ends its call.
//   CONSTRAIN_JSON_OBJECT ws OBJ ws   (response_format json_object)
// JSON is checked fully (strings with escapes and \u, numbers, true/false/null, nesting up to
// 32 levels); argument values are not checked against the tool's schema.
#ifndef TOOLRL_CONSTRAIN_H
#define TOOLRL_CONSTRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"
#include "util.h"

typedef enum { CONSTRAIN_TOOL_CALL = 1, CONSTRAIN_JSON_OBJECT = 2 } constrain_mode;

#define CONSTRAIN_MAX_NAMES 64
#define CONSTRAIN_MAX_DEPTH 32
#define CONSTRAIN_MAX_STRING 256
#define CONSTRAIN_ARGS_BUDGET 384    // bytes of a call's arguments before only closing is allowed
#define CONSTRAIN_OBJECT_BUDGET 4096 // the same for response_format json_object

typedef struct {
    constrain_mode mode;
    char *names[CONSTRAIN_MAX_NAMES];  // owned copies (TOOL_CALL)
    int n_names;
    int max_calls;     // 0: any number ≥ 1
    int think_budget;  // bytes of reasoning before "</think>" is forced (default 512)
} constrain_spec;

// The recognizer's whole state: a small value, copied freely.
typedef struct {
    uint8_t phase, step, lit_pos, ws_run;
    uint8_t js;          // JSON sub-state
    uint8_t depth;
    uint8_t esc, hex;    // string escape progress
    uint8_t lit_kind, lit_i;  // true/false/null progress
    uint8_t num;         // number sub-state
    uint8_t key_done;    // the current object member has its key
    char stack[CONSTRAIN_MAX_DEPTH];
    uint16_t think_bytes;
    uint16_t str_len;    // bytes of the JSON string being written
    uint16_t json_bytes; // bytes of the JSON object so far (past the budget it must close)
    uint16_t name_len;
    uint64_t name_set;   // allowed names still matching the name being written (bit i = names[i])
    uint16_t calls;
    uint8_t done, dead;
} constrain_state;

void constrain_spec_free(constrain_spec *s);
void constrain_start(const constrain_spec *s, constrain_state *st);
// Feeds n bytes; returns 0 while alive, -1 once a byte is rejected (st is then dead).
int constrain_feed(const constrain_spec *s, constrain_state *st, const char *bytes, size_t n);
// The text so far is a complete sentence of the grammar (end-of-turn may follow).
int constrain_complete(const constrain_state *st);

// Every token's bytes, precomputed once per tokenizer.
typedef struct {
    int n;
    char *bytes;       // back to back
    uint32_t *off, *len;
    uint8_t *is_eog;   // end-of-generation tokens (allowed only when complete)
    uint8_t *special;  // other control tokens (never allowed)
} constrain_vocab;

int constrain_vocab_init(constrain_vocab *v, const tokenizer *t, trl_err *e);
void constrain_vocab_free(constrain_vocab *v);
// Sets logits of disallowed tokens to -INFINITY. Returns the number of allowed tokens.
int constrain_mask(const constrain_spec *s, const constrain_state *st, const constrain_vocab *v, float *logits);

#endif
