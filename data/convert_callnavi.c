// convert_callnavi.c: CallNavi questions (callnavi/Dataset/Questions/<domain>.json) to unified
// examples; the tools are the domain's APIs from the side file APISchema/<domain>.json.
//   row      {"id": "ban01", "question": [{"role": "user", "content": ...}], "ground_truth":
//            {"API": [names], "parameters": [one argument object per name]}, "difficulty"}
//   tools    every API of the domain, {"name", "description", "parameters"} (JSON Schema; the
//            "$schema" key and "returnParameter" are dropped);
//   answer   the API list zipped with the parameter list.
// CallNavi writes "$$$" for a value its checker does not compare: a value taken from an earlier
// call's output ("show me the seats of one of the flights you found") but also values the user
// gave in a form the checker leaves open (138 single-call rows have it, mostly dates and
// names). Such a call has no exact target, and whether it depends on an earlier one cannot be
// told, so a row with any "$$$" is dropped (wildcard_value). The rows kept have exact values in
// every call; their calls do not use each other's outputs, so all of them are the answer.
// Rows whose API and parameter lists differ in length are malformed.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pyjson.h"
#include "data/convert.h"
#include "data/example.h"

static int wildcard(const char *s) { return strstr(s, "$$$") != NULL; }

static cJSON *callnavi_tools(const cJSON *side) {
    if (!cJSON_IsArray(side)) return NULL;
    cJSON *tools = cJSON_CreateArray();
    for (const cJSON *t = tools ? side->child : NULL; t; t = t->next) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(t, "description");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(t, "parameters");
        cJSON *fn = cJSON_CreateObject();
        cJSON *pc = cJSON_IsObject(p) ? pyjson_copy(p) : NULL;
        if (pc) cJSON_DeleteItemFromObjectCaseSensitive(pc, "$schema");
        int ok = fn && cJSON_IsString(n) && n->valuestring[0] && cJSON_AddStringToObject(fn, "name", n->valuestring) &&
                 (!cJSON_IsString(d) || cJSON_AddStringToObject(fn, "description", d->valuestring)) &&
                 (!pc || cJSON_AddItemToObject(fn, "parameters", pc));
        if (ok) pc = NULL;
        cJSON_Delete(pc);
        cJSON *w = ok ? example_wrap_tool(fn) : NULL;
        if (!ok) cJSON_Delete(fn);
        if (!w || !cJSON_AddItemToArray(tools, w)) {
            cJSON_Delete(w);
            cJSON_Delete(tools);
            return NULL;
        }
    }
    if (tools && !tools->child) {
        cJSON_Delete(tools);
        tools = NULL;
    }
    return tools;
}

// The question's messages (roles user/assistant/system with string content); NULL if malformed.
static cJSON *callnavi_messages(const cJSON *q) {
    if (!cJSON_IsArray(q) || !q->child) return NULL;
    cJSON *msgs = cJSON_CreateArray();
    for (const cJSON *m = msgs ? q->child : NULL; m; m = m->next) {
        const cJSON *ro = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *co = cJSON_GetObjectItemCaseSensitive(m, "content");
        cJSON *nm = NULL;
        if (cJSON_IsString(ro) && cJSON_IsString(co) &&
            (!strcmp(ro->valuestring, "user") || !strcmp(ro->valuestring, "assistant") ||
             !strcmp(ro->valuestring, "system")))
            nm = example_make_message(ro->valuestring, co->valuestring);
        if (!nm || !cJSON_AddItemToArray(msgs, nm)) {
            cJSON_Delete(nm);
            cJSON_Delete(msgs);
            return NULL;
        }
    }
    return msgs;
}

int convert_callnavi_record(convert_run *r, const cJSON *rec, size_t index, trl_err *e) {
    convert_counts *c = r->counts;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
    const cJSON *gt = cJSON_GetObjectItemCaseSensitive(rec, "ground_truth");
    const cJSON *apis = cJSON_GetObjectItemCaseSensitive(gt, "API");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(gt, "parameters");
    cJSON *msgs = callnavi_messages(cJSON_GetObjectItemCaseSensitive(rec, "question"));
    if (!msgs || !cJSON_IsArray(apis) || !cJSON_IsArray(params) ||
        cJSON_GetArraySize(apis) != cJSON_GetArraySize(params)) {
        cJSON_Delete(msgs);
        convert_count(c, "malformed_row", 1);
        return TRL_OK;
    }
    convert_count(c, "samples", 1);
    cJSON *tools = callnavi_tools(r->side);
    if (!tools) {
        cJSON_Delete(msgs);
        convert_count(c, "no_tools", 1);
        return TRL_OK;
    }
    cJSON *answer = cJSON_CreateArray();
    const char *drop = NULL;
    for (const cJSON *a = apis->child, *p = params->child; answer && !drop && a; a = a->next, p = p->next) {
        if (!cJSON_IsString(a) || !a->valuestring[0] || !cJSON_IsObject(p)) {
            drop = "unparseable_call";
            break;
        }
        if (convert_any_string(p, wildcard)) {
            drop = "wildcard_value";
            break;
        }
        if (!pyjson_append(answer, example_make_call(a->valuestring, pyjson_copy(p)))) {
            cJSON_Delete(answer);
            answer = NULL;  // out of memory
        }
    }
    if (answer && !drop)
        drop = !answer->child ? "empty_call" : convert_unknown_names(answer, tools, NULL) ? "unknown_tool" : NULL;
    char rid[160];
    if (cJSON_IsString(id) && id->valuestring[0])
        snprintf(rid, sizeof(rid), "callnavi-%.140s", id->valuestring);
    else
        snprintf(rid, sizeof(rid), "callnavi-%s-%zu", r->stem, index);
    return convert_emit_sample(r, drop, rid, "callnavi", msgs, tools, answer, e);
}
