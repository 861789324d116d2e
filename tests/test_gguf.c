// test_gguf.c: the GGUF reader on files built byte by byte here: a valid file parses with
// the right values; every truncation, and every lie (bad magic, version, types, counts,
// offsets, sizes, overlaps, duplicates), is rejected with a message and no out-of-bounds
// read (run under ASan by make test); and the real default model's header reads back.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "model/gguf.h"
#include "model/quant.h"
#include "tests/support/gguf_bytes.h"

// Field positions recorded while building, so tests can corrupt them.
typedef struct {
    size_t version, n_tensors, n_kv, kv_type, t1_type, t1_offset, t1_ne0, t2_offset, data;
} layout;

// A valid file: 3 metadata keys (string, u32, string array), two tensors:
// "a" F32 [8, 2] at offset 0 and "b" Q8_0 [32, 1] at offset 64 (alignment 32).
static gguf_bytes build(layout *L) {
    gguf_bytes b = {0};
    gguf_bytes_put(&b, "GGUF", 4);
    L->version = b.n;
    gguf_bytes_u32(&b, 3);
    L->n_tensors = b.n;
    gguf_bytes_u64(&b, 2);
    L->n_kv = b.n;
    gguf_bytes_u64(&b, 3);
    gguf_bytes_str(&b, "general.architecture");
    L->kv_type = b.n;
    gguf_bytes_u32(&b, GGUF_TYPE_STRING);
    gguf_bytes_str(&b, "llama");
    gguf_bytes_str(&b, "llama.block_count");
    gguf_bytes_u32(&b, GGUF_TYPE_UINT32);
    gguf_bytes_u32(&b, 30);
    gguf_bytes_str(&b, "tokenizer.ggml.tokens");
    gguf_bytes_u32(&b, GGUF_TYPE_ARRAY);
    gguf_bytes_u32(&b, GGUF_TYPE_STRING);
    gguf_bytes_u64(&b, 3);
    gguf_bytes_str(&b, "a");
    gguf_bytes_str(&b, "bc");
    gguf_bytes_str(&b, "");
    // tensor infos
    gguf_bytes_str(&b, "a");
    gguf_bytes_u32(&b, 2);
    L->t1_ne0 = b.n;
    gguf_bytes_u64(&b, 8);
    gguf_bytes_u64(&b, 2);
    L->t1_type = b.n;
    gguf_bytes_u32(&b, QTYPE_F32);
    L->t1_offset = b.n;
    gguf_bytes_u64(&b, 0);
    gguf_bytes_str(&b, "b");
    gguf_bytes_u32(&b, 1);
    gguf_bytes_u64(&b, 32);
    gguf_bytes_u32(&b, QTYPE_Q8_0);
    L->t2_offset = b.n;
    gguf_bytes_u64(&b, 64);
    while (b.n % 32) gguf_bytes_put(&b, "\0", 1);
    L->data = b.n;
    float a[16];
    for (int i = 0; i < 16; i++) a[i] = (float)i * 0.5f;
    gguf_bytes_put(&b, a, sizeof(a));
    // b: one Q8_0 block, d = 1.0 (fp16 0x3C00), qs = 0..31
    uint16_t d = 0x3C00;
    gguf_bytes_put(&b, &d, 2);
    for (int8_t i = 0; i < 32; i++) gguf_bytes_put(&b, &i, 1);
    assert_false(b.oom);
    return b;
}

static void test_valid_file_parses(void **state) {
    (void)state;
    layout L;
    gguf_bytes b = build(&L);
    gguf_file f;
    trl_err e = {{0}};
    assert_int_equal(gguf_open_memory(&f, b.p, b.n, &e), TRL_OK);
    assert_int_equal(f.version, 3);
    assert_int_equal(f.n_tensors, 2);
    gguf_str s;
    assert_int_equal(gguf_get_str(&f, "general.architecture", &s), TRL_OK);
    assert_true(gguf_str_eq(s, "llama"));
    int64_t v;
    assert_int_equal(gguf_get_int(&f, "llama.block_count", &v), TRL_OK);
    assert_int_equal(v, 30);
    assert_int_equal(gguf_get_str(&f, "llama.block_count", &s), TRL_ERR);  // wrong kind
    assert_int_equal(gguf_get_int(&f, "missing.key", &v), TRL_ERR);
    gguf_str_iter it;
    assert_int_equal(gguf_arr_str_begin(gguf_find_kv(&f, "tokenizer.ggml.tokens"), &it), TRL_OK);
    const char *want[] = {"a", "bc", ""};
    int n = 0;
    while (gguf_arr_str_next(&it, &s)) assert_true(gguf_str_eq(s, want[n++]));
    assert_int_equal(n, 3);
    const gguf_tensor *ta = gguf_find_tensor(&f, "a"), *tb = gguf_find_tensor(&f, "b");
    assert_non_null(ta);
    assert_non_null(tb);
    assert_int_equal(ta->ne[0], 8);
    assert_int_equal(ta->ne[1], 2);
    assert_int_equal(ta->nbytes, 64);
    assert_float_equal(((const float *)ta->data)[3], 1.5f, 0);
    float y[32];
    dequantize_row(tb->type, tb->data, y, 32);
    assert_float_equal(y[31], 31.0f, 0);
    assert_null(gguf_find_tensor(&f, "c"));
    gguf_close(&f);
    free(b.p);
}

// Every proper prefix of the file must be rejected, and never read past its end (ASan).
static void test_every_truncation_rejected(void **state) {
    (void)state;
    layout L;
    gguf_bytes b = build(&L);
    for (size_t n = 0; n < b.n; n++) {
        uint8_t *cut = malloc(n ? n : 1);  // exact-size allocation: ASan catches overreads
        memcpy(cut, b.p, n);
        gguf_file f;
        trl_err e = {{0}};
        int rc = gguf_open_memory(&f, cut, n, &e);
        if (rc == TRL_OK) fail_msg("prefix of %zu/%zu bytes accepted", n, b.n);
        assert_true(strlen(e.msg) > 0);
        free(cut);
    }
    free(b.p);
}

static void expect_reject(gguf_bytes *b, const char *needle) {
    uint8_t *copy = malloc(b->n);
    memcpy(copy, b->p, b->n);
    gguf_file f;
    trl_err e = {{0}};
    int rc = gguf_open_memory(&f, copy, b->n, &e);
    if (rc == TRL_OK) fail_msg("corrupt file accepted (expected '%s')", needle);
    if (!strstr(e.msg, needle)) fail_msg("message '%s' does not mention '%s'", e.msg, needle);
    free(copy);
}

static void set_u32(gguf_bytes *b, size_t at, uint32_t v) { memcpy(b->p + at, &v, 4); }
static void set_u64(gguf_bytes *b, size_t at, uint64_t v) { memcpy(b->p + at, &v, 8); }

static void test_lies_rejected(void **state) {
    (void)state;
    layout L;
    gguf_bytes b;
#define CASE(stmt, needle)   \
    b = build(&L);           \
    stmt;                    \
    expect_reject(&b, needle); \
    free(b.p);
    CASE(b.p[0] = 'X', "magic");
    CASE(set_u32(&b, L.version, 1), "version");
    CASE(set_u32(&b, L.version, 4), "version");
    CASE(set_u32(&b, L.version, 0x03000000), "big-endian");
    CASE(set_u64(&b, L.n_kv, 1ull << 40), "more than the file");
    CASE(set_u64(&b, L.n_tensors, 1ull << 40), "more than the file");
    CASE(set_u32(&b, L.kv_type, 99), "unknown value type");
    CASE(set_u32(&b, L.t1_type, 77), "unsupported type");
    CASE(set_u64(&b, L.t1_offset, 8), "not aligned");
    CASE(set_u64(&b, L.t2_offset, 1ull << 50), "outside the file");
    CASE(set_u64(&b, L.t2_offset, 32), "overlap");
    CASE(set_u64(&b, L.t1_ne0, 1ull << 39), "outside the file");
    CASE(set_u64(&b, L.t1_ne0, 1ull << 62), "dimension");
    CASE(b.n -= 1, "outside the file");  // last tensor's data cut short
#undef CASE
}

static void test_duplicates_rejected(void **state) {
    (void)state;
    layout L;
    gguf_bytes b = build(&L);
    // Rename tensor "b" to "a": the info strings are "a" then "b", both 1 byte long.
    size_t name_b = L.t2_offset - 4 - 8 - 4 - 1;  // back over type(u32), ne0(u64), n_dims(u32)
    assert_int_equal(b.p[name_b], 'b');
    b.p[name_b] = 'a';
    expect_reject(&b, "duplicate tensor");
    free(b.p);
}

static void test_random_corruption_never_crashes(void **state) {
    (void)state;
    layout L;
    gguf_bytes b = build(&L);
    uint64_t x = 12345;
    for (int iter = 0; iter < 20000; iter++) {
        uint8_t *copy = malloc(b.n);
        memcpy(copy, b.p, b.n);
        for (int k = 0; k < 3; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            copy[x % L.data] = (uint8_t)(x >> 24);  // corrupt the header region
        }
        gguf_file f;
        trl_err e = {{0}};
        if (gguf_open_memory(&f, copy, b.n, &e) == TRL_OK) {
            // Anything accepted must be self-consistent.
            for (uint64_t i = 0; i < f.n_tensors; i++) {
                const gguf_tensor *t = &f.tensors[i];
                assert_true((const uint8_t *)t->data + t->nbytes <= copy + b.n);
            }
            gguf_close(&f);
        }
        free(copy);
    }
    free(b.p);
}

static void test_missing_file_message(void **state) {
    (void)state;
    gguf_file f;
    trl_err e = {{0}};
    assert_int_equal(gguf_open(&f, "/nonexistent/model.gguf", &e), TRL_ERR);
    assert_non_null(strstr(e.msg, "/nonexistent/model.gguf"));
}

static void test_default_model_header(void **state) {
    (void)state;
    const char *path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    gguf_file f;
    trl_err e = {{0}};
    if (gguf_open(&f, path, &e) != TRL_OK) {
        printf("skipped: default model not available (%s); run `make model`\n", e.msg);
        skip();
    }
    assert_int_equal(f.n_tensors, 272);
    gguf_str s;
    assert_int_equal(gguf_get_str(&f, "tokenizer.ggml.pre", &s), TRL_OK);
    assert_true(gguf_str_eq(s, "smollm"));
    const gguf_tensor *t = gguf_find_tensor(&f, "token_embd.weight");
    assert_non_null(t);
    assert_int_equal(t->type, QTYPE_Q8_0);
    assert_int_equal(t->ne[0], 576);
    assert_int_equal(t->ne[1], 49152);
    t = gguf_find_tensor(&f, "blk.29.ffn_down.weight");
    assert_non_null(t);
    assert_int_equal(t->type, QTYPE_Q4_1);
    gguf_close(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_file_parses),
        cmocka_unit_test(test_every_truncation_rejected),
        cmocka_unit_test(test_lies_rejected),
        cmocka_unit_test(test_duplicates_rejected),
        cmocka_unit_test(test_random_corruption_never_crashes),
        cmocka_unit_test(test_missing_file_message),
        cmocka_unit_test(test_default_model_header),
    };
    return cmocka_run_group_tests_name("gguf", tests, NULL, NULL);
}
