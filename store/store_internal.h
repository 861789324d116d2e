// store_internal.h: what the store's .c files share and callers never see: the handle,
// the per-connection statement cache, transactions, the record types read from rows and the
// list runner.
#ifndef TOOLRL_STORE_INTERNAL_H
#define TOOLRL_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stddef.h>

#include "store/store.h"

struct store {
    sqlite3 *db;
    int64_t pinned_now;      // 0: real time
    sqlite3_stmt **cache;    // prepared once per connection, keyed by their SQL text
    int n_cache, cap_cache;
};

// The cached statement for sql (prepared on first use); NULL and e filled on failure.
// Give it back with store_stmt_done before the same SQL is used again.
sqlite3_stmt *store_stmt(store *s, const char *sql, trl_err *e);
void store_stmt_done(sqlite3_stmt *st);  // reset + clear bindings

// Fills e with "store: what: sqlite's message" and returns TRL_ERR, or TRL_CONFLICT
// for a UNIQUE / PRIMARY KEY violation.
int store_sql_fail(store *s, const char *what, trl_err *e);
// Steps a statement that returns no rows, then gives it back.
int store_step_done(store *s, sqlite3_stmt *st, const char *what, trl_err *e);

int store_tx_begin(store *s, trl_err *e);  // BEGIN IMMEDIATE (waits up to the busy timeout)
int store_tx_commit(store *s, trl_err *e); // rolls back if the commit fails
void store_tx_rollback(store *s);

// Binds text, or NULL for a NULL pointer (copied by SQLite).
void store_bind_text(sqlite3_stmt *st, int i, const char *v);

// A record type the store reads from SELECTs (store_file, store_job, ...): its fields in the
// order of the SELECT's columns, so one reader and one clear serve every type.
typedef enum {
    STORE_TEXT,  // char *, malloc'd (NULL for SQL NULL)
    STORE_I64,   // int64_t (0 for NULL)
    STORE_INT,   // int
    STORE_REAL,  // double
} store_field_type;
typedef struct {
    store_field_type type;
    size_t offset;  // of the field in the record
} store_field;
typedef struct {
    size_t size;  // of the record
    const store_field *fields;
    int n_fields;
} store_row;
#define STORE_ROW(type, fields) {sizeof(type), fields, (int)(sizeof(fields) / sizeof((fields)[0]))}

// Reads the current row of st into item (column i into fields[i]); TRL_ERR when out of memory.
int store_row_read(const store_row *r, sqlite3_stmt *st, void *item);
// Frees the text fields of item (NULL: nothing) and zeroes it.
void store_row_clear(const store_row *r, void *item);
// Clears n records and frees the array.
void store_rows_free(const store_row *r, void *items, int n);

// Fills buf with n random bytes (getrandom, else /dev/urandom).
int store_random_fill(unsigned char *buf, size_t n, trl_err *e);

// Clamps page->limit (NULL page: defaults).
int store_page_limit(const store_page *page);

// Reads up to limit rows of a prepared list query (which asks for limit + 1 to see has_more)
// into a growing array of r's records; on failure frees what was read. Gives the statement back.
int store_list_run(store *s, sqlite3_stmt *st, int limit, const store_row *r, void **items, int *n, int *has_more,
                   const char *what, trl_err *e);
// Reads exactly one row into item (TRL_NOT_FOUND when there is none; item is cleared on any
// failure) and gives the statement back.
int store_get_run(store *s, sqlite3_stmt *st, const store_row *r, void *item, const char *what, trl_err *e);

// Builds "SELECT cols FROM table WHERE <where> [AND project = :project] [AND seq </> (cursor)]
// ORDER BY seq … LIMIT ?" into buf, with the cursor's parameter named :after and the limit
// :limit (store_list_bind binds them and the project); the caller binds its own filter
// parameters by name. Checks first that page->after exists in table (in page->project, if set).
int store_list_sql(store *s, char *buf, size_t cap, const char *cols, const char *table, const char *where,
                   const store_page *page, trl_err *e);
void store_list_bind(sqlite3_stmt *st, const store_page *page, int limit);

#endif
