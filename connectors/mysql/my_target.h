/* my_target — applies source transactions and snapshot copies to a MySQL or
 * MariaDB target, effectively once.
 *
 * Threading: every call blocks on libmariadb (synchronous connection), so a
 * target runs on its own apply thread, never on the libuv loop.  One object
 * is used by one thread at a time; each copy session (ls_mytarget_copy_*)
 * has its own connection and is used by one snapshot worker thread, and may
 * run while the apply thread uses the target (sessions only read the
 * target's immutable settings and add to an atomic counter).
 *
 * Effectively-once: the target keeps lockstep.checkpoint(pipeline, target,
 * buffer_offset, source_seq, source_pos, applied_at) in a database named
 * `lockstep` (InnoDB) and updates it in the same target transaction as the
 * data.  Source transactions are grouped into one target transaction (up to
 * batch_rows changes or batch_ms milliseconds, checked at source
 * transaction ends).
 *
 * Round trips: the apply connection uses CLIENT_MULTI_STATEMENTS.  A
 * group's statements (START TRANSACTION, data statements, the checkpoint
 * UPDATE) collect client-side and go out as one multi-statement query when
 * the batch reaches max_stmt_bytes or 2000 statements, at a source
 * transaction's end when the server has answered the batch before (so
 * under light load nothing waits for the group commit), before any other
 * statement, and at commit.  One batch may be outstanding while the next
 * is built; its results are read before the next is sent.  COMMIT goes
 * alone, once every result of the group was checked (a row count or a
 * warning does not stop a batch on the server, an error does).  Each
 * statement's result is checked in order: its error, row count (INSERT
 * stores all its rows, the checkpoint exactly one row) and warnings are
 * reported with its table, operation and key, and fail the target, which
 * rolls the whole group back.  SHOW WARNINGS only covers
 * a batch's last statement, so an earlier statement that warned is run
 * again alone in a transaction rolled back to name the warning.  Memory:
 * two batches (each about max_stmt_bytes plus the keys naming its
 * statements).  An error may surface in a later call than the change that
 * caused it (at the latest in the group's commit); it still names that
 * change, and the group is rolled back whole.
 *
 * Savepoints: ls_mytarget_abort_txn() drops the current source transaction
 * and keeps the rest of the group.  While none of that transaction has
 * left the client it is cut from the batch (no savepoint at all); when a
 * batch must go out in the middle of it (a large transaction, a catalog
 * query), "SAVEPOINT ls_txn" is put in front of its first statement, and
 * dropping it later sends ROLLBACK TO SAVEPOINT.  Mid-transaction DDL uses
 * the same drop.
 *
 * Net rows: on a table whose key is the target table's only unique index,
 * a group's changes fold per key into the key's final state
 * (my_netrows.h) and reach the server at the group's commit (or every 8192
 * keys) as one multi-row DELETE .. IN, INSERT (rows the group created: a
 * duplicate stays an error) and INSERT .. ON DUPLICATE KEY UPDATE (rows
 * that existed) per table and max_stmt_bytes: rows with different keys
 * commute there, and only the final state is ever visible.  An update of a
 * row the target lacks writes the source's full row and counts as missing;
 * a value that only an intermediate change carried never reaches the
 * target.  Should a transaction spill the net rows into the batch (the
 * bound, or a change that cannot fold), the group's earlier net rows are
 * kept aside until it ends, so dropping it restores them.
 *
 * Statements otherwise: runs of INSERTs into one table become multi-row
 * INSERTs of at most max_stmt_bytes (default 1 MiB, never above
 * max_allowed_packet); UPDATE/DELETE match the key columns (LS_COL_KEY; a
 * key change matches the old key), or under REPLICA IDENTITY FULL the whole
 * old row with the NULL-safe <=> and LIMIT 1.  UPDATE leaves
 * LS_VAL_UNCHANGED columns alone (such an update does not fold).
 * Values are literals: text through mysql_real_escape_string in quotes,
 * binary as X'..' hex; PostgreSQL-typed columns are converted first
 * (my_sql.h: booleans, timestamptz to UTC, bytea, arrays to JSON; NaN,
 * infinity and BC dates are errors naming table, column and key).  A
 * source TRUNCATE becomes DELETE FROM (TRUNCATE TABLE would commit the open
 * group implicitly; AUTO_INCREMENT counters are not reset).
 *
 * Session: utf8mb4; time_zone '+00:00' (TIMESTAMP columns read UTC text);
 * sql_mode STRICT_ALL_TABLES, ERROR_FOR_DIVISION_BY_ZERO,
 * NO_AUTO_VALUE_ON_ZERO (a 0 key stays 0), NO_ENGINE_SUBSTITUTION, so a
 * value the column cannot hold is an error, never silently cut; zero dates
 * from a MySQL source are allowed.  Any warning on a data statement (a
 * rounded decimal, a truncated string) is also an error.
 * foreign_key_checks = 0 while applying: the source already enforced its
 * foreign keys, and grouped or replayed transactions may touch parent and
 * child rows in an order the target's checks would refuse midway.
 *
 * Tables: the relation's schema names the MySQL database (created with the
 * table under create_tables); new tables are InnoDB, utf8mb4 with a binary
 * collation (utf8mb4_nopad_bin on MariaDB, utf8mb4_bin on MySQL) so keys
 * that differ in case or trailing spaces stay distinct where the engine
 * allows.  Existing tables are checked: every source column must exist with
 * a compatible type, and the key must be the primary key or a unique
 * index; one error names every mismatch.
 *
 * DDL: a changed relation under ddl=apply runs ALTER TABLE ADD/DROP/MODIFY/
 * RENAME COLUMN; under ddl=stop it is an error naming the change.  MySQL DDL
 * commits implicitly, so DDL never runs inside a group: the group's
 * finished source transactions are committed with their checkpoint first.
 * When the current source transaction already changed rows, those are
 * rolled back to its savepoint, the DDL runs, and the call fails retryably
 * so the pipeline replays the transaction from the checkpoint against the
 * altered table (a second such failure for the same transaction is fatal).
 *
 * Failure: any error drops the connection (the server rolls the open group
 * back; nothing of it is visible, the checkpoint stays put); later calls
 * fail until ls_mytarget_reset() reconnects.  err->retryable is true for
 * connection loss (2006, 2013, killed connections), deadlock (1213), lock
 * wait timeout (1205) and the like; false for bad data (naming table,
 * operation, key and column), incompatible tables and DDL under ddl=stop.
 * ls_mytarget_errno() gives the MySQL error number of the last error.
 */
#ifndef LS_MY_TARGET_H
#define LS_MY_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "change.h"
#include "config.h"
#include "err.h"
#include "target.h"

struct ls_mytarget_opts {
	const char *pipeline;      /* checkpoint row key; borrowed, copied */
	const char *target;        /* target name; borrowed, copied */
	const char *conninfo;      /* "host= port= user= password= database="; secret */
	bool create_tables;        /* create missing tables (else: error) */
	enum ls_ddl_mode ddl;      /* LS_DDL_APPLY or LS_DDL_STOP */
	int batch_rows;            /* <= 0: 5000 */
	int batch_ms;              /* <= 0: 100 */
	size_t max_stmt_bytes;     /* multi-row INSERT size; 0: 1 MiB */
	ls_target_commit_cb on_commit;   /* may be NULL; called after each group commit */
	void *ctx;
};

struct ls_mytarget_stats {
	uint64_t commits;          /* target transactions committed */
	uint64_t txns;             /* source transactions committed */
	uint64_t rows;             /* changes applied and committed */
	uint64_t statements;       /* data statements sent (multi-row INSERT = 1) */
	uint64_t batches;          /* multi-statement round trips */
	uint64_t missing_rows;     /* UPDATE/DELETE that matched no row (drift) */
	uint64_t aborted_txns;     /* abort_txn calls */
	uint64_t ddl;              /* DDL statements run */
	uint64_t copy_rows;        /* snapshot rows committed by copy sessions */
};

struct ls_mytarget;
struct ls_mytarget_copy;

/* Connects, creates the lockstep database, its checkpoint and snapshot
 * tables and this target's checkpoint row when missing, reads the
 * checkpoint.  On failure *out is NULL. */
int ls_mytarget_new(const struct ls_mytarget_opts *opts, struct ls_mytarget **out,
		    struct ls_err *err) __attribute__((warn_unused_result));
/* Closes the connection (an open group is rolled back).  Copy sessions must
 * be closed first.  NULL is a no-op. */
void ls_mytarget_free(struct ls_mytarget *t);

/* The committed checkpoint (as of the last commit or connect). */
void ls_mytarget_checkpoint(const struct ls_mytarget *t, struct ls_target_ckpt *out);

/* Hands over a relation (copied): first sight on this connection creates
 * (create_tables) or checks the table; a changed definition is DDL (see
 * above).  A relation with no key and no REPLICA IDENTITY FULL is an error.
 * Also serves as prepare_table. */
int ls_mytarget_relation(struct ls_mytarget *t, const struct ls_relation *rel,
			 struct ls_err *err) __attribute__((warn_unused_result));
/* Starts a source transaction (opens a group when none is open; takes the
 * savepoint). */
int ls_mytarget_begin(struct ls_mytarget *t, const struct ls_txn *txn, struct ls_err *err)
	__attribute__((warn_unused_result));
/* Applies one change; rel (borrowed) is its relation, handed over first when
 * new or changed; NULL for TRUNCATE and MESSAGE (ignored).  Values are read
 * during the call only (pending INSERT rows are copied as SQL text). */
int ls_mytarget_change(struct ls_mytarget *t, const struct ls_relation *rel,
		       const struct ls_change *ch, struct ls_err *err)
	__attribute__((warn_unused_result));
/* Rolls the current source transaction back to its savepoint; the group's
 * earlier transactions stay. */
int ls_mytarget_abort_txn(struct ls_mytarget *t, struct ls_err *err)
	__attribute__((warn_unused_result));
/* Ends the source transaction (buffer_offset is recorded in the
 * checkpoint); commits the group when full or old. */
int ls_mytarget_end(struct ls_mytarget *t, const struct ls_txn *txn, int64_t buffer_offset,
		    struct ls_err *err) __attribute__((warn_unused_result));
/* Commits the open group now, if any (not inside a source transaction). */
int ls_mytarget_flush(struct ls_mytarget *t, struct ls_err *err)
	__attribute__((warn_unused_result));
/* Commits the group if older than batch_ms; *wait_ms (may be NULL) = ms
 * until it is due, -1 when no group is open. */
int ls_mytarget_tick(struct ls_mytarget *t, int *wait_ms, struct ls_err *err)
	__attribute__((warn_unused_result));
/* After a failure: reconnects (forgetting table checks, keeping relation
 * definitions) and rereads the checkpoint. */
int ls_mytarget_reset(struct ls_mytarget *t, struct ls_err *err)
	__attribute__((warn_unused_result));

void ls_mytarget_stats(const struct ls_mytarget *t, struct ls_mytarget_stats *out);
/* MySQL error number of the last error (0 when none or not a server error). */
unsigned ls_mytarget_errno(const struct ls_mytarget *t);
/* For tests: the server's connection id of the apply connection (0: none). */
unsigned long ls_mytarget_connection_id(const struct ls_mytarget *t);

/* Whether schema.name was copied (a lockstep.snapshot row), at which seq. */
int ls_mytarget_snapshot_state(struct ls_mytarget *t, const char *schema, const char *name,
			       bool *copied, uint64_t *copied_at, struct ls_err *err)
	__attribute__((warn_unused_result));

/* ---- snapshot copy sessions ------------------------------------------------
 * Each table's copy is one transaction on the session's own connection:
 *   START TRANSACTION; DELETE FROM the table (not TRUNCATE: DDL would commit
 *   implicitly); multi-row INSERTs of the copy data; upsert of its
 *   lockstep.snapshot row; COMMIT
 * so after a crash a table is fully copied and recorded, or not at all.
 * Copy data is PostgreSQL COPY text ("pg-text": one row per line, fields
 * separated by tabs, \N for NULL, backslash escapes), in the relation's
 * column order, split anywhere; a MySQL source feeds the same format.
 * Values are converted as in apply.  The table must exist (prepare_table).
 * Any failure rolls the table back and leaves the session unusable. */

/* Opens a session (its own connection) for t, which must outlive it. */
int ls_mytarget_copy_open(struct ls_mytarget *t, struct ls_mytarget_copy **out,
			  struct ls_err *err) __attribute__((warn_unused_result));
int ls_mytarget_copy_table_begin(struct ls_mytarget_copy *c, const struct ls_relation *rel,
				 struct ls_err *err) __attribute__((warn_unused_result));
int ls_mytarget_copy_data(struct ls_mytarget_copy *c, const char *data, size_t len,
			  struct ls_err *err) __attribute__((warn_unused_result));
/* Stores what is left, checks that exactly `rows` rows were stored, records
 * the table as copied at copied_at_seq and commits. */
int ls_mytarget_copy_table_end(struct ls_mytarget_copy *c, const struct ls_relation *rel,
			       uint64_t rows, uint64_t copied_at_seq, struct ls_err *err)
	__attribute__((warn_unused_result));
/* Rolls an open table back and closes the connection.  NULL is a no-op. */
void ls_mytarget_copy_close(struct ls_mytarget_copy *c);

/* Drift checks (lib/target.h chunk_checksum / chunk_rows; my_drift.h), on a
 * connection of their own opened on first use.  Apply thread. */
int ls_mytarget_chunk_checksum(struct ls_mytarget *t, const struct ls_relation *rel,
			       const char *lo, const char *hi, uint64_t *rows, char *hash,
			       size_t hashlen, struct ls_err *err);
int ls_mytarget_chunk_rows(struct ls_mytarget *t, const struct ls_relation *rel, const char *lo,
			   const char *hi, int (*row)(void *ctx, const char *key, const char *hash),
			   void *ctx, struct ls_err *err);

#endif
