/* pg_snapshot — the initial copy of the selected tables, read inside the
 * snapshot that slot creation exported, so copy and stream meet exactly
 * (contract point 4).
 *
 * Worker threads, each with its own connection, take tables biggest first
 * (by size, then estimated rows) from a shared queue and run, per table:
 *   BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;
 *   SET TRANSACTION SNAPSHOT '<name>';
 *   COPY (SELECT "c1", "c2", ... FROM "schema"."table") TO STDOUT;
 * and hand the text-format data to the caller's sink.  Memory stays bounded:
 * a worker holds at most one chunk (about 256 KiB, or one row if larger).
 *
 * Threads: the sink callbacks run on worker threads, several at once (one
 * per worker); each call carries the worker number so a sink can keep one
 * target connection per worker without locking.  Progress counters may be
 * read from any thread (the loop's metrics) at any time.
 *
 * The exported snapshot must stay alive (ls_pgslot not freed) until
 * ls_pgsnap_wait() returned.  The snapshot cannot be re-imported after the
 * process that created the slot is gone: a skip-list of finished tables is
 * sound only while the same snapshot is in use, or when the tables still to
 * copy are brought to a new snapshot and the stream is applied idempotently
 * up to it — the pipeline decides.
 */
#ifndef LS_PG_SNAPSHOT_H
#define LS_PG_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "connectors/postgres/pg_setup.h"

struct ls_pgsnap;

/* Callbacks; every one returns 0 to go on, or negative to fail the copy
 * (the worker stops its table, the others stop at their next chunk, and
 * ls_pgsnap_wait reports the sink's error).  ctx is the caller's. */
struct ls_pgsnap_sink {
	/* A table's copy is about to start on `worker` (optional, may be
	 * NULL): the place to begin a target COPY. */
	int (*on_table_start)(void *ctx, int worker, const struct ls_pg_table *t);
	/* A chunk of COPY text data (whole rows, each ending in '\n'); data
	 * is borrowed, valid during the call. */
	int (*on_copy_data)(void *ctx, int worker, const struct ls_pg_table *t,
		const char *data, size_t len);
	/* The table is copied whole: `rows` rows in all. */
	int (*on_table_done)(void *ctx, int worker, const struct ls_pg_table *t,
		uint64_t rows);
	void *ctx;
};

struct ls_pgsnap_opts {
	const char *conninfo;      /* borrowed; each worker opens its own */
	const char *snapshot_name; /* borrowed; from ls_pgslot_info */
	int workers;               /* >= 1; capped at the number of tables */
	/* Tables already copied (resume): "schema.table" names, borrowed,
	 * nskip entries; they are neither copied nor counted. */
	const char *const *skip;
	int nskip;
};

enum ls_pgsnap_state {
	LS_PGSNAP_PENDING = 0,
	LS_PGSNAP_COPYING,
	LS_PGSNAP_DONE,
	LS_PGSNAP_SKIPPED,
	LS_PGSNAP_FAILED,
};

struct ls_pgsnap_progress {
	enum ls_pgsnap_state state;
	uint64_t rows;             /* copied so far */
	uint64_t est_rows;         /* the catalog's estimate (reltuples) */
};

/* Starts the workers.  tables (borrowed) and sink must stay valid until
 * ls_pgsnap_free.  Returns NULL with err set when nothing could start
 * (bad options, no threads); connection errors surface in ls_pgsnap_wait. */
struct ls_pgsnap *ls_pgsnap_start(const struct ls_pgsnap_opts *opts,
	const struct ls_pg_tables *tables, const struct ls_pgsnap_sink *sink,
	struct ls_err *err);

/* Progress of table i (index into tables); thread-safe. */
void ls_pgsnap_progress(struct ls_pgsnap *s, int i,
	struct ls_pgsnap_progress *out);
/* True once every worker has finished (success or not); thread-safe. */
bool ls_pgsnap_finished(struct ls_pgsnap *s);
/* Asks the workers to stop at their next chunk (from any thread). */
void ls_pgsnap_cancel(struct ls_pgsnap *s);

/* Joins the workers (blocks: call it from a thread that may block, or once
 * ls_pgsnap_finished says true).  Returns 0 when every table not skipped
 * was copied; otherwise the first error, retryable when it was a lost
 * connection. */
int ls_pgsnap_wait(struct ls_pgsnap *s, struct ls_err *err);

/* Cancels, joins, frees.  NULL is a no-op. */
void ls_pgsnap_free(struct ls_pgsnap *s);

#endif
