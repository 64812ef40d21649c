/* source — what a source connector provides to the pipeline.
 *
 * Lifecycle (all on the loop thread):
 *   open -> prepare (blocking setup at start: readiness checks, table
 *   selection, publication/slot; returns the captured tables) -> snapshot
 *   (copies the tables the plan asks for on worker threads into the sink,
 *   inside a snapshot consistent with the stream's start) -> stream (decoded
 *   transactions to the callbacks, in commit order) -> close.
 *
 * Stream callbacks fire on the loop thread, in source commit order:
 *   on_begin(txn)                    txn->commit is known (seq orders commits)
 *   on_change(change, rels, nrels)*  values borrowed for the call
 *   on_commit(txn, ack)              ack: what to pass to ack() once this
 *                                    transaction is durable downstream
 *   on_idle(pos, time)               the source advanced to pos and nothing
 *                                    captured is pending in the source; the
 *                                    caller may ack_idle() once everything it
 *                                    received before is durable
 *   on_restart()                     the stream reconnected: a transaction
 *                                    begun but not committed is abandoned and
 *                                    transactions after the last ack come again
 *   on_error(err)                    fatal: the pipeline stops
 *
 * Streamed transactions (optional; a source sends them only when all five
 * stream callbacks are set, and only when that cannot cross a snapshot
 * filter: see stream_floor).  A large transaction may arrive while it is
 * still in progress, in blocks between other transactions (never inside
 * one):
 *   on_stream_begin(xid, first)      a block of transaction xid; first: its
 *                                    first block (a block with first set for
 *                                    an xid already open starts it again)
 *   on_stream_change(subxid, ...)*   a change made by subtransaction subxid
 *                                    of xid (== xid at the top level)
 *   on_stream_end()                  the block ends
 *   on_stream_abort(xid, subxid)     the source rolled back subxid (== xid:
 *                                    the whole transaction)
 *   on_stream_commit(txn, ack)       the source committed xid, in commit
 *                                    order like on_commit
 * on_restart abandons every streamed transaction not yet committed; the
 * source sends again those that commit.
 *
 * Contract point 1: the source tells its server that a position is consumed
 * only through ack()/ack_idle(), never on receipt.
 *
 * Backpressure: pause() stops reading (the backlog stays in the source's log),
 * resume() continues.
 */
#ifndef LS_SOURCE_H
#define LS_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "change.h"
#include "config.h"
#include "err.h"
#include "json.h"

struct ls_source;

struct ls_source_cb {
	void *ctx;
	void (*on_begin)(void *ctx, const struct ls_txn *txn);
	void (*on_change)(void *ctx, const struct ls_change *c,
			  const struct ls_relation *const *rels, uint32_t nrels);
	void (*on_commit)(void *ctx, const struct ls_txn *txn, uint64_t ack);
	void (*on_idle)(void *ctx, const struct ls_pos *pos, int64_t source_time_us);
	void (*on_restart)(void *ctx);
	void (*on_error)(void *ctx, const struct ls_err *err);
	void (*on_stream_begin)(void *ctx, uint64_t xid, bool first);
	void (*on_stream_change)(void *ctx, uint64_t subxid, const struct ls_change *c,
				 const struct ls_relation *const *rels, uint32_t nrels);
	void (*on_stream_end)(void *ctx);
	void (*on_stream_abort)(void *ctx, uint64_t xid, uint64_t subxid);
	void (*on_stream_commit)(void *ctx, const struct ls_txn *txn, uint64_t ack);
	/* Streams only when the stream starts at or after this seq: the
	 * greatest seq at which a target's snapshot filter still drops a
	 * table's changes (a streamed transaction's commit is not known while
	 * its changes are applied, so none may be one the filter drops). */
	uint64_t stream_floor;
};

/* The tables the source captures, as relations (owned by the source, valid
 * until close). */
struct ls_source_tables {
	int n;
	const struct ls_relation *const *rels;
	const double *est_rows;        /* n entries, catalog estimates */
};

/* Snapshot plan and sink; callbacks run on snapshot worker threads (several
 * at once, `worker` tells which), except plan_copied which runs on the loop
 * before any worker starts. */
struct ls_source_snapshot_sink {
	void *ctx;
	/* Whether every target already holds this table's copy (then it is
	 * skipped).  */
	bool (*plan_copied)(void *ctx, const struct ls_relation *rel);
	int (*on_table_start)(void *ctx, int worker, const struct ls_relation *rel,
			      uint64_t copied_at_seq);
	int (*on_copy_data)(void *ctx, int worker, const struct ls_relation *rel,
			    const char *data, size_t len);
	int (*on_table_done)(void *ctx, int worker, const struct ls_relation *rel,
			     uint64_t rows, uint64_t copied_at_seq);
	/* On the loop: the snapshot finished (err NULL) or failed. */
	void (*on_finished)(void *ctx, const struct ls_err *err);
};

struct ls_source_progress {
	const char *schema, *name;     /* borrowed */
	const char *state;             /* "pending" "copying" "done" "skipped" "failed" */
	uint64_t rows, est_rows;
};

/* The source server's own view, sampled by the heartbeat (zero = unknown). */
struct ls_source_lag {
	bool now_known;
	struct ls_pos now;             /* the server's current write position */
	int64_t now_time_us;           /* the server's clock then (us since epoch) */
	uint64_t taken_ns;             /* local uv_hrtime() of the sample */
	bool slot_known;               /* what the server keeps for us: */
	char slot[128];
	char wal_status[16];           /* "reserved" "extended" "unreserved" "lost" */
	int64_t safe_wal_size;         /* bytes, -1 when unlimited */
	int64_t max_keep_size;         /* bytes, -1 when unlimited */
	uint64_t retained_bytes;       /* current write position - restart point */
	/* a log purged by age (MySQL/MariaDB binlog; oldest_file "" otherwise): */
	char oldest_file[128];         /* the log file holding the restart point */
	int64_t oldest_age_s;          /* since its first event (source clock) */
	int64_t expire_s;              /* the server's expiry; 0 never */
	bool oldest_active;            /* still being written: never purged */
};

struct ls_source_ops {
	const char *engine;
	const char *copy_format;       /* format of snapshot data: "pg-text" */

	int (*open)(uv_loop_t *loop, const struct ls_config *cfg,
		    struct ls_source **out, struct ls_err *err);
	/* Blocking setup; fills *tables (borrowed from the source). */
	int (*prepare)(struct ls_source *s, struct ls_source_tables *tables,
		       struct ls_err *err);
	/* Starts the snapshot copy (returns at once; on_finished tells the end).
	 * When no table needs copying, on_finished still fires (from the loop). */
	int (*snapshot)(struct ls_source *s, const struct ls_source_snapshot_sink *sink,
			struct ls_err *err);
	/* Number of tables, and progress of table i (any thread). */
	int (*snapshot_progress)(struct ls_source *s, int i, struct ls_source_progress *out);
	int (*stream)(struct ls_source *s, const struct ls_source_cb *cb, struct ls_err *err);
	void (*ack)(struct ls_source *s, uint64_t ack);
	void (*ack_idle)(struct ls_source *s);
	void (*pause)(struct ls_source *s);
	void (*resume)(struct ls_source *s);
	/* Adds source members (positions, slot, lag inputs) to a status object. */
	void (*status)(struct ls_source *s, struct ls_json *j);
	/* Stops everything; cb(arg) from the loop when released. */
	void (*close)(struct ls_source *s, void (*cb)(void *arg), void *arg);
	/* Optional (NULL when the engine has none): lag inputs (lib/lag.h).
	 * heartbeat starts writing a heartbeat into the source's log every
	 * interval_ms (it flows through the stream like a transaction, so
	 * positions move and the slot advances on an idle pipeline) and
	 * sampling the server's position and clock; lag_sample returns the
	 * latest sample (never blocks). */
	int (*heartbeat)(struct ls_source *s, int interval_ms, struct ls_err *err);
	void (*lag_sample)(struct ls_source *s, struct ls_source_lag *out);
};

#endif
