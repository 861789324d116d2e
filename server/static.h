// static.h: the dashboard's files: web/ at / (index.html) and /web/…, and the Debian-packaged
// charting library (libjs-dygraphs) at /vendor/dygraphs/…. Read-only, no directory listing,
// no path outside those folders (".." and absolute paths are refused).
#ifndef TOOLRL_STATIC_H
#define TOOLRL_STATIC_H

#include <stddef.h>

// Maps a URL to a file: returns 1 and fills path (and its content type) when url belongs to
// the static routes and names a regular file; 0 when it is not a static route; -1 when it is
// one but no such file exists (404).
int static_resolve(const char *web_dir, const char *url, char *path, size_t cap, const char **ctype);

#endif
