// api_jobs.c: the Fine-tuning API: create (validated against the trainer's own
// hyperparameter rules, trainer/train.h), list, retrieve, cancel, events, checkpoints. A job is
// its creator's project's; another project's job is answered as one that does not exist.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/reward.h"
#include "server/api_internal.h"
#include "trainer/hyper.h"

// The resolved hyperparameters of a job (the trainer's values, "auto" filled in), without the
// keys that describe the method rather than a hyperparameter.
static cJSON *resolved_hyper(const store_job *j, const char **grader_out) {
    cJSON *h = j->hyperparameters ? cJSON_Parse(j->hyperparameters) : NULL;
    cJSON *mc = j->method_config ? cJSON_Parse(j->method_config) : NULL;
    const cJSON *g = cJSON_GetObjectItem(cJSON_GetObjectItem(mc, "reinforcement"), "grader");
    const cJSON *var = cJSON_GetObjectItem(g, "variant");
    train_config c;
    trl_err e = {{0}};
    cJSON *out;
    if (train_config_from_json(&c, j->method, h, cJSON_IsString(var) ? var->valuestring : NULL, &e) == TRL_OK) {
        out = train_config_to_json(&c);
        cJSON_DeleteItemFromObject(out, "method");
        cJSON_DeleteItemFromObject(out, "grader");
        if (grader_out) *grader_out = reward_kind_name(c.reward);
    } else {
        out = h ? cJSON_Duplicate(h, 1) : cJSON_CreateObject();
    }
    cJSON_Delete(h);
    cJSON_Delete(mc);
    return out;
}

static cJSON *job_json(const store_job *j) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", "fine_tuning.job");
    cJSON_AddStringToObject(o, "model", j->model);
    cJSON_AddNumberToObject(o, "created_at", (double)j->created_at);
    if (j->finished_at) cJSON_AddNumberToObject(o, "finished_at", (double)j->finished_at);
    else cJSON_AddNullToObject(o, "finished_at");
    if (j->fine_tuned_model) cJSON_AddStringToObject(o, "fine_tuned_model", j->fine_tuned_model);
    else cJSON_AddNullToObject(o, "fine_tuned_model");
    cJSON_AddStringToObject(o, "organization_id", "org-toolrl");
    cJSON_AddItemToObject(o, "result_files", cJSON_CreateArray());
    cJSON_AddStringToObject(o, "status", j->status);
    cJSON_AddStringToObject(o, "training_file", j->training_file);
    if (j->validation_file) cJSON_AddStringToObject(o, "validation_file", j->validation_file);
    else cJSON_AddNullToObject(o, "validation_file");
    cJSON_AddNumberToObject(o, "trained_tokens", (double)j->trained_tokens);
    cJSON_AddItemToObject(o, "error", api_json_or_null(j->error));
    cJSON_AddNumberToObject(o, "seed", (double)j->seed);
    cJSON_AddNullToObject(o, "estimated_finish");
    cJSON_AddItemToObject(o, "integrations", cJSON_CreateArray());
    cJSON_AddItemToObject(o, "metadata", api_json_or_null(j->metadata));
    if (j->suffix) cJSON_AddStringToObject(o, "suffix", j->suffix);
    const char *grader = NULL;
    cJSON *hp = resolved_hyper(j, &grader);
    cJSON_AddItemToObject(o, "hyperparameters", cJSON_Duplicate(hp, 1));
    cJSON *m = cJSON_AddObjectToObject(o, "method");
    cJSON_AddStringToObject(m, "type", j->method);
    cJSON *mm = cJSON_AddObjectToObject(m, j->method);
    cJSON_AddItemToObject(mm, "hyperparameters", hp);
    if (!strcmp(j->method, "reinforcement")) {
        cJSON *g = cJSON_AddObjectToObject(mm, "grader");
        cJSON_AddStringToObject(g, "type", "tool_call");
        cJSON_AddStringToObject(g, "name", "tool_call");
        cJSON_AddStringToObject(g, "variant", grader ? grader : "binary");
    }
    // progress, for dashboards (not in OpenAI's object)
    cJSON_AddNumberToObject(o, "step", (double)j->step);
    cJSON_AddNumberToObject(o, "total_steps", (double)j->total_steps);
    if (j->started_at) cJSON_AddNumberToObject(o, "started_at", (double)j->started_at);
    else cJSON_AddNullToObject(o, "started_at");
    return o;
}

static cJSON *checkpoint_json(const store_checkpoint *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "fine_tuning.job.checkpoint");
    cJSON_AddStringToObject(o, "id", c->id);
    cJSON_AddNumberToObject(o, "created_at", (double)c->created_at);
    if (c->model_name) cJSON_AddStringToObject(o, "fine_tuned_model_checkpoint", c->model_name);
    else cJSON_AddNullToObject(o, "fine_tuned_model_checkpoint");
    cJSON_AddStringToObject(o, "fine_tuning_job_id", c->job_id);
    cJSON_AddItemToObject(o, "metrics", api_json_or_null(c->metrics));
    cJSON_AddNumberToObject(o, "step_number", (double)c->step);
    return o;
}

// ---- create ----

static const char *opt_string(const cJSON *o, const char *key, const char *param, api_reply *r, int *bad) {
    const cJSON *v = cJSON_GetObjectItem(o, key);
    if (!v || cJSON_IsNull(v)) return NULL;
    if (!cJSON_IsString(v)) {
        api_reply_error(r, 400, "invalid_request_error", param, "invalid_type", "%s must be a string", param);
        *bad = 1;
        return NULL;
    }
    return v->valuestring;
}

// "hyperparameters.batch_size: …" from the trainer → param prefix + "batch_size".
static void hyper_error(api_reply *r, const char *prefix, const char *msg) {
    char param[160];
    const char *dot = strncmp(msg, "hyperparameters.", 16) == 0 ? msg + 16 : NULL;
    size_t n = dot ? strcspn(dot, ":") : 0;
    snprintf(param, sizeof(param), "%s%s%.*s", prefix, dot ? "." : "", (int)n, dot ? dot : "");
    api_reply_error(r, 400, "invalid_request_error", param, "invalid_value", "%s", msg);
}

static void create_job(api *a, const api_request *rq, api_reply *r) {
    const char *body = rq->body;
    size_t len = rq->len;
    const api_principal *who = api_who(rq);
    cJSON *root = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        api_reply_error(r, 400, "invalid_request_error", NULL, "invalid_json", "The body is not a JSON object.");
        return;
    }
    int bad = 0;
    const char *model = opt_string(root, "model", "model", r, &bad);
    const char *tf = bad ? NULL : opt_string(root, "training_file", "training_file", r, &bad);
    const char *vf = bad ? NULL : opt_string(root, "validation_file", "validation_file", r, &bad);
    const char *suffix = bad ? NULL : opt_string(root, "suffix", "suffix", r, &bad);
    if (bad) goto out;
    if (!model) {
        api_reply_error(r, 400, "invalid_request_error", "model", "missing_required_parameter", "model is required");
        goto out;
    }
    if (!tf) {
        api_reply_error(r, 400, "invalid_request_error", "training_file", "missing_required_parameter",
                        "training_file is required");
        goto out;
    }
    if (suffix && (strlen(suffix) > 64 || strpbrk(suffix, ": /"))) {
        api_reply_error(r, 400, "invalid_request_error", "suffix", "invalid_value",
                        "suffix: at most 64 characters, without ':', '/' or spaces");
        goto out;
    }
    const cJSON *seed = cJSON_GetObjectItem(root, "seed"), *meta = cJSON_GetObjectItem(root, "metadata");
    if (seed && !cJSON_IsNull(seed) && (!cJSON_IsNumber(seed) || seed->valuedouble < 0 || seed->valuedouble > 2147483647 ||
                                        seed->valuedouble != (double)(int64_t)seed->valuedouble)) {
        api_reply_error(r, 400, "invalid_request_error", "seed", "invalid_value", "seed must be an integer in [0, 2^31)");
        goto out;
    }
    if (meta && !cJSON_IsNull(meta) && !cJSON_IsObject(meta)) {
        api_reply_error(r, 400, "invalid_request_error", "metadata", "invalid_type", "metadata must be an object");
        goto out;
    }
    // method: {"type", "<type>": {"hyperparameters", "grader"}}; or the legacy top-level hyperparameters (SFT)
    const cJSON *method = cJSON_GetObjectItem(root, "method");
    const char *type = "supervised";
    const cJSON *hyper = cJSON_GetObjectItem(root, "hyperparameters"), *grader = NULL;
    char prefix[64] = "hyperparameters";
    if (method && !cJSON_IsNull(method)) {
        const cJSON *t = cJSON_GetObjectItem(method, "type");
        if (!cJSON_IsObject(method) || !cJSON_IsString(t)) {
            api_reply_error(r, 400, "invalid_request_error", "method.type", "invalid_value",
                            "method must be an object with a type");
            goto out;
        }
        type = t->valuestring;
        if (strcmp(type, "supervised") && strcmp(type, "reinforcement")) {
            api_reply_error(r, 400, "invalid_request_error", "method.type", "invalid_value",
                            "method.type must be 'supervised' or 'reinforcement' (got '%.40s')", type);
            goto out;
        }
        const cJSON *sub = cJSON_GetObjectItem(method, type);
        if (sub && !cJSON_IsNull(sub) && !cJSON_IsObject(sub)) {
            api_reply_error(r, 400, "invalid_request_error", "method", "invalid_type", "method.%s must be an object", type);
            goto out;
        }
        const cJSON *h2 = cJSON_GetObjectItem(sub, "hyperparameters");
        if (h2 && !cJSON_IsNull(h2)) {
            hyper = h2;
            snprintf(prefix, sizeof(prefix), "method.%s.hyperparameters", type);
        }
        grader = cJSON_GetObjectItem(sub, "grader");
    }
    if (hyper && !cJSON_IsNull(hyper) && !cJSON_IsObject(hyper)) {
        api_reply_error(r, 400, "invalid_request_error", prefix, "invalid_type", "%s must be an object", prefix);
        goto out;
    }
    const char *variant = NULL;
    if (!strcmp(type, "reinforcement") && grader && !cJSON_IsNull(grader)) {
        const cJSON *gt = cJSON_GetObjectItem(grader, "type"), *gv = cJSON_GetObjectItem(grader, "variant");
        if (!cJSON_IsObject(grader) || !cJSON_IsString(gt) || strcmp(gt->valuestring, "tool_call")) {
            api_reply_error(r, 400, "invalid_request_error", "method.reinforcement.grader.type", "invalid_value",
                            "the grader must be {\"type\": \"tool_call\", \"variant\": \"binary\" (default) | "
                            "\"no_think\" | \"partial\" | \"partial_funcname\" | …}");
            goto out;
        }
        if (gv && !cJSON_IsString(gv)) {
            api_reply_error(r, 400, "invalid_request_error", "method.reinforcement.grader.variant", "invalid_type",
                            "grader.variant must be a string");
            goto out;
        }
        variant = gv ? gv->valuestring : NULL;
    }
    train_config cfg;
    trl_err e = {{0}};
    if (train_config_from_json(&cfg, type, cJSON_IsObject(hyper) ? hyper : NULL, variant, &e)) {
        if (variant && strstr(e.msg, "reward"))
            api_reply_error(r, 400, "invalid_request_error", "method.reinforcement.grader.variant", "invalid_value",
                            "%s", e.msg);
        else hyper_error(r, prefix, e.msg);
        goto out;
    }
    // the model: the base model or a fine-tuned one in the store
    const char *known = api_model_resolve(a, who, model);
    if (!known) {
        api_reply_error(r, 404, "invalid_request_error", "model", "model_not_found",
                        "The model `%.200s` does not exist or you do not have access to it.", model);
        goto out;
    }
    model = known;
    // the files: present, for fine-tuning, and valid
    const char *files[2] = {tf, vf}, *params[2] = {"training_file", "validation_file"};
    for (int k = 0; k < 2; k++) {
        if (!files[k]) continue;
        store_file f = {0};
        pthread_mutex_lock(&a->mu);
        int rc = store_file_get(a->db, files[k], &f, &e);
        pthread_mutex_unlock(&a->mu);
        if (rc == TRL_OK && !api_sees(who, f.project)) rc = TRL_NOT_FOUND;  // another project's: as none
        if (rc == TRL_NOT_FOUND) {
            api_reply_error(r, 400, "invalid_request_error", params[k], "invalid_file", "No file with id '%.100s'",
                            files[k]);
        } else if (rc) {
            api_reply_error(r, 500, "server_error", NULL, NULL, "store: %s", e.msg);
        } else if (strcmp(f.purpose, "fine-tune")) {
            api_reply_error(r, 400, "invalid_request_error", params[k], "invalid_file",
                            "File %s has purpose '%s', not 'fine-tune'", f.id, f.purpose);
            rc = 1;
        } else if (strcmp(f.status, "processed")) {
            api_reply_error(r, 400, "invalid_request_error", params[k], "invalid_file",
                            "File %s failed validation: %.400s", f.id, f.error ? f.error : f.status);
            rc = 1;
        }
        store_file_clear(&f);
        if (rc) goto out;
    }
    char *hyper_s = cJSON_IsObject(hyper) ? cJSON_PrintUnformatted(hyper) : NULL;
    char *method_s = method && cJSON_IsObject(method) ? cJSON_PrintUnformatted(method) : NULL;
    char *meta_s = cJSON_IsObject(meta) ? cJSON_PrintUnformatted(meta) : NULL;
    store_job_new jn = {0};
    jn.model = model;
    jn.method = type;
    jn.method_config = method_s;
    jn.hyperparameters = hyper_s ? hyper_s : "{}";
    jn.training_file = tf;
    jn.validation_file = vf;
    jn.suffix = suffix;
    jn.metadata = meta_s;
    jn.seed = cJSON_IsNumber(seed) ? (int64_t)seed->valuedouble : (int64_t)cfg.seed;
    jn.validate = 1;
    jn.project = api_project(rq);
    store_job j = {0};
    pthread_mutex_lock(&a->mu);
    int rc = store_job_create(a->db, &jn, &j, &e);
    // the files were validated at upload; the job is ready for a worker at once
    if (rc == TRL_OK) rc = store_job_validated(a->db, j.id, NULL, &e);
    if (rc == TRL_OK) {
        char id[STORE_ID_MAX];
        snprintf(id, sizeof(id), "%s", j.id);
        store_job_clear(&j);
        rc = store_job_get(a->db, id, &j, &e);
    }
    pthread_mutex_unlock(&a->mu);
    if (rc) api_reply_error(r, 500, "server_error", NULL, NULL, "store: %s", e.msg);
    else api_reply_json(r, 200, job_json(&j));
    store_job_clear(&j);
    free(hyper_s), free(method_s), free(meta_s);
out:
    cJSON_Delete(root);
}

// POST …/jobs/{id}/checkpoints/{ckpt}/serve: the checkpoint becomes a model of its own (named
// by its fine_tuned_model_checkpoint) and the served one; /v1/chat/completions answers with it.
static void serve_checkpoint(api *a, const api_principal *who, const char *job_id, const char *ckpt_id,
                             api_reply *r) {
    trl_err e = {{0}};
    store_checkpoints l = {0};
    store_page pg = {.after = NULL, .limit = 10000, .ascending = 1};
    store_job j = {0};
    pthread_mutex_lock(&a->mu);
    int rc = store_job_get(a->db, job_id, &j, &e);
    if (rc == TRL_OK && !api_sees(who, j.project)) rc = TRL_NOT_FOUND;  // the job's checkpoints are its project's
    if (rc == TRL_OK) rc = store_checkpoint_list(a->db, job_id, &pg, &l, &e);
    const store_checkpoint *ck = NULL;
    for (int i = 0; rc == TRL_OK && i < l.n; i++)
        if (!strcmp(l.items[i].id, ckpt_id)) ck = &l.items[i];
    if (ck && ck->model_name) {
        store_model_new mn = {
            .id = ck->model_name, .kind = "fine-tuned", .base_model = j.model, .job_id = job_id, .path = ck->path};
        rc = store_model_upsert(a->db, &mn, &e);
        if (rc == TRL_OK) rc = store_model_set_served(a->db, ck->model_name, &e);
    }
    pthread_mutex_unlock(&a->mu);
    if (!ck) api_reply_error(r, 404, "invalid_request_error", "id", "not_found", "No checkpoint '%.60s' in job %.60s",
                             ckpt_id, job_id);
    else if (rc) api_reply_error(r, 500, "server_error", NULL, NULL, "store: %s", e.msg);
    else api_reply_json(r, 200, api_model_object(a, who, ck->model_name));
    store_job_clear(&j);
    store_checkpoints_free(&l);
}

// ---- endpoints (server/routes.c) ----------------------------------------------------------

// GET /v1/fine_tuning/hyperparameters?method=reinforcement|supervised: the defaults, for forms.
void api_jobs_get_hyperparameters(api *a, const api_request *rq, api_reply *r) {
    (void)a;
    const char *m = rq->arg(rq->arg_ctx, "method");
    train_config c;
    train_config_defaults(&c, m && !strcmp(m, "supervised") ? TRAIN_SFT : TRAIN_GRPO);
    api_reply_json(r, 200, train_config_to_json(&c));
}

// POST /v1/fine_tuning/jobs
void api_jobs_create(api *a, const api_request *rq, api_reply *r) { create_job(a, rq, r); }

// GET /v1/fine_tuning/jobs?after=&limit=
void api_jobs_list(api *a, const api_request *rq, api_reply *r) {
    trl_err e = {{0}};
    store_page pg;
    if (api_page(rq->arg, rq->arg_ctx, &pg, r)) return;
    pg.project = api_list_project(rq);
    store_jobs l = {0};
    pthread_mutex_lock(&a->mu);
    int rc = store_job_list(a->db, &pg, &l, &e);
    pthread_mutex_unlock(&a->mu);
    if (rc) return api_reply_store_error(r, rc, &e, "fine-tuning job", pg.after ? pg.after : "");
    cJSON *data = cJSON_CreateArray();
    for (int i = 0; i < l.n; i++) cJSON_AddItemToArray(data, job_json(&l.items[i]));
    api_reply_json(r, 200, api_list(data, l.has_more));
    store_jobs_free(&l);
}

// GET /v1/fine_tuning/jobs/{job_id}
void api_jobs_retrieve(api *a, const api_request *rq, api_reply *r) {
    const char *id = rq->params[0];
    if (!api_id_ok(id, "fine-tuning job", r)) return;
    trl_err e = {{0}};
    store_job j = {0};
    pthread_mutex_lock(&a->mu);
    int rc = store_job_get(a->db, id, &j, &e);
    pthread_mutex_unlock(&a->mu);
    if (rc == TRL_OK && !strcmp(j.method, "eval")) rc = TRL_NOT_FOUND;  // an eval run (/v1/evals/…/runs)
    if (rc == TRL_OK && !api_sees(api_who(rq), j.project)) rc = TRL_NOT_FOUND;  // another project's: as none
    if (rc) api_reply_store_error(r, rc, &e, "fine-tuning job", id);
    else api_reply_json(r, 200, job_json(&j));
    store_job_clear(&j);
}

// POST /v1/fine_tuning/jobs/{job_id}/cancel
void api_jobs_cancel(api *a, const api_request *rq, api_reply *r) {
    const char *id = rq->params[0];
    if (!api_id_ok(id, "fine-tuning job", r)) return;
    trl_err e = {{0}};
    store_job j = {0};
    pthread_mutex_lock(&a->mu);
    int rc = store_job_get(a->db, id, &j, &e);  // a job's project never changes: the check holds
    if (rc == TRL_OK && !api_sees(api_who(rq), j.project)) rc = TRL_NOT_FOUND;  // another project's: as none
    store_job_clear(&j);
    if (rc == TRL_OK) rc = store_job_cancel(a->db, id, &j, &e);
    pthread_mutex_unlock(&a->mu);
    if (rc == TRL_CONFLICT)
        api_reply_error(r, 400, "invalid_request_error", NULL, "job_finished",
                        "The job %s has already finished and cannot be cancelled", id);
    else if (rc) api_reply_store_error(r, rc, &e, "fine-tuning job", id);
    else api_reply_json(r, 200, job_json(&j));
    store_job_clear(&j);
}

// POST /v1/fine_tuning/jobs/{job_id}/checkpoints/{checkpoint_id}/serve
void api_jobs_serve_checkpoint(api *a, const api_request *rq, api_reply *r) {
    if (!api_id_ok(rq->params[0], "fine-tuning job", r)) return;
    serve_checkpoint(a, api_who(rq), rq->params[0], rq->params[1], r);
}

// GET …/jobs/{job_id}/events and …/checkpoints (newest first, after=&limit=).
static void list_job_items(api *a, const api_request *rq, int events, api_reply *r) {
    const char *id = rq->params[0];
    if (!api_id_ok(id, "fine-tuning job", r)) return;
    trl_err e = {{0}};
    store_page pg;
    if (api_page(rq->arg, rq->arg_ctx, &pg, r)) return;
    store_job j = {0};
    pthread_mutex_lock(&a->mu);
    int rc = store_job_get(a->db, id, &j, &e);
    if (rc == TRL_OK && !api_sees(api_who(rq), j.project)) {  // another project's job: as none
        store_job_clear(&j);
        rc = TRL_NOT_FOUND;
    }
    cJSON *data = cJSON_CreateArray();
    int more = 0;
    if (rc == TRL_OK && events) {
        store_events l = {0};
        rc = store_event_list(a->db, id, &pg, &l, &e);
        for (int i = 0; i < l.n; i++) cJSON_AddItemToArray(data, api_event_json(&l.items[i], "fine_tuning.job.event"));
        more = l.has_more;
        store_events_free(&l);
    } else if (rc == TRL_OK) {
        store_checkpoints l = {0};
        rc = store_checkpoint_list(a->db, id, &pg, &l, &e);
        for (int i = 0; i < l.n; i++) cJSON_AddItemToArray(data, checkpoint_json(&l.items[i]));
        more = l.has_more;
        store_checkpoints_free(&l);
    }
    pthread_mutex_unlock(&a->mu);
    if (rc) {
        cJSON_Delete(data);
        api_reply_store_error(r, rc, &e, rc == TRL_NOT_FOUND && j.id ? "event" : "fine-tuning job",
                              rc == TRL_NOT_FOUND && j.id ? pg.after : id);
    } else {
        api_reply_json(r, 200, api_list(data, more));
    }
    store_job_clear(&j);
}

void api_jobs_list_events(api *a, const api_request *rq, api_reply *r) { list_job_items(a, rq, 1, r); }
void api_jobs_list_checkpoints(api *a, const api_request *rq, api_reply *r) { list_job_items(a, rq, 0, r); }
