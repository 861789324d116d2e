// test_routes.c: the route table (server/routes.c) and its matcher: {param} captures, 404 for
// an unknown path vs 405 with the Allow list for a known one, HEAD answered by GET entries,
// no trailing-slash folding, every entry reachable, no two entries able to match one request,
// and each entry well formed (one handler, a known method, public only where it should be).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "server/routes.h"

static route_match M;  // ~2 KB: kept off the stack

static routes_result find(const char *method, const char *path) {
    return routes_match(routes_table, routes_count, method, path, &M);
}

static void test_captures(void **state) {
    (void)state;
    assert_int_equal(find("POST", "/v1/fine_tuning/jobs/ftjob-1/checkpoints/ck-2/serve"), ROUTES_FOUND);
    assert_ptr_equal(M.route->store, api_jobs_serve_checkpoint);
    assert_int_equal(M.n_params, 2);
    assert_string_equal(M.params[0], "ftjob-1");
    assert_string_equal(M.params[1], "ck-2");
    assert_int_equal(find("GET", "/v1/evals/bfcl/runs/evalrun-9/events"), ROUTES_FOUND);
    assert_ptr_equal(M.route->store, api_evals_list_run_events);
    assert_string_equal(M.params[0], "bfcl");
    assert_string_equal(M.params[1], "evalrun-9");
    // a model id keeps its colons and dots
    assert_int_equal(find("GET", "/v1/models/ft:SmolLM2-135M-Instruct.Q4_1.gguf:demo:ftjob-x"), ROUTES_FOUND);
    assert_ptr_equal(M.route->serve, server_get_model);
    assert_string_equal(M.params[0], "ft:SmolLM2-135M-Instruct.Q4_1.gguf:demo:ftjob-x");
    // {name*} takes the rest, slashes and all
    assert_int_equal(find("GET", "/web/sub/app.js"), ROUTES_FOUND);
    assert_ptr_equal(M.route->serve, server_get_static);
    assert_string_equal(M.params[0], "sub/app.js");
    // the method picks the entry among those of one path
    assert_int_equal(find("DELETE", "/v1/files/file-1"), ROUTES_FOUND);
    assert_ptr_equal(M.route->store, api_files_delete);
    assert_int_equal(find("GET", "/v1/files/file-1"), ROUTES_FOUND);
    assert_ptr_equal(M.route->store, api_files_retrieve);
    assert_int_equal(find("POST", "/v1/evals/apibank/runs/evalrun-1"), ROUTES_FOUND);
    assert_ptr_equal(M.route->store, api_evals_cancel_run);
}

static void test_not_found_vs_method(void **state) {
    (void)state;
    assert_int_equal(find("GET", "/v1/nothing-here"), ROUTES_NOT_FOUND);
    assert_null(M.route);
    assert_null(M.path_route);
    assert_int_equal(find("GET", "/v1/files/file-1/other"), ROUTES_NOT_FOUND);
    assert_int_equal(find("GET", "/v1/evals/bfcl/results"), ROUTES_NOT_FOUND);
    assert_int_equal(find("GET", ""), ROUTES_NOT_FOUND);
    assert_int_equal(find("OPTIONS", "*"), ROUTES_NOT_FOUND);

    assert_int_equal(find("GET", "/v1/chat/completions"), ROUTES_BAD_METHOD);
    assert_null(M.route);
    assert_string_equal(M.path_route->path, "/v1/chat/completions");
    assert_string_equal(M.allow, "POST");
    assert_string_equal(M.use, "POST");
    assert_int_equal(find("PUT", "/v1/files"), ROUTES_BAD_METHOD);
    assert_string_equal(M.allow, "GET, HEAD, POST");
    assert_string_equal(M.use, "GET or POST");
    assert_int_equal(find("POST", "/v1/files/file-1"), ROUTES_BAD_METHOD);
    assert_string_equal(M.allow, "GET, HEAD, DELETE");
    assert_string_equal(M.use, "GET or DELETE");
    assert_int_equal(find("DELETE", "/health"), ROUTES_BAD_METHOD);
    assert_string_equal(M.allow, "GET, HEAD");
    assert_string_equal(M.use, "GET");
    assert_int_equal(find("OPTIONS", "/v1/fine_tuning/jobs"), ROUTES_BAD_METHOD);
    assert_string_equal(M.allow, "GET, HEAD, POST");
    assert_int_equal(find("HEAD", "/v1/fine_tuning/jobs/ftjob-1/cancel"), ROUTES_BAD_METHOD);
    assert_string_equal(M.allow, "POST");
}

static void test_head_is_get(void **state) {
    (void)state;
    assert_int_equal(find("HEAD", "/v1/models"), ROUTES_FOUND);
    assert_ptr_equal(M.route->serve, server_list_models);
    assert_int_equal(find("HEAD", "/v1/evals"), ROUTES_FOUND);  // was 405 before the table
    assert_ptr_equal(M.route->store, api_evals_list_results);
    assert_int_equal(find("HEAD", "/v1/files/file-1/content"), ROUTES_FOUND);
    assert_ptr_equal(M.route->store, api_files_content);
    assert_int_equal(find("HEAD", "/"), ROUTES_FOUND);
    assert_ptr_equal(M.route->serve, server_get_static);
}

static void test_trailing_slash(void **state) {
    (void)state;
    // no folding: a trailing slash is another path, and an empty segment captures nothing
    assert_int_equal(find("GET", "/health/"), ROUTES_NOT_FOUND);
    assert_int_equal(find("GET", "/v1/models/"), ROUTES_NOT_FOUND);
    assert_int_equal(find("GET", "/v1/files/"), ROUTES_NOT_FOUND);
    assert_int_equal(find("POST", "/v1/chat/completions/"), ROUTES_NOT_FOUND);
    assert_int_equal(find("GET", "/v1/fine_tuning/jobs//events"), ROUTES_NOT_FOUND);
    assert_int_equal(find("GET", "//v1/models"), ROUTES_NOT_FOUND);
    // a {name*} capture may be empty (the static handler answers 404 "no such file")
    assert_int_equal(find("GET", "/web/"), ROUTES_FOUND);
    assert_string_equal(M.params[0], "");
    assert_int_equal(find("GET", "/web"), ROUTES_NOT_FOUND);
    // the root is its own path
    assert_int_equal(find("GET", "/"), ROUTES_FOUND);
    assert_int_equal(M.n_params, 0);
}

static void test_long_paths(void **state) {
    (void)state;
    static char path[ROUTES_PATH_MAX + 16];
    strcpy(path, "/v1/files/");
    memset(path + 10, 'a', sizeof(path) - 11);
    path[sizeof(path) - 1] = 0;
    assert_int_equal(find("GET", path), ROUTES_NOT_FOUND);
    path[ROUTES_PATH_MAX - 1] = 0;  // just under the limit: found, captured whole
    assert_int_equal(find("GET", path), ROUTES_FOUND);
    assert_int_equal(strlen(M.params[0]), ROUTES_PATH_MAX - 1 - 10);
}

// A path the pattern matches: each {param} → "p<i>", a {name*} → "a/b".
static void sample_path(const char *pattern, char *out, size_t cap) {
    size_t o = 0;
    int k = 0;
    for (const char *p = pattern; *p && o + 8 < cap;) {
        if (*p == '{') {
            const char *end = strchr(p, '}');
            int rest = end[-1] == '*';
            o += (size_t)snprintf(out + o, cap - o, rest ? "a/b" : "p%d", k++);
            p = end + 1;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = 0;
}

static void test_every_entry_reachable(void **state) {
    (void)state;
    char path[512];
    for (int i = 0; i < routes_count; i++) {
        const route *r = &routes_table[i];
        sample_path(r->path, path, sizeof(path));
        routes_result res = find(r->method, path);
        if (res != ROUTES_FOUND || M.route != r) fail_msg("%s %s (as %s) does not reach its entry", r->method, r->path, path);
        if (!strcmp(r->method, "GET")) {
            assert_int_equal(find("HEAD", path), ROUTES_FOUND);
            assert_ptr_equal(M.route, r);
        }
    }
}

// Two patterns overlap when one request path could match both: segment by segment, every pair
// is equal literals or involves a capture, and the lengths agree (or a {name*} takes the rest).
static int overlap(const char *a, const char *b) {
    for (;;) {
        size_t la = strcspn(a, "/"), lb = strcspn(b, "/");
        int ca = a[0] == '{', cb = b[0] == '{';
        if ((ca && a[la - 2] == '*') || (cb && b[lb - 2] == '*')) return 1;
        if (!ca && !cb && (la != lb || memcmp(a, b, la))) return 0;
        a += la, b += lb;
        if (!*a || !*b) return !*a && !*b;
        a++, b++;
    }
}

static void test_no_shadowing(void **state) {
    (void)state;
    for (int i = 0; i < routes_count; i++)
        for (int j = i + 1; j < routes_count; j++) {
            const route *x = &routes_table[i], *y = &routes_table[j];
            if (strcmp(x->method, y->method)) continue;
            if (overlap(x->path + 1, y->path + 1)) fail_msg("%s %s and %s overlap", x->method, x->path, y->path);
        }
    // the check itself
    assert_true(overlap("v1/files/{id}", "v1/files/x"));
    assert_true(overlap("web/{f*}", "web/a/b/c"));
    assert_false(overlap("v1/files/{id}", "v1/files/{id}/content"));
    assert_false(overlap("v1/files", "v1/models"));
}

static void test_entries_well_formed(void **state) {
    (void)state;
    assert_true(routes_count >= 28);
    for (int i = 0; i < routes_count; i++) {
        const route *r = &routes_table[i];
        assert_true(!r->store != !r->serve);  // exactly one handler
        assert_true(!strcmp(r->method, "GET") || !strcmp(r->method, "POST") || !strcmp(r->method, "DELETE"));
        assert_int_equal(r->path[0], '/');
        int n = 0;
        for (const char *p = strchr(r->path, '{'); p; p = strchr(p + 1, '{')) {
            const char *end = strchr(p, '}');
            assert_non_null(end);
            assert_true(end > p + 1);
            if (end[-1] == '*') assert_int_equal(end[1], 0);  // {name*} only last
            assert_true(p[-1] == '/' && (end[1] == '/' || end[1] == 0));  // a whole segment
            n++;
        }
        assert_true(n <= API_MAX_PARAMS);
        // bodies are read only where a handler uses them
        if (r->body != ROUTE_BODY_NONE) assert_string_equal(r->method, "POST");
        if (r->body == ROUTE_BODY_UPLOAD) assert_ptr_equal(r->store, api_files_create);
        // public: the probes and the dashboard only (its API calls carry the key)
        if (r->auth == ROUTE_AUTH_PUBLIC) {
            assert_ptr_equal(r->store, NULL);
            assert_true(r->serve == server_get_health || r->serve == server_get_static);
        } else {
            assert_true(r->serve != server_get_health && r->serve != server_get_static);
        }
        // the training API needs the store; the server's own endpoints do not
        if (!strncmp(r->path, "/v1/files", 9) || !strncmp(r->path, "/v1/fine_tuning", 15) ||
            !strncmp(r->path, "/v1/evals", 9))
            assert_non_null(r->store);
        else
            assert_non_null(r->serve);
    }
    // the entries of one path share its auth (server.c checks the path's first entry before a 405)
    char path[512];
    for (int i = 0; i < routes_count; i++) {
        sample_path(routes_table[i].path, path, sizeof(path));
        find(routes_table[i].method, path);
        assert_int_equal(M.path_route->auth, routes_table[i].auth);
    }
}

// The matcher over a table of its own: first entry wins, captures per entry.
static void dummy(api *a, const api_request *rq, api_reply *r) {
    (void)a, (void)rq, (void)r;
}

static void test_small_table(void **state) {
    (void)state;
    const route t[] = {
        {.method = "GET", .path = "/a/{x}/b/{y}", .store = dummy},
        {.method = "POST", .path = "/a/{x}", .store = dummy},
        {.method = "DELETE", .path = "/a/{x}", .store = dummy},
        {.method = "GET", .path = "/f/{rest*}", .store = dummy},
    };
    assert_int_equal(routes_match(t, 4, "GET", "/a/1/b/2", &M), ROUTES_FOUND);
    assert_ptr_equal(M.route, &t[0]);
    assert_string_equal(M.params[0], "1");
    assert_string_equal(M.params[1], "2");
    assert_int_equal(routes_match(t, 4, "GET", "/a/1/b", &M), ROUTES_NOT_FOUND);
    assert_int_equal(routes_match(t, 4, "GET", "/a/1/b/2/c", &M), ROUTES_NOT_FOUND);
    assert_int_equal(routes_match(t, 4, "GET", "/a/1", &M), ROUTES_BAD_METHOD);
    assert_ptr_equal(M.path_route, &t[1]);
    assert_string_equal(M.allow, "POST, DELETE");
    assert_string_equal(M.use, "POST or DELETE");
    assert_int_equal(routes_match(t, 4, "DELETE", "/a/zz", &M), ROUTES_FOUND);
    assert_ptr_equal(M.route, &t[2]);
    assert_int_equal(M.n_params, 1);
    assert_string_equal(M.params[0], "zz");
    assert_int_equal(routes_match(t, 4, "GET", "/f/x/y/z", &M), ROUTES_FOUND);
    assert_string_equal(M.params[0], "x/y/z");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_captures),
        cmocka_unit_test(test_not_found_vs_method),
        cmocka_unit_test(test_head_is_get),
        cmocka_unit_test(test_trailing_slash),
        cmocka_unit_test(test_long_paths),
        cmocka_unit_test(test_every_entry_reachable),
        cmocka_unit_test(test_no_shadowing),
        cmocka_unit_test(test_entries_well_formed),
        cmocka_unit_test(test_small_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
