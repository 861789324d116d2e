// chat_request.c: validation of chat completion requests (see chat_request.h). Fields follow
// OpenAI's CreateChatCompletionRequest; unknown keys are accepted and ignored.
#include "server/chat_request.h"

#include "base/pyjson.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int api_error_set(api_error *err, int status, const char *type, const char *param, const char *code,
                  const char *fmt, ...) {
    err->status = status;
    err->type = type;
    err->code = code;
    snprintf(err->param, sizeof(err->param), "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

cJSON *api_error_json(const api_error *err) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON *e = cJSON_AddObjectToObject(j, "error");
    if (!e) {
        cJSON_Delete(j);
        return NULL;
    }
    cJSON_AddStringToObject(e, "message", err->message);
    cJSON_AddStringToObject(e, "type", err->type ? err->type : "invalid_request_error");
    if (err->param[0]) cJSON_AddStringToObject(e, "param", err->param);
    else cJSON_AddNullToObject(e, "param");
    if (err->code) cJSON_AddStringToObject(e, "code", err->code);
    else cJSON_AddNullToObject(e, "code");
    return j;
}

#define BAD(param, ...) api_error_set(err, 400, "invalid_request_error", param, NULL, __VA_ARGS__)
#define OOM() api_error_set(err, 500, "server_error", NULL, NULL, "out of memory")

static int keep_string(chat_request *r, char *s) {
    char **o = realloc(r->owned, sizeof(char *) * (size_t)(r->n_owned + 1));
    if (!o) {
        free(s);
        return -1;
    }
    r->owned = o;
    r->owned[r->n_owned++] = s;
    return 0;
}

// content: string, or array of {type:"text", text} parts (joined), or (allow_null) null/absent.
static int parse_content(chat_request *r, const cJSON *c, const char *param, int allow_null, const char **out,
                         api_error *err) {
    *out = NULL;
    if (!c || cJSON_IsNull(c)) {
        if (allow_null) return 0;
        return BAD(param, "'%s' is required", param);
    }
    if (cJSON_IsString(c)) {
        *out = c->valuestring;
        return 0;
    }
    if (!cJSON_IsArray(c)) return BAD(param, "'%s' must be a string or an array of content parts", param);
    if (cJSON_GetArraySize(c) == 0) return BAD(param, "'%s' must not be an empty array", param);
    size_t total = 1;
    int i = 0;
    char p[128];
    for (const cJSON *part = c->child; part; part = part->next, i++) {
        snprintf(p, sizeof(p), "%s[%d]", param, i);
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type)) return BAD(p, "'%s' must be a content part object", p);
        if (strcmp(type->valuestring, "text") != 0)
            return BAD(p, "content part type '%.64s' is not supported (text only)", type->valuestring);
        if (!cJSON_IsString(text)) return BAD(p, "'%s.text' must be a string", p);
        total += strlen(text->valuestring);
    }
    char *s = malloc(total);
    if (!s) return OOM();
    s[0] = 0;
    size_t n = 0;
    for (const cJSON *part = c->child; part; part = part->next) {
        size_t l = strlen(cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring);
        memcpy(s + n, cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring, l);
        n += l;
        s[n] = 0;
    }
    if (keep_string(r, s)) return OOM();
    *out = s;
    return 0;
}

static int valid_tool_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 64) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

// pytools: the same array as parsed by pyjson_parse (number tokens kept, so a schema's 1.0 prints
// as 1.0 in the prompt, as json.dumps prints it in training), or NULL when that parse failed.
static int parse_tools(chat_request *r, const cJSON *tools, const cJSON *pytools, api_error *err) {
    if (!tools || cJSON_IsNull(tools)) return 0;
    if (!cJSON_IsArray(tools)) return BAD("tools", "'tools' must be an array");
    int n = cJSON_GetArraySize(tools);
    if (n == 0) return BAD("tools", "'tools' must not be an empty array (omit it instead)");
    r->tools = cJSON_CreateArray();
    r->tool_names = calloc((size_t)n, sizeof(char *));
    if (!r->tools || !r->tool_names) return OOM();
    int i = 0;
    char p[128];
    const cJSON *pt = cJSON_IsArray(pytools) && cJSON_GetArraySize(pytools) == n ? pytools->child : NULL;
    for (const cJSON *t = tools->child; t; t = t->next, i++, pt = pt ? pt->next : NULL) {
        snprintf(p, sizeof(p), "tools[%d]", i);
        if (!cJSON_IsObject(t)) return BAD(p, "'%s' must be an object", p);
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(t, "type");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "function") != 0) {
            snprintf(p, sizeof(p), "tools[%d].type", i);
            return BAD(p, "'%s' must be \"function\"", p);
        }
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
        snprintf(p, sizeof(p), "tools[%d].function", i);
        if (!cJSON_IsObject(fn)) return BAD(p, "'%s' must be an object", p);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
        snprintf(p, sizeof(p), "tools[%d].function.name", i);
        if (!cJSON_IsString(name) || !valid_tool_name(name->valuestring))
            return BAD(p, "'%s' must be a string of 1-64 characters from a-z A-Z 0-9 _ -", p);
        for (int k = 0; k < i; k++)
            if (!strcmp(r->tool_names[k], name->valuestring))
                return BAD(p, "duplicate tool name '%s'", name->valuestring);
        const cJSON *desc = cJSON_GetObjectItemCaseSensitive(fn, "description");
        if (desc && !cJSON_IsString(desc) && !cJSON_IsNull(desc)) {
            snprintf(p, sizeof(p), "tools[%d].function.description", i);
            return BAD(p, "'%s' must be a string", p);
        }
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
        if (params && !cJSON_IsObject(params) && !cJSON_IsNull(params)) {
            snprintf(p, sizeof(p), "tools[%d].function.parameters", i);
            return BAD(p, "'%s' must be a JSON Schema object", p);
        }
        // normalised copy for the prompt: {"type":"function","function":{name, description?, parameters?}}
        cJSON *wrap = cJSON_CreateObject(), *f = wrap ? cJSON_CreateObject() : NULL;
        if (!f) {
            cJSON_Delete(wrap);
            return OOM();
        }
        cJSON_AddStringToObject(wrap, "type", "function");
        cJSON_AddItemToObject(wrap, "function", f);
        cJSON_AddItemToArray(r->tools, wrap);
        cJSON *nm = cJSON_AddStringToObject(f, "name", name->valuestring);
        if (!nm) return OOM();
        if (cJSON_IsString(desc)) cJSON_AddStringToObject(f, "description", desc->valuestring);
        const cJSON *pyparams = pt ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pt, "function"),
                                                                       "parameters")
                                   : NULL;
        if (cJSON_IsObject(params))
            cJSON_AddItemToObject(f, "parameters", cJSON_Duplicate(cJSON_IsObject(pyparams) ? pyparams : params, 1));
        r->tool_names[i] = nm->valuestring;
        r->n_tools = i + 1;
    }
    return 0;
}

static int find_tool(const chat_request *r, const char *name) {
    for (int i = 0; i < r->n_tools; i++)
        if (!strcmp(r->tool_names[i], name)) return i;
    return -1;
}

// An assistant message's tool_calls → [{"name","arguments":{…}}] kept in r->history_calls.
// Returns the call ids (array of strings, in history_calls too) through *ids.
static int parse_history_calls(chat_request *r, const cJSON *tc, int mi, const cJSON **calls_out,
                               cJSON **ids_out, api_error *err) {
    char p[128];
    snprintf(p, sizeof(p), "messages[%d].tool_calls", mi);
    if (!cJSON_IsArray(tc)) return BAD(p, "'%s' must be an array", p);
    cJSON *calls = cJSON_CreateArray(), *ids = cJSON_CreateArray();
    if (!calls || !ids) {
        cJSON_Delete(calls);
        cJSON_Delete(ids);
        return OOM();
    }
    cJSON_AddItemToArray(r->history_calls, calls);
    cJSON_AddItemToArray(r->history_calls, ids);
    int i = 0;
    for (const cJSON *c = tc->child; c; c = c->next, i++) {
        snprintf(p, sizeof(p), "messages[%d].tool_calls[%d]", mi, i);
        if (!cJSON_IsObject(c)) return BAD(p, "'%s' must be an object", p);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "id");
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
        if (!cJSON_IsString(id)) {
            snprintf(p, sizeof(p), "messages[%d].tool_calls[%d].id", mi, i);
            return BAD(p, "'%s' must be a string", p);
        }
        if (!cJSON_IsObject(fn)) {
            snprintf(p, sizeof(p), "messages[%d].tool_calls[%d].function", mi, i);
            return BAD(p, "'%s' must be an object", p);
        }
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
        if (!cJSON_IsString(name)) {
            snprintf(p, sizeof(p), "messages[%d].tool_calls[%d].function.name", mi, i);
            return BAD(p, "'%s' must be a string", p);
        }
        snprintf(p, sizeof(p), "messages[%d].tool_calls[%d].function.arguments", mi, i);
        cJSON *a = NULL;
        if (cJSON_IsString(args)) {
            a = pyjson_parse(args->valuestring, strlen(args->valuestring), NULL);  // 1.0 stays 1.0
            if (!a || !cJSON_IsObject(a)) {
                cJSON_Delete(a);
                return BAD(p, "'%s' of message %d (role 'assistant') is not a JSON object string", p, mi);
            }
        } else if (cJSON_IsObject(args)) {
            a = cJSON_Duplicate(args, 1);
        } else if (!args || cJSON_IsNull(args)) {
            a = cJSON_CreateObject();
        } else {
            return BAD(p, "'%s' must be a string of JSON", p);
        }
        cJSON *call = cJSON_CreateObject();
        if (!a || !call) {
            cJSON_Delete(a);
            cJSON_Delete(call);
            return OOM();
        }
        cJSON_AddStringToObject(call, "name", name->valuestring);
        cJSON_AddItemToObject(call, "arguments", a);
        cJSON_AddItemToArray(calls, call);
        cJSON_AddItemToArray(ids, cJSON_CreateString(id->valuestring));
    }
    *calls_out = calls;
    *ids_out = ids;
    return 0;
}

static int parse_messages(chat_request *r, const cJSON *msgs, api_error *err) {
    if (!msgs) return BAD("messages", "'messages' is required");
    if (!cJSON_IsArray(msgs)) return BAD("messages", "'messages' must be an array");
    int n = cJSON_GetArraySize(msgs);
    if (n == 0) return BAD("messages", "'messages' must not be empty");
    r->msgs = calloc((size_t)n, sizeof(*r->msgs));
    r->history_calls = cJSON_CreateArray();
    if (!r->msgs || !r->history_calls) return OOM();
    cJSON *open_ids = NULL;  // ids of the latest assistant tool calls still unanswered (not owned)
    int i = 0;
    char p[128];
    for (const cJSON *m = msgs->child; m; m = m->next, i++) {
        snprintf(p, sizeof(p), "messages[%d]", i);
        if (!cJSON_IsObject(m)) return BAD(p, "'%s' must be an object", p);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        snprintf(p, sizeof(p), "messages[%d].role", i);
        if (!cJSON_IsString(role)) return BAD(p, "'%s' must be a string", p);
        const char *rs = role->valuestring;
        toolprompt_msg *out = &r->msgs[i];
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        char cp[128];
        snprintf(cp, sizeof(cp), "messages[%d].content", i);
        if (!strcmp(rs, "system") || !strcmp(rs, "developer") || !strcmp(rs, "user")) {
            out->role = !strcmp(rs, "user") ? "user" : "system";
            if (parse_content(r, content, cp, 0, &out->content, err)) return -1;
        } else if (!strcmp(rs, "assistant")) {
            out->role = "assistant";
            const cJSON *tc = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
            int has_calls = tc && !cJSON_IsNull(tc);
            if (parse_content(r, content, cp, 1, &out->content, err)) return -1;
            if (!out->content && !has_calls)
                return BAD(cp, "'%s' is required unless 'tool_calls' is given", cp);
            open_ids = NULL;
            if (has_calls) {
                if (parse_history_calls(r, tc, i, &out->tool_calls, &open_ids, err)) return -1;
                if (cJSON_GetArraySize(out->tool_calls) == 0) {
                    out->tool_calls = NULL;
                    open_ids = NULL;
                }
            }
        } else if (!strcmp(rs, "tool")) {
            out->role = "tool";
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "tool_call_id");
            char ip[128];
            snprintf(ip, sizeof(ip), "messages[%d].tool_call_id", i);
            if (!open_ids)
                return BAD(p, "messages with role 'tool' must be a response to a preceding message with 'tool_calls'");
            if (!cJSON_IsString(id)) return BAD(ip, "'%s' must be a string", ip);
            int found = 0;
            for (const cJSON *x = open_ids->child; x; x = x->next)
                if (!strcmp(x->valuestring, id->valuestring)) found = 1;
            if (!found)
                return BAD(ip, "'%s' = '%.64s' matches no tool call of the preceding assistant message", ip,
                           id->valuestring);
            if (parse_content(r, content, cp, 0, &out->content, err)) return -1;
        } else {
            return BAD(p, "'%s' must be one of system, developer, user, assistant, tool (got '%.32s')", p, rs);
        }
        if (strcmp(out->role, "tool") != 0 && strcmp(out->role, "assistant") != 0) open_ids = NULL;
        r->n_msgs = i + 1;
    }
    return 0;
}

// A number field within [lo, hi]; absent or null keeps *out.
static int get_number(const cJSON *root, const char *key, double lo, double hi, double *out, api_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return BAD(key, "'%s' must be a number", key);
    if (v->valuedouble < lo || v->valuedouble > hi) return BAD(key, "'%s' must be between %g and %g", key, lo, hi);
    *out = v->valuedouble;
    return 0;
}

static int get_int(const cJSON *root, const char *key, double lo, double hi, int *present, double *out,
                   api_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (present) *present = 0;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble)) return BAD(key, "'%s' must be an integer", key);
    if (v->valuedouble < lo || v->valuedouble > hi) return BAD(key, "'%s' must be between %.0f and %.0f", key, lo, hi);
    *out = v->valuedouble;
    if (present) *present = 1;
    return 0;
}

static int get_bool(const cJSON *root, const char *key, int *out, api_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) return BAD(key, "'%s' must be a boolean", key);
    *out = cJSON_IsTrue(v);
    return 0;
}

static int parse_tool_choice(chat_request *r, const cJSON *tc, api_error *err) {
    r->tool_choice = r->n_tools ? TOOL_CHOICE_AUTO : TOOL_CHOICE_NONE;
    if (!tc || cJSON_IsNull(tc)) return 0;
    if (cJSON_IsString(tc)) {
        const char *s = tc->valuestring;
        if (!strcmp(s, "none")) r->tool_choice = TOOL_CHOICE_NONE;
        else if (!strcmp(s, "auto")) r->tool_choice = TOOL_CHOICE_AUTO;
        else if (!strcmp(s, "required")) r->tool_choice = TOOL_CHOICE_REQUIRED;
        else return BAD("tool_choice", "'tool_choice' must be none, auto, required or {\"type\":\"function\",…}");
        if (r->tool_choice != TOOL_CHOICE_NONE && !r->n_tools)
            return BAD("tool_choice", "'tool_choice' \"%s\" is only allowed when 'tools' are given", s);
        return 0;
    }
    if (!cJSON_IsObject(tc)) return BAD("tool_choice", "'tool_choice' must be a string or an object");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(tc, "type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "function") != 0)
        return BAD("tool_choice.type", "'tool_choice.type' must be \"function\" (other forms are not supported)");
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
    if (!cJSON_IsObject(fn) || !cJSON_IsString(name))
        return BAD("tool_choice.function.name", "'tool_choice.function.name' must be a string");
    if (!r->n_tools) return BAD("tool_choice", "'tool_choice' is only allowed when 'tools' are given");
    if (find_tool(r, name->valuestring) < 0)
        return BAD("tool_choice.function.name", "tool '%.64s' is not among 'tools'", name->valuestring);
    r->tool_choice = TOOL_CHOICE_NAMED;
    r->tool_choice_name = name->valuestring;
    return 0;
}

static int parse_stop(chat_request *r, const cJSON *stop, api_error *err) {
    if (!stop || cJSON_IsNull(stop)) return 0;
    if (cJSON_IsString(stop)) {
        if (stop->valuestring[0]) r->stop[r->n_stop++] = stop->valuestring;
        return 0;
    }
    if (!cJSON_IsArray(stop)) return BAD("stop", "'stop' must be a string or an array of strings");
    if (cJSON_GetArraySize(stop) > CHAT_MAX_STOP) return BAD("stop", "'stop' holds at most %d strings", CHAT_MAX_STOP);
    int i = 0;
    char p[32];
    for (const cJSON *s = stop->child; s; s = s->next, i++) {
        snprintf(p, sizeof(p), "stop[%d]", i);
        if (!cJSON_IsString(s)) return BAD(p, "'%s' must be a string", p);
        if (s->valuestring[0]) r->stop[r->n_stop++] = s->valuestring;
    }
    return 0;
}

static int parse_all(chat_request *r, const char *body, size_t len, api_error *err) {
    cJSON *root = r->root;
    if (!cJSON_IsObject(root)) return BAD(NULL, "the request body must be a JSON object");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!model) return BAD("model", "'model' is required");
    if (!cJSON_IsString(model)) return BAD("model", "'model' must be a string");
    r->model = model->valuestring;
    if (parse_messages(r, cJSON_GetObjectItemCaseSensitive(root, "messages"), err)) return -1;
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(root, "tools");
    cJSON *py = NULL;
    if (cJSON_IsArray(tools)) {  // the body again with Python's number rules, for the prompt's copy of the tools
        trl_err pe = {{0}};
        py = pyjson_parse(body, len, &pe);
    }
    int bad = parse_tools(r, tools, cJSON_GetObjectItemCaseSensitive(py, "tools"), err);
    cJSON_Delete(py);
    if (bad) return -1;
    if (parse_tool_choice(r, cJSON_GetObjectItemCaseSensitive(root, "tool_choice"), err)) return -1;
    r->parallel_tool_calls = 1;
    if (get_bool(root, "parallel_tool_calls", &r->parallel_tool_calls, err)) return -1;
    double v = 1;
    if (get_int(root, "n", 1, 16, NULL, &v, err)) return -1;
    r->n = (int)v;
    r->temperature = 1.0;
    r->top_p = 1.0;
    if (get_number(root, "temperature", 0, 2, &r->temperature, err)) return -1;
    if (get_number(root, "top_p", 0, 1, &r->top_p, err)) return -1;
    double fp = 0;
    if (get_number(root, "frequency_penalty", -2, 2, &fp, err)) return -1;
    if (get_number(root, "presence_penalty", -2, 2, &fp, err)) return -1;
    int present = 0;
    r->max_tokens = -1;
    if (get_int(root, "max_tokens", 1, 1e9, &present, &v, err)) return -1;
    if (present) r->max_tokens = (int)v;
    if (get_int(root, "max_completion_tokens", 1, 1e9, &present, &v, err)) return -1;
    if (present) r->max_tokens = (int)v;
    if (parse_stop(r, cJSON_GetObjectItemCaseSensitive(root, "stop"), err)) return -1;
    if (get_int(root, "seed", -9.2e18, 9.2e18, &r->has_seed, &v, err)) return -1;
    if (r->has_seed) r->seed = (uint64_t)(int64_t)v;
    if (get_bool(root, "stream", &r->stream, err)) return -1;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so)) return BAD("stream_options", "'stream_options' must be an object");
        if (!r->stream) return BAD("stream_options", "'stream_options' is only allowed when 'stream' is true");
        const cJSON *iu = cJSON_GetObjectItemCaseSensitive(so, "include_usage");
        if (iu && !cJSON_IsNull(iu) && !cJSON_IsBool(iu))
            return BAD("stream_options.include_usage", "'stream_options.include_usage' must be a boolean");
        r->include_usage = cJSON_IsTrue(iu);
    }
    int lp = 0;
    if (get_bool(root, "logprobs", &lp, err)) return -1;
    r->logprobs = lp;
    const cJSON *tl = cJSON_GetObjectItemCaseSensitive(root, "top_logprobs");
    if (tl && !cJSON_IsNull(tl)) {
        if (!cJSON_IsNumber(tl) || tl->valuedouble != (double)(int)tl->valuedouble || tl->valuedouble < 0 ||
            tl->valuedouble > 20)
            return BAD("top_logprobs", "'top_logprobs' must be an integer from 0 to 20");
        if (!lp) return BAD("top_logprobs", "'top_logprobs' requires 'logprobs': true");
        r->top_logprobs = tl->valueint;
    }
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(root, "response_format");
    if (rf && !cJSON_IsNull(rf)) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(rf, "type");
        if (!cJSON_IsObject(rf) || !cJSON_IsString(t))
            return BAD("response_format", "'response_format' must be an object with a 'type'");
        if (!strcmp(t->valuestring, "json_object")) r->json_object = 1;
        else if (!strcmp(t->valuestring, "json_schema")) {
            const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
            if (!cJSON_IsObject(js))
                return BAD("response_format.json_schema", "'response_format.json_schema' must be an object with a 'name'");
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(js, "name");
            if (!cJSON_IsString(nm) || !nm->valuestring[0] || strlen(nm->valuestring) > 64)
                return BAD("response_format.json_schema.name",
                           "'response_format.json_schema.name' must be a string of 1 to 64 characters");
            const cJSON *sc = cJSON_GetObjectItemCaseSensitive(js, "schema");
            if (sc && !cJSON_IsObject(sc))
                return BAD("response_format.json_schema.schema", "'response_format.json_schema.schema' must be an object");
            const cJSON *ty = cJSON_GetObjectItemCaseSensitive(sc, "type");
            if (ty && !(cJSON_IsString(ty) && !strcmp(ty->valuestring, "object")))
                return BAD("response_format.json_schema.schema.type",
                           "the schema's root must be of type \"object\"");
            r->json_object = 1;
            r->json_schema = sc;  // NULL: any object
        } else if (strcmp(t->valuestring, "text") != 0)
            return BAD("response_format.type",
                       "'response_format.type' \"%.32s\" is not supported (\"text\", \"json_object\" or \"json_schema\")",
                       t->valuestring);
    }
    return 0;
}

int chat_request_parse(const char *body, size_t len, chat_request *req, api_error *err) {
    memset(req, 0, sizeof(*req));
    const char *end = NULL;
    req->root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (req->root && end) {  // only whitespace may follow the value
        while ((size_t)(end - body) < len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t')) end++;
        if ((size_t)(end - body) < len) {
            cJSON_Delete(req->root);
            req->root = NULL;
        }
    }
    if (!req->root) {
        long off = end ? (long)(end - body) : 0;
        return api_error_set(err, 400, "invalid_request_error", NULL, NULL,
                             "the request body is not valid JSON (error near byte %ld)", off);
    }
    if (parse_all(req, body, len, err)) {
        chat_request_free(req);
        return -1;
    }
    return 0;
}

void chat_request_free(chat_request *req) {
    cJSON_Delete(req->root);
    cJSON_Delete(req->tools);
    cJSON_Delete(req->history_calls);
    free(req->tool_names);
    free(req->msgs);
    for (int i = 0; i < req->n_owned; i++) free(req->owned[i]);
    free(req->owned);
    memset(req, 0, sizeof(*req));
}
