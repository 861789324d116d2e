// test_safetensors.c: the safetensors reader/writer and the Hugging Face directory loader.
// - write → read round trip (dtypes, shapes, scalar/empty tensors, metadata, alignment);
// - every header rule broken by a hand-made file gives TRL_ERR with a message (run under ASan);
// - every truncation and random header corruption of a valid file is rejected or read safely;
// - tiny HF models load (llama tied/untied, qwen2 with QKV bias, BF16, two shards) with the
//   weights the writer put there, and bad configs, shapes, missing tensors and indexes fail;
// - the tiny GGUF holds the same weights with Q/K rows interleaved as llama.cpp does.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "model/model.h"
#include "model/quant.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"
#include "tests/support/tiny_model.h"

static char *path_in(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

// ---- round trip ----

static void test_roundtrip(void **state) {
    (void)state;
    char dir[256];
    assert_int_equal(tiny_model_tempdir(dir, sizeof(dir)), TRL_OK);
    char *p = path_in(dir, "rt.safetensors");
    float a[6] = {1, -2, 3.5f, 4, 5, -6e-3f};
    uint16_t h[5], b[8];
    for (int i = 0; i < 5; i++) h[i] = fp32_to_fp16(0.25f * (float)i - 0.5f);
    for (int i = 0; i < 8; i++) b[i] = fp32_to_bf16(100.0f * (float)i);
    float s = 42.0f;
    int64_t sa[] = {2, 3}, sh[] = {5}, sb[] = {2, 2, 2}, se[] = {0, 4};
    safetensors_wtensor w[] = {
        {"odd.half", QTYPE_F16, 1, sh, h}, {"w \"quoted\"\n", QTYPE_F32, 2, sa, a}, {"bf", QTYPE_BF16, 3, sb, b},
        {"scalar", QTYPE_F32, 0, NULL, &s}, {"empty", QTYPE_F32, 2, se, NULL},
    };
    const char *meta[] = {"format", "pt", "note", "a \"b\"", NULL};
    trl_err e = {{0}};
    if (safetensors_write(p, w, 5, meta, &e)) fail_msg("%s", e.msg);
    assert_int_equal(count_entries(dir), 1);  // no temporary file left behind
    safetensors_file f;
    if (safetensors_open(&f, p, &e)) fail_msg("%s", e.msg);
    assert_int_equal(f.n_tensors, 5);
    assert_string_equal(safetensors_meta(&f, "format"), "pt");
    assert_string_equal(safetensors_meta(&f, "note"), "a \"b\"");
    assert_null(safetensors_meta(&f, "missing"));
    for (int i = 0; i < 5; i++) {
        const safetensors_tensor *t = safetensors_find(&f, w[i].name);
        assert_non_null(t);
        assert_int_equal(t->type, w[i].type);
        assert_int_equal(t->n_dims, w[i].n_dims);
        int64_t numel = 1;
        for (int d = 0; d < t->n_dims; d++) {
            assert_int_equal(t->shape[d], w[i].shape[d]);
            numel *= w[i].shape[d];
        }
        assert_int_equal(t->numel, numel);
        size_t es = w[i].type == QTYPE_F32 ? 4 : 2;
        assert_int_equal(t->nbytes, (size_t)numel * es);
        assert_int_equal((uintptr_t)t->data % es, 0);  // naturally aligned by the writer's layout
        if (numel) assert_memory_equal(t->data, w[i].data, t->nbytes);
    }
    assert_null(safetensors_find(&f, "nope"));
    // Rewriting over an existing file replaces it.
    if (safetensors_write(p, w, 2, NULL, &e)) fail_msg("%s", e.msg);
    safetensors_file g;
    if (safetensors_open(&g, p, &e)) fail_msg("%s", e.msg);
    assert_int_equal(g.n_tensors, 2);
    assert_int_equal(g.n_meta, 0);
    safetensors_close(&g);
    safetensors_close(&f);  // the old mapping stayed valid after the rename
    free(p);
    tiny_model_rmdir(dir);
}

static void test_write_rejects(void **state) {
    (void)state;
    char dir[256];
    assert_int_equal(tiny_model_tempdir(dir, sizeof(dir)), TRL_OK);
    char *p = path_in(dir, "w.safetensors");
    float a[4] = {0};
    int64_t s4[] = {4}, neg[] = {-1};
    trl_err e = {{0}};
    safetensors_wtensor dup[] = {{"x", QTYPE_F32, 1, s4, a}, {"x", QTYPE_F32, 1, s4, a}};
    assert_int_equal(safetensors_write(p, dup, 2, NULL, &e), TRL_ERR);
    assert_non_null(strstr(e.msg, "twice"));
    safetensors_wtensor q[] = {{"x", QTYPE_Q8_0, 1, s4, a}};
    assert_int_equal(safetensors_write(p, q, 1, NULL, &e), TRL_ERR);
    assert_non_null(strstr(e.msg, "cannot be written"));
    safetensors_wtensor n[] = {{"x", QTYPE_F32, 1, neg, a}};
    assert_int_equal(safetensors_write(p, n, 1, NULL, &e), TRL_ERR);
    safetensors_wtensor meta_name[] = {{"__metadata__", QTYPE_F32, 1, s4, a}};
    assert_int_equal(safetensors_write(p, meta_name, 1, NULL, &e), TRL_ERR);
    assert_int_equal(count_entries(dir), 0);
    char *bad = path_in(dir, "no/such/dir/w.safetensors");
    safetensors_wtensor ok[] = {{"x", QTYPE_F32, 1, s4, a}};
    assert_int_equal(safetensors_write(bad, ok, 1, NULL, &e), TRL_ERR);
    assert_non_null(strstr(e.msg, "no/such/dir"));
    free(bad);
    free(p);
    tiny_model_rmdir(dir);
}

// ---- hand-made corrupt files ----

typedef struct {
    const char *what;
    const char *header;   // JSON text
    size_t data_bytes;    // zero bytes after the header
    int64_t len_field;    // -1: the header's real length
    const char *expect;   // substring of the message
    const char *tensor;   // tensor name the message must carry, or NULL
} corrupt_case;

static const corrupt_case CASES[] = {
    {"truncated header", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 1000,
     "past the end", NULL},
    {"huge header length", "{}", 0, (int64_t)1 << 40, "limit", NULL},
    {"header just over 100 MB", "{}", 0, 100000001, "limit", NULL},
    {"bad JSON", "{\"a\": {\"dtype\": \"F32\", ", 0, -1, "not valid JSON", NULL},
    {"not an object", "[1, 2]", 0, -1, "not a JSON object", NULL},
    {"bytes after the JSON", "{} x", 0, -1, "after", NULL},
    {"unknown dtype I64", "{\"ids\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, -1, "I64", "ids"},
    {"made-up dtype", "{\"q\":{\"dtype\":\"Q9_X\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -1, "Q9_X", "q"},
    {"offsets past the end", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, -1, "past",
     "w"},
    {"offsets reversed", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, -1, "reversed", "w"},
    {"wrong byte count", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16, -1, "expected 12",
     "w"},
    {"wrong byte count (bf16)", "{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16, -1,
     "expected 8", "w"},
    {"overlap",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
     24, -1, "overlaps", "a"},
    {"identical spans",
     "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
     4, -1, "overlaps", NULL},
    {"negative dim", "{\"n\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0, -1, "negative", "n"},
    {"shape overflow",
     "{\"o\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,0]}}", 0, -1,
     "overflows", "o"},
    {"shape overflow by dtype size", "{\"o\":{\"dtype\":\"F32\",\"shape\":[2147483648,2147483648],"
                                     "\"data_offsets\":[0,0]}}", 0, -1, "overflows", "o"},
    {"dim above 2^53", "{\"o\":{\"dtype\":\"F32\",\"shape\":[18014398509481984],\"data_offsets\":[0,0]}}", 0,
     -1, "not a valid integer", "o"},
    {"fractional offset", "{\"f\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0.5,4]}}", 8, -1,
     "not valid integers", "f"},
    {"enormous offset", "{\"f\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,1e300]}}", 8, -1,
     "not valid integers", "f"},
    {"missing data_offsets", "{\"m\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, -1, "data_offsets", "m"},
    {"three offsets", "{\"m\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, -1, "data_offsets",
     "m"},
    {"missing shape", "{\"m\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, -1, "shape", "m"},
    {"missing dtype", "{\"m\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -1, "dtype", "m"},
    {"string dim", "{\"s\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, -1,
     "not a valid integer", "s"},
    {"too many dims", "{\"d\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, -1,
     "dimensions", "d"},
    {"duplicate name",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
     8, -1, "twice", "a"},
    {"entry not an object", "{\"x\": 5}", 0, -1, "not an object", "x"},
    {"metadata value not a string", "{\"__metadata__\":{\"format\":1}}", 0, -1, "__metadata__", NULL},
    {"metadata not an object", "{\"__metadata__\":[]}", 0, -1, "__metadata__", NULL},
};

// Builds the file image of a case (8-byte length, header, zero data) in a malloc'd buffer.
static uint8_t *case_image(const corrupt_case *c, size_t *size) {
    size_t hl = strlen(c->header);
    *size = 8 + hl + c->data_bytes;
    uint8_t *img = calloc(1, *size);
    assert_non_null(img);
    uint64_t n = c->len_field >= 0 ? (uint64_t)c->len_field : hl;
    for (int i = 0; i < 8; i++) img[i] = (uint8_t)(n >> (8 * i));
    memcpy(img + 8, c->header, hl);
    return img;
}

static void test_corrupt_files(void **state) {
    (void)state;
    char dir[256];
    assert_int_equal(tiny_model_tempdir(dir, sizeof(dir)), TRL_OK);
    char *p = path_in(dir, "bad.safetensors");
    for (size_t k = 0; k < sizeof(CASES) / sizeof(CASES[0]); k++) {
        const corrupt_case *c = &CASES[k];
        size_t size;
        uint8_t *img = case_image(c, &size);
        FILE *fp = fopen(p, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(img, 1, size, fp), size);
        fclose(fp);
        safetensors_file f;
        trl_err e = {{0}};
        if (safetensors_open(&f, p, &e) != TRL_ERR) fail_msg("%s: accepted", c->what);
        if (!strstr(e.msg, c->expect)) fail_msg("%s: message \"%s\" lacks \"%s\"", c->what, e.msg, c->expect);
        if (!strstr(e.msg, p)) fail_msg("%s: message \"%s\" does not name the file", c->what, e.msg);
        if (c->tensor) {
            char quoted[64];
            snprintf(quoted, sizeof(quoted), "\"%s\"", c->tensor);
            if (!strstr(e.msg, quoted)) fail_msg("%s: message \"%s\" does not name the tensor", c->what, e.msg);
        }
        assert_null(f.tensors);  // left empty
        // The same image from memory, exactly sized so ASan sees any overread.
        assert_int_equal(safetensors_open_memory(&f, img, size, "mem", &e), TRL_ERR);
        free(img);
    }
    // Files too short to hold the length.
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    fwrite("\x02\0\0", 1, 3, fp);
    fclose(fp);
    safetensors_file f;
    trl_err e = {{0}};
    assert_int_equal(safetensors_open(&f, p, &e), TRL_ERR);
    assert_non_null(strstr(e.msg, "too short"));
    char *none = path_in(dir, "absent.safetensors");
    assert_int_equal(safetensors_open(&f, none, &e), TRL_ERR);
    assert_non_null(strstr(e.msg, "absent.safetensors"));
    assert_int_equal(safetensors_open(&f, dir, &e), TRL_ERR);  // a directory
    free(none);
    // A valid header with gaps and empty tensors at the end of the buffer is fine.
    const char *okh = "{\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[12,12]},"
                      "\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[4,8]}}";
    corrupt_case ok = {"ok", okh, 12, -1, "", NULL};
    size_t size;
    uint8_t *img = case_image(&ok, &size);
    if (safetensors_open_memory(&f, img, size, "mem", &e)) fail_msg("%s", e.msg);
    assert_int_equal(f.n_tensors, 2);
    assert_null(safetensors_take_map(&f, NULL));  // memory images are not the caller's to unmap
    safetensors_close(&f);
    free(img);
    free(p);
    tiny_model_rmdir(dir);
}

// Every prefix of a valid file is rejected; random header corruption never reads out of bounds.
static void test_truncation_and_fuzz(void **state) {
    (void)state;
    char dir[256];
    assert_int_equal(tiny_model_tempdir(dir, sizeof(dir)), TRL_OK);
    char *p = path_in(dir, "t.safetensors");
    float a[12];
    uint16_t b[6];
    for (int i = 0; i < 12; i++) a[i] = (float)i;
    for (int i = 0; i < 6; i++) b[i] = fp32_to_bf16((float)i);
    int64_t sa[] = {3, 4}, sb[] = {6};
    safetensors_wtensor w[] = {{"a", QTYPE_F32, 2, sa, a}, {"b", QTYPE_BF16, 1, sb, b}};
    trl_err e = {{0}};
    if (safetensors_write(p, w, 2, NULL, &e)) fail_msg("%s", e.msg);
    size_t size;
    char *full = trl_read_file(p, &size, &e);
    assert_non_null(full);
    for (size_t n = 0; n < size; n++) {
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, full, n);
        safetensors_file f;
        if (safetensors_open_memory(&f, cut, n, "cut", &e) != TRL_ERR) fail_msg("prefix of %zu bytes accepted", n);
        free(cut);
    }
    uint64_t rng = 12345;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | (uint8_t)full[i];
    for (int it = 0; it < 3000; it++) {
        uint8_t *img = malloc(size);
        memcpy(img, full, size);
        int flips = 1 + it % 4;
        for (int k = 0; k < flips; k++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t at = (size_t)((rng >> 33) % (hl + 8));
            static const char pool[] = "0123456789-.e{}[]\",: \x01\xff";
            img[at] = (uint8_t)pool[(rng >> 20) % (sizeof(pool) - 1)];
        }
        safetensors_file f;
        if (safetensors_open_memory(&f, img, size, "fuzz", &e) == TRL_OK) {
            for (int t = 0; t < f.n_tensors; t++) {  // whatever was accepted lies inside the image
                const uint8_t *d = f.tensors[t].data;
                assert_true(d >= img && d + f.tensors[t].nbytes <= img + size);
            }
            safetensors_close(&f);
        } else {
            assert_true(e.msg[0] != 0);
        }
        free(img);
    }
    free(full);
    free(p);
    tiny_model_rmdir(dir);
}

// ---- the HF loader ----

// Max |loaded - expected| over a tensor, dequantizing whatever type it was kept in.
static double tensor_diff(const model_tensor *t, const float *want) {
    float *row = malloc(sizeof(float) * (size_t)t->n_cols);
    double md = 0;
    for (int64_t r = 0; r < t->n_rows; r++) {
        dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * t->row_bytes, row, t->n_cols);
        for (int64_t c = 0; c < t->n_cols; c++) {
            double d = row[c] - want[r * t->n_cols + c];
            md = d < 0 ? (-d > md ? -d : md) : (d > md ? d : md);
        }
    }
    free(row);
    return md;
}

static double vec_diff(const float *v, const float *want, int64_t n) {
    double md = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = v[i] - want[i];
        if (d < 0) d = -d;
        if (d > md) md = d;
    }
    return md;
}

static void expect_tensor(const tiny_model_spec *s, const model_tensor *t, const char *name, double tol) {
    int64_t n = 0;
    float *w = tiny_model_weight(s, name, &n);
    assert_non_null(w);
    assert_int_equal(n, t->n_rows * t->n_cols);
    double d = tensor_diff(t, w);
    if (d > tol) fail_msg("%s differs by %g", name, d);
    free(w);
}

static void expect_vec(const tiny_model_spec *s, const float *v, const char *name, double tol) {
    int64_t n = 0;
    float *w = tiny_model_weight(s, name, &n);
    assert_non_null(w);
    assert_non_null(v);
    double d = vec_diff(v, w, n);
    if (d > tol) fail_msg("%s differs by %g", name, d);
    free(w);
}

// Writes s to a fresh dir, loads it and checks config, every weight and the tokenizer.
static void check_hf(const tiny_model_spec *s, double tol) {
    char dir[256];
    assert_int_equal(tiny_model_tempdir(dir, sizeof(dir)), TRL_OK);
    trl_err e = {{0}};
    if (tiny_model_write_hf(s, dir, &e)) fail_msg("%s", e.msg);
    model m;
    if (model_load_hf_dir(&m, dir, &e)) fail_msg("%s", e.msg);
    const model_config *c = &m.cfg;
    assert_int_equal(c->arch, s->arch);
    assert_int_equal(c->n_vocab, tiny_model_n_vocab(s));
    assert_int_equal(c->n_embd, s->n_embd);
    assert_int_equal(c->n_layer, s->n_layer);
    assert_int_equal(c->n_head, s->n_head);
    assert_int_equal(c->n_head_kv, s->n_head_kv);
    assert_int_equal(c->head_dim, s->head_dim ? s->head_dim : s->n_embd / s->n_head);
    assert_int_equal(c->n_ff, s->n_ff);
    assert_int_equal(c->n_ctx, s->n_ctx);
    assert_true(c->rope_theta == s->rope_theta);
    assert_true(c->rms_eps == s->rms_eps);
    assert_int_equal(c->rope, ROPE_NEOX);
    assert_int_equal(c->tied_embeddings, s->tied);
    assert_int_equal(c->has_qkv_bias, s->arch == MODEL_ARCH_QWEN2);
    assert_int_equal(m.n_maps, s->hf_shards > 1 ? s->hf_shards : 1);
    expect_tensor(s, &m.tok_embd, "model.embed_tokens.weight", tol);
    if (s->tied) assert_ptr_equal(m.output.data, m.tok_embd.data);
    else expect_tensor(s, &m.output, "lm_head.weight", tol);
    expect_vec(s, m.out_norm, "model.norm.weight", tol);
    for (int l = 0; l < s->n_layer; l++) {
        const model_layer *L = &m.layers[l];
        char n[128];
#define NM(x) (snprintf(n, sizeof(n), "model.layers.%d.%s", l, x), n)
        expect_vec(s, L->attn_norm, NM("input_layernorm.weight"), tol);
        expect_tensor(s, &L->wq, NM("self_attn.q_proj.weight"), tol);
        expect_tensor(s, &L->wk, NM("self_attn.k_proj.weight"), tol);
        expect_tensor(s, &L->wv, NM("self_attn.v_proj.weight"), tol);
        expect_tensor(s, &L->wo, NM("self_attn.o_proj.weight"), tol);
        expect_vec(s, L->ffn_norm, NM("post_attention_layernorm.weight"), tol);
        expect_tensor(s, &L->w_gate, NM("mlp.gate_proj.weight"), tol);
        expect_tensor(s, &L->w_up, NM("mlp.up_proj.weight"), tol);
        expect_tensor(s, &L->w_down, NM("mlp.down_proj.weight"), tol);
        if (s->arch == MODEL_ARCH_QWEN2) {
            expect_vec(s, L->bq, NM("self_attn.q_proj.bias"), tol);
            expect_vec(s, L->bk, NM("self_attn.k_proj.bias"), tol);
            expect_vec(s, L->bv, NM("self_attn.v_proj.bias"), tol);
        } else {
            assert_null(L->bq);
        }
#undef NM
    }
    assert_non_null(m.tok);
    assert_int_equal(tokenizer_n_vocab(m.tok), tiny_model_n_tokens());
    assert_int_equal(tokenizer_find(m.tok, "<|im_end|>"), 2);
    assert_int_equal(tokenizer_eos(m.tok), 2);
    assert_non_null(m.chat_template);
    assert_non_null(strstr(m.chat_template, "<|im_start|>"));
    model_free(&m);
    tiny_model_rmdir(dir);
}

static void test_hf_llama_tied(void **state) {
    (void)state;
    tiny_model_spec s = tiny_model_default(MODEL_ARCH_LLAMA);
    s.tied = 1;
    check_hf(&s, 0);
}

static void test_hf_llama_untied(void **state) {
    (void)state;
    tiny_model_spec s = tiny_model_default(MODEL_ARCH_LLAMA);
    s.tied = 0;
    s.n_vocab_extra = 5;
    check_hf(&s, 0);
}

static void test_hf_qwen2_bias(void **state) {
    (void)state;
    tiny_model_spec s = tiny_model_default(MODEL_ARCH_QWEN2);
    check_hf(&s, 0);
    s.tied = 0;
    s.head_dim = 32;  // head_dim given explicitly, NH*HS != C
    check_hf(&s, 0);
}

static void test_hf_half_precision(void **state) {
    (void)state;
    tiny_model_spec s = tiny_model_default(MODEL_ARCH_QWEN2);
    s.hf_dtype = QTYPE_BF16;
    check_hf(&s, 1.5 * 0.0079);  // |w| <= 1.2: bf16 keeps 8 significant bits
    s.hf_dtype = QTYPE_F16;
    check_hf(&s, 1e-3);
}

static void test_hf_sharded(void **state) {
    (void)state;
    tiny_model_spec s = tiny_model_default(MODEL_ARCH_LLAMA);
    s.hf_shards = 2;
    check_hf(&s, 0);
}

// Rewrites one field of dir/config.json.
static void edit_config(const char *dir, const char *key, cJSON *value) {
    char *p = path_in(dir, "config.json");
    trl_err e;
    size_t n;
    char *buf = trl_read_file(p, &n, &e);
    assert_non_null(buf);
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    assert_non_null(root);
    if (value) {
        if (cJSON_GetObjectItemCaseSensitive(root, key)) cJSON_ReplaceItemInObjectCaseSensitive(root, key, value);
        else cJSON_AddItemToObject(root, key, value);
    } else {
        cJSON_DeleteItemFromObjectCaseSensitive(root, key);
    }
    char *out = cJSON_Print(root);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(out, f);
    fclose(f);
    free(out);
    cJSON_Delete(root);
    free(p);
}

static void expect_load_error(const char *dir, const char *needle1, const char *needle2) {
    model m;
    trl_err e = {{0}};
    if (model_load_hf_dir(&m, dir, &e) != TRL_ERR) fail_msg("loaded; expected an error with \"%s\"", needle1);
    if (!strstr(e.msg, needle1) || (needle2 && !strstr(e.msg, needle2)))
        fail_msg("message \"%s\" lacks \"%s\"/\"%s\"", e.msg, needle1, needle2 ? needle2 : "");
    assert_null(m.layers);  // freed
    assert_int_equal(m.n_maps, 0);
}

static void fresh_dir(char *dir, const tiny_model_spec *s) {
    trl_err e = {{0}};
    assert_int_equal(tiny_model_tempdir(dir, 256), TRL_OK);
    if (tiny_model_write_hf(s, dir, &e)) fail_msg("%s", e.msg);
}

static void test_hf_config_errors(void **state) {
    (void)state;
    tiny_model_spec s = tiny_model_default(MODEL_ARCH_LLAMA);
    char dir[256];
    fresh_dir(dir, &s);
    edit_config(dir, "intermediate_size", cJSON_CreateNumber(96));
    expect_load_error(dir, "mlp.gate_proj.weight", "[128, 64]");
    edit_config(dir, "intermediate_size", cJSON_CreateNumber(128));
    edit_config(dir, "vocab_size", cJSON_CreateNumber(1000));
    expect_load_error(dir, "model.embed_tokens.weight", "shape");
    edit_config(dir, "vocab_size", cJSON_CreateNumber(tiny_model_n_vocab(&s)));
    edit_config(dir, "num_key_value_heads", cJSON_CreateNumber(4));
    expect_load_error(dir, "k_proj.weight", "shape");
    edit_config(dir, "num_key_value_heads", cJSON_CreateNumber(3));
    expect_load_error(dir, "kv heads", NULL);  // 4 heads not a multiple of 3 (model_config_validate)
    edit_config(dir, "num_key_value_heads", cJSON_CreateNumber(2));
    edit_config(dir, "model_type", cJSON_CreateString("mistral"));
    expect_load_error(dir, "mistral", NULL);
    edit_config(dir, "model_type", NULL);
    edit_config(dir, "architectures", NULL);
    expect_load_error(dir, "model_type", NULL);
    edit_config(dir, "model_type", cJSON_CreateString("llama"));
    edit_config(dir, "hidden_size", NULL);
    expect_load_error(dir, "hidden_size", NULL);
    edit_config(dir, "hidden_size", cJSON_CreateNumber(64.5));
    expect_load_error(dir, "hidden_size", NULL);
    edit_config(dir, "hidden_size", cJSON_CreateNumber(64));
    cJSON *rs = cJSON_CreateObject();
    cJSON_AddStringToObject(rs, "rope_type", "llama3");
    edit_config(dir, "rope_scaling", rs);
    expect_load_error(dir, "llama3", NULL);
    edit_config(dir, "rope_scaling", cJSON_CreateNull());
    edit_config(dir, "hidden_act", cJSON_CreateString("gelu"));
    expect_load_error(dir, "gelu", NULL);
    edit_config(dir, "hidden_act", cJSON_CreateString("silu"));
    // rope_parameters.rope_theta (newer transformers) is read when rope_theta is absent.
    edit_config(dir, "rope_theta", NULL);
    cJSON *rp = cJSON_CreateObject();
    cJSON_AddNumberToObject(rp, "rope_theta", 500000.0);
    cJSON_AddStringToObject(rp, "rope_type", "default");
    edit_config(dir, "rope_parameters", rp);
    model m;
    trl_err e = {{0}};
    if (model_load_hf_dir(&m, dir, &e)) fail_msg("%s", e.msg);
    assert_true(m.cfg.rope_theta == 500000.0f);
    model_free(&m);
    // Files missing.
    char *p = path_in(dir, "config.json");
    unlink(p);
    free(p);
    expect_load_error(dir, "config.json", NULL);
    tiny_model_rmdir(dir);

    fresh_dir(dir, &s);
    p = path_in(dir, "tokenizer.json");
    unlink(p);
    free(p);
    expect_load_error(dir, "tokenizer.json", NULL);
    p = path_in(dir, "model.safetensors");
    unlink(p);
    free(p);
    expect_load_error(dir, "neither", NULL);
    tiny_model_rmdir(dir);
}

// Rewrites dir/model.safetensors without one tensor (and, optionally, with another misshapen).
static void drop_tensor(const char *dir, const char *drop, const char *reshape) {
    char *p = path_in(dir, "model.safetensors");
    safetensors_file f;
    trl_err e = {{0}};
    if (safetensors_open(&f, p, &e)) fail_msg("%s", e.msg);
    safetensors_wtensor *w = calloc((size_t)f.n_tensors, sizeof(*w));
    int64_t flat[1];
    int n = 0;
    for (int i = 0; i < f.n_tensors; i++) {
        const safetensors_tensor *t = &f.tensors[i];
        if (drop && strcmp(t->name, drop) == 0) continue;
        w[n] = (safetensors_wtensor){t->name, t->type, t->n_dims, t->shape, t->data};
        if (reshape && strcmp(t->name, reshape) == 0) {
            flat[0] = t->numel;
            w[n].n_dims = 1;
            w[n].shape = flat;
        }
        n++;
    }
    if (safetensors_write(p, w, n, NULL, &e)) fail_msg("%s", e.msg);
    free(w);
    safetensors_close(&f);
    free(p);
}

static void test_hf_tensor_errors(void **state) {
    (void)state;
    tiny_model_spec s = tiny_model_default(MODEL_ARCH_QWEN2);
    char dir[256];
    fresh_dir(dir, &s);
    drop_tensor(dir, "model.layers.1.self_attn.k_proj.bias", NULL);
    expect_load_error(dir, "missing tensor model.layers.1.self_attn.k_proj.bias", NULL);
    tiny_model_rmdir(dir);
    fresh_dir(dir, &s);
    drop_tensor(dir, "model.norm.weight", NULL);
    expect_load_error(dir, "missing tensor model.norm.weight", NULL);
    tiny_model_rmdir(dir);
    fresh_dir(dir, &s);
    drop_tensor(dir, NULL, "model.layers.0.mlp.down_proj.weight");  // right size, wrong rank
    expect_load_error(dir, "model.layers.0.mlp.down_proj.weight", "[8192]");
    tiny_model_rmdir(dir);
    // Untied config without lm_head: falls back to tied embeddings.
    s.tied = 0;
    fresh_dir(dir, &s);
    drop_tensor(dir, "lm_head.weight", NULL);
    model m;
    trl_err e = {{0}};
    if (model_load_hf_dir(&m, dir, &e)) fail_msg("%s", e.msg);
    assert_int_equal(m.cfg.tied_embeddings, 1);
    assert_ptr_equal(m.output.data, m.tok_embd.data);
    model_free(&m);
    tiny_model_rmdir(dir);
    // A corrupt safetensors file is reported through the loader.
    fresh_dir(dir, &s);
    char *p = path_in(dir, "model.safetensors");
    FILE *fp = fopen(p, "r+b");
    assert_non_null(fp);
    fwrite("\xff\xff\xff\xff\xff\xff\x00\x00", 1, 8, fp);
    fclose(fp);
    expect_load_error(dir, p, "header length");
    free(p);
    tiny_model_rmdir(dir);
}

// Rewrites the shard index with one entry changed.
static void edit_index(const char *dir, const char *tensor, const char *file) {
    char *p = path_in(dir, "model.safetensors.index.json");
    trl_err e;
    size_t n;
    char *buf = trl_read_file(p, &n, &e);
    assert_non_null(buf);
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    assert_non_null(wm);
    cJSON_DeleteItemFromObjectCaseSensitive(wm, tensor);
    cJSON_AddStringToObject(wm, tensor, file);
    char *out = cJSON_Print(root);
    FILE *f = fopen(p, "wb");
    fputs(out, f);
    fclose(f);
    free(out);
    cJSON_Delete(root);
    free(p);
}

static void test_hf_index_errors(void **state) {
    (void)state;
    tiny_model_spec s = tiny_model_default(MODEL_ARCH_LLAMA);
    s.hf_shards = 2;
    char dir[256];
    fresh_dir(dir, &s);
    edit_index(dir, "model.embed_tokens.weight", "model-00002-of-00002.safetensors");
    expect_load_error(dir, "model.embed_tokens.weight", "does not contain it");
    edit_index(dir, "model.embed_tokens.weight", "../model-00001-of-00002.safetensors");
    expect_load_error(dir, "shard file", NULL);
    edit_index(dir, "model.embed_tokens.weight", "model-00003-of-00002.safetensors");
    expect_load_error(dir, "model-00003-of-00002.safetensors", NULL);
    tiny_model_rmdir(dir);
    // A tensor held by both shards.
    fresh_dir(dir, &s);
    char *p1 = path_in(dir, "model-00001-of-00002.safetensors");
    char *p2 = path_in(dir, "model-00002-of-00002.safetensors");
    safetensors_file a, b;
    trl_err e = {{0}};
    if (safetensors_open(&a, p1, &e) || safetensors_open(&b, p2, &e)) fail_msg("%s", e.msg);
    safetensors_wtensor *w = calloc((size_t)b.n_tensors + 1, sizeof(*w));
    for (int i = 0; i < b.n_tensors; i++) {
        const safetensors_tensor *t = &b.tensors[i];
        w[i] = (safetensors_wtensor){t->name, t->type, t->n_dims, t->shape, t->data};
    }
    const safetensors_tensor *t = &a.tensors[0];
    w[b.n_tensors] = (safetensors_wtensor){t->name, t->type, t->n_dims, t->shape, t->data};
    if (safetensors_write(p2, w, b.n_tensors + 1, NULL, &e)) fail_msg("%s", e.msg);
    expect_load_error(dir, "in both", NULL);
    free(w);
    safetensors_close(&a);
    safetensors_close(&b);
    free(p1);
    free(p2);
    tiny_model_rmdir(dir);
}

// ---- GGUF of the same weights ----

static void test_gguf_same_weights(void **state) {
    (void)state;
    for (int arch = 0; arch <= 1; arch++) {
        tiny_model_spec s = tiny_model_default(arch);
        char dir[256];
        fresh_dir(dir, &s);
        char *gp = path_in(dir, "tiny.gguf");
        trl_err e = {{0}};
        if (tiny_model_write_gguf(&s, QTYPE_F32, gp, &e)) fail_msg("%s", e.msg);
        model g, h;
        if (model_load(&g, gp, &e)) fail_msg("gguf: %s", e.msg);
        if (model_load(&h, dir, &e)) fail_msg("hf: %s", e.msg);
        model_config a = g.cfg, b = h.cfg;
        assert_int_equal(a.rope, arch == MODEL_ARCH_LLAMA ? ROPE_NORM : ROPE_NEOX);
        a.rope = b.rope;
        assert_memory_equal(&a, &b, sizeof(a));
        int hd = a.head_dim, C = a.n_embd;
        for (int l = 0; l < a.n_layer; l++) {
            const model_layer *G = &g.layers[l], *H = &h.layers[l];
            const model_tensor *gt[2] = {&G->wq, &G->wk}, *ht[2] = {&H->wq, &H->wk};
            int heads[2] = {a.n_head, a.n_head_kv};
            for (int k = 0; k < 2; k++) {
                const float *gw = gt[k]->data, *hw = ht[k]->data;
                for (int hh = 0; hh < heads[k]; hh++) {
                    for (int i = 0; i < hd; i++) {
                        // llama: GGUF row 2i ↔ HF row i, 2i+1 ↔ i + hd/2; qwen2: unpermuted
                        int src = arch == MODEL_ARCH_LLAMA ? (i % 2 ? i / 2 + hd / 2 : i / 2) : i;
                        assert_memory_equal(gw + (size_t)(hh * hd + i) * C, hw + (size_t)(hh * hd + src) * C,
                                            sizeof(float) * (size_t)C);
                    }
                }
            }
            assert_memory_equal(G->wv.data, H->wv.data, G->wv.row_bytes * (size_t)G->wv.n_rows);
            assert_memory_equal(G->w_down.data, H->w_down.data, G->w_down.row_bytes * (size_t)G->w_down.n_rows);
            if (arch == MODEL_ARCH_QWEN2) assert_memory_equal(G->bk, H->bk, sizeof(float) * (size_t)a.n_head_kv * hd);
        }
        // Both tokenizers split text the same way.
        static const char text[] = "Hello the world, 123 {\"name\": \"tool\"}\n\n<|im_start|>user\tok";
        int32_t ig[128], ih[128];
        int ng = tokenizer_encode(g.tok, text, sizeof(text) - 1, 1, ig, 128);
        int nh = tokenizer_encode(h.tok, text, sizeof(text) - 1, 1, ih, 128);
        assert_true(ng > 0 && ng <= 128);
        assert_int_equal(ng, nh);
        assert_memory_equal(ig, ih, sizeof(int32_t) * (size_t)ng);
        assert_int_equal(tokenizer_bos(g.tok), tokenizer_bos(h.tok));
        assert_int_equal(tokenizer_eos(g.tok), tokenizer_eos(h.tok));
        model_free(&g);
        model_free(&h);
        // The quantized variants load too.
        uint32_t types[] = {QTYPE_F16, QTYPE_Q8_0, QTYPE_Q4_0, QTYPE_Q4_1};
        for (int k = 0; k < 4; k++) {
            if (tiny_model_write_gguf(&s, types[k], gp, &e)) fail_msg("%s", e.msg);
            if (model_load(&g, gp, &e)) fail_msg("gguf %s: %s", qtype_name(types[k]), e.msg);
            // wv is unpermuted: dequantized it is close to the HF weight
            int64_t n;
            float *wv = tiny_model_weight(&s, "model.layers.0.self_attn.v_proj.weight", &n);
            double d = tensor_diff(&g.layers[0].wv, wv);
            double tol = types[k] == QTYPE_F16 ? 1e-4 : types[k] == QTYPE_Q8_0 ? 2e-3 : 0.02;  // |w| <= 0.1
            if (d > tol) fail_msg("%s: wv differs by %g", qtype_name(types[k]), d);
            free(wv);
            model_free(&g);
        }
        free(gp);
        tiny_model_rmdir(dir);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),         cmocka_unit_test(test_write_rejects),
        cmocka_unit_test(test_corrupt_files),     cmocka_unit_test(test_truncation_and_fuzz),
        cmocka_unit_test(test_hf_llama_tied),     cmocka_unit_test(test_hf_llama_untied),
        cmocka_unit_test(test_hf_qwen2_bias),     cmocka_unit_test(test_hf_half_precision),
        cmocka_unit_test(test_hf_sharded),        cmocka_unit_test(test_hf_config_errors),
        cmocka_unit_test(test_hf_tensor_errors),  cmocka_unit_test(test_hf_index_errors),
        cmocka_unit_test(test_gguf_same_weights),
    };
    return cmocka_run_group_tests_name("safetensors", tests, NULL, NULL);
}
