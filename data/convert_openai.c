// convert_openai.c: OpenAI-style chat rows to unified examples. A row is
//   {"messages": [{"role", "content", "tool_calls"?}, ...], "tools": [{"type": "function",
//    "function": {...}}, ...]}   (legacy "functions" is accepted in place of "tools")
// Each assistant message with a non-empty tool_calls list gives one example: the messages before
// it are the context and its calls the answer. Calls may be OpenAI's {"id", "type": "function",
// "function": {"name", "arguments": "<JSON text>"}} or plain {"name", "arguments": {...}}.
// Context messages are normalised: "developer" -> system, "function" -> tool, content parts
// lists are joined (text parts only), tool_call ids are dropped. Assistant turns without calls
// are context only (Tool-N1 trains on call turns). When a call list cannot be read, that sample
// and every later one of the row are dropped as unparseable_call (their context would be wrong).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pyjson.h"
#include "base/strbuf.h"
#include "data/convert.h"
#include "data/example.h"

// Message content as text: a string, or the text parts of a list; NULL for null/absent.
static char *content_text(const cJSON *content, int *bad) {
    if (!content || cJSON_IsNull(content)) return NULL;
    if (cJSON_IsString(content)) return strdup(content->valuestring);
    if (!cJSON_IsArray(content)) {
        *bad = 1;
        return NULL;
    }
    strbuf sb;
    strbuf_init(&sb);
    for (const cJSON *p = content->child; p; p = p->next) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (cJSON_IsString(p))
            strbuf_adds(&sb, p->valuestring);
        else if (cJSON_IsString(t))
            strbuf_adds(&sb, t->valuestring);
    }
    return strbuf_take(&sb);
}

// OpenAI tool calls to [{"name", "arguments"}]; NULL if any cannot be read.
static cJSON *read_tool_calls(const cJSON *tc) {
    cJSON *plain = cJSON_CreateArray();
    if (!plain) return NULL;
    for (const cJSON *c = tc->child; c; c = c->next) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
        const cJSON *src = cJSON_IsObject(fn) ? fn : c;
        if (!pyjson_append(plain, convert_read_call(src, "arguments"))) {
            cJSON_Delete(plain);
            return NULL;
        }
    }
    return plain;
}

int convert_openai_record(convert_run *r, const cJSON *rec, size_t index, trl_err *e) {
    convert_counts *c = r->counts;
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(rec, "messages");
    if (!cJSON_IsArray(msgs) || !msgs->child) {
        convert_count(c, "malformed_row", 1);
        return TRL_OK;
    }
    // Normalise every message first; calls[i] holds the parsed calls of assistant turn i.
    int n = cJSON_GetArraySize(msgs);
    cJSON *norm = cJSON_CreateArray();
    int *call_state = calloc((size_t)n, sizeof(int));  // 0 none, 1 calls, -1 unreadable calls
    if (!norm || !call_state) {
        cJSON_Delete(norm);
        free(call_state);
        return trl_errf(e, "out of memory");
    }
    int rc = TRL_OK, i = 0, ncalls = 0;
    cJSON *tools = NULL;
    for (const cJSON *m = msgs->child; m; m = m->next, i++) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsString(role)) goto malformed;
        const char *ro = role->valuestring;
        if (!strcmp(ro, "developer")) ro = "system";
        if (!strcmp(ro, "function")) ro = "tool";
        if (strcmp(ro, "system") && strcmp(ro, "user") && strcmp(ro, "assistant") && strcmp(ro, "tool")) goto malformed;
        int bad = 0;
        char *text = content_text(cJSON_GetObjectItemCaseSensitive(m, "content"), &bad);
        if (bad) goto malformed;
        const cJSON *tc = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
        cJSON *calls = NULL;
        if (!strcmp(ro, "assistant") && cJSON_IsArray(tc) && tc->child) {
            calls = read_tool_calls(tc);
            call_state[i] = calls ? 1 : -1;
            ncalls++;
        }
        if (!text && !calls && call_state[i] == 0) {
            if (strcmp(ro, "assistant")) {
                free(text);
                goto malformed;
            }
            text = strdup("");
        }
        cJSON *nm = example_make_message(ro, call_state[i] == -1 ? (text ? text : "") : text);
        free(text);
        if (!nm || (calls && !cJSON_AddItemToObject(nm, "tool_calls", calls)) || !cJSON_AddItemToArray(norm, nm)) {
            if (calls && !(nm && cJSON_GetObjectItemCaseSensitive(nm, "tool_calls"))) cJSON_Delete(calls);
            cJSON_Delete(nm);
            rc = trl_errf(e, "out of memory");
            goto done;
        }
    }
    if (!ncalls) {
        convert_count(c, "rows_without_calls", 1);
        goto done;
    }
    const cJSON *tl = cJSON_GetObjectItemCaseSensitive(rec, "tools");
    if (!tl) tl = cJSON_GetObjectItemCaseSensitive(rec, "functions");
    tools = tl ? convert_wrap_tools(tl) : NULL;
    if (!tools) {
        convert_count(c, "samples", ncalls);
        convert_count(c, "no_tools", ncalls);
        goto done;
    }
    const cJSON *rid = cJSON_GetObjectItemCaseSensitive(rec, "id");
    int broken = 0;
    i = 0;
    for (const cJSON *m = norm->child; m; m = m->next, i++) {
        if (call_state[i] == 0) continue;
        convert_count(c, "samples", 1);
        if (call_state[i] < 0 || broken) {
            broken = 1;
            convert_count(c, "unparseable_call", 1);
            continue;
        }
        const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
        // A call with no context at all (the row's first message) cannot be a training sample.
        const char *drop = convert_unknown_names(calls, tools, NULL) ? "unknown_tool" : i == 0 ? "malformed_row" : NULL;
        cJSON *ctx = cJSON_CreateArray();  // the messages before this one
        int k = 0;
        for (const cJSON *p = norm->child; !drop && ctx && p && k < i; p = p->next, k++) {
            if (!pyjson_append(ctx, pyjson_copy(p))) {
                cJSON_Delete(ctx);
                ctx = NULL;
            }
        }
        char id[128];
        if (cJSON_IsString(rid) && rid->valuestring[0])
            snprintf(id, sizeof(id), "%.100s-%d", rid->valuestring, i);
        else
            snprintf(id, sizeof(id), "openai-%zu-%d", index, i);
        if (convert_emit_sample(r, drop, id, "openai", ctx, pyjson_copy(tools), pyjson_copy(calls), e)) {
            rc = TRL_ERR;
            goto done;
        }
    }
    goto done;
malformed:
    convert_count(c, "malformed_row", 1);
done:
    cJSON_Delete(norm);
    cJSON_Delete(tools);
    free(call_state);
    return rc;
}
