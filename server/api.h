// api.h: the training REST API in OpenAI's shapes (docs/api.md): Files (/v1/files …) and
// Fine-tuning (/v1/fine_tuning/jobs …), plus the fine-tuned models of /v1/models, on top of
// the job store. HTTP-free: server.c turns requests into these calls and replies into HTTP.
//
// Uploads stream: server.c feeds multipart chunks to api_upload_data as they arrive; the
// bytes go to a temporary file in the data folder while their SHA-256 is computed and the
// size limit enforced; api_upload_finish validates every line against the training format
// (data/example.h), then fsyncs and renames the file and only then creates its store row, so
// an acknowledged upload is never lost and a cut one leaves nothing behind.
#ifndef TOOLRL_API_H
#define TOOLRL_API_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "chat_request.h"
#include "util.h"

typedef struct api api;

typedef struct {
    int status;
    cJSON *json;     // the body, or NULL when fd is used
    int fd;          // >= 0: send this file's bytes (GET …/content), size bytes
    uint64_t size;
} api_reply;

// Opens the store at db_path (creating it) and the uploads folder data_dir.
int api_init(api **out, const char *db_path, const char *data_dir, size_t max_upload, trl_err *e);
void api_free(api *a);
// The base model clients may fine-tune (its id and an accepted alias).
void api_set_base_model(api *a, const char *id, const char *alias, const char *path);

// Looks up a query argument ("after", "limit", "purpose"); NULL when absent.
typedef const char *(*api_arg_fn)(void *ctx, const char *name);

// Handles every /v1/files and /v1/fine_tuning route except the multipart upload. Returns 1
// when url is one of its routes (r filled), 0 otherwise.
int api_handle(api *a, const char *method, const char *url, const char *body, size_t len, api_arg_fn arg,
               void *arg_ctx, api_reply *r);

// Models: appends the fine-tuned models of the store to data (OpenAI model objects); returns
// a model object for id or NULL.
void api_models_append(api *a, cJSON *data);
cJSON *api_model_object(api *a, const char *id);

// ---- streaming upload ----
typedef struct api_upload api_upload;
api_upload *api_upload_begin(api *a);
// A multipart field chunk: "purpose" (text) or "file" (the bytes, with its filename).
void api_upload_data(api_upload *u, const char *key, const char *filename, const char *data, size_t size);
// complete = the multipart body was well-formed and whole. Always frees u.
void api_upload_finish(api_upload *u, int complete, api_reply *r);
void api_upload_abort(api_upload *u);  // connection lost: remove the temporary file

void api_reply_error(api_reply *r, int status, const char *type, const char *param, const char *code,
                     const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#endif
