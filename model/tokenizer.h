// tokenizer.h: byte-level BPE (GPT-2 style) with the model's pre-tokenizer split done by
// PCRE2, special tokens matched first, and an exact byte round trip.
// Loaded from GGUF metadata (tokenizer.ggml.*) or from a Hugging Face tokenizer.json.
#ifndef TOOLRL_TOKENIZER_H
#define TOOLRL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"
#include "model/gguf.h"

// Token kinds, as GGUF's tokenizer.ggml.token_type numbers them.
enum {
    TOKEN_NORMAL = 1,
    TOKEN_UNKNOWN = 2,
    TOKEN_CONTROL = 3,
    TOKEN_USER_DEFINED = 4,
    TOKEN_UNUSED = 5,
    TOKEN_BYTE = 6,
};

typedef struct tokenizer tokenizer;

int tokenizer_init_gguf(tokenizer **out, const gguf_file *f, trl_err *e);
int tokenizer_init_json(tokenizer **out, const char *tokenizer_json_path, trl_err *e);
void tokenizer_free(tokenizer *t);

// Encodes len bytes of text (any bytes, valid UTF-8 or not; decoding the ids gives the bytes
// back exactly, except bytes whose byte token the vocab lacks, which are dropped as llama.cpp
// drops them). Invalid UTF-8 is kept byte for byte where llama.cpp would substitute U+FFFD,
// so ids differ from llama.cpp's only for invalid UTF-8. With parse_special, the text of
// control/user-defined tokens (e.g. "<|im_start|>") becomes their id; otherwise only
// user-defined tokens are. Writes at most cap ids; returns the number of ids the text needs
// (which may exceed cap: call again with a bigger buffer), or -1 on error.
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int parse_special,
                     int32_t *ids, int cap);

// The bytes of one token. Control tokens give "" unless special is set.
// Returns the byte count (may exceed cap: nothing is written then), or -1 for a bad id.
int tokenizer_decode(const tokenizer *t, int32_t id, int special, char *buf, int cap);

int tokenizer_n_vocab(const tokenizer *t);
int tokenizer_token_type(const tokenizer *t, int32_t id);
// Reads a USER_DEFINED (added, not special) token as plain text from now on: encoding never
// gives it (its text splits into ordinary pieces), decoding still gives its text, and
// tokenizer_write_json leaves it out of added_tokens. For added tokens a model never learnt
// (model_load finds them: their embedding rows equal a padding row's). TRL_ERR for another type.
int tokenizer_set_plain(tokenizer *t, int32_t id);
int tokenizer_is_plain(const tokenizer *t, int32_t id);
int32_t tokenizer_bos(const tokenizer *t);  // -1 if none
int32_t tokenizer_eos(const tokenizer *t);  // -1 if none
int tokenizer_add_bos(const tokenizer *t);  // 1 if encode for generation should prepend bos
// 1 if generation should stop at this id (eos, <|im_end|>, <|endoftext|>, <|eot_id|>, ...).
int tokenizer_is_eog(const tokenizer *t, int32_t id);
// The id whose text is exactly s, or -1.
int32_t tokenizer_find(const tokenizer *t, const char *s);
// The pre-tokenizer in use: "gpt2", "smollm", "qwen2" or "llama3".
const char *tokenizer_pre_name(const tokenizer *t);
// Writes the tokenizer as a Hugging Face tokenizer.json (BPE vocab, merges in rank order,
// special tokens as added_tokens, the pre-tokenizer this tokenizer splits with), fsync'd.
// tokenizer_init_json of the file gives the same ids for every text.
int tokenizer_write_json(const tokenizer *t, const char *path, trl_err *e);

#endif
