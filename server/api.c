// api.c: the training API's shared pieces: set-up, replies, lists, ids, stored API keys and
// who sees which project, and the fine-tuned models of /v1/models (see api.h). Its endpoints
// are api_files.c, api_jobs.c, api_evals.c.
#include "server/api_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int api_init(api **out, const char *db_path, const char *data_dir, size_t max_upload, trl_err *e) {
    api *a = calloc(1, sizeof(*a));
    if (!a) return trl_errf(e, "out of memory");
    snprintf(a->data_dir, sizeof(a->data_dir), "%s", data_dir);
    a->max_upload = max_upload ? max_upload : (size_t)256 << 20;
    trl_err de;
    if (trl_mkdirs(a->data_dir, &de)) {
        free(a);
        return trl_errf(e, "cannot create the data folder %s (%s)", data_dir, de.msg);
    }
    char dbdir[1024];
    snprintf(dbdir, sizeof(dbdir), "%s", db_path);
    char *slash = strrchr(dbdir, '/');
    if (slash && slash != dbdir) {
        *slash = 0;
        if (trl_mkdirs(dbdir, &de)) {
            free(a);
            return trl_errf(e, "cannot create the folder of %s (%s)", db_path, de.msg);
        }
    }
    if (store_open(&a->db, db_path, e)) {
        free(a);
        return TRL_ERR;
    }
    pthread_mutex_init(&a->mu, NULL);
    *out = a;
    return TRL_OK;
}

void api_free(api *a) {
    if (!a) return;
    store_close(a->db);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

void api_set_base_model(api *a, const char *id, const char *alias, const char *path) {
    snprintf(a->base_id, sizeof(a->base_id), "%s", id);
    snprintf(a->base_alias, sizeof(a->base_alias), "%s", alias ? alias : "");
    snprintf(a->base_path, sizeof(a->base_path), "%s", path ? path : "");
    // The base model is a row too, so workers find its path by name.
    trl_err e = {{0}};
    store_model_new mn = {.id = id, .kind = "base", .path = a->base_path};
    pthread_mutex_lock(&a->mu);
    if (path && store_model_upsert(a->db, &mn, &e) != TRL_OK) fprintf(stderr, "toolrl serve: %s\n", e.msg);
    pthread_mutex_unlock(&a->mu);
}

// ---- keys and projects ----------------------------------------------------------------------

api_key_result api_key_check(api *a, const char *key, api_principal *p) {
    store_key k = {0};
    trl_err e = {{0}};
    pthread_mutex_lock(&a->mu);
    int rc = store_key_find(a->db, key, &k, &e);  // by the key's hash: nothing secret is compared
    pthread_mutex_unlock(&a->mu);
    api_key_result res = rc == TRL_NOT_FOUND ? API_KEY_UNKNOWN : rc ? API_KEY_ERROR : k.revoked_at ? API_KEY_REVOKED
                                                                                                    : API_KEY_OK;
    if (res == API_KEY_OK) {
        snprintf(p->project, sizeof(p->project), "%s", k.project);
        p->admin = k.admin;
    }
    if (rc && rc != TRL_NOT_FOUND) fprintf(stderr, "toolrl serve: %s\n", e.msg);
    store_key_clear(&k);
    return res;
}

int api_keys_required(api *a) {
    int64_t n = 0;
    trl_err e = {{0}};
    pthread_mutex_lock(&a->mu);
    int rc = store_key_count(a->db, 0, &n, &e);  // any key ever made, revoked or not
    pthread_mutex_unlock(&a->mu);
    if (rc) fprintf(stderr, "toolrl serve: %s\n", e.msg);
    return rc || n > 0;
}

const api_principal api_keyless = {.project = STORE_DEFAULT_PROJECT, .admin = 1};

const api_principal *api_who(const api_request *rq) { return rq && rq->who ? rq->who : &api_keyless; }
const char *api_project(const api_request *rq) { return api_who(rq)->project; }

int api_sees(const api_principal *who, const char *project) {
    if (!who) who = &api_keyless;
    return who->admin || (project && !strcmp(project, who->project));
}

const char *api_list_project(const api_request *rq) {
    const api_principal *w = api_who(rq);
    return w->admin ? NULL : w->project;
}

// ---- replies --------------------------------------------------------------------------------

void api_reply_init(api_reply *r) {
    memset(r, 0, sizeof(*r));
    r->fd = -1;
}

void api_reply_json(api_reply *r, int status, cJSON *j) {
    r->status = status;
    r->json = j;
    r->fd = -1;
}

void api_reply_error(api_reply *r, int status, const char *type, const char *param, const char *code, const char *fmt,
                     ...) {
    api_error err;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    api_error_set(&err, status, type, param, code, "%s", msg);
    api_reply_json(r, status, api_error_json(&err));
}

void api_reply_store_error(api_reply *r, int rc, const trl_err *e, const char *what, const char *id) {
    if (rc == TRL_NOT_FOUND)
        api_reply_error(r, 404, "invalid_request_error", "id", "not_found", "No %s with id '%.100s'", what, id);
    else if (rc == TRL_CONFLICT)
        api_reply_error(r, 409, "invalid_request_error", NULL, "conflict", "%s", e->msg);
    else api_reply_error(r, 500, "server_error", NULL, NULL, "store: %s", e->msg);
}

int api_id_ok(const char *id, const char *what, api_reply *r) {
    size_t n = strlen(id);
    if (n > 0 && n < STORE_ID_MAX) return 1;
    api_reply_error(r, 404, "invalid_request_error", "id", "not_found", "No %s with id '%.60s'", what, id);
    return 0;
}

int api_page(api_arg_fn arg, void *ctx, store_page *pg, api_reply *r) {
    memset(pg, 0, sizeof(*pg));
    const char *after = arg(ctx, "after"), *limit = arg(ctx, "limit");
    pg->after = after && *after ? after : NULL;
    pg->limit = 20;
    if (limit) {
        char *end;
        long v = strtol(limit, &end, 10);
        if (*limit == 0 || *end || v < 1 || v > 100) {
            api_reply_error(r, 400, "invalid_request_error", "limit", "invalid_value",
                            "limit must be an integer from 1 to 100");
            return -1;
        }
        pg->limit = (int)v;
    }
    return 0;
}

cJSON *api_list(cJSON *data, int has_more) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON_AddItemToObject(o, "data", data);
    cJSON_AddBoolToObject(o, "has_more", has_more);
    int n = cJSON_GetArraySize(data);
    const cJSON *first = n ? cJSON_GetObjectItem(cJSON_GetArrayItem(data, 0), "id") : NULL;
    const cJSON *last = n ? cJSON_GetObjectItem(cJSON_GetArrayItem(data, n - 1), "id") : NULL;
    if (first) cJSON_AddStringToObject(o, "first_id", first->valuestring);
    else cJSON_AddNullToObject(o, "first_id");
    if (last) cJSON_AddStringToObject(o, "last_id", last->valuestring);
    else cJSON_AddNullToObject(o, "last_id");
    return o;
}

cJSON *api_json_or_null(const char *s) {
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    return j ? j : cJSON_CreateNull();
}

cJSON *api_event_json(const store_event *ev, const char *object) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddStringToObject(o, "id", ev->id);
    cJSON_AddNumberToObject(o, "created_at", (double)ev->created_at);
    cJSON_AddStringToObject(o, "level", ev->level);
    cJSON_AddStringToObject(o, "message", ev->message);
    cJSON_AddStringToObject(o, "type", ev->type);
    cJSON_AddItemToObject(o, "data", api_json_or_null(ev->data));
    return o;
}

static cJSON *model_json(const store_model *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", m->id);
    cJSON_AddStringToObject(o, "object", "model");
    cJSON_AddNumberToObject(o, "created", (double)m->created_at);
    cJSON_AddStringToObject(o, "owned_by", m->kind && !strcmp(m->kind, "fine-tuned") ? "user" : "toolrl");
    if (m->base_model) cJSON_AddStringToObject(o, "parent", m->base_model);
    if (m->job_id) cJSON_AddStringToObject(o, "fine_tuning_job", m->job_id);
    cJSON_AddStringToObject(o, "kind", m->kind);
    cJSON_AddBoolToObject(o, "served", m->served);
    return o;
}

void api_models_append(api *a, const api_principal *who, cJSON *data) {
    store_models l = {0};
    trl_err e = {{0}};
    pthread_mutex_lock(&a->mu);
    int rc = store_model_list(a->db, &l, &e);
    pthread_mutex_unlock(&a->mu);
    if (rc) return;
    for (int i = 0; i < l.n; i++)
        if (!strcmp(l.items[i].kind, "fine-tuned") && api_sees(who, l.items[i].project))
            cJSON_AddItemToArray(data, model_json(&l.items[i]));
    store_models_free(&l);
}

// A model row who may use: a base model, or a fine-tuned one of a project who sees.
static int model_usable(const api_principal *who, const store_model *m) {
    return strcmp(m->kind, "fine-tuned") != 0 || api_sees(who, m->project);
}

const char *api_model_resolve(api *a, const api_principal *who, const char *name) {
    if (!strcmp(name, a->base_id)) return name;
    if (a->base_alias[0] && !strcmp(name, a->base_alias)) return a->base_id;
    store_model sm = {0};
    trl_err e = {{0}};
    pthread_mutex_lock(&a->mu);
    int rc = store_model_get(a->db, name, &sm, &e);
    pthread_mutex_unlock(&a->mu);
    int ok = rc == TRL_OK && model_usable(who, &sm);
    store_model_clear(&sm);
    return ok ? name : NULL;
}

int api_model_visible(api *a, const api_principal *who, const char *id) {
    store_model m = {0};
    trl_err e = {{0}};
    pthread_mutex_lock(&a->mu);
    int rc = store_model_get(a->db, id, &m, &e);
    pthread_mutex_unlock(&a->mu);
    int ok = rc == TRL_NOT_FOUND || (rc == TRL_OK && model_usable(who, &m));  // unknown: the registry says 404
    store_model_clear(&m);
    return ok;
}

cJSON *api_model_object(api *a, const api_principal *who, const char *id) {
    store_model m = {0};
    trl_err e = {{0}};
    pthread_mutex_lock(&a->mu);
    int rc = store_model_get(a->db, id, &m, &e);
    pthread_mutex_unlock(&a->mu);
    if (rc) return NULL;
    cJSON *o = !strcmp(m.kind, "fine-tuned") && api_sees(who, m.project) ? model_json(&m) : NULL;
    store_model_clear(&m);
    return o;
}
