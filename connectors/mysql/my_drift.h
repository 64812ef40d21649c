/* my_drift — drift checks (lib/drift.h) on MySQL/MariaDB: the target's
 * chunk_checksum / chunk_rows calls for ls_my_target_ops, and the canonical
 * row text that lets a MySQL-typed table be compared across engines.
 *
 * Canonical row text (cross-engine, for relations whose type names are
 * MySQL COLUMN_TYPE text; pg_drift.c writes the same text on PostgreSQL for
 * the mapped columns, README "Types across engines"):
 *   value  integers, year, bit (its number), decimals (at their scale):
 *          decimal text; float/double: the server's shortest text; char,
 *          varchar, text, enum, set, json: the UTF-8 text; binary, varbinary,
 *          blobs, geometry: lowercase hex; date 'YYYY-MM-DD'; datetime and
 *          timestamp (UTC): 'YYYY-MM-DD HH:MM:SS.ffffff' (always six
 *          fraction digits)
 *   field  N for NULL, else "value" with \ and " escaped by a backslash
 *          (so NULL, '' and 'N' all differ)
 *   row    the fields in column order joined by ','
 * A row's hash is md5 of its text; a chunk's hash md5 of the row hashes
 * concatenated in key order (empty for no rows).  Keys are
 * ["field", "field"] of the key columns' values (JSON: the bounds are read
 * back with JSON_EXTRACT / ->>); text keys order and compare by code point
 * (utf8mb4_bin here, COLLATE "C" there) so both engines agree on (lo, hi].
 * Not comparable across engines (found as different when the values are
 * equal): json (MariaDB keeps the source text, PostgreSQL jsonb
 * normalises it) and time (an interval on PostgreSQL).
 *
 * Calls block (the apply thread); the connection is the check's own,
 * reconnected when lost.  No mysql.h here: pg_drift uses the classes.
 */
#ifndef LS_MY_DRIFT_H
#define LS_MY_DRIFT_H

#include <stdint.h>

#include "change.h"
#include "drift.h"
#include "err.h"

/* How a MySQL column's canonical value is written. */
enum ls_mydrift_class {
	LS_MYD_NUMBER = 1,         /* integers, year, decimal, float, double */
	LS_MYD_BIT,                /* bit(n): its unsigned number */
	LS_MYD_TEXT,               /* char, varchar, text, enum, set, json */
	LS_MYD_BINARY,             /* binary, varbinary, blobs, geometry: hex */
	LS_MYD_DATE,
	LS_MYD_DATETIME,           /* datetime, timestamp */
	LS_MYD_TIME,
};

/* The class of a MySQL COLUMN_TYPE ("int(10) unsigned", "varchar(40)"); 0
 * when unknown. */
int ls_mydrift_class(const char *column_type);

/* A connection for target-side checks; conninfo (my_sql.h syntax) is
 * copied (secret, never in messages). */
int ls_mydrift_open(const char *conninfo, struct ls_drift_conn **out, struct ls_err *err)
	__attribute__((warn_unused_result));
void ls_mydrift_close(struct ls_drift_conn *c);   /* NULL is a no-op */

/* Count and hash of the rows of rel in (lo, hi] (NULL = unbounded).  rel
 * must be MySQL-typed (a MySQL source): other relations are refused. */
int ls_mydrift_checksum(struct ls_drift_conn *c, const struct ls_relation *rel,
			const char *lo, const char *hi, uint64_t *rows, char *hash,
			size_t hashlen, struct ls_err *err);
/* Key and row hash of each row in (lo, hi], in key order. */
int ls_mydrift_rows(struct ls_drift_conn *c, const struct ls_relation *rel, const char *lo,
		    const char *hi, int (*row)(void *ctx, const char *key, const char *hash),
		    void *ctx, struct ls_err *err);

#endif
