// api_internal.h: what api.c, api_files.c, api_jobs.c and api_evals.c share (not for other modules).
#ifndef TOOLRL_API_INTERNAL_H
#define TOOLRL_API_INTERNAL_H

#include <pthread.h>

#include "server/api.h"
#include "store/store.h"

struct api {
    store *db;              // one handle, used under mu (SQLite serialized mode)
    pthread_mutex_t mu;
    char data_dir[1024];
    size_t max_upload;
    char base_id[256], base_alias[256], base_path[1024];
};

// Parses ?after=&limit= into a store page (limit 1..100, default 20). -1 with r filled on error.
int api_page(api_arg_fn arg, void *ctx, store_page *pg, api_reply *r);
// A model a job of who may name: the base model (by id or alias, returned as its id) or a model
// in the store that who sees (returned as given); NULL when there is none.
const char *api_model_resolve(api *a, const api_principal *who, const char *name);
// The principal of a request (the keyless one for NULL), the project what it makes goes to,
// whether it sees a row of project, and the project its lists keep to (NULL: every project).
const api_principal *api_who(const api_request *rq);
const char *api_project(const api_request *rq);
int api_sees(const api_principal *who, const char *project);
const char *api_list_project(const api_request *rq);
// The list object {"object":"list","data":[…],"has_more":…,"first_id","last_id"}.
cJSON *api_list(cJSON *data, int has_more);
// Stored JSON text as a value; JSON null when there is none (or it does not parse).
cJSON *api_json_or_null(const char *s);
// A job's event: object is "fine_tuning.job.event" (fine-tuning jobs) or "eval.run.event".
cJSON *api_event_json(const store_event *ev, const char *object);
void api_reply_json(api_reply *r, int status, cJSON *j);
// An error from the store: 404 for TRL_NOT_FOUND (naming what), 409 for a conflict, else 500.
void api_reply_store_error(api_reply *r, int rc, const trl_err *e, const char *what, const char *id);

// An id captured from the path: 1 when it may name a row; else 0 with r a 404 naming what.
int api_id_ok(const char *id, const char *what, api_reply *r);

#endif
