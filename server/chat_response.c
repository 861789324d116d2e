// chat_response.c: the incremental reply parser and the message accumulator (chat_response.h).
#include "server/chat_response.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "protocol/tags.h"
#include "protocol/toolcall_parse.h"

static const char *const TAG_CALL = TAG_TOOL_CALL, *const TAG_CALL_END = TAG_TOOL_CALL_END;

static uint64_t id_next(void) {
    static atomic_uint_fast64_t state;
    uint64_t s = atomic_load(&state);
    if (s == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t seed = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)(uintptr_t)&ts << 16);
        uint64_t zero = 0;
        atomic_compare_exchange_strong(&state, &zero, seed | 1);
    }
    uint64_t x = atomic_fetch_add(&state, 0x9e3779b97f4a7c15ull) + 0x9e3779b97f4a7c15ull;  // splitmix64
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void random_alnum(char *out, int n) {
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    uint64_t r = 0;
    for (int i = 0; i < n; i++) {
        if (i % 10 == 0) r = id_next();
        out[i] = al[r % 62];
        r /= 62;
    }
    out[n] = 0;
}

void reply_call_id(char *buf) {
    memcpy(buf, "call_", 5);
    random_alnum(buf + 5, 24);
}

void reply_completion_id(char *buf) {
    memcpy(buf, "chatcmpl-", 9);
    random_alnum(buf + 9, 29);
}

void reply_parser_init(reply_parser *p, const chat_request *req, reply_event_fn emit, void *ud) {
    memset(p, 0, sizeof(*p));
    p->emit = emit;
    p->ud = ud;
    p->max_calls = 1 << 30;
    if (req && req->n_tools) {
        p->tool_names = req->tool_names;
        p->n_tools = req->n_tools;
        p->calls_allowed = req->tool_choice != TOOL_CHOICE_NONE;
        p->only_name = req->tool_choice == TOOL_CHOICE_NAMED ? req->tool_choice_name : NULL;
        if (!req->parallel_tool_calls) p->max_calls = 1;
    }
}

void reply_parser_free(reply_parser *p) {
    free(p->text);
    free(p->pend[0]);
    free(p->pend[1]);
    memset(p, 0, sizeof(*p));
}

static int grow(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    char *nb = realloc(*buf, c);
    if (!nb) return -1;
    *buf = nb;
    *cap = c;
    return 0;
}

static int is_ws(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

// Emits text of one kind, holding back trailing whitespace and dropping leading whitespace.
static void emit_text(reply_parser *p, int kind, const char *s, size_t n) {
    if (p->oom || n == 0) return;
    if (!p->started[kind]) {
        while (n && is_ws(*s)) s++, n--;
        if (!n) return;
    }
    size_t body = n;
    while (body && is_ws(s[body - 1])) body--;
    if (body == 0) {  // only whitespace: keep it pending
        if (grow(&p->pend[kind], &p->pend_cap[kind], p->pend_len[kind] + n + 1)) {
            p->oom = 1;
            return;
        }
        memcpy(p->pend[kind] + p->pend_len[kind], s, n);
        p->pend_len[kind] += n;
        return;
    }
    if (p->pend_len[kind]) {
        p->emit(p->ud, (reply_event_kind)kind, p->pend[kind], p->pend_len[kind], NULL, NULL, NULL);
        p->pend_len[kind] = 0;
    }
    p->emit(p->ud, (reply_event_kind)kind, s, body, NULL, NULL, NULL);
    p->started[kind] = 1;
    if (body < n) {
        if (grow(&p->pend[kind], &p->pend_cap[kind], n - body + 1)) {
            p->oom = 1;
            return;
        }
        memcpy(p->pend[kind], s + body, n - body);
        p->pend_len[kind] = n - body;
    }
}

static int known_tool(const reply_parser *p, const char *name) {
    for (int i = 0; i < p->n_tools; i++)
        if (!strcmp(p->tool_names[i], name)) return 1;
    return 0;
}

// One {"name","arguments"} item → a tool call event when it is well formed and allowed.
static void emit_call(reply_parser *p, const cJSON *item) {
    if (!cJSON_IsObject(item) || p->n_calls >= p->max_calls) return;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(item, "name");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(item, "arguments");
    if (!cJSON_IsString(name) || !known_tool(p, name->valuestring)) return;
    if (p->only_name && strcmp(p->only_name, name->valuestring) != 0) return;
    cJSON *parsed = NULL;
    if (cJSON_IsString(args)) {  // a double-encoded object is accepted
        parsed = cJSON_Parse(args->valuestring);
        if (!cJSON_IsObject(parsed)) {
            cJSON_Delete(parsed);
            return;
        }
        args = parsed;
    }
    if (!cJSON_IsObject(args)) return;
    char *a = cJSON_PrintUnformatted(args);
    cJSON_Delete(parsed);
    if (!a) {
        p->oom = 1;
        return;
    }
    char id[32];
    reply_call_id(id);
    p->emit(p->ud, REPLY_TOOL_CALL, NULL, 0, id, name->valuestring, a);
    p->n_calls++;
    free(a);
}

static void handle_block(reply_parser *p, const char *body, size_t n) {
    if (!p->calls_allowed) return;
    toolcall_strip(&body, &n);
    cJSON *v = cJSON_ParseWithLength(body, n);
    if (!v) return;
    if (cJSON_IsArray(v))
        for (const cJSON *c = v->child; c; c = c->next) emit_call(p, c);
    else emit_call(p, v);
    cJSON_Delete(v);
}

// Length of the longest suffix of [s, s+n) that is a proper prefix of tag.
static size_t partial_tag(const char *s, size_t n, const char *tag) {
    size_t t = strlen(tag);
    for (size_t k = t - 1; k > 0; k--)
        if (k <= n && !memcmp(s + n - k, tag, k)) return k;
    return 0;
}

static const char *find(const char *s, size_t n, const char *tag) {
    size_t t = strlen(tag);
    for (size_t i = 0; i + t <= n; i++)
        if (s[i] == tag[0] && !memcmp(s + i, tag, t)) return s + i;
    return NULL;
}

int reply_parser_feed(reply_parser *p, const char *s, size_t n, int final) {
    if (p->oom) return -1;
    if (grow(&p->text, &p->cap, p->len + n + 1)) {
        p->oom = 1;
        return -1;
    }
    memcpy(p->text + p->len, s, n);
    p->len += n;
    p->text[p->len] = 0;
    for (;;) {
        const char *cur = p->text + p->pos;
        size_t rest = p->len - p->pos;
        if (p->mode == 0) {
            const char *a = find(cur, rest, TAG_THINK), *b = find(cur, rest, TAG_CALL);
            const char *hit = a && (!b || a < b) ? a : b;
            if (hit) {
                emit_text(p, REPLY_CONTENT, cur, (size_t)(hit - cur));
                int think = hit == a;
                p->mode = think ? 1 : 2;
                p->pos += (size_t)(hit - cur) + strlen(think ? TAG_THINK : TAG_CALL);
                continue;
            }
            size_t hold = 0;
            if (!final) {
                size_t h1 = partial_tag(cur, rest, TAG_THINK), h2 = partial_tag(cur, rest, TAG_CALL);
                hold = h1 > h2 ? h1 : h2;
            }
            emit_text(p, REPLY_CONTENT, cur, rest - hold);
            p->pos += rest - hold;
            break;
        } else if (p->mode == 1) {
            const char *e = find(cur, rest, TAG_THINK_END);
            if (e) {
                emit_text(p, REPLY_REASONING, cur, (size_t)(e - cur));
                p->mode = 0;
                p->pos += (size_t)(e - cur) + strlen(TAG_THINK_END);
                continue;
            }
            size_t hold = final ? 0 : partial_tag(cur, rest, TAG_THINK_END);
            emit_text(p, REPLY_REASONING, cur, rest - hold);
            p->pos += rest - hold;
            break;
        } else {
            const char *e = find(cur, rest, TAG_CALL_END);
            if (e) {
                handle_block(p, cur, (size_t)(e - cur));
                p->mode = 0;
                p->pos += (size_t)(e - cur) + strlen(TAG_CALL_END);
                continue;
            }
            if (final) p->pos = p->len;  // an unfinished block is dropped
            break;
        }
    }
    return p->oom ? -1 : 0;
}

static void append(char **buf, size_t *len, const char *s, size_t n, int *oom) {
    char *nb = realloc(*buf, *len + n + 1);
    if (!nb) {
        *oom = 1;
        return;
    }
    memcpy(nb + *len, s, n);
    *len += n;
    nb[*len] = 0;
    *buf = nb;
}

void reply_message_collect(void *ud, reply_event_kind kind, const char *text, size_t len, const char *call_id,
                           const char *name, const char *args_json) {
    reply_message *m = ud;
    if (kind == REPLY_CONTENT) append(&m->content, &m->content_len, text, len, &m->oom);
    else if (kind == REPLY_REASONING) append(&m->reasoning, &m->reasoning_len, text, len, &m->oom);
    else {
        if (!m->tool_calls) m->tool_calls = cJSON_CreateArray();
        cJSON *c = cJSON_CreateObject(), *f = cJSON_CreateObject();
        if (!m->tool_calls || !c || !f) {
            cJSON_Delete(c);
            cJSON_Delete(f);
            m->oom = 1;
            return;
        }
        cJSON_AddStringToObject(c, "id", call_id);
        cJSON_AddStringToObject(c, "type", "function");
        cJSON_AddStringToObject(f, "name", name);
        cJSON_AddStringToObject(f, "arguments", args_json);
        cJSON_AddItemToObject(c, "function", f);
        cJSON_AddItemToArray(m->tool_calls, c);
    }
}

cJSON *reply_message_json(const reply_message *m) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "role", "assistant");
    if (m->content) cJSON_AddStringToObject(j, "content", m->content);
    else if (m->tool_calls) cJSON_AddNullToObject(j, "content");
    else cJSON_AddStringToObject(j, "content", "");
    if (m->reasoning) cJSON_AddStringToObject(j, "reasoning_content", m->reasoning);
    cJSON_AddNullToObject(j, "refusal");
    if (m->tool_calls) cJSON_AddItemToObject(j, "tool_calls", cJSON_Duplicate(m->tool_calls, 1));
    return j;
}

void reply_message_free(reply_message *m) {
    free(m->content);
    free(m->reasoning);
    cJSON_Delete(m->tool_calls);
    memset(m, 0, sizeof(*m));
}
