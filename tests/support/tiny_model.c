// tiny_model.c (test support): one seeded set of tiny random weights written as a Hugging
// Face directory and as a GGUF v3 file, plus the small byte-level BPE tokenizer both carry.
// The GGUF writer here is deliberately minimal: exactly what llama.cpp-style files contain
// for llama/qwen2, nothing more.
#include "tests/support/tiny_model.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/gguf.h"
#include "model/model.h"
#include "model/quant.h"
#include "model/safetensors.h"
#include "tests/support/gguf_bytes.h"

// ---- the tokenizer ----

enum { N_SPECIAL = 3, FIRST_BYTE = 3, FIRST_MERGE = 3 + 256 };
static const char *const SPECIALS[N_SPECIAL] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};

// Merges of raw text pieces, in rank order; each side is a byte or an earlier merge's result.
static const char *const MERGES[][2] = {
    {" ", "t"},  {"h", "e"},  {" ", "a"},   {"i", "n"},  {" t", "he"}, {"e", "r"},  {"o", "n"},    {" ", "s"},
    {"r", "e"},  {"a", "t"},  {"e", "n"},   {"o", "r"},  {" ", "o"},   {" ", "c"},  {"e", "s"},    {" ", "w"},
    {"i", "s"},  {"a", "n"},  {" ", "f"},   {" ", "p"},  {"in", "g"},  {" ", "b"},  {"o", "u"},    {"a", "l"},
    {" ", "m"},  {"i", "t"},  {" ", "d"},   {" ", "i"},  {" ", "in"},  {"l", "e"},  {" t", "o"},   {" a", "n"},
    {" an", "d"}, {" o", "f"}, {" ", "h"},  {" ", "n"},  {" ", "l"},   {" ", "{"},  {"\"", ":"},   {" ", "\""},
    {"n", "a"},  {"m", "e"},  {"na", "me"}, {" s", "t"}, {" ", "is"},  {"\n", "\n"}, {" ", " "},  {"i", "on"},
    {"at", "ion"}, {" w", "e"}, {"t", "o"}, {"o", "l"},  {"to", "ol"},
};
#define N_MERGES ((int)(sizeof(MERGES) / sizeof(MERGES[0])))

static const char CHAT_TEMPLATE[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

int tiny_model_n_tokens(void) { return FIRST_MERGE + N_MERGES; }

int tiny_model_n_vocab(const tiny_model_spec *s) { return tiny_model_n_tokens() + s->n_vocab_extra; }

// GPT-2 bytes_to_unicode: byte b → a code point, written as UTF-8 into out (NUL-terminated).
static void byte_to_utf8(int b, char out[3]) {
    int cp = b;
    if (!((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) {
        int k = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) k++;
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

// The byte-level form of raw text (malloc'd).
static char *byte_encode(const char *raw) {
    size_t n = strlen(raw);
    char *out = malloc(2 * n + 1), *p = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) {
        char u[3];
        byte_to_utf8((unsigned char)raw[i], u);
        size_t k = strlen(u);
        memcpy(p, u, k);
        p += k;
    }
    *p = 0;
    return out;
}

typedef struct {
    int n;            // tokens
    char **text;      // byte-level form (specials verbatim)
    int32_t *type;    // TOKEN_* numbering (1 normal, 3 control)
    char **merge;     // "A B" in byte-level form
} tiny_vocab;

static void vocab_free(tiny_vocab *v) {
    for (int i = 0; i < v->n; i++) free(v->text[i]);
    for (int i = 0; v->merge && i < N_MERGES; i++) free(v->merge[i]);
    free(v->text);
    free(v->type);
    free(v->merge);
    memset(v, 0, sizeof(*v));
}

static int vocab_find(const tiny_vocab *v, const char *s) {
    for (int i = 0; i < v->n; i++)
        if (strcmp(v->text[i], s) == 0) return i;
    return -1;
}

static int vocab_build(tiny_vocab *v, trl_err *e) {
    memset(v, 0, sizeof(*v));
    int total = tiny_model_n_tokens();
    v->text = calloc((size_t)total, sizeof(char *));
    v->type = calloc((size_t)total, sizeof(int32_t));
    v->merge = calloc(N_MERGES, sizeof(char *));
    if (!v->text || !v->type || !v->merge) goto oom;
    for (int i = 0; i < N_SPECIAL; i++) {
        v->text[i] = strdup(SPECIALS[i]);
        v->type[i] = 3;
        v->n++;
        if (!v->text[i]) goto oom;
    }
    for (int b = 0; b < 256; b++) {
        v->text[v->n] = malloc(3);
        if (!v->text[v->n]) goto oom;
        byte_to_utf8(b, v->text[v->n]);
        v->type[v->n++] = 1;
    }
    for (int i = 0; i < N_MERGES; i++) {
        char *a = byte_encode(MERGES[i][0]), *b = byte_encode(MERGES[i][1]);
        size_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0;
        char *pair = malloc(la + lb + 2), *tok = malloc(la + lb + 1);
        if (!a || !b || !pair || !tok) {
            free(a), free(b), free(pair), free(tok);
            goto oom;
        }
        memcpy(pair, a, la);
        pair[la] = ' ';
        memcpy(pair + la + 1, b, lb + 1);
        memcpy(tok, a, la);
        memcpy(tok + la, b, lb + 1);
        int ok = vocab_find(v, a) >= 0 && vocab_find(v, b) >= 0 && vocab_find(v, tok) < 0;
        free(a), free(b);
        v->merge[i] = pair;
        v->text[v->n] = tok;
        v->type[v->n++] = 1;
        if (!ok) {
            vocab_free(v);
            return trl_errf(e, "tiny_model: merge %d (\"%s\" + \"%s\") is not buildable", i, MERGES[i][0],
                            MERGES[i][1]);
        }
    }
    return TRL_OK;
oom:
    vocab_free(v);
    return trl_errf(e, "tiny_model: out of memory");
}

// ---- the weights ----

typedef struct {
    char hf[96], gg[64];
    int n_dims;            // 1 or 2
    int64_t rows, cols;    // HF shape [rows, cols] ([rows] when 1-D)
    int perm_heads;        // GGUF llama Q/K: heads whose rows are interleaved
    float *data;
} tiny_tensor;

typedef struct {
    int n, cap;
    tiny_tensor *t;
} tiny_set;

static void set_free(tiny_set *ts) {
    for (int i = 0; i < ts->n; i++) free(ts->t[i].data);
    free(ts->t);
    memset(ts, 0, sizeof(*ts));
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// Uniform in [-1, 1).
static float urand(uint64_t *st) { return (float)(splitmix(st) >> 40) / 8388608.0f - 1.0f; }

// Appends a tensor of uniform values center + scale·U(-1, 1).
static int add(tiny_set *ts, uint64_t *rng, const char *hf, const char *gg, int64_t rows, int64_t cols, float center,
               float scale, int perm_heads) {
    if (ts->n == ts->cap) {
        int ncap = ts->cap ? 2 * ts->cap : 32;
        tiny_tensor *nt = realloc(ts->t, sizeof(*nt) * (size_t)ncap);
        if (!nt) return TRL_ERR;
        ts->t = nt;
        ts->cap = ncap;
    }
    tiny_tensor *t = &ts->t[ts->n];
    memset(t, 0, sizeof(*t));
    snprintf(t->hf, sizeof(t->hf), "%s", hf);
    snprintf(t->gg, sizeof(t->gg), "%s", gg);
    t->n_dims = cols ? 2 : 1;
    t->rows = rows;
    t->cols = cols;
    t->perm_heads = perm_heads;
    int64_t n = rows * (cols ? cols : 1);
    t->data = malloc(sizeof(float) * (size_t)n);
    if (!t->data) return TRL_ERR;
    for (int64_t i = 0; i < n; i++) t->data[i] = center + scale * urand(rng);
    ts->n++;
    return TRL_OK;
}

static int spec_check(const tiny_model_spec *s, trl_err *e) {
    int hd = s->head_dim ? s->head_dim : (s->n_head ? s->n_embd / s->n_head : 0);
    if (s->arch != MODEL_ARCH_LLAMA && s->arch != MODEL_ARCH_QWEN2) return trl_errf(e, "tiny_model: bad arch %d", s->arch);
    if (s->n_embd < 1 || s->n_layer < 1 || s->n_head < 1 || s->n_head_kv < 1 || s->n_ff < 1 || s->n_ctx < 1 ||
        hd < 2 || hd % 2 || s->n_head % s->n_head_kv || s->n_vocab_extra < 0 || s->n_embd > 4096 || s->n_ff > 16384 ||
        s->n_layer > 64 || s->n_head > 64 || hd > 512 || s->n_vocab_extra > 100000 ||
        (s->tool_tags && s->n_vocab_extra < 3))
        return trl_errf(e, "tiny_model: bad dimensions");
    return TRL_OK;
}

// Every weight of s in HF order; the same values whatever the output format.
static int set_build(const tiny_model_spec *s, tiny_set *ts, trl_err *e) {
    memset(ts, 0, sizeof(*ts));
    if (spec_check(s, e)) return TRL_ERR;
    uint64_t rng = s->seed;
    int64_t V = tiny_model_n_vocab(s), C = s->n_embd, F = s->n_ff;
    int hd = s->head_dim ? s->head_dim : s->n_embd / s->n_head;
    int64_t QD = (int64_t)s->n_head * hd, KVD = (int64_t)s->n_head_kv * hd;
    const float W = 0.1f;
    int llama = s->arch == MODEL_ARCH_LLAMA;
    int bad = add(ts, &rng, "model.embed_tokens.weight", "token_embd.weight", V, C, 0, W, 0);
    if (!bad && s->tool_tags == 2) {  // the tags' rows: a padding row's
        int64_t nt = tiny_model_n_tokens();
        float *E = ts->t[ts->n - 1].data;
        memcpy(E + nt * C, E + (nt + 2) * C, sizeof(float) * (size_t)C);
        memcpy(E + (nt + 1) * C, E + (nt + 2) * C, sizeof(float) * (size_t)C);
    }
    for (int l = 0; l < s->n_layer && !bad; l++) {
        char h[96], g[64];
#define T(hs, gs, r, c, ctr, sc, ph)                                                                             \
    (snprintf(h, sizeof(h), "model.layers.%d.%s", l, hs), snprintf(g, sizeof(g), "blk.%d.%s", l, gs),           \
     add(ts, &rng, h, g, r, c, ctr, sc, ph))
        bad = T("input_layernorm.weight", "attn_norm.weight", C, 0, 1.0f, 0.2f, 0) ||
              T("self_attn.q_proj.weight", "attn_q.weight", QD, C, 0, W, llama ? s->n_head : 0) ||
              T("self_attn.k_proj.weight", "attn_k.weight", KVD, C, 0, W, llama ? s->n_head_kv : 0) ||
              T("self_attn.v_proj.weight", "attn_v.weight", KVD, C, 0, W, 0);
        if (!bad && !llama)
            bad = T("self_attn.q_proj.bias", "attn_q.bias", QD, 0, 0, 0.2f, 0) ||
                  T("self_attn.k_proj.bias", "attn_k.bias", KVD, 0, 0, 0.2f, 0) ||
                  T("self_attn.v_proj.bias", "attn_v.bias", KVD, 0, 0, 0.2f, 0);
        if (!bad)
            bad = T("self_attn.o_proj.weight", "attn_output.weight", C, QD, 0, W, 0) ||
                  T("post_attention_layernorm.weight", "ffn_norm.weight", C, 0, 1.0f, 0.2f, 0) ||
                  T("mlp.gate_proj.weight", "ffn_gate.weight", F, C, 0, W, 0) ||
                  T("mlp.up_proj.weight", "ffn_up.weight", F, C, 0, W, 0) ||
                  T("mlp.down_proj.weight", "ffn_down.weight", C, F, 0, W, 0);
#undef T
    }
    if (!bad) bad = add(ts, &rng, "model.norm.weight", "output_norm.weight", C, 0, 1.0f, 0.2f, 0);
    if (!bad && !s->tied) bad = add(ts, &rng, "lm_head.weight", "output.weight", V, C, 0, W, 0);
    if (bad) {
        set_free(ts);
        return trl_errf(e, "tiny_model: out of memory");
    }
    return TRL_OK;
}

tiny_model_spec tiny_model_default(int arch) {
    tiny_model_spec s;
    memset(&s, 0, sizeof(s));
    s.arch = arch;
    s.n_vocab_extra = arch == MODEL_ARCH_QWEN2 ? 16 : 0;
    s.n_embd = 64;
    s.n_layer = 2;
    s.n_head = 4;
    s.n_head_kv = 2;
    s.n_ff = 128;
    s.n_ctx = 128;
    s.rope_theta = 10000.0f;
    s.rms_eps = 1e-5f;
    s.tied = arch == MODEL_ARCH_QWEN2;
    s.seed = 42;
    s.hf_dtype = QTYPE_F32;
    s.hf_shards = 1;
    return s;
}

float *tiny_model_weight(const tiny_model_spec *s, const char *hf_name, int64_t *numel) {
    tiny_set ts;
    trl_err e;
    if (set_build(s, &ts, &e)) return NULL;
    float *out = NULL;
    for (int i = 0; i < ts.n; i++) {
        if (strcmp(ts.t[i].hf, hf_name) == 0) {
            out = ts.t[i].data;
            ts.t[i].data = NULL;
            if (numel) *numel = ts.t[i].rows * (ts.t[i].cols ? ts.t[i].cols : 1);
        }
    }
    set_free(&ts);
    return out;
}

// ---- files ----

static int write_bytes(const char *path, const void *data, size_t n, trl_err *e) {
    FILE *f = fopen(path, "wb");
    if (!f) return trl_errf(e, "%s: %s", path, strerror(errno));
    size_t w = fwrite(data, 1, n, f);
    int bad = w != n || ferror(f);
    if (fclose(f) != 0) bad = 1;
    return bad ? trl_errf(e, "%s: write failed", path) : TRL_OK;
}

// Prints a cJSON tree into dir/name.
static int write_json(const char *dir, const char *name, cJSON *root, trl_err *e) {
    char *p = trl_path_join(dir, name);
    char *s = root ? cJSON_Print(root) : NULL;
    int rc = p && s ? write_bytes(p, s, strlen(s), e) : trl_errf(e, "tiny_model: out of memory");
    free(p);
    free(s);
    return rc;
}

static cJSON *config_json(const tiny_model_spec *s) {
    int llama = s->arch == MODEL_ARCH_LLAMA;
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(a, cJSON_CreateString(llama ? "LlamaForCausalLM" : "Qwen2ForCausalLM"));
    cJSON_AddStringToObject(o, "model_type", llama ? "llama" : "qwen2");
    cJSON_AddNumberToObject(o, "bos_token_id", 1);
    cJSON_AddNumberToObject(o, "eos_token_id", 2);
    cJSON_AddStringToObject(o, "hidden_act", "silu");
    cJSON_AddNumberToObject(o, "hidden_size", s->n_embd);
    cJSON_AddNumberToObject(o, "intermediate_size", s->n_ff);
    cJSON_AddNumberToObject(o, "max_position_embeddings", s->n_ctx);
    cJSON_AddNumberToObject(o, "num_attention_heads", s->n_head);
    cJSON_AddNumberToObject(o, "num_hidden_layers", s->n_layer);
    cJSON_AddNumberToObject(o, "num_key_value_heads", s->n_head_kv);
    if (s->head_dim) cJSON_AddNumberToObject(o, "head_dim", s->head_dim);
    cJSON_AddNumberToObject(o, "rms_norm_eps", s->rms_eps);
    cJSON_AddNullToObject(o, "rope_scaling");
    cJSON_AddNumberToObject(o, "rope_theta", s->rope_theta);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", s->tied);
    cJSON_AddStringToObject(o, "torch_dtype", s->hf_dtype == QTYPE_BF16  ? "bfloat16"
                                              : s->hf_dtype == QTYPE_F16 ? "float16"
                                                                         : "float32");
    if (llama) {
        cJSON_AddBoolToObject(o, "attention_bias", 0);
        cJSON_AddBoolToObject(o, "mlp_bias", 0);
    } else {
        cJSON_AddBoolToObject(o, "use_sliding_window", 0);
    }
    cJSON_AddNumberToObject(o, "vocab_size", tiny_model_n_vocab(s));
    return o;
}

// A ByteLevel step of tokenizer.json (the pre-tokenizer's and the decoder's).
static cJSON *byte_level(int add_prefix_space) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "ByteLevel");
    cJSON_AddBoolToObject(o, "add_prefix_space", add_prefix_space);
    cJSON_AddBoolToObject(o, "trim_offsets", 1);
    cJSON_AddBoolToObject(o, "use_regex", 1);
    return o;
}

static cJSON *tokenizer_json(const tiny_vocab *v) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", "1.0");
    cJSON_AddNullToObject(o, "truncation");
    cJSON_AddNullToObject(o, "padding");
    cJSON *added = cJSON_AddArrayToObject(o, "added_tokens");
    for (int i = 0; i < N_SPECIAL; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "id", i);
        cJSON_AddStringToObject(t, "content", SPECIALS[i]);
        cJSON_AddBoolToObject(t, "single_word", 0);
        cJSON_AddBoolToObject(t, "lstrip", 0);
        cJSON_AddBoolToObject(t, "rstrip", 0);
        cJSON_AddBoolToObject(t, "normalized", 0);
        cJSON_AddBoolToObject(t, "special", 1);
        cJSON_AddItemToArray(added, t);
    }
    cJSON_AddNullToObject(o, "normalizer");
    cJSON *pre = cJSON_AddObjectToObject(o, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON *list = cJSON_AddArrayToObject(pre, "pretokenizers");
    cJSON *dig = cJSON_CreateObject();
    cJSON_AddStringToObject(dig, "type", "Digits");
    cJSON_AddBoolToObject(dig, "individual_digits", 1);
    cJSON_AddItemToArray(list, dig);
    cJSON_AddItemToArray(list, byte_level(0));
    cJSON_AddNullToObject(o, "post_processor");
    cJSON_AddItemToObject(o, "decoder", byte_level(1));
    cJSON *m = cJSON_AddObjectToObject(o, "model");
    cJSON_AddStringToObject(m, "type", "BPE");
    cJSON_AddNullToObject(m, "dropout");
    cJSON_AddNullToObject(m, "unk_token");
    cJSON_AddNullToObject(m, "continuing_subword_prefix");
    cJSON_AddNullToObject(m, "end_of_word_suffix");
    cJSON_AddBoolToObject(m, "fuse_unk", 0);
    cJSON_AddBoolToObject(m, "byte_fallback", 0);
    cJSON_AddBoolToObject(m, "ignore_merges", 0);
    cJSON *vocab = cJSON_AddObjectToObject(m, "vocab");
    for (int i = 0; i < v->n; i++) cJSON_AddNumberToObject(vocab, v->text[i], i);
    cJSON *merges = cJSON_AddArrayToObject(m, "merges");
    for (int i = 0; i < N_MERGES; i++) cJSON_AddItemToArray(merges, cJSON_CreateString(v->merge[i]));
    return o;
}

static cJSON *tokenizer_config_json(void) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "add_bos_token", 0);
    cJSON_AddStringToObject(o, "bos_token", SPECIALS[1]);
    cJSON_AddStringToObject(o, "eos_token", SPECIALS[2]);
    cJSON_AddStringToObject(o, "chat_template", CHAT_TEMPLATE);
    cJSON_AddNumberToObject(o, "model_max_length", 2048);
    return o;
}

// Writes tensors [lo, hi) of ts to path in the spec's dtype.
static int write_shard(const tiny_model_spec *s, const tiny_set *ts, int lo, int hi, const char *path, trl_err *e) {
    int n = hi - lo, rc = TRL_ERR;
    safetensors_wtensor *w = calloc((size_t)n, sizeof(*w));
    int64_t *shapes = calloc((size_t)n * 2, sizeof(int64_t));
    void **conv = calloc((size_t)n, sizeof(void *));
    if (!w || !shapes || !conv) {
        trl_errf(e, "tiny_model: out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const tiny_tensor *t = &ts->t[lo + i];
        int64_t numel = t->rows * (t->cols ? t->cols : 1);
        shapes[2 * i] = t->rows;
        shapes[2 * i + 1] = t->cols;
        w[i] = (safetensors_wtensor){t->hf, s->hf_dtype, t->n_dims, &shapes[2 * i], t->data};
        if (s->hf_dtype == QTYPE_F16 || s->hf_dtype == QTYPE_BF16) {
            uint16_t *h = malloc(sizeof(uint16_t) * (size_t)numel);
            if (!h) {
                trl_errf(e, "tiny_model: out of memory");
                goto done;
            }
            for (int64_t k = 0; k < numel; k++)
                h[k] = s->hf_dtype == QTYPE_F16 ? fp32_to_fp16(t->data[k]) : fp32_to_bf16(t->data[k]);
            conv[i] = h;
            w[i].data = h;
        } else if (s->hf_dtype != QTYPE_F32) {
            trl_errf(e, "tiny_model: hf_dtype %u is not F32, F16 or BF16", s->hf_dtype);
            goto done;
        }
    }
    const char *meta[] = {"format", "pt", NULL};
    rc = safetensors_write(path, w, n, meta, e);
done:
    for (int i = 0; conv && i < n; i++) free(conv[i]);
    free(conv);
    free(shapes);
    free(w);
    return rc;
}

static int write_weights(const tiny_model_spec *s, const tiny_set *ts, const char *dir, trl_err *e) {
    if (s->hf_shards <= 1) {
        char *p = trl_path_join(dir, "model.safetensors");
        int rc = p ? write_shard(s, ts, 0, ts->n, p, e) : trl_errf(e, "tiny_model: out of memory");
        free(p);
        return rc;
    }
    if (s->hf_shards != 2) return trl_errf(e, "tiny_model: hf_shards must be 1 or 2");
    static const char *const names[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    int cut = ts->n / 2;
    size_t esize = s->hf_dtype == QTYPE_F32 ? 4 : 2;
    double total = 0;
    cJSON *idx = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(idx, "metadata");
    cJSON *wm = cJSON_AddObjectToObject(idx, "weight_map");
    int rc = TRL_OK;
    for (int k = 0; k < 2 && rc == TRL_OK; k++) {
        int lo = k ? cut : 0, hi = k ? ts->n : cut;
        for (int i = lo; i < hi; i++) {
            cJSON_AddStringToObject(wm, ts->t[i].hf, names[k]);
            total += (double)(ts->t[i].rows * (ts->t[i].cols ? ts->t[i].cols : 1)) * (double)esize;
        }
        char *p = trl_path_join(dir, names[k]);
        rc = p ? write_shard(s, ts, lo, hi, p, e) : trl_errf(e, "tiny_model: out of memory");
        free(p);
    }
    cJSON_AddNumberToObject(meta, "total_size", total);
    if (rc == TRL_OK) rc = write_json(dir, "model.safetensors.index.json", idx, e);
    cJSON_Delete(idx);
    return rc;
}

int tiny_model_write_hf(const tiny_model_spec *s, const char *dir, trl_err *e) {
    tiny_set ts;
    tiny_vocab v;
    if (set_build(s, &ts, e)) return TRL_ERR;
    if (vocab_build(&v, e)) {
        set_free(&ts);
        return TRL_ERR;
    }
    cJSON *cfg = config_json(s), *tok = tokenizer_json(&v), *tcfg = tokenizer_config_json();
    int rc = TRL_ERR;
    if (write_json(dir, "config.json", cfg, e) == TRL_OK && write_json(dir, "tokenizer.json", tok, e) == TRL_OK &&
        write_json(dir, "tokenizer_config.json", tcfg, e) == TRL_OK && write_weights(s, &ts, dir, e) == TRL_OK)
        rc = TRL_OK;
    cJSON_Delete(cfg);
    cJSON_Delete(tok);
    cJSON_Delete(tcfg);
    vocab_free(&v);
    set_free(&ts);
    return rc;
}

// ---- GGUF ----

// An arch-prefixed key.
static const char *ak(char *buf, size_t cap, const char *arch, const char *suffix) {
    snprintf(buf, cap, "%s.%s", arch, suffix);
    return buf;
}

static uint32_t file_type_of(uint32_t wtype) {
    switch (wtype) {
    case QTYPE_F32: return 0;
    case QTYPE_F16: return 1;
    case QTYPE_Q4_0: return 2;
    case QTYPE_Q4_1: return 3;
    case QTYPE_Q8_0: return 7;
    case QTYPE_BF16: return 32;
    default: return 0;
    }
}

// The GGUF bytes of one tensor: Q/K rows interleaved for llama, then converted to its type.
static int tensor_bytes(const tiny_tensor *t, uint32_t type, int head_dim, gguf_bytes *out, trl_err *e) {
    int64_t cols = t->cols ? t->cols : t->rows, rows = t->cols ? t->rows : 1;
    size_t rb = qtype_row_bytes(type, cols);
    if (rb == 0) return trl_errf(e, "tiny_model: %s: %lld columns do not fit type %u", t->gg, (long long)cols, type);
    float *perm = NULL;
    const float *src = t->data;
    if (t->perm_heads) {
        perm = malloc(sizeof(float) * (size_t)(rows * cols));
        if (!perm) return trl_errf(e, "tiny_model: out of memory");
        int half = head_dim / 2;
        for (int h = 0; h < t->perm_heads; h++) {
            for (int i = 0; i < half; i++) {
                int64_t base = (int64_t)h * head_dim;
                memcpy(perm + (base + 2 * i) * cols, src + (base + i) * cols, sizeof(float) * (size_t)cols);
                memcpy(perm + (base + 2 * i + 1) * cols, src + (base + i + half) * cols, sizeof(float) * (size_t)cols);
            }
        }
        src = perm;
    }
    uint8_t *row = malloc(rb);
    if (!row) {
        free(perm);
        return trl_errf(e, "tiny_model: out of memory");
    }
    for (int64_t r = 0; r < rows; r++) {
        quantize_row(type, src + r * cols, row, cols);
        gguf_bytes_put(out, row, rb);
    }
    free(row);
    free(perm);
    return out->oom ? trl_errf(e, "tiny_model: out of memory") : TRL_OK;
}

int tiny_model_write_gguf(const tiny_model_spec *s, uint32_t wtype, const char *path, trl_err *e) {
    if (wtype != QTYPE_F32 && wtype != QTYPE_F16 && wtype != QTYPE_BF16 && wtype != QTYPE_Q8_0 &&
        wtype != QTYPE_Q4_0 && wtype != QTYPE_Q4_1)
        return trl_errf(e, "tiny_model: cannot write weight type %u", wtype);
    tiny_set ts;
    tiny_vocab v;
    if (set_build(s, &ts, e)) return TRL_ERR;
    if (vocab_build(&v, e)) {
        set_free(&ts);
        return TRL_ERR;
    }
    const char *arch = s->arch == MODEL_ARCH_LLAMA ? "llama" : "qwen2";
    int hd = s->head_dim ? s->head_dim : s->n_embd / s->n_head;
    int V = tiny_model_n_vocab(s);
    gguf_bytes kv = {0}, info = {0}, data = {0}, file = {0};
    int rc = TRL_ERR;
    char k[96];
    gguf_bytes_kv_str(&kv, "general.architecture", arch);
    gguf_bytes_kv_str(&kv, "general.name", "tiny");
    gguf_bytes_kv_u32(&kv, "general.alignment", 32);
    gguf_bytes_kv_u32(&kv, "general.file_type", file_type_of(wtype));
    gguf_bytes_kv_u32(&kv, "general.quantization_version", 2);
    gguf_bytes_kv_u32(&kv, ak(k, sizeof(k), arch, "vocab_size"), (uint32_t)V);
    gguf_bytes_kv_u32(&kv, ak(k, sizeof(k), arch, "context_length"), (uint32_t)s->n_ctx);
    gguf_bytes_kv_u32(&kv, ak(k, sizeof(k), arch, "embedding_length"), (uint32_t)s->n_embd);
    gguf_bytes_kv_u32(&kv, ak(k, sizeof(k), arch, "block_count"), (uint32_t)s->n_layer);
    gguf_bytes_kv_u32(&kv, ak(k, sizeof(k), arch, "feed_forward_length"), (uint32_t)s->n_ff);
    gguf_bytes_kv_u32(&kv, ak(k, sizeof(k), arch, "attention.head_count"), (uint32_t)s->n_head);
    gguf_bytes_kv_u32(&kv, ak(k, sizeof(k), arch, "attention.head_count_kv"), (uint32_t)s->n_head_kv);
    gguf_bytes_kv_u32(&kv, ak(k, sizeof(k), arch, "rope.dimension_count"), (uint32_t)hd);
    if (s->head_dim) {
        gguf_bytes_kv_u32(&kv, ak(k, sizeof(k), arch, "attention.key_length"), (uint32_t)hd);
        gguf_bytes_kv_u32(&kv, ak(k, sizeof(k), arch, "attention.value_length"), (uint32_t)hd);
    }
    gguf_bytes_kv_f32(&kv, ak(k, sizeof(k), arch, "rope.freq_base"), s->rope_theta);
    gguf_bytes_kv_f32(&kv, ak(k, sizeof(k), arch, "attention.layer_norm_rms_epsilon"), s->rms_eps);
    gguf_bytes_kv_str(&kv, "tokenizer.ggml.model", "gpt2");
    gguf_bytes_kv_str(&kv, "tokenizer.ggml.pre", "smollm");
    // Token list padded to the embedding size the way llama.cpp's converter does.
    gguf_bytes_kv_array(&kv, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, (uint64_t)V);
    for (int i = 0; i < V; i++) {
        char pad[32];
        snprintf(pad, sizeof(pad), "[PAD%d]", i);
        const char *tag = s->tool_tags && i == v.n ? "<tool_call>" : s->tool_tags && i == v.n + 1 ? "</tool_call>" : NULL;
        gguf_bytes_str(&kv, i < v.n ? v.text[i] : tag ? tag : pad);
    }
    gguf_bytes_kv_array(&kv, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, (uint64_t)V);
    for (int i = 0; i < V; i++)
        gguf_bytes_u32(&kv, (uint32_t)(i < v.n ? v.type[i] : s->tool_tags && i < v.n + 2 ? 4 : 5));
    gguf_bytes_kv_array(&kv, "tokenizer.ggml.merges", GGUF_TYPE_STRING, N_MERGES);
    for (int i = 0; i < N_MERGES; i++) gguf_bytes_str(&kv, v.merge[i]);
    gguf_bytes_kv_u32(&kv, "tokenizer.ggml.bos_token_id", 1);
    gguf_bytes_kv_u32(&kv, "tokenizer.ggml.eos_token_id", 2);
    gguf_bytes_kv_u32(&kv, "tokenizer.ggml.padding_token_id", 2);
    gguf_bytes_kv_bool(&kv, "tokenizer.ggml.add_bos_token", 0);
    gguf_bytes_kv_str(&kv, "tokenizer.chat_template", CHAT_TEMPLATE);

    for (int i = 0; i < ts.n; i++) {
        const tiny_tensor *t = &ts.t[i];
        uint32_t type = t->n_dims == 2 ? wtype : QTYPE_F32;
        gguf_bytes_str(&info, t->gg);
        gguf_bytes_u32(&info, (uint32_t)t->n_dims);
        if (t->n_dims == 2) {
            gguf_bytes_u64(&info, (uint64_t)t->cols);
            gguf_bytes_u64(&info, (uint64_t)t->rows);
        } else {
            gguf_bytes_u64(&info, (uint64_t)t->rows);
        }
        gguf_bytes_u32(&info, type);
        gguf_bytes_u64(&info, (uint64_t)data.n);
        if (tensor_bytes(t, type, hd, &data, e)) goto done;
        gguf_bytes_pad(&data, 32);
    }
    gguf_bytes_put(&file, "GGUF", 4);
    gguf_bytes_u32(&file, 3);
    gguf_bytes_u64(&file, (uint64_t)ts.n);
    gguf_bytes_u64(&file, (uint64_t)kv.n_kv);
    gguf_bytes_put(&file, kv.p, kv.n);
    gguf_bytes_put(&file, info.p, info.n);
    gguf_bytes_pad(&file, 32);
    gguf_bytes_put(&file, data.p, data.n);
    if (kv.oom || info.oom || data.oom || file.oom) {
        trl_errf(e, "tiny_model: out of memory");
        goto done;
    }
    rc = write_bytes(path, file.p, file.n, e);
done:
    gguf_bytes_free(&kv);
    gguf_bytes_free(&info);
    gguf_bytes_free(&data);
    gguf_bytes_free(&file);
    vocab_free(&v);
    set_free(&ts);
    return rc;
}

// ---- temporary directories ----

int tiny_model_tempdir(char *out, size_t cap) {
    const char *base = getenv("TMPDIR");
    if (!base || !base[0]) base = "/tmp";
    int n = snprintf(out, cap, "%s/toolrl-test-XXXXXX", base);
    if (n < 0 || (size_t)n >= cap) return TRL_ERR;
    return mkdtemp(out) ? TRL_OK : TRL_ERR;
}

void tiny_model_rmdir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        char *p = trl_path_join(dir, de->d_name);
        if (!p) continue;
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) tiny_model_rmdir(p);
        else unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(dir);
}

int tiny_model_fixture_open(tiny_model_fixture *f, int n_ctx) {
    trl_err e = {{0}};
    memset(f, 0, sizeof(*f));
    if (tiny_model_tempdir(f->dir, sizeof(f->dir))) return -1;
    snprintf(f->path, sizeof(f->path), "%s/tiny.gguf", f->dir);
    tiny_model_spec s = tiny_model_default(0);
    s.n_ctx = n_ctx;
    if (tiny_model_write_gguf(&s, 0, f->path, &e) || model_load(&f->m, f->path, &e)) return -1;
    return 0;
}

void tiny_model_fixture_close(tiny_model_fixture *f) {
    model_free(&f->m);
    tiny_model_rmdir(f->dir);
}
