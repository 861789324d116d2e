// api_evals.c: evaluation results and runs over REST, runs in the shape of OpenAI's Evals runs.
// An eval is one of the benchmarks the project measures (bfcl, apibank); a run evaluates one
// model on it and is queued in the job store (method 'eval') for a worker, which writes the
// per-category scores to eval_results (see eval/runner.h, trainer/worker.c).
//   GET  /v1/evals?model=&suite=&after=&limit=   stored results, newest first
//   POST /v1/evals/{suite}/runs            {"model", "categories"?, "limit"?, "max_tokens"?}
//   GET  /v1/evals/{suite}/runs            list, newest first (after, limit)
//   GET  /v1/evals/{suite}/runs/{id}       the run with its results once completed
//   POST /v1/evals/{suite}/runs/{id}       cancel (as OpenAI's API)
//   GET  /v1/evals/{suite}/runs/{id}/events
// A run and its results are the project's of whoever queued it; others get 404 as for no run.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/runner.h"
#include "server/api_internal.h"

static const char *run_status(const char *job_status) {
    if (!strcmp(job_status, "running")) return "in_progress";
    if (!strcmp(job_status, "succeeded")) return "completed";
    if (!strcmp(job_status, "cancelled")) return "canceled";
    if (!strcmp(job_status, "failed")) return "failed";
    return "queued";  // validating_files, queued
}

// The run object; with the store at hand (under a->mu) the results of a completed run.
static cJSON *run_json(api *a, const store_job *j) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "eval.run");
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "eval_id", j->training_file);
    cJSON_AddStringToObject(o, "model", j->model);
    cJSON_AddStringToObject(o, "status", run_status(j->status));
    cJSON_AddNumberToObject(o, "created_at", (double)j->created_at);
    cJSON *ds = j->method_config ? cJSON_Parse(j->method_config) : NULL;
    if (!ds) ds = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "data_source", ds);
    cJSON *pr = cJSON_AddObjectToObject(o, "progress");
    cJSON_AddNumberToObject(pr, "done", (double)j->step);
    cJSON_AddNumberToObject(pr, "total", (double)j->total_steps);
    cJSON *err = j->error ? cJSON_Parse(j->error) : NULL;
    if (err) cJSON_AddItemToObject(o, "error", err);
    else cJSON_AddNullToObject(o, "error");
    store_evals l = {0};
    trl_err e = {{0}};
    cJSON *per = cJSON_AddArrayToObject(o, "per_category_results"), *sum = NULL;
    long total = 0, passed = 0;
    const char *report = NULL;
    if (!strcmp(j->status, "succeeded") && store_eval_list_job(a->db, j->id, &l, &e) == TRL_OK) {
        for (int i = 0; i < l.n; i++) {
            const store_eval *r = &l.items[i];
            if (r->n_cases == 0) {  // the summary lines
                if (!sum) sum = cJSON_CreateObject();
                cJSON_AddNumberToObject(sum, r->category, r->score);
                continue;
            }
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "category", r->category);
            cJSON_AddNumberToObject(c, "score", r->score);
            cJSON_AddNumberToObject(c, "n_cases", (double)r->n_cases);
            long ok = (long)(r->score * (double)r->n_cases + 0.5);
            cJSON_AddNumberToObject(c, "passed", (double)ok);
            cJSON_AddItemToArray(per, c);
            total += (long)r->n_cases;
            passed += ok;
            if (r->report_path) report = r->report_path;
        }
        cJSON *rc = cJSON_AddObjectToObject(o, "result_counts");
        cJSON_AddNumberToObject(rc, "total", (double)total);
        cJSON_AddNumberToObject(rc, "passed", (double)passed);
        cJSON_AddNumberToObject(rc, "failed", (double)(total - passed));
        cJSON_AddNumberToObject(rc, "errored", 0);
    } else {
        cJSON_AddNullToObject(o, "result_counts");
    }
    if (sum) cJSON_AddItemToObject(o, "summary", sum);
    else cJSON_AddNullToObject(o, "summary");
    if (report) cJSON_AddStringToObject(o, "report_path", report);
    else cJSON_AddNullToObject(o, "report_path");
    store_evals_free(&l);
    return o;
}

static int bad(api_reply *r, const char *param, const char *code, const char *msg) {
    api_reply_error(r, 400, "invalid_request_error", param, code, "%s", msg);
    return 1;
}

static int create_run(api *a, const api_request *rq, const char *suite, api_reply *r) {
    const char *body = rq->body;
    size_t len = rq->len;
    cJSON *root = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return bad(r, NULL, "invalid_json", "The body is not a JSON object.");
    }
    const cJSON *model = cJSON_GetObjectItem(root, "model"), *cats = cJSON_GetObjectItem(root, "categories");
    const cJSON *limit = cJSON_GetObjectItem(root, "limit"), *mt = cJSON_GetObjectItem(root, "max_tokens");
    cJSON *cfg = NULL;
    int done = 1;
    if (!model) bad(r, "model", "missing_required_parameter", "model is required");
    else if (!cJSON_IsString(model) || !model->valuestring[0]) bad(r, "model", "invalid_type", "model must be a string");
    else if (cats && !cJSON_IsNull(cats) && (!cJSON_IsArray(cats) || !cJSON_GetArraySize(cats)))
        bad(r, "categories", "invalid_type", "categories must be a non-empty array of category names");
    else if (cats && !cJSON_IsNull(cats) && strcmp(suite, "bfcl"))
        bad(r, "categories", "invalid_value", "categories apply to the bfcl eval only");
    else if (limit && !cJSON_IsNull(limit) &&
             (!cJSON_IsNumber(limit) || limit->valuedouble < 1 || limit->valuedouble > 1e6 ||
              limit->valuedouble != (double)(int)limit->valuedouble))
        bad(r, "limit", "invalid_value", "limit must be a positive integer (examples per category)");
    else if (mt && !cJSON_IsNull(mt) &&
             (!cJSON_IsNumber(mt) || mt->valuedouble < 1 || mt->valuedouble > 4096 ||
              mt->valuedouble != (double)(int)mt->valuedouble))
        bad(r, "max_tokens", "invalid_value", "max_tokens must be an integer from 1 to 4096");
    else done = 0;
    if (!done && cJSON_IsArray(cats)) {
        int i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, cats) {
            char param[48];
            snprintf(param, sizeof(param), "categories[%d]", i++);
            if (!cJSON_IsString(c) || !eval_bfcl_category_known(c->valuestring)) {
                api_reply_error(r, 400, "invalid_request_error", param, "invalid_value",
                                "unknown BFCL category (simple_python, multiple, parallel, parallel_multiple, "
                                "irrelevance, live_simple, live_multiple, live_parallel, live_parallel_multiple, "
                                "live_irrelevance, live_relevance)");
                done = 1;
                break;
            }
        }
    }
    if (done) {
        cJSON_Delete(root);
        return 1;
    }
    const char *m = api_model_resolve(a, api_who(rq), model->valuestring);
    if (!m) {
        api_reply_error(r, 404, "invalid_request_error", "model", "model_not_found",
                        "The model `%.200s` does not exist or you do not have access to it.", model->valuestring);
        cJSON_Delete(root);
        return 1;
    }
    trl_err e = {{0}};
    cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "type", "toolrl.suite");
    cJSON_AddStringToObject(cfg, "suite", suite);
    if (cJSON_IsArray(cats)) cJSON_AddItemToObject(cfg, "categories", cJSON_Duplicate(cats, 1));
    else cJSON_AddNullToObject(cfg, "categories");
    if (cJSON_IsNumber(limit)) cJSON_AddNumberToObject(cfg, "limit", limit->valueint);
    else cJSON_AddNullToObject(cfg, "limit");
    cJSON_AddNumberToObject(cfg, "max_tokens", cJSON_IsNumber(mt) ? mt->valueint : 256);
    char *cfg_txt = cJSON_PrintUnformatted(cfg);
    store_job_new jn = {0};
    jn.model = m;
    jn.method = "eval";
    jn.method_config = cfg_txt;
    jn.training_file = suite;
    jn.project = api_project(rq);
    store_job j = {0};
    pthread_mutex_lock(&a->mu);
    int rc = cfg_txt ? store_job_create(a->db, &jn, &j, &e) : trl_errf(&e, "out of memory");
    cJSON *out = rc == TRL_OK ? run_json(a, &j) : NULL;
    pthread_mutex_unlock(&a->mu);
    if (rc) api_reply_store_error(r, rc, &e, "eval run", "");
    else api_reply_json(r, 200, out);
    store_job_clear(&j);
    free(cfg_txt);
    cJSON_Delete(cfg);
    cJSON_Delete(root);
    return 1;
}

// ---- endpoints (server/routes.c) ----------------------------------------------------------

// GET /v1/evals: stored evaluation results (toolrl eval --db, and the runs' own).
void api_evals_list_results(api *a, const api_request *rq, api_reply *r) {
    store_page pg;
    if (api_page(rq->arg, rq->arg_ctx, &pg, r)) return;
    pg.project = api_list_project(rq);
    const char *model = rq->arg(rq->arg_ctx, "model"), *suite = rq->arg(rq->arg_ctx, "suite");
    store_evals l = {0};
    trl_err e = {{0}};
    pthread_mutex_lock(&a->mu);
    int rc = store_eval_list(a->db, model, suite, &pg, &l, &e);
    pthread_mutex_unlock(&a->mu);
    if (rc) return api_reply_store_error(r, rc, &e, "eval result", pg.after ? pg.after : "");
    cJSON *data = cJSON_CreateArray();
    for (int i = 0; i < l.n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", l.items[i].id);
        cJSON_AddStringToObject(o, "object", "eval.result");
        cJSON_AddStringToObject(o, "model", l.items[i].model);
        cJSON_AddStringToObject(o, "suite", l.items[i].suite);
        cJSON_AddStringToObject(o, "category", l.items[i].category);
        cJSON_AddNumberToObject(o, "score", l.items[i].score);
        cJSON_AddNumberToObject(o, "n_cases", (double)l.items[i].n_cases);
        cJSON_AddNumberToObject(o, "created_at", (double)l.items[i].created_at);
        if (l.items[i].job_id) cJSON_AddStringToObject(o, "run_id", l.items[i].job_id);
        else cJSON_AddNullToObject(o, "run_id");
        cJSON_AddItemToArray(data, o);
    }
    api_reply_json(r, 200, api_list(data, l.has_more));
    store_evals_free(&l);
}

// The eval {eval} names (bfcl or apibank), or NULL with r a 404.
static const char *eval_suite(const api_request *rq, api_reply *r) {
    const char *suite = rq->params[0];
    if (!strcmp(suite, "bfcl") || !strcmp(suite, "apibank")) return suite;
    api_reply_error(r, 404, "invalid_request_error", NULL, "not_found", "No eval '%.40s' (bfcl or apibank)", suite);
    return NULL;
}

// POST /v1/evals/{eval}/runs
void api_evals_create_run(api *a, const api_request *rq, api_reply *r) {
    const char *suite = eval_suite(rq, r);
    if (suite) create_run(a, rq, suite, r);
}

// GET /v1/evals/{eval}/runs?after=&limit=
void api_evals_list_runs(api *a, const api_request *rq, api_reply *r) {
    const char *suite = eval_suite(rq, r);
    if (!suite) return;
    trl_err e = {{0}};
    store_page pg;
    if (api_page(rq->arg, rq->arg_ctx, &pg, r)) return;
    pg.project = api_list_project(rq);
    store_jobs l = {0};
    pthread_mutex_lock(&a->mu);
    int rc = store_job_list_kind(a->db, 1, suite, &pg, &l, &e);
    cJSON *data = cJSON_CreateArray();
    for (int i = 0; rc == TRL_OK && i < l.n; i++) cJSON_AddItemToArray(data, run_json(a, &l.items[i]));
    pthread_mutex_unlock(&a->mu);
    if (rc) {
        cJSON_Delete(data);
        api_reply_store_error(r, rc, &e, "eval run", pg.after ? pg.after : "");
    } else {
        api_reply_json(r, 200, api_list(data, l.has_more));
    }
    store_jobs_free(&l);
}

// The run {run_id} of the eval {eval}; called under a->mu. -1 with r filled (404) when there is
// none (a fine-tuning job, a run of the other eval, or another project's run, is none).
static int run_get(api *a, const api_request *rq, store_job *j, api_reply *r) {
    const char *suite = eval_suite(rq, r), *id = rq->params[1];
    if (!suite || !api_id_ok(id, "eval run", r)) return -1;
    trl_err e = {{0}};
    int rc = store_job_get(a->db, id, j, &e);
    if (rc == TRL_OK && (strcmp(j->method, "eval") || strcmp(j->training_file, suite) ||
                         !api_sees(api_who(rq), j->project))) {
        rc = TRL_NOT_FOUND;
        trl_errf(&e, "no eval run %s", id);
    }
    if (rc) api_reply_store_error(r, rc, &e, "eval run", id);
    return rc ? -1 : 0;
}

// GET /v1/evals/{eval}/runs/{run_id}: status, progress, and the results once completed.
void api_evals_retrieve_run(api *a, const api_request *rq, api_reply *r) {
    store_job j = {0};
    pthread_mutex_lock(&a->mu);
    if (run_get(a, rq, &j, r) == 0) api_reply_json(r, 200, run_json(a, &j));
    pthread_mutex_unlock(&a->mu);
    store_job_clear(&j);
}

// POST /v1/evals/{eval}/runs/{run_id}: cancel (as OpenAI's API).
void api_evals_cancel_run(api *a, const api_request *rq, api_reply *r) {
    const char *id = rq->params[1];
    store_job j = {0};
    pthread_mutex_lock(&a->mu);
    if (run_get(a, rq, &j, r) == 0) {
        trl_err e = {{0}};
        store_job_clear(&j);
        int rc = store_job_cancel(a->db, id, &j, &e);
        if (rc == TRL_CONFLICT)
            api_reply_error(r, 400, "invalid_request_error", NULL, "run_finished",
                            "The eval run %s has already finished and cannot be canceled", id);
        else if (rc == TRL_OK) api_reply_json(r, 200, run_json(a, &j));
        else api_reply_store_error(r, rc, &e, "eval run", id);
    }
    pthread_mutex_unlock(&a->mu);
    store_job_clear(&j);
}

// GET /v1/evals/{eval}/runs/{run_id}/events?after=&limit=
void api_evals_list_run_events(api *a, const api_request *rq, api_reply *r) {
    const char *id = rq->params[1];
    store_job j = {0};
    store_page pg;
    pthread_mutex_lock(&a->mu);
    if (run_get(a, rq, &j, r) || api_page(rq->arg, rq->arg_ctx, &pg, r)) {
        pthread_mutex_unlock(&a->mu);
        store_job_clear(&j);
        return;
    }
    trl_err e = {{0}};
    store_events l = {0};
    int rc = store_event_list(a->db, id, &pg, &l, &e);
    if (rc == TRL_OK) {
        cJSON *data = cJSON_CreateArray();
        for (int i = 0; i < l.n; i++) cJSON_AddItemToArray(data, api_event_json(&l.items[i], "eval.run.event"));
        api_reply_json(r, 200, api_list(data, l.has_more));
    } else {
        api_reply_store_error(r, rc, &e, "event", pg.after ? pg.after : "");
    }
    store_events_free(&l);
    pthread_mutex_unlock(&a->mu);
    store_job_clear(&j);
}
