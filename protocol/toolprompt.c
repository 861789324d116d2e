// toolprompt.c: renders the Tool-N1 prompt (see toolprompt.h) over ChatML.
#include "protocol/toolprompt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pyjson.h"
#include "base/strbuf.h"
#include "protocol/chat.h"
#include "protocol/tags.h"

static const char *SYS_HEAD =
    "You are an expert in composing functions. You are given a question and a set of possible functions. Based on "
    "the question, you will need to make one or more function/tool calls to achieve the purpose. If none of the "
    "function can be used, point it out. If the given question lacks the parameters required by the function, also "
    "point it out. You should only return the function call in tools call sections. Here is a list of functions in "
    "JSON format that you can invoke:\n"
    "# Tool\n\nHere is a list of functions in JSON format that you can invoke:\n\n" TAG_TOOLS "\n";
static const char *SYS_TAIL =
    "\n" TAG_TOOLS_END "\n\n"
    "In each action step, you MUST: \n"
    "1. Think about the reasoning process in the mind and enclosed your reasoning within <think> </think> XML tags.\n"
    "2. Then, provide a json object with function names and arguments within <tool_call></tool_call> XML tags. i.e., "
    "<tool_call>[{\"name\": <function-name>, \"arguments\": <args-json-object>}, {\"name\": <function-name2>, "
    "\"arguments\": <args-json-object2>}, ...]</tool_call>\n"
    "3. Make sure both the reasoning and the tool call steps are included together in one single reply.\n"
    "A complete reply example is: <think>To address the query, I need to send the email to Bob and then buy the "
    "banana through walmart. </think> <tool_call> [{\"name\": \"email\", \"arguments\": {\"receiver\": \"Bob\", "
    "\"content\": \"I will bug banana through walmart\"}}, {\"name\": \"walmart\", \"arguments\": {\"input\": "
    "\"banana\"}}]</tool_call>. \n"
    "Please make sure the type of the arguments is correct. ";

// Appends json.dumps(v) (Python's defaults: ", " / ": " separators, ensure_ascii) through the
// project's one Python-compatible writer, base/pyjson.c, so tool lists and calls print exactly as
// the training data's json.dumps does (1.0 stays 1.0, 0.1 stays 0.1).
static void add_pydumps(strbuf *b, const cJSON *v) {
    char *s = pyjson_dump(v, PYJSON_ASCII);
    if (!s) {
        b->oom = 1;
        return;
    }
    strbuf_adds(b, s);
    free(s);
}

static char *system_text(const cJSON *tools, const char *user_system, const char *instruction) {
    strbuf b = {0};
    strbuf_adds(&b, "");
    if (user_system && *user_system) {
        strbuf_adds(&b, user_system);
        strbuf_adds(&b, "\n\n");
    }
    strbuf_adds(&b, SYS_HEAD);
    int first = 1;
    for (const cJSON *t = tools ? tools->child : NULL; t; t = t->next) {
        if (!first) strbuf_adds(&b, "\n");
        first = 0;
        add_pydumps(&b, t);
    }
    strbuf_adds(&b, SYS_TAIL);
    if (instruction && *instruction) strbuf_adds(&b, instruction);
    return strbuf_take(&b);
}

char *toolprompt_system(const cJSON *tools, const char *user_system) { return system_text(tools, user_system, NULL); }

// An assistant turn: its text, then its calls. Tool-N1: one <tool_call>[…]</tool_call> block
// after a space; Hermes (Qwen2.5's template): one "<tool_call>\n{"name": …, "arguments": …}\n
// </tool_call>" block per call, each after a newline (none before the first when there is no text).
static char *assistant_text(toolprompt_style style, const toolprompt_msg *m) {
    strbuf b = {0};
    strbuf_adds(&b, m->content ? m->content : "");
    int has_text = m->content && *m->content;
    if (!m->tool_calls || cJSON_GetArraySize(m->tool_calls) == 0) return strbuf_take(&b);
    if (style == TOOLPROMPT_TOOLN1) {
        if (has_text) strbuf_adds(&b, " ");
        strbuf_adds(&b, TAG_TOOL_CALL);
        add_pydumps(&b, m->tool_calls);
        strbuf_adds(&b, TAG_TOOL_CALL_END);
        return strbuf_take(&b);
    }
    for (const cJSON *c = m->tool_calls->child; c; c = c->next) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(c, "name");
        char *args = pyjson_dump(cJSON_GetObjectItemCaseSensitive(c, "arguments"), 0);  // Jinja's tojson
        strbuf_adds(&b, has_text || c != m->tool_calls->child ? "\n" TAG_TOOL_CALL "\n{\"name\": \"" : TAG_TOOL_CALL "\n{\"name\": \"");
        strbuf_adds(&b, cJSON_IsString(nm) ? nm->valuestring : "");
        strbuf_adds(&b, "\", \"arguments\": ");
        if (args) strbuf_adds(&b, args);
        else b.oom = 1;
        strbuf_adds(&b, "}\n" TAG_TOOL_CALL_END);
        free(args);
    }
    return strbuf_take(&b);
}

// Consecutive tool results msgs[i..) as one user turn of <tool_response> blocks (as Qwen2.5's
// template merges them); *next gets the index after them.
static char *results_text(const toolprompt_msg *msgs, int i, int n, int *next) {
    strbuf b = {0};
    strbuf_adds(&b, "");
    int j = i;
    for (; j < n && !strcmp(msgs[j].role, "tool"); j++) {
        if (j > i) strbuf_adds(&b, "\n");
        strbuf_adds(&b, TAG_TOOL_RESPONSE "\n");
        strbuf_adds(&b, msgs[j].content ? msgs[j].content : "");
        strbuf_adds(&b, "\n" TAG_TOOL_RESPONSE_END);
    }
    *next = j;
    return strbuf_take(&b);
}

// The whole chat: the system turn (owned system text, or NULL for the template's default),
// then msgs[start..n) with results merged and calls in the style's form, as ChatML.
static char *render_turns(toolprompt_style style, char *system, const char *jinja_template, const toolprompt_msg *msgs,
                          int start, int n) {
    chat_msg *cm = calloc((size_t)n + 1, sizeof(*cm));
    char **owned = calloc((size_t)n + 2, sizeof(*owned));
    char *out = NULL;
    int k = 0, no = 0, ok = cm && owned;
    if (ok && system) cm[k++] = (chat_msg){"system", owned[no++] = system};
    else free(system);
    for (int i = start; ok && i < n; i++) {
        const toolprompt_msg *m = &msgs[i];
        const char *role = m->role;
        char *text = NULL;
        if (!strcmp(role, "tool")) {
            text = results_text(msgs, i, n, &i), role = "user";
            i--;
        } else if (!strcmp(role, "assistant")) {
            text = assistant_text(style, m);
        } else {
            cm[k++] = (chat_msg){role, m->content ? m->content : ""};
            continue;
        }
        ok = text != NULL;
        cm[k++] = (chat_msg){role, owned[no++] = text};
    }
    if (ok) out = chat_render(jinja_template, cm, k, 1);
    for (int i = 0; owned && i < no; i++) free(owned[i]);
    free(owned);
    free(cm);
    return out;
}

char *toolprompt_render(const cJSON *tools, const toolprompt_msg *msgs, int n) {
    return toolprompt_render_ex(tools, NULL, NULL, msgs, n);
}

char *toolprompt_render_ex(const cJSON *tools, const char *instruction, const char *jinja_template,
                           const toolprompt_msg *msgs, int n) {
    int start = 0;
    const char *user_sys = NULL;
    if (tools && n > 0 && !strcmp(msgs[0].role, "system")) {
        user_sys = msgs[0].content;
        start = 1;
    }
    char *system = NULL;
    if (tools && !(system = system_text(tools, user_sys, instruction))) return NULL;
    return render_turns(TOOLPROMPT_TOOLN1, system, tools ? NULL : jinja_template, msgs, start, n);
}

int toolprompt_style_parse(const char *name, toolprompt_style *out) {
    if (!strcmp(name, "tooln1")) *out = TOOLPROMPT_TOOLN1;
    else if (!strcmp(name, "hermes")) *out = TOOLPROMPT_HERMES;
    else return -1;
    return 0;
}

const char *toolprompt_style_name(toolprompt_style s) { return s == TOOLPROMPT_HERMES ? "hermes" : "tooln1"; }

// Qwen2.5's template, rendered without a Jinja engine: its system turn (the caller's system
// text or Qwen's default, then "# Tools" with one tojson line per tool), then the same turns.
static char *render_hermes(const cJSON *tools, const toolprompt_msg *msgs, int n) {
    strbuf b = {0};
    int start = n > 0 && !strcmp(msgs[0].role, "system");
    strbuf_adds(&b, start ? (msgs[0].content ? msgs[0].content : "") : TOOLPROMPT_QWEN_SYSTEM);
    if (tools && cJSON_GetArraySize(tools) > 0) {
        strbuf_adds(&b, "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
                        "You are provided with function signatures within <tools></tools> XML tags:\n" TAG_TOOLS);
        for (const cJSON *t = tools->child; t; t = t->next) {
            char *line = pyjson_dump(t, 0);  // Jinja's tojson: json.dumps(ensure_ascii=False)
            strbuf_adds(&b, "\n");
            if (line) strbuf_adds(&b, line);
            else b.oom = 1;
            free(line);
        }
        strbuf_adds(&b, "\n" TAG_TOOLS_END "\n\nFor each function call, return a json object with function name and "
                        "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "
                        "<function-name>, \"arguments\": <args-json-object>}\n</tool_call>");
    }
    char *system = strbuf_take(&b);
    return system ? render_turns(TOOLPROMPT_HERMES, system, NULL, msgs, start, n) : NULL;
}

char *toolprompt_render_style(toolprompt_style style, const cJSON *tools, const toolprompt_msg *msgs, int n) {
    return style == TOOLPROMPT_HERMES ? render_hermes(tools, msgs, n) : toolprompt_render(tools, msgs, n);
}
