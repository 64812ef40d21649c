/* apply — one target's apply thread: buffer records in, target transactions
 * out, effectively once.
 *
 * The loop hands records to ls_apply_push() (copied into a queue bounded by
 * bytes); the apply thread decodes them (lib/codec) and drives the target
 * connector (lib/target.h), whose calls block.  Rules, in order:
 *
 *  - A TXN chunk with FIRST while a source transaction is still open means
 *    the buffer holds a partial transaction (the producer died mid-way and
 *    the source sent it again whole): the open one is abandoned with
 *    abort_txn() and the new one starts.
 *  - A transaction whose seq is at or below the last applied one (the
 *    target's checkpoint, then each end()) is skipped whole: the producer
 *    re-sent what was durable but not yet acknowledged to the source.
 *  - A change of a table whose snapshot copy was taken at copied_at > the
 *    transaction's seq is skipped: the copy already holds it.
 *  - A relation definition that is new or differs from the last one seen
 *    for its id goes to relation() before the change that carries it (the
 *    target creates the table or applies the DDL, or stops under ddl=stop).
 *  - POSITION records move the applied position when no transaction is
 *    open (idle pipelines report lag 0).
 *  - STREAM chunks (a large source transaction still in progress) go to a
 *    target session of their own, opened at the transaction's FIRST chunk
 *    (when the target has savepoints, lib/target.h); the first session
 *    commits what it holds before each of them.  A subtransaction's first
 *    piece takes a savepoint; a STREAM ABORT rolls back to it, or closes
 *    the session (the whole transaction, or xid 0: every open one).  The
 *    LAST chunk commits the session with the checkpoint, or closes it when
 *    its seq was applied already.  Checkpoints record at most the offset
 *    before the oldest open stream's FIRST chunk, so a replay reads it all
 *    again.  At most 8 streams may be open at once.
 *
 * Groups: while records wait in the queue, source transactions gather in
 * the target's open group (it commits when batch_rows or batch_ms is
 * reached); when the queue runs dry the group commits once it is 10 ms old,
 * so a trickle of small transactions costs the target one commit per
 * group, not one each, and a quiet pipeline waits at most 10 ms.
 *
 * Commits reach the loop through on_committed (from a uv_async, so several
 * commits may merge into one call with the latest position).  A retryable
 * target failure (connection lost, ...) makes the thread reconnect with
 * backoff (reset()) and then ask, through on_rewind, for records again from
 * the checkpoint's offset + 1; records pushed before the loop saw on_rewind
 * are dropped.  A fatal failure stops the thread and fires on_error.
 *
 * Threads: ls_apply_* functions and every callback run on the loop thread.
 */
#ifndef LS_APPLY_H
#define LS_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "change.h"
#include "err.h"
#include "target.h"

struct ls_apply;

struct ls_apply_cb {
	void *ctx;
	/* The target committed every record up to offset; pos is the source
	 * position of the last transaction in it (borrowed for the call). */
	void (*on_committed)(void *ctx, int64_t offset, const struct ls_pos *pos);
	/* The queue fell to half its bound after ls_apply_push returned 1. */
	void (*on_drained)(void *ctx);
	/* Records are wanted again from offset on (after a reconnect). */
	void (*on_rewind)(void *ctx, int64_t offset);
	/* The thread stopped for good; err borrowed for the call. */
	void (*on_error)(void *ctx, const struct ls_err *err);
};

/* A hook for transactional logical messages whose prefix starts with
 * prefix (drift markers).  Both calls run on the apply thread.  on_message
 * runs when the message is met inside its source transaction (not for
 * transactions skipped as already applied); it may add changes to that
 * transaction with ls_apply_hook_change().  Returning 1 asks for
 * after_commit with the same message once the transaction is committed on
 * the target (flushed at once), when the target shows exactly the source's
 * state as of that transaction.  A negative return fails like a target
 * error (err->retryable decides between reconnect-and-replay and stop). */
struct ls_apply_hook {
	const char *prefix;                /* borrowed; must outlive the apply */
	int (*on_message)(void *ctx, struct ls_apply *a, const struct ls_txn *txn,
			  const struct ls_change *msg, struct ls_err *err);
	int (*after_commit)(void *ctx, struct ls_target *t, const struct ls_target_ops *ops,
			    const struct ls_pos *pos, const char *payload, uint32_t len,
			    struct ls_err *err);
	void *ctx;
};

/* From on_message only: applies ch (borrowed for the call) in the open
 * source transaction as if the source had sent it.  rel is handed to the
 * target first when the stream has not defined that relation id yet, or
 * when rel adds columns to the stream's definition (the target takes it on
 * like a Relation message, per its ddl= setting); otherwise the stream's
 * definition is used, and 1 is returned (nothing applied) when its columns
 * differ from rel's by name or number. */
int ls_apply_hook_change(struct ls_apply *a, const struct ls_relation *rel,
			 const struct ls_change *ch, struct ls_err *err);

struct ls_apply_opts {
	const char *pipeline;              /* borrowed for the call */
	const struct ls_config_target *cfg;/* borrowed; must outlive the apply */
	const struct ls_target_ops *ops;
	size_t max_queue_bytes;            /* 0 = 16 MiB */
	const struct ls_apply_hook *hook;  /* may be NULL; borrowed, outlives the apply */
	enum ls_engine source;             /* the pipeline's source (ls_target_opts) */
};

struct ls_apply_stats {
	int64_t committed_offset;          /* -1 when none this run */
	uint64_t committed_seq;            /* source seq of the last applied txn */
	char committed_pos[LS_POS_TEXT_MAX];
	uint64_t position_seq;             /* latest POSITION applied while idle */
	int64_t position_time_us;
	uint64_t records, txns, skipped_txns, aborted_txns, changes, filtered;
	size_t queue_bytes;
	uint64_t rewinds;
	bool in_txn;
	/* streamed transactions: open now, committed, changes applied into
	 * them, source rollbacks (whole or subtransaction) */
	uint64_t streams_open, streamed_txns, streamed_changes, stream_aborts;
};

/* Opens the target (blocking: connects, reads the checkpoint) and prepares
 * the apply thread without starting it. */
int ls_apply_new(uv_loop_t *loop, const struct ls_apply_opts *o,
		 const struct ls_apply_cb *cb, struct ls_apply **out,
		 struct ls_err *err) __attribute__((warn_unused_result));

/* The target connector instance, for the snapshot phase before start
 * (prepare_table, snapshot_state, copy_open).  Owned by the apply. */
struct ls_target *ls_apply_target(struct ls_apply *a);

/* Before start: changes of schema.name in transactions with seq < seq are
 * skipped (the table's snapshot copy holds them). */
int ls_apply_set_copied_at(struct ls_apply *a, const char *schema, const char *name,
			   uint64_t seq);

/* Reads the target's checkpoint into *ckpt and starts the thread. */
int ls_apply_start(struct ls_apply *a, struct ls_target_ckpt *ckpt, struct ls_err *err)
	__attribute__((warn_unused_result));

/* Queues a copy of one buffer record.  Returns 0, 1 when the queue is now
 * over its bound (pause the reader until on_drained), -1 out of memory. */
int ls_apply_push(struct ls_apply *a, int64_t offset, const void *bytes, size_t len);

/* Commits the open group now (e.g. before a drift check); asynchronous. */
void ls_apply_flush(struct ls_apply *a);

/* Thread-safe copy of the counters; a NULL a (a target torn down after a
 * failure) reads as zeros with committed_offset -1. */
void ls_apply_stats(struct ls_apply *a, struct ls_apply_stats *out);

/* Stops the thread after the record in hand, joins it, frees the target
 * (an open group is rolled back; nothing uncommitted was acknowledged) and
 * a once libuv released its handle, then cb(arg).  NULL a is a no-op. */
void ls_apply_close(struct ls_apply *a, void (*cb)(void *arg), void *arg);

#endif
