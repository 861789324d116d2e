// constrain.c: the byte-level recognizer and the token mask of constrained decoding
// (see constrain.h).
#include "constrain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {  // phases
    PH_THINK_OPEN, PH_THINK, PH_WS1, PH_TC_OPEN, PH_WS2, PH_LIST_ITEM, PH_CALL, PH_LIST_NEXT, PH_WS3,
    PH_TC_CLOSE, PH_END, PH_J_PRE, PH_J_TOP, PH_J_POST
};
enum {  // JSON states
    J_VALUE, J_OBJ_FIRST, J_OBJ_KEY, J_KEY, J_COLON, J_AFTER, J_ARR_FIRST, J_STR, J_NUM, J_LIT
};
enum { N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

static const char THINK_OPEN[] = "<think>", THINK_CLOSE[] = "</think>", TC_OPEN[] = "<tool_call>",
                  TC_CLOSE[] = "</tool_call>";
static const char *const LITS[3] = {"true", "false", "null"};

// The steps of one call object after its '{': literals, optional whitespace, the name, the
// arguments object, the closing brace.
typedef enum { S_WS, S_LIT, S_NAME, S_OBJ } step_kind;
typedef struct {
    step_kind k;
    const char *lit;
} call_step;
static const call_step CALL[] = {
    {S_WS, 0},  {S_LIT, "\"name\""},      {S_WS, 0}, {S_LIT, ":"}, {S_WS, 0}, {S_LIT, "\""}, {S_NAME, 0},
    {S_WS, 0},  {S_LIT, ","},            {S_WS, 0}, {S_LIT, "\"arguments\""}, {S_WS, 0}, {S_LIT, ":"},
    {S_WS, 0},  {S_OBJ, 0},              {S_WS, 0}, {S_LIT, "}"}};
#define N_CALL ((int)(sizeof(CALL) / sizeof(CALL[0])))

static int is_ws(int c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
static int is_hex(int c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

void constrain_spec_free(constrain_spec *s) {
    for (int i = 0; i < s->n_names; i++) free(s->names[i]);
    memset(s, 0, sizeof(*s));
}

void constrain_start(const constrain_spec *s, constrain_state *st) {
    memset(st, 0, sizeof(*st));
    st->phase = s->mode == CONSTRAIN_JSON_OBJECT ? PH_J_PRE : PH_THINK_OPEN;
}

int constrain_complete(const constrain_state *st) { return !st->dead && st->done; }

// ---- JSON --------------------------------------------------------------------------------

static int json_close(constrain_state *st) {  // pops; 1 when the top-level object closed
    st->depth--;
    if (st->depth == 0) return 1;
    st->js = J_AFTER;
    return 0;
}

// Past the budget: only bytes that bring the object to its end. 0 allowed, -1 not.
static int closing_allows(const constrain_state *st, int c) {
    switch (st->js) {
        case J_VALUE: return c == 'n' ? 0 : -1;  // null
        case J_OBJ_FIRST: return c == '}' ? 0 : -1;
        case J_ARR_FIRST: return c == ']' ? 0 : -1;
        case J_OBJ_KEY: return c == '"' ? 0 : -1;  // a member already begun: "": null
        case J_COLON: return c == ':' ? 0 : -1;
        case J_AFTER: return c == (st->stack[st->depth - 1] == '{' ? '}' : ']') ? 0 : -1;
        case J_KEY:
        case J_STR: return st->esc || st->hex || c == '"' ? 0 : -1;
        case J_LIT: return 0;
        case J_NUM:
            if (c >= '0' && c <= '9') return st->num == N_MINUS || st->num == N_DOT || st->num == N_E || st->num == N_ESIGN ? 0 : -1;
            return 0;
    }
    return -1;
}

// One byte of a JSON object being written. 0: consumed; 1: consumed, the top object closed;
// -1: rejected.
static int json_byte_inner(constrain_state *st, int c);
static int json_byte(constrain_state *st, int c, int budget) {
    if (st->json_bytes >= budget && closing_allows(st, c)) return -1;
    if (st->json_bytes < 65535) st->json_bytes++;
    return json_byte_inner(st, c);
}

static int json_byte_inner(constrain_state *st, int c) {
    switch (st->js) {
        case J_VALUE:
            if (is_ws(c)) return 0;
            if (c == '{' || c == '[') {
                if (st->depth >= CONSTRAIN_MAX_DEPTH) return -1;
                st->stack[st->depth++] = (char)c;
                st->js = c == '{' ? J_OBJ_FIRST : J_ARR_FIRST;
                return 0;
            }
            if (c == '"') return st->js = J_STR, st->esc = st->hex = 0, st->str_len = 0, 0;
            if (c == '-') return st->js = J_NUM, st->num = N_MINUS, 0;
            if (c >= '0' && c <= '9') return st->js = J_NUM, st->num = c == '0' ? N_ZERO : N_INT, 0;
            for (int k = 0; k < 3; k++)
                if (c == LITS[k][0]) return st->js = J_LIT, st->lit_kind = (uint8_t)k, st->lit_i = 1, 0;
            return -1;
        case J_OBJ_FIRST:
        case J_OBJ_KEY:
            if (is_ws(c)) return 0;
            if (c == '"') return st->js = J_KEY, st->esc = st->hex = 0, st->str_len = 0, 0;
            if (c == '}' && st->js == J_OBJ_FIRST) return json_close(st);
            return -1;
        case J_COLON:
            if (is_ws(c)) return 0;
            return c == ':' ? (st->js = J_VALUE, 0) : -1;
        case J_ARR_FIRST:
            if (is_ws(c)) return 0;
            if (c == ']') return json_close(st);
            st->js = J_VALUE;
            return json_byte_inner(st, c);
        case J_AFTER: {
            if (is_ws(c)) return 0;
            char top = st->stack[st->depth - 1];
            if (c == ',') return st->js = top == '{' ? J_OBJ_KEY : J_VALUE, 0;
            if ((top == '{' && c == '}') || (top == '[' && c == ']')) return json_close(st);
            return -1;
        }
        case J_KEY:
        case J_STR:
            if (st->hex) {
                if (!is_hex(c)) return -1;
                st->hex--;
                return 0;
            }
            if (st->esc) {
                st->esc = 0;
                if (c == 'u') return st->hex = 4, 0;
                return strchr("\"\\/bfnrt", c) && c ? 0 : -1;
            }
            if (c == '"') return st->js = st->js == J_KEY ? J_COLON : J_AFTER, 0;
            if (st->str_len >= CONSTRAIN_MAX_STRING) return -1;  // only the closing quote now
            st->str_len++;
            if (c == '\\') return st->esc = 1, 0;
            return c < 0x20 ? -1 : 0;
        case J_LIT: {
            const char *w = LITS[st->lit_kind];
            if (c != w[st->lit_i]) return -1;
            if (w[++st->lit_i] == 0) st->js = J_AFTER;
            return 0;
        }
        case J_NUM: {
            int d = c >= '0' && c <= '9';
            switch (st->num) {
                case N_MINUS: if (!d) return -1; st->num = c == '0' ? N_ZERO : N_INT; return 0;
                case N_ZERO:
                case N_INT:
                    if (d && st->num == N_INT) return 0;
                    if (c == '.') return st->num = N_DOT, 0;
                    if (c == 'e' || c == 'E') return st->num = N_E, 0;
                    if (d) return -1;  // no leading zeros
                    break;
                case N_DOT: if (!d) return -1; st->num = N_FRAC; return 0;
                case N_FRAC:
                    if (d) return 0;
                    if (c == 'e' || c == 'E') return st->num = N_E, 0;
                    break;
                case N_E:
                    if (c == '+' || c == '-') return st->num = N_ESIGN, 0;
                    if (!d) return -1;
                    st->num = N_EXP;
                    return 0;
                case N_ESIGN: if (!d) return -1; st->num = N_EXP; return 0;
                case N_EXP:
                    if (d) return 0;
                    break;
            }
            st->js = J_AFTER;  // the number ended before this byte
            return json_byte_inner(st, c);
        }
    }
    return -1;
}

// ---- the frame -----------------------------------------------------------------------------

// Matching a literal: 1 when it completed with this byte, 0 consumed, -1 rejected.
static int lit_byte(constrain_state *st, const char *lit, int c) {
    if (c != lit[st->lit_pos]) return -1;
    if (lit[++st->lit_pos] == 0) {
        st->lit_pos = 0;
        return 1;
    }
    return 0;
}

static int call_byte(const constrain_spec *s, constrain_state *st, int c) {
    for (;;) {
        if (st->step >= N_CALL) return -1;
        const call_step *cs = &CALL[st->step];
        switch (cs->k) {
            case S_WS:
                if (is_ws(c) && st->ws_run < 8) return st->ws_run++, 0;
                st->step++, st->ws_run = 0;
                continue;  // epsilon: the byte belongs to the next step
            case S_LIT: {
                int r = lit_byte(st, cs->lit, c);
                if (r < 0) return -1;
                if (r == 1) {
                    if (++st->step == N_CALL) {  // the call object closed
                        st->calls++;
                        st->phase = PH_LIST_NEXT;
                        st->step = 0;
                    } else if (CALL[st->step].k == S_NAME) {
                        st->name_len = 0;
                        st->name_set = s->n_names >= 64 ? ~0ull : ((1ull << s->n_names) - 1);
                    }
                }
                return 0;
            }
            case S_NAME: {
                uint64_t keep = 0;
                if (c == '"') {  // ends the name: one allowed name must match exactly
                    for (int i = 0; i < s->n_names; i++)
                        if ((st->name_set >> i & 1) && strlen(s->names[i]) == st->name_len) keep = 1;
                    if (!keep) return -1;
                    st->step++;
                    return 0;
                }
                for (int i = 0; i < s->n_names; i++)
                    if ((st->name_set >> i & 1) && (size_t)st->name_len < strlen(s->names[i]) &&
                        s->names[i][st->name_len] == c)
                        keep |= 1ull << i;
                if (!keep) return -1;
                st->name_set = keep;
                st->name_len++;
                return 0;
            }
            case S_OBJ:
                if (st->depth == 0) {  // the arguments object opens
                    if (c != '{') return -1;
                    st->stack[0] = '{';
                    st->depth = 1;
                    st->js = J_OBJ_FIRST;
                    st->json_bytes = 1;
                    return 0;
                }
                int r = json_byte(st, c, CONSTRAIN_ARGS_BUDGET);
                if (r < 0) return -1;
                if (r == 1) st->step++, st->ws_run = 0;
                return 0;
        }
    }
}

static int feed_byte(const constrain_spec *s, constrain_state *st, int c) {
    int r;
    switch (st->phase) {
        case PH_THINK_OPEN:
            r = lit_byte(st, THINK_OPEN, c);
            if (r == 1) st->phase = PH_THINK, st->think_bytes = 0;
            return r < 0 ? -1 : 0;
        case PH_THINK: {
            int budget = s->think_budget > 0 ? s->think_budget : 512;
            if (st->think_bytes >= budget || st->lit_pos > 0) {
                // forced, or already inside "</think>": only its next byte (or a fresh '<')
                if (c == THINK_CLOSE[st->lit_pos]) {
                    if (THINK_CLOSE[++st->lit_pos] == 0) st->phase = PH_WS1, st->lit_pos = 0, st->ws_run = 0;
                    return 0;
                }
                if (st->think_bytes >= budget) return -1;
                st->lit_pos = c == '<' ? 1 : 0;
            } else if (c == '<') {
                st->lit_pos = 1;
            }
            st->think_bytes++;
            return 0;
        }
        case PH_WS1:
        case PH_WS2:
        case PH_WS3:
            if (is_ws(c) && st->ws_run < 4) return st->ws_run++, 0;
            st->ws_run = 0;
            if (st->phase == PH_WS1) return st->phase = PH_TC_OPEN, feed_byte(s, st, c);
            if (st->phase == PH_WS3) return st->phase = PH_TC_CLOSE, feed_byte(s, st, c);
            if (c != '[') return -1;
            st->phase = PH_LIST_ITEM;
            return 0;
        case PH_TC_OPEN:
            r = lit_byte(st, TC_OPEN, c);
            if (r == 1) st->phase = PH_WS2, st->ws_run = 0;
            return r < 0 ? -1 : 0;
        case PH_LIST_ITEM:
            if (is_ws(c) && st->ws_run < 4) return st->ws_run++, 0;
            if (c != '{') return -1;
            st->ws_run = 0;
            st->phase = PH_CALL;
            st->step = 0;
            st->depth = 0;
            return 0;
        case PH_CALL:
            return call_byte(s, st, c);
        case PH_LIST_NEXT:
            if (is_ws(c) && st->ws_run < 4) return st->ws_run++, 0;
            st->ws_run = 0;
            if (c == ',') {
                if (s->max_calls > 0 && st->calls >= s->max_calls) return -1;
                st->phase = PH_LIST_ITEM;
                return 0;
            }
            if (c == ']') return st->phase = PH_WS3, 0;
            return -1;
        case PH_TC_CLOSE:
            r = lit_byte(st, TC_CLOSE, c);
            if (r == 1) st->phase = PH_END, st->done = 1;
            return r < 0 ? -1 : 0;
        case PH_END:
            return -1;
        case PH_J_PRE:
            if (is_ws(c) && st->ws_run < 8) return st->ws_run++, 0;
            if (c != '{') return -1;
            st->stack[0] = '{';
            st->depth = 1;
            st->js = J_OBJ_FIRST;
            st->phase = PH_J_TOP;
            st->json_bytes = 1;
            return 0;
        case PH_J_TOP:
            r = json_byte(st, c, CONSTRAIN_OBJECT_BUDGET);
            if (r == 1) st->phase = PH_J_POST, st->done = 1, st->ws_run = 0;
            return r < 0 ? -1 : 0;
        case PH_J_POST:
            return is_ws(c) && st->ws_run++ < 4 ? 0 : -1;
    }
    return -1;
}

int constrain_feed(const constrain_spec *s, constrain_state *st, const char *bytes, size_t n) {
    if (st->dead) return -1;
    for (size_t i = 0; i < n; i++)
        if (feed_byte(s, st, (unsigned char)bytes[i]) < 0) {
            st->dead = 1;
            return -1;
        }
    return 0;
}

// ---- the vocabulary and the mask ---------------------------------------------------------------

int constrain_vocab_init(constrain_vocab *v, const tokenizer *t, trl_err *e) {
    memset(v, 0, sizeof(*v));
    int n = tokenizer_n_vocab(t);
    v->n = n;
    v->off = calloc((size_t)n, sizeof(uint32_t));
    v->len = calloc((size_t)n, sizeof(uint32_t));
    v->is_eog = calloc((size_t)n, 1);
    v->special = calloc((size_t)n, 1);
    size_t cap = (size_t)n * 8, used = 0;
    v->bytes = malloc(cap);
    if (!v->off || !v->len || !v->is_eog || !v->special || !v->bytes) {
        constrain_vocab_free(v);
        return trl_errf(e, "constrain: out of memory");
    }
    for (int i = 0; i < n; i++) {
        v->is_eog[i] = (uint8_t)tokenizer_is_eog(t, i);
        int ty = tokenizer_token_type(t, i);
        v->special[i] = ty == TOKEN_CONTROL || ty == TOKEN_UNUSED || ty == TOKEN_UNKNOWN;
        char buf[256];
        int len = v->special[i] ? 0 : tokenizer_decode(t, i, 0, buf, sizeof(buf));
        if (len < 0 || len > (int)sizeof(buf)) len = 0;
        if (used + (size_t)len > cap) {
            cap = 2 * cap + (size_t)len;
            char *nb = realloc(v->bytes, cap);
            if (!nb) {
                constrain_vocab_free(v);
                return trl_errf(e, "constrain: out of memory");
            }
            v->bytes = nb;
        }
        memcpy(v->bytes + used, buf, (size_t)len);
        v->off[i] = (uint32_t)used;
        v->len[i] = (uint32_t)len;
        used += (size_t)len;
    }
    return TRL_OK;
}

void constrain_vocab_free(constrain_vocab *v) {
    free(v->bytes), free(v->off), free(v->len), free(v->is_eog), free(v->special);
    memset(v, 0, sizeof(*v));
}

int constrain_mask(const constrain_spec *s, const constrain_state *st, const constrain_vocab *v, float *logits) {
    // Which first bytes keep the recognizer alive: most tokens are decided by that alone.
    uint8_t first_ok[256];
    for (int b = 0; b < 256; b++) {
        constrain_state x = *st;
        char c = (char)b;
        first_ok[b] = constrain_feed(s, &x, &c, 1) == 0;
    }
    int allowed = 0, complete = constrain_complete(st);
    for (int i = 0; i < v->n; i++) {
        int ok;
        if (v->is_eog[i]) ok = complete;
        else if (v->special[i] || v->len[i] == 0) ok = 0;
        else if (!first_ok[(unsigned char)v->bytes[v->off[i]]]) ok = 0;
        else {
            constrain_state x = *st;
            ok = constrain_feed(s, &x, v->bytes + v->off[i], v->len[i]) == 0;
        }
        if (ok) allowed++;
        else logits[i] = -INFINITY;
    }
    return allowed;
}
