// routes.c: the endpoints of `toolrl serve`, one entry each (method, pattern, handler, auth,
// body), and the matcher that finds a request's entry (see routes.h). The table is the list of
// what the server answers; docs/api.md describes each endpoint.
#include "server/routes.h"

#include <stdio.h>
#include <string.h>

// clang-format off
const route routes_table[] = {
    // the dashboard (public: its own API calls carry the key) and the probes
    {.method = "GET",    .path = "/",                         .serve = server_get_static,  .auth = ROUTE_AUTH_PUBLIC},
    {.method = "GET",    .path = "/index.html",               .serve = server_get_static,  .auth = ROUTE_AUTH_PUBLIC},
    {.method = "GET",    .path = "/web/{file*}",              .serve = server_get_static,  .auth = ROUTE_AUTH_PUBLIC},
    {.method = "GET",    .path = "/vendor/dygraphs/{file*}",  .serve = server_get_static,  .auth = ROUTE_AUTH_PUBLIC},
    {.method = "GET",    .path = "/health",                   .serve = server_get_health,  .auth = ROUTE_AUTH_PUBLIC},
    {.method = "GET",    .path = "/metrics",                  .serve = server_get_metrics},
    // models and chat (chat_completion.c)
    {.method = "GET",    .path = "/v1/models",                .serve = server_list_models},
    {.method = "GET",    .path = "/v1/models/{model}",        .serve = server_get_model},
    {.method = "POST",   .path = "/v1/chat/completions",      .serve = server_create_chat_completion, .body = ROUTE_BODY_JSON},
    // Files (api_files.c)
    {.method = "POST",   .path = "/v1/files",                 .store = api_files_create,   .body = ROUTE_BODY_UPLOAD},
    {.method = "GET",    .path = "/v1/files",                 .store = api_files_list},
    {.method = "GET",    .path = "/v1/files/{file_id}",       .store = api_files_retrieve},
    {.method = "DELETE", .path = "/v1/files/{file_id}",       .store = api_files_delete},
    {.method = "GET",    .path = "/v1/files/{file_id}/content", .store = api_files_content},
    // Fine-tuning (api_jobs.c)
    {.method = "POST",   .path = "/v1/fine_tuning/jobs",      .store = api_jobs_create,    .body = ROUTE_BODY_JSON},
    {.method = "GET",    .path = "/v1/fine_tuning/jobs",      .store = api_jobs_list},
    {.method = "GET",    .path = "/v1/fine_tuning/jobs/{job_id}",             .store = api_jobs_retrieve},
    {.method = "POST",   .path = "/v1/fine_tuning/jobs/{job_id}/cancel",      .store = api_jobs_cancel},
    {.method = "GET",    .path = "/v1/fine_tuning/jobs/{job_id}/events",      .store = api_jobs_list_events},
    {.method = "GET",    .path = "/v1/fine_tuning/jobs/{job_id}/checkpoints", .store = api_jobs_list_checkpoints},
    {.method = "POST",   .path = "/v1/fine_tuning/jobs/{job_id}/checkpoints/{checkpoint_id}/serve",
                                                              .store = api_jobs_serve_checkpoint},
    {.method = "GET",    .path = "/v1/fine_tuning/hyperparameters", .store = api_jobs_get_hyperparameters},
    // evaluation results and runs (api_evals.c)
    {.method = "GET",    .path = "/v1/evals",                 .store = api_evals_list_results},
    {.method = "POST",   .path = "/v1/evals/{eval}/runs",     .store = api_evals_create_run, .body = ROUTE_BODY_JSON},
    {.method = "GET",    .path = "/v1/evals/{eval}/runs",     .store = api_evals_list_runs},
    {.method = "GET",    .path = "/v1/evals/{eval}/runs/{run_id}",        .store = api_evals_retrieve_run},
    {.method = "POST",   .path = "/v1/evals/{eval}/runs/{run_id}",        .store = api_evals_cancel_run},
    {.method = "GET",    .path = "/v1/evals/{eval}/runs/{run_id}/events", .store = api_evals_list_run_events},
};
// clang-format on
const int routes_count = (int)(sizeof(routes_table) / sizeof(routes_table[0]));

// Matches path against pattern (both begin with '/'), copying the captures into m->buf.
static int path_matches(const char *pattern, const char *path, route_match *m) {
    const char *p = pattern + 1, *u = path + 1;
    size_t used = 0;
    int n = 0;
    for (;;) {
        size_t pl = strcspn(p, "/"), ul = strcspn(u, "/");
        if (p[0] == '{') {
            int rest = pl >= 3 && p[pl - 2] == '*';  // {name*}: the rest of the path
            size_t len = rest ? strlen(u) : ul;
            if ((!rest && len == 0) || n == API_MAX_PARAMS || used + len + 1 > sizeof(m->buf)) return 0;
            memcpy(m->buf + used, u, len);
            m->buf[used + len] = 0;
            m->params[n++] = m->buf + used;
            used += len + 1;
            if (rest) {
                m->n_params = n;
                return 1;
            }
        } else if (pl != ul || memcmp(p, u, pl) != 0) {
            return 0;
        }
        p += pl, u += ul;
        if (!*p || !*u) {
            if (*p || *u) return 0;
            m->n_params = n;
            return 1;
        }
        p++, u++;  // both at a '/'
    }
}

// The methods a path allows, in this order, for the Allow header and the 405 message.
static const char *const METHODS[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};
#define N_METHODS ((int)(sizeof(METHODS) / sizeof(METHODS[0])))

routes_result routes_match(const route *table, int n, const char *method, const char *path, route_match *m) {
    m->route = m->path_route = NULL;
    m->n_params = 0;
    m->allow[0] = m->use[0] = 0;
    if (path[0] != '/' || strlen(path) >= ROUTES_PATH_MAX) return ROUTES_NOT_FOUND;
    const char *want = strcmp(method, "HEAD") ? method : "GET";
    int allowed[N_METHODS] = {0};
    for (int i = 0; i < n; i++) {
        if (!path_matches(table[i].path, path, m)) continue;
        if (!m->path_route) m->path_route = &table[i];
        if (!strcmp(table[i].method, want)) {
            m->route = &table[i];
            return ROUTES_FOUND;
        }
        for (int k = 0; k < N_METHODS; k++)
            if (!strcmp(table[i].method, METHODS[k])) allowed[k] = 1;
    }
    m->n_params = 0;
    if (!m->path_route) return ROUTES_NOT_FOUND;
    if (allowed[0]) allowed[1] = 1;  // GET answers HEAD
    int n_use = 0, k_use = 0;
    for (int k = 0; k < N_METHODS; k++) n_use += allowed[k] && k != 1;
    size_t a = 0, u = 0;
    for (int k = 0; k < N_METHODS; k++) {
        if (!allowed[k]) continue;
        a += (size_t)snprintf(m->allow + a, sizeof(m->allow) - a, "%s%s", a ? ", " : "", METHODS[k]);
        if (k == 1) continue;  // HEAD goes without saying in the message
        k_use++;
        const char *sep = k_use == 1 ? "" : k_use == n_use ? " or " : ", ";
        u += (size_t)snprintf(m->use + u, sizeof(m->use) - u, "%s%s", sep, METHODS[k]);
    }
    return ROUTES_BAD_METHOD;
}
