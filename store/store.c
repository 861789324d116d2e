// store.c: opening the job store (pragmas, migrations, the newer-schema refusal), the
// per-connection statement cache, transactions, random ids and the helpers the other
// store_*.c files use to read rows and pages.
#include "store/store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

// ---- statements and transactions ------------------------------------------------------

sqlite3_stmt *store_stmt(store *s, const char *sql, trl_err *e) {
    for (int i = 0; i < s->n_cache; i++)
        if (strcmp(sqlite3_sql(s->cache[i]), sql) == 0) return s->cache[i];
    if (s->n_cache == s->cap_cache) {
        int cap = s->cap_cache ? s->cap_cache * 2 : 32;
        sqlite3_stmt **c = realloc(s->cache, (size_t)cap * sizeof *c);
        if (!c) {
            trl_errf(e, "store: out of memory caching a statement");
            return NULL;
        }
        s->cache = c;
        s->cap_cache = cap;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        trl_errf(e, "store: preparing \"%.200s\": %s", sql, sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
        return NULL;
    }
    s->cache[s->n_cache++] = st;
    return st;
}

void store_stmt_done(sqlite3_stmt *st) {
    if (!st) return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

int store_sql_fail(store *s, const char *what, trl_err *e) {
    int x = sqlite3_extended_errcode(s->db);
    trl_errf(e, "store: %s: %s", what, sqlite3_errmsg(s->db));
    if (x == SQLITE_CONSTRAINT_UNIQUE || x == SQLITE_CONSTRAINT_PRIMARYKEY) return TRL_CONFLICT;
    return TRL_ERR;
}

int store_step_done(store *s, sqlite3_stmt *st, const char *what, trl_err *e) {
    int rc = sqlite3_step(st);
    int ret = TRL_OK;
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) ret = store_sql_fail(s, what, e);
    store_stmt_done(st);
    return ret;
}

int store_tx_begin(store *s, trl_err *e) {
    sqlite3_stmt *st = store_stmt(s, "BEGIN IMMEDIATE", e);
    if (!st) return TRL_ERR;
    return store_step_done(s, st, "begin transaction", e);
}

void store_tx_rollback(store *s) {
    if (sqlite3_get_autocommit(s->db)) return;  // nothing open (SQLite may have rolled back already)
    sqlite3_stmt *st = store_stmt(s, "ROLLBACK", NULL);
    if (st) store_step_done(s, st, "rollback", NULL);
    else sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

int store_tx_commit(store *s, trl_err *e) {
    sqlite3_stmt *st = store_stmt(s, "COMMIT", e);
    if (!st) {
        store_tx_rollback(s);
        return TRL_ERR;
    }
    if (store_step_done(s, st, "commit", e) != TRL_OK) {
        store_tx_rollback(s);
        return TRL_ERR;
    }
    return TRL_OK;
}

// ---- columns, rows and pages ----------------------------------------------------------

void store_bind_text(sqlite3_stmt *st, int i, const char *v) {
    if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, i);
}

// A malloc'd copy of column i, NULL for SQL NULL; sets *oom when the copy fails.
static char *col_dup(sqlite3_stmt *st, int i, int *oom) {
    if (sqlite3_column_type(st, i) == SQLITE_NULL) return NULL;
    const unsigned char *t = sqlite3_column_text(st, i);
    int n = sqlite3_column_bytes(st, i);
    char *c = t ? malloc((size_t)n + 1) : NULL;
    if (!c) {
        *oom = 1;
        return NULL;
    }
    memcpy(c, t, (size_t)n);
    c[n] = 0;
    return c;
}

int store_row_read(const store_row *r, sqlite3_stmt *st, void *item) {
    int oom = 0;
    for (int i = 0; i < r->n_fields; i++) {
        void *f = (char *)item + r->fields[i].offset;
        switch (r->fields[i].type) {
            case STORE_TEXT: *(char **)f = col_dup(st, i, &oom); break;
            case STORE_I64: *(int64_t *)f = sqlite3_column_int64(st, i); break;
            case STORE_INT: *(int *)f = (int)sqlite3_column_int64(st, i); break;
            case STORE_REAL: *(double *)f = sqlite3_column_double(st, i); break;
        }
    }
    return oom ? TRL_ERR : TRL_OK;
}

void store_row_clear(const store_row *r, void *item) {
    if (!item) return;
    for (int i = 0; i < r->n_fields; i++)
        if (r->fields[i].type == STORE_TEXT) free(*(char **)((char *)item + r->fields[i].offset));
    memset(item, 0, r->size);
}

void store_rows_free(const store_row *r, void *items, int n) {
    for (int i = 0; i < n; i++) store_row_clear(r, (char *)items + (size_t)i * r->size);
    free(items);
}

int store_page_limit(const store_page *page) {
    int l = page ? page->limit : 0;
    if (l <= 0) l = STORE_DEFAULT_LIMIT;
    if (l > STORE_MAX_LIMIT) l = STORE_MAX_LIMIT;
    return l;
}

int store_list_run(store *s, sqlite3_stmt *st, int limit, const store_row *r, void **items, int *n, int *has_more,
                   const char *what, trl_err *e) {
    const size_t item_size = r->size;
    char *arr = NULL;
    int cnt = 0, cap = 0, more = 0, ret = TRL_OK, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == limit) {
            more = 1;
            break;
        }
        if (cnt == cap) {
            int nc = cap ? cap * 2 : 16;
            if (nc > limit) nc = limit;
            char *na = realloc(arr, (size_t)nc * item_size);
            if (!na) {
                ret = trl_errf(e, "store: %s: out of memory", what);
                break;
            }
            arr = na;
            cap = nc;
        }
        void *it = arr + (size_t)cnt * item_size;
        memset(it, 0, item_size);
        if (store_row_read(r, st, it) != TRL_OK) {
            store_row_clear(r, it);
            ret = trl_errf(e, "store: %s: out of memory", what);
            break;
        }
        cnt++;
    }
    if (ret == TRL_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) ret = store_sql_fail(s, what, e);
    store_stmt_done(st);
    if (ret != TRL_OK) {
        store_rows_free(r, arr, cnt);
        return ret;
    }
    *items = arr;
    *n = cnt;
    *has_more = more;
    return TRL_OK;
}

int store_get_run(store *s, sqlite3_stmt *st, const store_row *r, void *item, const char *what, trl_err *e) {
    int rc = sqlite3_step(st), ret;
    if (rc == SQLITE_ROW) {
        ret = store_row_read(r, st, item);
        if (ret != TRL_OK) ret = trl_errf(e, "store: %s: out of memory", what);
    } else if (rc == SQLITE_DONE) {
        ret = TRL_NOT_FOUND;
    } else {
        ret = store_sql_fail(s, what, e);
    }
    store_stmt_done(st);
    if (ret != TRL_OK) store_row_clear(r, item);
    return ret;
}

int store_list_sql(store *s, char *buf, size_t cap, const char *cols, const char *table, const char *where,
                   const store_page *page, trl_err *e) {
    const char *project = page ? page->project : NULL;
    if (page && page->after) {
        char q[160];
        snprintf(q, sizeof q, "SELECT 1 FROM %s WHERE id = ?1%s", table, project ? " AND project = ?2" : "");
        sqlite3_stmt *st = store_stmt(s, q, e);
        if (!st) return TRL_ERR;
        store_bind_text(st, 1, page->after);
        if (project) store_bind_text(st, 2, project);
        int rc = sqlite3_step(st);
        store_stmt_done(st);
        if (rc == SQLITE_DONE) {
            trl_errf(e, "store: no %s with id '%s' to list after", table, page->after);
            return TRL_NOT_FOUND;
        }
        if (rc != SQLITE_ROW) return store_sql_fail(s, "list cursor", e);
    }
    int asc = page && page->ascending;
    char cursor[160] = "";
    if (page && page->after)
        snprintf(cursor, sizeof cursor, " AND seq %s (SELECT seq FROM %s WHERE id = :after)", asc ? ">" : "<", table);
    int n = snprintf(buf, cap, "SELECT %s FROM %s WHERE (%s)%s%s ORDER BY seq %s LIMIT :limit", cols, table,
                     where ? where : "1", project ? " AND project = :project" : "", cursor, asc ? "ASC" : "DESC");
    if (n < 0 || (size_t)n >= cap) return trl_errf(e, "store: list query too long");
    return TRL_OK;
}

void store_list_bind(sqlite3_stmt *st, const store_page *page, int limit) {
    int i = sqlite3_bind_parameter_index(st, ":after");
    if (i > 0) store_bind_text(st, i, page ? page->after : NULL);
    i = sqlite3_bind_parameter_index(st, ":limit");
    if (i > 0) sqlite3_bind_int(st, i, limit + 1);
    i = sqlite3_bind_parameter_index(st, ":project");
    if (i > 0) store_bind_text(st, i, page ? page->project : NULL);
}

int store_project_name_ok(const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n < 1 || n >= STORE_PROJECT_MAX) return 0;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

// ---- clock and ids --------------------------------------------------------------------

int64_t store_now(const store *s) {
    if (s && s->pinned_now) return s->pinned_now;
    return (int64_t)time(NULL);
}

void store_set_now(store *s, int64_t now) {
    s->pinned_now = now;
}

int store_random_fill(unsigned char *buf, size_t n, trl_err *e) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            break;
        }
        got += (size_t)r;
    }
    if (got == n) return TRL_OK;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return trl_errf(e, "store: no random source: %s", strerror(errno));
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) continue;
            close(fd);
            return trl_errf(e, "store: reading /dev/urandom failed");
        }
        got += (size_t)r;
    }
    close(fd);
    return TRL_OK;
}

int store_id_new(const char *prefix, char out[STORE_ID_MAX], trl_err *e) {
    static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    size_t pl = strlen(prefix);
    if (pl + 1 + STORE_ID_CHARS + 1 > STORE_ID_MAX) return trl_errf(e, "store: id prefix '%s' too long", prefix);
    memcpy(out, prefix, pl);
    out[pl] = '-';
    int have = 0;
    while (have < STORE_ID_CHARS) {
        unsigned char r[64];
        if (store_random_fill(r, sizeof r, e) != TRL_OK) return TRL_ERR;
        for (size_t i = 0; i < sizeof r && have < STORE_ID_CHARS; i++)
            if (r[i] < 248) out[pl + 1 + have++] = b62[r[i] % 62];  // 248 = 4 * 62: no bias
    }
    out[pl + 1 + STORE_ID_CHARS] = 0;
    return TRL_OK;
}

// ---- schema ---------------------------------------------------------------------------

// Reads the highest applied version (0 for a database without the table).
static int read_version(store *s, int *version, trl_err *e) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(st);
        // No table yet: check that this is the reason, not a broken file.
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM sqlite_master", -1, &q, NULL) != SQLITE_OK ||
            sqlite3_step(q) != SQLITE_ROW) {
            trl_errf(e, "store: reading the schema: %s", sqlite3_errmsg(s->db));
            sqlite3_finalize(q);
            return TRL_ERR;
        }
        sqlite3_finalize(q);
        *version = 0;
        return TRL_OK;
    }
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        trl_errf(e, "store: reading the schema version: %s", sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
        return TRL_ERR;
    }
    *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return TRL_OK;
}

int store_schema_version(store *s, int *version, trl_err *e) {
    return read_version(s, version, e);
}

// Refuses a database newer than m[n-1], or one whose recorded names differ from the compiled ones.
static int check_recorded(store *s, const char *path, const store_migration *m, int n, int version, trl_err *e) {
    int latest = n ? m[n - 1].version : 0;
    if (version > latest)
        return trl_errf(e,
                        "store: %s has schema version %d but this toolrl knows versions up to %d: "
                        "the database was written by a newer toolrl; refusing to open it (upgrade toolrl)",
                        path, version, latest);
    if (version == 0) return TRL_OK;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT version, name FROM schema_migrations ORDER BY version", -1, &st, NULL) !=
        SQLITE_OK) {
        trl_errf(e, "store: reading schema_migrations: %s", sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
        return TRL_ERR;
    }
    int ret = TRL_OK, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int v = sqlite3_column_int(st, 0);
        const char *name = (const char *)sqlite3_column_text(st, 1);
        int k = 0;
        while (k < n && m[k].version != v) k++;
        if (k == n) {
            ret = trl_errf(e, "store: %s records migration %04d_%s, which this toolrl does not have", path, v,
                           name ? name : "?");
            break;
        }
        if (!name || strcmp(name, m[k].name) != 0) {
            ret = trl_errf(e, "store: %s records migration %04d as '%s' but this toolrl's is '%s'", path, v,
                           name ? name : "?", m[k].name);
            break;
        }
    }
    if (ret == TRL_OK && rc != SQLITE_DONE) ret = trl_errf(e, "store: reading schema_migrations: %s", sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    return ret;
}

// Applies each missing migration in its own BEGIN IMMEDIATE transaction, re-reading the version
// inside it so that two processes opening a fresh database at once apply each step once.
static int migrate(store *s, const char *path, const store_migration *m, int n, trl_err *e) {
    for (int i = 1; i < n; i++)
        if (m[i].version <= m[i - 1].version) return trl_errf(e, "store: migrations out of order at %04d", m[i].version);
    if (n && m[0].version < 1) return trl_errf(e, "store: migration versions start at 1");
    int version;
    if (read_version(s, &version, e) != TRL_OK) return TRL_ERR;
    if (check_recorded(s, path, m, n, version, e) != TRL_OK) return TRL_ERR;
    int latest = n ? m[n - 1].version : 0;
    while (version < latest) {
        if (store_tx_begin(s, e) != TRL_OK) return TRL_ERR;
        char *msg = NULL;
        if (sqlite3_exec(s->db,
                         "CREATE TABLE IF NOT EXISTS schema_migrations ("
                         " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
                         NULL, NULL, &msg) != SQLITE_OK) {
            trl_errf(e, "store: creating schema_migrations: %s", msg ? msg : "?");
            sqlite3_free(msg);
            store_tx_rollback(s);
            return TRL_ERR;
        }
        if (read_version(s, &version, e) != TRL_OK || check_recorded(s, path, m, n, version, e) != TRL_OK) {
            store_tx_rollback(s);
            return TRL_ERR;
        }
        int k = 0;
        while (k < n && m[k].version <= version) k++;
        if (k == n) {  // someone else finished the job meanwhile
            store_tx_rollback(s);
            break;
        }
        if (sqlite3_exec(s->db, m[k].sql, NULL, NULL, &msg) != SQLITE_OK) {
            trl_errf(e, "store: migration %04d_%s failed: %s (database left at version %d)", m[k].version, m[k].name,
                     msg ? msg : sqlite3_errmsg(s->db), version);
            sqlite3_free(msg);
            store_tx_rollback(s);
            return TRL_ERR;
        }
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, "PRAGMA foreign_key_check", -1, &st, NULL);
        if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
            trl_errf(e, "store: migration %04d_%s breaks a foreign key in table %s (database left at version %d)",
                     m[k].version, m[k].name, (const char *)sqlite3_column_text(st, 0), version);
            sqlite3_finalize(st);
            store_tx_rollback(s);
            return TRL_ERR;
        }
        sqlite3_finalize(st);
        st = NULL;
        rc = sqlite3_prepare_v2(s->db, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                                -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_int(st, 1, m[k].version);
            sqlite3_bind_text(st, 2, m[k].name, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(st, 3, store_now(s));
            rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        }
        if (rc != SQLITE_OK) {
            trl_errf(e, "store: recording migration %04d_%s: %s", m[k].version, m[k].name, sqlite3_errmsg(s->db));
            sqlite3_finalize(st);
            store_tx_rollback(s);
            return TRL_ERR;
        }
        sqlite3_finalize(st);
        if (store_tx_commit(s, e) != TRL_OK) return TRL_ERR;
        version = m[k].version;
    }
    return TRL_OK;
}

// Runs a pragma and copies its first result column (if any) into out.
static int pragma(store *s, const char *sql, char *out, size_t cap, trl_err *e) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && out) {
            const char *t = (const char *)sqlite3_column_text(st, 0);
            snprintf(out, cap, "%s", t ? t : "");
        }
        if (rc == SQLITE_ROW || rc == SQLITE_DONE) rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK) trl_errf(e, "store: %s: %s", sql, sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? TRL_OK : TRL_ERR;
}

int store_open_migrations(store **out, const char *path, const store_migration *m, int n, trl_err *e) {
    *out = NULL;
    store *s = calloc(1, sizeof *s);
    if (!s) return trl_errf(e, "store: out of memory");
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        trl_errf(e, "store: opening %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
        store_close(s);
        return TRL_ERR;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    char mode[32] = "";
    if (pragma(s, "PRAGMA journal_mode", mode, sizeof mode, e) != TRL_OK) goto fail;
    if (strcmp(mode, "wal") != 0 && strcmp(path, ":memory:") != 0) {
        // Switching needs the database to itself; another opener may hold it for a moment.
        for (int tries = 0; tries < 50 && strcmp(mode, "wal") != 0; tries++) {
            if (tries) usleep(20000);
            if (pragma(s, "PRAGMA journal_mode = WAL", mode, sizeof mode, e) != TRL_OK &&
                (sqlite3_errcode(s->db) & 0xff) != SQLITE_BUSY)
                goto fail;
        }
        if (strcmp(mode, "wal") != 0) {
            trl_errf(e, "store: %s: could not switch to WAL (journal mode is '%s')", path, mode);
            goto fail;
        }
    }
    if (pragma(s, "PRAGMA synchronous = FULL", NULL, 0, e) != TRL_OK) goto fail;
    // Migrations run with foreign keys off (a table rebuild must not cascade its DROP into the
    // tables that reference it) and end with a foreign_key_check; then they are on for good.
    if (pragma(s, "PRAGMA foreign_keys = OFF", NULL, 0, e) != TRL_OK) goto fail;
    if (migrate(s, path, m, n, e) != TRL_OK) goto fail;
    if (pragma(s, "PRAGMA foreign_keys = ON", NULL, 0, e) != TRL_OK) goto fail;
    *out = s;
    return TRL_OK;
fail:
    store_close(s);
    return TRL_ERR;
}

int store_open(store **out, const char *path, trl_err *e) {
    return store_open_migrations(out, path, store_migrations, store_migrations_count, e);
}

void store_close(store *s) {
    if (!s) return;
    for (int i = 0; i < s->n_cache; i++) sqlite3_finalize(s->cache[i]);
    free(s->cache);
    sqlite3_close(s->db);  // every statement is finalized, so this closes
    free(s);
}

int store_integrity_check(store *s, trl_err *e) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) {
        trl_errf(e, "store: integrity_check: %s", sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
        return TRL_ERR;
    }
    int ret = TRL_OK, rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        ret = trl_errf(e, "store: integrity_check: %s", sqlite3_errmsg(s->db));
    } else {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (!t || strcmp(t, "ok") != 0) ret = trl_errf(e, "store: integrity_check: %s", t ? t : "(null)");
    }
    sqlite3_finalize(st);
    if (ret == TRL_OK) {
        if (sqlite3_prepare_v2(s->db, "PRAGMA foreign_key_check", -1, &st, NULL) != SQLITE_OK) {
            trl_errf(e, "store: foreign_key_check: %s", sqlite3_errmsg(s->db));
            sqlite3_finalize(st);
            return TRL_ERR;
        }
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            ret = trl_errf(e, "store: foreign_key_check: a row of %s points nowhere", sqlite3_column_text(st, 0));
        else if (rc != SQLITE_DONE)
            ret = trl_errf(e, "store: foreign_key_check: %s", sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
    }
    return ret;
}
