// tokenizer.c: byte-level BPE (GPT-2 family) with llama.cpp's encode semantics.
// Loading: GGUF tokenizer.ggml.* metadata or a Hugging Face tokenizer.json (cJSON).
// Encoding: special-token partition (plain substring search, longest token first), then the
// model's pre-tokenizer regexes (PCRE2, applied in sequence, gaps kept as pieces), then a
// rank-ordered BPE merge per piece over token ids (heap + id-pair hash).
// Decoding: each code point of a normal token maps back to one byte (GPT-2 bytes_to_unicode).
// Invalid UTF-8 input never matches a regex item, so it ends up in gap pieces whose bytes map
// one-to-one to byte tokens: decode(encode(x)) == x for any bytes, as long as the vocab has all
// 256 byte tokens (a byte without one is dropped, as llama.cpp drops it; SmolLM2 lacks 21).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "model/tokenizer.h"

#include <cjson/cJSON.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { PRE_GPT2, PRE_SMOLLM, PRE_QWEN2, PRE_LLAMA3 };
static const char *const pre_names[] = {"gpt2", "smollm", "qwen2", "llama3"};

#define ATTR_LSTRIP 1
#define ATTR_RSTRIP 2
#define MAX_VOCAB (1 << 24)

// llama.cpp's whitespace set (unicode-data.cpp, the Unicode White_Space property). PCRE2's \s
// with UCP lacks U+0085, so the regexes spell the class out instead of using \s / \S.
#define WS "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

// `\s+(?!\S)` keeps llama.cpp's meaning with a real regex engine: in a whitespace run followed by
// a non-space, backtracking gives all but the last character (which may then prefix the word);
// at the end of a piece the lookahead succeeds and the run is taken whole. Each regex is matched
// against one piece at a time, so the lookahead never sees past the piece (as llama.cpp's
// OUT_OF_RANGE does).
static const char RE_GPT2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "])";
static const char RE_DIGIT[] = "\\p{N}";
#define RE_QWEN_HEAD "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
#define RE_QWEN_TAIL \
    "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+"
static const char RE_QWEN2[] = RE_QWEN_HEAD "\\p{N}" RE_QWEN_TAIL;
static const char RE_LLAMA3[] = RE_QWEN_HEAD "\\p{N}{1,3}" RE_QWEN_TAIL;

// The Hugging Face spellings of the Split regexes that map to qwen2 / llama3.
static const char HF_QWEN2[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char HF_LLAMA3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// Token texts that end generation (llama.cpp's by-text EOG list, FIM pad/repo/sep included).
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
    "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>", "<|return|>", "<|call|>",
    "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
    "<reponame>", "<|file_sep|>",
};

struct tokenizer {
    int n_vocab;
    char *text;            // raw token texts, back to back
    uint32_t *off, *len;   // (n_vocab) raw text of id
    char *dec;             // decoded bytes of NORMAL/BYTE tokens, back to back
    uint32_t *doff, *dlen; // (n_vocab)
    uint8_t *type, *attr, *eog;
    uint8_t *plain;        // added tokens read as plain text (tokenizer_set_plain)
    // vocab map: open addressing over ids, keyed by raw text; -1 = empty.
    int32_t *vslot;
    uint32_t vmask;
    // merge map: key (left id << 32 | right id) -> rank and merged id; UINT64_MAX = empty.
    uint64_t *mkey;
    int32_t *mrank, *mres;
    uint32_t mmask;
    int32_t byte_id[256];  // token of the byte-encoded character of each byte, -1 if absent
    int32_t *special;      // CONTROL/USER_DEFINED/UNKNOWN ids, longest text first
    int n_special;
    pcre2_code *re[2];
    int n_re;
    int pre, ignore_merges, add_bos;
    int32_t bos, eos;
};

// ---- staging: what a loader collects before tokenizer_build copies it ----

typedef struct {
    const char *s;
    size_t n;
} span;

typedef struct {
    span a, b;
} merge_span;

typedef struct {
    int n_vocab;
    span *tok;      // (n_vocab); {NULL,0} for a gap
    uint8_t *type;  // (n_vocab)
    uint8_t *attr;  // (n_vocab)
    size_t n_merges;
    merge_span *merges;
    int pre, ignore_merges, add_bos;
    int32_t bos, eos;
} staging;

static void staging_free(staging *s) {
    free(s->tok);
    free(s->type);
    free(s->attr);
    free(s->merges);
    memset(s, 0, sizeof(*s));
}

static int staging_alloc(staging *s, int n_vocab, size_t n_merges, trl_err *e) {
    s->n_vocab = n_vocab;
    s->tok = calloc((size_t)n_vocab ? (size_t)n_vocab : 1, sizeof(span));
    s->type = malloc((size_t)n_vocab + 1);
    s->attr = calloc((size_t)n_vocab + 1, 1);
    s->merges = malloc((n_merges ? n_merges : 1) * sizeof(merge_span));
    s->n_merges = 0;
    if (!s->tok || !s->type || !s->attr || !s->merges) return trl_errf(e, "tokenizer: out of memory");
    memset(s->type, TOKEN_UNUSED, (size_t)n_vocab + 1);
    s->bos = s->eos = -1;
    return TRL_OK;
}

// ---- hashing ----

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a 64
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) {  // splitmix64 finaliser
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint32_t pow2_at_least(size_t n) {
    uint32_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

static int32_t vocab_lookup(const tokenizer *t, const char *s, size_t n) {
    uint32_t i = (uint32_t)hash_bytes(s, n) & t->vmask;
    for (;;) {
        int32_t id = t->vslot[i];
        if (id < 0) return -1;
        if (t->len[id] == n && memcmp(t->text + t->off[id], s, n) == 0) return id;
        i = (i + 1) & t->vmask;
    }
}

// Returns the id already holding this text, or -1 after inserting id.
static int32_t vocab_insert(tokenizer *t, int32_t id) {
    const char *s = t->text + t->off[id];
    size_t n = t->len[id];
    uint32_t i = (uint32_t)hash_bytes(s, n) & t->vmask;
    for (;;) {
        int32_t o = t->vslot[i];
        if (o < 0) {
            t->vslot[i] = id;
            return -1;
        }
        if (t->len[o] == n && memcmp(t->text + t->off[o], s, n) == 0) return o;
        i = (i + 1) & t->vmask;
    }
}

static uint64_t merge_key(int32_t l, int32_t r) { return (uint64_t)(uint32_t)l << 32 | (uint32_t)r; }

// Rank of merging l and r (and the merged id in *res), or -1.
static int32_t merge_lookup(const tokenizer *t, int32_t l, int32_t r, int32_t *res) {
    uint64_t k = merge_key(l, r);
    uint32_t i = (uint32_t)hash_u64(k) & t->mmask;
    for (;;) {
        uint64_t o = t->mkey[i];
        if (o == UINT64_MAX) return -1;
        if (o == k) {
            *res = t->mres[i];
            return t->mrank[i];
        }
        i = (i + 1) & t->mmask;
    }
}

// ---- byte <-> code point (GPT-2 bytes_to_unicode) ----

static uint32_t byte_to_cp(int b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return (uint32_t)b;
    // The other 68 bytes map in increasing order to U+0100...
    int n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) n++;
    return 0x100u + (uint32_t)n;
}

static int cp_to_utf8(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// Decodes one UTF-8 sequence at s (n > 0 bytes left). Returns its length; *cp is -1 if invalid
// (then the length is 1).
static int utf8_next(const uint8_t *s, size_t n, int32_t *cp) {
    uint8_t c = s[0];
    int len;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2;
        v = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        v = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        v = c & 0x07;
    } else {
        *cp = -1;
        return 1;
    }
    if ((size_t)len > n) {
        *cp = -1;
        return 1;
    }
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = -1;
            return 1;
        }
        v = v << 6 | (s[i] & 0x3F);
    }
    *cp = (int32_t)v;
    return len;
}

// ---- build ----

void tokenizer_free(tokenizer *t) {
    if (!t) return;
    free(t->text);
    free(t->off);
    free(t->len);
    free(t->dec);
    free(t->doff);
    free(t->dlen);
    free(t->type);
    free(t->attr);
    free(t->eog);
    free(t->plain);
    free(t->vslot);
    free(t->mkey);
    free(t->mrank);
    free(t->mres);
    free(t->special);
    for (int i = 0; i < t->n_re; i++) pcre2_code_free(t->re[i]);
    free(t);
}

static int cmp_special(const void *pa, const void *pb, void *ctx) {
    const tokenizer *t = ctx;
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    if (t->len[a] != t->len[b]) return t->len[a] > t->len[b] ? -1 : 1;
    return a < b ? -1 : a > b;
}

static int compile_regexes(tokenizer *t, trl_err *e) {
    const char *list[2];
    int n = 0;
    switch (t->pre) {
        case PRE_GPT2: list[n++] = RE_GPT2; break;
        case PRE_SMOLLM:
            list[n++] = RE_DIGIT;
            list[n++] = RE_GPT2;
            break;
        case PRE_QWEN2: list[n++] = RE_QWEN2; break;
        default: list[n++] = RE_LLAMA3; break;
    }
    for (int i = 0; i < n; i++) {
        int err;
        PCRE2_SIZE at;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)list[i], PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &at, NULL);
        if (!re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof(msg));
            return trl_errf(e, "tokenizer: regex compile failed at %zu: %s", (size_t)at, (char *)msg);
        }
        t->re[t->n_re++] = re;
        // JIT is an optimisation only; pcre2_match falls back to the interpreter without it.
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    }
    return TRL_OK;
}

static int tokenizer_build(tokenizer **out, const staging *s, trl_err *e) {
    *out = NULL;
    int n = s->n_vocab;
    if (n <= 0) return trl_errf(e, "tokenizer: empty vocabulary");
    tokenizer *t = calloc(1, sizeof(*t));
    if (!t) return trl_errf(e, "tokenizer: out of memory");
    t->n_vocab = n;
    t->pre = s->pre;
    t->ignore_merges = s->ignore_merges;
    t->add_bos = s->add_bos;
    t->bos = s->bos >= 0 && s->bos < n ? s->bos : -1;
    t->eos = s->eos >= 0 && s->eos < n ? s->eos : -1;

    size_t total = 0;
    for (int i = 0; i < n; i++) total += s->tok[i].n;
    if (total > UINT32_MAX) {
        tokenizer_free(t);
        return trl_errf(e, "tokenizer: token texts too large");
    }
    t->text = malloc(total + 1);
    t->off = malloc((size_t)n * sizeof(uint32_t));
    t->len = malloc((size_t)n * sizeof(uint32_t));
    t->dec = malloc(total + 1);
    t->doff = malloc((size_t)n * sizeof(uint32_t));
    t->dlen = malloc((size_t)n * sizeof(uint32_t));
    t->type = malloc((size_t)n);
    t->attr = malloc((size_t)n);
    t->eog = calloc((size_t)n, 1);
    t->plain = calloc((size_t)n, 1);
    t->vmask = pow2_at_least((size_t)n * 2) - 1;
    t->vslot = malloc(((size_t)t->vmask + 1) * sizeof(int32_t));
    if (!t->plain || !t->text || !t->off || !t->len || !t->dec || !t->doff || !t->dlen || !t->type || !t->attr ||
        !t->eog || !t->vslot) {
        tokenizer_free(t);
        return trl_errf(e, "tokenizer: out of memory");
    }
    memset(t->vslot, 0xFF, ((size_t)t->vmask + 1) * sizeof(int32_t));
    memcpy(t->type, s->type, (size_t)n);
    memcpy(t->attr, s->attr, (size_t)n);

    size_t pos = 0;
    for (int i = 0; i < n; i++) {
        t->off[i] = (uint32_t)pos;
        t->len[i] = (uint32_t)s->tok[i].n;
        if (s->tok[i].n) memcpy(t->text + pos, s->tok[i].s, s->tok[i].n);
        pos += s->tok[i].n;
        if (t->len[i] == 0) continue;  // gaps and empty texts are never looked up
        int32_t dup = vocab_insert(t, i);
        if (dup >= 0) {
            int r = trl_errf(e, "tokenizer: duplicate token text \"%.*s\" (ids %d and %d)", (int)t->len[i],
                             t->text + t->off[i], dup, i);
            tokenizer_free(t);
            return r;
        }
    }

    // Decoded bytes: each code point of a normal token is one byte. A code point outside the
    // byte map (not produced by byte-level conversion) is kept as its own UTF-8.
    int16_t cp_byte[0x144];
    for (int i = 0; i < 0x144; i++) cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) cp_byte[byte_to_cp(b)] = (int16_t)b;
    pos = 0;
    for (int i = 0; i < n; i++) {
        t->doff[i] = (uint32_t)pos;
        if (t->type[i] != TOKEN_NORMAL && t->type[i] != TOKEN_BYTE) {
            t->dlen[i] = 0;
            continue;
        }
        const uint8_t *p = (const uint8_t *)t->text + t->off[i];
        size_t left = t->len[i];
        while (left) {
            int32_t cp;
            int l = utf8_next(p, left, &cp);
            if (cp >= 0 && cp < 0x144 && cp_byte[cp] >= 0) {
                t->dec[pos++] = (char)cp_byte[cp];
            } else {
                memcpy(t->dec + pos, p, (size_t)l);
                pos += (size_t)l;
            }
            p += l;
            left -= (size_t)l;
        }
        t->dlen[i] = (uint32_t)pos - t->doff[i];
    }

    for (int b = 0; b < 256; b++) {
        char u[4];
        int l = cp_to_utf8(byte_to_cp(b), u);
        t->byte_id[b] = vocab_lookup(t, u, (size_t)l);
    }

    // Merges: both halves and their concatenation must be tokens; the first rank of a pair wins.
    t->mmask = pow2_at_least(s->n_merges * 2 + 1) - 1;
    t->mkey = malloc(((size_t)t->mmask + 1) * sizeof(uint64_t));
    t->mrank = malloc(((size_t)t->mmask + 1) * sizeof(int32_t));
    t->mres = malloc(((size_t)t->mmask + 1) * sizeof(int32_t));
    if (!t->mkey || !t->mrank || !t->mres) {
        tokenizer_free(t);
        return trl_errf(e, "tokenizer: out of memory");
    }
    memset(t->mkey, 0xFF, ((size_t)t->mmask + 1) * sizeof(uint64_t));
    char *cat = NULL;
    size_t cat_cap = 0;
    for (size_t m = 0; m < s->n_merges; m++) {
        const merge_span *ms = &s->merges[m];
        int32_t l = vocab_lookup(t, ms->a.s, ms->a.n);
        int32_t r = vocab_lookup(t, ms->b.s, ms->b.n);
        if (ms->a.n + ms->b.n > cat_cap) {
            cat_cap = (ms->a.n + ms->b.n) * 2;
            char *nc = realloc(cat, cat_cap);
            if (!nc) {
                free(cat);
                tokenizer_free(t);
                return trl_errf(e, "tokenizer: out of memory");
            }
            cat = nc;
        }
        memcpy(cat, ms->a.s, ms->a.n);
        memcpy(cat + ms->a.n, ms->b.s, ms->b.n);
        int32_t res = l >= 0 && r >= 0 ? vocab_lookup(t, cat, ms->a.n + ms->b.n) : -1;
        if (res < 0) {
            int rc = trl_errf(e, "tokenizer: merge %zu (\"%.*s\" + \"%.*s\") uses a %s not in the vocabulary", m,
                              (int)ms->a.n, ms->a.s, (int)ms->b.n, ms->b.s,
                              l < 0 || r < 0 ? "token" : "merged token");
            free(cat);
            tokenizer_free(t);
            return rc;
        }
        uint64_t k = merge_key(l, r);
        uint32_t i = (uint32_t)hash_u64(k) & t->mmask;
        while (t->mkey[i] != UINT64_MAX && t->mkey[i] != k) i = (i + 1) & t->mmask;
        if (t->mkey[i] == UINT64_MAX) {
            t->mkey[i] = k;
            t->mrank[i] = (int32_t)m;
            t->mres[i] = res;
        }
    }
    free(cat);

    // EOG by text; like llama.cpp, such tokens are forced to CONTROL.
    for (size_t k = 0; k < sizeof(eog_texts) / sizeof(eog_texts[0]); k++) {
        int32_t id = vocab_lookup(t, eog_texts[k], strlen(eog_texts[k]));
        if (id >= 0) {
            t->eog[id] = 1;
            t->type[id] = TOKEN_CONTROL;
        }
    }
    if (t->eos >= 0) t->eog[t->eos] = 1;

    int ns = 0;
    for (int i = 0; i < n; i++)
        if (t->len[i] && (t->type[i] == TOKEN_CONTROL || t->type[i] == TOKEN_USER_DEFINED ||
                          t->type[i] == TOKEN_UNKNOWN))
            ns++;
    t->special = malloc((size_t)(ns ? ns : 1) * sizeof(int32_t));
    if (!t->special) {
        tokenizer_free(t);
        return trl_errf(e, "tokenizer: out of memory");
    }
    for (int i = 0; i < n; i++)
        if (t->len[i] && (t->type[i] == TOKEN_CONTROL || t->type[i] == TOKEN_USER_DEFINED ||
                          t->type[i] == TOKEN_UNKNOWN))
            t->special[t->n_special++] = i;
    qsort_r(t->special, (size_t)t->n_special, sizeof(int32_t), cmp_special, t);

    if (compile_regexes(t, e) != TRL_OK) {
        tokenizer_free(t);
        return TRL_ERR;
    }
    *out = t;
    return TRL_OK;
}

static int pre_from_name(const char *s, size_t n) {
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(s, lit, n) == 0)
    if (IS("gpt-2") || IS("gpt2")) return PRE_GPT2;
    if (IS("smollm")) return PRE_SMOLLM;
    if (IS("qwen2")) return PRE_QWEN2;
    if (IS("llama3") || IS("llama-v3") || IS("llama-bpe")) return PRE_LLAMA3;
#undef IS
    return -1;
}

// Splits "A B" at the first space at index >= 1.
static int split_merge(const char *s, size_t n, merge_span *out) {
    for (size_t i = 1; i < n; i++) {
        if (s[i] == ' ') {
            out->a.s = s;
            out->a.n = i;
            out->b.s = s + i + 1;
            out->b.n = n - i - 1;
            return out->b.n > 0 ? TRL_OK : TRL_ERR;
        }
    }
    return TRL_ERR;
}

// ---- GGUF ----

int tokenizer_init_gguf(tokenizer **out, const gguf_file *f, trl_err *e) {
    *out = NULL;
    gguf_str model, pre;
    if (gguf_get_str(f, "tokenizer.ggml.model", &model) != TRL_OK)
        return trl_errf(e, "gguf: tokenizer.ggml.model missing or not a string");
    if (!gguf_str_eq(model, "gpt2"))
        return trl_errf(e, "gguf: tokenizer.ggml.model is \"%.*s\"; only \"gpt2\" (byte-level BPE) is supported",
                        (int)(model.len > 64 ? 64 : model.len), model.ptr);
    if (gguf_get_str(f, "tokenizer.ggml.pre", &pre) != TRL_OK)
        return trl_errf(e, "gguf: tokenizer.ggml.pre missing (pre-tokenizer unknown)");
    int pk = pre_from_name(pre.ptr, pre.len);
    if (pk < 0)
        return trl_errf(e, "gguf: unsupported tokenizer.ggml.pre \"%.*s\" (supported: gpt-2, smollm, qwen2, llama3)",
                        (int)(pre.len > 64 ? 64 : pre.len), pre.ptr);

    const gguf_kv *ktok = gguf_find_kv(f, "tokenizer.ggml.tokens");
    const gguf_kv *kmer = gguf_find_kv(f, "tokenizer.ggml.merges");
    const gguf_kv *ktyp = gguf_find_kv(f, "tokenizer.ggml.token_type");
    gguf_str_iter it;
    if (gguf_arr_str_begin(ktok, &it) != TRL_OK)
        return trl_errf(e, "gguf: tokenizer.ggml.tokens missing or not an array of strings");
    if (ktok->arr_n == 0 || ktok->arr_n > MAX_VOCAB)
        return trl_errf(e, "gguf: tokenizer.ggml.tokens has %llu entries", (unsigned long long)ktok->arr_n);
    gguf_str_iter mit;
    if (gguf_arr_str_begin(kmer, &mit) != TRL_OK)
        return trl_errf(e, "gguf: tokenizer.ggml.merges missing or not an array of strings");
    if (ktyp && (ktyp->type != GGUF_TYPE_ARRAY || ktyp->arr_n != ktok->arr_n ||
                 ktyp->arr_type == GGUF_TYPE_STRING || ktyp->arr_type == GGUF_TYPE_ARRAY))
        return trl_errf(e, "gguf: tokenizer.ggml.token_type is not an integer array of %llu entries",
                        (unsigned long long)ktok->arr_n);

    staging s;
    memset(&s, 0, sizeof(s));
    if (staging_alloc(&s, (int)ktok->arr_n, (size_t)kmer->arr_n, e) != TRL_OK) {
        staging_free(&s);
        return TRL_ERR;
    }
    gguf_str str;
    for (int i = 0; gguf_arr_str_next(&it, &str); i++) {
        s.tok[i].s = str.ptr;
        s.tok[i].n = (size_t)str.len;
        int64_t ty = ktyp ? gguf_arr_int(ktyp, (uint64_t)i) : TOKEN_NORMAL;
        s.type[i] = ty >= TOKEN_NORMAL && ty <= TOKEN_BYTE ? (uint8_t)ty : TOKEN_NORMAL;
    }
    while (gguf_arr_str_next(&mit, &str)) {
        if (split_merge(str.ptr, (size_t)str.len, &s.merges[s.n_merges]) != TRL_OK) {
            int r = trl_errf(e, "gguf: merge %zu \"%.*s\" is not \"A B\"", s.n_merges,
                             (int)(str.len > 64 ? 64 : str.len), str.ptr);
            staging_free(&s);
            return r;
        }
        s.n_merges++;
    }
    s.pre = pk;
    s.ignore_merges = pk == PRE_LLAMA3;
    s.add_bos = pk == PRE_LLAMA3;
    int b;
    if (gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &b) == TRL_OK) s.add_bos = b;
    int64_t v;
    if (gguf_get_int(f, "tokenizer.ggml.bos_token_id", &v) == TRL_OK && v >= 0 && v < s.n_vocab) s.bos = (int32_t)v;
    if (gguf_get_int(f, "tokenizer.ggml.eos_token_id", &v) == TRL_OK && v >= 0 && v < s.n_vocab) s.eos = (int32_t)v;
    if (s.add_bos && s.bos < 0) s.add_bos = 0;
    int rc = tokenizer_build(out, &s, e);
    staging_free(&s);
    return rc;
}

// ---- tokenizer.json ----

static const cJSON *jget(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static int jtype_is(const cJSON *o, const char *ty) {
    const cJSON *t = jget(o, "type");
    return cJSON_IsString(t) && strcmp(t->valuestring, ty) == 0;
}

// 1 if the boolean field k is true (def when absent).
static int jbool(const cJSON *o, const char *k, int def) {
    const cJSON *v = jget(o, k);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return def;
}

static int json_id(const cJSON *v, int *id) {
    if (!cJSON_IsNumber(v)) return TRL_ERR;
    double d = v->valuedouble;
    if (!(d >= 0 && d < MAX_VOCAB) || (double)(int)d != d) return TRL_ERR;
    *id = (int)d;
    return TRL_OK;
}

// Maps the pre_tokenizer object onto one of the supported kinds, or fills e.
static int json_pre_kind(const cJSON *pt, const char *path, trl_err *e) {
    if (!cJSON_IsObject(pt)) return trl_errf(e, "%s: no pre_tokenizer (unsupported)", path);
    if (jtype_is(pt, "ByteLevel")) {
        if (jbool(pt, "add_prefix_space", 0))
            return trl_errf(e, "%s: ByteLevel add_prefix_space=true is not supported", path);
        if (!jbool(pt, "use_regex", 1))
            return trl_errf(e, "%s: ByteLevel pre_tokenizer without use_regex is not supported", path);
        return PRE_GPT2;
    }
    if (jtype_is(pt, "Sequence")) {
        const cJSON *list = jget(pt, "pretokenizers");
        if (cJSON_IsArray(list) && cJSON_GetArraySize(list) == 2) {
            const cJSON *p0 = cJSON_GetArrayItem(list, 0), *p1 = cJSON_GetArrayItem(list, 1);
            if (jtype_is(p1, "ByteLevel") && jbool(p1, "add_prefix_space", 0))
                return trl_errf(e, "%s: ByteLevel add_prefix_space=true is not supported", path);
            if (jtype_is(p0, "Digits") && jbool(p0, "individual_digits", 0) && jtype_is(p1, "ByteLevel") &&
                jbool(p1, "use_regex", 1))
                return PRE_SMOLLM;
            if (jtype_is(p0, "Split") && jtype_is(p1, "ByteLevel") && !jbool(p1, "use_regex", 1)) {
                const cJSON *pat = jget(p0, "pattern");
                const cJSON *rx = cJSON_IsObject(pat) ? jget(pat, "Regex") : NULL;
                if (cJSON_IsString(rx)) {
                    if (strcmp(rx->valuestring, HF_QWEN2) == 0) return PRE_QWEN2;
                    if (strcmp(rx->valuestring, HF_LLAMA3) == 0) return PRE_LLAMA3;
                    return trl_errf(e, "%s: unsupported Split regex \"%.80s\"", path, rx->valuestring);
                }
            }
        }
        return trl_errf(e, "%s: unsupported pre_tokenizer Sequence (supported: Digits+ByteLevel, "
                           "Split(qwen2/llama3 regex)+ByteLevel)", path);
    }
    const cJSON *ty = jget(pt, "type");
    return trl_errf(e, "%s: unsupported pre_tokenizer type \"%s\"", path,
                    cJSON_IsString(ty) ? ty->valuestring : "?");
}

// A token string from tokenizer_config.json: "text" or {"content": "text"}.
static const char *json_token_text(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) {
        const cJSON *c = jget(v, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    return NULL;
}

// Reads bos/eos/add_bos from a tokenizer_config.json next to the tokenizer.json, if there is one.
static int json_read_config(tokenizer *t, const char *json_path, trl_err *e) {
    const char *slash = strrchr(json_path, '/');
    size_t dir = slash ? (size_t)(slash - json_path + 1) : 0;
    static const char name[] = "tokenizer_config.json";
    char *p = malloc(dir + sizeof(name));
    if (!p) return trl_errf(e, "tokenizer: out of memory");
    memcpy(p, json_path, dir);
    memcpy(p + dir, name, sizeof(name));
    size_t n;
    trl_err ignore;
    char *buf = trl_read_file(p, &n, &ignore);
    if (!buf) {  // no config: ids stay as found (or -1)
        free(p);
        return TRL_OK;
    }
    cJSON *cfg = cJSON_ParseWithLength(buf, n);
    free(buf);
    if (!cJSON_IsObject(cfg)) {
        int r = trl_errf(e, "%s: malformed JSON", p);
        cJSON_Delete(cfg);
        free(p);
        return r;
    }
    free(p);
    const char *s;
    if ((s = json_token_text(jget(cfg, "bos_token"))) != NULL) t->bos = tokenizer_find(t, s);
    if ((s = json_token_text(jget(cfg, "eos_token"))) != NULL) {
        t->eos = tokenizer_find(t, s);
        if (t->eos >= 0) t->eog[t->eos] = 1;
    }
    t->add_bos = jbool(cfg, "add_bos_token", t->add_bos) && t->bos >= 0;
    cJSON_Delete(cfg);
    return TRL_OK;
}

int tokenizer_init_json(tokenizer **out, const char *path, trl_err *e) {
    *out = NULL;
    size_t n;
    char *buf = trl_read_file(path, &n, e);
    if (!buf) return TRL_ERR;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, n, &end, 0);
    if (!root) {
        int r = trl_errf(e, "%s: malformed JSON near byte %zu", path, end && end >= buf ? (size_t)(end - buf) : 0);
        free(buf);
        return r;
    }
    free(buf);
    staging s;
    memset(&s, 0, sizeof(s));
    int rc = TRL_ERR;
    const cJSON *model = jget(root, "model");
    const cJSON *vocab = cJSON_IsObject(model) ? jget(model, "vocab") : NULL;
    const cJSON *merges = cJSON_IsObject(model) ? jget(model, "merges") : NULL;
    const cJSON *added = jget(root, "added_tokens");
    const cJSON *it;
    if (!cJSON_IsObject(model)) {
        trl_errf(e, "%s: no \"model\" object", path);
        goto done;
    }
    if (jget(model, "type") && !jtype_is(model, "BPE")) {
        trl_errf(e, "%s: model type is not BPE", path);
        goto done;
    }
    if (!cJSON_IsObject(vocab) || !vocab->child) {
        trl_errf(e, "%s: model.vocab missing or empty", path);
        goto done;
    }
    if (!cJSON_IsArray(merges)) {
        trl_errf(e, "%s: model.merges missing", path);
        goto done;
    }
    if (added && !cJSON_IsArray(added)) {
        trl_errf(e, "%s: added_tokens is not an array", path);
        goto done;
    }
    int pk = json_pre_kind(jget(root, "pre_tokenizer"), path, e);
    if (pk < 0) goto done;

    int max_id = -1, id = 0, n_entries = 0;
    cJSON_ArrayForEach(it, vocab) {
        n_entries++;
        if (json_id(it, &id) != TRL_OK) {
            trl_errf(e, "%s: model.vocab[\"%.64s\"] is not a valid id", path, it->string);
            goto done;
        }
        if (id > max_id) max_id = id;
    }
    cJSON_ArrayForEach(it, added) {
        if (json_id(jget(it, "id"), &id) != TRL_OK || !cJSON_IsString(jget(it, "content"))) {
            trl_errf(e, "%s: added_tokens entry without a valid id and content", path);
            goto done;
        }
        if (id > max_id) max_id = id;
        n_entries++;
    }
    // Ids may leave gaps (filled with unused tokens), but not so many that a lying file could
    // make us allocate for millions of absent tokens.
    if (max_id >= 2 * n_entries + 1024) {
        trl_errf(e, "%s: token ids up to %d for only %d tokens", path, max_id, n_entries);
        goto done;
    }
    if (staging_alloc(&s, max_id + 1, (size_t)cJSON_GetArraySize(merges), e) != TRL_OK) goto done;
    cJSON_ArrayForEach(it, vocab) {
        json_id(it, &id);
        if (s.tok[id].s) {
            trl_errf(e, "%s: id %d used twice in model.vocab", path, id);
            goto done;
        }
        s.tok[id].s = it->string;
        s.tok[id].n = strlen(it->string);
        s.type[id] = TOKEN_NORMAL;
    }
    cJSON_ArrayForEach(it, added) {
        json_id(jget(it, "id"), &id);
        const char *c = jget(it, "content")->valuestring;
        size_t cn = strlen(c);
        if (s.tok[id].s && (s.tok[id].n != cn || memcmp(s.tok[id].s, c, cn) != 0)) {
            trl_errf(e, "%s: added token \"%.64s\" has id %d, which the vocab gives to \"%.64s\"", path, c, id,
                     s.tok[id].s);
            goto done;
        }
        s.tok[id].s = c;
        s.tok[id].n = cn;
        s.type[id] = jbool(it, "special", 0) ? TOKEN_CONTROL : TOKEN_USER_DEFINED;
        s.attr[id] = (uint8_t)((jbool(it, "lstrip", 0) ? ATTR_LSTRIP : 0) | (jbool(it, "rstrip", 0) ? ATTR_RSTRIP : 0));
    }
    cJSON_ArrayForEach(it, merges) {
        merge_span *ms = &s.merges[s.n_merges];
        if (cJSON_IsString(it)) {
            if (split_merge(it->valuestring, strlen(it->valuestring), ms) != TRL_OK) {
                trl_errf(e, "%s: merge %zu \"%.64s\" is not \"A B\"", path, s.n_merges, it->valuestring);
                goto done;
            }
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(it->child) &&
                   cJSON_IsString(it->child->next)) {
            ms->a.s = it->child->valuestring;
            ms->a.n = strlen(ms->a.s);
            ms->b.s = it->child->next->valuestring;
            ms->b.n = strlen(ms->b.s);
        } else {
            trl_errf(e, "%s: merge %zu is neither \"A B\" nor [\"A\", \"B\"]", path, s.n_merges);
            goto done;
        }
        s.n_merges++;
    }
    s.pre = pk;
    s.ignore_merges = jbool(model, "ignore_merges", 0);  // HF semantics; llama.cpp sets it for llama3 only
    if (s.ignore_merges && pk != PRE_LLAMA3) {
        // llama.cpp only ignores merges for llama3; follow the file since that is what HF does.
    }
    if (tokenizer_build(out, &s, e) != TRL_OK) goto done;
    if (json_read_config(*out, path, e) != TRL_OK) {
        tokenizer_free(*out);
        *out = NULL;
        goto done;
    }
    rc = TRL_OK;
done:
    staging_free(&s);
    cJSON_Delete(root);
    return rc;
}

// ---- encode ----

typedef struct {
    size_t off, len;
    int32_t id;  // >= 0: a special token; -1: raw text
} frag;

typedef struct {
    size_t off, len;
} piece;

typedef struct {
    int32_t rank, left, right, lid, rid, res;
} bigram;

typedef struct {
    int32_t *ids;
    int cap;
    size_t n;  // ids the text needs so far
    frag *fa, *fb;
    size_t fcap_a, fcap_b;
    piece *pa, *pb;
    size_t pcap_a, pcap_b;
    int32_t *sid, *prev, *next;
    size_t scap;
    bigram *heap;
    size_t hcap, hn;
    char *enc;
    size_t ecap;
    pcre2_match_data *md;
} enc_state;

// Grows an array of capacity *cap to hold need elements: the new pointer, or NULL (the old
// one still valid) when out of memory.
static void *grow_to(void *p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return p;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    void *np = realloc(p, nc * elem);
    if (np) *cap = nc;
    return np;
}
#define GROW_OR(arr, cap, need, on_fail)                                    \
    do {                                                                    \
        void *np_ = grow_to((arr), &(cap), (need), sizeof(*(arr)));         \
        if (!np_) on_fail;                                                  \
        (arr) = np_;                                                        \
    } while (0)

static void enc_emit(enc_state *st, int32_t id) {
    if (st->n < (size_t)st->cap) st->ids[st->n] = id;
    st->n++;
}

static int bigram_less(const bigram *a, const bigram *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int heap_push(enc_state *st, const bigram *b) {
    GROW_OR(st->heap, st->hcap, st->hn + 1, return TRL_ERR);
    size_t i = st->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bigram_less(b, &st->heap[p])) break;
        st->heap[i] = st->heap[p];
        i = p;
    }
    st->heap[i] = *b;
    return TRL_OK;
}

static bigram heap_pop(enc_state *st) {
    bigram top = st->heap[0];
    bigram last = st->heap[--st->hn];
    size_t i = 0, n = st->hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bigram_less(&st->heap[c + 1], &st->heap[c])) c++;
        if (!bigram_less(&st->heap[c], &last)) break;
        st->heap[i] = st->heap[c];
        i = c;
    }
    if (n) st->heap[i] = last;
    return top;
}

static int push_pair(const tokenizer *t, enc_state *st, int32_t l, int32_t r) {
    if (l < 0 || r < 0 || st->sid[l] < 0 || st->sid[r] < 0) return TRL_OK;
    bigram b;
    b.rank = merge_lookup(t, st->sid[l], st->sid[r], &b.res);
    if (b.rank < 0) return TRL_OK;
    b.left = l;
    b.right = r;
    b.lid = st->sid[l];
    b.rid = st->sid[r];
    return heap_push(st, &b);
}

// BPE over one pre-token: symbols start as one byte token each and merge lowest rank first
// (ties: leftmost). A popped pair is stale unless both symbols still hold the ids it was
// built from and are still neighbours; that equals llama.cpp's text comparison, because a
// symbol only ever grows by absorbing its right neighbour.
static int bpe_word(const tokenizer *t, enc_state *st, const uint8_t *w, size_t n) {
    if (t->ignore_merges) {
        GROW_OR(st->enc, st->ecap, n * 2, return TRL_ERR);
        size_t k = 0;
        for (size_t i = 0; i < n; i++) k += (size_t)cp_to_utf8(byte_to_cp(w[i]), st->enc + k);
        int32_t id = vocab_lookup(t, st->enc, k);
        if (id >= 0) {
            enc_emit(st, id);
            return TRL_OK;
        }
    }
    if (n == 1) {
        if (t->byte_id[w[0]] >= 0) enc_emit(st, t->byte_id[w[0]]);
        return TRL_OK;
    }
    if (n > st->scap) {
        size_t nc = n > 2 * st->scap ? n : 2 * st->scap;
        int32_t *a = realloc(st->sid, nc * sizeof(int32_t));
        if (!a) return TRL_ERR;
        st->sid = a;
        if (!(a = realloc(st->prev, nc * sizeof(int32_t)))) return TRL_ERR;
        st->prev = a;
        if (!(a = realloc(st->next, nc * sizeof(int32_t)))) return TRL_ERR;
        st->next = a;
        st->scap = nc;
    }
    for (size_t i = 0; i < n; i++) {
        st->sid[i] = t->byte_id[w[i]];
        st->prev[i] = (int32_t)i - 1;
        st->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    st->hn = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (push_pair(t, st, (int32_t)i, (int32_t)i + 1) != TRL_OK) return TRL_ERR;
    while (st->hn) {
        bigram b = heap_pop(st);
        if (st->sid[b.left] != b.lid || st->sid[b.right] != b.rid || st->next[b.left] != b.right) continue;
        st->sid[b.left] = b.res;
        st->sid[b.right] = -2;  // dead (never equals a pushed id)
        int32_t nx = st->next[b.right];
        st->next[b.left] = nx;
        if (nx >= 0) st->prev[nx] = b.left;
        if (push_pair(t, st, st->prev[b.left], b.left) != TRL_OK) return TRL_ERR;
        if (push_pair(t, st, b.left, nx) != TRL_OK) return TRL_ERR;
    }
    // A byte whose byte token the vocab lacks (-1) is dropped, as llama.cpp drops it.
    for (int32_t i = 0; i >= 0; i = st->next[i])
        if (st->sid[i] >= 0) enc_emit(st, st->sid[i]);
    return TRL_OK;
}

// Splits every piece in pa[0..*np) by one regex; matches and the gaps between them become pieces.
static int regex_split(const pcre2_code *re, const char *text, enc_state *st, size_t *np) {
    size_t out = 0;
    for (size_t k = 0; k < *np; k++) {
        const char *sub = text + st->pa[k].off;
        size_t len = st->pa[k].len, pos = 0;
        while (pos < len) {
            int rc = pcre2_match(re, (PCRE2_SPTR)sub, len, pos, 0, st->md, NULL);
            size_t ms = len, me = len;
            if (rc >= 0) {
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(st->md);
                ms = ov[0];
                me = ov[1];
            } else if (rc != PCRE2_ERROR_NOMATCH) {
                return TRL_ERR;
            }
            if (me == ms && ms < len) me = ms + 1;  // no pattern here matches empty; guard anyway
            GROW_OR(st->pb, st->pcap_b, out + 2, return TRL_ERR);
            if (ms > pos) st->pb[out++] = (piece){st->pa[k].off + pos, ms - pos};
            if (me > ms) st->pb[out++] = (piece){st->pa[k].off + ms, me - ms};
            pos = me;
        }
    }
    piece *tp = st->pa;
    st->pa = st->pb;
    st->pb = tp;
    size_t tc = st->pcap_a;
    st->pcap_a = st->pcap_b;
    st->pcap_b = tc;
    *np = out;
    return TRL_OK;
}

static int encode_raw(const tokenizer *t, enc_state *st, const char *text, size_t off, size_t len) {
    GROW_OR(st->pa, st->pcap_a, 1, return TRL_ERR);
    st->pa[0] = (piece){off, len};
    size_t np = 1;
    for (int r = 0; r < t->n_re; r++)
        if (regex_split(t->re[r], text, st, &np) != TRL_OK) return TRL_ERR;
    for (size_t k = 0; k < np; k++)
        if (bpe_word(t, st, (const uint8_t *)text + st->pa[k].off, st->pa[k].len) != TRL_OK) return TRL_ERR;
    return TRL_OK;
}

static int is_space_c(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

// Cuts each occurrence of special token id out of the raw fragments (fa -> fb, then swap).
static int partition_one(const tokenizer *t, enc_state *st, const char *text, size_t *nf, int32_t id) {
    const char *tok = t->text + t->off[id];
    size_t tl = t->len[id], out = 0;
    for (size_t k = 0; k < *nf; k++) {
        frag f = st->fa[k];
        if (f.id >= 0) {
            GROW_OR(st->fb, st->fcap_b, out + 1, return TRL_ERR);
            st->fb[out++] = f;
            continue;
        }
        size_t pos = f.off, end = f.off + f.len;
        while (pos < end) {
            const char *m = memmem(text + pos, end - pos, tok, tl);
            GROW_OR(st->fb, st->fcap_b, out + 3, return TRL_ERR);
            if (!m) {
                st->fb[out++] = (frag){pos, end - pos, -1};
                break;
            }
            size_t ms = (size_t)(m - text), left = ms - pos;
            if (t->attr[id] & ATTR_LSTRIP)
                while (left > 0 && is_space_c(text[pos + left - 1])) left--;
            if (left) st->fb[out++] = (frag){pos, left, -1};
            st->fb[out++] = (frag){ms, tl, id};
            pos = ms + tl;
            if (t->attr[id] & ATTR_RSTRIP)
                while (pos < end && is_space_c(text[pos])) pos++;
        }
    }
    frag *tf = st->fa;
    st->fa = st->fb;
    st->fb = tf;
    size_t tc = st->fcap_a;
    st->fcap_a = st->fcap_b;
    st->fcap_b = tc;
    *nf = out;
    return TRL_OK;
}

static void enc_free(enc_state *st) {
    free(st->fa);
    free(st->fb);
    free(st->pa);
    free(st->pb);
    free(st->sid);
    free(st->prev);
    free(st->next);
    free(st->heap);
    free(st->enc);
    pcre2_match_data_free(st->md);
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int parse_special, int32_t *ids, int cap) {
    if (!t || (!text && len)) return -1;
    enc_state st;
    memset(&st, 0, sizeof(st));
    st.ids = ids;
    st.cap = ids && cap > 0 ? cap : 0;
    int rc = TRL_ERR;
    size_t nf = 0;
    if (len == 0) return 0;
    st.md = pcre2_match_data_create(1, NULL);
    if (!st.md) goto done;
    GROW_OR(st.fa, st.fcap_a, 1, goto done);
    st.fa[nf++] = (frag){0, len, -1};
    for (int k = 0; k < t->n_special; k++) {
        int32_t id = t->special[k];
        if (!parse_special && t->type[id] != TOKEN_USER_DEFINED) continue;
        // Cheap pre-check: most special texts never occur in the input.
        if (!memmem(text, len, t->text + t->off[id], t->len[id])) continue;
        if (partition_one(t, &st, text, &nf, id) != TRL_OK) goto done;
    }
    for (size_t k = 0; k < nf; k++) {
        if (st.fa[k].id >= 0) enc_emit(&st, st.fa[k].id);
        else if (encode_raw(t, &st, text, st.fa[k].off, st.fa[k].len) != TRL_OK) goto done;
    }
    rc = st.n > (size_t)INT32_MAX ? TRL_ERR : TRL_OK;
done:
    enc_free(&st);
    return rc == TRL_OK ? (int)st.n : -1;
}

// ---- decode and queries ----

int tokenizer_decode(const tokenizer *t, int32_t id, int special, char *buf, int cap) {
    if (!t || id < 0 || id >= t->n_vocab) return -1;
    const char *src;
    uint32_t n;
    switch (t->type[id]) {
        case TOKEN_NORMAL:
        case TOKEN_BYTE:
            src = t->dec + t->doff[id];
            n = t->dlen[id];
            break;
        case TOKEN_USER_DEFINED:
            src = t->text + t->off[id];
            n = t->len[id];
            break;
        case TOKEN_CONTROL:
        case TOKEN_UNKNOWN:
            src = t->text + t->off[id];
            n = special ? t->len[id] : 0;
            break;
        default:
            src = NULL;
            n = 0;
            break;
    }
    if (n > (uint32_t)INT32_MAX) return -1;
    if ((int)n <= cap && n) memcpy(buf, src, n);
    return (int)n;
}

int tokenizer_n_vocab(const tokenizer *t) { return t->n_vocab; }

int tokenizer_set_plain(tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab || t->type[id] != TOKEN_USER_DEFINED) return TRL_ERR;
    if (t->plain[id]) return TRL_OK;
    int k = 0;
    for (int i = 0; i < t->n_special; i++)
        if (t->special[i] != id) t->special[k++] = t->special[i];
    t->n_special = k;
    t->plain[id] = 1;
    return TRL_OK;
}

int tokenizer_is_plain(const tokenizer *t, int32_t id) { return t && id >= 0 && id < t->n_vocab && t->plain[id]; }

int tokenizer_token_type(const tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->type[id] : -1;
}

int32_t tokenizer_bos(const tokenizer *t) { return t->bos; }
int32_t tokenizer_eos(const tokenizer *t) { return t->eos; }
int tokenizer_add_bos(const tokenizer *t) { return t->add_bos; }

int tokenizer_is_eog(const tokenizer *t, int32_t id) { return id >= 0 && id < t->n_vocab && t->eog[id]; }

int32_t tokenizer_find(const tokenizer *t, const char *s) {
    size_t n = strlen(s);
    return n ? vocab_lookup(t, s, n) : -1;
}

const char *tokenizer_pre_name(const tokenizer *t) { return pre_names[t->pre]; }

// ---- writing tokenizer.json ----

typedef struct {
    int32_t rank, a, b;
} merge_rec;

static int cmp_merge_rank(const void *x, const void *y) {
    const merge_rec *p = x, *q = y;
    return (p->rank > q->rank) - (p->rank < q->rank);
}

static cJSON *byte_level(int use_regex) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "ByteLevel");
    cJSON_AddBoolToObject(o, "add_prefix_space", 0);
    cJSON_AddBoolToObject(o, "trim_offsets", 1);
    cJSON_AddBoolToObject(o, "use_regex", use_regex);
    return o;
}


int tokenizer_write_json(const tokenizer *t, const char *path, trl_err *e) {

    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    char *buf = NULL;
    merge_rec *mr = NULL;
    int rc = TRL_ERR;
    for (int i = 0; i < t->n_vocab; i++) {
        int ty = t->type[i];
        if (!t->len[i] || t->plain[i] || (ty != TOKEN_CONTROL && ty != TOKEN_USER_DEFINED && ty != TOKEN_UNKNOWN))
            continue;
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", i);
        char *s = strndup(t->text + t->off[i], t->len[i]);
        if (!s) goto done;
        cJSON_AddStringToObject(a, "content", s);
        free(s);
        cJSON_AddBoolToObject(a, "single_word", 0);
        cJSON_AddBoolToObject(a, "lstrip", (t->attr[i] & ATTR_LSTRIP) != 0);
        cJSON_AddBoolToObject(a, "rstrip", (t->attr[i] & ATTR_RSTRIP) != 0);
        cJSON_AddBoolToObject(a, "normalized", 0);
        cJSON_AddBoolToObject(a, "special", ty == TOKEN_CONTROL);
        cJSON_AddItemToArray(added, a);
    }
    cJSON_AddNullToObject(root, "normalizer");
    cJSON *pre;
    switch (t->pre) {
        case PRE_SMOLLM: {
            pre = cJSON_CreateObject();
            cJSON_AddStringToObject(pre, "type", "Sequence");
            cJSON *l = cJSON_AddArrayToObject(pre, "pretokenizers");
            cJSON *d = cJSON_CreateObject();
            cJSON_AddStringToObject(d, "type", "Digits");
            cJSON_AddBoolToObject(d, "individual_digits", 1);
            cJSON_AddItemToArray(l, d);
            cJSON_AddItemToArray(l, byte_level(1));
            break;
        }
        case PRE_QWEN2:
        case PRE_LLAMA3: {
            pre = cJSON_CreateObject();
            cJSON_AddStringToObject(pre, "type", "Sequence");
            cJSON *l = cJSON_AddArrayToObject(pre, "pretokenizers");
            cJSON *sp = cJSON_CreateObject();
            cJSON_AddStringToObject(sp, "type", "Split");
            cJSON_AddStringToObject(cJSON_AddObjectToObject(sp, "pattern"), "Regex",
                                    t->pre == PRE_QWEN2 ? HF_QWEN2 : HF_LLAMA3);
            cJSON_AddStringToObject(sp, "behavior", "Isolated");
            cJSON_AddBoolToObject(sp, "invert", 0);
            cJSON_AddItemToArray(l, sp);
            cJSON_AddItemToArray(l, byte_level(0));
            break;
        }
        default: pre = byte_level(1);
    }
    cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    cJSON_AddNullToObject(root, "post_processor");
    cJSON *dec = cJSON_CreateObject();
    cJSON_AddStringToObject(dec, "type", "ByteLevel");
    cJSON_AddBoolToObject(dec, "add_prefix_space", 1);
    cJSON_AddBoolToObject(dec, "trim_offsets", 1);
    cJSON_AddBoolToObject(dec, "use_regex", 1);
    cJSON_AddItemToObject(root, "decoder", dec);
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddBoolToObject(model, "fuse_unk", 0);
    cJSON_AddBoolToObject(model, "byte_fallback", 0);
    cJSON_AddBoolToObject(model, "ignore_merges", t->ignore_merges);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (int i = 0; i < t->n_vocab; i++) {
        if (!t->len[i] || t->type[i] == TOKEN_UNUSED) continue;
        char *s = strndup(t->text + t->off[i], t->len[i]);
        if (!s) goto done;
        cJSON_AddItemToObject(vocab, s, cJSON_CreateNumber(i));
        free(s);
    }
    // merges in rank order, as [left, right] pairs (the form that allows spaces in tokens)
    size_t n_m = 0;
    for (uint32_t i = 0; t->mkey && i <= t->mmask; i++)
        if (t->mkey[i] != UINT64_MAX) n_m++;
    mr = malloc(sizeof(merge_rec) * (n_m ? n_m : 1));
    if (!mr) goto done;
    n_m = 0;
    for (uint32_t i = 0; t->mkey && i <= t->mmask; i++)
        if (t->mkey[i] != UINT64_MAX)
            mr[n_m++] = (merge_rec){t->mrank[i], (int32_t)(t->mkey[i] >> 32), (int32_t)(t->mkey[i] & 0xffffffffu)};
    qsort(mr, n_m, sizeof(merge_rec), cmp_merge_rank);
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    for (size_t i = 0; i < n_m; i++) {
        cJSON *pair = cJSON_CreateArray();
        char *a = strndup(t->text + t->off[mr[i].a], t->len[mr[i].a]);
        char *b = strndup(t->text + t->off[mr[i].b], t->len[mr[i].b]);
        if (!a || !b) {
            free(a), free(b), cJSON_Delete(pair);
            goto done;
        }
        cJSON_AddItemToArray(pair, cJSON_CreateString(a));
        cJSON_AddItemToArray(pair, cJSON_CreateString(b));
        cJSON_AddItemToArray(merges, pair);
        free(a), free(b);
    }
    buf = cJSON_PrintUnformatted(root);
    if (!buf) goto done;
    FILE *f = fopen(path, "wb");
    if (!f) {
        trl_errf(e, "%s: cannot write", path);
        goto out;
    }
    size_t n = strlen(buf);
    int ok = fwrite(buf, 1, n, f) == n;
    ok &= fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    rc = ok ? TRL_OK : trl_errf(e, "%s: write failed", path);
    goto out;
done:
    trl_errf(e, "tokenizer: out of memory");
out:
    free(buf);
    free(mr);
    cJSON_Delete(root);
    return rc;
}
