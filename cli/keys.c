// keys.c: `toolrl keys create|list|revoke`: the API keys of a job store (store/store_keys.c).
// A key belongs to a project; `create` prints the key once (the store keeps only its SHA-256),
// `list` shows everything but the key, `revoke ID` ends one for good. While the store has an
// active key, `toolrl serve` on it asks every request for one (docs/api.md, Keys and projects).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "store/store.h"

#define OPTION_DB {.name = "--db", .arg = "PATH", .def = "var/toolrl.db", .help = "the job store (SQLite)"}

// Opens the store at --db. create: makes the file (and its folder) when missing; list and revoke
// refuse a store that is not there. 0, or the exit status after an error message.
static int open_db(const cli_args *a, const char *cmd, int create, store **s) {
    const char *db = cli_get(a, "--db");
    trl_err e = {{0}};
    if (!create && access(db, F_OK)) {
        fprintf(stderr, "toolrl keys %s: %s does not exist (--db PATH names the job store)\n", cmd, db);
        return 1;
    }
    if (create) {
        char dir[1024];
        snprintf(dir, sizeof(dir), "%s", db);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = 0;
            if (trl_mkdirs(dir, &e)) {
                fprintf(stderr, "toolrl keys %s: cannot create %s: %s\n", cmd, dir, e.msg);
                return 1;
            }
        }
    }
    if (store_open(s, db, &e)) {
        fprintf(stderr, "toolrl keys %s: %s\n", cmd, e.msg);
        return 1;
    }
    return 0;
}

static int64_t active_keys(store *s) {
    int64_t n = -1;
    trl_err e = {{0}};
    if (store_key_count(s, 1, &n, &e)) fprintf(stderr, "toolrl keys: %s\n", e.msg);
    return n;
}

static const cli_option CREATE_OPTIONS[] = {
    {.name = "--project", .arg = "NAME", .required = 1,
     .help = "the project whose files, jobs and models the key sees (1-64 of A-Z a-z 0-9 . _ -)"},
    {.name = "--admin", .help = "the key sees every project (its own objects go to NAME)"},
    {.name = "--name", .arg = "LABEL", .help = "a label for people, shown by list (default: none)"},
    OPTION_DB,
    {0}};

static int keys_create(const cli_args *a) {
    store *s;
    int rc = open_db(a, "create", 1, &s);
    if (rc) return rc;
    char key[STORE_KEY_MAX];
    store_key k = {0};
    trl_err e = {{0}};
    int64_t before = active_keys(s);
    if (store_key_create(s, cli_get(a, "--project"), cli_get(a, "--name"), cli_get_flag(a, "--admin"), key, &k, &e)) {
        fprintf(stderr, "toolrl keys create: %s\n", e.msg);
        store_close(s);
        return 1;
    }
    printf("%s\n", key);  // the only time the key is shown
    fflush(stdout);
    memset(key, 0, sizeof(key));
    fprintf(stderr, "toolrl keys create: %s, project %s%s: the key above is shown once; the store keeps only its hash\n",
            k.id, k.project, k.admin ? ", admin" : "");
    if (before == 0)
        fprintf(stderr, "toolrl keys create: this is the store's first active key: from now on `toolrl serve` on %s "
                        "asks every request for a key\n", cli_get(a, "--db"));
    store_key_clear(&k);
    store_close(s);
    return 0;
}

static const cli_option LIST_OPTIONS[] = {OPTION_DB, {0}};

static void print_time(int64_t t, char *out, size_t cap) {
    if (!t) {
        snprintf(out, cap, "-");
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int keys_list(const cli_args *a) {
    store *s;
    int rc = open_db(a, "list", 0, &s);
    if (rc) return rc;
    store_keys l = {0};
    trl_err e = {{0}};
    if (store_key_list(s, &l, &e)) {
        fprintf(stderr, "toolrl keys list: %s\n", e.msg);
        store_close(s);
        return 1;
    }
    int wid = 2, wproj = 7, wname = 4;
    for (int i = 0; i < l.n; i++) {
        int n = (int)strlen(l.items[i].id), p = (int)strlen(l.items[i].project);
        int m = l.items[i].name ? (int)strlen(l.items[i].name) : 1;
        wid = n > wid ? n : wid, wproj = p > wproj ? p : wproj, wname = m > wname ? m : wname;
    }
    printf("%-*s  %-*s  %-*s  %-5s  %-20s  %s\n", wid, "ID", wproj, "PROJECT", wname, "NAME", "ADMIN", "CREATED",
           "REVOKED");
    for (int i = 0; i < l.n; i++) {
        const store_key *k = &l.items[i];
        char created[32], revoked[32];
        print_time(k->created_at, created, sizeof(created));
        print_time(k->revoked_at, revoked, sizeof(revoked));
        printf("%-*s  %-*s  %-*s  %-5s  %-20s  %s\n", wid, k->id, wproj, k->project, wname, k->name ? k->name : "-",
               k->admin ? "yes" : "no", created, revoked);
    }
    store_keys_free(&l);
    store_close(s);
    return 0;
}

static const cli_option REVOKE_OPTIONS[] = {OPTION_DB, {0}};

static int keys_revoke(const cli_args *a) {
    store *s;
    int rc = open_db(a, "revoke", 0, &s);
    if (rc) return rc;
    const char *id = cli_get_arg(a, 0);
    trl_err e = {{0}};
    if (store_key_revoke(s, id, &e)) {
        fprintf(stderr, "toolrl keys revoke: %s\n", e.msg);
        store_close(s);
        return 1;
    }
    printf("revoked %s\n", id);
    if (active_keys(s) == 0)
        fprintf(stderr, "toolrl keys revoke: warning: %s has no active key left: `toolrl serve` on it now refuses "
                        "every request but those with its --api-key-file or TOOLRL_API_KEY key, until a key is "
                        "created\n", cli_get(a, "--db"));
    store_close(s);
    return 0;
}

static const cli_command KEYS_CREATE = {.name = "keys create",
                                        .summary = "Make an API key for a project and print it, once.",
                                        .usage = "--project NAME [--admin] [--name LABEL] [--db var/toolrl.db]",
                                        .options = CREATE_OPTIONS,
                                        .run = keys_create};

static const cli_command KEYS_LIST = {.name = "keys list",
                                      .summary = "List the API keys: id, project, name, admin, created, revoked.",
                                      .usage = "[--db var/toolrl.db]",
                                      .options = LIST_OPTIONS,
                                      .run = keys_list};

static const cli_command KEYS_REVOKE = {.name = "keys revoke",
                                        .summary = "Revoke an API key for good (its requests get 401).",
                                        .usage = "ID [--db var/toolrl.db]",
                                        .options = REVOKE_OPTIONS,
                                        .n_args = 1,
                                        .run = keys_revoke};

static const cli_command *const KEYS_COMMANDS[] = {&KEYS_CREATE, &KEYS_LIST, &KEYS_REVOKE, NULL};

const cli_command CLI_KEYS = {.name = "keys",
                              .summary = "API keys of a job store: each belongs to a project, whose objects it sees.",
                              .usage = "create|list|revoke [options]",
                              .subcommands = KEYS_COMMANDS};
