// convert_toolace.c: ToolACE / ShareGPT dialogues to unified examples, one per call turn, with
// detection and repair of the truncated function names of sharegpt_func_fixed.json.
//
// Repair rule (only with repair enabled, the default): the uploader of sharegpt_func_fixed.json
// kept only the last word of each called function's name ("Market Trends API" -> "API",
// "/madlibs-diceware" -> "diceware"). A call name that is not a tool is matched against the last
// run of letters, digits and '_' of every tool name. One candidate: repaired. Several: the
// observation that follows the call turn is a list of {"name": <real tool name>, "results"} in
// call order; if it has as many entries as the turn has calls and entry k names one of the
// candidates, call k is repaired to it. Otherwise the sample is dropped (ambiguous_name), and a
// name with no candidate is dropped as unknown_tool. Repairs are counted (repaired_names,
// repaired_by_observation, repaired_samples). Truncated argument values (the same defect cuts
// values at ')' or ',') cannot be detected in general; calls that lack a parameter the tool
// marks required are counted (calls_missing_required) as a hint, not filtered.
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pyjson.h"
#include "data/convert.h"
#include "data/example.h"
#include "data/pycall.h"

#define TOOLACE_MARKER "JSON format that you can invoke:"

typedef enum { TURN_USER, TURN_ASSISTANT, TURN_TOOL, TURN_CALL, TURN_SYSTEM } turn_kind;

typedef struct {
    turn_kind kind;
    const char *text;      // the turn's value
    cJSON *calls;          // TURN_CALL: parsed calls, NULL if unparseable
    int unresolved;        // calls whose names are still not tools after repair
    int ambiguous;         // of those, names with several candidates
    int repaired;          // names repaired in this turn
    int repaired_by_obs;   // of those, decided by the observation
} turn;

// The tool list: the first JSON value after the marker in the system prompt, else "tools".
static cJSON *toolace_tools(const cJSON *rec) {
    const cJSON *sys = cJSON_GetObjectItemCaseSensitive(rec, "system");
    if (cJSON_IsString(sys)) {
        const char *m = strstr(sys->valuestring, TOOLACE_MARKER);
        if (m) {
            const char *start = m + strlen(TOOLACE_MARKER);
            size_t pos = 0;
            cJSON *list = pyjson_parse_next(start, strlen(start), &pos, NULL);
            cJSON *tools = list ? convert_wrap_tools(list) : NULL;
            cJSON_Delete(list);
            if (tools && cJSON_GetArraySize(tools) > 0) return tools;
            cJSON_Delete(tools);
        }
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rec, "tools");
    cJSON *tools = t ? convert_wrap_tools(t) : NULL;
    if (tools && cJSON_GetArraySize(tools) > 0) return tools;
    cJSON_Delete(tools);
    return NULL;
}

// The last run of [A-Za-z0-9_] in s (what the defective conversion kept), into out.
static void last_word(const char *s, char *out, size_t outsz) {
    size_t n = strlen(s), end = n;
    while (end > 0 && !(isalnum((unsigned char)s[end - 1]) || s[end - 1] == '_')) end--;
    size_t st = end;
    while (st > 0 && (isalnum((unsigned char)s[st - 1]) || s[st - 1] == '_')) st--;
    size_t l = end - st;
    if (l >= outsz) l = outsz - 1;
    memcpy(out, s + st, l);
    out[l] = 0;
}

static const char *tool_name(const cJSON *tool) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(example_tool_function(tool), "name");
    return cJSON_IsString(n) ? n->valuestring : "";
}

// Repairs the names of one call turn in place; obs is the following observation text or NULL.
static void repair_turn(turn *t, const cJSON *tools, const char *obs) {
    cJSON *obs_list = NULL;
    if (obs) {
        obs_list = pyjson_parse(obs, strlen(obs), NULL);
        if (!cJSON_IsArray(obs_list) || cJSON_GetArraySize(obs_list) != cJSON_GetArraySize(t->calls)) {
            cJSON_Delete(obs_list);
            obs_list = NULL;
        }
    }
    int k = 0;
    for (cJSON *c = t->calls->child; c; c = c->next, k++) {
        cJSON *nm = cJSON_GetObjectItemCaseSensitive(c, "name");
        if (example_has_tool(tools, nm->valuestring)) continue;
        const char *cand = NULL;
        int ncand = 0;
        char w[256];
        for (const cJSON *tl = tools->child; tl; tl = tl->next) {
            last_word(tool_name(tl), w, sizeof(w));
            if (w[0] && !strcmp(w, nm->valuestring)) {
                ncand++;
                cand = tool_name(tl);
            }
        }
        if (ncand > 1) {
            cand = NULL;
            const cJSON *on = obs_list ? cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(obs_list, k), "name") : NULL;
            if (cJSON_IsString(on) && example_has_tool(tools, on->valuestring)) {
                last_word(on->valuestring, w, sizeof(w));
                if (!strcmp(w, nm->valuestring)) cand = on->valuestring;
            }
            if (!cand) {
                t->unresolved++;
                t->ambiguous++;
                continue;
            }
            t->repaired_by_obs++;
        }
        if (!cand) {
            t->unresolved++;
            continue;
        }
        if (!cJSON_SetValuestring(nm, cand)) {
            t->unresolved++;
            continue;
        }
        t->repaired++;
    }
    cJSON_Delete(obs_list);
}

static int classify(const char *from, const char *value, turn *t) {
    memset(t, 0, sizeof(*t));
    t->text = value;
    if (!strcmp(from, "human") || !strcmp(from, "user")) {
        t->kind = TURN_USER;
    } else if (!strcmp(from, "observation") || !strcmp(from, "tool") || !strcmp(from, "function")) {
        t->kind = TURN_TOOL;
    } else if (!strcmp(from, "system")) {
        t->kind = TURN_SYSTEM;
    } else if (!strcmp(from, "function_call")) {
        t->kind = TURN_CALL;
        cJSON tmp;
        memset(&tmp, 0, sizeof(tmp));
        tmp.type = cJSON_String;
        tmp.valuestring = (char *)value;
        t->calls = convert_read_calls(&tmp, "arguments");
    } else if (!strcmp(from, "gpt") || !strcmp(from, "assistant")) {
        // Tool-N1 turns an assistant text "[f(...)]" that parses into a call turn.
        size_t n = strlen(value);
        const char *s = value;
        while (n && isspace((unsigned char)*s)) {
            s++;
            n--;
        }
        while (n && isspace((unsigned char)s[n - 1])) n--;
        cJSON *calls = (n >= 2 && s[0] == '[' && s[n - 1] == ']') ? pycall_parse_list(s, n) : NULL;
        if (calls) {
            t->kind = TURN_CALL;
            t->calls = calls;
        } else {
            t->kind = TURN_ASSISTANT;
        }
    } else {
        return 0;
    }
    return 1;
}

static cJSON *context_messages(const turn *turns, int upto, convert_counts *c) {
    cJSON *msgs = cJSON_CreateArray();
    if (!msgs) return NULL;
    for (int j = 0; j < upto; j++) {
        const turn *t = &turns[j];
        cJSON *m = NULL;
        switch (t->kind) {
            case TURN_USER: m = example_make_message("user", t->text); break;
            case TURN_TOOL: m = example_make_message("tool", t->text); break;
            case TURN_SYSTEM: m = example_make_message("system", t->text); break;
            case TURN_ASSISTANT: m = example_make_message("assistant", t->text); break;
            case TURN_CALL:
                if (t->calls && cJSON_GetArraySize(t->calls) > 0) {
                    m = example_make_message("assistant", NULL);
                    cJSON *tc = pyjson_copy(t->calls);
                    if (m && (!tc || !cJSON_AddItemToObject(m, "tool_calls", tc))) {
                        cJSON_Delete(tc);
                        cJSON_Delete(m);
                        m = NULL;
                    }
                    if (t->unresolved) convert_count(c, "context_calls_unrepaired", 1);
                } else {
                    m = example_make_message("assistant", t->text);  // kept as the text it was
                    convert_count(c, t->calls ? "context_calls_empty" : "context_calls_unparseable", 1);
                }
                break;
        }
        if (!m || !cJSON_AddItemToArray(msgs, m)) {
            cJSON_Delete(m);
            cJSON_Delete(msgs);
            return NULL;
        }
    }
    return msgs;
}

// Counts calls lacking an argument that their tool's JSON schema marks required.
static void count_missing_required(const cJSON *answer, const cJSON *tools, convert_counts *c) {
    for (const cJSON *call = answer->child; call; call = call->next) {
        const char *name = cJSON_GetObjectItemCaseSensitive(call, "name")->valuestring;
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(call, "arguments");
        for (const cJSON *t = tools->child; t; t = t->next) {
            if (strcmp(tool_name(t), name)) continue;
            const cJSON *req = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(example_tool_function(t), "parameters"), "required");
            for (const cJSON *r = cJSON_IsArray(req) ? req->child : NULL; r; r = r->next)
                if (cJSON_IsString(r) && !cJSON_GetObjectItemCaseSensitive(args, r->valuestring)) {
                    convert_count(c, "calls_missing_required", 1);
                    break;
                }
            break;
        }
    }
}

int convert_toolace_record(convert_run *r, const cJSON *rec, size_t index, trl_err *e) {
    convert_counts *c = r->counts;
    const cJSON *conv = cJSON_GetObjectItemCaseSensitive(rec, "conversations");
    if (!cJSON_IsObject(rec) || !cJSON_IsArray(conv) || !conv->child) {
        convert_count(c, "malformed_row", 1);
        return TRL_OK;
    }
    int n = cJSON_GetArraySize(conv);
    turn *turns = calloc((size_t)n, sizeof(turn));
    if (!turns) return trl_errf(e, "out of memory");
    int ok = 1, ncalls = 0;
    int k = 0;
    for (const cJSON *t = conv->child; t; t = t->next, k++) {
        const cJSON *from = cJSON_GetObjectItemCaseSensitive(t, "from");
        const cJSON *val = cJSON_GetObjectItemCaseSensitive(t, "value");
        if (!cJSON_IsString(from) || !cJSON_IsString(val) || !classify(from->valuestring, val->valuestring, &turns[k])) {
            ok = 0;
            break;
        }
        ncalls += turns[k].kind == TURN_CALL;
    }
    int rc = TRL_OK;
    cJSON *tools = NULL;
    if (!ok) {
        convert_count(c, "malformed_row", 1);
        goto done;
    }
    if (!ncalls) {
        convert_count(c, "dialogs_without_calls", 1);
        goto done;
    }
    tools = toolace_tools(rec);
    if (!tools) {
        convert_count(c, "samples", ncalls);
        convert_count(c, "no_tools", ncalls);
        goto done;
    }
    for (int j = 0; j < n; j++) {
        turn *t = &turns[j];
        if (t->kind != TURN_CALL || !t->calls) continue;
        if (!r->opts->no_repair)
            repair_turn(t, tools, j + 1 < n && turns[j + 1].kind == TURN_TOOL ? turns[j + 1].text : NULL);
        else
            t->unresolved = convert_unknown_names(t->calls, tools, NULL);
    }
    for (int j = 0; j < n; j++) {
        turn *t = &turns[j];
        if (t->kind != TURN_CALL) continue;
        convert_count(c, "samples", 1);
        if (!t->calls) {
            convert_count(c, "unparseable_call", 1);
            continue;
        }
        if (!t->calls->child) {
            convert_count(c, "empty_call", 1);
            continue;
        }
        if (t->unresolved) {
            convert_count(c, t->ambiguous ? "ambiguous_name" : "unknown_tool", 1);
            continue;
        }
        cJSON *msgs = context_messages(turns, j, c);
        count_missing_required(t->calls, tools, c);
        if (t->repaired) {
            convert_count(c, "repaired_names", t->repaired);
            convert_count(c, "repaired_samples", 1);
            if (t->repaired_by_obs) convert_count(c, "repaired_by_observation", t->repaired_by_obs);
        }
        const char *source = cJSON_GetArraySize(msgs) >= 2 ? "toolace_multiple_turn" : "toolace_single_turn";
        char id[64];
        snprintf(id, sizeof(id), "toolace-%zu-%d", index, j);
        if (convert_emit_sample(r, NULL, id, source, msgs, pyjson_copy(tools), pyjson_copy(t->calls), e)) {
            rc = TRL_ERR;
            goto done;
        }
    }
done:
    for (int j = 0; j < n; j++) cJSON_Delete(turns[j].calls);
    free(turns);
    cJSON_Delete(tools);
    return rc;
}
