/* my_snapshot — the initial copy of the selected MariaDB tables, each read
 * inside a consistent snapshot whose exact binlog position is known, so
 * copy and stream meet exactly (contract point 4).
 *
 * Why one snapshot per table, and no lock.  MariaDB cannot share one
 * InnoDB snapshot between connections, so N workers seeing the same
 * snapshot would need FLUSH TABLES WITH READ LOCK while all N open theirs:
 * a global write stall on the source whose length grows with the number of
 * workers and with any long-running statement FTWRL must wait for (it
 * waits for every running query, then blocks every writer behind it).
 * MariaDB instead reports, for START TRANSACTION WITH CONSISTENT SNAPSHOT,
 * the binlog position that snapshot corresponds to (status variables
 * Binlog_snapshot_file / Binlog_snapshot_position, kept consistent with
 * the InnoDB read view by the binlog group commit, without any lock;
 * verified on 10.11), and BINLOG_GTID_POS(file, pos) turns it into the GTID
 * set of everything committed before it.  So each table is copied in its own
 * snapshot and reports its own position P: the stream must apply to that
 * table only the transactions after P (the pipeline keeps a per-table
 * copied_at position and filters), and starts at the smallest P.  No
 * global lock is ever taken.
 *
 * Per table, on the worker's own connection (REPEATABLE READ, utf8mb4,
 * time_zone +00:00):
 *   START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY;
 *   SHOW STATUS LIKE 'binlog_snapshot_%';   -> file, position
 *   SELECT BINLOG_GTID_POS(file, position); -> GTID set
 *   SELECT `c1`, `c2`, ... FROM `db`.`t`     (mysql_use_result: streamed)
 *   COMMIT;
 * Rows reach the sink one at a time as ls_values: NULL, TEXT (the server's
 * text form, NUL-terminated) or BINARY (raw bytes, for binary, varbinary,
 * blobs, bit and geometry columns).  Memory: one row at a time.
 *
 * Threads: the sink callbacks run on worker threads, several at once (one
 * per worker; each call carries the worker number).  Progress may be read
 * from any thread at any time.
 */
#ifndef LS_MY_SNAPSHOT_H
#define LS_MY_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "change.h"
#include "err.h"
#include "pos.h"
#include "connectors/mysql/my_setup.h"

/* Where one table's snapshot sits in the binlog. */
struct ls_mysnap_pos {
	struct ls_binlog_pos file_pos; /* Binlog_snapshot_file:position */
	uint64_t seq;                  /* ls_binlog_pos_seq(file_pos) */
	char gtid[LS_POS_TEXT_MAX];    /* GTID set committed before it: stream
	                                  with start_gtid = this to get exactly
	                                  the later transactions */
};

/* Callbacks; each returns 0 to go on or negative to fail the copy (the
 * worker stops, the others stop at their next row, ls_mysnap_wait reports
 * the sink's error).  Pointers are borrowed for the call. */
struct ls_mysnap_sink {
	/* The table's snapshot is open at pos; its rows follow (optional). */
	int (*on_table_start)(void *ctx, int worker, const struct ls_mytable *t,
		const struct ls_mysnap_pos *pos);
	/* One row: t->ncols values in column order. */
	int (*on_row)(void *ctx, int worker, const struct ls_mytable *t,
		const struct ls_value *vals);
	/* The table is copied whole: rows rows, at pos (optional). */
	int (*on_table_done)(void *ctx, int worker, const struct ls_mytable *t,
		uint64_t rows, const struct ls_mysnap_pos *pos);
	void *ctx;
};

struct ls_mysnap_opts {
	const struct ls_myconn *conn;  /* borrowed; each worker opens its own */
	int workers;                   /* >= 1; capped at the number of tables */
	/* Tables already copied (resume): "schema.table" names, borrowed;
	 * neither copied nor counted. */
	const char *const *skip;
	int nskip;
};

enum ls_mysnap_state {
	LS_MYSNAP_PENDING = 0,
	LS_MYSNAP_COPYING,
	LS_MYSNAP_DONE,
	LS_MYSNAP_SKIPPED,
	LS_MYSNAP_FAILED,
};

struct ls_mysnap_progress {
	enum ls_mysnap_state state;
	uint64_t rows;                 /* copied so far */
	uint64_t est_rows;             /* TABLE_ROWS */
	bool has_pos;                  /* COPYING or DONE: pos is set */
	struct ls_mysnap_pos pos;
};

struct ls_mysnap;

/* Starts the workers; tables biggest first (DATA_LENGTH, then estimated
 * rows).  tables and sink (borrowed) must stay valid until ls_mysnap_free.
 * NULL with err set when nothing could start; connection errors surface
 * in ls_mysnap_wait. */
struct ls_mysnap *ls_mysnap_start(const struct ls_mysnap_opts *opts,
	const struct ls_mytables *tables, const struct ls_mysnap_sink *sink,
	struct ls_err *err);

/* Progress of table i (index into tables); thread-safe. */
void ls_mysnap_progress(struct ls_mysnap *s, int i, struct ls_mysnap_progress *out);
/* True once every worker has finished; thread-safe. */
bool ls_mysnap_finished(struct ls_mysnap *s);
/* Asks the workers to stop at their next row (any thread). */
void ls_mysnap_cancel(struct ls_mysnap *s);
/* Joins the workers (blocks).  0 when every table not skipped was copied;
 * else the first error (retryable for a lost connection). */
int ls_mysnap_wait(struct ls_mysnap *s, struct ls_err *err);
/* Cancels, joins, frees.  NULL is a no-op. */
void ls_mysnap_free(struct ls_mysnap *s);

/* Opens a consistent snapshot on m and reads its position (the first
 * three statements above); the transaction stays open for the caller,
 * who ends it with COMMIT.  Exposed for the source and tests. */
int ls_mysnap_open_snapshot(MYSQL *m, struct ls_mysnap_pos *pos, struct ls_err *err);

#endif
