// convert_glaive.c: the glaive function-calling demos of LLaMA-Factory (glaive/data/) to unified
// examples. Two row shapes:
//   ShareGPT (glaive_toolcall_{en,zh}_demo.json): {"conversations": [{"from": human|gpt|
//            function_call|observation, "value"}], "tools": "<JSON list>"}. Only a call made
//            right after the first user turn is a sample (the clean single-turn request; 106 of
//            the English file's 300 rows); rows whose first reply is text are counted
//            (rows_without_first_turn_call) and later call turns are skipped
//            (later_call_turns_skipped): their context often holds the assistant's questions
//            for missing values, which the first-turn set does not need.
//   reasoning (reason_tool_use_demo_50.jsonl): {"messages": [{"role", "content": [{"type":
//            text|reasoning|tool_call, "value"}]}], "tools": "<JSON list of wrapped tools>"}.
//            Every assistant message right after a user message is a sample: its tool_call
//            parts are the answer, none gives [] (the model declined or answered: 19 rows whose
//            tools do not fit the request). Context: user and tool messages as text, earlier
//            assistant messages as their text parts plus tool_calls; reasoning parts and the
//            source's system prompt are dropped.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pyjson.h"
#include "base/strbuf.h"
#include "data/convert.h"
#include "data/example.h"

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static int sharegpt_row(convert_run *r, const cJSON *rec, const cJSON *conv, size_t index, trl_err *e) {
    convert_counts *c = r->counts;
    const cJSON *first = conv->child, *second = first ? first->next : NULL;
    const cJSON *f0 = get(first, "from"), *v0 = get(first, "value");
    const cJSON *f1 = get(second, "from"), *v1 = get(second, "value");
    if (!cJSON_IsString(f0) || !cJSON_IsString(v0) || !cJSON_IsString(f1) || !cJSON_IsString(v1)) {
        convert_count(c, "malformed_row", 1);
        return TRL_OK;
    }
    int later = 0;
    for (const cJSON *t = second->next; t; t = t->next) {
        const cJSON *f = get(t, "from");
        later += cJSON_IsString(f) && !strcmp(f->valuestring, "function_call");
    }
    if (later) convert_count(c, "later_call_turns_skipped", later);
    if (strcmp(f0->valuestring, "human") || strcmp(f1->valuestring, "function_call")) {
        convert_count(c, "rows_without_first_turn_call", 1);
        return TRL_OK;
    }
    convert_count(c, "samples", 1);
    cJSON *tools = convert_wrap_tools(get(rec, "tools"));
    if (!tools || !tools->child) {
        cJSON_Delete(tools);
        convert_count(c, "no_tools", 1);
        return TRL_OK;
    }
    cJSON *answer = convert_read_calls(v1, "arguments");
    const char *drop = !answer ? "unparseable_call" : !answer->child ? "empty_call"
                       : convert_unknown_names(answer, tools, NULL) ? "unknown_tool"
                                                                     : NULL;
    char id[160];
    snprintf(id, sizeof(id), "glaive-%.100s-%zu", r->stem[0] ? r->stem : "row", index);
    return convert_emit_sample(r, drop, id, "glaive", convert_user_messages(v0->valuestring), tools, answer, e);
}

// One reasoning-demo message in the unified form; *calls gets its calls (NULL if a tool_call
// part is unreadable) for assistant messages. NULL for a malformed message or out of memory.
static cJSON *reason_message(const cJSON *m, const char **role, cJSON **calls) {
    const cJSON *ro = get(m, "role"), *content = get(m, "content");
    if (!cJSON_IsString(ro) || !cJSON_IsArray(content)) return NULL;
    *role = ro->valuestring;
    int asst = !strcmp(*role, "assistant");
    if (!asst && strcmp(*role, "user") && strcmp(*role, "tool") && strcmp(*role, "system")) return NULL;
    strbuf sb;
    strbuf_init(&sb);
    cJSON *tc = cJSON_CreateArray();
    int bad = 0;
    for (const cJSON *p = content->child; p && tc; p = p->next) {
        const cJSON *ty = get(p, "type"), *v = get(p, "value");
        if (!cJSON_IsString(ty) || !cJSON_IsString(v)) {
            strbuf_free(&sb);
            cJSON_Delete(tc);
            return NULL;
        }
        if (!strcmp(ty->valuestring, "text")) {
            strbuf_adds(&sb, v->valuestring);
        } else if (!strcmp(ty->valuestring, "tool_call") && asst) {
            cJSON *call = convert_read_call(v, "arguments");
            if (!call) bad = 1;
            else if (!cJSON_AddItemToArray(tc, call)) cJSON_Delete(call);
        }
    }
    char *text = strbuf_take(&sb);
    cJSON *out = text ? example_make_message(*role, text) : NULL;
    free(text);
    if (out && tc && tc->child && !bad) {
        if (!pyjson_set(out, "tool_calls", pyjson_copy(tc))) {
            cJSON_Delete(out);
            out = NULL;
        }
    }
    if (bad || !tc) {
        cJSON_Delete(tc);
        tc = NULL;
    }
    *calls = tc;
    if (!out) cJSON_Delete(*calls), *calls = NULL;
    return out;
}

static int reason_row(convert_run *r, const cJSON *rec, const cJSON *messages, size_t index, trl_err *e) {
    convert_counts *c = r->counts;
    cJSON *ctx = cJSON_CreateArray();
    cJSON *tools = NULL;
    if (!ctx) return trl_errf(e, "out of memory");
    int rc = TRL_OK, k = 0, prev_user = 0, broken = 0;
    for (const cJSON *m = messages->child; m; m = m->next, k++) {
        const char *role = NULL;
        cJSON *calls = NULL;
        cJSON *nm = reason_message(m, &role, &calls);
        if (!nm) {
            convert_count(c, "malformed_row", 1);
            goto done;
        }
        int asst = !strcmp(role, "assistant");
        if (asst && prev_user) {
            convert_count(c, "samples", 1);
            if (!tools) tools = convert_wrap_tools(get(rec, "tools"));
            const char *drop = !tools || !tools->child ? "no_tools"
                               : broken || !calls      ? "unparseable_call"
                               : convert_unknown_names(calls, tools, NULL) ? "unknown_tool"
                               : !ctx->child                               ? "malformed_row"
                                                                           : NULL;
            char id[96];
            snprintf(id, sizeof(id), "glaive_reason-%zu-%d", index, k);
            rc = convert_emit_sample(r, drop, id, "glaive_reason", pyjson_copy(ctx), pyjson_copy(tools),
                                     pyjson_copy(calls), e);
        }
        if (asst && !calls) broken = 1;  // later samples would have a context with a lost call
        cJSON_Delete(calls);
        prev_user = !strcmp(role, "user");
        if (rc || !strcmp(role, "system")) {
            cJSON_Delete(nm);
            if (rc) goto done;
            continue;
        }
        if (!cJSON_AddItemToArray(ctx, nm)) {
            cJSON_Delete(nm);
            rc = trl_errf(e, "out of memory");
            goto done;
        }
    }
done:
    cJSON_Delete(ctx);
    cJSON_Delete(tools);
    return rc;
}

int convert_glaive_record(convert_run *r, const cJSON *rec, size_t index, trl_err *e) {
    const cJSON *conv = get(rec, "conversations"), *msgs = get(rec, "messages");
    if (cJSON_IsArray(conv) && conv->child) return sharegpt_row(r, rec, conv, index, e);
    if (cJSON_IsArray(msgs) && msgs->child) return reason_row(r, rec, msgs, index, e);
    convert_count(r->counts, "malformed_row", 1);
    return TRL_OK;
}
