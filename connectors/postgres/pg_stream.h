/* pg_stream — the logical replication stream of one slot, on the libuv loop.
 *
 * Connects with replication=database (PQconnectStart/PQconnectPoll, never
 * blocking), sends START_REPLICATION SLOT ... LOGICAL ... for pgoutput,
 * and then drains the CopyBoth stream whenever its socket is readable:
 *   'w' XLogData     -> on_xlogdata(start lsn, wal end, send time, payload)
 *   'k' keepalive    -> on_keepalive(wal end, send time, reply requested)
 * and answers with standby status updates ('r': written, flushed, applied,
 * time) every feedback interval and whenever the server asks.
 *
 * Positions (contract point 1).  The stream reports as flushed only what
 * the caller declared durable with ls_pgstream_set_flushed(); receiving a
 * change moves nothing but "written".  PostgreSQL advances the slot's
 * confirmed_flush_lsn to the flushed position we report, and drops WAL
 * behind it, so reporting a position the caller has not made durable would
 * lose changes on a crash.
 *
 * Idle advance.  When nothing is captured (the source writes only to other
 * tables or databases), no XLogData arrives and the caller has nothing to
 * flush, yet the slot would pin WAL and lag would look non-zero.  The
 * walsender's keepalives carry the position up to which it has decoded and
 * sent everything ("wal end").  ls_pgstream_mark_idle() says: "every
 * XLogData you delivered so far is durable downstream (or was nothing to
 * keep), and I hold no partial transaction".  Until the next XLogData
 * arrives, a keepalive's wal end may then be reported as flushed.  This is
 * safe because the stream is ordered: a keepalive with wal end W is sent
 * after every change committed before W, so once it is read and every
 * change delivered before it is durable, nothing at or before W is pending.
 * A keepalive read after the last XLogData counts as well (the walsender
 * stops sending them once we report having received that far, so waiting
 * for the next one could stall).  Any XLogData delivery clears the mark
 * (the caller marks again once that data is durable); so does a reconnect.  Never mark idle while a received
 * transaction is still in flight to the buffer: that is exactly the case
 * where the mark would acknowledge an undelivered change.
 *
 * Errors and reconnects.  A failure (connect, START_REPLICATION, a broken
 * stream, the walsender terminated) closes the connection and calls
 * on_error with the server's message (never the conninfo) and a retryable
 * flag.  For a retryable error the stream reconnects by itself after a
 * backoff (decorrelated jitter between reconnect_base_ms and
 * reconnect_cap_ms) unless the callback called ls_pgstream_stop(); a fatal
 * error stops the stream.  A reconnect resumes with START_REPLICATION at the
 * flushed position (0/0 when none: the slot's confirmed_flush_lsn), so the
 * server re-sends every transaction committed after the last durable
 * position; the caller must drop what it had received but not made durable,
 * or recognise transactions it sees twice by their commit LSN.
 *
 * All calls and callbacks happen on the loop thread.  Callbacks may call
 * any ls_pgstream_* function, including stop and close.
 */
#ifndef LS_PG_STREAM_H
#define LS_PG_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "err.h"

struct ls_pgstream;

struct ls_pgstream_cbs {
	/* One XLogData message: data (borrowed, valid during the call) is a
	 * pgoutput message.  start_lsn is the WAL position it belongs to (for
	 * a commit, the end of the commit record). */
	void (*on_xlogdata)(struct ls_pgstream *s, uint64_t start_lsn,
		uint64_t wal_end, int64_t send_time_us, const char *data,
		size_t len);
	/* A primary keepalive (may be NULL).  The stream answers a reply
	 * request itself, after this callback returns. */
	void (*on_keepalive)(struct ls_pgstream *s, uint64_t wal_end,
		int64_t send_time_us, bool reply_requested);
	/* The stream is up (COPY BOTH started) from start_lsn (may be NULL). */
	void (*on_streaming)(struct ls_pgstream *s, uint64_t start_lsn);
	/* A failure; err is borrowed.  See "Errors and reconnects" above. */
	void (*on_error)(struct ls_pgstream *s, const struct ls_err *err);
};

struct ls_pgstream_opts {
	const char *conninfo;      /* borrowed, copied; secret */
	const char *slot;          /* [a-z0-9_]+ */
	const char *publication;   /* publication_names; quoted for the server */
	int proto_version;         /* 1 (default when 0) or 2 */
	bool streaming;            /* stream in-progress transactions (v2) */
	int work_mem_kb;           /* > 0: the walsender's
	                              logical_decoding_work_mem (a transaction
	                              past it is streamed or spilled) */
	bool messages;             /* also send logical decoding messages
	                              (pg_logical_emit_message; PG 14+) */
	uint64_t start_lsn;        /* 0 = the slot's confirmed position */
	int feedback_interval_ms;  /* default 10000 */
	int reconnect_base_ms;     /* default 500 */
	int reconnect_cap_ms;      /* default 30000 */
};

/* Allocates a stream for loop; copies opts.  NULL with err set on bad
 * options or OOM.  Nothing happens until ls_pgstream_start. */
struct ls_pgstream *ls_pgstream_new(uv_loop_t *loop,
	const struct ls_pgstream_opts *opts, const struct ls_pgstream_cbs *cbs,
	void *data, struct ls_err *err);
/* The data pointer given to ls_pgstream_new. */
void *ls_pgstream_data(const struct ls_pgstream *s);

/* Starts connecting (returns at once).  0, or -1 with err when the
 * connection cannot even be attempted; later failures go to on_error. */
int ls_pgstream_start(struct ls_pgstream *s, struct ls_err *err);
/* Closes the connection and cancels a pending reconnect; the stream can be
 * started again. */
void ls_pgstream_stop(struct ls_pgstream *s);
/* Stops and releases the stream; close_cb (may be NULL) runs once libuv
 * let go of the handles, after which s is gone.  Call once. */
void ls_pgstream_close(struct ls_pgstream *s,
	void (*close_cb)(void *data));

/* Backpressure (contract point 5): pause stops reading the stream (the
 * server then stops sending once the socket buffers fill); status updates
 * still go out, so the walsender does not time out.  XLogData is not
 * delivered while paused, not even from inside the callback that paused.
 * Resume reads again (from the next loop iteration).  Both may be called
 * in any state; the pause survives reconnects. */
void ls_pgstream_pause(struct ls_pgstream *s);
void ls_pgstream_resume(struct ls_pgstream *s);

/* Everything up to lsn is durable downstream (contract point 1).  Never
 * moves backwards.  Reported with the next status update. */
void ls_pgstream_set_flushed(struct ls_pgstream *s, uint64_t lsn);
/* Nothing delivered is pending: see "Idle advance" above. */
void ls_pgstream_mark_idle(struct ls_pgstream *s);
/* Sends a status update now (if streaming); reply asks the server to
 * answer with a keepalive.  0, or -1 when not streaming or on error (which
 * also goes to on_error). */
int ls_pgstream_send_feedback(struct ls_pgstream *s, bool reply);

struct ls_pgstream_stats {
	bool streaming;
	uint64_t received;         /* highest LSN seen (XLogData or keepalive) */
	uint64_t server_wal_end;   /* latest "wal end" the server sent: for a logical
	                            * walsender its own sent position, not the WAL end */
	uint64_t flushed;          /* what the caller declared durable */
	uint64_t reported;         /* flush position last sent to the server */
	int64_t last_server_time_us; /* send time of the last message */
	uint64_t reconnects;
	uint64_t messages;         /* XLogData messages delivered */
};
void ls_pgstream_stats(const struct ls_pgstream *s,
	struct ls_pgstream_stats *out);

/* Next reconnect delay of the decorrelated-jitter backoff:
 * min(cap, random in [base, prev * 3])), prev = 0 for the first attempt;
 * rnd is a uniform random 32-bit value (exposed for unit tests). */
uint64_t ls_pgstream_backoff_ms(uint64_t prev, uint64_t base, uint64_t cap,
	uint32_t rnd);

/* PostgreSQL timestamps: microseconds since 2000-01-01 UTC. */
int64_t ls_pgstream_now_pg(void);
/* Converts a PostgreSQL timestamp to microseconds since the Unix epoch. */
int64_t ls_pgstream_pg_to_unix_us(int64_t pg_us);

#endif
