// convert_toolrl.c: ToolRL's rlla rows ({instruction, input, output}; toolrl_rlla/rlla_sft.json)
// to unified examples.
//   tools    from the instruction's "**Available Tools**" section: entries
//            "N. Name: <name>\nDescription: <text>\nParameters: <JSON>";
//   messages from the input after "**Dialogue Records History**": <user>...</user> becomes a
//            user message, <obs>...</obs> a tool message, and the <think>/<tool_call>/<response>
//            run between them one assistant message (content = the response text, tool_calls =
//            the calls; the placeholder thoughts of the history are dropped);
//   answer   from the output: the last <tool_call> block after the last </think> (the distilled
//            thoughts often mention "<tool_call>" in prose), one JSON object per call with
//            "name" and "parameters"; an output with only a <response> gives answer [].
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pyjson.h"
#include "base/strbuf.h"
#include "data/convert.h"
#include "data/example.h"
#include "protocol/tags.h"

static const char *find(const char *s, const char *end, const char *needle) {
    size_t nl = strlen(needle);
    if (!s || (size_t)(end - s) < nl) return NULL;
    return strbuf_find(s, (size_t)(end - s), needle, nl);
}

// Is p at the start of a line "<digits>. Name: "? Returns the position after it or NULL.
static const char *entry_start(const char *p, const char *end) {
    const char *q = p;
    while (q < end && *q >= '0' && *q <= '9') q++;
    if (q == p || (size_t)(end - q) < 8 || strncmp(q, ". Name: ", 8) != 0) return NULL;
    return q + 8;
}

static cJSON *toolrl_tools(const char *instr) {
    const char *end = instr + strlen(instr);
    const char *sec = find(instr, end, "**Available Tools**");
    if (!sec) return NULL;
    const char *sec_end = find(sec, end, "**Steps for Each Turn**");
    if (!sec_end) sec_end = end;
    cJSON *tools = cJSON_CreateArray();
    if (!tools) return NULL;
    const char *p = sec;  // always at the start of a line
    while (p < sec_end) {
        const char *name = entry_start(p, sec_end);
        if (!name) {
            const char *nl = memchr(p, '\n', (size_t)(sec_end - p));
            p = nl ? nl + 1 : sec_end;
            continue;
        }
        // The entry runs to the next "N. Name: " line or the end of the section.
        const char *q = name, *entry_end = sec_end;
        while (q < sec_end) {
            const char *n2 = memchr(q, '\n', (size_t)(sec_end - q));
            if (!n2) break;
            if (entry_start(n2 + 1, sec_end)) {
                entry_end = n2 + 1;
                break;
            }
            q = n2 + 1;
        }
        const char *name_end = memchr(name, '\n', (size_t)(entry_end - name));
        const char *desc = name_end ? find(name_end, entry_end, "Description: ") : NULL;
        const char *params = desc ? find(desc, entry_end, "\nParameters: ") : NULL;
        if (!name_end || !params) goto fail;
        char *nm = convert_dup_trimmed(name, name_end);
        char *ds = convert_dup_trimmed(desc + 13, params);
        const char *pj = params + 13;
        cJSON *pv = pyjson_parse(pj, (size_t)(entry_end - pj), NULL);
        cJSON *w = NULL;
        if (nm && ds && nm[0] && cJSON_IsObject(pv)) {
            cJSON *fn = cJSON_CreateObject();
            if (fn && cJSON_AddStringToObject(fn, "name", nm) && cJSON_AddStringToObject(fn, "description", ds) &&
                cJSON_AddItemToObject(fn, "parameters", pv)) {
                pv = NULL;
                w = example_wrap_tool(fn);
            } else {
                cJSON_Delete(fn);
            }
        }
        cJSON_Delete(pv);
        free(nm);
        free(ds);
        if (!w || !cJSON_AddItemToArray(tools, w)) {
            cJSON_Delete(w);
            goto fail;
        }
        p = entry_end;
    }
    if (!tools->child) goto fail;
    return tools;
fail:
    cJSON_Delete(tools);
    return NULL;
}

// Reads consecutive JSON objects {"name", "parameters"} from a <tool_call> block body.
static cJSON *block_calls(const char *a, const char *b) {
    cJSON *calls = cJSON_CreateArray();
    if (!calls) return NULL;
    size_t len = (size_t)(b - a), pos = 0;
    for (;;) {
        while (pos < len && (a[pos] == ' ' || a[pos] == '\n' || a[pos] == '\r' || a[pos] == '\t')) pos++;
        if (pos >= len) break;
        cJSON *v = pyjson_parse_next(a, len, &pos, NULL);
        cJSON *call = v ? convert_read_call(v, "parameters") : NULL;
        cJSON_Delete(v);
        if (!call || !cJSON_AddItemToArray(calls, call)) {
            cJSON_Delete(call);
            cJSON_Delete(calls);
            return NULL;
        }
    }
    return calls;
}

static const char *const TAGS[] = {"user", "think", "tool_call", "obs", "response"};

// Builds the message list from the dialogue history. NULL if it cannot be read.
static cJSON *history_messages(const char *input, int *bad_call) {
    const char *end = input + strlen(input);
    const char *p = find(input, end, "**Dialogue Records History**");
    p = p ? p + strlen("**Dialogue Records History**") : input;
    cJSON *msgs = cJSON_CreateArray();
    cJSON *asst = NULL;  // the assistant message being filled
    if (!msgs) return NULL;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
        if (p >= end) break;
        int tag = -1;
        for (int t = 0; t < 5 && tag < 0; t++) {
            size_t tl = strlen(TAGS[t]);
            if ((size_t)(end - p) > tl + 2 && p[0] == '<' && !strncmp(p + 1, TAGS[t], tl) && p[tl + 1] == '>') tag = t;
        }
        if (tag < 0) goto fail;  // text outside any tag
        char close[16];
        snprintf(close, sizeof(close), "</%s>", TAGS[tag]);
        const char *body = p + strlen(TAGS[tag]) + 2;
        const char *stop = find(body, end, close);
        if (!stop) goto fail;
        p = stop + strlen(close);
        if (tag == 1) continue;  // think: dropped
        if (tag == 0 || tag == 3) {
            char *text = convert_dup_trimmed(body, stop);
            cJSON *m = text ? example_make_message(tag == 0 ? "user" : "tool", text) : NULL;
            free(text);
            if (!m || !cJSON_AddItemToArray(msgs, m)) {
                cJSON_Delete(m);
                goto fail;
            }
            asst = NULL;
            continue;
        }
        if (!asst) {
            asst = example_make_message("assistant", NULL);
            if (!asst || !cJSON_AddItemToArray(msgs, asst)) {
                cJSON_Delete(asst);
                goto fail;
            }
        }
        if (tag == 4) {
            char *text = convert_dup_trimmed(body, stop);
            if (!text) goto fail;
            cJSON *s = cJSON_CreateString(text);
            free(text);
            if (!s) goto fail;
            cJSON_ReplaceItemInObjectCaseSensitive(asst, "content", s);
        } else {
            cJSON *calls = block_calls(body, stop);
            if (!calls) {
                *bad_call = 1;
                goto fail;
            }
            cJSON *old = cJSON_GetObjectItemCaseSensitive(asst, "tool_calls");
            if (old) {
                while (calls->child) cJSON_AddItemToArray(old, cJSON_DetachItemFromArray(calls, 0));
                cJSON_Delete(calls);
            } else {
                cJSON_AddItemToObject(asst, "tool_calls", calls);
            }
        }
    }
    // An assistant message with neither calls nor a response gets empty content.
    for (cJSON *m = msgs->child; m; m = m->next) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        const cJSON *tc = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
        if (cJSON_IsNull(content) && !(tc && tc->child))
            cJSON_ReplaceItemInObjectCaseSensitive(m, "content", cJSON_CreateString(""));
    }
    return msgs;
fail:
    cJSON_Delete(msgs);
    return NULL;
}

// The content of the first message of prompt with that role, or NULL.
static const cJSON *verl_message(const cJSON *prompt, const char *role) {
    for (const cJSON *m = cJSON_IsArray(prompt) ? prompt->child : NULL; m; m = m->next) {
        const cJSON *ro = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (cJSON_IsString(ro) && !strcmp(ro->valuestring, role)) return cJSON_GetObjectItemCaseSensitive(m, "content");
    }
    return NULL;
}

int convert_toolrl_record(convert_run *r, const cJSON *rec, size_t index, trl_err *e) {
    convert_counts *c = r->counts;
    const cJSON *instr = cJSON_GetObjectItemCaseSensitive(rec, "instruction");
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(rec, "input");
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(rec, "output");
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(rec, "prompt");
    const cJSON *rm = cJSON_GetObjectItemCaseSensitive(rec, "reward_model");
    int verl = !instr && prompt && rm;
    if (verl) {
        instr = verl_message(prompt, "system");
        in = verl_message(prompt, "user");
        out = cJSON_GetObjectItemCaseSensitive(rm, "ground_truth");
        const cJSON *ix = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rec, "extra_info"), "index");
        if (cJSON_IsRaw(ix) || cJSON_IsNumber(ix)) index = (size_t)pyjson_number(ix);
    }
    if (!cJSON_IsString(instr) || !cJSON_IsString(in) || !cJSON_IsString(out)) {
        convert_count(c, "malformed_row", 1);
        return TRL_OK;
    }
    convert_count(c, "samples", 1);
    cJSON *tools = toolrl_tools(instr->valuestring);
    if (!tools) {
        convert_count(c, "no_tools", 1);
        return TRL_OK;
    }
    int bad_call = 0;
    cJSON *msgs = history_messages(in->valuestring, &bad_call);
    if (!msgs) {
        convert_count(c, bad_call ? "unparseable_call" : "malformed_row", 1);
        cJSON_Delete(tools);
        return TRL_OK;
    }
    // Answer: the last <tool_call> block after the last </think>.
    const char *o = out->valuestring, *oend = o + strlen(o);
    const char *from = o;
    for (const char *t = find(o, oend, TAG_THINK_END); t; t = find(t + 1, oend, TAG_THINK_END))
        from = t + TAG_LEN(TAG_THINK_END);
    const char *open = NULL;
    for (const char *t = find(from, oend, TAG_TOOL_CALL); t; t = find(t + 1, oend, TAG_TOOL_CALL)) open = t;
    cJSON *answer = NULL;
    const char *drop = NULL;
    if (!open) {
        answer = cJSON_CreateArray();
    } else {
        const char *close = find(open, oend, TAG_TOOL_CALL_END);
        answer = close ? block_calls(open + TAG_LEN(TAG_TOOL_CALL), close) : NULL;
        if (!answer || !answer->child) drop = answer ? "empty_call" : "unparseable_call";
    }
    if (!drop && convert_unknown_names(answer, tools, NULL)) drop = "unknown_tool";
    char id[64];
    snprintf(id, sizeof(id), "%s-%zu", verl ? "verl" : "toolrl", index);
    return convert_emit_sample(r, drop, id, "toolrl", msgs, tools, answer, e);
}
