// convert_seal.c: Seal-Tools rows (seal_tools/Seal-Tools_Dataset/<split>.jsonl) to unified
// examples.
//   row      {"id": "dev-easy-0", "query": "...", "calling": [{"api": name, "parameters": {...},
//            "responses": ["API_call_0", ...]}, ...]}
//   tools    the row's candidate list (the called tools and distractors) from the side file
//            dataset_for_finetune/<split>.json: the row with the same id, whose human turn holds
//            "api_list = [<Python literal of tool dicts>]\ntask_instruction = ...". Each tool
//            {'api_name', 'api_description', 'parameters': {p: {type, description}}, 'required'}
//            becomes {"name", "description", "parameters": {"type": "object", "properties",
//            "required"}} (Seal's type words "str", "int"... kept as they are).
//   answer   the calls, "parameters" as arguments ("responses" dropped). A call one of whose
//            argument strings names an earlier output ("API_call_N") is cut: the answer is the
//            first step, the calls that use no earlier output (rows_cut, dependent_calls_cut);
//            a row left with no call is dropped (dependent_only).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pyjson.h"
#include "data/convert.h"
#include "data/example.h"
#include "data/pycall.h"

static int names_output(const char *s) { return strstr(s, "API_call_") != NULL; }

// The side row with this id, or NULL.
static const cJSON *side_row(const cJSON *side, const char *id) {
    for (const cJSON *r = cJSON_IsArray(side) ? side->child : NULL; r; r = r->next) {
        const cJSON *rid = cJSON_GetObjectItemCaseSensitive(r, "id");
        if (cJSON_IsString(rid) && !strcmp(rid->valuestring, id)) return r;
    }
    return NULL;
}

// One Seal tool dict as a function schema; NULL if it is not one.
static cJSON *seal_tool(const cJSON *t) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "api_name");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(t, "api_description");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(t, "parameters");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(t, "required");
    if (!cJSON_IsString(n) || !n->valuestring[0] || (p && !cJSON_IsObject(p)) || (req && !cJSON_IsArray(req)))
        return NULL;
    return example_make_tool(n->valuestring, cJSON_IsString(d) ? d->valuestring : NULL,
                             p ? pyjson_copy(p) : cJSON_CreateObject(), req ? pyjson_copy(req) : cJSON_CreateArray());
}

// The candidate tools of the side row: the Python list after "api_list = ".
static cJSON *seal_tools(const cJSON *srow) {
    const cJSON *conv = cJSON_GetObjectItemCaseSensitive(srow, "conversations");
    const cJSON *human = cJSON_IsArray(conv) ? conv->child : NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(human, "value");
    if (!cJSON_IsString(v)) return NULL;
    const char *a = strstr(v->valuestring, "api_list = ");
    if (!a) return NULL;
    a += strlen("api_list = ");
    const char *b = strstr(a, "\ntask_instruction = ");
    if (!b) return NULL;
    cJSON *list = pycall_literal(a, (size_t)(b - a));
    cJSON *tools = cJSON_IsArray(list) ? cJSON_CreateArray() : NULL;
    for (const cJSON *t = tools ? list->child : NULL; t; t = t->next) {
        if (!pyjson_append(tools, seal_tool(t))) {
            cJSON_Delete(tools);
            tools = NULL;
            break;
        }
    }
    cJSON_Delete(list);
    if (tools && !tools->child) {
        cJSON_Delete(tools);
        tools = NULL;
    }
    return tools;
}

int convert_seal_record(convert_run *r, const cJSON *rec, size_t index, trl_err *e) {
    (void)index;
    convert_counts *c = r->counts;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(rec, "query");
    const cJSON *calling = cJSON_GetObjectItemCaseSensitive(rec, "calling");
    if (!cJSON_IsString(id) || !id->valuestring[0] || !cJSON_IsString(q) || !q->valuestring[0] ||
        !cJSON_IsArray(calling)) {
        convert_count(c, "malformed_row", 1);
        return TRL_OK;
    }
    convert_count(c, "samples", 1);
    const cJSON *srow = side_row(r->side, id->valuestring);
    cJSON *tools = srow ? seal_tools(srow) : NULL;
    if (!tools) {
        convert_count(c, "no_tools", 1);
        return TRL_OK;
    }
    cJSON *answer = cJSON_CreateArray();
    int bad = !answer, cut = 0;
    for (const cJSON *k = calling->child; !bad && k; k = k->next) {
        const cJSON *api = cJSON_GetObjectItemCaseSensitive(k, "api");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(k, "parameters");
        if (!cJSON_IsString(api) || !api->valuestring[0] || !cJSON_IsObject(args)) {
            bad = 1;
            break;
        }
        if (!convert_add_first_step(answer, api->valuestring, args, names_output, &cut)) {
            cJSON_Delete(tools);
            cJSON_Delete(answer);
            return trl_errf(e, "out of memory");
        }
    }
    const char *drop = bad ? "unparseable_call" : !calling->child ? "empty_call" : !answer->child ? "dependent_only"
                       : convert_unknown_names(answer, tools, NULL) ? "unknown_tool"
                                                                     : NULL;
    if (cut && !drop) {
        convert_count(c, "rows_cut", 1);
        convert_count(c, "dependent_calls_cut", cut);
    }
    char rid[160];
    snprintf(rid, sizeof(rid), "seal-%.140s", id->valuestring);
    return convert_emit_sample(r, drop, rid, "seal_tools", convert_user_messages(q->valuestring), tools, answer, e);
}
