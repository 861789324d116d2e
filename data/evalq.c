// evalq.c: loading the evaluation sets' questions as a normalised blocklist (see evalq.h).
#include "data/evalq.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/pyjson.h"

char *evalq_normalise(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t k = 0;
    int space = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (isspace(ch)) {
            space = 1;
            continue;
        }
        if (space && k) out[k++] = ' ';
        space = 0;
        out[k++] = (char)tolower(ch);
    }
    out[k] = 0;
    return out;
}

// Adds the normalised text (if not empty). 0 when out of memory.
static int add(strset *set, const char *text, long *count) {
    char *q = evalq_normalise(text);
    if (!q) return 0;
    int rc = q[0] ? strset_add(set, q) : 0;
    free(q);
    if (rc < 0) return 0;
    (*count)++;
    return 1;
}

// Every user message's content in v (a list of messages, or of turns that are lists of them).
static int add_user_messages(strset *set, const cJSON *v, long *count) {
    for (const cJSON *m = cJSON_IsArray(v) ? v->child : NULL; m; m = m->next) {
        if (cJSON_IsArray(m)) {
            if (!add_user_messages(set, m, count)) return 0;
            continue;
        }
        const cJSON *ro = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *co = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsString(ro) && !strcmp(ro->valuestring, "user") && cJSON_IsString(co) && !add(set, co->valuestring, count))
            return 0;
    }
    return 1;
}

// The lines of text that start with prefix (after a newline or at the start), each up to the
// next line that starts with one of the speaker prefixes ("user: ", "system: ", "User: ", "AI: ").
static int add_turns(strset *set, const char *text, const char *prefix, long *count) {
    static const char *const SPEAKERS[] = {"\nuser: ", "\nsystem: ", "\nUser: ", "\nAI: ", "\nGenerate API Request:"};
    size_t pl = strlen(prefix);
    for (const char *p = text; p && *p;) {
        if (!strncmp(p, prefix, pl)) {
            const char *a = p + pl, *end = a + strlen(a);
            for (size_t i = 0; i < sizeof(SPEAKERS) / sizeof(SPEAKERS[0]); i++) {
                const char *s = strstr(a, SPEAKERS[i]);
                if (s && s < end) end = s;
            }
            char *seg = strndup(a, (size_t)(end - a));
            int ok = seg && add(set, seg, count);
            free(seg);
            if (!ok) return 0;
        }
        p = strchr(p, '\n');
        if (p) p++;
    }
    return 1;
}

typedef enum { SET_BFCL, SET_APIBANK_HAMMER, SET_APIBANK_L1, SET_ACEBENCH } eval_set;

static int add_record(strset *set, eval_set which, const cJSON *rec, evalq_counts *c) {
    const cJSON *q;
    switch (which) {
        case SET_BFCL: return add_user_messages(set, cJSON_GetObjectItemCaseSensitive(rec, "question"), &c->bfcl);
        case SET_APIBANK_HAMMER: return add_user_messages(set, cJSON_GetObjectItemCaseSensitive(rec, "query"), &c->apibank);
        case SET_APIBANK_L1:
            q = cJSON_GetObjectItemCaseSensitive(rec, "input");
            return !cJSON_IsString(q) || add_turns(set, q->valuestring, "User: ", &c->apibank);
        case SET_ACEBENCH:
            q = cJSON_GetObjectItemCaseSensitive(rec, "question");
            if (!cJSON_IsString(q)) return 1;
            return add(set, q->valuestring, &c->acebench) && add_turns(set, q->valuestring, "user: ", &c->acebench);
    }
    return 1;
}

// Reads a JSON array or JSONL file and adds every record's questions.
static int load_file(const char *path, eval_set which, strset *set, evalq_counts *c, trl_err *e) {
    size_t len;
    char *text = trl_read_file(path, &len, e);
    if (!text) return TRL_ERR;
    size_t pos = 0;
    while (pos < len && isspace((unsigned char)text[pos])) pos++;
    int array = pos < len && text[pos] == '[';
    int rc = TRL_OK;
    if (array) pos++;
    for (;;) {
        while (pos < len && (isspace((unsigned char)text[pos]) || (array && text[pos] == ','))) pos++;
        if (pos >= len || (array && text[pos] == ']')) break;
        trl_err pe;
        cJSON *rec = pyjson_parse_next(text, len, &pos, &pe);
        if (!rec) {
            rc = trl_errf(e, "%s: not JSON (%s)", path, pe.msg);
            break;
        }
        int ok = add_record(set, which, rec, c);
        cJSON_Delete(rec);
        if (!ok) {
            rc = trl_errf(e, "out of memory");
            break;
        }
    }
    free(text);
    if (rc == TRL_OK) c->files++;
    return rc;
}

static int starts(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }
static int ends(const char *s, const char *p) {
    size_t n = strlen(s), m = strlen(p);
    return n >= m && !strcmp(s + n - m, p);
}

static int load_dir(const char *dir, const char *prefix, eval_set which, strset *set, evalq_counts *c, trl_err *e) {
    DIR *d = opendir(dir);
    if (!d) return TRL_OK;  // a set that is not there: the caller checks that some were found
    struct dirent *de;
    int rc = TRL_OK;
    while (rc == TRL_OK && (de = readdir(d))) {
        if (!starts(de->d_name, prefix) || !ends(de->d_name, ".json")) continue;
        char path[4096];
        int n = snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (n < 0 || (size_t)n >= sizeof(path)) {
            rc = trl_errf(e, "%s: path too long", dir);
            break;
        }
        rc = load_file(path, which, set, c, e);
    }
    closedir(d);
    return rc;
}

int evalq_load(const char *data_dir, strset *set, evalq_counts *c, trl_err *e) {
    memset(c, 0, sizeof(*c));
    char p[4096];
    snprintf(p, sizeof(p), "%s/bfcl", data_dir);
    if (load_dir(p, "BFCL_", SET_BFCL, set, c, e)) return TRL_ERR;
    snprintf(p, sizeof(p), "%s/apibank/hammer", data_dir);
    if (load_dir(p, "apibank_l1", SET_APIBANK_HAMMER, set, c, e)) return TRL_ERR;
    snprintf(p, sizeof(p), "%s/apibank", data_dir);
    if (load_dir(p, "level-1-api", SET_APIBANK_L1, set, c, e)) return TRL_ERR;
    snprintf(p, sizeof(p), "%s/acebench/data_en", data_dir);
    if (load_dir(p, "data_", SET_ACEBENCH, set, c, e)) return TRL_ERR;
    if (!c->files) return trl_errf(e, "%s: no evaluation set found (bfcl/, apibank/, acebench/)", data_dir);
    return TRL_OK;
}
