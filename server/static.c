// static.c: URL → file for the dashboard and its vendored chart library (see static.h).
#include "server/static.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define DYGRAPHS_DIR "/usr/share/javascript/dygraphs"

static const char *content_type(const char *path) {
    const char *dot = strrchr(path, '.');
    if (!dot) return "application/octet-stream";
    if (!strcmp(dot, ".html")) return "text/html; charset=utf-8";
    if (!strcmp(dot, ".js") || !strcmp(dot, ".mjs")) return "text/javascript; charset=utf-8";
    if (!strcmp(dot, ".css")) return "text/css; charset=utf-8";
    if (!strcmp(dot, ".png")) return "image/png";
    if (!strcmp(dot, ".svg")) return "image/svg+xml";
    if (!strcmp(dot, ".json")) return "application/json";
    return "application/octet-stream";
}

// A relative path made of plain names: no "..", no empty or hidden segments, safe characters.
static int safe_rel(const char *rel) {
    if (!*rel || strlen(rel) > 200) return 0;
    const char *p = rel;
    while (*p) {
        const char *seg = p;
        size_t n = strcspn(p, "/");
        if (n == 0 || seg[0] == '.') return 0;
        for (size_t i = 0; i < n; i++) {
            char c = seg[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                  c == '.'))
                return 0;
        }
        p += n;
        if (*p == '/') p++;
    }
    return 1;
}

int static_resolve(const char *web_dir, const char *url, char *path, size_t cap, const char **ctype) {
    const char *dir, *rel;
    if (!strcmp(url, "/") || !strcmp(url, "/index.html")) dir = web_dir, rel = "index.html";
    else if (!strncmp(url, "/web/", 5)) dir = web_dir, rel = url + 5;
    else if (!strncmp(url, "/vendor/dygraphs/", 17)) dir = DYGRAPHS_DIR, rel = url + 17;
    else return 0;
    if (!safe_rel(rel)) return -1;
    int n = snprintf(path, cap, "%s/%s", dir, rel);
    if (n < 0 || (size_t)n >= cap) return -1;
    struct stat sb;
    if (stat(path, &sb) || !S_ISREG(sb.st_mode)) return -1;
    *ctype = content_type(path);
    return 1;
}
