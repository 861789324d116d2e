// api.h: what every endpoint's handler takes and fills (api_request, api_reply; the table of
// endpoints is server/routes.c), and the training REST API in OpenAI's shapes (docs/api.md)
// on top of the job store: Files (/v1/files …), Fine-tuning (/v1/fine_tuning/jobs …),
// evaluation runs and results (/v1/evals …), plus the fine-tuned models of /v1/models.
// HTTP-free: server.c turns each request into one handler call and its reply into HTTP.
//
// Uploads stream: server.c feeds multipart chunks to api_upload_data as they arrive; the
// bytes go to a temporary file in the data folder while their SHA-256 is computed and the
// size limit enforced; api_upload_finish validates every line against the training format
// (data/example.h), then fsyncs and renames the file and only then creates its store row, so
// an acknowledged upload is never lost, and a rejected one (any 4xx or 5xx: too large, cut,
// a bad line, a wrong purpose…) or a cut one leaves nothing behind, neither bytes nor a row.
//
// Projects: each request acts for a principal (api_principal: the project of its key, and
// whether it is an admin). Files, jobs, eval runs and results, and fine-tuned models are made
// in the principal's project and are seen only by it, or by an admin; another project's object
// is answered exactly as one that does not exist (404), so ids tell nothing.
#ifndef TOOLRL_API_H
#define TOOLRL_API_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/util.h"
#include "server/chat_request.h"

typedef struct api api;

// A body made as the client reads it (SSE): read(stream, pos, buf, max) returns the bytes it
// wrote to buf, or API_STREAM_END / API_STREAM_ERROR (the same values and signature as
// libmicrohttpd's content reader); stream_free(stream) runs once, whether or not it was sent.
#define API_STREAM_END ((ssize_t)-1)
#define API_STREAM_ERROR ((ssize_t)-2)
typedef ssize_t (*api_stream_read_fn)(void *stream, uint64_t pos, char *buf, size_t max);

// A handler's answer: status and one body form. Start from api_reply_init.
typedef struct {
    int status;
    cJSON *json;     // the body, or NULL when fd, text or read is used
    int fd;          // >= 0: send this file's bytes (GET …/content), size bytes; closed after
    uint64_t size;
    char *text;      // a text body (malloc'd, freed after sending)
    api_stream_read_fn read;  // a streamed body (see above)
    void (*stream_free)(void *stream);
    void *stream;
    const char *ctype;  // Content-Type of an fd, text or streamed body (default application/octet-stream)
    int no_cache;       // send Cache-Control: no-cache
} api_reply;

// Who a request acts for: the project the objects it makes go to, and whether it sees every
// project (an admin key, the server's own key, or the keyless mode, whose project is "default").
#define API_PROJECT_MAX 65
typedef struct {
    char project[API_PROJECT_MAX];
    int admin;
} api_principal;
extern const api_principal api_keyless;  // the keyless mode's (and the server key's): admin of "default"

// What a presented key is among the stored ones (api_key_check).
typedef enum { API_KEY_OK = 0, API_KEY_UNKNOWN, API_KEY_REVOKED, API_KEY_ERROR } api_key_result;

// Opens the store at db_path (creating it) and the uploads folder data_dir.
int api_init(api **out, const char *db_path, const char *data_dir, size_t max_upload, trl_err *e);
void api_free(api *a);
// The base model clients may fine-tune (its id and an accepted alias).
void api_set_base_model(api *a, const char *id, const char *alias, const char *path);
// Finds key among the stored keys by its hash; API_KEY_OK fills p with its project and role.
api_key_result api_key_check(api *a, const char *key, api_principal *p);
// 1 while the store has a key that is not revoked: then every request needs a key. A store that
// cannot answer counts as having one (requests are refused rather than let through).
int api_keys_required(api *a);

// Looks up a query argument ("after", "limit", "purpose"); NULL when absent.
typedef const char *(*api_arg_fn)(void *ctx, const char *name);

// One request to one endpoint, as its handler sees it (server.c fills it; see server/routes.c).
#define API_MAX_PARAMS 4
typedef struct api_upload api_upload;
typedef struct {
    const char *method;      // "GET" (HEAD arrives as itself and is answered like GET), "POST", …
    const char *path;        // the URL path, without the query
    const char *params[API_MAX_PARAMS];  // the path's {…} segments, in the pattern's order
    int n_params;
    const char *body;        // ROUTE_BODY_JSON: the body, NUL-terminated, len bytes (NULL when empty)
    size_t len;
    api_arg_fn arg;          // query arguments
    void *arg_ctx;
    api_upload *upload;      // ROUTE_BODY_UPLOAD: the multipart upload, streamed already (the handler
                             // finishes it), or NULL when the body was not multipart/form-data
    int upload_complete;     // the multipart body was well-formed and whole
    const api_principal *who;  // whom it acts for; NULL: the keyless mode's (admin, project "default")
} api_request;

// An endpoint over the job store (registered in server/routes.c).
typedef void (*api_handler_fn)(api *a, const api_request *rq, api_reply *r);

// Files (api_files.c)
void api_files_create(api *a, const api_request *rq, api_reply *r);  // POST /v1/files (multipart upload)
void api_files_list(api *a, const api_request *rq, api_reply *r);
void api_files_retrieve(api *a, const api_request *rq, api_reply *r);
void api_files_delete(api *a, const api_request *rq, api_reply *r);
void api_files_content(api *a, const api_request *rq, api_reply *r);
// Fine-tuning (api_jobs.c)
void api_jobs_create(api *a, const api_request *rq, api_reply *r);
void api_jobs_list(api *a, const api_request *rq, api_reply *r);
void api_jobs_retrieve(api *a, const api_request *rq, api_reply *r);
void api_jobs_cancel(api *a, const api_request *rq, api_reply *r);
void api_jobs_list_events(api *a, const api_request *rq, api_reply *r);
void api_jobs_list_checkpoints(api *a, const api_request *rq, api_reply *r);
void api_jobs_serve_checkpoint(api *a, const api_request *rq, api_reply *r);
void api_jobs_get_hyperparameters(api *a, const api_request *rq, api_reply *r);
// Evaluation results and runs (api_evals.c)
void api_evals_list_results(api *a, const api_request *rq, api_reply *r);
void api_evals_create_run(api *a, const api_request *rq, api_reply *r);
void api_evals_list_runs(api *a, const api_request *rq, api_reply *r);
void api_evals_retrieve_run(api *a, const api_request *rq, api_reply *r);
void api_evals_cancel_run(api *a, const api_request *rq, api_reply *r);
void api_evals_list_run_events(api *a, const api_request *rq, api_reply *r);

// Models: appends the fine-tuned models of the store that who sees to data (OpenAI model
// objects); returns a model object for id, or NULL when there is none or who does not see it.
void api_models_append(api *a, const api_principal *who, cJSON *data);
cJSON *api_model_object(api *a, const api_principal *who, const char *id);
// 0 when id is a model of the store that who does not see (another project's fine-tuned model);
// 1 otherwise (the base models, who's own, and names the store does not know).
int api_model_visible(api *a, const api_principal *who, const char *id);

// ---- streaming upload (server.c feeds it; api_files_create finishes it) ----
api_upload *api_upload_begin(api *a);
// A multipart field chunk: "purpose" (text) or "file" (the bytes, with its filename).
void api_upload_data(api_upload *u, const char *key, const char *filename, const char *data, size_t size);
// complete = the multipart body was well-formed and whole; the file goes to project. Always frees u.
void api_upload_finish(api_upload *u, int complete, const char *project, api_reply *r);
void api_upload_abort(api_upload *u);  // connection lost: remove the temporary file

// An empty reply: status 0, no body, fd -1.
void api_reply_init(api_reply *r);
void api_reply_error(api_reply *r, int status, const char *type, const char *param, const char *code,
                     const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#endif
