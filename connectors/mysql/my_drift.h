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
 * Source side (ls_my_drift_source_ops, a MariaDB/MySQL source).  MariaDB
 * has no logical messages, so a marker is a row: the source connection
 * creates LS_MYDRIFT_MARKER_DB.LS_MYDRIFT_MARKER_TABLE
 *   (id bigint unsigned auto_increment primary key, payload longblob)
 * (InnoDB) when missing, and each marker is an INSERT of its payload
 * followed by a DELETE of that row, in the check's transaction: the binlog
 * carries both row events (my_source turns the insert into a MESSAGE change
 * of that transaction, prefix LS_DRIFT_PREFIX, and ignores the delete),
 * while the table itself stays empty.  longblob, not text: the payload is
 * bytes and survives unchanged whatever the charsets.
 *
 * "As of" without a table lock.  The marker must sit in the binlog exactly
 * where the checksummed state is: no writer of the chunk's rows may commit
 * between the read and the marker's commit (PostgreSQL needs a SHARE table
 * lock for that).  Here every read of a source transaction (chunk bound,
 * checksum, row list, repair rows) is a locking read, SELECT ... LOCK IN
 * SHARE MODE, in REPEATABLE READ:
 *   - a locking read does not use the snapshot; it reads the latest
 *     committed version of each row and waits for uncommitted writers, so
 *     what it sees is everything committed before it;
 *   - it keeps an S lock on every row it scans until commit, so no writer
 *     can update or delete them before the marker commits;
 *   - under REPEATABLE READ those are next-key locks (the row and the gap
 *     before it), and a scan that runs off the end locks the supremum, so
 *     an INSERT into the scanned key range waits too;
 *   - InnoDB releases a writer's locks only after its binlog write
 *     (prepare, binlog, commit), so a writer we waited for lies before the
 *     marker in the binlog and one that waits for us lies after it.
 * The chunk's rows are (lo, hi]: the bound query scans exactly those rows in
 * key order (or, for text keys whose column collation is not the binary
 * order used here, the whole table: more locked, still correct), the
 * checksum reads them again under the same locks, then the marker is
 * written and the transaction commits.  Locks are held for milliseconds;
 * innodb_lock_wait_timeout is 2 s and lock waits and deadlocks (1205,
 * 1213) are retryable, so the engine retries the chunk.  Repair reads the
 * rows of its keys the same way; a key with no row locks its gap, so the
 * row cannot appear before the repair marker.  Repair values are written
 * as the snapshot writes them (binary columns as bytea hex "\x..", bit as
 * its number, the rest as the server's text in UTC), the form the targets
 * take from a MySQL source.  No change counter (change_count is NULL).
 *
 * Calls block (the apply thread / libuv work threads); the connection is
 * the check's own, reconnected when lost.  No mysql.h here: pg_drift uses
 * the classes.
 */
#ifndef LS_MY_DRIFT_H
#define LS_MY_DRIFT_H

#include <stdint.h>

#include "change.h"
#include "drift.h"
#include "err.h"

#define LS_MYDRIFT_MARKER_DB "lockstep"
#define LS_MYDRIFT_MARKER_TABLE "drift_marker"

/* The source ops for a MySQL/MariaDB source (see above). */
extern const struct ls_drift_source_ops ls_my_drift_source_ops;

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
