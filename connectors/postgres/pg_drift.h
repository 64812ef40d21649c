/* pg_drift — the PostgreSQL side of drift checks (lib/drift.h): the source
 * ops (ls_pg_drift_source_ops) and the target's checksum calls that pg_tgt
 * exposes as chunk_checksum / chunk_rows.
 *
 * Canonical row text, the same on both sides: ROW(col, ...)::text over the
 * relation's columns by name (record output: NULL is empty, '' is "", any
 * value with a separator or quote is quoted, so no two rows share a text),
 * in a session with fixed output settings (TimeZone UTC, DateStyle ISO,
 * IntervalStyle postgres, extra_float_digits 3, bytea_output hex).  A
 * chunk's hash is md5 of the concatenated md5 of each row, ordered by key;
 * a row's hash is md5 of its text.  Keys are the jsonb array text of the key
 * columns (relation order) cast to text, e.g. ["42","abc"]; ranges and
 * ordering compare text-like key columns with COLLATE "C", so both servers
 * agree on what lies in (lo, hi] whatever their collations.
 *
 * Source transactions (chunk, rows, repair): REPEATABLE READ; LOCK TABLE
 * ... IN SHARE MODE (lock_timeout 2 s, a retryable error) before the
 * snapshot is taken, so no writer of the table commits between this
 * transaction's snapshot and its commit, and the marker's stream position
 * is exactly that of the snapshot; then the reads, then
 * pg_logical_emit_message(true, 'lockstep.drift', payload); COMMIT.  A role
 * without the privilege to lock (UPDATE/DELETE/TRUNCATE on the table) gets a
 * warning and unlocked transactions: a writer committing in that window can
 * then show as drift until the chunk is narrowed (which re-checks it).
 *
 * All calls block: source ops on libuv work threads, target calls on the
 * apply thread (with a connection of their own, opened on first use).
 */
#ifndef LS_PG_DRIFT_H
#define LS_PG_DRIFT_H

#include <stdint.h>

#include "change.h"
#include "drift.h"
#include "err.h"

extern const struct ls_drift_source_ops ls_pg_drift_source_ops;

/* A connection for target-side checks; conninfo is copied (secret, never in
 * messages).  Reconnects by itself when the connection was lost. */
int ls_pgdrift_open(const char *conninfo, struct ls_drift_conn **out, struct ls_err *err)
	__attribute__((warn_unused_result));
void ls_pgdrift_close(struct ls_drift_conn *c);   /* NULL is a no-op */

/* Count and hash of the rows of rel in (lo, hi] (NULL = unbounded). */
int ls_pgdrift_checksum(struct ls_drift_conn *c, const struct ls_relation *rel,
			const char *lo, const char *hi, uint64_t *rows, char *hash,
			size_t hashlen, struct ls_err *err);
/* Key and row hash of each row in (lo, hi], in key order. */
int ls_pgdrift_rows(struct ls_drift_conn *c, const struct ls_relation *rel, const char *lo,
		    const char *hi, int (*row)(void *ctx, const char *key, const char *hash),
		    void *ctx, struct ls_err *err);

#endif
