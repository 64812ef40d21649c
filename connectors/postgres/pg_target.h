/* pg_target — applies source transactions to a PostgreSQL target,
 * effectively once.
 *
 * Threading: every call blocks on libpq (synchronous connection), so a
 * target runs on its own apply thread, never on the libuv loop; the loop
 * hands it batches of decoded transactions.  One object is used by one thread
 * at a time.
 *
 * Effectively-once: the target keeps lockstep.checkpoint(pipeline, target,
 * buffer_offset, source_seq, source_pos, applied_at) (and creates
 * lockstep.snapshot(pipeline, target, table_schema, table_name,
 * copied_at_seq, rows, done_at) next to it, see pg_copy.h).  Source transactions are
 * grouped into one target transaction (up to batch_rows changes or batch_ms
 * milliseconds, whichever comes first, checked at source transaction ends);
 * the checkpoint row is updated in the same target transaction as the data,
 * so after any crash the checkpoint names exactly the last source
 * transaction whose changes are visible.  A source transaction is never split
 * across target commits, however large; its changes stream into the open
 * target transaction (libpq pipeline mode, results drained as they come;
 * COPY for long runs of INSERTs into one table), so memory does not grow with
 * transaction size.
 *
 * Set-based apply: within a group, UPDATEs and DELETEs of a table whose
 * change order nothing else can observe (no triggers, foreign keys either
 * way, rules, exclusion constraints, inheritance children or unique index
 * but the key's; not REPLICA IDENTITY FULL; checked on the target) are held
 * back, one row per key, and sent as one statement per table and up to 1000
 * rows (UPDATE ... FROM unnest(...), DELETE ... USING unnest(...)).  A key
 * updated again keeps its last image; rows batch together only with the
 * same present columns (unchanged TOAST values stay out).  The result is
 * the state applying each change in order gives: pending rows are sent
 * before anything that could tell (another op or column set on the table,
 * a key change, an INSERT or DELETE of a pending key, a change to a table
 * that does not batch, TRUNCATE, a relation change, a savepoint, the
 * commit).  Memory: at most 1 MiB of pending rows per table, 8 MiB in all.
 *
 * Commits: a group that end() commits (full or old) is committed without
 * waiting: its COMMIT goes out and the next group's statements follow it at
 * once (no Sync in between, so should that COMMIT fail the server skips
 * everything up to the next Sync and no later group commits without it).
 * The group is reported (on_commit, checkpoint, stats) when its COMMIT's
 * answer is read: by a later call that reads results, at the latest when
 * more than commits_in_flight groups would be unanswered, when the oldest
 * is batch_ms old (begin, tick), or at flush.  flush(), tick()'s commit
 * and every commit in savepoint mode wait for the answers of their group
 * and of every one before it.
 *
 * Call order:
 *   ls_pgtarget_new -> ls_pgtarget_checkpoint (where to resume)
 *   -> { ls_pgtarget_relation* ; ls_pgtarget_begin ; ls_pgtarget_change* ;
 *        ls_pgtarget_end }* with ls_pgtarget_tick / ls_pgtarget_flush when
 *   input pauses -> ls_pgtarget_flush -> ls_pgtarget_free.
 *
 * Waits for results never block for ever: a wait the server answers with
 * nothing while it waits for us (pg_await.h) fails like a lost connection,
 * logged with the command waited for.
 *
 * Failure: any error rolls back the whole open group (nothing of it becomes
 * visible, the checkpoint stays put) and drops the connection.  Later calls
 * fail until ls_pgtarget_reset() reconnects and returns the checkpoint to
 * resume from; the caller replays from there.  err->retryable says whether
 * that is worth doing (connection loss, serialization failure, deadlock,
 * admin shutdown) or the input itself is bad (a data error naming table,
 * column and key; DDL under ddl=stop; an incompatible table).  A failed
 * set-based statement names the table and its key range and is retryable:
 * the replay after reset goes row by row (savepoint mode), so a bad row
 * then fails alone with its key.
 * ls_pgtarget_sqlstate() gives the server's SQLSTATE of the last error.
 *
 * Replication origin: the session is tagged with origin lockstep_<pipeline>
 * (a streamed transaction's session: lockstep_<pipeline>:s<n>; created when
 * missing), so streams read from the target can skip what
 * lockstep applied (cutover's reverse direction; lib/cutover.h).  Needs
 * superuser or EXECUTE on pg_replication_origin_create/_session_setup;
 * without it a warning says so once and applying goes on untagged.
 */
#ifndef LS_PG_TARGET_H
#define LS_PG_TARGET_H

#include <stdbool.h>
#include <stdint.h>

#include "change.h"
#include "config.h"
#include "err.h"

/* Called after each successful group commit with the position it made
 * durable on the target: the buffer offset and source position passed to the
 * last ls_pgtarget_end() of the group.  pos is valid during the call.  Runs
 * inside whichever call read the COMMIT's answer (end, begin, change, tick,
 * flush, ...), in commit order, never for a group whose COMMIT failed nor
 * for any group after it; it must not call back into the target. */
typedef void (*ls_pgtarget_commit_cb)(void *ctx, int64_t buffer_offset,
				      const struct ls_pos *pos);

struct ls_pgtarget_opts {
	const char *pipeline;      /* checkpoint row key; borrowed, copied */
	const char *target;        /* target name; borrowed, copied */
	const char *conninfo;      /* libpq conninfo; secret, never logged */
	bool create_tables;        /* create missing tables (else: error) */
	enum ls_ddl_mode ddl;      /* LS_DDL_APPLY or LS_DDL_STOP */
	int batch_rows;            /* <= 0: 5000 */
	int batch_ms;              /* <= 0: 100 */
	/* Consecutive INSERTs into one table after which the rest of the run
	 * goes through COPY; 0 = default (64); < 0 = never use COPY. */
	int copy_after;
	/* Groups whose COMMIT may still be unanswered while the next group is
	 * sent (see "Commits" above); 0 = default (2); < 0 = wait for each. */
	int commits_in_flight;
	/* Rows come from a MySQL source (pg_mysqltypes.h): a column of a type
	 * whose own MySQL mapping is the source's takes its values (a boolean
	 * the MySQL side holds as TINYINT(1), say: the way back of a cutover),
	 * and the session reads time stamps without a zone as UTC, as the way
	 * there wrote them. */
	bool from_mysql;
	/* 0: the target's session; n > 0: the session of a streamed
	 * transaction (lib/target.h), tagged with origin
	 * lockstep_<pipeline>:s<n> (an origin serves one session at a time),
	 * which a source skipping lockstep_<pipeline> skips too */
	unsigned session;
	/* How long a wait for a result may see no byte before the server is
	 * asked whether it waits for us (pg_await.h); 0 = 5000 ms. */
	int await_check_ms;
	ls_pgtarget_commit_cb on_commit;   /* may be NULL */
	void *ctx;
};

struct ls_pgtarget_ckpt {
	bool present;              /* false: nothing applied yet */
	int64_t buffer_offset;     /* -1 when none */
	uint64_t source_seq;       /* 0 when none */
	char source_pos[LS_POS_TEXT_MAX];
};

struct ls_pgtarget_stats {
	uint64_t commits;          /* target transactions committed */
	uint64_t txns;             /* source transactions committed */
	uint64_t rows;             /* changes applied and committed */
	uint64_t copy_rows;        /* of which through COPY */
	uint64_t missing_rows;     /* UPDATE/DELETE that matched no row (drift);
				      a key updated again in one batch counts once */
	uint64_t ddl;              /* DDL statements applied */
};

struct ls_pgtarget;

/* Connects, creates lockstep.checkpoint and this target's row when missing,
 * and reads the checkpoint.  On failure *out is NULL. */
int ls_pgtarget_new(const struct ls_pgtarget_opts *opts, struct ls_pgtarget **out,
		    struct ls_err *err) __attribute__((warn_unused_result));
/* Closes the connection; an open group is rolled back. NULL is a no-op. */
void ls_pgtarget_free(struct ls_pgtarget *t);

/* The committed checkpoint (as of the last commit or connect). */
void ls_pgtarget_checkpoint(const struct ls_pgtarget *t, struct ls_pgtarget_ckpt *out);
/* Whether a source transaction with this seq is already applied (seq <= the
 * checkpoint's), so the caller skips it. */
bool ls_pgtarget_applied(const struct ls_pgtarget *t, uint64_t seq);

/* Hands over a relation definition (copied).  First sight of a relation
 * (by rel->id) checks the target table: created when missing and
 * create_tables is set (CREATE SCHEMA/TABLE IF NOT EXISTS, primary key from
 * LS_COL_KEY), else every column must exist with a compatible type and the
 * key must be the target's primary key or a unique index; one error names
 * every mismatch.  A changed definition of a known relation is DDL: under
 * ddl=apply the ALTER TABLE statements run in the open group before the
 * changes that follow; under ddl=stop it is an error naming the table and
 * the change.  A column added (by DDL, or to an existing table missing it
 * under ddl=apply) that has a fill (ls_column.fill) gets it in the rows
 * already there: ADD COLUMN ... DEFAULT fill, then DROP DEFAULT.  A relation
 * with no key and no REPLICA IDENTITY FULL is an error.  May be called
 * inside or outside a transaction. */
int ls_pgtarget_relation(struct ls_pgtarget *t, const struct ls_relation *rel,
			 struct ls_err *err) __attribute__((warn_unused_result));

/* Starts a source transaction (opens a target group if none is open).  In
 * an open group no savepoint is taken, so a COPY run of inserts may go on
 * across source transactions, except in savepoint mode: from
 * ls_pgtarget_reset() until the next commit of source transactions, each
 * source transaction in an open group starts at a savepoint (which also
 * ends a running COPY).  Savepoints cost an XID each, a round trip and the
 * COPY run; they are needed only to abandon a transaction (abort_txn). */
int ls_pgtarget_begin(struct ls_pgtarget *t, const struct ls_txn *txn,
		      struct ls_err *err) __attribute__((warn_unused_result));
/* Applies one change of the current source transaction.  rel (borrowed) is
 * the change's relation, as ls_pgtarget_relation() would take it (a new or
 * changed one is handed over first); NULL for TRUNCATE and MESSAGE, whose
 * relations must be known already.  MESSAGE changes are ignored.  The
 * change's values are only read during the call. */
int ls_pgtarget_change(struct ls_pgtarget *t, const struct ls_relation *rel,
		       const struct ls_change *ch, struct ls_err *err)
	__attribute__((warn_unused_result));
/* For tests: sends a statement and waits for its result without a Sync
 * or flush request, so the server never sends it: the deadlock pg_await.h
 * detects.  Returns what that wait returns. */
int ls_pgtarget_test_unanswered(struct ls_pgtarget *t, struct ls_err *err);
/* Inside a source transaction: SAVEPOINT / ROLLBACK TO SAVEPOINT named by
 * id (a streamed transaction's subtransactions, lib/target.h). */
int ls_pgtarget_savepoint(struct ls_pgtarget *t, uint64_t id, struct ls_err *err);
int ls_pgtarget_rollback_to(struct ls_pgtarget *t, uint64_t id, struct ls_err *err);
/* Abandons the current source transaction.  When it opened the group, or
 * started at a savepoint (savepoint mode), its changes are rolled back and
 * the rest of the open group is kept: errors its own changes caused are
 * dropped with it; relation definitions and DDL it brought are undone, so
 * the same relations may be handed over again.  Otherwise (a group without
 * savepoints) the whole group is rolled back and it fails with a retryable
 * error: the caller resets, which arms savepoint mode, and replays from the
 * checkpoint, and the replay's abort_txn of the same transaction succeeds.
 * Abandoning is rare (a producer crashed mid-transaction), so the common
 * path pays nothing for it. */
int ls_pgtarget_abort_txn(struct ls_pgtarget *t, struct ls_err *err)
	__attribute__((warn_unused_result));
/* Ends the source transaction; buffer_offset is its position in the buffer
 * (recorded in the checkpoint).  Commits the group when it is full or old,
 * without waiting for the answer (see "Commits" above). */
int ls_pgtarget_end(struct ls_pgtarget *t, const struct ls_txn *txn, int64_t buffer_offset,
		    struct ls_err *err) __attribute__((warn_unused_result));
/* Commits the open group now, if any (not inside a source transaction), and
 * waits until it and every group before it are committed and reported. */
int ls_pgtarget_flush(struct ls_pgtarget *t, struct ls_err *err)
	__attribute__((warn_unused_result));
/* Commits the open group if it is older than batch_ms (and waits for it);
 * call when input pauses.  Reads the answers of unanswered commits batch_ms
 * old.  Returns 0 and sets *wait_ms (if non-NULL) to the milliseconds until
 * the open group, or else the oldest unanswered commit, will be due; -1
 * when neither exists. */
int ls_pgtarget_tick(struct ls_pgtarget *t, int *wait_ms, struct ls_err *err)
	__attribute__((warn_unused_result));

/* Snapshot records (lockstep.snapshot, created with the checkpoint table
 * and written by pg_copy sessions): whether table schema.name was copied for
 * this pipeline and target, and at which source seq.  Runs on the target
 * connection, inside the open group if any. */
int ls_pgtarget_snapshot_state(struct ls_pgtarget *t, const char *schema, const char *name,
			       bool *copied, uint64_t *copied_at, struct ls_err *err)
	__attribute__((warn_unused_result));

/* After a failure: reconnects (forgetting prepared statements and checked
 * tables, keeping relation definitions), rereads the checkpoint and arms
 * savepoint mode until the next commit of source transactions (see
 * ls_pgtarget_begin; no set-based apply in it either). */
int ls_pgtarget_reset(struct ls_pgtarget *t, struct ls_err *err)
	__attribute__((warn_unused_result));

/* Whether an error with this SQLSTATE may go away on a retry (connection
 * loss, serialization failure, deadlock, shutdown, lack of resources, lock
 * not available) rather than being caused by the input. */
bool ls_pgtarget_sqlstate_retryable(const char *sqlstate);

/* SQLSTATE of the last server error ("" when none); valid until the next call. */
const char *ls_pgtarget_sqlstate(const struct ls_pgtarget *t);
void ls_pgtarget_stats(const struct ls_pgtarget *t, struct ls_pgtarget_stats *out);

/* For tests: the backend pid of the target connection (0 when none). */
int ls_pgtarget_backend_pid(const struct ls_pgtarget *t);

#endif
