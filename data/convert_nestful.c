// convert_nestful.c: NESTFUL rows (nestful/data/**/<name>-data.json) to unified examples; the
// tools come from the side file <name>-spec.json.
//   row      {"input": "...", "output": [{"name", "arguments", "label": "var1"}, ...,
//            {"name": "var_result", "arguments": {...}}]}: a sequence whose later arguments
//            name earlier outputs ("$var1.distance$"); "var_result" only assembles the final
//            result and is not a tool.
//   answer   the first step: every call none of whose argument strings names an earlier output
//            ("$var"); the first call of every shared row is one. Later calls are cut
//            (rows_cut, dependent_calls_cut).
//   tools    the tools the whole sequence calls (so the later steps' tools are listed too), then
//            up to 3 more from the spec as distractors, picked by the row index (deterministic).
//            A spec entry's parameter maps (parameters, query_parameters, path_parameters,
//            arguments: {p: {type?, description, required, allowed_values?, default_value?}})
//            become one JSON Schema: properties keep type (default "string"), description and the
//            other schema words; allowed_values (non-empty) -> enum, default_value -> default;
//            required = the parameters marked required.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pyjson.h"
#include "data/convert.h"
#include "data/example.h"

#define NESTFUL_DISTRACTORS 3

static int names_output(const char *s) { return strstr(s, "$var") != NULL; }

static const char *const PARAM_MAPS[] = {"parameters", "query_parameters", "path_parameters", "arguments"};

// One parameter description as a JSON Schema property.
static cJSON *nestful_property(const cJSON *d) {
    cJSON *p = cJSON_CreateObject();
    if (!p) return NULL;
    if (!cJSON_GetObjectItemCaseSensitive(d, "type") && !cJSON_AddStringToObject(p, "type", "string")) goto fail;
    for (const cJSON *k = cJSON_IsObject(d) ? d->child : NULL; k; k = k->next) {
        const char *key = k->string;
        if (!strcmp(key, "required") || !strcmp(key, "optional")) continue;
        if (!strcmp(key, "allowed_values") || !strcmp(key, "possible_values")) {
            if (!cJSON_IsArray(k) || !k->child || cJSON_GetObjectItemCaseSensitive(p, "enum")) continue;
            key = "enum";
        } else if (!strcmp(key, "default_value")) {
            key = "default";
        }
        if (!pyjson_set(p, key, pyjson_copy(k))) goto fail;
    }
    return p;
fail:
    cJSON_Delete(p);
    return NULL;
}

static cJSON *nestful_tool(const cJSON *spec) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(spec, "name");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(spec, "description");
    if (!cJSON_IsString(n) || !n->valuestring[0]) return NULL;
    cJSON *props = cJSON_CreateObject(), *req = cJSON_CreateArray();
    int ok = props && req;
    for (size_t i = 0; ok && i < sizeof(PARAM_MAPS) / sizeof(PARAM_MAPS[0]); i++) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(spec, PARAM_MAPS[i]);
        for (const cJSON *p = cJSON_IsObject(m) ? m->child : NULL; ok && p; p = p->next) {
            if (cJSON_GetObjectItemCaseSensitive(props, p->string)) continue;
            cJSON *prop = nestful_property(p);
            ok = prop && cJSON_AddItemToObject(props, p->string, prop);
            if (!ok) cJSON_Delete(prop);
            if (ok && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "required")))
                ok = cJSON_AddItemToArray(req, cJSON_CreateString(p->string));
        }
    }
    if (!ok) {
        cJSON_Delete(props);
        cJSON_Delete(req);
        return NULL;
    }
    return example_make_tool(n->valuestring, cJSON_IsString(d) ? d->valuestring : NULL, props, req);
}

static const cJSON *spec_find(const cJSON *side, const char *name) {
    for (const cJSON *t = cJSON_IsArray(side) ? side->child : NULL; t; t = t->next) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name)) return t;
    }
    return NULL;
}

// Adds the spec's tool called name unless listed already. 0 when out of memory.
static int add_tool(cJSON *tools, const cJSON *spec) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(spec, "name");
    if (!cJSON_IsString(n) || example_has_tool(tools, n->valuestring)) return 1;
    return pyjson_append(tools, nestful_tool(spec));
}

int convert_nestful_record(convert_run *r, const cJSON *rec, size_t index, trl_err *e) {
    convert_counts *c = r->counts;
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(rec, "input");
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(rec, "output");
    if (!cJSON_IsString(in) || !in->valuestring[0] || !cJSON_IsArray(out)) {
        convert_count(c, "malformed_row", 1);
        return TRL_OK;
    }
    convert_count(c, "samples", 1);
    if (!cJSON_IsArray(r->side) || !r->side->child) {
        convert_count(c, "no_tools", 1);
        return TRL_OK;
    }
    cJSON *answer = cJSON_CreateArray(), *tools = cJSON_CreateArray();
    int oom = !answer || !tools, bad = 0, cut = 0, unknown = 0;
    for (const cJSON *k = out->child; !oom && !bad && k; k = k->next) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(k, "name");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(k, "arguments");
        if (!cJSON_IsString(n) || !n->valuestring[0] || !cJSON_IsObject(a)) {
            bad = 1;
            break;
        }
        if (!strcmp(n->valuestring, "var_result")) continue;
        const cJSON *spec = spec_find(r->side, n->valuestring);
        if (spec)
            oom = !add_tool(tools, spec);
        else
            unknown = 1;
        oom = !convert_add_first_step(answer, n->valuestring, a, names_output, &cut);
    }
    // Distractors: spec entries (index*7 + j*11) mod n, skipping tools already listed.
    int nspec = cJSON_GetArraySize(r->side), added = 0;
    for (int j = 0; !oom && !bad && j < 4 * NESTFUL_DISTRACTORS && added < NESTFUL_DISTRACTORS; j++) {
        const cJSON *spec = cJSON_GetArrayItem(r->side, (int)((index * 7 + (size_t)j * 11) % (size_t)nspec));
        int before = cJSON_GetArraySize(tools);
        oom = !add_tool(tools, spec);
        added += cJSON_GetArraySize(tools) > before;
    }
    const char *drop = oom ? NULL : bad ? "unparseable_call" : !answer->child ? (cut ? "dependent_only" : "empty_call")
                                : (unknown && convert_unknown_names(answer, tools, NULL)) ? "unknown_tool"
                                                                                          : NULL;
    if (oom) {
        cJSON_Delete(answer);
        cJSON_Delete(tools);
        return trl_errf(e, "out of memory");
    }
    if (unknown && !drop) convert_count(c, "later_calls_unknown_tool", 1);
    if (cut && !drop) {
        convert_count(c, "rows_cut", 1);
        convert_count(c, "dependent_calls_cut", cut);
    }
    char rid[160];
    snprintf(rid, sizeof(rid), "nestful-%.100s-%zu", r->stem, index);
    return convert_emit_sample(r, drop, rid, "nestful", convert_user_messages(in->valuestring), tools, answer, e);
}
