// constrain.c: the byte-level recognizer and the token mask of constrained decoding
// (see constrain.h).
#include "protocol/constrain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/tags.h"

enum {  // phases
    PH_THINK_OPEN, PH_THINK, PH_WS1, PH_TC_OPEN, PH_WS2, PH_LIST_ITEM, PH_CALL, PH_LIST_NEXT, PH_WS3,
    PH_TC_CLOSE, PH_END, PH_J_PRE, PH_J_TOP, PH_J_POST
};
enum {  // JSON states
    J_VALUE, J_OBJ_FIRST, J_OBJ_KEY, J_KEY, J_COLON, J_AFTER, J_ARR_FIRST, J_STR, J_NUM, J_LIT, J_ENUM
};
enum { N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

static const char THINK_OPEN[] = TAG_THINK, THINK_CLOSE[] = TAG_THINK_END, TC_OPEN[] = TAG_TOOL_CALL,
                  TC_CLOSE[] = TAG_TOOL_CALL_END;
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
    free(s->nodes), free(s->refs), free(s->strs);
    memset(s, 0, sizeof(*s));
}

// ---- schemas -------------------------------------------------------------------------------

static const constrain_node ANY_NODE;

static const constrain_node *node_of(const constrain_spec *s, int id) {
    return id > 0 && id < s->n_nodes ? &s->nodes[id] : &ANY_NODE;
}

static const char *prop_name(const constrain_spec *s, const constrain_node *n, int i) {
    return s->strs + s->refs[n->props + 2 * (uint32_t)i];
}

static uint64_t all_bits(int n) { return n >= 64 ? ~0ull : (1ull << n) - 1; }

// Grows an array to hold need elements. 0 or -1.
static int grow(void **p, int *cap, int need, size_t elem) {
    if (need <= *cap) return 0;
    int nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, (size_t)nc * elem);
    if (!q) return -1;
    *p = q, *cap = nc;
    return 0;
}

static int64_t add_str(constrain_spec *s, const char *str) {  // offset, or -1
    size_t n = strlen(str) + 1;
    if (s->n_strs + n > UINT32_MAX) return -1;
    if (s->n_strs + n > s->cap_strs) {
        size_t nc = s->cap_strs ? s->cap_strs : 256;
        while (nc < s->n_strs + n) nc *= 2;
        char *q = realloc(s->strs, nc);
        if (!q) return -1;
        s->strs = q, s->cap_strs = nc;
    }
    memcpy(s->strs + s->n_strs, str, n);
    s->n_strs += n;
    return (int64_t)(s->n_strs - n);
}

static uint8_t type_bits(const char *t) {  // 0: unknown or "any"
    static const struct { const char *name; uint8_t bits; } T[] = {
        {"object", CT_OBJECT}, {"dict", CT_OBJECT}, {"array", CT_ARRAY}, {"tuple", CT_ARRAY},
        {"string", CT_STRING}, {"integer", CT_INTEGER}, {"number", CT_NUMBER | CT_INTEGER},
        {"float", CT_NUMBER | CT_INTEGER}, {"boolean", CT_BOOLEAN}, {"null", CT_NULL}};
    for (size_t i = 0; i < sizeof(T) / sizeof(T[0]); i++)
        if (!strcmp(t, T[i].name)) return T[i].bits;
    return 0;
}

static int schema_node(constrain_spec *s, const cJSON *j, int depth) {
    if (!cJSON_IsObject(j) || depth > CONSTRAIN_MAX_DEPTH) return 0;
    constrain_node n = {0};
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (cJSON_IsString(t)) n.types = type_bits(t->valuestring);
    else if (cJSON_IsArray(t)) {
        const cJSON *x;
        cJSON_ArrayForEach(x, t) {
            uint8_t b = cJSON_IsString(x) ? type_bits(x->valuestring) : 0;
            if (!b) {  // one unknown member: any type
                n.types = 0;
                break;
            }
            n.types |= b;
        }
    }
    // enum / const: scalars only, written as compact JSON
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(j, "enum"), *cn = cJSON_GetObjectItemCaseSensitive(j, "const");
    cJSON *one = NULL;
    if (!cJSON_IsArray(en) && cn) {
        one = cJSON_CreateArray();
        if (!one || !cJSON_AddItemReferenceToArray(one, (cJSON *)cn)) return cJSON_Delete(one), -1;
        en = one;
    }
    if (cJSON_IsArray(en) && cJSON_GetArraySize(en) >= 1 && cJSON_GetArraySize(en) <= CONSTRAIN_MAX_PROPS) {
        int ok = 1;
        const cJSON *x;
        cJSON_ArrayForEach(x, en) ok &= !cJSON_IsObject(x) && !cJSON_IsArray(x);
        if (ok) {
            int k = 0;
            if (grow((void **)&s->refs, &s->cap_refs, s->n_refs + cJSON_GetArraySize(en), sizeof(uint32_t)))
                return cJSON_Delete(one), -1;
            n.enums = (uint32_t)s->n_refs;
            cJSON_ArrayForEach(x, en) {
                char *txt = cJSON_PrintUnformatted(x);
                int64_t off = txt ? add_str(s, txt) : -1;
                free(txt);
                if (off < 0) return cJSON_Delete(one), -1;
                s->refs[s->n_refs + k++] = (uint32_t)off;
            }
            s->n_refs += k;
            n.n_enum = (uint16_t)k;
        }
    }
    cJSON_Delete(one);
    // object: properties, required, additionalProperties
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(j, "properties");
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(j, "additionalProperties");
    int open_extra = cJSON_IsTrue(addl) || cJSON_IsObject(addl);
    if (cJSON_IsObject(props) && cJSON_GetArraySize(props) <= CONSTRAIN_MAX_PROPS) {
        int np = cJSON_GetArraySize(props), k = 0;
        uint32_t at = (uint32_t)s->n_refs;  // reserved first: children append after
        if (grow((void **)&s->refs, &s->cap_refs, s->n_refs + 2 * np, sizeof(uint32_t))) return -1;
        s->n_refs += 2 * np;
        const cJSON *p;
        cJSON_ArrayForEach(p, props) {
            int64_t off = add_str(s, p->string ? p->string : "");
            int child = schema_node(s, p, depth + 1);
            if (off < 0 || child < 0) return -1;
            s->refs[at + 2 * (uint32_t)k] = (uint32_t)off;
            s->refs[at + 2 * (uint32_t)k + 1] = (uint32_t)child;
            k++;
        }
        n.props = at;
        n.n_props = (uint16_t)np;
        n.closed = !open_extra;
        const cJSON *req = cJSON_GetObjectItemCaseSensitive(j, "required"), *r;
        cJSON_ArrayForEach(r, req) {
            if (!cJSON_IsString(r)) continue;
            for (int i = 0; i < np; i++)
                if (!strcmp(s->strs + s->refs[at + 2 * (uint32_t)i], r->valuestring)) n.required |= 1ull << i;
        }
    } else if (cJSON_IsFalse(addl) && !props) {
        n.closed = 1;  // {"type": "object", "additionalProperties": false}: only {}
    }
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "items");
    if (cJSON_IsObject(items)) {
        int child = schema_node(s, items, depth + 1);
        if (child < 0) return -1;
        n.items = (uint16_t)child;
    }
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(j, "minItems"), *mx = cJSON_GetObjectItemCaseSensitive(j, "maxItems");
    if ((cJSON_IsNumber(mx) || cJSON_IsRaw(mx)) && mx->valuedouble >= 1 && mx->valuedouble <= 65535) n.max_items = (uint16_t)mx->valuedouble;
    if ((cJSON_IsNumber(mn) || cJSON_IsRaw(mn)) && mn->valuedouble >= 1 && mn->valuedouble <= 65535) n.min_items = (uint16_t)mn->valuedouble;
    if (n.max_items && n.min_items > n.max_items) n.min_items = n.max_items;
    if (!n.types && !n.n_enum && !n.n_props && !n.closed && !n.items && !n.max_items && !n.min_items) return 0;  // any
    if (s->n_nodes >= 65535) return 0;  // table full: any value
    if (grow((void **)&s->nodes, &s->cap_nodes, s->n_nodes + 2, sizeof(constrain_node))) return -1;
    if (s->n_nodes == 0) s->nodes[s->n_nodes++] = ANY_NODE;
    s->nodes[s->n_nodes] = n;
    return s->n_nodes++;
}

int constrain_schema_add(constrain_spec *s, const cJSON *schema) { return schema_node(s, schema, 0); }

int constrain_spec_add_tool(constrain_spec *s, const char *name, const cJSON *parameters) {
    if (s->n_names >= CONSTRAIN_MAX_NAMES) return -1;
    int node = parameters ? constrain_schema_add(s, parameters) : 0;
    char *dup = strdup(name);
    if (node < 0 || !dup) return free(dup), -1;
    s->names[s->n_names] = dup;
    s->name_node[s->n_names++] = (uint16_t)node;
    return 0;
}

static void *memdup(const void *p, size_t n) {
    if (!p || !n) return NULL;
    void *q = malloc(n);
    if (q) memcpy(q, p, n);
    return q;
}

int constrain_spec_copy(constrain_spec *dst, const constrain_spec *src) {
    *dst = *src;
    for (int i = 0; i < src->n_names; i++) dst->names[i] = NULL;
    dst->nodes = memdup(src->nodes, sizeof(constrain_node) * (size_t)src->n_nodes);
    dst->refs = memdup(src->refs, sizeof(uint32_t) * (size_t)src->n_refs);
    dst->strs = memdup(src->strs, src->n_strs);
    dst->cap_nodes = src->n_nodes, dst->cap_refs = src->n_refs, dst->cap_strs = src->n_strs;
    int bad = (src->n_nodes && !dst->nodes) || (src->n_refs && !dst->refs) || (src->n_strs && !dst->strs);
    for (int i = 0; i < src->n_names; i++) bad |= !(dst->names[i] = strdup(src->names[i]));
    if (bad) return constrain_spec_free(dst), -1;
    return 0;
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
        case J_LIT:
        case J_ENUM: return 0;  // a listed value is finite: it may finish
        case J_NUM:
            if (c >= '0' && c <= '9') return st->num == N_MINUS || st->num == N_DOT || st->num == N_E || st->num == N_ESIGN ? 0 : -1;
            return 0;
    }
    return -1;
}

// One byte of a JSON object being written. 0: consumed; 1: consumed, the top object closed;
// -1: rejected.
// sch: the schema applies (0 past the budget, where only closing counts).
static int json_byte_inner(const constrain_spec *s, constrain_state *st, int c, int sch);
static int json_byte(const constrain_spec *s, constrain_state *st, int c, int budget) {
    int over = st->json_bytes >= budget;
    if (over && closing_allows(st, c)) return -1;
    if (st->json_bytes < 65535) st->json_bytes++;
    return json_byte_inner(s, st, c, !over);
}

// Opens the top-level object of a value whose schema is node.
static void json_open_top(constrain_state *st, int node) {
    st->stack[0] = '{';
    st->node[0] = (uint16_t)node;
    st->seen[0] = 0;
    st->depth = 1;
    st->js = J_OBJ_FIRST;
    st->json_bytes = 1;
}

// Declared properties of the innermost object not yet written.
static uint64_t props_left(const constrain_spec *s, const constrain_state *st, const constrain_node **o) {
    *o = node_of(s, st->node[st->depth - 1]);
    return all_bits((*o)->n_props) & ~st->seen[st->depth - 1];
}

static int json_byte_inner(const constrain_spec *s, constrain_state *st, int c, int sch) {
    const constrain_node *o;
    switch (st->js) {
        case J_VALUE: {
            if (is_ws(c)) return 0;
            const constrain_node *n = node_of(s, st->val_node);
            uint8_t ty = sch ? n->types : 0;
            if (sch && n->n_enum) {  // one of the listed values, byte for byte
                st->js = J_ENUM;
                st->cand = all_bits(n->n_enum);
                st->cand_pos = 0;
                return json_byte_inner(s, st, c, sch);
            }
            if (c == '{' || c == '[') {
                if (ty && !(ty & (c == '{' ? CT_OBJECT : CT_ARRAY))) return -1;
                if (st->depth >= CONSTRAIN_MAX_DEPTH) return -1;
                st->node[st->depth] = st->val_node;
                st->seen[st->depth] = 0;
                st->stack[st->depth++] = (char)c;
                st->js = c == '{' ? J_OBJ_FIRST : J_ARR_FIRST;
                return 0;
            }
            if (c == '"') {
                if (ty && !(ty & CT_STRING)) return -1;
                return st->js = J_STR, st->esc = st->hex = 0, st->str_len = 0, 0;
            }
            if (c == '-' || (c >= '0' && c <= '9')) {
                if (ty && !(ty & (CT_INTEGER | CT_NUMBER))) return -1;
                st->num_int = ty && !(ty & CT_NUMBER);
                st->js = J_NUM;
                st->num = c == '-' ? N_MINUS : c == '0' ? N_ZERO : N_INT;
                return 0;
            }
            for (int k = 0; k < 3; k++)
                if (c == LITS[k][0]) {
                    if (ty && !(ty & (k < 2 ? CT_BOOLEAN : CT_NULL))) return -1;
                    return st->js = J_LIT, st->lit_kind = (uint8_t)k, st->lit_i = 1, 0;
                }
            return -1;
        }
        case J_OBJ_FIRST:
        case J_OBJ_KEY: {
            if (is_ws(c)) return 0;
            uint64_t left = props_left(s, st, &o);
            if (c == '"') {
                if (sch && o->closed && !left) return -1;  // nothing left to write
                st->cand = left, st->cand_pos = 0;
                return st->js = J_KEY, st->esc = st->hex = 0, st->str_len = 0, 0;
            }
            if (c == '}' && st->js == J_OBJ_FIRST) {
                if (sch && (o->required & ~st->seen[st->depth - 1])) return -1;
                return json_close(st);
            }
            return -1;
        }
        case J_COLON:
            if (is_ws(c)) return 0;
            return c == ':' ? (st->js = J_VALUE, 0) : -1;
        case J_ARR_FIRST:
            if (is_ws(c)) return 0;
            o = node_of(s, st->node[st->depth - 1]);
            if (c == ']') return sch && o->min_items ? -1 : json_close(st);
            st->js = J_VALUE;
            st->val_node = o->items;
            st->seen[st->depth - 1] = 1;  // elements begun
            return json_byte_inner(s, st, c, sch);
        case J_AFTER: {
            if (is_ws(c)) return 0;
            char top = st->stack[st->depth - 1];
            if (c == ',') {
                if (top == '[') {
                    o = node_of(s, st->node[st->depth - 1]);
                    if (sch && o->max_items && st->seen[st->depth - 1] >= o->max_items) return -1;
                    st->seen[st->depth - 1]++;
                    st->val_node = o->items;
                    return st->js = J_VALUE, 0;
                }
                if (sch && !props_left(s, st, &o) && o->closed) return -1;
                return st->js = J_OBJ_KEY, 0;
            }
            if (top == '{' && c == '}') {
                props_left(s, st, &o);
                if (sch && (o->required & ~st->seen[st->depth - 1])) return -1;
                return json_close(st);
            }
            if (top == '[' && c == ']') {
                if (sch && st->seen[st->depth - 1] < node_of(s, st->node[st->depth - 1])->min_items) return -1;
                return json_close(st);
            }
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
            if (c == '"') {
                if (st->js == J_STR) return st->js = J_AFTER, 0;
                // the key ends: a declared property (once), or any key where extra ones are allowed
                props_left(s, st, &o);
                int hit = -1;
                for (int i = 0; i < o->n_props && hit < 0; i++)
                    if ((st->cand >> i & 1) && strlen(prop_name(s, o, i)) == st->cand_pos) hit = i;
                if (hit >= 0) {
                    st->seen[st->depth - 1] |= 1ull << hit;
                    st->val_node = (uint16_t)s->refs[o->props + 2 * (uint32_t)hit + 1];
                } else {
                    if (sch && o->closed) return -1;
                    st->val_node = 0;
                }
                return st->js = J_COLON, 0;
            }
            if (st->str_len >= CONSTRAIN_MAX_STRING) return -1;  // only the closing quote now
            st->str_len++;
            if (st->js == J_KEY) {  // narrow the properties this key can still become
                props_left(s, st, &o);
                uint64_t keep = 0;
                if (c != '\\')
                    for (int i = 0; i < o->n_props; i++)
                        if ((st->cand >> i & 1) && prop_name(s, o, i)[st->cand_pos] == c) keep |= 1ull << i;
                st->cand = keep;
                st->cand_pos++;
                if (!keep && sch && o->closed) return -1;
            }
            if (c == '\\') return st->esc = 1, 0;
            return c < 0x20 ? -1 : 0;
        case J_ENUM: {
            const constrain_node *n = node_of(s, st->val_node);
            uint64_t keep = 0;
            int complete = 0;
            for (int i = 0; i < n->n_enum; i++) {
                if (!(st->cand >> i & 1)) continue;
                const char *v = s->strs + s->refs[n->enums + (uint32_t)i];
                if (v[st->cand_pos] == 0) complete = 1;
                else if ((unsigned char)v[st->cand_pos] == c) keep |= 1ull << i;
            }
            if (keep) return st->cand = keep, st->cand_pos++, 0;
            if (!complete) return -1;
            st->js = J_AFTER;  // the value ended before this byte
            return json_byte_inner(s, st, c, sch);
        }
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
                    if ((c == '.' || c == 'e' || c == 'E') && st->num_int && sch) return -1;
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
            return json_byte_inner(s, st, c, sch);
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
                        if ((st->name_set >> i & 1) && strlen(s->names[i]) == st->name_len) keep = 1, st->tool = (uint8_t)i;
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
                if (st->depth == 0) {  // the arguments object opens, under the tool's schema
                    if (c != '{') return -1;
                    json_open_top(st, s->name_node[st->tool]);
                    return 0;
                }
                int r = json_byte(s, st, c, CONSTRAIN_ARGS_BUDGET);
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
            json_open_top(st, s->root);
            st->phase = PH_J_TOP;
            return 0;
        case PH_J_TOP:
            r = json_byte(s, st, c, CONSTRAIN_OBJECT_BUDGET);
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

// ---- the vocabulary (filled by model/generate.c) and the mask -----------------------------------

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
