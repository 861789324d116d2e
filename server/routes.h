// routes.h: every endpoint of `toolrl serve` in one table (routes.c), in the spirit of redis's
// command table, and the one matcher over it. A pattern is literal segments and {param}
// captures (one non-empty segment each); a last {name*} captures the rest of the path, empty
// included. "GET" entries answer HEAD too. No trailing-slash folding: "/v1/files/" is not
// "/v1/files". server.c answers an unknown path 404, a known path with another method 405
// with an Allow header, and calls the entry's handler otherwise.
#ifndef TOOLRL_ROUTES_H
#define TOOLRL_ROUTES_H

#include "server/api.h"
#include "server/server.h"

typedef enum {
    ROUTE_AUTH_KEY = 0,  // the API key, when the server has one (401 before the body is read)
    ROUTE_AUTH_PUBLIC,   // no key: /health and the dashboard's files
} route_auth;

typedef enum {
    ROUTE_BODY_NONE = 0,  // the body is not read (counted against --max-body all the same)
    ROUTE_BODY_JSON,      // the body is collected (up to --max-body, else 413) into api_request.body
    ROUTE_BODY_UPLOAD,    // multipart/form-data streamed into an api_upload (--max-upload)
} route_body;

// One of the server's own endpoints (server.c): the model, health, metrics, the dashboard.
typedef void (*route_serve_fn)(server *s, const api_request *rq, api_reply *r);

typedef struct {
    const char *method;     // "GET" (answers HEAD too), "POST", "DELETE"
    const char *path;       // the pattern
    api_handler_fn store;   // a handler over the job store (api.h): 404 on a server without --db,
    route_serve_fn serve;   // or one of the server's own; exactly one of the two is set
    route_auth auth;
    route_body body;
} route;

extern const route routes_table[];
extern const int routes_count;

// server.c's handlers in the table.
void server_get_static(server *s, const api_request *rq, api_reply *r);
void server_get_health(server *s, const api_request *rq, api_reply *r);
void server_get_metrics(server *s, const api_request *rq, api_reply *r);
void server_list_models(server *s, const api_request *rq, api_reply *r);
void server_get_model(server *s, const api_request *rq, api_reply *r);
void server_create_chat_completion(server *s, const api_request *rq, api_reply *r);

// ---- the matcher ----
#define ROUTES_PATH_MAX 2048  // longer paths match nothing

typedef enum { ROUTES_FOUND = 0, ROUTES_NOT_FOUND, ROUTES_BAD_METHOD } routes_result;

typedef struct {
    const route *route;       // ROUTES_FOUND: the entry for the method and path
    const route *path_route;  // FOUND, BAD_METHOD: the first entry whose pattern matches the path
    const char *params[API_MAX_PARAMS];  // FOUND: the captures, in the pattern's order (into buf)
    int n_params;
    char allow[64];           // BAD_METHOD: the path's methods for the Allow header ("GET, HEAD, POST")
    char use[64];             // and for the error message ("GET or POST")
    char buf[ROUTES_PATH_MAX];
} route_match;

// Finds method + path (no query) in table[0..n). Fills m (its captures point into m).
routes_result routes_match(const route *table, int n, const char *method, const char *path, route_match *m);

#endif
