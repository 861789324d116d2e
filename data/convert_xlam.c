// convert_xlam.c: xLAM function-calling-60k rows to unified examples.
// Two input shapes:
//   * xLAM itself: {"id"?, "query": str, "tools": list or its JSON text, "answers": list or its
//     JSON text} (the Hugging Face file stores tools and answers as JSON strings);
//   * Hammer's SFT form of xLAM (xlam/masking_sft_data_example.json): {"instruction", "input",
//     "output"} where instruction holds "[BEGIN OF AVAILABLE TOOLS]\n<JSON list>\n[END OF
//     AVAILABLE TOOLS]" and "[BEGIN OF QUERY]\n<query>\n[END OF QUERY]", and output is the JSON
//     call list, possibly inside ``` fences. A non-empty input is appended to the query.
// Each row gives one single-turn example: messages = [the user query], tools as listed (xLAM's
// flat parameter maps are kept as they are, as Tool-N1 does), answer = the calls. Tool-N1
// applies no filter to xLAM; the generic ones (convert.h) only catch broken rows.
// ToolAlpaca (Hammer's single-turn form, toolalpaca/toolalpaca.json) has the xLAM row shape
// {query, tools, answers} and goes through the same code (convert_toolalpaca_record); its
// parameter maps ({p: {type, description, required}}) are kept as they are.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pyjson.h"
#include "data/convert.h"
#include "data/example.h"

// The trimmed text between open and close markers in s, malloc'd; NULL if absent.
static char *between(const char *s, const char *open, const char *close) {
    const char *a = strstr(s, open);
    if (!a) return NULL;
    a += strlen(open);
    const char *b = strstr(a, close);
    return b ? convert_dup_trimmed(a, b) : NULL;
}

// Hammer's output: optional ``` fences (with or without a language word) around JSON.
static cJSON *hammer_output_calls(const char *out) {
    const char *a = out;
    size_t n = strlen(out);
    while (n && (*a == ' ' || *a == '\n' || *a == '\r' || *a == '\t')) a++, n--;
    while (n && (a[n - 1] == ' ' || a[n - 1] == '\n' || a[n - 1] == '\r' || a[n - 1] == '\t')) n--;
    if (n >= 6 && !strncmp(a, "```", 3) && !strncmp(a + n - 3, "```", 3)) {
        const char *nl = memchr(a, '\n', n);
        if (!nl) return NULL;
        n -= (size_t)(nl + 1 - a) + 3;
        a = nl + 1;
    }
    cJSON *v = pyjson_parse(a, n, NULL);
    if (!v) return NULL;
    cJSON *calls = convert_read_calls(v, "arguments");
    cJSON_Delete(v);
    return calls;
}

static int finish_row(convert_run *r, char *query, cJSON *tools, cJSON *answer, const cJSON *rec, size_t index,
                      const char *prefix, const char *source, trl_err *e);

int convert_xlam_record(convert_run *r, const cJSON *rec, size_t index, trl_err *e) {
    convert_counts *c = r->counts;
    if (!cJSON_IsObject(rec)) {
        convert_count(c, "malformed_row", 1);
        return TRL_OK;
    }
    const cJSON *instr = cJSON_GetObjectItemCaseSensitive(rec, "instruction");
    if (!instr) return convert_query_row(r, rec, index, "xlam", "xlam", e);
    char *query = NULL, *tools_text = NULL;
    cJSON *tools = NULL, *answer = NULL;
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(rec, "output");
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(rec, "input");
    if (!cJSON_IsString(instr) || !cJSON_IsString(out)) {
        convert_count(c, "malformed_row", 1);
        return TRL_OK;
    }
    query = between(instr->valuestring, "[BEGIN OF QUERY]", "[END OF QUERY]");
    tools_text = between(instr->valuestring, "[BEGIN OF AVAILABLE TOOLS]", "[END OF AVAILABLE TOOLS]");
    if (!query || !tools_text || !query[0]) {
        free(query);
        free(tools_text);
        convert_count(c, "malformed_row", 1);
        return TRL_OK;
    }
    if (cJSON_IsString(in) && in->valuestring[0]) {
        size_t ql = strlen(query), il = strlen(in->valuestring);
        char *q2 = realloc(query, ql + il + 2);
        if (!q2) {
            free(query);
            free(tools_text);
            return trl_errf(e, "out of memory");
        }
        query = q2;
        query[ql] = '\n';
        memcpy(query + ql + 1, in->valuestring, il + 1);
    }
    convert_count(c, "samples", 1);
    cJSON tt;
    memset(&tt, 0, sizeof(tt));
    tt.type = cJSON_String;
    tt.valuestring = tools_text;
    tools = convert_wrap_tools(&tt);
    free(tools_text);
    if (tools) answer = hammer_output_calls(out->valuestring);
    return finish_row(r, query, tools, answer, rec, index, "xlam", "xlam", e);
}

// Filters and emits one single-turn row (takes query, tools and answer; NULL tools: no_tools,
// NULL answer: unparseable_call).
static int finish_row(convert_run *r, char *query, cJSON *tools, cJSON *answer, const cJSON *rec, size_t index,
                      const char *prefix, const char *source, trl_err *e) {
    const char *drop = !tools ? "no_tools" : !answer ? "unparseable_call"
                       : convert_unknown_names(answer, tools, NULL) ? "unknown_tool"
                                                                     : NULL;
    cJSON *msgs = convert_user_messages(query);
    free(query);
    char id[128];
    const cJSON *rid = cJSON_GetObjectItemCaseSensitive(rec, "id");
    if (cJSON_IsString(rid) && rid->valuestring[0])
        snprintf(id, sizeof(id), "%s-%.80s", prefix, rid->valuestring);
    else if (cJSON_IsRaw(rid) || cJSON_IsNumber(rid))
        snprintf(id, sizeof(id), "%s-%.0f", prefix, pyjson_number(rid));
    else
        snprintf(id, sizeof(id), "%s-%zu", prefix, index);
    return convert_emit_sample(r, drop, id, source, msgs, tools, answer, e);
}

int convert_query_row(convert_run *r, const cJSON *rec, size_t index, const char *prefix, const char *source,
                      trl_err *e) {
    convert_counts *c = r->counts;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(rec, "query");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rec, "tools");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(rec, "answers");
    if (!cJSON_IsObject(rec) || !cJSON_IsString(q) || !q->valuestring[0] || !t || !a) {
        convert_count(c, "malformed_row", 1);
        return TRL_OK;
    }
    convert_count(c, "samples", 1);
    char *query = strdup(q->valuestring);
    if (!query) return trl_errf(e, "out of memory");
    cJSON *tools = convert_wrap_tools(t);
    cJSON *answer = tools ? convert_read_calls(a, "arguments") : NULL;
    return finish_row(r, query, tools, answer, rec, index, prefix, source, e);
}

// ToolAlpaca in Hammer's single-turn form (toolalpaca/toolalpaca.json): the xLAM row shape.
int convert_toolalpaca_record(convert_run *r, const cJSON *rec, size_t index, trl_err *e) {
    return convert_query_row(r, rec, index, "toolalpaca", "toolalpaca", e);
}
