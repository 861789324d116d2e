// store_internal.h: what the store's .c files share and callers never see: the handle,
// the per-connection statement cache, transactions, column copies and the list runner.
#ifndef TOOLRL_STORE_INTERNAL_H
#define TOOLRL_STORE_INTERNAL_H

#include <sqlite3.h>

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
// A malloc'd copy of column i, NULL for SQL NULL; sets *oom when the copy fails.
char *store_col_dup(sqlite3_stmt *st, int i, int *oom);
int64_t store_col_i64(sqlite3_stmt *st, int i);  // 0 for NULL

// Clamps page->limit (NULL page: defaults).
int store_page_limit(const store_page *page);

// Reads up to limit rows of a prepared list query (which asks for limit + 1 to see has_more)
// into a growing array of item_size records, each filled by row(); on failure clears what was
// read with clear() and frees the array. Gives the statement back.
typedef int (*store_row_fn)(sqlite3_stmt *st, void *item);
int store_list_run(store *s, sqlite3_stmt *st, int limit, size_t item_size, store_row_fn row,
                   void (*clear)(void *), void **items, int *n, int *has_more, const char *what, trl_err *e);
// Reads exactly one row (TRL_NOT_FOUND when there is none) and gives the statement back.
int store_get_run(store *s, sqlite3_stmt *st, void *item, store_row_fn row, const char *what, trl_err *e);

// Builds "SELECT cols FROM table WHERE <where> [AND seq </> (cursor)] ORDER BY seq … LIMIT ?"
// into buf, with the cursor's parameter named :after and the limit :limit; the caller binds
// its own filter parameters by name. Checks first that page->after exists in table.
int store_list_sql(store *s, char *buf, size_t cap, const char *cols, const char *table, const char *where,
                   const store_page *page, trl_err *e);
void store_list_bind(sqlite3_stmt *st, const store_page *page, int limit);

#endif
