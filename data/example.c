// example.c: validation, parsing and building of unified training examples (see example.h).
#include "data/example.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pyjson.h"

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

// How a JSON value is named in error messages.
static const char *type_word(const cJSON *v) {
    if (!v) return "missing";
    switch (pyjson_typeof(v)) {
        case PYJ_NONE: return "null";
        case PYJ_BOOL: return "a boolean";
        case PYJ_INT:
        case PYJ_FLOAT: return "a number";
        case PYJ_STR: return "a string";
        case PYJ_LIST: return "a list";
        case PYJ_DICT: return "an object";
        default: return "an invalid value";
    }
}

static int nonempty_string(const cJSON *v) { return cJSON_IsString(v) && v->valuestring[0] != 0; }

const cJSON *example_tool_function(const cJSON *tool) {
    const cJSON *f = get(tool, "function");
    return cJSON_IsObject(f) ? f : NULL;
}

int example_has_tool(const cJSON *tools, const char *name) {
    if (!name) return 0;
    for (const cJSON *t = cJSON_IsArray(tools) ? tools->child : NULL; t; t = t->next) {
        const cJSON *n = get(example_tool_function(t), "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name)) return 1;
    }
    return 0;
}

// Validates a list of calls; where names the field ("answer" or "messages[3].tool_calls").
static int validate_calls(const cJSON *calls, const char *where, const cJSON *tools, int check_tools, trl_err *e) {
    if (!cJSON_IsArray(calls)) return trl_errf(e, "%s: expected a list, got %s", where, type_word(calls));
    int i = 0;
    for (const cJSON *c = calls->child; c; c = c->next, i++) {
        if (!cJSON_IsObject(c)) return trl_errf(e, "%s[%d]: expected an object, got %s", where, i, type_word(c));
        const cJSON *n = get(c, "name");
        if (!nonempty_string(n))
            return trl_errf(e, "%s[%d].name: expected a non-empty string, got %s", where, i,
                            cJSON_IsString(n) ? "\"\"" : type_word(n));
        const cJSON *a = get(c, "arguments");
        if (!cJSON_IsObject(a))
            return trl_errf(e, "%s[%d].arguments: expected an object, got %s", where, i, type_word(a));
        if (check_tools && !example_has_tool(tools, n->valuestring))
            return trl_errf(e, "%s[%d].name: \"%.100s\" is not the name of any tool", where, i, n->valuestring);
    }
    return TRL_OK;
}

int example_validate(const cJSON *obj, trl_err *e) {
    if (!cJSON_IsObject(obj)) return trl_errf(e, "line: expected a JSON object, got %s", type_word(obj));
    const cJSON *id = get(obj, "id");
    if (!nonempty_string(id)) return trl_errf(e, "id: expected a non-empty string, got %s", type_word(id));
    const cJSON *src = get(obj, "source");
    if (!nonempty_string(src)) return trl_errf(e, "source: expected a non-empty string, got %s", type_word(src));

    const cJSON *tools = get(obj, "tools");
    if (!cJSON_IsArray(tools)) return trl_errf(e, "tools: expected a list, got %s", type_word(tools));
    int i = 0;
    for (const cJSON *t = tools->child; t; t = t->next, i++) {
        if (!cJSON_IsObject(t)) return trl_errf(e, "tools[%d]: expected an object, got %s", i, type_word(t));
        const cJSON *ty = get(t, "type");
        if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "function") != 0)
            return trl_errf(e, "tools[%d].type: expected \"function\"", i);
        const cJSON *f = get(t, "function");
        if (!cJSON_IsObject(f)) return trl_errf(e, "tools[%d].function: expected an object, got %s", i, type_word(f));
        const cJSON *n = get(f, "name");
        if (!nonempty_string(n))
            return trl_errf(e, "tools[%d].function.name: expected a non-empty string, got %s", i, type_word(n));
        const cJSON *d = get(f, "description");
        if (d && !cJSON_IsString(d))
            return trl_errf(e, "tools[%d].function.description: expected a string, got %s", i, type_word(d));
        const cJSON *p = get(f, "parameters");
        if (p && !cJSON_IsObject(p))
            return trl_errf(e, "tools[%d].function.parameters: expected an object, got %s", i, type_word(p));
    }

    const cJSON *msgs = get(obj, "messages");
    if (!cJSON_IsArray(msgs)) return trl_errf(e, "messages: expected a list, got %s", type_word(msgs));
    if (!msgs->child) return trl_errf(e, "messages: expected at least one message");
    int users = 0;
    i = 0;
    for (const cJSON *m = msgs->child; m; m = m->next, i++) {
        if (!cJSON_IsObject(m)) return trl_errf(e, "messages[%d]: expected an object, got %s", i, type_word(m));
        const cJSON *role = get(m, "role");
        if (!cJSON_IsString(role)) return trl_errf(e, "messages[%d].role: expected a string, got %s", i, type_word(role));
        const char *r = role->valuestring;
        int is_asst = !strcmp(r, "assistant");
        if (strcmp(r, "system") && strcmp(r, "user") && !is_asst && strcmp(r, "tool"))
            return trl_errf(e, "messages[%d].role: expected \"system\", \"user\", \"assistant\" or \"tool\", got \"%.40s\"", i,
                            r);
        users += !strcmp(r, "user");
        const cJSON *tc = get(m, "tool_calls");
        if (tc && !is_asst) return trl_errf(e, "messages[%d].tool_calls: only assistant messages may have tool calls", i);
        if (tc) {
            char where[64];
            snprintf(where, sizeof(where), "messages[%d].tool_calls", i);
            if (validate_calls(tc, where, tools, 0, e)) return TRL_ERR;
        }
        const cJSON *content = get(m, "content");
        int content_ok = cJSON_IsString(content) || (is_asst && tc && cJSON_GetArraySize(tc) > 0 &&
                                                     (!content || cJSON_IsNull(content)));
        if (!content_ok)
            return trl_errf(e, "messages[%d].content: expected a string%s, got %s", i,
                            is_asst ? " (or null when tool_calls is given)" : "", type_word(content));
    }
    if (!users) return trl_errf(e, "messages: expected at least one \"user\" message");

    const cJSON *answer = get(obj, "answer");
    return validate_calls(answer, "answer", tools, 1, e);
}

// One call of OpenAI's form {"id"?, "type": "function", "function": {"name", "arguments":
// "<JSON text of an object>"}} as {"name", "arguments": {...}}; a call already in the unified
// form is copied. NULL with a message naming where.
static cJSON *openai_call(const cJSON *c, const char *where, trl_err *e) {
    if (!cJSON_IsObject(c)) return trl_errf(e, "%s: expected an object, got %s", where, type_word(c)), NULL;
    const cJSON *fn = get(c, "function");
    if (!fn) {  // already {"name", "arguments"}: checked by example_validate
        cJSON *cp = pyjson_copy(c);
        if (!cp) trl_errf(e, "out of memory");
        return cp;
    }
    const cJSON *ty = get(c, "type");
    if (ty && (!cJSON_IsString(ty) || strcmp(ty->valuestring, "function")))
        return trl_errf(e, "%s.type: expected \"function\"", where), NULL;
    if (!cJSON_IsObject(fn)) return trl_errf(e, "%s.function: expected an object, got %s", where, type_word(fn)), NULL;
    const cJSON *n = get(fn, "name"), *a = get(fn, "arguments");
    if (!nonempty_string(n))
        return trl_errf(e, "%s.function.name: expected a non-empty string, got %s", where,
                        cJSON_IsString(n) ? "\"\"" : type_word(n)),
               NULL;
    cJSON *args = NULL;
    if (cJSON_IsString(a)) {
        args = pyjson_parse(a->valuestring, strlen(a->valuestring), NULL);
        if (!cJSON_IsObject(args)) {
            cJSON_Delete(args);
            return trl_errf(e, "%s.function.arguments: expected the JSON text of an object", where), NULL;
        }
    } else if (cJSON_IsObject(a)) {
        args = pyjson_copy(a);
    } else {
        return trl_errf(e, "%s.function.arguments: expected the JSON text of an object, got %s", where, type_word(a)),
               NULL;
    }
    cJSON *call = args ? example_make_call(n->valuestring, args) : NULL;
    if (!call) trl_errf(e, "out of memory");
    return call;
}

// A list of OpenAI-form calls in the unified form; NULL with a message.
static cJSON *openai_calls(const cJSON *tc, int msg, trl_err *e) {
    if (!cJSON_IsArray(tc))
        return trl_errf(e, "messages[%d].tool_calls: expected a list, got %s", msg, type_word(tc)), NULL;
    cJSON *out = cJSON_CreateArray();
    if (!out) return trl_errf(e, "out of memory"), NULL;
    int i = 0;
    for (const cJSON *c = tc->child; c; c = c->next, i++) {
        char where[64];
        snprintf(where, sizeof(where), "messages[%d].tool_calls[%d]", msg, i);
        cJSON *call = openai_call(c, where, e);
        if (!call || !cJSON_AddItemToArray(out, call)) {
            if (call) trl_errf(e, "out of memory");
            cJSON_Delete(call);
            cJSON_Delete(out);
            return NULL;
        }
    }
    return out;
}

// A row without "answer" is read in OpenAI's fine-tuning shape: {"messages": [..., the
// assistant's reply], "tools": [...]}. The reply is taken off the messages and its tool_calls
// become the answer ([] for a reply without calls); the tool_calls of earlier assistant
// messages are turned into the unified form too; a missing id becomes "line-<lineno>" (or,
// with lineno 0, "upload-<FNV-1a hash of the line>"), a missing source "upload". A row with
// "answer" is left as it is.
static int from_openai(cJSON *obj, const char *line, size_t len, long lineno, trl_err *e) {
    if (!cJSON_IsObject(obj) || get(obj, "answer")) return TRL_OK;
    cJSON *msgs = cJSON_GetObjectItemCaseSensitive(obj, "messages");
    if (!cJSON_IsArray(msgs) || !msgs->child) return TRL_OK;  // example_validate names the problem
    int n = cJSON_GetArraySize(msgs);
    cJSON *last = cJSON_GetArrayItem(msgs, n - 1);
    const cJSON *role = get(last, "role");
    if (!cJSON_IsString(role) || strcmp(role->valuestring, "assistant"))
        return trl_errf(e, "answer: missing, and the messages do not end with the assistant's reply (OpenAI's "
                           "fine-tuning shape)");
    if (n < 2) return trl_errf(e, "messages: expected at least one message before the assistant's reply");
    int i = 0;
    for (cJSON *m = msgs->child; m; m = m->next, i++) {
        const cJSON *tc = get(m, "tool_calls");
        if (!tc || cJSON_IsNull(tc)) {
            if (tc) cJSON_DeleteItemFromObjectCaseSensitive(m, "tool_calls");
            continue;
        }
        const cJSON *r = get(m, "role");
        if (!cJSON_IsString(r) || strcmp(r->valuestring, "assistant")) continue;  // example_validate says why
        cJSON *calls = openai_calls(tc, i, e);
        if (!calls) return TRL_ERR;
        if (!cJSON_ReplaceItemInObjectCaseSensitive(m, "tool_calls", calls)) {
            cJSON_Delete(calls);
            return trl_errf(e, "out of memory");
        }
    }
    cJSON *reply = cJSON_DetachItemFromArray(msgs, n - 1);
    cJSON *answer = cJSON_DetachItemFromObjectCaseSensitive(reply, "tool_calls");
    cJSON_Delete(reply);
    if (!answer) answer = cJSON_CreateArray();
    if (!answer || !cJSON_AddItemToObject(obj, "answer", answer)) {
        cJSON_Delete(answer);
        return trl_errf(e, "out of memory");
    }
    if (!get(obj, "id")) {
        char id[64];
        if (lineno > 0) {
            snprintf(id, sizeof(id), "line-%ld", lineno);
        } else {
            uint32_t h = 2166136261u;
            for (size_t k = 0; k < len; k++) h = (h ^ (unsigned char)line[k]) * 16777619u;
            snprintf(id, sizeof(id), "upload-%08x", (unsigned)h);
        }
        if (!cJSON_AddStringToObject(obj, "id", id)) return trl_errf(e, "out of memory");
    }
    if (!get(obj, "source") && !cJSON_AddStringToObject(obj, "source", "upload")) return trl_errf(e, "out of memory");
    return TRL_OK;
}

// Parses a line and reads it as a unified example (see from_openai); NULL with a message.
static cJSON *parse_line(const char *line, size_t len, long lineno, trl_err *e) {
    if (!line) return trl_errf(e, "line: empty"), NULL;
    trl_err pe;
    cJSON *obj = pyjson_parse(line, len, &pe);
    if (!obj) {
        size_t k = 0;
        while (k < len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r' || line[k] == '\n')) k++;
        if (k == len) return trl_errf(e, "line: empty"), NULL;
        return trl_errf(e, "line: invalid JSON (%s)", pe.msg), NULL;
    }
    if (from_openai(obj, line, len, lineno, e) || example_validate(obj, e)) {
        cJSON_Delete(obj);
        return NULL;
    }
    return obj;
}

int example_validate_line_at(const char *line, size_t len, long lineno, trl_err *e) {
    cJSON *obj = parse_line(line, len, lineno, e);
    cJSON_Delete(obj);
    return obj ? TRL_OK : TRL_ERR;
}

int example_validate_line(const char *line, size_t len, trl_err *e) { return example_validate_line_at(line, len, 0, e); }

void example_free(example *ex) {
    if (!ex) return;
    free(ex->id);
    free(ex->source);
    cJSON_Delete(ex->messages);
    cJSON_Delete(ex->tools);
    cJSON_Delete(ex->answer);
    memset(ex, 0, sizeof(*ex));
}

int example_parse_at(const char *line, size_t len, long lineno, example *ex, trl_err *e) {
    memset(ex, 0, sizeof(*ex));
    cJSON *obj = parse_line(line, len, lineno, e);
    if (!obj) return TRL_ERR;
    ex->id = strdup(get(obj, "id")->valuestring);
    ex->source = strdup(get(obj, "source")->valuestring);
    ex->messages = cJSON_DetachItemFromObjectCaseSensitive(obj, "messages");
    ex->tools = cJSON_DetachItemFromObjectCaseSensitive(obj, "tools");
    ex->answer = cJSON_DetachItemFromObjectCaseSensitive(obj, "answer");
    cJSON_Delete(obj);
    if (!ex->id || !ex->source) {
        example_free(ex);
        return trl_errf(e, "out of memory");
    }
    return TRL_OK;
}

int example_parse(const char *line, size_t len, example *ex, trl_err *e) { return example_parse_at(line, len, 0, ex, e); }

cJSON *example_build(const char *id, const char *source, cJSON *messages, cJSON *tools, cJSON *answer) {
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "id", id ? id : "") || !cJSON_AddStringToObject(o, "source", source ? source : "")) {
        cJSON_Delete(o);
        cJSON_Delete(messages);
        cJSON_Delete(tools);
        cJSON_Delete(answer);
        return NULL;
    }
    cJSON *parts[3] = {messages, tools, answer};
    const char *keys[3] = {"messages", "tools", "answer"};
    int ok = 1;
    for (int i = 0; i < 3; i++) {
        if (!parts[i]) parts[i] = cJSON_CreateArray();
        if (!ok || !parts[i] || !cJSON_AddItemToObject(o, keys[i], parts[i])) {
            cJSON_Delete(parts[i]);
            ok = 0;
        }
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static char *dump_example(const char *id, const char *source, const cJSON *messages, const cJSON *tools,
                          const cJSON *answer) {
    cJSON o;
    memset(&o, 0, sizeof(o));
    o.type = cJSON_Object;
    // Build a temporary object that borrows the parts; detached again before returning.
    cJSON *idn = cJSON_CreateString(id), *srcn = cJSON_CreateString(source);
    if (!idn || !srcn) {
        cJSON_Delete(idn);
        cJSON_Delete(srcn);
        return NULL;
    }
    cJSON *m = cJSON_CreateArrayReference(messages ? messages->child : NULL);
    cJSON *t = cJSON_CreateArrayReference(tools ? tools->child : NULL);
    cJSON *a = cJSON_CreateArrayReference(answer ? answer->child : NULL);
    char *out = NULL;
    if (m && t && a) {
        cJSON_AddItemToObject(&o, "id", idn);
        cJSON_AddItemToObject(&o, "source", srcn);
        cJSON_AddItemToObject(&o, "messages", m);
        cJSON_AddItemToObject(&o, "tools", t);
        cJSON_AddItemToObject(&o, "answer", a);
        out = pyjson_dump(&o, PYJSON_COMPACT);
        // Free our nodes; array references do not own their children.
        cJSON *c = o.child;
        while (c) {
            cJSON *next = c->next;
            c->next = c->prev = NULL;
            cJSON_Delete(c);
            c = next;
        }
        return out;
    }
    cJSON_Delete(idn);
    cJSON_Delete(srcn);
    cJSON_Delete(m);
    cJSON_Delete(t);
    cJSON_Delete(a);
    return NULL;
}

char *example_to_json(const example *ex) {
    return dump_example(ex->id, ex->source, ex->messages, ex->tools, ex->answer);
}

char *example_answer_json(const example *ex) { return pyjson_dump(ex->answer, 0); }

cJSON *example_wrap_tool(cJSON *fn) {
    cJSON *t = cJSON_CreateObject();
    if (!t || !cJSON_AddStringToObject(t, "type", "function") || !cJSON_AddItemToObject(t, "function", fn)) {
        cJSON_Delete(t);
        cJSON_Delete(fn);
        return NULL;
    }
    return t;
}

cJSON *example_make_tool(const char *name, const char *description, cJSON *properties, cJSON *required) {
    cJSON *fn = cJSON_CreateObject(), *params = cJSON_CreateObject();
    int ok = fn && params && properties && required && cJSON_AddStringToObject(fn, "name", name) &&
             (!description || cJSON_AddStringToObject(fn, "description", description)) &&
             cJSON_AddStringToObject(params, "type", "object");
    if (ok && cJSON_AddItemToObject(params, "properties", properties)) properties = NULL; else ok = 0;
    if (ok && cJSON_AddItemToObject(params, "required", required)) required = NULL; else ok = 0;
    if (ok && cJSON_AddItemToObject(fn, "parameters", params)) params = NULL; else ok = 0;
    cJSON_Delete(properties);
    cJSON_Delete(required);
    cJSON_Delete(params);
    if (!ok) {
        cJSON_Delete(fn);
        return NULL;
    }
    return example_wrap_tool(fn);
}

cJSON *example_make_call(const char *name, cJSON *args) {
    cJSON *c = cJSON_CreateObject();
    if (!c || !cJSON_AddStringToObject(c, "name", name) || !cJSON_AddItemToObject(c, "arguments", args)) {
        cJSON_Delete(c);
        cJSON_Delete(args);
        return NULL;
    }
    return c;
}

cJSON *example_make_message(const char *role, const char *content) {
    cJSON *m = cJSON_CreateObject();
    if (!m || !cJSON_AddStringToObject(m, "role", role) ||
        !(content ? cJSON_AddStringToObject(m, "content", content) : cJSON_AddNullToObject(m, "content"))) {
        cJSON_Delete(m);
        return NULL;
    }
    return m;
}
