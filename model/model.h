// model.h: a loaded transformer: its configuration and its weights, from a GGUF file or a
// Hugging Face model directory (config.json + *.safetensors + tokenizer.json).
// Weights stay in the file's own type when a fast kernel exists for it (F32, Q4_0, Q4_1,
// Q8_0, all memory-mapped). Q5_0, Q5_1, Q4_K, Q5_K and Q6_K matrices are converted once at
// load into a compact type the kernels read (quant_convert_target: Q8_0 or Q4_1), held as the
// kernels' packed copy while the rows stay the file's (docs/architecture.md); F16 and BF16
// are dequantized to F32 into memory the model owns. An untied token embedding is only ever
// looked up a row at a time: it stays in the file, in its own type.
#ifndef TOOLRL_MODEL_H
#define TOOLRL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

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
    // The type of the packed copy: `type` itself, or the compact type the rows were converted
    // to at load (then `data` keeps the file's rows, read for embeddings and the trainer's
    // fp32 copy, and only the packed copy is in the converted type). Unused without `packed`.
    uint32_t packed_type;
} model_tensor;

// The type and rows the matmul kernels read: the packed copy's type where there is one.
static inline uint32_t model_tensor_kernel_type(const model_tensor *t) {
    return t->packed ? t->packed_type : t->type;
}

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
    // Matrices converted at load, by source type (index: qtype, < 16) and the bytes of their
    // converted copies; model_load_gguf prints one line about them.
    int n_converted[16];
    size_t converted_bytes;
} model;

// Loads a GGUF file or a Hugging Face directory (detected from the path).
int model_load(model *m, const char *path, trl_err *e);
int model_load_gguf(model *m, const char *path, trl_err *e);
int model_load_hf_dir(model *m, const char *dir, trl_err *e);
void model_free(model *m);

// Shared by both loaders: adopt a matrix of any supported type: kept (and packed) where a
// fast kernel reads its type, else converted to quant_convert_target(type) where there is
// one (packed; where the shape cannot be packed the converted rows replace the file's), else
// dequantized to F32 into an owned buffer. Conversions are counted in m->n_converted.
int model_tensor_adopt(model *m, model_tensor *t, uint32_t type, int64_t n_rows, int64_t n_cols,
                       const void *data, const char *name, trl_err *e);
// A 1-D F32 view; converts F16/BF16 into an owned buffer.
int model_vector_adopt(model *m, const float **out, uint32_t type, int64_t n, const void *data,
                       const char *name, trl_err *e);
// Records a malloc'd buffer in m->owned so model_free releases it. TRL_ERR when out of memory
// (the buffer is then the caller's still).
int model_own(model *m, void *p);
// Re-encodes every F32 matrix (embeddings, projections) in `type` (Q8_0, Q4_0 or Q4_1), as
// llama.cpp's quantize would: a checkpoint saved in F32 then decodes at the quantized speed.
// Matrices already quantized are kept; 1-D weights stay F32.
int model_quantize(model *m, uint32_t type, trl_err *e);
// Checks the configuration for values the engine can run; fills e otherwise.
int model_config_validate(const model_config *c, trl_err *e);

#endif
