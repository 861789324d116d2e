// api_files.c: the Files API: streaming multipart uploads with SHA-256, line-by-line
// validation against the training format, list / retrieve / content / delete (see api.h).
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/example.h"
#include "server/api_internal.h"

struct api_upload {
    api *a;
    char tmp[1200];
    int fd;
    EVP_MD_CTX *sha;
    uint64_t bytes;
    char purpose[64];
    char filename[256];
    int have_file, too_big, io_error, bad_purpose;
};

api_upload *api_upload_begin(api *a) {
    api_upload *u = calloc(1, sizeof(*u));
    if (!u) return NULL;
    u->a = a;
    snprintf(u->tmp, sizeof(u->tmp), "%s/upload-XXXXXX", a->data_dir);
    u->fd = mkstemp(u->tmp);
    u->sha = EVP_MD_CTX_new();
    if (u->fd < 0 || !u->sha || EVP_DigestInit_ex(u->sha, EVP_sha256(), NULL) != 1) {
        if (u->fd >= 0) close(u->fd), unlink(u->tmp);
        EVP_MD_CTX_free(u->sha);
        free(u);
        return NULL;
    }
    return u;
}

void api_upload_data(api_upload *u, const char *key, const char *filename, const char *data, size_t size) {
    if (!strcmp(key, "purpose")) {
        size_t have = strlen(u->purpose);
        if (have + size >= sizeof(u->purpose)) u->bad_purpose = 1;
        else memcpy(u->purpose + have, data, size), u->purpose[have + size] = 0;
        return;
    }
    if (strcmp(key, "file") != 0) return;  // other fields are ignored, as OpenAI does
    u->have_file = 1;
    if (filename && !u->filename[0]) snprintf(u->filename, sizeof(u->filename), "%s", filename);
    if (u->too_big || u->io_error || size == 0) return;
    if (u->bytes + size > u->a->max_upload) {
        u->too_big = 1;
        return;
    }
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(u->fd, data + done, size - done);
        if (w <= 0) {
            u->io_error = 1;
            return;
        }
        done += (size_t)w;
    }
    EVP_DigestUpdate(u->sha, data, size);
    u->bytes += size;
}

static void upload_free(api_upload *u, int remove_tmp) {
    if (u->fd >= 0) close(u->fd);
    if (remove_tmp) unlink(u->tmp);
    EVP_MD_CTX_free(u->sha);
    free(u);
}

void api_upload_abort(api_upload *u) {
    if (u) upload_free(u, 1);
}

static cJSON *file_json(const store_file *f) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", f->id);
    cJSON_AddStringToObject(o, "object", "file");
    cJSON_AddNumberToObject(o, "bytes", (double)f->bytes);
    cJSON_AddNumberToObject(o, "created_at", (double)f->created_at);
    cJSON_AddNullToObject(o, "expires_at");
    cJSON_AddStringToObject(o, "filename", f->filename);
    cJSON_AddStringToObject(o, "purpose", f->purpose);
    cJSON_AddStringToObject(o, "status", f->status);
    if (f->error) cJSON_AddStringToObject(o, "status_details", f->error);
    else cJSON_AddNullToObject(o, "status_details");
    if (f->sha256) cJSON_AddStringToObject(o, "sha256", f->sha256);
    cJSON_AddNumberToObject(o, "line_count", (double)f->line_count);
    return o;
}

// Every non-empty line must be a valid training example. Returns the number of examples,
// or -1 with err set to "line N: …" at the first bad line.
static long validate_lines(const char *path, char *err, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return snprintf(err, cap, "cannot read the upload back"), -1;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    long lineno = 0, examples = 0;
    while ((n = getline(&line, &lcap, f)) > 0) {
        lineno++;
        if (n == 1 && line[0] == '\n') continue;
        if ((size_t)n != strlen(line)) {
            snprintf(err, cap, "line %ld: contains a NUL byte", lineno);
            examples = -1;
            break;
        }
        trl_err e = {{0}};
        if (example_validate_line(line, (size_t)n, &e)) {
            snprintf(err, cap, "line %ld: %.400s", lineno, e.msg);
            examples = -1;
            break;
        }
        examples++;
    }
    free(line);
    fclose(f);
    if (examples == 0) snprintf(err, cap, "the file has no examples"), examples = -1;
    return examples;
}

void api_upload_finish(api_upload *u, int complete, const char *project, api_reply *r) {
    api *a = u->a;
    if (!complete) {
        api_reply_error(r, 400, "invalid_request_error", "file", "invalid_multipart",
                        "The multipart body is incomplete or malformed; nothing was stored.");
        return upload_free(u, 1);
    }
    if (u->too_big) {
        api_reply_error(r, 413, "invalid_request_error", "file", "file_too_large",
                        "The file is larger than the limit of %zu bytes; nothing was stored.", a->max_upload);
        return upload_free(u, 1);
    }
    if (u->io_error) {
        api_reply_error(r, 500, "server_error", NULL, NULL, "could not write the upload to disk");
        return upload_free(u, 1);
    }
    if (!u->have_file) {
        api_reply_error(r, 400, "invalid_request_error", "file", "missing_required_parameter",
                        "Missing the 'file' field of the multipart form.");
        return upload_free(u, 1);
    }
    if (u->bad_purpose || !u->purpose[0] || (strcmp(u->purpose, "fine-tune") && strcmp(u->purpose, "evals"))) {
        api_reply_error(r, 400, "invalid_request_error", "purpose", "invalid_value",
                        "purpose must be 'fine-tune' (or 'evals'), got '%.40s'", u->purpose);
        return upload_free(u, 1);
    }
    char err[512] = "";
    long examples = validate_lines(u->tmp, err, sizeof(err));
    if (examples < 0) {
        api_reply_error(r, 400, "invalid_request_error", "file", "invalid_file",
                        "%s; nothing was stored (every line must be a training example: docs/data.md)", err);
        return upload_free(u, 1);
    }
    if (fsync(u->fd)) {
        api_reply_error(r, 500, "server_error", NULL, NULL, "could not sync the upload to disk");
        return upload_free(u, 1);
    }
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(u->sha, md, &mdlen);
    char hex[65];
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    char id[STORE_ID_MAX], path[1300];
    trl_err e = {{0}};
    if (store_id_new("file", id, &e)) {
        api_reply_error(r, 500, "server_error", NULL, NULL, "%s", e.msg);
        return upload_free(u, 1);
    }
    snprintf(path, sizeof(path), "%s/%s.jsonl", a->data_dir, id);
    if (rename(u->tmp, path)) {
        api_reply_error(r, 500, "server_error", NULL, NULL, "could not store the upload: %s", strerror(errno));
        return upload_free(u, 1);
    }
    int dfd = open(a->data_dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) fsync(dfd), close(dfd);
    store_file_new fn = {id, u->filename[0] ? u->filename : "upload.jsonl", u->purpose, "processed", hex, path,
                         (int64_t)u->bytes, examples, project};
    store_file f = {0};
    pthread_mutex_lock(&a->mu);
    int rc = store_file_create(a->db, &fn, &f, &e);
    pthread_mutex_unlock(&a->mu);
    if (rc) {
        unlink(path);
        api_reply_error(r, 500, "server_error", NULL, NULL, "store: %s", e.msg);
    } else {
        api_reply_json(r, 200, file_json(&f));
    }
    store_file_clear(&f);
    upload_free(u, 0);
}

// ---- endpoints (server/routes.c) ----------------------------------------------------------

// POST /v1/files: the multipart upload server.c has streamed into rq->upload; the file is the
// request's project's.
void api_files_create(api *a, const api_request *rq, api_reply *r) {
    (void)a;
    if (!rq->upload) {
        api_reply_error(r, 400, "invalid_request_error", "file", "invalid_content_type",
                        "POST /v1/files takes multipart/form-data with 'file' and 'purpose' fields");
        return;
    }
    api_upload_finish(rq->upload, rq->upload_complete, api_project(rq), r);
}

// GET /v1/files?purpose=&after=&limit=
void api_files_list(api *a, const api_request *rq, api_reply *r) {
    trl_err e = {{0}};
    store_page pg;
    if (api_page(rq->arg, rq->arg_ctx, &pg, r)) return;
    pg.project = api_list_project(rq);
    const char *purpose = rq->arg(rq->arg_ctx, "purpose");
    store_files l = {0};
    pthread_mutex_lock(&a->mu);
    int rc = store_file_list(a->db, purpose && *purpose ? purpose : NULL, &pg, &l, &e);
    pthread_mutex_unlock(&a->mu);
    if (rc) {
        api_reply_store_error(r, rc, &e, "file", pg.after ? pg.after : "");
        return;
    }
    cJSON *data = cJSON_CreateArray();
    for (int i = 0; i < l.n; i++) cJSON_AddItemToArray(data, file_json(&l.items[i]));
    api_reply_json(r, 200, api_list(data, l.has_more));
    store_files_free(&l);
}

// The file {file_id} names, or -1 with r filled (404; also for a file of a project the request
// does not see, with the same answer as for an id that does not exist).
static int file_get(api *a, const api_request *rq, store_file *f, api_reply *r) {
    const char *id = rq->params[0];
    memset(f, 0, sizeof(*f));
    if (!api_id_ok(id, "file", r)) return -1;
    trl_err e = {{0}};
    pthread_mutex_lock(&a->mu);
    int rc = store_file_get(a->db, id, f, &e);
    pthread_mutex_unlock(&a->mu);
    if (rc == TRL_OK && !api_sees(api_who(rq), f->project)) {
        store_file_clear(f);
        rc = TRL_NOT_FOUND;
    }
    if (rc) api_reply_store_error(r, rc, &e, "file", id);
    return rc ? -1 : 0;
}

// GET /v1/files/{file_id}
void api_files_retrieve(api *a, const api_request *rq, api_reply *r) {
    store_file f;
    if (file_get(a, rq, &f, r)) return;
    api_reply_json(r, 200, file_json(&f));
    store_file_clear(&f);
}

// DELETE /v1/files/{file_id}: the row and the bytes.
void api_files_delete(api *a, const api_request *rq, api_reply *r) {
    store_file f;
    if (file_get(a, rq, &f, r)) return;
    trl_err e = {{0}};
    pthread_mutex_lock(&a->mu);
    int rc = store_file_delete(a->db, f.id, &e);
    pthread_mutex_unlock(&a->mu);
    if (rc) api_reply_store_error(r, rc, &e, "file", f.id);
    else {
        if (f.path) unlink(f.path);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", f.id);
        cJSON_AddStringToObject(o, "object", "file");
        cJSON_AddBoolToObject(o, "deleted", 1);
        api_reply_json(r, 200, o);
    }
    store_file_clear(&f);
}

// GET /v1/files/{file_id}/content: the bytes as uploaded.
void api_files_content(api *a, const api_request *rq, api_reply *r) {
    store_file f;
    if (file_get(a, rq, &f, r)) return;
    int fd = f.path ? open(f.path, O_RDONLY) : -1;
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb)) {
        if (fd >= 0) close(fd);
        api_reply_error(r, 500, "server_error", NULL, NULL, "the file's bytes are missing on disk");
    } else {
        r->status = 200, r->json = NULL, r->fd = fd, r->size = (uint64_t)sb.st_size;
    }
    store_file_clear(&f);
}
