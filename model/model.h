// model.h: a loaded transformer: its configuration and its weights, from a GGUF file or a
// Hugging Face model directory (config.json + *.safetensors + tokenizer.json).
// Weights stay in the file's own type when a fast kernel exists for it (F32, Q4_0, Q4_1,
// Q8_0, all memory-mapped); any other type (F16, BF16, Q4_K, Q5_K, Q6_K) is dequantized to
// F32 once at load into memory the model owns.
#ifndef TOOLRL_MODEL_H
#define TOOLRL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef enum { MODEL_ARCH_LLAMA = 0, MODEL_ARCH_QWEN2 = 1 } model_arch;
// NORM rotates (x[2i], x[2i+1]) (GGUF llama, whose Q/K rows were permuted by the converter);
// NEOX rotates (x[i], x[i + hd/2]) (GGUF qwen2 and every HF checkpoint).
typedef enum { ROPE_NORM = 0, ROPE_NEOX = 2 } rope_style;

typedef struct {
    model_arch arch;
    int n_vocab;    // V
    int n_embd;     // C
    int n_layer;    // L
    int n_head;     // NH
    int n_head_kv;  // NKV
    int head_dim;   // HS
    int n_ff;       // F
    int n_ctx;      // trained context length
    float rope_theta;
    float rms_eps;
    rope_style rope;
    int tied_embeddings;
    int has_qkv_bias;
} model_config;

// A 2-D weight: n_rows rows of n_cols elements, each row stored contiguously in `type`.
typedef struct {
    uint32_t type;     // qtype (quant.h)
    int64_t n_rows;    // output features
    int64_t n_cols;    // input features (contiguous)
    size_t row_bytes;
    const void *data;  // borrowed: inside the mmap, or inside model->owned
    const void *packed;  // the CPU decode kernels' copy (matmul_pack) in model->owned, or NULL
} model_tensor;

typedef struct {
    const float *attn_norm;  // (C)
    model_tensor wq;         // (NH*HS, C)
    model_tensor wk;         // (NKV*HS, C)
    model_tensor wv;         // (NKV*HS, C)
    const float *bq, *bk, *bv;  // (NH*HS), (NKV*HS), (NKV*HS); NULL unless has_qkv_bias
    model_tensor wo;         // (C, NH*HS)
    const float *ffn_norm;   // (C)
    model_tensor w_gate;     // (F, C)
    model_tensor w_up;       // (F, C)
    model_tensor w_down;     // (C, F)
} model_layer;

typedef struct tokenizer tokenizer;

typedef struct model {
    model_config cfg;
    model_tensor tok_embd;   // (V, C)
    model_layer *layers;     // (L)
    const float *out_norm;   // (C)
    model_tensor output;     // (V, C); equals tok_embd when tied
    tokenizer *tok;
    char *chat_template;     // the file's Jinja template, or NULL (informational)
    // ownership
    void *gguf;              // gguf_file * when loaded from GGUF
    void **maps;             // safetensors mappings (HF dirs)
    size_t *map_sizes;
    int n_maps;
    void **owned;            // buffers dequantized at load
    int n_owned, cap_owned;
} model;

// Loads a GGUF file or a Hugging Face directory (detected from the path).
int model_load(model *m, const char *path, trl_err *e);
int model_load_gguf(model *m, const char *path, trl_err *e);
int model_load_hf_dir(model *m, const char *dir, trl_err *e);
void model_free(model *m);

// Shared by both loaders: adopt a tensor of any supported type, dequantizing it to F32 into
// an owned buffer when no fast kernel exists for its type.
int model_tensor_adopt(model *m, model_tensor *t, uint32_t type, int64_t n_rows, int64_t n_cols,
                       const void *data, const char *name, trl_err *e);
// A 1-D F32 view; converts F16/BF16 into an owned buffer.
int model_vector_adopt(model *m, const float **out, uint32_t type, int64_t n, const void *data,
                       const char *name, trl_err *e);
// Re-encodes every F32 matrix (embeddings, projections) in `type` (Q8_0, Q4_0 or Q4_1), as
// llama.cpp's quantize would: a checkpoint saved in F32 then decodes at the quantized speed.
// Matrices already quantized are kept; 1-D weights stay F32.
int model_quantize(model *m, uint32_t type, trl_err *e);
// Checks the configuration for values the engine can run; fills e otherwise.
int model_config_validate(const model_config *c, trl_err *e);

#endif
