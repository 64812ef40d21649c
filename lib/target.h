/* target — what a target connector provides to the pipeline.
 *
 * A target applies decoded source transactions and snapshot copies to one
 * target database, effectively once.  Every call blocks (connectors use
 * their client library synchronously); the pipeline calls the apply-side
 * functions from the target's own apply thread and the copy functions from
 * snapshot worker threads, never from the libuv loop.  One ls_target is used
 * by one thread at a time; each ls_target_copy by one worker thread.
 *
 * Effectively-once: the target keeps a checkpoint (buffer offset, source
 * seq, source position text) that it updates in the same target transaction
 * as the data.  Source transactions are grouped into target transactions
 * (begin .. end per source txn; a group commits on end() when full or old,
 * on tick() when old, on flush()); a source transaction is never split.
 *
 * A source transaction that begin() opened may be abandoned with abort_txn():
 * its changes are rolled back and the rest of the open group is kept.  The
 * pipeline does this when the buffer holds a partial transaction (the
 * producer crashed mid-transaction and the source re-sent it whole), which
 * is rare, so a target need not prepare for it on every transaction (a
 * savepoint each costs PostgreSQL an XID and a round trip): abort_txn may
 * instead roll back the whole open group and fail with a retryable error.
 * The pipeline then calls reset() and replays from the checkpoint; a target
 * that failed so must be able to abandon that same transaction on the
 * replay (PostgreSQL: savepoints from reset() until the next commit).
 *
 * Streamed transactions: a target with savepoint and rollback_to applies
 * a large source transaction while the source still runs it, on a session
 * of its own (another open() with the same options, its begin .. change*
 * .. end + flush, or free() to roll it back), while its first session goes
 * on applying the transactions that commit before it.  savepoint(id) marks
 * where a subtransaction's changes start, rollback_to(id) drops them (the
 * source rolled it back).  Without them (NULL) the pipeline has the source
 * send a transaction only once committed.
 *
 * Snapshot: a table's copy is one target transaction on a copy session:
 * copy_table_begin (truncate the target table, start COPY), copy_data*,
 * copy_table_end (finish COPY, record the table as copied at copied_at_seq in
 * the target's own snapshot table, commit).  A crash in between leaves the
 * table unrecorded and it is copied again.  snapshot_state() reads those
 * records back.  Copy data is in the form the source produced (copy_format:
 * "pg-text" is PostgreSQL COPY text format).
 *
 * Errors: negative return with err; err->retryable says whether reset() and a
 * replay from the checkpoint may succeed (connection loss, serialization
 * failure) or the input itself is bad (data error, DDL under ddl=stop).
 * After any apply-side failure the open group is rolled back; the pipeline
 * calls reset() and replays from the returned checkpoint.
 */
#ifndef LS_TARGET_H
#define LS_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "change.h"
#include "config.h"
#include "err.h"

struct ls_target;          /* connector instance, opaque */
struct ls_target_copy;     /* one snapshot copy session, opaque */

struct ls_target_ckpt {
	bool present;              /* false: nothing applied yet */
	int64_t buffer_offset;     /* -1 when none */
	uint64_t source_seq;       /* 0 when none */
	char source_pos[LS_POS_TEXT_MAX];
};

struct ls_target_stats {
	uint64_t commits;          /* target transactions committed */
	uint64_t txns;             /* source transactions committed */
	uint64_t rows;             /* changes applied and committed */
	uint64_t copy_rows;        /* snapshot rows committed */
	uint64_t ddl;              /* DDL statements applied */
};

/* Committed position, reported after each group commit (from the apply
 * thread; the pipeline forwards it to the loop). */
typedef void (*ls_target_commit_cb)(void *ctx, int64_t buffer_offset,
				    const struct ls_pos *pos);

struct ls_target_opts {
	const char *pipeline;                  /* borrowed, copied */
	const struct ls_config_target *cfg;    /* borrowed, valid for the target's life */
	/* the engine whose rows arrive: a target may take values of another
	 * engine's types into columns of its own that hold them as text */
	enum ls_engine source;
	/* 0: the target's own session; n > 0: the session of the n-th open
	 * streamed transaction (see "Streamed transactions") */
	unsigned session;
	ls_target_commit_cb on_commit;         /* may be NULL */
	void *ctx;
};

struct ls_target_ops {
	const char *engine;                    /* "postgres", "mysql" */
	const char *copy_format;               /* what copy_data accepts: "pg-text" */

	int (*open)(const struct ls_target_opts *o, struct ls_target **out,
		    struct ls_err *err);
	void (*free)(struct ls_target *t);     /* NULL is a no-op */
	void (*checkpoint)(const struct ls_target *t, struct ls_target_ckpt *out);

	/* apply side (apply thread) */
	int (*relation)(struct ls_target *t, const struct ls_relation *rel,
			struct ls_err *err);
	int (*begin)(struct ls_target *t, const struct ls_txn *txn, struct ls_err *err);
	int (*change)(struct ls_target *t, const struct ls_relation *rel,
		      const struct ls_change *ch, struct ls_err *err);
	int (*abort_txn)(struct ls_target *t, struct ls_err *err);
	/* optional, see "Streamed transactions" */
	int (*savepoint)(struct ls_target *t, uint64_t id, struct ls_err *err);
	int (*rollback_to)(struct ls_target *t, uint64_t id, struct ls_err *err);
	int (*end)(struct ls_target *t, const struct ls_txn *txn, int64_t buffer_offset,
		   struct ls_err *err);
	int (*flush)(struct ls_target *t, struct ls_err *err);
	/* Commits an old group; *wait_ms = ms until the open group is due; -1
	 * (not an error) when no group is open. */
	int (*tick)(struct ls_target *t, int *wait_ms, struct ls_err *err);
	int (*reset)(struct ls_target *t, struct ls_err *err);
	void (*stats)(const struct ls_target *t, struct ls_target_stats *out);

	/* snapshot side */
	/* Whether table schema.name was copied, and at which source seq. */
	int (*snapshot_state)(struct ls_target *t, const char *schema, const char *name,
			      bool *copied, uint64_t *copied_at, struct ls_err *err);
	/* Creates the table when missing (create_tables) or checks it. */
	int (*prepare_table)(struct ls_target *t, const struct ls_relation *rel,
			     struct ls_err *err);
	int (*copy_open)(struct ls_target *t, struct ls_target_copy **out,
			 struct ls_err *err);
	int (*copy_table_begin)(struct ls_target_copy *c, const struct ls_relation *rel,
				struct ls_err *err);
	int (*copy_data)(struct ls_target_copy *c, const char *data, size_t len,
			 struct ls_err *err);
	int (*copy_table_end)(struct ls_target_copy *c, const struct ls_relation *rel,
			      uint64_t rows, uint64_t copied_at_seq, struct ls_err *err);
	void (*copy_close)(struct ls_target_copy *c);   /* rolls back an open table */

	/* drift checks (apply thread, between transactions: called right after
	 * a commit, so they see exactly what was applied).  May be NULL.  rel
	 * is the source's relation; lo/hi bound the key range (lo, hi], NULL =
	 * unbounded, in the key text the source connector of the same engine
	 * family produces; hashes must equal that source's for equal rows
	 * (see lib/drift.h).  Errors concern the check only. */
	int (*chunk_checksum)(struct ls_target *t, const struct ls_relation *rel,
			      const char *lo, const char *hi, uint64_t *rows, char *hash,
			      size_t hashlen, struct ls_err *err);
	/* Key and row hash of each row in (lo, hi], to row() (any order). */
	int (*chunk_rows)(struct ls_target *t, const struct ls_relation *rel,
			  const char *lo, const char *hi,
			  int (*row)(void *ctx, const char *key, const char *hash), void *ctx,
			  struct ls_err *err);
};

#endif
