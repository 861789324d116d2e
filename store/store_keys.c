// store_keys.c: API keys: made here from getrandom, kept only as their SHA-256, found by the
// hash of a presented key, listed, revoked (see store.h). The key's text leaves the store once,
// to the caller of store_key_create.
#include "store/store_internal.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_COLS "id, project, name, admin, created_at, revoked_at"

// The columns of KEY_COLS, in order.
static const store_field KEY_FIELDS[] = {
    {STORE_TEXT, offsetof(store_key, id)},      {STORE_TEXT, offsetof(store_key, project)},
    {STORE_TEXT, offsetof(store_key, name)},    {STORE_INT, offsetof(store_key, admin)},
    {STORE_I64, offsetof(store_key, created_at)}, {STORE_I64, offsetof(store_key, revoked_at)},
};
static const store_row KEY_ROW = STORE_ROW(store_key, KEY_FIELDS);

void store_key_clear(store_key *k) { store_row_clear(&KEY_ROW, k); }

void store_keys_free(store_keys *l) {
    if (!l) return;
    store_rows_free(&KEY_ROW, l->items, l->n);
    memset(l, 0, sizeof *l);
}

// hex = lower-case hex SHA-256 of key. An unsalted hash is enough: a key holds 256 random bits,
// so no table of guesses can hold it, and the hash only has to be one-way and collision-free.
static int key_hash(const char *key, char hex[65], trl_err *e) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(key, strlen(key), md, &n, EVP_sha256(), NULL) != 1 || n != 32)
        return trl_errf(e, "store: SHA-256 failed");
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return TRL_OK;
}

// STORE_KEY_PREFIX and 32 random bytes as unpadded base64url (43 characters).
static int key_make(char out[STORE_KEY_MAX], trl_err *e) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char r[33];
    if (store_random_fill(r, 32, e) != TRL_OK) return TRL_ERR;
    r[32] = 0;
    size_t n = strlen(STORE_KEY_PREFIX);
    memcpy(out, STORE_KEY_PREFIX, n);
    for (int i = 0; i < 33; i += 3) {  // 11 groups of 3 bytes = 44 characters; the last is padding
        unsigned v = (unsigned)r[i] << 16 | (unsigned)r[i + 1] << 8 | r[i + 2];
        for (int k = 0; k < 4; k++) out[n + (size_t)(i / 3) * 4 + (size_t)k] = b64[(v >> (18 - 6 * k)) & 63];
    }
    out[n + 43] = 0;  // 256 bits are 42 2/3 characters: the 43rd holds the last 4 bits
    memset(r, 0, sizeof r);
    return TRL_OK;
}

static int key_get(store *s, const char *sql, const char *arg, store_key *out, trl_err *e) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = store_stmt(s, sql, e);
    if (!st) return TRL_ERR;
    store_bind_text(st, 1, arg);
    return store_get_run(s, st, &KEY_ROW, out, "get key", e);
}

int store_key_create(store *s, const char *project, const char *name, int admin, char key_out[STORE_KEY_MAX],
                     store_key *out, trl_err *e) {
    if (out) memset(out, 0, sizeof *out);
    key_out[0] = 0;
    if (!store_project_name_ok(project))
        return trl_errf(e, "store: a project name is 1 to 64 of A-Z a-z 0-9 . _ - (got '%.80s')", project ? project : "");
    if (!admin && !strcmp(project, STORE_DEFAULT_PROJECT))
        return trl_errf(e, "store: the project '" STORE_DEFAULT_PROJECT "' holds the rows made without a key, which "
                           "only admins see; give a key another project, or make it an admin key");
    if (name && strlen(name) > 200) return trl_errf(e, "store: a key's name is at most 200 bytes");
    char id[STORE_ID_MAX], key[STORE_KEY_MAX], hash[65];
    if (store_id_new("key", id, e) != TRL_OK || key_make(key, e) != TRL_OK || key_hash(key, hash, e) != TRL_OK)
        return TRL_ERR;
    if (store_tx_begin(s, e) != TRL_OK) return TRL_ERR;
    sqlite3_stmt *st = store_stmt(s,
                                  "INSERT INTO api_keys (id, project, name, admin, hash, created_at)"
                                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                                  e);
    int rc = TRL_ERR;
    if (st) {
        store_bind_text(st, 1, id);
        store_bind_text(st, 2, project);
        store_bind_text(st, 3, name);
        sqlite3_bind_int(st, 4, admin ? 1 : 0);
        store_bind_text(st, 5, hash);
        sqlite3_bind_int64(st, 6, store_now(s));
        rc = store_step_done(s, st, "create key", e);
    }
    if (rc == TRL_OK && out) rc = key_get(s, "SELECT " KEY_COLS " FROM api_keys WHERE id = ?1", id, out, e);
    if (rc != TRL_OK) {
        store_tx_rollback(s);
        memset(key, 0, sizeof key);
        return rc == TRL_NOT_FOUND ? TRL_ERR : rc;
    }
    if (store_tx_commit(s, e) != TRL_OK) {
        if (out) store_key_clear(out);
        memset(key, 0, sizeof key);
        return TRL_ERR;
    }
    memcpy(key_out, key, sizeof key);
    memset(key, 0, sizeof key);
    return TRL_OK;
}

int store_key_find(store *s, const char *key, store_key *out, trl_err *e) {
    memset(out, 0, sizeof *out);
    char hash[65];
    if (key_hash(key, hash, e) != TRL_OK) return TRL_ERR;
    int rc = key_get(s, "SELECT " KEY_COLS " FROM api_keys WHERE hash = ?1", hash, out, e);
    if (rc == TRL_NOT_FOUND) trl_errf(e, "store: no such key");
    return rc;
}

int store_key_list(store *s, store_keys *out, trl_err *e) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = store_stmt(s, "SELECT " KEY_COLS " FROM api_keys ORDER BY seq", e);
    if (!st) return TRL_ERR;
    return store_list_run(s, st, 1 << 30, &KEY_ROW, (void **)&out->items, &out->n, &out->has_more, "list keys", e);
}

int store_key_revoke(store *s, const char *id, trl_err *e) {
    if (store_tx_begin(s, e) != TRL_OK) return TRL_ERR;
    store_key k;
    int rc = key_get(s, "SELECT " KEY_COLS " FROM api_keys WHERE id = ?1", id, &k, e);
    if (rc == TRL_NOT_FOUND) trl_errf(e, "store: no key with id '%s'", id);
    if (rc == TRL_OK && k.revoked_at) {
        rc = TRL_CONFLICT;
        trl_errf(e, "store: key %s is revoked already", id);
    }
    store_key_clear(&k);
    if (rc == TRL_OK) {
        sqlite3_stmt *st = store_stmt(s, "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1", e);
        rc = TRL_ERR;
        if (st) {
            store_bind_text(st, 1, id);
            sqlite3_bind_int64(st, 2, store_now(s));
            rc = store_step_done(s, st, "revoke key", e);
        }
    }
    if (rc != TRL_OK) {
        store_tx_rollback(s);
        return rc;
    }
    return store_tx_commit(s, e);
}

int store_key_count(store *s, int active_only, int64_t *n, trl_err *e) {
    *n = 0;
    sqlite3_stmt *st = store_stmt(
        s, active_only ? "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL" : "SELECT count(*) FROM api_keys", e);
    if (!st) return TRL_ERR;
    int rc = sqlite3_step(st), ret = TRL_OK;
    if (rc == SQLITE_ROW) *n = sqlite3_column_int64(st, 0);
    else ret = store_sql_fail(s, "count keys", e);
    store_stmt_done(st);
    return ret;
}
