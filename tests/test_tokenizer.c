// test_tokenizer.c: the byte-level BPE tokenizer. Tiny tokenizer.json / GGUF files written here
// cover merge ranks, the special-token partition, parse_special, each pre-tokenizer's splits,
// whitespace runs, byte-exact round trips of random bytes and rejected files. With the real
// SmolLM2 GGUF and the BFCL data, every BFCL text must give llama.cpp's ids exactly
// (tests/fixtures/tokens_bfcl.txt, made by tests/ref/make_token_fixture.py), and a
// tokenizer.json written from the same GGUF vocab must agree with the GGUF tokenizer, and the
// same vocab under the gpt-2, qwen2 and llama-bpe pre-tokenizers must match llama.cpp too.
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "model/gguf.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "tests/support/gguf_bytes.h"
#include "tests/support/shared_data.h"
#include "tests/support/tiny_model.h"

#define MODEL_PATH "models/SmolLM2-135M-Instruct.Q4_1.gguf"
#define FIXTURE_PATH "tests/fixtures/tokens_bfcl.txt"

// ---------------------------------------------------------------- helpers

static uint32_t byte_cp(int b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return (uint32_t)b;
    int n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) n++;
    return 0x100u + (uint32_t)n;
}

// The byte-level spelling of raw bytes (each byte one code point), NUL-terminated, static buffer.
static const char *bl(const char *raw) {
    static char out[8][256];
    static int k;
    char *o = out[k++ & 7];
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)raw; *p; p++) {
        uint32_t cp = byte_cp(*p);
        if (cp < 0x80) o[n++] = (char)cp;
        else {
            o[n++] = (char)(0xC0 | (cp >> 6));
            o[n++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    o[n] = 0;
    return o;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static char tmpdir[64];

static int setup_tmp(void **state) {
    (void)state;
    strcpy(tmpdir, "/tmp/toolrl_tok_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmp(void **state) {
    (void)state;
    char p[128];
    const char *names[] = {"tokenizer.json", "tokenizer_config.json"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(p, sizeof(p), "%s/%s", tmpdir, names[i]);
        unlink(p);
    }
    rmdir(tmpdir);
    return 0;
}

static const char *write_tmp(const char *name, const char *content, size_t n) {
    static char p[128];
    snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, n, f), n);
    fclose(f);
    return p;
}

static void remove_tmp(const char *name) {
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
    unlink(p);
}

// Encodes with a generous buffer; returns the count (asserting it fits).
static int enc(const tokenizer *t, const char *s, size_t n, int special, int32_t *ids, int cap) {
    int k = tokenizer_encode(t, s, n, special, ids, cap);
    assert_true(k >= 0);
    assert_true(k <= cap);
    return k;
}

static void assert_ids(const tokenizer *t, const char *s, int special, const int32_t *want, int nwant) {
    int32_t ids[512];
    int k = enc(t, s, strlen(s), special, ids, 512);
    if (k != nwant || memcmp(ids, want, (size_t)k * sizeof(int32_t)) != 0) {
        fprintf(stderr, "encode(\"%s\", special=%d):\n  want", s, special);
        for (int i = 0; i < nwant; i++) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n  got ");
        for (int i = 0; i < k; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
        fail();
    }
}
#define ASSERT_IDS(t, s, sp, ...)                                                   \
    do {                                                                            \
        const int32_t w_[] = {__VA_ARGS__};                                         \
        assert_ids(t, s, sp, w_, (int)(sizeof(w_) / sizeof(w_[0])));                \
    } while (0)

// Decodes ids (control tokens with their text) into a malloc'd buffer.
static char *decode_all(const tokenizer *t, const int32_t *ids, int n, size_t *len) {
    size_t cap = 64, k = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    for (int i = 0; i < n; i++) {
        int m = tokenizer_decode(t, ids[i], 1, NULL, 0);
        assert_true(m >= 0);
        if (k + (size_t)m > cap) {
            cap = (k + (size_t)m) * 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
        assert_int_equal(tokenizer_decode(t, ids[i], 1, out + k, m), m);
        k += (size_t)m;
    }
    *len = k;
    return out;
}

// ---------------------------------------------------------------- tiny tokenizer.json

// Vocab: ids 0..255 = the byte tokens in byte order (so id == byte value), then `extra`
// (raw text, byte-level spelled here), then added tokens. Merges are raw-text pairs.
typedef struct {
    const char *pre;  // pre_tokenizer JSON
    const char *const *extra;
    int n_extra;
    const char *const *merges;  // pairs: merges[2i], merges[2i+1]
    int n_merges;
    int merges_as_pairs;
    int ignore_merges;
    int omit_byte1;  // 1 + a byte whose byte token is left out of the vocab; 0 = none
} tiny_spec;

#define PRE_GPT2_JSON "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}"
#define PRE_SMOLLM_JSON                                                                         \
    "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":true}," \
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}]}"
#define SPLIT_JSON(rx)                                                                                \
    "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"" rx "\"}," \
    "\"behavior\":\"Isolated\",\"invert\":false},"                                                    \
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":false,\"use_regex\":false}]}"
#define PRE_QWEN2_JSON                                                                                          \
    SPLIT_JSON("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?[^\\\\s\\\\p{L}" \
               "\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+")
#define PRE_LLAMA3_JSON                                                                                         \
    SPLIT_JSON("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s" \
               "\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+")

static const char *const EXTRA[] = {"ab", "bc", "abc", "  ", " b", "12", " 1", " 12", "\n\n", "Hi", "\tHi",
                                    "123", "45", "xyz", "ll"};
enum { X_AB = 256, X_BC, X_ABC, X_SS, X_SB, X_12, X_S1, X_S12, X_NN, X_HI, X_THI, X_123, X_45, X_XYZ, X_LL };
#define N_EXTRA 15
enum { A_IM_START = 256 + N_EXTRA, A_IM_END, A_TOOL, A_LONG };

static const char *const MERGES[] = {
    "b", "c",   "a", "b",    "ab", "c",  " ", " ", " ", "b",  " ", "1",  " 1", "2", "1", "2",
    "\n", "\n", "H", "i",    "\t", "Hi", "12", "3", "4", "5",  "l", "l",
};
#define N_MERGES 14

static char *tiny_json(const tiny_spec *sp) {
    cJSON *root = cJSON_CreateObject();
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    const char *adds[] = {"<|im_start|>", "<|im_end|>", "<tool>", "<|im_start|>x"};
    const int special[] = {1, 1, 0, 1};
    for (int i = 0; i < 4; i++) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", A_IM_START + i);
        cJSON_AddStringToObject(a, "content", adds[i]);
        cJSON_AddBoolToObject(a, "special", special[i]);
        cJSON_AddBoolToObject(a, "lstrip", 0);
        cJSON_AddBoolToObject(a, "rstrip", 0);
        cJSON_AddItemToArray(added, a);
    }
    cJSON_AddItemToObject(root, "normalizer", cJSON_CreateNull());
    cJSON *pre = cJSON_Parse(sp->pre);
    assert_non_null(pre);
    cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddBoolToObject(model, "ignore_merges", sp->ignore_merges);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (int b = 0; b < 256; b++) {
        char raw[2] = {(char)b, 0};
        const char *s = b ? bl(raw) : "\xC4\x80";  // byte 0 -> U+0100
        if (b + 1 != sp->omit_byte1) cJSON_AddNumberToObject(vocab, s, b);
    }
    for (int i = 0; i < sp->n_extra; i++) cJSON_AddNumberToObject(vocab, bl(sp->extra[i]), 256 + i);
    for (int i = 0; i < 4; i++) cJSON_AddNumberToObject(vocab, adds[i], A_IM_START + i);
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    for (int i = 0; i < sp->n_merges; i++) {
        char a[64], b[64];
        snprintf(a, sizeof(a), "%s", bl(sp->merges[2 * i]));
        snprintf(b, sizeof(b), "%s", bl(sp->merges[2 * i + 1]));
        if (sp->merges_as_pairs) {
            cJSON *pair = cJSON_CreateArray();
            cJSON_AddItemToArray(pair, cJSON_CreateString(a));
            cJSON_AddItemToArray(pair, cJSON_CreateString(b));
            cJSON_AddItemToArray(merges, pair);
        } else {
            char ab[130];
            snprintf(ab, sizeof(ab), "%s %s", a, b);
            cJSON_AddItemToArray(merges, cJSON_CreateString(ab));
        }
    }
    char *s = cJSON_PrintUnformatted(root);
    assert_non_null(s);
    cJSON_Delete(root);
    return s;
}

static tokenizer *tiny_load(const tiny_spec *sp) {
    char *js = tiny_json(sp);
    const char *p = write_tmp("tokenizer.json", js, strlen(js));
    free(js);
    tokenizer *t = NULL;
    trl_err e = {{0}};
    if (tokenizer_init_json(&t, p, &e) != TRL_OK) fprintf(stderr, "load failed: %s\n", e.msg);
    assert_non_null(t);
    return t;
}

static tokenizer *tiny_default(const char *pre) {
    tiny_spec sp = {pre, EXTRA, N_EXTRA, MERGES, N_MERGES, 0, 0, 0};
    return tiny_load(&sp);
}

// ---------------------------------------------------------------- unit tests

static void test_free_null(void **state) {
    (void)state;
    tokenizer_free(NULL);
}

static void test_merges_by_rank(void **state) {
    (void)state;
    // b+c ranks before a+b: "abc" -> a, bc (and no "a bc" merge exists).
    tokenizer *t = tiny_default(PRE_GPT2_JSON);
    ASSERT_IDS(t, "abc", 0, 'a', X_BC);
    ASSERT_IDS(t, "abcab", 0, 'a', X_BC, X_AB);
    tokenizer_free(t);
    // a+b first, then ab+c: "abc" -> abc. Same again with merges written as pairs.
    static const char *const m2[] = {"a", "b", "b", "c", "ab", "c"};
    for (int pairs = 0; pairs < 2; pairs++) {
        tiny_spec sp = {PRE_GPT2_JSON, EXTRA, N_EXTRA, m2, 3, pairs, 0, 0};
        t = tiny_load(&sp);
        ASSERT_IDS(t, "abc", 0, X_ABC);
        ASSERT_IDS(t, "abcbc", 0, X_ABC, X_BC);
        ASSERT_IDS(t, "bab", 0, 'b', X_AB);
        tokenizer_free(t);
    }
}

static void test_special_partition(void **state) {
    (void)state;
    tokenizer *t = tiny_default(PRE_GPT2_JSON);
    assert_int_equal(tokenizer_n_vocab(t), A_LONG + 1);
    assert_int_equal(tokenizer_token_type(t, A_IM_START), TOKEN_CONTROL);
    assert_int_equal(tokenizer_token_type(t, A_TOOL), TOKEN_USER_DEFINED);
    assert_int_equal(tokenizer_token_type(t, 'a'), TOKEN_NORMAL);
    assert_int_equal(tokenizer_find(t, "<tool>"), A_TOOL);
    assert_int_equal(tokenizer_find(t, "nope"), -1);
    ASSERT_IDS(t, "<|im_start|>ab<tool>c<|im_end|>", 1, A_IM_START, X_AB, A_TOOL, 'c', A_IM_END);
    ASSERT_IDS(t, "<|im_start|><|im_end|><|im_start|>", 1, A_IM_START, A_IM_END, A_IM_START);
    // Longest special first: "<|im_start|>x" wins over "<|im_start|>".
    ASSERT_IDS(t, "<|im_start|>xab", 1, A_LONG, X_AB);
    ASSERT_IDS(t, "<|im_end", 1, '<', '|', 'i', 'm', '_', 'e', 'n', 'd');
    // parse_special off: control texts are plain text, user-defined tokens still split out.
    ASSERT_IDS(t, "<|im_end|>ab<tool>", 0, '<', '|', 'i', 'm', '_', 'e', 'n', 'd', '|', '>', X_AB, A_TOOL);
    // Control tokens decode to nothing unless asked; user-defined ones always decode.
    char buf[32];
    assert_int_equal(tokenizer_decode(t, A_IM_START, 0, buf, sizeof(buf)), 0);
    assert_int_equal(tokenizer_decode(t, A_IM_START, 1, buf, sizeof(buf)), 12);
    assert_memory_equal(buf, "<|im_start|>", 12);
    assert_int_equal(tokenizer_decode(t, A_TOOL, 0, buf, sizeof(buf)), 6);
    assert_int_equal(tokenizer_decode(t, X_SB, 0, buf, sizeof(buf)), 2);
    assert_memory_equal(buf, " b", 2);
    assert_int_equal(tokenizer_decode(t, X_SB, 0, buf, 1), 2);  // too small: size reported
    assert_int_equal(tokenizer_decode(t, -1, 0, buf, sizeof(buf)), -1);
    assert_int_equal(tokenizer_decode(t, A_LONG + 1, 0, buf, sizeof(buf)), -1);
    // EOG by text; no eos without a tokenizer_config.json.
    assert_true(tokenizer_is_eog(t, A_IM_END));
    assert_false(tokenizer_is_eog(t, A_IM_START));
    assert_false(tokenizer_is_eog(t, -5));
    assert_int_equal(tokenizer_eos(t), -1);
    assert_int_equal(tokenizer_bos(t), -1);
    assert_int_equal(tokenizer_add_bos(t), 0);
    tokenizer_free(t);
}

static void test_encode_capacity(void **state) {
    (void)state;
    tokenizer *t = tiny_default(PRE_GPT2_JSON);
    const char *s = "<|im_start|>ab abc";
    int32_t ids[16];
    int need = tokenizer_encode(t, s, strlen(s), 1, NULL, 0);
    assert_int_equal(need, 5);  // <|im_start|>, ab, " ", a, bc
    memset(ids, 0x55, sizeof(ids));
    assert_int_equal(tokenizer_encode(t, s, strlen(s), 1, ids, 2), 5);
    assert_int_equal(ids[0], A_IM_START);
    assert_int_equal(ids[1], X_AB);
    assert_int_equal(ids[2], 0x55555555);  // nothing past cap
    assert_int_equal(tokenizer_encode(t, "", 0, 1, ids, 16), 0);
    assert_int_equal(tokenizer_encode(t, NULL, 0, 1, ids, 16), 0);
    tokenizer_free(t);
}

static void test_smollm_digits(void **state) {
    (void)state;
    tokenizer *t = tiny_default(PRE_SMOLLM_JSON);
    assert_string_equal(tokenizer_pre_name(t), "smollm");
    // "a 12" -> "a", " ", "1", "2": the digit split leaves " " alone, so " 1"/"12" never merge.
    ASSERT_IDS(t, "a 12", 0, 'a', ' ', '1', '2');
    ASSERT_IDS(t, "x12y", 0, 'x', '1', '2', 'y');
    tokenizer_free(t);
    // Plain GPT-2 keeps " 12" as one piece: " "+"1" (rank 5), then " 1"+"2".
    t = tiny_default(PRE_GPT2_JSON);
    assert_string_equal(tokenizer_pre_name(t), "gpt2");
    ASSERT_IDS(t, "a 12", 0, 'a', X_S12);
    tokenizer_free(t);
}

static void test_whitespace_runs(void **state) {
    (void)state;
    const char *pres[] = {PRE_GPT2_JSON, PRE_SMOLLM_JSON, PRE_QWEN2_JSON, PRE_LLAMA3_JSON};
    const char *names[] = {"gpt2", "smollm", "qwen2", "llama3"};
    for (int p = 0; p < 4; p++) {
        tokenizer *t = tiny_default(pres[p]);
        assert_string_equal(tokenizer_pre_name(t), names[p]);
        // A run before a word gives all but its last space; that one prefixes the word.
        ASSERT_IDS(t, "a   b", 0, 'a', X_SS, X_SB);
        // A run at the end is taken whole.
        ASSERT_IDS(t, "a  ", 0, 'a', X_SS);
        ASSERT_IDS(t, "  ", 0, X_SS);
        tokenizer_free(t);
    }
    // "\n\nHi": gpt-2 style gives "\n", "\n", "Hi"; qwen2 style gives "\n\n", "Hi".
    tokenizer *g = tiny_default(PRE_GPT2_JSON), *q = tiny_default(PRE_QWEN2_JSON);
    ASSERT_IDS(g, "\n\nHi", 0, '\n', '\n', X_HI);
    ASSERT_IDS(q, "\n\nHi", 0, X_NN, X_HI);
    // qwen2: one non-letter, non-newline char may prefix a letter run.
    ASSERT_IDS(g, "\tHi", 0, '\t', X_HI);
    ASSERT_IDS(q, "\tHi", 0, X_THI);
    // Contractions: case-sensitive for gpt-2, not for qwen2.
    ASSERT_IDS(g, "'ll", 0, '\'', X_LL);
    ASSERT_IDS(g, "'LL", 0, '\'', 'L', 'L');
    ASSERT_IDS(q, "'LL", 0, '\'', 'L', 'L');
    // qwen2 splits single digits.
    ASSERT_IDS(q, "12345", 0, '1', '2', '3', '4', '5');
    tokenizer_free(g);
    tokenizer_free(q);
    // llama3: digits in groups of three, and ignore_merges takes whole-word tokens as they are.
    tiny_spec sp = {PRE_LLAMA3_JSON, EXTRA, N_EXTRA, MERGES, N_MERGES, 0, 1, 0};
    tokenizer *l = tiny_load(&sp);
    ASSERT_IDS(l, "12345", 0, X_123, X_45);
    ASSERT_IDS(l, "xyz", 0, X_XYZ);
    tokenizer_free(l);
    tokenizer *l0 = tiny_default(PRE_LLAMA3_JSON);
    ASSERT_IDS(l0, "xyz", 0, 'x', 'y', 'z');
    tokenizer_free(l0);
}

// Random byte strings must decode back to themselves, minus the bytes the vocab has no byte
// token for (found here by encoding each byte alone), which encode drops.
static void roundtrip_random(const tokenizer *t, int iters, int maxlen) {
    int dropped[256], n_dropped = 0;
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        dropped[b] = tokenizer_encode(t, &c, 1, 0, NULL, 0) == 0;
        n_dropped += dropped[b];
    }
    static const char *const frags[] = {"<|im_start|>", "<|im_end|>", "<tool>", "  ", "\n\n", "é", "日本",
                                        "🙂", "\xff", "\xc3", "\xe6\x97", "12", " 3", "'s", "\t"};
    char *s = malloc((size_t)maxlen + 32), *want = malloc((size_t)maxlen + 32);
    int32_t *ids = malloc(sizeof(int32_t) * ((size_t)maxlen + 32));
    assert_non_null(s);
    assert_non_null(want);
    assert_non_null(ids);
    for (int it = 0; it < iters; it++) {
        size_t n = (size_t)(rng() % (uint64_t)maxlen);
        int mode = (int)(rng() % 3);
        size_t k = 0;
        while (k < n) {
            uint64_t r = rng();
            if (mode == 0) s[k++] = (char)(r & 0xFF);                   // any bytes
            else if (mode == 1) s[k++] = (char)(0x20 + (r >> 8) % 95);  // printable ASCII
            else {                                                      // fragments and text
                const char *f = frags[(r >> 8) % (sizeof(frags) / sizeof(frags[0]))];
                size_t fl = strlen(f);
                if (k + fl > n) break;
                memcpy(s + k, f, fl);
                k += fl;
            }
        }
        n = k;
        size_t nw = 0;
        for (size_t i = 0; i < n; i++)
            if (!dropped[(unsigned char)s[i]]) want[nw++] = s[i];
        for (int special = 0; special < 2; special++) {
            int m = tokenizer_encode(t, s, n, special, ids, maxlen + 32);
            assert_true(m >= 0 && (size_t)m <= n);
            size_t dl;
            char *d = decode_all(t, ids, m, &dl);
            if (dl != nw || memcmp(d, want, nw) != 0) {
                fprintf(stderr, "round trip failed (special=%d, %zu bytes, %d bytes without a token):", special,
                        n, n_dropped);
                for (size_t i = 0; i < n; i++) fprintf(stderr, " %02x", (unsigned char)s[i]);
                fprintf(stderr, "\n");
                fail();
            }
            free(d);
        }
    }
    free(s);
    free(want);
    free(ids);
}

static void test_roundtrip_random_bytes(void **state) {
    (void)state;
    const char *pres[] = {PRE_GPT2_JSON, PRE_SMOLLM_JSON, PRE_QWEN2_JSON, PRE_LLAMA3_JSON};
    for (int p = 0; p < 4; p++) {
        tokenizer *t = tiny_default(pres[p]);
        for (int b = 0; b < 256; b++) {  // every byte has its token here: nothing is dropped
            char c = (char)b;
            assert_int_equal(tokenizer_encode(t, &c, 1, 0, NULL, 0), 1);
        }
        roundtrip_random(t, 400, 300);
        tokenizer_free(t);
    }
    // A vocab without the token for byte 0xFF drops that byte (llama.cpp does the same).
    tiny_spec sp = {PRE_GPT2_JSON, EXTRA, N_EXTRA, MERGES, N_MERGES, 0, 0, 0xFF + 1};
    tokenizer *t = tiny_load(&sp);
    ASSERT_IDS(t, "a\xff\xff" "b", 0, 'a', 'b');
    assert_int_equal(tokenizer_encode(t, "\xff", 1, 0, NULL, 0), 0);
    roundtrip_random(t, 200, 200);
    tokenizer_free(t);
}

static void expect_json_error(const char *content, const char *needle) {
    const char *p = write_tmp("tokenizer.json", content, strlen(content));
    tokenizer *t = (tokenizer *)&t;  // must be reset to NULL
    trl_err e = {{0}};
    assert_int_equal(tokenizer_init_json(&t, p, &e), TRL_ERR);
    assert_null(t);
    if (!strstr(e.msg, needle)) {
        fprintf(stderr, "error \"%s\" lacks \"%s\"\n", e.msg, needle);
        fail();
    }
}

static void test_bad_json_files(void **state) {
    (void)state;
    expect_json_error("{\"model\": {\"vocab\": {\"a\": 0,}", "malformed JSON");
    expect_json_error("", "malformed JSON");
    expect_json_error("{\"pre_tokenizer\":" PRE_GPT2_JSON ",\"model\":{\"type\":\"BPE\",\"merges\":[]}}",
                      "model.vocab");
    expect_json_error("{\"pre_tokenizer\":" PRE_GPT2_JSON ",\"model\":{\"vocab\":{\"a\":0}}}", "model.merges");
    expect_json_error("{\"pre_tokenizer\":" PRE_GPT2_JSON
                      ",\"model\":{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a c\"]}}",
                      "not in the vocabulary");
    expect_json_error("{\"pre_tokenizer\":" PRE_GPT2_JSON
                      ",\"model\":{\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}}",
                      "merged token");
    expect_json_error("{\"pre_tokenizer\":" PRE_GPT2_JSON
                      ",\"model\":{\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"ab\"]}}",
                      "not \"A B\"");
    expect_json_error("{\"pre_tokenizer\":" PRE_GPT2_JSON ",\"model\":{\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}",
                      "used twice");
    expect_json_error("{\"pre_tokenizer\":" PRE_GPT2_JSON ",\"model\":{\"vocab\":{\"a\":-3},\"merges\":[]}}",
                      "valid id");
    expect_json_error("{\"pre_tokenizer\":" PRE_GPT2_JSON ",\"model\":{\"vocab\":{\"a\":9000000},\"merges\":[]}}",
                      "for only 1 tokens");
    expect_json_error("{\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"model\":{\"vocab\":{\"a\":0},\"merges\":[]}}",
                      "unsupported pre_tokenizer");
    expect_json_error("{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]}}", "pre_tokenizer");
    expect_json_error("{\"pre_tokenizer\":" SPLIT_JSON("\\\\w+") ",\"model\":{\"vocab\":{\"a\":0},\"merges\":[]}}",
                      "unsupported Split regex");
    expect_json_error("{\"added_tokens\":[{\"id\":0,\"content\":\"<s>\",\"special\":true}],\"pre_tokenizer\":"
                      PRE_GPT2_JSON ",\"model\":{\"vocab\":{\"a\":0},\"merges\":[]}}",
                      "<s>");
    expect_json_error("{\"pre_tokenizer\":" PRE_GPT2_JSON
                      ",\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0},\"merges\":[]}}",
                      "not BPE");
    tokenizer *t = (tokenizer *)&t;
    trl_err e = {{0}};
    assert_int_equal(tokenizer_init_json(&t, "/nonexistent/tokenizer.json", &e), TRL_ERR);
    assert_null(t);
    assert_non_null(strstr(e.msg, "/nonexistent/tokenizer.json"));
}

static void test_json_config_ids(void **state) {
    (void)state;
    const char *cfg = "{\"bos_token\":\"<|im_start|>\",\"eos_token\":{\"content\":\"<|im_end|>\"},"
                      "\"add_bos_token\":true}";
    write_tmp("tokenizer_config.json", cfg, strlen(cfg));
    tokenizer *t = tiny_default(PRE_GPT2_JSON);
    assert_int_equal(tokenizer_bos(t), A_IM_START);
    assert_int_equal(tokenizer_eos(t), A_IM_END);
    assert_int_equal(tokenizer_add_bos(t), 1);
    assert_true(tokenizer_is_eog(t, A_IM_END));
    tokenizer_free(t);
    write_tmp("tokenizer_config.json", "{oops", 5);
    char *js = tiny_json(&(tiny_spec){PRE_GPT2_JSON, EXTRA, N_EXTRA, MERGES, N_MERGES, 0, 0, 0});
    const char *p = write_tmp("tokenizer.json", js, strlen(js));
    free(js);
    trl_err e = {{0}};
    assert_int_equal(tokenizer_init_json(&t, p, &e), TRL_ERR);
    assert_non_null(strstr(e.msg, "tokenizer_config.json"));
    remove_tmp("tokenizer_config.json");
}

// ---------------------------------------------------------------- tiny GGUF

// A GGUF image with the tiny vocab (no added tokens except <|im_start|>/<|im_end|> as CONTROL).
static gguf_bytes tiny_gguf(const char *model, const char *pre, int with_merges) {
    gguf_bytes kv = {0}, b = {0};
    gguf_bytes_kv_str(&kv, "tokenizer.ggml.model", model);
    if (pre) gguf_bytes_kv_str(&kv, "tokenizer.ggml.pre", pre);
    int n = 256 + N_EXTRA + 2;
    gguf_bytes_kv_array(&kv, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, (uint64_t)n);
    for (int i = 0; i < 256; i++) {
        char raw[2] = {(char)i, 0};
        gguf_bytes_str(&kv, i ? bl(raw) : "\xC4\x80");
    }
    for (int i = 0; i < N_EXTRA; i++) gguf_bytes_str(&kv, bl(EXTRA[i]));
    gguf_bytes_str(&kv, "<|im_start|>");
    gguf_bytes_str(&kv, "<|im_end|>");
    gguf_bytes_kv_array(&kv, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, (uint64_t)n);
    for (int i = 0; i < n; i++) gguf_bytes_u32(&kv, i >= n - 2 ? TOKEN_CONTROL : TOKEN_NORMAL);
    if (with_merges) {
        gguf_bytes_kv_array(&kv, "tokenizer.ggml.merges", GGUF_TYPE_STRING, N_MERGES);
        for (int i = 0; i < N_MERGES; i++) {
            char m[64];
            snprintf(m, sizeof(m), "%s", bl(MERGES[2 * i]));
            strcat(m, " ");
            strcat(m, bl(MERGES[2 * i + 1]));
            gguf_bytes_str(&kv, m);
        }
    }
    gguf_bytes_kv_u32(&kv, "tokenizer.ggml.bos_token_id", (uint32_t)n - 2);
    gguf_bytes_kv_u32(&kv, "tokenizer.ggml.eos_token_id", (uint32_t)n - 1);
    gguf_bytes_kv_bool(&kv, "tokenizer.ggml.add_bos_token", 1);
    gguf_bytes_put(&b, "GGUF", 4);
    gguf_bytes_u32(&b, 3);
    gguf_bytes_u64(&b, 0);  // no tensors
    gguf_bytes_u64(&b, (uint64_t)kv.n_kv);
    gguf_bytes_put(&b, kv.p, kv.n);
    gguf_bytes_pad(&b, 32);
    assert_false(kv.oom || b.oom);
    gguf_bytes_free(&kv);
    return b;
}

static int gguf_tok(const char *model, const char *pre, int with_merges, tokenizer **t, trl_err *e) {
    gguf_bytes b = tiny_gguf(model, pre, with_merges);
    gguf_file f;
    int rc = gguf_open_memory(&f, b.p, b.n, e);
    if (rc == TRL_OK) {
        rc = tokenizer_init_gguf(t, &f, e);
        gguf_close(&f);  // the tokenizer keeps its own copies
    }
    free(b.p);
    return rc;
}

static void test_gguf_tiny(void **state) {
    (void)state;
    tokenizer *t = NULL;
    trl_err e = {{0}};
    if (gguf_tok("gpt2", "smollm", 1, &t, &e) != TRL_OK) fprintf(stderr, "%s\n", e.msg);
    assert_non_null(t);
    int im_start = 256 + N_EXTRA, im_end = im_start + 1;
    assert_int_equal(tokenizer_n_vocab(t), im_end + 1);
    assert_int_equal(tokenizer_bos(t), im_start);
    assert_int_equal(tokenizer_eos(t), im_end);
    assert_int_equal(tokenizer_add_bos(t), 1);
    assert_true(tokenizer_is_eog(t, im_end));
    assert_string_equal(tokenizer_pre_name(t), "smollm");
    ASSERT_IDS(t, "<|im_start|>abc a 12  ", 1, im_start, 'a', X_BC, ' ', 'a', ' ', '1', '2', X_SS);
    roundtrip_random(t, 200, 200);
    tokenizer_free(t);

    struct {
        const char *model, *pre;
        int merges;
        const char *needle;
    } bad[] = {
        {"llama", "smollm", 1, "only \"gpt2\""},
        {"gpt2", "falcon", 1, "unsupported tokenizer.ggml.pre \"falcon\""},
        {"gpt2", NULL, 1, "tokenizer.ggml.pre missing"},
        {"gpt2", "gpt-2", 0, "tokenizer.ggml.merges"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        t = (tokenizer *)&t;
        memset(&e, 0, sizeof(e));
        assert_int_equal(gguf_tok(bad[i].model, bad[i].pre, bad[i].merges, &t, &e), TRL_ERR);
        assert_null(t);
        if (!strstr(e.msg, bad[i].needle)) {
            fprintf(stderr, "error \"%s\" lacks \"%s\"\n", e.msg, bad[i].needle);
            fail();
        }
    }
}

// ---------------------------------------------------------------- the real model and BFCL

static int load_model(gguf_file *f, tokenizer **t) {
    if (access(MODEL_PATH, R_OK) != 0) {
        print_message("skipped: %s not found (run from the repo root; `make model` fetches it)\n", MODEL_PATH);
        return 0;
    }
    trl_err e = {{0}};
    if (gguf_open(f, MODEL_PATH, &e) != TRL_OK) {
        fprintf(stderr, "%s\n", e.msg);
        fail();
    }
    if (tokenizer_init_gguf(t, f, &e) != TRL_OK) {
        fprintf(stderr, "%s\n", e.msg);
        fail();
    }
    return 1;
}

static void test_model_vocab(void **state) {
    (void)state;
    gguf_file f;
    tokenizer *t = NULL;
    if (!load_model(&f, &t)) skip();
    assert_int_equal(tokenizer_n_vocab(t), 49152);
    assert_int_equal(tokenizer_bos(t), 1);
    assert_int_equal(tokenizer_eos(t), 2);
    assert_int_equal(tokenizer_add_bos(t), 0);
    assert_string_equal(tokenizer_pre_name(t), "smollm");
    assert_int_equal(tokenizer_find(t, "<|im_start|>"), 1);
    assert_int_equal(tokenizer_token_type(t, 1), TOKEN_CONTROL);
    assert_true(tokenizer_is_eog(t, 2));
    assert_true(tokenizer_is_eog(t, 0));  // <|endoftext|>
    assert_false(tokenizer_is_eog(t, 1));
    assert_false(tokenizer_is_eog(t, 1000));
    char b[32];
    assert_int_equal(tokenizer_decode(t, 1, 0, b, sizeof(b)), 0);
    assert_int_equal(tokenizer_decode(t, 1, 1, b, sizeof(b)), 12);
    gguf_close(&f);  // the tokenizer must not depend on the mapping
    ASSERT_IDS(t, "<|im_start|>user\nHello world<|im_end|>", 1, 1, 4093, 198, 19556, 905, 2);
    roundtrip_random(t, 1000, 400);
    tokenizer_free(t);
}

// FNV-1a 64, as the fixture script computes it.
static uint64_t fnv1a64(const char *s, size_t n) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001B3ull;
    }
    return h;
}

typedef struct {
    char *text;
    size_t len;
    char key[128];
} text_item;

typedef struct {
    text_item *all;  // every BFCL text, walk order, duplicates included
    size_t n_all;
    size_t *uniq;  // indices into all of the first occurrence of each distinct text
    size_t n_uniq;
    size_t raw_bytes;  // size of the JSONL files
    char **files;      // file contents (for the speed test)
    size_t *file_len;
    size_t n_files;
} bfcl_set;

static void push_text(bfcl_set *s, const char *text, const char *key) {
    if (s->n_all % 1024 == 0) {
        s->all = realloc(s->all, (s->n_all + 1024) * sizeof(text_item));
        assert_non_null(s->all);
    }
    text_item *it = &s->all[s->n_all++];
    it->len = strlen(text);
    it->text = malloc(it->len + 1);
    assert_non_null(it->text);
    memcpy(it->text, text, it->len + 1);
    snprintf(it->key, sizeof(it->key), "%s", key);
}

static void bfcl_free(bfcl_set *s) {
    for (size_t i = 0; i < s->n_all; i++) free(s->all[i].text);
    for (size_t i = 0; i < s->n_files; i++) free(s->files[i]);
    free(s->all);
    free(s->uniq);
    free(s->files);
    free(s->file_len);
    memset(s, 0, sizeof(*s));
}

// Walks $TOOLRL_SHARED/data/bfcl/*.json in the fixture script's order. 0 if the data is absent.
static int bfcl_load(bfcl_set *s) {
    memset(s, 0, sizeof(*s));
    char pat[512];
    snprintf(pat, sizeof(pat), "%s/data/bfcl/*.json", shared_dir());
    glob_t g;
    if (glob(pat, 0, NULL, &g) != 0 || g.gl_pathc == 0) {
        print_message("skipped: no BFCL data at %s (set TOOLRL_SHARED to the shared folder)\n", pat);
        return 0;
    }
    s->files = calloc(g.gl_pathc, sizeof(char *));
    s->file_len = calloc(g.gl_pathc, sizeof(size_t));
    assert_non_null(s->files);
    assert_non_null(s->file_len);
    for (size_t fi = 0; fi < g.gl_pathc; fi++) {
        trl_err e = {{0}};
        size_t n;
        char *data = trl_read_file(g.gl_pathv[fi], &n, &e);
        assert_non_null(data);
        s->files[s->n_files] = data;
        s->file_len[s->n_files++] = n;
        s->raw_bytes += n;
        const char *name = strrchr(g.gl_pathv[fi], '/') + 1;
        int row = -1;
        for (char *line = data; line < data + n;) {
            char *nl = memchr(line, '\n', (size_t)(data + n - line));
            size_t ll = nl ? (size_t)(nl - line) : (size_t)(data + n - line);
            int blank = 1;
            for (size_t i = 0; i < ll; i++)
                if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r') blank = 0;
            if (!blank) {
                row++;
                cJSON *r = cJSON_ParseWithLength(line, ll);
                assert_non_null(r);
                char key[128];
                const cJSON *turn, *m, *fn;
                int ti = 0;
                cJSON_ArrayForEach(turn, cJSON_GetObjectItem(r, "question")) {
                    int mi = 0;
                    cJSON_ArrayForEach(m, turn) {
                        const cJSON *role = cJSON_GetObjectItem(m, "role");
                        const cJSON *content = cJSON_GetObjectItem(m, "content");
                        if (cJSON_IsString(role) && cJSON_IsString(content) &&
                            (!strcmp(role->valuestring, "user") || !strcmp(role->valuestring, "system"))) {
                            snprintf(key, sizeof(key), "%s:%d:q%d.%d", name, row, ti, mi);
                            push_text(s, content->valuestring, key);
                        }
                        mi++;
                    }
                    ti++;
                }
                int fidx = 0;
                cJSON_ArrayForEach(fn, cJSON_GetObjectItem(r, "function")) {
                    const cJSON *d = cJSON_GetObjectItem(fn, "description");
                    if (cJSON_IsString(d)) {
                        snprintf(key, sizeof(key), "%s:%d:f%d", name, row, fidx);
                        push_text(s, d->valuestring, key);
                    }
                    fidx++;
                }
                cJSON_Delete(r);
            }
            line += ll + 1;
        }
    }
    globfree(&g);
    // Distinct texts in first-occurrence order (open addressing on FNV hash + bytes).
    size_t cap = 1;
    while (cap < s->n_all * 2 + 2) cap <<= 1;
    size_t *slot = malloc(cap * sizeof(size_t));
    s->uniq = malloc((s->n_all + 1) * sizeof(size_t));
    assert_non_null(slot);
    assert_non_null(s->uniq);
    for (size_t i = 0; i < cap; i++) slot[i] = SIZE_MAX;
    for (size_t i = 0; i < s->n_all; i++) {
        size_t h = (size_t)fnv1a64(s->all[i].text, s->all[i].len) & (cap - 1);
        for (;; h = (h + 1) & (cap - 1)) {
            size_t o = slot[h];
            if (o == SIZE_MAX) {
                slot[h] = i;
                s->uniq[s->n_uniq++] = i;
                break;
            }
            if (s->all[o].len == s->all[i].len && !memcmp(s->all[o].text, s->all[i].text, s->all[i].len)) break;
        }
    }
    free(slot);
    return 1;
}

typedef struct {
    char kind;      // 'T', 'P' or 'Q'
    char pre[16];   // Q: the GGUF pre-tokenizer string
    uint64_t hash;  // T
    size_t len;     // T
    char *key;      // T: source key; P, Q: decoded text (malloc'd)
    size_t plen;    // P, Q: text length
    int special;    // P, Q
    int32_t *ids;
    int n_ids;
} fix_line;

static fix_line *fixture_load(size_t *n_out) {
    trl_err e = {{0}};
    size_t n;
    char *data = trl_read_file(FIXTURE_PATH, &n, &e);
    if (!data) {
        fprintf(stderr, "%s (regenerate with tests/ref/make_token_fixture.py)\n", e.msg);
        fail();
    }
    size_t cap = 8192, k = 0;
    fix_line *L = calloc(cap, sizeof(fix_line));
    assert_non_null(L);
    for (char *line = data; line < data + n;) {
        char *nl = memchr(line, '\n', (size_t)(data + n - line));
        if (nl) *nl = 0;
        char *next = nl ? nl + 1 : data + n;
        if (line[0] == 'T' || line[0] == 'P' || line[0] == 'Q') {
            if (k == cap) {
                cap *= 2;
                L = realloc(L, cap * sizeof(fix_line));
                assert_non_null(L);
            }
            fix_line *f = &L[k++];
            memset(f, 0, sizeof(*f));
            f->kind = line[0];
            char *fld[6] = {0};
            int nf = 0;
            for (char *p = line; nf < 6;) {
                fld[nf++] = p;
                char *tab = strchr(p, '\t');
                if (!tab) break;
                *tab = 0;
                p = tab + 1;
            }
            char *idf;
            if (f->kind == 'T') {
                assert_int_equal(nf, 5);
                f->hash = strtoull(fld[1], NULL, 16);
                f->len = strtoull(fld[2], NULL, 10);
                f->key = strdup(fld[3]);
                idf = fld[4];
            } else {
                if (f->kind == 'Q') {  // drop the pre column: the rest reads like a P line
                    assert_int_equal(nf, 5);
                    snprintf(f->pre, sizeof(f->pre), "%s", fld[1]);
                    memmove(fld + 1, fld + 2, 3 * sizeof(char *));
                    nf--;
                }
                assert_int_equal(nf, 4);
                f->special = fld[1][0] == 'S';
                cJSON *js = cJSON_Parse(fld[2]);
                assert_true(cJSON_IsString(js));
                f->plen = strlen(js->valuestring);
                f->key = strdup(js->valuestring);
                cJSON_Delete(js);
                idf = fld[3];
            }
            assert_non_null(f->key);
            size_t nid = 0;
            for (char *p = idf; *p; p++) nid += *p == ' ';
            f->ids = malloc((nid + 1) * sizeof(int32_t));
            assert_non_null(f->ids);
            for (char *p = idf; *p;) {
                char *end;
                long v = strtol(p, &end, 10);
                if (end == p) break;
                f->ids[f->n_ids++] = (int32_t)v;
                p = end;
            }
        }
        line = next;
    }
    free(data);
    *n_out = k;
    return L;
}

static void fixture_free(fix_line *L, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(L[i].key);
        free(L[i].ids);
    }
    free(L);
}

static void report_mismatch(const char *what, const int32_t *want, int nw, const int32_t *got, int ng) {
    int i = 0;
    while (i < nw && i < ng && want[i] == got[i]) i++;
    fprintf(stderr, "MISMATCH %s: %d vs %d ids, first difference at %d\n  want:", what, nw, ng, i);
    for (int j = i > 3 ? i - 3 : 0; j < nw && j < i + 8; j++) fprintf(stderr, " %d", want[j]);
    fprintf(stderr, "\n  got: ");
    for (int j = i > 3 ? i - 3 : 0; j < ng && j < i + 8; j++) fprintf(stderr, " %d", got[j]);
    fprintf(stderr, "\n");
}

static void test_bfcl_parity_llama_cpp(void **state) {
    (void)state;
    gguf_file f;
    tokenizer *t = NULL;
    if (!load_model(&f, &t)) skip();
    bfcl_set s;
    if (!bfcl_load(&s)) {
        tokenizer_free(t);
        gguf_close(&f);
        skip();
    }
    size_t nfix;
    fix_line *L = fixture_load(&nfix);
    size_t cap = 1 << 16;
    int32_t *ids = malloc(cap * sizeof(int32_t));
    assert_non_null(ids);
    // 1. The fixture's T lines are the distinct texts in walk order.
    size_t li = 0, bad = 0, n_tokens = 0;
    for (size_t u = 0; u < s.n_uniq; u++, li++) {
        const text_item *it = &s.all[s.uniq[u]];
        if (li >= nfix || L[li].kind != 'T' || L[li].hash != fnv1a64(it->text, it->len) || L[li].len != it->len) {
            fprintf(stderr, "fixture out of step with the data at %s (fixture line %zu): regenerate it with "
                            "tests/ref/make_token_fixture.py\n", it->key, li);
            fail();
        }
        int k = tokenizer_encode(t, it->text, it->len, 0, ids, (int)cap);
        assert_true(k >= 0 && (size_t)k <= cap);
        n_tokens += (size_t)k;
        if (k != L[li].n_ids || memcmp(ids, L[li].ids, (size_t)k * sizeof(int32_t)) != 0) {
            if (bad++ < 5) report_mismatch(it->key, L[li].ids, L[li].n_ids, ids, k);
        }
    }
    size_t n_t = li;
    // 2. The P lines: chat prompts with special tokens, and edge cases.
    size_t n_p = 0;
    for (; li < nfix; li++) {
        if (L[li].kind != 'P') continue;
        int k = tokenizer_encode(t, L[li].key, L[li].plen, L[li].special, ids, (int)cap);
        assert_true(k >= 0 && (size_t)k <= cap);
        n_p++;
        if (k != L[li].n_ids || memcmp(ids, L[li].ids, (size_t)k * sizeof(int32_t)) != 0) {
            char what[96];
            snprintf(what, sizeof(what), "prompt %zu \"%.40s\"", n_p - 1, L[li].key);
            if (bad++ < 10) report_mismatch(what, L[li].ids, L[li].n_ids, ids, k);
        }
    }
    // 3. Speed: every BFCL text (duplicates included), then the raw JSONL files.
    size_t bytes = 0;
    double t0 = trl_now();
    for (size_t i = 0; i < s.n_all; i++) {
        assert_true(tokenizer_encode(t, s.all[i].text, s.all[i].len, 0, ids, (int)cap) >= 0);
        bytes += s.all[i].len;
    }
    double t1 = trl_now();
    size_t raw_tokens = 0;
    for (size_t i = 0; i < s.n_files; i++) {
        int k = tokenizer_encode(t, s.files[i], s.file_len[i], 0, NULL, 0);
        assert_true(k > 0);
        raw_tokens += (size_t)k;
    }
    double t2 = trl_now();
    print_message("BFCL parity: %zu texts (%zu distinct, %zu tokens) + %zu prompts: %zu mismatches\n", s.n_all, n_t,
                  n_tokens, n_p, bad);
    print_message("encode speed: %zu texts, %.2f MB in %.3f s (%.1f MB/s); raw JSONL %.2f MB -> %zu tokens in "
                  "%.3f s (%.1f MB/s)\n", s.n_all, bytes / 1e6, t1 - t0, bytes / 1e6 / (t1 - t0),
                  s.raw_bytes / 1e6, raw_tokens, t2 - t1, s.raw_bytes / 1e6 / (t2 - t1));
    assert_int_equal(bad, 0);
    assert_true(t1 - t0 < 5.0);  // generous: ~0.1 s expected (ASan builds are slower)
    free(ids);
    fixture_free(L, nfix);
    bfcl_free(&s);
    tokenizer_free(t);
    gguf_close(&f);
}

// Writes a tokenizer.json (merges as pairs, SmolLM's pre-tokenizer) straight from the GGUF's
// tokenizer.ggml.* arrays, loads it, and checks both tokenizers agree on every BFCL text.
static void test_gguf_json_agree(void **state) {
    (void)state;
    gguf_file f;
    tokenizer *tg = NULL;
    if (!load_model(&f, &tg)) skip();
    bfcl_set s;
    if (!bfcl_load(&s)) {
        tokenizer_free(tg);
        gguf_close(&f);
        skip();
    }
    cJSON *root = cJSON_CreateObject();
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON_AddItemToObject(root, "pre_tokenizer", cJSON_Parse(PRE_SMOLLM_JSON));
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    const gguf_kv *kt = gguf_find_kv(&f, "tokenizer.ggml.tokens");
    const gguf_kv *ky = gguf_find_kv(&f, "tokenizer.ggml.token_type");
    gguf_str_iter it;
    gguf_str str;
    char tmp[1024];
    assert_int_equal(gguf_arr_str_begin(kt, &it), TRL_OK);
    for (int i = 0; gguf_arr_str_next(&it, &str); i++) {
        assert_true(str.len < sizeof(tmp));
        memcpy(tmp, str.ptr, str.len);
        tmp[str.len] = 0;
        cJSON_AddNumberToObject(vocab, tmp, i);
        if (gguf_arr_int(ky, (uint64_t)i) == TOKEN_CONTROL) {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", i);
            cJSON_AddStringToObject(a, "content", tmp);
            cJSON_AddBoolToObject(a, "special", 1);
            cJSON_AddItemToArray(added, a);
        }
    }
    assert_int_equal(gguf_arr_str_begin(gguf_find_kv(&f, "tokenizer.ggml.merges"), &it), TRL_OK);
    while (gguf_arr_str_next(&it, &str)) {
        assert_true(str.len < sizeof(tmp));
        memcpy(tmp, str.ptr, str.len);
        tmp[str.len] = 0;
        char *sp = strchr(tmp + 1, ' ');
        assert_non_null(sp);
        *sp = 0;
        cJSON *pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, cJSON_CreateString(tmp));
        cJSON_AddItemToArray(pair, cJSON_CreateString(sp + 1));
        cJSON_AddItemToArray(merges, pair);
    }
    char *js = cJSON_PrintUnformatted(root);
    assert_non_null(js);
    cJSON_Delete(root);
    char p[128];
    snprintf(p, sizeof(p), "%s", write_tmp("tokenizer.json", js, strlen(js)));
    free(js);
    const char *cfg = "{\"bos_token\":\"<|im_start|>\",\"eos_token\":\"<|im_end|>\",\"add_bos_token\":false}";
    write_tmp("tokenizer_config.json", cfg, strlen(cfg));
    tokenizer *tj = NULL;
    trl_err e = {{0}};
    if (tokenizer_init_json(&tj, p, &e) != TRL_OK) fprintf(stderr, "%s\n", e.msg);
    assert_non_null(tj);
    remove_tmp("tokenizer_config.json");
    assert_int_equal(tokenizer_n_vocab(tj), tokenizer_n_vocab(tg));
    assert_int_equal(tokenizer_bos(tj), 1);
    assert_int_equal(tokenizer_eos(tj), 2);
    assert_string_equal(tokenizer_pre_name(tj), "smollm");
    size_t cap = 1 << 16, bad = 0;
    int32_t *a = malloc(cap * sizeof(int32_t)), *b = malloc(cap * sizeof(int32_t));
    assert_non_null(a);
    assert_non_null(b);
    for (size_t u = 0; u < s.n_uniq; u++) {
        const text_item *ti = &s.all[s.uniq[u]];
        for (int special = 0; special < 2; special++) {
            int ka = tokenizer_encode(tg, ti->text, ti->len, special, a, (int)cap);
            int kb = tokenizer_encode(tj, ti->text, ti->len, special, b, (int)cap);
            if (ka != kb || memcmp(a, b, (size_t)ka * sizeof(int32_t)) != 0)
                if (bad++ < 5) report_mismatch(ti->key, a, ka, b, kb);
        }
    }
    for (int32_t id = 0; id < tokenizer_n_vocab(tg); id++) {
        char da[256], db[256];
        int na = tokenizer_decode(tg, id, 1, da, sizeof(da)), nb = tokenizer_decode(tj, id, 1, db, sizeof(db));
        if (na != nb || memcmp(da, db, (size_t)na) != 0 || tokenizer_token_type(tg, id) != tokenizer_token_type(tj, id))
            if (bad++ < 10) fprintf(stderr, "token %d differs between GGUF and tokenizer.json\n", id);
    }
    print_message("GGUF vs tokenizer.json: %zu distinct BFCL texts x 2 modes, %d tokens: %zu differences\n",
                  s.n_uniq, tokenizer_n_vocab(tg), bad);
    assert_int_equal(bad, 0);
    free(a);
    free(b);
    tokenizer_free(tj);
    tokenizer_free(tg);
    gguf_close(&f);
    bfcl_free(&s);
}

// The same vocab under the other pre-tokenizers (gpt-2, qwen2, llama-bpe): an in-memory GGUF
// with the real model's tokenizer arrays and another tokenizer.ggml.pre; ids must equal the
// fixture's Q lines (llama.cpp on the same vocab-only GGUF).
static gguf_bytes gguf_with_pre(const gguf_file *src, const char *pre) {
    gguf_bytes b = {0};
    gguf_bytes_put(&b, "GGUF", 4);
    gguf_bytes_u32(&b, 3);
    gguf_bytes_u64(&b, 0);
    gguf_bytes_u64(&b, 8);
    gguf_bytes_str(&b, "tokenizer.ggml.model");
    gguf_bytes_u32(&b, GGUF_TYPE_STRING);
    gguf_bytes_str(&b, "gpt2");
    gguf_bytes_str(&b, "tokenizer.ggml.pre");
    gguf_bytes_u32(&b, GGUF_TYPE_STRING);
    gguf_bytes_str(&b, pre);
    const char *arrays[] = {"tokenizer.ggml.tokens", "tokenizer.ggml.merges"};
    for (int a = 0; a < 2; a++) {
        const gguf_kv *kv = gguf_find_kv(src, arrays[a]);
        gguf_str_iter it;
        gguf_str s;
        assert_int_equal(gguf_arr_str_begin(kv, &it), TRL_OK);
        gguf_bytes_str(&b, arrays[a]);
        gguf_bytes_u32(&b, GGUF_TYPE_ARRAY);
        gguf_bytes_u32(&b, GGUF_TYPE_STRING);
        gguf_bytes_u64(&b, kv->arr_n);
        while (gguf_arr_str_next(&it, &s)) {
            gguf_bytes_u64(&b, s.len);
            gguf_bytes_put(&b, s.ptr, s.len);
        }
    }
    const gguf_kv *ty = gguf_find_kv(src, "tokenizer.ggml.token_type");
    assert_non_null(ty);
    gguf_bytes_str(&b, "tokenizer.ggml.token_type");
    gguf_bytes_u32(&b, GGUF_TYPE_ARRAY);
    gguf_bytes_u32(&b, GGUF_TYPE_INT32);
    gguf_bytes_u64(&b, ty->arr_n);
    for (uint64_t i = 0; i < ty->arr_n; i++) gguf_bytes_u32(&b, (uint32_t)gguf_arr_int(ty, i));
    gguf_bytes_str(&b, "tokenizer.ggml.bos_token_id");
    gguf_bytes_u32(&b, GGUF_TYPE_UINT32);
    gguf_bytes_u32(&b, 1);
    gguf_bytes_str(&b, "tokenizer.ggml.eos_token_id");
    gguf_bytes_u32(&b, GGUF_TYPE_UINT32);
    gguf_bytes_u32(&b, 2);
    gguf_bytes_str(&b, "tokenizer.ggml.add_bos_token");
    gguf_bytes_u32(&b, GGUF_TYPE_BOOL);
    gguf_bytes_put(&b, "\0", 1);
    while (b.n % 32) gguf_bytes_put(&b, "\0", 1);
    return b;
}

static void test_other_pretokenizers_llama_cpp(void **state) {
    (void)state;
    gguf_file f;
    tokenizer *t0 = NULL;
    if (!load_model(&f, &t0)) skip();
    tokenizer_free(t0);
    size_t nfix;
    fix_line *L = fixture_load(&nfix);
    const char *pres[] = {"gpt-2", "qwen2", "llama-bpe"};
    const char *names[] = {"gpt2", "qwen2", "llama3"};
    int32_t ids[4096];
    size_t bad = 0, checked = 0;
    for (int p = 0; p < 3; p++) {
        gguf_bytes b = gguf_with_pre(&f, pres[p]);
        gguf_file g;
        tokenizer *t = NULL;
        trl_err e = {{0}};
        assert_int_equal(gguf_open_memory(&g, b.p, b.n, &e), TRL_OK);
        if (tokenizer_init_gguf(&t, &g, &e) != TRL_OK) fprintf(stderr, "%s\n", e.msg);
        assert_non_null(t);
        assert_string_equal(tokenizer_pre_name(t), names[p]);
        size_t n_here = 0;
        for (size_t i = 0; i < nfix; i++) {
            if (L[i].kind != 'Q' || strcmp(L[i].pre, pres[p]) != 0) continue;
            int k = tokenizer_encode(t, L[i].key, L[i].plen, L[i].special, ids, 4096);
            assert_true(k >= 0 && k <= 4096);
            n_here++;
            if (k != L[i].n_ids || memcmp(ids, L[i].ids, (size_t)k * sizeof(int32_t)) != 0) {
                char what[96];
                snprintf(what, sizeof(what), "%s \"%.40s\"", pres[p], L[i].key);
                if (bad++ < 10) report_mismatch(what, L[i].ids, L[i].n_ids, ids, k);
            }
        }
        assert_true(n_here > 100);
        checked += n_here;
        tokenizer_free(t);
        gguf_close(&g);
        free(b.p);
    }
    print_message("other pre-tokenizers (gpt-2, qwen2, llama-bpe) vs llama.cpp: %zu texts, %zu mismatches\n",
                  checked, bad);
    assert_int_equal(bad, 0);
    fixture_free(L, nfix);
    gguf_close(&f);
}

// ---------------------------------------------------------------- untrained added tokens

// Added tokens whose embedding rows are a padding token's (never trained, as Qwen2.5-Coder's
// <tool_call> and </tool_call> in its GGUFs) are read as plain text by model_load: the text
// splits into ordinary pieces, decoding still gives it, and a tokenizer.json written from the
// model reads it the same way. With trained (distinct) rows the tags stay single tokens.
static int encode_str(const tokenizer *t, const char *s, int32_t *ids, int cap) {
    return tokenizer_encode(t, s, strlen(s), 1, ids, cap);
}

static void test_untrained_tags_plain(void **state) {
    (void)state;
    char dir[256], path[400], json[400];
    assert_int_equal(tiny_model_tempdir(dir, sizeof(dir)), 0);
    snprintf(path, sizeof(path), "%s/tags.gguf", dir);
    snprintf(json, sizeof(json), "%s/tokenizer.json", dir);
    const char *text = "<tool_call>[1]</tool_call>";
    int32_t ids[64], ids2[64];
    int nt = tiny_model_n_tokens();
    trl_err e = {{0}};
    for (int tags = 1; tags <= 2; tags++) {
        tiny_model_spec s = tiny_model_default(MODEL_ARCH_QWEN2);  // 16 padding rows
        s.tool_tags = tags;
        assert_int_equal(tiny_model_write_gguf(&s, 0, path, &e), TRL_OK);
        model m;
        assert_int_equal(model_load(&m, path, &e), TRL_OK);
        int n = encode_str(m.tok, text, ids, 64);
        char buf[64];
        assert_int_equal(tokenizer_decode(m.tok, nt, 1, buf, sizeof(buf)), 11);
        assert_memory_equal(buf, "<tool_call>", 11);
        if (tags == 1) {  // trained rows: the tags are single tokens
            assert_false(tokenizer_is_plain(m.tok, nt));
            assert_int_equal(ids[0], nt);
            assert_int_equal(ids[n - 1], nt + 1);
        } else {          // untrained rows: ordinary pieces, never the tag ids
            assert_true(tokenizer_is_plain(m.tok, nt) && tokenizer_is_plain(m.tok, nt + 1));
            assert_true(n > 6);
            for (int i = 0; i < n; i++) assert_true(ids[i] < nt);
            // the same through a tokenizer.json written from this tokenizer (a checkpoint's)
            assert_int_equal(tokenizer_write_json(m.tok, json, &e), TRL_OK);
            tokenizer *j = NULL;
            assert_int_equal(tokenizer_init_json(&j, json, &e), TRL_OK);
            assert_int_equal(encode_str(j, text, ids2, 64), n);
            assert_memory_equal(ids, ids2, sizeof(int32_t) * (size_t)n);
            tokenizer_free(j);
            remove(json);
        }
        model_free(&m);
    }
    tiny_model_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_null),
        cmocka_unit_test(test_merges_by_rank),
        cmocka_unit_test(test_special_partition),
        cmocka_unit_test(test_encode_capacity),
        cmocka_unit_test(test_smollm_digits),
        cmocka_unit_test(test_whitespace_runs),
        cmocka_unit_test(test_roundtrip_random_bytes),
        cmocka_unit_test(test_bad_json_files),
        cmocka_unit_test(test_json_config_ids),
        cmocka_unit_test(test_gguf_tiny),
        cmocka_unit_test(test_model_vocab),
        cmocka_unit_test(test_bfcl_parity_llama_cpp),
        cmocka_unit_test(test_gguf_json_agree),
        cmocka_unit_test(test_other_pretokenizers_llama_cpp),
        cmocka_unit_test(test_untrained_tags_plain),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
