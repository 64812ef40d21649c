/* my_source — the MySQL/MariaDB source behind struct ls_source_ops
 * (lib/source.h), assembled from my_setup (connection, readiness, tables),
 * my_snapshot (per-table consistent snapshots on worker threads), my_binlog
 * (the binlog reader thread feeding the loop) and my_rows (the row decoder).
 *
 * prepare (blocking): connects, checks readiness, selects the tables
 * ([source] tables patterns are "db.table"), builds one relation per table
 * (type names are COLUMN_TYPE text, except MariaDB JSON columns — LONGTEXT
 * with a json_valid check — which are named "json"; type_oid the
 * MYSQL_TYPE_* code; stable ids 1..n) and decides where the stream starts.
 *
 * The resume point.  The checkpoints live in the targets, but a binlog
 * reader has no server-side slot that remembers what was consumed, so the
 * source keeps one itself: the GTID set after the last transaction the
 * pipeline acknowledged (ack: durable downstream, contract point 1) in
 * <state_dir>/mysql_source.state ("gtid=<set>\nseq=<n>\n", written to a
 * temporary file, fsync'd, renamed, directory fsync'd).  That is the
 * MySQL counterpart of a PostgreSQL slot's confirmed_flush_lsn.  On the
 * first start (no state file) the server's @@gtid_binlog_pos at prepare is
 * written there before anything else, so a crash during the snapshot
 * resumes from it.  On a restart the binlog must still hold everything after
 * the saved set (ls_mysetup_check_resume; else: re-snapshot).  Acks are
 * persisted at most every LS_MY_SOURCE_PERSIST_MS (on libuv's thread pool)
 * and always on close; after a crash the stream resumes from an older
 * saved point and the targets skip what they hold (seq <= checkpoint).
 * Removing the state file is like dropping a PostgreSQL slot: the stream
 * starts at the server's current position, so targets must copy again
 * (clear their lockstep.snapshot rows) or changes in between are missed.
 * The catalog is read at prepare and after DDL; resuming from a position
 * older than a later DDL of a captured table fails with "the binlog and
 * the catalog disagree" (no schema history is kept).
 *
 * snapshot: tables the sink has not copied are copied each in its own
 * consistent snapshot (my_snapshot.h), copied_at_seq = that snapshot's
 * binlog position as a seq.  Rows become PostgreSQL COPY text lines
 * ("pg-text": tab-separated, \N for NULL, backslash escapes); binary
 * columns as bytea hex ("\\x0a1b" in the COPY text), BIT columns as their
 * unsigned number (as my_rows streams them).  The stream starts from the
 * resume point, which is before every table's snapshot; the pipeline skips
 * each table's changes older than its copy (contract point 4).
 *
 * Positions.  seq = ls_binlog_pos_seq(file number << 32 | offset) of the
 * end of a transaction's GTID event: monotonic along the binlog (a server
 * restart opens a file with a higher number), known at begin, above every
 * snapshot position that does not hold the transaction and below every one
 * that does.  The position text is the GTID set after the transaction.
 *
 * stream: from the resume GTID set.
 *   GTID                 a transaction starts (begin is sent lazily, with
 *                        its first change of a captured table)
 *   TABLE_MAP            decoded; captured tables get their catalog info
 *   WRITE_ROWS of lockstep.drift_marker (my_drift.h) -> one MESSAGE
 *                        change per row (prefix "lockstep.drift", data the
 *                        payload column); that table is never captured
 *   WRITE/UPDATE/DELETE_ROWS of a captured table -> on_change with the
 *                        table's relation; in a group without the
 *                        transactional flag (a non-transactional engine):
 *                        fatal error naming the table
 *   XID, QUERY COMMIT    on_commit(ack = seq) when something was captured;
 *                        otherwise on_idle (the position moved on)
 *   QUERY with DDL (ALTER/CREATE/DROP/RENAME TABLE) naming a captured
 *                        table: its catalog entry is read again (blocking
 *                        the loop briefly; DDL is rare) and the new
 *                        relation goes with its next change, so targets
 *                        apply it or stop per ddl=
 *   QUERY TRUNCATE of a captured table -> a transaction with one TRUNCATE
 *   HEARTBEAT (idle)     on_idle(current position)
 * Retryable errors (server restart, network): the reader reconnects from
 * the GTID set after the last complete transaction; a transaction begun
 * but not finished is abandoned (on_restart) and comes again whole.
 *
 * Lag (heartbeat, lag_sample): heartbeat starts my_binwatch (the server
 * already sends HEARTBEAT events to an idle reader, so nothing is written
 * to the binlog): the server's position and clock, and as the "slot"
 * (named mysql_source.state) the binlog bytes after the saved resume point,
 * the file holding it, its age and the server's expiry, with the purge
 * warning of ls_lag_slot_check.
 *
 * All calls on the loop thread, except snapshot_progress (any thread).
 */
#ifndef LS_MY_SOURCE_H
#define LS_MY_SOURCE_H

#include "source.h"

extern const struct ls_source_ops ls_my_source_ops;

#define LS_MY_SOURCE_PERSIST_MS 100
#define LS_MY_SOURCE_STATE_FILE "mysql_source.state"

/* The relation the stream hands for table t (type names COLUMN_TYPE,
 * MariaDB JSON columns named "json", read from m's catalog; id the
 * caller's), so drift's describe (my_drift) sees exactly the stream's
 * definition.  NULL when out of memory.  m is a MYSQL connection. */
struct st_mysql;
struct ls_mytable;
struct ls_relation *ls_my_source_relation(struct st_mysql *m, const struct ls_mytable *t,
					  uint32_t id);

/* Tuning for tests, before stream(): heartbeat period and reconnect
 * backoff bounds in ms (0 keeps the defaults 1000 / 500 / 30000). */
void ls_my_source_set_intervals(struct ls_source *s, int heartbeat_ms,
	int reconnect_base_ms, int reconnect_cap_ms);

#endif
