// convert_sgd.c: Schema-Guided Dialogue (sgd/train/dialogues_NNN.json, CC BY-SA 4.0) to unified
// examples; the services come from the side file schema.json.
//   record   one dialogue {"dialogue_id", "services", "turns": [{"speaker": "USER"|"SYSTEM",
//            "utterance", "frames": [{"service", "service_call"?: {"method", "parameters"},
//            "service_results"?}]}]}
//   samples  every SYSTEM turn with a service_call (10,273 in the shared files): the answer is
//            that call ({"name": method, "arguments": parameters}, all values strings as SGD
//            has them); the messages are the dialogue before that turn: USER turns as user
//            messages, SYSTEM turns as assistant messages; an earlier SYSTEM turn that made a
//            call becomes the call (assistant tool_calls), its results (a tool message holding
//            the compact JSON of service_results) and then the utterance.
//   tools    the intents of the called service: {"name": intent, "description", "parameters":
//            {"type": "object", "properties": {slot: {"type": "string", "description",
//            "enum": possible values (categorical slots only), "default": the optional slot's
//            default}}, "required": required_slots}}.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pyjson.h"
#include "data/convert.h"
#include "data/example.h"

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static const cJSON *find_named(const cJSON *list, const char *key, const char *name) {
    for (const cJSON *t = cJSON_IsArray(list) ? list->child : NULL; t; t = t->next) {
        const cJSON *n = get(t, key);
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name)) return t;
    }
    return NULL;
}

static cJSON *slot_property(const cJSON *service, const char *slot, const cJSON *deflt) {
    const cJSON *s = find_named(get(service, "slots"), "name", slot);
    cJSON *p = cJSON_CreateObject();
    if (!p || !cJSON_AddStringToObject(p, "type", "string")) goto fail;
    const cJSON *d = get(s, "description");
    if (cJSON_IsString(d) && !cJSON_AddStringToObject(p, "description", d->valuestring)) goto fail;
    const cJSON *pv = get(s, "possible_values");
    if (cJSON_IsTrue(get(s, "is_categorical")) && cJSON_IsArray(pv) && pv->child) {
        if (!pyjson_set(p, "enum", pyjson_copy(pv))) goto fail;
    }
    if (deflt) {
        if (!pyjson_set(p, "default", pyjson_copy(deflt))) goto fail;
    }
    return p;
fail:
    cJSON_Delete(p);
    return NULL;
}

static cJSON *intent_tool(const cJSON *service, const cJSON *intent) {
    const cJSON *n = get(intent, "name"), *d = get(intent, "description");
    const cJSON *req = get(intent, "required_slots"), *opt = get(intent, "optional_slots");
    if (!cJSON_IsString(n) || !n->valuestring[0]) return NULL;
    cJSON *props = cJSON_CreateObject(), *rq = cJSON_CreateArray();
    int ok = props && rq;
    for (const cJSON *s = cJSON_IsArray(req) ? req->child : NULL; ok && s; s = s->next) {
        if (!cJSON_IsString(s)) continue;
        cJSON *p = slot_property(service, s->valuestring, NULL);
        ok = p && cJSON_AddItemToObject(props, s->valuestring, p) &&
             cJSON_AddItemToArray(rq, cJSON_CreateString(s->valuestring));
        if (!ok && p && !get(props, s->valuestring)) cJSON_Delete(p);
    }
    for (const cJSON *s = cJSON_IsObject(opt) ? opt->child : NULL; ok && s; s = s->next) {
        if (get(props, s->string)) continue;
        cJSON *p = slot_property(service, s->string, s);
        ok = p && cJSON_AddItemToObject(props, s->string, p);
        if (!ok) cJSON_Delete(p);
    }
    if (!ok) {
        cJSON_Delete(props);
        cJSON_Delete(rq);
        return NULL;
    }
    return example_make_tool(n->valuestring, cJSON_IsString(d) ? d->valuestring : NULL, props, rq);
}

// The intents of the services called in a turn (each service once); NULL if one is unknown.
static cJSON *turn_tools(const cJSON *schema, const cJSON *frames) {
    cJSON *tools = cJSON_CreateArray();
    for (const cJSON *f = tools ? frames->child : NULL; f; f = f->next) {
        if (!get(f, "service_call")) continue;
        const cJSON *sv = get(f, "service");
        const cJSON *service = cJSON_IsString(sv) ? find_named(schema, "service_name", sv->valuestring) : NULL;
        const cJSON *intents = get(service, "intents");
        if (!cJSON_IsArray(intents) || !intents->child) goto fail;
        for (const cJSON *in = intents->child; in; in = in->next) {
            const cJSON *n = get(in, "name");
            if (cJSON_IsString(n) && example_has_tool(tools, n->valuestring)) continue;
            if (!pyjson_append(tools, intent_tool(service, in))) goto fail;
        }
    }
    return tools;
fail:
    cJSON_Delete(tools);
    return NULL;
}

// The calls of a turn; NULL if one is not {method, parameters: {...}}.
static cJSON *turn_calls(const cJSON *frames) {
    cJSON *calls = cJSON_CreateArray();
    for (const cJSON *f = calls ? frames->child : NULL; f; f = f->next) {
        const cJSON *sc = get(f, "service_call");
        if (!sc) continue;
        const cJSON *m = get(sc, "method"), *p = get(sc, "parameters");
        cJSON *call = cJSON_IsString(m) && m->valuestring[0] && cJSON_IsObject(p)
                          ? example_make_call(m->valuestring, pyjson_copy(p))
                          : NULL;
        if (!call || !cJSON_AddItemToArray(calls, call)) {
            cJSON_Delete(call);
            cJSON_Delete(calls);
            return NULL;
        }
    }
    return calls;
}

static int add_message(cJSON *msgs, const char *role, const char *content, cJSON *tool_calls) {
    cJSON *m = example_make_message(role, content);
    if (!m || (tool_calls && !cJSON_AddItemToObject(m, "tool_calls", tool_calls)) || !cJSON_AddItemToArray(msgs, m)) {
        if (!m || !get(m, "tool_calls")) cJSON_Delete(tool_calls);
        cJSON_Delete(m);
        return 0;
    }
    return 1;
}

// Appends a SYSTEM turn that made calls to the context: the calls, their results, the utterance.
static int add_call_turn(cJSON *ctx, const cJSON *frames, cJSON *calls, const char *utterance) {
    if (!add_message(ctx, "assistant", NULL, calls)) return 0;
    cJSON *results = cJSON_CreateArray();
    for (const cJSON *f = results ? frames->child : NULL; f; f = f->next) {
        if (!get(f, "service_call")) continue;
        const cJSON *sr = get(f, "service_results");
        if (!pyjson_append(results, sr ? pyjson_copy(sr) : cJSON_CreateArray())) {
            cJSON_Delete(results);
            return 0;
        }
    }
    // One frame (always, in the shared files): its result list itself.
    const cJSON *one = results && cJSON_GetArraySize(results) == 1 ? results->child : results;
    char *text = one ? pyjson_dump(one, PYJSON_COMPACT) : NULL;
    cJSON_Delete(results);
    int ok = text && add_message(ctx, "tool", text, NULL) && add_message(ctx, "assistant", utterance, NULL);
    free(text);
    return ok;
}

int convert_sgd_record(convert_run *r, const cJSON *rec, size_t index, trl_err *e) {
    convert_counts *c = r->counts;
    const cJSON *did = get(rec, "dialogue_id"), *turns = get(rec, "turns");
    if (!cJSON_IsArray(turns)) {
        convert_count(c, "malformed_row", 1);
        return TRL_OK;
    }
    // Every turn must have a speaker, an utterance and a frame list.
    for (const cJSON *t = turns->child; t; t = t->next) {
        const cJSON *sp = get(t, "speaker"), *u = get(t, "utterance"), *fr = get(t, "frames");
        if (!cJSON_IsString(sp) || !cJSON_IsString(u) || !cJSON_IsArray(fr) ||
            (strcmp(sp->valuestring, "USER") && strcmp(sp->valuestring, "SYSTEM"))) {
            convert_count(c, "malformed_row", 1);
            return TRL_OK;
        }
    }
    cJSON *ctx = cJSON_CreateArray();
    if (!ctx) return trl_errf(e, "out of memory");
    int rc = TRL_OK, k = 0, ncalls = 0;
    for (const cJSON *t = turns->child; t; t = t->next, k++) {
        const char *speaker = get(t, "speaker")->valuestring, *utt = get(t, "utterance")->valuestring;
        const cJSON *frames = get(t, "frames");
        int is_user = !strcmp(speaker, "USER");
        int has_call = 0;
        for (const cJSON *f = frames->child; f; f = f->next) has_call |= get(f, "service_call") != NULL;
        if (is_user || !has_call) {
            if (!add_message(ctx, is_user ? "user" : "assistant", utt, NULL)) goto oom;
            continue;
        }
        ncalls++;
        convert_count(c, "samples", 1);
        cJSON *calls = turn_calls(frames);
        cJSON *tools = calls ? turn_tools(r->side, frames) : NULL;
        const char *drop = !calls ? "unparseable_call" : !tools || !tools->child ? "no_tools"
                           : convert_unknown_names(calls, tools, NULL)           ? "unknown_tool"
                           : !ctx->child                                          ? "malformed_row"
                                                                                  : NULL;
        char id[160];
        if (cJSON_IsString(did) && did->valuestring[0])
            snprintf(id, sizeof(id), "sgd-%.100s-%d", did->valuestring, k);
        else
            snprintf(id, sizeof(id), "sgd-%s-%zu-%d", r->stem, index, k);
        if (convert_emit_sample(r, drop, id, "sgd", pyjson_copy(ctx), tools, pyjson_copy(calls), e)) {
            cJSON_Delete(calls);
            rc = TRL_ERR;
            break;
        }
        // The turn goes into the context as it happened (an unreadable call as plain text).
        if (calls ? !add_call_turn(ctx, frames, calls, utt) : !add_message(ctx, "assistant", utt, NULL)) goto oom;
    }
    if (rc == TRL_OK && !ncalls) convert_count(c, "dialogs_without_calls", 1);
    cJSON_Delete(ctx);
    return rc;
oom:
    cJSON_Delete(ctx);
    return trl_errf(e, "out of memory");
}
