// tiny_model.h (test support): writes a tiny random-weight Llama or Qwen2 model, from one
// seeded set of weights, both as a Hugging Face directory (config.json, safetensors,
// tokenizer.json, tokenizer_config.json) and as a GGUF v3 file (any of F32, F16, Q8_0,
// Q4_0, Q4_1 for the 2-D weights). The GGUF Llama has its Q/K rows permuted the way
// llama.cpp's converter does, so GGUF (NORM RoPE) and HF (NEOX RoPE) compute the same
// function. The tokenizer is a small byte-level BPE (256 byte tokens, a few dozen merges,
// <|endoftext|> 0, <|im_start|> 1, <|im_end|> 2) with SmolLM's pre-tokenizer.
#ifndef TOOLRL_TINY_MODEL_H
#define TOOLRL_TINY_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

typedef struct {
    int arch;            // MODEL_ARCH_LLAMA or MODEL_ARCH_QWEN2 (QKV biases)
    int n_vocab_extra;   // embedding rows beyond the tokenizer's tokens (GGUF pads them "[PADi]")
    int n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
    int head_dim;        // 0: n_embd / n_head (otherwise written as head_dim / key_length)
    float rope_theta, rms_eps;
    int tied;            // 1: no lm_head / output.weight
    uint64_t seed;
    uint32_t hf_dtype;   // dtype of the safetensors weights: QTYPE_F32 (default), QTYPE_F16, QTYPE_BF16
    int hf_shards;       // 1: model.safetensors; 2: two shards + model.safetensors.index.json
    // GGUF only, needs n_vocab_extra >= 3: 1: the first two extra rows are the added tokens
    // <tool_call> and </tool_call> (USER_DEFINED); 2: the same, with the embedding rows of the
    // third extra row (a padding token's: never trained, as in Qwen2.5-Coder's GGUFs).
    int tool_tags;
} tiny_model_spec;

// C=64, L=2, NH=4, NKV=2, HS=16, F=128, ctx 128, theta 10000, eps 1e-5, seed 42;
// llama untied with no extra rows, qwen2 tied with 16 extra rows (as Qwen pads its vocab).
tiny_model_spec tiny_model_default(int arch);
int tiny_model_n_tokens(void);                          // tokens in the tokenizer
int tiny_model_n_vocab(const tiny_model_spec *s);       // embedding rows: tokens + extra

int tiny_model_write_hf(const tiny_model_spec *s, const char *dir, trl_err *e);
// wtype is the type of every 2-D weight (token_embd included); 1-D weights stay F32.
int tiny_model_write_gguf(const tiny_model_spec *s, uint32_t wtype, const char *path, trl_err *e);

// The weight an HF checkpoint of s holds under `hf_name` (row-major, as HF stores it), in a
// malloc'd buffer the caller frees; *numel gets its size. NULL if there is no such tensor.
float *tiny_model_weight(const tiny_model_spec *s, const char *hf_name, int64_t *numel);

// Makes a fresh directory under $TMPDIR (or /tmp); out gets its path.
int tiny_model_tempdir(char *out, size_t cap);
// Removes dir and everything under it.
void tiny_model_rmdir(const char *dir);

// A fixture: a fresh temp dir holding tiny.gguf (the default Llama spec, F32, context n_ctx),
// loaded into m. 0 or -1.
#include "model/model.h"
typedef struct {
    char dir[256], path[300];
    model m;
} tiny_model_fixture;
int tiny_model_fixture_open(tiny_model_fixture *f, int n_ctx);
void tiny_model_fixture_close(tiny_model_fixture *f);

#endif
